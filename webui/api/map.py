"""The map: zones, risk areas and sites as GeoJSON, for any account (SPEC 5, 6)."""

from __future__ import annotations

from flask import Blueprint, Response

from ledger import reads
from webui.auth import caller
from webui.http import json_response
from webui.openapi import PREFIX, operation
from webui.services import reading

bp = Blueprint("map", __name__, url_prefix=PREFIX)


@bp.get("/zones")
@operation("Licence zones and risk areas", area="zones", ok={200: "FeatureCollection"})
def zones() -> Response:
    with reading(caller("zones")) as scope:
        features = list(reads.zones(scope))
    return json_response({"type": "FeatureCollection", "features": features})


@bp.get("/sites")
@operation("Registered mine sites", area="sites", ok={200: "FeatureCollection"})
def sites() -> Response:
    with reading(caller("sites")) as scope:
        features = list(reads.sites(scope))
    return json_response({"type": "FeatureCollection", "features": features})
