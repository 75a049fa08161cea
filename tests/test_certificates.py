"""KP certificates validated by the exporting authority and confirmed by the importing one
(issue 18; SPEC 1, 4, 5, 6, 7): certificate.validated, import.confirmed, VALUE_MISMATCH,
CONFIRMATION_MISMATCH, `alluvial certificates` and what a bundle says about validation."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.bundle.build import build_bundle, dumps
from ledger.bundle.verify import verify_bundle
from ledger.cli import cli
from ledger.errors import LedgerError
from ledger.recorder.events import Event, Ledger
from tests.conftest import register_akwatia
from tests.test_bundle import Events, changed, forge, inserted, story
from tests.test_custody import Write, licensed

TODAY = datetime.now(UTC).date()


def ago(days: int) -> str:
    return (TODAY - timedelta(days=days)).isoformat()


@pytest.fixture
def world(ledger: Ledger, write: Write) -> Ledger:
    """Officers of GH and SL; the KP authorities of GH, SL and BE; an auditor; a Ghanaian
    buyer and exporter; one Akwatia site."""
    for actor_id, role, country in [("off-gh", "officer", "GH"), ("off-sl", "officer", "SL"),
                                    ("kp-gh", "authority", "GH"), ("kp-sl", "authority", "SL"),
                                    ("kp-be", "authority", "BE"), ("aud-1", "auditor", "BE")]:
        write("actor.registered", "admin", actor_id=actor_id, name=f"{role} {country}",
              role=role, country=country, date="2004-01-02")
    for actor_id, role in [("buyer-a", "buyer"), ("exp-gh", "exporter")]:
        write("actor.registered", "off-gh", **licensed(actor_id, role))
    register_akwatia(write)
    return ledger


def at_exporter(write: Write, pid: str, carats: float, usd_per_ct: float = 30.0,
                date: str = "2016-03-01") -> None:
    write("parcel.purchased", "buyer-a", parcel_id=pid, site_id="S-AKW", seller="Kofi Boateng",
          date=date, carats=carats, stones=max(1, int(carats)),
          price={"amount": round(carats * usd_per_ct, 2), "currency": "USD"})
    write("parcel.transferred", "buyer-a", parcel_id=pid, to_actor="exp-gh", date=date,
          price={"amount": round(carats * usd_per_ct * 1.1, 2), "currency": "USD"})


def declare(write: Write, cert: str, parcels: list[str], carats: float, value: float,
            date: str = "2016-03-03", expires: str = "2016-06-01", destination: str = "BE"
            ) -> Any:
    return write("export.declared", "exp-gh", certificate_no=cert, exporter="exp-gh",
                 importer="Antwerp Rough Trading NV", destination=destination,
                 hs_code="7102.31", parcel_ids=parcels, carats=carats, value_usd=value,
                 date=date, expires=expires)


def validate(cert: str, date: str = "2016-03-05", valuation: float = 400.0) -> dict[str, Any]:
    return {"certificate_no": cert, "date": date, "valuation_usd": valuation,
            "officer": "Ama Owusu"}


def confirm(cert: str, carats: float = 12.5, parcels: int = 1, date: str = "2016-03-10",
            importer: str = "Antwerp Rough Trading NV") -> dict[str, Any]:
    return {"certificate_no": cert, "date": date, "carats_received": carats,
            "parcels_received": parcels, "importer": importer}


def refused(book: Ledger, kind: str, actor: str, payload: dict[str, Any]) -> LedgerError:
    size, digest = book.log.size(), book.digest()
    with pytest.raises(LedgerError) as caught:
        book.write(Event(kind, actor, payload))
    assert (book.log.size(), book.digest()) == (size, digest)  # nothing written
    return caught.value


def codes(result: Any) -> list[str]:
    return [f["code"] for f in result.flags]


# -- acceptance 1: VALUE_MISMATCH, CERTIFICATE, JURISDICTION, DATE_ORDER ----------------------

def test_a_dollar_for_5050_carats_is_recorded_and_flagged(world: Ledger, write: Write) -> None:
    at_exporter(write, "P1", 5050.0, usd_per_ct=30.0)
    declared = declare(write, "GH-2016-0001", ["P1"], 5050.0, 1.0, expires="2030-01-01")
    assert codes(declared) == ["VALUE_MISMATCH"]
    flag = declared.flags[0]
    assert flag["subject"] == {"type": "export", "id": "GH-2016-0001"}
    assert "USD 1.00 for 5,050.00 ct" in flag["detail"]
    assert "below half the USD 151,500.00" in flag["detail"], flag["detail"]
    # the authority's own valuation is judged too: three times and a cent over is flagged
    high = write("certificate.validated", "kp-gh", **validate("GH-2016-0001",
                                                                 valuation=454500.01))
    assert codes(high) == ["VALUE_MISMATCH"] and "above three times" in high.flags[0]["detail"]


def split_and_merge(write: Write) -> None:
    """P1 (10 ct at USD 100/ct) split into P1a (4 ct) and P1b (6 ct, worth USD 600); P1a
    merged with P2 (6 ct at USD 10/ct) into PM: 10 ct worth USD 460 at first sale."""
    at_exporter(write, "P1", 10.0, usd_per_ct=100.0)
    at_exporter(write, "P2", 6.0, usd_per_ct=10.0)
    write("parcel.split", "exp-gh", parent_id="P1", date="2016-03-02",
          children=[{"parcel_id": "P1a", "carats": 4.0, "stones": 4},
                    {"parcel_id": "P1b", "carats": 6.0, "stones": 6}])
    write("parcel.merged", "exp-gh", parent_ids=["P1a", "P2"], date="2016-03-02",
          child={"parcel_id": "PM", "carats": 10.0, "stones": 10})


def test_a_value_within_the_band_raises_nothing_through_splits_and_merges(
        world: Ledger, write: Write) -> None:
    """First-sale value through a split and a merge, in proportion to carats."""
    split_and_merge(write)
    assert codes(declare(write, "GH-2016-0001", ["PM"], 10.0, 230.0)) == []  # exactly half
    assert codes(write("certificate.validated", "kp-gh",
                       **validate("GH-2016-0001", valuation=1380.0))) == []  # three times
    low = declare(write, "GH-2016-0002", ["P1b"], 6.0, 299.99, date="2016-03-04")
    assert codes(low) == ["VALUE_MISMATCH"] and "USD 600.00" in low.flags[0]["detail"]


def test_value_is_judged_on_custody_written_in_the_same_transaction(world: Ledger) -> None:
    """An ingest writes the split, the merge and the export in one transaction: the first-sale
    value reads the custody edges not yet flushed as well as those written before."""
    with world.session() as session:
        def write(kind: str, actor: str, **payload: Any) -> Any:
            return session.write(Event(kind, actor, payload))

        split_and_merge(write)
        low = declare(write, "GH-2016-0001", ["PM"], 10.0, 229.99)
        high = declare(write, "GH-2016-0002", ["P1b"], 6.0, 1800.01)
    assert codes(low) == codes(high) == ["VALUE_MISMATCH"]
    assert "USD 460.00" in low.flags[0]["detail"] and "USD 600.00" in high.flags[0]["detail"]


Setup = Callable[[Write], Any]


def _declared(w: Write) -> None:
    at_exporter(w, "P1", 12.5, usd_per_ct=30.0)
    declare(w, "GH-2016-0001", ["P1"], 12.5, 400.0)


def _validated(w: Write) -> None:
    _declared(w)
    w("certificate.validated", "kp-gh", **validate("GH-2016-0001"))


def _confirmed(w: Write) -> None:
    _declared(w)
    w("import.confirmed", "kp-be", **confirm("GH-2016-0001", date="2016-03-06"))


# (id, setup, kind, actor, payload, rule, words in the refusal)
REFUSALS: list[tuple[str, Setup, str, str, dict[str, Any], str, str]] = [
    ("destination-is-the-exporters-country", lambda w: at_exporter(w, "P1", 12.5),
     "export.declared", "exp-gh",
     {"certificate_no": "GH-2016-0001", "exporter": "exp-gh", "importer": "Accra Cutting Ltd",
      "destination": "GH", "hs_code": "7102.31", "parcel_ids": ["P1"], "carats": 12.5,
      "value_usd": 400.0, "date": "2016-03-03", "expires": "2030-01-01"},
     "CERTIFICATE", "payload.destination: GH is the exporter's own country"),
    ("sl-authority-validates-a-gh-certificate", _declared, "certificate.validated", "kp-sl",
     validate("GH-2016-0001"), "JURISDICTION",
     "'kp-sl' is an authority of SL; it may not validate the exports of GH"),
    ("importing-authority-validates", _declared, "certificate.validated", "kp-be",
     validate("GH-2016-0001"), "JURISDICTION", "may not validate the exports of GH"),
    ("validation-after-expiry", _declared, "certificate.validated", "kp-gh",
     validate("GH-2016-0001", date="2016-06-02"), "DATE_ORDER",
     "2016-06-02 is after the certificate GH-2016-0001 expired (2016-06-01)"),
    ("validation-before-issue", _declared, "certificate.validated", "kp-gh",
     validate("GH-2016-0001", date="2016-03-02"), "DATE_ORDER", "before the certificate"),
    ("validation-after-the-confirmation", _confirmed, "certificate.validated", "kp-gh",
     validate("GH-2016-0001", date="2016-03-07"), "DATE_ORDER",
     "after the import under certificate GH-2016-0001 was confirmed (2016-03-06)"),
    ("validation-dated-tomorrow", lambda w: (at_exporter(w, "P1", 12.5, date=ago(3)), declare(
        w, "GH-2016-0001", ["P1"], 12.5, 400.0, date=ago(2), expires="2099-01-01")),
     "certificate.validated", "kp-gh",
     validate("GH-2016-0001", date=(TODAY + timedelta(days=1)).isoformat()), "DATE_ORDER",
     "after today"),
    ("auditor-validates", _declared, "certificate.validated", "aud-1",
     validate("GH-2016-0001"), "ROLE", "only authority may write certificate.validated"),
    ("exporter-validates-its-own", _declared, "certificate.validated", "exp-gh",
     validate("GH-2016-0001"), "ROLE", "only authority may write certificate.validated"),
    ("validation-of-an-unknown-certificate", lambda w: None, "certificate.validated", "kp-gh",
     validate("GH-2016-0404"), "UNKNOWN_REFERENCE", "there is no export certificate"),
    ("second-validation", _validated, "certificate.validated", "kp-gh",
     validate("GH-2016-0001", date="2016-03-06"), "DUPLICATE",
     "certificate GH-2016-0001 was already validated by entry"),
    ("confirmation-before-the-validation", _validated, "import.confirmed", "kp-be",
     confirm("GH-2016-0001", date="2016-03-04"), "DATE_ORDER",
     "2016-03-04 is before the certificate GH-2016-0001 was validated (2016-03-05)"),
    ("confirmation-after-expiry", _validated, "import.confirmed", "kp-be",
     confirm("GH-2016-0001", date="2016-06-02"), "DATE_ORDER", "expired (2016-06-01)"),
    ("exporting-authority-confirms", _validated, "import.confirmed", "kp-gh",
     confirm("GH-2016-0001"), "JURISDICTION", "it may not confirm imports into BE"),
    ("second-confirmation", _confirmed, "import.confirmed", "aud-1",
     confirm("GH-2016-0001", date="2016-03-08"), "DUPLICATE",
     "certificate GH-2016-0001 was already confirmed by entry"),
]


@pytest.mark.parametrize(("setup", "kind", "actor", "payload", "rule", "words"),
                         [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_certificate_refusals(world: Ledger, write: Write, setup: Setup, kind: str, actor: str,
                              payload: dict[str, Any], rule: str, words: str) -> None:
    setup(write)
    error = refused(world, kind, actor, payload)
    assert error.rule == rule and words in str(error), str(error)


# -- acceptance 2: CONFIRMATION_MISMATCH, DUPLICATE, `certificates` ---------------------------

def test_a_short_confirmation_is_recorded_and_flagged(world: Ledger, write: Write,
                                                      runner: CliRunner) -> None:
    _validated(write)
    short = write("import.confirmed", "kp-be", **confirm("GH-2016-0001", carats=10.0))
    assert short.entry.kind == "import.confirmed" and codes(short) == ["CONFIRMATION_MISMATCH"]
    assert short.flags[0]["subject"] == {"type": "export", "id": "GH-2016-0001"}
    assert "10.00 ct received for the 12.50 ct certified" in short.flags[0]["detail"]
    again = refused(world, "import.confirmed", "kp-be", confirm("GH-2016-0001", carats=12.5))
    assert again.rule == "DUPLICATE"
    listed = json.loads(runner.invoke(cli, ["certificates", "--json"]).stdout)
    assert listed == [{"certificate_no": "GH-2016-0001", "exporter": "exp-gh",
                       "destination": "BE", "date": "2016-03-03", "expires": "2016-06-01",
                       "carats": 12.5, "value_usd": 400, "state": "mismatched",
                       "tainted": False}]


@pytest.mark.parametrize(("change", "words"), [
    ({"parcels_received": 2}, "2 parcel(s) received for the 1 certified"),
    ({"importer": "Dubai Rough DMCC"}, "received by 'Dubai Rough DMCC', not the certified "
                                       "importer 'Antwerp Rough Trading NV'"),
], ids=["parcel-count", "importer"])
def test_every_difference_is_a_mismatch(world: Ledger, write: Write, change: dict[str, Any],
                                        words: str) -> None:
    _validated(write)
    result = write("import.confirmed", "kp-be", **{**confirm("GH-2016-0001"), **change})
    assert codes(result) == ["CONFIRMATION_MISMATCH"] and words in result.flags[0]["detail"]


def test_certificates_lists_states_and_the_overdue(world: Ledger, write: Write,
                                                   runner: CliRunner) -> None:
    """Declared 45 days ago and unconfirmed (overdue), validated 40 days ago and unconfirmed
    (overdue), confirmed 50 days ago, and one declared 10 days ago (not yet overdue)."""
    for n, (issued, pid) in enumerate([(45, "P1"), (40, "P2"), (50, "P3"), (10, "P4")], 1):
        at_exporter(write, pid, 12.5, date=ago(issued + 2))
        declare(write, f"GH-C-{n}", [pid], 12.5, 400.0, date=ago(issued), expires="2099-01-01")
    write("certificate.validated", "kp-gh", **validate("GH-C-2", date=ago(39)))
    write("import.confirmed", "kp-be", **confirm("GH-C-3", date=ago(48)))
    write("flag.raised", "aud-1", flag_id="AUD-1", subject={"type": "export", "id": "GH-C-1"},
          code="TAINTED_INPUT", detail="an origin lies in a risk area", date=ago(1))

    def listed(*args: str) -> list[dict[str, Any]]:
        result = runner.invoke(cli, ["certificates", "--json", *args])
        assert result.exit_code == 0, result.output
        return list(json.loads(result.stdout))

    states = {c["certificate_no"]: (c["state"], c["tainted"]) for c in listed()}
    assert states == {"GH-C-1": ("declared", True), "GH-C-2": ("validated", False),
                      "GH-C-3": ("confirmed", False), "GH-C-4": ("declared", False)}
    overdue = listed("--unconfirmed", "--older-than", "30")
    assert [c["certificate_no"] for c in overdue] == ["GH-C-1", "GH-C-2"]
    text = runner.invoke(cli, ["certificates", "--unconfirmed"]).stdout.splitlines()
    assert len(text) == 3 and text[0].split("\t")[-1] == "TAINTED"
    bad = runner.invoke(cli, ["certificates", "--older-than", "-1"])
    assert bad.exit_code == 2 and "--older-than" in bad.stderr


# -- acceptance 4: what verify-bundle says about validation ----------------------------------

def test_verify_bundle_says_who_validated_or_that_nobody_did(
        world: Ledger, write: Write, runner: CliRunner, tmp_path: Path) -> None:
    _validated(write)
    at_exporter(write, "P2", 12.5)
    declare(write, "GH-2016-0002", ["P2"], 12.5, 400.0)
    write("import.confirmed", "kp-be", **confirm("GH-2016-0002", date="2016-03-04"))
    vkey = world.log.verifier.to_vkey()
    out = {}
    for cert in ("GH-2016-0001", "GH-2016-0002"):
        path = tmp_path / f"{cert}.json"
        path.write_text(dumps(build_bundle(world.log, cert)), encoding="utf-8")
        result = runner.invoke(cli, ["verify-bundle", str(path), "--key", vkey])
        assert result.exit_code == 0, result.output
        out[cert] = result.stdout
    assert ("validation: validated on 2016-03-05 by 'kp-gh' (authority GH, KP authority of GH)"
            ", officer Ama Owusu, valuation USD 400.00") in out["GH-2016-0001"]
    assert "import: not confirmed by the authority of BE." in out["GH-2016-0001"]
    assert "validation: NOT validated" in out["GH-2016-0002"]
    assert ("import: confirmed on 2016-03-04 by 'kp-be': 12.50 ct, 1 parcel(s), importer "
            "Antwerp Rough Trading NV") in out["GH-2016-0002"]


# -- forged bundles: the replay checks validations and confirmations as the ledger does -------

CERT = "GH-2008-0042"  # tests.test_bundle's story exports it (entry 11), P1 of 3.0 ct, to BE


def _authorities(events: Events) -> Events:
    for at, (actor_id, country) in enumerate([("kp-gh", "GH"), ("kp-sl", "SL"),
                                              ("kp-be", "BE")], 1):
        events.insert(at, ("actor.registered", "admin", {
            "actor_id": actor_id, "name": f"KP {country}", "role": "authority",
            "country": country, "date": "2004-01-01"}))
    return events


def _then(*steps: Callable[[Events], Events]) -> Callable[[Events], Events]:
    def run(events: Events) -> Events:
        for step in steps:
            events = step(events)
        return events
    return run


VALIDATION = {"certificate_no": CERT, "date": "2008-02-02", "valuation_usd": 25,
              "officer": "A. Mensah"}
ARRIVED = {"certificate_no": CERT, "date": "2008-02-10", "carats_received": 3.0,
           "parcels_received": 1, "importer": "Bank"}
LAST = 100  # inserted() at an index past the end appends

FORGED: list[tuple[str, Callable[[Events], Events], str]] = [
    ("validated-by-the-wrong-countrys-authority",
     inserted(LAST, "certificate.validated", "kp-sl", **VALIDATION),
     "'kp-sl' is an authority of SL and may not write certificate.validated for GH (SPEC 4 "
     "JURISDICTION)"),
    ("validated-by-an-exporter", inserted(LAST, "certificate.validated", "ex", **VALIDATION),
     "'ex' is a exporter and may not write certificate.validated (SPEC 4 ROLE)"),
    ("validated-twice", _then(inserted(LAST, "certificate.validated", "kp-gh", **VALIDATION),
                              inserted(LAST, "certificate.validated", "kp-gh", **VALIDATION)),
     "validates GH-2008-0042 again"),
    ("validated-after-expiry",
     inserted(LAST, "certificate.validated", "kp-gh", **{**VALIDATION, "date": "2008-04-02"}),
     "outside its issue and expiry (2008-02-01 to 2008-04-01; SPEC 4 DATE_ORDER)"),
    ("confirmed-before-the-validation",
     _then(inserted(LAST, "certificate.validated", "kp-gh", **VALIDATION),
           inserted(LAST, "import.confirmed", "kp-be", **{**ARRIVED, "date": "2008-02-01"})),
     "outside its validation and expiry (2008-02-02 to 2008-04-01"),
    ("confirmed-twice", _then(inserted(LAST, "import.confirmed", "kp-be", **ARRIVED),
                              inserted(LAST, "import.confirmed", "kp-be", **ARRIVED)),
     "confirms GH-2008-0042 again"),
    ("short-confirmation-without-its-flag",
     inserted(LAST, "import.confirmed", "kp-be", **{**ARRIVED, "carats_received": 2.0}),
     "differs from the certificate (carats) but the bundle holds no CONFIRMATION_MISMATCH"),
    ("exported-to-its-own-country", changed(-1, destination="GH"),
     "GH-2008-0042 goes to GH, the exporter's own country (SPEC 4 CERTIFICATE)"),
]


@pytest.mark.parametrize(("change", "verdict"), [f[1:] for f in FORGED],
                         ids=[f[0] for f in FORGED])
def test_the_replay_refuses_forged_validations_and_confirmations(
        tmp_path: Path, change: Callable[[Events], Events], verdict: str) -> None:
    honest = _then(_authorities, inserted(LAST, "certificate.validated", "kp-gh", **VALIDATION),
                   inserted(LAST, "import.confirmed", "kp-be", **ARRIVED))(story())
    (tmp_path / "honest").mkdir()
    built = forge(tmp_path / "honest", honest)
    report = verify_bundle(built.text, built.key.verifier)
    assert report.ok, report.problems
    assert any(f.startswith("validation: validated on 2008-02-02 by 'kp-gh'")
               for f in report.facts), report.facts
    forged = forge(tmp_path, change(_authorities(story())))
    report = verify_bundle(forged.text, forged.key.verifier)
    assert not report.ok
    assert any(verdict in p for p in report.problems), report.problems
