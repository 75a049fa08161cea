"""Custody that holds to time and jurisdiction (issue 16; SPEC 1, 4, 5): DATE_ORDER,
JURISDICTION, zone versions, licence renewals, LATE_ENTRY and archive imports."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ledger.bundle.build import build_bundle, dumps
from ledger.bundle.verify import verify_bundle
from ledger.cli import cli
from ledger.config import Settings
from ledger.errors import LedgerError
from ledger.log.keys import load_or_create
from ledger.projections import flags as flag_table
from ledger.recorder.events import Event, Ledger
from tests.conftest import register_akwatia
from tests.test_custody import SQUARE, Write, buy, export, licensed, merge, move, split

SMALL = {"type": "Polygon", "coordinates": [[[-0.9, 5.9], [-0.8, 5.9], [-0.8, 6.0],
                                             [-0.9, 6.0], [-0.9, 5.9]]]}
NORTH_CI = {"type": "Polygon", "coordinates": [[[-8.0, 7.5], [-4.0, 7.5], [-4.0, 10.0],
                                                [-8.0, 10.0], [-8.0, 7.5]]]}
TODAY = datetime.now(UTC).date()


@pytest.fixture
def world(ledger: Ledger, write: Write) -> Ledger:
    write("actor.registered", "admin", actor_id="off-gh", name="Minerals Commission",
          role="officer", country="GH", date="2004-01-02")
    write("actor.registered", "admin", actor_id="off-sl", name="Ministry of Mines SL",
          role="officer", country="SL", date="2004-01-02")
    for actor_id, role in [("buyer-a", "buyer"), ("exp-gh", "exporter")]:
        write("actor.registered", "off-gh", **licensed(actor_id, role))
    register_akwatia(write)
    return ledger


def refused(book: Ledger, kind: str, actor: str, payload: dict[str, Any]) -> LedgerError:
    size, digest = book.log.size(), book.digest()
    with pytest.raises(LedgerError) as caught:
        book.write(Event(kind, actor, payload))
    assert (book.log.size(), book.digest()) == (size, digest)  # nothing written
    return caught.value


# -- acceptance 1: DATE_ORDER and JURISDICTION -----------------------------------------------

def _bought_in_2016(write: Write) -> None:
    buy(write, "P1", date="2016-03-01")
    buy(write, "P2", date="2016-03-01")
    buy(write, "P3", date="2016-02-01")
    move(write, "P2", "exp-gh", date="2016-04-01")


TOMORROW = (TODAY + timedelta(days=1)).isoformat()
DATE_ORDER_CASES = [
    ("transfer", "parcel.transferred", "buyer-a",
     {"parcel_id": "P1", "to_actor": "exp-gh", "date": "2010-05-01",
      "price": {"amount": 1, "currency": "USD"}}, "before 2016-03-01"),
    ("split", "parcel.split", "buyer-a",
     {"parent_id": "P1", "date": "2016-02-28",
      "children": [{"parcel_id": "P1a", "carats": 5.0, "stones": 2}]}, "before 2016-03-01"),
    ("merge", "parcel.merged", "buyer-a",
     {"parent_ids": ["P3", "P1"], "date": "2016-02-15",
      "child": {"parcel_id": "PM", "carats": 20.0, "stones": 10}}, "before 2016-03-01"),
    ("export-before-its-transfer", "export.declared", "exp-gh",
     {"certificate_no": "GH-2016-0001", "exporter": "exp-gh", "importer": "Antwerp NV",
      "destination": "BE", "hs_code": "7102.31", "parcel_ids": ["P2"], "carats": 10.0,
      "value_usd": 500.0, "date": "2016-03-15", "expires": "2016-06-01"}, "before 2016-04-01"),
    ("dated-tomorrow", "parcel.purchased", "buyer-a",
     {"parcel_id": "P9", "site_id": "S-AKW", "seller": "Kofi", "date": TOMORROW, "carats": 1.0,
      "stones": 1, "price": {"amount": 10, "currency": "USD"}}, "after today"),
]


@pytest.mark.parametrize(("kind", "actor", "payload", "words"),
                         [c[1:] for c in DATE_ORDER_CASES], ids=[c[0] for c in DATE_ORDER_CASES])
def test_time_runs_forward_along_custody(world: Ledger, write: Write, kind: str, actor: str,
                                         payload: dict[str, Any], words: str) -> None:
    _bought_in_2016(write)
    error = refused(world, kind, actor, payload)
    assert error.rule == "DATE_ORDER" and words in str(error), str(error)


def test_a_move_on_the_day_of_the_last_event_is_in_order(world: Ledger, write: Write) -> None:
    _bought_in_2016(write)
    split(write, "P1", [("P1a", 5.0, 2)], date="2016-03-01")
    merge(write, ["P1a", "P3"], "PM", 15.0, 7, date="2016-03-01")


SL_SQUARE = {"type": "Polygon", "coordinates": [[[-11.2, 8.4], [-10.8, 8.4], [-10.8, 8.8],
                                                 [-11.2, 8.8], [-11.2, 8.4]]]}
JURISDICTION_CASES = [
    ("sl-site", "site.registered",
     {"site_id": "SL-S-1", "name": "Kono pit", "location": {"type": "Point",
                                                            "coordinates": [-11.0, 8.6]},
      "licence_no": "SL-ML-1", "operator": "Kono Diggers", "country": "SL",
      "date": "2010-01-01"}, "payload.country"),
    ("sl-actor", "actor.registered",
     {"actor_id": "buyer-sl", "name": "Koidu Buyer", "role": "buyer", "country": "SL",
      "licence_no": "SL-LIC-1", "licence_valid_from": "2010-01-01", "licence_valid_to": None,
      "date": "2010-01-01"}, "payload.country"),
    ("sl-licence-zone", "zone.registered",
     {"zone_id": "SL-Z-KONO", "zone_type": "licence", "geometry": SL_SQUARE,
      "licence_no": "SL-ML-1", "holder": "Kono Diggers", "date": "2010-01-01",
      "valid_from": "2010-01-01", "valid_to": None}, "payload.licence_no"),
    ("zone-said-sl", "zone.registered",
     {"zone_id": "Z-X", "zone_type": "licence", "geometry": SL_SQUARE, "country": "SL",
      "licence_no": "GH-ML-X", "holder": "Somebody", "date": "2010-01-01",
      "valid_from": "2010-01-01", "valid_to": None}, "payload.country"),
]


@pytest.mark.parametrize(("kind", "payload", "field"), [c[1:] for c in JURISDICTION_CASES],
                         ids=[c[0] for c in JURISDICTION_CASES])
def test_an_officer_acts_only_within_its_country(world: Ledger, kind: str,
                                                 payload: dict[str, Any], field: str) -> None:
    error = refused(world, kind, "off-gh", payload)
    assert error.rule == "JURISDICTION" and error.data.get("field") == field, error
    assert "GH" in str(error) and "SL" in str(error)


def test_an_officer_revokes_only_licences_of_its_country(world: Ledger, write: Write) -> None:
    error = refused(world, "licence.revoked", "off-sl",
                    {"actor_id": "buyer-a", "reason": "not ours", "date": "2012-01-01"})
    assert error.rule == "JURISDICTION"
    write("licence.revoked", "off-gh", actor_id="buyer-a", reason="fraud", date="2012-01-01")


def test_any_officer_registers_a_risk_area(world: Ledger, write: Write) -> None:
    result = write("zone.registered", "off-gh", zone_id="RISK-CI-N", zone_type="risk",
                   geometry=NORTH_CI, date="2004-01-06", valid_from="2002-09-19",
                   valid_to="2011-04-11", category="rebel_held", source="UN Panel of Experts")
    assert result.entry.kind == "zone.registered"


# -- acceptance 2: zone versions ---------------------------------------------------------------

def _codes(book: Ledger, parcel_id: str) -> set[str]:
    with book.engine.connect() as conn:
        return set(conn.execute(sa.select(flag_table.c.code).where(
            flag_table.c.subject_id == parcel_id)).scalars())


def test_an_amendment_changes_the_map_from_its_effective_day_only(
        world: Ledger, write: Write, runner: CliRunner) -> None:
    # Inside the old square but outside the new, smaller one.
    edge = {"type": "Point", "coordinates": [-0.75, 6.05]}
    for pid, day in (("OLD-2015", "2015-03-01"), ("OLD-2016", "2016-06-30"),
                     ("NEW-2016", "2016-08-01")):
        assert buy(write, pid, date=day, dig_location=edge).flags == []
    move(write, "OLD-2015", "exp-gh", date="2015-04-01")
    export(write, ["OLD-2015"], 10.0, cert="GH-2015-0001", date="2015-05-01",
           expires="2015-07-01")
    write("zone.amended", "off-gh", zone_id="Z-AKW", effective="2016-07-01", geometry=SMALL,
          reason="boundary survey", date="2016-09-01")
    later = buy(write, "NEW-2016b", date="2016-09-02", dig_location=edge)
    assert {f["code"] for f in later.flags} == {"OUTSIDE_LICENSED_ZONE"}  # at write time
    assert buy(write, "OLD-2016b", date="2016-06-15", dig_location=edge).flags == []

    size = world.log.size()
    first = runner.invoke(cli, ["rescreen"])
    assert first.exit_code == 0, first.output
    for pid in ("OLD-2015", "OLD-2016", "OLD-2016b"):
        assert _codes(world, pid) == set(), pid
    assert _codes(world, "NEW-2016") == {"OUTSIDE_LICENSED_ZONE"}
    assert world.log.size() == size + 1  # the one new flag
    again = runner.invoke(cli, ["rescreen"])
    assert again.exit_code == 0 and world.log.size() == size + 1
    # The export of 2015 still verifies clean: the replay screens it on the old boundary.
    report = verify_bundle(dumps(build_bundle(world.log, "GH-2015-0001")),
                           world.log.verifier)
    assert report.ok, report.problems
    assert any("every origin is clean" in fact for fact in report.facts), report.facts


def test_the_zone_page_lists_its_versions(world: Ledger, write: Write) -> None:
    write("zone.amended", "off-gh", zone_id="Z-AKW", effective="2016-07-01", geometry=SMALL,
          reason="boundary survey", date="2016-09-01")
    with world.engine.connect() as conn:
        from ledger.projections import zone_versions

        rows = conn.execute(sa.select(zone_versions.c.effective, zone_versions.c.seq)
                            .where(zone_versions.c.zone_id == "Z-AKW")
                            .order_by(zone_versions.c.seq)).all()
    assert [r.effective for r in rows] == [None, "2016-07-01"]


# -- acceptance 3: a licence revoked, then renewed ----------------------------------------------

def test_a_licence_revoked_in_2012_and_renewed_from_2013(world: Ledger, write: Write) -> None:
    write("licence.revoked", "off-gh", actor_id="buyer-a", reason="unpaid fees",
          date="2012-01-15")
    write("licence.renewed", "off-gh", actor_id="buyer-a", valid_from="2013-01-01",
          valid_to=None, reason="fees paid", date="2013-01-02")
    error = refused(world, "parcel.purchased", "buyer-a", {
        "parcel_id": "P-2012", "site_id": "S-AKW", "seller": "Kofi", "date": "2012-06-01",
        "carats": 1.0, "stones": 1, "price": {"amount": 10, "currency": "USD"}})
    assert error.rule == "LICENCE" and "revoked on 2012-01-15" in str(error)
    assert buy(write, "P-2013", date="2013-06-01").entry.kind == "parcel.purchased"
    assert buy(write, "P-2011", date="2011-06-01").entry.kind == "parcel.purchased"


def test_a_licence_zone_renewed_after_its_revocation_licenses_its_sites_again(
        world: Ledger, write: Write) -> None:
    write("licence.revoked", "off-gh", zone_id="Z-AKW", reason="suspended", date="2012-01-15")
    assert {f["code"] for f in buy(write, "P-2012", date="2012-06-01").flags} == {
        "OUTSIDE_LICENSED_ZONE", "LICENCE_INVALID"}
    write("licence.renewed", "off-gh", zone_id="Z-AKW", valid_from="2013-01-01", valid_to=None,
          reason="reinstated", date="2013-01-02")
    assert buy(write, "P-2013", date="2013-06-01").flags == []


# -- acceptance 4: LATE_ENTRY and archives ------------------------------------------------------

@pytest.fixture
def prompt(engine: Any, settings: Settings) -> Ledger:
    """A ledger that flags entries dated more than 30 days before they are written."""
    book = Ledger(engine, load_or_create(settings.log_key_path, settings.origin), late_days=30)
    book.initialise()
    book.write(Event("actor.registered", "admin", {
        "actor_id": "off-gh", "name": "Minerals Commission", "role": "officer",
        "country": "GH", "date": TODAY.isoformat()}))
    return book


def _backdated_actor(days: int) -> dict[str, Any]:
    return {"kind": "actor.registered", "actor": "off-gh", "payload": {
        "actor_id": "buyer-late", "name": "Late Buyer", "role": "buyer", "country": "GH",
        "licence_no": "GH-LIC-9", "licence_valid_from": (TODAY - timedelta(days=days)).isoformat(),
        "licence_valid_to": None, "date": TODAY.isoformat()}}


def test_a_licence_backdated_400_days_is_flagged_late(prompt: Ledger) -> None:
    line = _backdated_actor(400)
    result = prompt.write(Event(line["kind"], line["actor"], line["payload"]))
    [flag] = result.flags
    assert flag["code"] == "LATE_ENTRY" and flag["subject"] == {"type": "actor",
                                                                 "id": "buyer-late"}
    assert "400 days" in flag["detail"]
    fresh = _backdated_actor(10)
    fresh["payload"]["actor_id"] = "buyer-new"
    assert prompt.write(Event(fresh["kind"], fresh["actor"], fresh["payload"])).flags == []


def test_a_late_purchase_is_held(prompt: Ledger) -> None:
    prompt.write(Event("actor.registered", "off-gh", {
        **licensed("buyer-a", "buyer"), "date": TODAY.isoformat()}))
    late = prompt.write(Event("parcel.purchased", "buyer-a", {
        "parcel_id": "P-OLD", "site_id": "S-NONE", "seller": "Kofi",
        "date": (TODAY - timedelta(days=45)).isoformat(), "carats": 1.0, "stones": 1,
        "price": {"amount": 10, "currency": "USD"}}))
    assert "LATE_ENTRY" in {f["code"] for f in late.flags}
    with prompt.engine.connect() as conn:
        held = conn.execute(sa.text("SELECT open_flags FROM parcels WHERE parcel_id = 'P-OLD'"))
        assert held.scalar_one() >= 1


def test_the_same_line_through_an_archive_import_is_not_late(
        prompt: Ledger, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "register.jsonl"
    path.write_text(json.dumps(_backdated_actor(400)) + "\n", encoding="utf-8")
    runner = CliRunner(env={"ALLUVIAL_DATABASE_URL": settings.database_url,
                            "ALLUVIAL_LOG_KEY": str(settings.log_key_path)})
    size = prompt.log.size()
    result = runner.invoke(cli, ["ingest", str(path), "--archive", "paper register 2004-2016"])
    assert result.exit_code == 0, result.output
    assert "0 flags raised" in result.stdout
    archive, line = prompt.log.entry(size + 1), prompt.log.entry(size + 2)
    assert archive.kind == "archive.imported" and archive.actor == "admin"
    assert archive.payload == {"reason": "paper register 2004-2016", "lines": 1,
                               "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                               "date": TODAY.isoformat()}
    assert line.kind == "actor.registered" and prompt.log.size() == size + 2


def test_a_refused_archive_leaves_no_archive_entry(prompt: Ledger, settings: Settings,
                                                   tmp_path: Path) -> None:
    path = tmp_path / "register.jsonl"
    bad = _backdated_actor(400)
    bad["payload"]["country"] = "SL"  # JURISDICTION
    path.write_text(json.dumps(_backdated_actor(400)) + "\n" + json.dumps(bad) + "\n",
                    encoding="utf-8")
    runner = CliRunner(env={"ALLUVIAL_DATABASE_URL": settings.database_url,
                            "ALLUVIAL_LOG_KEY": str(settings.log_key_path)})
    size = prompt.log.size()
    result = runner.invoke(cli, ["ingest", str(path), "--archive", "register"])
    assert result.exit_code == 2 and "line 2: JURISDICTION" in result.stderr
    assert prompt.log.size() == size


# -- maps as of a day ---------------------------------------------------------------------------

def test_the_map_is_drawn_as_of_a_day(world: Ledger, write: Write, runner: CliRunner) -> None:
    write("zone.amended", "off-gh", zone_id="Z-AKW", effective="2016-07-01", geometry=SMALL,
          reason="boundary survey", date="2016-09-01")
    write("zone.registered", "off-gh", zone_id="RISK-CI-N", zone_type="risk",
          geometry=NORTH_CI, date="2004-01-06", valid_from="2002-09-19",
          valid_to="2011-04-11", category="rebel_held", source="UN Panel of Experts")

    def zones(*args: str) -> dict[str, Any]:
        result = runner.invoke(cli, ["export-geojson", *args])
        assert result.exit_code == 0, result.output
        return {f["properties"]["zone_id"]: f for f in json.loads(result.stdout)["features"]
                if f["properties"]["layer"] in ("licence_zone", "risk_area")}

    in_2010, in_2017 = zones("--as-of", "2010-01-01"), zones("--as-of", "2017-01-01")
    assert set(in_2010) == {"Z-AKW", "RISK-CI-N"} and set(in_2017) == {"Z-AKW"}
    assert in_2010["Z-AKW"]["geometry"] == SQUARE and in_2017["Z-AKW"]["geometry"] == SMALL
    assert zones()["RISK-CI-N"]  # without --as-of: every zone, its latest version
    bad = runner.invoke(cli, ["export-geojson", "--as-of", "2017-13-01"])
    assert bad.exit_code == 2 and "--as-of" in bad.stderr


def test_the_map_page_and_the_zone_page_know_the_versions(world: Ledger, write: Write,
                                                           auth: Any, app: Any) -> None:
    from tests.test_scope import signed_in

    write("zone.amended", "off-gh", zone_id="Z-AKW", effective="2016-07-01", geometry=SMALL,
          reason="boundary survey", date="2016-09-01")
    write("zone.registered", "off-gh", zone_id="RISK-CI-N", zone_type="risk",
          geometry=NORTH_CI, date="2004-01-06", valid_from="2002-09-19",
          valid_to="2011-04-11", category="rebel_held", source="UN Panel of Experts")
    auth.token("auditor", "aud-1")
    client = signed_in(app, "auditor.aud-1")
    then, now = client.get("/map?as_of=2010-01-01"), client.get("/map")
    assert then.status_code == now.status_code == 200
    assert "RISK-CI-N" in then.text and "RISK-CI-N" not in now.text
    assert f'value="{TODAY.isoformat()}"' in now.text
    assert client.get("/map?as_of=2010-02-30").status_code == 422
    geo = client.get("/map.geojson?as_of=2010-01-01").get_json()
    assert {f["properties"].get("zone_id") for f in geo["features"]} >= {"Z-AKW", "RISK-CI-N"}
    page = client.get("/zones/Z-AKW").text
    assert "Versions" in page and "2016-07-01" in page and "the start" in page


# -- the role authority (SPEC 1): imports into its own country ----------------------------------

def test_an_authority_confirms_only_imports_into_its_country(world: Ledger,
                                                             write: Write) -> None:
    for actor_id, country in (("kp-be", "BE"), ("kp-gh", "GH")):
        write("actor.registered", "admin", actor_id=actor_id, name=f"KP authority {country}",
              role="authority", country=country, date="2004-01-02")
    buy(write, "P1", date="2016-03-01")
    move(write, "P1", "exp-gh", date="2016-03-02")
    export(write, ["P1"], 10.0, cert="GH-2016-0002", date="2016-03-03", expires="2016-06-01")
    arrived = {"certificate_no": "GH-2016-0002", "carats_received": 10.0,
               "parcels_received": 1, "importer": "Antwerp Diamond Bank"}
    wrong = refused(world, "import.confirmed", "kp-gh", {**arrived, "date": "2016-03-10"})
    assert wrong.rule == "JURISDICTION" and "BE" in str(wrong)
    early = refused(world, "import.confirmed", "kp-be", {**arrived, "date": "2016-03-01"})
    assert early.rule == "DATE_ORDER" and "issued" in str(early)
    late = refused(world, "import.confirmed", "kp-be", {**arrived, "date": "2016-07-01"})
    assert late.rule == "DATE_ORDER" and "expired" in str(late)
    done = write("import.confirmed", "kp-be", date="2016-03-10", **arrived)
    assert done.entry.kind == "import.confirmed"


# -- a ledger an earlier version made ----------------------------------------------------------

def test_a_ledger_made_before_versions_is_rebuilt_with_them(world: Ledger, write: Write,
                                                             runner: CliRunner) -> None:
    """The projections of the previous version had no zone_versions table, no licence
    windows and no parcels.last_date: the commands that write ask for `alluvial rebuild`,
    `verify` passes on the log as it is, and `rebuild` remakes them with versions."""
    write("zone.amended", "off-gh", zone_id="Z-AKW", effective="2016-07-01", geometry=SMALL,
          reason="boundary survey", date="2016-09-01")
    before = world.digest()
    with world.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE zone_versions"))
        conn.execute(sa.text("ALTER TABLE parcels DROP COLUMN last_date"))
    refused = runner.invoke(cli, ["rescreen"])
    assert refused.exit_code == 2 and "zone_versions" in refused.stderr
    assert "parcels.last_date" in refused.stderr and "alluvial rebuild" in refused.stderr
    assert runner.invoke(cli, ["verify"]).exit_code == 0
    rebuilt = runner.invoke(cli, ["rebuild"])
    assert rebuilt.exit_code == 0 and before in rebuilt.stdout
    assert buy(write, "P-2016", date="2016-08-01",
               dig_location={"type": "Point", "coordinates": [-0.75, 6.05]}).flags[0]["code"] \
        == "OUTSIDE_LICENSED_ZONE"
