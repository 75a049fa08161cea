"""Re-screening the whole history after the map changes (SPEC 5, `alluvial rescreen`).

Every purchase is screened again, as of its own date, against the map as it now
stands (a risk area declared later reaches back over history), vectorised over
the zones' STRtrees. Only flags that are new are appended; taint then follows
every descendant parcel (split, merge) and every export holding any of it.
Running it again appends nothing.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa

from ledger.db import is_sqlite
from ledger.events import Ledger, Session
from ledger.projections import edges, flags, parcels, sites
from ledger.screening import Flag, subject_for
from ledger.zones import ZoneSet, days


@dataclass
class RescreenReport:
    purchases: int = 0
    sites: int = 0
    new_flags: int = 0
    tainted: int = 0


def rescreen(ledger: Ledger, progress: Callable[[str], None] | None = None) -> RescreenReport:
    report = RescreenReport()
    with ledger.session() as session:
        conn = session.appender.conn
        zones = ZoneSet.load(conn)
        session._zones = zones
        known = _known_flags(conn)
        new: list[tuple[Flag, str]] = []
        new += _sites(session, known, report)
        new += _purchases(conn, zones, known, report)
        if progress:
            progress(f"screened {report.purchases} purchases and {report.sites} sites")
        for flag, day in new:
            session.raise_flag(flag, day)
            known.add((flag.subject_type, flag.subject_id, flag.code))
        report.new_flags = len(new)
        session.state.flush()
        report.tainted = _taint(session, known)
        report.new_flags += report.tainted
    return report


def _known_flags(conn: sa.Connection) -> set[tuple[str, str, str]]:
    rows = conn.execute(sa.select(flags.c.subject_type, flags.c.subject_id, flags.c.code))
    return {(t, i, c) for t, i, c in rows}


def _sites(session: Session, known: set[tuple[str, str, str]],
           report: RescreenReport) -> list[tuple[Flag, str]]:
    """Sites are few: screen each with the write-time rules, as of its registration date."""
    conn = session.appender.conn
    found = []
    for row in conn.execute(sa.select(sites)):
        report.sites += 1
        payload = {"site_id": row.site_id, "licence_no": row.licence_no, "date": row.date,
                   "location": shapely.geometry.mapping(shapely.from_geojson(row.location))}
        subject = subject_for("site.registered", payload, row.seq, session.state, session.zones)
        assert subject is not None
        for rule in session.ledger.screening:
            for flag in rule.check(subject):
                if ("site", row.site_id, flag.code) not in known:
                    found.append((flag, row.date))
    return found


NO_DIG = 1e300  # stands for a missing dig point in the numeric columns read below
CHUNK = 200_000


def _site_table(conn: sa.Connection) -> tuple[dict[str, int], np.ndarray, np.ndarray,
                                                 np.ndarray]:
    """Sites as arrays indexed by a small code: licence_no, geometry, suspension day."""
    rows = list(conn.execute(sa.select(sites.c.site_id, sites.c.licence_no, sites.c.location,
                                       sites.c.suspended_on)))
    index = {r.site_id: i for i, r in enumerate(rows)}
    licence = np.array([r.licence_no for r in rows] + [""], dtype=object)
    geometry = np.array([shapely.from_geojson(r.location) for r in rows] + [None], dtype=object)
    suspended = days([r.suspended_on for r in rows] + [None])
    return index, licence, geometry, suspended


def _read_purchases(conn: sa.Connection) -> Iterator[list[tuple[Any, ...]]]:
    """Purchase rows in chunks straight from the driver: a million rows, few objects."""
    sql = (f"SELECT seq, date, COALESCE(dig_lon, {NO_DIG}), COALESCE(dig_lat, {NO_DIG}), site_id "
           "FROM parcels WHERE site_id IS NOT NULL")
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor() if is_sqlite(conn) else driver.cursor(name="rescreen")
    try:
        cursor.execute(sql)
        while chunk := cursor.fetchmany(CHUNK):
            yield chunk
    finally:
        cursor.close()


def _purchases(conn: sa.Connection, zones: ZoneSet, known: set[tuple[str, str, str]],
               report: RescreenReport) -> list[tuple[Flag, str]]:
    """Every purchase screened again on its date, vectorised over the zone trees."""
    site_index, site_licence, site_geom, site_suspended = _site_table(conn)
    hits: dict[int, tuple[str, list[str]]] = {}  # seq -> (day, codes)
    for chunk in _read_purchases(conn):
        seq_c, day_c, lon_c, lat_c, site_c = zip(*chunk, strict=True)
        report.purchases += len(chunk)
        seqs = np.array(seq_c, dtype=np.int64)
        when = np.array(day_c, dtype="datetime64[D]")
        lon, lat = np.array(lon_c, dtype=float), np.array(lat_c, dtype=float)
        code = np.fromiter((site_index.get(x, -1) for x in site_c), np.intp, len(chunk))
        dig = lon < NO_DIG
        geoms = site_geom[code]  # -1 picks the trailing None: an unknown site
        geoms[dig] = shapely.points(lon[dig], lat[dig])
        registered = (code >= 0) & (when < site_suspended[code])
        lic = site_licence[code]
        screenable = ~shapely.is_missing(geoms)
        idx = np.flatnonzero(screenable)
        licensed, at_risk = np.zeros(len(chunk), bool), np.zeros(len(chunk), bool)
        licensed[idx], at_risk[idx] = zones.screen(geoms[idx], lic[idx], when[idx])
        valid_licence = _licence_valid(zones, site_licence, code, when)
        for name, mask in (("UNREGISTERED_SITE", ~registered),
                           ("OUTSIDE_LICENSED_ZONE", registered & screenable & ~licensed),
                           ("IN_RISK_AREA", screenable & at_risk),
                           ("LICENCE_INVALID", registered & ~valid_licence)):
            for i in np.flatnonzero(mask):
                hits.setdefault(int(seqs[i]), (str(when[i]), []))[1].append(name)
    return _flags_for(conn, hits, known)


WHY = {
    "UNREGISTERED_SITE": "The purchase names a site that was not registered, or was suspended, "
                         "on {day}",
    "OUTSIDE_LICENSED_ZONE": "The purchase point lies outside every zone of its site's licence "
                             "valid on {day}",
    "IN_RISK_AREA": "The purchase point lies in a risk area valid on {day}",
    "LICENCE_INVALID": "The site's mining licence is not valid on {day}",
}


def _flags_for(conn: sa.Connection, hits: dict[int, tuple[str, list[str]]],
               known: set[tuple[str, str, str]]) -> list[tuple[Flag, str]]:
    """The flags that are new, for the purchases (by seq) that screened dirty."""
    found: list[tuple[Flag, str]] = []
    seqs = sorted(hits)
    for k in range(0, len(seqs), 500):
        rows = conn.execute(sa.select(parcels.c.seq, parcels.c.parcel_id)
                            .where(parcels.c.seq.in_(seqs[k:k + 500])).order_by(parcels.c.seq))
        for seq, parcel_id in rows:
            day, codes = hits[seq]
            for name in codes:
                if ("parcel", parcel_id, name) not in known:
                    detail = WHY[name].format(day=day) + " (found by rescreen)."
                    found.append((Flag(name, "parcel", parcel_id, detail, {"seq": seq}), day))
    return found


def _licence_valid(zones: ZoneSet, site_licence: np.ndarray, code: np.ndarray,
                   when: np.ndarray) -> np.ndarray:
    """Per purchase: some zone of its site's licence is valid on its day (geometry aside)."""
    ok = np.zeros(len(code), dtype=bool)
    order = np.argsort(code, kind="stable")
    sites_seen, starts = np.unique(code[order], return_index=True)
    bounds = [*starts.tolist(), len(code)]
    for j, site in enumerate(sites_seen.tolist()):
        rows = order[bounds[j]:bounds[j + 1]]
        d = when[rows]
        for z in zones.by_licence.get(site_licence[site], []) if site >= 0 else []:
            start, end = np.datetime64(z.valid_from), np.datetime64(z.valid_to or "9999-12-31")
            stop = np.datetime64(z.revoked_on or "9999-12-31")
            ok[rows] |= (start <= d) & (d <= end) & (d < stop)
    return ok


def _taint(session: Session, known: set[tuple[str, str, str]]) -> int:
    """TAINTED_INPUT on every parcel descending from a flagged one, and every export of it."""
    conn = session.appender.conn
    held = [r[0] for r in conn.execute(
        sa.select(flags.c.subject_id).where(flags.c.status == "open",
                                            flags.c.subject_type == "parcel"))]
    children: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    rows = conn.execute(sa.select(edges.c.from_id, edges.c.to_type, edges.c.to_id, edges.c.date)
                        .where(edges.c.kind.in_(["parcel.split", "parcel.merged",
                                                 "export.declared"])))
    for src, to_type, dst, day in rows:
        children[src].append((to_type, dst, day))
    origin: dict[tuple[str, str], str] = {}
    raised = 0
    queue = deque((pid, pid) for pid in held)
    seen = set(held)
    while queue:
        pid, source = queue.popleft()
        for to_type, dst, day in children.get(pid, []):
            if (to_type, dst) in origin or (to_type == "parcel" and dst in seen):
                continue
            origin[(to_type, dst)] = source
            if (to_type, dst, "TAINTED_INPUT") not in known:
                session.raise_flag(Flag("TAINTED_INPUT", to_type, dst,
                                        f"Made from parcel {source}, which has an open flag.",
                                        {"from": source}), day)
                known.add((to_type, dst, "TAINTED_INPUT"))
                raised += 1
            if to_type == "parcel":
                seen.add(dst)
                queue.append((dst, source))
    return raised
