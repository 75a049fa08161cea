"""KP certificates and where each stands (SPEC 6 `certificates`): declared, validated by the
exporting country's authority, confirmed by the importing one, or confirmed with a
mismatch; and whether an open flag taints it.

One query, shared by `alluvial certificates` and the authority's pages, so that both
list the same certificates in the same states.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ledger.custody import rules
from ledger.custody.state import State
from ledger.errors import RuleViolation
from ledger.projections import actors, exports, flags

STATES = ("declared", "validated", "confirmed", "mismatched")
# The state column says a confirmation differed; only the other open flags taint.
NOT_TAINT = ("CONFIRMATION_MISMATCH",)


def state_of(validated_seq: int | None, confirmed_seq: int | None,
             mismatched: bool | None) -> str:
    """SPEC 6: declared, validated, confirmed or mismatched."""
    if confirmed_seq is not None:
        return "mismatched" if mismatched else "confirmed"
    return "validated" if validated_seq is not None else "declared"


def state_rank() -> sa.ColumnElement[int]:
    """:func:`state_of` in SQL, as the index of the state in STATES (so a list sorts by
    how far a certificate has gone, and filters by state on the server)."""
    x = exports
    return sa.case((sa.and_(x.c.confirmed_seq.is_not(None), x.c.mismatched.is_(True)), 3),
                   (x.c.confirmed_seq.is_not(None), 2),
                   (x.c.validated_seq.is_not(None), 1), else_=0)


def _taints() -> tuple[sa.ColumnElement[bool], ...]:
    """The flags that taint a certificate: open, on the export, not NOT_TAINT."""
    return (flags.c.subject_type == "export", flags.c.status == "open",
            flags.c.code.not_in(NOT_TAINT))


def tainting() -> sa.ScalarSelect[int]:
    """How many open flags taint the certificate of the row."""
    return (sa.select(sa.func.count()).select_from(flags)
            .where(flags.c.subject_id == exports.c.certificate_no, *_taints())
            .scalar_subquery())


def tainted() -> sa.Select[tuple[str]]:
    """The certificate numbers some open flag taints (few: a filter reads them by the flags'
    subject index rather than counting each export's)."""
    return sa.select(flags.c.subject_id).where(*_taints())


# What an authority's page offers on a certificate, and the kind each writes.
ACTIONS = {"validate": "certificate.validated", "confirm": "import.confirmed"}


def actions(conn: sa.Connection, actor_id: str, certificate_nos: list[str]
            ) -> dict[str, set[str]]:
    """Of ``certificate_nos``, those ``actor_id`` may validate and confirm, by action: the
    custody rules of SPEC 4 that do not read what a form carries (ROLE, JURISDICTION,
    UNKNOWN_REFERENCE, DUPLICATE: validated once, confirmed once), run as the ledger runs
    them on saving, so a page never offers a button the ledger would refuse for who
    presses it (a foreign authority's Validate)."""
    state = State(conn)
    state.prefetch("exports", certificate_nos)
    actor = state.get("actors", actor_id) if actor_id else None
    allowed: dict[str, set[str]] = {name: set() for name in ACTIONS}
    for name, kind in ACTIONS.items():
        for no in certificate_nos:
            ctx = rules.Ctx(state, actor_id, actor, kind, {"certificate_no": no})
            try:
                for rule in (rules.role, rules.jurisdiction, rules.unknown_reference,
                             rules.duplicate):
                    rule(ctx)
            except RuleViolation:
                continue
            allowed[name].add(no)
    return allowed


def certificate_list(conn: sa.Connection, *, unconfirmed: bool = False,
                     older_than: int | None = None, today: date | None = None,
                     destination: str | None = None, exporter_country: str | None = None
                     ) -> list[dict[str, Any]]:
    """The certificates in the shape of `certificates --json`, oldest first.

    ``unconfirmed``: those with no import confirmation (expired ones included);
    ``older_than``: those issued more than that many days before ``today`` (UTC by
    default); ``destination`` / ``exporter_country``: those going to, or leaving, one
    country (an authority's two lists)."""
    x = exports
    query = sa.select(x.c.certificate_no, x.c.exporter, x.c.destination, x.c.date, x.c.expires,
                      x.c.points, x.c.value_cents, x.c.validated_seq, x.c.confirmed_seq,
                      x.c.mismatched, tainting().label("tainting"))
    if unconfirmed:
        query = query.where(x.c.confirmed_seq.is_(None))
    if older_than is not None:
        day = today or datetime.now(UTC).date()
        query = query.where(x.c.date < (day - timedelta(days=older_than)).isoformat())
    if destination is not None:
        query = query.where(x.c.destination == destination)
    if exporter_country is not None:
        query = query.where(x.c.exporter.in_(
            sa.select(actors.c.actor_id).where(actors.c.country == exporter_country)))
    rows = conn.execute(query.order_by(x.c.date, x.c.certificate_no))
    return [{
        "certificate_no": r.certificate_no, "exporter": r.exporter,
        "destination": r.destination, "date": r.date, "expires": r.expires,
        "carats": _decimal2(r.points), "value_usd": _decimal2(r.value_cents),
        "state": state_of(r.validated_seq, r.confirmed_seq, r.mismatched),
        "tainted": bool(r.tainting),
    } for r in rows]


def _decimal2(hundredths: int) -> int | float:
    """Points or cents as the number a payload would carry (12.5, 5050)."""
    whole, part = divmod(hundredths, 100)
    return whole if part == 0 else hundredths / 100
