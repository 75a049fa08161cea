"""Maps drawn from the ledger's GeoJSON geometries, for the templates to write out as
inline SVG (SPEC 6: no tile server, nothing fetched): an equirectangular projection
fitted to the data, the countries of the basemap (``ledger.geo.basemap``) under zones
drawn as paths, risk areas hatched, sites and purchase points as marks, each with its
link and title; labels placed so that none overlaps another (``webui.pages.labels``),
meridians and parallels with their degrees, a scale bar true at its latitude, the day the
map is drawn as of; flagged purchases counted in cells when there are many; and close-ups
of the licence zones.

Pure functions: features in, shapes out. The words drawn (titles, the description, the
day, the degrees) are in the request's language (issue 19), and the labels are placed by
the width of those words, so a longer French "as of" still clears the zone names.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import shapely
from flask_babel import gettext as _
from flask_babel import ngettext
from shapely.geometry import shape

from ledger.geo import basemap
from webui.pages import labels as placing
from webui.pages.labels import Box, Candidate, Placer

Link = Callable[[str, dict[str, Any]], str | None]

MAP_WIDTH = 1000.0
MIN_SPAN = 0.25  # degrees: a map of one point still shows its surroundings
PAD = 0.06  # of the span, on every side
LAYERS = ("licence_zone", "risk_area", "site", "dig_point", "flagged_purchase")
KM_PER_DEGREE = 6371.0088 * math.pi / 180  # of latitude, or of longitude at the equator
CLUSTER_ABOVE = 200  # flagged purchases: more than this many are counted in cells
CELLS = (28.0, 42.0, 56.0, 84.0, 112.0)  # sides of a counting cell, the smallest that
MOST_CELLS = 150  # leaves no more than this many cells
# Font sizes, as in app.css: labels of zones and of countries, degrees, scale, as of.
SIZE = {"zone": 12.0, "risk": 12.0, "country": 13.0, "tick": 10.0, "scale": 10.0,
        "as-of": 12.0}
DEGREE_STEPS = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 20.0)
MAX_TICKS = 7


@dataclass(frozen=True)
class Projection:
    """Equirectangular lon/lat to a viewBox, true to scale at the middle latitude."""

    west: float
    north: float
    scale_x: float
    scale_y: float
    width: float
    height: float

    @classmethod
    def fit(cls, bounds: tuple[float, float, float, float], width: float = MAP_WIDTH
            ) -> Projection:
        west, south, east, north = bounds
        if east - west < MIN_SPAN:
            mid = (east + west) / 2
            west, east = mid - MIN_SPAN / 2, mid + MIN_SPAN / 2
        if north - south < MIN_SPAN:
            mid = (north + south) / 2
            south, north = mid - MIN_SPAN / 2, mid + MIN_SPAN / 2
        pad = PAD * max(east - west, north - south)
        west, east, south, north = west - pad, east + pad, south - pad, north + pad
        squeeze = math.cos(math.radians((north + south) / 2))
        scale = width / ((east - west) * squeeze)
        return cls(west, north, scale * squeeze, scale, width,
                   round((north - south) * scale, 1))

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        return (round((lon - self.west) * self.scale_x, 1),
                round((self.north - lat) * self.scale_y, 1))

    def lonlat(self, x: float, y: float) -> tuple[float, float]:
        return self.west + x / self.scale_x, self.north - y / self.scale_y

    def extent(self) -> tuple[float, float, float, float]:
        """West, south, east, north of the view."""
        east, south = self.lonlat(self.width, self.height)
        return self.west, south, east, self.north


@dataclass(frozen=True)
class Shape:
    layer: str  # licence_zone | risk_area | site | dig_point | flagged_purchase
    title: str
    href: str | None
    path: str = ""  # for polygons
    cx: float = 0.0  # for points
    cy: float = 0.0
    flagged: bool = False
    label: str = ""  # the zone's id, placed among ``MapDrawing.labels``
    valid: str = ""  # a zone's validity, "2008-01-01 to open", in the page's language


@dataclass(frozen=True)
class Country:
    """A country of the basemap, cut to the view: land under the zones, its border."""

    iso_a2: str
    name: str
    path: str


@dataclass(frozen=True)
class Label:
    kind: str  # zone | risk | country (the CSS class and font size)
    text: str
    x: float
    y: float
    anchor: str
    box: Box  # as estimated by ``labels.text_box``
    leader: tuple[float, float, float, float] | None  # a line to what it names


@dataclass(frozen=True)
class Tick:
    """A meridian (``lon``) or parallel (``lat``), its line across the map and its label."""

    axis: str
    degrees: float
    text: str
    line: str
    x: float
    y: float
    anchor: str


@dataclass(frozen=True)
class ScaleBar:
    km: float
    x: float  # left end of the bar
    y: float
    length: float
    lat: float  # the latitude it is true at: where it is drawn
    text: str


@dataclass(frozen=True)
class Cell:
    """Flagged purchases counted in one square of the grid, drawn when there are many."""

    x: float
    y: float
    size: float
    count: int
    title: str


@dataclass(frozen=True)
class MapDrawing:
    width: float
    height: float
    shapes: list[Shape]
    counts: dict[str, int]
    countries: list[Country] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    scale: ScaleBar | None = None
    as_of: str | None = None
    cells: list[Cell] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)  # names with no free place

    @property
    def description(self) -> str:
        """What the map shows, in words (the SVG's ``desc``)."""
        parts = []
        if self.as_of:
            parts.append(_("As of %(day)s.", day=self.as_of))
        if self.countries:
            parts.append(_("Countries: %(names)s.",
                           names=", ".join(c.name for c in self.countries)))
        c = self.counts
        # English has always said "1 licence zones"; ngettext gives French its singular.
        shown = [ngettext("%(num)d licence zones", "%(num)d licence zones",
                          c.get("licence_zone", 0)),
                 ngettext("%(num)d risk areas", "%(num)d risk areas", c.get("risk_area", 0)),
                 ngettext("%(num)d mine sites (%(flagged)d flagged)",
                          "%(num)d mine sites (%(flagged)d flagged)", c.get("site", 0),
                          flagged=c.get("flagged_site", 0))]
        purchases = c.get("flagged_purchase", 0)
        shown.append(ngettext("%(num)d flagged purchases counted in %(cells)d cells",
                              "%(num)d flagged purchases counted in %(cells)d cells",
                              purchases, cells=len(self.cells)) if self.cells else
                     ngettext("%(num)d flagged purchases", "%(num)d flagged purchases",
                              purchases))
        parts.append(", ".join(shown) + ".")
        if self.scale:
            parts.append(_("Scale bar: %(length)s.", length=self.scale.text))
        return " ".join(parts)


def _positions(geometry: dict[str, Any]) -> Iterable[Sequence[float]]:
    kind, coords = geometry["type"], geometry["coordinates"]
    if kind == "Point":
        yield coords
    elif kind == "Polygon":
        for ring in coords:
            yield from ring
    elif kind == "MultiPolygon":
        for polygon in coords:
            for ring in polygon:
                yield from ring


def bounds(features: Iterable[dict[str, Any]]) -> tuple[float, float, float, float] | None:
    xs, ys = [], []
    for f in features:
        for position in _positions(f["geometry"]):
            xs.append(position[0])
            ys.append(position[1])
    return (min(xs), min(ys), max(xs), max(ys)) if xs else None


def _rings(geometry: dict[str, Any]) -> list[list[Sequence[float]]]:
    if geometry["type"] == "Polygon":
        return list(geometry["coordinates"])
    if geometry["type"] == "MultiPolygon":
        return [ring for polygon in geometry["coordinates"] for ring in polygon]
    return []


def _path(proj: Projection, geometry: dict[str, Any]) -> str:
    parts = []
    for ring in _rings(geometry):
        points = [proj.xy(p[0], p[1]) for p in ring]
        kept = [xy for k, xy in enumerate(points) if k == 0 or xy != points[k - 1]]
        if len(kept) > 2:
            parts.append("M" + " L".join(f"{x} {y}" for x, y in kept) + " Z")
    return " ".join(parts)


def _validity(p: dict[str, Any]) -> str:
    """A zone's days of validity (ISO dates, as recorded)."""
    if p.get("valid_to"):
        return _("%(start)s to %(end)s", start=p["valid_from"], end=p["valid_to"])
    return _("%(start)s to open", start=p["valid_from"])


def _title(layer: str, p: dict[str, Any]) -> str:
    """What a shape's tooltip says: its id and name as recorded, the rest in words."""
    if layer == "licence_zone":
        return _("%(zone)s: %(name)s, licence %(licence)s, valid %(valid)s", zone=p["zone_id"],
                 name=p.get("name") or _("licence zone"), licence=p["licence_no"],
                 valid=_validity(p))
    if layer == "risk_area":
        return _("%(zone)s: %(name)s (%(category)s), valid %(valid)s", zone=p["zone_id"],
                 name=p.get("name") or _("risk area"), category=p.get("category"),
                 valid=_validity(p))
    if layer == "site":
        if p.get("flags"):
            return _("%(site)s: %(name)s; open flags: %(flags)s", site=p["site_id"],
                     name=p.get("name", ""), flags=p["flags"])
        return f"{p['site_id']}: {p.get('name', '')}"
    where = {"parcel": p["parcel_id"], "site": p.get("site_id"), "flags": p.get("flags")}
    if layer == "dig_point":
        return (_("%(parcel)s dug here (declared at site %(site)s): %(flags)s", **where)
                if p.get("flags") else
                _("%(parcel)s dug here (declared at site %(site)s)", **where))
    return (_("%(parcel)s flagged purchase, dug here (declared at site %(site)s): %(flags)s",
              **where) if p.get("flags") else
            _("%(parcel)s flagged purchase, dug here (declared at site %(site)s)", **where))


def draw_map(features: Sequence[dict[str, Any]], link: Link,
             fit: Sequence[str] = LAYERS, labels: bool = True, width: float = MAP_WIDTH,
             flagged_sites: set[str] | None = None, as_of: str | None = None,
             countries: bool = True, cluster_above: int = CLUSTER_ABOVE) -> MapDrawing:
    """Zones, risk areas, sites and purchase points over the countries; the view fits the
    ``fit`` layers. ``as_of``: the day the features were drawn as of, written on the map;
    more than ``cluster_above`` flagged purchases are counted in cells.

    A site is marked flagged when it has open flags of its own or a flagged purchase
    declares it (among ``features``, or named in ``flagged_sites``).
    """
    layer_of = [f["properties"]["layer"] for f in features]
    framed = [f for f, layer in zip(features, layer_of, strict=True) if layer in fit]
    proj = Projection.fit(bounds(framed) or bounds(features) or (-1.0, -1.0, 1.0, 1.0), width)
    if flagged_sites is None:
        flagged_sites = _declared_by_flagged(features)
    shapes: list[Shape] = []
    named: list[tuple[Shape, dict[str, Any]]] = []  # zones, with their geometry
    # Flagged purchases, with their properties: titled and linked once known to be drawn on
    # their own, not counted in a cell (issue 19: 5,600 titles and links cost 300 ms at 1M).
    purchases: list[tuple[Shape, dict[str, Any]]] = []
    for layer in LAYERS:
        for f, found in zip(features, layer_of, strict=True):
            if found != layer:
                continue
            p, geometry = f["properties"], f["geometry"]
            flagged = layer == "flagged_purchase" or (layer == "site" and (
                bool(p.get("open_flags")) or p.get("site_id") in flagged_sites))
            if geometry["type"] == "Point":
                cx, cy = proj.xy(*geometry["coordinates"][:2])
                if layer == "flagged_purchase":
                    purchases.append((Shape(layer, "", None, cx=cx, cy=cy, flagged=True), p))
                else:
                    shapes.append(Shape(layer, _title(layer, p), link(layer, p), cx=cx, cy=cy,
                                        flagged=flagged))
                continue
            href, title = link(layer, p), _title(layer, p)
            label = p.get("zone_id", "") if layer != "site" else ""
            zone = Shape(layer, title, href, path=_path(proj, geometry), flagged=flagged,
                         label=label, valid=_validity(p) if label else "")
            shapes.append(zone)
            if labels and label:
                named.append((zone, geometry))
    points, cells = _counted(purchases, cluster_above)
    shapes += [replace(s, title=_title(s.layer, p), href=link(s.layer, p)) for s, p in points]
    counts = {layer: layer_of.count(layer) for layer in LAYERS}
    counts["flagged_site"] = sum(1 for s in shapes if s.layer == "site" and s.flagged)
    land = _land(proj) if countries else ()
    placer = Placer(proj.width, proj.height)
    if as_of:
        placer.block(_as_of_box(as_of))
    scale = _scale_bar(proj, placer)
    ticks = _ticks(proj, placer)
    for s in shapes:
        if not s.path:
            r = 7.0 if s.layer == "site" else 4.0
            placer.mark((s.cx - r, s.cy - r, s.cx + r, s.cy + r))
    for c in cells:
        placer.mark((c.x, c.y, c.x + c.size, c.y + c.size))
    placed, unlabelled = _zone_labels(proj, placer, named)
    if labels:
        placed += _country_labels(proj, placer, [cut for cut, _drawn in land])
    return MapDrawing(proj.width, proj.height, shapes, counts,
                      [drawn for _cut, drawn in land],
                      placed, ticks, scale, as_of, cells, unlabelled)


def _around(proj: Projection) -> tuple[float, float, float, float]:
    """The view and a little more: land cut there has its cut edges outside the view."""
    west, south, east, north = proj.extent()
    pad = 0.02 * max(east - west, north - south)
    return west - pad, south - pad, east + pad, north + pad


@functools.lru_cache(maxsize=64)
def _land(proj: Projection) -> tuple[tuple[basemap.Country, Country], ...]:
    """The countries in view, cut and drawn; the same view (most maps, drawn again and
    again) is cut once."""
    return tuple((c, Country(c.iso_a2, c.name, _outline(proj, c.outline)))
                 for c in basemap.countries(_around(proj), 0.6 / proj.scale_y))


def _outline(proj: Projection, outline: Any) -> str:
    """The path of a country's land, projected with numpy (a border has thousands of
    points; a point a pixel from the last is left out)."""
    parts = []
    for polygon in shapely.get_parts(outline):
        if polygon.geom_type != "Polygon":
            continue
        for ring in (polygon.exterior, *polygon.interiors):
            lonlat = shapely.get_coordinates(ring)
            x = np.round((lonlat[:, 0] - proj.west) * proj.scale_x, 1)
            y = np.round((proj.north - lonlat[:, 1]) * proj.scale_y, 1)
            kept = np.ones(len(x), dtype=bool)
            kept[1:] = (np.abs(np.diff(x)) >= 1) | (np.abs(np.diff(y)) >= 1)
            if kept.sum() > 2:
                points = zip(x[kept].tolist(), y[kept].tolist(), strict=True)
                parts.append("M" + " L".join(f"{a} {b}" for a, b in points) + " Z")
    return " ".join(parts)


def _counted(purchases: list[tuple[Shape, dict[str, Any]]], above: int
             ) -> tuple[list[tuple[Shape, dict[str, Any]]], list[Cell]]:
    """The flagged purchases as marks, or, when more than ``above``, counted in the cells
    of a grid (a cell with one purchase keeps its mark): hundreds of crosses drawn one on
    another read as a solid blot, a count reads."""
    if len(purchases) <= above:
        return purchases, []
    for side in CELLS:
        grid: dict[tuple[int, int], list[tuple[Shape, dict[str, Any]]]] = defaultdict(list)
        for s, p in purchases:
            grid[(int(s.cx // side), int(s.cy // side))].append((s, p))
        if len(grid) <= MOST_CELLS:
            break
    points, cells = [], []
    for (i, j), members in sorted(grid.items()):
        if len(members) == 1:
            points.append(members[0])
            continue
        ids = ", ".join(p.get("parcel_id", "") for _s, p in members[:5])
        title = (_("%(count)d flagged purchases dug here: %(ids)s and %(more)d more",
                   count=len(members), ids=ids, more=len(members) - 5) if len(members) > 5
                 else _("%(count)d flagged purchases dug here: %(ids)s", count=len(members),
                        ids=ids))
        cells.append(Cell(i * side, j * side, side, len(members), title))
    return points, cells


def as_of_text(day: str) -> str:
    """The day written in the map's corner, in the page's language (its box is kept free)."""
    return _("as of %(date)s", date=day)


def _as_of_box(day: str) -> Box:
    return placing.text_box(as_of_text(day), 8.0, 8.0 + SIZE["as-of"], "start",
                            SIZE["as-of"])


def _scale_bar(proj: Projection, placer: Placer) -> ScaleBar:
    """A bar of a round number of km, bottom right, true at the latitude it is drawn at
    (equirectangular: a degree of longitude there is cos(latitude) degrees of latitude)."""
    y = proj.height - 20.0
    lat = proj.lonlat(0.0, y)[1]
    px_per_km = proj.scale_x / (KM_PER_DEGREE * math.cos(math.radians(lat)))
    most = 0.2 * proj.width / px_per_km
    power = 10 ** math.floor(math.log10(most))
    km = max(n * power for n in (1, 2, 5) if n * power <= most)
    length = round(km * px_per_km, 1)
    x = round(proj.width - 14.0 - length, 1)
    text = f"{km:g} km"
    placer.block((x - 2, y - 6 - (placing.ASCENT * SIZE["scale"]) - placing.HALO,
                  x + length + 2, y + 5))
    return ScaleBar(km, x, y, length, round(lat, 2), text)


def _step(span: float) -> float:
    return next((s for s in DEGREE_STEPS if span / s <= MAX_TICKS), DEGREE_STEPS[-1])


def _degrees(value: float, positive: str, negative: str) -> str:
    number = f"{abs(value):.2f}".rstrip("0").rstrip(".")
    return number + "°" if value == 0 else (positive if value > 0 else negative) % {
        "degrees": number}


def _ticks(proj: Projection, placer: Placer) -> list[Tick]:
    """Meridians labelled along the bottom edge, parallels along the left edge; a label
    that would cover another is left out (its line stays)."""
    west, south, east, north = proj.extent()
    size, found = SIZE["tick"], []
    east_, west_ = _("%(degrees)s°E"), _("%(degrees)s°W")
    north_, south_ = _("%(degrees)s°N"), _("%(degrees)s°S")
    step = _step(east - west)
    for k in range(math.ceil(west / step), math.floor(east / step) + 1):
        lon = round(k * step, 6)
        x = proj.xy(lon, north)[0]
        found.append(Tick("lon", lon, _degrees(lon, east_, west_), f"M{x} 0 V{proj.height}",
                          x, proj.height - 4.0, "middle"))
    step = _step(north - south)
    for k in range(math.ceil(south / step), math.floor(north / step) + 1):
        lat = round(k * step, 6)
        y = proj.xy(west, lat)[1]
        found.append(Tick("lat", lat, _degrees(lat, north_, south_), f"M0 {y} H{proj.width}",
                          4.0, y - 3.0, "start"))
    kept = []
    for t in found:
        box = placing.text_box(t.text, t.x, t.y, t.anchor, size)
        if placer.free(box):
            placer.block(box)
        else:
            t = Tick(t.axis, t.degrees, "", t.line, t.x, t.y, t.anchor)
        kept.append(t)
    return kept


def _pixels(proj: Projection, geometry: Any) -> Box:
    west, south, east, north = geometry.bounds
    x0, y0 = proj.xy(west, north)
    x1, y1 = proj.xy(east, south)
    return x0, y0, x1, y1


def _zone_labels(proj: Projection, placer: Placer, named: list[tuple[Shape, dict[str, Any]]]
                 ) -> tuple[list[Label], list[str]]:
    """Risk areas first, then licence zones: inside a zone large enough to hold its name,
    else beside it, farther out with a leader line when the near places are taken."""
    view = proj.extent()
    seen = []
    for s, geometry in named:
        visible = shapely.clip_by_rect(shape(geometry), *view)
        if not visible.is_empty:
            seen.append((s, visible, _pixels(proj, visible)))
    for s, _visible, box in seen:
        if not _holds(box, s.label, SIZE["zone"]):
            placer.mark(box)
    placed, unlabelled = [], []
    for s, visible, box in sorted(seen, key=lambda z: (z[0].layer != "risk_area", z[0].label)):
        kind = "risk" if s.layer == "risk_area" else "zone"
        size = SIZE[kind]
        candidates = placing.around(box, size)
        if _holds(box, s.label, size):
            inner = visible.point_on_surface()
            x, y = proj.xy(inner.x, inner.y)
            candidates = placing.inside(x, y, size) + [
                Candidate(c.x, c.y, c.anchor, c.cost + 2, c.leader_to) for c in candidates]
        got = placer.place(s.label, size, candidates)
        if got is None:
            unlabelled.append(s.label)
        else:
            placed.append(Label(kind, got.text, got.x, got.y, got.anchor, got.box, got.leader))
    return placed, unlabelled


def _holds(box: Box, text: str, size: float) -> bool:
    """Whether a shape of extent ``box`` is large enough to hold ``text`` inside."""
    height = (placing.ASCENT + placing.DESCENT) * size
    return (box[2] - box[0] > placing.text_width(text, size) + 16
            and box[3] - box[1] > 3 * height)


def _country_labels(proj: Projection, placer: Placer, land: list[basemap.Country]
                    ) -> list[Label]:
    """Country names, the largest first, each inside its own land and in a free place;
    a country with none (a sliver at the edge, a crowded corner) goes unnamed."""
    size, placed = SIZE["country"], []
    for c in sorted(land, key=lambda c: -c.outline.area):
        inner = c.outline.point_on_surface()
        x, y = proj.xy(inner.x, inner.y)
        candidates = [Candidate(x + dx, y + dy, "middle", (abs(dx) + abs(dy)) / 100)
                      for dy in (0, -30, 30, -60, 60, -100, 100)
                      for dx in (0, -80, 80, -160, 160)]

        def within(box: Box, outline: Any = c.outline) -> bool:
            west, north = proj.lonlat(box[0], box[1])
            east, south = proj.lonlat(box[2], box[3])
            return bool(outline.contains(shapely.box(west, south, east, north)))

        got = placer.place(c.name, size, candidates, fits=within)
        if got is not None:
            placed.append(Label("country", got.text, got.x, got.y, got.anchor, got.box, None))
    return placed


def _declared_by_flagged(features: Iterable[dict[str, Any]]) -> set[str]:
    return {f["properties"]["site_id"] for f in features
            if f["properties"]["layer"] == "flagged_purchase"}


def _centre(feature: dict[str, Any]) -> tuple[float, float]:
    box = bounds([feature])
    assert box is not None
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _overlaps(feature: dict[str, Any], box: tuple[float, float, float, float]) -> bool:
    geometry = feature["geometry"]
    if geometry["type"] == "Point":  # most are: a close-up tests every purchase on the map
        x, y = geometry["coordinates"][:2]
        return box[0] <= x <= box[2] and box[1] <= y <= box[3]
    own = bounds([feature])
    return own is not None and not (own[2] < box[0] or own[0] > box[2] or own[3] < box[1]
                                    or own[1] > box[3])


def insets(features: Sequence[dict[str, Any]], link: Link, reach: float = 1.5,
           margin: float = 0.3, width: float = 400.0) -> list[tuple[str, MapDrawing]]:
    """Close-ups of the licence zones, grouped by nearness (within ``reach`` degrees),
    each with the sites and purchase points around it and the risk areas across it.

    On a map of a whole region a licence zone is a few pixels wide; its close-up
    shows which sites and dig points lie inside it and which outside.
    """
    groups: list[list[dict[str, Any]]] = []
    for zone in (f for f in features if f["properties"]["layer"] == "licence_zone"):
        cx, cy = _centre(zone)
        for group in groups:
            if any(math.dist((cx, cy), _centre(other)) <= reach for other in group):
                group.append(zone)
                break
        else:
            groups.append([zone])
    drawn = []
    flagged = _declared_by_flagged(features)
    for group in groups:
        box = bounds(group)
        assert box is not None
        around = (box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin)
        members = [f for f in features if any(f is z for z in group)
                   or f["properties"]["layer"] == "risk_area"
                   or (f["properties"]["layer"] in ("site", "dig_point", "flagged_purchase")
                       and _overlaps(f, around))]
        title = ", ".join(sorted(z["properties"]["zone_id"] for z in group))
        drawn.append((title, draw_map(members, link, fit=("licence_zone", "site"),
                                      width=width, flagged_sites=flagged)))
    return drawn
