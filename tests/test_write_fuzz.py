"""Acceptance of issue #15, part B: a fuzz run over every write route, with nesting up to
10,000 levels, numbers at the I-JSON limits and beyond and long strings, gets no 500, and
8 concurrent innocent writes made meanwhile all succeed.

The API is driven against `alluvial serve` itself (a real process on a loopback port,
its writes committed by the writer process, the path where a body 900 levels deep once
failed pickling and took three innocent writes of its group down with it); the page
forms, which need a signed-in session and a CSRF token, against the app in-process.
Hypothesis makes the bodies, derandomized so a run is repeatable; the number of
examples is kept small enough for the suite's budget (about 20 s per database here).
"""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.recorder.events import Event, Ledger
from tests.conftest import Auth
from tests.test_api_serve import alluvial, request, served

EXAMPLES = 60
INNOCENT_CLIENTS = 8
OK = {200, 201, 400, 401, 403, 409, 413, 415, 422}

# Numbers at and beyond what SPEC 4 allows (I-JSON, RFC 7493 2.2; RFC 8785 3.2.2.3).
NUMBERS = [
    "0", "-0", "0.0", "-0.0", "1", "2.5", "0.01", "12.50", "1E2", "1e-7",
    "9007199254740991", "-9007199254740991", "9007199254740992", "-9007199254740992",
    "9007199254740993", "18446744073709551616", "1" + "0" * 400, "9" * 4300,
    "1e16", "-1e16", "1e21", "1e308", "1.7976931348623157e308", "1e309", "-1e400",
    "5e-324", "4.9e-324", "1e-400", "1.00000000000000000001", "475.000000000000000001",
    "333333333.33333329", "0.1000000000000000055511151231257827", "1.001", "-180.0000001",
]
FIELDS = {  # where a number goes: (kind, the payload path)
    "parcel.purchased": ["carats", "stones", "price.amount", "dig_location.coordinates.0",
                         "dig_location.coordinates.1", "dig_location.coordinates.2"],
    "site.registered": ["location.coordinates.0", "location.coordinates.2",
                        "capacity_ct_month"],
    "flag.raised": ["evidence.n", "evidence.deep.list.0"],
    "export.declared": ["carats", "value_usd"],
}
ROLE_OF = {"parcel.purchased": "buyer", "site.registered": "officer",
           "flag.raised": "auditor", "export.declared": "exporter"}


def payload_of(kind: str) -> dict[str, Any]:
    return {
        "parcel.purchased": {"parcel_id": "FZ-P", "site_id": "S-AKW", "seller": "Kofi",
                             "date": "2008-03-14", "carats": 1.5, "stones": 2,
                             "price": {"amount": 10, "currency": "USD"},
                             "dig_location": {"type": "Point", "coordinates": [-0.8, 6.04, 1]}},
        "site.registered": {"site_id": "FZ-S", "name": "Fuzz pit", "licence_no": "GH-AKW-1",
                            "location": {"type": "Point", "coordinates": [-0.8, 6.0, 0]},
                            "operator": "Coop", "country": "GH", "date": "2008-01-05",
                            "capacity_ct_month": 10},
        "flag.raised": {"flag_id": "FZ-F", "subject": {"type": "actor", "id": "buyer-a"},
                        "code": "IN_RISK_AREA", "detail": "fuzz", "date": "2008-03-15",
                        "evidence": {"n": 1, "deep": {"list": [0]}}},
        "export.declared": {"certificate_no": "GH-FZ-1", "exporter": "exp-gh",
                            "importer": "Antwerp", "destination": "BE", "hs_code": "7102.31",
                            "parcel_ids": ["FZ-P"], "carats": 1.5, "value_usd": 10.0,
                            "date": "2008-03-20", "expires": "2008-05-20"},
    }[kind]


def _put(value: Any, path: str, marker: str) -> None:
    *parents, last = path.split(".")
    for key in parents:
        value = value[int(key)] if isinstance(value, list) else value[key]
    if isinstance(value, list):
        value[int(last)] = marker
    else:
        value[last] = marker


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, bytes]:
    """(role, body): an event with one hostile part, or hostile bytes around one."""
    kind = draw(st.sampled_from(sorted(FIELDS)))
    payload = payload_of(kind)
    what = draw(st.sampled_from(["number", "nesting", "string", "raw"]))
    body: dict[str, Any] = {"kind": kind, "payload": payload}
    if draw(st.booleans()):
        body["event_id"] = f"fz-{draw(st.integers(0, 10**6))}"
    if what == "number":
        _put(payload, draw(st.sampled_from(FIELDS[kind])), "\u0000HERE")
        literal = draw(st.one_of(st.sampled_from(NUMBERS),
                                 st.integers(-(2**70), 2**70).map(str),
                                 st.floats(allow_nan=False, allow_infinity=False).map(repr)))
        text = json.dumps(body).replace('"\\u0000HERE"', literal)
    elif what == "nesting":
        depth = draw(st.one_of(st.integers(1, 100), st.integers(100, 1000),
                               st.sampled_from([63, 64, 65, 500, 600, 900, 999, 1000, 1001,
                                                5000, 10_000])))
        shape = draw(st.sampled_from(["[", '{"a":']))
        inner = ("[" * depth + "]" * depth if shape == "[" else
                 '{"a":' * depth + "0" + "}" * depth)
        where = draw(st.sampled_from(["evidence.deep", "junk", "payload"]))
        if where == "payload":
            text = json.dumps(body).replace(json.dumps(payload), inner, 1)
        else:
            _put(payload, "evidence.deep" if kind == "flag.raised" and where != "junk"
                 else "junk", "\u0000HERE")
            text = json.dumps(body).replace('"\\u0000HERE"', inner)
    elif what == "string":
        size = draw(st.sampled_from([200, 201, 2000, 2001, 100_000, 600_000, 1_100_000]))
        char = draw(st.sampled_from(["x", "é", "\U0001f48e", "\\u0000", "/", "="]))
        field = draw(st.sampled_from(["seller", "name", "detail", "parcel_id", "site_id",
                                      "operator", "importer"]))
        payload[field] = "\u0000HERE"
        text = json.dumps(body).replace('"\\u0000HERE"', '"' + char * size + '"')
    else:
        text = draw(st.sampled_from([
            "", "{", "[]", "null", '{"kind":', '{"kind":"parcel.purchased","payload":NaN}',
            '{"kind":"x","kind":"y"}', '"\\ud800"', "\ufeff{}",
        ])) + draw(st.text(max_size=50))
    return ROLE_OF[kind], text.encode("utf-8", "surrogatepass")


SQUARE = {"type": "Polygon", "coordinates": [[[-0.9, 5.9], [-0.7, 5.9], [-0.7, 6.1],
                                              [-0.9, 6.1], [-0.9, 5.9]]]}


def _world(ledger: Ledger, auth: Auth) -> None:
    """Actors of the four writing roles, a Ghanaian licence zone and a site in it."""
    for role in ROLE_OF.values():
        auth.register(role, auth.ACTORS[role])
    ledger.write(Event("zone.registered", "off-gh", {
        "zone_id": "Z-AKW", "zone_type": "licence", "geometry": SQUARE, "date": "2004-01-06",
        "valid_from": "2000-01-01", "valid_to": None, "licence_no": "GH-AKW-1",
        "holder": "Akwatia Diggers Cooperative"}))
    ledger.write(Event("site.registered", "off-gh", {
        "site_id": "S-AKW", "name": "Akwatia pit 1", "licence_no": "GH-AKW-1",
        "location": {"type": "Point", "coordinates": [-0.8, 6.04]},
        "operator": "Akwatia Diggers Cooperative", "country": "GH", "date": "2004-01-07"}))


def _register(ledger: Ledger, auth: Auth) -> dict[str, str]:
    _world(ledger, auth)
    return {role: auth.token(role) for role in ROLE_OF.values()}


@pytest.mark.slow
def test_fuzzed_writes_get_no_500_and_innocent_writes_all_succeed(
    ledger: Ledger, auth: Auth, env: dict[str, str], tmp_path: Path,
) -> None:
    tokens = _register(ledger, auth)
    answers: list[tuple[str, int, Any]] = []
    innocent: list[list[tuple[int, Any]]] = [[] for _ in range(INNOCENT_CLIENTS)]
    done = threading.Event()

    def innocent_client(k: int, port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Authorization": f"Bearer {tokens['buyer']}",
                   "Content-Type": "application/json"}
        n = 0
        try:
            while not done.is_set() or n < 3:
                body = json.dumps({"kind": "parcel.purchased", "event_id": f"in-{k}-{n}",
                                   "payload": {**payload_of("parcel.purchased"),
                                               "parcel_id": f"IN-{k}-{n}"}}).encode()
                status, value, _ = request(port, "POST", "/events", body, headers, conn)
                innocent[k].append((status, value))
                n += 1
        finally:
            conn.close()

    with served(env, tmp_path / "serve.log") as port:
        threads = [threading.Thread(target=innocent_client, args=(k, port))
                   for k in range(INNOCENT_CLIENTS)]
        for t in threads:
            t.start()

        @given(case=hostile())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case: tuple[str, bytes]) -> None:
            role, body = case
            headers = {"Authorization": f"Bearer {tokens[role]}",
                       "Content-Type": "application/json"}
            status, value, got = request(port, "POST", "/events", body, headers)
            answers.append((body[:120].decode("utf-8", "replace"), status, value))
            assert status in OK, (status, value, body[:300])
            if status >= 400:
                assert got["Content-Type"] == "application/problem+json", got

        try:
            run()
        finally:
            done.set()
            for t in threads:
                t.join()
    kinds_of_answer = {status for _, status, _ in answers}
    assert 422 in kinds_of_answer and 400 in kinds_of_answer  # the fuzz reached both refusals
    for k, client in enumerate(innocent):
        assert len(client) >= 3, k
        assert all(status == 201 for status, _ in client), [a for a in client if a[0] != 201]
    verified = alluvial("verify", env=env)  # every entry accepted can be hashed again
    assert verified.returncode == 0, verified.stdout + verified.stderr


# -- the page forms: a signed-in session and its CSRF token, in-process ----------------------

@st.composite
def hostile_form(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """(path, form fields) for the site and purchase forms, one field made hostile."""
    from tests.test_pages import PURCHASE, SITE

    path, base = draw(st.sampled_from([("/sites/new", SITE), ("/purchases/new", PURCHASE)]))
    data = {**base, "licence_no": "GH-AKW-1"} if path == "/sites/new" else dict(base)
    depth = draw(st.sampled_from([1, 64, 65, 600, 900, 10_000]))
    number = draw(st.sampled_from(NUMBERS))
    geojson = draw(st.sampled_from([
        '{"type":"Point","coordinates":' + "[" * depth + "]" * depth + "}",
        '{"type":"Point","coordinates":[-0.79,6.05,' + number + "]}",
        '{"type":"Polygon","coordinates":[[[-0.9,5.9],[-0.7,6.3],[-0.7,5.9],[-0.9,6.3],'
        '[-0.9,5.9]]]}',
        '{"type":"Feature","geometry":' + '{"a":' * depth + "0" + "}" * depth + "}",
    ]))
    field = draw(st.sampled_from(["location.geojson", "carats", "price.amount", "site_id",
                                  "parcel_id", "location.lon", "seller"]))
    value = {"location.geojson": geojson, "carats": number, "price.amount": number,
             "location.lon": number, "site_id": "Q/../../admin/users",
             "parcel_id": "=HYPERLINK(\"http://x\")", "seller": "x" * 100_000}[field]
    data[field] = value
    data["action"] = draw(st.sampled_from(["save", "preview"]))
    return path, data


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_fuzzed_forms_get_no_500(ledger: Ledger, client: FlaskClient, auth: Auth) -> None:
    from ledger import accounts
    from tests.test_pages import sign_in, token_of

    _world(ledger, auth)
    for role in ("officer", "buyer"):
        accounts.add_user(ledger.engine, role, role, auth.ACTORS[role])
    seen: set[int] = set()

    @given(case=hostile_form())
    @settings(max_examples=40, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case: tuple[str, dict[str, str]]) -> None:
        path, data = case
        sign_in(client, "officer" if path == "/sites/new" else "buyer")
        answer = client.post(path, data={"csrf_token": token_of(client, path), **data})
        seen.add(answer.status_code)
        assert answer.status_code < 500, (path, {k: v[:80] for k, v in data.items()})

    run()
    assert 422 in seen
