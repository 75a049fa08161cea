"""Offline verification of a provenance bundle (SPEC 7): the verifier's core.

This module imports only the standard library, ``ledger.merkle`` (RFC 9162 proofs,
standard library only) and ``ledger.keys``/``ledger.checkpoint``/``ledger.errors``
(signed notes over the ``cryptography`` Ed25519 primitive), so it can be vendored or
ported on its own. Re-screening uses shapely when it can be imported, and says so
plainly when it cannot. It needs no database and no network, and writes nothing.

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
  entry object), recomputed here (:func:`canonical_bytes`, a standard-library JCS).
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
the entries, the ``custody`` graph replayed from the entries (ROLE of every writer,
HOLDER, SPENT, MASS, HOLD, CERTIFICATE, dates never going back along a parcel's
path), ``screening`` of every purchase the export descends from (on its dig point,
else its site's location, on its date, against the bundle's zones as they now stand:
OUTSIDE_LICENSED_ZONE, IN_RISK_AREA, UNREGISTERED_SITE), and ``flags``. A dirty
origin passes only when the bundle carries a flag of that code on that purchase that
an auditor resolved; any open flag in the bundle fails it (SPEC 1: no export holding
tainted diamonds is certified).

Decisions. A bundle that is not JSON, or holds anything this module cannot read, is a
failed verification (``bundle: ...``, exit 1), not bad input: the file is the thing
verified. Exit 2 is kept for bad usage: no ``--key`` and no ``--trust-bundle-key`` (or
both), or a malformed ``--key``. A bundle whose own key differs from the pinned one
fails (``log.vkey``) and is checked under the pinned key all the same; with
``--trust-bundle-key`` the CLI prints ``WARNING: key not pinned`` and the key on
stderr. Custody is replayed over the entries whose proofs hold, so a dropped entry
shows both in the manifest and as a custody graph that no longer balances.

Shares of origin: a purchase is an origin; the export's carats flow back through
transfers unchanged, from a split child wholly to its parent, and from a merge child
to its parents in proportion to their carats. Exact fractions, so shares sum to the
export's carats.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from ledger import merkle
from ledger.checkpoint import Checkpoint
from ledger.errors import InputError, LedgerError, VerificationError
from ledger.keys import VerifierKey, decode_base64, open_note

FORMAT = "alluvial-bundle/1"
MANIFEST_HEADER = f"{FORMAT} manifest"
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
ENTRY_KEYS = frozenset({"seq", "ts", "kind", "actor", "payload", "event_id", "prev"})
ZERO_HASH = "0" * 64
SYSTEM = "system"
MAP_KINDS = frozenset({"zone.registered", "zone.amended", "zone.retired", "licence.revoked"})
_HEX64 = re.compile(r"[0-9a-f]{64}")
_RUN = re.compile(r"([1-9][0-9]*)(?:-([1-9][0-9]*))?")
_MAX_INT = 2**53 - 1
MAX_ENTRIES = 10_000_000  # a manifest listing more is refused before it is expanded

# SPEC 4: who may write each kind (repeated from ledger.rules, which needs a database).
ROLES: dict[str, frozenset[str]] = {
    "actor.registered": frozenset({"officer", "admin"}),
    "licence.revoked": frozenset({"officer", "admin"}),
    "zone.registered": frozenset({"officer", "admin"}),
    "zone.amended": frozenset({"officer", "admin"}),
    "zone.retired": frozenset({"officer", "admin"}),
    "site.registered": frozenset({"officer", "admin"}),
    "site.suspended": frozenset({"officer", "auditor"}),
    "parcel.purchased": frozenset({"buyer"}),
    "parcel.transferred": frozenset({"buyer", "exporter"}),
    "parcel.split": frozenset({"buyer", "exporter"}),
    "parcel.merged": frozenset({"buyer", "exporter"}),
    "export.declared": frozenset({"exporter"}),
    "import.confirmed": frozenset({"auditor"}),
    "flag.raised": frozenset({"auditor"}),
    "flag.resolved": frozenset({"auditor"}),
}


# -- RFC 8785 (JCS), standard library only -----------------------------------------------
def _number(x: int | float) -> str:
    """RFC 8785 3.2.2.3: integers within I-JSON range, doubles as ECMAScript prints them."""
    if type(x) is int:
        if -_MAX_INT <= x <= _MAX_INT:
            return str(x)
        raise ValueError(f"the integer {x} is beyond 2**53 - 1 (I-JSON)")
    if not math.isfinite(x):
        raise ValueError(f"{x} is not a JSON number")
    if x == 0:
        return "0"
    sign, (_, digits_t, exp) = ("-" if x < 0 else ""), Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, digits_t)).rstrip("0")
    k = len(digits)
    n = len(digits_t) + int(exp)  # the value is 0.DIGITS * 10**n
    if k <= n <= 21:  # ECMAScript Number::toString, step by step
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        mantissa = digits[0] + (f".{digits[1:]}" if k > 1 else "")
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


_quote: Callable[[str], str] = json.encoder.encode_basestring


def _jcs(value: Any, out: list[str]) -> None:
    t = type(value)
    if t is str:
        out.append(_quote(value))
    elif t is dict:
        out.append("{")
        # RFC 8785 3.2.3: properties sorted by their UTF-16 code units.
        for i, k in enumerate(sorted(value, key=lambda s: s.encode("utf-16-be", "surrogatepass"))):
            if type(k) is not str:
                raise ValueError("object keys must be strings")
            out.append("," if i else "")
            out.append(_quote(k))
            out.append(":")
            _jcs(value[k], out)
        out.append("}")
    elif t is list:
        out.append("[")
        for i, v in enumerate(value):
            out.append("," if i else "")
            _jcs(v, out)
        out.append("]")
    elif value is True or value is False or value is None:
        out.append({True: "true", False: "false", None: "null"}[value])
    elif t is int or t is float:
        out.append(_number(value))
    else:
        raise ValueError(f"{t.__name__} is not a JSON value")


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a parsed JSON value; ValueError for what JCS cannot represent."""
    out: list[str] = []
    _jcs(value, out)
    return "".join(out).encode("utf-8")  # RFC 8785 3.2.4; a lone surrogate raises


def entry_hash(entry: dict[str, Any]) -> bytes:
    """SPEC 3: SHA-256(0x00 || JCS(entry)), the entry's Merkle leaf hash."""
    return merkle.leaf_hash(canonical_bytes(entry))


def loads(data: bytes | str) -> tuple[Any, bool]:
    """Strict JSON (UTF-8, no duplicate keys, no NaN/Infinity; InputError otherwise).

    Also says whether every number and key lies where Python's C JSON encoder with
    sorted keys already writes RFC 8785 (ASCII keys; integers within 2**53; doubles in
    [1e-4, 1e16) that are not integral, which ``repr`` writes as ECMAScript does), so
    entries can be hashed at C speed (as ledger.canonical's fast path argues).
    """
    fast = [True]

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            raise InputError("an object has a key more than once.")
        if fast[0] and not "".join(obj).isascii():
            fast[0] = False
        return obj

    def number(text: str) -> float:
        value = float(text)
        if fast[0] and (value.is_integer() or not 1e-4 <= abs(value) < 1e16):
            fast[0] = False
        return value

    def integer(text: str) -> int:
        value = int(text)
        if fast[0] and not -_MAX_INT <= value <= _MAX_INT:
            fast[0] = False
        return value

    def constant(name: str) -> Any:
        raise InputError(f"{name} is not a JSON number.")

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        doc = json.loads(text, object_pairs_hook=pairs, parse_float=number, parse_int=integer,
                         parse_constant=constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(str(exc)) from exc
    return doc, fast[0]


_FAST = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                         allow_nan=False, check_circular=False).encode


def _fast_entry_hash(entry: dict[str, Any]) -> bytes:
    """entry_hash for values :func:`loads` found JCS-safe (one C encoder call)."""
    return merkle.leaf_hash(_FAST(entry).encode("utf-8"))


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
    lines = [TLOG_PROOF_HEADER, "extra " + b64(canonical_bytes(item.entry)).decode("ascii"),
             f"index {item.index}", *(b64(h).decode("ascii") for h in item.hashes)]
    return "\n".join(lines) + "\n\n" + bundle.checkpoint


# -- verification ----------------------------------------------------------------------------
@dataclass
class Share:
    """Carats of the export (in points, exact) traced back to one origin site or zone."""

    label: str
    points: Fraction = Fraction(0)


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


def _points(value: Any) -> int:
    """Carats as integer hundredths, exactly (SPEC 4: decimals, never binary floats)."""
    if type(value) not in (int, float):
        raise ValueError(f"{value!r} is not a number of carats")
    try:
        hundredths = Decimal(repr(value)) * 100
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not a number of carats") from exc
    if hundredths != hundredths.to_integral_value():
        raise ValueError(f"{value!r} has more than two decimals")
    return int(hundredths)


def verify_bundle(data: bytes | str, key: VerifierKey | None = None,
                  earlier_checkpoint: str | None = None, screen: bool = True) -> Report:
    """Verify a bundle's bytes offline against the pinned ``key``.

    ``key=None`` trusts the bundle's own key: the caller must have been asked to
    (``--trust-bundle-key``) and must warn. ``earlier_checkpoint`` is a signed note
    the importer saved, which the bundle's checkpoint must extend.
    """
    report = Report(pinned=key is not None)
    try:
        doc, fast = loads(data)
    except InputError as exc:
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
        replay = _Replay(self.b.certificate_no, self.r)
        for item in sorted(self.good, key=lambda it: it.seq):
            replay.apply(item)
        replay.finish(self.screen)
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


@dataclass
class _Parcel:
    holder: str
    points: int
    stones: int
    date: str
    made: Item
    consumed: int | None = None


class _Replay:
    """The custody graph and the map, folded from the bundle's entries in seq order."""

    def __init__(self, certificate_no: str, report: Report) -> None:
        self.cert, self.r = certificate_no, report
        self.roles: dict[str, str] = {}
        self.parcels: dict[str, _Parcel] = {}
        self.sites: dict[str, dict[str, Any]] = {}
        self.zones: dict[str, dict[str, Any]] = {}
        self.flags: dict[str, dict[str, Any]] = {}
        self.open: dict[str, set[str]] = {}  # parcel -> open flag ids (SPEC 4 HOLD)
        self.export: Item | None = None
        self.steps: list[Item] = []  # splits and merges, in seq order

    def apply(self, item: Item) -> None:
        e, p = item.entry, item.entry["payload"]
        kind, actor, seq = e["kind"], e["actor"], item.seq
        try:
            self._role(item, kind, actor, p)
            if kind == "actor.registered":
                self.roles.setdefault(p["actor_id"], p["role"])
            elif kind in MAP_KINDS:
                self._zone(kind, p, item)
            elif kind == "site.registered":
                self.sites[p["site_id"]] = {k: p[k] for k in ("name", "licence_no", "location")}
            elif kind == "site.suspended" and p["site_id"] in self.sites:
                self.sites[p["site_id"]].setdefault("suspended_on", p["date"])
            elif kind == "flag.raised":
                self.flags[p["flag_id"]] = {"p": p, "seq": seq, "resolved": None}
                if p["subject"]["type"] == "parcel":
                    self.open.setdefault(p["subject"]["id"], set()).add(p["flag_id"])
            elif kind == "flag.resolved":
                self._resolve(item, p)
            elif kind.startswith("parcel.") or kind == "export.declared":
                self._custody(item, kind, actor, p)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            self.r.fail(item.where, f"its {kind} payload cannot be read: {exc!r}.")

    # -- ROLE ------------------------------------------------------------------------
    def _role(self, item: Item, kind: str, actor: str, p: dict[str, Any]) -> None:
        if actor == SYSTEM:
            if kind != "flag.raised":
                self.r.fail("custody", f"entry {item.seq}: 'system' may only raise flags.")
            return
        if item.seq == 1 and kind == "actor.registered" and p.get("actor_id") == actor:
            return  # SPEC 3: entry 1 registers the admin, who writes it
        role = self.roles.get(actor)
        if role is None:
            self.r.fail("custody", f"entry {item.seq} ({kind}) is written by '{actor}', whose "
                        "registration is not in the bundle.")
        elif role not in ROLES.get(kind, ()):
            self.r.fail("custody", f"entry {item.seq}: '{actor}' is a {role} and may not "
                        f"write {kind} (SPEC 4 ROLE).")

    # -- the map -----------------------------------------------------------------------
    def _zone(self, kind: str, p: dict[str, Any], item: Item) -> None:
        if kind == "zone.registered":
            self.zones[p["zone_id"]] = {"type": p["zone_type"], "licence_no": p.get("licence_no"),
                                        "category": p.get("category"), "valid_from":
                                        p["valid_from"], "valid_to": p.get("valid_to"),
                                        "revoked_on": None, "geometry": p["geometry"]}
            return
        zone = self.zones.get(p.get("zone_id") or "")
        if zone is None:
            if kind != "licence.revoked" or p.get("zone_id"):
                self.r.fail(item.where, f"{kind} of zone {p.get('zone_id')!r}, which the "
                            "bundle does not register.")
        elif kind == "zone.amended":
            zone.update({k: p[k] for k in ("geometry", "valid_from", "valid_to") if k in p})
        elif kind == "zone.retired":
            zone["valid_to"] = p.get("valid_to") or p["date"]
        else:
            zone["revoked_on"] = p["date"]

    # -- custody -------------------------------------------------------------------------
    def _take(self, item: Item, pid: str, actor: str, date: str) -> _Parcel | None:
        """The parcel an entry moves, after HOLDER, SPENT, HOLD and date checks."""
        fail = self.r.fail
        parcel = self.parcels.get(pid)
        what = f"entry {item.seq} ({item.entry['kind']})"
        if parcel is None:
            fail("custody", f"{what} moves parcel {pid}, but no entry in the bundle made it: "
                 "the custody graph does not balance.")
            return None
        if parcel.consumed is not None:
            fail("custody", f"{what}: parcel {pid} was already consumed by entry "
                 f"{parcel.consumed} (SPEC 4 SPENT: spent twice).")
        if parcel.holder != actor:
            fail("custody", f"{what}: parcel {pid} is held by '{parcel.holder}', not by "
                 f"'{actor}' (SPEC 4 HOLDER).")
        if date < parcel.date:
            fail("custody", f"{what} is dated {date}, before {parcel.date}, when parcel {pid} "
                 "last changed.")
        for flag_id in sorted(self.open.get(pid, ())):
            fail("custody", f"{what}: parcel {pid} moved while flag {flag_id} was open "
                 "(SPEC 4 HOLD).")
        return parcel

    def _new(self, item: Item, pid: str, holder: str, points: int, stones: int, date: str
             ) -> None:
        if pid in self.parcels:
            self.r.fail("custody", f"entry {item.seq} makes parcel {pid} again (entry "
                        f"{self.parcels[pid].made.seq} made it).")
        self.parcels[pid] = _Parcel(holder, points, stones, date, item)

    def _custody(self, item: Item, kind: str, actor: str, p: dict[str, Any]) -> None:
        fail, seq, date = self.r.fail, item.seq, p["date"]
        if kind == "parcel.purchased":
            if not isinstance(p["site_id"], str):
                raise TypeError("site_id is not a string")
            self._new(item, p["parcel_id"], actor, _points(p["carats"]), p["stones"], date)
        elif kind == "parcel.transferred":
            parcel = self._take(item, p["parcel_id"], actor, date)
            if parcel is not None:
                parcel.holder, parcel.date = p["to_actor"], date
        elif kind == "parcel.split":
            parent = self._take(item, p["parent_id"], actor, date)
            kids = [(c["parcel_id"], _points(c["carats"]), c["stones"]) for c in p["children"]]
            if parent is not None:
                parent.consumed = seq
                if sum(k[1] for k in kids) > parent.points or sum(k[2] for k in kids) > \
                        parent.stones:
                    fail("custody", f"entry {seq}: the children of {p['parent_id']} outweigh "
                         "it (SPEC 4 MASS).")
            for pid, pts, stones in kids:
                self._new(item, pid, actor, pts, stones, date)
            self.steps.append(item)
        elif kind == "parcel.merged":
            parents = [self._take(item, pid, actor, date) for pid in p["parent_ids"]]
            for parent in parents:
                if parent is not None:
                    parent.consumed = seq
            child = p["child"]
            pts = _points(child["carats"])
            if all(x is not None for x in parents) and (pts > sum(x.points for x in parents if x) or
                                        child["stones"] > sum(x.stones for x in parents if x)):
                fail("custody", f"entry {seq}: merged parcel {child['parcel_id']} outweighs "
                     "its parents (SPEC 4 MASS).")
            self._new(item, child["parcel_id"], actor, pts, child["stones"], date)
            self.steps.append(item)
        elif kind == "export.declared":
            self._export(item, actor, p)

    def _export(self, item: Item, actor: str, p: dict[str, Any]) -> None:
        fail, seq = self.r.fail, item.seq
        if p["certificate_no"] != self.cert:
            return
        if self.export is not None:
            fail("custody", f"entries {self.export.seq} and {seq} both declare {self.cert}.")
        declared, pids = _points(p["carats"]), list(p["parcel_ids"])
        self.export = item
        parcels = [self._take(item, pid, actor, p["date"]) for pid in pids]
        for parcel in parcels:
            if parcel is not None:
                parcel.consumed = seq
        total = sum(x.points for x in parcels if x is not None)
        if all(x is not None for x in parcels) and total != declared:
            fail("custody", f"entry {seq}: {self.cert} declares {declared / 100:.2f} ct but its "
                 f"parcels weigh {total / 100:.2f} ct (SPEC 4 CERTIFICATE).")
        if p["exporter"] != actor or not p["expires"] > p["date"]:
            fail("custody", f"entry {seq}: the exporter is not the writer, or the certificate "
                 "expires before it is issued (SPEC 4 CERTIFICATE).")
        self.r.export_points = declared

    def _resolve(self, item: Item, p: dict[str, Any]) -> None:
        flag = self.flags.get(p["flag_id"])
        if flag is None:
            self.r.fail("flags", f"entry {item.seq} resolves flag {p['flag_id']}, whose "
                        "flag.raised entry is not in the bundle.")
            return
        flag["resolved"] = p["resolution"]
        subject = flag["p"]["subject"]
        self.open.get(subject["id"] if subject["type"] == "parcel" else "", set()).discard(
            p["flag_id"])

    # -- after the last entry -------------------------------------------------------------
    def finish(self, screen: bool) -> None:
        r = self.r
        if self.export is None:
            r.fail("custody", f"the bundle holds no export.declared entry for {self.cert}.")
            return
        origins = self._origins()
        moved = len(self.parcels)
        if not r.problems:
            r.facts.append(f"custody: {moved} parcels from {len(origins)} purchases; holders, "
                           "mass, dates and holds verified; no parcel spent twice.")
        _Screen(self, origins).run(screen)
        for flag_id, flag in sorted(self.flags.items(), key=lambda kv: kv[1]["seq"]):
            if flag["resolved"] is None:
                p = flag["p"]
                r.fail("flags", f"flag {flag_id} ({p['code']} on {p['subject']['type']} "
                       f"{p['subject']['id']}, entry {flag['seq']}) is open: {p['detail']}")
        resolved = sum(f["resolved"] is not None for f in self.flags.values())
        if not any(x.startswith("flags:") for x in r.problems):
            r.facts.append(f"flags: {len(self.flags)} on the custody path, {resolved} resolved "
                           "by an auditor, none open.")

    def _origins(self) -> dict[str, tuple[Item, Fraction]]:
        """Purchases the export descends from, with the points of the export each gave."""
        assert self.export is not None
        weight: dict[str, Fraction] = {}
        for pid in self.export.entry["payload"]["parcel_ids"]:
            if pid in self.parcels:
                weight[pid] = weight.get(pid, Fraction(0)) + self.parcels[pid].points
        for item in reversed(self.steps):  # children are consumed after they are made
            p = item.entry["payload"]
            if item.entry["kind"] == "parcel.split":
                got = sum((weight.pop(c["parcel_id"], Fraction(0)) for c in p["children"]),
                          Fraction(0))
                if got:
                    weight[p["parent_id"]] = weight.get(p["parent_id"], Fraction(0)) + got
            else:
                got = weight.pop(p["child"]["parcel_id"], Fraction(0))
                parents = [(pid, self.parcels[pid].points) for pid in p["parent_ids"]
                           if pid in self.parcels]
                total = sum(pts for _, pts in parents)
                for pid, pts in parents if got and total else ():
                    weight[pid] = weight.get(pid, Fraction(0)) + got * pts / total
        origins = {}
        for pid, w in weight.items():
            parcel = self.parcels.get(pid)  # missing: already failed as custody
            if parcel is not None and parcel.made.entry["kind"] == "parcel.purchased":
                origins[pid] = (parcel.made, w)
        return origins


class _Screen:
    """Re-screening of each origin purchase against the bundle's zones (SPEC 5)."""

    def __init__(self, replay: _Replay, origins: dict[str, tuple[Item, Fraction]]) -> None:
        self.replay, self.origins, self.r = replay, origins, replay.r

    def run(self, screen: bool) -> None:
        shapely = _shapely() if screen else None
        zones = self.replay.zones
        licence = {z: v for z, v in zones.items() if v["type"] == "licence"}
        risk = {z: v for z, v in zones.items() if v["type"] == "risk"}
        if shapely is None:
            self.r.notes.append("re-screening skipped: shapely is not installed." if screen else
                                "re-screening skipped: not asked for.")
        else:
            for z in zones.values():
                z["shape"] = shapely.prepared.prep(shapely.geometry.shape(z["geometry"]))
        clean = True
        for pid, (item, weight) in sorted(self.origins.items(), key=lambda kv: kv[1][0].seq):
            p = item.entry["payload"]
            site = self.replay.sites.get(p["site_id"])
            day = p["date"]
            dirty: list[tuple[str, str]] = []
            if site is None or (site.get("suspended_on") or "9999") <= day:
                dirty.append(("UNREGISTERED_SITE", f"site {p['site_id']} is not registered in "
                              "the bundle, or was suspended"))
            valid = {z: v for z, v in licence.items() if site is not None and
                     v["licence_no"] == site["licence_no"] and _valid(v, day)}
            covering = sorted(valid)
            if shapely is not None:
                where = p.get("dig_location") or (site or {}).get("location")
                geom = shapely.geometry.shape(where) if where else None
                covering = [z for z in covering if geom is not None and
                            valid[z]["shape"].covers(geom)]
                if site is not None and not covering:
                    dirty.append(("OUTSIDE_LICENSED_ZONE", f"no zone of licence "
                                  f"{site['licence_no']} valid on {day} covers it"))
                hits = sorted(z for z, v in risk.items() if geom is not None and
                              _valid(v, day) and v["shape"].intersects(geom))
                if hits:
                    dirty.append(("IN_RISK_AREA", "it lies in risk area " + ", ".join(
                        f"{z} ({risk[z]['category']})" for z in hits)))
            clean = self._judge(pid, item, dirty) and clean
            self._share(site, p["site_id"], covering, weight)
        if shapely is not None and clean:
            self.r.facts.append(f"screening: {len(self.origins)} purchases re-screened offline "
                                f"against {len(licence)} licence and {len(risk)} risk zones: "
                                "every origin is clean or cleared by an auditor.")

    def _judge(self, pid: str, item: Item, dirty: list[tuple[str, str]]) -> bool:
        ok = True
        for code, why in dirty:
            resolved = [(fid, f["resolved"]) for fid, f in self.replay.flags.items()
                        if f["p"]["code"] == code and f["p"]["subject"] == {"type": "parcel",
                                                                            "id": pid}
                        and f["resolved"] is not None]
            if resolved:
                self.r.notes.append(f"screening: purchase {pid} (entry {item.seq}): {code}, "
                                    f"cleared by flag {resolved[0][0]}: {resolved[0][1]}")
            else:
                ok = False
                self.r.fail("screening", f"purchase {pid} (entry {item.seq}, "
                            f"{item.entry['payload']['date']}): {code}: {why}; the bundle holds "
                            "no flag an auditor resolved for it.")
        return ok

    def _share(self, site: dict[str, Any] | None, site_id: str, zones: list[str],
               weight: Fraction) -> None:
        if site is None:
            label = f"{site_id} (not registered in the bundle)"
        else:
            label = (f"{site_id} ({site['name']}, licence {site['licence_no']}, zone "
                     f"{', '.join(zones) or 'none'})")
        self.r.sites.setdefault(site_id, Share(label)).points += weight
        zone = zones[0] if zones else None
        zlabel = (f"{zone} (licence {self.replay.zones[zone]['licence_no']})" if zone
                  else "outside every licence zone")
        self.r.zones.setdefault(zone or "", Share(zlabel)).points += weight


def _valid(zone: dict[str, Any], day: str) -> bool:
    """SPEC 5: valid_from <= D <= valid_to (null open), and not revoked by D."""
    return bool(zone["valid_from"] <= day and (zone["valid_to"] is None or day <= zone["valid_to"])
                and (zone["revoked_on"] is None or day < zone["revoked_on"]))


def _shapely() -> Any:
    try:
        import shapely
        import shapely.geometry
        import shapely.prepared
    except ImportError:
        return None
    return shapely
