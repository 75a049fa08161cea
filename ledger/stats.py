"""KP statistics (SPEC 6 `stats`): production (first sales) and trade (exports and confirmed
imports) by period and key, read from the projections with SQL ``GROUP BY``.

Carats are summed as integer points and money as integer cents, so every total is exact;
``usd_per_ct`` is the USD value over the carats of the USD-priced purchases (or of the
certificates), rounded half up to the cent. Decisions where SPEC 6 is silent:

- a purchase counts for its declared site's country, in the period of its date; a purchase
  at a site the ledger does not know has no country (null, an empty CSV cell);
- ``flagged_carats`` are the carats of purchases that carry an open flag now (the flags that
  hold a parcel, SPEC 4 ``HOLD``); a resolved flag no longer counts;
- keys: production by ``country``, ``zone`` (the licence zone of the site's licence_no),
  ``site`` or ``buyer``; trade by ``country``, ``hs`` or ``partner`` (an export has no one
  site or buyer; a purchase no HS code or partner); the others are refused;
- trade counts the certificate's carats and value; an export for the exporter's registered
  country in the period of its date (partner: the destination), an import for the
  destination in the period of its confirmation's date (partner: the exporter's country).
  The trade columns ``hs_code`` and ``partner`` are empty unless they are the key.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from statistics import median
from typing import Any

import sqlalchemy as sa

from ledger import projections as pj
from ledger.accounts import Principal
from ledger.db import entries
from ledger.errors import InputError, PermissionDenied, Said
from ledger.i18n import N_

KINDS = ("production", "trade")
KEYS = {"production": ("country", "zone", "site", "buyer"),
        "trade": ("country", "hs", "partner")}
ALL_KEYS = ("country", "zone", "site", "buyer", "hs", "partner")
# SPEC 6: anonymous callers get country level only; finer keys need one of these roles.
FINE_ROLES = frozenset({"officer", "authority", "auditor"})
PRODUCTION_COLUMNS = ("purchases", "carats", "stones", "value_usd", "usd_per_ct",
                      "flagged_carats")
TRADE_COLUMNS = ("period", "country", "flow", "hs_code", "partner", "certificates", "carats",
                 "value_usd", "usd_per_ct")
_PERIOD = re.compile(r"([0-9]{4})(?:-(H[12]|Q[1-4]))?")
_GRAIN_NAMES = {"Y": Said.said(N_("a year")), "H": Said.said(N_("a half-year")),
                "Q": Said.said(N_("a quarter"))}


class QueryError(InputError):
    """A statistics query the ledger does not answer: its period, key or kind (SPEC 6)."""

    rule = "BAD_QUERY"

    def __init__(self, field: str, reason: str, **said: Any) -> None:
        super().__init__(f"{field}: {reason}", field=field, reason=reason, **said)

    @classmethod
    def about(cls, field: str, template: str, values: dict[str, Any]) -> QueryError:
        """The refusal of ``field`` whose reason is ``template % values`` (``template``
        marked with ``N_``), kept for a page to say it in its language (issue 19)."""
        return cls(field, template % values, template=template, params=values)


# -- periods ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    """What ``--period`` asks for: a span of days cut into years, half-years or quarters."""

    grain: str  # Y, H or Q
    first: str | None  # ISO days, both inclusive; None: every year
    last: str | None
    text: str

    @classmethod
    def parse(cls, text: str | None) -> Period:
        if text is None or text.strip() == "":
            return cls("Y", None, None, "")
        text = text.strip()
        start, sep, end = text.partition("..")
        a = _unit(start, text)
        b = _unit(end, text) if sep else a
        if a[0] != b[0]:
            raise QueryError.about("period", N_(
                "%(text)s mixes %(first)s and %(then)s; give both ends of a range the same "
                "form."), {"text": repr(text), "first": _GRAIN_NAMES[a[0]],
                           "then": _GRAIN_NAMES[b[0]]})
        if b[2] < a[1]:
            raise QueryError.about("period", N_("%(text)s ends before it starts."),
                                   {"text": repr(text)})
        return cls(a[0], a[1], b[2], text)

    def label(self, day: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """The period an ISO day falls in, as SQL: ``2008``, ``2008-H1`` or ``2008-Q3``."""
        year, month = sa.func.substr(day, 1, 4), sa.func.substr(day, 6, 2)
        if self.grain == "Y":
            return year
        if self.grain == "H":
            return year.concat("-H").concat(sa.case((month <= "06", "1"), else_="2"))
        return year.concat("-Q").concat(sa.case((month <= "03", "1"), (month <= "06", "2"),
                                                 (month <= "09", "3"), else_="4"))

    def label_of(self, day: str) -> str:
        """The same label for an ISO day in Python."""
        year, month = day[:4], int(day[5:7])
        if self.grain == "Y":
            return year
        return f"{year}-H{1 if month <= 6 else 2}" if self.grain == "H" else \
            f"{year}-Q{(month - 1) // 3 + 1}"

    def covers(self, day: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        if self.first is None or self.last is None:
            return sa.true()
        return sa.and_(day >= self.first, day <= self.last)

    def covers_months(self, month: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        """The same for ``YYYY-MM`` months (a quarter's first): periods are whole quarters."""
        if self.first is None or self.last is None:
            return sa.true()
        return sa.and_(month >= self.first[:7], month <= self.last[:7])

    def holds(self, day: str) -> bool:
        return self.first is None or self.last is None or self.first <= day <= self.last


def _unit(text: str, whole: str) -> tuple[str, str, str]:
    """(grain, first day, last day) of ``2008``, ``2008-H2`` or ``2008-Q3``."""
    found = _PERIOD.fullmatch(text.strip())
    if found is None or not 1900 <= int(found.group(1)) <= 9999:
        raise QueryError.about("period", N_(
            "%(text)s is not a period: give YYYY, YYYY-H1, YYYY-H2 or YYYY-Q1..YYYY-Q4, or a "
            "range FROM..TO of those."), {"text": repr(whole[:40])})
    year, part = int(found.group(1)), found.group(2)
    if part is None:
        return "Y", f"{year:04d}-01-01", f"{year:04d}-12-31"
    n = int(part[1])
    months = 6 if part[0] == "H" else 3
    first = date(year, (n - 1) * months + 1, 1)
    end_month = n * months
    last = date(year + 1, 1, 1) if end_month == 12 else date(year, end_month + 1, 1)
    return part[0], first.isoformat(), date.fromordinal(last.toordinal() - 1).isoformat()


# -- the query ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Query:
    """A parsed `stats` request; constructing one refuses a bad period, key or kind."""

    kind: str = "production"
    by: str = "country"
    period: Period = Period("Y", None, None, "")

    @classmethod
    def parse(cls, period: str | None = None, by: str | None = None,
              kind: str | None = None) -> Query:
        kind = kind or "production"
        by = by or "country"
        if kind not in KINDS:
            raise QueryError.about("kind", N_(
                "%(text)s is not a kind of statistics; use production or trade."),
                {"text": repr(kind[:40])})
        if by not in ALL_KEYS:
            raise QueryError.about("by", N_("%(text)s is not a key; use %(keys)s."),
                                   {"text": repr(by[:40]), "keys": ", ".join(ALL_KEYS)})
        if by not in KEYS[kind]:
            raise QueryError.about("by", N_(
                "%(text)s does not apply to production statistics (a purchase has no HS code "
                "or trade partner); use %(keys)s.") if kind == "production" else N_(
                "%(text)s does not apply to trade statistics (an export is counted by "
                "certificate, not by site, zone or buyer); use %(keys)s."),
                {"text": repr(by), "keys": ", ".join(KEYS[kind])})
        return cls(kind, by, Period.parse(period))

    @property
    def columns(self) -> tuple[str, ...]:
        if self.kind == "trade":
            return TRADE_COLUMNS
        key = () if self.by == "country" else (self.by,)
        return ("period", "country", *key, *PRODUCTION_COLUMNS)


def check_access(principal: Principal | None, query: Query) -> None:
    """SPEC 6: country level for everyone; finer keys for officers, authorities, auditors."""
    if query.by != "country" and (principal is None or principal.role not in FINE_ROLES):
        raise PermissionDenied.said(N_(
            "statistics by %(by)s need a signed-in officer, authority or auditor; an "
            "anonymous caller gets country level only.") if principal is None else N_(
            "statistics by %(by)s need a signed-in officer, authority or auditor; the role "
            "%(role)s gets country level only."),
            {"by": query.by, "role": principal.role if principal else ""}, lead="by: ",
            field="by")


@dataclass(frozen=True)
class Table:
    """The answer: rows of exact figures (carats and money as decimals), in column order."""

    query: Query
    rows: list[dict[str, Any]]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.query.columns

    def to_json(self) -> dict[str, Any]:
        q = self.query
        return {"kind": q.kind, "by": q.by, "period": q.period.text or None,
                "columns": list(self.columns),
                "rows": [{k: float(v) if isinstance(v, Decimal) else v for k, v in r.items()}
                         for r in self.rows]}

    def csv_rows(self) -> list[list[str]]:
        return [[_cell(r[c]) for c in self.columns] for r in self.rows]

    def to_csv(self) -> str:
        """RFC 4180: a header row, CRLF line ends, empty cells for no value."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(self.columns)
        writer.writerows(self.csv_rows())
        return out.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def carats(points: int) -> Decimal:
    return Decimal(points).scaleb(-2)


def per_carat(cents: int, points: int) -> Decimal | None:
    """USD per carat to the cent: (cents / 100) / (points / 100), rounded half up."""
    if points <= 0:
        return None
    return (Decimal(cents) / Decimal(points)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def table(conn: sa.Connection, query: Query) -> Table:
    rows = _production(conn, query) if query.kind == "production" else _trade(conn, query)
    return Table(query, rows)


def _production(conn: sa.Connection, query: Query) -> list[dict[str, Any]]:
    """Purchases (first sales) from their quarterly sums (projections.purchase_quarters): a
    period is whole quarters, so the sums give the exact figures of the purchases themselves."""
    m = pj.purchase_quarters
    label = query.period.label(m.c.month).label("period")
    grain, key = {"zone": ("zone", m.c.licence_no), "site": ("site", m.c.site_id),
                  "buyer": ("buyer", m.c.buyer)}.get(query.by, ("zone", None))
    groups = [label, m.c.country] + ([key.label("key")] if key is not None else [])
    select = sa.select(
        *groups, sa.func.sum(m.c.purchases).label("n"), sa.func.sum(m.c.points).label("points"),
        sa.func.sum(m.c.stones).label("stones"), sa.func.sum(m.c.cents).label("cents"),
        sa.func.sum(sa.case((m.c.usd, m.c.points), else_=0)).label("usd_points"),
    ).where(m.c.grain == grain, query.period.covers_months(m.c.month)).group_by(*groups)
    zone_of = _zones_by_licence(conn) if query.by == "zone" else {}

    def bucket(period: str, country: str | None, k: Any) -> tuple[Any, ...]:
        if key is None:
            return (period, country)
        return (period, country, zone_of.get(k) if query.by == "zone" else k)

    sums: dict[tuple[Any, ...], list[int]] = {}
    for r in conn.execute(select):
        into = sums.setdefault(bucket(r.period, r.country, getattr(r, "key", None)), [0] * 6)
        for i, v in enumerate((r.n, r.points, r.stones, r.cents, r.usd_points)):
            into[i] += int(v)  # licence numbers of no zone fall together
    for period, country, k, pts in _flagged_purchases(conn, query):
        sums.setdefault(bucket(period, country, k), [0] * 6)[5] += pts
    names = query.columns[:len(groups)]
    rows = []
    for k, (n, pts, stones, cents, usd_points, flagged) in sums.items():
        row: dict[str, Any] = dict(zip(names, k, strict=True))
        row.update(purchases=n, carats=carats(pts), stones=stones,
                   value_usd=carats(cents) if usd_points else None,
                   usd_per_ct=per_carat(cents, usd_points), flagged_carats=carats(flagged))
        rows.append(row)
    return _sorted(rows, query)


def _flagged_purchases(conn: sa.Connection,
                       query: Query) -> Iterator[tuple[str, str | None, Any, int]]:
    """(period, country, key, points) of each purchase in the period carrying an open flag
    now (what holds it: SPEC 4 HOLD), read from the few parcels with open flags."""
    p, s, e = pj.parcels, pj.sites, pj.edges
    source = p.outerjoin(s, s.c.site_id == p.c.site_id)
    key: sa.ColumnElement[Any] = sa.null()
    if query.by == "zone":
        key = p.c.licence_no
    elif query.by == "site":
        key = p.c.site_id
    elif query.by == "buyer":  # the buyer is the purchase edge's actor (holders change)
        source = source.join(e, sa.and_(e.c.to_id == p.c.parcel_id, e.c.to_type == "parcel",
                                        e.c.kind == "parcel.purchased"))
        key = e.c.actor
    # the site's country when it was registered at the purchase, as in the monthly sums
    country = sa.case((p.c.licence_no.is_(None), sa.null()), else_=s.c.country)
    select = sa.select(p.c.date, country.label("country"), key.label("key"), p.c.points,
                       p.c.site_id).select_from(
        source).where(sa.text("parcels.open_flags > 0"), query.period.covers(p.c.date))
    for r in conn.execute(select):  # purchases only: a condition on site_id in SQL would
        if r.site_id is not None:   # have SQLite read every purchase by another index
            yield query.period.label_of(r.date), r.country, r.key, int(r.points)


def _zones_by_licence(conn: sa.Connection) -> dict[str, str]:
    """SPEC 5: a site's licence zone is the licence zone with its licence_no (several zones
    sharing one number are named together)."""
    z = pj.zones
    found: dict[str, list[str]] = {}
    for licence_no, zone_id in conn.execute(
            sa.select(z.c.licence_no, z.c.zone_id).where(z.c.zone_type == "licence")
            .order_by(z.c.zone_id)):
        found.setdefault(licence_no, []).append(zone_id)
    return {k: " ".join(v) for k, v in found.items()}


def _sorted(rows: list[dict[str, Any]], query: Query) -> list[dict[str, Any]]:
    names = [c for c in query.columns[:5] if c in ("period", "country", "flow", "hs_code",
                                                  "partner", query.by)]
    return sorted(rows, key=lambda r: tuple(str(r.get(n) or "") for n in names))


def _trade(conn: sa.Connection, query: Query) -> list[dict[str, Any]]:
    x, a = pj.exports, pj.actors
    period = query.period
    hs = x.c.hs_code if query.by == "hs" else sa.null()
    partner = x.c.destination if query.by == "partner" else sa.null()
    label = period.label(x.c.date).label("period")
    groups = [label, a.c.country.label("country"), hs.label("hs_code"),
              partner.label("partner")]
    exported = sa.select(
        *groups, sa.func.count().label("n"), sa.func.sum(x.c.points).label("points"),
        sa.func.sum(x.c.value_cents).label("cents"),
    ).select_from(x.join(a, a.c.actor_id == x.c.exporter)).where(
        period.covers(x.c.date)).group_by(label, a.c.country, *(
            c for c, key in ((x.c.hs_code, "hs"), (x.c.destination, "partner"))
            if query.by == key))  # PostgreSQL groups by no NULL constant
    totals: dict[tuple[Any, ...], list[int]] = {}
    for r in conn.execute(exported):
        totals[(r.period, r.country, "export", r.hs_code, r.partner)] = [
            int(r.n), int(r.points), int(r.cents)]
    # Imports: confirmed certificates, dated by their confirmation (its entry's payload).
    confirmed = sa.select(x.c.destination, x.c.hs_code, a.c.country, x.c.points,
                          x.c.value_cents, entries.c.payload).select_from(
        x.join(a, a.c.actor_id == x.c.exporter).join(entries,
                                                      entries.c.seq == x.c.confirmed_seq))
    for c in conn.execute(confirmed):
        day = json.loads(c.payload)["date"]
        if not period.holds(day):
            continue
        k = (period.label_of(day), c.destination, "import",
             c.hs_code if query.by == "hs" else None, c.country if query.by == "partner" else None)
        sums = totals.setdefault(k, [0, 0, 0])
        sums[0] += 1
        sums[1] += int(c.points)
        sums[2] += int(c.value_cents)
    rows = [{"period": k[0], "country": k[1], "flow": k[2], "hs_code": k[3], "partner": k[4],
             "certificates": n, "carats": carats(pts), "value_usd": carats(cents),
             "usd_per_ct": per_carat(cents, pts)} for k, (n, pts, cents) in totals.items()]
    return _sorted(rows, query)


# -- the counts on the dashboard ------------------------------------------------------------

def _count(conn: sa.Connection, table_: sa.Table, *where: Any) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table_).where(*where))
               .scalar_one())


def counts(conn: sa.Connection) -> dict[str, int]:
    f = pj.flags
    return {
        "actors": _count(conn, pj.actors),
        "zones": _count(conn, pj.zones),
        "sites": _count(conn, pj.sites),
        "parcels": _count(conn, pj.parcels),
        "purchases": _count(conn, pj.parcels, pj.parcels.c.site_id.is_not(None)),
        "exports": _count(conn, pj.exports),
        "flags": _count(conn, f),
        "open_flags": _count(conn, f, f.c.status == "open"),
    }


# -- the Statistics page's series -----------------------------------------------------------

@dataclass(frozen=True)
class ZoneMonth:
    """One month of a licence zone: its purchases' median USD per carat, and the footprint
    band of SPEC 5 that month's purchases were judged against (None: not judged)."""

    month: str  # YYYY-MM
    purchases: int
    usd_per_ct: Decimal | None  # the median of the month's USD purchases
    reference: int  # purchases of reference (the 365 days before the month began)
    low: Decimal | None  # exp(median - 3.5 robust deviations) of ln(USD/ct)
    median: Decimal | None
    high: Decimal | None
    anomalies: int  # the month's purchases flagged FOOTPRINT_ANOMALY

    @property
    def outside(self) -> bool:
        return self.anomalies > 0


def _band(logs: list[float]) -> tuple[Decimal, Decimal, Decimal] | None:
    """SPEC 5's footprint over ``logs`` (ln USD/ct of the reference), by the screening's own
    arithmetic (``ledger.geo.patterns.measure``: at least 30, a MAD of 0 judges nothing):
    exp of the median and of the median +-3.5 robust deviations."""
    import numpy as np

    from ledger.geo.patterns import LIMIT, measure  # numpy and the screening: here only

    ref = measure(np.array(logs, dtype=np.float64))
    if ref is None:
        return None
    low, high = ref.median - LIMIT * ref.scale, ref.median + LIMIT * ref.scale
    return _usd(math.exp(low)), _usd(math.exp(ref.median)), _usd(math.exp(high))


def _usd(x: float) -> Decimal:
    return Decimal(x).quantize(Decimal("0.01"), ROUND_HALF_UP)


def zone_months(conn: sa.Connection, zone_id: str) -> list[ZoneMonth]:
    """Month by month, from the zone's first purchase to its last, at sites of its licence
    (SPEC 5's reference: the purchases of the 365 days before, less those flagged
    FOOTPRINT_ANOMALY; here judged as of each month's first day)."""
    from ledger.geo.patterns import FOOTPRINT, WINDOW_DAYS

    z, p, f = pj.zones, pj.parcels, pj.flags
    licence_no = conn.execute(sa.select(z.c.licence_no).where(
        z.c.zone_id == zone_id, z.c.zone_type == "licence")).scalar_one_or_none()
    if licence_no is None:
        return []
    flagged = sa.exists().where(f.c.subject_type == "parcel", f.c.subject_id == p.c.parcel_id,
                                f.c.code == FOOTPRINT)
    rows = conn.execute(sa.select(p.c.date, p.c.points, p.c.price_cents, p.c.currency,
                                  flagged.label("flagged"))
                        .where(p.c.licence_no == licence_no, p.c.site_id.is_not(None))
                        .order_by(p.c.date)).all()
    if not rows:
        return []
    days = [r.date for r in rows]
    logs = [math.log(r.price_cents / r.points) if r.currency == "USD" and r.price_cents > 0
            else None for r in rows]
    months = []
    year, month = int(days[0][:4]), int(days[0][5:7])
    while f"{year:04d}-{month:02d}" <= days[-1][:7]:
        first = date(year, month, 1)
        start = (first - timedelta(days=WINDOW_DAYS)).isoformat()
        lo, hi = bisect_left(days, start), bisect_left(days, first.isoformat())
        end = bisect_left(days, (date(year + month // 12, month % 12 + 1, 1)).isoformat())
        reference = [x for r, x in zip(rows[lo:hi], logs[lo:hi], strict=True)
                     if x is not None and not r.flagged]
        low, mid, high = _band(reference) or (None, None, None)
        prices = [x for x in logs[hi:end] if x is not None]
        months.append(ZoneMonth(
            f"{year:04d}-{month:02d}", end - hi,
            _usd(math.exp(median(prices))) if prices else None, len(reference), low, mid, high,
            sum(1 for r in rows[hi:end] if r.flagged)))
        year, month = year + month // 12, month % 12 + 1
    return months


@dataclass(frozen=True)
class Half:
    """A country's production (first sales) and exports in one half-year."""

    period: str
    produced: Decimal  # carats
    produced_usd: Decimal | None
    exported: Decimal
    exported_usd: Decimal


def production_and_exports(conn: sa.Connection, country: str) -> list[Half]:
    """SPEC 6's two kinds side by side, per half-year, for one country."""
    every_half = Period("H", None, None, "")
    made = {r["period"]: r for r in table(conn, Query("production", "country", every_half)).rows
            if r["country"] == country}
    # The country's exports alone, summed in SQL: the trade table also reads every country's
    # exports and every confirmation's entry (issue 19: 200 ms of the page at 1,000,000).
    x, a = pj.exports, pj.actors
    label = every_half.label(x.c.date).label("period")
    sent = {r.period: (carats(int(r.points)), carats(int(r.cents))) for r in conn.execute(
        sa.select(label, sa.func.sum(x.c.points).label("points"),
                  sa.func.sum(x.c.value_cents).label("cents"))
        .where(x.c.exporter.in_(sa.select(a.c.actor_id).where(a.c.country == country)))
        .group_by(label))}
    zero = Decimal("0.00")
    return [Half(k, made[k]["carats"] if k in made else zero,
                 made[k]["value_usd"] if k in made else None,
                 sent[k][0] if k in sent else zero, sent[k][1] if k in sent else zero)
            for k in sorted({*made, *sent})]


def countries(conn: sa.Connection) -> list[str]:
    """The countries with registered sites or exporters, for the page's choice."""
    s, a = pj.sites, pj.actors
    found = set(conn.execute(sa.select(s.c.country).distinct()).scalars())
    found |= set(conn.execute(sa.select(a.c.country).distinct()
                              .where(a.c.role == "exporter")).scalars())
    return sorted(found)


def licence_zones(conn: sa.Connection) -> list[str]:
    z = pj.zones
    return list(conn.execute(sa.select(z.c.zone_id).where(z.c.zone_type == "licence")
                             .order_by(z.c.zone_id)).scalars())
