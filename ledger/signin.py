"""Web sign-in: the password check behind a throttle, and sessions the server can end.

Sessions (SPEC 6 "a disabled user's web sessions end"). The browser's cookie holds a
random session id; the server keeps only its SHA-256, one row of ``web_sessions``
per session. Every page request looks the row up with its user, so a session counts
only while its row exists, its user is enabled and it is younger than
``SESSION_HOURS``. Signing out deletes the row; a new password and ``users disable``
delete all of the user's rows (``ledger.accounts``). A copied cookie is worth nothing
after that.

Throttle. Password guessing is slowed per account and per client address: after
``LIMITS[kind]`` failures with no more than ``WINDOW`` seconds between them, each
further failure locks the key for ``FIRST_LOCK`` seconds, doubled at each failure up to
``MAX_LOCK``. While either key is locked, tries are refused (:class:`TooManyAttempts`,
HTTP 429 with Retry-After) without looking at the password, so the right password is
refused too. Signing in resets the account's count, not the address's (an attacker's
own account must not clear it). The counters are rows in the database, so every
process serving the same ledger enforces the same limits. Two requests that pass the
check at once are both counted; at most the requests already in flight when a lock
starts slip past it.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.dialects import postgresql, sqlite

from ledger.accounts import Principal, SigninFailures, User, WebSession, check_password
from ledger.errors import LedgerError
from ledger.i18n import N_

SESSION_HOURS = 12  # a session lasts a working day at most, whatever the browser keeps
WINDOW = 15 * 60  # failures further apart than this start the count again
LIMITS = {"account": 5, "address": 20}  # many people may share one address (NAT)
FIRST_LOCK = 30.0
MAX_LOCK = 15 * 60.0
_KEY_CHARS = 150
clock = time.time  # the throttle's clock (tests move it)


class TooManyAttempts(LedgerError):
    """Too many failed sign-ins: try again after ``retry_after`` seconds (HTTP 429)."""

    rule = "THROTTLED"


@dataclass(frozen=True)
class SignedIn:
    session_id: str  # for the cookie; the server keeps only its SHA-256
    principal: Principal


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def open_session(engine: sa.Engine, name: str) -> str:
    """A new session for the user ``name``; its id goes in the cookie. Sessions past their
    age are cleared on the way."""
    session_id = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with so.Session(engine) as db, db.begin():
        db.execute(sa.delete(WebSession).where(
            WebSession.created < _stamp(now - timedelta(hours=SESSION_HOURS))))
        db.add(WebSession(id_hash=_digest(session_id), user=name, created=_stamp(now)))
    return session_id


def session_principal(engine: sa.Engine, session_id: str) -> Principal | None:
    """The principal of a session, or None once it was ended, expired, or its user
    disabled or deleted."""
    oldest = _stamp(datetime.now(UTC) - timedelta(hours=SESSION_HOURS))
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(User.name, User.role, User.actor_id)
            .join(WebSession, WebSession.user == User.name)
            .where(WebSession.id_hash == _digest(session_id), WebSession.created >= oldest,
                   User.disabled.is_(None))).first()
    return None if row is None else Principal(*row)


def end_session(engine: sa.Engine, session_id: str) -> None:
    """Sign out: the session's cookie opens nothing from now on."""
    with engine.begin() as conn:
        conn.execute(sa.delete(WebSession).where(WebSession.id_hash == _digest(session_id)))


def _keys(name: str, address: str | None) -> dict[str, int]:
    """The throttle's keys for a try, with the number of failures each may take."""
    keys = {f"account:{name[:_KEY_CHARS]}": LIMITS["account"]}
    if address:
        keys[f"address:{address[:_KEY_CHARS]}"] = LIMITS["address"]
    return keys


def lock_seconds(failures: int, limit: int) -> float:
    """How long the ``failures``-th failure locks a key that may take ``limit``."""
    if failures < limit:
        return 0.0
    return min(FIRST_LOCK * 2.0 ** min(failures - limit, 32), MAX_LOCK)


def check_throttle(engine: sa.Engine, name: str, address: str | None,
                   now: float | None = None) -> None:
    """Refuse a try while the account or the address is locked."""
    now = clock() if now is None else now
    with engine.connect() as conn:
        until = conn.execute(sa.select(sa.func.max(SigninFailures.locked_until)).where(
            SigninFailures.key.in_(_keys(name, address)))).scalar()
    if until is not None and until > now:
        wait = math.ceil(until - now)
        raise TooManyAttempts.said(N_("Too many failed sign-ins for this account or from this "
                                      "address: try again in %(wait)s seconds."),
                                   {"wait": wait}, retry_after=wait)


def record_failure(engine: sa.Engine, name: str, address: str | None,
                   now: float | None = None) -> None:
    """Count a failed try against the account and the address, and lock those past their
    limit. Each count is one UPDATE of a row made if missing, so concurrent failures, in
    one process or several, are all counted."""
    now = clock() if now is None else now
    with engine.begin() as conn:
        # Failures long past: forgotten (keeps the table to the keys that matter).
        conn.execute(sa.delete(SigninFailures).where(SigninFailures.last_failure < now - WINDOW,
                                            SigninFailures.locked_until < now))
        insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
        for key, limit in _keys(name, address).items():
            conn.execute(insert(SigninFailures).values(key=key, failures=0, last_failure=now,
                                              locked_until=0.0).on_conflict_do_nothing())
            failures = conn.execute(
                sa.update(SigninFailures).where(SigninFailures.key == key).values(
                    failures=sa.case((SigninFailures.last_failure < now - WINDOW, 1),
                                     else_=SigninFailures.failures + 1),
                    last_failure=now)
                .returning(SigninFailures.failures)).scalar_one()
            if failures >= limit:
                conn.execute(sa.update(SigninFailures).where(SigninFailures.key == key)
                             .values(locked_until=now + lock_seconds(failures, limit)))


def sign_in(engine: sa.Engine, name: str, password: str, address: str | None,
            now: float | None = None) -> SignedIn | None:
    """Check a name and password behind the throttle; a new session when they are right.

    :class:`TooManyAttempts` while the account or the address is locked; None when the
    name or the password is wrong (counted).
    """
    check_throttle(engine, name, address, now)
    who = check_password(engine, name, password)
    if who is None:
        record_failure(engine, name, address, now)
        return None
    with engine.begin() as conn:  # the account's count starts again
        conn.execute(sa.delete(SigninFailures).where(
            SigninFailures.key == next(iter(_keys(name, address)))))
    return SignedIn(open_session(engine, who.user), who)
