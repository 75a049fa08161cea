"""What a writer sends: an event's envelope, checked before its payload (SPEC 4, SPEC 6).

Kept apart from the write path (:mod:`ledger.recorder.events`) so that a process that only
reads and checks ingest lines (:mod:`ledger.recorder.prepare`) imports nothing heavy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import InputError, LedgerError
from ledger.i18n import N_

ENVELOPE = frozenset({"kind", "actor", "payload", "event_id"})
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")


@dataclass(frozen=True)
class Event:
    """What a writer sends: a kind, the writing actor, a payload and an optional event_id."""

    kind: str
    actor: str
    payload: dict[str, Any]
    event_id: str | None = None
    # Set when the payload was checked ahead, in another process (ingest): its canonical
    # text when it matches its kind's schema, else the refusal to raise when it is written.
    checked: str | LedgerError | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_json(cls, obj: Any, actor: str | None = None) -> Event:
        """An ingest line (``actor`` inside) or an API body (``actor`` from the token).

        Only the envelope is checked here (schemas/event.json describes it); the
        payload is validated against its kind's schema when it is written.
        """
        if not isinstance(obj, dict):
            raise InputError.said(N_("must be a JSON object with kind and payload."),
                                  lead="event: ", field="")
        allowed = ENVELOPE if actor is None else ENVELOPE - {"actor"}
        extra = sorted(set(obj) - allowed)
        if extra:
            raise InputError.said(
                N_("unknown field: the API writes as the token's actor; leave it out.")
                if extra == ["actor"] else N_("unknown field: expected only %(fields)s."),
                {"fields": ", ".join(sorted(allowed))}, lead=f"{extra[0]}: ", field=extra[0])
        kind, payload, event_id = obj.get("kind"), obj.get("payload"), obj.get("event_id")
        writer = actor if actor is not None else obj.get("actor")
        if not isinstance(kind, str):
            raise InputError.said(N_("required: the event kind, such as parcel.purchased."),
                                  lead="kind: ", field="kind")
        if not isinstance(writer, str) or not writer:
            raise InputError.said(N_("required: the actor who writes this event."),
                                  lead="actor: ", field="actor")
        if not isinstance(payload, dict):
            raise InputError.said(N_("required: a JSON object with the event's fields."),
                                  lead="payload: ", field="payload")
        if event_id is not None and not (isinstance(event_id, str) and ID.fullmatch(event_id)):
            raise InputError.said(N_("must be an id of 1 to 64 letters, digits or . _ : / - "
                                     "starting with a letter or digit, such as a UUID."),
                                  lead="event_id: ", field="event_id")
        return cls(kind, writer, payload, event_id)
