"""What users are shown: every read behind the API and the pages, through the caller's
:class:`Scope` (the principal's role decides what it may see, SPEC 1 and 6).

The API routes and the pages call these and nothing else, so a page cannot show what
the API refuses. Plain queries that decide nothing themselves; who may open an area at
all is ``ledger.accounts.READS``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ledger import projections as pj
from ledger import stats
from ledger.accounts import READ_ALL, Principal, Token, User
from ledger.certificates import NOT_TAINT
from ledger.custody.trace import Node, Trace, trace
from ledger.db import entries
from ledger.errors import NotFound, PermissionDenied
from ledger.geo.maps import feature_collection
from ledger.i18n import N_

RECENT = 10
# What officers register: the flags on these are an officer's to read (SPEC 1).
REGISTRATIONS = ("site", "actor", "zone")
FOUND = 25
# The id an entry's payload is about, by kind (for one-line summaries).
_ABOUT = ("certificate_no", "parcel_id", "parent_id", "site_id", "zone_id", "actor_id",
          "flag_id")


@dataclass(frozen=True)
class Scope:
    """Reads of the projections as one principal may see them."""

    conn: sa.Connection
    principal: Principal | None  # None: an anonymous caller, who sees the public reads only

    @property
    def sees_all(self) -> bool:
        return self.principal is not None and self.principal.role in READ_ALL

    @property
    def actor(self) -> str:
        """The actor the caller acts as ("" for an anonymous caller, which holds nothing)."""
        return "" if self.principal is None else self.principal.actor_id

    def held(self, parcel_id: str) -> bool:
        """The parcel is held by the actor now, or was (it is on one of its custody steps)."""
        # The row test of the lists, each EXISTS on its own index: one query with the two
        # ends OR-ed read every step the actor took (issue 19: 310 ms at 1,000,000 events).
        parcel = sa.literal(parcel_id, pj.parcels.c.parcel_id.type)
        return bool(self.conn.execute(sa.select(self.sees_parcel(parcel))).scalar())

    def took_custody(self) -> bool:
        """The caller holds a parcel or took a custody step, so it may see some parcels."""
        me, p, e = self.actor, pj.parcels, pj.edges
        return bool(self.conn.execute(sa.select(sa.or_(
            sa.exists().where(p.c.holder == me), sa.exists().where(e.c.actor == me)))).scalar())

    def seen_parcels(self) -> sa.CompoundSelect[Any] | None:
        """The ids of the parcels the caller may see, as a subquery (None: every parcel)."""
        return None if self.sees_all else self._held_parcels()

    @property
    def is_officer(self) -> bool:
        return self.principal is not None and self.principal.role == "officer"

    def sees_site_flags(self) -> bool:
        """Flags on sites are in an auditor's and an officer's `GET /flags`, in no buyer's or
        exporter's."""
        return self.sees_all or self.is_officer

    def check_parcel(self, parcel_id: str) -> None:
        # Same answer whether the parcel exists or not: a scoped caller learns nothing else.
        if not self.sees_all and not self.held(parcel_id):
            raise PermissionDenied.said(
                N_("'%(parcel_id)s' is not a parcel that '%(actor)s' holds or held."),
                {"parcel_id": parcel_id, "actor": self.actor}, lead="parcel_id: ",
                field="parcel_id")

    def parcel(self, parcel_id: str) -> dict[str, Any]:
        self.check_parcel(parcel_id)
        row = self.conn.execute(
            sa.select(pj.parcels).where(pj.parcels.c.parcel_id == parcel_id)).first()
        if row is None:
            raise NotFound.said(N_("there is no parcel '%(value)s'."), {"value": parcel_id},
                                lead="parcel_id: ", field="parcel_id")
        return {
            "parcel_id": row.parcel_id, "holder": row.holder, "carats": row.points / 100,
            "stones": row.stones, "status": row.status, "on_hold": row.open_flags > 0,
            "open_flags": row.open_flags, "site_id": row.site_id, "date": row.date,
            "seq": row.seq, "spent_seq": row.spent_seq,
            "flags": self.flags(subject=("parcel", parcel_id)),
            # SPEC 4-5: a purchase's sieve classes and the hashes of its evidence
            "sieve": json.loads(row.sieve) if row.sieve else None,
            "evidence": self._evidence(row.seq) if row.site_id is not None else [],
        }

    def _evidence(self, seq: int) -> list[dict[str, str]]:
        """The evidence a purchase recorded ({sha256, media_type, name}), from its entry."""
        text = self.conn.execute(sa.select(entries.c.payload).where(entries.c.seq == seq)).scalar()
        evidence: list[dict[str, str]] = json.loads(text).get("evidence", []) if text else []
        return evidence

    def custody(self, parcel_id: str, direction: str) -> Trace:
        self.parcel(parcel_id)  # visibility, then existence
        return trace(self.conn, parcel_id, direction)

    def flags(self, status: str | None = None,
              subject: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """Flags in the shape of `flags --json`; a buyer's or exporter's are those on its
        parcels (held or once held) and on its exports, an officer's those on what officers
        register (sites, actors, zones)."""
        f = pj.flags
        query = sa.select(f).order_by(f.c.seq)
        if status is not None:
            query = query.where(f.c.status == status)
        if subject is not None:
            query = query.where(f.c.subject_type == subject[0], f.c.subject_id == subject[1])
        else:
            query = query.where(*self.flags_seen())
        return [{"flag_id": r.flag_id, "seq": r.seq, "code": r.code,
                 "subject": {"type": r.subject_type, "id": r.subject_id}, "detail": r.detail,
                 "status": r.status} for r in self.conn.execute(query)]

    def flags_seen(self, per_row: bool = False) -> list[sa.ColumnElement[bool]]:
        """The clauses that keep the flags the caller may read in `flags` (none: all);
        ``per_row``: parcels tested row by row (:meth:`sees_parcel`)."""
        f = pj.flags
        if self.is_officer:
            return [f.c.subject_type.in_(REGISTRATIONS)]
        if self.sees_all:
            return []
        mine = pj.exports.c.exporter == self.actor
        parcels = (self.sees_parcel(f.c.subject_id) if per_row
                   else f.c.subject_id.in_(self._held_parcels()))
        return [sa.or_(
            sa.and_(f.c.subject_type == "parcel", parcels),
            sa.and_(f.c.subject_type == "export", f.c.subject_id.in_(
                sa.select(pj.exports.c.certificate_no).where(mine))))]

    def sees_parcel(self, parcel_id: sa.ColumnElement[str],
                    holder: sa.ColumnElement[str] | None = None) -> sa.ColumnElement[bool]:
        """The parcels of :meth:`seen_parcels` (held now, or on a custody step of the
        caller's) as a test of each row, so that a page read in an index's order stops after
        its rows instead of first gathering all the caller ever held (issue 19); ``holder``:
        the row's holder, when the row is a parcel's."""
        me, p, e = self.actor, pj.parcels, pj.edges
        held = (holder == me if holder is not None else
                sa.exists().where(p.c.parcel_id == parcel_id, p.c.holder == me))
        return sa.or_(
            held,
            sa.exists().where(e.c.from_id == parcel_id, e.c.actor == me,
                              e.c.from_type == "parcel"),
            sa.exists().where(e.c.to_id == parcel_id, e.c.to_type == "parcel", e.c.actor == me))

    def _held_parcels(self) -> sa.CompoundSelect[Any]:
        me, p, e = self.actor, pj.parcels, pj.edges
        return sa.union(
            sa.select(p.c.parcel_id).where(p.c.holder == me),
            sa.select(e.c.from_id).where(e.c.actor == me, e.c.from_type == "parcel"),
            sa.select(e.c.to_id).where(e.c.actor == me, e.c.to_type == "parcel"),
        )

    def check_export(self, certificate_no: str) -> None:
        """An export (its page, print and bundle) is the auditor's, its exporter's, and the
        authorities' at either end of it: the exporter's country's, which validates it, and
        the destination's, which confirms its import (SPEC 1)."""
        if self.sees_all:
            return  # an unknown certificate is then "not found", not refused
        x = pj.exports
        if self.conn.execute(sa.select(x.c.certificate_no).where(
                x.c.certificate_no == certificate_no, *self.exports_seen())).first():
            return
        raise PermissionDenied.said(
            N_("'%(certificate_no)s' is not an export of '%(actor)s' nor one from or to its "
               "country.") if self.is_authority else
            N_("'%(certificate_no)s' is not an export of '%(actor)s'."),
            {"certificate_no": certificate_no, "actor": self.actor}, lead="certificate_no: ",
            field="certificate_no")

    def exports_seen(self) -> list[sa.ColumnElement[bool]]:
        """Clauses on ``projections.exports`` keeping those the caller may read (as
        :meth:`check_export` judges one; the certificates list pages through them): all for
        an auditor, its own for an exporter, from or to its country for an authority."""
        if self.sees_all:
            return []
        x, a = pj.exports, pj.actors
        mine = x.c.exporter == self.actor
        if not self.is_authority:
            return [mine]
        country = self.country()
        return [sa.or_(mine, x.c.destination == country, x.c.exporter.in_(
            sa.select(a.c.actor_id).where(a.c.country == country)))]

    @property
    def is_authority(self) -> bool:
        return self.principal is not None and self.principal.role == "authority"

    def country(self) -> str | None:
        """The registered country of the caller's actor (None: anonymous or unregistered)."""
        return self.conn.execute(sa.select(pj.actors.c.country).where(
            pj.actors.c.actor_id == self.actor)).scalar_one_or_none()

    def check_destination(self, destination: str) -> None:
        """SPEC 1: an authority hears of the imports into its own country; an auditor of
        every country's."""
        if self.sees_all:
            return
        mine = self.country() if self.is_authority else None
        if mine != destination:
            raise PermissionDenied.said(
                N_("the authority of %(country)s may not read the flags of certificates going "
                   "to %(destination)s; only that country's authority or an auditor may."),
                {"country": mine or "?", "destination": destination}, lead="destination: ",
                rule="JURISDICTION", field="destination")


def _rows(scope: Scope, query: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in scope.conn.execute(query)]


# What a record page says of an id that names nothing, by what was asked for (issue 19).
_MISSING = {"site": N_("there is no site '%(value)s'."),
            "zone": N_("there is no zone '%(value)s'."),
            "actor": N_("there is no actor '%(value)s'."),
            "export certificate": N_("there is no export certificate '%(value)s'."),
            "flag": N_("there is no flag '%(value)s'.")}


def _one(scope: Scope, table: sa.Table, key: str, value: str, what: str
         ) -> dict[str, Any]:
    row = scope.conn.execute(sa.select(table).where(table.c[key] == value)).first()
    if row is None:
        raise NotFound.said(_MISSING[what], {"value": value}, lead=f"{key}: ", field=key)
    return dict(row._mapping)


def summary(kind: str, payload: dict[str, Any]) -> str:
    """What an entry is about, in a few words."""
    if kind == "parcel.merged":
        return f"{', '.join(payload['parent_ids'])} → {payload['child']['parcel_id']}"
    if kind == "flag.raised":
        return f"{payload['flag_id']} {payload['code']} on {payload['subject']['id']}"
    about = next((payload[k] for k in _ABOUT if k in payload), "")
    if kind == "parcel.transferred":
        return f"{about} → {payload['to_actor']}"
    return str(about)


def recent_entries(scope: Scope, actor: str | None = None,
                   limit: int = RECENT) -> list[dict[str, Any]]:
    """The latest entries: an auditor's of everyone (or of ``actor``), others' their own."""
    e = entries
    query = sa.select(e.c.seq, e.c.ts, e.c.kind, e.c.actor, e.c.payload)
    if not scope.sees_all:
        actor = scope.actor
    if actor is not None:
        query = query.where(e.c.actor == actor)
    rows = scope.conn.execute(query.order_by(e.c.seq.desc()).limit(limit))
    return [{"seq": r.seq, "ts": r.ts, "kind": r.kind, "actor": r.actor,
             "about": summary(r.kind, json.loads(r.payload))} for r in rows]


def holdings(scope: Scope) -> list[dict[str, Any]]:
    """The parcels the caller holds now (active): those on hold first, then the newest."""
    actor, p = scope.actor, pj.parcels
    rows = _rows(scope, sa.select(p).where(p.c.holder == actor, p.c.status == "active")
                 .order_by(p.c.open_flags.desc(), p.c.seq.desc()))
    for r in rows:
        r["carats"] = r["points"] / 100
    return rows


def parcel_ids(scope: Scope) -> list[str]:
    actor, p = scope.actor, pj.parcels
    return list(scope.conn.execute(sa.select(p.c.parcel_id).where(
        p.c.holder == actor, p.c.status == "active").order_by(p.c.seq)).scalars())


def exports_of(scope: Scope, limit: int = RECENT) -> list[dict[str, Any]]:
    """The caller's latest exports."""
    exporter, x = scope.actor, pj.exports
    rows = _rows(scope, sa.select(x).where(x.c.exporter == exporter)
                 .order_by(x.c.seq.desc()).limit(limit))
    for r in rows:
        r["carats"], r["value_usd"] = r["points"] / 100, r["value_cents"] / 100
    return rows


def suggestions(scope: Scope, parcels: bool = True) -> dict[str, list[str]]:
    """Ids a form offers while typing: sites, the caller's parcels (unless ``parcels`` is
    false: the forms with a parcel picker), registered actors."""
    return {
        "sites": list(scope.conn.execute(sa.select(pj.sites.c.site_id).where(
            pj.sites.c.suspended_on.is_(None)).order_by(pj.sites.c.site_id)).scalars()),
        "parcels": parcel_ids(scope) if parcels else [],
        "actors": list(scope.conn.execute(sa.select(pj.actors.c.actor_id).where(
            pj.actors.c.role.in_(("buyer", "exporter"))).order_by(pj.actors.c.actor_id))
            .scalars()),
    }


def flags_on(scope: Scope, subject_type: str, subject_id: str) -> list[dict[str, Any]]:
    f = pj.flags
    return _rows(scope, sa.select(f).where(f.c.subject_type == subject_type,
                                          f.c.subject_id == subject_id).order_by(f.c.seq))


SITE_COUNTED = 1000  # a scoped caller's purchases at a site counted up to this, then "1,000+"


def site(scope: Scope, site_id: str) -> dict[str, Any]:
    """A site, its own flags (None when the caller may not read them), and the purchases
    declared at it that the caller may see (flagged ones listed)."""
    row = _one(scope, pj.sites, "site_id", site_id, "site")
    p = pj.parcels
    row["flags"] = flags_on(scope, "site", site_id) if scope.sees_site_flags() else None
    here = [p.c.site_id == site_id]
    if scope.sees_all:
        row["purchases"] = scope.conn.execute(
            sa.select(sa.func.count()).where(*here)).scalar_one()
    elif not scope.took_custody():
        row["purchases"], row["flagged"] = 0, []  # an officer's, an authority's: none to see
    else:  # row by row (a busy buyer held far more parcels than a site sold), up to a bound
        here.append(scope.sees_parcel(p.c.parcel_id, p.c.holder))
        counted = scope.conn.execute(sa.select(sa.func.count()).select_from(
            sa.select(p.c.parcel_id).where(*here).limit(SITE_COUNTED + 1).subquery())
        ).scalar_one()
        row["purchases"] = f"{SITE_COUNTED:,}+" if counted > SITE_COUNTED else counted
    if "flagged" not in row:
        row["flagged"] = list(scope.conn.execute(sa.select(p.c.parcel_id).where(
            *here, p.c.open_flags > 0).order_by(p.c.seq)).scalars())
    row["zones"] = list(scope.conn.execute(sa.select(pj.zones.c.zone_id).where(
        pj.zones.c.licence_no == row["licence_no"], pj.zones.c.zone_type == "licence")
        .order_by(pj.zones.c.zone_id)).scalars())
    return row


def zone(scope: Scope, zone_id: str) -> dict[str, Any]:
    """A zone, the sites of its licence, its versions (SPEC 5) and its licence's renewals."""
    row = _one(scope, pj.zones, "zone_id", zone_id, "zone")
    v = pj.zone_versions
    row["versions"] = _rows(scope, sa.select(v.c.effective, v.c.seq, v.c.valid_from, v.c.valid_to,
                                             v.c.sets_valid_to,
                                             v.c.geometry.is_not(None).label("redrawn"))
                            .where(v.c.zone_id == zone_id).order_by(v.c.seq))
    row["renewal_windows"] = json.loads(row["renewals"] or "[]")
    row["revocation_days"] = json.loads(row["revocations"] or "[]")
    s = pj.sites
    row["sites"] = [] if row["licence_no"] is None else list(scope.conn.execute(
        sa.select(s.c.site_id).where(s.c.licence_no == row["licence_no"])
        .order_by(s.c.site_id)).scalars())
    return row


def actors(scope: Scope) -> list[dict[str, Any]]:
    """The registry of actors (SPEC 4 `actor.registered`), open to every account: who is
    licensed, as what, where and until when; never what anyone holds."""
    a = pj.actors
    return _rows(scope, sa.select(a).order_by(a.c.actor_id))


def actor(scope: Scope, actor_id: str) -> dict[str, Any]:
    """An actor of the registry; what it holds only for an auditor or the actor itself."""
    row = _one(scope, pj.actors, "actor_id", actor_id, "actor")
    row["held"] = row["on_hold"] = None
    if not (scope.sees_all or actor_id == scope.actor):
        return row
    p = pj.parcels
    row["held"] = scope.conn.execute(sa.select(sa.func.count()).where(
        p.c.holder == actor_id, p.c.status == "active")).scalar_one()
    row["on_hold"] = scope.conn.execute(sa.select(sa.func.count()).where(
        p.c.holder == actor_id, p.c.status == "active", p.c.open_flags > 0)).scalar_one()
    return row


def export(scope: Scope, certificate_no: str) -> dict[str, Any]:
    row = _one(scope, pj.exports, "certificate_no", certificate_no, "export certificate")
    row["carats"], row["value_usd"] = row["points"] / 100, row["value_cents"] / 100
    row["flags"] = flags_on(scope, "export", certificate_no)
    return row


def export_custody(scope: Scope, certificate_no: str) -> Trace:
    """An export's custody graph back to its sites (after :meth:`Scope.check_export`)."""
    return trace(scope.conn, certificate_no, "backward")


FEED_SIZE = 200  # the latest flags a feed carries


FEED_BATCH = 50  # flags followed forward in the first batch (newest change first); doubled
# for each next one: the feed is often full after a few, and a walk forward from a site
# flag covers every parcel bought there


def _changed() -> sa.ColumnElement[int]:
    """A flag's last change: its resolution's entry, else its own (one flag each)."""
    return sa.func.coalesce(pj.flags.c.resolved_seq, pj.flags.c.seq)


def _reached(newest: int, oldest: int) -> sa.CTE:
    """Every node on a custody path forward from the subjects of the flags last changed
    between entries ``oldest`` and ``newest``, as (flag_id,
    node_type, node_id): the parcel, site or export flagged, the parcels made from it
    (through transfers, splits and merges) and the exports that shipped them."""
    f, e = pj.flags, pj.edges
    # PostgreSQL: the recursive term's columns must have the types of the first term's.
    # A flagged parcel or site that no step leaves (a parcel on hold) starts no walk.
    leaves = sa.exists().where(e.c.from_id == f.c.subject_id, e.c.from_type == f.c.subject_type)
    reach = sa.select(f.c.flag_id, sa.cast(f.c.subject_type, e.c.to_type.type).label("node_type"),
                      sa.cast(f.c.subject_id, e.c.to_id.type).label("node_id")).where(
        _changed().between(oldest, newest), f.c.subject_type.in_(("parcel", "site", "export")),
        sa.or_(f.c.subject_type == "export", leaves)
    ).cte("reach", recursive=True)
    step = sa.select(reach.c.flag_id, e.c.to_type, e.c.to_id).join(
        e, sa.and_(e.c.from_id == reach.c.node_id, e.c.from_type == reach.c.node_type))
    return reach.union(step)  # UNION, not ALL: a transfer's edge (a parcel to itself) ends


def flag_feed(scope: Scope, destination: str, limit: int = FEED_SIZE) -> list[dict[str, Any]]:
    """The flags that touch the certificates going to ``destination`` (issue 18): on the
    export itself, and on any parcel or site on its custody path, raised before or after
    the export; one item per flag and certificate, newest change (raised or resolved) first,
    each with when it was raised and resolved (the entries' ts).

    Walked forward from the flags, newest change first, until the feed is full: the flags
    are few beside the custody paths of every export to a country, which the walk backward
    from those exports read whole (issue 19: 1.0 s at 100,000 events for Belgium's)."""
    scope.check_destination(destination)
    f, x = pj.flags, pj.exports
    raised, resolved = entries.alias("raised"), entries.alias("resolved")
    changed = _changed()
    newest = list(scope.conn.execute(sa.select(changed).where(
        f.c.subject_type.in_(("parcel", "site", "export"))).order_by(changed.desc())).scalars())
    items: list[dict[str, Any]] = []
    done, batch = 0, FEED_BATCH
    while done < len(newest):  # a range of changes a batch: no list of ids to send
        part = newest[done:done + batch]
        reach = _reached(part[0], part[-1])
        done, batch = done + batch, batch * 2
        query = (sa.select(reach.c.node_id.label("certificate_no"), x.c.exporter, x.c.importer,
                           x.c.date, f.c.flag_id, f.c.code, f.c.subject_type, f.c.subject_id,
                           f.c.detail, f.c.status, f.c.seq, f.c.resolved_seq, f.c.resolution,
                           raised.c.ts.label("raised"), resolved.c.ts.label("resolved"))
                 .join(x, sa.and_(reach.c.node_type == "export",
                                  x.c.certificate_no == reach.c.node_id))
                 .join(f, f.c.flag_id == reach.c.flag_id)
                 .join(raised, raised.c.seq == f.c.seq)
                 .outerjoin(resolved, resolved.c.seq == f.c.resolved_seq)
                 .where(x.c.destination == destination)
                 .order_by(changed.desc(), reach.c.node_id).limit(limit - len(items)))
        items += _rows(scope, query)  # each batch's changes are older than the one before's
        if len(items) >= limit:
            break
    return items


OVERDUE_DAYS = 30  # issue 18: `certificates --unconfirmed --older-than 30`


def authority_desk(scope: Scope, today: date | None = None) -> dict[str, Any]:
    """An authority's dashboard (SPEC 6 `certificates`): how many certificates leaving its
    country wait for its validation, how many reaching it are ``overdue`` (no confirmation,
    issued more than OVERDUE_DAYS days ago), how many of either an open flag taints; and the
    flags touching those reaching it (:func:`flag_feed`). Counted in SQL: the certificates
    themselves are listed a page at a time on /certificates (issue 19)."""
    country = scope.country() or ""
    late = ((today or datetime.now(UTC).date()) - timedelta(days=OVERDUE_DAYS)).isoformat()
    x, f = pj.exports, pj.flags
    leaving = x.c.exporter.in_(sa.select(pj.actors.c.actor_id).where(
        pj.actors.c.country == country))
    arriving = x.c.destination == country

    waiting, overdue = scope.conn.execute(sa.select(  # one pass over the exports
        sa.func.count().filter(leaving, x.c.validated_seq.is_(None), x.c.confirmed_seq.is_(None)),
        sa.func.count().filter(arriving, x.c.confirmed_seq.is_(None), x.c.date < late),
    ).where(sa.or_(leaving, arriving))).one()
    tainted = scope.conn.execute(
        sa.select(sa.func.count(sa.distinct(x.c.certificate_no)))
        .join_from(f, x, x.c.certificate_no == f.c.subject_id)
        .where(f.c.subject_type == "export", f.c.status == "open", f.c.code.not_in(NOT_TAINT),
               sa.or_(leaving, arriving))).scalar_one()
    return {"country": country, "overdue_days": OVERDUE_DAYS,
            "waiting": int(waiting), "late": int(overdue),
            "tainted": int(tainted), "feed": flag_feed(scope, country) if country else []}


def flag(scope: Scope, flag_id: str) -> dict[str, Any]:
    return _one(scope, pj.flags, "flag_id", flag_id, "flag")


def search(scope: Scope, text: str) -> dict[str, list[str]]:
    """Ids of parcels, sites, actors, certificates, zones and flags containing ``text``."""
    pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    found = {}
    for name, table, key in (("parcels", pj.parcels, "parcel_id"), ("sites", pj.sites, "site_id"),
                             ("actors", pj.actors, "actor_id"),
                             ("exports", pj.exports, "certificate_no"),
                             ("zones", pj.zones, "zone_id"), ("flags", pj.flags, "flag_id")):
        column = table.c[key]
        found[name] = list(scope.conn.execute(sa.select(column).where(
            sa.func.lower(column).like(pattern, escape="\\")).order_by(column).limit(FOUND))
            .scalars())
    return found


def node_seqs(scope: Scope, nodes: Iterable[Node]) -> dict[Node, int]:
    """The entry that made each node of a trace (its registration, purchase, split...)."""
    tables = {"parcel": (pj.parcels, "parcel_id"), "site": (pj.sites, "site_id"),
              "zone": (pj.zones, "zone_id"), "export": (pj.exports, "certificate_no")}
    wanted: dict[str, list[str]] = {}
    for kind, ident in nodes:
        wanted.setdefault(kind, []).append(ident)
    seqs: dict[Node, int] = {}
    for kind, ids in wanted.items():
        table, key = tables[kind]
        for k in range(0, len(ids), 500):
            rows = scope.conn.execute(sa.select(table.c[key], table.c.seq).where(
                table.c[key].in_(ids[k:k + 500])))
            seqs.update({(kind, ident): seq for ident, seq in rows})
    return seqs


def flagged_nodes(scope: Scope, nodes: Iterable[Node]) -> set[Node]:
    """The parcels, exports and sites of a trace with open flags the caller may read."""
    f = pj.flags
    wanted = [n for n in nodes if n[0] in ("parcel", "export", "site")]
    if not scope.sees_all:
        parcels = visible_parcels(scope, [i for t, i in wanted if t == "parcel"])
        x, shown = pj.exports, [i for t, i in wanted if t == "export"]
        mine = set(scope.conn.execute(sa.select(x.c.certificate_no).where(
            x.c.certificate_no.in_(shown), x.c.exporter == scope.actor)).scalars())
        wanted = [(t, i) for t, i in wanted
                  if (t == "parcel" and i in parcels) or (t == "export" and i in mine)]
    found: set[Node] = set()
    for k in range(0, len(wanted), 500):
        ids = [i for _, i in wanted[k:k + 500]]
        rows = scope.conn.execute(sa.select(f.c.subject_type, f.c.subject_id).where(
            f.c.subject_id.in_(ids), f.c.status == "open"))
        found.update((t, i) for t, i in rows)
    return found & set(wanted)


def origin_features(scope: Scope, graph: Trace) -> list[dict[str, Any]]:
    """The origin map of a trace: its sites, their licence zones, the dig points of its
    purchases (in the shape of ``ledger.geo.maps.feature_collection``), and every risk area."""
    site_ids = graph.sites()
    zone_ids = [i for t, i in graph.nodes if t == "zone"]
    parcel_ids = [i for t, i in graph.nodes if t == "parcel"]
    z, s, p = pj.zones, pj.sites, pj.parcels
    features = []
    for r in scope.conn.execute(sa.select(z).where(sa.or_(z.c.zone_id.in_(zone_ids),
                                                    z.c.zone_type == "risk"))):
        layer = "licence_zone" if r.zone_type == "licence" else "risk_area"
        features.append(_feature(r.geometry, layer=layer, zone_id=r.zone_id, name=r.name,
                                 category=r.category, licence_no=r.licence_no,
                                 valid_from=r.valid_from, valid_to=r.valid_to))
    for r in scope.conn.execute(sa.select(s).where(s.c.site_id.in_(site_ids))):
        features.append(_feature(r.location, layer="site", site_id=r.site_id, name=r.name,
                                 open_flags=0, flags=""))
    seen = visible_parcels(scope, parcel_ids)
    for k in range(0, len(parcel_ids), 500):
        rows = scope.conn.execute(sa.select(p).where(p.c.parcel_id.in_(parcel_ids[k:k + 500]),
                                               p.c.dig_lon.is_not(None)))
        for r in rows:
            point = json.dumps({"type": "Point", "coordinates": [r.dig_lon, r.dig_lat]})
            layer = "flagged_purchase" if r.open_flags and r.parcel_id in seen else "dig_point"
            features.append(_feature(point, layer=layer, parcel_id=r.parcel_id,
                                     site_id=r.site_id, date=r.date, flags=""))
    return features


def near(collection: dict[str, Any], zone_ids: Iterable[str], site_ids: Iterable[str]
         ) -> list[dict[str, Any]]:
    """Of ``ledger.geo.maps.feature_collection``: these zones and sites, the purchases flagged
    at these sites, and every risk area."""
    zones_, sites_ = set(zone_ids), set(site_ids)
    kept = []
    for f in collection["features"]:
        p = f["properties"]
        if (p["layer"] == "risk_area" or (p["layer"] == "licence_zone" and p["zone_id"] in zones_)
                or (p["layer"] in ("site", "flagged_purchase") and p["site_id"] in sites_)):
            kept.append(f)
    return kept


def screened(scope: Scope, geometry: dict[str, Any], licence_no: str | None,
             flags: int) -> list[dict[str, Any]]:
    """A map of a preview: the point or polygon screened, the licence zones of its mining
    licence, and every risk area."""
    z = pj.zones
    own = sa.and_(z.c.zone_type == "licence", z.c.licence_no == licence_no)
    rows = scope.conn.execute(sa.select(z).where(sa.or_(z.c.zone_type == "risk", own)))
    features = [_feature(r.geometry, layer="licence_zone" if r.zone_type == "licence"
                         else "risk_area", zone_id=r.zone_id, name=r.name,
                         licence_no=r.licence_no, category=r.category,
                         valid_from=r.valid_from, valid_to=r.valid_to) for r in rows]
    features.append({"type": "Feature", "geometry": geometry, "properties": {
        "layer": "site", "site_id": "", "name": "what was screened", "open_flags": flags,
        "flags": ""}})
    return features


def _feature(geometry: str, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": json.loads(geometry), "properties": properties}


def users(scope: Scope) -> list[dict[str, Any]]:
    tokens = sa.select(sa.func.count()).where(Token.user == User.name,
                                              Token.revoked.is_(None)).scalar_subquery()
    rows = scope.conn.execute(sa.select(User.name, User.role, User.actor_id, User.created,
                                  User.password_hash.is_not(None).label("has_password"),
                                  User.disabled, tokens.label("tokens")).order_by(User.name))
    return [dict(r._mapping) for r in rows]


def tokens(scope: Scope) -> list[dict[str, Any]]:
    """Every API token's id, user and dates (never the token): the admin's page."""
    rows = scope.conn.execute(sa.select(Token.id, Token.user, Token.created, Token.expires,
                                        Token.revoked).order_by(Token.user, Token.created))
    return [dict(r._mapping) for r in rows]


# -- the public map (any account) ------------------------------------------------------

def _geometry(text: str) -> Any:
    return json.loads(text)


def zones(scope: Scope) -> Iterator[dict[str, Any]]:
    """Zones and risk areas as GeoJSON features (properties: the projection's columns)."""
    z = pj.zones
    for r in scope.conn.execute(sa.select(z).order_by(z.c.zone_id)):
        props = {k: v for k, v in r._mapping.items() if k not in ("geometry", "last_seq")}
        yield {"type": "Feature", "id": r.zone_id, "geometry": _geometry(r.geometry),
               "properties": props}


def sites(scope: Scope) -> Iterator[dict[str, Any]]:
    """Mine sites as GeoJSON features."""
    s = pj.sites
    for r in scope.conn.execute(sa.select(s).order_by(s.c.site_id)):
        props = {k: v for k, v in r._mapping.items() if k != "location"}
        yield {"type": "Feature", "id": r.site_id, "geometry": _geometry(r.location),
               "properties": props}


def map_features(scope: Scope, as_of: str | None = None,
                 site_ids: Iterable[str] | None = None) -> dict[str, Any]:
    """The map's layers (``ledger.geo.maps.feature_collection``) as the caller may see them:
    flagged purchases of its own parcels only, and the flags of sites for an auditor or an
    officer; ``as_of``: the zones as they stood that day (SPEC 5); ``site_ids``: only these
    sites and the purchases flagged at them."""
    return feature_collection(scope.conn, seen=None if scope.sees_all else scope.sees_parcel,
                              site_flags=scope.sees_site_flags(), as_of=as_of,
                              site_ids=None if site_ids is None else list(site_ids))


def visible_parcels(scope: Scope, parcel_ids: Iterable[str]) -> set[str]:
    """Those of ``parcel_ids`` the caller may see."""
    wanted = list(dict.fromkeys(parcel_ids))
    if scope.sees_all:
        return set(wanted)
    found: set[str] = set()
    p = pj.parcels
    # Tested row by row (a few index probes each), not against every parcel the caller ever
    # held: a trace's page paid for the caller's whole history (issue 19, 300 ms at 100k).
    for k in range(0, len(wanted), 500):
        found.update(scope.conn.execute(sa.select(p.c.parcel_id).where(
            p.c.parcel_id.in_(wanted[k:k + 500]), scope.sees_parcel(p.c.parcel_id, p.c.holder))
        ).scalars())
    return found


def statistics(scope: Scope, query: stats.Query) -> stats.Table:
    """SPEC 6 `stats` as the caller may see it: country level for everyone, finer keys for
    a signed-in officer, authority or auditor (403 ``ROLE`` otherwise)."""
    stats.check_access(scope.principal, query)
    return stats.table(scope.conn, query)


def zone_prices(scope: Scope, zone_id: str) -> list[stats.ZoneMonth]:
    """A licence zone's monthly USD per carat and footprint band: zone level, so for the
    roles that see finer keys than country (SPEC 6)."""
    stats.check_access(scope.principal, stats.Query(by="zone"))
    return stats.zone_months(scope.conn, zone_id)


def country_halves(scope: Scope, country: str) -> list[stats.Half]:
    """A country's production against its exports per half-year (country level: anyone)."""
    return stats.production_and_exports(scope.conn, country)
