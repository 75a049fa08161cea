"""The map of zones, risk areas, sites and flagged purchases, drawn as SVG from their
geometries (SPEC 6: no tile server), and the same as GeoJSON to download."""

from __future__ import annotations

import json

from flask import Blueprint, Response, render_template

from ledger import reads
from webui.pages import access, links
from webui.pages.cartography import draw_map, insets
from webui.services import reading

bp = Blueprint("map", __name__)


@bp.get("/map")
@access.reads("zones")
def world() -> str:
    with reading(access.principal()) as scope:
        features = reads.map_features(scope)["features"]
    return render_template("map.html", drawing=draw_map(features, links.feature),
                           insets=insets(features, links.feature))


@bp.get("/map.geojson")
@access.reads("zones")
def geojson() -> Response:
    with reading(access.principal()) as scope:
        text = json.dumps(reads.map_features(scope), ensure_ascii=False)
    return links.download(text, "alluvial-map.geojson", "application/geo+json")
