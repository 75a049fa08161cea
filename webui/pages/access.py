"""Who is signed in, and which pages each role may open.

A page declares what it does, never a list of roles of its own: a page that writes
an event kind is open to the roles rule ROLE lets write it (``ledger.custody.rules.ROLES``),
a page that reads an area to the roles ``ledger.accounts.READS`` lets read it. The
navigation shows each role the pages it may open, from the same declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, TypeVar

from flask import g, redirect, request, url_for

from ledger.accounts import READ_ALL, READS, ROLES, Principal, Unauthenticated, require
from ledger.custody import rules
from ledger.errors import PermissionDenied, either
from ledger.i18n import N_
from webui import login
from webui.services import ledger

F = TypeVar("F", bound=Callable[..., Any])
EVERYONE = frozenset(ROLES)
# endpoint -> the roles that may open it (filled by the decorators below)
OPEN_TO: dict[str, frozenset[str]] = {}


def load_user() -> None:
    """Before each page: the principal of the session cookie, if the session still counts
    on the server (ledger.signin)."""
    g.principal = login.principal(ledger().engine)


def current() -> Principal | None:
    found: Principal | None = g.get("principal")
    return found


def principal() -> Principal:
    """The signed-in principal of a guarded view."""
    found = current()
    assert found is not None  # the guard sent anonymous callers to the sign-in page
    return found


def _guard(roles: Iterable[str], refusal: str, **values: str) -> Callable[[F], F]:
    """``refusal``: the whole sentence (marked with N_, so a page says it in its language)
    with ``%(role)s`` and ``%(allowed)s``, and ``values`` for its other placeholders."""
    allowed = frozenset(roles)

    def decorate(view: F) -> F:
        OPEN_TO[f"pages.{view.__module__.rsplit('.', 1)[-1]}.{view.__name__}"] = allowed

        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            who = current()
            if who is None:
                wanted = request.full_path.rstrip("?")
                return redirect(url_for("pages.signin.login_page", next=wanted))
            if who.role not in allowed:
                raise PermissionDenied.said(refusal, {
                    "role": who.role, "allowed": either(sorted(allowed)), **values},
                    lead="role: ", field="role")
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def signed_in() -> Callable[[F], F]:
    """Any account."""
    return _guard(EVERYONE, N_("the role %(role)s may not open this page; only %(allowed)s may."))


def writes(*kinds: str) -> Callable[[F], F]:
    """A form that writes these kinds: the roles rule ROLE lets write every one of them."""
    allowed = frozenset.intersection(*(rules.ROLES[k] for k in kinds))
    return _guard(allowed, N_("the role %(role)s may not write %(kinds)s; only %(allowed)s may."),
                  kinds=either(kinds))


def reads(area: str) -> Callable[[F], F]:
    """A page showing what an area of ``ledger.accounts.READS`` holds."""
    allowed = READS[area]
    return _guard(EVERYONE if allowed is None else allowed,
                  N_("the role %(role)s may not read %(area)s; only %(allowed)s may."), area=area)


def reads_all() -> Callable[[F], F]:
    """Pages over the whole ledger (search, verification): the roles that read everything."""
    return _guard(READ_ALL,
                  N_("the role %(role)s may not read the whole ledger; only %(allowed)s may."))


def administers() -> Callable[[F], F]:
    """User accounts and API tokens (SPEC 1: the admin)."""
    return _guard({"admin"},
                  N_("the role %(role)s may not manage user accounts; only %(allowed)s may."))


def may_open(endpoint: str) -> bool:
    who = current()
    return who is not None and who.role in OPEN_TO.get(endpoint, frozenset())


def may_read(area: str) -> bool:
    try:
        require(current(), area)
    except (Unauthenticated, PermissionDenied):
        return False
    return True
