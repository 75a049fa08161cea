"""What one app holds for its requests: the ledger, the group writer, the token cache."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import current_app

from ledger.accounts import Principal
from ledger.reads import Scope
from ledger.recorder.events import Ledger
from webui.auth import TokenCache
from webui.writer import GroupWriter


@dataclass
class Services:
    ledger: Ledger
    writer: GroupWriter
    tokens: TokenCache  # writes only: see webui.auth
    vkey: str  # the log's verifier key, derived once


def services() -> Services:
    found: Services = current_app.extensions["alluvial"]
    return found


def ledger() -> Ledger:
    return services().ledger


@contextmanager
def reading(principal: Principal | None = None) -> Iterator[Scope]:
    """The reads of one request, as ``principal`` may see them (``ledger.reads``)."""
    with services().ledger.engine.connect() as conn:
        yield Scope(conn, principal)
