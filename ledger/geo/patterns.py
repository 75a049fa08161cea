"""Patterns of purchases: FOOTPRINT_ANOMALY and CAPACITY_ANOMALY (SPEC 5).

Neither needs a dig point: they judge a purchase against what its licence zone and its
site usually sell. The statistics live here once, in :func:`reference` and
:func:`capacity_limit`, and both paths call them, so that write-time screening and
`rescreen` agree exactly:

- at write time, :class:`Footprint` and :class:`Capacity` are screening rules that keep
  their reference per session (:class:`Memory`): a zone's purchases of the last 365 days
  and a site's monthly carats are read once and updated as purchases are written, so an
  ingest chunk does not read them again for each event;
- `rescreen` (:func:`footprint_history`, :func:`capacity_history`) reads every purchase
  as columns and walks each zone's days in date order.

Decisions where SPEC 5 is silent:

- "already flagged": a purchase with a FOOTPRINT_ANOMALY flag, open or resolved, stays
  out of the reference. A resolution lifts a hold; it does not make the purchase typical
  of its zone, and the reference must not change under judgements already made.
- A measure whose reference has a MAD of 0 (half the reference or more share one value)
  has no scale: that measure is not judged.
- "its previous 12 months that had purchases": the last 12 calendar months before the
  purchase's month in which the site had purchases, however far back (at least 3 of them),
  not only those of the last 12 calendar months: a pit that sells in one month of three
  keeps a reference of a year's work, not of four months.
- A price of 0, or in a currency other than USD, is not judged on price and stays out of
  the price reference; the purchase is still judged on, and counts in, stone size. Each
  measure needs at least 30 purchases of reference.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa

from ledger.custody.state import State
from ledger.db import driver_rows
from ledger.geo.screening import Flag, Subject

FOOTPRINT = "FOOTPRINT_ANOMALY"
CAPACITY = "CAPACITY_ANOMALY"
WINDOW_DAYS = 365  # SPEC 5: the purchases dated in the 365 days before
MIN_REFERENCE = 30  # SPEC 5: at least 30 of them (fewer: not judged)
LIMIT = 3.5  # SPEC 5: more than 3.5 robust deviations
MAD_SCALE = 1.4826  # SPEC 5: (x - median) / (1.4826 x MAD)
CAPACITY_MONTHS = 12  # SPEC 5: its previous 12 months that had purchases
CAPACITY_MIN_MONTHS = 3
CAPACITY_TIMES = 10


# -- the statistics, shared by both paths ----------------------------------------------------

@dataclass(frozen=True)
class Measure:
    """One measure's reference: the median of its logarithms, the robust scale, the count."""

    median: float
    scale: float
    count: int


def median(values: np.ndarray) -> float:
    """The median, as numpy's (the mean of the two middle values of an even count), by one
    partial sort: the one computation both paths use, so that they agree to the last bit."""
    n = len(values)
    half = n // 2
    part = values.copy()
    if n % 2:
        part.partition(half)
        return float(part[half])
    part.partition((half - 1, half))
    return float((part[half - 1] + part[half]) / 2.0)


def measure(logs: np.ndarray) -> Measure | None:
    """The reference of one measure over ``logs`` (ln of its values), or None when it cannot
    judge: fewer than 30 values, or a MAD of 0."""
    if len(logs) < MIN_REFERENCE:
        return None
    mid = median(logs)
    mad = median(np.abs(logs - mid))
    if mad == 0.0:
        return None
    return Measure(mid, MAD_SCALE * mad, len(logs))


def reference(price_logs: np.ndarray, size_logs: np.ndarray) -> tuple[Measure | None, ...]:
    """(price, size) references of a zone's window of purchases."""
    return measure(price_logs), measure(size_logs)


def price_log(cents: np.ndarray, pts: np.ndarray, usd: np.ndarray) -> np.ndarray:
    """ln USD per carat (cents / points), NaN where not judged on price (not USD, or 0)."""
    ok = usd & (cents > 0)
    out = np.full(len(cents), np.nan)
    out[ok] = np.log(cents[ok].astype(np.float64) / pts[ok])
    return out


def size_log(pts: np.ndarray, stones: np.ndarray) -> np.ndarray:
    """ln mean stone size in carats (points / 100 / stones)."""
    return np.log(pts.astype(np.float64) / (100.0 * stones))


NAMES = (("price", "USD/ct"), ("mean stone size", "ct"))


def judge(refs: tuple[Measure | None, ...], logs: tuple[float, float]) -> list[str]:
    """What is anomalous about one purchase, in words (empty: nothing), each naming the
    measure, its value, the reference median and the robust deviation."""
    found = []
    for (name, unit), ref, x in zip(NAMES, refs, logs, strict=True):
        if ref is None or x != x:  # not judged on this measure
            continue
        dev = (x - ref.median) / ref.scale
        if abs(dev) > LIMIT:
            side = "above" if dev > 0 else "below"
            found.append(f"{name} {np.exp(x):,.2f} {unit} is {abs(dev):.1f} robust deviations "
                         f"{side} the {{zone}} median of {np.exp(ref.median):,.2f} {unit} over "
                         f"{ref.count} purchases")
    return found


def footprint_flag(parcel_id: str, seq: int, licence_no: str, day: str,
                   found: list[str]) -> Flag:
    start = (date.fromisoformat(day) - timedelta(days=WINDOW_DAYS)).isoformat()
    end = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    detail = "; ".join(f.replace("{zone}", licence_no) for f in found)
    return Flag(FOOTPRINT, "parcel", parcel_id,
                f"{detail[0].upper()}{detail[1:]} from {start} to {end} (SPEC 5: the footprint "
                f"of licence {licence_no}).",
                {"seq": seq, "licence_no": licence_no, "window": [start, end]})


def capacity_limit(monthly: Iterable[int]) -> float | None:
    """Ten times the median of the points of the months given (the site's last 12 that had
    purchases; at least 3), or None. Exact: points are integers, a median at worst a half."""
    months = sorted(m for m in monthly if m > 0)
    n = len(months)
    if n < CAPACITY_MIN_MONTHS:
        return None
    middle = months[n // 2] if n % 2 else (months[n // 2 - 1] + months[n // 2]) / 2
    return CAPACITY_TIMES * float(middle)


def capacity_flag(parcel_id: str, seq: int, site_id: str, month: str, after: int,
                  limit: float, registered: bool) -> Flag:
    why = ("its registered capacity of {:,.2f} ct a month" if registered else
           "ten times the median monthly carats of its previous 12 months with purchases "
           "({:,.2f} ct)").format(limit / 100)
    return Flag(CAPACITY, "parcel", parcel_id,
                f"With this purchase, site {site_id}'s purchases in {month} reach "
                f"{after / 100:,.2f} ct, past {why} (SPEC 5).",
                {"seq": seq, "site_id": site_id, "month": month})


def month_of(day: str) -> int:
    """A month as a number: year * 12 + month - 1."""
    return int(day[:4]) * 12 + int(day[5:7]) - 1


def month_text(month: int) -> str:
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


# -- write time: rules with a per-session memory ---------------------------------------------

@dataclass
class _Zone:
    """A licence zone's purchases dated on or after ``since`` (an ordinal day), as known to
    this session, as columns in date order: day, parcel_id, ln price (NaN: not judged on
    price), ln size, and whether it is out of the reference (flagged)."""

    since: int
    days: list[int] = field(default_factory=list)
    pids: list[str] = field(default_factory=list)
    price: list[float] = field(default_factory=list)
    size: list[float] = field(default_factory=list)
    out: list[bool] = field(default_factory=list)
    cached: tuple[int, tuple[Measure | None, ...]] | None = None

    def insert(self, day: int, pid: str, price: float, size: float, out: bool) -> None:
        k = bisect.bisect_right(self.days, day)
        self.days.insert(k, day)
        self.pids.insert(k, pid)
        self.price.insert(k, price)
        self.size.insert(k, size)
        self.out.insert(k, out)
        if self.cached is not None and day < self.cached[0]:
            self.cached = None  # it joins the window of the reference cached

    def reference(self, day: int) -> tuple[Measure | None, ...]:
        """SPEC 5: the references of the window [day - 365, day - 1], less the flagged."""
        if self.cached is not None and self.cached[0] == day:
            return self.cached[1]
        start = day - WINDOW_DAYS
        lo = bisect.bisect_left(self.days, start)
        if lo > 512:  # rows older than every window to come: forget them
            del self.days[:lo], self.pids[:lo], self.price[:lo], self.size[:lo], self.out[:lo]
            self.since, lo = max(self.since, start), 0
        hi = bisect.bisect_left(self.days, day)
        keep = ~np.array(self.out[lo:hi], dtype=bool)
        price = np.array(self.price[lo:hi], dtype=np.float64)[keep]
        refs = reference(price[~np.isnan(price)],
                         np.array(self.size[lo:hi], dtype=np.float64)[keep])
        self.cached = (day, refs)
        return refs


@dataclass
class _Site:
    months: dict[int, int]  # month -> points bought, over the site's whole history
    limit: tuple[int, float | None] | None = None  # (month, its limit) last worked out

    def limit_of(self, month: int) -> float | None:
        """Ten times the median of the site's last 12 months with purchases before ``month``."""
        if self.limit is None or self.limit[0] != month:
            earlier = sorted(m for m in self.months if m < month)[-CAPACITY_MONTHS:]
            self.limit = (month, capacity_limit(self.months[m] for m in earlier))
        return self.limit[1]


@dataclass
class Memory:
    """What the pattern rules keep for one write session (one transaction)."""

    zones: dict[str, _Zone] = field(default_factory=dict)
    sites: dict[str, _Site] = field(default_factory=dict)


def _memory(s: Subject) -> Memory:
    memory = s.memory.get("patterns")
    if memory is None:
        memory = s.memory["patterns"] = Memory()
    assert isinstance(memory, Memory)
    return memory


def _unflushed(state: State, exclude: str) -> list[dict[str, Any]]:
    """Purchases this session wrote that are not yet in the database (but ``exclude``)."""
    cache = state.cache["parcels"]
    rows = (cache[k] for k in state.new["parcels"] if k != exclude)
    return [r for r in rows if r is not None and r["site_id"] is not None]


def _footprint_flagged(state: State, parcel_ids: list[str]) -> set[str]:
    found = {r["subject_id"] for k in state.new["flags"]
             if (r := state.cache["flags"][k]) is not None and r["code"] == FOOTPRINT}
    for k in range(0, len(parcel_ids), 500):
        part = parcel_ids[k:k + 500]
        found.update(pid for pid, in driver_rows(
            state.conn, "SELECT subject_id FROM flags WHERE subject_type = 'parcel' AND code = ? "
                        f"AND subject_id IN ({', '.join('?' * len(part))})", [FOOTPRINT, *part]))
    return found


def _logs(rows: list[tuple[int, int, int | None, str | None]]) -> tuple[np.ndarray, np.ndarray]:
    """(ln price, ln size) of rows of (points, stones, price_cents, currency)."""
    pts = np.array([r[0] for r in rows], dtype=np.int64)
    stones = np.array([r[1] for r in rows], dtype=np.int64)
    cents = np.array([r[2] or 0 for r in rows], dtype=np.int64)
    usd = np.array([r[3] == "USD" for r in rows], dtype=bool)
    return price_log(cents, pts, usd), size_log(pts, stones)


def _judged(s: Subject) -> dict[str, Any] | None:
    """The parcel row of a purchase at a site registered when it was written (its licence_no
    known): what both patterns judge; None for anything else."""
    if s.kind != "parcel.purchased":
        return None
    row = s.state.get("parcels", s.payload["parcel_id"])
    return None if row is None or row["licence_no"] is None else row


class Footprint:
    """FOOTPRINT_ANOMALY at write time (SPEC 5): the purchase against its licence zone's
    purchases of the 365 days before its date."""

    code = FOOTPRINT

    def check(self, s: Subject) -> list[Flag]:
        row = _judged(s)
        if row is None:
            return []
        p, licence_no = s.payload, row["licence_no"]
        day = date.fromisoformat(p["date"]).toordinal()
        zone = self._zone(s, licence_no, day - WINDOW_DAYS, p["parcel_id"])
        # One value each, through the same numpy logarithm as the columns of rescreen.
        pts, cents = np.float64(row["points"]), row["price_cents"] or 0
        price = (float(np.log(cents / pts)) if row["currency"] == "USD" and cents > 0
                 else math.nan)
        size = float(np.log(pts / (100.0 * row["stones"])))
        found = judge(zone.reference(day), (price, size))
        zone.insert(day, p["parcel_id"], price, size, bool(found))
        if not found:
            return []
        return [footprint_flag(p["parcel_id"], s.seq, licence_no, p["date"], found)]

    def _zone(self, s: Subject, licence_no: str, since: int, current: str) -> _Zone:
        zones = _memory(s).zones
        zone = zones.get(licence_no)
        if zone is not None and zone.since <= since:
            return zone
        rows = [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in driver_rows(
            s.state.conn, "SELECT date, parcel_id, points, stones, price_cents, currency "
                          "FROM parcels WHERE licence_no = ? AND date >= ? AND site_id IS NOT "
                          "NULL", [licence_no, date.fromordinal(since).isoformat()])]
        known = {r[1] for r in rows}
        rows += [(r["date"], r["parcel_id"], r["points"], r["stones"], r["price_cents"],
                  r["currency"]) for r in _unflushed(s.state, current)
                 if r["licence_no"] == licence_no and r["parcel_id"] not in known
                 and date.fromisoformat(r["date"]).toordinal() >= since]
        flagged = _footprint_flagged(s.state, [r[1] for r in rows])
        price, size = _logs([(r[2], r[3], r[4], r[5]) for r in rows])
        zone = zones[licence_no] = _Zone(since)
        for r, pl, sl in zip(rows, price.tolist(), size.tolist(), strict=True):
            zone.insert(date.fromisoformat(r[0]).toordinal(), r[1], pl, sl, r[1] in flagged)
        return zone


def note_flag(memory: dict[str, Any], parcel_id: str) -> None:
    """An auditor's FOOTPRINT_ANOMALY on a parcel: out of the references from now on."""
    patterns = memory.get("patterns")
    if patterns is None:
        return
    for zone in patterns.zones.values():
        if parcel_id in zone.pids:
            zone.out[zone.pids.index(parcel_id)] = True
            zone.cached = None


class Capacity:
    """CAPACITY_ANOMALY at write time (SPEC 5): the purchase that takes its site's month past
    the registered capacity, or past ten times its usual month."""

    code = CAPACITY

    def check(self, s: Subject) -> list[Flag]:
        row = _judged(s)
        p = s.payload
        site = None if row is None else s.state.get("sites", p["site_id"])
        if row is None or site is None:
            return []
        month = month_of(p["date"])
        known = self._site(s, p["site_id"], p["parcel_id"])
        before = known.months.get(month, 0)
        after = before + row["points"]
        registered = site["capacity_points"]
        limit = float(registered) if registered is not None else known.limit_of(month)
        known.months[month] = after
        if known.limit is not None and month < known.limit[0]:
            known.limit = None  # an earlier month changed
        if limit is None or not before <= limit < after:
            return []
        return [capacity_flag(p["parcel_id"], s.seq, p["site_id"], month_text(month), after,
                              limit, registered is not None)]

    @staticmethod
    def _site(s: Subject, site_id: str, current: str) -> _Site:
        """The site's carats by month, read once per session and kept up to date."""
        sites = _memory(s).sites
        known = sites.get(site_id)
        if known is not None:
            return known
        months: dict[int, int] = {}
        for key, pts in driver_rows(
                s.state.conn, "SELECT SUBSTR(date, 1, 7), SUM(points) FROM parcels WHERE "
                              "site_id = ? AND licence_no IS NOT NULL GROUP BY SUBSTR(date, 1, 7)",
                [site_id]):
            months[month_of(key)] = int(pts)
        for r in _unflushed(s.state, current):
            if r["site_id"] == site_id and r["licence_no"] is not None:
                months[month_of(r["date"])] = months.get(month_of(r["date"]), 0) + r["points"]
        known = sites[site_id] = _Site(months)
        return known


PATTERN_RULES = (Footprint(), Capacity())


# -- rescreen: the whole history -------------------------------------------------------------

# A purchase as rescreen reads it: its seq, its day (days since 1970-01-01), points, stones,
# price in cents, whether priced in USD, its zone and site (small integer codes).
PURCHASE = np.dtype([("seq", np.int64), ("day", np.int64), ("points", np.int64),
                     ("stones", np.int64), ("cents", np.int64), ("usd", np.bool_),
                     ("zone", np.int64), ("site", np.int64)])

DAY_NUMBER = {
    "sqlite": "CAST(julianday(date) - 2440587.5 AS INTEGER)",
    "postgresql": "CAST(date AS DATE) - DATE '1970-01-01'",
}


@dataclass
class History:
    """Every purchase at a registered site, as columns, with the codes' names."""

    rows: np.ndarray
    zones: list[str]
    sites: list[str]

    @classmethod
    def read(cls, conn: sa.Connection) -> History:
        zones: dict[str, int] = {}
        sites: dict[str, int] = {}
        rows = driver_rows(
            conn, f"SELECT seq, {DAY_NUMBER[conn.dialect.name]}, points, stones, "
                  "COALESCE(price_cents, 0), currency, licence_no, site_id FROM parcels "
                  "WHERE site_id IS NOT NULL AND licence_no IS NOT NULL", name="patterns")
        table = np.fromiter(
            ((seq, day, pts, stones, cents, currency == "USD",
              zones.setdefault(zone, len(zones)), sites.setdefault(site, len(sites)))
             for seq, day, pts, stones, cents, currency, zone, site in rows), PURCHASE)
        return cls(table, list(zones), list(sites))


def _flagged(conn: sa.Connection, code: str) -> np.ndarray:
    """The seqs of the purchases whose parcel carries a flag ``code`` (open or resolved)."""
    return np.fromiter((seq for seq, in driver_rows(
        conn, "SELECT p.seq FROM flags f JOIN parcels p ON p.parcel_id = f.subject_id "
              "WHERE f.subject_type = 'parcel' AND f.code = ?", [code])), np.int64)


def _iso(day: int) -> str:
    return str(np.datetime64(day, "D"))


def footprint_history(conn: sa.Connection, history: History) -> list[tuple[int, str, Flag]]:
    """(seq, day, flag with its parcel id to fill) for each purchase a footprint flags anew.

    Each zone's days in date order: a day's reference is the zone's purchases of the 365
    days before, less those flagged, by an earlier rescreen or write or on an earlier day
    of this walk."""
    rows = history.rows
    if not len(rows):
        return []
    done = np.isin(rows["seq"], _flagged(conn, FOOTPRINT))
    order = np.lexsort((rows["seq"], rows["day"], rows["zone"]))
    rows, done = rows[order], done[order]
    price = price_log(rows["cents"], rows["points"], rows["usd"])
    size = size_log(rows["points"], rows["stones"])
    out = []
    bounds = np.flatnonzero(np.diff(rows["zone"])) + 1
    for lo_zone, hi_zone in zip(np.r_[0, bounds], np.r_[bounds, len(rows)], strict=True):
        days = rows["day"][lo_zone:hi_zone]
        zp, zs = price[lo_zone:hi_zone], size[lo_zone:hi_zone]
        out_ref = done[lo_zone:hi_zone].copy()  # out of the reference
        firsts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
        starts = np.searchsorted(days, days[firsts] - WINDOW_DAYS)
        ends = np.r_[firsts[1:], len(days)]
        licence_no = history.zones[int(rows["zone"][lo_zone])]
        for first, end, start in zip(firsts.tolist(), ends.tolist(), starts.tolist(),
                                     strict=True):
            if first - start < MIN_REFERENCE:
                continue
            keep = ~out_ref[start:first]
            pw, sw = zp[start:first][keep], zs[start:first][keep]
            refs = reference(pw[~np.isnan(pw)], sw)
            if refs == (None, None):
                continue
            for k in range(first, end):
                if out_ref[k]:
                    continue
                found = judge(refs, (float(zp[k]), float(zs[k])))
                if found:
                    out_ref[k] = True
                    day = _iso(int(days[k]))
                    out.append((int(rows["seq"][lo_zone + k]), day,
                                footprint_flag("", int(rows["seq"][lo_zone + k]), licence_no,
                                               day, found)))
    return out


def capacity_history(conn: sa.Connection, history: History,
                     capacity: dict[str, int | None]) -> list[tuple[int, str, Flag]]:
    """(seq, day, flag) for each purchase that takes its site's month past its capacity
    (``capacity``: site_id -> registered points a month, or None), and is not flagged yet."""
    rows = history.rows
    if not len(rows):
        return []
    months = rows["day"].astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    order = np.lexsort((rows["seq"], months, rows["site"]))
    rows, months = rows[order], months[order]
    site, pts = rows["site"], rows["points"]
    group = np.r_[True, (site[1:] != site[:-1]) | (months[1:] != months[:-1])]
    after = np.cumsum(pts)
    group_start = np.maximum.accumulate(np.where(group, np.arange(len(rows)), 0))
    after = after - np.r_[0, after][group_start]
    before = after - pts
    # Each site-month's total; a month's limit from the site's 12 months with purchases
    # before it (the rows before it in this order, while they are the same site's).
    first = np.flatnonzero(group)
    totals = np.add.reduceat(pts, first).astype(np.float64)
    g_site = site[first]
    back = np.arange(len(first))[:, None] - np.arange(CAPACITY_MONTHS, 0, -1)
    same = (back >= 0) & (g_site[np.maximum(back, 0)] == g_site[:, None])
    window = np.where(same, totals[np.maximum(back, 0)], 0.0)
    registered = np.array([capacity.get(s) is not None for s in history.sites], dtype=bool)
    cap = np.array([capacity.get(s) or 0 for s in history.sites], dtype=np.float64)
    limit = np.where(registered[g_site], cap[g_site], np.nan)
    judged = ~registered[g_site] & (same.sum(axis=1) >= CAPACITY_MIN_MONTHS)
    # As capacity_limit, for every month at once (the same median of the same numbers).
    limit[judged] = CAPACITY_TIMES * np.nanmedian(np.where(same, window, np.nan)[judged], axis=1)
    row_limit = np.repeat(limit, np.diff(np.r_[first, len(rows)]))
    crossing = (before <= row_limit) & (row_limit < after)
    crossing &= ~np.isin(rows["seq"], _flagged(conn, CAPACITY))
    out = []
    for k in np.flatnonzero(crossing).tolist():
        day = _iso(int(rows["day"][k]))
        site_id = history.sites[int(site[k])]
        out.append((int(rows["seq"][k]), day, capacity_flag(
            "", int(rows["seq"][k]), site_id, month_text(int(months[k]) + 1970 * 12),
            int(after[k]), float(row_limit[k]), bool(registered[site[k]]))))
    return out
