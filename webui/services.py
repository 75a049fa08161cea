"""What one app holds for its requests: the ledger, the group writer, the token cache."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from ledger.events import Ledger
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
def reading() -> Iterator[sa.Connection]:
    """A connection for the reads of one request."""
    with services().ledger.engine.connect() as conn:
        yield conn
