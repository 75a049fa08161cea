"""The custody rules of SPEC 4, checked in the order of its table.

Each rule is a function ``(ctx) -> None`` that raises :class:`RuleViolation`
naming its rule id; :func:`check` runs them in SPEC order so that an event
breaking several rules is refused under the first. Schema validation (rule
SCHEMA) and event_id reuse (EVENT_ID_CONFLICT) happen before, in ledger.events.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ledger.custody import licences
from ledger.custody.state import Row, State, zone_country
from ledger.errors import RuleViolation
from ledger.i18n import N_
from ledger.projections import flags, points

SYSTEM = "system"
# SPEC 4 "screening never refuses a purchase": the flag ids the ledger gives its own flags
# (`F-<seq of the flag entry>`) are in a namespace no writer may take, so an auditor
# cannot pre-empt the id the next screening flag will need.
SYSTEM_FLAG_ID = re.compile(r"F-[0-9]")
HS_CODES = ("7102.10", "7102.21", "7102.31")

# SPEC 4: who may write each kind. "holder" kinds are further limited by HOLDER.
ROLES: dict[str, frozenset[str]] = {
    "actor.registered": frozenset({"officer", "admin"}),
    "licence.revoked": frozenset({"officer", "admin"}),
    "licence.renewed": frozenset({"officer", "admin"}),
    "zone.registered": frozenset({"officer", "admin"}),
    "zone.amended": frozenset({"officer", "admin"}),
    "zone.retired": frozenset({"officer", "admin"}),
    "site.registered": frozenset({"officer", "admin"}),
    "site.suspended": frozenset({"officer", "auditor"}),
    "parcel.purchased": frozenset({"buyer"}),
    "parcel.transferred": frozenset({"buyer", "exporter"}),
    "parcel.split": frozenset({"buyer", "exporter"}),
    "parcel.merged": frozenset({"buyer", "exporter"}),
    "export.declared": frozenset({"exporter"}),
    "certificate.validated": frozenset({"authority"}),
    "import.confirmed": frozenset({"authority", "auditor"}),
    "archive.imported": frozenset({"admin"}),
    "flag.raised": frozenset({"auditor"}),
    "flag.resolved": frozenset({"auditor"}),
}
LICENSED_ROLES = frozenset({"buyer", "exporter"})


@dataclass
class Ctx:
    state: State
    actor_id: str
    actor: Row | None
    kind: str
    p: dict[str, Any]
    today: str = "9999-12-31"  # the ledger's current day (UTC), ISO

    def parcel_ids(self) -> list[str]:
        """The existing parcels this event moves (transfer, split, merge, export)."""
        p = self.p
        if self.kind == "parcel.transferred":
            return [p["parcel_id"]]
        if self.kind == "parcel.split":
            return [p["parent_id"]]
        if self.kind == "parcel.merged":
            return list(p["parent_ids"])
        if self.kind == "export.declared":
            return list(p["parcel_ids"])
        return []

    def parcels(self) -> Iterator[Row]:
        for pid in self.parcel_ids():
            row = self.state.get("parcels", pid)
            assert row is not None  # UNKNOWN_REFERENCE ran first
            yield row


def refuse(rule: str, field: str, template: str, /, *, data: dict[str, Any] | None = None,
           **values: Any) -> RuleViolation:
    """The refusal ``<field>: template % values``; ``template`` is marked with ``N_`` so that
    a page can say it in its language (issue 19). ``data`` goes with the error as is."""
    return RuleViolation.said(template, values, lead=f"{field}: ", rule=rule, field=field,
                              **(data or {}))


# Payload fields that name an actor (SPEC 3: input naming `system` is refused).
ACTOR_FIELDS = ("actor_id", "to_actor", "seller", "exporter")


def role(ctx: Ctx) -> None:
    if ctx.actor_id == SYSTEM:
        raise refuse("ROLE", "actor", N_("'system' is reserved for what the ledger writes "
                                         "itself."))
    for field in ACTOR_FIELDS:
        if ctx.p.get(field) == SYSTEM:
            raise refuse("ROLE", f"payload.{field}", N_("'system' is reserved for what the "
                         "ledger writes itself; no event may name it."))
    if ctx.actor is None:
        raise refuse("ROLE", "actor", N_("'%(actor)s' is not a registered actor, so it may "
                     "not write %(kind)s."), actor=ctx.actor_id, kind=ctx.kind)
    allowed = sorted(ROLES[ctx.kind])
    if ctx.actor["role"] not in allowed:
        one, *other = allowed  # every kind has one or two roles
        raise refuse("ROLE", "actor",
                     N_("'%(actor)s' is a %(role)s; only %(one)s or %(other)s may write "
                        "%(kind)s.") if other else
                     N_("'%(actor)s' is a %(role)s; only %(one)s may write %(kind)s."),
                     actor=ctx.actor_id, role=ctx.actor["role"], one=one,
                     other=" or ".join(other), kind=ctx.kind)


# -- JURISDICTION (SPEC 1): an officer or authority acts only within its own country ----------

BOUND = frozenset({"officer", "authority"})


def _country_of(ctx: Ctx) -> tuple[str, str | None] | None:
    """(field, country) of what the event acts on, for the rule; None when not bound by it
    (a risk area, or something that does not exist: UNKNOWN_REFERENCE refuses that)."""
    p, get = ctx.p, ctx.state.get
    if ctx.kind in ("actor.registered", "site.registered"):
        return "payload.country", p["country"]
    if ctx.kind == "zone.registered":
        if p["zone_type"] != "licence":
            return None  # any officer may register a risk area
        return ("payload.country" if p.get("country") else "payload.licence_no"), zone_country(p)
    row: Row | None = None
    field = ""
    if ctx.kind in ("licence.revoked", "licence.renewed"):
        field = "payload.actor_id" if p.get("actor_id") else "payload.zone_id"
        row = get("actors", p["actor_id"]) if p.get("actor_id") else get("zones", p["zone_id"])
    elif ctx.kind in ("zone.amended", "zone.retired"):
        field, row = "payload.zone_id", get("zones", p["zone_id"])
    elif ctx.kind == "site.suspended":
        field, row = "payload.site_id", get("sites", p["site_id"])
    elif ctx.kind == "import.confirmed":
        # SPEC 1: an authority confirms the imports into its own country
        export = get("exports", p["certificate_no"])
        return None if export is None else ("payload.certificate_no", export["destination"])
    elif ctx.kind == "certificate.validated":
        # SPEC 1: an authority validates the exports of its own country (the exporter's)
        export = get("exports", p["certificate_no"])
        exporter = None if export is None else get("actors", export["exporter"])
        return None if exporter is None else ("payload.certificate_no", exporter["country"])
    if row is None or row.get("zone_type") == "risk":
        return None
    return field, row["country"]


def jurisdiction(ctx: Ctx) -> None:
    actor = ctx.actor
    assert actor is not None
    if actor["role"] not in BOUND:
        return
    found = _country_of(ctx)
    if found is None:
        return
    field, country = found
    if country is None:
        raise refuse("JURISDICTION", field, N_("the licence zone's country is not known: give "
                     "`country`, or a licence_no that begins with the country code and '-'."))
    if country != actor["country"]:
        template = {
            "import.confirmed": N_("'%(actor)s' is an %(role)s of %(mine)s; it may not "
                                   "confirm imports into %(country)s."),
            "certificate.validated": N_("'%(actor)s' is an %(role)s of %(mine)s; it may not "
                                        "validate the exports of %(country)s.")}.get(
            ctx.kind, N_("'%(actor)s' is an %(role)s of %(mine)s; it may not act on what "
                         "belongs to %(country)s."))
        raise refuse("JURISDICTION", field, template, actor=ctx.actor_id, role=actor["role"],
                     mine=actor["country"], country=country)


def licence_windows(row: Row, start: str = "licence_valid_from",
                    end: str = "licence_valid_to") -> list[licences.Window]:
    """An actor's (or, with ``valid_from``/``valid_to``, a zone's) licence windows."""
    return licences.windows(row[start], row[end], row["renewals"], row["revocations"])


def licence(ctx: Ctx) -> None:
    actor = ctx.actor
    assert actor is not None
    if actor["role"] not in LICENSED_ROLES:
        return
    day = ctx.p["date"]
    why = licences.why_not(licence_windows(actor), day, actor["licence_no"])
    if why is None:
        return
    template, values = licences.NO_TRADE[why.template], why.values
    raise refuse("LICENCE", "payload.date", template, **values, actor=ctx.actor_id, day=day)


def _references(ctx: Ctx) -> Iterator[tuple[str, str, str]]:
    """(table, id, field) of everything the event names that must already exist."""
    p, kind = ctx.p, ctx.kind
    if kind in ("licence.revoked", "licence.renewed"):
        if p.get("actor_id"):
            yield "actors", p["actor_id"], "payload.actor_id"
        if p.get("zone_id"):
            yield "zones", p["zone_id"], "payload.zone_id"
    elif kind in ("zone.amended", "zone.retired"):
        yield "zones", p["zone_id"], "payload.zone_id"
    elif kind == "site.suspended":
        yield "sites", p["site_id"], "payload.site_id"
    elif kind == "parcel.transferred":
        yield "parcels", p["parcel_id"], "payload.parcel_id"
        yield "actors", p["to_actor"], "payload.to_actor"
    elif kind == "parcel.split":
        yield "parcels", p["parent_id"], "payload.parent_id"
    elif kind == "parcel.merged":
        for i, pid in enumerate(p["parent_ids"]):
            yield "parcels", pid, f"payload.parent_ids[{i}]"
    elif kind == "export.declared":
        yield "actors", p["exporter"], "payload.exporter"
        for i, pid in enumerate(p["parcel_ids"]):
            yield "parcels", pid, f"payload.parcel_ids[{i}]"
    elif kind in ("certificate.validated", "import.confirmed"):
        yield "exports", p["certificate_no"], "payload.certificate_no"
    elif kind == "flag.raised":
        table = {"parcel": "parcels", "site": "sites", "export": "exports", "actor": "actors",
                 "zone": "zones"}[p["subject"]["type"]]
        yield table, p["subject"]["id"], "payload.subject.id"
    elif kind == "flag.resolved":
        yield "flags", p["flag_id"], "payload.flag_id"


# One whole sentence per table, for the pages' other languages (issue 19).
UNKNOWN = {"actors": N_("there is no actor '%(id)s'."), "zones": N_("there is no zone '%(id)s'."),
           "sites": N_("there is no site '%(id)s'."),
           "parcels": N_("there is no parcel '%(id)s'."),
           "exports": N_("there is no export certificate '%(id)s'."),
           "flags": N_("there is no flag '%(id)s'.")}
TAKEN = {"actors": N_("the actor id '%(id)s' is already taken."),
         "zones": N_("the zone id '%(id)s' is already taken."),
         "sites": N_("the site id '%(id)s' is already taken."),
         "parcels": N_("the parcel id '%(id)s' is already taken."),
         "exports": N_("the export certificate id '%(id)s' is already taken."),
         "flags": N_("the flag id '%(id)s' is already taken.")}


def unknown_reference(ctx: Ctx) -> None:
    for table, key, field in _references(ctx):
        if ctx.state.get(table, key) is None:
            raise refuse("UNKNOWN_REFERENCE", field, UNKNOWN[table], id=key)


def _new_ids(ctx: Ctx) -> Iterator[tuple[str, str, str]]:
    p, kind = ctx.p, ctx.kind
    single = {"actor.registered": ("actors", "actor_id"), "zone.registered": ("zones", "zone_id"),
              "site.registered": ("sites", "site_id"), "parcel.purchased": ("parcels", "parcel_id"),
              "export.declared": ("exports", "certificate_no"),
              "flag.raised": ("flags", "flag_id")}
    if kind in single:
        table, field = single[kind]
        yield table, p[field], f"payload.{field}"
    elif kind == "parcel.split":
        for i, child in enumerate(p["children"]):
            yield "parcels", child["parcel_id"], f"payload.children[{i}].parcel_id"
    elif kind == "parcel.merged":
        yield "parcels", p["child"]["parcel_id"], "payload.child.parcel_id"


def system_flag_id(seq: int, code: str, taken: Callable[[str], bool]) -> str:
    """The id of the screening flag written as entry ``seq``: ``F-<seq>``, unique since seqs
    are. A ledger written before the namespace was reserved may hold an auditor's flag of
    that id: then ``F-<seq>-<code>``, then with a counter, until one is free."""
    candidate = f"F-{seq}"
    counter = 1
    while taken(candidate):
        counter += 1
        candidate = f"F-{seq}-{code}" + (f"-{counter}" if counter > 2 else "")
    return candidate


ONCE = {"certificate.validated": ("validated_seq", "validated"),
        "import.confirmed": ("confirmed_seq", "confirmed")}


def duplicate(ctx: Ctx) -> None:
    if ctx.kind == "flag.raised" and SYSTEM_FLAG_ID.match(ctx.p["flag_id"]):
        raise refuse("DUPLICATE", "payload.flag_id", N_("the flag id '%(id)s' is in the "
                     "namespace the ledger keeps for its own screening flags ('F-' and a "
                     "digit); choose another id."), id=ctx.p["flag_id"])
    seen: set[tuple[str, str]] = set()
    for table, key, field in _new_ids(ctx):
        if (table, key) in seen or ctx.state.get(table, key) is not None:
            raise refuse("DUPLICATE", field, TAKEN[table], id=key)
        seen.add((table, key))
    if ctx.kind in ONCE:
        # SPEC 4 CERTIFICATE: a certificate is validated once and confirmed once
        column, _ = ONCE[ctx.kind]
        export = ctx.state.get("exports", ctx.p["certificate_no"])
        if export is not None and export[column] is not None:
            raise refuse("DUPLICATE", "payload.certificate_no",
                         N_("certificate %(cert)s was already validated by entry %(seq)s.")
                         if ctx.kind == "certificate.validated" else
                         N_("certificate %(cert)s was already confirmed by entry %(seq)s."),
                         cert=ctx.p["certificate_no"], seq=export[column])
    if ctx.kind == "flag.resolved":
        flag = ctx.state.get("flags", ctx.p["flag_id"])
        if flag is not None and flag["status"] == "resolved":
            raise refuse("DUPLICATE", "payload.flag_id",
                         N_("the flag '%(id)s' was already resolved."), id=ctx.p["flag_id"])


def open_flags(state: State, parcel_id: str) -> str:
    """The open flags on a parcel, named for a refusal: "F-7 IN_RISK_AREA, F-8 ..."."""
    state.flush()  # flags raised earlier in this transaction; a refusal rolls back anyway
    rows = state.conn.execute(
        sa.select(flags.c.flag_id, flags.c.code)
        .where(flags.c.subject_type == "parcel", flags.c.subject_id == parcel_id,
               flags.c.status == "open")
        .order_by(flags.c.seq)
    )
    return ", ".join(f"{flag_id} {code}" for flag_id, code in rows)


def holder(ctx: Ctx) -> None:
    # SPEC 4: only the current holder transfers, splits, merges or exports a parcel.
    for row in ctx.parcels():
        if row["holder"] != ctx.actor_id:
            named = open_flags(ctx.state, row["parcel_id"]) if row["open_flags"] else ""
            raise refuse("HOLDER", "payload",
                         N_("parcel '%(parcel)s' is held by '%(holder)s', not by '%(actor)s'. "
                            "It is also on hold with open flags %(flags)s.") if named else
                         N_("parcel '%(parcel)s' is held by '%(holder)s', not by "
                            "'%(actor)s'."),
                         parcel=row["parcel_id"], holder=row["holder"], actor=ctx.actor_id,
                         flags=named)


def spent(ctx: Ctx) -> None:
    for row in ctx.parcels():
        if row["status"] == "spent":
            raise refuse("SPENT", "payload", N_("parcel '%(parcel)s' was consumed by entry "
                         "%(seq)s and can never move again."), parcel=row["parcel_id"],
                         seq=row["spent_seq"])
    if ctx.kind == "parcel.transferred" and ctx.p["to_actor"] == ctx.actor_id:
        raise refuse("SPENT", "payload.to_actor", N_("a transfer must change the holder; "
                     "'%(actor)s' already holds parcel '%(parcel)s'."), actor=ctx.actor_id,
                     parcel=ctx.p["parcel_id"])


def date_order(ctx: Ctx) -> None:
    """SPEC 4 DATE_ORDER: time runs forward along custody, and nothing is dated after today."""
    day = ctx.p["date"]
    if day > ctx.today:
        raise refuse("DATE_ORDER", "payload.date", N_("%(day)s is after today (%(today)s, "
                     "UTC); the ledger records what has happened."), day=day, today=ctx.today)
    for row in ctx.parcels():
        if day < row["last_date"]:
            raise refuse("DATE_ORDER", "payload.date", N_("%(day)s is before %(last)s, the date "
                         "of the last custody event of parcel '%(parcel)s'."), day=day,
                         last=row["last_date"], parcel=row["parcel_id"],
                         data={"parcel_id": row["parcel_id"]})
    if ctx.kind in ONCE:
        _certificate_dates(ctx, day)


def _certificate_dates(ctx: Ctx, day: str) -> None:
    """SPEC 4 DATE_ORDER: a validation lies between its certificate's issue and expiry; a
    confirmation between its validation (or, unvalidated, its issue) and its expiry. A
    validation written after the confirmation is no later than it, so the order holds."""
    cert = ctx.p["certificate_no"]
    export = ctx.state.get("exports", cert)
    assert export is not None  # UNKNOWN_REFERENCE ran first
    validated = export["validated_on"] if ctx.kind == "import.confirmed" else None
    if validated is not None and day < validated:
        raise refuse("DATE_ORDER", "payload.date", N_("%(day)s is before the certificate "
                     "%(cert)s was validated (%(on)s)."), day=day, cert=cert, on=validated)
    if day < export["date"]:
        raise refuse("DATE_ORDER", "payload.date", N_("%(day)s is before the certificate "
                     "%(cert)s was issued (%(on)s)."), day=day, cert=cert, on=export["date"])
    if day > export["expires"]:
        raise refuse("DATE_ORDER", "payload.date", N_("%(day)s is after the certificate "
                     "%(cert)s expired (%(on)s)."), day=day, cert=cert, on=export["expires"])
    confirmed = export["confirmed_on"] if ctx.kind == "certificate.validated" else None
    if confirmed is not None and day > confirmed:
        raise refuse("DATE_ORDER", "payload.date", N_("%(day)s is after the import under "
                     "certificate %(cert)s was confirmed (%(on)s)."), day=day, cert=cert,
                     on=confirmed)


def mass(ctx: Ctx) -> None:
    # SPEC 4: neither carats nor the stone count ever grow through a split or merge.
    p = ctx.p
    if ctx.kind == "parcel.split":
        parent = next(ctx.parcels())
        got_pts = sum(points(c["carats"]) for c in p["children"])
        got_stones = sum(c["stones"] for c in p["children"])
        have_pts, have_stones = parent["points"], parent["stones"]
        heavier = N_("the children of parcel '%(parcel)s' weigh %(got)s ct, more than the "
                     "%(have)s ct they come from.")
        more = N_("the children of parcel '%(parcel)s' count %(got)s stones, more than the "
                  "%(have)s they come from.")
        parcel = parent["parcel_id"]
    elif ctx.kind == "parcel.merged":
        rows = list(ctx.parcels())
        got_pts, got_stones = points(p["child"]["carats"]), p["child"]["stones"]
        have_pts = sum(r["points"] for r in rows)
        have_stones = sum(r["stones"] for r in rows)
        heavier = N_("merged parcel '%(parcel)s' weigh %(got)s ct, more than the %(have)s ct "
                     "they come from.")
        more = N_("merged parcel '%(parcel)s' count %(got)s stones, more than the %(have)s "
                  "they come from.")
        parcel = p["child"]["parcel_id"]
    elif ctx.kind == "parcel.purchased" and "sieve" in p:
        sieve_adds_up(p["sieve"], p["carats"])
        return
    else:
        return
    if got_pts > have_pts:
        raise refuse("MASS", "payload", heavier, parcel=parcel, got=f"{got_pts / 100:.2f}",
                     have=f"{have_pts / 100:.2f}")
    if got_stones > have_stones:
        raise refuse("MASS", "payload", more, parcel=parcel, got=got_stones, have=have_stones)


def sieve_adds_up(sieve: dict[str, float], carats: float) -> None:
    """SPEC 5: the carats of a purchase's sieve classes add up to its carats exactly (MASS),
    in integer points, never binary floats."""
    got = sum(points(v) for v in sieve.values())
    if got != points(carats):
        raise refuse("MASS", "payload.sieve", N_("the sieve classes add up to %(got)s ct, not "
                     "the %(carats)s ct of the purchase."), got=f"{got / 100:.2f}",
                     carats=f"{points(carats) / 100:.2f}")


def hold(ctx: Ctx) -> None:
    for row in ctx.parcels():
        if row["open_flags"]:
            raise refuse("HOLD", "payload", N_("parcel '%(parcel)s' is on hold with open flags "
                         "%(flags)s; an auditor must resolve them first."),
                         parcel=row["parcel_id"], flags=open_flags(ctx.state, row["parcel_id"]),
                         data={"parcel_id": row["parcel_id"]})


def certificate(ctx: Ctx) -> None:
    if ctx.kind != "export.declared":
        return
    p, actor = ctx.p, ctx.actor
    assert actor is not None
    if p["exporter"] != ctx.actor_id:
        raise refuse("CERTIFICATE", "payload.exporter", N_("'%(exporter)s' is not the writing "
                     "actor '%(actor)s'; an exporter declares its own exports."),
                     exporter=p["exporter"], actor=ctx.actor_id)
    if not p["certificate_no"].startswith(actor["country"]):
        raise refuse("CERTIFICATE", "payload.certificate_no", N_("'%(cert)s' must start with "
                     "the exporter's country code %(country)s."), cert=p["certificate_no"],
                     country=actor["country"])
    if p["destination"] == actor["country"]:
        raise refuse("CERTIFICATE", "payload.destination", N_("%(country)s is the exporter's "
                     "own country; a KP certificate goes with diamonds that leave it."),
                     country=p["destination"])
    if p["hs_code"] not in HS_CODES:
        raise refuse("CERTIFICATE", "payload.hs_code", N_("'%(code)s' is not a rough diamond "
                     "HS code; use %(codes)s."), code=p["hs_code"], codes=", ".join(HS_CODES))
    total = sum(r["points"] for r in ctx.parcels())
    if points(p["carats"]) != total:
        raise refuse("CERTIFICATE", "payload.carats", N_("%(carats)s ct differs from the "
                     "%(total)s ct of the exported parcels."), carats=p["carats"],
                     total=f"{total / 100:.2f}")
    if p["expires"] <= p["date"]:
        raise refuse("CERTIFICATE", "payload.expires", N_("%(expires)s is not after the issue "
                     "date %(date)s."), expires=p["expires"], date=p["date"])


# SPEC 4, the order of its table (SCHEMA and EVENT_ID_CONFLICT are checked before).
RULES: tuple[Callable[[Ctx], None], ...] = (
    role, jurisdiction, licence, unknown_reference, duplicate, holder, spent, date_order, mass,
    hold, certificate,
)


def check(state: State, actor_id: str, kind: str, payload: dict[str, Any],
          today: str = "9999-12-31") -> Row | None:
    """Raise the first rule the event breaks; return the writing actor's row. ``today`` is
    the ledger's current day (UTC, ISO), past which no event may be dated."""
    ctx = Ctx(state, actor_id, state.get("actors", actor_id) if actor_id != SYSTEM else None,
              kind, payload, today)
    for rule in RULES:
        rule(ctx)
    return ctx.actor
