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

from ledger.errors import InputError, Problem
from ledger.i18n import N_

BASE_URI = "https://alluvial.local/schemas/"
KINDS: tuple[str, ...] = (
    "actor.registered", "licence.revoked", "licence.renewed", "zone.registered",
    "zone.amended", "zone.retired", "site.registered", "site.suspended", "parcel.purchased",
    "parcel.transferred", "parcel.split", "parcel.merged", "export.declared",
    "certificate.validated", "import.confirmed", "archive.imported", "flag.raised", "flag.resolved",
)
_NAME = re.compile(r"[a-z]+(?:\.[a-z]+)?")
_TYPES = {"number": N_("must be a number"), "integer": N_("must be a whole number"),
          "string": N_("must be text"), "object": N_("must be an object"),
          "array": N_("must be a list"), "boolean": N_("must be true or false"),
          "null": N_("must be null")}
_BOUNDS = {"minimum": N_("must be at least %(n)s"), "exclusiveMinimum": N_("must be greater "
           "than %(n)s"), "maximum": N_("must be at most %(n)s"),
           "exclusiveMaximum": N_("must be less than %(n)s")}
_ITEMS = {("minItems", True): N_("must list at least %(n)s item"),
          ("minItems", False): N_("must list at least %(n)s items"),
          ("maxItems", True): N_("must list at most %(n)s item"),
          ("maxItems", False): N_("must list at most %(n)s items")}
_DATE_PAIRS = (("valid_from", "valid_to"), ("licence_valid_from", "licence_valid_to"))
_GEOMETRIES = ("geometry", "location", "dig_location")
_MAX_EXACT_INT = 2**53
_UNCLOSED = N_("ring is not closed: its last position must repeat the first")
Words = tuple[str, dict[str, Any]]  # a template marked with N_ and its values (issue 19)


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


def x_error_template(custom: str) -> str:
    """An ``x-error`` text of the schemas as the template a page translates (issue 19):
    ``{value}`` and ``{value!r}`` become ``%(value)s``."""
    return custom.replace("%", "%%").replace("{value!r}", "%(value)s").replace(
        "{value}", "%(value)s")


def extract_x_errors(fileobj: Any, keywords: Any, comment_tags: Any,
                     options: Any) -> Any:
    """A Babel extractor (babel.cfg): the ``x-error`` texts of one schema file, as
    templates, so that the French catalogue has them."""
    text = fileobj.read().decode("utf-8")
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            custom = node.get("x-error")
            found.extend([custom] if isinstance(custom, str) else
                         [v for v in custom.values() if isinstance(v, str)]
                         if isinstance(custom, dict) else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(text))
    for custom in found:
        at = text.find(json.dumps(custom)[1:-1])
        yield (text.count("\n", 0, at) + 1 if at >= 0 else 1), None, x_error_template(custom), []


def _words(rule: str | None, rd: Any, value: Any, definition: dict[str, Any]) -> Words:
    """Plain words for one failed keyword, without the field name: a template marked with
    N_ and its values, so that a page can say them in its language."""
    custom = definition.get("x-error")
    if isinstance(custom, dict):
        custom = custom.get(rule)
    if isinstance(custom, str):
        shown = repr(value) if "{value!r}" in custom else str(value)
        return x_error_template(custom), ({"value": shown} if "{value" in custom else {})
    if rule == "required":
        return N_("required field is missing"), {}
    if rule == "type":
        types = [rd] if isinstance(rd, str) else rd
        if len(types) == 1 and types[0] in _TYPES:
            return _TYPES[types[0]], {}
        names = {"number": "a number", "integer": "a whole number", "string": "text",
                 "object": "an object", "array": "a list", "boolean": "true or false"}
        # Several types: every schema says these in its own x-error; English words here.
        return "must be %(types)s", {"types": " or ".join(names.get(t, t) for t in types)}
    if rule in _BOUNDS:
        return _BOUNDS[rule], {"n": _num(rd)}
    if rule == "multipleOf":
        if rd == 0.01:
            return N_("must have at most two decimals"), {}
        return N_("must be a multiple of %(n)s"), {"n": _num(rd)}
    if rule == "enum":
        return N_("must be one of %(choices)s"), {"choices": ", ".join(str(v) for v in rd)}
    if rule == "const":
        return N_("must be %(const)s"), {"const": repr(rd)}
    if rule == "minLength":
        return ((N_("must not be empty"), {}) if rd == 1 else
                (N_("must be at least %(n)s characters long"), {"n": rd}))
    if rule == "maxLength":
        return N_("must be at most %(n)s characters long"), {"n": rd}
    if rule in ("minItems", "maxItems"):
        return _ITEMS[rule, rd == 1], {"n": rd}
    if rule == "uniqueItems":
        dup = next((v for i, v in enumerate(value) if v in value[:i]), None)
        return N_("lists %(value)s more than once"), {"value": repr(dup)}
    if rule == "pattern":
        return N_("is not in the expected form"), {}
    if rule == "format":
        return ((N_("%(value)s is not a real date"), {"value": value}) if rd == "date" else
                (N_("must be a valid %(format)s"), {"format": rd}))
    return N_("does not match any allowed form"), {}


def _explain(exc: fastjsonschema.JsonSchemaValueException, prefix: str) -> list[dict[str, str]]:
    """One or more {field, message} for one fastjsonschema error; its path begins ``data``."""
    rest = (exc.name or "data")[4:]
    field = prefix + rest if prefix else rest.lstrip(".") or "event"
    sub = f"{field}." if field != "event" else ""
    value, definition = exc.value, exc.definition if isinstance(exc.definition, dict) else {}
    if exc.rule == "required" and isinstance(value, dict):
        missing = [k for k in exc.rule_definition if k not in value]
        template, values = _words("required", None, None, definition)
        return [Problem.said(sub + k, template, values) for k in missing]
    if exc.rule == "additionalProperties" and isinstance(value, dict):
        known = definition.get("properties", {})
        return [Problem.said(sub + k, N_("unknown field %(name)s"), {"name": repr(k)}, at=field)
                for k in value if k not in known]
    template, values = _words(exc.rule, exc.rule_definition, value, definition)
    return [Problem.said(field, template, values)]


def _refuse(errors: list[dict[str, str]]) -> None:
    first = errors[0]
    raise InputError(first["message"], rule="SCHEMA", field=first["field"], errors=errors,
                     template=getattr(first, "template", None),
                     params=getattr(first, "params", None))


def _number_problem(value: Any) -> Words | None:
    """Why a number breaks SPEC 4 "Numbers", in words, or None when it is one JCS can hash.

    An integer must be below 2**53 in magnitude (I-JSON, RFC 7493 2.2); so must a float,
    since every double of 2**53 or more is integral. A ``Decimal`` is a literal the
    parser could not read as a double exactly (ledger.log.canonical.parse): refused,
    never rounded, unless it is exactly a double (as from Python callers).
    """
    if isinstance(value, Decimal):
        if not value.is_finite() or abs(value) >= _MAX_EXACT_INT:
            return _TOO_LARGE, {"value": str(value)}
        if Decimal(repr(float(value))) != value:
            return N_("%(value)s has more digits than a JSON number can carry exactly; it "
                      "would be stored rounded"), {"value": str(value)}
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return N_("must be a finite number"), {}
    if abs(value) >= _MAX_EXACT_INT:
        shown = f"{value:.17g}" if isinstance(value, float) else str(value)
        if len(shown) > 24:
            shown = f"{shown[:20]}... ({len(shown)} characters)"
        return _TOO_LARGE, {"value": shown}
    return None


_TOO_LARGE = N_("%(value)s is too large: numbers must be below 2^53 (9007199254740992)")


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


_NUL = N_("must not contain the character U+0000 (NUL), which the database cannot store")
_KEY_NUL = N_("the key %(key)s must not contain the character U+0000 (NUL), which the "
              "database cannot store")


def _number_errors(value: Any, path: str) -> list[dict[str, str]]:
    """Every number SPEC 4 refuses in ``value``, and every text holding NUL (issue #15: a
    PostgreSQL ledger answered 500), each with its field path."""
    if isinstance(value, str):
        return [Problem.said(path, _NUL)] if "\x00" in value else []
    if isinstance(value, dict):
        keys = [Problem.said(f"{path}.{k!r}", _KEY_NUL, {"key": repr(k)}, at=path)
                for k in value if "\x00" in k]
        return keys + [e for k, v in value.items() for e in _number_errors(v, f"{path}.{k}")]
    if isinstance(value, (list, tuple)):
        return [e for i, v in enumerate(value) for e in _number_errors(v, f"{path}[{i}]")]
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return []
    problem = _number_problem(value)
    return [] if problem is None else [Problem.said(path, *problem)]


def _plain(value: Any, path: str) -> Any:
    """A copy with Decimals as floats; refuses numbers JSON (and JCS) cannot carry exactly."""
    if isinstance(value, dict):
        return {k: _plain(v, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return value
    if (problem := _number_problem(value)) is not None:
        _refuse([Problem.said(path, *problem)])
    return float(value) if isinstance(value, Decimal) else value


def _post_checks(payload: Any, prefix: str) -> list[dict[str, str]]:
    if not isinstance(payload, dict):
        return []
    errors: list[dict[str, str]] = []
    for start, end in _DATE_PAIRS:
        first, last = payload.get(start), payload.get(end)
        if isinstance(first, str) and isinstance(last, str) and last < first:
            errors.append(Problem.said(f"{prefix}.{end}", N_("must not be before %(start)s "
                                       "(%(first)s)"), {"start": start, "first": first}))
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
            errors.append(Problem.said(where, N_("must be numbers, not NaN")))
        unclosed = [Problem.said(at, _UNCLOSED) for at, ring in rings.items()
                    if ring[0] != ring[-1]]
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
    if place:  # GEOS's reason stays in its own (English) words
        return [Problem.said(where, N_("is not a valid polygon: %(reason)s at %(place)s"),
                             {"reason": text.strip(), "place": place.rstrip("]")})]
    return [Problem.said(where, N_("is not a valid polygon: %(reason)s"),
                         {"reason": text.strip()})]


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
        _refuse([Problem.said("kind", N_("%(kind)s is not an event kind; expected one of "
                              "%(kinds)s"), {"kind": repr(kind), "kinds": ", ".join(KINDS)})])
    _check(kind, payload, "payload")
    if errors := _post_checks(payload, "payload"):
        _refuse(errors)


def validate_event(event: object) -> None:
    """Refuse a malformed ingest line or API body ``{kind, actor?, payload, event_id?}``."""
    _check("event", event, "")
    if errors := _post_checks(event["payload"], "payload"):  # type: ignore[index]
        _refuse(errors)
