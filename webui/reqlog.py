"""Structured request logs: one JSON object a line on the `alluvial.http` logger.

Each line holds the method, the path (never the query string or a header: a token
travels only in `Authorization`, which is never read here), the status, the time
taken and the user and actor who called, when known. `alluvial serve` sends the
logger to stderr; under pytest it is captured like any other.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from flask import Flask, Response, g, request

log = logging.getLogger("alluvial.http")


_stamp: tuple[int, str] = (0, "")


def _timestamp() -> str:
    """The current second as RFC 3339 UTC, formatted once a second, not once a request."""
    global _stamp
    now = int(time.time())
    if _stamp[0] != now:
        _stamp = (now, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
    return _stamp[1]


def _start() -> None:
    g.started = time.perf_counter()


def _record(response: Response) -> Response:
    if log.isEnabledFor(logging.INFO):
        req = request._get_current_object()  # type: ignore[attr-defined]
        principal = g.get("principal")
        started = g.get("started")
        line = {
            "ts": _timestamp(),
            "method": req.method,
            "path": req.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1e3, 3) if started else None,
            "bytes": response.calculate_content_length(),
            "user": principal.user if principal else None,
            "actor": principal.actor_id if principal else None,
            "remote": req.remote_addr,
        }
        # Logger.info less its search of the stack for a caller the line never shows.
        log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, json.dumps(line),
                                  (), None))
    return response


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_record)


def to_stderr(level: int = logging.INFO) -> None:
    """Send the request log, one JSON line each, to stderr (`alluvial serve`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
