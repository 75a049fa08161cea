"""Public aggregates (SPEC 6 `GET /stats`)."""

from __future__ import annotations

from flask import Blueprint, Response

from ledger.stats import public_stats
from webui.auth import caller
from webui.http import json_response
from webui.openapi import PREFIX, operation
from webui.services import reading

bp = Blueprint("stats", __name__, url_prefix=PREFIX)


@bp.get("/stats")
@operation("Counts, and carats and value by country and year", area="stats",
           ok={200: "Stats"})
def stats() -> Response:
    with reading(caller("stats")) as scope:
        return json_response(public_stats(scope.conn))
