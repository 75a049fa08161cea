"""The log of SPEC 3 on SQLite and PostgreSQL: entries, chain, proofs, checkpoints."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
import rfc8785
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.db import checkpoints, entries
from ledger.errors import LedgerError
from ledger.log import merkle
from ledger.log.checkpoint import Checkpoint
from ledger.log.store import Log, entry_bytes, format_ts
from ledger.recorder.events import Ledger

FIXTURE_CHECKS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def purchase(i: int) -> dict[str, object]:
    return {
        "parcel_id": f"P-{i:06d}",
        "site_id": "GH-AKW-001",
        "seller": "Kwame Mensah",
        "date": "2008-03-14",
        "carats": 12.5 + i % 7,
        "stones": 3 + i % 5,
        "price": {"amount": 4150.25, "currency": "USD"},
        "note": "naïve “quotes” — \u0007 and 💎",
    }


def grow(log: Log, total: int, per_transaction: int = 37) -> list[int]:
    """Append until the log holds ``total`` entries; return the checkpointed sizes."""
    sizes = []
    i = log.size()
    while i < total:
        with log.writer() as w:
            for _ in range(min(per_transaction, total - i)):
                i += 1
                w.append("parcel.purchased", "buyer-gh-1", purchase(i), event_id=f"ev-{i}")
        sizes.append(i)
    return sizes


def test_init_appends_exactly_the_admin_actor(log: Log) -> None:
    assert log.size() == 1
    first = log.entry(1)
    assert first.kind == "actor.registered" and first.actor == "admin"
    assert first.payload["actor_id"] == "admin"
    assert first.payload["role"] == "admin" and first.payload["country"] == "ZZ"
    assert first.prev == "0" * 64


def test_init_twice_is_refused(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="already exists"):
        ledger.initialise()
    assert ledger.log.size() == 1


def test_entry_hash_is_recomputable_from_the_entry_alone(log: Log) -> None:
    grow(log, 40)
    prev = "0" * 64
    for entry in log.entries(after=0, limit=100):
        as_json = entry.to_json()
        assert set(as_json) == {"seq", "ts", "kind", "actor", "payload", "event_id", "prev"}
        # An auditor's own verifier: RFC 8785 of the parsed entry, SHA-256 with 0x00.
        assert rfc8785.dumps(json.loads(json.dumps(as_json))) == entry.canonical_bytes()
        assert merkle.leaf_hash(rfc8785.dumps(as_json)) == entry.entry_hash
        assert as_json["prev"] == prev
        prev = entry.entry_hash.hex()


@given(
    actor=st.text(min_size=1, max_size=20),
    kind=st.text(min_size=1, max_size=20),
    event_id=st.none() | st.text(max_size=30),
    ts=st.text(max_size=30),
    seq=st.integers(min_value=1, max_value=2**53 - 1),
)
def test_assembled_entry_bytes_equal_rfc8785(
    actor: str, kind: str, event_id: str | None, ts: str, seq: int
) -> None:
    payload = {"carats": 2.5, "price": {"amount": 10, "currency": "USD"}, "name": actor}
    entry = {"seq": seq, "ts": ts, "kind": kind, "actor": actor, "payload": payload,
             "event_id": event_id, "prev": "ab" * 32}
    try:
        expected = rfc8785.dumps(entry)
    except Exception:
        return
    payload_text = rfc8785.dumps(payload).decode()
    assert entry_bytes(seq, ts, kind, actor, payload_text, event_id, "ab" * 32) == expected


@settings(max_examples=300, deadline=None)
@given(moment=st.datetimes(timezones=st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))])),
    later=st.integers(min_value=0, max_value=3_000_000))
def test_entry_time_is_rfc3339_utc_with_microseconds(moment: datetime, later: int) -> None:
    """The text formatted once a second must never stick to the next one."""
    for m in (moment, moment + timedelta(microseconds=later)):
        try:
            expected = m.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        except OverflowError:
            return
        if m.astimezone(UTC).year < 1000:
            expected = f"{m.astimezone(UTC).year:04d}" + expected[expected.index("-"):]
        assert format_ts(m) == expected


def test_checkpoint_after_every_write_transaction(log: Log) -> None:
    sizes = grow(log, 100, per_transaction=33)
    with log.engine.connect() as conn:
        signed = [r.size for r in conn.execute(sa.select(checkpoints.c.size))]
    assert signed == [1, *sizes]
    latest = Checkpoint.from_signed(log.latest_checkpoint() or "", log.verifier)
    assert latest.size == 100 and latest.root_hash == log.root()
    assert latest.origin == "alluvial.local"


def test_checkpoint_on_demand_does_not_change_the_size(log: Log) -> None:
    grow(log, 10)
    note = log.checkpoint()
    assert Checkpoint.from_signed(note, log.verifier).size == 10
    assert log.size() == 10


@pytest.mark.parametrize("statement", [
    "UPDATE entries SET payload = '{}' WHERE seq = 1",
    "DELETE FROM entries WHERE seq = 1",
    "UPDATE merkle_nodes SET hash = hash",
    "DELETE FROM checkpoints",
], ids=["update-entry", "delete-entry", "update-node", "delete-checkpoint"])
def test_plain_sql_cannot_update_or_delete(log: Log, statement: str) -> None:
    grow(log, 40)
    before = log.entry(1)
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), log.engine.begin() as conn:
        conn.exec_driver_sql(statement)
    assert log.entry(1) == before
    assert log.size() == 40


def test_concurrent_appends_are_serialized(engine, settings) -> None:  # type: ignore[no-untyped-def]
    from ledger.log.keys import load_or_create

    log = Log(engine, load_or_create(settings.log_key_path, settings.origin))
    log.create()
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(500):
                log.append("parcel.purchased", f"buyer-{t}", purchase(t * 1000 + i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with engine.connect() as conn:
        seqs = [r[0] for r in conn.execute(sa.select(entries.c.seq).order_by(entries.c.seq))]
    assert seqs == list(range(1, 8001))
    from ledger.log.verify import verify_log

    report = verify_log(engine, log.verifier)
    assert report.ok, report.lines()
    assert report.size == 8000


@pytest.fixture
def grown(log: Log) -> tuple[Log, list[int]]:
    return log, [1, *grow(log, 300, per_transaction=23)]


@FIXTURE_CHECKS
@given(data=st.data())
def test_every_inclusion_proof_verifies_against_a_checkpoint_root(
    grown: tuple[Log, list[int]], data: st.DataObject
) -> None:
    log, sizes = grown
    size = data.draw(st.sampled_from(sizes))
    seq = data.draw(st.integers(min_value=1, max_value=size))
    proof = log.inclusion_proof(seq, size)
    leaf = log.entry(seq).entry_hash
    root = bytes.fromhex(proof["root"])
    path = [bytes.fromhex(h) for h in proof["proof"]]
    assert proof["leaf_hash"] == leaf.hex()
    assert merkle.verify_inclusion(leaf, seq - 1, size, path, root)
    # Any single flipped bit anywhere in the proof breaks it.
    if path:
        i = data.draw(st.integers(min_value=0, max_value=len(path) - 1))
        bit = data.draw(st.integers(min_value=0, max_value=255))
        bad = bytearray(path[i])
        bad[bit // 8] ^= 1 << (bit % 8)
        assert not merkle.verify_inclusion(leaf, seq - 1, size, [*path[:i], bytes(bad),
                                                                  *path[i + 1:]], root)


@FIXTURE_CHECKS
@given(data=st.data())
def test_every_consistency_proof_between_checkpoints_verifies(
    grown: tuple[Log, list[int]], data: st.DataObject
) -> None:
    log, sizes = grown
    old = data.draw(st.sampled_from(sizes))
    new = data.draw(st.sampled_from([s for s in sizes if s >= old]))
    proof = log.consistency_proof(old, new)
    path = [bytes.fromhex(h) for h in proof["proof"]]
    old_root, new_root = bytes.fromhex(proof["root1"]), bytes.fromhex(proof["root2"])
    assert old_root == log.root(old) and new_root == log.root(new)
    assert merkle.verify_consistency(old, new, old_root, new_root, path)
    if path:
        i = data.draw(st.integers(min_value=0, max_value=len(path) - 1))
        bit = data.draw(st.integers(min_value=0, max_value=255))
        bad = bytearray(path[i])
        bad[bit // 8] ^= 1 << (bit % 8)
        assert not merkle.verify_consistency(
            old, new, old_root, new_root, [*path[:i], bytes(bad), *path[i + 1:]]
        )


def test_roots_match_an_independent_recomputation(grown: tuple[Log, list[int]]) -> None:
    log, sizes = grown
    leaves = [e.canonical_bytes() for e in log.entries(after=0, limit=1000)]
    for size in sizes:
        assert log.root(size) == merkle.tree_hash(leaves[:size])


@pytest.mark.parametrize("args", [(0, None), (301, None), (5, 4), (5, 301)],
                         ids=["seq-0", "seq-past-end", "seq-past-size", "size-past-end"])
def test_bad_inclusion_requests_are_refused(grown: tuple[Log, list[int]], args) -> None:  # type: ignore[no-untyped-def]
    log, _ = grown
    with pytest.raises(LedgerError, match=r"seq|size"):
        log.inclusion_proof(*args)
