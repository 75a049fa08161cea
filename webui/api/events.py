"""POST /events: write one event as the token's actor (SPEC 4, 6)."""

from __future__ import annotations

from flask import Blueprint, Response

from ledger.accounts import Unauthenticated
from ledger.errors import LedgerError
from ledger.recorder.events import Event
from ledger.recorder.prepare import check_event
from webui.auth import writing_member
from webui.http import json_body, json_response
from webui.openapi import PREFIX, operation
from webui.services import services

bp = Blueprint("events", __name__, url_prefix=PREFIX)


@bp.post("/events")
@operation("Write one event as the token's actor", area="events",
           ok={201: "WriteResult", 200: "WriteResult"}, body="Event", refusals=(409,),
           description="201 with the new entry; 200 with the entry already written when "
                       "the event_id was seen before with the same content (nothing is "
                       "written). The writing actor is the token's, never one in the body.")
def write() -> Response:
    principal, token = writing_member()
    # Issue #15: validated here, before it is queued for the writer process; a refusal
    # goes back at once unless an event_id must be looked up first (SPEC 4 order).
    event = check_event(Event.from_json(json_body(), actor=principal.actor_id))
    if isinstance(event.checked, LedgerError) and event.event_id is None:
        raise event.checked
    try:
        result = services().writer.write(event, token=token)
    except Unauthenticated:
        services().tokens.forget(token)  # deleted since it was remembered
        raise
    return json_response(result.to_json(), 201 if result.created else 200)
