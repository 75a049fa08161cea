"""Offline verification of a provenance bundle (SPEC 7): the verifier's core.

It parses the bundle, checks the signatures, proofs, chain and manifest, and reports;
the custody replay and re-screening are :mod:`ledger.bundle_replay`, the RFC 8785 bytes
:mod:`ledger.jcs`. Together they import only the standard library, ``ledger.merkle``
(RFC 9162 proofs) and ``ledger.keys``/``ledger.checkpoint``/``ledger.errors`` (signed
notes over the ``cryptography`` Ed25519 primitive), so they can be vendored or ported on
their own. Re-screening uses shapely when it can be imported, and says so plainly when
it cannot. It needs no database and no network, and writes nothing.

The bundle (``schemas/bundle.json``) is one UTF-8 JSON object::

    {"format": "alluvial-bundle/1",
     "certificate_no": "GH-2008-0042",
     "log": {"origin": "alluvial.local", "vkey": "<C2SP verifier key>"},
     "checkpoint": "<signed C2SP tlog-checkpoint note>",
     "entries": [{"entry": {<SPEC 3 entry: seq, ts, kind, actor, payload, event_id, prev>},
                  "proof": {"index": <seq - 1>, "hashes": ["<base64 SHA-256>", ...]}}, ...],
     "manifest": "<signed note, below>",
     "consistency": {"old_size": N, "hashes": [...]}}        # only with --since N

* Entries are sorted by seq. An entry's hash is SHA-256(0x00 || RFC 8785 bytes of the
  entry object), recomputed here (:func:`entry_hash`, over :mod:`ledger.jcs`, a
  standard-library JCS).
* ``proof`` is the C2SP tlog-proof body: the zero-based ``index`` and the RFC 9162
  inclusion path, leaf sibling first, in the tree of the checkpoint's size. With the
  checkpoint it is a whole ``c2sp.org/tlog-proof@v1`` (:func:`tlog_proof`, whose
  ``extra`` line carries the entry's canonical bytes, so tlog tools can hash the leaf).
* ``manifest`` is the log's answer for completeness: inclusion proofs show that each
  entry was logged, never that nothing was left out, so the log signs, with the same
  key as its checkpoints, the list of what it put in this bundle::

      alluvial-bundle/1 manifest
      origin <log origin>
      certificate <certificate_no>
      checkpoint <size> <base64 root>
      entries <count>
      <seqs, ascending, as "N" or "FIRST-LAST" runs, space-separated, wrapped>

  The checkpoint pins one leaf hash per seq, so the seqs fix every entry's content.
* ``consistency`` (``alluvial bundle --since N``, API ``?since=N``): the RFC 9162
  consistency proof from the log's size N to the bundle's checkpoint. The builder
  cannot know which checkpoint an importer saved, so the importer asks for it;
  ``verify-bundle --checkpoint OLD`` fails, naming the size to ask for, when the
  bundle has no proof from OLD's size.

What :func:`verify_bundle` checks, each failure a line naming its part: the key
against the pinned one (``log.vkey``), ``checkpoint`` and ``manifest`` signatures,
every ``entries[i] (seq N)`` hash, proof and chain link, the manifest's list against
the entries; then :mod:`ledger.bundle_replay` replays the ``custody`` graph (SPEC 4),
re-screens every origin purchase against the bundle's zones (``screening``, SPEC 5) and
fails on any open ``flags`` (SPEC 1: no export holding tainted diamonds is certified).
The report ends with the shares of origin sites and licence zones in the export.

Decisions. A bundle that is not JSON, or holds anything this module cannot read, is a
failed verification (``bundle: ...``, exit 1), not bad input: the file is the thing
verified. Exit 2 is kept for bad usage: no ``--key`` and no ``--trust-bundle-key`` (or
both), or a malformed ``--key``. A bundle whose own key differs from the pinned one
fails (``log.vkey``) and is checked under the pinned key all the same; with
``--trust-bundle-key`` the CLI prints ``WARNING: key not pinned`` and the key on
stderr. Custody is replayed over the entries whose proofs hold, so a dropped entry
shows both in the manifest and as a custody graph that no longer balances.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ledger import jcs, merkle
from ledger.bundle_replay import Share, replay
from ledger.checkpoint import Checkpoint
from ledger.errors import InputError, LedgerError, VerificationError
from ledger.keys import VerifierKey, decode_base64, open_note

FORMAT = "alluvial-bundle/1"
MANIFEST_HEADER = f"{FORMAT} manifest"
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
ENTRY_KEYS = frozenset({"seq", "ts", "kind", "actor", "payload", "event_id", "prev"})
ZERO_HASH = "0" * 64
_HEX64 = re.compile(r"[0-9a-f]{64}")
_RUN = re.compile(r"([1-9][0-9]*)(?:-([1-9][0-9]*))?")
MAX_ENTRIES = 10_000_000  # a manifest listing more is refused before it is expanded


# -- entry hashing (SPEC 3) ------------------------------------------------------------------
def entry_hash(entry: dict[str, Any]) -> bytes:
    """SPEC 3: SHA-256(0x00 || JCS(entry)), the entry's Merkle leaf hash."""
    return merkle.leaf_hash(jcs.canonical_bytes(entry))


def _fast_entry_hash(entry: dict[str, Any]) -> bytes:
    """entry_hash for values :func:`ledger.jcs.loads` found JCS-safe (one C encoder call)."""
    return merkle.leaf_hash(jcs.fast_canonical_bytes(entry))


# -- the manifest ---------------------------------------------------------------------------
def manifest_text(origin: str, certificate_no: str, size: int, root: bytes,
                  seqs: Iterable[int]) -> str:
    """The note text the log signs for a bundle (module docstring)."""
    ordered = sorted(set(seqs))
    runs: list[list[int]] = []
    for seq in ordered:
        if runs and seq == runs[-1][1] + 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
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
            f"entries {len(ordered)}"]
    return "\n".join(head + lines) + "\n"


@dataclass(frozen=True)
class Manifest:
    origin: str
    certificate_no: str
    size: int
    root: bytes
    seqs: tuple[int, ...]

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
        count, seqs = int(fields[3]), list[int]()
        for token in " ".join(lines[5:]).split(" ") if lines[5:] else []:
            match = _RUN.fullmatch(token)
            first, last = (int(match[1]), int(match[2] or match[1])) if match else (0, 0)
            if not match or last < first + (match[2] is not None) or (seqs and first <= seqs[-1]):
                raise InputError(f"{token!r} is not an ascending seq or seq range.")
            if len(seqs) + last - first >= count:
                raise InputError(f"it lists more entries than the {count} it counts.")
            seqs.extend(range(first, last + 1))
        if len(seqs) != count:
            raise InputError(f"it lists {len(seqs)} entries, not the {count} it counts.")
        root = decode_base64(root_b64, "its checkpoint root")
        made = cls(fields[0], fields[1], int(size), root, tuple(seqs))
        if manifest_text(made.origin, made.certificate_no, made.size, root, seqs) != text:
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


# -- verification ----------------------------------------------------------------------------
@dataclass
class Report:
    """What verification found; ``problems`` is empty when the bundle checks out."""

    certificate_no: str = ""
    key: str = ""
    pinned: bool = False
    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    export_points: int = 0
    sites: dict[str, Share] = field(default_factory=dict)
    zones: dict[str, Share] = field(default_factory=dict)
    screened: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, part: str, message: str) -> None:
        self.problems.append(f"{part}: {message}")

    def lines(self) -> list[str]:
        """The verdict, then each problem naming its part, then what was established."""
        what = f"provenance bundle of KP certificate {self.certificate_no or '?'}"
        if self.problems:
            head = [f"FAILED: {what}: {len(self.problems)} problem(s).", *self.problems]
        else:
            head = [f"OK: {what} verified."]
        total = Fraction(self.export_points)
        shares = []
        for title, table in (("origin sites", self.sites), ("licence zones", self.zones)):
            if table and total:
                shares.append(f"{title} of the {_ct(total)} exported:")
                for s in sorted(table.values(), key=lambda s: (-s.points, s.label)):
                    shares.append(f"  {s.label}: {_pct(s.points / total)} ({_ct(s.points)})")
        return head + self.facts + shares + self.notes


def _ct(points: Fraction) -> str:
    return f"{float(points) / 100:.2f} ct"


def _pct(share: Fraction) -> str:
    return f"{float(share) * 100:.1f}".removesuffix(".0") + "%"


def verify_bundle(data: bytes | str, key: VerifierKey | None = None,
                  earlier_checkpoint: str | None = None, screen: bool = True) -> Report:
    """Verify a bundle's bytes offline against the pinned ``key``.

    ``key=None`` trusts the bundle's own key: the caller must have been asked to
    (``--trust-bundle-key``) and must warn. ``earlier_checkpoint`` is a signed note
    the importer saved, which the bundle's checkpoint must extend.
    """
    report = Report(pinned=key is not None)
    try:
        doc, fast = jcs.loads(data)
    except ValueError as exc:
        report.fail("bundle", f"not valid JSON: {exc}")
        return report
    if isinstance(doc, dict) and isinstance(doc.get("certificate_no"), str):
        report.certificate_no = doc["certificate_no"]
    try:
        bundle = Bundle.from_json(doc)
    except VerificationError as exc:
        report.problems.append(str(exc))
        return report
    try:
        _Verifier(bundle, report, key, earlier_checkpoint, screen,
                  _fast_entry_hash if fast else entry_hash).run()
    except Exception as exc:  # fail closed: what cannot be checked is not verified
        report.fail("bundle", f"verification stopped on something it cannot read: {exc!r}.")
    return report


class _Verifier:
    """One verification run: signatures and proofs, then the custody replay."""

    def __init__(self, bundle: Bundle, report: Report, key: VerifierKey | None,
                 earlier: str | None, screen: bool, hasher: Callable[[dict[str, Any]], bytes]
                 ) -> None:
        self.b, self.r, self.pinned = bundle, report, key
        self.earlier, self.screen, self.hash = earlier, screen, hasher
        self.good: list[Item] = []

    def run(self) -> None:
        key = self._key()
        if key is None:
            return
        checkpoint = self._checkpoint(key)
        if checkpoint is None:
            return
        self._earlier(key, checkpoint)
        manifest = self._manifest(key, checkpoint)
        self._entries(checkpoint, manifest)
        # Custody is replayed over the entries whose proofs hold, whatever else failed.
        replay(self.b.certificate_no, self.good, self.r, self.screen)
        if self.r.problems:
            return
        n = len(self.good)
        self.r.notes.append(
            "completeness: inclusion proofs show that each entry was logged, not that nothing "
            f"was left out; the log's signed manifest lists exactly these {n} entries as the "
            f"bundle of {self.b.certificate_no}, so the log vouches for its completeness.")

    def _key(self) -> VerifierKey | None:
        b, r = self.b, self.r
        try:
            own: VerifierKey | None = VerifierKey.from_vkey(b.vkey)
        except InputError as exc:
            own = None
            r.fail("log.vkey", f"malformed: {exc}")
        key = self.pinned or own
        if key is None:
            return None
        if self.pinned is not None and own is not None and own != self.pinned:
            r.fail("log.vkey", f"the bundle's key {b.vkey} is not the pinned key "
                   f"{self.pinned.to_vkey()}.")
        if b.origin != key.name:
            r.fail("log.origin", f"{b.origin!r} is not the log {key.name!r} the key names.")
        r.key = key.to_vkey()
        return key

    def _checkpoint(self, key: VerifierKey) -> Checkpoint | None:
        try:
            cp = Checkpoint.from_signed(self.b.checkpoint, key)
        except LedgerError as exc:
            self.r.fail("checkpoint", str(exc))
            return None
        root = base64.b64encode(cp.root_hash).decode("ascii")
        how = "pinned" if self.pinned else "NOT pinned: the bundle's own"
        self.r.facts.append(f"checkpoint: log {cp.origin}, size {cp.size}, root {root}, "
                            f"signed by key {key.name}+{key.key_id.hex()} ({how}).")
        return cp

    def _earlier(self, key: VerifierKey, cp: Checkpoint) -> None:
        if self.earlier is None:
            return
        try:
            old = Checkpoint.from_signed(self.earlier, key)
        except LedgerError as exc:
            self.r.fail("--checkpoint", str(exc))
            return
        proof = self.b.consistency
        if old.size > cp.size:
            self.r.fail("--checkpoint", f"your checkpoint covers {old.size} entries, more than "
                        f"the bundle's ({cp.size}): ask the log for a newer bundle.")
        elif old.size == cp.size and old.root_hash != cp.root_hash:
            self.r.fail("--checkpoint", f"same size {cp.size} but another root: the log has "
                        "forked.")
        elif old.size < cp.size and (proof is None or proof.old_size != old.size):
            self.r.fail("--checkpoint", f"the bundle carries no consistency proof from size "
                        f"{old.size}; ask for a bundle with `--since {old.size}`.")
        elif old.size < cp.size and proof is not None and not merkle.verify_consistency(
                old.size, cp.size, old.root_hash, cp.root_hash, proof.hashes):
            self.r.fail("consistency", f"the proof from size {old.size} to {cp.size} does not "
                        "verify: the log is not an extension of your checkpoint.")
        else:
            self.r.facts.append(f"consistency: the checkpoint extends your saved checkpoint "
                                f"of size {old.size}.")

    def _manifest(self, key: VerifierKey, cp: Checkpoint) -> Manifest | None:
        try:
            manifest = Manifest.from_text(open_note(self.b.manifest, key))
        except LedgerError as exc:
            self.r.fail("manifest", str(exc))
            return None
        if manifest.origin != key.name:
            self.r.fail("manifest", f"it is for log {manifest.origin!r}, not {key.name!r}.")
        if manifest.certificate_no != self.b.certificate_no:
            self.r.fail("certificate_no", f"the bundle says {self.b.certificate_no!r} but the "
                        f"log's signed manifest says {manifest.certificate_no!r}.")
        if (manifest.size, manifest.root) != (cp.size, cp.root_hash):
            self.r.fail("manifest", f"it was signed for the checkpoint of size {manifest.size}, "
                        f"not the bundle's checkpoint of size {cp.size}.")
        return manifest

    def _entries(self, cp: Checkpoint, manifest: Manifest | None) -> None:
        fail, seen, hashes = self.r.fail, {}, {}
        for item in self.b.items:
            seq = item.seq
            if seq in seen:
                fail(item.where, f"entry {seq} is in the bundle twice.")
                continue
            seen[seq] = item
            if item.index != seq - 1:
                fail(item.where, f"proof.index {item.index} is not seq - 1.")
                continue
            try:
                leaf = self.hash(item.entry)
            except (ValueError, UnicodeEncodeError) as exc:
                fail(item.where, f"the entry cannot be hashed: {exc}.")
                continue
            if not merkle.verify_inclusion(leaf, item.index, cp.size, item.hashes, cp.root_hash):
                fail(item.where, "its hash and inclusion proof do not lead to the checkpoint's "
                     "root: the entry or its proof was altered.")
                continue
            self.good.append(item)
            hashes[seq] = leaf.hex()
        for it in self.good:
            before = hashes.get(it.seq - 1, ZERO_HASH if it.seq == 1 else None)
            if before is not None and it.entry["prev"] != before:
                fail(it.where, f"prev does not match the hash of entry {it.seq - 1}.")
        if manifest is not None:
            listed = set(manifest.seqs)
            for seq in sorted(listed - set(seen)):
                fail("manifest", f"entry {seq} is listed in the log's signed manifest but "
                     "missing from the bundle.")
            for seq in sorted(set(seen) - listed):
                fail(seen[seq].where, "is not listed in the log's signed manifest.")
        if not self.r.problems:
            self.r.facts.append(f"entries: {len(self.good)} entries; every hash, inclusion "
                                "proof and chain link verified against the checkpoint.")
