"""Web sign-in for the pages: the session cookie and where signing in may lead.

The passwords, the sessions and the throttle are the core's (``ledger.passwords``,
``ledger.signin``): the command line sets passwords too. The cookie, signed by Flask,
holds only a random session id; the server decides on each request whether that
session still counts (signed out, new password, ``users disable``: it does not).
"""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import session

from ledger.accounts import Principal, check_password, set_password
from ledger.passwords import check_new_password
from ledger.signin import SignedIn, end_session, session_principal

__all__ = ["METHOD", "begin", "check_new_password", "check_password", "end", "local_path",
           "principal", "set_password"]

METHOD = "scrypt"  # what the previous version stored, and ledger.passwords still writes
SESSION_ID = "sid"


def begin(signed: SignedIn) -> None:
    """Put a new session in the cookie, dropping whatever the old cookie held."""
    session.clear()
    session[SESSION_ID] = signed.session_id


def principal(engine: sa.Engine) -> Principal | None:
    """The principal of this request's session, if it still counts (else the cookie
    loses its session id; its CSRF token stays, so the sign-in form still works)."""
    session_id = session.get(SESSION_ID)
    if not isinstance(session_id, str):
        return None
    found = session_principal(engine, session_id)
    if found is None:
        session.pop(SESSION_ID, None)
    return found


def end(engine: sa.Engine) -> None:
    """Sign out on the server, not only in this browser: a copy of the cookie is void too."""
    session_id = session.get(SESSION_ID)
    if isinstance(session_id, str):
        end_session(engine, session_id)
    session.clear()


def local_path(target: str | None) -> str | None:
    """``target`` when it is a path on this site, else None (no open redirect).

    Browsers drop tabs and newlines inside a URL and read ``\\`` as ``/``, so that
    ``/<TAB>/evil.example`` leads off the site: any control character, space or
    backslash refuses the target, as does anything with a scheme or a host.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(c.isspace() or unicodedata.category(c)[0] == "C" for c in target):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None
