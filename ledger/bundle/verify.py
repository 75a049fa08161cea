"""Offline verification of a provenance bundle (SPEC 7): the verifier's core.

It checks the signatures, proofs, chain and manifest of a bundle, and reports; the
bundle's parts are parsed and shape-checked by :mod:`ledger.bundle.format`, the custody
replay and re-screening are :mod:`ledger.bundle.replay`, the RFC 8785 bytes
:mod:`ledger.bundle.jcs`. Together they import only the standard library, ``ledger.log.merkle``
(RFC 9162 proofs) and ``ledger.log.keys``/``ledger.log.checkpoint``/``ledger.errors`` (signed
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
  entry object), recomputed here (:func:`entry_hash`, over :mod:`ledger.bundle.jcs`, a
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
the entries; then :mod:`ledger.bundle.replay` replays the ``custody`` graph (SPEC 4),
re-screens every origin purchase against the bundle's zones (``screening``, SPEC 5) and
fails on any open ``flags`` (SPEC 1: no export holding tainted diamonds is certified).
It says whether the exporting country's authority validated the certificate and by whom
(a certificate not validated is reported, not failed: validation is a fact, not a proof).
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
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ledger.bundle import jcs
from ledger.bundle.format import (
    ZERO_HASH,
    Bundle,
    Item,
    Manifest,
    _fast_entry_hash,
    entry_hash,
)
from ledger.bundle.replay import Share, replay
from ledger.errors import InputError, LedgerError, VerificationError
from ledger.log import merkle
from ledger.log.checkpoint import Checkpoint
from ledger.log.keys import VerifierKey, open_note

PROBLEMS_SHOWN = 50  # problem lines a report prints before "... and N more"


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
            # A bounded report, whatever a forged bundle makes fail (issue 15).
            shown = self.problems[:PROBLEMS_SHOWN]
            more = len(self.problems) - len(shown)
            head = [f"FAILED: {what}: {len(self.problems)} problem(s).", *shown,
                    *([f"... and {more} more problem(s)."] if more else [])]
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
            # Bounded by the bundle, not by what the manifest claims (issue 15).
            if manifest.count > len(self.b.items):
                fail("manifest", f"it lists {manifest.count} entries; the bundle holds "
                     f"{len(self.b.items)}.")
            first, absent = manifest.missing(seen)
            for seq in first:
                fail("manifest", f"entry {seq} is listed in the log's signed manifest but "
                     "missing from the bundle.")
            if absent > len(first):
                fail("manifest", f"... and {absent - len(first)} more entries listed in the "
                     "log's signed manifest are missing from the bundle.")
            for seq in sorted(seq for seq in seen if not manifest.lists(seq)):
                fail(seen[seq].where, "is not listed in the log's signed manifest.")
        if not self.r.problems:
            self.r.facts.append(f"entries: {len(self.good)} entries; every hash, inclusion "
                                "proof and chain link verified against the checkpoint.")
