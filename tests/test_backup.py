"""`alluvial backup DEST` (issue #15): a verified copy of a SQLite ledger; PostgreSQL's tools."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from ledger.cli import cli
from ledger.db import is_sqlite
from ledger.log.store import Log
from tests.test_log import grow


def test_backup_copies_every_acknowledged_write_and_verifies(
    log: Log, runner: CliRunner, tmp_path: Path
) -> None:
    grow(log, 120, per_transaction=40)
    dest = tmp_path / "copy.db"
    result = runner.invoke(cli, ["backup", str(dest)])
    if not is_sqlite(log.engine):
        assert result.exit_code == 2
        assert "pg_dump --format=custom" in result.stderr and "pg_restore" in result.stderr
        assert not dest.exists()
        return
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{log.origin}\n120\n")
    assert dest.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(dest) as copy:
        assert copy.execute("SELECT count(*) FROM entries").fetchone() == (120,)
    restored = CliRunner(env={**runner.env, "ALLUVIAL_DATABASE_URL": f"sqlite:///{dest}"})
    saved = tmp_path / "live.note"
    saved.write_text(log.latest_checkpoint() or "")
    check = restored.invoke(cli, ["verify", "--checkpoint", str(saved)])
    assert check.exit_code == 0, check.output


def test_backup_never_overwrites(log: Log, runner: CliRunner, tmp_path: Path) -> None:
    dest = tmp_path / "copy.db"
    dest.write_bytes(b"keep me")
    result = runner.invoke(cli, ["backup", str(dest)])
    assert result.exit_code == 2
    assert dest.read_bytes() == b"keep me"
    if is_sqlite(log.engine):
        assert f"backup: {dest} already exists; give a new file." in result.stderr
