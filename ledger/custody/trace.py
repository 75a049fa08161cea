"""Custody traces: the graph of custody steps backward to the sites or forward to the exports.

Only what lies on a custody path is in a trace (SPEC 6): walking backward from a
parcel follows the edges into it, so the other children of a split are never
reached. A transfer is an edge from a parcel to itself; a site's licence zone is
an edge from the zone to the site (kind ``site.registered``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa

from ledger.db import driver_rows, entries
from ledger.errors import NotFound
from ledger.projections import edges, exports, parcels, sites, zones

Node = tuple[str, str]


class Edge(NamedTuple):
    """One custody step (a tuple: traces of thousands of edges are built per request)."""

    source: Node
    target: Node
    seq: int
    kind: str
    actor: str
    date: str
    points: int | None

    def to_json(self) -> dict[str, Any]:
        return {"from": self.source[1], "to": self.target[1], "seq": self.seq, "kind": self.kind}


@dataclass
class Trace:
    id: str
    direction: str
    start: Node
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "direction": self.direction,
            "nodes": [{"type": t, "id": i} for t, i in self.nodes],
            "edges": [e.to_json() for e in self.edges],
        }

    def sites(self) -> list[str]:
        return [i for t, i in self.nodes if t == "site"]

    def exports(self) -> list[str]:
        return [i for t, i in self.nodes if t == "export"]

    def render(self) -> list[str]:
        """The trace as an indented tree, one custody step a line."""
        near = "source" if self.direction == "backward" else "target"
        far = "target" if near == "source" else "source"
        children: dict[Node, list[Edge]] = {}
        for e in self.edges:
            children.setdefault(getattr(e, far), []).append(e)
        lines = [f"{self.start[0]} {self.start[1]}"]
        seen: set[Node] = {self.start}

        def walk(node: Node, indent: str) -> None:
            steps = sorted(children.get(node, []), key=lambda e: e.seq,
                           reverse=self.direction == "backward")
            for n, e in enumerate(steps):
                last = n == len(steps) - 1
                other: Node = getattr(e, near)
                carats = "" if e.points is None else f", {e.points / 100:.2f} ct"
                step = f"seq {e.seq} {e.kind} by {e.actor} on {e.date}{carats}"
                label = f"{other[0]} {other[1]}" if other != node else "(same parcel)"
                lines.append(f"{indent}{'└── ' if last else '├── '}{label}  [{step}]")
                if other not in seen:
                    seen.add(other)
                    walk(other, indent + ("    " if last else "│   "))

        walk(self.start, "")
        return lines


def _start(conn: sa.Connection, ident: str) -> Node:
    if conn.execute(sa.select(exports.c.seq).where(exports.c.certificate_no == ident)).first():
        return ("export", ident)
    if conn.execute(sa.select(parcels.c.seq).where(parcels.c.parcel_id == ident)).first():
        return ("parcel", ident)
    raise NotFound(f"ID: there is no parcel or KP certificate '{ident}'.", rule="UNKNOWN_REFERENCE")


_EDGE_COLUMNS = "from_type, from_id, to_type, to_id, seq, kind, actor, date, points"


def _edges(conn: sa.Connection, backward: bool, nodes: Iterable[Node]) -> list[Edge]:
    """The edges into (backward) or out of (forward) the given nodes (read through the
    driver: a trace reads thousands)."""
    wanted = set(nodes)
    ids = sorted({i for _, i in wanted})
    column = "to_id" if backward else "from_id"
    found: list[Edge] = []
    for k in range(0, len(ids), 500):
        part = ids[k : k + 500]
        rows = driver_rows(conn, f"SELECT {_EDGE_COLUMNS} FROM {edges.name} "
                                 f"WHERE {column} IN ({', '.join('?' * len(part))})", part)
        for ft, fi, tt, ti, seq, kind, actor, date, pts in rows:
            source, target = (ft, fi), (tt, ti)
            if (target if backward else source) in wanted:
                found.append(Edge(source, target, seq, kind, actor, date, pts))
    return found


def _zone_edges(conn: sa.Connection, site_ids: list[str]) -> list[Edge]:
    """The licence zones the sites rely on: zone -> site, kind site.registered, by the
    officer who wrote that entry (issue 19: the tree form printed `by  on DAY`)."""
    if not site_ids:
        return []
    rows = conn.execute(
        sa.select(sites.c.site_id, sites.c.seq, sites.c.date, zones.c.zone_id, entries.c.actor)
        .join(zones, sa.and_(zones.c.licence_no == sites.c.licence_no,
                             zones.c.zone_type == "licence"))
        .join(entries, entries.c.seq == sites.c.seq)
        .where(sites.c.site_id.in_(site_ids))
    )
    return [Edge(("zone", r.zone_id), ("site", r.site_id), r.seq, "site.registered", r.actor,
                 r.date, None) for r in rows]


def trace(conn: sa.Connection, ident: str, direction: str = "backward") -> Trace:
    """Every custody step on a path from (forward) or to (backward) the parcel or certificate."""
    if direction not in ("backward", "forward"):
        raise ValueError(direction)
    start = _start(conn, ident)
    result = Trace(ident, direction, start, nodes=[start])
    seen = {start}
    frontier = [start]
    done_edges: set[tuple[int, Node, Node]] = set()
    while frontier:
        step = _edges(conn, direction == "backward", frontier)
        frontier = []
        for e in sorted(step, key=lambda e: (e.seq, e.source, e.target)):
            key = (e.seq, e.source, e.target)
            if key in done_edges:
                continue
            done_edges.add(key)
            result.edges.append(e)
            other = e.source if direction == "backward" else e.target
            if other not in seen:
                seen.add(other)
                result.nodes.append(other)
                if other[0] in ("parcel", "export"):
                    frontier.append(other)
    if direction == "backward":
        for e in _zone_edges(conn, result.sites()):
            result.edges.append(e)
            if e.source not in seen:
                seen.add(e.source)
                result.nodes.append(e.source)
    return result
