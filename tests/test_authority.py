"""Issue 18, the authorities' part of the web: the Atom feed of the flags touching the
certificates going to a country, who may read it, and the printable certificate page.

Both databases. The world: two GH exports, one to Belgium and one to the Emirates; after
both are written a risk area is registered over the Belgian one's dig point and
`rescreen` flags its purchase: the Belgian feed must hear of it, the Emirati one not.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import feedparser
import pytest

from ledger.recorder.events import Ledger
from ledger.recorder.rescreen import rescreen
from tests.conftest import Auth, Write
from tests.test_custody import buy, move, world  # noqa: F401 - world is a fixture

FEED = "/api/v1/feeds/flags.atom"
TO_BE, TO_AE = "GH-2008-0001", "GH-2008-0002"
DUG_BE, DUG_AE = (-0.80, 6.04), (-0.75, 6.0)
# Registered over the Belgian export's dig point only, after both exports (SPEC 5).
RISK = {"type": "Polygon", "coordinates": [[[-0.81, 6.03], [-0.79, 6.03], [-0.79, 6.05],
                                            [-0.81, 6.05], [-0.81, 6.03]]]}
AUTHORITIES = {"auth-gh": "GH", "auth-be": "BE", "auth-ae": "AE"}


def _point(lon_lat: tuple[float, float]) -> dict[str, Any]:
    return {"type": "Point", "coordinates": list(lon_lat)}


Get = Callable[[str | None, str | None, str], Any]


@pytest.fixture
def feed(client: Any, auth: Auth) -> Get:
    """``feed(role, actor, destination)``: the answer of the flags feed to that caller."""
    def get(role: str | None, actor: str | None, destination: str) -> Any:
        return client.get(f"{FEED}?destination={destination}", headers=auth.headers(role, actor))
    return get


@pytest.fixture
def shipped(world: Ledger, write: Write, feed: Get) -> dict[str, Any]:  # noqa: F811
    """Two exports, one to BE and one to AE, then the risk area and `rescreen`; the
    authorities of GH, BE and AE registered (by the admin: SPEC 1 binds officers).
    Returns the BE and AE feeds as they were before the rescreen."""
    for actor_id, country in AUTHORITIES.items():
        write("actor.registered", "admin", actor_id=actor_id, name=f"KP authority {country}",
              role="authority", country=country, date="2004-01-05")
    for pid, dug, cert, to in (("P-BE", DUG_BE, TO_BE, "BE"), ("P-AE", DUG_AE, TO_AE, "AE")):
        buy(write, pid, dig_location=_point(dug))
        move(write, pid, "exp-gh")
        write("export.declared", "exp-gh", certificate_no=cert, exporter="exp-gh",
              importer="Importer " + to, destination=to, hs_code="7102.31", parcel_ids=[pid],
              carats=10.0, value_usd=500, date="2008-05-01", expires="2008-07-01")
    before = {c: feed("authority", "auth-" + c.lower(), c) for c in ("BE", "AE")}
    write("zone.registered", "off-gh", zone_id="RISK-DISPUTE", zone_type="risk", geometry=RISK,
          date="2009-01-05", valid_from="2008-01-01", valid_to=None, category="conflict",
          source="a later report")
    rescreen(world)
    return before


def _parsed(answer: Any) -> Any:
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == "application/atom+xml"
    found = feedparser.parse(answer.get_data())
    assert not found.bozo, found.get("bozo_exception")
    assert found.version == "atom10"
    return found


def test_rescreen_taint_after_export_reaches_the_destinations_feed(
        shipped: dict[str, Any], feed: Get) -> None:
    before = _parsed(shipped["BE"])
    assert before.entries == []  # nothing touched the certificate when it was exported
    be = _parsed(feed("authority", "auth-be", "BE"))
    titles = {e.title: e for e in be.entries}
    # The purchase's own flag (on the parcel, raised after the export) and the taint of the
    # export it made; the Emirati export is not Belgium's.
    assert set(titles) == {f"{TO_BE}: IN_RISK_AREA on parcel P-BE (open)",
                           f"{TO_BE}: TAINTED_INPUT on export {TO_BE} (open)"}, titles
    entry = titles[f"{TO_BE}: IN_RISK_AREA on parcel P-BE (open)"]
    assert entry.link.endswith(f"/exports/{TO_BE}")
    assert "lies in a risk area" in entry.summary and "Importer BE" in entry.summary
    assert entry.id.endswith(f":certificate:{TO_BE}") and entry.tags[0].term == "IN_RISK_AREA"
    # An auditor reads every country's feed; the Emirati one holds no flag: its dig point
    # lies outside the new risk area.
    assert {e.title for e in _parsed(feed("auditor", None, "BE")).entries} == set(titles)
    assert _parsed(feed("auditor", None, "AE")).entries == []


# Who may not read Belgium's feed: (caller, role, actor, status, problem type). SPEC 1: an
# authority hears of its own country's imports; 403 JURISDICTION for another country's
# authority (its role may read feeds, its country not this one), ROLE for other roles.
NOT_BELGIUMS = [
    ("another country's authority", "authority", "auth-ae", 403, "JURISDICTION"),
    ("the exporting country's authority", "authority", "auth-gh", 403, "JURISDICTION"),
    ("a buyer", "buyer", None, 403, "ROLE"),
    ("an exporter", "exporter", None, 403, "ROLE"),
    ("an officer", "officer", None, 403, "ROLE"),
    ("an anonymous caller", None, None, 401, "UNAUTHENTICATED"),
]


def test_who_may_not_read_belgiums_feed(shipped: dict[str, Any], feed: Get) -> None:
    for who, role, actor, status, rule in NOT_BELGIUMS:  # one world for the whole table
        answer = feed(role, actor, "BE")
        assert answer.status_code == status, who
        assert answer.mimetype == "application/problem+json", who
        assert answer.get_json()["type"] == rule, who
        assert TO_BE not in answer.get_data(as_text=True), who


BAD_DESTINATIONS = {"missing": "", "empty": "?destination=", "lower case": "?destination=be",
                    "alpha-3": "?destination=BEL", "NUL": "?destination=B%00"}


def test_a_bad_destination_is_refused_naming_the_parameter(client: Any, auth: Auth) -> None:
    for case, query in BAD_DESTINATIONS.items():
        answer = client.get(FEED + query, headers=auth.headers("auditor"))
        assert answer.status_code == 422, case
        problem = answer.get_json()
        assert problem["type"] == "BAD_REQUEST" and problem["field"] == "destination", case
        assert "destination" in problem["detail"], case


def test_the_feed_is_in_the_openapi_document_as_atom(client: Any) -> None:
    doc = json.loads(client.get("/api/v1/openapi.json").get_data())
    ok = doc["paths"][FEED]["get"]["responses"]["200"]["content"]
    assert list(ok) == ["application/atom+xml"]


def _session(client: Any, ledger: Ledger, auth: Auth, role: str, actor: str | None) -> Any:
    """The browser of that caller: signed in as its API user (no scrypt: see test_pages)."""
    from ledger import signin
    from webui import login

    auth.token(role, actor)
    name = f"{role}.{actor or auth.ACTORS[role]}"
    with client.session_transaction() as session:
        session[login.SESSION_ID] = signin.open_session(ledger.engine, name)
    return client


# Who may open the Belgian export's printable page: whoever may read that export.
PRINT_READERS = [
    ("an auditor", "auditor", None, 200),
    ("its exporter", "exporter", "exp-gh", 200),
    ("the exporting country's authority", "authority", "auth-gh", 200),
    ("the destination's authority", "authority", "auth-be", 200),
    ("another country's authority", "authority", "auth-ae", 403),
    ("a buyer", "buyer", None, 403),
]


def test_who_may_open_the_printable_certificate(
        shipped: dict[str, Any], app: Any, ledger: Ledger, auth: Auth) -> None:
    for who, role, actor, status in PRINT_READERS:
        page = _session(app.test_client(), ledger, auth, role, actor).get(
            f"/exports/{TO_BE}/print")
        assert page.status_code == status, who
        assert ("KP certificate" in page.text) == (status == 200), who
    anonymous = app.test_client().get(f"/exports/{TO_BE}/print")
    assert anonymous.status_code == 302 and "/login" in anonymous.location


def test_the_printable_certificate_names_the_bundle_it_goes_with(
        shipped: dict[str, Any], app: Any, ledger: Ledger, auth: Auth, runner: Any) -> None:
    from ledger.cli import cli

    browser = _session(app.test_client(), ledger, auth, "authority", "auth-ae")
    page = browser.get(f"/exports/{TO_AE}/print").text
    api = app.test_client().get(f"/api/v1/exports/{TO_AE}/bundle",
                                headers=auth.headers("auditor"))
    written = runner.invoke(cli, ["bundle", TO_AE, "-o", "-"])
    assert written.exit_code == 0, written.output
    # One bundle: the API's bytes are the CLI's, and their SHA-256 is on the paper.
    assert api.get_data() == written.stdout_bytes
    digest = hashlib.sha256(api.get_data()).hexdigest()
    assert f'id="bundle-sha256">{digest}<' in page
    assert '<figure class="qr" id="qr"' in page and "<svg viewBox=" in page
    for shown in (TO_AE, "Importer AE", "7102.31", "10.00 ct", "USD 500.00", "2008-07-01",
                  "Akwatia pit 1", "GH-ML-AKW-1", "Z-AKW", "100.0%", "Not validated",
                  f"OK: provenance bundle of KP certificate {TO_AE} verified."):
        assert shown in page, shown
    # The Belgian export's purchase was flagged after it left: its paper says so.
    tainted = browser.get(f"/exports/{TO_BE}/print")
    assert tainted.status_code == 403  # not the Emirati authority's
    tainted = _session(app.test_client(), ledger, auth, "auditor", None).get(
        f"/exports/{TO_BE}/print").text
    assert "FAILED: provenance bundle" in tainted and "open flag" in tainted


def _form(browser: Any, path: str, values: dict[str, str]) -> Any:
    """Send a page's form as a browser would: with its CSRF token and event_id."""
    shown = browser.get(path)
    assert shown.status_code == 200, shown.text
    hidden = dict(re.findall(r'name="(csrf_token|event_id)" value="([^"]*)"', shown.text))
    return browser.post(path, data={**hidden, **values, "action": "save"})


def test_authorities_validate_and_confirm_through_their_pages(
        shipped: dict[str, Any], app: Any, ledger: Ledger, auth: Auth) -> None:
    ghana = _session(app.test_client(), ledger, auth, "authority", "auth-gh")
    desk = ghana.get("/certificates?origin=GH&status=declared").text  # "to validate"
    assert f'<tr class="tainted overdue" data-certificate="{TO_BE}">' in desk
    assert f'<tr class=" overdue" data-certificate="{TO_AE}">' in desk
    tainted = ghana.get("/certificates?tainted=yes").text  # the desk's link to them
    assert re.findall(r'data-certificate="([^"]+)"', tainted) == [TO_BE]

    # The Belgian authority may read the Ghanaian export, not validate it (SPEC 1).
    size = ledger.log.size()
    belgium = _session(app.test_client(), ledger, auth, "authority", "auth-be")
    refused = _form(belgium, f"/exports/{TO_BE}/validate",
                    {"valuation_usd": "480", "officer": "J. Peeters", "date": "2008-05-02"})
    assert refused.status_code == 422 and "JURISDICTION" in refused.text
    typo = _form(ghana, f"/exports/{TO_AE}/validate",
                 {"valuation_usd": "480.005", "officer": "A. Mensah", "date": "2008-05-02"})
    assert typo.status_code == 422 and "at most two decimals" in typo.text
    assert 'value="480.005"' in typo.text  # the input is kept
    assert ledger.log.size() == size

    done = _form(ghana, f"/exports/{TO_AE}/validate",
                 {"valuation_usd": "480", "officer": "A. Mensah", "date": "2008-05-02"})
    assert done.status_code == 302 and done.location.endswith(f"/exports/{TO_AE}")
    printed = ghana.get(f"/exports/{TO_AE}/print").text
    assert "A. Mensah" in printed and "USD 480.00" in printed and "auth-gh" in printed

    emirates = _session(app.test_client(), ledger, auth, "authority", "auth-ae")
    wrong = {"carats_received": "9.5", "parcels_received": "1", "importer": "Importer AE",
             "date": "2008-05-20"}
    confirmed = _form(emirates, f"/exports/{TO_AE}/confirm", wrong)
    assert confirmed.status_code == 302
    shown = emirates.get(confirmed.location).text
    assert "CONFIRMATION_MISMATCH" in shown
    assert "9.50 ct in 1 parcel, received by Importer AE" in shown and ">mismatched<" in shown
    assert "by <span class=\"mono\">auth-gh</span> (A. Mensah) on 2008-05-02" in shown
    again = _form(emirates, f"/exports/{TO_AE}/confirm", wrong)
    assert again.status_code == 422 and "DUPLICATE" in again.text  # a form: 422, as every refusal
    arriving = emirates.get("/certificates").text
    assert f'data-certificate="{TO_AE}"' in arriving and ">mismatched<" in arriving

    # The dashboards: Belgium hears of its tainted import, the Emirates of their mismatch.
    assert "IN_RISK_AREA" in belgium.get("/").text.split('id="flag-feed"')[1]
    feed = emirates.get("/").text.split('id="flag-feed"')[1]
    assert "CONFIRMATION_MISMATCH" in feed and "IN_RISK_AREA" not in feed


def test_authority_tokens_write_through_the_api(shipped: dict[str, Any], client: Any,
                                                auth: Auth, ledger: Ledger) -> None:
    """POST /events takes the authority's kinds from its API tokens (SPEC 6), judged by the
    same rules as the pages."""
    def post(actor: str, kind: str, **payload: Any) -> Any:
        return client.post("/api/v1/events", json={"kind": kind, "payload": payload},
                           headers=auth.headers("authority", actor))

    validation = {"certificate_no": TO_AE, "date": "2008-05-02", "valuation_usd": 480,
                  "officer": "A. Mensah"}
    size = ledger.log.size()
    refused = post("auth-be", "certificate.validated", **validation)
    assert refused.status_code == 422 and refused.get_json()["type"] == "JURISDICTION"
    assert ledger.log.size() == size
    written = post("auth-gh", "certificate.validated", **validation)
    assert written.status_code == 201 and written.get_json()["flags"] == []
    confirmed = post("auth-ae", "import.confirmed", certificate_no=TO_AE, date="2008-05-20",
                     carats_received=10, parcels_received=1, importer="Importer AE")
    assert confirmed.status_code == 201 and confirmed.get_json()["flags"] == []
