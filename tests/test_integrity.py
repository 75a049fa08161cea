"""The store's integrity (issue #15): the log key, the insert guards, a damaged database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ledger.cli import cli
from ledger.config import Settings
from ledger.db import existing_triggers, insert_guard_name, is_sqlite
from ledger.errors import LedgerError
from ledger.log.keys import SigningKey, load_or_create
from ledger.log.store import Log
from ledger.recorder.events import Ledger
from tests.test_log import grow

# -- finding 1: a valid key of the same origin that is not the log's ----------------------


@pytest.fixture
def other_key(tmp_path: Path, settings: Settings) -> Path:
    """The key another `alluvial init` made: same origin, another key."""
    path = tmp_path / "other.key"
    load_or_create(path, settings.origin)
    return path


def _ingest_file(tmp_path: Path) -> list[str]:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"kind": "actor.registered", "actor": "admin", "payload": {
        "actor_id": "off-1", "name": "Officer", "role": "officer", "country": "GH",
        "date": "2008-01-02"}}) + "\n")
    return ["ingest", str(path)]


WRITING_COMMANDS = {
    "checkpoint": lambda tmp: ["checkpoint"],
    "ingest": _ingest_file,
    "rebuild": lambda tmp: ["rebuild"],
    "rescreen": lambda tmp: ["rescreen"],
}


def _state(log: Log) -> tuple[int, int]:
    with log.engine.connect() as conn:
        count = conn.exec_driver_sql("SELECT count(*) FROM checkpoints").scalar_one()
    return log.size(), int(count)


@pytest.mark.parametrize("command", list(WRITING_COMMANDS))
def test_a_command_that_writes_or_signs_refuses_another_key(
    log: Log, env: dict[str, str], other_key: Path, tmp_path: Path, command: str
) -> None:
    before = _state(log)
    result = CliRunner(env={**env, "ALLUVIAL_LOG_KEY": str(other_key)}).invoke(
        cli, WRITING_COMMANDS[command](tmp_path))
    assert result.exit_code == 2, result.output
    other = load_or_create(other_key, log.origin)
    assert result.stderr.startswith("CONFIG: ALLUVIAL_LOG_KEY"), result.stderr
    assert other.verifier.key_id.hex() in result.stderr
    assert log.verifier.key_id.hex() in result.stderr
    assert _state(log) == before


def test_ledger_open_refuses_another_key(log: Log, settings: Settings, other_key: Path) -> None:
    """What `serve` and its writer process open the ledger with."""
    wrong = Settings(database_url=settings.database_url, log_key_path=other_key)
    with pytest.raises(LedgerError) as refused:
        Ledger.open(wrong).engine.dispose()
    assert refused.value.rule == "CONFIG"
    assert log.verifier.key_id.hex() in str(refused.value)
    Ledger.open(settings).engine.dispose()  # the log's own key opens it


def test_create_app_refuses_another_key(log: Log, settings: Settings, other_key: Path) -> None:
    from webui import create_app

    with pytest.raises(LedgerError, match="signed by") as refused:
        create_app({"TESTING": True, "DATABASE_URL": settings.database_url,
                    "LOG_KEY": str(other_key)})
    assert refused.value.rule == "CONFIG"


def test_verify_finds_a_checkpoint_signed_by_another_key_between_good_ones(
    log: Log, runner: CliRunner
) -> None:
    grow(log, 30, per_transaction=10)
    impostor = SigningKey.generate(log.origin)
    Log(log.engine, impostor).checkpoint()  # what a writer with another key left behind
    grow(log, 60, per_transaction=10)  # later checkpoints by the log's own key
    with log.engine.connect() as conn:
        bad_id = conn.exec_driver_sql("SELECT id FROM checkpoints WHERE size = 30 "
                                      "ORDER BY id DESC LIMIT 1").scalar_one()
    result = runner.invoke(cli, ["verify"])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"checkpoint {bad_id} (size 30, "), lines
    assert f"{log.origin}+{impostor.verifier.key_id.hex()}" in lines[0]
    assert len(lines) == 1


@pytest.mark.parametrize("with_signer", [True, False], ids=["signing_key", "verifier_key"])
def test_every_checkpoint_is_checked_with_or_without_the_signing_key(
    log: Log, with_signer: bool
) -> None:
    """The operator's verify holds the signing key and takes a faster path for the notes
    that key made; an auditor's holds the verifier key only: both find the impostor."""
    from ledger.log.verify import verify_log

    grow(log, 30, per_transaction=10)
    impostor = SigningKey.generate(log.origin)
    Log(log.engine, impostor).checkpoint()
    grow(log, 50, per_transaction=10)
    report = verify_log(log.engine, log.verifier, signer=log.key if with_signer else None)
    assert not report.ok
    assert [line for line in report.lines() if "(size 30, " in line]
    assert impostor.verifier.key_id.hex() in report.lines()[0]


@pytest.mark.parametrize(("size", "message"), [
    (30, "its root does not match the root recomputed from the first 30 entries"),
    (20, "it was signed after a checkpoint of a larger size"),
], ids=["wrong_root", "out_of_order"])
def test_verify_finds_a_stored_checkpoint_the_entries_do_not_bear_out(
    log: Log, runner: CliRunner, size: int, message: str
) -> None:
    """A checkpoint signed by the log's own key, between good ones, that states a root
    the entries do not have, or a size below the checkpoint signed before it."""
    from datetime import UTC, datetime

    from ledger.log.checkpoint import Checkpoint
    from ledger.log.store import format_ts

    grow(log, 30, per_transaction=10)
    note = Checkpoint(log.origin, size, bytes(32), datetime.now(UTC)).sign(log.key)
    with log.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO checkpoints (size, root_hash, ts, note) "
                             "VALUES (:s, :r, :ts, :note)"),
                     {"s": size, "r": bytes(32), "ts": format_ts(datetime.now(UTC)),
                      "note": note})
    grow(log, 40, per_transaction=10)
    result = runner.invoke(cli, ["verify"])
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        line for line in result.stdout.splitlines() if line.startswith("checkpoint ")]
    assert f"(size {size}, " in result.stdout and message in result.stdout


# -- finding 2: INSERT OR REPLACE past the append-only triggers ---------------------------


def _replace(conn: sa.Connection, table: str) -> None:
    """Overwrite a row of ``table`` with a copy of another, the way each database allows."""
    key = {"entries": "seq", "merkle_nodes": "id", "checkpoints": "id"}[table]
    if is_sqlite(conn):
        conn.exec_driver_sql(f"INSERT OR REPLACE INTO {table} SELECT * FROM {table} "
                             f"WHERE {key} = (SELECT min({key}) FROM {table})")
    else:
        conn.exec_driver_sql(f"INSERT INTO {table} SELECT * FROM {table} "
                             f"WHERE {key} = (SELECT min({key}) FROM {table}) "
                             f"ON CONFLICT ({key}) DO UPDATE SET {key} = excluded.{key}")


def _replace_event_id(conn: sa.Connection, table: str) -> None:
    """A new seq that takes the event_id of an entry: REPLACE would delete that entry."""
    conflict = "OR REPLACE " if is_sqlite(conn) else ""
    tail = "" if is_sqlite(conn) else " ON CONFLICT (event_id) DO UPDATE SET seq = excluded.seq"
    conn.exec_driver_sql(
        f"INSERT {conflict}INTO entries SELECT seq + 1000, ts, kind, actor, payload, event_id, "
        f"prev, entry_hash FROM entries WHERE event_id = 'ev-20'{tail}")


REPLACES = [("entries", _replace), ("merkle_nodes", _replace), ("checkpoints", _replace),
            ("entries", _replace_event_id)]


@pytest.mark.parametrize(("table", "overwrite"), REPLACES,
                         ids=["entries", "merkle_nodes", "checkpoints", "entries_event_id"])
def test_insert_or_replace_is_refused(log: Log, runner: CliRunner, table: str,
                                      overwrite: object) -> None:
    grow(log, 40, per_transaction=40)  # 40 entries: a stored Merkle node too
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), log.engine.begin() as conn:
        overwrite(conn, table)  # type: ignore[operator]
    result = runner.invoke(cli, ["verify"])
    assert result.exit_code == 0, result.output
    assert "OK: 40 entries" in result.stdout


def _drop_guards(log: Log) -> None:
    with log.engine.begin() as conn:
        for table in ("entries", "merkle_nodes", "checkpoints"):
            conn.exec_driver_sql(f"DROP TRIGGER {insert_guard_name(table)}")


def test_verify_reports_a_missing_insert_guard(log: Log, runner: CliRunner) -> None:
    if not is_sqlite(log.engine):
        pytest.skip("the guards are SQLite's: PostgreSQL's ON CONFLICT fires UPDATE triggers")
    _drop_guards(log)
    result = runner.invoke(cli, ["verify"])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "append-only trigger entries_no_replace is missing."


def test_a_ledger_made_before_the_guards_gets_them_when_a_command_writes(
    log: Log, runner: CliRunner
) -> None:
    if not is_sqlite(log.engine):
        pytest.skip("the guards are SQLite's")
    _drop_guards(log)
    assert runner.invoke(cli, ["checkpoint"]).exit_code == 0
    with log.engine.connect() as conn:
        assert insert_guard_name("entries") in existing_triggers(conn)
    assert runner.invoke(cli, ["verify"]).exit_code == 0


# -- finding 6: a 503 that says why -------------------------------------------------------


def _restrict(ledger: Ledger, sqlite_pragma: str, pg_setting: str | None) -> None:
    """Every new connection of the ledger's engine gets the restriction; the pool is
    emptied so that no connection made before escapes it."""
    if not is_sqlite(ledger.engine) and pg_setting is None:
        pytest.skip("not simulated on PostgreSQL")

    @sa.event.listens_for(ledger.engine, "connect")
    def _on_connect(dbapi_conn: object, _record: object) -> None:
        cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
        if is_sqlite(ledger.engine):
            if sqlite_pragma.endswith("{pages}"):
                pages = cursor.execute("PRAGMA page_count").fetchone()[0]
                sqlite_pragma_now = sqlite_pragma.format(pages=pages)
            else:
                sqlite_pragma_now = sqlite_pragma
            cursor.execute(sqlite_pragma_now)
        else:
            cursor.execute(pg_setting)
            dbapi_conn.commit()  # type: ignore[attr-defined]
        cursor.close()

    ledger.engine.dispose()


# How each cause is brought about: read-only as a read-only connection (tests run as root,
# whom chmod does not stop), disk full as SQLite's page limit set at the file's size.
UNAVAILABLE = [
    ("read-only", "PRAGMA query_only = 1",
     "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "The database is read-only"),
    ("disk full", "PRAGMA max_page_count = {pages}", None, "The database's disk is full"),
]


@pytest.mark.parametrize(("cause", "pragma", "pg_setting", "sentence"), UNAVAILABLE,
                         ids=[u[0] for u in UNAVAILABLE])
def test_a_write_the_database_cannot_take_is_503_naming_why(
    ledger: Ledger, client: object, auth: object, caplog: pytest.LogCaptureFixture,
    cause: str, pragma: str, pg_setting: str | None, sentence: str,
) -> None:
    headers = auth.headers("officer")  # type: ignore[attr-defined]
    _restrict(ledger, pragma, pg_setting)
    with caplog.at_level("ERROR", logger="alluvial.http"):
        for n in range(300):  # a full disk is met once the pages left are used up
            size = ledger.log.size()
            response = client.post("/api/v1/events", json={  # type: ignore[attr-defined]
                "kind": "actor.registered", "payload": {
                    "actor_id": f"buyer-{n}", "name": "Z", "role": "buyer", "country": "GH",
                    "licence_no": f"GH-L-{n}", "licence_valid_from": "2000-01-01",
                    "licence_valid_to": "2030-12-31", "date": "2008-01-02"}}, headers=headers)
            if response.status_code != 201:
                break
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json(force=True)
    assert body["type"] == "DATABASE_UNAVAILABLE" and body["cause"] == cause
    assert body["detail"].startswith(f"{sentence} just now ({cause}); nothing was written.")
    assert response.headers["Retry-After"] == "1"
    assert any(f"database unavailable ({cause})" in r.getMessage() for r in caplog.records)
    assert ledger.log.size() == size


@pytest.mark.parametrize(("error", "cause"), [
    (sa.exc.OperationalError("x", {}, Exception("database is locked")), "locked"),
    (sa.exc.OperationalError("x", {}, Exception("attempt to write a readonly database")),
     "read-only"),
    (sa.exc.OperationalError("x", {}, Exception("database or disk is full")), "disk full"),
    (sa.exc.OperationalError("x", {}, Exception("connection refused")), "unreachable"),
], ids=["locked", "read-only", "disk-full", "unreachable"])
def test_causes_read_from_driver_messages(error: Exception, cause: str) -> None:
    """What is left of an error that crossed the writer process's pipe: its message."""
    from ledger.db import unavailable_cause

    found = unavailable_cause(error)
    assert found is not None and found[0] == cause


# -- finding 4: a damaged SQLite file -----------------------------------------------------


@pytest.fixture
def traded(ledger: Ledger, runner: CliRunner, tmp_path: Path) -> Path:
    """A SQLite ledger with a few hundred purchases (entries, custody edges, indexes over
    several pages each); returns the file."""
    if not is_sqlite(ledger.engine):
        pytest.skip("pages of a SQLite file")
    from tests.test_ingest import SETUP, purchase

    lines = [*SETUP, *(purchase(f"P{i}") for i in range(400))]
    (tmp_path / "trade.jsonl").write_text("\n".join(lines) + "\n")
    assert runner.invoke(cli, ["ingest", str(tmp_path / "trade.jsonl")]).exit_code == 0
    ledger.engine.dispose()
    path = Path(str(ledger.engine.url.database))
    import sqlite3

    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
    return path


def flip(path: Path, name: str | None, count: int = 16) -> None:
    """Flip ``count`` bytes in the middle of a page of table or index ``name`` (found with
    SQLite's dbstat table), or at the start of page 1 when ``name`` is None."""
    import sqlite3

    with sqlite3.connect(path) as raw:
        page_size = raw.execute("PRAGMA page_size").fetchone()[0]
        if name is None:
            pageno, at = 1, 0
        else:
            pageno = raw.execute("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = "
                                 "'leaf' ORDER BY pageno LIMIT 1", (name,)).fetchone()[0]
            at = page_size // 2
    with path.open("r+b") as f:
        f.seek((pageno - 1) * page_size + at)
        data = f.read(count)
        f.seek((pageno - 1) * page_size + at)
        f.write(bytes(b ^ 0xFF for b in data))


DAMAGE = [
    ("entries_page", "entries", ("entry ", "database: ")),
    ("page_1", None, ("database: the store could not be read",)),
    ("custody_edges_index", "ix_custody_edges_into", ("database: the SQLite file is damaged",)),
    ("event_id_index", "sqlite_autoindex_entries_1", ("database: the SQLite file is damaged",)),
]


@pytest.mark.parametrize(("name", "first"), [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_verify_reports_a_damaged_file_as_a_sentence(
    traded: Path, runner: CliRunner, name: str | None, first: tuple[str, ...]
) -> None:
    flip(traded, name)
    result = runner.invoke(cli, ["verify"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    assert lines and any(line.startswith(first) for line in lines), lines


def test_rebuild_remakes_damaged_projection_tables(traded: Path, runner: CliRunner) -> None:
    before = runner.invoke(cli, ["rebuild"])
    assert before.exit_code == 0, before.output
    flip(traded, "ix_custody_edges_into")
    flip(traded, "parcels")
    assert runner.invoke(cli, ["verify"]).exit_code == 1
    result = runner.invoke(cli, ["rebuild"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split("digest ")[1] == before.stdout.split("digest ")[1]
    after = runner.invoke(cli, ["verify"])
    assert after.exit_code == 0, after.output
    trace = runner.invoke(cli, ["trace", "P7", "--backward"])
    assert trace.exit_code == 0 and "site S-AKW" in trace.stdout, trace.output


# -- finding 3: verify --projections ------------------------------------------------------


@pytest.fixture
def held(ledger: Ledger, runner: CliRunner, tmp_path: Path) -> Ledger:
    """A ledger with a clean purchase P1 and a purchase P2 dug outside its licence zone,
    held by its open flags."""
    from tests.test_ingest import SETUP, line, purchase

    dug_elsewhere = json.loads(purchase("P2"))
    dug_elsewhere["payload"]["dig_location"] = {"type": "Point", "coordinates": [-6.67, 7.96]}
    lines = [*SETUP, purchase("P1"), json.dumps(dug_elsewhere),
             line("actor.registered", "off-gh", actor_id="aud-1", name="Auditor",
                  role="auditor", country="GH", date="2004-01-02")]
    (tmp_path / "held.jsonl").write_text("\n".join(lines) + "\n")
    assert runner.invoke(cli, ["ingest", str(tmp_path / "held.jsonl")]).exit_code == 0
    return ledger


EDITS = [
    ("hold_released", "UPDATE parcels SET open_flags = 0 WHERE parcel_id = 'P2'",
     "projections: table parcels, row parcel_id 'P2': open_flags is 0 but the log gives"),
    ("flag_resolved", "UPDATE flags SET status = 'resolved'",
     "projections: table flags, row flag_id "),
    ("flag_deleted", "DELETE FROM flags",
     "projections: table flags, row flag_id "),
    ("actor_added", "INSERT INTO actors (actor_id, name, role, country, seq) "
                    "VALUES ('zz-ghost', 'Ghost', 'buyer', 'GH', 2)",
     "projections: table actors, row actor_id 'zz-ghost' is not"),
]


def test_verify_projections_passes_on_an_untouched_ledger(held: Ledger, runner: CliRunner) -> None:
    size = held.log.size()
    result = runner.invoke(cli, ["verify", "--projections"])
    assert result.exit_code == 0, result.output
    assert "projections: equal to those made again from the log." in result.stdout
    assert held.log.size() == size


@pytest.mark.parametrize(("sql", "first"), [e[1:] for e in EDITS], ids=[e[0] for e in EDITS])
def test_verify_projections_names_a_projection_edited_by_hand(
    held: Ledger, runner: CliRunner, sql: str, first: str
) -> None:
    with held.engine.begin() as conn:
        conn.exec_driver_sql(sql)
    before = held.digest()
    assert runner.invoke(cli, ["verify"]).exit_code == 0  # the log itself is intact
    result = runner.invoke(cli, ["verify", "--projections"])
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[0].startswith(first), result.stdout
    assert held.digest() == before  # the aside fold changed nothing
