"""ledger.log.merkle against RFC 9162 section 2.1, published vectors and pymerkle 7.

The reference functions below are the RFC's recursive definitions (MTH, PATH, SUBPROOF)
transcribed as literally as possible; they are slow and obviously right, the module is
fast and checked against them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.log.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    consistency_proof,
    fold,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_hashes,
    split,
    subtree_ranges,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

# --------------------------------------------------------------------------- reference


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """RFC 9162 2.1.1: the largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: tuple[bytes, ...]) -> bytes:
    if len(d) == 0:
        return _sha(b"")
    if len(d) == 1:
        return _sha(b"\x00" + d[0])
    k = _k(len(d))
    return _sha(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: tuple[bytes, ...], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


MAX_REF = 64
DATA: tuple[bytes, ...] = tuple(f"entry {i}".encode() * (i % 4) for i in range(MAX_REF))


@cache
def ref_range(start: int, end: int) -> bytes:
    return ref_mth(DATA[start:end])


def ref_subtree(start: int, end: int) -> bytes:
    assert 0 <= start < end <= MAX_REF
    return ref_range(start, end)


# --------------------------------------------------------------------------- basics


def test_constants_and_hashers() -> None:
    assert HASH_SIZE == 32
    assert _sha(b"") == EMPTY_ROOT
    assert leaf_hash(b"abc") == _sha(b"\x00abc")
    assert node_hash(b"L", b"R") == _sha(b"\x01LR")
    assert tree_hash([]) == root_from_hashes([]) == EMPTY_ROOT


def test_split() -> None:
    for n in range(2, 3000):
        assert split(n) == _k(n)
    for n in (-1, 0, 1):
        with pytest.raises(ValueError):
            split(n)


def test_tree_hash_matches_rfc_definition() -> None:
    for n in range(MAX_REF + 1):
        assert tree_hash(list(DATA[:n])) == ref_mth(DATA[:n])
        assert root_from_hashes([leaf_hash(x) for x in DATA[:n]]) == ref_mth(DATA[:n])


def test_inclusion_proofs_match_rfc_definition() -> None:
    for size in range(1, MAX_REF + 1):
        root = ref_range(0, size)
        for index in range(size):
            proof = inclusion_proof(index, size, ref_subtree)
            assert proof == ref_path(index, DATA[:size]), (index, size)
            assert verify_inclusion(leaf_hash(DATA[index]), index, size, proof, root)


def test_consistency_proofs_match_rfc_definition() -> None:
    for new in range(1, MAX_REF + 1):
        for old in range(1, new + 1):
            proof = consistency_proof(old, new, ref_subtree)
            assert proof == ref_subproof(old, DATA[:new], True), (old, new)
            assert verify_consistency(old, new, ref_range(0, old), ref_range(0, new), proof)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (-1, 3), (3, 3), (7, 3), (0, -1)])
def test_inclusion_proof_rejects_bad_arguments(index: int, size: int) -> None:
    with pytest.raises(ValueError):
        inclusion_proof(index, size, ref_subtree)


@pytest.mark.parametrize(("old", "new"), [(0, 0), (0, 5), (-1, 5), (6, 5), (2, 1)])
def test_consistency_proof_rejects_bad_arguments(old: int, new: int) -> None:
    with pytest.raises(ValueError):
        consistency_proof(old, new, ref_subtree)


def test_one_million_leaves() -> None:
    leaves = [i.to_bytes(4, "big") for i in range(1_000_000)]
    frontier = CompactRange()
    for x in leaves:
        frontier.append(leaf_hash(x))
    assert tree_hash(leaves) == frontier.root()


# --------------------------------------------------------------------------- ranges


def _requested_ranges() -> set[tuple[int, int]]:
    """Every (start, end) that RFC proofs over trees of up to 64 leaves ask for."""
    seen: set[tuple[int, int]] = set()

    def record(start: int, end: int) -> bytes:
        seen.add((start, end))
        return ref_subtree(start, end)

    for size in range(1, MAX_REF + 1):
        for i in range(size):
            inclusion_proof(i, size, record)
            consistency_proof(i + 1, size, record)
    return seen


def test_fold_of_subtree_ranges_is_mth_for_every_proof_range() -> None:
    ranges = _requested_ranges()
    assert len(ranges) > 100
    for start, end in ranges:
        width = end - start
        assert start % (1 << (width - 1).bit_length()) == 0  # the documented precondition
        parts = subtree_ranges(start, end)
        assert fold([ref_range(s, e) for s, e in parts]) == ref_range(start, end)
        widths = [e - s for s, e in parts]
        assert widths == sorted(widths, reverse=True)
        assert len(parts) == width.bit_count()


def test_subtree_ranges_partition_into_aligned_perfect_subtrees() -> None:
    for start in range(70):
        for end in range(start, 140):
            parts = subtree_ranges(start, end)
            assert [s for s, _ in parts[1:]] == [e for _, e in parts[:-1]]
            if parts:
                assert parts[0][0] == start and parts[-1][1] == end
            for s, e in parts:
                w = e - s
                assert w > 0 and w & (w - 1) == 0 and s % w == 0
    assert subtree_ranges(0, 13) == [(0, 8), (8, 12), (12, 13)]
    assert subtree_ranges(3, 13) == [(3, 4), (4, 8), (8, 12), (12, 13)]
    with pytest.raises(ValueError):
        subtree_ranges(5, 4)
    assert fold([]) == EMPTY_ROOT


# --------------------------------------------------------------------------- vectors

VECTORS_PATH = Path(__file__).resolve().parents[2] / "shared" / "reference" / "rfc6962_vectors.json"
VECTORS: dict[str, Any] | None = (
    json.loads(VECTORS_PATH.read_text(encoding="utf-8")) if VECTORS_PATH.is_file() else None
)


def _vectors() -> dict[str, Any]:
    if VECTORS is None:
        pytest.skip(f"reference vectors not found at {VECTORS_PATH}")
    return VECTORS


def _case(case: dict[str, Any] | None) -> dict[str, Any]:
    """A published case, or a skip when ../shared/reference is not beside the repository."""
    _vectors()
    if case is None:
        pytest.skip("reference vectors absent")
    return case


def _cases(key: str, id_of: Callable[[dict[str, Any]], str]) -> list[Any]:
    if VECTORS is None:
        return [pytest.param(None, id="vectors-absent")]
    block = VECTORS[key]
    cases = block["cases"] if isinstance(block, dict) else block
    return [pytest.param(c, id=f"{n:02d} {id_of(c)}") for n, c in enumerate(cases)]


def _inc_id(c: dict[str, Any]) -> str:
    return f"{c.get('desc', 'case')} index={c['leaf_index']} size={c['tree_size']}"


def _con_id(c: dict[str, Any]) -> str:
    return f"{c.get('desc', 'case')} {c['size1']}->{c['size2']}"


def _h(x: str) -> bytes:
    return bytes.fromhex(x)


def _reference_subtree() -> Callable[[int, int], bytes]:
    inputs = [_h(x) for x in _vectors()["reference_tree"]["leaf_inputs_hex"]]
    return lambda start, end: tree_hash(inputs[start:end])


def _is_reference_root(size: int, root: str) -> bool:
    """True when ``root`` is the reference tree's root at ``size`` (so proofs are over it)."""
    return bool(_vectors()["reference_tree"]["roots_by_size"].get(str(size)) == root)


def test_vectors_hasher() -> None:
    for v in _vectors()["hasher_vectors"]:
        if v["kind"] == "empty_root":
            assert EMPTY_ROOT.hex() == v["hash"], v["desc"]
        elif v["kind"] == "leaf":
            assert leaf_hash(_h(v["input_hex"])).hex() == v["hash"], v["desc"]
        else:
            assert node_hash(_h(v["left_hex"]), _h(v["right_hex"])).hex() == v["hash"]


def test_vectors_reference_tree() -> None:
    tree = _vectors()["reference_tree"]
    inputs = [_h(x) for x in tree["leaf_inputs_hex"]]
    assert [leaf_hash(x).hex() for x in inputs] == tree["leaf_hashes"]
    for size, root in tree["roots_by_size"].items():
        assert tree_hash(inputs[: int(size)]).hex() == root
    levels = tree["complete_subtree_hashes_by_level"]["levels"]
    nodes: dict[tuple[int, int], str] = {}
    frontier = CompactRange()
    for x in inputs:
        nodes.update({(lv, i): h.hex() for lv, i, h in frontier.append(leaf_hash(x))})
    for lv, row in enumerate(levels):
        for i, h in enumerate(row):
            assert tree_hash(inputs[i << lv : (i + 1) << lv]).hex() == h
            if lv:
                assert nodes[(lv, i)] == h


INCLUSION_GOOD = _cases("inclusion_proofs_published", _inc_id) + _cases(
    "inclusion_proofs_all_sizes_1_to_8", _inc_id
)
CONSISTENCY_GOOD = _cases("consistency_proofs_published", _con_id) + _cases(
    "consistency_proofs_all_sizes_1_to_8", _con_id
)


@pytest.mark.parametrize("case", INCLUSION_GOOD)
def test_vectors_inclusion(case: dict[str, Any] | None) -> None:
    case = _case(case)
    proof = [_h(p) for p in case["proof"]]
    idx, size = case["leaf_index"], case["tree_size"]
    assert verify_inclusion(_h(case["leaf_hash"]), idx, size, proof, _h(case["root"]))
    if _is_reference_root(size, case["root"]):
        assert inclusion_proof(idx, size, _reference_subtree()) == proof
    if "leaf_input" in case:
        assert leaf_hash(_h(case["leaf_input"])).hex() == case["leaf_hash"]


@pytest.mark.parametrize("case", CONSISTENCY_GOOD)
def test_vectors_consistency(case: dict[str, Any] | None) -> None:
    case = _case(case)
    proof = [_h(p) for p in case["proof"]]
    m, n, r1, r2 = case["size1"], case["size2"], _h(case["root1"]), _h(case["root2"])
    # SPEC 3 rejects any hash that is not 32 bytes, even where the published happy path
    # ("sizes are equal (one) and proof is empty", 12-byte roots) accepts it.
    expected = len(r1) == len(r2) == HASH_SIZE
    assert verify_consistency(m, n, r1, r2, proof) is expected
    if _is_reference_root(m, case["root1"]) and _is_reference_root(n, case["root2"]):
        assert consistency_proof(m, n, _reference_subtree()) == proof


@pytest.mark.parametrize("case", _cases("negative_inclusion_probes", _inc_id))
def test_vectors_negative_inclusion(case: dict[str, Any] | None) -> None:
    case = _case(case)
    proof = [_h(p) for p in case["proof"]]
    args = (_h(case["leaf_hash"]), case["leaf_index"], case["tree_size"], proof)
    assert verify_inclusion(*args, _h(case["root"])) is False


@pytest.mark.parametrize("case", _cases("negative_consistency_probes", _con_id))
def test_vectors_negative_consistency(case: dict[str, Any] | None) -> None:
    case = _case(case)
    proof = [_h(p) for p in case["proof"]]
    m, n, r1, r2 = case["size1"], case["size2"], _h(case["root1"]), _h(case["root2"])
    assert verify_consistency(m, n, r1, r2, proof) is False


def test_vectors_counts() -> None:
    v = _vectors()
    assert len(v["negative_inclusion_probes"]["cases"]) == 92
    assert len(v["negative_consistency_probes"]["cases"]) == 92


# --------------------------------------------------------------------------- properties

MAX_H = 300
HDATA = [f"hypothesis leaf {i}".encode() for i in range(MAX_H)]
HLEAVES = [leaf_hash(x) for x in HDATA]


@cache
def h_subtree(start: int, end: int) -> bytes:
    return root_from_hashes(HLEAVES[start:end])


def _flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def _length_tamperings(proof: list[bytes], extra: bytes) -> list[list[bytes]]:
    out = [[*proof, extra], [extra, *proof]]
    if proof:
        out += [proof[:-1], proof[1:], [*proof, proof[-1]]]
        out += [[*proof[:i], extra, *proof[i:]] for i in range(1, len(proof))]
    return out


HSETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HSETTINGS
@given(data=st.data(), size=st.integers(1, MAX_H))
def test_inclusion_property(data: st.DataObject, size: int) -> None:
    index = data.draw(st.integers(0, size - 1), label="index")
    root, leaf = h_subtree(0, size), HLEAVES[index]
    proof = inclusion_proof(index, size, h_subtree)
    assert verify_inclusion(leaf, index, size, proof, root)
    # any single bit of any hash involved
    which = data.draw(st.integers(0, len(proof) + 1), label="which")
    bit = data.draw(st.integers(0, 8 * HASH_SIZE - 1), label="bit")
    if which < len(proof):
        bad = list(proof)
        bad[which] = _flip(bad[which], bit)
        assert not verify_inclusion(leaf, index, size, bad, root)
    elif which == len(proof):
        assert not verify_inclusion(leaf, index, size, proof, _flip(root, bit))
    else:
        assert not verify_inclusion(_flip(leaf, bit), index, size, proof, root)
    for bad in _length_tamperings(proof, HLEAVES[0]):
        assert not verify_inclusion(leaf, index, size, bad, root)
    assert not verify_inclusion(leaf, size, size, proof, root)
    assert not verify_inclusion(leaf[:-1], index, size, proof, root)


@HSETTINGS
@given(data=st.data(), new=st.integers(1, MAX_H))
def test_consistency_property(data: st.DataObject, new: int) -> None:
    old = data.draw(st.integers(1, new), label="old")
    r1, r2 = h_subtree(0, old), h_subtree(0, new)
    proof = consistency_proof(old, new, h_subtree)
    assert verify_consistency(old, new, r1, r2, proof)
    which = data.draw(st.integers(0, len(proof) + 1), label="which")
    bit = data.draw(st.integers(0, 8 * HASH_SIZE - 1), label="bit")
    if which < len(proof):
        bad = list(proof)
        bad[which] = _flip(bad[which], bit)
        assert not verify_consistency(old, new, r1, r2, bad)
    elif which == len(proof):
        assert not verify_consistency(old, new, _flip(r1, bit), r2, proof)
    else:
        assert not verify_consistency(old, new, r1, _flip(r2, bit), proof)
    for bad in _length_tamperings(proof, HLEAVES[0]):
        assert not verify_consistency(old, new, r1, r2, bad)
    if old < new:
        assert not verify_consistency(new, old, r2, r1, proof)
        assert not verify_consistency(old, new, r1, r2, [])
    assert not verify_consistency(0, new, EMPTY_ROOT, r2, proof)


def test_every_bit_flip_fails_small_trees() -> None:
    for size in (1, 2, 3, 5, 8, 13):
        root = h_subtree(0, size)
        for index in range(size):
            leaf, proof = HLEAVES[index], inclusion_proof(index, size, h_subtree)
            for bit in range(8 * HASH_SIZE):
                assert not verify_inclusion(_flip(leaf, bit), index, size, proof, root)
                assert not verify_inclusion(leaf, index, size, proof, _flip(root, bit))
                for j in range(len(proof)):
                    bad = [*proof[:j], _flip(proof[j], bit), *proof[j + 1 :]]
                    assert not verify_inclusion(leaf, index, size, bad, root)


@pytest.mark.parametrize(
    "args",
    [
        ("leaf", 0, 1, [], "root"),
        (b"", 0, 1, [], EMPTY_ROOT),
        (EMPTY_ROOT, "0", 1, [], EMPTY_ROOT),
        (EMPTY_ROOT, 0, None, [], EMPTY_ROOT),
        (EMPTY_ROOT, -1, 1, [], EMPTY_ROOT),
        (EMPTY_ROOT, 0, 2, [None], EMPTY_ROOT),
    ],
)
def test_verify_inclusion_never_raises(args: tuple[Any, ...]) -> None:
    assert verify_inclusion(*args) is False


def test_verify_consistency_equal_sizes() -> None:
    r = h_subtree(0, 5)
    assert verify_consistency(5, 5, r, r, [])
    assert not verify_consistency(5, 5, r, h_subtree(0, 4), [])
    assert not verify_consistency(5, 5, r, r, [r])
    assert not verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(5, 5, r[:31], r[:31], [])
    assert not verify_consistency("5", 5, r, r, [])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pymerkle


@pytest.fixture(scope="module")
def pymerkle_tree() -> Any:
    from pymerkle import InmemoryTree

    tree = InmemoryTree()
    for x in HDATA:
        tree.append_entry(x)
    return tree


def test_pymerkle_roots_and_leaves(pymerkle_tree: Any) -> None:
    for size in range(MAX_H + 1):
        assert pymerkle_tree.get_root(size) == tree_hash(HDATA[:size]) == h_subtree(0, size)
    for i in range(MAX_H):
        assert pymerkle_tree.get_leaf(i + 1) == HLEAVES[i]


def test_pymerkle_inclusion_small(pymerkle_tree: Any) -> None:
    for size in range(1, 41):
        for index in range(size):
            path = pymerkle_tree.prove_inclusion(index + 1, size).path
            assert path[0] == HLEAVES[index]
            assert inclusion_proof(index, size, h_subtree) == path[1:]


@HSETTINGS
@given(data=st.data(), size=st.integers(1, MAX_H))
def test_pymerkle_inclusion_property(pymerkle_tree: Any, data: st.DataObject, size: int) -> None:
    index = data.draw(st.integers(0, size - 1), label="index")
    path = pymerkle_tree.prove_inclusion(index + 1, size).path
    assert inclusion_proof(index, size, h_subtree) == path[1:]


@HSETTINGS
@given(data=st.data(), new=st.integers(1, MAX_H))
def test_pymerkle_range_roots_give_same_consistency_proof(
    pymerkle_tree: Any, data: st.DataObject, new: int
) -> None:
    # pymerkle's own consistency proofs are not RFC proofs (see the vectors' notes);
    # its range-root primitive (private API, pinned 7.0.0) is an independent MTH(D[s:e]).
    old = data.draw(st.integers(1, new), label="old")
    proof = consistency_proof(old, new, pymerkle_tree._get_root)
    assert proof == consistency_proof(old, new, h_subtree)
    assert verify_consistency(old, new, h_subtree(0, old), pymerkle_tree.get_root(new), proof)


# --------------------------------------------------------------------------- CompactRange


def test_compact_range_grows_like_the_tree() -> None:
    frontier = CompactRange()
    assert frontier.size == 0 and frontier.hashes == [] and frontier.root() == EMPTY_ROOT
    seen: dict[tuple[int, int], bytes] = {}
    for size in range(1, 201):
        before = frontier.copy()
        created = frontier.append(HLEAVES[size - 1])
        assert before.size == size - 1  # the copy did not move
        # exactly the internal nodes whose last leaf is this one, bottom up
        levels = range(1, size.bit_length())
        expected = [(lv, (size >> lv) - 1) for lv in levels if size % (1 << lv) == 0]
        assert [(lv, i) for lv, i, _ in created] == expected
        for lv, i, h in created:
            assert h == h_subtree(i << lv, (i + 1) << lv)
            seen[(lv, i)] = h
        complete = {(lv, i) for lv in range(1, 9) for i in range(size >> lv)}
        assert set(seen) == complete
        assert frontier.size == size
        assert frontier.root() == root_from_hashes(HLEAVES[:size]) == h_subtree(0, size)
        assert frontier.hashes == [h_subtree(s, e) for s, e in subtree_ranges(0, size)]
        blob = frontier.to_bytes()
        assert len(blob) == size.bit_count() * HASH_SIZE
        assert CompactRange.from_bytes(size, blob) == frontier
        assert CompactRange(size, frontier.hashes) == frontier


def test_compact_range_rejects_bad_state() -> None:
    good = CompactRange()
    for h in HLEAVES[:7]:
        good.append(h)
    blob = good.to_bytes()
    for bad in (blob[:-1], blob + b"\x00", blob[:-32], blob + blob[:32], b""):
        with pytest.raises(ValueError):
            CompactRange.from_bytes(7, bad)
    for size in (6, 8, -1):
        with pytest.raises(ValueError):
            CompactRange.from_bytes(size, blob)
    with pytest.raises(ValueError):
        CompactRange(3)
    with pytest.raises(ValueError):
        CompactRange(3, [HLEAVES[0], HLEAVES[1][:31]])
    with pytest.raises(ValueError):
        good.append(b"short")
    assert good.size == 7
    assert CompactRange.from_bytes(0, b"") == CompactRange()
