"""The Merkle tree of the log as a pymerkle storage backend over the ledger's tables.

Leaves are the ``entry_hash`` column of ``entries`` (pymerkle's leaf index is our
``seq``: both count from 1). Interior nodes of level >= NODE_MIN_LEVEL are
persisted in ``merkle_nodes`` as appends complete them, so any root or proof
reads a few dozen rows in two queries, in a fresh process as in a warm one.
Narrower subtrees are hashed from at most 15 leaves.

Roots and inclusion paths come from pymerkle (they agree with RFC 9162);
consistency proofs are built by :mod:`ledger.log.merkle` to the RFC, because
pymerkle's own consistency proofs are not in RFC form.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from pymerkle import BaseMerkleTree

from ledger.db import entries, merkle_nodes
from ledger.log import merkle

NODE_MIN_LEVEL = 4
NODE_MIN_WIDTH = 1 << NODE_MIN_LEVEL


def node_id(level: int, index: int) -> int:
    """Row id of a stored node: the seq of the leaf that completed it, then its level.

    Ordering by id lists nodes in the order appends complete them.
    """
    return (((index + 1) << level) << 6) | level


class LedgerTree(BaseMerkleTree):  # type: ignore[misc]
    """Read side of the log's Merkle tree at a fixed ``size``, inside one connection."""

    def __init__(self, conn: sa.Connection, size: int) -> None:
        self.conn = conn
        self.size = size
        self._subroots: dict[tuple[int, int], bytes] = {}
        self._leaves: dict[int, bytes] = {}
        super().__init__("sha256", disable_cache=True)

    # -- pymerkle storage hooks ------------------------------------------------
    def _encode_entry(self, data: bytes) -> bytes:
        return data

    def _store_leaf(self, data: Any, digest: bytes) -> int:
        # The chain, not the tree, decides what an entry is: Log.append writes the
        # row, its hash and the nodes it completes in one transaction.
        raise TypeError("entries are appended through ledger.log.Log, not the tree")

    def _get_leaf(self, index: int) -> bytes:
        leaf = self._leaves.get(index)
        if leaf is None:
            leaf = self.conn.execute(
                sa.select(entries.c.entry_hash).where(entries.c.seq == index)
            ).scalar_one()
        return bytes(leaf)

    def _get_leaves(self, offset: int, width: int) -> list[bytes]:
        wanted = range(offset + 1, offset + width + 1)
        if all(i in self._leaves for i in wanted):
            return [self._leaves[i] for i in wanted]
        rows = self.conn.execute(
            sa.select(entries.c.entry_hash)
            .where(entries.c.seq > offset, entries.c.seq <= offset + width)
            .order_by(entries.c.seq)
        ).scalars()
        return [bytes(h) for h in rows]

    def _get_size(self) -> int:
        return self.size

    def _get_subroot_uncached(self, offset: int, width: int) -> bytes:
        known = self._subroots.get((offset, width))
        if known is not None:
            return known
        if width >= NODE_MIN_WIDTH:
            level = width.bit_length() - 1
            value = self.conn.execute(
                sa.select(merkle_nodes.c.hash).where(
                    merkle_nodes.c.id == node_id(level, offset >> level)
                )
            ).scalar_one()
            return bytes(value)
        result: bytes = super()._get_subroot_uncached(offset, width)
        return result

    # -- reading what a set of ranges needs in two queries ---------------------
    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Load every stored node and leaf the roots of ``ranges`` will ask for."""
        ids: dict[int, tuple[int, int]] = {}
        seqs: set[int] = set()
        for start, end in ranges:
            for s, e in merkle.subtree_ranges(start, end):
                width = e - s
                if width >= NODE_MIN_WIDTH:
                    if (s, width) not in self._subroots:
                        level = width.bit_length() - 1
                        ids[node_id(level, s >> level)] = (s, width)
                else:
                    seqs.update(i for i in range(s + 1, e + 1) if i not in self._leaves)
        # Plain SQL through the driver: building Core statements per proof would cost
        # more than the two indexed reads themselves.
        mark = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        if ids:
            keys = list(ids)
            rows = self.conn.exec_driver_sql(
                f"SELECT id, hash FROM merkle_nodes WHERE id IN ({', '.join([mark] * len(keys))})",
                tuple(keys),
            )
            for nid, value in rows:
                self._subroots[ids[nid]] = bytes(value)
        if seqs:
            low, high = min(seqs), max(seqs)
            args: tuple[int, ...]
            if _dense(seqs):
                sql, args = f"BETWEEN {mark} AND {mark}", (low, high)
            else:
                args = tuple(sorted(seqs))
                sql = f"IN ({', '.join([mark] * len(args))})"
            rows = self.conn.exec_driver_sql(
                f"SELECT seq, entry_hash FROM entries WHERE seq {sql}", args
            )
            for seq, value in rows:
                self._leaves[seq] = bytes(value)

    def range_root(self, start: int, end: int) -> bytes:
        """MTH of leaves [start, end), counted from 0."""
        result: bytes = self._get_root(start, end)
        return result

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        self.prefetch([(0, size)])
        result: bytes = self.get_root(size)
        return result

    def inclusion_path(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof for leaf ``index`` (from 0), via pymerkle."""
        size = self.size if size is None else size
        self.prefetch(_recorded(lambda sub: merkle.inclusion_proof(index, size, sub)))
        proof = self.prove_inclusion(index + 1, size)
        # pymerkle's path starts with the leaf hash itself; RFC 9162 2.1.3.1 does not.
        return list(proof.path[1:])

    def consistency_path(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof, built to the RFC (SUBPROOF), not by pymerkle."""
        new_size = self.size if new_size is None else new_size
        # The old root is read with the proof: callers hand both out together.
        self.prefetch([*_recorded(lambda sub: merkle.consistency_proof(old_size, new_size, sub)),
                       (0, old_size)])
        return merkle.consistency_proof(old_size, new_size, self.range_root)


def _recorded(build: Any) -> list[tuple[int, int]]:
    """The ranges a proof builder asks roots of, learnt by a dry run."""
    seen: list[tuple[int, int]] = []

    def record(start: int, end: int) -> bytes:
        seen.append((start, end))
        return bytes(32)

    build(record)
    return seen


def _dense(seqs: set[int]) -> bool:
    return max(seqs) - min(seqs) < 64
