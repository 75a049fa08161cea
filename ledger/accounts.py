"""API accounts: users with a role and the actor they act as, their bearer tokens,
and what each account may read (SPEC 1, 6).

Accounts are not ledger facts: they live in their own tables, beside the log and
the projections, and are never folded into either. A user's writes are written as
its actor (``admin`` for an admin), whose registered role must be the user's role,
so the custody rules of SPEC 4 judge an API write exactly as an ``ingest`` line
naming that actor.

Tokens are 256 random bits, shown once and stored as their SHA-256. A fast,
unsalted hash is the right tool here, unlike for passwords: a token has far too
much entropy to guess or to look up in a table, so a slow key-derivation function
would only cost every request time; and an unsalted digest can be looked up by
an index, so a token is found without comparing secrets one by one.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import projections as pj
from ledger.db import driver_execute
from ledger.errors import Conflict, InputError, LedgerError, NotFound, PermissionDenied
from ledger.log.store import ADMIN

ROLES = ("officer", "buyer", "exporter", "auditor", "admin")
TOKEN_PREFIX = "alv_"


class Unauthenticated(LedgerError):
    """No bearer token, or one that belongs to nobody (HTTP 401)."""

    rule = "UNAUTHENTICATED"


class Base(so.DeclarativeBase):
    metadata = sa.MetaData()


class User(Base):
    __tablename__ = "users"

    name: so.Mapped[str] = so.mapped_column(sa.String(64), primary_key=True)
    role: so.Mapped[str] = so.mapped_column(sa.String(16))
    actor_id: so.Mapped[str] = so.mapped_column(sa.String(64))
    # Issue 7 (web login) sets it; API users authenticate with tokens only.
    password_hash: so.Mapped[str | None] = so.mapped_column(sa.String(256))
    created: so.Mapped[str] = so.mapped_column(sa.String(40))


class Token(Base):
    __tablename__ = "api_tokens"

    id: so.Mapped[str] = so.mapped_column(sa.String(16), primary_key=True)
    user: so.Mapped[str] = so.mapped_column(sa.ForeignKey("users.name"), index=True)
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    created: so.Mapped[str] = so.mapped_column(sa.String(40))


def create_tables(engine: sa.Engine) -> None:
    """Create the account tables beside the log (idempotent)."""
    Base.metadata.create_all(engine)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user, its role and the actor its writes are written as."""

    user: str
    role: str
    actor_id: str


def add_user(engine: sa.Engine, name: str, role: str, actor_id: str | None = None) -> Principal:
    """SPEC 6 `users add`: the actor must be registered with the user's role."""
    if role not in ROLES:
        raise InputError(f"role: {role!r} is not one of {', '.join(ROLES)}.", field="role")
    if actor_id is None:
        if role != "admin":
            raise InputError(f"--actor: a user with the role {role} needs the registered "
                             "actor it acts as.", field="actor")
        actor_id = ADMIN
    with so.Session(engine) as session, session.begin():
        actor = session.execute(
            sa.select(pj.actors.c.role).where(pj.actors.c.actor_id == actor_id)).first()
        if actor is None:
            raise NotFound(f"actor: '{actor_id}' is not a registered actor.",
                           rule="UNKNOWN_REFERENCE", field="actor")
        if actor.role != role:
            raise PermissionDenied(f"actor: '{actor_id}' is registered with the role "
                                   f"{actor.role}, not {role}.", field="actor")
        if session.get(User, name) is not None:
            raise Conflict(f"name: the user '{name}' already exists.", rule="DUPLICATE",
                           field="name")
        session.add(User(name=name, role=role, actor_id=actor_id, created=_now()))
    return Principal(name, role, actor_id)


def create_token(engine: sa.Engine, name: str) -> str:
    """A new bearer token for the user; only its SHA-256 is kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with so.Session(engine) as session, session.begin():
        if session.get(User, name) is None:
            raise NotFound(f"name: there is no user '{name}'; add it with `alluvial users add`.",
                           field="name")
        session.add(Token(id=secrets.token_hex(6), user=name, token_hash=token_digest(token),
                          created=_now()))
    return token


# One indexed lookup (api_tokens.token_hash is unique), sent through the driver: it
# runs on every authenticated request, so that a deleted token fails at once.
_AUTHENTICATE = ('SELECT users.name, users.role, users.actor_id FROM api_tokens '
                 'JOIN users ON users.name = api_tokens."user" WHERE api_tokens.token_hash = ?')


def authenticate(engine: sa.Engine, token: str) -> Principal:
    """The principal a bearer token belongs to, or :class:`Unauthenticated`."""
    with engine.connect() as conn:
        row = driver_execute(conn, _AUTHENTICATE, (token_digest(token),)).fetchone()
    if row is None:
        raise Unauthenticated("Authorization: the bearer token is not valid.")
    return Principal(*row)


def live_tokens(conn: sa.Connection, digests: Collection[str]) -> set[str]:
    """Those of the token digests that still belong to a token, read on ``conn``.

    Inside a write transaction, a write checked here is refused if its token was
    deleted before the write commits (SQLite holds the write lock; PostgreSQL reads
    the committed tokens of the moment).
    """
    if not digests:
        return set()
    marks = ", ".join("?" * len(digests))
    sql = f"SELECT token_hash FROM api_tokens WHERE token_hash IN ({marks})"
    return {row[0] for row in driver_execute(conn, sql, tuple(digests))}


# -- what an account may read (SPEC 6, issue 5) --------------------------------------

# Reads by area: None is public (anonymous callers too). Buyers and exporters read
# parcels, their custody and flags only for parcels they hold or held (see Scope);
# an auditor reads everything. Writes (POST /events) are open to every account:
# rule ROLE of SPEC 4 decides per kind, on the account's actor.
EVERYONE = frozenset(ROLES)
READS: dict[str, frozenset[str] | None] = {
    "checkpoint": None,
    "proofs": None,
    "stats": None,
    "openapi": None,
    "events": EVERYONE,
    "zones": EVERYONE,
    "sites": EVERYONE,
    "entries": frozenset({"auditor"}),
    "parcels": frozenset({"auditor", "buyer", "exporter"}),
    "flags": frozenset({"auditor", "buyer", "exporter"}),
    "bundles": frozenset({"auditor", "exporter"}),
}
READ_ALL = frozenset({"auditor"})


def require(principal: Principal | None, area: str) -> None:
    """Refuse a caller who may not use ``area``: 401 anonymous, 403 ``ROLE``."""
    allowed = READS[area]
    if allowed is None:
        return
    if principal is None:
        raise Unauthenticated("Authorization: this needs a bearer token.")
    if principal.role not in allowed:
        raise PermissionDenied(f"role: the role {principal.role} may not read {area}; "
                               f"only {' or '.join(sorted(allowed))} may.", field="role")
