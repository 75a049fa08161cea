"""Whole-log verification (SPEC 3, SPEC 6 `verify`).

Streams every row once, re-derives each entry hash from the row, checks the
chain, recomputes the Merkle root and the stored interior nodes, checks the
head, the append-only triggers and the latest signed checkpoint, and, given an
earlier checkpoint, proves the log consistent with it. Memory stays flat: the
only state is the Merkle frontier (O(log n) hashes).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ledger.db import existing_triggers, expected_triggers, is_sqlite, log_head
from ledger.errors import LedgerError, Said
from ledger.i18n import N_
from ledger.log import merkle
from ledger.log.checkpoint import Checkpoint
from ledger.log.keys import SigningKey, VerifierKey, note_signers, sign_note
from ledger.log.store import ZERO_HASH, _latest_note, entry_bytes
from ledger.log.tree import NODE_MIN_LEVEL, LedgerTree, node_id

STREAM_BATCH = 20_000
NEVER = float("inf")  # the size due when no stored checkpoint is left
LATEST = Said.said(N_("latest checkpoint"))  # what the problems call the stored one


@dataclass
class Report:
    """What verification found: ``problems`` is empty when the log checks out. Each
    problem is a :class:`Said`: English for the CLI, and its template and values for the
    auditor's page to say it in its language (issue 19)."""

    size: int = 0
    root: bytes = merkle.EMPTY_ROOT
    checkpoint_size: int | None = None
    entry_problem: tuple[int, Said] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.entry_problem is None and not self.problems

    def lines(self) -> list[str]:
        """Problems, the first bad entry first (SPEC 6)."""
        first = [self.entry_problem[1]] if self.entry_problem else []
        return first + self.problems


def _stream(conn: sa.Connection, sql: str, name: str) -> Any:
    """Rows straight from the driver's cursor, in this connection's transaction.

    Verification reads every row once; SQLAlchemy's row objects would cost more
    than the hashing. On PostgreSQL a named (server-side) cursor keeps memory flat.
    """
    driver = conn.connection.driver_connection
    assert driver is not None
    if is_sqlite(conn):
        cursor = driver.cursor()
    else:
        cursor = driver.cursor(name=name)
        cursor.itersize = STREAM_BATCH
    cursor.execute(sql)
    return cursor


def verify_log(
    engine: sa.Engine,
    verifier: VerifierKey,
    earlier_checkpoint: str | None = None,
    progress: Callable[[int], None] | None = None,
    signer: SigningKey | None = None,
    earlier_name: str = "--checkpoint",
) -> Report:
    """``signer``: the log's signing key, when the caller holds it (only to check the
    stored checkpoints faster; it must be the key of ``verifier``). ``earlier_name``: what
    the problems call ``earlier_checkpoint`` (the CLI's flag; a page says what was pasted)."""
    if signer is not None and signer.verifier != verifier:
        signer = None
    report = Report()
    try:
        with engine.connect() as conn:
            report.problems.extend(store_problems(conn))
            _verify_in(conn, verifier, earlier_checkpoint, progress, report, signer,
                       earlier_name)
    except (sa.exc.DBAPIError, engine.dialect.loaded_dbapi.Error) as exc:
        # A damaged file answers with driver errors (malformed pages, undecodable text):
        # a sentence, never a traceback.
        report.problems.append(Said.said(
            N_("database: the store could not be read to the end: %(why)s."),
            {"why": _first_line(exc)}))
    except (TypeError, ValueError) as exc:
        report.problems.append(Said.said(
            N_("database: the store returned a malformed row (%(why)s)."), {"why": str(exc)}))
    return report


def _first_line(error: BaseException, limit: int = 160) -> str:
    """The driver's message, on one line and short (it may quote damaged bytes)."""
    text = str(getattr(error, "orig", None) or error).splitlines()[0] if str(error) else ""
    return text if len(text) <= limit else text[:limit] + "..."


def store_problems(conn: sa.Connection) -> list[Said]:
    """The database's own check of its storage, before the log is read.

    SQLite: ``PRAGMA integrity_check`` (every page, every b-tree, and that each index
    holds exactly its table's rows; ``quick_check`` skips the last, which is how a damaged
    index page can pass it). PostgreSQL: the amcheck extension, when installed, checks
    every B-tree index of the ledger's schema (``bt_index_check``); the heap's own
    checksums are the server's (``initdb --data-checksums``)."""
    if is_sqlite(conn):
        try:
            found = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA integrity_check(10)")]
        except sa.exc.DBAPIError as exc:
            found = [_first_line(exc)]
        if found == ["ok"]:
            return []
        return [Said.said(N_(
            "database: the SQLite file is damaged (PRAGMA integrity_check: %(found)s and "
            "%(more)s more); restore it from a backup, or, when only projection tables and "
            "their indexes are named, remake them with `alluvial rebuild`.") if len(found) > 1
            else N_("database: the SQLite file is damaged (PRAGMA integrity_check: %(found)s); "
                    "restore it from a backup, or, when only projection tables and their "
                    "indexes are named, remake them with `alluvial rebuild`."),
            {"found": found[0], "more": len(found) - 1})]
    if conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'").first():
        indexes = conn.exec_driver_sql(
            "SELECT c.oid, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE a.amname = 'btree' AND n.nspname = current_schema() ORDER BY c.relname"
        ).all()
        for oid, name in indexes:
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql(f"SELECT bt_index_check({int(oid)})")
            except sa.exc.DBAPIError as exc:
                return [Said.said(N_("database: index %(index)s is damaged (amcheck: "
                                     "%(why)s)."), {"index": name, "why": _first_line(exc)})]
    return []


def _verify_in(
    conn: sa.Connection,
    verifier: VerifierKey,
    earlier_note: str | None,
    progress: Callable[[int], None] | None,
    report: Report,
    signer: SigningKey | None = None,
    earlier_name: str = "--checkpoint",
) -> None:
    head = conn.execute(sa.select(log_head)).first()
    latest = _open_checkpoint(_latest_note(conn), verifier, LATEST, report)
    earlier = _open_checkpoint(earlier_note, verifier, earlier_name, report)
    wanted = {cp.size for cp in (latest, earlier) if cp is not None}
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT} if 0 in wanted else {}

    frontier = merkle.CompactRange()
    node_rows = _stream(conn, "SELECT id, hash FROM merkle_nodes ORDER BY id", "verify_nodes")
    nodes = iter(node_rows)
    node_problem: Said | None = None
    prev = ZERO_HASH
    expected = 1

    def blame(seq: int, template: str, values: dict[str, Any] | None = None) -> None:
        """``template``: an N_ sentence about entry ``%(seq)s``."""
        if report.entry_problem is None:
            report.entry_problem = (seq, Said.said(template, {**(values or {}), "seq": seq}))

    # SPEC 3: every stored checkpoint is the log key's statement; each is checked against
    # the root of its size as the stream passes that size.
    checkpoints = _StoredCheckpoints(conn, verifier, signer)

    rows = _stream(
        conn, "SELECT seq, ts, kind, actor, payload, event_id, prev, entry_hash "
        "FROM entries ORDER BY seq", "verify_entries"
    )
    for seq, ts, kind, actor, payload, event_id, row_prev, stored in rows:
        if seq != expected:
            blame(expected, N_("entry %(seq)s: is missing: the log goes from entry "
                               "%(before)s to entry %(after)s."),
                  {"before": expected - 1, "after": seq})
            expected = seq
        try:
            digest = merkle.leaf_hash(
                entry_bytes(seq, ts, kind, actor, payload, event_id, row_prev)
            )
        except LedgerError:
            digest = b""
        if not hmac.compare_digest(digest, bytes(stored)):
            blame(seq, N_("entry %(seq)s: its content does not match its recorded hash."))
        elif row_prev != prev:
            # The successor committed to another hash: the earlier entry was rewritten.
            blame(seq - 1, N_("entry %(seq)s: its hash does not match the prev recorded by "
                              "entry %(next)s."), {"next": seq})
        prev = digest.hex()
        for level, index, value in frontier.append(digest or bytes(32)):
            if level >= NODE_MIN_LEVEL and node_problem is None:
                row = next(nodes, None)
                if row is None or row[0] != node_id(level, index) or bytes(row[1]) != value:
                    node_problem = Said.said(
                        N_("Merkle node at level %(level)s, index %(index)s does not match "
                           "the entries."), {"level": level, "index": index})
        if frontier.size in wanted:
            roots[frontier.size] = frontier.root()
        if frontier.size >= checkpoints.due:
            checkpoints.reach(frontier.size, frontier.root())
        expected += 1
        if progress is not None and seq % STREAM_BATCH == 0:
            progress(STREAM_BATCH)
    if node_problem is None and next(nodes, None) is not None:
        node_problem = Said.said(N_("merkle_nodes holds nodes that no entry completes."))
    node_rows.close()
    rows.close()
    stored_problem = checkpoints.finish(frontier.size)

    size = frontier.size
    report.size, report.root = size, frontier.root()
    if node_problem:
        report.problems.append(node_problem)
    _check_head(head, size, prev, frontier, report)
    missing = [t for t in expected_triggers(conn) if t not in existing_triggers(conn)]
    report.problems.extend(Said.said(N_("append-only trigger %(trigger)s is missing."),
                                     {"trigger": t}) for t in missing)
    if latest is not None:
        _check_latest(latest, size, roots, report, blame)
    elif size and not any("latest checkpoint" in p for p in report.problems):
        report.problems.append(Said.said(
            N_("latest checkpoint: no checkpoint has been signed for this log.")))
    if stored_problem:
        report.problems.append(stored_problem)
    if earlier is not None:
        _check_earlier(conn, earlier, size, roots, report, earlier_name)


class _StoredCheckpoints:
    """The stored checkpoints, met in the order they were signed as the entries stream by:
    each must be signed by the log key, come in order of size, and state the root the
    entries have at its size. Only the first bad one is reported."""

    def __init__(self, conn: sa.Connection, verifier: VerifierKey,
                 signer: SigningKey | None) -> None:
        self.verifier = verifier
        self.signer = signer
        self.problem: tuple[int, Said] | None = None
        self.cursor = _stream(conn, "SELECT id, size, ts, note FROM checkpoints ORDER BY id",
                              "verify_checkpoints")
        self.rows = iter(self.cursor)
        self.held: tuple[Any, ...] | None = None
        self.due: float = NEVER
        self._next()
        if self.due <= 0:
            self.reach(0, merkle.EMPTY_ROOT)

    def _next(self) -> None:
        self.held = next(self.rows, None)
        self.due = NEVER if self.held is None else self.held[1]

    def reach(self, size: int, root: bytes) -> None:
        """The log has ``size`` entries, whose root is ``root``: check the checkpoints due."""
        while self.held is not None and self.held[1] <= size:
            if self.problem is None:
                self.problem = self._check(*self.held, size=size, root=root)
            self._next()

    def _check(self, cp_id: int, cp_size: int, ts: str, note: str, *, size: int,
               root: bytes) -> tuple[int, Said] | None:
        if cp_size == size and self.signer is not None and _made_by(
                self.signer, str(note), size, root):
            return None
        what = {"id": cp_id, "size": cp_size, "time": ts}
        if cp_size < size:
            return cp_id, Said.said(N_("checkpoint %(id)s (size %(size)s, %(time)s): it was "
                                       "signed after a checkpoint of a larger size."), what)
        try:
            checkpoint = Checkpoint.from_signed(str(note), self.verifier)
        except LedgerError as exc:
            signers = _both(note_signers(str(note)))
            return cp_id, Said.said(N_(
                "checkpoint %(id)s (size %(size)s, %(time)s): %(why)s Its signature lines "
                "name %(signers)s.") if signers else N_(
                "checkpoint %(id)s (size %(size)s, %(time)s): %(why)s Its signature lines "
                "name no readable key."),
                {"id": cp_id, "size": cp_size, "time": ts, "why": Said.of(exc),
                 "signers": signers})
        if checkpoint.size != cp_size:
            return cp_id, Said.said(N_("checkpoint %(id)s (size %(size)s, %(time)s): its "
                                       "signed note states size %(stated)s."),
                                    {"id": cp_id, "size": cp_size, "time": ts,
                                     "stated": checkpoint.size})
        if not hmac.compare_digest(checkpoint.root_hash, root):
            return cp_id, Said.said(N_(
                "checkpoint %(id)s (size %(size)s, %(time)s): its root does not match the "
                "root recomputed from the first %(size)s entries."), what)
        return None

    def finish(self, size: int) -> Said | None:
        """After the last entry: the first bad checkpoint, as a sentence, or None."""
        if self.problem is None and self.held is not None:
            cp_id, cp_size, ts, _ = self.held
            self.problem = (cp_id, Said.said(N_(
                "checkpoint %(id)s (size %(size)s, %(time)s): it covers more entries than the "
                "log holds (%(held)s)."), {"id": cp_id, "size": cp_size, "time": ts,
                                           "held": size}))
        self.cursor.close()
        return None if self.problem is None else self.problem[1]


def _both(names: list[str]) -> str:
    """``a and b and c`` (each ``and`` a marked template, said in the page's language);
    '' for no name."""
    said = names[0] if names else ""
    for name in names[1:]:
        said = Said.said(N_("%(first)s and %(then)s"), {"first": said, "then": name})
    return said


def _made_by(signer: SigningKey, note: str, size: int, root: bytes) -> bool:
    """Whether ``note`` is the note ``signer`` makes for a checkpoint of ``size`` entries
    with ``root`` (at the time it states), byte for byte.

    The fast path for the operator's `alluvial verify`, which holds the log's signing key:
    Ed25519 signing is deterministic (RFC 8032 5.1.6), so an identical note carries that
    key's signature, and signing costs a third of verifying, which counts for a log with
    a checkpoint every few entries. Any other note is verified the ordinary way."""
    prefix = f"{signer.name}\n{size}\n{base64.b64encode(root).decode('ascii')}\ntime "
    if not note.startswith(prefix):
        return False
    text = note[: note.find("\n", len(prefix)) + 1]
    try:
        return bool(text) and sign_note(text, signer) == note
    except LedgerError:
        return False


def _open_checkpoint(
    note: str | None, verifier: VerifierKey, what: str, report: Report
) -> Checkpoint | None:
    """``what``: the checkpoint's name in the problems (a :class:`Said` when a page shows
    them)."""
    if note is None:
        return None
    try:
        return Checkpoint.from_signed(note, verifier)
    except LedgerError as exc:
        report.problems.append(Said.said(N_("%(what)s: %(why)s"),
                                         {"what": what, "why": Said.of(exc)}))
        return None


def _check_head(
    head: sa.Row[tuple[object, ...]] | None,
    size: int,
    prev: str,
    frontier: merkle.CompactRange,
    report: Report,
) -> None:
    if head is None:
        report.problems.append(Said.said(
            N_("log head: missing; the database holds no initialised log.")))
        return
    if head.size != size:
        report.problems.append(Said.said(
            N_("log head: records %(recorded)s entries but %(size)s are stored."),
            {"recorded": head.size, "size": size}))
    elif size and (
        bytes(head.head_hash).hex() != prev or bytes(head.frontier) != frontier.to_bytes()
    ):
        report.problems.append(Said.said(
            N_("log head: its hash or Merkle frontier does not match the entries.")))


def _check_latest(
    latest: Checkpoint,
    size: int,
    roots: dict[int, bytes],
    report: Report,
    blame: Callable[[int, str, dict[str, Any]], None],
) -> None:
    report.checkpoint_size = latest.size
    if size > latest.size:
        blame(latest.size + 1, N_("entry %(seq)s: is not covered by the latest signed "
                                  "checkpoint (size %(size)s)."), {"size": latest.size})
    elif size < latest.size:
        blame(size + 1, N_("entry %(seq)s: is missing: the latest signed checkpoint covers "
                           "%(size)s entries."), {"size": latest.size})
    elif roots.get(latest.size) != latest.root_hash:
        report.problems.append(Said.said(N_(
            "latest checkpoint: its root does not match the root recomputed from the %(size)s "
            "entries."), {"size": size}))


def _check_earlier(
    conn: sa.Connection, earlier: Checkpoint, size: int, roots: dict[int, bytes], report: Report,
    name: str = "--checkpoint",
) -> None:
    if earlier.size > size:
        report.problems.append(Said.said(N_(
            "%(name)s: it covers %(size)s entries but the log holds only %(held)s: the log was "
            "truncated."), {"name": name, "size": earlier.size, "held": size}))
        return
    if roots.get(earlier.size) != earlier.root_hash:
        report.problems.append(Said.said(N_(
            "%(name)s: the first %(size)s entries no longer have the root it signed: the log "
            "was rewritten below it."), {"name": name, "size": earlier.size}))
        return
    if earlier.size == 0:
        return
    proof = LedgerTree(conn, size).consistency_path(earlier.size, size)
    if not merkle.verify_consistency(earlier.size, size, earlier.root_hash, report.root, proof):
        report.problems.append(Said.said(
            N_("%(name)s: no valid consistency proof from size %(size)s to %(held)s."),
            {"name": name, "size": earlier.size, "held": size}))
