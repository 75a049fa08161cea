"""The fixture ladder: db_url (SQLite and PostgreSQL), then settings, then a
fresh initialised ledger in tmp_path, then the CLI runner."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.config import Settings
from ledger.db import make_engine
from ledger.events import Ledger
from ledger.keys import load_or_create
from ledger.log import Log
from tests import pg

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    url = os.environ.get("ALLUVIAL_TEST_PG_URL")
    if url:
        yield url
        return
    if pg.pg_bindir() is None:
        if os.environ.get("ALLUVIAL_REQUIRE_PG"):
            pytest.fail("ALLUVIAL_REQUIRE_PG is set but PostgreSQL is not installed")
        pytest.skip("PostgreSQL is not installed (initdb/pg_ctl not found)")
    with pg.running_server() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    server = request.getfixturevalue("pg_server")
    with pg.fresh_database(server) as url:
        yield url


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, log_key_path=tmp_path / "log.key")


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """Environment for the CLI, in a subprocess or CliRunner."""
    return {
        "ALLUVIAL_DATABASE_URL": settings.database_url,
        "ALLUVIAL_LOG_KEY": str(settings.log_key_path),
        "ALLUVIAL_LOG_ORIGIN": settings.origin,
    }


@pytest.fixture
def engine(settings: Settings) -> Iterator[object]:
    eng = make_engine(settings.database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def log(ledger: Ledger) -> Log:
    """The log of a freshly initialised ledger: entry 1 is the actor admin."""
    return ledger.log


@pytest.fixture
def ledger(engine, settings: Settings) -> Ledger:  # type: ignore[no-untyped-def]
    """A freshly initialised ledger (log, projections, entry 1 the actor admin)."""
    book = Ledger(engine, load_or_create(settings.log_key_path, settings.origin))
    book.initialise()
    return book


@pytest.fixture
def runner(env: dict[str, str]) -> CliRunner:
    return CliRunner(env=env)
