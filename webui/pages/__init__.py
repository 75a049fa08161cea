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
from flask_babel import gettext, lazy_gettext
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from ledger.errors import LedgerError
from ledger.i18n import N_
from webui.errors import status_of
from webui.i18n import say
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
from webui.pages.forms import RULE_WORDS, word_for

# Templates and the stylesheet are the app's own (webui/templates, webui/static).
bp = Blueprint("pages", __name__)
csrf = CSRFProtect()
POLICY = ("default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
          "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# endpoint, label (said in the page's language): each role sees the ones it may open
NAV = tuple((endpoint, lazy_gettext(label)) for endpoint, label in (
    ("pages.home.dashboard", N_("Dashboard")), ("pages.map.world", N_("Map")),
    ("pages.officer.new_site", N_("Register site")),
    ("pages.officer.import_zones_page", N_("Import zones")),
    ("pages.officer.new_actor", N_("Register actor")), ("pages.trade.holdings", N_("Holdings")),
    ("pages.trade.purchase", N_("Log purchase")), ("pages.trade.transfer", N_("Transfer")),
    ("pages.trade.split", N_("Split")), ("pages.trade.merge", N_("Merge")),
    ("pages.trade.declare_export", N_("Declare export")), ("pages.audit.overview", N_("Audit")),
    ("pages.audit.flags", N_("Flags")), ("pages.lists.parcels", N_("Parcels")),
    ("pages.lists.sites", N_("Sites")), ("pages.lists.zones", N_("Zones")),
    ("pages.lists.actors", N_("Actors")), ("pages.lists.entries", N_("Entries")),
    ("pages.stats.charts", N_("Statistics")),
    ("pages.authority.certificates", N_("Certificates")), ("pages.admin.users", N_("Users")),
))
# Werkzeug's and Flask-WTF's own English sentences for the errors a page can meet, marked
# so the catalogue holds their French (a page shows any other description as it is).
HTTP_SENTENCES = frozenset({
    N_("The browser (or proxy) sent a request that this server could not understand."),
    N_("The requested URL was not found on the server. If you entered the URL manually "
       "please check your spelling and try again."),
    N_("The method is not allowed for the requested URL."),
    N_("The data value transmitted exceeds the capacity limit."),
    N_("The server does not support the media type transmitted in the request."),
    N_("This user has exceeded an allotted request count. Try again later."),
    N_("The server encountered an internal error and was unable to complete your request. "
       "Either the server is overloaded or there is an error in the application."),
    N_("The CSRF token is missing."), N_("The CSRF session token is missing."),
    N_("The CSRF token is invalid."), N_("The CSRF token has expired."),
    N_("The CSRF tokens do not match."),
})

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
            "record_url": links.record, "entry_url": _entry_url, "word_for": word_for}


def _page(status: int, rule: str, message: str) -> tuple[str, int]:
    return render_template("error.html", status=status, rule=rule, message=message,
                           words=RULE_WORDS.get(rule, "")), status


@bp.errorhandler(LedgerError)
def _ledger_error(error: LedgerError) -> tuple[str, int]:
    return _page(status_of(error), error.rule, say(error))  # in the page's language


@bp.errorhandler(CSRFError)
def _csrf_error(error: CSRFError) -> tuple[str, int]:
    return _page(400, "CSRF", gettext(
        "The form was not sent from this site's page, or it has expired (%(why)s). Go back, "
        "reload the page and send it again.", why=_said(error.description or "")))


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> tuple[str, int]:
    return _page(error.code or 500, f"HTTP_{error.code}", _said(error.description or ""))


def _said(description: str) -> str:
    """An error's description in the page's language when the catalogue knows it."""
    return gettext(description) if description in HTTP_SENTENCES else description


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
