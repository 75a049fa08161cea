"""The append-only log: entries, hash chain, Merkle bookkeeping, checkpoints (SPEC 3).

An entry is the JSON object {seq, ts, kind, actor, payload, event_id, prev}; its
hash is SHA-256(0x00 || RFC 8785 bytes), which is also its Merkle leaf hash.
The payload is stored as its own RFC 8785 text, so an entry's canonical bytes
are assembled from the row without re-encoding (verify re-derives every hash
from the rows at the speed of hashing).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ledger.db import (
    checkpoints,
    create_schema,
    driver_execute,
    entries,
    existing_triggers,
    expected_triggers,
    insert_many,
    install_insert_guards,
    is_sqlite,
    log_head,
    merkle_nodes,
    write_transaction,
)
from ledger.errors import InputError, NotFound, VerificationError
from ledger.i18n import N_
from ledger.log import merkle
from ledger.log.canonical import canonical_text
from ledger.log.checkpoint import Checkpoint
from ledger.log.keys import SigningKey, VerifierKey, note_signers
from ledger.log.tree import NODE_MIN_LEVEL, LedgerTree, node_id

ZERO_HASH = "0" * 64
ADMIN = "admin"
_quote: Callable[[str], str] = json.encoder.encode_basestring


_second: tuple[tuple[int, ...], str] = ((), "")


def format_ts(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and a ``Z``.

    Every entry is stamped: the text up to the second is formatted once a second, not
    once an entry (``isoformat`` took 3% of a bulk ingest).
    """
    global _second
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    key = (moment.second, moment.minute, moment.hour, moment.day, moment.month, moment.year)
    cached = _second  # read once: another thread may replace it meanwhile
    if cached[0] != key:
        cached = _second = (key, moment.replace(microsecond=0, tzinfo=None).isoformat())
    return f"{cached[1]}.{moment.microsecond:06d}Z"


def entry_bytes(
    seq: int, ts: str, kind: str, actor: str, payload_text: str, event_id: str | None, prev: str
) -> bytes:
    """RFC 8785 bytes of an entry whose payload is already canonical text.

    RFC 8785 3.2.3: the keys are ASCII, so their order is fixed and the object can
    be assembled; string values are escaped as RFC 8785 3.2.2.2 requires.
    """
    eid = "null" if event_id is None else _quote(event_id)
    text = (
        f'{{"actor":{_quote(actor)},"event_id":{eid},"kind":{_quote(kind)},'
        f'"payload":{payload_text},"prev":"{prev}","seq":{seq},"ts":{_quote(ts)}}}'
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError("entry: a text field holds a lone surrogate, not Unicode text.") from exc


def admin_payload(moment: datetime) -> dict[str, Any]:
    """Payload of entry 1: the actor `admin`, role admin, country ZZ (SPEC 3)."""
    return {
        "actor_id": ADMIN,
        "name": "Ledger administrator",
        "role": "admin",
        "country": "ZZ",
        "date": moment.astimezone(UTC).date().isoformat(),
    }


@dataclass(frozen=True)
class Entry:
    """One logged entry, as stored and as anyone can re-hash it."""

    seq: int
    ts: str
    kind: str
    actor: str
    payload_text: str
    event_id: str | None
    prev: str
    entry_hash: bytes

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.payload_text)
        return value

    def to_json(self) -> dict[str, Any]:
        """The entry object of SPEC 3 (the seven keys, nothing else)."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "kind": self.kind,
            "actor": self.actor,
            "payload": self.payload,
            "event_id": self.event_id,
            "prev": self.prev,
        }

    def canonical_bytes(self) -> bytes:
        return entry_bytes(
            self.seq, self.ts, self.kind, self.actor, self.payload_text, self.event_id, self.prev
        )

    @classmethod
    def from_row(cls, row: Any) -> Entry:
        return cls(
            seq=row.seq,
            ts=row.ts,
            kind=row.kind,
            actor=row.actor,
            payload_text=row.payload,
            event_id=row.event_id,
            prev=row.prev,
            entry_hash=bytes(row.entry_hash),
        )


@dataclass(frozen=True)
class Head:
    size: int
    head_hash: bytes
    frontier: merkle.CompactRange


_READ_HEAD = "SELECT size, head_hash, frontier FROM log_head WHERE id = 1"


def read_head(conn: sa.Connection, *, lock: bool = False) -> Head:
    # SPEC 3: on PostgreSQL, appends queue on a row lock of the log head.
    sql = _READ_HEAD + " FOR UPDATE" if lock and not is_sqlite(conn) else _READ_HEAD
    row = driver_execute(conn, sql).fetchone()
    if row is None:
        raise NotFound("The ledger is not initialised here: run `alluvial init` first.")
    size, head_hash, frontier = row
    return Head(
        size=size,
        head_hash=bytes(head_hash),
        frontier=merkle.CompactRange.from_bytes(size, bytes(frontier)),
    )


class Appender:
    """Appends entries inside one write transaction; rows are flushed in batches."""

    def __init__(
        self,
        conn: sa.Connection,
        head: Head,
        clock: Callable[[], datetime],
        batch: int = 5000,
    ) -> None:
        self.conn = conn
        self.size = head.size
        self.prev = head.head_hash.hex() if head.size else ZERO_HASH
        self.frontier = head.frontier.copy()
        self.clock = clock
        self.batch = batch
        self.appended: list[Entry] = []
        self.checkpoint: str | None = None
        self._pending: dict[str, Entry] = {}
        self._rows: list[dict[str, Any]] = []
        self._nodes: list[dict[str, Any]] = []

    def append(
        self,
        kind: str,
        actor: str,
        payload: Mapping[str, Any],
        event_id: str | None = None,
        *,
        keep: bool = True,
        payload_text: str | None = None,
    ) -> Entry:
        """Append one entry; ``keep=False`` skips remembering it (bulk loads).

        ``payload_text``: the payload's canonical text, when it was computed ahead.
        """
        if payload_text is None:
            payload_text = canonical_text(payload)
        seq = self.size + 1
        ts = format_ts(self.clock())
        digest = merkle.leaf_hash(
            entry_bytes(seq, ts, kind, actor, payload_text, event_id, self.prev)
        )
        entry = Entry(seq, ts, kind, actor, payload_text, event_id, self.prev, digest)
        self._rows.append(
            {
                "seq": seq,
                "ts": ts,
                "kind": kind,
                "actor": actor,
                "payload": payload_text,
                "event_id": event_id,
                "prev": self.prev,
                "entry_hash": digest,
            }
        )
        for level, index, value in self.frontier.append(digest):
            if level >= NODE_MIN_LEVEL:
                self._nodes.append({"id": node_id(level, index), "hash": value})
        self.size = seq
        self.prev = digest.hex()
        if keep:
            self.appended.append(entry)
        if event_id is not None:
            self._pending[event_id] = entry
        if len(self._rows) >= self.batch:
            self.flush()
        return entry

    def pending_event(self, event_id: str) -> Entry | None:
        """An entry with this event_id appended in this transaction but not yet flushed."""
        return self._pending.get(event_id)

    def flush(self) -> None:
        if self._rows:
            insert_many(self.conn, entries, self._rows)
            self._rows = []
            self._pending = {}
        if self._nodes:
            insert_many(self.conn, merkle_nodes, self._nodes)
            self._nodes = []

    def finish(self, key: SigningKey) -> str | None:
        """Write what is buffered, move the head and sign a checkpoint in the same transaction."""
        self.flush()
        if not self.size:
            return None
        driver_execute(
            self.conn,
            "UPDATE log_head SET size = ?, head_hash = ?, frontier = ? WHERE id = 1",
            (self.size, bytes.fromhex(self.prev), self.frontier.to_bytes()),
        )
        self.checkpoint = _store_checkpoint(
            self.conn, key, self.size, self.frontier.root(), self.clock()
        )
        return self.checkpoint


def _store_checkpoint(
    conn: sa.Connection, key: SigningKey, size: int, root: bytes, moment: datetime
) -> str:
    checkpoint = Checkpoint(origin=key.name, size=size, root_hash=root, time=moment)
    note = checkpoint.sign(key)
    driver_execute(
        conn,
        "INSERT INTO checkpoints (size, root_hash, ts, note) VALUES (?, ?, ?, ?)",
        (size, root, format_ts(moment), note),
    )
    return note


class Log:
    """The ledger's log over a database engine, signing with the log key."""

    def __init__(
        self,
        engine: sa.Engine,
        key: SigningKey,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.key = key
        self.clock = clock or (lambda: datetime.now(UTC))

    @property
    def origin(self) -> str:
        return self.key.name

    @property
    def verifier(self) -> VerifierKey:
        return self.key.verifier

    # -- creating and writing --------------------------------------------------
    def create(self) -> None:
        """Create the tables and an empty log head; refuse if a log already exists here."""
        create_schema(self.engine)
        with write_transaction(self.engine) as conn:
            if conn.execute(sa.select(log_head.c.size)).first() is not None:
                raise InputError(
                    "The ledger already exists in this database; `init` runs once.",
                    rule="ALREADY_INITIALISED",
                )
            conn.execute(
                log_head.insert().values(id=1, size=0, head_hash=bytes(32), frontier=b"")
            )

    @contextmanager
    def writer(self, batch: int = 5000, bulk: bool = False) -> Iterator[Appender]:
        """One write transaction: all its entries commit with their checkpoint, or nothing does.

        ``bulk``: a long transaction (ingest, rebuild, rescreen), given a larger page cache."""
        with write_transaction(self.engine, bulk) as conn:
            appender = Appender(conn, read_head(conn, lock=True), self.clock, batch)
            yield appender
            appender.finish(self.key)

    def append(
        self, kind: str, actor: str, payload: Mapping[str, Any], event_id: str | None = None
    ) -> Entry:
        with self.writer() as w:
            return w.append(kind, actor, payload, event_id)

    def checkpoint(self) -> str:
        """Sign and store a checkpoint of the log as it is now (no entry is added)."""
        with write_transaction(self.engine) as conn:
            head = read_head(conn, lock=True)
            return _store_checkpoint(
                conn, self.key, head.size, head.frontier.root(), self.clock()
            )

    def check_store(self, key_source: str = "ALLUVIAL_LOG_KEY") -> None:
        """Before a command writes or signs: refuse a log key that is not the log's own, and
        give a ledger made by an earlier version its insert guards (SQLite).

        The log's key is the one its first checkpoint (signed by `init`) verifies under; a
        valid key of the same origin that is not it is refused (rule ``CONFIG``), naming
        both key ids, so that no checkpoint is ever signed by another key."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(checkpoints.name):
                return  # not initialised yet: `init` makes the tables
            row = driver_execute(
                conn, "SELECT note FROM checkpoints ORDER BY id LIMIT 1").fetchone()
            guards_missing = any(t not in existing_triggers(conn)
                                 for t in expected_triggers(conn))
        if row is not None:
            try:
                Checkpoint.from_signed(str(row[0]), self.verifier)
            except VerificationError as exc:
                theirs = " and ".join(note_signers(str(row[0]))) or "no readable key"
                raise InputError(
                    f"{key_source}: the log key given is {self.origin}+"
                    f"{self.verifier.key_id.hex()}, but this log's checkpoints are signed by "
                    f"{theirs}: point ALLUVIAL_LOG_KEY at the log's own key.",
                    rule="CONFIG") from exc
        if guards_missing and is_sqlite(self.engine):
            with write_transaction(self.engine) as conn:
                install_insert_guards(conn)

    # -- reading ---------------------------------------------------------------
    def size(self) -> int:
        with self.engine.connect() as conn:
            return read_head(conn).size

    def latest_checkpoint(self) -> str | None:
        with self.engine.connect() as conn:
            return _latest_note(conn)

    def entry(self, seq: int) -> Entry:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(entries).where(entries.c.seq == seq)).first()
        if row is None:
            raise NotFound.said(N_("entry %(seq)s does not exist."), {"seq": seq}, seq=seq)
        return Entry.from_row(row)

    def entries(self, after: int = 0, limit: int = 100) -> list[Entry]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(entries).where(entries.c.seq > after).order_by(entries.c.seq).limit(limit)
            )
            return [Entry.from_row(r) for r in rows]

    def by_event_id(self, conn: sa.Connection, event_id: str) -> Entry | None:
        row = conn.execute(sa.select(entries).where(entries.c.event_id == event_id)).first()
        return None if row is None else Entry.from_row(row)

    def root(self, size: int | None = None) -> bytes:
        with self.engine.connect() as conn:
            head = read_head(conn)
            size = head.size if size is None else _check_size(size, head.size, "size")
            if size == head.size:
                return head.frontier.root()
            return LedgerTree(conn, head.size).root(size)

    def inclusion_proof(self, seq: int, size: int | None = None) -> dict[str, Any]:
        """RFC 9162 inclusion proof of entry ``seq`` in the tree of ``size`` entries."""
        with self.engine.connect() as conn:
            head = read_head(conn)
            size = head.size if size is None else _check_size(size, head.size, "size")
            if not 1 <= seq <= size:
                raise InputError(
                    f"seq: {seq} is not an entry of a log of size {size}.", rule="BAD_REQUEST"
                )
            tree = LedgerTree(conn, head.size)
            path = tree.inclusion_path(seq - 1, size)
            root = head.frontier.root() if size == head.size else tree.root(size)
            leaf = tree.get_leaf(seq)
        return {
            "seq": seq,
            "leaf_index": seq - 1,
            "tree_size": size,
            "leaf_hash": leaf.hex(),
            "root": root.hex(),
            "proof": [h.hex() for h in path],
        }

    def consistency_proof(self, old: int, new: int | None = None) -> dict[str, Any]:
        """RFC 9162 consistency proof from the tree of ``old`` entries to ``new``."""
        with self.engine.connect() as conn:
            head = read_head(conn)
            new = head.size if new is None else _check_size(new, head.size, "new")
            if not 1 <= old <= new:
                raise InputError(
                    f"old: {old} must be between 1 and the new size {new}.", rule="BAD_REQUEST"
                )
            tree = LedgerTree(conn, head.size)
            path = tree.consistency_path(old, new)
            old_root = tree.root(old)
            new_root = head.frontier.root() if new == head.size else tree.root(new)
        return {
            "size1": old,
            "size2": new,
            "root1": old_root.hex(),
            "root2": new_root.hex(),
            "proof": [h.hex() for h in path],
        }


def _check_size(size: int, current: int, name: str) -> int:
    if not 1 <= size <= current:
        raise InputError(
            f"{name}: {size} is outside the log, which holds {current} entries.",
            rule="BAD_REQUEST",
        )
    return size


def _latest_note(conn: sa.Connection) -> str | None:
    row = driver_execute(conn, "SELECT note FROM checkpoints ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else str(row[0])
