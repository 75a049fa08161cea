"""Zone files are read without following what they point to (issue 15): a GeoJSON `crs`
link made GDAL fetch a URL from the server; a zip or an unknown format could make GDAL
open other drivers. A loopback HTTP server counts the requests GDAL would make."""

from __future__ import annotations

import http.server
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import geopandas
import pytest
from click.testing import CliRunner
from shapely.geometry import box, mapping, shape

from ledger.cli import cli
from ledger.errors import InputError
from ledger.geo.zonefile import read_zone_file
from ledger.recorder.events import Ledger

PROPS = {"zone_id": "Z-1", "licence_no": "GH-L-1", "holder": "Birim Coop",
         "valid_from": "2000-01-01"}


class Listener(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Listener.hits.append(self.path)
        body = b'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],' \
               b'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]]'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[str]:
    Listener.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Listener)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def geojson(path: Path, crs: Any = None, feature_crs: Any = None) -> Path:
    feature: dict[str, Any] = {"type": "Feature", "properties": PROPS,
                               "geometry": mapping(box(-1.05, 6.15, -0.95, 6.25))}
    if feature_crs is not None:
        feature["crs"] = feature_crs
    collection: dict[str, Any] = {"type": "FeatureCollection", "features": [feature]}
    if crs is not None:
        collection["crs"] = crs
    path.write_text(json.dumps(collection), encoding="utf-8")
    return path


def link(url: str) -> dict[str, Any]:
    return {"type": "link", "properties": {"href": f"{url}/crs.wkt", "type": "ogcwkt"}}


@pytest.mark.parametrize("where", ["collection", "feature", "name-is-a-url"])
def test_a_crs_link_is_refused_and_never_fetched(tmp_path: Path, listener: str,
                                                 where: str) -> None:
    if where == "collection":
        path = geojson(tmp_path / "z.geojson", crs=link(listener))
    elif where == "feature":
        path = geojson(tmp_path / "z.geojson", feature_crs=link(listener))
    else:
        path = geojson(tmp_path / "z.geojson",
                       crs={"type": "name", "properties": {"name": f"{listener}/crs"}})
    with pytest.raises(InputError, match="is not followed"):
        read_zone_file(path, "licence")
    assert Listener.hits == []


def test_a_named_crs_is_read_as_before(tmp_path: Path, listener: str) -> None:
    path = geojson(tmp_path / "z.geojson",
                   crs={"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}})
    [payload] = read_zone_file(path, "licence")
    assert payload["zone_id"] == "Z-1" and payload["geometry"]["type"] == "Polygon"
    frame = geopandas.GeoDataFrame({k: [v] for k, v in PROPS.items()},
                                   geometry=[box(-1.05, 6.15, -0.95, 6.25)], crs=4326)
    frame.to_crs(32630).to_file(tmp_path / "z.gpkg", engine="pyogrio")
    [utm] = read_zone_file(tmp_path / "z.gpkg", "licence")
    bounds = shape(utm["geometry"]).bounds
    assert all(abs(a - b) < 1e-6 for a, b in zip(bounds, (-1.05, 6.15, -0.95, 6.25),
                                                  strict=True)), bounds
    assert Listener.hits == []


def test_a_zip_holding_anything_but_one_shapefile_is_refused(tmp_path: Path,
                                                            listener: str) -> None:
    inner = geojson(tmp_path / "inner.geojson", crs=link(listener))
    archive = tmp_path / "zones.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(inner, "inner.geojson")
    with pytest.raises(InputError, match="exactly one Shapefile"):
        read_zone_file(archive, "licence")
    assert Listener.hits == []


def test_a_format_other_than_the_three_is_refused_before_gdal_opens_it(
        tmp_path: Path, listener: str) -> None:
    gml = tmp_path / "zones.gml"
    gml.write_text(f'<?xml version="1.0"?><FeatureCollection xmlns:xsi='
                   f'"http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation='
                   f'"http://ogr.maptools.org/ {listener}/zones.xsd"/>', encoding="utf-8")
    with pytest.raises(InputError, match="is not GeoJSON, GeoPackage or Shapefile"):
        read_zone_file(gml, "licence")
    assert Listener.hits == []


def test_import_zones_with_a_crs_link_writes_nothing_and_fetches_nothing(
        ledger: Ledger, runner: CliRunner, tmp_path: Path, listener: str) -> None:
    size = ledger.log.size()
    path = geojson(tmp_path / "z.geojson", crs=link(listener))
    result = runner.invoke(cli, ["import-zones", str(path), "--type", "licence"])
    assert result.exit_code == 2, result.output
    assert "is not followed" in result.stderr
    assert ledger.log.size() == size and Listener.hits == []
