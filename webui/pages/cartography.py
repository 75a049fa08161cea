"""Maps drawn from the ledger's GeoJSON geometries, for the templates to write out as
inline SVG (SPEC 6: no tile server, nothing fetched): an equirectangular projection
fitted to the data, zones as paths, risk areas hatched, sites and purchase points as
marks, each with its link and title; and close-ups of the licence zones.

Pure functions: features in, shapes out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Link = Callable[[str, dict[str, Any]], str | None]

MAP_WIDTH = 1000.0
MIN_SPAN = 0.25  # degrees: a map of one point still shows its surroundings
PAD = 0.06  # of the span, on every side
LAYERS = ("licence_zone", "risk_area", "site", "dig_point", "flagged_purchase")


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


@dataclass(frozen=True)
class Shape:
    layer: str  # licence_zone | risk_area | site | dig_point | flagged_purchase
    title: str
    href: str | None
    path: str = ""  # for polygons
    cx: float = 0.0  # for points
    cy: float = 0.0
    flagged: bool = False
    label: str = ""
    lx: float = 0.0
    ly: float = 0.0
    anchor: str = "middle"  # of the label: start, middle or end


@dataclass(frozen=True)
class MapDrawing:
    width: float
    height: float
    shapes: list[Shape]
    counts: dict[str, int]


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
        parts.append("M" + " L".join(f"{x} {y}" for x, y in points) + " Z")
    return " ".join(parts)


def _label_at(proj: Projection, geometry: dict[str, Any], beside: bool
              ) -> tuple[float, float, str]:
    """Where a zone's label goes: the middle of its outer ring's bounding box, or beside
    it (``beside``: the sites inside a small zone stay visible), on the side with room."""
    rings = _rings(geometry)
    ring = max(rings, key=len) if rings else [geometry["coordinates"]]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    middle = (min(lats) + max(lats)) / 2
    if not beside:
        return (*proj.xy((min(lons) + max(lons)) / 2, middle), "middle")
    x, y = proj.xy(max(lons), middle)
    if x < proj.width * 0.8:
        return x + 5, y + 4, "start"
    x, y = proj.xy(min(lons), middle)
    return x - 5, y + 4, "end"


def _title(layer: str, p: dict[str, Any]) -> str:
    if layer == "licence_zone":
        return (f"{p['zone_id']}: {p.get('name') or 'licence zone'}, licence {p['licence_no']}, "
                f"valid {p['valid_from']} to {p.get('valid_to') or 'open'}")
    if layer == "risk_area":
        return (f"{p['zone_id']}: {p.get('name') or 'risk area'} ({p.get('category')}), "
                f"valid {p['valid_from']} to {p.get('valid_to') or 'open'}")
    if layer == "site":
        flags = f"; open flags: {p['flags']}" if p.get("flags") else ""
        return f"{p['site_id']}: {p.get('name', '')}{flags}"
    where = "dug" if layer == "dig_point" else "flagged purchase, dug"
    codes = f": {p['flags']}" if p.get("flags") else ""
    return f"{p['parcel_id']} {where} here (declared at site {p.get('site_id')}){codes}"


def draw_map(features: Sequence[dict[str, Any]], link: Link,
             fit: Sequence[str] = LAYERS, labels: bool = True, width: float = MAP_WIDTH,
             flagged_sites: set[str] | None = None) -> MapDrawing:
    """Zones, risk areas, sites and purchase points; the view fits the ``fit`` layers.

    A site is marked flagged when it has open flags of its own or a flagged purchase
    declares it (among ``features``, or named in ``flagged_sites``).
    """
    layer_of = [f["properties"]["layer"] for f in features]
    framed = [f for f, layer in zip(features, layer_of, strict=True) if layer in fit]
    proj = Projection.fit(bounds(framed) or bounds(features) or (-1.0, -1.0, 1.0, 1.0), width)
    if flagged_sites is None:
        flagged_sites = _declared_by_flagged(features)
    shapes: list[Shape] = []
    for layer in LAYERS:
        for f, found in zip(features, layer_of, strict=True):
            if found != layer:
                continue
            p, geometry = f["properties"], f["geometry"]
            flagged = layer == "flagged_purchase" or (layer == "site" and (
                bool(p.get("open_flags")) or p.get("site_id") in flagged_sites))
            href, title = link(layer, p), _title(layer, p)
            if geometry["type"] == "Point":
                cx, cy = proj.xy(*geometry["coordinates"][:2])
                shapes.append(Shape(layer, title, href, cx=cx, cy=cy, flagged=flagged))
                continue
            lx, ly, anchor = _label_at(proj, geometry, beside=layer == "licence_zone")
            label = p.get("zone_id", "") if labels and layer != "site" else ""
            shapes.append(Shape(layer, title, href, path=_path(proj, geometry), flagged=flagged,
                                label=label, lx=lx, ly=ly, anchor=anchor))
    counts = {layer: layer_of.count(layer) for layer in LAYERS}
    counts["flagged_site"] = sum(1 for s in shapes if s.layer == "site" and s.flagged)
    return MapDrawing(proj.width, proj.height, shapes, counts)


def _declared_by_flagged(features: Iterable[dict[str, Any]]) -> set[str]:
    return {f["properties"]["site_id"] for f in features
            if f["properties"]["layer"] == "flagged_purchase"}


def _centre(feature: dict[str, Any]) -> tuple[float, float]:
    box = bounds([feature])
    assert box is not None
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _overlaps(feature: dict[str, Any], box: tuple[float, float, float, float]) -> bool:
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
