"""Reading zone files: GeoJSON, GeoPackage, Shapefile in any CRS (SPEC 5, `import-zones`).

Each feature becomes a ``zone.registered`` payload in WGS 84. Properties named
like the payload fields are taken as they are; ``mapping`` renames others. A
file with any bad feature is refused whole, naming the feature and why.

A zone file comes from outside (an upload, a colleague's export), and GDAL follows
what a file points to: a GeoJSON ``crs`` of type ``link`` (or a ``name`` that is a
URL) is fetched over the network, and GDAL recognises formats by their content, some
of which fetch schemas or open other files. So the file's kind is decided here from
its first bytes, before GDAL opens it: GeoJSON (whose ``crs`` members are checked and
whose checked bytes are what GDAL reads), GeoPackage, a Shapefile, or a zip holding one
Shapefile; anything else is refused.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from ledger.errors import InputError
from ledger.i18n import N_

LICENCE_FIELDS = ("zone_id", "name", "licence_no", "holder", "valid_from", "valid_to", "date")
RISK_FIELDS = ("zone_id", "name", "category", "source", "valid_from", "valid_to", "date")
POLYGONAL = ("Polygon", "MultiPolygon")
KINDS = "GeoJSON, GeoPackage or Shapefile"
# CRS names GDAL resolves from its own database, never by fetching: OGC URNs, EPSG codes
# and the OGC's definition URLs (GDAL reads those, it does not download them).
_CRS_NAME = re.compile(r"(urn:ogc:def:crs:[\w.:-]+|EPSG:\d+|"
                       r"https?://www\.opengis\.net/def/crs/[\w.]+/[\w.]+/[\w.]+)", re.I)
_SHAPEFILE_PARTS = {".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".xml"}


def _plain(value: Any) -> Any:
    """A property value as JSON would have it (dates as ISO text, NaN as missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_zone_file(
    path: Path, zone_type: str, mapping: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The file's features as zone.registered payloads, or InputError naming the bad feature."""
    import geopandas
    import pyogrio.errors

    mapping = dict(mapping or {})
    source = _checked_source(path)
    try:
        frame = geopandas.read_file(source, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
        raise InputError.said(N_("cannot be read as %(kinds)s: %(why)s"),
                              {"kinds": KINDS, "why": str(exc)}, lead=f"{path}: ",
                              field="FILE") from exc
    if frame.empty:
        raise InputError.said(N_("holds no features."), lead=f"{path}: ", field="FILE")
    _check_crs(frame, path)
    frame = frame.to_crs(4326) if frame.crs is not None and frame.crs.to_epsg() != 4326 else frame
    fields = LICENCE_FIELDS if zone_type == "licence" else RISK_FIELDS
    payloads = []
    for n, (_, row) in enumerate(frame.iterrows(), 1):
        label = f"feature {n}" + (f" ({row.get(mapping.get('zone_id', 'zone_id'))})"
                                  if row.get(mapping.get("zone_id", "zone_id")) else "")
        geom = row.geometry
        _check_geometry(geom, label)
        payload: dict[str, Any] = {"zone_type": zone_type,
                                   "geometry": json.loads(shapely.to_geojson(geom))}
        for name in fields:
            value = _plain(row.get(mapping.get(name, name)))
            if value is not None and value != "":
                payload[name] = value
        payload.setdefault("valid_to", None)
        if "valid_from" in payload:
            payload.setdefault("date", payload["valid_from"])
        payload["_label"] = label
        payloads.append(payload)
    return payloads


def _checked_source(path: Path) -> Path | io.BytesIO:
    """What GDAL may read: the file itself, or for GeoJSON the bytes checked here."""
    if not path.is_file():
        raise InputError.said(N_("is not a file here."), lead=f"{path}: ", field="FILE")
    with path.open("rb") as file:
        head = file.read(16)
    if head.startswith(b"SQLite format 3\x00") or head.startswith(b"\x00\x00\x27\x0a"):
        return path  # GeoPackage; Shapefile (its .prj is WKT, read without fetching)
    if head.startswith(b"PK\x03\x04"):
        _check_zip(path)
        return path
    data = path.read_bytes()
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        _check_geojson(data, path)
        return io.BytesIO(data)
    raise InputError.said(N_("is not %(kinds)s (the ledger reads only these)."),
                          {"kinds": KINDS}, lead=f"{path}: ", field="FILE")


def _check_zip(path: Path) -> None:
    """A zipped Shapefile holds one Shapefile's parts and nothing GDAL could read otherwise."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
    except zipfile.BadZipFile as exc:
        raise InputError.said(N_("is not a readable zip file: %(why)s."), {"why": str(exc)},
                              lead=f"{path}: ", field="FILE") from exc
    others = [n for n in names if Path(n).suffix.lower() not in _SHAPEFILE_PARTS]
    shapefiles = [n for n in names if n.lower().endswith(".shp")]
    if others or len(shapefiles) != 1:
        raise InputError.said(
            N_("a zip must hold exactly one Shapefile (.shp with its .shx, .dbf, .prj) and "
               "nothing else; it holds %(names)s.") if names else
            N_("a zip must hold exactly one Shapefile (.shp with its .shx, .dbf, .prj) and "
               "nothing else; it holds nothing."),
            {"names": ", ".join(names)}, lead=f"{path}: ", field="FILE")


def _check_geojson(data: bytes, path: Path) -> None:
    """Every ``crs`` member names a CRS GDAL knows; none is a link to follow."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InputError.said(N_("is not valid GeoJSON: %(why)s."), {"why": str(exc)[:200]},
                              lead=f"{path}: ", field="FILE") from exc
    todo: list[Any] = [document]
    while todo:
        value = todo.pop()
        if isinstance(value, list):
            todo.extend(value)
        elif isinstance(value, dict):
            if "crs" in value:
                _check_crs_member(value["crs"], path)
            todo.extend(v for k, v in value.items() if k != "crs")


def _check_crs_member(crs: Any, path: Path) -> None:
    if crs is None:
        return
    props = crs.get("properties") if isinstance(crs, dict) else None
    name = props.get("name") if isinstance(props, dict) else None
    if (isinstance(crs, dict) and crs.get("type") == "name" and isinstance(name, str)
            and _CRS_NAME.fullmatch(name.strip())):
        return
    shown = json.dumps(crs)[:120]
    raise InputError.said(N_("crs %(crs)s is not followed: the ledger reads no CRS from a link "
                             "or a file; name it (\"EPSG:32630\", an OGC URN) or give the "
                             "coordinates in WGS 84."), {"crs": shown}, lead=f"{path}: ",
                          field="FILE")


def _check_crs(frame: Any, path: Path) -> None:
    minx, miny, maxx, maxy = frame.total_bounds
    geographic_looking = -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
    if frame.crs is None:
        if not geographic_looking:
            raise InputError.said(N_("has no CRS and its coordinates are not longitude and "
                                     "latitude (projected?); give the file a CRS (.prj) or "
                                     "convert it."), lead=f"{path}: ", field="FILE")
        frame.set_crs(4326, inplace=True)


def _check_geometry(geom: Any, label: str) -> None:
    if geom is None or geom.is_empty:
        raise InputError.said(N_("has no geometry."), lead=f"{label}: ", field=label)
    if geom.geom_type not in POLYGONAL:
        raise InputError.said(N_("is a %(type)s; a zone must be a Polygon or MultiPolygon."),
                              {"type": geom.geom_type}, lead=f"{label}: ", field=label)
    coords = shapely.get_coordinates(geom)
    lon, lat = coords[:, 0], coords[:, 1]
    if (np.abs(lat) > 90).any():
        if (np.abs(lon) <= 90).all() and (np.abs(lat) <= 180).all():
            raise InputError.said(N_("latitudes beyond ±90 while longitudes fit: longitude "
                                     "and latitude look swapped (GeoJSON is lon, lat)."),
                                  lead=f"{label}: ", field=label)
        raise InputError.said(_OUT_OF_RANGE, lead=f"{label}: ", field=label)
    if (np.abs(lon) > 180).any():
        raise InputError.said(_OUT_OF_RANGE, lead=f"{label}: ", field=label)
    if not geom.is_valid:
        raise InputError.said(N_("invalid geometry: %(why)s."),
                              {"why": shapely.is_valid_reason(geom)}, lead=f"{label}: ",
                              field=label)


_OUT_OF_RANGE = N_("coordinates out of range for WGS 84.")
