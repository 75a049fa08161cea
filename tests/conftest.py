"""The fixture ladder: db_url (SQLite and PostgreSQL), then settings, then a
fresh initialised ledger in tmp_path, then the CLI runner."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.config import Settings
from ledger.db import make_engine
from ledger.log.keys import load_or_create
from ledger.log.store import Log
from ledger.recorder.events import Event, Ledger, WriteResult
from tests import pg

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
# The tests' worlds are history (2004-2016) written today, as an archive import would write
# it: LATE_ENTRY (SPEC 5) would flag, and so hold, every purchase of them. Its own tests use
# the default of 30 days (tests/test_time.py).
HISTORY_LATE_DAYS = 100 * 366


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
    return Settings(database_url=db_url, log_key_path=tmp_path / "log.key",
                    late_days=HISTORY_LATE_DAYS)


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """Environment for the CLI, in a subprocess or CliRunner."""
    return {
        "ALLUVIAL_DATABASE_URL": settings.database_url,
        "ALLUVIAL_LOG_KEY": str(settings.log_key_path),
        "ALLUVIAL_LOG_ORIGIN": settings.origin,
        "ALLUVIAL_LATE_DAYS": str(settings.late_days),
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
    book = Ledger(engine, load_or_create(settings.log_key_path, settings.origin),
                  late_days=settings.late_days)
    book.initialise()
    return book


Write = Callable[..., WriteResult]


@pytest.fixture
def write(ledger: Ledger) -> Write:
    """``write(kind, actor, event_id=None, **payload)``: one event through the ledger."""
    def _write(kind: str, actor: str, event_id: str | None = None, **payload: Any) -> WriteResult:
        return ledger.write(Event(kind, actor, payload, event_id))
    return _write


@pytest.fixture
def runner(env: dict[str, str]) -> CliRunner:
    return CliRunner(env=env)


@pytest.fixture
def app(ledger: Ledger):  # type: ignore[no-untyped-def]
    from webui import create_app

    return create_app({"TESTING": True, "LEDGER": ledger})


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


AUTH_ACTORS = {"admin": "admin", "officer": "off-gh", "buyer": "buyer-a", "exporter": "exp-gh",
               "auditor": "aud-1"}


class Auth:
    """One bearer token per role, each user acting as a registered actor of that role."""

    ACTORS = AUTH_ACTORS

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.tokens: dict[tuple[str, str], str] = {}

    def token(self, role: str, actor: str | None = None) -> str:
        from ledger import accounts

        actor = actor or self.ACTORS[role]
        if (role, actor) not in self.tokens:
            self.register(role, actor)
            name = f"{role}.{actor}"
            accounts.add_user(self.ledger.engine, name, role, actor)
            self.tokens[role, actor] = accounts.create_token(self.ledger.engine, name)
        return self.tokens[role, actor]

    def headers(self, role: str | None, actor: str | None = None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.token(role, actor)}"}

    def register(self, role: str, actor: str) -> None:
        """Register the actor (GH, licensed 2000-2030) unless it already is."""
        from ledger.projections import actors
        from ledger.recorder.events import Event

        with self.ledger.engine.connect() as conn:
            if conn.execute(actors.select().where(actors.c.actor_id == actor)).first():
                return
        if role != "officer":
            self.register("officer", self.ACTORS["officer"])
        payload = {"actor_id": actor, "name": actor.title(), "role": role, "country": "GH",
                   "date": "2004-01-02"}
        if role in ("buyer", "exporter"):
            payload.update(licence_no=f"LIC-{actor}", licence_valid_from="2000-01-01",
                           licence_valid_to="2030-12-31")
        writer = "admin" if role == "officer" else self.ACTORS["officer"]
        self.ledger.write(Event("actor.registered", writer, payload))


@pytest.fixture
def auth(app, ledger: Ledger) -> Auth:  # type: ignore[no-untyped-def]
    from ledger.accounts import create_tables

    create_tables(ledger.engine)
    return Auth(ledger)


# -- the small world's licence zone and pit, as most test worlds register them -----------------

SQUARE = {"type": "Polygon", "coordinates": [[[-0.9, 5.9], [-0.7, 5.9], [-0.7, 6.1],
                                              [-0.9, 6.1], [-0.9, 5.9]]]}


def register_akwatia(write: Callable[..., Any]) -> None:
    """``off-gh`` registers licence zone Z-AKW (SQUARE, licence GH-ML-AKW-1) on 2004-01-06 and
    the pit S-AKW inside it on 2004-01-07; ``write(kind, actor, **payload)``."""
    write("zone.registered", "off-gh", zone_id="Z-AKW", zone_type="licence", geometry=SQUARE,
          date="2004-01-06", valid_from="2000-01-01", valid_to=None, licence_no="GH-ML-AKW-1",
          holder="Akwatia Diggers Cooperative")
    write("site.registered", "off-gh", site_id="S-AKW", name="Akwatia pit 1",
          location={"type": "Point", "coordinates": [-0.8, 6.04]}, licence_no="GH-ML-AKW-1",
          operator="Akwatia Diggers Cooperative", country="GH", date="2004-01-07")


# -- the demo, built once per test session --------------------------------------------------

DEMO_ENV = {"ALLUVIAL_DATABASE_URL": "", "ALLUVIAL_LOG_KEY": ""}


def run_in(folder: Path, args: list[str]) -> Any:
    """Run ``alluvial ARGS`` in ``folder`` with the default settings (the demo's files there)."""
    from ledger.cli import cli
    old = Path.cwd()
    os.chdir(folder)
    try:
        return CliRunner(env=DEMO_ENV).invoke(cli, args)
    finally:
        os.chdir(old)


@pytest.fixture(scope="session")
def built_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`alluvial demo --no-serve` run once (its folder and what it printed); modules take a
    copy of the folder (``copy_demo``) rather than build their own."""
    folder = tmp_path_factory.mktemp("demo-built")
    result = run_in(folder, ["demo", "--no-serve"])
    assert result.exit_code == 0, result.output
    return folder, result.stdout


def copy_demo(built: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory,
              name: str) -> Path:
    """A folder of one's own holding the built demo's database, key and tokens."""
    folder = tmp_path_factory.mktemp(name)
    for item in built[0].iterdir():
        if item.is_file():
            shutil.copy2(item, folder / item.name)
    return folder
