"""Parcels, their custody and flags, and export bundles, as each account may see them
(SPEC 6; ledger.reads.Scope decides what is visible)."""

from __future__ import annotations

import re

from flask import Blueprint, Response

from webui.auth import member
from webui.http import choice_arg, int_arg, json_response
from webui.openapi import PREFIX, Param, integer, operation
from webui.services import ledger, reading

bp = Blueprint("custody", __name__, url_prefix=PREFIX)
DIRECTIONS = ("backward", "forward")
STATUSES = ("open", "resolved")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@bp.get("/parcels/<path:parcel_id>")
@operation("A parcel: holder, mass, status and flags", area="parcels", ok={200: "Parcel"})
def parcel(parcel_id: str) -> Response:
    principal = member("parcels")
    with reading(principal) as scope:
        return json_response(scope.parcel(parcel_id))


@bp.get("/parcels/<path:parcel_id>/custody")
@operation("The custody graph of a parcel, back to the sites or forward to the exports",
           area="parcels", ok={200: "Trace"},
           query=(Param("direction", {"type": "string", "enum": list(DIRECTIONS)},
                        "backward (default) or forward"),))
def custody(parcel_id: str) -> Response:
    principal = member("parcels")
    direction = choice_arg("direction", DIRECTIONS, "backward")
    assert direction is not None
    with reading(principal) as scope:
        return json_response(scope.custody(parcel_id, direction).to_json())


@bp.get("/flags")
@operation("Flags: an auditor's are all, a buyer's or exporter's its parcels'",
           area="flags", ok={200: "FlagList"},
           query=(Param("status", {"type": "string", "enum": list(STATUSES)},
                        "only open or only resolved flags"),))
def flags() -> Response:
    principal = member("flags")
    status = choice_arg("status", STATUSES)
    with reading(principal) as scope:
        return json_response({"flags": scope.flags(status)})


@bp.get("/exports/<path:certificate_no>/bundle")
@operation("The provenance bundle of an export (SPEC 7), against the latest checkpoint",
           area="bundles", ok={200: "Bundle"}, path={"certificate_no": "defs.certificate_no"},
           query=(integer("Add the consistency proof from this earlier log size (the "
                          "importer's saved checkpoint).", name="since"),))
def bundle(certificate_no: str) -> Response:
    principal = member("bundles")
    since = int_arg("since")
    with reading(principal) as scope:
        scope.check_export(certificate_no)
    from ledger.bundle.build import build_bundle, dumps  # issue 6's module, loaded on first use

    response = Response(dumps(build_bundle(ledger().log, certificate_no, since)),
                        mimetype="application/json")
    name = _UNSAFE.sub("_", certificate_no)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.bundle.json"'
    return response
