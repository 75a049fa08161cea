"""Group commits in a writer process of their own (`alluvial serve`; webui.writer_process):
the answers are those of an in-process write, refusals and revoked tokens included, and
a writer process that dies costs the writes of the next second a 503, not the server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from ledger import accounts
from ledger.config import Settings
from ledger.recorder.events import Ledger
from tests.conftest import Auth
from tests.test_api import assert_problem, post, purchase, snapshot
from tests.test_api import world as world  # the fixture: accounts and parcels
from webui.writer_process import RESTART_PAUSE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def served(world: Ledger, settings: Settings) -> Iterator[Flask]:
    """An app over the same database as ``world``, committing in a writer process."""
    from webui import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": settings.database_url,
                      "LOG_KEY": str(settings.log_key_path), "LOG_ORIGIN": settings.origin,
                      "LATE_DAYS": settings.late_days,
                      "WRITER_PROCESS": True})
    yield app
    services = app.extensions["alluvial"]
    services.writer.close()
    services.ledger.engine.dispose()


def writer_pid(app: Flask) -> int:
    pid = app.extensions["alluvial"].writer.process.pid
    assert pid is not None and pid != os.getpid()
    return int(pid)


def test_a_write_is_committed_in_the_writer_process_and_answered_as_in_process(
        world: Ledger, served: Flask, auth: Auth) -> None:
    client: FlaskClient = served.test_client()
    headers = auth.headers("buyer")
    writer_pid(served)
    size = world.log.size()
    first = post(client, headers, "parcel.purchased", purchase("W1"), event_id="w-1")
    assert first.status_code == 201, first.get_data(as_text=True)
    body = first.get_json()
    assert body["seq"] == size + 1 and body["flags"] == []
    assert body["checkpoint"] == world.log.latest_checkpoint()
    assert world.log.entry(size + 1).payload["parcel_id"] == "W1"
    again = post(client, headers, "parcel.purchased", purchase("W1"), event_id="w-1")
    assert again.status_code == 200 and again.get_json()["seq"] == size + 1
    flagged = post(client, headers, "parcel.purchased", purchase("W2", site="S-NOWHERE"))
    assert [f["code"] for f in flagged.get_json()["flags"]] == ["UNREGISTERED_SITE"]
    before = snapshot(world)
    assert_problem(post(client, headers, "parcel.purchased", purchase("P1")), 409, "DUPLICATE",
                   "payload.parcel_id")
    assert_problem(post(client, headers, "parcel.purchased", purchase("W3"), event_id="w-1"),
                   409, "EVENT_ID_CONFLICT", "event_id")
    assert snapshot(world) == before


def test_a_deleted_token_is_refused_in_the_writer_process_transaction(
        world: Ledger, served: Flask, auth: Auth) -> None:
    client = served.test_client()
    headers = auth.headers("buyer")
    assert post(client, headers, "parcel.purchased", purchase("T1")).status_code == 201
    digest = accounts.token_digest(auth.token("buyer"))
    with world.engine.begin() as conn:
        conn.execute(sa.delete(accounts.Token).where(accounts.Token.token_hash == digest))
    before = snapshot(world)
    assert_problem(post(client, headers, "parcel.purchased", purchase("T2")), 401,
                   "UNAUTHENTICATED")
    assert snapshot(world) == before


def test_a_writer_process_that_dies_costs_a_second_of_503_then_a_new_one_writes(
        world: Ledger, served: Flask, auth: Auth) -> None:
    client = served.test_client()
    headers = auth.headers("buyer")
    assert post(client, headers, "parcel.purchased", purchase("D1")).status_code == 201
    first = writer_pid(served)
    os.kill(first, signal.SIGKILL)
    served.extensions["alluvial"].writer.process._process.wait(timeout=10)
    before = snapshot(world)
    lost = post(client, headers, "parcel.purchased", purchase("D2"), event_id="d-2")
    assert_problem(lost, 503, "DATABASE_UNAVAILABLE")
    assert lost.headers["Retry-After"] == "1"
    assert snapshot(world) == before
    # For a second after, writes are answered 503 at once rather than start a process each.
    assert_problem(post(client, headers, "parcel.purchased", purchase("D2"), event_id="d-2"),
                   503, "DATABASE_UNAVAILABLE")
    time.sleep(RESTART_PAUSE)
    retried: Any = post(client, headers, "parcel.purchased", purchase("D2"), event_id="d-2")
    assert retried.status_code == 201, retried.get_data(as_text=True)
    assert retried.get_json()["seq"] == before[0] + 1
    assert writer_pid(served) != first


def test_an_unguarded_script_that_makes_the_app_writes_through_the_writer_process(
        world: Ledger, settings: Settings, auth: Auth, tmp_path: Any) -> None:
    """The writer process never runs the caller's main module again (as multiprocessing's
    spawn would: an unguarded script would then start writers without end)."""
    script = tmp_path / "embed.py"
    script.write_text(textwrap.dedent(f"""
        from webui import create_app
        app = create_app({{"DATABASE_URL": {settings.database_url!r},
                          "LOG_KEY": {str(settings.log_key_path)!r},
                          "LOG_ORIGIN": {settings.origin!r}, "WRITER_PROCESS": True}})
        answer = app.test_client().post("/api/v1/events", json={{
            "kind": "parcel.purchased", "payload": {json.dumps(purchase("U1"))}}},
            headers={json.dumps(auth.headers("buyer"))})
        print(answer.status_code, answer.get_json()["seq"])
        app.extensions["alluvial"].writer.close()
    """))
    size = world.log.size()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.stdout.split() == ["201", str(size + 1)], done.stderr
    assert world.log.entry(size + 1).payload["parcel_id"] == "U1"
