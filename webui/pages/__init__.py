"""The HTML pages (issue 7): server-rendered, one blueprint per module, all inside the
blueprint ``pages`` that signs users in, checks CSRF on every form and answers errors
as pages.

Sessions are Flask's signed cookies, HttpOnly and SameSite=Lax (``webui.sessions``
opens none for the API). Every POST carries Flask-WTF's CSRF token, checked here
for the pages only: the API is authenticated by bearer tokens, which a browser never
sends by itself. The pages load nothing from any other host (Content-Security-Policy
``default-src 'self'``) and run no script at all.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, Flask, Response, render_template, request, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from ledger.errors import LedgerError
from webui.errors import status_of
from webui.pages import (
    access,
    admin,
    audit,
    authority,
    home,
    links,
    lists,
    map,
    officer,
    records,
    signin,
    stats,
    trade,
)
from webui.pages.forms import RULE_WORDS

# Templates and the stylesheet are the app's own (webui/templates, webui/static).
bp = Blueprint("pages", __name__)
csrf = CSRFProtect()
POLICY = ("default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
          "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
NAV = (  # endpoint, label: each role sees the ones it may open
    ("pages.home.dashboard", "Dashboard"), ("pages.map.world", "Map"),
    ("pages.officer.new_site", "Register site"),
    ("pages.officer.import_zones_page", "Import zones"),
    ("pages.officer.new_actor", "Register actor"), ("pages.trade.holdings", "Holdings"),
    ("pages.trade.purchase", "Log purchase"), ("pages.trade.transfer", "Transfer"),
    ("pages.trade.split", "Split"), ("pages.trade.merge", "Merge"),
    ("pages.trade.declare_export", "Declare export"), ("pages.audit.overview", "Audit"),
    ("pages.audit.flags", "Flags"), ("pages.lists.parcels", "Parcels"),
    ("pages.lists.sites", "Sites"), ("pages.lists.zones", "Zones"),
    ("pages.lists.actors", "Actors"), ("pages.lists.entries", "Entries"),
    ("pages.stats.charts", "Statistics"),
    ("pages.authority.certificates", "Certificates"), ("pages.admin.users", "Users"),
)

for child in (signin.bp, home.bp, map.bp, officer.bp, trade.bp, records.bp, audit.bp, stats.bp,
              admin.bp, lists.bp):
    bp.register_blueprint(child)
bp.register_blueprint(authority.bp)  # issue 18: the authority's pages


@bp.before_request
def _before() -> None:
    access.load_user()
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"  # pages show what one user may see
    return response


def _entry_url(seq: int) -> str:
    """The page of an entry, for the roles that may read entries ('' for the others)."""
    return url_for("pages.records.entry", seq=seq) if access.may_read("entries") else ""


@bp.app_context_processor
def _context() -> dict[str, Any]:
    return {"nav": [(e, label) for e, label in NAV if access.may_open(e)],
            "me": access.current(), "may_read": access.may_read, "may_open": access.may_open,
            "record_url": links.record, "entry_url": _entry_url}


def _page(status: int, rule: str, message: str) -> tuple[str, int]:
    return render_template("error.html", status=status, rule=rule, message=message,
                           words=RULE_WORDS.get(rule, "")), status


@bp.errorhandler(LedgerError)
def _ledger_error(error: LedgerError) -> tuple[str, int]:
    return _page(status_of(error), error.rule, str(error))


@bp.errorhandler(CSRFError)
def _csrf_error(error: CSRFError) -> tuple[str, int]:
    return _page(400, "CSRF", "The form was not sent from this site's page, or it has "
                 f"expired ({error.description}). Go back, reload the page and send it again.")


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> tuple[str, int]:
    return _page(error.code or 500, f"HTTP_{error.code}", error.description or "")


def init_app(app: Flask) -> None:
    # SameSite=Lax: the cookie goes with links from elsewhere, never with their forms.
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked by _before, pages only
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # as long as the session
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    csrf.init_app(app)
    app.register_blueprint(bp)
