"""KP statistics (SPEC 6 `GET /stats`): JSON, or CSV for `Accept: text/csv` or format=csv."""

from __future__ import annotations

from flask import Blueprint, Response, request

from ledger.reads import statistics
from ledger.stats import Query, QueryError
from webui.auth import optional_caller
from webui.http import json_response
from webui.openapi import PREFIX, Param, operation
from webui.services import reading

bp = Blueprint("stats", __name__, url_prefix=PREFIX)

_TEXT = {"type": "string"}
QUERY = (
    Param("period", _TEXT, "YYYY, YYYY-H1|H2 or YYYY-Q1..Q4, or a range FROM..TO of those "
          "(default: every year)."),
    Param("by", {"enum": ["country", "zone", "site", "buyer", "hs", "partner"]},
          "The key (default country); anything finer needs an officer, authority or auditor."),
    Param("kind", {"enum": ["production", "trade"]}, "production (default) or trade."),
    Param("format", {"enum": ["json", "csv"]}, "csv: the same figures as RFC 4180 CSV."),
)


@bp.get("/stats")
@operation("Production or trade statistics by period and key", area="stats",
           ok={200: "Stats"}, query=QUERY, refusals=(400, 401, 403), csv=True,
           description="Public at country level; a bearer token of an officer, authority "
                       "or auditor opens the finer keys (403 ROLE otherwise).")
def stats() -> Response:
    args = request.args
    query = Query.parse(args.get("period"), args.get("by"), args.get("kind"))
    with reading(optional_caller()) as scope:
        table = statistics(scope, query)
    if _wants_csv(args.get("format")):
        return Response(table.to_csv(), mimetype="text/csv")
    return json_response(table.to_json())


def _wants_csv(fmt: str | None) -> bool:
    if fmt is not None:
        if fmt not in ("json", "csv"):
            raise QueryError("format", f"{fmt[:40]!r} is not a format; use json or csv.")
        return fmt == "csv"
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"
