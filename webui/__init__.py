"""The web layer (SPEC 6): a Flask app that translates HTTP to ledger calls and back.

``create_app(test_config=None)`` reads the configuration of SPEC 2 from the
environment; ``test_config`` may instead name ``DATABASE_URL``, ``LOG_KEY`` and
``LOG_ORIGIN``, or hand over an open ``LEDGER``. One ledger, one group writer and
one token cache serve every request of the app.

``ALLUVIAL_SECURE_COOKIES=1`` (or ``SESSION_COOKIE_SECURE`` in ``test_config``) marks
the session cookie ``Secure``: set it whenever the pages are served over HTTPS.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.config import DEFAULT_ORIGIN, Settings
from ledger.errors import LedgerError

if TYPE_CHECKING:
    from flask import Flask, Response

    from ledger.recorder.events import Ledger

# Importing this package imports neither Flask nor the ledger's core: `alluvial --help`
# lists `serve` and `demo` (webui.commands) without them (issue 19). create_app does.


def _settings(config: Mapping[str, Any]) -> Settings:
    if "DATABASE_URL" not in config:
        return Settings.from_env()
    return Settings(database_url=config["DATABASE_URL"], log_key_path=Path(config["LOG_KEY"]),
                    origin=config.get("LOG_ORIGIN") or DEFAULT_ORIGIN,
                    secret_key=config.get("SECRET_KEY"),
                    late_days=config.get("LATE_DAYS", Settings.from_env().late_days))


_SWITCH = {"1": True, "true": True, "yes": True, "on": True,
           "0": False, "false": False, "no": False, "off": False, "": False}


def _secure_cookies() -> bool:
    value = os.environ.get("ALLUVIAL_SECURE_COOKIES", "")
    if value.strip().lower() not in _SWITCH:
        raise LedgerError(f"ALLUVIAL_SECURE_COOKIES: {value!r} is not 1 or 0 (true/false, "
                          "yes/no, on/off).", rule="CONFIG")
    return _SWITCH[value.strip().lower()]


def _nosniff(response: Response) -> Response:
    # Every answer, API and pages alike: a browser must not read JSON as HTML or script.
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    from flask import Flask

    from ledger import accounts
    from ledger.recorder.events import Ledger
    from webui import api, errors, i18n, pages, reqlog, sessions
    from webui.auth import TokenCache
    from webui.http import MAX_BODY
    from webui.services import Services
    from webui.writer import GroupWriter
    from webui.writer_process import WriterProcess

    app = Flask(__name__)
    # WRITER_PROCESS: commit the groups of writes in a process of their own (`alluvial
    # serve`; webui.writer_process). WRITE_LINGER: how long a group commit waits for
    # more writes to join (like PostgreSQL's commit_delay), when the groups are committed
    # in this process: a little latency for fewer, larger transactions. A writer process
    # needs none: the writes that arrive while it commits one group form the next.
    app.config.from_mapping(MAX_CONTENT_LENGTH=MAX_BODY, WRITER_PROCESS=False)
    if test_config is not None:
        app.config.from_mapping(test_config)
    if "SESSION_COOKIE_SECURE" not in (test_config or {}):
        app.config["SESSION_COOKIE_SECURE"] = _secure_cookies()
    process = app.config["WRITER_PROCESS"]
    app.config.setdefault("WRITE_LINGER", 0.0 if process else 0.002)
    book: Ledger | None = app.config.get("LEDGER")
    if book is None:
        settings = _settings(app.config)
        app.config["SECRET_KEY"] = settings.secret_key or secrets.token_hex(32)
        book = Ledger.open(settings)
    elif process:
        raise ValueError("WRITER_PROCESS needs DATABASE_URL and LOG_KEY, not an open LEDGER")
    accounts.create_tables(book.engine)
    writer = GroupWriter(book, linger=app.config["WRITE_LINGER"],
                         process=WriterProcess(settings) if process else None)
    app.extensions["alluvial"] = Services(
        ledger=book, writer=writer, tokens=TokenCache(book.engine),
        vkey=book.log.verifier.to_vkey())
    sessions.init_app(app)
    errors.init_app(app)
    reqlog.init_app(app)
    api.init_app(app)
    i18n.init_app(app)
    pages.init_app(app)
    app.after_request(_nosniff)
    return app
