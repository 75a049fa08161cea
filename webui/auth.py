"""Bearer tokens to principals (SPEC 6: `Authorization: Bearer TOKEN`).

A token is looked up once and then remembered, by its SHA-256 only, for
``ttl`` seconds, so a busy client costs one query a minute instead of one a request.
"""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa
from flask import current_app, g, request

from ledger.accounts import READS, Principal, Unauthenticated, authenticate, require, token_digest


class TokenCache:
    """Principals of recently seen tokens, keyed by the token's digest."""

    def __init__(self, engine: sa.Engine, ttl: float = 60.0, size: int = 4096) -> None:
        self.engine = engine
        self.ttl = ttl
        self.size = size
        self._seen: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def principal(self, token: str) -> Principal:
        key = token_digest(token)
        now = time.monotonic()
        hit = self._seen.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        principal = authenticate(self.engine, token)
        with self._lock:
            if len(self._seen) >= self.size:
                self._seen.clear()
            self._seen[key] = (now + self.ttl, principal)
        return principal


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
        principal = current_app.extensions["alluvial"].tokens.principal(token)
        g.principal = principal
    require(principal, area)
    return principal


def member(area: str) -> Principal:
    """Like :func:`caller`, for an area that needs an account."""
    principal = caller(area)
    assert principal is not None  # require() refuses anonymous callers of such areas
    return principal
