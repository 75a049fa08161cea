"""Building the provenance bundle of one export (SPEC 7).

The format, and what a verifier checks, are described in :mod:`ledger.bundle.verify`
and ``schemas/bundle.json``. The bundle holds, against the latest signed checkpoint:
the export entry and every entry on every custody path back to the sites (purchases,
transfers, splits, merges: :func:`ledger.custody.trace`), the registrations of those
sites, the licence zones they rely on and every risk zone, with each zone's later
amendments (versions), retirements, revocations and renewals, every flag raised or
resolved on a parcel, site, zone, holder or the export on the path, the export's
``certificate.validated`` and ``import.confirmed`` entries when they exist, the registration of
every actor who wrote or received any of these (and of whoever registered them, up to
entry 1), and the revocations and renewals of the holders' licences, which the replay
needs to judge LICENCE on every step (SPEC 4). ``archive.imported`` entries are not
included: they change no state the replay folds (LATE_ENTRY is not re-derived offline).

Everything is read in one snapshot, and only entries the checkpoint covers are taken.
Inclusion proofs are built in a batch: the ranges every proof needs are learnt by a
dry run, their stored Merkle nodes and leaves read in a few queries, and each path
assembled from them, so a bundle of thousands of entries costs a handful of queries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from ledger.bundle.format import Bundle, Consistency, Item, manifest_text
from ledger.custody.trace import trace
from ledger.db import entries
from ledger.errors import InputError, NotFound
from ledger.log import merkle
from ledger.log.checkpoint import Checkpoint
from ledger.log.keys import sign_note
from ledger.log.store import Entry, Log, _latest_note
from ledger.log.tree import NODE_MIN_WIDTH, LedgerTree, node_id
from ledger.projections import actors, exports, flags, sites, zones

MAP_KINDS = ("zone.amended", "zone.retired", "licence.revoked", "licence.renewed")
LICENCE_KINDS = ("licence.revoked", "licence.renewed")
CHUNK = 10_000  # ids per IN (...) query


def build_bundle(log: Log, certificate_no: str, since: int | None = None) -> Bundle:
    """The bundle of KP certificate ``certificate_no``, against the latest checkpoint.

    ``since``: add the RFC 9162 consistency proof from that earlier log size (the size
    of the checkpoint the importer saved) to the checkpoint's size.
    """
    with _snapshot(log.engine) as conn:
        note = _latest_note(conn)
        if note is None:
            raise NotFound("the log has no signed checkpoint yet.")
        checkpoint = Checkpoint.from_signed(note, log.verifier)
        size = checkpoint.size
        rows: dict[int, Entry] = {}
        seqs = _select(conn, certificate_no, size, rows)
        _entries(conn, seqs, rows)
        paths = inclusion_paths(conn, size, seqs)
        consistency = None
        if since is not None:
            if not 1 <= since <= size:
                raise InputError(f"--since: {since} is not a log size between 1 and the "
                                 f"checkpoint's {size}.", rule="BAD_REQUEST")
            hashes = LedgerTree(conn, size).consistency_path(since, size)
            consistency = Consistency(since, tuple(hashes))
    text = manifest_text(log.origin, certificate_no, size, checkpoint.root_hash, seqs)
    return Bundle(
        certificate_no=certificate_no,
        origin=log.origin,
        vkey=log.verifier.to_vkey(),
        checkpoint=note,
        items=tuple(Item(rows[s].to_json(), s - 1, tuple(paths[s])) for s in sorted(seqs)),
        manifest=sign_note(text, log.key),
        consistency=consistency,
    )


def dumps(bundle: Bundle) -> str:
    """The bundle file's text: UTF-8 JSON, one entry per line."""
    doc = bundle.to_json()
    items = doc.pop("entries")
    head = json.dumps(doc, ensure_ascii=False, indent=1)
    lines = ",\n".join("  " + json.dumps(it, ensure_ascii=False) for it in items)
    return f'{head[:-2]},\n "entries": [\n{lines}\n ]\n}}\n'


@contextmanager
def _snapshot(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One consistent read: the checkpoint and every row from the same snapshot."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def _chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    ordered = sorted(set(values))
    for k in range(0, len(ordered), CHUNK):
        yield ordered[k : k + CHUNK]


def _select(conn: sa.Connection, certificate_no: str, size: int,
            rows: dict[int, Entry]) -> set[int]:
    """The seqs of every entry SPEC 7 puts in the bundle (module docstring)."""
    export = conn.execute(sa.select(exports.c.seq, exports.c.exporter, exports.c.validated_seq,
                                    exports.c.confirmed_seq)
                          .where(exports.c.certificate_no == certificate_no)).first()
    if export is None or export.seq > size:
        raise NotFound(f"certificate_no: there is no export under KP certificate "
                       f"'{certificate_no}'.")
    graph = trace(conn, certificate_no, "backward")
    seqs = {e.seq for e in graph.edges if e.seq <= size} | {export.seq}
    # SPEC 7: the certificate.validated entry when it exists (and the import.confirmed one)
    seqs |= {q for q in (export.validated_seq, export.confirmed_seq) if q is not None and q <= size}
    parcel_ids = {i for t, i in graph.nodes if t == "parcel"}
    site_ids = set(graph.sites())
    licence_zones = {i for t, i in graph.nodes if t == "zone"}
    holders = {export.exporter}
    for row in _entries(conn, seqs, rows):
        if row.kind == "parcel.purchased":
            holders.add(row.actor)
        elif row.kind == "parcel.transferred":
            holders.add(row.payload["to_actor"])
    suspended: dict[str, int] = {}
    for s in _chunks(site_ids):
        for site in conn.execute(sa.select(sites.c.site_id, sites.c.seq, sites.c.suspended_on)
                                 .where(sites.c.site_id.in_(s))):
            seqs |= {site.seq} if site.seq <= size else set()
            if site.suspended_on is not None:
                suspended[site.site_id] = site.seq
    # SPEC 5: a suspended site sells as an unknown one; the replay must know it is.
    seqs |= _later(conn, ("site.suspended",), "site_id", suspended, size)
    seqs |= _zone_seqs(conn, licence_zones, size)
    seqs |= _licence_seqs(conn, holders, size)
    subjects = {("parcel", i) for i in parcel_ids} | {("site", i) for i in site_ids} | {
        ("zone", i) for i in licence_zones} | {("actor", i) for i in holders} | {
        ("export", certificate_no)}
    for ids in _chunks(i for _, i in subjects):
        for r in conn.execute(sa.select(flags.c.subject_type, flags.c.subject_id, flags.c.seq,
                                        flags.c.resolved_seq).where(flags.c.subject_id.in_(ids))):
            if (r.subject_type, r.subject_id) in subjects:
                seqs |= {q for q in (r.seq, r.resolved_seq) if q is not None and q <= size}
    return seqs | _registrations(conn, seqs, holders, size, rows)


def _zone_seqs(conn: sa.Connection, licence_zones: set[str], size: int) -> set[int]:
    """The licence zones the sites rely on and every risk zone, with their later changes."""
    z = zones
    rows = list(conn.execute(sa.select(z.c.zone_id, z.c.seq, z.c.last_seq).where(
        sa.or_(z.c.zone_type == "risk", z.c.zone_id.in_(sorted(licence_zones))))))
    seqs = {r.seq for r in rows if r.seq <= size}
    changed = {r.zone_id: r for r in rows if r.last_seq != r.seq and r.seq < size}
    if changed:
        # The projection keeps only a zone's last change; the others are found by
        # kind between its registration and that change (zones rarely change).
        lo = min(r.seq for r in changed.values())
        hi = min(size, max(r.last_seq for r in changed.values()))
        found = conn.execute(sa.select(entries.c.seq, entries.c.payload).where(
            entries.c.seq > lo, entries.c.seq <= hi, entries.c.kind.in_(MAP_KINDS)))
        for seq, payload in found:
            zone_id = json.loads(payload).get("zone_id")
            if zone_id in changed and seq <= changed[zone_id].last_seq:
                seqs.add(seq)
    return seqs


def _licence_seqs(conn: sa.Connection, holders: set[str], size: int) -> set[int]:
    """licence.revoked and licence.renewed of the holders' licences (SPEC 4 LICENCE)."""
    changed: dict[str, int] = {}
    for ids in _chunks(holders):
        changed.update((r.actor_id, r.seq) for r in conn.execute(
            sa.select(actors.c.actor_id, actors.c.seq).where(
                actors.c.actor_id.in_(ids), sa.or_(actors.c.renewals.is_not(None),
                                                   actors.c.revocations.is_not(None)))))
    return _later(conn, LICENCE_KINDS, "actor_id", changed, size)


def _later(conn: sa.Connection, kinds: tuple[str, ...], field: str, made: dict[str, int],
           size: int) -> set[int]:
    """Entries of ``kinds`` whose payload ``field`` names one of ``made`` (id -> the seq of
    its registration). They are rare and no projection keeps their seqs: they are found by
    kind after the earliest of those registrations."""
    if not made:
        return set()
    found = conn.execute(sa.select(entries.c.seq, entries.c.payload).where(
        entries.c.seq > min(made.values()), entries.c.seq <= size, entries.c.kind.in_(kinds)))
    return {seq for seq, payload in found if json.loads(payload).get(field) in made}


def _registrations(conn: sa.Connection, seqs: set[int], holders: set[str], size: int,
                   rows: dict[int, Entry]) -> set[int]:
    """actor.registered of every writer and holder, and of who registered them."""
    known: set[str] = set()
    wanted = set(holders)
    added: set[int] = set()
    todo = set(seqs)
    while True:
        for row in _entries(conn, todo, rows):
            wanted.add(row.actor)
        wanted -= known | {"system"}
        if not wanted:
            return added
        known |= wanted
        todo = set()
        for ids in _chunks(wanted):
            for (q,) in conn.execute(sa.select(actors.c.seq).where(actors.c.actor_id.in_(ids))):
                if q <= size and q not in seqs and q not in added:
                    todo.add(q)
        added |= todo
        wanted = set()


def _entries(conn: sa.Connection, seqs: Iterable[int], rows: dict[int, Entry]
             ) -> list[Entry]:
    """The entries of ``seqs``, read once into the cache ``rows``."""
    wanted = set(seqs)
    for row in _in(conn, "SELECT seq, ts, kind, actor, payload, event_id, prev, entry_hash "
                   "FROM entries WHERE seq IN ({})", wanted - rows.keys()):
        seq, ts, kind, actor, payload, event_id, prev, digest = row
        rows[seq] = Entry(seq, ts, kind, actor, payload, event_id, prev, bytes(digest))
    return [rows[s] for s in sorted(wanted) if s in rows]


def _in(conn: sa.Connection, sql: str, ids: Iterable[int]) -> Iterator[Any]:
    """Rows of ``sql`` for integer ids, CHUNK at a time, written into the SQL as literals.

    Integers only (they come from the log itself), so literals are safe; they spare the
    driver thousands of bound parameters, and the DB-API cursor spares building a
    SQLAlchemy row for each of the tens of thousands of leaves a bundle's proofs read.
    """
    cursor = conn.connection.cursor()
    try:
        for chunk in _chunks(ids):
            cursor.execute(sql.format(",".join(str(int(i)) for i in chunk)))
            yield from cursor.fetchall()
    finally:
        cursor.close()


def inclusion_paths(conn: sa.Connection, size: int, seqs: Iterable[int]
                    ) -> dict[int, list[bytes]]:
    """RFC 9162 inclusion paths of many entries in the tree of ``size``, in a few queries.

    Bottom up, a leaf's path holds, at each level, the root of its aligned block's sibling
    clipped to the tree, skipping siblings that lie wholly past the end: the ranges
    RFC 9162 2.1.3.1's recursion takes, as ``ledger.log.merkle.inclusion_proof`` walks them
    (a test checks both agree). All the ranges' stored nodes and leaves are then read
    at once, and each range's root computed once however many paths share it.
    """
    layouts: dict[int, list[tuple[int, int]]] = {}
    for seq in set(seqs):
        index, level, path = seq - 1, 0, []
        while (1 << level) < size:
            start = ((index >> level) ^ 1) << level  # the sibling block at this level
            if start < size:
                path.append((start, min(start + (1 << level), size)))
            level += 1
        layouts[seq] = path
    pieces: dict[tuple[int, int], list[tuple[int, int]]] = {}
    node_ids: set[int] = set()
    leaf_seqs: set[int] = set()
    for start, end in {r for path in layouts.values() for r in path}:
        width = end - start
        # Aligned by construction: a range is one stored subtree unless the tree's end cuts it.
        parts = [(start, end)] if width & (width - 1) == 0 else merkle.subtree_ranges(start, end)
        pieces[(start, end)] = parts
        for a, b in parts:
            if b - a >= NODE_MIN_WIDTH:
                level = (b - a).bit_length() - 1
                node_ids.add(node_id(level, a >> level))
            else:
                leaf_seqs.update(range(a + 1, b + 1))
    nodes = {i: bytes(h) for i, h in _in(
        conn, "SELECT id, hash FROM merkle_nodes WHERE id IN ({})", node_ids)}
    leaves = {s: bytes(h) for s, h in _in(
        conn, "SELECT seq, entry_hash FROM entries WHERE seq IN ({})", leaf_seqs)}

    def piece(start: int, end: int) -> bytes:
        if end - start >= NODE_MIN_WIDTH:
            level = (end - start).bit_length() - 1
            return nodes[node_id(level, start >> level)]
        if end - start == 1:
            return leaves[end]
        return merkle.root_from_hashes([leaves[s] for s in range(start + 1, end + 1)])

    roots = {r: piece(*ps[0]) if len(ps) == 1 else merkle.fold([piece(*p) for p in ps])
             for r, ps in pieces.items()}
    return {seq: [roots[r] for r in path] for seq, path in layouts.items()}
