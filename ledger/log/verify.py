"""Whole-log verification (SPEC 3, SPEC 6 `verify`).

Streams every row once, re-derives each entry hash from the row, checks the
chain, recomputes the Merkle root and the stored interior nodes, checks the
head, the append-only triggers and the latest signed checkpoint, and, given an
earlier checkpoint, proves the log consistent with it. Memory stays flat: the
only state is the Merkle frontier (O(log n) hashes).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ledger.db import existing_triggers, expected_triggers, is_sqlite, log_head
from ledger.errors import LedgerError
from ledger.log import merkle
from ledger.log.checkpoint import Checkpoint
from ledger.log.keys import VerifierKey, note_signers
from ledger.log.store import ZERO_HASH, _latest_note, entry_bytes
from ledger.log.tree import NODE_MIN_LEVEL, LedgerTree, node_id

STREAM_BATCH = 20_000
NEVER = float("inf")  # the size due when no stored checkpoint is left


@dataclass
class Report:
    """What verification found: ``problems`` is empty when the log checks out."""

    size: int = 0
    root: bytes = merkle.EMPTY_ROOT
    checkpoint_size: int | None = None
    entry_problem: tuple[int, str] | None = None
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
) -> Report:
    report = Report()
    with engine.connect() as conn:
        _verify_in(conn, verifier, earlier_checkpoint, progress, report)
    return report


def _verify_in(
    conn: sa.Connection,
    verifier: VerifierKey,
    earlier_note: str | None,
    progress: Callable[[int], None] | None,
    report: Report,
) -> None:
    head = conn.execute(sa.select(log_head)).first()
    latest = _open_checkpoint(_latest_note(conn), verifier, "latest checkpoint", report)
    earlier = _open_checkpoint(earlier_note, verifier, "--checkpoint", report)
    wanted = {cp.size for cp in (latest, earlier) if cp is not None}
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT} if 0 in wanted else {}

    frontier = merkle.CompactRange()
    node_rows = _stream(conn, "SELECT id, hash FROM merkle_nodes ORDER BY id", "verify_nodes")
    nodes = iter(node_rows)
    node_problem: str | None = None
    prev = ZERO_HASH
    expected = 1

    def blame(seq: int, message: str) -> None:
        if report.entry_problem is None:
            report.entry_problem = (seq, f"entry {seq}: {message}")

    # Every stored checkpoint, in the order signed: each is checked against the root of
    # its size as the stream passes it (SPEC 3: all of them are the log key's statements).
    stored_rows = _stream(conn, "SELECT id, size, ts, note FROM checkpoints ORDER BY id",
                          "verify_checkpoints")
    stored_cps = iter(stored_rows)
    stored_problem: list[str] = []
    held: tuple[Any, ...] | None = next(stored_cps, None)
    due = NEVER if held is None else held[1]
    if due <= 0:
        held, due = _check_stored(stored_cps, held, 0, merkle.EMPTY_ROOT, verifier,
                                  stored_problem)

    rows = _stream(
        conn, "SELECT seq, ts, kind, actor, payload, event_id, prev, entry_hash "
        "FROM entries ORDER BY seq", "verify_entries"
    )
    for seq, ts, kind, actor, payload, event_id, row_prev, stored in rows:
        if seq != expected:
            blame(expected, f"is missing: the log goes from entry {expected - 1} to entry {seq}.")
            expected = seq
        try:
            digest = merkle.leaf_hash(
                entry_bytes(seq, ts, kind, actor, payload, event_id, row_prev)
            )
        except LedgerError:
            digest = b""
        if not hmac.compare_digest(digest, bytes(stored)):
            blame(seq, "its content does not match its recorded hash.")
        elif row_prev != prev:
            # The successor committed to another hash: the earlier entry was rewritten.
            blame(seq - 1, f"its hash does not match the prev recorded by entry {seq}.")
        prev = digest.hex()
        for level, index, value in frontier.append(digest or bytes(32)):
            if level >= NODE_MIN_LEVEL and node_problem is None:
                row = next(nodes, None)
                if row is None or row[0] != node_id(level, index) or bytes(row[1]) != value:
                    node_problem = (
                        f"Merkle node at level {level}, index {index} does not match the entries."
                    )
        if frontier.size in wanted:
            roots[frontier.size] = frontier.root()
        if frontier.size >= due:
            held, due = _check_stored(stored_cps, held, frontier.size, frontier.root(),
                                      verifier, stored_problem)
        expected += 1
        if progress is not None and seq % STREAM_BATCH == 0:
            progress(STREAM_BATCH)
    if node_problem is None and next(nodes, None) is not None:
        node_problem = "merkle_nodes holds nodes that no entry completes."
    node_rows.close()
    rows.close()
    if held is not None and not stored_problem:
        stored_problem.append(
            f"checkpoint {held[0]} (size {held[1]}, {held[2]}): it covers more entries than "
            f"the log holds ({frontier.size}).")
    stored_rows.close()

    size = frontier.size
    report.size, report.root = size, frontier.root()
    if node_problem:
        report.problems.append(node_problem)
    _check_head(head, size, prev, frontier, report)
    missing = [t for t in expected_triggers(conn) if t not in existing_triggers(conn)]
    report.problems.extend(f"append-only trigger {t} is missing." for t in missing)
    if latest is not None:
        _check_latest(latest, size, roots, report, blame)
    elif size and not any("latest checkpoint" in p for p in report.problems):
        report.problems.append("latest checkpoint: no checkpoint has been signed for this log.")
    report.problems.extend(stored_problem)
    if earlier is not None:
        _check_earlier(conn, earlier, size, roots, report)


def _check_stored(
    stored: Any, held: tuple[Any, ...] | None, size: int, root: bytes, verifier: VerifierKey,
    problems: list[str],
) -> tuple[tuple[Any, ...] | None, float]:
    """Check the stored checkpoints of ``size`` entries (whose root is ``root``), from
    ``held`` on; return the next one and its size. Only the first bad one is kept."""
    while held is not None and held[1] <= size:
        if not problems and (problem := _stored_problem(held, size, root, verifier)):
            problems.append(problem)
        held = next(stored, None)
    return held, NEVER if held is None else held[1]


def _stored_problem(
    row: tuple[Any, ...], size: int, root: bytes, verifier: VerifierKey
) -> str | None:
    cp_id, cp_size, ts, note = row
    what = f"checkpoint {cp_id} (size {cp_size}, {ts})"
    if cp_size < size:
        return f"{what}: it was signed after a checkpoint of a larger size."
    try:
        checkpoint = Checkpoint.from_signed(str(note), verifier)
    except LedgerError as exc:
        signers = " and ".join(note_signers(str(note))) or "no readable key"
        return f"{what}: {exc} Its signature lines name {signers}."
    if checkpoint.size != cp_size:
        return f"{what}: its signed note is of size {checkpoint.size}."
    if not hmac.compare_digest(checkpoint.root_hash, root):
        return (f"{what}: its root does not match the root recomputed from the first "
                f"{cp_size} entries.")
    return None


def _open_checkpoint(
    note: str | None, verifier: VerifierKey, what: str, report: Report
) -> Checkpoint | None:
    if note is None:
        return None
    try:
        return Checkpoint.from_signed(note, verifier)
    except LedgerError as exc:
        report.problems.append(f"{what}: {exc}")
        return None


def _check_head(
    head: sa.Row[tuple[object, ...]] | None,
    size: int,
    prev: str,
    frontier: merkle.CompactRange,
    report: Report,
) -> None:
    if head is None:
        report.problems.append("log head: missing; the database holds no initialised log.")
        return
    if head.size != size:
        report.problems.append(f"log head: records {head.size} entries but {size} are stored.")
    elif size and (
        bytes(head.head_hash).hex() != prev or bytes(head.frontier) != frontier.to_bytes()
    ):
        report.problems.append("log head: its hash or Merkle frontier does not match the entries.")


def _check_latest(
    latest: Checkpoint,
    size: int,
    roots: dict[int, bytes],
    report: Report,
    blame: Callable[[int, str], None],
) -> None:
    report.checkpoint_size = latest.size
    if size > latest.size:
        blame(
            latest.size + 1,
            f"is not covered by the latest signed checkpoint (size {latest.size}).",
        )
    elif size < latest.size:
        blame(size + 1, f"is missing: the latest signed checkpoint covers {latest.size} entries.")
    elif roots.get(latest.size) != latest.root_hash:
        report.problems.append(
            f"latest checkpoint: its root does not match the root recomputed from "
            f"the {size} entries."
        )


def _check_earlier(
    conn: sa.Connection, earlier: Checkpoint, size: int, roots: dict[int, bytes], report: Report
) -> None:
    if earlier.size > size:
        report.problems.append(
            f"--checkpoint: it covers {earlier.size} entries but the log holds only {size}: "
            "the log was truncated."
        )
        return
    if roots.get(earlier.size) != earlier.root_hash:
        report.problems.append(
            f"--checkpoint: the first {earlier.size} entries no longer have the root it "
            "signed: the log was rewritten below it."
        )
        return
    if earlier.size == 0:
        return
    proof = LedgerTree(conn, size).consistency_path(earlier.size, size)
    if not merkle.verify_consistency(earlier.size, size, earlier.root_hash, report.root, proof):
        report.problems.append(
            f"--checkpoint: no valid consistency proof from size {earlier.size} to {size}."
        )
