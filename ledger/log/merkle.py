"""Merkle tree hashing and proofs, exactly as RFC 9162 section 2.1 defines them.

Pure functions over bytes (standard library only), usable without a database, so that
anyone holding entries, a root and a proof can check the log on their own.  SHA-256 with
the leaf prefix 0x00 and the node prefix 0x01 (RFC 9162 2.1.1), which keeps a leaf from
ever being passed off as an interior node.  Leaf indices count from 0; sizes are leaf
counts.  Producers take a ``subtree(start, end)`` callback returning MTH(D[start:end]),
so the storage (pymerkle, the database) stays outside this module.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

HASH_SIZE = 32
_sha256 = hashlib.sha256
_LEAF = b"\x00"
_NODE = b"\x01"
# RFC 9162 2.1.1: MTH({}) = HASH(), the hash of the empty string.
EMPTY_ROOT: bytes = _sha256(b"").digest()

Subtree = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """Hash one raw leaf input: SHA-256(0x00 || data) (RFC 9162 2.1.1, MTH({d(0)}))."""
    return _sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two children: SHA-256(0x01 || left || right) (RFC 9162 2.1.1, n > 1)."""
    return _sha256(_NODE + left + right).digest()


def split(n: int) -> int:
    """The largest power of two strictly less than ``n`` (RFC 9162 2.1.1's k); n >= 2."""
    if n < 2:
        raise ValueError(f"split needs n >= 2, got {n}")
    return 1 << ((n - 1).bit_length() - 1)


def root_from_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list whose leaf hashes are already computed (EMPTY_ROOT when empty).

    Iterative, one pass per level: since k is the largest power of two below n, the left
    part of every split is a perfect tree, so RFC 9162 2.1.1's recursion equals pairing
    nodes left to right at each level and carrying an unpaired last node up unchanged.
    """
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    sha, prefix = _sha256, _NODE
    while len(level) > 1:
        odd = level[-1] if len(level) & 1 else None
        it = iter(level)
        level = [sha(prefix + a + b).digest() for a, b in zip(it, it, strict=False)]
        if odd is not None:
            level.append(odd)
    return level[0]


def tree_hash(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) of raw leaf inputs (RFC 9162 2.1.1)."""
    sha, prefix = _sha256, _LEAF
    return root_from_hashes([sha(prefix + d).digest() for d in leaves])


def inclusion_proof(index: int, size: int, subtree: Subtree) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1 for leaf ``index`` in a tree of ``size`` leaves.

    Walks down from the root, taking the sibling subtree at each split; the RFC lists
    those bottom up, so the collected list is reversed at the end.
    """
    if size < 1 or not 0 <= index < size:
        raise ValueError(f"no leaf {index} in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:  # RFC 9162 2.1.3.1: PATH(0, {d(0)}) = {} ends the walk
        k = start + split(end - start)
        if index < k:  # m < k: PATH(m, D[0:k]) : MTH(D[k:n])
            path.append(subtree(k, end))
            end = k
        else:  # m >= k: PATH(m - k, D[k:n]) : MTH(D[0:k])
            path.append(subtree(start, k))
            start = k
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, subtree: Subtree) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 9162 2.1.4.1 (``[]`` when m == n)."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    proof: list[bytes] = []
    start, end, m, whole = 0, new_size, old_size, True
    while m != end - start:  # m < n
        k = split(end - start)
        if m <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            proof.append(subtree(start + k, end))
            end = start + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            proof.append(subtree(start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:  # m == n and b is false: SUBPROOF(m, D[m], false) = {MTH(D[m])}
        proof.append(subtree(start, end))
    proof.reverse()  # the deepest element comes first in the RFC's concatenation
    return proof


def _is_hash(h: object) -> bool:
    return isinstance(h, bytes | bytearray) and len(h) == HASH_SIZE


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check an inclusion proof by RFC 9162 2.1.3.2; never raises, returns False instead.

    Rejects hashes that are not 32 bytes, ``index >= size`` and proofs of the wrong length
    (the RFC's sn bookkeeping fails those) as well as plain mismatches.
    """
    if not (_is_hash(leaf_hash) and _is_hash(root) and all(_is_hash(p) for p in proof)):
        return False
    if not (isinstance(index, int) and isinstance(size, int) and 0 <= index < size):
        return False  # step 1: index >= size fails (as do malformed arguments)
    fn, sn = index, size - 1  # step 2
    r = bytes(leaf_hash)  # step 3
    for p in proof:  # step 4
        if sn == 0:  # step 4a: proof too long
            return False
        if fn & 1 or fn == sn:  # step 4b
            r = _sha256(_NODE + p + r).digest()  # step 4b i
            while not fn & 1 and fn != 0:  # step 4b ii (no-op if LSB(fn) set)
                fn >>= 1
                sn >>= 1
        else:
            r = _sha256(_NODE + r + p).digest()  # step 4b otherwise
        fn >>= 1  # step 4c
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)  # step 5


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check a consistency proof by RFC 9162 2.1.4.2; never raises, returns False instead.

    An old size of 0 is rejected (SPEC 3: it proves nothing), as are old > new, hashes
    that are not 32 bytes, and a non-empty proof between equal sizes; equal sizes with
    an empty proof hold iff the roots are equal.
    """
    if not (_is_hash(old_root) and _is_hash(new_root) and all(_is_hash(p) for p in proof)):
        return False
    if not (isinstance(old_size, int) and isinstance(new_size, int) and 0 < old_size <= new_size):
        return False
    if old_size == new_size:  # RFC 9162 2.1.4.1: PROOF(n, D[n]) is empty
        return not proof and hmac.compare_digest(old_root, new_root)
    if not proof:  # step 1
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2: first is an exact power of 2
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = bytes(path[0])  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # step 6a: proof too long
            return False
        if fn & 1 or fn == sn:  # step 6b
            fr = _sha256(_NODE + c + fr).digest()  # step 6b i
            sr = _sha256(_NODE + c + sr).digest()  # step 6b ii
            while not fn & 1 and fn != 0:  # step 6b iii (no-op if LSB(fn) set)
                fn >>= 1
                sn >>= 1
        else:
            sr = _sha256(_NODE + sr + c).digest()  # step 6b otherwise
        fn >>= 1  # step 6c
        sn >>= 1
    # step 7 (both digests compared, no short-circuit on the first mismatch)
    ok_old = hmac.compare_digest(fr, old_root)
    ok_new = hmac.compare_digest(sr, new_root)
    return sn == 0 and ok_old and ok_new


def subtree_ranges(start: int, end: int) -> list[tuple[int, int]]:
    """Split leaves [start, end) into the fewest aligned perfect subtrees, left to right.

    Each (s, e) has e - s a power of two dividing s.  When ``start`` is a multiple of the
    largest power of two >= end - start (every range an RFC proof asks for), these are the
    perfect subtrees RFC 9162 2.1.1's MTH splits the range into, biggest first, so a store
    of complete subtree roots can answer ``subtree`` with ``fold`` of a few lookups.
    """
    if not 0 <= start <= end:
        raise ValueError(f"bad range [{start}, {end})")
    out: list[tuple[int, int]] = []
    while start < end:
        width = 1 << ((end - start).bit_length() - 1)  # biggest that fits
        if start:
            width = min(width, start & -start)  # biggest that start is aligned to
        out.append((start, start + width))
        start += width
    return out


def fold(subroots: Sequence[bytes]) -> bytes:
    """Combine left-to-right subtree roots into their range's MTH, folding right to left.

    node(a0, node(a1, ... node(a_{k-2}, a_{k-1}))): with perfect subtrees of strictly
    decreasing size this is RFC 9162 2.1.1's MTH, whose left part is always the biggest
    perfect subtree.  EMPTY_ROOT for no subtrees (MTH({})).
    """
    if not subroots:
        return EMPTY_ROOT
    acc = subroots[-1]
    for h in reversed(subroots[:-1]):
        acc = _sha256(_NODE + h + acc).digest()
    return bytes(acc)


class CompactRange:
    """The right edge of a growing tree: roots of the perfect subtrees covering [0, size).

    ``hashes`` lists them left to right, biggest first, one per set bit of ``size``, so a
    tree can grow and report its root in O(log n) without reading old leaves.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: list[bytes] | None = None) -> None:
        hashes = [] if hashes is None else list(hashes)
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(f"size {size} needs {max(size, 0).bit_count()} hashes")
        if not all(_is_hash(h) for h in hashes):
            raise ValueError(f"frontier hashes must be {HASH_SIZE} bytes")
        self.size: int = size
        self.hashes: list[bytes] = hashes

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf; return the interior nodes it completed as (level, index, hash).

        A level-L node with index i covers leaves [i * 2**L, (i + 1) * 2**L).  Like a
        binary counter: each trailing 1 bit of the old size is a perfect subtree that the
        new leaf's subtree, now of equal size, merges with (RFC 9162 2.1.1 node hash).
        """
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes")
        hashes = self.hashes
        n = self.size
        done: list[tuple[int, int, bytes]] = []
        h = leaf_hash
        level = 0
        while n & 1:
            h = _sha256(_NODE + hashes.pop() + h).digest()
            level += 1
            n >>= 1
            done.append((level, n, h))
        hashes.append(h)
        self.size += 1
        return done

    def root(self) -> bytes:
        """MTH(D[size]) (EMPTY_ROOT at size 0)."""
        return fold(self.hashes)

    def to_bytes(self) -> bytes:
        """The frontier hashes concatenated (popcount(size) * 32 bytes)."""
        return b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactRange:
        """Inverse of ``to_bytes``; ValueError unless len(data) == popcount(size) * 32."""
        if size < 0 or len(data) != size.bit_count() * HASH_SIZE:
            raise ValueError(f"{len(data)} bytes do not hold the frontier of size {size}")
        data = bytes(data)
        return cls(size, [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)])

    def copy(self) -> CompactRange:
        """An independent copy (appending to it leaves this one unchanged)."""
        return CompactRange(self.size, self.hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self.size == other.size and self.hashes == other.hashes

    __hash__ = None  # type: ignore[assignment]  # mutable, so unhashable
