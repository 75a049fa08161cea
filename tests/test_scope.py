"""No page shows what the API refuses (issue 15, acceptance 2).

For each role, signed in to the pages and holding a token for the API as the same user:
every parcel, flag and actor holding a page shows is one the same principal's API reads
return. Both the pages and the API read through ``ledger.reads``; this checks the
outcome a user would see, by crawling every page a role may open.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ledger import accounts
from ledger.recorder.events import Event, Ledger
from tests.conftest import Auth

API = "/api/v1"
SQUARE = {"type": "Polygon", "coordinates": [[[-0.9, 5.9], [-0.7, 5.9], [-0.7, 6.1],
                                              [-0.9, 6.1], [-0.9, 5.9]]]}
NORTH_CI = {"type": "Polygon", "coordinates": [[[-8.0, 7.5], [-4.0, 7.5], [-4.0, 10.0],
                                                [-8.0, 10.0], [-8.0, 7.5]]]}
# (role, actor) of every principal; two buyers who must not see each other's parcels.
PRINCIPALS = [("officer", "off-gh"), ("buyer", "buyer-a"), ("buyer", "buyer-b"),
              ("exporter", "exp-gh"), ("auditor", "aud-1"), ("admin", "admin")]
CERTIFICATE = "GH-2008-0001"


def _purchase(pid: str, site: str = "S-AKW", dig: tuple[float, float] | None = None,
              carats: float = 10.0) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "parcel_id": pid, "site_id": site, "seller": "Kofi Boateng", "date": "2008-03-14",
        "carats": carats, "stones": 5, "price": {"amount": 420.5, "currency": "USD"}}
    if dig is not None:
        payload["dig_location"] = {"type": "Point", "coordinates": list(dig)}
    return payload


@pytest.fixture
def world(ledger: Ledger, auth: Auth) -> Ledger:
    """buyer-a: PA-1 clean, PA-2 dug in the risk area (flagged), PA-3 to exp-gh and exported,
    PA-4 to exp-gh and merged with buyer-b's PB-1 into PM-1. buyer-b: PB-1, and PB-2 dug in
    the risk area (flagged)."""
    for role, actor in PRINCIPALS:
        auth.token(role, actor)

    def write(kind: str, actor: str, **payload: Any) -> None:
        ledger.write(Event(kind, actor, payload))

    def transfer(pid: str, by: str) -> None:
        write("parcel.transferred", by, parcel_id=pid, to_actor="exp-gh", date="2008-04-01",
              price={"amount": 500, "currency": "USD"})

    write("zone.registered", "off-gh", zone_id="Z-AKW", zone_type="licence", geometry=SQUARE,
          date="2004-01-06", valid_from="2000-01-01", valid_to=None, licence_no="GH-ML-AKW-1",
          holder="Akwatia Diggers Cooperative")
    write("zone.registered", "off-gh", zone_id="RISK-CI-N", zone_type="risk", geometry=NORTH_CI,
          date="2004-01-06", valid_from="2002-09-19", valid_to="2011-04-11",
          category="rebel_held", source="UN Panel of Experts")
    write("site.registered", "off-gh", site_id="S-AKW", name="Akwatia pit 1",
          location={"type": "Point", "coordinates": [-0.8, 6.04]}, licence_no="GH-ML-AKW-1",
          operator="Akwatia Diggers Cooperative", country="GH", date="2004-01-07")
    write("site.registered", "off-gh", site_id="S-FAR", name="Pit declared at Akwatia",
          location={"type": "Point", "coordinates": [-6.67, 7.96]}, licence_no="GH-ML-AKW-1",
          operator="Unknown", country="GH", date="2004-01-07")
    write("parcel.purchased", "buyer-a", **_purchase("PA-1"))
    write("parcel.purchased", "buyer-a", **_purchase("PA-2", dig=(-6.5, 8.1)))
    write("parcel.purchased", "buyer-a", **_purchase("PA-3"))
    write("parcel.purchased", "buyer-a", **_purchase("PA-4"))
    write("parcel.purchased", "buyer-b", **_purchase("PB-1"))
    write("parcel.purchased", "buyer-b", **_purchase("PB-2", dig=(-6.67, 7.96)))
    transfer("PA-3", "buyer-a")
    transfer("PA-4", "buyer-a")
    transfer("PB-1", "buyer-b")
    write("parcel.merged", "exp-gh", parent_ids=["PA-4", "PB-1"], date="2008-04-02",
          child={"parcel_id": "PM-1", "carats": 20.0, "stones": 10})
    write("export.declared", "exp-gh", certificate_no=CERTIFICATE, exporter="exp-gh",
          importer="Antwerp Diamond Bank", destination="BE", hs_code="7102.31",
          parcel_ids=["PA-3"], carats=10.0, value_usd=1234.5, date="2008-05-01",
          expires="2008-07-01")
    return ledger


@dataclass
class Known:
    """Every id of the world, by what it names."""

    parcels: set[str] = field(default_factory=set)
    flags: set[str] = field(default_factory=set)
    actors: set[str] = field(default_factory=set)


def known(auditor: FlaskClient, headers: dict[str, str]) -> Known:
    every = Known()
    every.flags = {f["flag_id"] for f in auditor.get(f"{API}/flags", headers=headers)
                   .get_json()["flags"]}
    after = 0
    while True:
        page = auditor.get(f"{API}/entries?after={after}&limit=1000", headers=headers).get_json()
        for record in page["entries"]:
            entry = record["entry"]
            payload = entry["payload"]
            if entry["kind"] == "actor.registered":
                every.actors.add(payload["actor_id"])
            every.parcels.update(p for p in (payload.get("parcel_id"),
                                             (payload.get("child") or {}).get("parcel_id"))
                                 if isinstance(p, str))
        if page["next"] is None:
            return every
        after = page["next"]


def api_view(client: FlaskClient, headers: dict[str, str], every: Known) -> Known:
    """What the principal's API reads return: parcels it may open and every parcel on their
    custody paths, the flags of `GET /flags` and of those parcels, its bundles' contents,
    and the actors whose holdings `GET /actors/{id}` tells it."""
    seen = Known()
    seen.flags = {f["flag_id"] for f in client.get(f"{API}/flags", headers=headers)
                  .get_json().get("flags", [])}
    for pid in every.parcels:
        record = client.get(f"{API}/parcels/{pid}", headers=headers)
        if record.status_code != 200:
            continue
        seen.parcels.add(pid)
        seen.flags.update(f["flag_id"] for f in record.get_json()["flags"])
        for direction in ("backward", "forward"):
            graph = client.get(f"{API}/parcels/{pid}/custody?direction={direction}",
                               headers=headers).get_json()
            seen.parcels.update(n["id"] for n in graph["nodes"] if n["type"] == "parcel")
    bundle = client.get(f"{API}/exports/{CERTIFICATE}/bundle", headers=headers)
    if bundle.status_code == 200:
        text = bundle.get_data(as_text=True)
        seen.parcels.update(p for p in every.parcels if re.search(_word(p), text))
        seen.flags.update(f for f in every.flags if re.search(_word(f), text))
    for actor in every.actors:
        record = client.get(f"{API}/actors/{actor}", headers=headers).get_json()
        if record.get("held") is not None:
            seen.actors.add(actor)
    return seen


def _word(ident: str) -> str:
    return rf"(?<![\w-]){re.escape(ident)}(?![\w-])"


def shown(text: str, ids: set[str]) -> set[str]:
    plain = unescape(text)
    return {i for i in ids if re.search(_word(i), plain)}


def page_paths(app: Flask, every: Known) -> list[str]:
    """Every GET page of the app, with each id its URL can take."""
    values = {"parcel_id": sorted(every.parcels), "certificate_no": [CERTIFICATE],
              "site_id": ["S-AKW", "S-FAR"], "zone_id": ["Z-AKW", "RISK-CI-N"],
              "actor_id": sorted(every.actors), "flag_id": sorted(every.flags),
              "seq": ["2", "12"], "name": ["buyer.buyer-a"]}
    paths = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("pages.") or "GET" not in (rule.methods or ()):
            continue
        todo = [str(rule)]
        for arg in rule.arguments:
            todo = [p.replace(f"<{conv}{arg}>", v) for p in todo for v in values[arg]
                    for conv in ("", "path:", "int:") if f"<{conv}{arg}>" in p]
        paths.extend(todo)
    return [*sorted(set(paths)), "/search?q=P", "/flags?status=open"]


def signed_in(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    accounts.set_password(app.extensions["alluvial"].ledger.engine, name, "a-long-password")
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    answer = client.post("/login", data={"csrf_token": token.group(1), "name": name,
                                         "password": "a-long-password"})
    assert answer.status_code == 302, answer.text
    return client


@pytest.mark.parametrize(("role", "actor"), PRINCIPALS, ids=[f"{r}-{a}" for r, a in PRINCIPALS])
def test_no_page_shows_a_parcel_flag_or_holding_the_api_refuses(
        world: Ledger, app: Flask, auth: Auth, role: str, actor: str) -> None:
    headers = {"Authorization": f"Bearer {auth.token(role, actor)}"}
    every = known(app.test_client(), {"Authorization": f"Bearer {auth.token('auditor', 'aud-1')}"})
    assert {"PA-2", "PB-2"} <= every.parcels and len(every.flags) >= 3  # the world is as meant
    api = api_view(app.test_client(), headers, every)
    client = signed_in(app, f"{role}.{actor}")
    opened = 0
    for path in page_paths(app, every):
        page = client.get(path)
        assert page.status_code < 500, (path, page.status_code)
        if page.status_code != 200:
            continue
        opened += 1
        text = page.get_data(as_text=True)
        assert shown(text, every.parcels) <= api.parcels, (path, shown(text, every.parcels))
        assert shown(text, every.flags) <= api.flags, (path, shown(text, every.flags))
        if path.startswith("/actors/") and path.removeprefix("/actors/") not in api.actors:
            assert "Holds" not in text, path
        if path == "/map.geojson":
            for feature in json.loads(text)["features"]:
                props = feature["properties"]
                if props["layer"] == "site" and role not in ("auditor", "officer"):
                    assert props["flags"] == "", (path, props)
    assert opened >= 8  # every role opens a good part of the site


def test_a_buyer_sees_its_own_flagged_purchases_on_the_map_and_not_another_buyers(
        world: Ledger, app: Flask, auth: Auth) -> None:
    client = signed_in(app, "buyer.buyer-a")
    features = client.get("/map.geojson").get_json()["features"]
    flagged = {f["properties"]["parcel_id"] for f in features
               if f["properties"]["layer"] == "flagged_purchase"}
    assert flagged == {"PA-2"}
    site = client.get("/sites/S-AKW").get_data(as_text=True)
    assert "PB-" not in site and "that you hold or held" in site
    actor = client.get("/actors/buyer-b").get_data(as_text=True)
    assert "Holds" not in actor and "Buyer-B" in actor
    own = client.get("/actors/buyer-a").get_data(as_text=True)
    assert re.search(r"Holds</dt><dd>2 parcels", own), own


def test_an_auditor_sees_every_flagged_purchase_and_holding(world: Ledger, app: Flask) -> None:
    client = signed_in(app, "auditor.aud-1")
    features = client.get("/map.geojson").get_json()["features"]
    flagged = {f["properties"]["parcel_id"] for f in features
               if f["properties"]["layer"] == "flagged_purchase"}
    assert flagged == {"PA-2", "PB-2"}
    assert re.search(r"Holds</dt><dd>1 parcels",
                     client.get("/actors/buyer-b").get_data(as_text=True))


def test_the_registry_of_actors_is_open_to_every_account_but_holdings_are_not(
        world: Ledger, client: FlaskClient, auth: Auth) -> None:
    buyer = {"Authorization": f"Bearer {auth.token('buyer', 'buyer-a')}"}
    listed = client.get(f"{API}/actors", headers=buyer).get_json()["actors"]
    assert {"buyer-a", "buyer-b", "exp-gh"} <= {a["actor_id"] for a in listed}
    assert client.get(f"{API}/actors/buyer-b", headers=buyer).get_json()["held"] is None
    assert client.get(f"{API}/actors/buyer-a", headers=buyer).get_json()["held"] == 2
    assert client.get(f"{API}/actors/nobody", headers=buyer).status_code == 404
    assert client.get(f"{API}/actors").status_code == 401
