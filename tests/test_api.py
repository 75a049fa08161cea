"""The REST API of SPEC 6: who may call what, what a write answers, and how bad input
is refused (problem+json naming the rule and the field, and the log unchanged)."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from ledger import accounts
from ledger.cli import cli
from ledger.log import merkle
from ledger.recorder.events import Event, Ledger
from tests.conftest import Auth, register_akwatia
from webui import group_commit

API = "/api/v1"
PROBLEM = "application/problem+json"
ROLES = [None, "officer", "buyer", "exporter", "auditor", "admin"]


def purchase(pid: str, site: str = "S-AKW", carats: float = 10.0) -> dict[str, Any]:
    return {"parcel_id": pid, "site_id": site, "seller": "Kofi Boateng", "date": "2008-03-14",
            "carats": carats, "stones": 5, "price": {"amount": 420.5, "currency": "USD"}}


@pytest.fixture
def world(ledger: Ledger, auth: Auth) -> Ledger:
    """Accounts for every role; buyer-a bought P1, P2 and (at an unknown site, flagged) P3;
    P2 went to exp-gh and left under GH-2008-0001; buyer-b bought Q1."""
    for role in ("admin", "officer", "buyer", "exporter", "auditor"):
        auth.token(role)
    auth.token("buyer", "buyer-b")

    def write(kind: str, actor: str, **payload: Any) -> None:
        ledger.write(Event(kind, actor, payload))

    register_akwatia(write)
    for pid, site in (("P1", "S-AKW"), ("P2", "S-AKW"), ("P3", "S-NOWHERE")):
        write("parcel.purchased", "buyer-a", **purchase(pid, site))
    write("parcel.purchased", "buyer-b", **purchase("Q1"))
    write("parcel.transferred", "buyer-a", parcel_id="P2", to_actor="exp-gh",
          date="2008-04-01", price={"amount": 500, "currency": "USD"})
    write("export.declared", "exp-gh", certificate_no="GH-2008-0001", exporter="exp-gh",
          importer="Antwerp Diamond Bank", destination="BE", hs_code="7102.31",
          parcel_ids=["P2"], carats=10.0, value_usd=1234.5, date="2008-05-01",
          expires="2008-07-01")
    return ledger


def snapshot(ledger: Ledger) -> tuple[int, str]:
    return ledger.log.size(), ledger.digest()


def post(client: FlaskClient, headers: dict[str, str], kind: str, payload: Any,
         event_id: str | None = None) -> Any:
    body: dict[str, Any] = {"kind": kind, "payload": payload}
    if event_id is not None:
        body["event_id"] = event_id
    return client.post(f"{API}/events", json=body, headers=headers)


def assert_problem(response: Any, status: int, rule: str, field: str | None = None) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    problem = response.get_json(force=True)
    assert problem["type"] == rule, problem
    assert problem["status"] == status and problem["title"] and problem["detail"]
    if field is not None:
        assert problem["field"] == field, problem


# -- acceptance 1: every route, every role, and anonymous -----------------------------------

ALL = {role: 200 for role in ROLES}
MEMBERS = {None: 401, "officer": 200, "buyer": 200, "exporter": 200, "auditor": 200,
           "admin": 200}
AUDITOR = {None: 401, "officer": 403, "buyer": 403, "exporter": 403, "auditor": 200,
           "admin": 403}
OWN = {None: 401, "officer": 403, "buyer": 200, "exporter": 403, "auditor": 200, "admin": 403}
HELD_BY_BOTH = {**OWN, "exporter": 200}
BUNDLE = {**AUDITOR, "exporter": 200}
# A purchase: every account may POST, and rule ROLE of SPEC 4 lets only a buyer buy.
PURCHASE = {None: 401, "officer": 403, "buyer": 201, "exporter": 403, "auditor": 403,
            "admin": 403}

# (id, method, path, expected status by role)
MATRIX: list[tuple[str, str, str, dict[str | None, int]]] = [
    ("checkpoint", "GET", "/checkpoint", ALL),
    ("inclusion-proof", "GET", "/proofs/inclusion?seq=2", ALL),
    ("consistency-proof", "GET", "/proofs/consistency?old=2", ALL),
    ("stats", "GET", "/stats", ALL),
    ("openapi", "GET", "/openapi.json", ALL),
    ("zones", "GET", "/zones", MEMBERS),
    ("sites", "GET", "/sites", MEMBERS),
    ("entries", "GET", "/entries", AUDITOR),
    ("entry", "GET", "/entries/3", AUDITOR),
    ("own-parcel", "GET", "/parcels/P1", OWN),
    ("own-parcel-custody", "GET", "/parcels/P1/custody", OWN),
    ("parcel-held-by-buyer-then-exporter", "GET", "/parcels/P2/custody?direction=forward",
     HELD_BY_BOTH),
    ("someone-elses-parcel", "GET", "/parcels/Q1", {**OWN, "buyer": 403}),
    ("flags", "GET", "/flags", {**OWN, "exporter": 200, "officer": 200}),
    ("actors", "GET", "/actors", MEMBERS),
    ("actor", "GET", "/actors/buyer-a", MEMBERS),
    ("bundle", "GET", "/exports/GH-2008-0001/bundle", BUNDLE),
    ("flags-feed", "GET", "/feeds/flags.atom?destination=BE", AUDITOR),
    ("write-event", "POST", "/events", PURCHASE),
]


def bundle_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ledger.bundle.build") is not None


@pytest.mark.parametrize(("method", "path", "expected"), [m[1:] for m in MATRIX],
                         ids=[m[0] for m in MATRIX])
def test_role_by_route_matrix(world: Ledger, client: FlaskClient, auth: Auth, method: str,
                              path: str, expected: dict[str | None, int]) -> None:
    if path.endswith("/bundle") and not bundle_available():
        pytest.skip("ledger.bundle.build (issue 6) is not there yet")
    wrong = []
    for n, role in enumerate(ROLES):
        before = snapshot(world)
        body = {"kind": "parcel.purchased", "payload": purchase(f"M{n}")}
        response = client.open(API + path, method=method, headers=auth.headers(role),
                               json=body if method == "POST" else None)
        status = response.status_code
        if status != expected[role]:
            wrong.append(f"{role or 'anonymous'}: {status}, expected {expected[role]}: "
                         f"{response.get_data(as_text=True)[:200]}")
        if status in (401, 403):
            assert response.mimetype == PROBLEM
            assert response.get_json(force=True)["type"] in ("UNAUTHENTICATED", "ROLE")
            assert snapshot(world) == before, f"{role} was refused but the log changed"
    assert not wrong, "\n".join(wrong)


def test_matrix_covers_every_api_route(app: Any) -> None:
    routes = {(m, r.rule) for r in app.url_map.iter_rules() if r.rule.startswith(API)
              for m in r.methods - {"HEAD", "OPTIONS"}}
    covered = set()
    for _, method, path, _ in MATRIX:
        adapter = app.url_map.bind("localhost")
        endpoint, _args = adapter.match(API + path.split("?")[0], method=method)
        covered |= {(method, r.rule) for r in app.url_map.iter_rules()
                    if r.endpoint == endpoint}
    assert routes <= covered, routes - covered


# -- POST /events -------------------------------------------------------------------------

def test_write_answers_seq_hash_flags_and_checkpoint(world: Ledger, client: FlaskClient,
                                                     auth: Auth) -> None:
    size = world.log.size()
    response = post(client, auth.headers("buyer"), "parcel.purchased",
                    purchase("N1", site="S-ELSEWHERE"))
    assert response.status_code == 201
    body = response.get_json()
    assert body["seq"] == size + 1
    assert body["entry_hash"] == world.log.entry(size + 1).entry_hash.hex()
    assert [f["code"] for f in body["flags"]] == ["UNREGISTERED_SITE"]
    assert body["checkpoint"].startswith(f"{world.log.origin}\n{size + 2}\n")
    entry = world.log.entry(size + 1)
    assert (entry.actor, entry.kind) == ("buyer-a", "parcel.purchased")


def test_repeated_event_id_returns_the_entry_already_written(
    world: Ledger, client: FlaskClient, auth: Auth
) -> None:
    headers = auth.headers("buyer")
    first = post(client, headers, "parcel.purchased", purchase("N1", "S-X"), "e-7f3a")
    size = world.log.size()
    again = post(client, headers, "parcel.purchased", purchase("N1", "S-X"), "e-7f3a")
    assert (first.status_code, again.status_code) == (201, 200)
    assert {k: again.get_json()[k] for k in ("seq", "entry_hash", "flags")} == \
        {k: first.get_json()[k] for k in ("seq", "entry_hash", "flags")}
    assert world.log.size() == size
    other = post(client, headers, "parcel.purchased", purchase("N2"), "e-7f3a")
    assert_problem(other, 409, "EVENT_ID_CONFLICT", "event_id")
    assert world.log.size() == size


def test_a_write_is_made_as_the_tokens_actor_never_the_bodys(
    world: Ledger, client: FlaskClient, auth: Auth
) -> None:
    before = snapshot(world)
    body = {"kind": "parcel.purchased", "actor": "buyer-b", "payload": purchase("N1")}
    for role in ("buyer", "admin"):
        response = client.post(f"{API}/events", json=body, headers=auth.headers(role))
        assert_problem(response, 422, "SCHEMA", "actor")
    assert snapshot(world) == before


# (id, kind, payload as a function of the world, status, rule, field)
RULE_REFUSALS = [
    ("holder", "parcel.transferred",
     {"parcel_id": "Q1", "to_actor": "exp-gh", "date": "2008-04-01",
      "price": {"amount": 1, "currency": "USD"}}, 422, "HOLDER", "payload"),
    ("duplicate", "parcel.purchased", purchase("P1"), 409, "DUPLICATE", None),
    ("hold", "parcel.transferred",
     {"parcel_id": "P3", "to_actor": "exp-gh", "date": "2008-04-01",
      "price": {"amount": 1, "currency": "USD"}}, 422, "HOLD", None),
    ("unknown-reference", "parcel.transferred",
     {"parcel_id": "NOPE", "to_actor": "exp-gh", "date": "2008-04-01",
      "price": {"amount": 1, "currency": "USD"}}, 422, "UNKNOWN_REFERENCE", None),
    ("role", "zone.retired", {"zone_id": "Z-AKW", "reason": "x", "date": "2008-01-01"},
     403, "ROLE", None),
    ("schema", "parcel.purchased", {**purchase("N1"), "carats": -1}, 422, "SCHEMA",
     "payload.carats"),
]


@pytest.mark.parametrize(("kind", "payload", "status", "rule", "field"),
                         [r[1:] for r in RULE_REFUSALS], ids=[r[0] for r in RULE_REFUSALS])
def test_rule_refusal_is_a_problem_naming_the_rule(
    world: Ledger, client: FlaskClient, auth: Auth, kind: str, payload: dict[str, Any],
    status: int, rule: str, field: str | None,
) -> None:
    before = snapshot(world)
    response = post(client, auth.headers("buyer"), kind, payload)
    assert_problem(response, status, rule, field)
    assert snapshot(world) == before


def test_schema_problem_lists_every_error(world: Ledger, client: FlaskClient,
                                         auth: Auth) -> None:
    payload = {**purchase("N1"), "carats": "ten", "stones": 0}
    problem = post(client, auth.headers("buyer"), "parcel.purchased", payload).get_json()
    assert problem["type"] == "SCHEMA"
    assert {e["field"] for e in problem["errors"]} >= {"payload.carats", "payload.stones"}


# -- acceptance 4: hostile and broken input -------------------------------------------------

def _nested(depth: int) -> bytes:
    return b'{"kind": "parcel.purchased", "payload": ' + b"[" * depth + b"]" * depth + b"}"


def _event(**payload_changes: Any) -> bytes:
    return json.dumps({"kind": "parcel.purchased",
                       "payload": {**purchase("N1"), **payload_changes}}).encode()


JSON = "application/json"
# (id, body, content type, status, rule, field)
BAD_INPUT: list[tuple[str, bytes, str | None, int, str, str | None]] = [
    ("malformed-json", b'{"kind": "parcel.purchased", "payload": {', JSON, 400,
     "MALFORMED_JSON", "body"),
    ("empty-body", b"", JSON, 400, "MALFORMED_JSON", "body"),
    ("duplicate-keys", b'{"kind": "a", "kind": "b", "payload": {}}', JSON, 400,
     "MALFORMED_JSON", "body"),
    ("nan", _event().replace(b"10.0", b"NaN"), JSON, 400, "MALFORMED_JSON", "body"),
    ("lone-surrogate", _event(seller="\\ud800").replace(b"\\\\ud800", b"\\ud800"), JSON, 400,
     "MALFORMED_JSON", "body"),
    ("not-utf8", _event(seller="Kofi").replace(b"Kofi", b"K\xf6fi"), JSON, 400, "NOT_UTF8",
     "body"),
    ("latin1-charset", _event(), "application/json; charset=latin-1", 415,
     "UNSUPPORTED_MEDIA_TYPE", "Content-Type"),
    ("text-plain", _event(), "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type"),
    ("form", b"kind=parcel.purchased", "application/x-www-form-urlencoded", 415,
     "UNSUPPORTED_MEDIA_TYPE", "Content-Type"),
    ("no-content-type", _event(), None, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type"),
    ("oversized", b'{"kind": "parcel.purchased", "payload": {"seller": "'
     + b"x" * (1 << 20) + b'"}}', JSON, 413, "TOO_LARGE", None),
    ("unknown-kind", b'{"kind": "parcel.stolen", "payload": {}}', JSON, 422, "SCHEMA", "kind"),
    ("sql-in-kind", b'{"kind": "x\'; DROP TABLE entries; --", "payload": {}}', JSON, 422,
     "SCHEMA", "kind"),
    ("sql-in-id", _event(parcel_id="P1' OR '1'='1"), JSON, 422, "SCHEMA", "payload.parcel_id"),
    ("sql-in-event-id", json.dumps({"kind": "parcel.purchased", "payload": purchase("N1"),
                                    "event_id": "1; DELETE FROM entries"}).encode(), JSON, 422,
     "SCHEMA", "event_id"),
    ("huge-float", _event().replace(b"10.0", b"1e400"), JSON, 422, "SCHEMA", "payload.carats"),
    ("huge-integer", _event().replace(b"10.0", b"1" + b"0" * 400), JSON, 422, "SCHEMA",
     "payload.carats"),
    ("integer-too-long-to-read", _event().replace(b"10.0", b"9" * 5000), JSON, 400,
     "MALFORMED_JSON", "body"),
    ("deeply-nested", _nested(100_000), JSON, 400, "MALFORMED_JSON", "body"),
    # Issue #15: nesting is bounded where the body is parsed (ledger.log.canonical.MAX_DEPTH)
    ("nested-in-payload", _nested(500), JSON, 400, "MALFORMED_JSON", "body"),
    ("array-body", b"[]", JSON, 422, "SCHEMA", None),
    ("string-body", b'"parcel.purchased"', JSON, 422, "SCHEMA", None),
]


@pytest.mark.parametrize(("body", "content_type", "status", "rule", "field"),
                         [b[1:] for b in BAD_INPUT], ids=[b[0] for b in BAD_INPUT])
def test_bad_input_is_a_clear_problem_and_writes_nothing(
    world: Ledger, client: FlaskClient, auth: Auth, body: bytes, content_type: str | None,
    status: int, rule: str, field: str | None,
) -> None:
    before = snapshot(world)
    headers = auth.headers("buyer")
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = client.post(f"{API}/events", data=body, headers=headers)
    assert_problem(response, status, rule, field)
    assert snapshot(world) == before


def test_sql_in_free_text_is_stored_verbatim(world: Ledger, client: FlaskClient,
                                            auth: Auth) -> None:
    seller = "Robert'); DROP TABLE entries; --"
    response = post(client, auth.headers("buyer"), "parcel.purchased",
                    {**purchase("N1"), "seller": seller})
    assert response.status_code == 201
    assert world.log.entry(response.get_json()["seq"]).payload["seller"] == seller


# (id, path, status, rule)
BAD_READS = [
    ("sql-in-parcel-id", "/parcels/P1'%20OR%20'1'='1", 404, "NOT_FOUND"),
    ("sql-in-query", "/entries?after=1;DROP%20TABLE%20entries", 422, "BAD_REQUEST"),
    ("negative-limit", "/entries?limit=-5", 422, "BAD_REQUEST"),
    ("limit-too-big", "/entries?limit=100000", 422, "BAD_REQUEST"),
    ("entry-past-the-end", "/entries/999999", 404, "NOT_FOUND"),
    ("inclusion-without-seq", "/proofs/inclusion", 422, "BAD_REQUEST"),
    ("inclusion-past-the-end", "/proofs/inclusion?seq=999999", 422, "BAD_REQUEST"),
    ("consistency-old-after-new", "/proofs/consistency?old=5&new=3", 422, "BAD_REQUEST"),
    ("huge-seq", "/proofs/inclusion?seq=" + "9" * 400, 422, "BAD_REQUEST"),
    ("bad-direction", "/parcels/P1/custody?direction=sideways", 422, "BAD_REQUEST"),
    ("unknown-route", "/nothing-here", 404, "NOT_FOUND"),
]


@pytest.mark.parametrize(("path", "status", "rule"), [b[1:] for b in BAD_READS],
                         ids=[b[0] for b in BAD_READS])
def test_bad_read_is_a_clear_problem(world: Ledger, client: FlaskClient, auth: Auth,
                                     path: str, status: int, rule: str) -> None:
    before = snapshot(world)
    assert_problem(client.get(API + path, headers=auth.headers("auditor")), status, rule)
    assert snapshot(world) == before


def test_wrong_method_is_405_problem(client: FlaskClient) -> None:
    response = client.delete(f"{API}/checkpoint")
    assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize("header", ["Bearer alv_not-a-token", "Basic dXNlcjpwYXNz", "Bearer",
                                    "alv_no-scheme"])
def test_unknown_or_malformed_token_is_401(world: Ledger, client: FlaskClient,
                                           header: str) -> None:
    response = client.get(f"{API}/zones", headers={"Authorization": header})
    assert_problem(response, 401, "UNAUTHENTICATED")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_fails_on_its_next_request(world: Ledger, client: FlaskClient,
                                                    auth: Auth) -> None:
    """Revoked by anyone (here: its row deleted, as another process would), a token that
    has just worked is refused at once, for reads and writes, and writes nothing."""
    headers = auth.headers("buyer")
    assert client.get(f"{API}/zones", headers=headers).status_code == 200
    assert post(client, headers, "parcel.purchased", purchase("R1")).status_code == 201
    digest = accounts.token_digest(auth.token("buyer"))
    with world.engine.begin() as conn:
        conn.execute(sa.delete(accounts.Token).where(accounts.Token.token_hash == digest))
    size = world.log.size()
    assert_problem(client.get(f"{API}/zones", headers=headers), 401, "UNAUTHENTICATED")
    assert_problem(post(client, headers, "parcel.purchased", purchase("R2")), 401,
                   "UNAUTHENTICATED")
    assert world.log.size() == size
    other = auth.headers("auditor")  # the other accounts' tokens still work
    assert client.get(f"{API}/entries", headers=other).status_code == 200


# -- reads -----------------------------------------------------------------------------------

def test_checkpoint_is_json_or_the_signed_note_and_cacheable(world: Ledger,
                                                             client: FlaskClient) -> None:
    response = client.get(f"{API}/checkpoint")
    body = response.get_json()
    note = world.log.latest_checkpoint()
    assert body["checkpoint"] == note and body["size"] == world.log.size()
    assert body["root"] == world.log.root().hex()
    assert body["vkey"] == world.log.verifier.to_vkey()
    assert "public" in response.headers["Cache-Control"]
    assert response.headers["ETag"]
    again = client.get(f"{API}/checkpoint", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    text = client.get(f"{API}/checkpoint", headers={"Accept": "text/plain"})
    assert text.mimetype == "text/plain" and text.get_data(as_text=True) == note
    assert text.headers["ETag"] != response.headers["ETag"]


def test_checkpoint_answer_moves_with_every_write_from_any_writer(
        world: Ledger, client: FlaskClient, auth: Auth) -> None:
    """The rendered checkpoint is reused only while the log's latest note is the same."""
    first = client.get(f"{API}/checkpoint")
    assert client.get(f"{API}/checkpoint").headers["ETag"] == first.headers["ETag"]
    assert post(client, auth.headers("buyer"), "parcel.purchased",
                purchase("C1")).status_code == 201
    after_api = client.get(f"{API}/checkpoint")
    world.log.checkpoint()  # another process's write: the same database, not this app
    after_cli = client.get(f"{API}/checkpoint")
    tags = [r.headers["ETag"] for r in (first, after_api, after_cli)]
    assert len(set(tags)) == 3
    assert after_cli.get_json()["checkpoint"] == world.log.latest_checkpoint()
    assert after_api.get_json()["size"] == first.get_json()["size"] + 1
    stale = client.get(f"{API}/checkpoint", headers={"If-None-Match": tags[1]})
    assert stale.status_code == 200 and stale.headers["ETag"] == tags[2]


def test_proofs_verify_and_are_immutable_at_a_given_size(world: Ledger,
                                                         client: FlaskClient) -> None:
    size = world.log.size()
    proof = client.get(f"{API}/proofs/inclusion?seq=3&size={size}")
    assert "immutable" in proof.headers["Cache-Control"] and proof.headers["ETag"]
    p = proof.get_json()
    assert merkle.verify_inclusion(bytes.fromhex(p["leaf_hash"]), 2, size,
                                   [bytes.fromhex(h) for h in p["proof"]],
                                   bytes.fromhex(p["root"]))
    c = client.get(f"{API}/proofs/consistency?old=3").get_json()
    assert merkle.verify_consistency(3, size, bytes.fromhex(c["root1"]), bytes.fromhex(c["root2"]),
                                     [bytes.fromhex(h) for h in c["proof"]])
    latest = client.get(f"{API}/proofs/consistency?old=3")
    assert "immutable" not in latest.headers["Cache-Control"]


def test_entries_page_through_the_whole_log(world: Ledger, client: FlaskClient,
                                            auth: Auth) -> None:
    headers, seen, after = auth.headers("auditor"), [], 0
    while after is not None:
        page = client.get(f"{API}/entries?after={after}&limit=4", headers=headers).get_json()
        seen += [r["entry"]["seq"] for r in page["entries"]]
        after = page["next"]
    assert seen == list(range(1, world.log.size() + 1))
    one = client.get(f"{API}/entries/2", headers=headers).get_json()
    assert one["entry"] == world.log.entry(2).to_json()
    assert merkle.leaf_hash(json.dumps(one["entry"]).encode()) is not None


def test_buyer_sees_its_parcels_and_their_custody_only(world: Ledger, client: FlaskClient,
                                                       auth: Auth) -> None:
    a, b = auth.headers("buyer"), auth.headers("buyer", "buyer-b")
    parcel = client.get(f"{API}/parcels/P3", headers=a).get_json()
    assert parcel["holder"] == "buyer-a" and parcel["on_hold"] is True
    assert [f["code"] for f in parcel["flags"]] == ["UNREGISTERED_SITE"]
    # P2 left buyer-a, who still sees it (held), and its way to the export.
    forward = client.get(f"{API}/parcels/P2/custody?direction=forward", headers=a).get_json()
    assert {"type": "export", "id": "GH-2008-0001"} in forward["nodes"]
    assert_problem(client.get(f"{API}/parcels/P1", headers=b), 403, "ROLE", "parcel_id")
    # A parcel that does not exist looks the same to a scoped caller as someone else's.
    assert_problem(client.get(f"{API}/parcels/NOPE", headers=b), 403, "ROLE", "parcel_id")
    assert_problem(client.get(f"{API}/parcels/NOPE", headers=auth.headers("auditor")), 404,
                   "NOT_FOUND", "parcel_id")
    mine = client.get(f"{API}/flags", headers=a).get_json()["flags"]
    assert [f["subject"]["id"] for f in mine] == ["P3"]
    assert client.get(f"{API}/flags", headers=b).get_json()["flags"] == []
    assert client.get(f"{API}/flags?status=resolved", headers=a).get_json()["flags"] == []


def test_exporter_sees_what_it_received_and_backward_to_the_site(
    world: Ledger, client: FlaskClient, auth: Auth
) -> None:
    x = auth.headers("exporter")
    trace = client.get(f"{API}/parcels/P2/custody", headers=x).get_json()
    assert {"type": "site", "id": "S-AKW"} in trace["nodes"]
    assert {"type": "zone", "id": "Z-AKW"} in trace["nodes"]
    assert client.get(f"{API}/parcels/P1", headers=x).status_code == 403


def test_map_and_stats(world: Ledger, client: FlaskClient, auth: Auth) -> None:
    sites = client.get(f"{API}/sites", headers=auth.headers("officer")).get_json()
    assert [f["id"] for f in sites["features"]] == ["S-AKW"]
    assert sites["features"][0]["geometry"]["type"] == "Point"
    zones = client.get(f"{API}/zones", headers=auth.headers("buyer")).get_json()
    assert zones["features"][0]["properties"]["licence_no"] == "GH-ML-AKW-1"
    stats = client.get(f"{API}/stats").get_json()["rows"]
    assert [(r["country"], r["purchases"], r["carats"]) for r in stats] == [
        (None, 1, 10.0), ("GH", 3, 30.0)]  # P3's site is unknown: no country
    trade = client.get(f"{API}/stats?kind=trade").get_json()["rows"]
    assert trade == [{"period": "2008", "country": "GH", "flow": "export", "hs_code": None,
                      "partner": None, "certificates": 1, "carats": 10.0, "value_usd": 1234.5,
                      "usd_per_ct": 123.45}]


def test_bundle_for_its_exporter(world: Ledger, client: FlaskClient, auth: Auth) -> None:
    if not bundle_available():
        pytest.skip("ledger.bundle.build (issue 6) is not there yet")
    response = client.get(f"{API}/exports/GH-2008-0001/bundle", headers=auth.headers("exporter"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "attachment" in response.headers["Content-Disposition"]
    bundle = response.get_json()
    assert bundle["certificate_no"] == "GH-2008-0001"
    assert {e["entry"]["kind"] for e in bundle["entries"]} >= {"export.declared",
                                                               "parcel.purchased"}
    components = client.get(f"{API}/openapi.json").get_json()["components"]
    Draft202012Validator({"$ref": "#/components/schemas/Bundle", "components": components}
                         ).validate(bundle)
    assert_problem(client.get(f"{API}/exports/GH-2008-0001/bundle",
                              headers=auth.headers("buyer")), 403, "ROLE", "role")
    assert_problem(client.get(f"{API}/exports/GH-2008-0001/bundle",
                              headers=auth.headers("exporter", "exp-two")), 403, "ROLE",
                   "certificate_no")


# -- the request log ------------------------------------------------------------------------

def test_request_log_is_json_and_never_holds_a_token(
    world: Ledger, client: FlaskClient, auth: Auth, caplog: pytest.LogCaptureFixture
) -> None:
    token = auth.token("buyer")
    with caplog.at_level(logging.INFO, logger="alluvial.http"):
        post(client, auth.headers("buyer"), "parcel.purchased", purchase("N1"))
        client.get(f"{API}/zones", headers={"Authorization": "Bearer alv_wrong"})
        client.get(f"{API}/stats?token={token}")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "alluvial.http"]
    assert [(x["method"], x["path"], x["status"]) for x in lines] == [
        ("POST", "/api/v1/events", 201), ("GET", "/api/v1/zones", 401),
        ("GET", "/api/v1/stats", 200)]
    assert lines[0]["actor"] == "buyer-a" and lines[0]["duration_ms"] >= 0
    assert not any(token in r.getMessage() or "alv_wrong" in r.getMessage()
                   for r in caplog.records)


# -- accounts on the command line (SPEC 6 `users add`, `tokens create`) -----------------------

def test_users_add_and_tokens_create(world: Ledger, runner: Any, client: FlaskClient) -> None:
    added = runner.invoke(cli, ["users", "add", "ama", "--role", "buyer", "--actor", "buyer-b"])
    assert added.exit_code == 0, added.output
    created = runner.invoke(cli, ["tokens", "create", "ama"])
    assert created.exit_code == 0, created.output
    token = created.output.splitlines()[-1]
    assert token.startswith("alv_") and len(token) > 40
    with world.engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(sa.select(accounts.Token.token_hash))]
    assert (hashlib.sha256(token.encode()).hexdigest(),) in stored
    assert not any(token in h for (h,) in stored)  # kept only as its hash
    response = post(client, {"Authorization": f"Bearer {token}"}, "parcel.purchased",
                    purchase("N1"))
    assert response.status_code == 201
    assert world.log.entry(response.get_json()["seq"]).actor == "buyer-b"


def test_admin_users_act_as_admin(world: Ledger, runner: Any) -> None:
    assert runner.invoke(cli, ["users", "add", "root", "--role", "admin"]).exit_code == 0
    with world.engine.connect() as conn:
        row = conn.execute(sa.select(accounts.User).where(accounts.User.name == "root")).one()
    assert (row.role, row.actor_id) == ("admin", "admin")


# (id, arguments, what the error names)
ACCOUNT_REFUSALS = [
    ("actor-with-another-role", ["users", "add", "x", "--role", "exporter", "--actor", "buyer-a"],
     "ROLE"),
    ("unregistered-actor", ["users", "add", "x", "--role", "buyer", "--actor", "ghost"],
     "UNKNOWN_REFERENCE"),
    ("buyer-without-actor", ["users", "add", "x", "--role", "buyer"], "SCHEMA"),
    ("unknown-role", ["users", "add", "x", "--role", "king", "--actor", "buyer-a"], "king"),
    ("user-taken", ["users", "add", "buyer.buyer-a", "--role", "buyer", "--actor", "buyer-a"],
     "DUPLICATE"),
    ("token-for-nobody", ["tokens", "create", "nobody"], "NOT_FOUND"),
]


@pytest.mark.parametrize(("args", "named"), [r[1:] for r in ACCOUNT_REFUSALS],
                         ids=[r[0] for r in ACCOUNT_REFUSALS])
def test_account_refusals_exit_2(world: Ledger, runner: Any, args: list[str],
                                 named: str) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert named in result.output
    assert "alv_" not in result.output


def test_database_unavailable_is_503_and_retryable(world: Ledger, client: FlaskClient,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*_: Any, **__: Any) -> None:
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("database is locked"))

    monkeypatch.setattr(world.log, "latest_checkpoint", down)
    response = client.get(f"{API}/checkpoint")
    assert_problem(response, 503, "DATABASE_UNAVAILABLE")
    assert response.headers["Retry-After"] == "1"


# -- group commit (webui.writer) ----------------------------------------------------------------

def _group(app: Any, events: list[Event], tokens: list[str | None] | None = None) -> list[Any]:
    from webui.group_commit import Pending

    pending = [Pending(e, token) for e, token in zip(events, tokens or [None] * len(events),
                                                      strict=True)]
    app.extensions["alluvial"].writer._commit(pending)
    assert all(p.done for p in pending)
    return [p.result if p.error is None else p.error for p in pending]


def test_a_refusal_in_a_group_leaves_the_rest_of_the_group_written(world: Ledger,
                                                                  app: Any) -> None:
    size = world.log.size()
    buy = [Event("parcel.purchased", "buyer-a", purchase(pid)) for pid in ("G1", "P1", "G2")]
    first, refused, last = _group(app, [*buy, Event("parcel.transferred", "buyer-a", {
        "parcel_id": "G1", "to_actor": "exp-gh", "date": "2008-04-01",
        "price": {"amount": 1, "currency": "USD"}})])[:3]
    assert refused.rule == "DUPLICATE"
    assert (first.entry.seq, last.entry.seq) == (size + 1, size + 2)
    assert first.checkpoint == last.checkpoint == world.log.latest_checkpoint()
    assert world.log.size() == size + 3  # G1, G2 and G1's transfer, judged after G1
    assert world.log.entry(size + 3).kind == "parcel.transferred"


def test_a_group_that_fails_is_written_event_by_event(world: Ledger, app: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(ledger: Any, group: Any) -> None:
        raise RuntimeError("the group's transaction failed")

    monkeypatch.setattr(group_commit, "commit_together", broken)
    size = world.log.size()
    results = _group(app, [Event("parcel.purchased", "buyer-a", purchase(pid))
                           for pid in ("G1", "P1")])
    assert results[0].entry.seq == size + 1 and results[0].checkpoint
    assert results[1].rule == "DUPLICATE"
    assert world.log.size() == size + 1


@pytest.mark.parametrize("together", [True, False], ids=["in-one-group", "event-by-event"])
def test_a_write_whose_token_was_deleted_is_refused_in_its_transaction(
        world: Ledger, app: Any, auth: Auth, monkeypatch: pytest.MonkeyPatch,
        together: bool) -> None:
    if not together:
        def broken(ledger: Any, group: Any) -> None:
            raise RuntimeError("the group's transaction failed")

        monkeypatch.setattr(group_commit, "commit_together", broken)
    size = world.log.size()
    live, gone = accounts.token_digest(auth.token("buyer")), accounts.token_digest("alv_gone")
    results = _group(app, [Event("parcel.purchased", "buyer-a", purchase(pid))
                           for pid in ("T1", "T2", "T3")], [live, gone, None])
    assert isinstance(results[1], accounts.Unauthenticated)
    assert (results[0].entry.seq, results[2].entry.seq) == (size + 1, size + 2)
    assert world.log.size() == size + 2


def test_cli_role_choices_are_the_account_roles() -> None:
    from ledger import accounts
    from ledger.cli import accounts as cli_accounts

    assert cli_accounts.ROLES == accounts.ROLES
