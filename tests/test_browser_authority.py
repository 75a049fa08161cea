"""Issue 18's acceptance 5 in a real browser (Debian's Chromium, driven by Playwright, over
`alluvial serve`, as tests/test_browser.py does): the Ghanaian authority signs in and
validates an export; the Belgian one confirms its import with a wrong carat count and sees
the CONFIRMATION_MISMATCH flag; the printable certificate's QR code, screenshotted and
decoded with zxing-cpp, holds the SHA-256 of the bundle the browser then downloads.

A small world of its own, written today (no demo: quicker, and independent of the demo's
figures). Skipped like tests/test_browser.py when Playwright or Chromium is missing.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger import accounts
from ledger.db import make_engine
from ledger.log.keys import load_or_create
from ledger.recorder.events import Event, Ledger
from tests.test_browser import ARGS, CHROMIUM, ROOT, fill, serving, skip_without_browser

pytestmark = pytest.mark.browser
TODAY = datetime.now(UTC).date()
DAY = TODAY.isoformat()
CERT, OTHER = f"GH-{TODAY.year}-700001", f"GH-{TODAY.year}-700002"
USERS = {"pmmc": ("authority", "auth-gh"), "customs-be": ("authority", "auth-be")}
SQUARE = {"type": "Polygon", "coordinates": [[[-0.9, 5.9], [-0.7, 5.9], [-0.7, 6.1],
                                              [-0.9, 6.1], [-0.9, 5.9]]]}


def _world(folder: Path) -> None:
    """An officer, a buyer, an exporter, the GH and BE authorities; two parcels bought at
    Akwatia today, each exported to Belgium under its own certificate."""
    engine = make_engine(f"sqlite:///{folder / 'alluvial.db'}")
    book = Ledger(engine, load_or_create(folder / "alluvial-log.key", "alluvial.local"))
    book.initialise()

    def write(kind: str, actor: str, **payload: Any) -> None:
        book.write(Event(kind, actor, payload))

    write("actor.registered", "admin", actor_id="off-gh", name="Minerals Commission",
          role="officer", country="GH", date=DAY)
    for actor_id, role in (("buyer-gh", "buyer"), ("exporter-gh", "exporter")):
        write("actor.registered", "off-gh", actor_id=actor_id, name=actor_id.title(),
              role=role, country="GH", licence_no=f"GH-LIC-{actor_id}",
              licence_valid_from="2000-01-01", licence_valid_to=None, date=DAY)
    write("actor.registered", "off-gh", actor_id="auth-gh", name="PMMC", role="authority",
          country="GH", date=DAY)
    write("actor.registered", "admin", actor_id="auth-be", name="FPS Economy, Diamond Office",
          role="authority", country="BE", date=DAY)
    write("zone.registered", "off-gh", zone_id="Z-AKW", zone_type="licence", geometry=SQUARE,
          date=DAY, valid_from="2000-01-01", valid_to=None, licence_no="GH-ML-AKW-1",
          holder="Akwatia Diggers Cooperative")
    write("site.registered", "off-gh", site_id="S-AKW", name="Akwatia pit 1",
          location={"type": "Point", "coordinates": [-0.8, 6.04]}, licence_no="GH-ML-AKW-1",
          operator="Akwatia Diggers Cooperative", country="GH", date=DAY)
    for pid, cert in (("P-1", CERT), ("P-2", OTHER)):
        write("parcel.purchased", "buyer-gh", parcel_id=pid, site_id="S-AKW",
              seller="Kofi Boateng", date=DAY, carats=12.5, stones=40,
              price={"amount": 500, "currency": "USD"})
        write("parcel.transferred", "buyer-gh", parcel_id=pid, to_actor="exporter-gh",
              date=DAY, price={"amount": 550, "currency": "USD"})
        write("export.declared", "exporter-gh", certificate_no=cert, exporter="exporter-gh",
              importer="Antwerp Rough Trading NV", destination="BE", hs_code="7102.31",
              parcel_ids=[pid], carats=12.5, value_usd=600, date=DAY,
              expires=(TODAY + timedelta(days=60)).isoformat())
    accounts.create_tables(engine)
    for name, (role, actor) in USERS.items():
        accounts.add_user(engine, name, role, actor, password=f"{name}-password")
    engine.dispose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    skip_without_browser()
    folder = tmp_path_factory.mktemp("authority")
    _world(folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLUVIAL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["ALLUVIAL_DATABASE_URL"] = f"sqlite:///{folder / 'alluvial.db'}"
    env["ALLUVIAL_LOG_KEY"] = str(folder / "alluvial-log.key")
    with serving(folder, env) as base:
        yield base


@pytest.fixture(scope="module")
def browser(served: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


def _signed_in(browser: Any, base: str, name: str) -> Any:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  device_scale_factor=2, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(base + "/login")
    page.fill("#name", name)
    page.fill("#password", f"{name}-password")
    page.click("button:has-text('Sign in')")
    expect(page.locator("header .who")).to_contain_text(f"{name} · authority")
    return page


def test_authorities_validate_confirm_and_the_paper_matches_the_bundle(
        browser: Any, served: str) -> None:
    import zxingcpp
    from PIL import Image
    from playwright.sync_api import expect

    ghana = _signed_in(browser, served, "pmmc")
    ghana.locator("header nav[aria-label=Pages]").get_by_role(
        "link", name="Certificates", exact=True).click()
    ghana.get_by_role("link", name="Leaving GH: to validate").click()
    ghana.get_by_label("Certificate no contains").fill(CERT)  # the list is paged (issue 19)
    ghana.get_by_role("button", name="Show").click()
    row = ghana.locator(f'#certificates tr[data-certificate="{CERT}"]')
    expect(row).to_contain_text("declared")
    row.get_by_role("link", name="Validate").click()
    fill(ghana, {"valuation_usd": "610", "officer": "Ama Owusu", "date": DAY})
    ghana.click("button:has-text('Save')")
    expect(ghana.locator(".flash.written")).to_contain_text(f"Validation of {CERT}")
    ghana.context.close()

    belgium = _signed_in(browser, served, "customs-be")
    belgium.locator("header nav[aria-label=Pages]").get_by_role(
        "link", name="Certificates", exact=True).click()
    belgium.get_by_label("Certificate no contains").fill(CERT)
    belgium.get_by_role("button", name="Show").click()
    row = belgium.locator(f'#certificates tr[data-certificate="{CERT}"]')
    expect(row).to_contain_text("validated")
    row.get_by_role("link", name="Confirm import").click()
    fill(belgium, {"carats_received": "10", "parcels_received": "1",
                   "importer": "Antwerp Rough Trading NV", "date": DAY})
    belgium.click("button:has-text('Save')")
    expect(belgium.locator(".flash.flag")).to_contain_text("CONFIRMATION_MISMATCH")
    expect(belgium.locator("h1")).to_contain_text("flagged")

    belgium.click("#print-certificate")
    expect(belgium.locator("#validation")).to_contain_text("Ama Owusu")
    shown = belgium.locator("#bundle-sha256").inner_text()
    image = Image.open(io.BytesIO(belgium.locator("#qr svg").screenshot()))
    decoded = zxingcpp.read_barcodes(image)
    assert len(decoded) == 1 and decoded[0].format == zxingcpp.BarcodeFormat.QRCode
    text = decoded[0].text
    assert f"KP certificate {CERT}\n" in text and "log alluvial.local\n" in text
    digest = re.search(r"bundle sha256 ([0-9a-f]{64})", text)
    assert digest is not None and digest.group(1) == shown

    belgium.go_back()
    with belgium.expect_download() as download:
        belgium.click("#download-bundle")
    bundle = Path(download.value.path()).read_bytes()
    assert hashlib.sha256(bundle).hexdigest() == digest.group(1)
    belgium.context.close()
