"""ledger.log.canonical: byte-identical to rfc8785, RFC 8785's own answers, strict parse."""

from __future__ import annotations

import enum
import json
import math
import struct
from collections import OrderedDict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import InputError
from ledger.log import canonical
from ledger.log.canonical import (
    CanonicalizationError,
    FloatDomainError,
    IntegerDomainError,
    canonical_bytes,
    canonical_text,
    parse,
)

SAMPLE_EVENTS = Path(__file__).resolve().parents[1] / "sample_data" / "scenario" / "events.jsonl"
SAFE = 2**53 - 1


def assert_same(value: Any) -> None:
    """Ours agrees with the reference: same bytes, or both refuse (ours with our class)."""
    try:
        expected: bytes | None = rfc8785.dumps(value)
    except (ValueError, RecursionError):
        expected = None
    if expected is None:
        with pytest.raises(CanonicalizationError):
            canonical_bytes(value)
        with pytest.raises(CanonicalizationError):
            canonical_text(value)
    else:
        assert canonical_bytes(value) == expected
        assert canonical_text(value) == expected.decode("utf-8")


# --- generated values -------------------------------------------------------------------

# Full Unicode without surrogates; controls, quotes and backslashes are in it, but rare
# in a uniform draw, so they are mixed in explicitly along with the characters where
# escaping rules could differ (U+007F, U+2028/9) and where key order could (U+E000+).
TRICKY = (
    "\x00\x01\x08\t\n\x0b\x0c\r\x1f \"\\/\x7f\x80\u2028\u2029"
    "\ud7ff\ue000\ufb33\uffff\U00010000\U0001f600\U0010ffff"
)
chars = st.one_of(
    st.characters(exclude_categories=("Cs",)),
    st.sampled_from(TRICKY),
)
texts = st.text(chars, max_size=12)
ascii_keys = st.text(st.characters(max_codepoint=0x7F), max_size=8)

# The float boundaries of both notations and their neighbours.
EDGES = [1e-7, 1e-6, 1e-5, 1e-4, 1e15, 1e16, 1e17, 1e20, 1e21, 1e22, 2.0**53, 2.0**63,
         5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 0.5, 1.0]
edge_floats = st.sampled_from(
    [y for x in EDGES for y in (x, math.nextafter(x, 0), math.nextafter(x, math.inf))
     if math.isfinite(y)]
).flatmap(lambda x: st.sampled_from([x, -x]))
# Floats our schemas admit (the fast path): money, carats, coordinates, integral.
schema_floats = st.one_of(
    st.integers(-(10**14), 10**14).map(lambda cents: cents / 100),  # money, up to 1e12
    st.integers(-18 * 10**11, 18 * 10**11).map(lambda n: n / 10**10),  # GeoJSON degrees
    st.integers(-(10**16), 10**16).map(float),  # integral, incl. 0.0 and > 2**53
    st.floats(min_value=-1e15, max_value=1e15),  # incl. -0.0
)
floats = st.one_of(
    schema_floats,
    st.floats(allow_nan=False, allow_infinity=False),  # incl. subnormals, huge
    st.integers(-(10**22), 10**22).map(float),  # integral up to beyond 1e21
    edge_floats,
)


def json_like(keys: st.SearchStrategy[str], numbers: st.SearchStrategy[float]) -> Any:
    """Nested lists, tuples and objects of text, safe ints, floats, bools and null."""
    scalars = st.one_of(texts, st.integers(-SAFE, SAFE), numbers, st.booleans(), st.none())
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5),
            st.tuples(inner, inner),
            st.dictionaries(keys, inner, max_size=6),
        ),
        max_leaves=25,
    )


json_values = st.one_of(
    json_like(ascii_keys, schema_floats),  # what our schemas admit: all on the fast path
    json_like(st.one_of(ascii_keys, texts), floats),  # anything: mostly fallback
)
scalars = st.one_of(texts, st.integers(-SAFE, SAFE), floats, st.booleans(), st.none())
keys = st.one_of(ascii_keys, texts)

# Values the reference refuses, mixed into otherwise valid ones.
bad_scalars = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, Decimal("1.5"), b"x", {1, 2}, object()]),
    st.one_of(st.integers(min_value=SAFE + 1), st.integers(max_value=-SAFE - 1)),
    st.text(st.characters(categories=("Cs",)), min_size=1, max_size=2),  # lone surrogates
)
bad_keys = st.one_of(
    st.text(st.characters(categories=("Cs",)), min_size=1, max_size=2),
    st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False),
)
maybe_bad_values = st.recursive(
    st.one_of(scalars, bad_scalars),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(keys, bad_keys), inner, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=800, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_identical_to_rfc8785(value: Any) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)
    assert canonical_text(value) == rfc8785.dumps(value).decode("utf-8")


@settings(max_examples=250, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(maybe_bad_values)
def test_refuses_what_rfc8785_refuses(value: Any) -> None:
    assert_same(value)


@settings(max_examples=300, deadline=None, database=None)
@given(floats)
def test_every_float_as_rfc8785_writes_it(x: float) -> None:
    assert canonical_bytes(x) == rfc8785.dumps(x)
    assert canonical_bytes({"n": [x]}) == rfc8785.dumps({"n": [x]})


# --- RFC 8785's own examples ------------------------------------------------------------

# RFC 8785 Appendix B, "Number Serialization Samples": IEEE 754 bits -> JSON number.
APPENDIX_B = [
    ("0000000000000000", "0"),  # Zero
    ("8000000000000000", "0"),  # Minus zero
    ("0000000000000001", "5e-324"),  # Min pos number
    ("8000000000000001", "-5e-324"),  # Min neg number
    ("7fefffffffffffff", "1.7976931348623157e+308"),  # Max pos number
    ("ffefffffffffffff", "-1.7976931348623157e+308"),  # Max neg number
    ("4340000000000000", "9007199254740992"),  # Max pos int
    ("c340000000000000", "-9007199254740992"),  # Max neg int
    ("4430000000000000", "295147905179352830000"),  # ~2**68
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),  # Round to even
]


def from_bits(hex_bits: str) -> float:
    return struct.unpack(">d", bytes.fromhex(hex_bits))[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_rfc8785_appendix_b_numbers(bits: str, expected: str) -> None:
    x = from_bits(bits)
    assert canonical_bytes(x) == expected.encode()
    assert canonical_bytes({"n": x}) == b'{"n":' + expected.encode() + b"}"


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_rfc8785_appendix_b_nan_and_infinity_refused(bits: str) -> None:
    with pytest.raises(FloatDomainError):
        canonical_bytes({"n": from_bits(bits)})


# RFC 8785 3.2.2, the input; 3.2.3, its canonical form (line break removed).
RFC_3_2_2_INPUT = r"""
{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}
"""
RFC_3_2_3_OUTPUT = (
    r'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    r'"string":"€$\u000f\nA'
    "'"
    r'B\"\\\\\"/"}'
)


def test_rfc8785_section_3_2_example() -> None:
    value = parse(RFC_3_2_2_INPUT)
    assert canonical_bytes(value) == RFC_3_2_3_OUTPUT.encode("utf-8")
    assert canonical_text(value) == RFC_3_2_3_OUTPUT


def test_rfc8785_section_3_2_3_sorting_example() -> None:
    # RFC 8785 3.2.3: properties sorted by UTF-16 code units; the emoji (D83D DE00)
    # sorts before U+FB33 although its code point is larger.
    value = parse(r"""
    {
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }
    """)
    expected = [
        "Carriage Return", "One", "Control", "Latin Small Letter O With Diaeresis",
        "Euro Sign", "Emoji: Grinning Face", "Hebrew Letter Dalet With Dagesh",
    ]
    out = canonical_bytes(value)
    assert list(json.loads(out).values()) == expected
    assert out == rfc8785.dumps(value)
    assert out.startswith(b'{"\\r":"Carriage Return","1":"One","\xc2\x80":"Control",')


# --- divergences between json and JCS, one by one ---------------------------------------


def test_every_code_point_escaped_as_rfc8785_does() -> None:
    # RFC 8785 3.2.2.2: "\\" and '"' escaped, \b \t \n \f \r short, other C0 controls
    # as lowercase \u00xx; everything else (U+007F, U+2028...) as is, in UTF-8.
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert canonical_bytes(everything) == rfc8785.dumps(everything)
    controls = "".join(chr(c) for c in range(0x20)) + '"\\\x7f\u2028\u2029/'
    assert canonical_bytes({"s": controls}) == (
        b'{"s":"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b'
        b'\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017'
        b'\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\"\\\\\x7f'
        b'\xe2\x80\xa8\xe2\x80\xa9/"}'
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12.0, b"12"), (-12.0, b"-12"), (-0.0, b"0"), (0.0, b"0"), (1e12, b"1000000000000"),
        (2.5, b"2.5"), (1234.56, b"1234.56"), (0.01, b"0.01"), (-6.6712345678, b"-6.6712345678"),
        (1e16, b"10000000000000000"), (1.5e20, b"150000000000000000000"), (1e21, b"1e+21"),
        (1e-5, b"0.00001"), (1e-6, b"0.000001"), (1e-7, b"1e-7"), (1.5e-9, b"1.5e-9"),
        (9007199254740994.0, b"9007199254740994"), (True, b"true"), (False, b"false"),
        (None, b"null"), (SAFE, b"9007199254740991"), (-SAFE, b"-9007199254740991"),
        ((1, "a"), b'[1,"a"]'), ({"b": (0.5, 3.0)}, b'{"b":[0.5,3]}'),
    ],
)
def test_numbers_and_literals(value: Any, expected: bytes) -> None:
    assert canonical_bytes(value) == expected == rfc8785.dumps(value)


def test_integral_floats_are_rewritten_in_a_copy() -> None:
    value = {"carats": 12.0, "coords": [1.0, 2.5], "nested": {"x": -0.0}}
    snapshot = repr(value)
    assert canonical_bytes(value) == b'{"carats":12,"coords":[1,2.5],"nested":{"x":0}}'
    assert repr(value) == snapshot  # the caller's value is untouched


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (2**53, IntegerDomainError), (-(2**53), IntegerDomainError),
        ({"a": [2**64]}, IntegerDomainError), (math.nan, FloatDomainError),
        ({"a": math.inf}, FloatDomainError), ([-math.inf], FloatDomainError),
        ({1: "a"}, CanonicalizationError), ({"a": 1, None: 2}, CanonicalizationError),
        ({"a": {b"k": 1}}, CanonicalizationError), ("\ud800", CanonicalizationError),
        ({"a": ["x\udfff"]}, CanonicalizationError), ({"\ud800": 1}, CanonicalizationError),
        ({"a": 1, "b\udc00": 2}, CanonicalizationError), (Decimal("1.5"), CanonicalizationError),
        ({"a": {1, 2}}, CanonicalizationError), ({"a": object()}, CanonicalizationError),
    ],
)
def test_refusals(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        canonical_bytes(value)
    with pytest.raises(error):
        canonical_text(value)
    assert issubclass(error, ValueError)
    with pytest.raises(ValueError):
        rfc8785.dumps(value)


class Colour(enum.Enum):
    RED = "red"


class Kind(enum.StrEnum):
    PURCHASE = "parcel.purchased"


class Count(enum.IntEnum):
    ONE = 1


@pytest.mark.parametrize(
    "value",
    [
        {"kind": Kind.PURCHASE}, {Kind.PURCHASE: 1}, {"n": Count.ONE}, [True, False, 1, 0],
        OrderedDict([("b", 1), ("a", 2)]), {"a": OrderedDict([("z", 1.0)])}, {"c": Colour.RED},
    ],
)
def test_subclasses_as_rfc8785(value: Any) -> None:
    assert_same(value)


def test_cycles_raise_recursion_error_like_rfc8785() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(RecursionError):
        rfc8785.dumps(cycle)
    with pytest.raises(RecursionError):
        canonical_bytes(cycle)


# --- our payloads -----------------------------------------------------------------------

PURCHASE = {
    "kind": "parcel.purchased",
    "actor": "buyer-sl-koidu",
    "event_id": "7d3f1c0e-2b1a-4c55-9a61-0d1f4b2b9e10",
    "payload": {
        "parcel_id": "SL-P00000001",
        "site_id": "SL-S-KON-04",
        "seller": "Momoh Conteh — Kɔnɔ \"Big\" \\ digger\t🙂",
        "date": "2004-01-01",
        "carats": 38.94,
        "stones": 21,
        "price": {"amount": 14070.46, "currency": "USD"},
        "dig_location": {"type": "Point", "coordinates": [-10.97396, 8.69553]},
        "notes": None,
        "sealed": True,
    },
}


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"carats": 12.0, "stones": 0},
        {"price": {"amount": 1e12, "currency": "USD"}},
        {"price": {"amount": 0.01, "currency": "EUR"}},
        {"price": {"amount": 1234.56, "currency": "USD"}, "carats": 2.5},
        {"dig_location": {"type": "Point", "coordinates": [-6.6712345678, 0.0]}},
        {"dig_location": {"type": "Point", "coordinates": [-0.0, -90.0]}},
    ],
)
def test_custody_event_identical_and_fast(change: dict[str, Any],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    event = {**PURCHASE, "payload": {**PURCHASE["payload"], **change}}  # type: ignore[dict-item]
    expected = rfc8785.dumps(event)
    monkeypatch.setattr(canonical, "_reference", _no_fallback)
    assert canonical_bytes(event) == expected
    assert canonical_text(event) == expected.decode("utf-8")


def _no_fallback(obj: Any) -> bytes:
    raise AssertionError("a custody payload left the fast path")


def test_non_ascii_key_takes_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    reference = canonical._reference

    def spy(obj: Any) -> bytes:
        calls.append(obj)
        return reference(obj)

    monkeypatch.setattr(canonical, "_reference", spy)
    value = {"\ufb33": 1, "\U0001f600": 2, "a": 3}
    assert canonical_bytes(value) == rfc8785.dumps(value) == (
        '{"a":3,"\U0001f600":2,"\ufb33":1}'.encode()
    )
    assert calls == [value]


def test_sample_scenario_identical() -> None:
    lines = SAMPLE_EVENTS.read_text(encoding="utf-8").splitlines()
    assert lines
    for line in lines:
        event = parse(line)
        assert canonical_bytes(event) == rfc8785.dumps(event), line


# --- parse ------------------------------------------------------------------------------


def test_parse_reads_json() -> None:
    assert parse('{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert parse(b'{"s": "\xc3\xa9\\ud83d\\ude00"}') == {"s": "é\U0001f600"}
    assert parse(" 12 ") == 12
    assert parse('["\\\\ud800", "\\u00e9"]') == ["\\ud800", "é"]  # escaped backslash: no surrogate


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"a": 1, "a": 2}', "a"),
        ('{"a": 1, "b": {"c": 1, "d": 2, "c": 3}}', "c"),
        ('[{"x": 1}, {"price": 1, "price": 1}]', "price"),
        ('{"\\u00e9": 1, "é": 2}', "é"),
    ],
)
def test_parse_refuses_duplicate_keys(text: str, key: str) -> None:
    with pytest.raises(InputError, match="more than once") as caught:
        parse(text)
    assert repr(key) in str(caught.value)
    assert caught.value.rule == "SCHEMA"


@pytest.mark.parametrize("word", ["NaN", "Infinity", "-Infinity"])
def test_parse_refuses_nan_and_infinity(word: str) -> None:
    with pytest.raises(InputError, match=f"{word} is not a JSON number"):
        parse('{"amount": ' + word + "}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1,}', "not valid JSON"),
        ("", "not valid JSON"),
        ('{"a": 1} x', "not valid JSON"),
        (b'{"a": "\xff"}', "not UTF-8"),
        ('{"a": "\\ud800"}', "lone surrogate"),
        ('{"\\udc00x": 1}', "lone surrogate"),
        ('{"a": "\ud800"}', "lone surrogate"),
        ("1" * 5000, "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_parse_refuses_malformed(text: str | bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse(text)


def test_parse_then_canonical_round_trip() -> None:
    text = canonical_text(PURCHASE)
    assert parse(text) == PURCHASE
    assert canonical_text(parse(text)) == text
