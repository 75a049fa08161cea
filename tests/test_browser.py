"""Issue 7's acceptance in a real browser: Debian's Chromium, driven by Playwright, over
`alluvial serve` on the demo ledger.

Each role signs in and does its main task end to end; a refused form shows the rule
and keeps the input; a buyer cannot open an auditor's page; the map shows the Ivorian
risk areas, the licence zones and the laundering ring's flagged sites; and every
request the browser makes goes to the app itself. Each role's main page is saved as
``<role>.png`` in the demo's temporary folder, so that the tests leave the tree clean (issue
19); ``scripts/screenshots.py`` runs them with ALLUVIAL_SCREENSHOTS=docs/screenshots to make
the pictures the README shows.

Skipped when Playwright or /usr/bin/chromium is missing, unless ALLUVIAL_REQUIRE_BROWSER
is set (as in `.ci/run`), when that fails instead. Playwright never downloads a browser
here: it launches /usr/bin/chromium.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ledger.db import make_engine
from ledger.log.keys import load_or_create
from ledger.recorder.events import Event, Ledger
from webui.login import set_password

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the skip below says what to install
    sync_playwright = None

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
# Where `shot` saves: the demo's temporary folder, unless scripts/screenshots.py says.
SCREENSHOTS = os.environ.get("ALLUVIAL_SCREENSHOTS")
ROLES = ("officer", "buyer", "exporter", "auditor", "admin")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-default-apps", "--disable-extensions"]
RING_PARCEL = "GH-P00000580"  # a laundering ring's parcel: dug in Côte d'Ivoire, held
RING_PURCHASE_SEQ = 703  # its purchase: after init (1) and the demo's archive.imported (2)


def day(offset: int = 0) -> str:
    """Today (UTC, the ledger's day) plus ``offset`` days: what is written now is dated now,
    since a business date more than ALLUVIAL_LATE_DAYS back is flagged LATE_ENTRY and one
    after today refused DATE_ORDER (SPEC 4, 5)."""
    return (datetime.now(UTC).date() + timedelta(days=offset)).isoformat()


TODAY, YEAR = day(), day()[:4]
CRISIS_DAY = "2010-12-31"  # the Ivorian risk areas valid, the ring's purchases all made


def _missing() -> str | None:
    if sync_playwright is None:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


def skip_without_browser() -> None:
    """Skip (or fail, under ALLUVIAL_REQUIRE_BROWSER) without Playwright or Chromium."""
    missing = _missing()
    if missing:
        if os.environ.get("ALLUVIAL_REQUIRE_BROWSER"):
            pytest.fail(f"ALLUVIAL_REQUIRE_BROWSER is set but {missing}")
        pytest.skip(missing)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`alluvial demo --no-serve` in a fresh folder, then `alluvial serve` on a free port."""
    skip_without_browser()
    folder = tmp_path_factory.mktemp("browser")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLUVIAL_")}
    # The code under test, whichever checkout the installed package points at.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    subprocess.run([sys.executable, "-m", "ledger.cli", "demo", "--no-serve"], cwd=folder,
                   env=env, check=True, capture_output=True, timeout=300)
    engine = make_engine(f"sqlite:///{folder / 'alluvial.db'}")
    for name in ROLES:  # what `alluvial demo` sets too: each demo user's password
        set_password(engine, name, f"demo-{name}")
    engine.dispose()
    with serving(folder, env) as base:
        yield base, folder


@contextmanager
def serving(folder: Path, env: dict[str, str]) -> Iterator[str]:
    """`alluvial serve` on a free port in ``folder``: its base URL until the block ends."""
    log = folder / "serve.log"
    with log.open("w") as err:
        server = subprocess.Popen([sys.executable, "-m", "ledger.cli", "serve", "--port", "0"],
                                  cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 60
        found = None
        while found is None:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "alluvial serve did not start"
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())
            time.sleep(0.05)
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(demo: tuple[str, Path]) -> Iterator[Any]:
    # `demo` has skipped (or failed, under ALLUVIAL_REQUIRE_BROWSER) without Playwright.
    from playwright.sync_api import sync_playwright as playwright

    with playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


SEEN: list[str] = []


@pytest.fixture
def page(browser: Any, demo: tuple[str, Path]) -> Iterator[Any]:
    """A fresh browser context (no cookies) whose every request is recorded and checked."""
    base, _ = demo
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    tab.base = base
    tab.shots = Path(SCREENSHOTS) if SCREENSHOTS else demo[1] / "screenshots"
    yield tab
    context.close()
    SEEN.extend(requests)
    app = urlsplit(base).netloc
    assert requests and all(urlsplit(url).netloc == app for url in requests), requests


def sign_in(page: Any, role: str) -> None:
    page.goto(page.base + "/login")
    page.fill("#name", role)
    page.fill("#password", f"demo-{role}")
    page.click("button:has-text('Sign in')")
    expect(page.locator("header .who")).to_contain_text(f"{role} · {role}")


def fill(page: Any, values: dict[str, str]) -> None:
    for name, value in values.items():
        field = page.locator(f'[name="{name}"]')
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)


def shot(page: Any, name: str, full_page: bool = False) -> None:
    page.shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(page.shots / f"{name}.png"), full_page=full_page)


def nav(page: Any, label: str) -> None:
    page.locator("header nav[aria-label=Pages]").get_by_role("link", name=label, exact=True).click()


def layers(download: Any) -> set[str]:
    """The layers of a downloaded map GeoJSON."""
    return {f["properties"]["layer"] for f in
            json.loads(Path(download.path()).read_text())["features"]}


def write(folder: Path, *events: Event) -> None:
    """Events written straight into the demo ledger, as `ingest` would (test set-up only)."""
    book = Ledger(make_engine(f"sqlite:///{folder / 'alluvial.db'}"),
                  load_or_create(folder / "alluvial-log.key", "alluvial.local"))
    for event in events:
        book.write(event)
    book.engine.dispose()


SITE = {"site_id": "GH-S-AKW-05", "name": "Akwatia pit A5", "location.lon": "-0.79",
        "location.lat": "6.05", "licence_no": "GH-SSML-1995-014",
        "operator": "Akwatia Diggers Cooperative", "country": "GH", "date": TODAY}


def test_officer_registers_sites_with_screening_imports_zones_and_registers_an_actor(
        page: Any, tmp_path: Path) -> None:
    sign_in(page, "officer")
    nav(page, "Register site")
    fill(page, SITE)
    page.click("button:has-text('Check screening')")
    expect(page.locator("#preview")).to_contain_text("Screening would raise no flag")
    page.click("button:has-text('Save')")
    expect(page.locator("h1")).to_contain_text("Site GH-S-AKW-05")
    expect(page.locator(".flash.clean")).to_contain_text("Screening raised no flag")

    nav(page, "Register site")  # dated back in the Ivorian crisis: late, and in the risk area
    fill(page, {**SITE, "site_id": "GH-S-AKW-06", "name": "Pit declared at Akwatia",
                "location.lon": "-6.67", "location.lat": "7.96", "date": "2010-01-05"})
    page.click("button:has-text('Check screening')")
    preview = page.locator("#preview")
    expect(preview).to_contain_text("OUTSIDE_LICENSED_ZONE")
    expect(preview).to_contain_text("IN_RISK_AREA")
    expect(preview).to_contain_text("LATE_ENTRY")
    expect(page.locator('[name="location.lon"]')).to_have_value("-6.67")
    shot(page, "officer")
    page.click("button:has-text('Save')")
    expect(page.locator("#screening")).to_contain_text("OUTSIDE_LICENSED_ZONE")
    expect(page.locator("#screening")).to_contain_text("LATE_ENTRY")
    expect(page.locator(".flash.flag").first).to_be_visible()

    zones = tmp_path / "new-zone.geojson"
    zones.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"zone_id": "GH-Z-ANYINAM",
                                          "licence_no": f"GH-SSML-{YEAR}-1",
                                          "holder": "Anyinam Cooperative",
                                          "valid_from": TODAY},
        "geometry": {"type": "Polygon", "coordinates": [[[-0.55, 6.35], [-0.45, 6.35],
                                                         [-0.45, 6.45], [-0.55, 6.35]]]}}]}))
    nav(page, "Import zones")
    page.set_input_files("#file", str(zones))
    page.click("button:has-text('Import')")
    expect(page.locator(".flash.written")).to_contain_text("1 licence zones registered")
    expect(page.locator('#map-all a[href="/zones/GH-Z-ANYINAM"]')).to_have_count(1)

    nav(page, "Register actor")
    fill(page, {"actor_id": "buyer-gh-anyinam", "name": "Anyinam Diamond Buyers",
                "role": "buyer", "country": "GH", "licence_no": f"GH-LBL-{YEAR}-001",
                "licence_valid_from": TODAY, "licence_valid_to": day(3 * 365),
                "date": TODAY})
    page.click("button:has-text('Save')")
    expect(page.locator("h1")).to_contain_text("Actor buyer-gh-anyinam")


PURCHASE = {"parcel_id": "GH-P-WEB-1", "site_id": "GH-S-AKW-01", "seller": "Kwabena Asare",
            "date": TODAY, "carats": "12.5", "stones": "60", "price.amount": "475",
            "price.currency": "USD"}


def test_buyer_buys_splits_merges_transfers_and_sees_holds(page: Any) -> None:
    sign_in(page, "buyer")
    nav(page, "Log purchase")
    fill(page, PURCHASE)
    page.click("button:has-text('Check screening')")
    expect(page.locator("#preview")).to_contain_text("Screening would raise no flag")
    page.click("button:has-text('Save')")
    expect(page.locator("h1")).to_contain_text("Parcel GH-P-WEB-1")
    expect(page.locator("#why")).to_contain_text("may transfer, split, merge or export it")

    nav(page, "Split")
    fill(page, {"parent_id": "GH-P-WEB-1", "date": TODAY,
                "children[0].parcel_id": "GH-P-WEB-1a", "children[0].carats": "5",
                "children[0].stones": "20", "children[1].parcel_id": "GH-P-WEB-1b",
                "children[1].carats": "7.5", "children[1].stones": "40"})
    page.click("button:has-text('Save')")
    expect(page.locator(".flash.written")).to_contain_text("Split")
    nav(page, "Merge")
    fill(page, {"parent_ids": "GH-P-WEB-1a, GH-P-WEB-1b", "child.parcel_id": "GH-P-WEB-1m",
                "child.carats": "12.5", "child.stones": "60", "date": TODAY})
    page.click("button:has-text('Save')")
    expect(page.locator("h1")).to_contain_text("Parcel GH-P-WEB-1m")
    expect(page.locator('svg.graph [data-node="parcel:GH-P-WEB-1a"]')).to_have_count(1)
    nav(page, "Transfer")
    fill(page, {"parcel_id": "GH-P-WEB-1m", "to_actor": "exporter-gh-accra",
                "date": TODAY, "price.amount": "520", "price.currency": "USD"})
    page.click("button:has-text('Save')")
    expect(page.locator("dl.facts")).to_contain_text("exporter-gh-accra")

    # Dug in rebel-held Côte d'Ivoire in 2010, logged now: recorded, flagged, held.
    nav(page, "Log purchase")
    fill(page, {**PURCHASE, "parcel_id": "GH-P-WEB-2", "date": "2010-05-01",
                "dig_location.lon": "-6.5", "dig_location.lat": "8.1"})
    page.click("button:has-text('Check screening')")
    expect(page.locator("#preview")).to_contain_text("IN_RISK_AREA")
    page.click("button:has-text('Save')")
    expect(page.locator("h1")).to_contain_text("on hold")
    nav(page, "Holdings")
    holds = page.locator("#holds")
    expect(holds).to_contain_text("GH-P-WEB-2")
    expect(holds).to_contain_text("IN_RISK_AREA")
    shot(page, "buyer")


def test_a_refused_form_shows_the_rule_by_the_field_and_keeps_the_input(page: Any) -> None:
    sign_in(page, "buyer")
    nav(page, "Log purchase")
    typed = {**PURCHASE, "parcel_id": "GH-P-WEB-3", "carats": "12.345", "seller": "Ama Mensah"}
    fill(page, typed)
    page.click("button:has-text('Save')")
    shown = page.locator("#carats-refusal")
    expect(shown).to_have_text("Carats must have at most two decimals.")  # once, plainly
    for name, value in typed.items():
        expect(page.locator(f'[name="{name}"]')).to_have_value(value)


def test_exporter_sees_why_a_parcel_is_refused_and_declares_an_export(
        page: Any, demo: tuple[str, Path]) -> None:
    write(demo[1],
          Event("parcel.purchased", "buyer-gh-akwatia", {
              "parcel_id": "GH-P-EXP-1", "site_id": "GH-S-AKW-02", "seller": "Yaw Owusu",
              "date": TODAY, "carats": 8.25, "stones": 31,
              "price": {"amount": 330.0, "currency": "USD"}}),
          Event("parcel.transferred", "buyer-gh-akwatia", {
              "parcel_id": "GH-P-EXP-1", "to_actor": "exporter-gh-accra", "date": TODAY,
              "price": {"amount": 360.0, "currency": "USD"}}))
    sign_in(page, "exporter")
    nav(page, "Declare export")
    certificate = f"GH-{YEAR}-900001"
    kp = {"certificate_no": certificate, "importer": "Antwerp Rough Trading NV",
          "destination": "BE", "hs_code": "7102.31", "parcel_ids": RING_PARCEL,
          "carats": "30.22", "value_usd": "900", "date": TODAY, "expires": day(60)}
    fill(page, kp)
    page.click("button:has-text('Save')")
    why = page.locator("#parcel_ids-refusal")
    expect(why).to_contain_text("HOLDER")
    expect(why).to_contain_text("on hold with open flags")
    expect(why).to_contain_text("IN_RISK_AREA")
    expect(page.locator('[name="parcel_ids"]')).to_have_value(RING_PARCEL)
    expect(page.locator('[name="importer"]')).to_have_value("Antwerp Rough Trading NV")

    fill(page, {"parcel_ids": "GH-P-EXP-1", "carats": "8.25"})
    page.click("button:has-text('Save')")
    expect(page.locator("h1")).to_contain_text(f"Export {certificate}")
    expect(page.locator('svg.graph [data-node="site:GH-S-AKW-02"]')).to_have_count(1)
    expect(page.locator('svg.map a[href="/sites/GH-S-AKW-02"]')).to_have_count(1)
    with page.expect_download() as download:
        page.click("#download-bundle")
    bundle = json.loads(Path(download.value.path()).read_text())
    assert certificate in json.dumps(bundle)
    shot(page, "exporter")


def test_auditor_searches_follows_custody_resolves_verifies_and_downloads(page: Any) -> None:
    sign_in(page, "auditor")
    page.fill("header input[name=q]", RING_PARCEL)
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_contain_text(f"Parcel {RING_PARCEL}")
    expect(page.locator("#why")).to_contain_text("HOLD")
    graph = page.locator("svg.graph").first
    expect(graph.locator('[data-node="site:GH-S-BIR-02"]')).to_have_count(1)
    steps = graph.locator("a.step")
    purchase = f"/entries/{RING_PURCHASE_SEQ}"
    assert steps.count() == 2 and steps.first.get_attribute("href") == purchase
    graph.locator(f'a[href="{purchase}"]:has(text.seq)').click()  # the purchase's entry
    expect(page.locator("h1")).to_contain_text("parcel.purchased")
    expect(page.locator("#entry-json")).to_contain_text(RING_PARCEL)
    expect(page.locator("#proof-root")).to_have_text(re.compile("^[0-9a-f]{64}$"))
    page.go_back()

    page.locator("#why a:has-text('Resolve')").first.click()
    fill(page, {"resolution": "Licence boundary re-surveyed: dig point confirmed outside.",
                "date": TODAY})
    page.click("button:has-text('Resolve the flag')")
    expect(page.locator(".flash.written")).to_contain_text("Resolution")
    # of its three (outside the licence zone, in the risk area, footprint), two stay open
    expect(page.locator("#why")).to_contain_text("2 open flags")

    nav(page, "Audit")
    page.click("#run-verify")
    expect(page.locator("#verify-result")).to_contain_text("OK:")
    expect(page.locator("#verify-result")).to_contain_text("chain and Merkle root verified")
    shot(page, "auditor")
    with page.expect_download() as geojson:
        page.click("#download-geojson")
    assert layers(geojson.value) == {"licence_zone", "site", "flagged_purchase"}  # as of today
    with page.expect_download() as flags:
        page.click("#download-flags-csv")
    assert Path(flags.value.path()).read_text().startswith("flag_id,seq,code,")


def test_admin_adds_a_user_who_can_sign_in(page: Any) -> None:
    sign_in(page, "admin")
    nav(page, "Users")
    fill(page, {"name": "kofi", "role": "buyer", "actor": "buyer-gh-kade",
                "password": "kofi-buys-gravel"})
    page.click("button:has-text('Add the user')")
    expect(page.locator(".flash.written")).to_contain_text("User kofi added")
    page.locator("tr", has_text="kofi").get_by_role("button", name="New token").click()
    expect(page.locator("#new-token")).to_contain_text("kofi: alv_")
    shot(page, "admin")
    page.click("button:has-text('Sign out')")
    page.fill("#name", "kofi")
    page.fill("#password", "kofi-buys-gravel")
    page.click("button:has-text('Sign in')")
    expect(page.locator("header .who")).to_contain_text("kofi · buyer · buyer-gh-kade")


def test_a_buyer_cannot_open_an_auditor_page(page: Any) -> None:
    sign_in(page, "buyer")
    expect(page.locator("header nav[aria-label=Pages]")).not_to_contain_text("Audit")
    for path in ("/audit", "/entries/1", f"/search?q={RING_PARCEL}"):
        answer = page.goto(page.base + path)
        assert answer is not None and answer.status == 403
        expect(page.locator("h1")).to_have_text("Not for your role")
        expect(page.locator(".refusal")).to_contain_text("ROLE")


def test_the_map_shows_the_ivorian_risk_areas_the_licence_zones_and_the_flagged_sites(
        page: Any) -> None:
    sign_in(page, "auditor")
    nav(page, "Map")
    drawn = page.locator("svg#map-all")
    # Today's map: the Ivorian risk areas ended in 2011 and 2014 (SPEC 5: valid that day).
    expect(page.locator("#as_of")).to_have_value(TODAY)
    expect(drawn.locator('a[href="/zones/GH-Z-AKWATIA"].licence_zone path')).to_have_count(1)
    expect(drawn.locator("a.risk_area")).to_have_count(0)
    page.fill("#as_of", CRISIS_DAY)
    page.click("button:has-text('Draw')")
    expect(page.locator("#as_of")).to_have_value(CRISIS_DAY)
    for zone in ("RISK-CI-REBEL-NORTH", "RISK-CI-UN-EMBARGO"):
        area = drawn.locator(f'a[href="/zones/{zone}"].risk_area path')
        expect(area).to_have_count(1)
        box = area.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100
    for zone in ("GH-Z-AKWATIA", "GH-Z-BIRIM", "CI-Z-SEGUELA", "CI-Z-TORTIYA", "SL-Z-KONO",
                 "SL-Z-TONGO"):
        expect(drawn.locator(f'a[href="/zones/{zone}"].licence_zone path')).to_have_count(1)
    for site in ("GH-S-BIR-01", "GH-S-BIR-02", "GH-S-BIR-03", "GH-S-BIR-04"):
        expect(drawn.locator(f'a[href="/sites/{site}"].flagged circle')).to_have_count(1)
    # the ring's purchases that declared their dig point (from July 2008 it left them out)
    assert drawn.locator("a.flagged_purchase").count() >= _ring_purchases_dug_in_the_north()
    expect(drawn.locator('a[href="/sites/SL-S-KON-01"].flagged')).to_have_count(0)
    shot(page, "map", full_page=True)
    with page.expect_download() as geojson:
        page.click("#download-geojson")
    assert layers(geojson.value) == {"licence_zone", "risk_area", "site", "flagged_purchase"}


def _ring_purchases_dug_in_the_north() -> int:
    from sample_data.generate import scenario_files
    lines = scenario_files()["events.jsonl"].read_text(encoding="utf-8").splitlines()
    return sum(1 for e in map(json.loads, lines) if e["kind"] == "parcel.purchased"
               and e["actor"] == "buyer-gh-oda"
               and (e["payload"].get("dig_location") or {}).get("coordinates", [0])[0] < -3)


def test_every_request_went_to_the_app_itself(page: Any) -> None:
    """The per-test check (in the ``page`` fixture) over everything the tests above did,
    and a last walk over pages not visited yet."""
    sign_in(page, "auditor")
    for path in ("/stats", "/exports/GH-2013-000005", "/sites/GH-S-BIR-01", "/flags"):
        page.goto(page.base + path)
    base = urlsplit(page.base).netloc
    assert len(SEEN) > 50
    assert {urlsplit(url).netloc for url in SEEN} == {base}
    assert any(url.endswith("/static/app.css") for url in SEEN)
