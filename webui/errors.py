"""Errors as RFC 9457 problem+json: the one table from rule ids and error classes to
HTTP status codes (SPEC 6), and the handlers that use it.

A problem's ``type`` is the rule id (``HOLDER``, ``SCHEMA``...); ``detail`` is the
ledger's sentence; ``field`` names the input at fault when it is known and
``errors`` lists every schema failure. Nothing else in ``webui`` picks a status
for an error.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, current_app
from werkzeug.exceptions import HTTPException

from ledger.db import unavailable_cause
from ledger.errors import LedgerError, NotFound, PermissionDenied

PROBLEM = "application/problem+json"
log = logging.getLogger("alluvial.http")


class RequestError(LedgerError):
    """A request the web layer cannot hand to the ledger: its body, type or size."""


# SPEC 6: the one table. Rule ids first, then error classes; everything else is 422.
STATUS: tuple[tuple[str | type[Exception], int], ...] = (
    ("MALFORMED_JSON", 400),
    ("NOT_UTF8", 400),
    ("BAD_QUERY", 400),  # stats: a period, key or kind it does not answer (SPEC 6)
    ("BAD_CURSOR", 400),  # a list's page link it did not hand out (issue 19)
    ("UNAUTHENTICATED", 401),
    ("ROLE", 403),
    ("NOT_FOUND", 404),
    ("METHOD_NOT_ALLOWED", 405),
    ("DUPLICATE", 409),
    ("EVENT_ID_CONFLICT", 409),
    ("TOO_LARGE", 413),
    ("UNSUPPORTED_MEDIA_TYPE", 415),
    (NotFound, 404),
    (PermissionDenied, 403),
    (LedgerError, 422),
    (sa.exc.OperationalError, 503),  # the database is unreachable or locked: retry later
)

TITLES = {
    400: "Bad request", 401: "Authentication required", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 409: "Conflict", 413: "Request body too large",
    415: "Unsupported media type", 422: "Refused", 500: "Internal error",
    503: "Service unavailable",
}

# Werkzeug's own refusals (routing, body size) under the rule ids of the table.
HTTP_RULES = {400: "MALFORMED_JSON", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
              413: "TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}


def status_of(error: Exception) -> int:
    rule = getattr(error, "rule", None)
    return next(status for match, status in STATUS
                if match == rule or (isinstance(match, type) and isinstance(error, match)))


def problem(status: int, rule: str, detail: str, **extra: Any) -> Response:
    body = {"type": rule, "title": TITLES.get(status, "Error"), "status": status,
            "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    response = Response(json.dumps(body), status, mimetype=PROBLEM)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="alluvial"'
    return response


def from_ledger(error: LedgerError) -> Response:
    data = error.data
    return problem(status_of(error), error.rule, str(error), field=data.get("field"),
                   errors=data.get("errors"), seq=data.get("seq"))


def from_http(error: HTTPException) -> Response:
    status = error.code or 500
    detail = error.description or TITLES.get(status, "Error")
    if status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        detail = f"The request body is larger than the limit of {limit} bytes."
    response = problem(status, HTTP_RULES.get(status, f"HTTP_{status}"), detail)
    if status == 405 and error.response is None:
        allowed = getattr(error, "valid_methods", None)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
    return response


def from_database(error: sa.exc.DBAPIError) -> Response:
    """503 naming why (read-only, disk full, locked, unreachable), in the body and the
    server log; a database error that is none of these is a bug (500)."""
    found = unavailable_cause(error)
    if found is None:
        return from_unexpected(error)
    cause, sentence = found
    log.error("database unavailable (%s): %s: %s", cause, type(error.orig).__name__,
              str(error.orig).splitlines()[0] if str(error.orig) else "")
    response = problem(503, "DATABASE_UNAVAILABLE",
                       f"{sentence} just now ({cause}); nothing was written. "
                       "Send the request again (with its event_id) later.", cause=cause)
    response.headers["Retry-After"] = "1"
    return response


def from_unexpected(error: Exception) -> Response:
    # Last resort: the tests make sure it never answers. The request line is logged
    # by webui.reqlog; headers (and so tokens) never are.
    log.error("unexpected %s", type(error).__name__, exc_info=error)
    return problem(500, "INTERNAL", "The server failed to answer this request.")


def init_app(app: Flask) -> None:
    app.register_error_handler(LedgerError, from_ledger)
    app.register_error_handler(HTTPException, from_http)
    app.register_error_handler(sa.exc.DBAPIError, from_database)
    app.register_error_handler(Exception, from_unexpected)
