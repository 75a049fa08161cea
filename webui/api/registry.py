"""The registry of actors: who is licensed, as what and where (SPEC 4), for any account;
what an actor holds only for an auditor or the actor itself (``ledger.reads``)."""

from __future__ import annotations

from flask import Blueprint, Response

from ledger import reads
from webui.auth import member
from webui.http import json_response
from webui.openapi import PREFIX, operation
from webui.services import reading

bp = Blueprint("registry", __name__, url_prefix=PREFIX)


@bp.get("/actors")
@operation("Registered actors and their licences", area="actors", ok={200: "ActorList"})
def actors() -> Response:
    with reading(member("actors")) as scope:
        return json_response({"actors": reads.actors(scope)})


@bp.get("/actors/<path:actor_id>")
@operation("A registered actor; what it holds for an auditor or itself", area="actors",
           ok={200: "Actor"})
def actor(actor_id: str) -> Response:
    with reading(member("actors")) as scope:
        return json_response(reads.actor(scope, actor_id))
