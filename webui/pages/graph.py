"""The custody graph as a drawing: layered by depth (longest path, so every step
points from the origins on the left to the exports on the right), each node and step
with the entry behind it. The templates write it out as inline SVG; no script.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask_babel import gettext

from ledger.custody.trace import Edge, Node, Trace

NODE_W, NODE_H, GAP_X, GAP_Y, MARGIN = 190.0, 40.0, 70.0, 14.0, 16.0
CENTRED = 12  # columns are centred on each other up to this height, else top-aligned
# Issue 19 (a page <= 200 KB at any size): a graph of more nodes draws the MAX_DRAWN nearest
# its start (the trace's breadth-first order), and the steps are listed STEPS_LISTED a page.
MAX_DRAWN = 50
STEPS_LISTED = 100


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
    listed: list[Step] = field(default_factory=list)  # this page of every step, by entry
    nodes: int = 0  # in the whole trace
    total: int = 0  # steps in the whole trace
    before: int = 0  # steps on the pages before this one
    next_after: int | None = None  # the next page's cursor: its steps come after this entry
    next_href: str = ""


def step_title(e: Edge) -> str:
    """The step in a sentence of the page's language; its kind is the log's own code."""
    said = {"seq": e.seq, "kind": e.kind, "actor": e.actor, "date": e.date,
            "ends": f"{e.source[1]} → {e.target[1]}" if e.source != e.target else e.source[1]}
    if e.points is not None:
        said["carats"] = f"{e.points / 100:.2f}"
        if e.actor:
            return gettext("entry %(seq)s: %(kind)s %(ends)s by %(actor)s on %(date)s, "
                           "%(carats)s ct", **said)
        return gettext("entry %(seq)s: %(kind)s %(ends)s on %(date)s, %(carats)s ct", **said)
    if e.actor:
        return gettext("entry %(seq)s: %(kind)s %(ends)s by %(actor)s on %(date)s", **said)
    return gettext("entry %(seq)s: %(kind)s %(ends)s on %(date)s", **said)


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


def nearest(graph: Trace, limit: int) -> Trace:
    """The first ``limit`` nodes of the trace (breadth-first from its start, so each is
    reached from one before it) and the steps between them."""
    keep = set(graph.nodes[:limit])
    return Trace(graph.id, graph.direction, graph.start, graph.nodes[:limit],
                 [e for e in graph.edges if e.source in keep and e.target in keep])


def _listed(edges: list[Edge], after: int | None) -> tuple[list[Step], int, int | None]:
    """The page of steps after entry ``after`` (keyset on the entry; a page ends with the
    last step of an entry, so a merge's steps are never cut), how many came before, and
    the next page's cursor."""
    ordered = sorted(edges, key=lambda e: e.seq)
    rest = [e for e in ordered if after is None or e.seq > after]
    page = rest
    if len(rest) > STEPS_LISTED:
        last = rest[STEPS_LISTED - 1].seq
        page = [e for e in rest if e.seq <= last]
    following = page[-1].seq if len(page) < len(rest) else None
    return ([Step(e.seq, e.kind, step_title(e)) for e in page], len(ordered) - len(rest),
            following)


def draw_graph(graph: Trace, seqs: dict[Node, int], flagged: set[Node],
               link: Callable[[Node], str | None], after: int | None = None) -> GraphDrawing:
    """The custody graph, layered by depth, each node and step with the entry behind it;
    past MAX_DRAWN nodes, the nearest ones. ``after``: the page of the steps' list."""
    listed, before, following = _listed(graph.edges, after)
    whole, graph = graph, nearest(graph, MAX_DRAWN)
    moves = [(e.source, e.target) for e in graph.edges if e.source != e.target]
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
                        [t for b in boxes.values() for t in b.transfers],
                        listed=listed, nodes=len(whole.nodes), total=len(whole.edges),
                        before=before, next_after=following)
