"""The lists users page through (issue 19): flags, holdings, parcels, sites, zones, actors,
entries and KP certificates, each a :class:`ledger.paging.Listing` (its sorts and filters)
and a function that pages it as the caller's :class:`ledger.reads.Scope` may see it.

The scoping is the Scope's, unchanged (``Scope.flags_seen``, ``Scope.seen_parcels``,
the holder's own parcels, an auditor's or one's own entries), so a page of a list never
shows a row the unpaged read would not.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ledger import projections as pj
from ledger.certificates import STATES, state_rank, tainted, tainting
from ledger.db import entries
from ledger.i18n import N_
from ledger.paging import MAX_SIZE, SIZE, Filter, Listing, Order, Page, Position, contains
from ledger.reads import OVERDUE_DAYS, Scope, summary

Where = Callable[[str], sa.ColumnElement[bool]]
Paged = tuple[Page, dict[str, str]]  # the page, and the filters it applied (for its links)


def _dates(column: sa.ColumnElement[str]) -> tuple[Filter, Filter]:
    """From and to a day, both included; ``column`` a day or an entry's ts (RFC 3339)."""
    return (Filter("from", N_("From"), lambda day: column >= day, day=True),
            Filter("to", N_("To"), lambda day: column <= day + "T99", day=True))


def _yes_no(clause: sa.ColumnElement[bool]) -> Where:
    return lambda answer: clause if answer == "yes" else sa.not_(clause)


_f, _p, _s, _z, _a, _e = pj.flags, pj.parcels, pj.sites, pj.zones, pj.actors, entries
_SUBJECTS = ("parcel", "site", "actor", "zone", "export")


def _of_zone(licence_no: sa.ColumnElement[str]) -> Where:
    """Rows whose mining licence is the licence zone's (SPEC 5)."""
    return lambda zone_id: licence_no.in_(sa.select(_z.c.licence_no).where(
        _z.c.zone_id == zone_id, _z.c.licence_no.is_not(None)))


def _text(*columns: sa.ColumnElement[str]) -> Where:
    return lambda text: sa.or_(*(contains(c)(text) for c in columns))


FLAG_LIST = Listing("flags", {
    "raised": Order(N_("first raised first"), (_f.c.seq, _f.c.flag_id)),
    "newest": Order(N_("newest first"), (_f.c.seq, _f.c.flag_id), descending=True),
    "code": Order(N_("code"), (_f.c.code, _f.c.seq, _f.c.flag_id)),
    "subject": Order(N_("subject"), (_f.c.subject_type, _f.c.subject_id, _f.c.seq, _f.c.flag_id)),
}, (
    Filter("status", N_("Status"), lambda v: _f.c.status == v, choices=("open", "resolved")),
    Filter("code", N_("Code"), lambda v: _f.c.code == v.upper()),
    Filter("type", N_("Subject type"), lambda v: _f.c.subject_type == v, choices=_SUBJECTS),
    Filter("subject", N_("Subject id contains"), contains(_f.c.subject_id)),
    Filter("site", N_("Site (and its purchases)"), lambda v: sa.or_(
        sa.and_(_f.c.subject_type == "site", _f.c.subject_id == v),
        sa.and_(_f.c.subject_type == "parcel", _f.c.subject_id.in_(
            sa.select(_p.c.parcel_id).where(_p.c.site_id == v))))),
    *_dates(_e.c.ts),
))

_HELD = (_p.c.parcel_id, _p.c.holder, _p.c.points, _p.c.stones, _p.c.status, _p.c.open_flags,
         _p.c.site_id, _p.c.date, _p.c.seq)
_PARCEL_ORDERS = {
    "newest": Order(N_("newest first"), (_p.c.seq, _p.c.parcel_id), descending=True),
    "date": Order(N_("date"), (_p.c.date, _p.c.parcel_id)),
    "carats": Order(N_("most carats first"), (_p.c.points, _p.c.parcel_id), descending=True),
    "parcel": Order(N_("parcel id"), (_p.c.parcel_id,)),
}
_PARCEL_FILTERS = (
    Filter("q", N_("Parcel id contains"), contains(_p.c.parcel_id)),
    Filter("site", N_("Site"), lambda v: _p.c.site_id == v),
    Filter("zone", N_("Licence zone"), _of_zone(_p.c.licence_no)),
    *_dates(_p.c.date),
    Filter("flagged", N_("On hold"), _yes_no(_p.c.open_flags > 0), choices=("yes", "no")),
)
HOLDING_LIST = Listing("holdings", {
    "held": Order(N_("on hold first, then newest"), (_p.c.open_flags, _p.c.seq, _p.c.parcel_id),
                  descending=True),
    **_PARCEL_ORDERS}, _PARCEL_FILTERS)
PARCEL_LIST = Listing("parcels", _PARCEL_ORDERS, (
    *_PARCEL_FILTERS,
    Filter("status", N_("Status"), lambda v: _p.c.status == v, choices=("active", "spent")),
    Filter("holder", N_("Holder"), lambda v: _p.c.holder == v)))

SITE_LIST = Listing("sites", {
    "site": Order(N_("site id"), (_s.c.site_id,)),
    "name": Order(N_("name"), (_s.c.name, _s.c.site_id)),
    "newest": Order(N_("newest first"), (_s.c.date, _s.c.site_id), descending=True),
}, (
    Filter("q", N_("Id or name contains"), _text(_s.c.site_id, _s.c.name)),
    Filter("country", N_("Country"), lambda v: _s.c.country == v.upper()),
    Filter("zone", N_("Licence zone"), _of_zone(_s.c.licence_no)),
    Filter("licence", N_("Mining licence"), lambda v: _s.c.licence_no == v),
    Filter("status", N_("Status"), lambda v: _s.c.suspended_on.is_(None) if v == "active"
           else _s.c.suspended_on.is_not(None), choices=("active", "suspended")),
    *_dates(_s.c.date),
))

ZONE_LIST = Listing("zones", {
    "zone": Order(N_("zone id"), (_z.c.zone_id,)),
    "name": Order(N_("name"), (sa.func.coalesce(_z.c.name, ""), _z.c.zone_id)),
    "valid_from": Order(N_("valid from"), (_z.c.valid_from, _z.c.zone_id)),
}, (
    Filter("q", N_("Id or name contains"), _text(_z.c.zone_id, _z.c.name)),
    Filter("type", N_("Type"), lambda v: _z.c.zone_type == v, choices=("licence", "risk")),
    Filter("country", N_("Country"), lambda v: _z.c.country == v.upper()),
    Filter("category", N_("Category"), lambda v: _z.c.category == v),
))

ACTOR_LIST = Listing("actors", {
    "actor": Order(N_("actor id"), (_a.c.actor_id,)),
    "name": Order(N_("name"), (_a.c.name, _a.c.actor_id)),
    "role": Order(N_("role"), (_a.c.role, _a.c.actor_id)),
}, (
    Filter("q", N_("Id or name contains"), _text(_a.c.actor_id, _a.c.name)),
    Filter("role", N_("Role"), lambda v: _a.c.role == v,
           choices=("officer", "buyer", "exporter", "auditor", "authority", "admin")),
    Filter("country", N_("Country"), lambda v: _a.c.country == v.upper()),
))

ENTRY_LIST = Listing("entries", {
    "newest": Order(N_("newest first"), (_e.c.seq,), descending=True),
    "oldest": Order(N_("oldest first"), (_e.c.seq,)),
}, (
    Filter("kind", N_("Kind"), lambda v: _e.c.kind == v),
    Filter("actor", N_("Actor"), lambda v: _e.c.actor == v),
    *_dates(_e.c.ts),
))

_x, _rank, _taints = pj.exports, state_rank(), tainting()


def _overdue() -> sa.ColumnElement[bool]:
    """Not confirmed and issued more than OVERDUE_DAYS days before today (UTC), as the
    authority's desk has it."""
    late = (datetime.now(UTC).date() - timedelta(days=OVERDUE_DAYS)).isoformat()
    return sa.and_(_x.c.confirmed_seq.is_(None), _x.c.date < late)


CERTIFICATE_LIST = Listing("certificates", {
    "newest": Order(N_("newest first"), (_x.c.date, _x.c.certificate_no), descending=True),
    "date": Order(N_("oldest first"), (_x.c.date, _x.c.certificate_no)),
    "certificate": Order(N_("certificate no"), (_x.c.certificate_no,)),
    "carats": Order(N_("most carats first"), (_x.c.points, _x.c.certificate_no), descending=True),
    "status": Order(N_("status (declared first)"), (_rank, _x.c.date, _x.c.certificate_no)),
}, (
    Filter("q", N_("Certificate no contains"), contains(_x.c.certificate_no)),
    Filter("status", N_("Status"), lambda v: _rank == STATES.index(v), choices=STATES),
    Filter("exporter", N_("Exporter"), lambda v: _x.c.exporter == v),
    Filter("origin", N_("Leaving (country)"), lambda v: _x.c.exporter.in_(
        sa.select(_a.c.actor_id).where(_a.c.country == v.upper()))),
    Filter("destination", N_("Reaching (country)"), lambda v: _x.c.destination == v.upper()),
    *_dates(_x.c.date),
    # Among the few tainted ones, not each row's count: at 1M events, where none is
    # tainted, that walked all 74,002 exports (exporter's page 314 ms, now 7 ms).
    Filter("tainted", N_("Tainted"), _yes_no(_x.c.certificate_no.in_(tainted())),
           choices=("yes", "no")),
    Filter("overdue", N_("Overdue"), lambda v: _yes_no(_overdue())(v), choices=("yes", "no")),
))


def certificate_page(scope: Scope, args: Mapping[str, str], order: str | None = None,
                     position: Position | None = None, size: int = SIZE) -> Paged:
    """A page of the KP certificates the caller may read (:meth:`Scope.exports_seen`: an
    exporter its own, an authority those from and to its country, an auditor all), each
    with its state, whether an open flag taints it and whether it is overdue."""
    late = (datetime.now(UTC).date() - timedelta(days=OVERDUE_DAYS)).isoformat()
    query = sa.select(_x.c.certificate_no, _x.c.exporter, _x.c.destination, _x.c.date,
                      _x.c.expires, _x.c.points, _x.c.value_cents, _rank.label("rank"),
                      _taints.label("tainting")).where(*scope.exports_seen())
    page, used = _paged(scope, CERTIFICATE_LIST, query, args, order, position, size)
    for r in page.rows:
        r["carats"], r["value_usd"] = r.pop("points") / 100, r.pop("value_cents") / 100
        r["state"], r["tainted"] = STATES[r.pop("rank")], bool(r.pop("tainting"))
        r["overdue"] = r["state"] in ("declared", "validated") and r["date"] < late
    return page, used


def _paged(scope: Scope, listing: Listing, query: sa.Select[Any], args: Mapping[str, str],
           order: str | None, position: Position | None, size: int) -> Paged:
    clauses, used = listing.where(args)
    return listing.page(scope.conn, query.where(*clauses), listing.order_of(order), position,
                        size), used


BUSY = 2000  # custody steps past which an actor's lists test each row (Scope.sees_parcel)


def _busy(scope: Scope) -> bool:
    """Whether the caller's parcels are better found row by row, in a list's order, than
    gathered first: when it has taken many custody steps (so its rows are dense)."""
    e = pj.edges
    steps = sa.select(e.c.id).where(e.c.actor == scope.actor).limit(BUSY).subquery()
    return scope.conn.execute(sa.select(sa.func.count()).select_from(steps)).scalar_one() >= BUSY


def flag_page(scope: Scope, args: Mapping[str, str], order: str | None = None,
              position: Position | None = None, size: int = SIZE,
              by_parcel: bool = False, per_row: bool | None = None) -> Paged:
    """A page of the flags the caller may read (as :meth:`Scope.flags`), each with the
    ts of the entry that raised it; ``by_parcel``: the flags on parcels, by parcel;
    ``per_row``: test each flag's parcel (:meth:`Scope.sees_parcel`; None: for a busy
    actor)."""
    if per_row is None:
        per_row = not scope.sees_all and _busy(scope)
    query = (sa.select(_f.c.flag_id, _f.c.seq, _f.c.code, _f.c.subject_type, _f.c.subject_id,
                       _f.c.detail, _f.c.status, _e.c.ts.label("raised"))
             .join(_e, _e.c.seq == _f.c.seq)
             .where(*scope.flags_seen(per_row=per_row)))
    if by_parcel:
        query, order = query.where(_f.c.subject_type == "parcel"), "subject"
    return _paged(scope, FLAG_LIST, query, args, order, position, size)


def _carats(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        r["carats"] = r["points"] / 100


def holding_page(scope: Scope, args: Mapping[str, str], order: str | None = None,
                 position: Position | None = None, size: int = SIZE) -> Paged:
    """A page of the parcels the caller holds now (active), as ``reads.holdings``."""
    query = sa.select(*_HELD).where(_p.c.holder == scope.actor, _p.c.status == "active")
    page, used = _paged(scope, HOLDING_LIST, query, args, order, position, size)
    _carats(page.rows)
    return page, used


def held_now(scope: Scope, parcel_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Those of ``parcel_ids`` the caller holds now (active), in the order given: what a
    parcel picker shows as chosen."""
    wanted = [i for i in dict.fromkeys(parcel_ids) if i and "\x00" not in i][:MAX_SIZE]
    rows = {r.parcel_id: dict(r._mapping) for r in scope.conn.execute(sa.select(*_HELD).where(
        _p.c.parcel_id.in_(wanted), _p.c.holder == scope.actor, _p.c.status == "active"))}
    found = [rows[i] for i in wanted if i in rows]
    _carats(found)
    return found


def parcel_page(scope: Scope, args: Mapping[str, str], order: str | None = None,
                position: Position | None = None, size: int = SIZE) -> Paged:
    """A page of the parcels the caller may see (an auditor: all; others: held or once
    held, :meth:`Scope.seen_parcels`)."""
    query = sa.select(*_HELD)
    if not scope.sees_all and _busy(scope):
        query = query.where(scope.sees_parcel(_p.c.parcel_id, _p.c.holder))
    elif (seen := scope.seen_parcels()) is not None:
        query = query.where(_p.c.parcel_id.in_(seen))
    page, used = _paged(scope, PARCEL_LIST, query, args, order, position, size)
    _carats(page.rows)
    return page, used


def site_page(scope: Scope, args: Mapping[str, str], order: str | None = None,
              position: Position | None = None, size: int = SIZE) -> Paged:
    """A page of the registered sites (public to every account, as ``reads.sites``)."""
    query = sa.select(_s.c.site_id, _s.c.name, _s.c.licence_no, _s.c.operator, _s.c.country,
                      _s.c.date, _s.c.suspended_on)
    return _paged(scope, SITE_LIST, query, args, order, position, size)


def zone_page(scope: Scope, args: Mapping[str, str], order: str | None = None,
              position: Position | None = None, size: int = SIZE) -> Paged:
    """A page of the zones and risk areas (public, as ``reads.zones``), without geometry."""
    query = sa.select(_z.c.zone_id, _z.c.zone_type, _z.c.name, _z.c.licence_no, _z.c.country,
                      _z.c.category, _z.c.valid_from, _z.c.valid_to, _z.c.retired_to)
    return _paged(scope, ZONE_LIST, query, args, order, position, size)


def actor_page(scope: Scope, args: Mapping[str, str], order: str | None = None,
               position: Position | None = None, size: int = SIZE) -> Paged:
    """A page of the registry of actors (public, as ``reads.actors``)."""
    query = sa.select(_a.c.actor_id, _a.c.name, _a.c.role, _a.c.country, _a.c.licence_no,
                      _a.c.licence_valid_from, _a.c.licence_valid_to, _a.c.revoked_on)
    return _paged(scope, ACTOR_LIST, query, args, order, position, size)


def entry_page(scope: Scope, args: Mapping[str, str], order: str | None = None,
               position: Position | None = None, size: int = SIZE) -> Paged:
    """A page of the log's entries with what each is about: an auditor's of everyone,
    others' their own (as ``reads.recent_entries``)."""
    query = sa.select(_e.c.seq, _e.c.ts, _e.c.kind, _e.c.actor, _e.c.payload)
    if not scope.sees_all:
        query = query.where(_e.c.actor == scope.actor)
    page, used = _paged(scope, ENTRY_LIST, query, args, order, position, size)
    for r in page.rows:
        r["about"] = summary(r["kind"], json.loads(r.pop("payload")))
    return page, used


def holding_totals(scope: Scope) -> dict[str, Any]:
    """How many parcels the caller holds now, their carats, and how many are on hold."""
    row = scope.conn.execute(sa.select(
        sa.func.count(), sa.func.coalesce(sa.func.sum(_p.c.points), 0),
        sa.func.count().filter(_p.c.open_flags > 0)).where(
        _p.c.holder == scope.actor, _p.c.status == "active")).one()
    return {"parcels": row[0], "carats": row[1] / 100, "on_hold": row[2]}


def holds(scope: Scope, parcel_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The open flags on those of ``parcel_ids`` the caller holds now (a holdings page's
    holds: SPEC 4 HOLD, what keeps them from moving)."""
    wanted = list(dict.fromkeys(parcel_ids))[:MAX_SIZE]
    mine = sa.select(_p.c.parcel_id).where(_p.c.parcel_id.in_(wanted),
                                           _p.c.holder == scope.actor)
    held = list(scope.conn.execute(mine).scalars())
    query = (sa.select(_f).where(_f.c.subject_type == "parcel", _f.c.subject_id.in_(held),
                                 _f.c.status == "open")
             .order_by(_f.c.subject_id, _f.c.seq, _f.c.flag_id))
    return [dict(r._mapping) for r in scope.conn.execute(query)]


def open_flags(scope: Scope, first: int = 10) -> tuple[list[dict[str, Any]], int]:
    """The first ``first`` open flags the caller may read, in the order raised, and how
    many there are (a dashboard's card), without reading them all. Open flags are few
    beside all the parcels an actor ever held: each one's parcel is tested."""
    page, _ = flag_page(scope, {"status": "open"}, "raised", None, first, per_row=True)
    seen = scope.flags_seen(per_row=True)
    count = scope.conn.execute(sa.select(sa.func.count()).select_from(_f).where(
        _f.c.status == "open", *seen)).scalar_one()
    return page.rows, count
