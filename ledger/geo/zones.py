"""The map: licence zones and risk areas, as they stood on any day (SPEC 5).

:class:`ZoneSet` holds every zone's geometry in two STRtrees (licence, risk),
built once from the projections and reused until a zone changes. It answers
"which zones valid on day D cover or touch this geometry" for one write in well
under a millisecond, and for a million points at once in :meth:`ZoneSet.screen`.

Zones have versions (SPEC 5): the registration, then each ``zone.amended`` from its
``effective`` day on. A zone's licence may be revoked and renewed (SPEC 4), which gives
it windows (``ledger.custody.licences``). The trees hold one entry per version and
window, each valid on its own days only: the days the version applies, within the
window, before a revocation that counts in it, and up to a retirement. So on day D a
point meets exactly the geometry the zone had on D, and every question about days is
one comparison of three arrays, for one point or a million.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry

from ledger.custody import licences
from ledger.db import driver_rows
from ledger.projections import zone_versions, zones

FAR_FUTURE = np.datetime64("9999-12-31", "D")


def days(values: Sequence[str | None], default: np.datetime64 = FAR_FUTURE) -> np.ndarray:
    """ISO dates to datetime64[D]; None becomes ``default`` (an open end)."""
    return np.array([default if v is None else v for v in values], dtype="datetime64[D]")


@dataclass(frozen=True)
class Zone:
    """One version of a zone within one window of its licence (see the module's text)."""

    zone_id: str
    zone_type: str
    licence_no: str | None
    category: str | None
    valid_from: str  # the version's validity, as shown
    valid_to: str | None
    revoked_on: str | None
    start: str | None = None  # the days this entry counts: start..end, before revoked
    end: str | None = None
    revoked: str | None = None

    def valid_on(self, day: str) -> bool:
        """SPEC 5: the version in force on D, valid on D (inclusive; null open), not revoked."""
        return ((self.start is None or self.start <= day) and (self.end is None or day <= self.end)
                and (self.revoked is None or day < self.revoked))

    def describe(self) -> str:
        end = self.valid_to or "open"
        what = f"licence {self.licence_no}" if self.zone_type == "licence" else self.category
        return f"{self.zone_id} ({what}, valid {self.valid_from} to {end})"


def _day_before(day: str) -> str:
    return str(np.datetime64(day, "D") - np.timedelta64(1, "D"))


def zone_entries(rows: Sequence[Any], versions: Sequence[Any]) -> list[tuple[Zone, str]]:
    """(entry, geometry text) for every version and window of every zone, in zone_id order.

    ``rows`` are zones projection rows; ``versions`` zone_versions rows in any order. A zone
    with no version row (none kept yet) counts as its registration alone.
    """
    by_zone: dict[str, list[Any]] = {}
    for v in versions:
        by_zone.setdefault(v.zone_id, []).append(v)
    found: list[tuple[Zone, str]] = []
    for z in sorted(rows, key=lambda r: r.zone_id):
        kept = sorted(by_zone.get(z.zone_id, []), key=lambda v: (v.effective or "", v.seq))
        if not kept:
            found += _entries(z, None, None, z.geometry, z.valid_from, z.valid_to)
            continue
        geometry, valid_from, valid_to = z.geometry, z.valid_from, z.valid_to
        for i, v in enumerate(kept):
            geometry = v.geometry or geometry
            valid_from = v.valid_from or valid_from
            valid_to = v.valid_to if v.sets_valid_to else valid_to
            following = kept[i + 1].effective if i + 1 < len(kept) else None
            if i + 1 < len(kept) and (following or "") <= (v.effective or ""):
                continue  # a later version from the same day: this one counts on no day
            found += _entries(z, v.effective, None if following is None else
                              _day_before(following), geometry, valid_from, valid_to)
    return found


def _entries(z: Any, first: str | None, last: str | None, geometry: str, valid_from: str,
             valid_to: str | None) -> list[tuple[Zone, str]]:
    """The entries of one version, applying from ``first`` to ``last`` (None: open)."""
    found = []
    for w in licences.windows(valid_from, valid_to, z.renewals, z.revocations):
        start = max(filter(None, (first, w.start)), default=None)
        end = min(filter(None, (last, w.end, z.retired_to)), default=None)
        if start is not None and end is not None and start > end:
            continue
        found.append((Zone(z.zone_id, z.zone_type, z.licence_no, z.category, valid_from,
                           valid_to, z.revoked_on, start, end, w.revoked), geometry))
    return found


EARLIEST = np.datetime64("0000-01-01", "D")


class _Tree:
    """One STRtree over the entries of zones of one type, with their days as arrays."""

    def __init__(self, entries: list[tuple[Zone, str]]) -> None:
        self.zones = [zone for zone, _ in entries]
        self.geoms = (shapely.from_geojson([g for _, g in entries]) if entries
                      else np.array([]))
        self.tree = shapely.STRtree(self.geoms)
        self.start = days([z.start for z in self.zones], EARLIEST)
        self.end = days([z.end for z in self.zones])
        self.revoked = days([z.revoked for z in self.zones])
        self.licence = np.array([z.licence_no or "" for z in self.zones], dtype=object)
        # Point -> indexes of the zones that cover it, for the points last primed.
        self._near: dict[tuple[float, float], list[int]] = {}

    def prime(self, xy: np.ndarray) -> None:
        """Query many points at once; :meth:`query_xy` of any of them is then a lookup."""
        near: dict[tuple[float, float], list[int]] = {}
        self._near = near
        if not len(self.zones) or not len(xy):
            return
        keys = list(dict.fromkeys(map(tuple, xy.tolist())))  # each point once
        for key in keys:
            near[key] = []
        g, z = self.tree.query(shapely.points(keys), predicate="intersects")
        for gi, zi in zip(g.tolist(), z.tolist(), strict=True):
            near[keys[gi]].append(zi)
        for hits in near.values():
            if len(hits) > 1:
                hits.sort()  # by zone_id

    def query_xy(self, xy: tuple[float, float], day: str) -> list[Zone]:
        """Zones valid on ``day`` that cover the point (boundary in: a point that
        intersects a polygon is covered by it)."""
        if not self.zones:
            return []  # no zone of this type: no point to build and query
        hits = self._near.get(xy)
        if hits is None:
            hits = sorted(self.tree.query(shapely.Point(xy), predicate="intersects").tolist())
        return _once([self.zones[i] for i in hits if self.zones[i].valid_on(day)])

    def query(self, geom: BaseGeometry, predicate: str, day: str) -> list[Zone]:
        hits = np.sort(self.tree.query(geom, predicate=predicate))  # by zone_id
        return _once([self.zones[i] for i in hits if self.zones[i].valid_on(day)])

    def pairs(self, geoms: np.ndarray, predicate: str, when: np.ndarray) -> np.ndarray:
        """(geometry index, zone index) pairs where the zone is valid on that geometry's day."""
        if not len(self.zones) or not len(geoms):
            return np.empty((2, 0), dtype=np.intp)
        g, z = self.tree.query(geoms, predicate=predicate)
        ok = self.valid(z, when[g])
        return np.vstack([g[ok], z[ok]])

    def valid(self, z: np.ndarray, when: np.ndarray) -> np.ndarray:
        """Whether zone ``z[i]`` is valid on day ``when[i]`` (SPEC 5), for every i at once."""
        valid: np.ndarray = (self.start[z] <= when) & (when <= self.end[z]) & (
            when < self.revoked[z])
        return valid


def _once(found: list[Zone]) -> list[Zone]:
    """One entry per zone (two windows of one zone may both hold a day)."""
    if len(found) < 2:
        return found
    seen: set[str] = set()
    kept = []
    for z in found:
        if z.zone_id not in seen:
            seen.add(z.zone_id)
            kept.append(z)
    return kept


class ZoneSet:
    """Every zone, indexed; ``version`` tells whether the projections changed since."""

    def __init__(self, rows: list[Any], version: int, versions: Sequence[Any] = ()) -> None:
        self.version = version
        entries = zone_entries(rows, versions)
        self.licence = _Tree([e for e in entries if e[0].zone_type == "licence"])
        self.risk = _Tree([e for e in entries if e[0].zone_type == "risk"])
        self.by_licence: dict[str, list[Zone]] = {}
        for z in self.licence.zones:
            self.by_licence.setdefault(z.licence_no or "", []).append(z)
        # Each licence's windows, made once: licence_status is asked on every purchase.
        self._spans = {no: [licences.Window(z.start, z.end, z.revoked) for z in found]
                       for no, found in self.by_licence.items()}

    @staticmethod
    def current_version(conn: sa.Connection) -> int:
        """The seq of the last entry that changed the map (an indexed max, not a scan).

        Every zone entry stamps ``last_seq`` with its own seq, which only grows.
        """
        (version,), = driver_rows(conn, f"SELECT MAX(last_seq) FROM {zones.name}")
        return int(version or 0)

    @classmethod
    def load(cls, conn: sa.Connection) -> ZoneSet:
        version = cls.current_version(conn)
        rows = list(conn.execute(sa.select(zones).order_by(zones.c.zone_id)))
        versions = list(conn.execute(sa.select(zone_versions)))
        return cls(rows, version, versions)

    # -- one geometry (a write) --------------------------------------------------
    def licences_covering(self, geom: BaseGeometry, licence_no: str, day: str) -> list[Zone]:
        """Licence zones valid on ``day`` for ``licence_no`` that cover ``geom`` (boundary in)."""
        return [z for z in self.licence.query(geom, "covered_by", day)
                if z.licence_no == licence_no]

    def risks_touching(self, geom: BaseGeometry, day: str) -> list[Zone]:
        return self.risk.query(geom, "intersects", day)

    # -- one point, possibly primed with the points of a whole ingest chunk ----------------
    def prime(self, xy: np.ndarray) -> None:
        """Look up an (n, 2) array of points in both trees in two queries (ingest chunks)."""
        self.licence.prime(xy)
        self.risk.prime(xy)

    def licences_covering_xy(self, xy: tuple[float, float], licence_no: str,
                             day: str) -> list[Zone]:
        return [z for z in self.licence.query_xy(xy, day) if z.licence_no == licence_no]

    def risks_touching_xy(self, xy: tuple[float, float], day: str) -> list[Zone]:
        return self.risk.query_xy(xy, day)

    def licence_status(self, licence_no: str, day: str) -> str | None:
        """Why the mining licence is not valid on ``day``, or None when it is."""
        spans = self._spans.get(licence_no)
        if not spans:
            return f"no licence zone carries licence {licence_no}"
        why = licences.why_not(spans, day, licence_no)
        return None if why is None else str(why)

    # -- many points at once (rescreen) -----------------------------------------
    def screen(
        self, geoms: np.ndarray, licence_nos: np.ndarray, when: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """For each geometry: covered by a valid licence zone of its licence_no; in a risk area.

        Returns two boolean arrays (``licensed``, ``at_risk``), vectorised over STRtrees.
        """
        licensed = np.zeros(len(geoms), dtype=bool)
        g, z = self.licence.pairs(geoms, "covered_by", when)
        match = licence_nos[g] == self.licence.licence[z]
        licensed[g[match]] = True
        at_risk = np.zeros(len(geoms), dtype=bool)
        g, _ = self.risk.pairs(geoms, "intersects", when)
        at_risk[g] = True
        return licensed, at_risk

    def licence_pairs(self, licence_nos: Sequence[str], owner: np.ndarray,
                      when: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, zone index) pairs: for each row, the zones of its own licence valid on its day.

        Row ``i`` holds licence ``licence_nos[owner[i]]`` (none when ``owner[i]`` is -1), so a
        row is paired only with the few zones of its licence, not looked up in the whole map.
        """
        index: dict[str, list[int]] = {}
        for i, z in enumerate(self.licence.zones):
            index.setdefault(z.licence_no or "", []).append(i)
        lists = [index.get(no, []) for no in licence_nos]
        count = np.array([len(zs) for zs in lists] + [0], dtype=np.intp)  # [-1]: no owner
        first = np.concatenate([[0], np.cumsum(count)[:-1]])
        zone = np.array([i for zs in lists for i in zs], dtype=np.intp)
        n = count[owner]
        rows = np.repeat(np.arange(len(owner)), n)
        # The k-th pair of a row takes the k-th zone of its licence's list.
        k = np.arange(len(rows)) - np.repeat(np.cumsum(n) - n, n)
        zones_of = zone[first[owner[rows]] + k]
        ok = self.licence.valid(zones_of, when[rows])
        return rows[ok], zones_of[ok]

    def at_risk_xy(self, x: np.ndarray, y: np.ndarray, when: np.ndarray) -> np.ndarray:
        """For each point: in (or on the edge of) a risk area valid on its day.

        Only the points inside some risk area's bounding box (one prepared polygon: the
        union of the boxes, each widened by about a centimetre so that rounding cannot drop
        a point on an edge) become shapely points for the tree query.
        """
        at_risk = np.zeros(len(x), dtype=bool)
        if not len(self.risk.zones) or not len(x):
            return at_risk
        near = np.flatnonzero(shapely.intersects_xy(self._risk_boxes, x, y))
        g, _ = self.risk.pairs(shapely.points(x[near], y[near]), "intersects", when[near])
        at_risk[near[g]] = True
        return at_risk

    @cached_property
    def _risk_boxes(self) -> BaseGeometry:
        west, south, east, north = shapely.bounds(self.risk.geoms).T
        margin = 1e-7  # degrees
        boxes = shapely.union_all(shapely.box(west - margin, south - margin, east + margin,
                                              north + margin))
        shapely.prepare(boxes)
        return boxes
