"""Screening before saving: what writing an event would raise, without writing it.

The same steps as ``ledger.recorder.events.Session.write``, read-only: the kind's schema,
the custody rules of SPEC 4 (a refusal is raised as it would be on saving), then
the ledger's own screening rules on a subject built by ``ledger.geo.screening.subject_for``
against the committed map. Nothing is appended and the read transaction ends in a
rollback, so a preview can never change the log; the answer is what saving would give
if nothing else were written in between.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import shapely

from ledger.custody import rules
from ledger.custody.schema import validate_payload
from ledger.custody.state import State
from ledger.geo.screening import Flag, late_entry, subject_for
from ledger.recorder.events import Event, Ledger


@dataclass(frozen=True)
class Preview:
    """The flags saving would raise (none: it would be recorded clean)."""

    flags: tuple[Flag, ...]
    screened: bool  # False: this kind is not screened (only sites and purchases are)
    geometry: dict[str, Any] | None = None  # what was screened (GeoJSON), if anything
    licence_no: str | None = None  # the mining licence it was screened against


def preview(book: Ledger, event: Event) -> Preview:
    """Screen ``event`` as of its date; raises the refusal saving it would meet."""
    validate_payload(event.kind, event.payload)
    today = book.log.clock().astimezone(UTC).date().isoformat()
    with book.engine.connect() as conn:
        state = State(conn)
        rules.check(state, event.actor, event.kind, event.payload, today)
        zones = book.zoneset(conn)
        size = book.log.size()
        late = late_entry(event.kind, event.payload, size + 1, today, book.late_days)
        subject = subject_for(event.kind, event.payload, size + 1, state, lambda: zones)
        if subject is None:
            return Preview((late,), screened=True) if late else Preview((), screened=False)
        flags = tuple(flag for rule in book.screening for flag in rule.check(subject))
        flags += (late,) if late else ()
    where = None if subject.geometry is None else json.loads(shapely.to_geojson(subject.geometry))
    return Preview(flags, screened=True, geometry=where, licence_no=subject.licence_no)
