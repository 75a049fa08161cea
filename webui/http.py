"""Reading requests and shaping responses, shared by the API views.

SPEC 6: a body must be `application/json` (else 415), UTF-8 (else 400) and JSON
(else 400); it is read with the ledger's strict parser, which refuses what the log
could not hash (duplicate keys, NaN, lone surrogates) and nesting deeper than
``ledger.log.canonical.MAX_DEPTH`` levels (400, issue #15: so no value too deep for
recursive code reaches the writer process). Size is Flask's
MAX_CONTENT_LENGTH (413). Query parameters that are not what the route takes are
refused with 422 naming the parameter.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

from flask import Response, request

from ledger.errors import InputError
from ledger.log.canonical import parse
from webui.errors import RequestError

MAX_BODY = 1 << 20  # SPEC 6: 413 beyond 1 MiB
SHORT_MAX_AGE = 5  # a checkpoint moves with every write
IMMUTABLE_MAX_AGE = 365 * 24 * 3600  # a proof at a given size never changes
_DIGITS = re.compile(r"[0-9]{1,18}")


def json_body() -> Any:
    if request.mimetype != "application/json":
        raise RequestError("Content-Type: the body must be application/json, not "
                           f"{request.mimetype or 'missing'}.", rule="UNSUPPORTED_MEDIA_TYPE",
                           field="Content-Type")
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise RequestError(f"Content-Type: the body must be UTF-8, not {charset}.",
                           rule="UNSUPPORTED_MEDIA_TYPE", field="Content-Type")
    data = request.get_data(cache=False)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"body: the bytes are not UTF-8 ({exc.reason} at byte {exc.start}).",
                           rule="NOT_UTF8", field="body") from exc
    try:
        return parse(text)
    except InputError as exc:
        raise RequestError(f"body: {exc}", rule="MALFORMED_JSON", field="body") from exc


def int_arg(name: str, *, required: bool = False, default: int | None = None, low: int = 1,
            high: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        if required:
            raise InputError(f"{name}: the query parameter is required.", rule="BAD_REQUEST",
                             field=name)
        return default
    if not _DIGITS.fullmatch(raw):
        raise InputError(f"{name}: {raw[:40]!r} is not a whole number.", rule="BAD_REQUEST",
                         field=name)
    value = int(raw)
    if value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise InputError(f"{name}: {value} must be {span}.", rule="BAD_REQUEST", field=name)
    return value


def choice_arg(name: str, choices: Sequence[str], default: str | None = None) -> str | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw not in choices:
        raise InputError(f"{name}: {raw[:40]!r} is not one of {', '.join(choices)}.",
                         rule="BAD_REQUEST", field=name)
    return raw


def json_response(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value, separators=(",", ":")), status,
                    mimetype="application/json")


def etag(body: bytes) -> str:
    """The ETag of a body: a digest of it, so equal bodies share a tag whoever built them."""
    return hashlib.sha256(body).hexdigest()[:32]


def cacheable(response: Response, immutable: bool = False, tag: str | None = None) -> Response:
    """SPEC 6 / issue 5: checkpoints and proofs may be cached by anyone (ETag, max-age).

    The ETag is a digest of the body (``tag``, when the caller has it already); a request
    whose If-None-Match names it gets 304.
    """
    if tag is None:
        tag = etag(response.get_data())
    headers = response.headers
    headers["ETag"] = f'"{tag}"'
    headers["Cache-Control"] = (f"public, max-age={IMMUTABLE_MAX_AGE}, immutable" if immutable
                                else f"public, max-age={SHORT_MAX_AGE}")
    headers["Vary"] = "Accept"
    wanted = request.if_none_match
    if wanted.star_tag or wanted.contains_weak(tag):
        not_modified = Response(status=304)
        for name in ("ETag", "Cache-Control", "Vary"):
            not_modified.headers[name] = headers[name]
        return not_modified
    return response
