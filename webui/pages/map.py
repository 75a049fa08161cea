"""The map of zones, risk areas, sites and flagged purchases, drawn as SVG from their
geometries (SPEC 6: no tile server), and the same as GeoJSON to download."""

from __future__ import annotations

import json

from flask import Blueprint, Response, render_template

from ledger.maps import feature_collection
from webui.pages import access, links
from webui.pages.cartography import draw_map, insets
from webui.services import reading

bp = Blueprint("map", __name__)


@bp.get("/map")
@access.reads("zones")
def world() -> str:
    with reading() as conn:
        features = feature_collection(conn)["features"]
    return render_template("map.html", drawing=draw_map(features, links.feature),
                           insets=insets(features, links.feature))


@bp.get("/map.geojson")
@access.reads("zones")
def geojson() -> Response:
    with reading() as conn:
        text = json.dumps(feature_collection(conn), ensure_ascii=False)
    return links.download(text, "alluvial-map.geojson", "application/geo+json")
