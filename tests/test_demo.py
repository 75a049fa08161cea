"""The demo scenario (issues 6, 17, 18): the ring is caught, by its dig points and by its
footprint; clean exports trace to licensed sites."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ledger.cli import cli
from ledger.custody.trace import trace
from ledger.db import make_engine
from ledger.demo import SCENARIO
from ledger.log.store import entries
from ledger.projections import exports, flags, sites
from tests.conftest import copy_demo


@pytest.fixture(scope="module")
def demo_dir(built_demo: tuple[Path, str],
             tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return copy_demo(built_demo, tmp_path_factory, "demo"), built_demo[1]


def test_demo_prints_a_token_per_role_and_refuses_every_laundering_attempt(
    demo_dir: tuple[Path, str]
) -> None:
    folder, out = demo_dir
    attempts = _scenario("laundering_exports.jsonl")
    moves = sum(e["kind"] == "parcel.transferred" for e in attempts)
    assert f"{len(attempts)} of {len(attempts)} attempts to move its stones to an export " \
           "refused" in out
    # dated 2006-2010: no LICENCE or DATE_ORDER first
    assert f"({moves} HOLD, {len(attempts) - moves} HOLDER)" in out
    assert "dated more than 30 days back is flagged LATE_ENTRY" in out
    assert "open flags F-" in out and "IN_RISK_AREA" in out
    for role in ("officer", "buyer", "exporter", "auditor", "admin", "authority", "authority_sl",
                 "authority_be"):
        assert f"export {role.upper()}_TOKEN=alv_" in (folder / "demo-tokens.env").read_text()
    assert (folder / "alluvial.db").exists()


def test_demo_token_table_columns_line_up(demo_dir: tuple[Path, str]) -> None:
    """The users' lines (names of 5 to 12 characters: authority_sl) start their password,
    actor and token columns at the same places."""
    _, out = demo_dir
    rows = out.split("API tokens are shown only now):\n")[1].split("\nThe tokens are")[0]
    rows = rows.splitlines()
    assert [r.split()[0] for r in rows] == [
        "officer", "buyer", "exporter", "auditor", "authority", "authority_sl", "authority_be",
        "admin"]
    for word in ("password demo-", "actor ", "token alv_"):
        assert len({r.index(word) for r in rows}) == 1, (word, rows)


def test_demo_refuses_to_overwrite_without_reset(demo_dir: tuple[Path, str]) -> None:
    folder, _ = demo_dir
    old = Path.cwd()
    os.chdir(folder)
    try:
        again = CliRunner(env={"ALLUVIAL_DATABASE_URL": "", "ALLUVIAL_LOG_KEY": ""}).invoke(
            cli, ["demo", "--no-serve"])
    finally:
        os.chdir(old)
    assert again.exit_code == 2 and "--reset" in again.stderr


def _scenario(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SCENARIO / name).read_text("utf-8").splitlines()]


def test_ring_purchases_are_flagged_and_held(demo_dir: tuple[Path, str]) -> None:
    """Issue 17: the ring's purchases dug in the north are caught by their dig point and by
    their footprint; those that leave the dig point out, by their footprint alone."""
    ring = {e["payload"]["parcel_id"]: e["payload"] for e in _scenario("events.jsonl")
            if e["kind"] == "parcel.purchased" and e["actor"] == "buyer-gh-oda"
            and (e["payload"].get("dig_location") or {"coordinates": [-9]})["coordinates"][0] < -3}
    unplaced = {pid for pid, p in ring.items() if "dig_location" not in p}
    assert len(ring) >= 60 and len(unplaced) >= 30
    folder, _ = demo_dir
    engine = make_engine(f"sqlite:///{folder / 'alluvial.db'}")
    with engine.connect() as conn:
        held = {r.parcel_id: r for r in conn.execute(sa.text(
            "SELECT p.parcel_id, p.holder, p.status, p.open_flags FROM parcels p "
            "WHERE p.open_flags > 0 AND p.site_id IS NOT NULL"))}
        codes: dict[str, set[str]] = {}
        for subject, code in conn.execute(sa.select(flags.c.subject_id, flags.c.code)):
            codes.setdefault(subject, set()).add(code)
    engine.dispose()
    assert set(held) == set(ring)  # no honest purchase is held
    assert all(r.holder == "buyer-gh-oda" and r.status == "active" for r in held.values())
    for pid in ring:
        expected = {"FOOTPRINT_ANOMALY"} if pid in unplaced else {
            "IN_RISK_AREA", "OUTSIDE_LICENSED_ZONE", "FOOTPRINT_ANOMALY"}
        assert codes[pid] == expected, pid


def test_every_clean_export_traces_back_to_licensed_gh_or_sl_sites(
    demo_dir: tuple[Path, str]
) -> None:
    folder, _ = demo_dir
    engine = make_engine(f"sqlite:///{folder / 'alluvial.db'}")
    with engine.connect() as conn:
        certs = [r[0] for r in conn.execute(sa.select(exports.c.certificate_no))]
        site_country = dict(conn.execute(sa.select(sites.c.site_id, sites.c.country)).all())
        # A confirmation that differs (issue 18) flags what arrived, not the custody path.
        flagged = {r[0] for r in conn.execute(sa.select(flags.c.subject_id).where(
            flags.c.code != "CONFIRMATION_MISMATCH"))}
        assert len(certs) == sum(e["kind"] == "export.declared"
                                 for e in _scenario("events.jsonl"))
        for cert in certs:
            graph = trace(conn, cert, "backward")
            origins = graph.sites()
            assert origins, cert
            assert {site_country[s] for s in origins} <= {"GH", "SL"}
            assert not flagged & {i for _, i in graph.nodes}, cert
            licensed = {e.target[1] for e in graph.edges if e.kind == "site.registered"}
            assert licensed == set(origins)  # each site relies on a licence zone
    engine.dispose()


def test_certificates_lists_exactly_the_demo_s_unconfirmed_ones(
    demo_dir: tuple[Path, str]
) -> None:
    """Issue 18 acceptance 2: `certificates --unconfirmed --older-than 30 --json` on the demo
    lists exactly the exports of the archive that no import.confirmed line confirms (all
    of them issued 2004-2016), and the one confirmation that differs shows as mismatched."""
    folder, _ = demo_dir
    lines = [json.loads(line) for line in
             (SCENARIO / "events.jsonl").read_text("utf-8").splitlines()]
    declared = {e["payload"]["certificate_no"] for e in lines if e["kind"] == "export.declared"}
    confirmed = {e["payload"]["certificate_no"] for e in lines if e["kind"] == "import.confirmed"}
    validated = {e["payload"]["certificate_no"] for e in lines
                 if e["kind"] == "certificate.validated"}
    env = {"ALLUVIAL_DATABASE_URL": f"sqlite:///{folder / 'alluvial.db'}",
           "ALLUVIAL_LOG_KEY": str(folder / "alluvial-log.key")}
    runner = CliRunner(env=env)
    overdue = runner.invoke(cli, ["certificates", "--unconfirmed", "--older-than", "30", "--json"])
    assert overdue.exit_code == 0, overdue.output
    listed = json.loads(overdue.stdout)
    assert {c["certificate_no"] for c in listed} == declared - confirmed
    assert {c["state"] for c in listed} == {"declared", "validated"}
    assert {c["certificate_no"] for c in listed if c["state"] == "validated"} == \
        (declared - confirmed) & validated
    every = json.loads(runner.invoke(cli, ["certificates", "--json"]).stdout)
    assert len(every) == len(declared)
    assert [c["state"] for c in every].count("mismatched") == 1


def test_a_fresh_demo_loads_its_history_as_an_archive_without_late_entries(
    demo_dir: tuple[Path, str]
) -> None:
    """SPEC 6 `ingest --archive`: the entry after init is archive.imported naming
    events.jsonl's SHA-256 and line count; the 2004-2016 lines raise no LATE_ENTRY."""
    folder, out = demo_dir
    data = (SCENARIO / "events.jsonl").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    engine = make_engine(f"sqlite:///{folder / 'alluvial.db'}")
    with engine.connect() as conn:
        second = conn.execute(sa.select(entries.c.kind, entries.c.payload)
                              .where(entries.c.seq == 2)).one()
        codes = {r[0] for r in conn.execute(sa.select(flags.c.code))}
    engine.dispose()
    payload = json.loads(second.payload)
    assert second.kind == "archive.imported"
    assert (payload["file_sha256"], payload["lines"]) == (sha, data.count(b"\n"))
    # the ring's, and the 2015 shipment that arrived short (issue 18); no LATE_ENTRY
    assert codes == {"OUTSIDE_LICENSED_ZONE", "IN_RISK_AREA", "FOOTPRINT_ANOMALY",
                     "CONFIRMATION_MISMATCH"}
    assert f"imported as an archive (entry 2, archive.imported, SHA-256 {sha[:16]}" in out


def _api(folder: Path, tmp_path: Path) -> tuple[object, dict[str, str]]:
    """A test client of the web app on a copy of the demo ledger, with its role tokens."""
    for name in ("alluvial.db", "alluvial.db-wal", "alluvial.db-shm", "alluvial-log.key",
                 "demo-tokens.env"):
        if (folder / name).exists():
            shutil.copy2(folder / name, tmp_path / name)
    from webui import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'alluvial.db'}",
                      "LOG_KEY": str(tmp_path / "alluvial-log.key"), "LATE_DAYS": 30})
    tokens = dict(line.removeprefix("export ").split("=", 1) for line in
                  (tmp_path / "demo-tokens.env").read_text().splitlines())
    return app, tokens


def test_after_the_demo_a_backdated_registration_is_late_and_today_s_trade_is_clean(
    demo_dir: tuple[Path, str], tmp_path: Path
) -> None:
    """Through the API, after the archive: an actor whose licence starts 400 days back is
    flagged LATE_ENTRY (SPEC 5); the demo buyer, its licence renewed in the scenario, buys
    today at an Akwatia pit with no flag and passes the parcel to the exporter, who exports."""
    folder, _ = demo_dir
    app, tokens = _api(folder, tmp_path)
    today = datetime.now(UTC).date()

    def day(offset: int = 0) -> str:
        return (today + timedelta(days=offset)).isoformat()

    def post(role: str, kind: str, payload: dict[str, object]) -> dict[str, object]:
        answer = client.post("/api/v1/events", json={"kind": kind, "payload": payload},
                             headers={"Authorization": f"Bearer {tokens[role.upper() + '_TOKEN']}"})
        assert answer.status_code == 201, answer.get_json()
        return answer.get_json()

    with app.test_client() as client:
        late = post("officer", "actor.registered", {
            "actor_id": "buyer-gh-late", "name": "Backdated Buyers", "role": "buyer",
            "country": "GH", "licence_no": "GH-LBL-LATE-1", "licence_valid_from": day(-400),
            "licence_valid_to": day(400), "date": day()})
        assert [(f["code"], f["subject"]) for f in late["flags"]] == [
            ("LATE_ENTRY", {"type": "actor", "id": "buyer-gh-late"})]
        bought = post("buyer", "parcel.purchased", {
            "parcel_id": "GH-P-TODAY-1", "site_id": "GH-S-AKW-01", "seller": "Yaw Owusu",
            "date": day(), "carats": 4.5, "stones": 30,
            "price": {"amount": 180.0, "currency": "USD"}})
        assert bought["flags"] == []
        post("buyer", "parcel.transferred", {
            "parcel_id": "GH-P-TODAY-1", "to_actor": "exporter-gh-accra", "date": day(),
            "price": {"amount": 190.0, "currency": "USD"}})
        exported = post("exporter", "export.declared", {
            "certificate_no": f"GH-{today.year}-990001", "exporter": "exporter-gh-accra",
            "importer": "Antwerp Rough Trading NV", "destination": "BE", "hs_code": "7102.21",
            "parcel_ids": ["GH-P-TODAY-1"], "carats": 4.5, "value_usd": 200.0, "date": day(),
            "expires": day(60)})
        assert exported["flags"] == []
