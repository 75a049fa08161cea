"""`alluvial verify` against a database edited behind the application's back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ledger.cli import cli
from ledger.db import (
    APPEND_ONLY_TABLES,
    install_triggers,
    is_sqlite,
    log_head,
    make_engine,
    trigger_names,
)
from ledger.log.keys import SigningKey
from ledger.log.store import Log
from tests.test_log import grow, purchase


def drop_triggers(conn: sa.Connection) -> None:
    for table in APPEND_ONLY_TABLES:
        for name in trigger_names(table):
            if is_sqlite(conn):
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
            else:
                conn.exec_driver_sql(f"DROP TRIGGER {name} ON {table}")


def change_payload_byte(conn: sa.Connection) -> None:
    conn.exec_driver_sql(
        "UPDATE entries SET payload = replace(payload, 'P-000020', 'P-000029') WHERE seq = 20"
    )


def delete_row(conn: sa.Connection) -> None:
    conn.exec_driver_sql("DELETE FROM entries WHERE seq = 20")


def copy_row(conn: sa.Connection, source: int, target: int) -> None:
    conn.exec_driver_sql(
        "INSERT INTO entries (seq, ts, kind, actor, payload, event_id, prev, entry_hash) "
        f"SELECT {target}, ts, kind, actor, payload, NULL, prev, entry_hash "
        f"FROM entries WHERE seq = {source}"
    )


def swap_rows(conn: sa.Connection) -> None:
    conn.exec_driver_sql("UPDATE entries SET seq = -1 WHERE seq = 20")
    conn.exec_driver_sql("UPDATE entries SET seq = 20 WHERE seq = 21")
    conn.exec_driver_sql("UPDATE entries SET seq = 21 WHERE seq = -1")


def insert_row_at_end(conn: sa.Connection) -> None:
    copy_row(conn, 20, 61)


def insert_row_in_middle(conn: sa.Connection) -> None:
    # Make room at 20 by moving 20..60 up by one, then slip a row in.
    conn.exec_driver_sql("UPDATE entries SET seq = seq + 1000 WHERE seq >= 20")
    conn.exec_driver_sql("UPDATE entries SET seq = seq - 999 WHERE seq >= 1000")
    copy_row(conn, 19, 20)


def rewrite_hash_too(conn: sa.Connection) -> None:
    """Change entry 20 and store the new hash with it: entry 21's prev still commits to the old."""
    from ledger.log import merkle
    from ledger.log.store import Entry

    change_payload_byte(conn)
    row = conn.exec_driver_sql("SELECT * FROM entries WHERE seq = 20").first()
    digest = merkle.leaf_hash(Entry.from_row(row).canonical_bytes())
    conn.execute(sa.text("UPDATE entries SET entry_hash = :h WHERE seq = 20"), {"h": digest})


TAMPERING: list[tuple[Callable[[sa.Connection], None], str]] = [
    (change_payload_byte, "entry 20"),
    (rewrite_hash_too, "entry 20"),
    (delete_row, "entry 20"),
    (swap_rows, "entry 20"),
    (insert_row_at_end, "entry 61"),
    (insert_row_in_middle, "entry 20"),
]


@pytest.fixture
def sixty(log: Log) -> Log:
    grow(log, 60, per_transaction=20)
    return log


def test_untouched_log_verifies(sixty: Log, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["verify"])
    assert result.exit_code == 0, result.output
    assert "OK: 60 entries" in result.output
    assert f"root {sixty.root().hex()}" in result.output


@pytest.mark.parametrize(
    ("tamper", "first_line"), TAMPERING, ids=[t.__name__ for t, _ in TAMPERING]
)
def test_tampered_log_fails_naming_the_first_bad_entry(
    sixty: Log, runner: CliRunner, tamper: Callable[[sa.Connection], None], first_line: str
) -> None:
    with sixty.engine.begin() as conn:
        drop_triggers(conn)
        tamper(conn)
    result = runner.invoke(cli, ["verify"])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(first_line + ":"), lines
    assert any("append-only trigger" in line for line in lines[1:])


def test_dropped_triggers_alone_fail_verification(sixty: Log, runner: CliRunner) -> None:
    with sixty.engine.begin() as conn:
        drop_triggers(conn)
    result = runner.invoke(cli, ["verify"])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "append-only trigger entries_no_update is missing."


def test_checkpoint_signed_by_another_key_fails(sixty: Log, runner: CliRunner) -> None:
    impostor = SigningKey.generate(sixty.origin)
    forged = Log(sixty.engine, impostor)
    forged.checkpoint()
    result = runner.invoke(cli, ["verify"])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith("latest checkpoint:")


def test_tampered_merkle_node_is_found(sixty: Log, runner: CliRunner) -> None:
    with sixty.engine.begin() as conn:
        drop_triggers(conn)
        conn.execute(sa.text("UPDATE merkle_nodes SET hash = :h"), {"h": bytes(32)})
    result = runner.invoke(cli, ["verify"])
    assert result.exit_code == 1
    assert "Merkle node at level 4, index 0 does not match" in result.stdout


def test_earlier_checkpoint_consistent(sixty: Log, runner: CliRunner, tmp_path: Path) -> None:
    saved = tmp_path / "cp40.note"
    result = runner.invoke(cli, ["checkpoint"])
    assert result.exit_code == 0
    saved.write_text(result.stdout)
    grow(sixty, 90)
    result = runner.invoke(cli, ["verify", "--checkpoint", str(saved)])
    assert result.exit_code == 0, result.output
    assert "consistent with the given checkpoint" in result.stdout


def _rebuilt(settings, key: SigningKey, total: int, rewrite: int | None) -> None:  # type: ignore[no-untyped-def]
    """Replace the database with another history signed by the same (stolen) key."""
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:
        drop_triggers(conn)
        for table in ("checkpoints", "merkle_nodes", "entries", "log_head"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
        conn.execute(log_head.insert().values(id=1, size=0, head_hash=bytes(32), frontier=b""))
    log = Log(engine, key)
    log.append("actor.registered", "admin", {"actor_id": "admin", "role": "admin",
                                             "country": "ZZ", "date": "2026-01-01"})
    with log.writer() as w:
        for i in range(2, total + 1):
            payload = purchase(i)
            if i == rewrite:
                payload["carats"] = 999
            w.append("parcel.purchased", "buyer-gh-1", payload, event_id=f"ev-{i}")
    with engine.begin() as conn:
        install_triggers(conn)
    engine.dispose()


@pytest.mark.parametrize(("total", "rewrite", "message"), [
    (30, None, "the log was truncated"),
    (60, 10, "the log was rewritten below it"),
], ids=["truncated", "rewritten"])
def test_history_replaced_under_an_earlier_checkpoint_fails(
    sixty: Log, runner: CliRunner, settings, tmp_path: Path, total: int, rewrite: int | None,  # type: ignore[no-untyped-def]
    message: str,
) -> None:
    saved = tmp_path / "cp60.note"
    saved.write_text(sixty.latest_checkpoint() or "")
    _rebuilt(settings, sixty.key, total, rewrite)
    forged = runner.invoke(cli, ["verify"])
    assert forged.exit_code == 0, forged.output  # a self-consistent forgery
    result = runner.invoke(cli, ["verify", "--checkpoint", str(saved)])
    assert result.exit_code == 1
    assert message in result.stdout


KILLED_WRITER = textwrap.dedent("""
    import sys
    from ledger.config import Settings
    from ledger.db import make_engine
    from ledger.log.keys import load_or_create
    from ledger.log.store import Log
    from tests.test_log import purchase

    s = Settings.from_env()
    log = Log(make_engine(s.database_url), load_or_create(s.log_key_path, s.origin))
    i = 0
    while True:
        with log.writer(batch=100) as w:
            for _ in range(500):
                i += 1
                w.append("parcel.purchased", "buyer-gh-1", purchase(i))
        print(i, flush=True)
""")


@pytest.mark.slow
def test_sigkill_mid_append_leaves_whole_transactions(
    log: Log, env: dict[str, str], runner: CliRunner
) -> None:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER], cwd=root, env={**os.environ, **env},
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    for _ in range(4):  # four whole transactions committed, the fifth under way
        assert proc.stdout.readline()
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    size = log.size()
    assert size >= 2001 and (size - 1) % 500 == 0
    result = runner.invoke(cli, ["verify"])
    assert result.exit_code == 0, result.output
