"""The OpenAPI 3.1 document of `/api/v1`, generated from the code and `schemas/`.

Each API view carries an :class:`Op` (the :func:`operation` decorator): its
summary, the access area of ``ledger.accounts.READS`` (which decides its security
and its 401/403 answers), its query parameters, its request body and its success
responses. :func:`document` walks the app's URL map and turns every such view
into an operation. The event body is a ``oneOf`` over the event kinds, each with
its payload schema from ``schemas/<kind>.json`` (and ``schemas/defs.json``), the
log entry is ``schemas/entry.json``: the files are the contract, never copied
by hand. Errors are RFC 9457 problems; which statuses an operation answers
follows from what it takes (a body, query parameters, path parameters).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

from flask import Blueprint, Flask, current_app

from ledger.accounts import READS
from ledger.custody.schema import BASE_URI, KINDS, load_schema

PREFIX = "/api/v1"
MAX_SEQ = 2**63 - 1
F = TypeVar("F", bound=Callable[..., Any])
_RULE_ARG = re.compile(r"<(?:(\w+):)?(\w+)>")


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True)
class Op:
    summary: str
    area: str
    ok: dict[int, str]  # status -> component schema name
    query: tuple[Param, ...] = ()
    body: str | None = None
    refusals: tuple[int, ...] = ()  # statuses beyond those that follow from the inputs
    cacheable: bool = False
    text: bool = False  # also answers text/plain for `Accept: text/plain`
    csv: bool = False  # also answers text/csv for `Accept: text/csv` (or format=csv)
    path: dict[str, str] = field(default_factory=dict)  # path parameter -> component
    description: str = ""
    media: str = "application/json"  # the success body's type (the flags feed: Atom XML)


def operation(summary: str, area: str, ok: dict[int, str], **more: Any) -> Callable[[F], F]:
    """Describe an API view for the OpenAPI document."""
    op = Op(summary, area, ok, **more)

    def attach(view: F) -> F:
        view.openapi = op  # type: ignore[attr-defined]
        return view

    return attach


def integer(description: str, required: bool = False, minimum: int = 1,
            maximum: int | None = None, name: str = "") -> Param:
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    return Param(name, schema, description, required)


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# -- the JSON Schemas of schemas/, as components -----------------------------------------

def _rewrite(node: Any, home: str) -> Any:
    """A draft-07 schema of schemas/ as an OpenAPI 3.1 (JSON Schema 2020-12) one: every
    `$ref` points at its component, tuple `items` become `prefixItems`, headers go."""
    if isinstance(node, list):
        return [_rewrite(n, home) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("$schema", "$id", "definitions"):
            continue
        if key == "items" and isinstance(value, list):
            key = "prefixItems"
        elif key == "additionalItems":
            key = "items"
        if key == "$ref":
            file, _, pointer = value.removeprefix(BASE_URI).partition("#")
            name = file.removesuffix(".json") or home
            value = "#/components/schemas/" + (
                f"{name}.{pointer.rsplit('/', 1)[1]}" if pointer else name)
        out[key] = _rewrite(value, home)
    return out


def _file_components(name: str) -> dict[str, Any]:
    schema = load_schema(name)
    found = {f"{name}.{k}": _rewrite(v, name)
             for k, v in schema.get("definitions", {}).items()}
    if name != "defs":
        found[name] = _rewrite(schema, name)
    return found


def _event_body() -> dict[str, Any]:
    """POST /events: {kind, payload, event_id?}, one alternative per kind (no `actor`)."""
    event = _rewrite(load_schema("event"), "event")
    return {"oneOf": [{
        "type": "object", "title": kind, "required": ["kind", "payload"],
        "properties": {"kind": {"const": kind}, "payload": ref(kind),
                       "event_id": event["properties"]["event_id"]},
        "additionalProperties": False,
    } for kind in event["properties"]["kind"]["enum"]]}


def _entry() -> dict[str, Any]:
    """The stored entry of schemas/entry.json; its payload, already judged, is any object."""
    entry: dict[str, Any] = _rewrite(load_schema("entry"), "entry")
    entry.pop("allOf", None)
    return entry


HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
NODE_TYPES = ["parcel", "site", "export", "zone"]
_FLAG_RAISED = {"type": "object", "required": ["flag_id", "code", "subject", "detail"],
                "properties": {"flag_id": {"type": "string"}, "code": {"type": "string"},
                               "subject": ref("defs.subject"), "detail": {"type": "string"}}}
_FEATURE = {"type": "object", "required": ["type", "id", "geometry", "properties"],
            "properties": {"type": {"const": "Feature"}, "id": {"type": "string"},
                           "geometry": {"type": "object", "required": ["type", "coordinates"]},
                           "properties": {"type": "object"}}}
_COUNT = {"type": "integer", "minimum": 0}
_CARATS = {"type": "number", "minimum": 0}

# Response bodies: what the views serialise (ledger objects' to_json and the readers).
RESPONSES: dict[str, dict[str, Any]] = {
    "Problem": {
        "type": "object", "required": ["type", "title", "status", "detail"],
        "description": "RFC 9457 problem details; `type` is the SPEC 4 rule id.",
        "properties": {
            "type": {"type": "string"}, "title": {"type": "string"},
            "status": {"type": "integer"}, "detail": {"type": "string"},
            "field": {"type": "string"}, "seq": {"type": "integer"},
            "errors": {"type": "array", "items": {
                "type": "object", "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
        },
    },
    "WriteResult": {
        "type": "object", "required": ["seq", "entry_hash", "flags", "checkpoint"],
        "properties": {"seq": {"type": "integer", "minimum": 1}, "entry_hash": HEX64,
                       "flags": {"type": "array", "items": _FLAG_RAISED},
                       "checkpoint": {"type": "string"}},
    },
    "Checkpoint": {
        "type": "object", "required": ["origin", "size", "root", "time", "checkpoint", "vkey"],
        "properties": {"origin": {"type": "string"}, "size": {"type": "integer", "minimum": 0},
                       "root": HEX64, "time": {"type": "string", "format": "date-time"},
                       "checkpoint": {"type": "string", "description": "The signed note."},
                       "vkey": {"type": "string", "description": "The log's verifier key."}},
    },
    "InclusionProof": {
        "type": "object",
        "required": ["seq", "leaf_index", "tree_size", "leaf_hash", "root", "proof"],
        "properties": {"seq": {"type": "integer"}, "leaf_index": {"type": "integer"},
                       "tree_size": {"type": "integer"}, "leaf_hash": HEX64, "root": HEX64,
                       "proof": {"type": "array", "items": HEX64}},
    },
    "ConsistencyProof": {
        "type": "object", "required": ["size1", "size2", "root1", "root2", "proof"],
        "properties": {"size1": {"type": "integer"}, "size2": {"type": "integer"},
                       "root1": HEX64, "root2": HEX64, "proof": {"type": "array", "items": HEX64}},
    },
    "Actor": {
        "type": "object", "required": ["actor_id", "name", "role", "country", "seq"],
        "properties": {"actor_id": {"type": "string"}, "name": {"type": "string"},
                       "role": {"type": "string"}, "country": {"type": "string"},
                       "licence_no": {"type": ["string", "null"]},
                       "licence_valid_from": {"type": ["string", "null"]},
                       "licence_valid_to": {"type": ["string", "null"]},
                       "revoked_on": {"type": ["string", "null"]}, "seq": {"type": "integer"},
                       "held": {"type": ["integer", "null"]},
                       "on_hold": {"type": ["integer", "null"]}},
    },
    "ActorList": {"type": "object", "required": ["actors"],
                  "properties": {"actors": {"type": "array", "items": ref("Actor")}}},
    "EntryRecord": {
        "type": "object", "required": ["entry", "entry_hash"],
        "properties": {"entry": ref("entry"), "entry_hash": HEX64},
    },
    "EntryPage": {
        "type": "object", "required": ["entries", "next"],
        "properties": {"entries": {"type": "array", "items": ref("EntryRecord")},
                       "next": {"type": ["integer", "null"]}},
    },
    "FeatureCollection": {
        "type": "object", "required": ["type", "features"],
        "properties": {"type": {"const": "FeatureCollection"},
                       "features": {"type": "array", "items": _FEATURE}},
    },
    "Flag": {
        "type": "object", "required": ["flag_id", "seq", "code", "subject", "detail", "status"],
        "properties": {"flag_id": {"type": "string"}, "seq": {"type": "integer"},
                       "code": {"type": "string"}, "subject": ref("defs.subject"),
                       "detail": {"type": "string"},
                       "status": {"type": "string", "enum": ["open", "resolved"]}},
    },
    "FlagList": {"type": "object", "required": ["flags"],
                 "properties": {"flags": {"type": "array", "items": ref("Flag")}}},
    "Parcel": {
        "type": "object",
        "required": ["parcel_id", "holder", "carats", "stones", "status", "on_hold", "flags"],
        "properties": {"parcel_id": {"type": "string"}, "holder": {"type": "string"},
                       "carats": _CARATS, "stones": _COUNT,
                       "status": {"type": "string", "enum": ["active", "spent"]},
                       "on_hold": {"type": "boolean"}, "open_flags": _COUNT,
                       "site_id": {"type": ["string", "null"]}, "date": {"type": "string"},
                       "seq": {"type": "integer"}, "spent_seq": {"type": ["integer", "null"]},
                       "flags": {"type": "array", "items": ref("Flag")},
                       "sieve": {"type": ["object", "null"],
                                 "additionalProperties": _CARATS},
                       "evidence": {"type": "array", "items": {"type": "object"}}},
    },
    "Trace": {
        "type": "object", "required": ["id", "direction", "nodes", "edges"],
        "properties": {
            "id": {"type": "string"},
            "direction": {"type": "string", "enum": ["backward", "forward"]},
            "nodes": {"type": "array", "items": {
                "type": "object", "required": ["type", "id"],
                "properties": {"type": {"type": "string", "enum": NODE_TYPES},
                               "id": {"type": "string"}}}},
            "edges": {"type": "array", "items": {
                "type": "object", "required": ["from", "to", "seq", "kind"],
                "properties": {"from": {"type": "string"}, "to": {"type": "string"},
                               "seq": {"type": "integer"}, "kind": {"type": "string"}}}},
        },
    },
    "Stats": {
        "type": "object", "required": ["kind", "by", "period", "columns", "rows"],
        "description": "SPEC 6 `stats`: one row per period, country and key; carats and USD "
                       "exact to the hundredth; null where there is no value.",
        "properties": {
            "kind": {"type": "string", "enum": ["production", "trade"]},
            "by": {"type": "string",
                   "enum": ["country", "zone", "site", "buyer", "hs", "partner"]},
            "period": {"type": ["string", "null"]},
            "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {
                "type": "object", "required": ["period", "country"],
                "properties": {
                    "period": {"type": "string"}, "country": {"type": ["string", "null"]},
                    "purchases": _COUNT, "certificates": _COUNT, "stones": _COUNT,
                    "flow": {"type": "string", "enum": ["export", "import"]},
                    "carats": _CARATS, "flagged_carats": _CARATS,
                    "value_usd": {"type": ["number", "null"], "minimum": 0},
                    "usd_per_ct": {"type": ["number", "null"], "minimum": 0},
                }}},
        },
    },
    "Bundle": {"type": "object", "description": "The provenance bundle of SPEC 7."},
    "AtomFeed": {"type": "string", "description": "An Atom feed (RFC 4287)."},
    "OpenAPI": {"type": "object", "required": ["openapi", "paths"]},
}


@cache
def components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for name in ("defs", *KINDS):
        schemas.update(_file_components(name))
    schemas["entry"] = _entry()
    try:
        schemas.update(_file_components("bundle"))
        schemas["Bundle"] = ref("bundle")
    except FileNotFoundError:  # schemas/bundle.json comes with ledger.bundle (issue 6)
        pass
    schemas["Event"] = _event_body()
    schemas.update(RESPONSES)
    return schemas


# -- operations ------------------------------------------------------------------------

def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": ref("Problem")}}}


REFUSALS = {
    400: "Malformed JSON, or bytes that are not UTF-8; for stats, a period, key or kind it "
         "does not answer (BAD_QUERY).",
    401: "No bearer token, or one that belongs to nobody.",
    403: "The account's role may not do this (rule ROLE).",
    404: "No such route or entity.",
    409: "DUPLICATE id or EVENT_ID_CONFLICT.",
    413: "The body is over 1 MiB.",
    415: "The body is not application/json.",
    422: "Any other refusal; `type` names the rule, `field` the input.",
    503: "The database cannot be reached just now; retry (with the same event_id).",
}
_CACHE_HEADERS = {
    "ETag": {"description": "Tag of this answer, for If-None-Match.", "required": True,
             "schema": {"type": "string"}},
    "Cache-Control": {"description": "public: checkpoints and proofs may be cached.",
                      "required": True, "schema": {"type": "string"}},
}


def _path_params(rule: str, op: Op) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for converter, name in _RULE_ARG.findall(rule):
        schema = ({"type": "integer", "minimum": 1, "maximum": MAX_SEQ} if converter == "int"
                  else ref(op.path.get(name, "defs.identifier")))
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _RULE_ARG.sub(r"{\2}", rule), params


def _operation(op: Op, endpoint: str, path_params: list[dict[str, Any]]) -> dict[str, Any]:
    params = path_params + [{"name": p.name, "in": "query", "required": p.required,
                             "description": p.description, "schema": p.schema}
                            for p in op.query]
    statuses = set(op.refusals)
    if READS[op.area] is not None:
        statuses |= {401, 403}
    if op.body:
        statuses |= {400, 413, 415, 422}
    if op.query:
        statuses.add(422)
    if path_params:
        statuses.add(404)
    if op.area != "openapi":
        statuses.add(503)
    responses: dict[str, Any] = {}
    for status, schema in sorted(op.ok.items()):
        content = {op.media: {"schema": ref(schema)}}
        if op.text:
            content["text/plain"] = {"schema": {"type": "string"}}
        if op.csv:
            content["text/csv"] = {"schema": {"type": "string"}}
        responses[str(status)] = {"description": "OK" if status == 200 else "Created",
                                  "content": content}
        if op.cacheable:
            responses[str(status)]["headers"] = _CACHE_HEADERS
    if op.cacheable:
        responses["304"] = {"description": "Not modified since the ETag sent."}
    for status in sorted(statuses):
        responses[str(status)] = _problem(REFUSALS[status])
    out: dict[str, Any] = {"operationId": endpoint.replace(".", "_"), "summary": op.summary,
                           "tags": [endpoint.split(".")[0]], "responses": responses,
                           "security": [] if READS[op.area] is None else [{"bearer": []}]}
    if op.description:
        out["description"] = op.description
    if params:
        out["parameters"] = params
    if op.body:
        out["requestBody"] = {"required": True,
                              "content": {"application/json": {"schema": ref(op.body)}}}
    return out


def document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every described view under /api/v1."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        op: Op | None = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if op is None or not rule.rule.startswith(PREFIX):
            continue
        path, path_params = _path_params(rule.rule, op)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(op, rule.endpoint,
                                                                    path_params)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Alluvial Ledger API", "version": "1",
                 "description": "A tamper-evident custody ledger for rough diamonds "
                                "(SPEC 6). Errors are RFC 9457 problems whose `type` is "
                                "the rule id."},
        "paths": paths,
        "components": {"schemas": components(),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


bp = Blueprint("openapi", __name__, url_prefix=PREFIX)


@bp.get("/openapi.json")
@operation("This document", area="openapi", ok={200: "OpenAPI"})
def openapi_json() -> Any:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    doc = app.extensions.setdefault("alluvial_openapi", None) or document(app)
    app.extensions["alluvial_openapi"] = doc
    return doc
