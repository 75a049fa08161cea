"""KP statistics (issue 17, SPEC 6 `stats`): periods, keys and kinds, exact figures, the
same from the CLI and the API (JSON and CSV), the public/signed-in split, every refusal.

Acceptance 3 recomputes the figures from the log's entries (their payloads, read with plain
SQL and ``json`` into Decimals), never from the projections or ``ledger.stats``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import statistics
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ledger.cli import cli
from ledger.custody.schema import load_schema
from ledger.db import make_engine
from ledger.recorder.events import Event, Ledger
from ledger.stats import Query, QueryError
from tests.conftest import Auth, copy_demo, register_akwatia

API = "/api/v1/stats"
CENT = Decimal("0.01")
PRODUCTION = ["period", "country", "zone", "purchases", "carats", "stones", "value_usd",
              "usd_per_ct", "flagged_carats"]
TRADE = ["period", "country", "flow", "hs_code", "partner", "certificates", "carats",
         "value_usd", "usd_per_ct"]
DEMO_ENV = {"ALLUVIAL_DATABASE_URL": "", "ALLUVIAL_LOG_KEY": ""}


# -- the demo, module-scoped -------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(built_demo: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo ledger, plus an auditor's confirmation of the 2008-Q3 exports it left
    unconfirmed (so that imports are counted whatever the scenario confirms itself)."""
    folder = copy_demo(built_demo, tmp_path_factory, "stats-demo")
    old = Path.cwd()
    os.chdir(folder)
    try:
        engine = make_engine(f"sqlite:///{folder / 'alluvial.db'}")
        with engine.connect() as conn:
            certs = conn.execute(sa.text(
                "SELECT certificate_no, importer, points, date, expires FROM exports "
                "WHERE confirmed_seq IS NULL AND date BETWEEN '2008-07-01' AND '2008-09-20' "
                "ORDER BY certificate_no LIMIT 3")).all()
            n_parcels = {c.certificate_no: conn.execute(sa.text(
                "SELECT count(*) FROM custody_edges WHERE kind = 'export.declared' "
                "AND to_id = :c"), {"c": c.certificate_no}).scalar_one() for c in certs}
        engine.dispose()
        assert certs, "the demo has exports in 2008-Q3"
        lines = [json.dumps({"kind": "import.confirmed", "actor": "auditor-kp", "payload": {
            "certificate_no": c.certificate_no, "date": min(c.expires, "2008-09-30"),
            **received(c.points, n_parcels[c.certificate_no], c.importer)}}) for c in certs]
        (folder / "imports.jsonl").write_text("\n".join(lines) + "\n")
        wrote = CliRunner(env=DEMO_ENV).invoke(cli, ["ingest", "imports.jsonl"])
        assert wrote.exit_code == 0, wrote.output
    finally:
        os.chdir(old)
    return folder


def received(points: int, parcels: int, importer: str) -> dict[str, Any]:
    """What an import confirmation states beyond its certificate and date, as far as the
    schema of import.confirmed asks for it (issue 18 adds the figures received)."""
    fields = {"carats_received": points / 100, "parcels_received": parcels,
              "importer": importer}
    known = load_schema("import.confirmed")["properties"]
    return {k: v for k, v in fields.items() if k in known}


def run(folder: Path, *args: str) -> Any:
    old = Path.cwd()
    os.chdir(folder)
    try:
        return CliRunner(env=DEMO_ENV).invoke(cli, ["stats", *args])
    finally:
        os.chdir(old)


def logged(folder: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, actor, payload) of every entry, payload numbers as Decimals."""
    engine = make_engine(f"sqlite:///{folder / 'alluvial.db'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, actor, payload FROM entries ORDER BY seq"))
        found = [(k, a, json.loads(p, parse_float=Decimal)) for k, a, p in rows]
    engine.dispose()
    return found


def figure(x: Decimal | int | None) -> str:
    return "" if x is None else f"{Decimal(x).quantize(CENT)}"


def per_ct(value: Decimal, carats: Decimal) -> str:
    return "" if carats == 0 else str((value / carats).quantize(CENT, ROUND_HALF_UP))


def production_by_zone(log: list[tuple[str, str, dict[str, Any]]], first: str, last: str,
                       label: str) -> dict[tuple[str, ...], list[str]]:
    """SPEC 6 production by zone, recomputed from the payloads."""
    zones = {p["licence_no"]: p["zone_id"] for k, _, p in log
             if k == "zone.registered" and p["zone_type"] == "licence"}
    sites = {p["site_id"]: p for k, _, p in log if k == "site.registered"}
    raised = {p["flag_id"]: p["subject"]["id"] for k, _, p in log
              if k == "flag.raised" and p["subject"]["type"] == "parcel"}
    for k, _, p in log:
        if k == "flag.resolved":
            raised.pop(p["flag_id"], None)
    flagged = set(raised.values())
    sums: dict[tuple[str, ...], list[Any]] = defaultdict(
        lambda: [0, Decimal(0), 0, Decimal(0), Decimal(0), Decimal(0)])
    for k, _, p in log:
        if k != "parcel.purchased" or not first <= p["date"] <= last:
            continue
        site = sites.get(p["site_id"])
        key = (label, site["country"] if site else "",
               zones.get(site["licence_no"], "") if site else "")
        s = sums[key]
        s[0] += 1
        s[1] += p["carats"]
        s[2] += p["stones"]
        if p["price"]["currency"] == "USD":
            s[3] += p["price"]["amount"]
            s[4] += p["carats"]
        if p["parcel_id"] in flagged:
            s[5] += p["carats"]
    return {key: [str(n), figure(ct), str(st), figure(v) if usd_ct else "", per_ct(v, usd_ct),
                  figure(fl)] for key, (n, ct, st, v, usd_ct, fl) in sums.items()}


def trade_by_partner(log: list[tuple[str, str, dict[str, Any]]], first: str, last: str,
                     label: str) -> dict[tuple[str, ...], list[str]]:
    country = {p["actor_id"]: p["country"] for k, _, p in log if k == "actor.registered"}
    certs = {p["certificate_no"]: p for k, _, p in log if k == "export.declared"}
    sums: dict[tuple[str, ...], list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for k, _, p in log:
        if k == "export.declared" and first <= p["date"] <= last:
            key = (label, country[p["exporter"]], "export", "", p["destination"])
        elif k == "import.confirmed" and first <= p["date"] <= last:
            cert = certs[p["certificate_no"]]
            key = (label, cert["destination"], "import", "", country[cert["exporter"]])
            p = cert
        else:
            continue
        s = sums[key]
        s[0] += 1
        s[1] += p["carats"]
        s[2] += p["value_usd"]
    return {key: [str(n), figure(ct), figure(v), per_ct(v, ct)]
            for key, (n, ct, v) in sums.items()}


def keyed(text: str, width: int) -> dict[tuple[str, ...], list[str]]:
    rows = list(csv.reader(io.StringIO(text)))
    return {tuple(r[:width]): r[width:] for r in rows[1:]}


def test_acceptance_3_production_by_zone_2008_h1_matches_the_entries(demo: Path) -> None:
    out = run(demo, "--period", "2008-H1", "--by", "zone", "--csv")
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[0] == ",".join(PRODUCTION)
    assert out.stdout_bytes.endswith(b"\r\n")  # RFC 4180 line ends
    expected = production_by_zone(logged(demo), "2008-01-01", "2008-06-30", "2008-H1")
    assert len(expected) >= 3  # zones of both countries, one flagged (the ring)
    assert any(v[-1] != "0.00" for v in expected.values())
    assert keyed(out.stdout, 3) == expected


def test_acceptance_3_trade_by_partner_2008_q3_matches_the_entries(demo: Path) -> None:
    out = run(demo, "--period", "2008-Q3", "--by", "partner", "--kind", "trade", "--csv")
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[0] == ",".join(TRADE)
    expected = trade_by_partner(logged(demo), "2008-07-01", "2008-09-30", "2008-Q3")
    assert {k[2] for k in expected} == {"export", "import"}
    assert keyed(out.stdout, 5) == expected


def test_a_range_of_quarters_and_the_default_of_every_year(demo: Path) -> None:
    log = logged(demo)
    ranged = keyed(run(demo, "--period", "2008-Q1..2008-Q2", "--by", "zone", "--csv").stdout, 3)
    expected = {**production_by_zone(log, "2008-01-01", "2008-03-31", "2008-Q1"),
                **production_by_zone(log, "2008-04-01", "2008-06-30", "2008-Q2")}
    assert ranged == expected
    years = list(csv.reader(io.StringIO(run(demo, "--csv").stdout)))
    assert years[0] == [c for c in PRODUCTION if c != "zone"]
    assert sorted({r[0] for r in years[1:]}) == [str(y) for y in range(2004, 2017)]
    total = sum(Decimal(r[3]) for r in years[1:])
    assert total == sum(p["carats"] for k, _, p in log if k == "parcel.purchased")


def test_the_readable_table_lines_up_the_same_figures(demo: Path) -> None:
    out = run(demo, "--period", "2008-H1", "--by", "zone")
    assert out.exit_code == 0
    head, *lines = out.stdout.splitlines()
    assert head.split() == PRODUCTION
    as_csv = keyed(run(demo, "--period", "2008-H1", "--by", "zone", "--csv").stdout, 3)
    assert {tuple(line.split()[:3]): line.split()[3:] for line in lines} == as_csv


def _api(folder: Path, tmp_path: Path) -> tuple[Any, dict[str, str]]:
    for name in ("alluvial.db", "alluvial-log.key", "demo-tokens.env"):
        shutil.copy2(folder / name, tmp_path / name)
    from webui import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'alluvial.db'}",
                      "LOG_KEY": str(tmp_path / "alluvial-log.key"), "LATE_DAYS": 30})
    tokens = dict(line.removeprefix("export ").split("=", 1) for line in
                  (tmp_path / "demo-tokens.env").read_text().splitlines())
    return app, {k.removesuffix("_TOKEN").lower(): v for k, v in tokens.items()}


@pytest.mark.parametrize("args", [
    ("2008-H1", "zone", "production"), ("2008-Q3", "partner", "trade"),
    ("2007..2009", "hs", "trade"), ("2008-Q1..2008-Q4", "site", "production"),
], ids=["zone", "partner", "hs", "site"])
def test_the_api_gives_the_cli_figures_in_json_and_csv(demo: Path, tmp_path: Path,
                                                        args: tuple[str, str, str]) -> None:
    period, by, kind = args
    cli_csv = run(demo, "--period", period, "--by", by, "--kind", kind,
                  "--csv").stdout_bytes.decode()
    app, tokens = _api(demo, tmp_path)
    auditor = {"Authorization": f"Bearer {tokens['auditor']}"}
    url = f"{API}?period={period}&by={by}&kind={kind}"
    with app.test_client() as client:
        as_csv = client.get(url, headers={**auditor, "Accept": "text/csv"})
        formatted = client.get(url + "&format=csv", headers=auditor)
        as_json = client.get(url, headers=auditor)
    assert as_csv.status_code == 200 and as_csv.mimetype == "text/csv"
    assert as_csv.text == formatted.text == cli_csv
    body = as_json.get_json()
    assert as_json.mimetype == "application/json"
    assert (body["kind"], body["by"], body["period"]) == (kind, by, period)
    rows = list(csv.DictReader(io.StringIO(cli_csv)))
    assert rows and body["columns"] == list(rows[0])
    for got, want in zip(body["rows"], rows, strict=True):
        for name in body["columns"]:
            value = got[name]
            if isinstance(value, float):
                assert Decimal(str(value)) == Decimal(want[name]), (name, got, want)
            else:
                assert ("" if value is None else str(value)) == want[name], (name, got, want)


def test_anonymous_and_signed_in_callers_see_what_spec_6_allows(demo: Path,
                                                                 tmp_path: Path) -> None:
    app, tokens = _api(demo, tmp_path)

    def get(query: str, role: str | None = None) -> Any:
        headers = {} if role is None else {"Authorization": f"Bearer {tokens[role]}"}
        return client.get(f"{API}?{query}", headers=headers)

    with app.test_client() as client:
        for role in (None, "buyer", "exporter", "admin", "officer", "auditor"):
            public = get("by=country&period=2008", role)
            assert public.status_code == 200, (role, public.text)
            assert public.get_json()["rows"] == get("period=2008").get_json()["rows"]
            assert get("by=country&kind=trade&period=2008-Q3", role).status_code == 200
        for query in ("by=zone", "by=site", "by=buyer", "by=hs&kind=trade",
                      "by=partner&kind=trade"):
            for role in (None, "buyer", "exporter", "admin"):
                refused = get(query, role)
                assert refused.status_code == 403, (query, role)
                assert refused.get_json()["type"] == "ROLE"
                assert refused.get_json()["field"] == "by"
            for role in ("officer", "auditor"):
                assert get(query, role).status_code == 200, (query, role)
        unknown = client.get(f"{API}?by=zone", headers={"Authorization": "Bearer alv_nobody"})
        assert unknown.status_code == 401
    page = app.test_client()  # the public page still answers (country level)
    assert page.get("/api/v1/stats").status_code == 200


# -- refusals: every one, in the core, the CLI (exit 2 naming the option) and the API ------

REFUSALS = [
    ("period", {"period": "2008-Q5"}),
    ("period", {"period": "2008-H3"}),
    ("period", {"period": "08"}),
    ("period", {"period": "2008-q1"}),
    ("period", {"period": "2008-01"}),
    ("period", {"period": "2009..2008"}),
    ("period", {"period": "2008-Q3..2008-Q1"}),
    ("period", {"period": "2008..2009-H1"}),
    ("period", {"period": "2008.."}),
    ("period", {"period": "0999"}),
    ("by", {"by": "region"}),
    ("by", {"by": "hs"}),
    ("by", {"by": "partner"}),
    ("by", {"by": "zone", "kind": "trade"}),
    ("by", {"by": "site", "kind": "trade"}),
    ("by", {"by": "buyer", "kind": "trade"}),
    ("kind", {"kind": "imports"}),
    ("kind", {"kind": "Production"}),
]
REFUSAL_IDS = [f"{f}-{'-'.join(a.values())}" for f, a in REFUSALS]


@pytest.mark.parametrize(("field", "args"), REFUSALS, ids=REFUSAL_IDS)
def test_a_bad_query_is_refused_naming_its_option(demo: Path, field: str,
                                                  args: dict[str, str]) -> None:
    with pytest.raises(QueryError) as refused:
        Query.parse(**args)
    assert refused.value.data["field"] == field and refused.value.rule == "BAD_QUERY"
    cli_args = [x for name, value in args.items() for x in (f"--{name}", value)]
    out = run(demo, *cli_args, "--csv")
    assert out.exit_code == 2 and out.stdout == ""
    assert f"Invalid value for '--{field}'" in out.stderr
    assert repr(args[field]) in out.stderr


@pytest.mark.parametrize(("field", "args"), [
    *REFUSALS, ("format", {"format": "xlsx"}), ("period", {"period": "2008-Q1\x00"}),
], ids=[*REFUSAL_IDS, "format-xlsx", "period-nul"])
def test_the_api_answers_a_bad_query_400_naming_the_parameter(
        demo: Path, tmp_path: Path, field: str, args: dict[str, str]) -> None:
    app, tokens = _api(demo, tmp_path)
    with app.test_client() as client:
        answer = client.get(API, query_string=args,
                            headers={"Authorization": f"Bearer {tokens['auditor']}"})
    assert answer.status_code == 400, answer.text
    problem = answer.get_json(force=True)
    assert answer.mimetype == "application/problem+json"
    assert (problem["type"], problem["field"]) == ("BAD_QUERY", field)


# -- a small world on both databases: currencies, imports, flags ------------------------



@pytest.fixture
def world(ledger: Ledger, auth: Auth) -> Ledger:
    """Two USD purchases and one in cedis at S-AKW (Z-AKW), one at an unknown site (flagged
    UNREGISTERED_SITE); P1 exported to BE in 2008-Q2, its import confirmed in 2008-Q3."""
    for role in ("officer", "buyer", "exporter", "auditor", "authority"):
        auth.token(role, {"authority": "pmmc"}.get(role))

    def write(kind: str, actor: str, **payload: Any) -> None:
        ledger.write(Event(kind, actor, payload))

    register_akwatia(write)
    for pid, site, ct, amount, currency, day in (
            ("P1", "S-AKW", 10.01, 400.33, "USD", "2008-03-14"),
            ("P2", "S-AKW", 2.5, 100.01, "USD", "2008-06-30"),
            ("P3", "S-AKW", 7.0, 3000, "GHS", "2008-05-02"),
            ("P4", "S-NOWHERE", 1.25, 50, "USD", "2008-07-01")):
        write("parcel.purchased", "buyer-a", parcel_id=pid, site_id=site, seller="Kofi Boateng",
              date=day, carats=ct, stones=3, price={"amount": amount, "currency": currency})
    for i in range(40):  # 2007: 30..69 USD/ct, then one at 400 USD/ct an auditor flags
        write("parcel.purchased", "buyer-a", parcel_id=f"H{i}", site_id="S-AKW",
              seller="Kofi Boateng", date=f"2007-{i % 10 + 1:02d}-{i // 10 + 1:02d}",
              carats=2.0, stones=3, price={"amount": 2 * (30 + i), "currency": "USD"})
    write("parcel.purchased", "buyer-a", parcel_id="ODD", site_id="S-AKW", seller="Kofi Boateng",
          date="2007-12-10", carats=5.0, stones=1, price={"amount": 2000, "currency": "USD"})
    write("flag.raised", "aud-1", flag_id="F-ODD", subject={"type": "parcel", "id": "ODD"},
          code="FOOTPRINT_ANOMALY", detail="400 USD/ct at an Akwatia pit", date="2007-12-11")
    write("parcel.transferred", "buyer-a", parcel_id="P1", to_actor="exp-gh", date="2008-04-01",
          price={"amount": 500, "currency": "USD"})
    write("export.declared", "exp-gh", certificate_no="GH-2008-0001", exporter="exp-gh",
          importer="Antwerp Diamond Bank", destination="BE", hs_code="7102.31",
          parcel_ids=["P1"], carats=10.01, value_usd=1234.5, date="2008-05-01",
          expires="2008-12-01")
    write("import.confirmed", "aud-1", certificate_no="GH-2008-0001", date="2008-07-15",
          **received(1001, 1, "Antwerp Diamond Bank"))
    return ledger


def test_currencies_flags_exports_and_imports_on_both_databases(
        world: Ledger, client: Any, auth: Auth) -> None:
    def get(query: str, role: str | None = "auditor", actor: str | None = None) -> Any:
        answer = client.get(f"{API}?{query}", headers=auth.headers(role, actor))
        assert answer.status_code == 200, answer.text
        return answer.get_json()["rows"]

    zone = get("period=2008-H1&by=zone")
    # P1 and P2 in USD: 500.34 USD for 12.51 ct; P3 in cedis adds 7 ct and no value.
    assert zone == [{"period": "2008-H1", "country": "GH", "zone": "Z-AKW", "purchases": 3,
                     "carats": 19.51, "stones": 9, "value_usd": 500.34, "usd_per_ct": 40.0,
                     "flagged_carats": 0.0}]
    # The unknown site's purchase has no country and no zone, and carries its open flag.
    assert get("period=2008-H2&by=zone") == [
        {"period": "2008-H2", "country": None, "zone": None, "purchases": 1, "carats": 1.25,
         "stones": 3, "value_usd": 50.0, "usd_per_ct": 40.0, "flagged_carats": 1.25}]
    only_cedis = get("period=2008-Q2&by=site")
    assert [(r["site"], r["carats"], r["value_usd"], r["usd_per_ct"]) for r in only_cedis] == [
        ("S-AKW", 9.5, 100.01, 40.0)]
    assert [r["buyer"] for r in get("period=2008&by=buyer")] == ["buyer-a", "buyer-a"]
    trade = get("period=2008-Q2..2008-Q3&by=partner&kind=trade")
    assert trade == [
        {"period": "2008-Q2", "country": "GH", "flow": "export", "hs_code": None,
         "partner": "BE", "certificates": 1, "carats": 10.01, "value_usd": 1234.5,
         "usd_per_ct": 123.33},
        {"period": "2008-Q3", "country": "BE", "flow": "import", "hs_code": None,
         "partner": "GH", "certificates": 1, "carats": 10.01, "value_usd": 1234.5,
         "usd_per_ct": 123.33}]
    assert [r["hs_code"] for r in get("period=2008&by=hs&kind=trade")] == ["7102.31"] * 2
    assert get("period=2008-Q2&by=zone", "authority", "pmmc")  # an authority sees zones
    for role in (None, "buyer", "exporter"):
        refused = client.get(f"{API}?by=zone", headers=auth.headers(role))
        assert refused.status_code == 403 and refused.get_json()["type"] == "ROLE"
    anonymous = get("period=2008", None)  # country level
    assert [(r["country"], r["carats"]) for r in anonymous] == [(None, 1.25), ("GH", 19.51)]


def test_the_statistics_page_draws_the_footprint_band_and_marks_anomalous_months(
        world: Ledger, app: Any, auth: Auth) -> None:
    from ledger.signin import open_session
    from webui import login

    def signed_in(role: str, actor: str | None = None) -> Any:
        auth.token(role, actor)
        client = app.test_client()
        with client.session_transaction() as session:
            session[login.SESSION_ID] = open_session(world.engine,
                                                     f"{role}.{actor or Auth.ACTORS[role]}")
        return client

    auditor = signed_in("auditor")
    page = auditor.get("/stats?period=2007..2008&by=zone&zone=Z-AKW&country=GH").text
    assert page.count('<svg class="chart"') == 2 and page.count('class="band"') == 1
    marked = re.findall(r'<circle class="month anomalous"[^>]*><title>([^<]*)</title>', page)
    assert marked == ["2007-12: 400.00 USD/ct over 1 purchases, 1 flagged FOOTPRINT_ANOMALY"]
    assert '<td>2007</td><td>GH</td><td>Z-AKW</td><td class="num">41</td>' in page
    months = list(csv.DictReader(io.StringIO(auditor.get("/stats/zone.csv?zone=Z-AKW").text)))
    december = next(m for m in months if m["month"] == "2007-12")
    logs = [math.log(30 + i) for i in range(40)]
    mid = statistics.median(logs)
    scale = 1.4826 * statistics.median([abs(x - mid) for x in logs])
    band = [Decimal(math.exp(mid + k * 3.5 * scale)).quantize(CENT, ROUND_HALF_UP)
            for k in (-1, 0, 1)]
    assert [Decimal(december[k]) for k in ("band_low", "band_median", "band_high")] == band
    assert (december["reference"], december["footprint_anomalies"]) == ("40", "1")
    few = [m for m in months if int(m["reference"]) < 30]  # SPEC 5: fewer than 30, no band
    assert few and all(m["band_low"] == m["band_high"] == "" for m in few)
    halves = list(csv.DictReader(io.StringIO(auditor.get("/stats/country.csv?country=GH").text)))
    assert {h["period"]: (h["produced_carats"], h["exported_carats"]) for h in halves} == {
        "2007-H1": ("48.00", "0.00"), "2007-H2": ("37.00", "0.00"),
        "2008-H1": ("19.51", "10.01")}
    table = list(csv.reader(io.StringIO(auditor.get(
        "/stats.csv?period=2008-Q2..2008-Q3&by=partner&kind=trade").text)))
    assert table[0] == TRADE and len(table) == 3
    buyer = signed_in("buyer")
    mine = buyer.get("/stats").text
    assert "Zone-level figures are for officers" in mine and 'class="band"' not in mine
    assert mine.count('<svg class="chart"') == 1  # production against exports: country level
    assert buyer.get("/stats/zone.csv?zone=Z-AKW").status_code == 403
    assert buyer.get("/stats?by=site").status_code == 403
    refused = auditor.get("/stats?period=2008-Q5")
    assert refused.status_code == 400 and "BAD_QUERY" in refused.text
