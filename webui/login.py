"""Web sign-in: passwords for the users of ``ledger.accounts`` (issue 7).

A password is kept only as a salted, slow hash made by Werkzeug's
``generate_password_hash`` (scrypt, N=2^15, r=8, p=1), unlike API tokens, which
have enough entropy for a plain SHA-256 (see ``ledger.accounts``). Checking a
password for a name that does not exist still costs one scrypt run, so the time
of an answer does not tell whether a user exists.

A session remembers the user's name and a short digest of its password hash:
setting a new password signs out every session made with the old one.
"""

from __future__ import annotations

import hashlib
import hmac

import sqlalchemy as sa
import sqlalchemy.orm as so
from werkzeug.security import check_password_hash, generate_password_hash

from ledger.accounts import Principal, User
from ledger.errors import InputError, NotFound

MIN_LENGTH = 8
MAX_LENGTH = 1024  # scrypt reads all of it: a bound keeps one request cheap
METHOD = "scrypt"
# Compared against when the name is unknown, so that both answers take as long.
_NOBODY = generate_password_hash("no user has this password", method=METHOD)


def check_new_password(password: str) -> None:
    """Refuse a password too short to resist guessing, or too long to hash cheaply."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InputError(f"password: must be {MIN_LENGTH} to {MAX_LENGTH} characters long.",
                         field="password")


def set_password(engine: sa.Engine, name: str, password: str) -> None:
    """Give the user ``name`` a new web password (the demo sets ``demo-<role>``)."""
    check_new_password(password)
    with so.Session(engine) as session, session.begin():
        user = session.get(User, name)
        if user is None:
            raise NotFound(f"name: there is no user '{name}'.", field="name")
        user.password_hash = generate_password_hash(password, method=METHOD)


def check_password(engine: sa.Engine, name: str, password: str) -> Principal | None:
    """The principal whose name and password these are, or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(User.name, User.role, User.actor_id, User.password_hash)
                           .where(User.name == name)).first()
    stored = row.password_hash if row is not None and row.password_hash else _NOBODY
    ok = check_password_hash(stored, password[:MAX_LENGTH])
    if row is None or not row.password_hash or not ok:
        return None
    return Principal(row.name, row.role, row.actor_id)


def session_mark(engine: sa.Engine, name: str) -> str | None:
    """A short digest of the user's password hash: the session holds it to stay valid."""
    with engine.connect() as conn:
        stored = conn.execute(sa.select(User.password_hash).where(User.name == name)).scalar()
    return _mark(stored) if stored else None


def signed_in(engine: sa.Engine, name: str, mark: str) -> Principal | None:
    """The principal of a session, or None once the user or its password has changed."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(User.name, User.role, User.actor_id, User.password_hash)
                           .where(User.name == name)).first()
    if row is None or not row.password_hash:
        return None
    if not hmac.compare_digest(_mark(row.password_hash), mark):
        return None
    return Principal(row.name, row.role, row.actor_id)


def _mark(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:24]
