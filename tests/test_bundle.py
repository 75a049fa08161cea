"""Provenance bundles (SPEC 7): built from a ledger (SQLite and PostgreSQL), verified
offline from the file alone, and refused when anything in them is altered or left out."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.bundle import format as bundle_format
from ledger.bundle import jcs
from ledger.bundle.build import build_bundle, dumps, inclusion_paths
from ledger.bundle.format import Bundle, Item, Manifest, manifest_text, tlog_proof
from ledger.bundle.verify import verify_bundle
from ledger.cli import cli
from ledger.config import DEFAULT_ORIGIN
from ledger.db import make_engine
from ledger.log import merkle
from ledger.log.canonical import canonical_bytes
from ledger.log.checkpoint import Checkpoint
from ledger.log.keys import SigningKey, VerifierKey, open_note, sign_note
from ledger.log.keys import load_or_create as load_key
from ledger.recorder.events import Event, Ledger
from tests.conftest import HISTORY_LATE_DAYS

CERT = "GH-2008-0042"
ROOT = Path(__file__).resolve().parent.parent


def square(lon: float, lat: float, half: float) -> dict[str, Any]:
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half],
            [lon - half, lat + half], [lon - half, lat - half]]
    return {"type": "Polygon", "coordinates": [ring]}


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


AKWATIA, TANO = square(-0.8, 6.0, 0.1), square(-2.1, 6.1, 0.1)
CI_NORTH = square(-6.0, 9.0, 1.0)  # rebel-held northern Côte d'Ivoire (SPEC 1)


def make_world(ledger: Ledger) -> dict[str, int]:
    """P1 (Akwatia) and P2 (Tano) merge into P3, which splits into P4 and P5; P4 and P6
    (Akwatia) are exported under CERT. PX and P5's later move are not on the path.
    Returns the seq of each named step."""
    seqs: dict[str, int] = {}

    def w(label: str | None, kind: str, actor: str, /, **payload: Any) -> None:
        result = ledger.write(Event(kind, actor, payload))
        if label:
            seqs[label] = result.entry.seq

    def licensed(actor_id: str, role: str) -> dict[str, Any]:
        return {"actor_id": actor_id, "name": actor_id.title(), "role": role, "country": "GH",
                "licence_no": f"LIC-{actor_id}", "licence_valid_from": "2000-01-01",
                "licence_valid_to": "2030-12-31", "date": "2004-01-05"}

    w("officer", "actor.registered", "admin", actor_id="off-gh", name="Minerals Commission",
      role="officer", country="GH", date="2004-01-02")
    for actor_id, role in [("buyer-a", "buyer"), ("buyer-b", "buyer"), ("exp-gh", "exporter")]:
        w(actor_id, "actor.registered", "off-gh", **licensed(actor_id, role))
    w("auditor", "actor.registered", "admin", actor_id="aud-1", name="KP Review Mission",
      role="auditor", country="BE", date="2004-01-05")
    for zone_id, geometry, licence in [("Z-AKW", AKWATIA, "GH-ML-AKW-1"),
                                       ("Z-TAN", TANO, "GH-ML-TAN-1"),
                                       ("Z-FAR", square(-1.5, 7.5, 0.1), "GH-ML-FAR-1")]:
        w(zone_id, "zone.registered", "off-gh", zone_id=zone_id, zone_type="licence",
          geometry=geometry, date="2004-01-06", valid_from="2000-01-01", valid_to="2006-12-31",
          licence_no=licence, holder=f"{licence} cooperative")
    w("ci-north", "zone.registered", "off-gh", zone_id="Z-CI-NORTH", zone_type="risk",
      geometry=CI_NORTH, date="2004-01-06", valid_from="2002-09-19", valid_to="2011-04-11",
      category="rebel_held", source="UN Security Council resolution 1643 (2005)")
    for zone_id in ("Z-AKW", "Z-TAN"):
        w(f"renew-{zone_id}", "zone.amended", "off-gh", zone_id=zone_id, valid_to=None,
          effective="2000-01-01", reason="licence renewed", date="2006-12-01")
    w("akw-site", "site.registered", "off-gh", site_id="S-AKW", name="Akwatia pit 1",
      location=point(-0.8, 6.04), licence_no="GH-ML-AKW-1", operator="Akwatia Diggers",
      country="GH", date="2004-01-07")
    w("tan-site", "site.registered", "off-gh", site_id="S-TAN", name="Tano terrace",
      location=point(-2.1, 6.1), licence_no="GH-ML-TAN-1", operator="Tano Miners", country="GH",
      date="2004-01-07")

    def buy(pid: str, site: str, carats: float, stones: int, actor: str, day: str,
            **extra: Any) -> None:
        w(pid, "parcel.purchased", actor, parcel_id=pid, site_id=site, seller="Kofi Boateng",
          date=day, carats=carats, stones=stones, price={"amount": 420.5, "currency": "USD"},
          **extra)

    def move(pid: str, to: str, actor: str, day: str, name: str | None = None) -> None:
        w(name or f"move-{pid}", "parcel.transferred", actor, parcel_id=pid, to_actor=to,
          date=day, price={"amount": 500, "currency": "USD"})

    buy("P1", "S-AKW", 3.3, 3, "buyer-a", "2008-03-14", dig_location=point(-0.81, 6.02))
    buy("P2", "S-TAN", 4.4, 4, "buyer-b", "2008-03-15")
    buy("P6", "S-AKW", 1.0, 1, "buyer-a", "2008-03-16")
    buy("PX", "S-AKW", 9.0, 9, "buyer-a", "2008-03-16")
    w("flag", "flag.raised", "aud-1", flag_id="FA-1", subject={"type": "parcel", "id": "P2"},
      code="FOOTPRINT_ANOMALY", detail="value per carat above Tano's", date="2008-03-20")
    w("resolve", "flag.resolved", "aud-1", flag_id="FA-1", date="2008-03-25",
      resolution="Invoices checked; a few large stones explain the price.")
    move("P2", "buyer-a", "buyer-b", "2008-04-01")
    w("merge", "parcel.merged", "buyer-a", parent_ids=["P1", "P2"], date="2008-04-03",
      child={"parcel_id": "P3", "carats": 7.7, "stones": 7})
    w("split", "parcel.split", "buyer-a", parent_id="P3", date="2008-04-04",
      children=[{"parcel_id": "P4", "carats": 5.0, "stones": 5},
                {"parcel_id": "P5", "carats": 2.7, "stones": 2}])
    move("P4", "exp-gh", "buyer-a", "2008-04-10")
    move("P6", "exp-gh", "buyer-a", "2008-04-10")
    move("P5", "buyer-b", "buyer-a", "2008-04-11")
    w("export", "export.declared", "exp-gh", certificate_no=CERT, exporter="exp-gh",
      importer="Antwerp Diamond Bank", destination="BE", hs_code="7102.31",
      parcel_ids=["P4", "P6"], carats=6.0, value_usd=1234.5, date="2008-05-01",
      expires="2008-07-01")
    return seqs


@dataclass
class Built:
    text: str
    vkey: str
    key: SigningKey
    seqs: dict[str, int]

    @property
    def doc(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.text)
        return value


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """One bundle of CERT from a SQLite ledger, for the offline tests on the file alone."""
    tmp = tmp_path_factory.mktemp("bundle")
    engine = make_engine(f"sqlite:///{tmp / 'ledger.db'}")
    key = load_key(tmp / "log.key", DEFAULT_ORIGIN)
    ledger = Ledger(engine, key, late_days=HISTORY_LATE_DAYS)
    ledger.initialise()
    seqs = make_world(ledger)
    text = dumps(build_bundle(ledger.log, CERT))
    engine.dispose()
    return Built(text, key.verifier.to_vkey(), key, seqs)


def offline(tmp_path: Path, text: str, *args: str) -> Result:
    """`alluvial verify-bundle` on ``text`` with no usable database configured."""
    path = tmp_path / "bundle.json"
    path.write_text(text, encoding="utf-8")
    env = {"ALLUVIAL_DATABASE_URL": "postgresql://nobody@256.0.0.1:1/none",
           "ALLUVIAL_LOG_KEY": str(tmp_path / "no-such.key")}
    return CliRunner(env=env).invoke(cli, ["verify-bundle", str(path), *args])


def items_of(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [it for it in doc["entries"] if it["entry"]["kind"] == kind]


# -- building, on both databases ------------------------------------------------------------
def test_bundle_of_an_export_verifies_offline_and_names_its_origins(
    ledger: Ledger, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_world(ledger)
    out = tmp_path / "bundle.json"
    built = runner.invoke(cli, ["bundle", CERT, "-o", str(out)])
    assert built.exit_code == 0, built.output
    assert f"the provenance bundle of {CERT}" in built.output
    vkey = runner.invoke(cli, ["checkpoint", "--vkey"]).output.strip()
    work = tmp_path / "importer"
    work.mkdir()
    monkeypatch.chdir(work)  # the verifier writes no file: the working directory stays empty
    result = offline(work, out.read_text(encoding="utf-8"), "--key", vkey)
    (work / "bundle.json").unlink()
    assert list(work.iterdir()) == []
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"OK: provenance bundle of KP certificate {CERT} verified."
    assert "  S-AKW (Akwatia pit 1, licence GH-ML-AKW-1, zone Z-AKW): 52.4% (3.14 ct)" in lines
    assert "  S-TAN (Tano terrace, licence GH-ML-TAN-1, zone Z-TAN): 47.6% (2.86 ct)" in lines
    assert "  Z-AKW (licence GH-ML-AKW-1): 52.4% (3.14 ct)" in lines
    assert "origin sites of the 6.00 ct exported:" in lines
    assert any(x.startswith("completeness: inclusion proofs show") and "vouches" in x
               for x in lines)
    assert any(x.startswith("screening: 3 purchases re-screened offline") for x in lines)
    assert result.stderr == ""


def test_bundle_holds_what_spec_7_lists_and_nothing_off_the_path(ledger: Ledger) -> None:
    seqs = make_world(ledger)
    doc = Bundle.to_json(build_bundle(ledger.log, CERT))
    got = {it["entry"]["seq"] for it in doc["entries"]}
    on_path = {"export", "P1", "P2", "P6", "move-P2", "move-P4", "move-P6", "merge", "split",
               "akw-site", "tan-site", "Z-AKW", "Z-TAN", "ci-north", "renew-Z-AKW",
               "renew-Z-TAN", "flag", "resolve", "officer", "buyer-a", "buyer-b", "exp-gh",
               "auditor"}
    assert {seqs[n] for n in on_path} | {1} == got
    assert not {seqs[n] for n in ("PX", "move-P5", "Z-FAR")} & got
    assert [it["entry"]["seq"] for it in doc["entries"]] == sorted(got)
    assert all(it["proof"]["index"] == it["entry"]["seq"] - 1 for it in doc["entries"])
    size = Checkpoint.from_signed(doc["checkpoint"], ledger.log.verifier).size
    manifest = Manifest.from_text(open_note(doc["manifest"], ledger.log.verifier))
    assert (manifest.certificate_no, manifest.size, set(manifest.seqs)) == (CERT, size, got)
    assert set(doc) == {"format", "certificate_no", "log", "checkpoint", "entries", "manifest"}


def test_batched_inclusion_paths_match_the_logs_own_proofs(ledger: Ledger) -> None:
    log = ledger.log
    with log.writer() as w:
        for i in range(69):
            w.append("parcel.purchased", "buyer-a", {"parcel_id": f"Q{i}", "date": "2008-01-01"})
    for size in (1, 2, 3, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 70):
        with ledger.engine.connect() as conn:
            paths = inclusion_paths(conn, size, range(1, size + 1))
        for seq in range(1, size + 1):
            assert [h.hex() for h in paths[seq]] == log.inclusion_proof(seq, size)["proof"]


def test_unknown_certificate_is_bad_input(ledger: Ledger, runner: CliRunner,
                                          tmp_path: Path) -> None:
    result = runner.invoke(cli, ["bundle", "GH-1999-0001", "-o", str(tmp_path / "b.json")])
    assert result.exit_code == 2
    assert "GH-1999-0001" in result.stderr and not (tmp_path / "b.json").exists()


def test_later_checkpoint_verifies_with_a_consistency_proof_from_the_saved_one(
    ledger: Ledger, runner: CliRunner, tmp_path: Path
) -> None:
    """Acceptance 2: the importer saved an older checkpoint; the bundle's is later."""
    make_world(ledger)
    saved = ledger.log.latest_checkpoint() or ""
    old_size = Checkpoint.from_signed(saved, ledger.log.verifier).size
    assert old_size == ledger.log.size()  # the saved checkpoint covers the whole log
    ledger.write(Event("parcel.purchased", "buyer-a", {
        "parcel_id": "P9", "site_id": "S-AKW", "seller": "Ama Owusu", "date": "2008-06-01",
        "carats": 2.5, "stones": 2, "price": {"amount": 99, "currency": "USD"}}))
    (tmp_path / "saved.cp").write_text(saved, encoding="utf-8")
    vkey = ledger.log.verifier.to_vkey()
    with_proof = dumps(build_bundle(ledger.log, CERT, since=old_size))
    result = offline(tmp_path, with_proof, "--key", vkey, "--checkpoint",
                     str(tmp_path / "saved.cp"))
    assert result.exit_code == 0, result.output
    assert f"consistency: the checkpoint extends your saved checkpoint of size {old_size}." \
        in result.stdout

    without = dumps(build_bundle(ledger.log, CERT))
    result = offline(tmp_path, without, "--key", vkey, "--checkpoint", str(tmp_path / "saved.cp"))
    assert result.exit_code == 1
    assert f"--checkpoint: the bundle carries no consistency proof from size {old_size}; ask " \
        f"for a bundle with `--since {old_size}`." in result.stdout

    doc = json.loads(with_proof)
    doc["consistency"]["hashes"][0] = base64.b64encode(bytes(32)).decode()
    result = offline(tmp_path, json.dumps(doc), "--key", vkey, "--checkpoint",
                     str(tmp_path / "saved.cp"))
    assert result.exit_code == 1 and "consistency: the proof from size" in result.stdout


def test_zone_drawn_later_over_an_origin_fails_the_screening(ledger: Ledger) -> None:
    """A risk area registered after the export, reaching back over the purchase date."""
    seqs = make_world(ledger)
    ledger.write(Event("zone.registered", "off-gh", {
        "zone_id": "Z-AKW-CONFLICT", "zone_type": "risk", "geometry": square(-0.8, 6.0, 0.05),
        "date": "2009-01-01", "valid_from": "2008-01-01", "valid_to": None,
        "category": "conflict", "source": "field mission"}))
    report = verify_bundle(dumps(build_bundle(ledger.log, CERT)), ledger.log.verifier)
    assert not report.ok
    assert report.problems == [
        f"screening: purchase {pid} (entry {seqs[pid]}, {day}): IN_RISK_AREA: it lies in risk "
        "area Z-AKW-CONFLICT (conflict); the bundle holds no flag an auditor resolved for it."
        for pid, day in (("P1", "2008-03-14"), ("P6", "2008-03-16"))
    ]


def test_dirty_origin_passes_only_once_an_auditor_resolved_its_flags(ledger: Ledger) -> None:
    make_world(ledger)
    result = ledger.write(Event("parcel.purchased", "buyer-a", {
        "parcel_id": "PD", "site_id": "S-AKW", "seller": "Unknown", "date": "2008-06-01",
        "carats": 2.0, "stones": 2, "price": {"amount": 99, "currency": "USD"},
        "dig_location": point(-6.1, 9.1)}))
    codes = {f["code"]: f["flag_id"] for f in result.flags}
    assert set(codes) == {"OUTSIDE_LICENSED_ZONE", "IN_RISK_AREA"}
    for flag_id in codes.values():
        ledger.write(Event("flag.resolved", "aud-1", {
            "flag_id": flag_id, "date": "2008-06-05",
            "resolution": "Dig point mistyped; GPS log shows Akwatia."}))
    ledger.write(Event("parcel.transferred", "buyer-a", {
        "parcel_id": "PD", "to_actor": "exp-gh", "date": "2008-06-06",
        "price": {"amount": 120, "currency": "USD"}}))
    ledger.write(Event("export.declared", "exp-gh", {
        "certificate_no": "GH-2008-0043", "exporter": "exp-gh", "importer": "Antwerp",
        "destination": "BE", "hs_code": "7102.31", "parcel_ids": ["PD"], "carats": 2.0,
        "value_usd": 150, "date": "2008-06-10", "expires": "2008-08-01"}))
    report = verify_bundle(dumps(build_bundle(ledger.log, "GH-2008-0043")), ledger.log.verifier)
    assert report.ok, report.problems
    cleared = [n for n in report.notes if n.startswith("screening: purchase PD")]
    assert len(cleared) == 2 and all("cleared by flag" in n for n in cleared)
    assert report.zones[""].label == "outside every licence zone"


# -- the file alone, offline -----------------------------------------------------------------
def test_bundle_matches_its_json_schema(built: Built) -> None:
    schemas = {p.name: json.loads(p.read_text("utf-8")) for p in (ROOT / "schemas").glob("*.json")}
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        (s["$id"], referencing.Resource.from_contents(s)) for s in schemas.values())
    schema = schemas["bundle.json"]
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema, registry=registry).validate(built.doc)
    broken = built.doc
    broken["entries"][0]["proof"]["hashes"].append("not base64")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema, registry=registry).validate(broken)


def test_without_a_key_the_verifier_refuses_with_exit_2(built: Built, tmp_path: Path) -> None:
    for args in ([], ["--key", built.vkey, "--trust-bundle-key"]):
        result = offline(tmp_path, built.text, *args)
        assert result.exit_code == 2, result.output
        assert "--key VKEY" in result.stderr and "--trust-bundle-key" in result.stderr
    result = offline(tmp_path, built.text, "--key", built.vkey.replace("+", "-", 1))
    assert result.exit_code == 2 and "--key" in result.stderr


def test_trust_bundle_key_warns_loudly_on_stderr(built: Built, tmp_path: Path) -> None:
    result = offline(tmp_path, built.text, "--trust-bundle-key")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"WARNING: key not pinned: accepting the bundle's own key "
                                    f"{built.vkey};")
    assert "(NOT pinned: the bundle's own)" in result.stdout


def resigned(built: Built, other: SigningKey) -> str:
    """The bundle re-signed by ``other`` (same log name): checkpoint, manifest and vkey."""
    doc = built.doc
    for part in ("checkpoint", "manifest"):
        text = open_note(doc[part], built.key.verifier)
        doc[part] = sign_note(text, other)
    doc["log"]["vkey"] = other.verifier.to_vkey()
    return json.dumps(doc)


def test_bundle_resigned_with_another_key_is_refused_under_the_real_key(
    built: Built, tmp_path: Path
) -> None:
    forged = resigned(built, SigningKey.generate(DEFAULT_ORIGIN))
    result = offline(tmp_path, forged, "--key", built.vkey)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FAILED:")
    assert lines[1].startswith("log.vkey: the bundle's key ")
    assert "is not the pinned key" in lines[1]
    assert lines[2].startswith("checkpoint: the note carries no signature by key")
    # Why pinning matters: under its own key the forgery is self-consistent.
    assert offline(tmp_path, forged, "--trust-bundle-key").exit_code == 0


def first_char(text: str, after: int = 0) -> int:
    """Index of the first letter or digit of ``text`` from ``after``."""
    return next(i for i in range(after, len(text)) if text[i].isalnum())


def bump(text: str, at: int) -> str:
    """``text`` with the letter or digit at ``at`` replaced by another of its kind."""
    ch = text[at]
    if ch.isdigit():
        new = str((int(ch) + 1) % 10)
    elif ch in "abcdef" and all(c in "0123456789abcdef" for c in text):
        new = "b" if ch == "a" else "a"
    elif ch.isalpha():
        new = {"z": "a", "Z": "A"}.get(ch, chr(ord(ch) + 1))
    else:  # base64's + or /: another base64 character, so the text stays well formed
        new = "A"
    return text[:at] + new + text[at + 1:]


def in_line(note: str, line: int, after: int = 0) -> str:
    """Bump a character of line ``line`` of a note (past ``after`` characters)."""
    lines = note.split("\n")
    lines[line] = bump(lines[line], first_char(lines[line], after))
    return "\n".join(lines)


def seq_of(built: Built, name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def item(doc: dict[str, Any]) -> dict[str, Any]:
        return next(it for it in doc["entries"] if it["entry"]["seq"] == built.seqs[name])
    return item


def _set(doc: dict[str, Any], path: tuple[Any, ...], change: Callable[[Any], Any]) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = change(doc[path[-1]])


# (id, how to alter the parsed bundle, the part the verdict must name)
TAMPER: list[tuple[str, Callable[[Built, dict[str, Any]], None], str]] = [
    ("entry-payload-carats", lambda b, d: _set(seq_of(b, "merge")(d)["entry"]["payload"],
                                                ("child", "carats"), lambda v: v + 0.01),
     "seq {merge}): its hash and inclusion proof do not lead"),
    ("entry-payload-text", lambda b, d: _set(seq_of(b, "resolve")(d)["entry"]["payload"],
                                              ("resolution",), lambda v: bump(v, 0)),
     "seq {resolve}): its hash and inclusion proof"),
    ("entry-ts", lambda b, d: _set(seq_of(b, "split")(d)["entry"], ("ts",),
                                   lambda v: bump(v, 3)), "seq {split}): its hash"),
    ("entry-actor", lambda b, d: _set(seq_of(b, "move-P4")(d)["entry"], ("actor",),
                                      lambda v: "buyer-b"), "seq {move-P4}): its hash"),
    ("entry-prev", lambda b, d: _set(seq_of(b, "export")(d)["entry"], ("prev",),
                                     lambda v: bump(v, 10)), "seq {export}): its hash"),
    ("entry-seq", lambda b, d: _set(seq_of(b, "P1")(d)["entry"], ("seq",), lambda v: v + 1000),
     "proof.index"),
    ("proof-index", lambda b, d: _set(seq_of(b, "P2")(d)["proof"], ("index",), lambda v: v + 1),
     "seq {P2}): proof.index"),
    ("proof-hash", lambda b, d: _set(seq_of(b, "P6")(d)["proof"]["hashes"], (0,),
                                     lambda v: bump(v, 5)), "seq {P6}): its hash and inclusion"),
    ("proof-hash-dropped", lambda b, d: seq_of(b, "P6")(d)["proof"]["hashes"].pop(),
     "seq {P6}): its hash and inclusion"),
    ("checkpoint-size", lambda b, d: _set(d, ("checkpoint",), lambda v: in_line(v, 1)),
     "checkpoint: the note's signature"),
    ("checkpoint-root", lambda b, d: _set(d, ("checkpoint",), lambda v: in_line(v, 2, 7)),
     "checkpoint: the note's signature"),
    ("checkpoint-signature", lambda b, d: _set(d, ("checkpoint",), lambda v: in_line(v, 5, 30)),
     "checkpoint: the note's signature"),
    ("manifest-entry-list", lambda b, d: _set(d, ("manifest",), lambda v: in_line(v, 5)),
     "manifest: the note's signature"),
    ("manifest-signature", lambda b, d: _set(d, ("manifest",),
                                             lambda v: in_line(v, len(v.split("\n")) - 2, 30)),
     "manifest: the note's signature"),
    ("log-vkey", lambda b, d: _set(d, ("log", "vkey"), lambda v: bump(v, len(v) - 8)),
     "log.vkey"),
    ("log-origin", lambda b, d: _set(d, ("log", "origin"), lambda v: bump(v, 0)), "log.origin"),
    ("certificate-no", lambda b, d: _set(d, ("certificate_no",), lambda v: bump(v, 5)),
     "certificate_no: the bundle says 'GH-2018-0042'"),
    ("format", lambda b, d: _set(d, ("format",), lambda v: bump(v, 0)), "format:"),
]


@pytest.mark.parametrize(("alter", "part"), [t[1:] for t in TAMPER], ids=[t[0] for t in TAMPER])
def test_altering_any_part_fails_and_names_it(
    built: Built, tmp_path: Path, alter: Callable[[Built, dict[str, Any]], None], part: str
) -> None:
    doc = built.doc
    alter(built, doc)
    result = offline(tmp_path, json.dumps(doc, ensure_ascii=False), "--key", built.vkey)
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("FAILED: provenance bundle of KP certificate")
    assert part.format(**built.seqs) in result.stdout, result.stdout


PARTS = ("bundle:", "format:", "certificate_no:", "log:", "log.", "checkpoint:", "manifest:",
         "entries[", "custody:", "screening:", "flags:")


def flip_sweep(built: Built, step: int) -> int:
    """Flip the low bit of every ``step``-th byte of the file; return how many flips changed
    the JSON value. Each must fail verification, the first problem naming its part."""
    data = built.text.encode("utf-8")
    key = VerifierKey.from_vkey(built.vkey)
    assert verify_bundle(data, key).ok
    original = json.loads(data)
    changed = 0
    for at in range(0, len(data), step):
        flipped = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]
        try:
            if json.loads(flipped) == original:
                continue  # the same JSON value (a flip in insignificant text): nothing to catch
        except ValueError:
            pass
        changed += 1
        report = verify_bundle(flipped, key, screen=False)
        assert not report.ok, f"flip at byte {at} went unnoticed"
        assert report.problems[0].startswith(PARTS), (at, report.problems[0])
    return changed


def test_flipping_bytes_across_the_whole_file_fails_verification(built: Built) -> None:
    """Acceptance 1: a bit flipped anywhere either breaks the JSON (`bundle: not valid
    JSON`) or changes a value, and every changed value is caught and its part named."""
    assert flip_sweep(built, max(1, len(built.text) // 500)) >= 450


@pytest.mark.slow
def test_flipping_every_byte_of_the_file_fails_verification(built: Built) -> None:
    assert flip_sweep(built, 1) >= len(built.text.encode("utf-8")) * 0.99


@pytest.mark.parametrize("variant", ["dropped", "dropped-and-manifest-edited",
                                     "dropped-and-manifest-resigned-by-the-log"])
def test_dropping_the_split_is_caught(built: Built, tmp_path: Path, variant: str) -> None:
    """Acceptance 3: the manifest no longer matches, and the custody graph no longer
    balances; even a log that signs the shortened manifest cannot hide the gap."""
    doc = built.doc
    split = built.seqs["split"]
    doc["entries"] = [it for it in doc["entries"] if it["entry"]["seq"] != split]
    text = open_note(doc["manifest"], built.key.verifier)
    manifest = Manifest.from_text(text)
    shorter = manifest_text(manifest.origin, manifest.certificate_no, manifest.size,
                            manifest.root, [s for s in manifest.seqs if s != split])
    if variant == "dropped-and-manifest-edited":
        doc["manifest"] = doc["manifest"].replace(text, shorter)
    elif variant == "dropped-and-manifest-resigned-by-the-log":
        doc["manifest"] = sign_note(shorter, built.key)
    result = offline(tmp_path, json.dumps(doc), "--key", built.vkey)
    assert result.exit_code == 1
    expected = {
        "dropped": f"manifest: entry {split} is listed in the log's signed manifest but "
                   "missing from the bundle.",
        "dropped-and-manifest-edited": "manifest: the note's signature by key",
        "dropped-and-manifest-resigned-by-the-log": "custody: entry",
    }[variant]
    assert expected in result.stdout
    assert (f"custody: entry {built.seqs['move-P4']} (parcel.transferred) moves parcel P4, but "
            "no entry in the bundle made it: the custody graph does not balance.") \
        in result.stdout


def test_pymerkle_verifies_the_inclusion_proofs(built: Built) -> None:
    """Acceptance 4: an independent implementation accepts every proof in the bundle."""
    from pymerkle import InclusionProof, InvalidProof
    from pymerkle.core import _inclusion_path_layout  # pymerkle's own proof layout

    bundle = Bundle.from_json(built.doc)
    checkpoint = Checkpoint.from_signed(bundle.checkpoint, built.key.verifier)
    size, root = checkpoint.size, checkpoint.root_hash
    for item in bundle.items:
        leaf = merkle.leaf_hash(canonical_bytes(item.entry))  # the ledger's own encoder
        rule, _ = _inclusion_path_layout(item.index + 1, size)  # pymerkle counts from 1
        proof = InclusionProof("sha256", True, size, item.index + 1, rule,
                               [leaf, *item.hashes])  # pymerkle's path starts with the leaf
        proof.verify(leaf, root, index=item.index + 1, size=size)
        with pytest.raises(InvalidProof):
            proof.verify(merkle.leaf_hash(b"forged"), root)


def test_each_entry_is_a_c2sp_tlog_proof(built: Built) -> None:
    """Each entry, its proof and the checkpoint read back as c2sp.org/tlog-proof@v1."""
    bundle = Bundle.from_json(built.doc)
    checkpoint = Checkpoint.from_signed(bundle.checkpoint, built.key.verifier)
    for position, item in enumerate(bundle.items):
        text = tlog_proof(bundle, position)
        head, _, note = text.partition("\n\n")
        magic, extra, index, *hashes = head.split("\n")
        assert magic == "c2sp.org/tlog-proof@v1" and index == f"index {item.seq - 1}"
        assert Checkpoint.from_signed(note, built.key.verifier) == checkpoint
        leaf = merkle.leaf_hash(base64.b64decode(extra.removeprefix("extra ")))
        assert merkle.verify_inclusion(leaf, item.seq - 1, checkpoint.size,
                                       [base64.b64decode(h) for h in hashes],
                                       checkpoint.root_hash)


CORE = {"ledger", "ledger.bundle", "ledger.log", "ledger.bundle.verify", "ledger.bundle.format",
        "ledger.bundle.jcs", "ledger.bundle.replay", "ledger.bundle.windows", "ledger.log.merkle",
        "ledger.log.keys",
        "ledger.log.checkpoint", "ledger.errors", "ledger.i18n"}
SIGNATURES = {"cryptography", "_cffi_backend", "_openssl"}


@pytest.mark.parametrize(("module", "ours", "third_allowed"), [
    ("ledger.bundle.verify", CORE, SIGNATURES),
    ("ledger.bundle.format", CORE - {"ledger.bundle.verify", "ledger.bundle.replay",
                                     "ledger.bundle.windows", "ledger.log.checkpoint"},
     SIGNATURES),
    ("ledger.bundle.jcs", {"ledger", "ledger.bundle", "ledger.bundle.jcs"}, set()),
    # shapely: lazily
    ("ledger.bundle.replay", {"ledger", "ledger.bundle", "ledger.bundle.replay",
                              "ledger.bundle.windows"}, set()),
], ids=["core", "format", "jcs", "replay"])
def test_the_verifier_core_imports_only_stdlib_merkle_and_signatures(
        module: str, ours: set[str], third_allowed: set[str]) -> None:
    code = textwrap.dedent(f"""
        import json, sys
        before = set(sys.modules)
        import {module}
        new = {{m.split(".")[0] for m in set(sys.modules) - before}}
        third = sorted(new - set(sys.stdlib_module_names) - {{"ledger"}})
        print(json.dumps([third, sorted(m for m in sys.modules if m.startswith("ledger"))]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    third, imported = json.loads(out)
    assert set(third) <= third_allowed, third
    assert set(imported) == ours


def test_rescreening_is_skipped_and_said_so_without_shapely(built: Built, tmp_path: Path) -> None:
    (tmp_path / "bundle.json").write_text(built.text, encoding="utf-8")
    code = textwrap.dedent(f"""
        import sys
        sys.modules["shapely"] = None  # as if shapely were not installed
        from ledger.bundle.verify import verify_bundle
        from ledger.log.keys import VerifierKey
        data = open({str(tmp_path / "bundle.json")!r}, "rb").read()
        report = verify_bundle(data, VerifierKey.from_vkey({built.vkey!r}))
        print("\\n".join(report.lines()))
        sys.exit(0 if report.ok else 1)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "re-screening skipped: shapely is not installed." in run.stdout.splitlines()
    assert not any(x.startswith("screening:") for x in run.stdout.splitlines())


def test_shares_sum_exactly_to_the_exported_carats(built: Built) -> None:
    report = verify_bundle(built.text, built.key.verifier)
    assert report.export_points == 600
    assert sum(s.points for s in report.sites.values()) == 600
    assert report.sites["S-AKW"].points * 77 == 100 * 1 * 77 + 500 * 33  # P6 + 5.0 x 3.3/7.7


def test_not_json_is_a_failed_verification(built: Built, tmp_path: Path) -> None:
    result = offline(tmp_path, built.text[:-3], "--key", built.vkey)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1].startswith("bundle: not valid JSON:")


# -- custody and screening, on bundles a dishonest log signed --------------------------------
def forge(tmp_path: Path, events: list[tuple[str, str, dict[str, Any]]]) -> Built:
    """A bundle of CERT holding exactly ``events``, appended raw (no rule checked) and
    signed by the log's key: what a log that broke its own rules could hand out."""
    engine = make_engine(f"sqlite:///{tmp_path / 'forged.db'}")
    key = load_key(tmp_path / "forged.key", DEFAULT_ORIGIN)
    ledger = Ledger(engine, key)
    ledger.initialise()
    with ledger.log.writer() as w:
        for kind, actor, payload in events:
            w.append(kind, actor, payload)
    size = ledger.log.size()
    with engine.connect() as conn:
        paths = inclusion_paths(conn, size, range(1, size + 1))
    note = ledger.log.latest_checkpoint() or ""
    signed = Checkpoint.from_signed(note, key.verifier)
    assert signed.size == size  # the bundle's checkpoint covers every entry appended
    root = signed.root_hash
    items = tuple(Item(e.to_json(), e.seq - 1, tuple(paths[e.seq]))
                  for e in ledger.log.entries(0, size))
    manifest = sign_note(manifest_text(key.name, CERT, size, root, range(1, size + 1)), key)
    text = dumps(Bundle(CERT, key.name, key.verifier.to_vkey(), note, items, manifest))
    engine.dispose()
    return Built(text, key.verifier.to_vkey(), key, {})


def story() -> list[tuple[str, str, dict[str, Any]]]:
    """P1 bought at S by b1, handed to the exporter, exported under CERT."""
    def actor(actor_id: str, role: str) -> tuple[str, str, dict[str, Any]]:
        return ("actor.registered", "off", {"actor_id": actor_id, "name": actor_id,
                                            "role": role, "country": "GH", "date": "2004-01-01"})
    return [
        ("actor.registered", "admin", {"actor_id": "off", "name": "Officer", "role": "officer",
                                       "country": "GH", "date": "2004-01-01"}),
        actor("b1", "buyer"), actor("b2", "buyer"), actor("ex", "exporter"),
        actor("aud", "auditor"),
        ("zone.registered", "off", {"zone_id": "Z", "zone_type": "licence", "geometry": AKWATIA,
                                    "date": "2004-01-02", "valid_from": "2000-01-01",
                                    "valid_to": None, "licence_no": "GH-ML-1", "holder": "Coop"}),
        ("site.registered", "off", {"site_id": "S", "name": "Pit", "location": point(-0.8, 6.04),
                                    "licence_no": "GH-ML-1", "operator": "Coop", "country": "GH",
                                    "date": "2004-01-03"}),
        ("parcel.purchased", "b1", {"parcel_id": "P1", "site_id": "S", "seller": "Kofi",
                                    "date": "2008-01-10", "carats": 3.0, "stones": 3,
                                    "price": {"amount": 10, "currency": "USD"}}),
        ("parcel.transferred", "b1", {"parcel_id": "P1", "to_actor": "ex", "date": "2008-01-20",
                                      "price": {"amount": 12, "currency": "USD"}}),
        ("export.declared", "ex", {"certificate_no": CERT, "exporter": "ex", "importer": "Bank",
                                   "destination": "BE", "hs_code": "7102.31",
                                   "parcel_ids": ["P1"], "carats": 3.0, "value_usd": 20,
                                   "date": "2008-02-01", "expires": "2008-04-01"}),
    ]


Events = list[tuple[str, str, dict[str, Any]]]


def changed(at: int, actor: str | None = None, **payload: Any) -> Callable[[Events], Events]:
    def change(events: Events) -> Events:
        kind, who, p = events[at]
        events[at] = (kind, actor or who, {**p, **payload})
        return events
    return change


def inserted(at: int, kind: str, actor: str, **payload: Any) -> Callable[[Events], Events]:
    def insert(events: Events) -> Events:
        events.insert(at, (kind, actor, payload))
        return events
    return insert


SPLIT = {"parent_id": "P1", "date": "2008-01-25", "children": [
    {"parcel_id": "P2", "carats": 2.0, "stones": 2}, {"parcel_id": "P3", "carats": 1.0,
                                                       "stones": 1}]}
FLAG = {"flag_id": "F1", "subject": {"type": "parcel", "id": "P1"}, "code": "FOOTPRINT_ANOMALY",
        "detail": "too cheap", "date": "2008-01-15"}

# (id, how the dishonest log changed the story, what the verdict must say)
DISHONEST: list[tuple[str, Callable[[Events], Events], str]] = [
    ("transfer-by-non-holder", changed(8, actor="b2"),
     "parcel P1 is held by 'b1', not by 'b2' (SPEC 4 HOLDER)"),
    ("export-carats-differ", changed(9, carats=3.1),
     "declares 3.10 ct but its parcels weigh 3.00 ct (SPEC 4 CERTIFICATE)"),
    ("date-goes-back", changed(8, date="2008-01-01"),
     "is dated 2008-01-01, before 2008-01-10, when parcel P1 last changed"),
    ("spent-twice", inserted(9, "parcel.split", "ex", **SPLIT),
     "parcel P1 was already consumed by entry 11 (SPEC 4 SPENT: spent twice)"),
    ("split-outweighs", inserted(8, "parcel.split", "b1", **{**SPLIT, "children": [
        {"parcel_id": "P2", "carats": 2.5, "stones": 2},
        {"parcel_id": "P3", "carats": 1.0, "stones": 1}]}),
     "the children of P1 outweigh it (SPEC 4 MASS)"),
    ("moved-while-flagged", inserted(8, "flag.raised", "aud", **FLAG),
     "parcel P1 moved while flag F1 was open (SPEC 4 HOLD)"),
    ("writer-not-registered", changed(7, actor="b9"),
     "is written by 'b9', whose registration is not in the bundle"),
    ("wrong-role", changed(9, actor="b1", exporter="b1"),
     "'b1' is a buyer and may not write export.declared (SPEC 4 ROLE)"),
    ("dug-outside-the-licence", changed(7, dig_location=point(-1.5, 7.5)),
     "OUTSIDE_LICENSED_ZONE: no zone of licence GH-ML-1 valid on 2008-01-10 covers it"),
    ("licence-zone-retired-from-the-start", inserted(7, "zone.retired", "off", zone_id="Z",
                                                     reason="drawn in error", date="2009-01-01"),
     "OUTSIDE_LICENSED_ZONE: no zone of licence GH-ML-1 valid on 2008-01-10 covers it"),
    ("auditor-takes-a-system-flag-id", inserted(8, "flag.raised", "aud", **{
        **FLAG, "flag_id": "F-12", "subject": {"type": "parcel", "id": "P9"}}),
     "'aud' raises flag F-12, an id in the namespace the ledger keeps for its own screening "
     "flags (SPEC 4 DUPLICATE)"),
    ("flag-id-raised-twice", lambda events: inserted(8, "flag.raised", "aud", **{
        **FLAG, "subject": {"type": "parcel", "id": "P9"}})(inserted(8, "flag.resolved", "aud",
        flag_id="F1", resolution="ok", date="2008-01-16")(inserted(8, "flag.raised", "aud", **{
            **FLAG, "subject": {"type": "parcel", "id": "P9"}})(events))),
     "entry 12 raises flag F1 again (entry 10 raised it; SPEC 4 DUPLICATE)"),
    ("officer-acts-abroad", lambda events: inserted(
        1, "actor.registered", "admin", actor_id="off-sl", name="Mines SL", role="officer",
        country="SL", date="2004-01-01")(changed(6, actor="off-sl")(events)),
     "'off-sl' is an officer of SL and may not write site.registered for GH (SPEC 4 "
     "JURISDICTION)"),
    ("trade-after-licence-revoked", inserted(7, "licence.revoked", "off", actor_id="b1",
                                             reason="fraud", date="2008-01-01"),
     "entry 10 (parcel.purchased, 2008-01-10): the licence of 'b1' is not valid that day "
     "(SPEC 4 LICENCE)"),
    ("dated-after-it-was-written", changed(9, date="2999-01-01", expires="2999-03-01"),
     "entry 11 (export.declared) is dated 2999-01-01, after the day it was written"),
    ("no-export", lambda events: events[:-1],
     f"custody: the bundle holds no export.declared entry for {CERT}."),
]


@pytest.mark.parametrize(("change", "verdict"), [d[1:] for d in DISHONEST],
                         ids=[d[0] for d in DISHONEST])
def test_custody_and_screening_catch_what_a_dishonest_log_signed(
    tmp_path: Path, change: Callable[[Events], Events], verdict: str
) -> None:
    (tmp_path / "honest").mkdir()
    honest = forge(tmp_path / "honest", story())
    assert verify_bundle(honest.text, honest.key.verifier).ok  # the story itself is sound
    forged = forge(tmp_path, change(story()))
    report = verify_bundle(forged.text, forged.key.verifier)
    assert not report.ok
    assert any(verdict in p for p in report.problems), report.problems


# -- the standard-library JCS and the manifest, as properties ---------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53 - 1), 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_stdlib_jcs_matches_the_ledgers_canonical_bytes(value: Any) -> None:
    try:
        expected = canonical_bytes(value)
    except ValueError:
        with pytest.raises((ValueError, UnicodeEncodeError)):
            jcs.canonical_bytes(value)
        return
    assert jcs.canonical_bytes(value) == expected


@pytest.mark.parametrize("number", [0.0, -0.0, 1e21, 1e-7, 123e-20, 2.0**60, 5e-324, 1.5e300,
                                    0.000001, 123456789012345680000.0, -4.25])
def test_stdlib_jcs_numbers_match_rfc8785(number: float) -> None:
    assert jcs.canonical_bytes([number]) == canonical_bytes([number])


@given(st.sets(st.integers(1, 5000), max_size=300), st.integers(5000, 10**9))
def test_manifest_text_parses_back_to_the_same_entries(seqs: set[int], size: int) -> None:
    text = manifest_text("alluvial.local", CERT, size, bytes(range(32)), seqs)
    assert Manifest.from_text(text).seqs == tuple(sorted(seqs))
    assert all(len(line) <= 100 for line in text.split("\n"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=6), JSON, max_size=6))
def test_the_verifiers_fast_hash_path_agrees_with_jcs(value: dict[str, Any]) -> None:
    """Where loads() finds every number and key JCS-safe, one C encoder call hashes alike."""
    parsed, fast = jcs.loads(json.dumps(value))
    if fast:
        assert bundle_format._fast_entry_hash(parsed) == bundle_format.entry_hash(parsed)


def test_the_offline_verifier_uses_the_ledgers_own_roles_and_map_kinds() -> None:
    """The vendorable verifier copies two tables of the ledger: they must not drift apart."""
    from ledger.bundle import replay as bundle_replay
    from ledger.custody import rules
    from ledger.recorder import events

    assert {k: set(v) for k, v in bundle_replay.ROLES.items()} == {
        k: set(v) for k, v in rules.ROLES.items()}
    assert set(bundle_replay.MAP_KINDS) == set(events.MAP_KINDS)
    assert bundle_replay.SYSTEM_FLAG_ID.pattern == rules.SYSTEM_FLAG_ID.pattern


# -- zone versions and licence windows: the verifier's copy agrees with the ledger's ---------
SOME_DAYS = st.sampled_from(["2000-01-01", "2005-06-30", "2008-01-01", "2008-01-02", "2010-12-31",
                             "2012-03-01", "2015-07-01"])
SHAPES = [AKWATIA, TANO, CI_NORTH]


@settings(max_examples=300, deadline=None)
@given(start=SOME_DAYS, end=st.none() | SOME_DAYS,
       amendments=st.lists(st.tuples(st.none() | SOME_DAYS, st.none() | st.integers(0, 2),
                                     st.none() | st.just("x") | SOME_DAYS), max_size=4),
       renewals=st.lists(st.tuples(SOME_DAYS, st.none() | SOME_DAYS), max_size=2),
       revocations=st.lists(SOME_DAYS, max_size=2), retired=st.none() | SOME_DAYS)
def test_the_verifiers_zone_versions_and_windows_match_the_ledgers(
        start: str, end: str | None, amendments: list[tuple[str | None, int | None, str | None]],
        renewals: list[tuple[str, str | None]], revocations: list[str], retired: str | None
) -> None:
    """ledger.bundle.windows repeats ledger.geo.zones.zone_entries in the standard library:
    on random histories both give the same geometry on the same days."""
    from types import SimpleNamespace

    from ledger.bundle.windows import ZoneHistory
    from ledger.geo.zones import zone_entries
    from ledger.log.canonical import canonical_text

    history = ZoneHistory.registered({"zone_type": "licence", "licence_no": "GH-1",
                                      "geometry": SHAPES[0], "valid_from": start,
                                      "valid_to": end}, 1)
    versions = [SimpleNamespace(zone_id="Z", effective=None, seq=1,
                                geometry=canonical_text(SHAPES[0]), valid_from=start,
                                valid_to=end, sets_valid_to=True)]
    for seq, (effective, shape, valid_to) in enumerate(amendments, start=2):
        p: dict[str, Any] = {} if effective is None else {"effective": effective}
        if shape is not None:
            p["geometry"] = SHAPES[shape]
        if valid_to is not None:
            p["valid_to"] = None if valid_to == "x" else valid_to
        history.amended(p, seq)
        versions.append(SimpleNamespace(
            zone_id="Z", effective=effective, seq=seq,
            geometry=None if shape is None else canonical_text(SHAPES[shape]), valid_from=None,
            valid_to=p.get("valid_to"), sets_valid_to="valid_to" in p))
    history.renewals, history.revocations = list(renewals), list(revocations)
    history.retired_to = retired
    row = SimpleNamespace(zone_id="Z", zone_type="licence", licence_no="GH-1", category=None,
                          geometry=canonical_text(SHAPES[0]), valid_from=start, valid_to=end,
                          revoked_on=None, retired_to=retired,
                          renewals=json.dumps(renewals) if renewals else None,
                          revocations=json.dumps(revocations) if revocations else None)
    ledger_side = [(geometry, z.start, z.end, z.revoked)
                   for z, geometry in zone_entries([row], versions)]
    ours = [(canonical_text(s.geometry), s.days.start, s.days.end, s.days.revoked)
            for s in history.spans()]
    assert ours == ledger_side
