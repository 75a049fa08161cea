"""Event payload schemas (SPEC 4) and the clerk-readable refusals of ledger.schema."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.custody.schema import KINDS, load_schema, validate_event, validate_payload
from ledger.errors import InputError

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
SQUARE = [[[-5.6, 8.2], [-5.4, 8.2], [-5.4, 8.4], [-5.6, 8.4], [-5.6, 8.2]]]
PART = {"parcel_id": "P-2", "carats": 3.5, "stones": 4}

VALID = {
    "actor.registered": {
        "actor_id": "B-ACCRA-01",
        "name": "Accra Rough Ltd",
        "role": "buyer",
        "country": "GH",
        "licence_no": "GH/LBD/2023-017",
        "licence_valid_from": "2023-01-01",
        "licence_valid_to": "2025-12-31",
        "date": "2023-01-02",
    },
    "licence.revoked": {
        "zone_id": "Z-AKWATIA-7",
        "reason": "Licence fees unpaid",
        "date": "2024-03-01",
    },
    "zone.registered": {
        "zone_id": "Z-SEGUELA",
        "zone_type": "risk",
        "name": "Séguéla",
        "geometry": {"type": "MultiPolygon", "coordinates": [SQUARE]},
        "date": "2006-01-10",
        "valid_from": "2005-12-15",
        "valid_to": "2014-04-29",
        "category": "embargo",
        "source": "UNSC resolution 1643 (2005)",
    },
    "zone.amended": {
        "zone_id": "Z-AKWATIA-7",
        "effective": "2024-02-01",
        "geometry": {"type": "Polygon", "coordinates": SQUARE},
        "valid_to": None,
        "reason": "Boundary survey",
        "date": "2024-01-15",
    },
    "licence.renewed": {
        "zone_id": "Z-AKWATIA-7",
        "valid_from": "2025-01-01",
        "valid_to": None,
        "reason": "Licence renewed for ten years",
        "date": "2024-12-20",
    },
    "archive.imported": {
        "reason": "Paper register of the Akwatia buying office, 2004-2016",
        "file_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "lines": 1200,
        "date": "2026-11-30",
    },
    "zone.retired": {
        "zone_id": "Z-AKWATIA-7",
        "valid_to": "2024-06-30",
        "reason": "Licence area relinquished",
        "date": "2024-07-01",
    },
    "site.registered": {
        "site_id": "S-AKW-12",
        "name": "Akwatia pit 12",
        "location": {"type": "Point", "coordinates": [-0.805, 6.04]},
        "licence_no": "GH/ML/2019-044",
        "operator": "Akwatia Diggers Cooperative",
        "country": "GH",
        "date": "2023-02-01",
    },
    "site.suspended": {
        "site_id": "S-AKW-12",
        "reason": "Child labour reported",
        "date": "2024-05-02",
    },
    "parcel.purchased": {
        "parcel_id": "P-1",
        "site_id": "S-AKW-12",
        "seller": "Kofi Mensah",
        "date": "2024-05-01",
        "carats": 12.35,
        "stones": 31,
        "price": {"amount": 1234567.89, "currency": "USD"},
        "dig_location": {"type": "Point", "coordinates": [-0.81, 6.05]},
    },
    "parcel.transferred": {
        "parcel_id": "P-1",
        "to_actor": "E-ACCRA-02",
        "date": "2024-05-03",
        "price": {"amount": 0.07, "currency": "GHS"},
    },
    "parcel.split": {
        "parent_id": "P-1",
        "children": [PART, {"parcel_id": "P-3", "carats": 8.85, "stones": 27}],
        "date": "2024-05-04",
    },
    "parcel.merged": {
        "parent_ids": ["P-2", "P-3"],
        "child": {"parcel_id": "P-4", "carats": 12.35, "stones": 31},
        "date": "2024-05-05",
    },
    "export.declared": {
        "certificate_no": "GH-2024-00123",
        "exporter": "E-ACCRA-02",
        "importer": "Antwerp Rough NV",
        "destination": "BE",
        "hs_code": "7102.31",
        "parcel_ids": ["P-4"],
        "carats": 12.35,
        "value_usd": 18400.5,
        "date": "2024-05-06",
        "expires": "2024-07-05",
    },
    "certificate.validated": {
        "certificate_no": "GH-2024-00123",
        "date": "2024-05-07",
        "valuation_usd": 18950.0,
        "officer": "Ama Owusu",
    },
    "import.confirmed": {
        "certificate_no": "GH-2024-00123",
        "date": "2024-05-09",
        "carats_received": 12.35,
        "parcels_received": 1,
        "importer": "Antwerp Rough NV",
    },
    "flag.raised": {
        "flag_id": "F-1",
        "subject": {"type": "parcel", "id": "P-1"},
        "code": "IN_RISK_AREA",
        "detail": "Dig point lies in risk area Z-SEGUELA",
        "evidence": {"zone_id": "Z-SEGUELA"},
        "date": "2024-05-01",
    },
    "flag.resolved": {
        "flag_id": "F-1",
        "resolution": "Survey shows the pit is 40 km outside the area",
        "date": "2024-06-01",
    },
}


def refused(kind: str, payload: object) -> InputError:
    with pytest.raises(InputError) as info:
        validate_payload(kind, payload)
    assert info.value.rule == "SCHEMA"
    return info.value


def changed(kind: str, **fields: object) -> dict:
    payload = copy.deepcopy(VALID[kind])
    for name, value in fields.items():
        if value is DROP:
            del payload[name]
        else:
            payload[name] = value
    return payload


DROP = object()


def test_every_kind_has_a_schema_and_an_example() -> None:
    assert len(KINDS) == len(set(KINDS)) == 18
    assert set(VALID) == set(KINDS)
    names = {p.stem for p in SCHEMAS.glob("*.json")}
    assert names == set(KINDS) | {"defs", "event", "entry", "bundle"}


@pytest.mark.parametrize("name", [*KINDS, "defs", "event", "entry"])
def test_schema_is_valid_draft_07(name: str) -> None:
    schema = load_schema(name)
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$id"] == f"https://alluvial.local/schemas/{name}.json"
    if name in KINDS:
        assert "date" in schema["required"] and schema["additionalProperties"] is False


def test_load_schema_returns_a_copy() -> None:
    load_schema("parcel.purchased")["required"].clear()
    assert "carats" in load_schema("parcel.purchased.json")["required"]
    with pytest.raises(ValueError):
        load_schema("../errors")


@pytest.mark.parametrize("kind", KINDS)
def test_valid_example_passes(kind: str) -> None:
    validate_payload(kind, copy.deepcopy(VALID[kind]))
    validate_event(
        {"kind": kind, "actor": "B-ACCRA-01", "payload": VALID[kind], "event_id": "0b7e3c1a-uuid"}
    )


@pytest.mark.parametrize(
    "payload",
    [
        changed(
            "actor.registered",
            role="admin",
            country="ZZ",
            licence_no=DROP,
            licence_valid_from=DROP,
            licence_valid_to=DROP,
        ),
        changed(
            "zone.registered",
            zone_type="licence",
            category=DROP,
            source=DROP,
            licence_no="GH/ML/2019-044",
            holder="Akwatia Diggers Cooperative",
            valid_to=DROP,
        ),
        changed(
            "parcel.purchased", dig_location=DROP, carats=5, price={"amount": 0, "currency": "XOF"}
        ),
        changed(
            "parcel.purchased",
            carats=Decimal("2.50"),
            price={"amount": Decimal("10.10"), "currency": "USD"},
        ),
        changed("parcel.purchased", carats=10000000, stones=3.0),
    ],
    ids=[
        "admin-without-licence",
        "licence-zone-open-ended",
        "integers-and-zero-price",
        "decimals",
        "maxima",
    ],
)
def test_other_valid_payloads(payload: dict) -> None:
    kind = (
        "actor.registered"
        if "role" in payload
        else "zone.registered"
        if "zone_type" in payload
        else "parcel.purchased"
    )
    validate_payload(kind, payload)


UNCLOSED = [[[-5.6, 8.2], [-5.4, 8.2], [-5.4, 8.4], [-5.6, 8.4]]]
REFUSALS = [
    (
        "missing-required-field",
        "parcel.purchased",
        changed("parcel.purchased", carats=DROP),
        "payload.carats",
        "payload.carats: required field is missing",
    ),
    (
        "carats-as-text",
        "parcel.purchased",
        changed("parcel.purchased", carats="12.5"),
        "payload.carats",
        "payload.carats: must be a number",
    ),
    (
        "negative-carats",
        "parcel.purchased",
        changed("parcel.purchased", carats=-1.5),
        "payload.carats",
        "payload.carats: must be greater than 0",
    ),
    (
        "zero-carats",
        "parcel.split",
        changed("parcel.split", children=[dict(PART, carats=0)]),
        "payload.children[0].carats",
        "payload.children[0].carats: must be greater than 0",
    ),
    (
        "carats-too-large",
        "parcel.purchased",
        changed("parcel.purchased", carats=10000000.01),
        "payload.carats",
        "payload.carats: must be at most 10000000",
    ),
    (
        "three-decimals",
        "parcel.purchased",
        changed("parcel.purchased", carats=1.234),
        "payload.carats",
        "payload.carats: must have at most two decimals",
    ),
    (
        "three-decimals-as-decimal",
        "parcel.purchased",
        changed("parcel.purchased", carats=Decimal("1.234")),
        "payload.carats",
        "payload.carats: must have at most two decimals",
    ),
    (
        "nan-carats",
        "parcel.purchased",
        changed("parcel.purchased", carats=float("nan")),
        "payload.carats",
        "payload.carats: must be a finite number",
    ),
    (
        "fractional-stones",
        "parcel.purchased",
        changed("parcel.purchased", stones=2.5),
        "payload.stones",
        "payload.stones: must be a whole number of stones",
    ),
    (
        "no-stones",
        "parcel.merged",
        changed("parcel.merged", child=dict(PART, stones=0)),
        "payload.child.stones",
        "payload.child.stones: must be at least 1",
    ),
    (
        "bad-date",
        "parcel.purchased",
        changed("parcel.purchased", date="01/05/2024"),
        "payload.date",
        "payload.date: must be a date in the form YYYY-MM-DD (years 1900 to 2199)",
    ),
    (
        "feb-30",
        "parcel.purchased",
        changed("parcel.purchased", date="2024-02-30"),
        "payload.date",
        "payload.date: 2024-02-30 is not a real date",
    ),
    (
        "feb-29-not-leap",
        "site.suspended",
        changed("site.suspended", date="2023-02-29"),
        "payload.date",
        "payload.date: 2023-02-29 is not a real date",
    ),
    (
        "bad-currency",
        "parcel.transferred",
        changed("parcel.transferred", price={"amount": 5, "currency": "usd"}),
        "payload.price.currency",
        "payload.price.currency: must be a three-letter currency code such as USD",
    ),
    (
        "negative-price",
        "parcel.transferred",
        changed("parcel.transferred", price={"amount": -5, "currency": "USD"}),
        "payload.price.amount",
        "payload.price.amount: must be at least 0",
    ),
    (
        "bad-country",
        "site.registered",
        changed("site.registered", country="Ghana"),
        "payload.country",
        "payload.country: must be a two-letter country code such as GH",
    ),
    (
        "unknown-field",
        "parcel.purchased",
        changed("parcel.purchased", colour="yellow"),
        "payload.colour",
        "payload: unknown field 'colour'",
    ),
    (
        "bad-identifier",
        "parcel.purchased",
        changed("parcel.purchased", parcel_id="P 1"),
        "payload.parcel_id",
        "payload.parcel_id: must be an id of 1 to 64 letters, digits or . _ : - "
        "starting with a letter or digit (no / or \\)",
    ),
    (
        "blank-name",
        "site.registered",
        changed("site.registered", name="   "),
        "payload.name",
        "payload.name: must not be blank",
    ),
    (
        "bad-hs-code",
        "export.declared",
        changed("export.declared", hs_code="7102"),
        "payload.hs_code",
        "payload.hs_code: must be a Harmonized System code such as 7102.31",
    ),
    (
        "bad-certificate",
        "import.confirmed",
        changed("import.confirmed", certificate_no="2024-00123"),
        "payload.certificate_no",
        "payload.certificate_no: must be a KP certificate number: the two-letter "
        "country code, then the number, such as GH-2024-00123",
    ),
    (
        "validation-without-officer",
        "certificate.validated",
        changed("certificate.validated", officer=DROP),
        "payload.officer",
        "payload.officer: required field is missing",
    ),
    (
        "negative-valuation",
        "certificate.validated",
        changed("certificate.validated", valuation_usd=-1),
        "payload.valuation_usd",
        "payload.valuation_usd: must be at least 0",
    ),
    (
        "received-carats-three-decimals",
        "import.confirmed",
        changed("import.confirmed", carats_received=12.345),
        "payload.carats_received",
        "payload.carats_received: must have at most two decimals",
    ),
    (
        "parcels-received-not-whole",
        "import.confirmed",
        changed("import.confirmed", parcels_received=1.5),
        "payload.parcels_received",
        "payload.parcels_received: must be a whole number of parcels",
    ),
    (
        "confirmation-without-importer",
        "import.confirmed",
        changed("import.confirmed", importer=DROP),
        "payload.importer",
        "payload.importer: required field is missing",
    ),
    (
        "no-parcels-exported",
        "export.declared",
        changed("export.declared", parcel_ids=[]),
        "payload.parcel_ids",
        "payload.parcel_ids: must list at least one parcel",
    ),
    (
        "longitude-out-of-range",
        "site.registered",
        changed("site.registered", location={"type": "Point", "coordinates": [181, 6.04]}),
        "payload.location.coordinates[0]",
        "payload.location.coordinates[0]: must be a longitude between -180 and 180 (WGS 84)",
    ),
    (
        "latitude-out-of-range",
        "parcel.purchased",
        changed("parcel.purchased", dig_location={"type": "Point", "coordinates": [-0.81, -90.5]}),
        "payload.dig_location.coordinates[1]",
        "payload.dig_location.coordinates[1]: must be a latitude between -90 and 90 (WGS 84)",
    ),
    (
        "unclosed-ring",
        "zone.amended",
        changed("zone.amended", geometry={"type": "Polygon", "coordinates": UNCLOSED}),
        "payload.geometry.coordinates[0]",
        "payload.geometry.coordinates[0]: ring is not closed: its last position "
        "must repeat the first",
    ),
    (
        "unclosed-ring-in-multipolygon",
        "zone.registered",
        changed(
            "zone.registered", geometry={"type": "MultiPolygon", "coordinates": [SQUARE, UNCLOSED]}
        ),
        "payload.geometry.coordinates[1][0]",
        "payload.geometry.coordinates[1][0]: ring is not closed: its last "
        "position must repeat the first",
    ),
    (
        "ring-too-short",
        "zone.amended",
        changed(
            "zone.amended", geometry={"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}
        ),
        "payload.geometry.coordinates[0]",
        "payload.geometry.coordinates[0]: a ring needs at least 4 positions, "
        "the last repeating the first",
    ),
    (
        "line-is-not-a-zone",
        "zone.amended",
        changed("zone.amended", geometry={"type": "LineString", "coordinates": [[0, 0], [1, 1]]}),
        "payload.geometry.type",
        "payload.geometry.type: must be Point, Polygon or MultiPolygon",
    ),
    (
        "nan-coordinate",
        "site.registered",
        changed("site.registered", location={"type": "Point", "coordinates": [float("nan"), 6.0]}),
        "payload.location.coordinates",
        "payload.location.coordinates: must be numbers, not NaN",
    ),
    (
        "empty-children",
        "parcel.split",
        changed("parcel.split", children=[]),
        "payload.children",
        "payload.children: must list at least one new parcel",
    ),
    (
        "merge-with-one-parent",
        "parcel.merged",
        changed("parcel.merged", parent_ids=["P-2"]),
        "payload.parent_ids",
        "payload.parent_ids: a merge needs at least two parcels",
    ),
    (
        "merge-same-parent-twice",
        "parcel.merged",
        changed("parcel.merged", parent_ids=["P-2", "P-2"]),
        "payload.parent_ids",
        "payload.parent_ids: lists 'P-2' more than once",
    ),
    (
        "risk-zone-without-category",
        "zone.registered",
        changed("zone.registered", category=DROP),
        "payload.category",
        "payload.category: required for a risk zone",
    ),
    (
        "licence-zone-without-holder",
        "zone.registered",
        changed(
            "zone.registered", zone_type="licence", category=DROP, source=DROP, licence_no="L-1"
        ),
        "payload.holder",
        "payload.holder: required for a licence zone",
    ),
    (
        "risk-zone-with-licence-no",
        "zone.registered",
        changed("zone.registered", licence_no="L-1"),
        "payload.licence_no",
        "payload.licence_no: only a licence zone has this field",
    ),
    (
        "zone-ends-before-it-starts",
        "zone.registered",
        changed("zone.registered", valid_to="2005-01-01"),
        "payload.valid_to",
        "payload.valid_to: must not be before valid_from (2005-12-15)",
    ),
    (
        "buyer-without-licence",
        "actor.registered",
        changed("actor.registered", licence_no=DROP),
        "payload.licence_no",
        "payload.licence_no: required for a buyer or an exporter",
    ),
    (
        "bad-role",
        "actor.registered",
        changed("actor.registered", role="smuggler"),
        "payload.role",
        "payload.role: must be one of officer, buyer, exporter, auditor, authority, admin",
    ),
    (
        "revoke-both",
        "licence.revoked",
        changed("licence.revoked", actor_id="B-1"),
        "payload",
        "payload: must name either actor_id or zone_id (one of them, not both)",
    ),
    (
        "amend-nothing",
        "zone.amended",
        changed("zone.amended", geometry=DROP, valid_to=DROP),
        "payload",
        "payload: must give a new geometry, valid_from or valid_to",
    ),
    (
        "bad-flag-code",
        "flag.raised",
        changed("flag.raised", code="SMUGGLED"),
        "payload.code",
        "payload.code: must be one of OUTSIDE_LICENSED_ZONE, IN_RISK_AREA, LICENCE_INVALID, "
        "UNREGISTERED_SITE, TAINTED_INPUT, MASS_BALANCE, FOOTPRINT_ANOMALY, CAPACITY_ANOMALY, "
        "LATE_ENTRY, VALUE_MISMATCH, CONFIRMATION_MISMATCH",
    ),
    (
        "bad-flag-subject",
        "flag.raised",
        changed("flag.raised", subject={"type": "truck", "id": "T-1"}),
        "payload.subject.type",
        "payload.subject.type: must be one of parcel, site, export, actor, zone",
    ),
    (
        "payload-not-an-object",
        "import.confirmed",
        ["GH-2024-00123"],
        "payload",
        "payload: must be an object (a JSON {...} with the event's fields)",
    ),
    (
        "unknown-kind",
        "parcel.stolen",
        {},
        "kind",
        "kind: 'parcel.stolen' is not an event kind; expected one of " + ", ".join(KINDS),
    ),
]


@pytest.mark.parametrize(
    ("kind", "payload", "field", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusal_names_field_and_rule(kind: str, payload: object, field: str, message: str) -> None:
    error = refused(kind, payload)
    assert error.data["field"] == field
    assert error.message == message
    assert error.data["errors"][0] == {"field": field, "message": message}


def test_every_problem_is_listed() -> None:
    payload = changed(
        "parcel.purchased", carats=-1, date="2024-13-01", price={"amount": 1.001, "currency": "$"}
    )
    fields = [e["field"] for e in refused("parcel.purchased", payload).data["errors"]]
    assert sorted(fields) == [
        "payload.carats",
        "payload.date",
        "payload.price.amount",
        "payload.price.currency",
    ]


@pytest.mark.parametrize(
    ("event", "field", "message"),
    [
        (
            {"kind": "parcel.purchased", "payload": {**VALID["parcel.purchased"], "carats": 0}},
            "payload.carats",
            "payload.carats: must be greater than 0",
        ),
        (
            {"kind": "parcel.stolen", "payload": {}},
            "kind",
            "kind: 'parcel.stolen' is not an event kind; expected one of " + ", ".join(KINDS),
        ),
        (
            {"kind": "site.suspended", "actor": "A", "payload": VALID["site.suspended"], "seq": 4},
            "seq",
            "event: unknown field 'seq'",
        ),
        ({"kind": "site.suspended"}, "payload", "payload: required field is missing"),
        (
            {
                "kind": "zone.amended",
                "payload": {
                    **VALID["zone.amended"],
                    "geometry": {"type": "Polygon", "coordinates": UNCLOSED},
                },
            },
            "payload.geometry.coordinates[0]",
            "payload.geometry.coordinates[0]: ring is not closed: "
            "its last position must repeat the first",
        ),
    ],
    ids=["payload-rule", "unknown-kind", "unknown-envelope-field", "no-payload", "post-check"],
)
def test_event_refusals(event: dict, field: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        validate_event(event)
    assert (info.value.data["field"], info.value.message) == (field, message)


def test_entry_schema_describes_a_log_entry() -> None:
    registry = {load_schema(n)["$id"]: load_schema(n) for n in [*KINDS, "defs"]}
    import referencing

    resources = referencing.Registry().with_contents(
        registry.items(), default_specification=referencing.jsonschema.DRAFT7
    )
    validator = jsonschema.Draft7Validator(
        load_schema("entry"),
        registry=resources,
        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER,
    )
    entry = {
        "seq": 1,
        "ts": "2024-05-01T10:00:00Z",
        "kind": "actor.registered",
        "actor": "admin",
        "payload": {
            "actor_id": "admin",
            "name": "Administrator",
            "role": "admin",
            "country": "ZZ",
            "date": "2024-05-01",
        },
        "event_id": None,
        "prev": "0" * 64,
    }
    validator.validate(entry)
    assert not validator.is_valid({**entry, "prev": "0" * 63})
    assert not validator.is_valid({**entry, "payload": {**entry["payload"], "role": "king"}})


def two_decimals(cents: int) -> float:
    """The float a JSON parser makes of the decimal text of ``cents`` / 100."""
    return json.loads(f"{cents // 100}.{cents % 100:02d}")


@settings(max_examples=400)
@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=0, max_value=10**14))
def test_every_two_decimal_amount_in_range_passes(carats: int, amount: int) -> None:
    payload = changed(
        "parcel.purchased",
        carats=two_decimals(carats),
        price={"amount": two_decimals(amount), "currency": "USD"},
    )
    validate_payload("parcel.purchased", payload)


def three_decimals(mills: int) -> float:
    return json.loads(f"{mills // 1000}.{mills % 1000:03d}")


# Mills that are not whole cents, from 0.001 up to the carats maximum.
CARAT_MILLS = st.integers(min_value=1, max_value=10**10).filter(lambda m: m % 10)


@settings(max_examples=400)
@given(
    CARAT_MILLS, CARAT_MILLS | st.integers(min_value=1, max_value=10**15).filter(lambda m: m % 10)
)
def test_every_three_decimal_amount_fails(carat_mills: int, money_mills: int) -> None:
    error = refused(
        "parcel.purchased", changed("parcel.purchased", carats=three_decimals(carat_mills))
    )
    assert error.message == "payload.carats: must have at most two decimals"
    payload = changed("export.declared", value_usd=three_decimals(money_mills))
    assert refused("export.declared", payload).data["field"] == "payload.value_usd"


@pytest.mark.parametrize(
    "text",
    [
        "0.01",
        "0.07",
        "0.29",
        "12.35",
        "19.01",
        "1234567.89",
        "9999999.99",
        "999999999999.99",
        "1000000000000",
    ],
)
def test_awkward_floats_pass(text: str) -> None:
    validate_payload("export.declared", changed("export.declared", value_usd=json.loads(text)))
