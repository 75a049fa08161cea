"""Flag ids (issue 15): the ids the ledger gives its own screening flags are in a namespace
no writer can take, so no auditor can make the next flagged purchase fail (SPEC 4:
screening never refuses a purchase)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.cli import cli
from ledger.custody import rules
from ledger.errors import LedgerError
from ledger.recorder.events import Ledger
from tests.conftest import Auth
from tests.test_custody import Write, buy, world  # noqa: F401  (world: the fixture)


def raise_as_auditor(write: Write, flag_id: str, pid: str = "P1") -> Any:
    return write("flag.raised", "aud-1", flag_id=flag_id, subject={"type": "parcel", "id": pid},
                 code="FOOTPRINT_ANOMALY", detail="price per carat far above Akwatia's",
                 date="2008-03-20")


def next_ids(ledger: Ledger) -> list[str]:
    """The ids screening would give the flags of the next two entries (before the fix: F-N,
    then F-N-<code> when F-N was taken)."""
    n = ledger.log.size() + 2  # the auditor's flag itself takes entry size + 1
    return [f"F-{n}", f"F-{n}-UNREGISTERED_SITE", f"F-{n + 1}", f"F-{n + 1}-IN_RISK_AREA"]


@pytest.mark.parametrize("which", [0, 1, 2, 3], ids=["F-N", "F-N-code", "F-N+1", "F-N+1-code"])
def test_auditor_cannot_take_the_id_screening_uses_next(
    world: Ledger, write: Write, which: int  # noqa: F811
) -> None:
    buy(write, "P1")
    flag_id = next_ids(world)[which]
    before = world.log.size(), world.digest()
    with pytest.raises(LedgerError) as caught:
        raise_as_auditor(write, flag_id)
    assert caught.value.rule == "DUPLICATE"
    assert caught.value.data["field"] == "payload.flag_id"
    assert flag_id in str(caught.value) and "namespace" in str(caught.value)
    assert (world.log.size(), world.digest()) == before
    # ... and the next flagged purchase is recorded, with its flag.
    result = buy(write, "P2", site="S-NOWHERE")
    assert result.created and [f["code"] for f in result.flags] == ["UNREGISTERED_SITE"]


@pytest.mark.parametrize("flag_id", ["FA-1", "F-A1", "KP-F-1", "f-1", "F1", "F-"])
def test_auditor_ids_outside_the_namespace_are_accepted(
    world: Ledger, write: Write, flag_id: str  # noqa: F811
) -> None:
    buy(write, "P1")
    assert raise_as_auditor(write, flag_id).created


def test_screening_allocates_around_ids_an_earlier_version_let_an_auditor_take(
    world: Ledger, write: Write  # noqa: F811
) -> None:
    """A ledger written before the namespace was reserved may hold an auditor's `F-N`."""
    buy(write, "P1")
    # Two flags appended next, then the purchase, then its flag: entry size + 4.
    m = world.log.size() + 4
    with world.session() as session:  # appended as an earlier version would have, unchecked
        for flag_id in (f"F-{m}", f"F-{m}-UNREGISTERED_SITE"):
            session._append("flag.raised", "aud-1", {
                "flag_id": flag_id, "subject": {"type": "parcel", "id": "P1"},
                "code": "FOOTPRINT_ANOMALY", "detail": "old", "date": "2008-03-20"}, None)
    result = buy(write, "P2", site="S-NOWHERE")
    assert result.entry.seq + 1 == m
    assert [f["flag_id"] for f in result.flags] == [f"F-{m}-UNREGISTERED_SITE-3"]
    assert rules.system_flag_id(7, "IN_RISK_AREA", {"F-7", "F-7-IN_RISK_AREA"}.__contains__) \
        == "F-7-IN_RISK_AREA-3"


def test_api_refuses_a_reserved_flag_id_with_409_and_purchases_still_succeed(
    ledger: Ledger, auth: Auth, client: Any
) -> None:
    headers = {role: auth.headers(role) for role in ("officer", "buyer", "auditor")}
    body = {"kind": "parcel.purchased", "payload": {
        "parcel_id": "P1", "site_id": "S-NOWHERE", "seller": "Kofi Boateng",
        "date": "2008-03-14", "carats": 10.0, "stones": 5,
        "price": {"amount": 420.5, "currency": "USD"}}}
    first = client.post("/api/v1/events", json=body, headers=headers["buyer"])
    assert first.status_code == 201, first.get_data(as_text=True)
    n = ledger.log.size() + 2
    for flag_id in (f"F-{n}", f"F-{n}-UNREGISTERED_SITE"):
        refused = client.post("/api/v1/events", headers=headers["auditor"], json={
            "kind": "flag.raised", "payload": {
                "flag_id": flag_id, "subject": {"type": "parcel", "id": "P1"},
                "code": "FOOTPRINT_ANOMALY", "detail": "too cheap", "date": "2008-03-20"}})
        assert refused.status_code == 409, refused.get_data(as_text=True)
        assert refused.get_json(force=True)["type"] == "DUPLICATE"
    body["payload"] = {**body["payload"], "parcel_id": "P2"}
    second = client.post("/api/v1/events", json=body, headers=headers["buyer"])
    assert second.status_code == 201, second.get_data(as_text=True)
    assert [f["code"] for f in second.get_json()["flags"]] == ["UNREGISTERED_SITE"]


def test_ingest_refuses_a_reserved_flag_id_naming_the_line(
    world: Ledger, write: Write, tmp_path: Path, runner: CliRunner  # noqa: F811
) -> None:
    buy(write, "P1")
    line = json.dumps({"kind": "flag.raised", "actor": "aud-1", "payload": {
        "flag_id": f"F-{world.log.size() + 3}", "subject": {"type": "parcel", "id": "P1"},
        "code": "FOOTPRINT_ANOMALY", "detail": "too cheap", "date": "2008-03-20"}})
    path = tmp_path / "flags.jsonl"
    path.write_text(json.dumps({"kind": "parcel.purchased", "actor": "buyer-a", "payload": {
        "parcel_id": "P2", "site_id": "S-AKW", "seller": "Ama", "date": "2008-03-14",
        "carats": 1.0, "stones": 1, "price": {"amount": 1, "currency": "USD"}}}) + "\n"
        + line + "\n", encoding="utf-8")
    before = world.log.size()
    result = runner.invoke(cli, ["ingest", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("line 2: DUPLICATE: payload.flag_id: the flag id 'F-"), \
        result.stderr
    assert world.log.size() == before


def test_rescreen_flags_land_in_the_namespace(world: Ledger, write: Write) -> None:  # noqa: F811
    """rescreen allocates like write-time screening, F-<seq of the flag entry>, and no
    auditor can take those ids first (before: rescreen then failed, UNIQUE flags.flag_id)."""
    from ledger.recorder.rescreen import rescreen

    buy(write, "P1", dig_location={"type": "Point", "coordinates": [-6.1, 9.1]})
    raise_as_auditor(write, "FA-9")
    write("zone.registered", "off-gh", zone_id="Z-RISK", zone_type="risk",
          geometry={"type": "Polygon", "coordinates": [[[-7, 8], [-5, 8], [-5, 10], [-7, 10],
                                                        [-7, 8]]]},
          date="2009-01-01", valid_from="2002-01-01", valid_to=None, category="rebel_held",
          source="UN")
    size = world.log.size()
    for flag_id in (f"F-{size + 1}", f"F-{size + 1}-IN_RISK_AREA"):  # what rescreen takes next
        with pytest.raises(LedgerError) as caught:
            raise_as_auditor(write, flag_id)
        assert caught.value.rule == "DUPLICATE"
    assert rescreen(world).new_flags >= 1
    raised = [world.log.entry(s) for s in range(size + 1, world.log.size() + 1)]
    assert [e.payload["flag_id"] for e in raised] == [f"F-{e.seq}" for e in raised]
    assert all(e.actor == "system" for e in raised)
