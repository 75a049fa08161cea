"""`alluvial backup DEST` (issue #15): a consistent copy of a SQLite ledger, verified.

SQLite's online backup API copies the database page by page while writers go on, and the
copy holds every committed write, including those still in the WAL file (a plain copy of
the main file alone silently lacks them). The copy is then verified like the live log
(every entry, every stored checkpoint) and shown to extend the live log's latest
checkpoint taken before the copy began. PostgreSQL is backed up with its own tools.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlalchemy as sa

from ledger.db import is_sqlite, make_engine
from ledger.errors import InputError, VerificationError
from ledger.log.keys import SigningKey
from ledger.log.store import Log
from ledger.log.verify import verify_log

PG_HOWTO = (
    "backup: this ledger is on PostgreSQL, which `alluvial backup` does not copy: use "
    "`pg_dump --format=custom --file=ledger.dump DBNAME` (a consistent snapshot while the "
    "ledger runs) and restore with `pg_restore --dbname=NEWDB ledger.dump`; keep the log "
    "key and a saved checkpoint with it (README, Backup and restore)."
)


def backup(engine: sa.Engine, key: SigningKey, dest: Path) -> str:
    """Copy the ledger to the new SQLite file ``dest``, verify the copy against the live
    log's latest checkpoint, and return the copy's latest checkpoint note."""
    if not is_sqlite(engine):
        raise InputError(PG_HOWTO, rule="CONFIG")
    live = Log(engine, key).latest_checkpoint()
    if live is None:
        raise InputError("backup: the ledger has no checkpoint yet; run `alluvial init`.",
                         rule="CONFIG")
    try:
        # 0600 and never over an existing file: the copy holds everything the ledger does.
        os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError as exc:
        raise InputError(f"backup: {dest} already exists; give a new file.",
                         rule="BAD_REQUEST") from exc
    except OSError as exc:
        raise InputError(f"backup: cannot create {dest}: {exc.strerror}.",
                         rule="BAD_REQUEST") from exc
    raw = engine.raw_connection()
    try:
        source = raw.driver_connection
        assert isinstance(source, sqlite3.Connection)
        with sqlite3.connect(dest) as copy:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=WAL")
        copy.close()
    finally:
        raw.close()
    copied = make_engine(f"sqlite:///{dest}")
    try:
        report = verify_log(copied, key.verifier, live, signer=key)
        note = Log(copied, key).latest_checkpoint()
    finally:
        copied.dispose()
    if not report.ok or note is None:
        raise VerificationError(f"backup: the copy {dest} does not verify: "
                                + " ".join(report.lines()))
    return note
