"""English and French pages (issue 19), with Flask-Babel.

The language of a page is the one the user chose with the switch in the page header
(the ``lang`` cookie, a year), else the best of the browser's ``Accept-Language``, else
English. The API answers in English whatever the language: its bodies are for programs.

What a page says is marked where it is written: ``{{ _("...") }}`` or ``{% trans %}`` in
the templates, :func:`flask_babel.gettext` (at request time) or
:func:`flask_babel.lazy_gettext` (module constants) in ``webui``, and
:data:`ledger.i18n.N_` for the sentences the core hands up (it never imports Flask). The
French catalogue is ``webui/translations/fr/LC_MESSAGES/messages.po``, compiled to the
``.mo`` beside it; ``python -m scripts.translations`` extracts, merges and compiles
(``babel.cfg`` says where to look). tests/test_i18n.py fails when a marked string has no
French, when a template holds text that is not marked, and when the ``.mo`` is stale.

Records are never translated: ids, codes, flag details and the log's own text are what the
ledger holds, in the words they were written in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, redirect, request, url_for
from flask_babel import Babel, get_locale, gettext

from ledger.errors import LedgerError

LANGUAGES = {"en": "English", "fr": "Français"}  # code: the language's name in itself
COOKIE = "lang"
YEAR = 365 * 24 * 3600

babel = Babel()
bp = Blueprint("language", __name__)


def select_locale() -> str:
    """The user's choice, else the browser's preference among ours, else English."""
    chosen = request.cookies.get(COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES, default="en") or "en"


def current() -> str:
    return str(get_locale() or "en")


def _local(target: str) -> str:
    """``target`` if it is a path of this site, else the dashboard: the switch never sends
    a user elsewhere (``//host``, ``https://host``, ``/\\host``)."""
    parts = urlsplit(target)
    if (not target.startswith("/") or target.startswith(("//", "/\\")) or parts.scheme
            or parts.netloc or any(c in target for c in "\r\n\\")):
        return "/"
    return target


@bp.get("/language/<code>")
def switch(code: str) -> Response:
    """Remember ``code`` (``en`` or ``fr``) and go back to the page the switch was on."""
    response = redirect(_local(request.args.get("next", "/")), 303)
    if code in LANGUAGES:
        response.set_cookie(COOKIE, code, max_age=YEAR, samesite="Lax", httponly=True,
                            secure=bool(request.is_secure))
    return response


def switch_links() -> list[tuple[str, str, str, bool]]:
    """The header's switch: (code, name, href, is the current one) per language."""
    here = request.full_path.rstrip("?") if request.query_string else request.path
    return [(code, name, url_for("language.switch", code=code, next=here), code == current())
            for code, name in LANGUAGES.items()]


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale, default_domain="messages",
                   default_translation_directories="translations")
    app.register_blueprint(bp)
    app.add_template_filter(say)  # {{ line|say }}: a report's Said in the page's language

    @app.context_processor
    def _language() -> dict[str, object]:
        return {"lang": current(), "languages": switch_links}


def say(said: LedgerError | Mapping[str, Any] | str) -> str:
    """The sentence of a refusal (a :class:`LedgerError`, or one schema problem of its
    ``errors``) or of a :class:`ledger.errors.Said` (a verification report's line) in the
    page's language.

    The core keeps each sentence a page shows as a template marked with ``N_`` and its
    values (``ledger.errors``); this is the catalogue's translation of the template filled
    with the same values. What precedes the sentence in the English message (the field
    path, ``payload.date: ``) is kept as it is. A message with no template, or whose
    template does not fill, is said in English as it was written.
    """
    english = (str(said) if isinstance(said, LedgerError | str)
               else str(said.get("message", "")))
    template = getattr(said, "template", None)
    if not template:
        return english
    values = getattr(said, "params", None) or {}
    # A value that is a sentence itself (the signature problem inside a checkpoint's) is
    # said in the page's language too.
    local_values = {k: say(v) if getattr(v, "template", None) else v for k, v in values.items()}
    try:
        plain, local = str(template % values), str(gettext(template) % local_values)
    except (KeyError, TypeError, ValueError):
        return english
    if not english.endswith(plain):
        return english
    return english[:len(english) - len(plain)] + local
