"""The map (issue 19): country outlines under the zones, labels that do not overlap, a scale
bar true at its latitude, degrees along the edges, the day it is drawn as of (risk areas
only while valid), flagged purchases counted in cells when there are many, site maps that
show the whole licence zone, and SVG that assistive technology can read.

On the demo ledger (built once for the module, as tests/test_demo.py does), read as the
auditor; the label boxes are computed here from the SVG text positions and an estimate of
the text's width, independently of the server's own (generous) estimate.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from ledger import signin
from tests.conftest import copy_demo
from webui import create_app, login
from webui.pages import cartography

# Font sizes of the map's text, as app.css sets them (SVG user units).
FONT = {"zone-label": 12.0, "risk-label": 12.0, "country-label": 13.0, "tick": 10.0,
        "scale": 10.0, "as-of": 12.0, "count": 10.0}
COUNTRIES = {"GH": "Ghana", "CI": "Côte d'Ivoire", "SL": "Sierra Leone", "LR": "Liberia",
             "GN": "Guinea"}


@pytest.fixture(scope="module")
def client(built_demo: tuple[Path, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    folder = copy_demo(built_demo, tmp_path_factory, "demo-map")
    app = create_app({"DATABASE_URL": f"sqlite:///{folder / 'alluvial.db'}",
                      "LOG_KEY": str(folder / "alluvial-log.key"), "SECRET_KEY": "test",
                      "TESTING": True})
    with app.test_client() as client:
        engine = app.extensions["alluvial"].ledger.engine
        with client.session_transaction() as session:
            session[login.SESSION_ID] = signin.open_session(engine, "auditor")
        yield client
    app.extensions["alluvial"].ledger.engine.dispose()


def svgs(page: str) -> dict[str, str]:
    """Every map on a page, by its id."""
    return {m.group(1): m.group(0) for m in
            re.finditer(r'<svg class="map" id="([^"]+)".*?</svg>', page, re.S)}


def the_map(client: FlaskClient, path: str = "/map") -> str:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    return svgs(answer.text)["map-all"]


def texts(svg: str) -> list[dict[str, Any]]:
    """The text elements of a map: class, position, anchor and words."""
    found = []
    for m in re.finditer(r"<text ([^>]*)>([^<]*)</text>", svg):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(1)))
        words = m.group(2).replace("&#39;", "'").replace("&amp;", "&")
        found.append({"class": attrs["class"].split()[-1], "x": float(attrs["x"]),
                      "y": float(attrs["y"]), "anchor": attrs.get("text-anchor", "start"),
                      "text": words})
    return found


def box(t: dict[str, Any]) -> tuple[float, float, float, float]:
    """An estimate of where a text element's letters fall: 0.6 em a character (sans-serif
    capitals and digits run 0.55-0.7), 0.75 em above the baseline and 0.2 below."""
    size = FONT.get(t["class"], 12.0)
    width = 0.6 * size * len(t["text"])
    left = {"start": t["x"], "middle": t["x"] - width / 2, "end": t["x"] - width}[t["anchor"]]
    return left, t["y"] - 0.75 * size, left + width, t["y"] + 0.2 * size


def overlapping(svg: str) -> list[tuple[str, str]]:
    placed = [(t["text"], box(t)) for t in texts(svg) if t["text"].strip()]
    return [(a, b) for i, (a, p) in enumerate(placed) for b, q in placed[i + 1:]
            if p[0] < q[2] and q[0] < p[2] and p[1] < q[3] and q[1] < p[3]]


def test_the_map_draws_the_countries_under_the_zones(client: FlaskClient) -> None:
    svg = the_map(client, "/map?as_of=2008-01-01")
    for iso, name in COUNTRIES.items():
        outline = re.search(rf'<path class="country" data-country="{iso}" d="(M[^"]+)">'
                            rf"<title>(.*?)</title>", svg)
        assert outline, iso
        assert outline.group(2).replace("&#39;", "'") == name
        assert outline.group(1).count("L") > 20  # a border, not a box
    assert svg.index('class="basemap"') < svg.index("data-layer=")  # drawn under the zones
    assert not svgs(client.get("/map").text)["map-all"].count('data-country="TZ"')


@pytest.mark.parametrize("path", ["/map", "/map?as_of=2008-01-01", "/map?as_of=2015-01-01",
                                  "/sites/GH-S-BIR-04", "/zones/GH-Z-AKWATIA"])
def test_no_two_labels_overlap(client: FlaskClient, path: str) -> None:
    page = client.get(path).text
    drawn = svgs(page)
    assert drawn
    for key, svg in drawn.items():
        assert overlapping(svg) == [], key
    if path == "/map?as_of=2008-01-01":
        words = {t["text"] for t in texts(drawn["map-all"])}
        assert {"GH-Z-BIRIM", "GH-Z-AKWATIA", "CI-Z-SEGUELA", "CI-Z-TORTIYA", "SL-Z-KONO",
                "SL-Z-TONGO", "RISK-CI-REBEL-NORTH", "RISK-CI-UN-EMBARGO"} <= words
        assert "Not labelled on the map" not in page


def test_labels_stay_apart_with_anyinam_beside_birim_and_akwatia(client: FlaskClient) -> None:
    """The browser walk adds a licence zone at Anyinam, a few km from Birim and Akwatia; on
    the map of the region and on their close-up every label stays legible."""
    features = client.get("/map.geojson?as_of=2008-01-01").get_json()["features"]
    features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[
        [-0.55, 6.35], [-0.45, 6.35], [-0.45, 6.45], [-0.55, 6.35]]]}, "properties": {
            "layer": "licence_zone", "zone_id": "GH-Z-ANYINAM", "licence_no": "GH-SSML-1",
            "valid_from": "2000-01-01"}})
    app = client.application
    drawings = [cartography.draw_map(features, lambda layer, p: None)]
    drawings += [inset for _, inset in cartography.insets(features, lambda layer, p: None)]
    with app.test_request_context():
        macro = app.jinja_env.get_template("macros.html").module.map_svg  # type: ignore[attr-defined]
        for k, drawing in enumerate(drawings):
            svg = str(macro(drawing, "test", f"t{k}"))
            assert overlapping(svg) == [], k
            if k == 0 or "GH-Z-ANYINAM" in svg:
                words = {t["text"] for t in texts(svg)}
                assert {"GH-Z-ANYINAM", "GH-Z-BIRIM", "GH-Z-AKWATIA"} <= words, k


def test_crowded_zones_are_all_labelled_apart() -> None:
    """Six licence zones a few km apart (as Birim, Akwatia and Anyinam are on the map of the
    region): each gets its label, away from the others, with a leader line when far."""
    features = []
    for k in range(6):
        lon, lat = -1.0 + 0.03 * (k % 3), 6.0 + 0.03 * (k // 3)
        ring = [[lon, lat], [lon + 0.02, lat], [lon + 0.02, lat + 0.02], [lon, lat]]
        features.append({"type": "Feature", "geometry": {"type": "Polygon",
                                                         "coordinates": [ring]},
                         "properties": {"layer": "licence_zone", "zone_id": f"GH-Z-CROWD-{k}",
                                        "licence_no": "L", "valid_from": "2000-01-01"}})
    features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [-8, 9]},
                     "properties": {"layer": "site", "site_id": "S", "name": "far away"}})
    drawing = cartography.draw_map(features, lambda layer, p: None)
    zone_labels = [label for label in drawing.labels if label.kind == "zone"]
    assert sorted(label.text for label in zone_labels) == [f"GH-Z-CROWD-{k}" for k in range(6)]
    boxes = [box({"class": f"{label.kind}-label", "x": label.x, "y": label.y,
                  "anchor": label.anchor, "text": label.text}) for label in drawing.labels]
    for i, p in enumerate(boxes):
        for q in boxes[i + 1:]:
            assert not (p[0] < q[2] and q[0] < p[2] and p[1] < q[3] and q[1] < p[3])
    assert any(label.leader for label in zone_labels)


def test_a_scale_bar_true_at_its_latitude_and_degrees_on_the_edges(client: FlaskClient
                                                                   ) -> None:
    svg = the_map(client)
    bar = re.search(r'<g class="scale-bar" data-km="([\d.]+)" data-lat="([-\d.]+)" '
                    r'data-length="([\d.]+)">.*?<text[^>]*>([^<]+)</text>', svg)
    assert bar, svg[:300]
    km, lat, length = (float(bar.group(k)) for k in (1, 2, 3))
    assert bar.group(4) == f"{km:g} km"
    ticks = {(t["class"], t["text"]): t for t in texts(svg) if t["class"] == "tick"}
    lons = sorted((float(m.group(1)) * (-1 if m.group(2) == "W" else 1), t["x"])
                  for (_, text), t in ticks.items()
                  if (m := re.fullmatch(r"([\d.]+)°([EW]?)", text)))
    lats = sorted((float(m.group(1)) * (-1 if m.group(2) == "S" else 1), t["y"])
                  for (_, text), t in ticks.items()
                  if (m := re.fullmatch(r"([\d.]+)°([NS])", text)))
    assert len(lons) >= 3 and len(lats) >= 3
    assert lats[0][0] - 2 < lat < lats[-1][0] + 2  # a latitude on the map
    px_per_degree = (lons[-1][1] - lons[0][1]) / (lons[-1][0] - lons[0][0])
    km_per_px = 6371.0088 * math.pi / 180 * math.cos(math.radians(lat)) / px_per_degree
    assert length * km_per_px == pytest.approx(km, rel=0.01)
    assert 40 < length < 250  # a bar one can read on a map 1000 wide


def test_as_of_is_drawn_and_risk_areas_only_while_valid(client: FlaskClient) -> None:
    rebel = 'href="/zones/RISK-CI-REBEL-NORTH"'
    during = the_map(client, "/map?as_of=2008-01-01")
    assert rebel in during and "as of 2008-01-01" in during
    after = the_map(client, "/map?as_of=2015-01-01")
    assert rebel not in after and 'data-layer="risk_area"' not in after
    assert "as of 2015-01-01</text>" in after
    page = client.get("/map?as_of=2015-01-01").text
    assert "<h1>Map of zones, risk areas and sites, as of 2015-01-01</h1>" in page
    inset = [svg for key, svg in svgs(page).items() if key.startswith("map-inset")]
    assert inset and not any(rebel in svg for svg in inset)


def test_many_flagged_purchases_are_counted_in_cells() -> None:
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [
        -6.7 + 0.001 * (k % 17), 7.96 + 0.001 * (k // 17)]}, "properties": {
            "layer": "flagged_purchase", "parcel_id": f"P-{k}", "site_id": "S"}}
                for k in range(300)]
    features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [-1, 6]},
                     "properties": {"layer": "flagged_purchase", "parcel_id": "P-far",
                                    "site_id": "S"}})
    drawing = cartography.draw_map(features, lambda layer, p: None)
    crosses = [s for s in drawing.shapes if s.layer == "flagged_purchase"]
    assert sum(c.count for c in drawing.cells) + len(crosses) == 301
    assert 1 <= len(drawing.cells) <= 4 and len(crosses) == 1  # the one far away keeps its mark
    assert drawing.counts["flagged_purchase"] == 301
    assert any(c.title.startswith(f"{c.count} flagged purchases dug here: P-0, ")
               for c in drawing.cells)
    few = cartography.draw_map(features[:150], lambda layer, p: None)
    assert few.cells == [] and len(few.shapes) == 150


def test_the_site_map_shows_its_whole_licence_zone(client: FlaskClient) -> None:
    page = client.get("/sites/GH-S-BIR-04").text
    svg = svgs(page)["map-map"]
    width, height = (float(v) for v in re.search(
        r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg).groups())  # type: ignore[union-attr]
    zone = re.search(r'href="/zones/GH-Z-BIRIM".*?<path class="licence_zone" d="([^"]+)"', svg,
                     re.S)
    assert zone
    numbers = [float(v) for v in re.findall(r"-?[\d.]+", zone.group(1))]
    xs, ys = numbers[0::2], numbers[1::2]
    assert min(xs) >= 0 and max(xs) <= width and min(ys) >= 0 and max(ys) <= height
    assert re.search(r'data-layer="site"', svg)


def test_maps_are_readable_and_have_no_nested_links(client: FlaskClient) -> None:
    for path in ("/map", "/sites/GH-S-BIR-04", "/zones/GH-Z-AKWATIA"):
        for key, svg in svgs(client.get(path).text).items():
            opening = svg[:svg.index(">")]
            assert 'role="img"' not in opening, key  # an image may not hold links
            assert f'aria-labelledby="{key}-title"' in opening
            assert re.search(rf'<title id="{key}-title">[^<]+</title>\s*'
                             rf'<desc id="{key}-desc">[^<]+</desc>', svg), key
            depth = 0
            for tag in re.findall(r"<(/?)a[\s>]", svg):
                depth += -1 if tag else 1
                assert depth <= 1, f"{key}: a link inside a link"
            assert "tabindex" not in svg
