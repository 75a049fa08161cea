"""Re-screening the whole history after the map changes (SPEC 5, `alluvial rescreen`).

Every purchase is screened again, as of its own date, against the map as it now
stands (a risk area declared later reaches back over history), vectorised: the
purchases are read as columns of numbers, each point is tested against the zones
of its own site's licence only, and against the risk tree only when it lies in
some risk area's bounding box. Only flags that are new are appended; taint then
follows every descendant parcel (split, merge) and every export holding any of
it. Running it again appends nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa

from ledger.custody import licences
from ledger.db import driver_rows, entries
from ledger.geo.patterns import History, capacity_history, footprint_history
from ledger.geo.screening import DEFAULT_RULES, Flag, subject_for
from ledger.geo.zones import ZoneSet, days
from ledger.projections import edges, flags, sites
from ledger.recorder.events import Ledger, Session


@dataclass
class RescreenReport:
    purchases: int = 0
    sites: int = 0
    new_flags: int = 0
    tainted: int = 0


def rescreen(ledger: Ledger, progress: Callable[[str], None] | None = None) -> RescreenReport:
    report = RescreenReport()
    with ledger.session(bulk=True) as session:
        conn = session.appender.conn
        zones = ZoneSet.load(conn)
        session._zones = zones
        known = _known_flags(conn)
        site_table = _SiteTable.read(conn)
        new = _sites(session, zones, site_table, known, report)
        new += _purchases(conn, zones, site_table, report)
        new += _patterns(conn, site_table)
        if progress:
            progress(f"screened {report.purchases} purchases and {report.sites} sites")
        _raise(session, new, known)
        report.new_flags = len(new)
        session.state.flush()
        report.tainted = _taint(session, known)
        report.new_flags += report.tainted
    return report


def _known_flags(conn: sa.Connection) -> set[tuple[str, str, str]]:
    """The flags on sites, and the taint flags: what `_sites` and `_taint` must not raise
    again (a purchase's own flags are matched by seq, in `_new_flags`)."""
    rows = driver_rows(conn, "SELECT subject_type, subject_id, code FROM flags "
                              "WHERE subject_type = 'site' OR code = 'TAINTED_INPUT'")
    return set(rows)


def _raise(session: Session, found: list[tuple[Flag, str]],
           known: set[tuple[str, str, str]]) -> None:
    """Append the flags; first read, in a few queries, the rows ``raise_flag`` looks up for
    each (its subject, to count the open flags, and the flag_id it will take, to see that
    it is free), so that a thousand flags do not cost two thousand queries."""
    state = session.state
    for table, subject_type in (("parcels", "parcel"), ("exports", "export")):
        state.prefetch(table, {f.subject_id for f, _ in found if f.subject_type == subject_type})
    first = session.appender.size + 1
    state.prefetch("flags", [f"F-{first + k}" for k in range(len(found))])
    for flag, day in found:
        session.raise_flag(flag, day)
        known.add((flag.subject_type, flag.subject_id, flag.code))


def _sites(session: Session, zones: ZoneSet, site_table: _SiteTable,
           known: set[tuple[str, str, str]], report: RescreenReport) -> list[tuple[Flag, str]]:
    """Each site screened with the write-time rules, as of its registration date.

    The default rules run only at the sites that a vectorised screen of them all does not
    find clean (inside a valid zone of their licence, in no risk area); other rules, at all.
    """
    report.sites = len(site_table.rows)
    when = days([r.date for r in site_table.rows])
    geoms = site_table.geometry[:-1]
    licensed, at_risk = zones.screen(geoms, np.array(site_table.licence_no, dtype=object), when)
    g, _ = zones.licence_pairs(site_table.licence_no, np.arange(len(site_table.rows)), when)
    licence_valid = np.zeros(len(site_table.rows), dtype=bool)
    licence_valid[g] = True
    clean = licensed & ~at_risk & licence_valid
    found = []
    for row, is_clean in zip(site_table.rows, clean.tolist(), strict=True):
        rules = [r for r in session.ledger.screening if not (is_clean and r in DEFAULT_RULES)]
        if not rules:
            continue
        payload = {"site_id": row.site_id, "licence_no": row.licence_no, "date": row.date,
                   "location": shapely.geometry.mapping(shapely.from_geojson(row.location))}
        subject = subject_for("site.registered", payload, row.seq, session.state, session.zones)
        assert subject is not None
        for rule in rules:
            for flag in rule.check(subject):
                if ("site", row.site_id, flag.code) not in known:
                    found.append((flag, row.date))
    return found


# -- purchases --------------------------------------------------------------------------------

NO_DIG = 1e300  # stands for a missing dig point in the numeric columns read below

# A purchase as the database hands it over: its seq, its date as a day number, its dig
# point (NO_DIG when none) and its site (an index into _SiteTable, -1 when unknown).
PURCHASE = np.dtype([("seq", np.int64), ("day", np.int64), ("lon", np.float64),
                     ("lat", np.float64), ("site", np.intp)])

# The purchase's date as days since 1970-01-01 (numpy's datetime64[D]), counted by the
# database: no date string reaches Python.
DAY_NUMBER = {
    "sqlite": "CAST(julianday(p.date) - 2440587.5 AS INTEGER)",
    "postgresql": "CAST(p.date AS DATE) - DATE '1970-01-01'",
}

# The codes rescreen raises on a purchase, in the order it raises them for one purchase.
CODES = ("UNREGISTERED_SITE", "OUTSIDE_LICENSED_ZONE", "IN_RISK_AREA", "LICENCE_INVALID")

WHY = {
    "UNREGISTERED_SITE": "The purchase names a site that was not registered, or was suspended, "
                         "on {day}",
    "OUTSIDE_LICENSED_ZONE": "The purchase point lies outside every zone of its site's licence "
                             "valid on {day}",
    "IN_RISK_AREA": "The purchase point lies in a risk area valid on {day}",
    "LICENCE_INVALID": "The site's mining licence is not valid on {day}",
}
# LICENCE_INVALID by whose licence is void: 1 the site's, 2 the seller's, 3 both
LICENCE_WHY = {
    1: WHY["LICENCE_INVALID"],
    2: "The seller, a registered actor, has no licence valid on {day}",
    3: "Neither the site's mining licence nor the seller's is valid on {day}",
}


@dataclass
class _SiteTable:
    """Every site under a small integer code (its position here)."""

    rows: list[Any]
    index: dict[str, int]
    licence_no: list[str]
    geometry: np.ndarray  # of shapely geometries, and None at [-1] (an unknown site)
    suspended: np.ndarray  # datetime64[D]; far in the future when never suspended

    @classmethod
    def read(cls, conn: sa.Connection) -> _SiteTable:
        rows = list(conn.execute(sa.select(sites)))
        return cls(rows, index={r.site_id: i for i, r in enumerate(rows)},
                   licence_no=[r.licence_no for r in rows],
                   geometry=np.array([shapely.from_geojson(r.location) for r in rows] + [None],
                                     dtype=object),
                   suspended=days([r.suspended_on for r in rows] + [None]))


def _read_purchases(conn: sa.Connection, site_index: dict[str, int]) -> np.ndarray:
    """Every purchase, straight from the driver into one array of PURCHASE rows.

    A million rows: each row's values live only until numpy has copied them.
    """
    rows = driver_rows(
        conn, f"SELECT p.seq, {DAY_NUMBER[conn.dialect.name]}, COALESCE(p.dig_lon, {NO_DIG}), "
              f"COALESCE(p.dig_lat, {NO_DIG}), p.site_id FROM parcels p "
              "WHERE p.site_id IS NOT NULL",
        name="rescreen")
    code = site_index.get
    return np.fromiter(((seq, day, lon, lat, code(site, -1))
                        for seq, day, lon, lat, site in rows), PURCHASE)


def _void_sellers(conn: sa.Connection) -> np.ndarray:
    """The seqs of the purchases whose seller was a registered actor when they were written
    (``parcels.seller_id``) and whose licence, as the actors now stand, is missing or not
    valid on the purchase's date: SPEC 5 LICENCE_INVALID, the seller's part, as write-time
    screening tests it (:class:`ledger.geo.screening.LicenceInvalid`). Few rows, read through
    the index on seller_id."""
    rows = driver_rows(
        conn, "SELECT p.seq, p.date, a.licence_no, a.licence_valid_from, a.licence_valid_to, "
              "a.renewals, a.revocations FROM parcels p JOIN actors a "
              "ON a.actor_id = p.seller_id WHERE p.seller_id IS NOT NULL")
    # SPEC 4: a licence's windows (registration, renewals) less its revocations.
    return np.fromiter((seq for seq, day, licence_no, start, end, renewals, revocations in rows
                        if licence_no is None or not licences.valid_on(
                            licences.windows(start, end, renewals, revocations), day)),
                       np.int64)


def _purchases(conn: sa.Connection, zones: ZoneSet, site_table: _SiteTable,
               report: RescreenReport) -> list[tuple[Flag, str]]:
    """Every purchase screened again on its date, as write-time screening would (SPEC 5)."""
    rows = _read_purchases(conn, site_table.index)
    report.purchases = len(rows)
    code, when = rows["site"], rows["day"].astype("datetime64[D]")
    dig = rows["lon"] < NO_DIG
    registered = (code >= 0) & (when < site_table.suspended[code])
    seller_void = np.isin(rows["seq"], _void_sellers(conn))
    licensed, licence_valid = _licence_checks(zones, site_table, rows, when, dig, registered)
    # SPEC 5: on the dig point when given, else on the location of the site, if registered.
    at_risk = np.zeros(len(rows), dtype=bool)
    on_point = np.flatnonzero(dig)
    at_risk[on_point] = zones.at_risk_xy(rows["lon"][on_point], rows["lat"][on_point],
                                         when[on_point])
    on_site = np.flatnonzero(registered & ~dig)
    g, _ = zones.risk.pairs(site_table.geometry[code[on_site]], "intersects", when[on_site])
    at_risk[on_site[g]] = True
    found = {"UNREGISTERED_SITE": ~registered,
             "OUTSIDE_LICENSED_ZONE": registered & ~licensed,
             "IN_RISK_AREA": at_risk,
             "LICENCE_INVALID": (registered & ~licence_valid) | seller_void}
    licence_why = (registered & ~licence_valid) + 2 * seller_void
    return _new_flags(conn, rows["seq"], when, found, licence_why)


def _licence_checks(zones: ZoneSet, site_table: _SiteTable, rows: np.ndarray, when: np.ndarray,
                    dig: np.ndarray, registered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per purchase at a registered site: whether a zone of the site's licence valid that day
    covers it (``licensed``), and whether any zone of that licence is valid that day
    (SPEC 5: the site's mining licence is the licence zone with the same licence_no)."""
    n = len(rows)
    owner = np.where(registered, rows["site"], -1)
    g, z = zones.licence_pairs(site_table.licence_no, owner, when)
    licence_valid = np.zeros(n, dtype=bool)
    licence_valid[g] = True
    covered = np.zeros(len(g), dtype=bool)
    on_point = dig[g]
    if on_point.any():
        # A polygon covers a point exactly when it intersects it: the boundary counts.
        geoms = zones.licence.geoms
        shapely.prepare(geoms)
        p = g[on_point]
        covered[on_point] = shapely.intersects_xy(geoms[z[on_point]], rows["lon"][p],
                                                  rows["lat"][p])
    if not on_point.all():
        s = g[~on_point]
        covered[~on_point] = shapely.covers(zones.licence.geoms[z[~on_point]],
                                            site_table.geometry[rows["site"][s]])
    licensed = np.zeros(n, dtype=bool)
    licensed[g[covered]] = True
    return licensed, licence_valid


def _new_flags(conn: sa.Connection, seq: np.ndarray, when: np.ndarray,
               found: dict[str, np.ndarray], licence_why: np.ndarray) -> list[tuple[Flag, str]]:
    """The flags in ``found`` (a mask over the purchases per code) that their parcels lack,
    by seq and then in the order of CODES. ``licence_why``: whose licence makes a purchase
    LICENCE_INVALID (the keys of LICENCE_WHY)."""
    known = _known_purchase_flags(conn)
    hit_row, hit_code = [], []
    for c, name in enumerate(CODES):
        rows = np.flatnonzero(found[name])
        fresh = ~np.isin(seq[rows] * len(CODES) + c, known)
        hit_row.append(rows[fresh])
        hit_code.append(np.full(int(fresh.sum()), c))
    row, code = np.concatenate(hit_row), np.concatenate(hit_code)
    order = np.lexsort((code, seq[row]))
    row, code = row[order], code[order]
    parcel_of = _parcel_ids(conn, np.unique(seq[row]).tolist())
    new = []
    for r, s, c, day in zip(row.tolist(), seq[row].tolist(), code.tolist(),
                            np.datetime_as_string(when[row]).tolist(), strict=True):
        name = CODES[c]
        why = WHY[name] if name != "LICENCE_INVALID" else LICENCE_WHY[int(licence_why[r])]
        detail = why.format(day=day) + " (found by rescreen)."
        new.append((Flag(name, "parcel", parcel_of[s], detail, {"seq": s}), day))
    return new


def _known_purchase_flags(conn: sa.Connection) -> np.ndarray:
    """``seq * len(CODES) + code`` for each flag of CODES already on a parcel (open or not),
    ``seq`` being the entry that made the parcel: for a purchase, its own."""
    position = {name: c for c, name in enumerate(CODES)}
    rows = driver_rows(conn, "SELECT p.seq, f.code FROM flags f JOIN parcels p "
                              "ON p.parcel_id = f.subject_id WHERE f.subject_type = 'parcel'")
    return np.array([seq * len(CODES) + position[code] for seq, code in rows
                     if code in position], dtype=np.int64)


def _parcel_ids(conn: sa.Connection, seqs: list[int]) -> dict[int, str]:
    """The parcel each purchase made, from its entry in the log (looked up by seq, its key)."""
    found: dict[int, str] = {}
    for k in range(0, len(seqs), 500):
        rows = conn.execute(sa.select(entries.c.seq, entries.c.payload)
                            .where(entries.c.seq.in_(seqs[k:k + 500])))
        found.update((s, json.loads(payload)["parcel_id"]) for s, payload in rows)
    return found


def _patterns(conn: sa.Connection, site_table: _SiteTable) -> list[tuple[Flag, str]]:
    """FOOTPRINT_ANOMALY and CAPACITY_ANOMALY found anew on the whole history (SPEC 5)."""
    history = History.read(conn)
    capacity = {r.site_id: r.capacity_points for r in site_table.rows}
    found = sorted(footprint_history(conn, history) + capacity_history(conn, history, capacity),
                   key=lambda f: f[0])
    parcel_of = _parcel_ids(conn, sorted({seq for seq, _, _ in found}))
    return [(replace(flag, subject_id=parcel_of[seq]), day) for seq, day, flag in found]


# -- taint ------------------------------------------------------------------------------------

TAINT_KINDS = ("parcel.split", "parcel.merged", "export.declared")


def _taint(session: Session, known: set[tuple[str, str, str]]) -> int:
    """TAINTED_INPUT on every parcel descending from a flagged one, and every export of it.

    Breadth first from the parcels with an open flag (the earliest flagged first), one
    generation at a time; each parcel or export is tainted once, in the name of the first
    held parcel that reaches it.
    """
    conn = session.appender.conn
    held = [pid for pid, in driver_rows(conn, "SELECT subject_id FROM flags WHERE status = "
                                               "'open' AND subject_type = 'parcel' ORDER BY seq")]
    origin: dict[tuple[str, str], str] = {}
    found: list[tuple[Flag, str]] = []
    seen = set(held)
    generation = [(pid, pid) for pid in held]
    children = _children(conn, sa.select(flags.c.subject_id).where(
        flags.c.status == "open", flags.c.subject_type == "parcel"))
    while generation:
        following = []
        for pid, source in generation:
            for to_type, dst, day in children.get(pid, []):
                if (to_type, dst) in origin or (to_type == "parcel" and dst in seen):
                    continue
                origin[(to_type, dst)] = source
                if (to_type, dst, "TAINTED_INPUT") not in known:
                    found.append((Flag("TAINTED_INPUT", to_type, dst,
                                       f"Made from parcel {source}, which has an open flag.",
                                       {"from": source}), day))
                    known.add((to_type, dst, "TAINTED_INPUT"))
                if to_type == "parcel":
                    seen.add(dst)
                    following.append((dst, source))
        generation = following
        children = _children(conn, [pid for pid, _ in generation])
    _raise(session, found, known)
    return len(found)


def _children(conn: sa.Connection,
              parents: sa.Select[Any] | list[str]) -> dict[str, list[tuple[str, str, str]]]:
    """What each parcel went into by split, merge or export: (to_type, to_id, date), in the
    order written, looked up by the custody edges' index on from_id. ``parents``: parcel
    ids, or a query that selects them."""
    children: dict[str, list[tuple[str, str, str]]] = {}
    groups = [parents] if isinstance(parents, sa.Select) else [
        parents[k:k + 500] for k in range(0, len(parents), 500)]
    for group in groups:
        rows = conn.execute(sa.select(edges.c.from_id, edges.c.to_type, edges.c.to_id,
                                      edges.c.date)
                            .where(edges.c.from_id.in_(group), edges.c.kind.in_(TAINT_KINDS))
                            .order_by(edges.c.id))
        for src, to_type, dst, day in rows:
            children.setdefault(src, []).append((to_type, dst, day))
    return children
