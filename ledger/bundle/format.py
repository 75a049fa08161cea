"""The provenance bundle's format (SPEC 7): its parts parsed and their shape checked,
the manifest note the log signs for it, and the hash of an entry.

What a bundle means and how it is verified is :mod:`ledger.bundle.verify`; like it,
this module imports only the standard library, ``ledger.bundle.jcs``, ``ledger.log.merkle``,
``ledger.log.keys`` and ``ledger.errors``, so the verifier can be vendored or ported on its own.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger.bundle import jcs
from ledger.errors import InputError, VerificationError
from ledger.log import merkle
from ledger.log.keys import decode_base64

FORMAT = "alluvial-bundle/1"
MANIFEST_HEADER = f"{FORMAT} manifest"
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
ENTRY_KEYS = frozenset({"seq", "ts", "kind", "actor", "payload", "event_id", "prev"})
ZERO_HASH = "0" * 64
_HEX64 = re.compile(r"[0-9a-f]{64}")
_RUN = re.compile(r"([1-9][0-9]*)(?:-([1-9][0-9]*))?")
MAX_ENTRIES = 10_000_000  # a manifest counting more is refused
SHOWN = 10  # entries named one by one in a report, before "... and N more"


# -- entry hashing (SPEC 3) ------------------------------------------------------------------
def entry_hash(entry: dict[str, Any]) -> bytes:
    """SPEC 3: SHA-256(0x00 || JCS(entry)), the entry's Merkle leaf hash."""
    return merkle.leaf_hash(jcs.canonical_bytes(entry))


def _fast_entry_hash(entry: dict[str, Any]) -> bytes:
    """entry_hash for values :func:`ledger.bundle.jcs.loads` found JCS-safe (one C encoder call)."""
    return merkle.leaf_hash(jcs.fast_canonical_bytes(entry))


# -- the manifest ---------------------------------------------------------------------------
def manifest_text(origin: str, certificate_no: str, size: int, root: bytes,
                  seqs: Iterable[int]) -> str:
    """The note text the log signs for a bundle (described in :mod:`ledger.bundle.verify`)."""
    runs: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if runs and seq == runs[-1][1] + 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return _manifest_text(origin, certificate_no, size, root, [(a, b) for a, b in runs])


def _manifest_text(origin: str, certificate_no: str, size: int, root: bytes,
                   runs: list[tuple[int, int]]) -> str:
    """:func:`manifest_text` from the seqs as ascending, separate runs (first, last)."""
    tokens = [str(a) if a == b else f"{a}-{b}" for a, b in runs]
    lines, line = [], ""
    for token in tokens:
        if line and len(line) + 1 + len(token) > 100:
            lines.append(line)
            line = ""
        line = f"{line} {token}" if line else token
    lines += [line] if line else []
    head = [MANIFEST_HEADER, f"origin {origin}", f"certificate {certificate_no}",
            f"checkpoint {size} {base64.b64encode(root).decode('ascii')}",
            f"entries {sum(b - a + 1 for a, b in runs)}"]
    return "\n".join(head + lines) + "\n"


@dataclass(frozen=True)
class Manifest:
    """The signed list of a bundle's entries, kept as runs of seqs (first, last): what it
    claims is never expanded entry by entry, so a forged manifest claiming millions of
    entries costs no more than its text (issue 15)."""

    origin: str
    certificate_no: str
    size: int
    root: bytes
    runs: tuple[tuple[int, int], ...]

    @property
    def count(self) -> int:
        return sum(b - a + 1 for a, b in self.runs)

    @property
    def seqs(self) -> tuple[int, ...]:
        """Every seq listed, expanded (for a manifest already known to be small)."""
        return tuple(seq for a, b in self.runs for seq in range(a, b + 1))

    def lists(self, seq: int) -> bool:
        """Whether ``seq`` is listed."""
        at = bisect.bisect_right(self.runs, (seq, math.inf)) - 1
        return at >= 0 and self.runs[at][0] <= seq <= self.runs[at][1]

    def missing(self, present: Iterable[int]) -> tuple[list[int], int]:
        """The listed seqs not in ``present``: the first :data:`SHOWN` of them, and how many
        there are in all, counted run by run without expanding the runs."""
        here = set(present)
        have = sorted(here)
        first: list[int] = []
        total = 0
        for a, b in self.runs:
            absent = b - a + 1 - (bisect.bisect_right(have, b) - bisect.bisect_left(have, a))
            total += absent
            seq = a  # steps over at most the entries present and SHOWN absent ones
            while absent and len(first) < SHOWN:
                if seq not in here:
                    first.append(seq)
                    absent -= 1
                seq += 1
        return first, total

    @classmethod
    def from_text(cls, text: str) -> Manifest:
        """Parse the signed text strictly; the one spelling manifest_text writes."""
        lines = text[:-1].split("\n") if text.endswith("\n") else []
        if len(lines) < 5 or lines[0] != MANIFEST_HEADER:
            raise InputError(f"it does not start with {MANIFEST_HEADER!r} and four more lines.")
        fields = []
        for line, name in zip(lines[1:5], ("origin", "certificate", "checkpoint", "entries"),
                              strict=True):
            if not line.startswith(name + " "):
                raise InputError(f"line {line!r} should start with {name!r}.")
            fields.append(line[len(name) + 1:])
        size, _, root_b64 = fields[2].partition(" ")
        if not (size.isdigit() and fields[3].isdigit() and int(fields[3]) <= MAX_ENTRIES):
            raise InputError("its checkpoint size or entry count is not a number in range.")
        count, listed, runs = int(fields[3]), 0, list[tuple[int, int]]()
        for token in " ".join(lines[5:]).split(" ") if lines[5:] else []:
            match = _RUN.fullmatch(token)
            first, last = (int(match[1]), int(match[2] or match[1])) if match else (0, 0)
            if not match or last < first + (match[2] is not None) or (
                    runs and first <= runs[-1][1]):
                raise InputError(f"{token!r} is not an ascending seq or seq range.")
            if runs and first == runs[-1][1] + 1:
                raise InputError("it is not in canonical form.")  # "1 2" is written "1-2"
            listed += last - first + 1
            if listed > count:
                raise InputError(f"it lists more entries than the {count} it counts.")
            runs.append((first, last))
        if listed != count:
            raise InputError(f"it lists {listed} entries, not the {count} it counts.")
        root = decode_base64(root_b64, "its checkpoint root")
        made = cls(fields[0], fields[1], int(size), root, tuple(runs))
        if _manifest_text(made.origin, made.certificate_no, made.size, root, runs) != text:
            raise InputError("it is not in canonical form.")
        return made


# -- the bundle as parsed ------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    """One entry of the bundle with its inclusion proof; ``where`` names it in reports."""

    entry: dict[str, Any]
    index: int
    hashes: tuple[bytes, ...]
    where: str = field(default="", compare=False)

    @property
    def seq(self) -> int:
        seq: int = self.entry["seq"]
        return seq


@dataclass(frozen=True)
class Consistency:
    old_size: int
    hashes: tuple[bytes, ...]


def _hashes(value: Any, where: str) -> tuple[bytes, ...]:
    """SHA-256 hashes in canonical base64 (one text per hash, so no malleability)."""
    if not isinstance(value, list):
        raise VerificationError(f"{where}: must be a list of base64 hashes.")
    out = []
    for i, h in enumerate(value):
        try:
            raw = binascii.a2b_base64(h, strict_mode=True) if isinstance(h, str) else b""
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != merkle.HASH_SIZE or binascii.b2a_base64(raw, newline=False) != \
                h.encode("ascii"):
            raise VerificationError(f"{where}[{i}]: is not canonical base64 of 32 bytes.")
        out.append(raw)
    return tuple(out)


def _obj(value: Any, where: str, required: set[str], optional: frozenset[str] = frozenset()
         ) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise VerificationError(f"{where}: must be a JSON object.")
    missing, extra = required - set(value), set(value) - required - optional
    if missing or extra:
        what = f"lacks {sorted(missing)}" if missing else f"has unexpected keys {sorted(extra)}"
        raise VerificationError(f"{where}: {what}.")
    return value


def _int(value: Any, where: str, least: int) -> int:
    if type(value) is not int or value < least:
        raise VerificationError(f"{where}: must be an integer >= {least}.")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise VerificationError(f"{where}: must be a string.")
    return value


def _item(value: Any, i: int) -> Item:
    where = f"entries[{i}]"
    obj = _obj(value, where, {"entry", "proof"})
    entry = _obj(obj["entry"], f"{where}.entry", set(ENTRY_KEYS))
    seq = _int(entry["seq"], f"{where}.entry.seq", 1)
    where = f"entries[{i}] (seq {seq})"
    for name in ("ts", "kind", "actor"):
        _str(entry[name], f"{where}: {name}")
    if not isinstance(entry["payload"], dict):
        raise VerificationError(f"{where}: payload must be a JSON object.")
    if entry["event_id"] is not None:
        _str(entry["event_id"], f"{where}: event_id")
    if not isinstance(entry["prev"], str) or not _HEX64.fullmatch(entry["prev"]):
        raise VerificationError(f"{where}: prev must be 64 lowercase hex digits.")
    proof = _obj(obj["proof"], f"{where}: proof", {"index", "hashes"})
    index = _int(proof["index"], f"{where}: proof.index", 0)
    return Item(entry, index, _hashes(proof["hashes"], f"{where}: proof.hashes"), where)


@dataclass(frozen=True)
class Bundle:
    """A provenance bundle whose shape is checked (not yet its signatures or proofs)."""

    certificate_no: str
    origin: str
    vkey: str
    checkpoint: str
    items: tuple[Item, ...]
    manifest: str
    consistency: Consistency | None = None

    @classmethod
    def from_json(cls, doc: Any) -> Bundle:
        """Check the shape; VerificationError naming the first part that is malformed."""
        top = _obj(doc, "bundle", {"format", "certificate_no", "log", "checkpoint", "entries",
                                   "manifest"}, frozenset({"consistency"}))
        if top["format"] != FORMAT:
            raise VerificationError(f"format: {top['format']!r} is not {FORMAT!r}.")
        log = _obj(top["log"], "log", {"origin", "vkey"})
        if not isinstance(top["entries"], list):
            raise VerificationError("entries: must be a list.")
        consistency = None
        if "consistency" in top:
            c = _obj(top["consistency"], "consistency", {"old_size", "hashes"})
            consistency = Consistency(_int(c["old_size"], "consistency.old_size", 1),
                                      _hashes(c["hashes"], "consistency.hashes"))
        return cls(
            certificate_no=_str(top["certificate_no"], "certificate_no"),
            origin=_str(log["origin"], "log.origin"),
            vkey=_str(log["vkey"], "log.vkey"),
            checkpoint=_str(top["checkpoint"], "checkpoint"),
            items=tuple(_item(v, i) for i, v in enumerate(top["entries"])),
            manifest=_str(top["manifest"], "manifest"),
            consistency=consistency,
        )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "certificate_no": self.certificate_no,
            "log": {"origin": self.origin, "vkey": self.vkey},
            "checkpoint": self.checkpoint,
            "entries": [{"entry": it.entry, "proof": {"index": it.index, "hashes": [
                base64.b64encode(h).decode("ascii") for h in it.hashes]}} for it in self.items],
            "manifest": self.manifest,
        }
        if self.consistency is not None:
            doc["consistency"] = {"old_size": self.consistency.old_size, "hashes": [
                base64.b64encode(h).decode("ascii") for h in self.consistency.hashes]}
        return doc


def tlog_proof(bundle: Bundle, position: int) -> str:
    """Entry ``position`` of the bundle as a C2SP ``tlog-proof`` (extra: its JCS bytes)."""
    item = bundle.items[position]
    b64 = base64.b64encode
    lines = [TLOG_PROOF_HEADER, "extra " + b64(jcs.canonical_bytes(item.entry)).decode("ascii"),
             f"index {item.index}", *(b64(h).decode("ascii") for h in item.hashes)]
    return "\n".join(lines) + "\n\n" + bundle.checkpoint
