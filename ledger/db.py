"""Database engine and the log's own tables (SPEC 3).

The core holds no global engine: callers make one with :func:`make_engine` and
pass it in. Writes go through :func:`write_transaction`, which takes the
database's write lock up front (SQLite ``BEGIN IMMEDIATE``); the log adds a row
lock on its head on PostgreSQL, so appends are serialized by the database.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, nullcontext, suppress
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from ledger.errors import InputError

# SQLite only aliases the rowid for a column typed exactly INTEGER.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

log_metadata = sa.MetaData()

entries = sa.Table(
    "entries",
    log_metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=False),
    sa.Column("ts", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    # The payload's RFC 8785 text, kept byte for byte so hashes re-derive from rows.
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("event_id", sa.String(128), nullable=True, unique=True),
    sa.Column("prev", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.LargeBinary(32), nullable=False),
)
# Issue 19: an actor's latest entries (every dashboard but the auditor's, /entries?actor=)
# without reading the log back to its start.
sa.Index("ix_entries_actor_seq", entries.c.actor, entries.c.seq)

# Interior nodes of the Merkle tree at level >= NODE_MIN_LEVEL, so a proof needs
# a handful of rows whatever the size. ``id`` orders nodes by the leaf that
# completed them (see ledger.tree.node_id), so verify can stream them.
merkle_nodes = sa.Table(
    "merkle_nodes",
    log_metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

# One row: the size, the last entry hash and the Merkle frontier. Appends lock it.
log_head = sa.Table(
    "log_head",
    log_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("head_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("frontier", sa.LargeBinary, nullable=False),
)

checkpoints = sa.Table(
    "checkpoints",
    log_metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("ts", sa.String(40), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
)

APPEND_ONLY_TABLES = ("entries", "merkle_nodes", "checkpoints")

# The unique keys of each append-only table. SQLite's INSERT OR REPLACE deletes the row
# holding a taken key without firing DELETE triggers, so a BEFORE INSERT trigger refuses
# an insert whose key is taken (PostgreSQL's ON CONFLICT DO UPDATE fires UPDATE triggers).
UNIQUE_KEYS = {"entries": ("seq", "event_id"), "merkle_nodes": ("id",), "checkpoints": ("id",)}


def trigger_names(table: str) -> tuple[str, str]:
    return (f"{table}_no_update", f"{table}_no_delete")


def insert_guard_name(table: str) -> str:
    return f"{table}_no_replace"


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given without a driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# How long a SQLite write waits for another's write lock before it is refused. Writes hold
# it for milliseconds; a whole-file ingest, rebuild or rescreen holds it to its end, and a
# write behind one is refused after this wait (HTTP 503 with Retry-After, the CLI naming
# the lock), not left waiting for minutes (issue 15: an HTTP write waited 130 s).
BUSY_TIMEOUT_S = 30.0


def locked(exc: BaseException) -> bool:
    """Whether a database error is SQLite's write lock, held by another process too long."""
    return "database is locked" in str(getattr(exc, "orig", exc))


LOCKED_HINT = (
    "another process holds the SQLite ledger's write lock, and held it for more than "
    f"{BUSY_TIMEOUT_S:.0f} s: a whole-file `alluvial ingest` (or rebuild, rescreen) holds it "
    "until it ends. Run this again when it is done; ingest a large file with "
    "`alluvial ingest --batch N` (for example --batch 5000) so that other writes get their "
    "turn between batches.")


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine configured for the ledger: WAL, busy waits and explicit BEGIN on SQLite."""
    url = normalise_url(url)
    if url.startswith("sqlite") and (":memory:" in url or url.rstrip("/") == "sqlite:"):
        raise InputError("ALLUVIAL_DATABASE_URL: an in-memory SQLite database would lose the "
                         "ledger; give a file, e.g. sqlite:///ledger.db.", rule="CONFIG")
    if url.startswith("sqlite"):
        _create_private(sa.engine.make_url(url).database)
        engine = sa.create_engine(
            url,
            connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
            pool_size=16,
            max_overflow=16,
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql"):
        return sa.create_engine(url, pool_pre_ping=True, pool_size=16, max_overflow=16, **kwargs)
    raise InputError(
        f"ALLUVIAL_DATABASE_URL: {url.split(':', 1)[0]!r} is not supported; "
        "use a sqlite:/// or postgresql:// URL.",
        rule="CONFIG",
    )


def _create_private(path: str | None) -> None:
    """Create a new SQLite file readable by its owner only (0600); SQLite gives its WAL
    and shared-memory files the same mode. An existing file keeps its own."""
    if not path or path.startswith("file:"):
        return
    # There already, or no such folder (SQLite's own error says so): nothing to do.
    with suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _configure_sqlite(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process; PostgreSQL is the production store.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # SPEC 3: appends are serialized by the database (SQLite BEGIN IMMEDIATE).
        immediate = conn.get_execution_options().get("ledger_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction(engine: sa.Engine, bulk: bool = False) -> Iterator[sa.Connection]:
    """A transaction holding the database's write lock from its first statement.

    ``bulk``: a long transaction (ingest, rebuild, rescreen), given a larger SQLite page
    cache until it has committed (:func:`bulk_cache`)."""
    with engine.connect() as conn:
        conn = conn.execution_options(ledger_write=True)
        with bulk_cache(conn) if bulk else nullcontext(), conn.begin():
            yield conn


def is_sqlite(bind: sa.Engine | sa.Connection) -> bool:
    return bind.dialect.name == "sqlite"


@contextmanager
def _through_driver(conn: sa.Connection, sql: str,
                    params: Any) -> Iterator[tuple[Any, str]]:
    """The driver's connection and ``sql`` (``?`` placeholders) in the driver's paramstyle;
    a driver error is raised as SQLAlchemy's own, as a Core statement would raise it."""
    if conn.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    dbapi = conn.dialect.loaded_dbapi
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        yield driver, sql
    except dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, params, exc, dbapi.Error) from exc


# SQLite's page cache for one bulk write (ingest, rebuild, rescreen), in KiB: with the
# default 2 MiB, a transaction of a million events spills and re-reads index pages; a
# larger cache was slower again (benchmarks/ingest.py: 64 MiB best of 2, 64, 256).
BULK_CACHE_KIB = 64 << 10


@contextmanager
def bulk_cache(conn: sa.Connection) -> Iterator[None]:
    """A larger SQLite page cache on ``conn`` while a bulk write runs; the connection
    goes back to the pool with its own size. Outside a transaction; PostgreSQL: nothing
    to do."""
    if not is_sqlite(conn):
        yield
        return
    (size,) = driver_execute(conn, "PRAGMA cache_size").fetchone()
    driver_execute(conn, f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    try:
        yield
    finally:
        driver_execute(conn, f"PRAGMA cache_size = {int(size)}")


def driver_execute(conn: sa.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    """Run one statement straight through the driver, inside ``conn``'s transaction;
    returns the driver's cursor.

    For the fixed statements of every write and every checkpoint read: SQLAlchemy's
    per-statement work (building, cache key, execution context) costs several times the
    statement itself there.
    """
    with _through_driver(conn, sql, params) as (driver, sql):
        return driver.execute(sql, params)


def driver_rows(conn: sa.Connection, sql: str, params: Sequence[Any] = (),
                name: str | None = None) -> Iterator[tuple[Any, ...]]:
    """The rows of one read straight from the driver (:func:`driver_execute`).

    For reads of thousands of rows on the hot paths (ingest prefetch, traces, rescreen),
    where SQLAlchemy's per-row work costs more than the query. ``name``: on PostgreSQL,
    a named (server-side) cursor, so that memory stays flat over a million rows.
    """
    if not conn.in_transaction():
        conn.begin()  # as Core would: the reads of one call see one snapshot
    if name is None or is_sqlite(conn):
        yield from driver_execute(conn, sql, params)
        return
    with _through_driver(conn, sql, params) as (driver, sql), \
            driver.cursor(name=name) as cursor:
        cursor.itersize = 20_000
        cursor.execute(sql, params or None)
        yield from cursor


def driver_executemany(conn: sa.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """One statement for many rows straight through the driver, in ``conn``'s transaction."""
    with _through_driver(conn, sql, rows) as (driver, sql), closing(driver.cursor()) as cursor:
        cursor.executemany(sql, rows)


def insert_many(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows in one executemany, straight through the driver: on the bulk paths
    (ingest, append, every write's projections) SQLAlchemy's per-statement and per-row
    work costs more than the database's own insert."""
    if not rows:
        return
    cols = list(rows[0])
    sql = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    pick = operator.itemgetter(*cols) if len(cols) > 1 else (lambda r: (r[cols[0]],))
    driver_executemany(conn, sql, list(map(pick, rows)))


def update_many(
    conn: sa.Connection, table: sa.Table, key: str, rows: list[dict[str, Any]]
) -> None:
    """Update rows by primary key in one executemany (each row holds every column)."""
    if not rows:
        return
    cols = [c for c in rows[0] if c != key]
    sql = f"UPDATE {table.name} SET {', '.join(f'{c} = ?' for c in cols)} WHERE {key} = ?"
    driver_executemany(conn, sql, [(*(r[c] for c in cols), r[key]) for r in rows])


def create_schema(engine: sa.Engine) -> None:
    """Create the log tables and their append-only triggers (idempotent)."""
    with write_transaction(engine) as conn:
        log_metadata.create_all(conn)
        install_triggers(conn)


def install_triggers(conn: sa.Connection) -> None:
    """SPEC 3: the database itself refuses UPDATE and DELETE on the log's tables."""
    if is_sqlite(conn):
        for table in APPEND_ONLY_TABLES:
            upd, dele = trigger_names(table)
            for name, op in ((upd, "UPDATE"), (dele, "DELETE")):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
        install_insert_guards(conn)
        return
    conn.exec_driver_sql(
        "CREATE OR REPLACE FUNCTION alluvial_append_only() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION '%% is append-only', TG_TABLE_NAME; END $$"
    )
    for table in APPEND_ONLY_TABLES:
        upd, dele = trigger_names(table)
        for name, op in ((upd, "UPDATE"), (dele, "DELETE")):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            conn.exec_driver_sql(
                f"CREATE TRIGGER {name} BEFORE {op} ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION alluvial_append_only()"
            )
        trunc = f"{table}_no_truncate"
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trunc} ON {table}")
        conn.exec_driver_sql(
            f"CREATE TRIGGER {trunc} BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION alluvial_append_only()"
        )


def install_insert_guards(conn: sa.Connection) -> None:
    """SQLite: refuse INSERT OR REPLACE over a row of the log's tables (see UNIQUE_KEYS).

    Idempotent; a ledger made before the guards existed gets them when a writing command
    starts (:meth:`ledger.log.store.Log.check_store`)."""
    if not is_sqlite(conn):
        return
    for table, keys in UNIQUE_KEYS.items():
        taken = " OR ".join(
            f"EXISTS (SELECT 1 FROM {table} WHERE {key} = NEW.{key})" for key in keys)
        conn.exec_driver_sql(
            f"CREATE TRIGGER IF NOT EXISTS {insert_guard_name(table)} BEFORE INSERT ON {table} "
            f"WHEN {taken} BEGIN SELECT RAISE(ABORT, '{table} is append-only: "
            "a row with this key exists'); END"
        )


# Why the database refused to work, from the driver's error: (SQLite result code names,
# SQLite message fragments, PostgreSQL SQLSTATEs or their classes, the cause's sentence).
UNAVAILABLE: tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], str, str], ...] = (
    (("SQLITE_READONLY",), ("readonly database", "read-only"), ("25006",), "read-only",
     "The database is read-only"),
    (("SQLITE_FULL",), ("database or disk is full",), ("53100", "53200"), "disk full",
     "The database's disk is full"),
    (("SQLITE_BUSY", "SQLITE_LOCKED"), ("database is locked", "table is locked"),
     ("55P03", "40P01", "57014"), "locked",
     "The database is locked by another writer"),
    (("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_NOTADB", "SQLITE_CORRUPT"),
     ("unable to open", "disk i/o error", "malformed", "not a database"),
     ("08", "57P"), "unreachable", "The database cannot be reached"),
)


def unavailable_cause(error: BaseException) -> tuple[str, str] | None:
    """(cause, sentence) when a database error says the database cannot do the work just
    now: ``read-only``, ``disk full``, ``locked`` or ``unreachable``; None for any other
    error (a bug, a constraint). Reads SQLite's result code (sqlite3) or its message (an
    error that crossed a process boundary loses the code), and PostgreSQL's SQLSTATE
    (psycopg)."""
    orig = getattr(error, "orig", None) or error
    name = str(getattr(orig, "sqlite_errorname", "") or "")
    sqlstate = str(getattr(orig, "sqlstate", "") or "")
    text = str(orig).lower()
    for names, fragments, states, cause, sentence in UNAVAILABLE:
        if (name in names or any(f in text for f in fragments)
                or (sqlstate and sqlstate.startswith(states))):
            return cause, sentence
    if isinstance(error, sa.exc.OperationalError):
        return "unreachable", "The database cannot be reached"
    return None


def forget_damaged_tables(engine: sa.Engine, names: Sequence[str]) -> None:
    """SQLite: remove tables (with their indexes and triggers) whose pages are damaged, so
    that they can be made again; DROP TABLE cannot, as it reads the pages it frees.

    The schema rows go (``writable_schema``), then VACUUM writes a new file holding only
    what the schema still names: the damaged pages are left behind, never read. Only for
    tables derived from the log (the projections): the log's own are never passed here."""
    listed = ", ".join(f"'{name}'" for name in names)
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        (version,) = driver.execute("PRAGMA schema_version").fetchone()
        driver.execute("PRAGMA writable_schema = ON")
        try:
            driver.execute("BEGIN IMMEDIATE")
            driver.execute(f"DELETE FROM sqlite_master WHERE tbl_name IN ({listed})")
            driver.execute(f"PRAGMA schema_version = {int(version) + 1}")
            driver.execute("COMMIT")
        finally:
            driver.execute("PRAGMA writable_schema = OFF")
        driver.execute("VACUUM")
    engine.dispose()  # no pooled connection keeps the old schema


def existing_triggers(conn: sa.Connection) -> set[str]:
    if is_sqlite(conn):
        rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    else:
        rows = conn.exec_driver_sql(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D'"
        )
    return {r[0] for r in rows}


def expected_triggers(conn: sa.Connection | None = None) -> list[str]:
    """The append-only triggers; on SQLite (``conn``) also the insert guards."""
    names = [name for table in APPEND_ONLY_TABLES for name in trigger_names(table)]
    if conn is not None and is_sqlite(conn):
        names += [insert_guard_name(table) for table in APPEND_ONLY_TABLES]
    return names
