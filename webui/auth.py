"""Bearer tokens to principals (SPEC 6: `Authorization: Bearer TOKEN`).

A token that stops counting (SPEC 6: revoked, expired, its user disabled or deleted),
by this server or by any other process, fails on its very next request. Reads look
their token up on every request, by its SHA-256, in one indexed query
(ledger.accounts.authenticate). A write (POST /events) may take its principal from
:class:`TokenCache`, because its token is checked again where it counts: in the
write's own transaction (webui.group_commit), which refuses it once it no longer
counts. That saves a pooled connection and a round trip on every write, and on
PostgreSQL its BEGIN and ROLLBACK too.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa
from flask import current_app, g, request

from ledger.accounts import READS, Principal, Unauthenticated, authenticate, require, token_digest


class TokenCache:
    """Principals of tokens that were valid when first seen, keyed by the token's digest.

    Only for callers that check the token again atomically with their effect: a token
    maps to one user for good (tokens are never reassigned), so what is remembered
    goes stale only when the token stops counting, which that check sees.
    """

    def __init__(self, engine: sa.Engine, size: int = 4096) -> None:
        self.engine = engine
        self.size = size
        self._seen: dict[str, Principal] = {}
        self._lock = threading.Lock()

    def principal(self, token: str) -> tuple[str, Principal]:
        """The token's digest and principal; :class:`Unauthenticated` if it was never valid."""
        key = token_digest(token)
        found = self._seen.get(key)
        if found is None:
            found = authenticate(self.engine, token)
            with self._lock:
                if len(self._seen) >= self.size:
                    self._seen.clear()
                self._seen[key] = found
        return key, found

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)


def bearer_token() -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("Authorization: expected `Bearer TOKEN`.")
    return token


def caller(area: str) -> Principal | None:
    """The principal of this request, once it may use ``area`` (401/403 otherwise).

    Public areas never look at the token: their answers are the same for everyone.
    """
    if READS[area] is None:
        return None
    token = bearer_token()
    principal = None
    if token is not None:
        principal = authenticate(current_app.extensions["alluvial"].ledger.engine, token)
        g.principal = principal
    require(principal, area)
    return principal


def optional_caller() -> Principal | None:
    """The principal of a request to a public read that shows some accounts more (SPEC 6:
    statistics by finer keys): None without a token, 401 for a token that counts for nobody."""
    token = bearer_token()
    if token is None:
        return None
    principal = authenticate(current_app.extensions["alluvial"].ledger.engine, token)
    g.principal = principal
    return principal


def member(area: str) -> Principal:
    """Like :func:`caller`, for an area that needs an account."""
    principal = caller(area)
    assert principal is not None  # require() refuses anonymous callers of such areas
    return principal


def writing_member() -> tuple[Principal, str]:
    """The principal of a write and its token's digest, for the write's transaction to check.

    Refuses like :func:`member` (401, 403), but a token seen before is not looked up again.
    """
    token, key, principal = bearer_token(), "", None
    if token is not None:
        key, principal = current_app.extensions["alluvial"].tokens.principal(token)
        g.principal = principal
    require(principal, "events")
    assert principal is not None  # require() refuses anonymous writers
    return principal, key
