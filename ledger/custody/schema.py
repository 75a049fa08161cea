"""JSON Schemas of the event kinds (SPEC 4) and the checks that go with them.

The schemas live in ``schemas/`` at the repository root, one per kind plus
``defs.json``, ``event.json`` and ``entry.json``.  A wheel carries them as
``ledger/schemas/``, which is looked for first, then the source layout's
``schemas/``.  With setuptools: ``packages = ["ledger", "ledger.schemas", ...]``,
``package-dir = {"ledger.schemas" = "schemas"}`` and package-data
``"ledger.schemas" = ["*.json"]``.

Each validator is compiled once per process, on first use, with fastjsonschema.
Its ``multipleOf: 0.01`` test divides ``Decimal(repr(x))``, which is exact for
every two-decimal JSON number up to the schemas' maxima.  Subschemas may carry
``x-error``: the plain words for a failure, one text or one per keyword.
What JSON Schema cannot say (closed rings, finite coordinates, an end date not
before its start) is checked here after the schema passes.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema

from ledger.errors import InputError

BASE_URI = "https://alluvial.local/schemas/"
KINDS: tuple[str, ...] = (
    "actor.registered", "licence.revoked", "licence.renewed", "zone.registered",
    "zone.amended", "zone.retired", "site.registered", "site.suspended", "parcel.purchased",
    "parcel.transferred", "parcel.split", "parcel.merged", "export.declared",
    "certificate.validated", "import.confirmed", "archive.imported", "flag.raised", "flag.resolved",
)
_NAME = re.compile(r"[a-z]+(?:\.[a-z]+)?")
_TYPES = {"number": "a number", "integer": "a whole number", "string": "text",
          "object": "an object", "array": "a list", "boolean": "true or false", "null": "null"}
_DATE_PAIRS = (("valid_from", "valid_to"), ("licence_valid_from", "licence_valid_to"))
_GEOMETRIES = ("geometry", "location", "dig_location")
_MAX_EXACT_INT = 2**53
_UNCLOSED = "ring is not closed: its last position must repeat the first"


def _schema_dir() -> Path:
    here = Path(__file__).resolve().parents[1]  # the ledger package
    for folder in (here / "schemas", here.parent / "schemas"):
        if (folder / "defs.json").is_file():
            return folder
    raise FileNotFoundError(f"no schemas/ folder beside or inside {here}")


@cache
def _raw(name: str) -> dict[str, Any]:
    name = name.removesuffix(".json")
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a schema name: {name!r}")
    schema: dict[str, Any] = json.loads((_schema_dir() / f"{name}.json").read_text("utf-8"))
    return schema


def load_schema(name: str) -> dict[str, Any]:
    """A fresh copy of ``schemas/<name>.json`` (``parcel.purchased``, ``defs``, ``event``...)."""
    return copy.deepcopy(_raw(name))


def _fetch(uri: str) -> dict[str, Any]:
    """Resolve ``$ref``s to our own files only: never fetch anything from the network."""
    if not uri.startswith(BASE_URI):
        raise fastjsonschema.JsonSchemaDefinitionException(f"refusing to fetch schema {uri}")
    return _raw(uri[len(BASE_URI):])


def _real_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


@cache
def _validator(name: str) -> Callable[[Any], Any]:
    return fastjsonschema.compile(_raw(name), handlers={"https": _fetch, "http": _fetch},
                                  formats={"date": _real_date}, fast_fail=False)


def _num(n: Any) -> Any:
    return int(n) if isinstance(n, float) and n.is_integer() else n


def _words(rule: str | None, rd: Any, value: Any, definition: dict[str, Any]) -> str:
    """Plain words for one failed keyword, without the field name."""
    custom = definition.get("x-error")
    if isinstance(custom, dict):
        custom = custom.get(rule)
    if isinstance(custom, str):
        return custom.replace("{value!r}", repr(value)).replace("{value}", str(value))
    if rule == "required":
        return "required field is missing"
    if rule == "type":
        types = [rd] if isinstance(rd, str) else rd
        return "must be " + " or ".join(_TYPES.get(t, t) for t in types)
    if rule in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        how = {"minimum": "at least", "exclusiveMinimum": "greater than",
               "maximum": "at most", "exclusiveMaximum": "less than"}[rule]
        return f"must be {how} {_num(rd)}"
    if rule == "multipleOf":
        if rd == 0.01:
            return "must have at most two decimals"
        return f"must be a multiple of {_num(rd)}"
    if rule == "enum":
        return "must be one of " + ", ".join(str(v) for v in rd)
    if rule == "const":
        return f"must be {rd!r}"
    if rule == "minLength":
        return "must not be empty" if rd == 1 else f"must be at least {rd} characters long"
    if rule == "maxLength":
        return f"must be at most {rd} characters long"
    if rule in ("minItems", "maxItems"):
        least = "least" if rule == "minItems" else "most"
        return f"must list at {least} {rd} item{'s' * (rd != 1)}"
    if rule == "uniqueItems":
        dup = next((v for i, v in enumerate(value) if v in value[:i]), None)
        return f"lists {dup!r} more than once"
    if rule == "pattern":
        return "is not in the expected form"
    if rule == "format":
        return f"{value} is not a real date" if rd == "date" else f"must be a valid {rd}"
    return "does not match any allowed form"


def _explain(exc: fastjsonschema.JsonSchemaValueException, prefix: str) -> list[dict[str, str]]:
    """One or more {field, message} for one fastjsonschema error; its path begins ``data``."""
    rest = (exc.name or "data")[4:]
    field = prefix + rest if prefix else rest.lstrip(".") or "event"
    sub = f"{field}." if field != "event" else ""
    value, definition = exc.value, exc.definition if isinstance(exc.definition, dict) else {}
    if exc.rule == "required" and isinstance(value, dict):
        missing = [k for k in exc.rule_definition if k not in value]
        text = _words("required", None, None, definition)
        return [{"field": sub + k, "message": f"{sub}{k}: {text}"} for k in missing]
    if exc.rule == "additionalProperties" and isinstance(value, dict):
        known = definition.get("properties", {})
        return [{"field": sub + k, "message": f"{field}: unknown field {k!r}"}
                for k in value if k not in known]
    text = _words(exc.rule, exc.rule_definition, value, definition)
    return [{"field": field, "message": f"{field}: {text}"}]


def _refuse(errors: list[dict[str, str]]) -> None:
    first = errors[0]
    raise InputError(first["message"], rule="SCHEMA", field=first["field"], errors=errors)


def _number_problem(value: Any) -> str | None:
    """Why a number breaks SPEC 4 "Numbers", in words, or None when it is one JCS can hash.

    An integer must be below 2**53 in magnitude (I-JSON, RFC 7493 2.2); so must a float,
    since every double of 2**53 or more is integral. A ``Decimal`` is a literal the
    parser could not read as a double exactly (ledger.log.canonical.parse): refused,
    never rounded, unless it is exactly a double (as from Python callers).
    """
    if isinstance(value, Decimal):
        if not value.is_finite() or abs(value) >= _MAX_EXACT_INT:
            return f"{value} is too large: numbers must be below 2^53 (9007199254740992)"
        if Decimal(repr(float(value))) != value:
            return (f"{value} has more digits than a JSON number can carry exactly; "
                    "it would be stored rounded")
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if abs(value) >= _MAX_EXACT_INT:
        shown = f"{value:.17g}" if isinstance(value, float) else str(value)
        if len(shown) > 24:
            shown = f"{shown[:20]}... ({len(shown)} characters)"
        return f"{shown} is too large: numbers must be below 2^53 (9007199254740992)"
    return None


def _numbers_ok(value: Any) -> bool:
    """Whether every number in ``value`` is one SPEC 4 allows and no text holds NUL: the
    fast walk, without paths (a loop over a stack, a few µs for a purchase), run on every
    payload."""
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        v = pop()
        t = type(v)
        if t is str:
            if "\x00" in v:  # no NUL in text: PostgreSQL cannot store it
                return False
            continue
        if t is dict:
            if any("\x00" in k for k in v):
                return False
            extend(v.values())
        elif t is list or t is tuple:
            extend(v)
        elif t is int or t is float:
            if not -9007199254740992 < v < 9007199254740992:  # 2**53, folded
                return False
        elif t is not bool and v is not None and (
                not isinstance(v, (int, float, Decimal)) or _number_problem(v) is not None):
            return False
    return True


_NUL = "must not contain the character U+0000 (NUL), which the database cannot store"


def _number_errors(value: Any, path: str) -> list[dict[str, str]]:
    """Every number SPEC 4 refuses in ``value``, and every text holding NUL (issue #15: a
    PostgreSQL ledger answered 500), each with its field path."""
    if isinstance(value, str):
        return [{"field": path, "message": f"{path}: {_NUL}"}] if "\x00" in value else []
    if isinstance(value, dict):
        keys = [{"field": f"{path}.{k!r}", "message": f"{path}: the key {k!r} {_NUL}"}
                for k in value if "\x00" in k]
        return keys + [e for k, v in value.items() for e in _number_errors(v, f"{path}.{k}")]
    if isinstance(value, (list, tuple)):
        return [e for i, v in enumerate(value) for e in _number_errors(v, f"{path}[{i}]")]
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return []
    problem = _number_problem(value)
    return [] if problem is None else [{"field": path, "message": f"{path}: {problem}"}]


def _plain(value: Any, path: str) -> Any:
    """A copy with Decimals as floats; refuses numbers JSON (and JCS) cannot carry exactly."""
    if isinstance(value, dict):
        return {k: _plain(v, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return value
    if (problem := _number_problem(value)) is not None:
        _refuse([{"field": path, "message": f"{path}: {problem}"}])
    return float(value) if isinstance(value, Decimal) else value


def _post_checks(payload: Any, prefix: str) -> list[dict[str, str]]:
    if not isinstance(payload, dict):
        return []
    errors = []
    for start, end in _DATE_PAIRS:
        first, last = payload.get(start), payload.get(end)
        if isinstance(first, str) and isinstance(last, str) and last < first:
            errors.append({"field": f"{prefix}.{end}",
                           "message": f"{prefix}.{end}: must not be before {start} ({first})"})
    for key in _GEOMETRIES:
        geometry = payload.get(key)
        if not isinstance(geometry, dict):
            continue
        coords, kind = geometry["coordinates"], geometry["type"]
        where = f"{prefix}.{key}.coordinates"
        polygons = ([] if kind == "Point" else [("", coords)] if kind == "Polygon"
                    else [(f"[{p}]", polygon) for p, polygon in enumerate(coords)])
        rings = {f"{where}{p}[{i}]": ring for p, poly in polygons for i, ring in enumerate(poly)}
        positions = [coords] if kind == "Point" else [p for ring in rings.values() for p in ring]
        if any(c != c for position in positions for c in position):
            errors.append({"field": where, "message": f"{where}: must be numbers, not NaN"})
        unclosed = [{"field": at, "message": f"{at}: {_UNCLOSED}"}
                    for at, ring in rings.items() if ring[0] != ring[-1]]
        errors += unclosed
        if rings and not unclosed and not errors:
            errors += _invalid_polygon(geometry, f"{prefix}.{key}")
    if not _numbers_ok(payload):  # SPEC 4 "Numbers": free-form fields (evidence) included
        errors += _number_errors(payload, prefix)
    return errors


def _invalid_polygon(geometry: dict[str, Any], where: str) -> list[dict[str, str]]:
    """SPEC 5 screens points against polygons: a bow-tie or a ring crossing itself has no
    well-defined inside, so it is refused with shapely's (GEOS's) reason and place.

    shapely is imported here, not at the top: the ingest helper process and the web
    process import this module without it until a polygon comes.
    """
    import shapely
    import shapely.geometry

    reason = shapely.is_valid_reason(shapely.geometry.shape(geometry))
    if reason == "Valid Geometry":
        return []
    text, _, place = reason.partition("[")
    where_words = f" at {place.rstrip(']')}" if place else ""
    return [{"field": where, "message": f"{where}: is not a valid polygon: "
                                       f"{text.strip()}{where_words}"}]


def _check(name: str, data: Any, prefix: str) -> None:
    try:
        try:
            _validator(name)(data)
        except (ArithmeticError, TypeError, ValueError) as exc:
            if isinstance(exc, fastjsonschema.JsonSchemaException):
                raise
            # NaN, an infinity, a Decimal or a huge int: make the payload plain JSON and try again.
            _validator(name)(_plain(data, prefix))
    except fastjsonschema.JsonSchemaValuesException as exc:
        _refuse([e for err in exc.errors for e in _explain(err, prefix)])
    except fastjsonschema.JsonSchemaValueException as exc:
        _refuse(_explain(exc, prefix))


def validate_payload(kind: str, payload: object) -> None:
    """Refuse (InputError, rule SCHEMA) a payload that does not match its kind's schema."""
    if kind not in KINDS:
        message = f"kind: {kind!r} is not an event kind; expected one of {', '.join(KINDS)}"
        _refuse([{"field": "kind", "message": message}])
    _check(kind, payload, "payload")
    if errors := _post_checks(payload, "payload"):
        _refuse(errors)


def validate_event(event: object) -> None:
    """Refuse a malformed ingest line or API body ``{kind, actor?, payload, event_id?}``."""
    _check("event", event, "")
    if errors := _post_checks(event["payload"], "payload"):  # type: ignore[index]
        _refuse(errors)
