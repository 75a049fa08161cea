"""API accounts: users with a role and the actor they act as, their bearer tokens,
and what each account may read (SPEC 1, 6).

Accounts are not ledger facts: they live in their own tables, beside the log and
the projections, and are never folded into either. A user's writes are written as
its actor (``admin`` for an admin), whose registered role must be the user's role,
so the custody rules of SPEC 4 judge an API write exactly as an ``ingest`` line
naming that actor.

Tokens are 256 random bits, shown once and stored as their SHA-256. A fast,
unsalted hash is the right tool here, unlike for passwords (``ledger.passwords``):
a token has far too much entropy to guess or to look up in a table, so a slow
key-derivation function would only cost every request time; and an unsalted digest
can be looked up by an index, so a token is found without comparing secrets one by one.

SPEC 6: a token may expire (``tokens create --expires-days``) and be revoked
(``tokens revoke``), and a user disabled (``users disable``). A token counts only
while it is unrevoked and unexpired and its user exists and is enabled; every read
checks that (:func:`authenticate`) and so does every write, inside the write's own
transaction (:func:`live_tokens`). Rows are never deleted, so ``tokens list`` keeps
the history. Timestamps are UTC text, ``YYYY-MM-DDTHH:MM:SSZ``, which sorts as time.

Web sign-in keeps its state here too (``ledger.signin``): one row per open web
session, so that signing out, a new password or ``users disable`` ends sessions on
the server, and the sign-in throttle's counters, so that it holds across processes.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import passwords
from ledger import projections as pj
from ledger.db import driver_execute
from ledger.errors import Conflict, InputError, LedgerError, NotFound, PermissionDenied
from ledger.i18n import N_
from ledger.log.store import ADMIN

ROLES = ("officer", "buyer", "exporter", "auditor", "authority", "admin")
TOKEN_PREFIX = "alv_"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MAX_EXPIRES_DAYS = 3650


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
    # SPEC 6 `users disable`: when; its tokens and web sessions count no more.
    disabled: so.Mapped[str | None] = so.mapped_column(sa.String(40))


class Token(Base):
    __tablename__ = "api_tokens"

    id: so.Mapped[str] = so.mapped_column(sa.String(16), primary_key=True)
    user: so.Mapped[str] = so.mapped_column(sa.ForeignKey("users.name"), index=True)
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    created: so.Mapped[str] = so.mapped_column(sa.String(40))
    expires: so.Mapped[str | None] = so.mapped_column(sa.String(40))  # None: never
    revoked: so.Mapped[str | None] = so.mapped_column(sa.String(40))


class WebSession(Base):
    """An open web session (``ledger.signin``); the cookie holds the id, the row its SHA-256."""

    __tablename__ = "web_sessions"

    id_hash: so.Mapped[str] = so.mapped_column(sa.String(64), primary_key=True)
    user: so.Mapped[str] = so.mapped_column(sa.String(64), index=True)
    created: so.Mapped[str] = so.mapped_column(sa.String(40))


class SigninFailures(Base):
    """Failed sign-ins of one account or client address (``ledger.signin``)."""

    __tablename__ = "signin_failures"

    key: so.Mapped[str] = so.mapped_column(sa.String(200), primary_key=True)
    failures: so.Mapped[int] = so.mapped_column(sa.Integer)
    last_failure: so.Mapped[float] = so.mapped_column(sa.Float)  # Unix time
    locked_until: so.Mapped[float] = so.mapped_column(sa.Float)


# Columns added since the first version of the tables, which create_all does not add to a
# table that exists: (table, column). Each is nullable, so old rows need no value.
ADDED_COLUMNS = (("users", "disabled"), ("api_tokens", "expires"), ("api_tokens", "revoked"))


def create_tables(engine: sa.Engine) -> None:
    """Create the account tables beside the log, and add the columns that a database made
    by an earlier version lacks (idempotent, and safe when two processes do it at once)."""
    Base.metadata.create_all(engine)
    for table, column in _missing_columns(engine):
        ddl = Base.metadata.tables[table].c[column].type.compile(engine.dialect)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f'ALTER TABLE {table} ADD COLUMN "{column}" {ddl}'))
        except sa.exc.DBAPIError:
            if (table, column) in _missing_columns(engine):  # not another process's doing
                raise


def _missing_columns(engine: sa.Engine) -> list[tuple[str, str]]:
    inspector = sa.inspect(engine)
    present = {t: {c["name"] for c in inspector.get_columns(t)} for t in ("users", "api_tokens")}
    return [(t, c) for t, c in ADDED_COLUMNS if c not in present[t]]


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return _stamp(datetime.now(UTC))


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user, its role and the actor its writes are written as."""

    user: str
    role: str
    actor_id: str


def check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise InputError.said(N_("%(name)s is not a user name: 1 to 64 letters, digits and "
                                 "._@- (starting with a letter or digit)."),
                              {"name": repr(name)}, lead="name: ", field="name")


def add_user(engine: sa.Engine, name: str, role: str, actor_id: str | None = None,
             password: str | None = None) -> Principal:
    """SPEC 6 `users add`: the actor must be registered with the user's role. With a
    ``password``, the user may also sign in on the web; the two are written together."""
    check_name(name)
    if role not in ROLES:
        raise InputError.said(N_("%(role)s is not one of %(roles)s."),
                              {"role": repr(role), "roles": ", ".join(ROLES)}, lead="role: ",
                              field="role")
    if actor_id is None:
        if role != "admin":
            raise InputError.said(N_("a user with the role %(role)s needs the registered "
                                     "actor it acts as."), {"role": role}, lead="--actor: ",
                                  field="actor")
        actor_id = ADMIN
    password_hash = None if password is None else passwords.hash_password(password)
    with so.Session(engine) as session, session.begin():
        actor = session.execute(
            sa.select(pj.actors.c.role).where(pj.actors.c.actor_id == actor_id)).first()
        if actor is None:
            raise NotFound.said(N_("'%(actor)s' is not a registered actor."),
                                {"actor": actor_id}, lead="actor: ",
                                rule="UNKNOWN_REFERENCE", field="actor")
        if actor.role != role:
            raise PermissionDenied.said(N_("'%(actor)s' is registered with the role %(has)s, "
                                           "not %(role)s."),
                                        {"actor": actor_id, "has": actor.role, "role": role},
                                        lead="actor: ", field="actor")
        if session.get(User, name) is not None:
            raise Conflict.said(N_("the user '%(name)s' already exists."), {"name": name},
                                lead="name: ", rule="DUPLICATE", field="name")
        session.add(User(name=name, role=role, actor_id=actor_id, created=_now(),
                         password_hash=password_hash))
    return Principal(name, role, actor_id)


def _user(session: so.Session, name: str) -> User:
    user = session.get(User, name)
    if user is None:
        raise NotFound.said(N_("there is no user '%(name)s'; add it with `alluvial users "
                               "add`."), {"name": name}, lead="name: ", field="name")
    return user


def set_password(engine: sa.Engine, name: str, password: str) -> None:
    """SPEC 6 `users passwd`: a new web password, which ends the user's web sessions."""
    password_hash = passwords.hash_password(password)
    with so.Session(engine) as session, session.begin():
        _user(session, name).password_hash = password_hash
        session.execute(sa.delete(WebSession).where(WebSession.user == name))


def disable_user(engine: sa.Engine, name: str) -> bool:
    """SPEC 6 `users disable`: the user's tokens and web sessions count no more, from
    their next request on. False when the user was disabled already."""
    with so.Session(engine) as session, session.begin():
        user = _user(session, name)
        session.execute(sa.delete(WebSession).where(WebSession.user == name))
        if user.disabled is not None:
            return False
        user.disabled = _now()
    return True


def check_password(engine: sa.Engine, name: str, password: str) -> Principal | None:
    """The principal whose name and password these are (an enabled user), or None.

    A name that does not exist still costs one scrypt run, so that the time of an
    answer does not tell whether a user exists.
    """
    with engine.connect() as conn:
        row = conn.execute(sa.select(User.name, User.role, User.actor_id, User.password_hash,
                                     User.disabled).where(User.name == name)).first()
    stored = row.password_hash if row is not None and row.password_hash else _nobody()
    ok = passwords.verify_password(stored, password)
    if row is None or not row.password_hash or row.disabled is not None or not ok:
        return None
    return Principal(row.name, row.role, row.actor_id)


@functools.cache
def _nobody() -> str:
    """Compared against when the name is unknown, so that both answers take as long."""
    return passwords.hash_password("no user has this password")


@dataclass(frozen=True)
class TokenInfo:
    """What `tokens list` shows of a token: never the token itself."""

    id: str
    user: str
    created: str
    expires: str | None
    revoked: str | None


def create_token(engine: sa.Engine, name: str, expires_days: int | None = None) -> str:
    """A new bearer token for the user; only its SHA-256 is kept. SPEC 6 `--expires-days`:
    it stops counting that many days from now."""
    return issue_token(engine, name, expires_days)[1]


def issue_token(engine: sa.Engine, name: str,
                expires_days: int | None = None) -> tuple[TokenInfo, str]:
    """:func:`create_token`, with what `tokens list` will show of the new token."""
    expires = None
    if expires_days is not None:
        if not 1 <= expires_days <= MAX_EXPIRES_DAYS:
            raise InputError(f"--expires-days: must be 1 to {MAX_EXPIRES_DAYS}, not "
                             f"{expires_days}.", field="expires_days")
        expires = _stamp(datetime.now(UTC) + timedelta(days=expires_days))
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with so.Session(engine) as session, session.begin():
        if _user(session, name).disabled is not None:
            raise InputError.said(N_("the user '%(name)s' is disabled; a token for it would "
                                     "never be accepted."), {"name": name}, lead="name: ",
                                  field="name")
        info = TokenInfo(secrets.token_hex(6), name, _now(), expires, None)
        session.add(Token(id=info.id, user=name, token_hash=token_digest(token),
                          created=info.created, expires=expires))
    return info, token


def list_tokens(engine: sa.Engine, name: str | None = None) -> list[TokenInfo]:
    """SPEC 6 `tokens list [NAME]`: every token, or the user's, oldest first."""
    query = sa.select(Token.id, Token.user, Token.created, Token.expires, Token.revoked)
    with so.Session(engine) as session:
        if name is not None:
            _user(session, name)
            query = query.where(Token.user == name)
        rows = session.execute(query.order_by(Token.created, Token.id)).all()
    return [TokenInfo(*row) for row in rows]


def revoke_token(engine: sa.Engine, token_id: str) -> TokenInfo:
    """SPEC 6 `tokens revoke TOKEN_ID`: the token's next request gets 401. Revoking a
    revoked token keeps the first revocation's time."""
    with so.Session(engine) as session, session.begin():
        token = session.get(Token, token_id)
        if token is None:
            raise NotFound.said(N_("there is no token '%(token)s'; `alluvial tokens list` "
                                   "shows their ids."), {"token": token_id}, lead="TOKEN_ID: ",
                                field="token_id")
        if token.revoked is None:
            token.revoked = _now()
        return TokenInfo(token.id, token.user, token.created, token.expires, token.revoked)


# SPEC 6: a token counts while it is unrevoked and unexpired, and its user exists and is
# enabled. One indexed lookup (api_tokens.token_hash is unique), sent through the driver:
# it runs on every authenticated request, so that a revoked token fails at once.
_LIVE = ('FROM api_tokens JOIN users ON users.name = api_tokens."user" '
         "WHERE api_tokens.revoked IS NULL AND users.disabled IS NULL "
         "AND (api_tokens.expires IS NULL OR api_tokens.expires > ?) AND ")
_AUTHENTICATE = ("SELECT users.name, users.role, users.actor_id " + _LIVE
                 + "api_tokens.token_hash = ?")


def authenticate(engine: sa.Engine, token: str) -> Principal:
    """The principal a bearer token belongs to, or :class:`Unauthenticated`."""
    with engine.connect() as conn:
        row = driver_execute(conn, _AUTHENTICATE, (_now(), token_digest(token))).fetchone()
    if row is None:
        raise Unauthenticated("Authorization: the bearer token is not valid.")
    return Principal(*row)


def live_tokens(conn: sa.Connection, digests: Collection[str]) -> set[str]:
    """Those of the token digests that still count (see ``_LIVE``), read on ``conn``.

    Inside a write transaction, a write checked here is refused if its token was
    revoked, or its user disabled or deleted, before the write commits (SQLite holds
    the write lock; PostgreSQL reads the committed rows of the moment).
    """
    if not digests:
        return set()
    marks = ", ".join("?" * len(digests))
    sql = f"SELECT api_tokens.token_hash {_LIVE}api_tokens.token_hash IN ({marks})"
    return {row[0] for row in driver_execute(conn, sql, (_now(), *digests))}


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
    "actors": EVERYONE,
    "entries": frozenset({"auditor"}),
    "parcels": frozenset({"auditor", "buyer", "exporter"}),
    "flags": frozenset({"auditor", "buyer", "exporter", "officer"}),
    # An authority: the exports from and to its own country (Scope.check_export, SPEC 1).
    "bundles": frozenset({"auditor", "exporter", "authority"}),
    # Issue 18: the flags touching the certificates going to a country (Scope.check_destination).
    "feeds": frozenset({"auditor", "authority"}),
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
