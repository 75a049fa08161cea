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
import json
import secrets
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import projections as pj
from ledger.custody import Trace, trace
from ledger.db import driver_execute
from ledger.errors import Conflict, InputError, LedgerError, NotFound, PermissionDenied
from ledger.log import ADMIN

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


@dataclass(frozen=True)
class Scope:
    """Reads of the projections as one principal may see them."""

    conn: sa.Connection
    principal: Principal

    @property
    def sees_all(self) -> bool:
        return self.principal.role in READ_ALL

    def held(self, parcel_id: str) -> bool:
        """The parcel is held by the actor now, or was (it is on one of its custody steps)."""
        me = self.principal.actor_id
        p, e = pj.parcels, pj.edges
        if self.conn.execute(sa.select(p.c.seq).where(
                p.c.parcel_id == parcel_id, p.c.holder == me)).first():
            return True
        touches = sa.or_(sa.and_(e.c.from_type == "parcel", e.c.from_id == parcel_id),
                         sa.and_(e.c.to_type == "parcel", e.c.to_id == parcel_id))
        return self.conn.execute(sa.select(e.c.seq).where(touches, e.c.actor == me)
                                 .limit(1)).first() is not None

    def check_parcel(self, parcel_id: str) -> None:
        # Same answer whether the parcel exists or not: a scoped caller learns nothing else.
        if not self.sees_all and not self.held(parcel_id):
            raise PermissionDenied(f"parcel_id: '{parcel_id}' is not a parcel that "
                                   f"'{self.principal.actor_id}' holds or held.",
                                   field="parcel_id")

    def parcel(self, parcel_id: str) -> dict[str, Any]:
        self.check_parcel(parcel_id)
        row = self.conn.execute(
            sa.select(pj.parcels).where(pj.parcels.c.parcel_id == parcel_id)).first()
        if row is None:
            raise NotFound(f"parcel_id: there is no parcel '{parcel_id}'.", field="parcel_id")
        return {
            "parcel_id": row.parcel_id, "holder": row.holder, "carats": row.points / 100,
            "stones": row.stones, "status": row.status, "on_hold": row.open_flags > 0,
            "open_flags": row.open_flags, "site_id": row.site_id, "date": row.date,
            "seq": row.seq, "spent_seq": row.spent_seq,
            "flags": self.flags(subject=("parcel", parcel_id)),
        }

    def custody(self, parcel_id: str, direction: str) -> Trace:
        self.parcel(parcel_id)  # visibility, then existence
        return trace(self.conn, parcel_id, direction)

    def flags(self, status: str | None = None,
              subject: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """Flags in the shape of `flags --json`; a scoped caller's are those on its parcels
        (held or once held) and on its exports."""
        f = pj.flags
        query = sa.select(f).order_by(f.c.seq)
        if status is not None:
            query = query.where(f.c.status == status)
        if subject is not None:
            query = query.where(f.c.subject_type == subject[0], f.c.subject_id == subject[1])
        elif not self.sees_all:
            mine = pj.exports.c.exporter == self.principal.actor_id
            query = query.where(sa.or_(
                sa.and_(f.c.subject_type == "parcel", f.c.subject_id.in_(self._held_parcels())),
                sa.and_(f.c.subject_type == "export", f.c.subject_id.in_(
                    sa.select(pj.exports.c.certificate_no).where(mine)))))
        return [{"flag_id": r.flag_id, "seq": r.seq, "code": r.code,
                 "subject": {"type": r.subject_type, "id": r.subject_id}, "detail": r.detail,
                 "status": r.status} for r in self.conn.execute(query)]

    def _held_parcels(self) -> sa.CompoundSelect[Any]:
        me, p, e = self.principal.actor_id, pj.parcels, pj.edges
        return sa.union(
            sa.select(p.c.parcel_id).where(p.c.holder == me),
            sa.select(e.c.from_id).where(e.c.actor == me, e.c.from_type == "parcel"),
            sa.select(e.c.to_id).where(e.c.actor == me, e.c.to_type == "parcel"),
        )

    def check_export(self, certificate_no: str) -> None:
        """A bundle is the auditor's or its exporter's to download."""
        if self.sees_all:
            return
        x = pj.exports
        row = self.conn.execute(sa.select(x.c.exporter).where(
            x.c.certificate_no == certificate_no)).first()
        if row is None or row.exporter != self.principal.actor_id:
            raise PermissionDenied(f"certificate_no: '{certificate_no}' is not an export of "
                                   f"'{self.principal.actor_id}'.", field="certificate_no")


# -- the public map (any account) ------------------------------------------------------

def _geometry(text: str) -> Any:
    return json.loads(text)


def zones(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    """Zones and risk areas as GeoJSON features (properties: the projection's columns)."""
    z = pj.zones
    for r in conn.execute(sa.select(z).order_by(z.c.zone_id)):
        props = {k: v for k, v in r._mapping.items() if k not in ("geometry", "last_seq")}
        yield {"type": "Feature", "id": r.zone_id, "geometry": _geometry(r.geometry),
               "properties": props}


def sites(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    """Mine sites as GeoJSON features."""
    s = pj.sites
    for r in conn.execute(sa.select(s).order_by(s.c.site_id)):
        props = {k: v for k, v in r._mapping.items() if k != "location"}
        yield {"type": "Feature", "id": r.site_id, "geometry": _geometry(r.location),
               "properties": props}
