"""Drawings for the pages, computed here and written out as inline SVG by the templates:
maps drawn from the GeoJSON geometries (no tile server, nothing fetched), the custody
graph layered by depth, and bar charts of the statistics.

Pure functions of their input: coordinates in, shapes with their links and titles out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.custody import Edge, Node, Trace

Link = Callable[[str, dict[str, Any]], str | None]

# -- maps -------------------------------------------------------------------------------

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


def _label_at(proj: Projection, geometry: dict[str, Any]) -> tuple[float, float]:
    """The middle of the outer ring's bounding box: good enough for the simple zones."""
    rings = _rings(geometry)
    ring = max(rings, key=len) if rings else [geometry["coordinates"]]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    return proj.xy((min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2)


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
             fit: Sequence[str] = LAYERS, labels: bool = True) -> MapDrawing:
    """Zones, risk areas, sites and purchase points; the view fits the ``fit`` layers.

    A site is marked flagged when it has open flags of its own or a flagged purchase
    declares it.
    """
    layer_of = [f["properties"]["layer"] for f in features]
    framed = [f for f, layer in zip(features, layer_of, strict=True) if layer in fit]
    proj = Projection.fit(bounds(framed) or bounds(features) or (-1.0, -1.0, 1.0, 1.0))
    flagged_sites = {f["properties"].get("site_id") for f, layer in zip(features, layer_of,
                                                                       strict=True)
                     if layer == "flagged_purchase"}
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
            lx, ly = _label_at(proj, geometry)
            label = p.get("zone_id", "") if labels and layer != "site" else ""
            shapes.append(Shape(layer, title, href, path=_path(proj, geometry), flagged=flagged,
                                label=label, lx=lx, ly=ly))
    counts = {layer: layer_of.count(layer) for layer in LAYERS}
    counts["flagged_site"] = sum(1 for s in shapes if s.layer == "site" and s.flagged)
    return MapDrawing(proj.width, proj.height, shapes, counts)


# -- the custody graph -------------------------------------------------------------------

NODE_W, NODE_H, GAP_X, GAP_Y, MARGIN = 190.0, 40.0, 70.0, 14.0, 16.0
CENTRED = 12  # columns are centred on each other up to this height, else top-aligned
MAX_DRAWN = 600  # nodes: past this the page lists the steps without a drawing


@dataclass(frozen=True)
class Step:
    """A custody step (an edge) as drawn and listed."""

    seq: int
    kind: str
    title: str
    path: str = ""
    x: float = 0.0  # a transfer's badge
    y: float = 0.0


@dataclass
class Box:
    node: Node
    x: float
    y: float
    seq: int | None
    href: str | None
    start: bool
    flagged: bool
    transfers: list[Step] = field(default_factory=list)


@dataclass(frozen=True)
class GraphDrawing:
    width: float
    height: float
    boxes: list[Box]
    steps: list[Step]  # edges between two nodes
    transfers: list[Step]  # a parcel's transfers (edges from a parcel to itself)
    drawn: bool


def step_title(e: Edge) -> str:
    carats = "" if e.points is None else f", {e.points / 100:.2f} ct"
    by = f" by {e.actor}" if e.actor else ""
    ends = f"{e.source[1]} → {e.target[1]}" if e.source != e.target else e.source[1]
    return f"entry {e.seq}: {e.kind} {ends}{by} on {e.date}{carats}"


def _layers(graph: Trace) -> dict[Node, int]:
    """Longest-path depth from the start, so that every step points the same way."""
    depth = {n: 0 for n in graph.nodes}
    moves = [(e.source, e.target) for e in graph.edges if e.source != e.target]
    backward = graph.direction == "backward"
    for _ in range(len(graph.nodes)):
        changed = False
        for source, target in moves:
            near, far = (target, source) if backward else (source, target)
            if near in depth and far in depth and depth[far] < depth[near] + 1:
                depth[far], changed = depth[near] + 1, True
        if not changed:
            break
    deepest = max(depth.values(), default=0)
    # Custody flows left to right: origins on the left, exports on the right.
    return {n: deepest - d if backward else d for n, d in depth.items()}


def _order(columns: list[list[Node]], moves: list[tuple[Node, Node]]) -> None:
    """Two barycentre sweeps: each node moves towards the middle of its neighbours."""
    neighbours: dict[Node, list[Node]] = {}
    for a, b in moves:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    for _ in range(2):
        for col in columns[1:] + columns[-2::-1]:
            rank = {n: i for c in columns for i, n in enumerate(c)}
            col.sort(key=lambda n: (sum(rank[m] for m in neighbours.get(n, [n]))
                                    / max(1, len(neighbours.get(n, [n])))))


def draw_graph(graph: Trace, seqs: dict[Node, int], flagged: set[Node],
               link: Callable[[Node], str | None]) -> GraphDrawing:
    """The custody graph, layered by depth, each node and step with the entry behind it."""
    moves = [(e.source, e.target) for e in graph.edges if e.source != e.target]
    loops = [e for e in graph.edges if e.source == e.target]
    steps_only = [Step(e.seq, e.kind, step_title(e)) for e in graph.edges if e.source != e.target]
    transfers_only = [Step(e.seq, e.kind, step_title(e)) for e in loops]
    if len(graph.nodes) > MAX_DRAWN:
        return GraphDrawing(0, 0, [], steps_only, transfers_only, drawn=False)
    column_of = _layers(graph)
    columns: list[list[Node]] = [[] for _ in range(max(column_of.values(), default=0) + 1)]
    for n in graph.nodes:
        columns[column_of[n]].append(n)
    _order(columns, moves)
    tallest = max(len(c) for c in columns)
    height = 2 * MARGIN + tallest * NODE_H + (tallest - 1) * GAP_Y + 12
    boxes: dict[Node, Box] = {}
    for ci, col in enumerate(columns):
        shift = (tallest - len(col)) * (NODE_H + GAP_Y) / 2 if tallest <= CENTRED else 0
        top = MARGIN + 12 + shift
        for ri, n in enumerate(col):
            boxes[n] = Box(n, MARGIN + ci * (NODE_W + GAP_X), round(top + ri * (NODE_H + GAP_Y), 1),
                           seqs.get(n), link(n), n == graph.start, n in flagged)
    steps = []
    for e in graph.edges:
        if e.source == e.target:
            box = boxes[e.source]
            box.transfers.append(Step(e.seq, e.kind, step_title(e),
                                      x=box.x + NODE_W - 10 - 16 * len(box.transfers), y=box.y))
            continue
        a, b = boxes[e.source], boxes[e.target]
        x1, y1, x2, y2 = a.x + NODE_W, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2
        mid = (x1 + x2) / 2
        steps.append(Step(e.seq, e.kind, step_title(e),
                          path=f"M{x1} {y1} C{mid} {y1} {mid} {y2} {x2} {y2}"))
    width = 2 * MARGIN + len(columns) * NODE_W + (len(columns) - 1) * GAP_X
    return GraphDrawing(width, height, list(boxes.values()), steps,
                        [t for b in boxes.values() for t in b.transfers], drawn=True)


# -- bar charts ----------------------------------------------------------------------------

CHART_W, CHART_H, AXIS = 900.0, 260.0, 48.0


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    series: int
    title: str


@dataclass(frozen=True)
class Chart:
    width: float
    height: float
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (y, value)
    years: list[tuple[float, str]]  # (x, year)
    series: list[str]
    baseline: float


def _nice(top: float) -> float:
    if top <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(top))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= top)


def bar_chart(rows: Sequence[dict[str, Any]], value: str, unit: str) -> Chart:
    """Bars of ``value`` by year, one bar per country in each year."""
    series = sorted({str(r["country"] or "unknown") for r in rows})
    years = sorted({int(r["year"]) for r in rows})
    top = _nice(max((float(r[value]) for r in rows), default=0.0))
    plot_w, plot_h = CHART_W - AXIS - 8, CHART_H - 30
    slot = plot_w / max(1, len(years))
    bar_w = max(1.0, (slot - 4) / max(1, len(series)))
    bars = []
    for r in rows:
        si = series.index(str(r["country"] or "unknown"))
        h = float(r[value]) / top * plot_h
        x = AXIS + years.index(int(r["year"])) * slot + 2 + si * bar_w
        bars.append(Bar(round(x, 1), round(10 + plot_h - h, 1), round(bar_w, 1), round(h, 1), si,
                        f"{r['country'] or 'unknown'} {r['year']}: {r[value]:,} {unit}"))
    ticks = [(round(10 + plot_h - plot_h * i / 4, 1), f"{top * i / 4:,.0f}") for i in range(5)]
    labels = [(round(AXIS + i * slot + slot / 2, 1), str(y)) for i, y in enumerate(years)]
    return Chart(CHART_W, CHART_H, bars, ticks, labels, series, 10 + plot_h)
