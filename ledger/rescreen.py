"""Re-screening the whole history after the map changes (SPEC 5, `alluvial rescreen`).

Every purchase is screened again, as of its own date, against the map as it now
stands (a risk area declared later reaches back over history), vectorised over
the zones' STRtrees. Only flags that are new are appended; taint then follows
every descendant parcel (split, merge) and every export holding any of it.
Running it again appends nothing.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely
import sqlalchemy as sa

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


def _purchases(conn: sa.Connection, zones: ZoneSet, known: set[tuple[str, str, str]],
               report: RescreenReport) -> list[tuple[Flag, str]]:
    p, s = parcels, sites
    rows = conn.execute(
        sa.select(p.c.parcel_id, p.c.date, p.c.dig_lon, p.c.dig_lat, p.c.seq, p.c.site_id,
                  s.c.licence_no, s.c.location, s.c.suspended_on)
        .select_from(p.outerjoin(s, s.c.site_id == p.c.site_id))
        .where(p.c.site_id.is_not(None))
    ).all()
    report.purchases = n = len(rows)
    if not n:
        return []
    columns = map(list, zip(*rows, strict=True))
    ids, when_s, lon, lat, seqs, site_ids, licences, locations, suspended = columns
    when = days(when_s)
    lon_a = np.array([np.nan if v is None else v for v in lon], dtype=float)
    lat_a = np.array([np.nan if v is None else v for v in lat], dtype=float)
    geoms = shapely.points(lon_a, lat_a)
    has_dig = ~np.isnan(lon_a)
    site_geoms = {loc: shapely.from_geojson(loc) for loc in set(locations) if loc is not None}
    no_dig = np.flatnonzero(~has_dig)
    for i in no_dig:
        geoms[i] = site_geoms.get(locations[i])
    registered = np.array([loc is not None and (sus is None or sus > d)
                           for loc, sus, d in zip(locations, suspended, when_s, strict=True)])
    lic = np.array([x or "" for x in licences], dtype=object)
    screenable = ~shapely.is_missing(geoms)
    idx = np.flatnonzero(screenable)
    licensed, at_risk = (np.zeros(n, bool), np.zeros(n, bool))
    lz, rz = zones.screen(geoms[idx], lic[idx], when[idx])
    licensed[idx], at_risk[idx] = lz, rz
    valid_licence = _licence_valid(zones, lic, when)

    found: list[tuple[Flag, str]] = []

    def add(i: int, code: str, detail: str) -> None:
        if ("parcel", ids[i], code) not in known:
            found.append((Flag(code, "parcel", ids[i], detail + " (found by rescreen)",
                               {"seq": int(seqs[i])}), when_s[i]))

    for i in np.flatnonzero(~registered):
        add(int(i), "UNREGISTERED_SITE", f"Bought on {when_s[i]} at site {site_ids[i]}, which "
            "was not registered or was suspended.")
    for i in np.flatnonzero(registered & screenable & ~licensed):
        add(int(i), "OUTSIDE_LICENSED_ZONE", f"The purchase point lies outside every zone of "
            f"licence {lic[i]} valid on {when_s[i]}.")
    for i in np.flatnonzero(screenable & at_risk):
        add(int(i), "IN_RISK_AREA", f"The purchase point lies in a risk area valid on "
            f"{when_s[i]}.")
    for i in np.flatnonzero(registered & ~valid_licence):
        add(int(i), "LICENCE_INVALID", f"The mining licence {lic[i]} is not valid on "
            f"{when_s[i]}.")
    return found


def _licence_valid(zones: ZoneSet, lic: np.ndarray, when: np.ndarray) -> np.ndarray:
    """Per purchase: some zone of its licence is valid on its day (geometry aside)."""
    ok = np.zeros(len(lic), dtype=bool)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(lic):
        groups[name].append(i)
    for name, members in groups.items():
        rows = np.array(members)
        for z in zones.by_licence.get(name, []):
            start, end = np.datetime64(z.valid_from), np.datetime64(z.valid_to or "9999-12-31")
            stop = np.datetime64(z.revoked_on or "9999-12-31")
            d = when[rows]
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
