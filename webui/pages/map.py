"""The map of zones, risk areas, sites and flagged purchases, drawn as SVG from their
geometries (SPEC 6: no tile server), and the same as GeoJSON to download."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from flask import Blueprint, Response, render_template, request

from ledger import reads
from ledger.errors import InputError
from ledger.i18n import N_
from webui.pages import access, links
from webui.pages.cartography import draw_map, insets
from webui.services import reading

bp = Blueprint("map", __name__)


def as_of() -> str:
    """The day the map is drawn as of (SPEC 5): ``?as_of=YYYY-MM-DD``, default today (UTC)."""
    text = request.args.get("as_of", "").strip()
    if not text:
        return datetime.now(UTC).date().isoformat()
    try:
        return date.fromisoformat(text).isoformat() if len(text) == 10 else _bad(text)
    except ValueError:
        return _bad(text)


def _bad(text: str) -> str:
    raise InputError.said(N_("%(text)r is not a day (YYYY-MM-DD)."), {"text": text[:40]},
                          lead="as_of: ", field="as_of")


@bp.get("/map")
@access.reads("zones")
def world() -> str:
    day = as_of()
    with reading(access.principal()) as scope:
        features = reads.map_features(scope, day)["features"]
    return render_template("map.html", drawing=draw_map(features, links.feature, as_of=day),
                           insets=insets(features, links.feature), as_of=day)


@bp.get("/map.geojson")
@access.reads("zones")
def geojson() -> Response:
    day = as_of()
    with reading(access.principal()) as scope:
        text = json.dumps(reads.map_features(scope, day), ensure_ascii=False)
    return links.download(text, "alluvial-map.geojson", "application/geo+json")
