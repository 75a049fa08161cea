"""Reading zone files: GeoJSON, GeoPackage, Shapefile in any CRS (SPEC 5, `import-zones`).

Each feature becomes a ``zone.registered`` payload in WGS 84. Properties named
like the payload fields are taken as they are; ``mapping`` renames others. A
file with any bad feature is refused whole, naming the feature and why.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from ledger.errors import InputError

LICENCE_FIELDS = ("zone_id", "name", "licence_no", "holder", "valid_from", "valid_to", "date")
RISK_FIELDS = ("zone_id", "name", "category", "source", "valid_from", "valid_to", "date")
POLYGONAL = ("Polygon", "MultiPolygon")


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
    try:
        frame = geopandas.read_file(path, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
        raise InputError(f"{path}: cannot be read as GeoJSON, GeoPackage or Shapefile: {exc}",
                         field="FILE") from exc
    if frame.empty:
        raise InputError(f"{path}: holds no features.", field="FILE")
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


def _check_crs(frame: Any, path: Path) -> None:
    minx, miny, maxx, maxy = frame.total_bounds
    geographic_looking = -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
    if frame.crs is None:
        if not geographic_looking:
            raise InputError(f"{path}: has no CRS and its coordinates are not longitude and "
                             "latitude (projected?); give the file a CRS (.prj) or convert it.",
                             field="FILE")
        frame.set_crs(4326, inplace=True)


def _check_geometry(geom: Any, label: str) -> None:
    if geom is None or geom.is_empty:
        raise InputError(f"{label}: has no geometry.", field=label)
    if geom.geom_type not in POLYGONAL:
        raise InputError(f"{label}: is a {geom.geom_type}; a zone must be a Polygon or "
                         "MultiPolygon.", field=label)
    coords = shapely.get_coordinates(geom)
    lon, lat = coords[:, 0], coords[:, 1]
    if (np.abs(lat) > 90).any():
        if (np.abs(lon) <= 90).all() and (np.abs(lat) <= 180).all():
            raise InputError(f"{label}: latitudes beyond ±90 while longitudes fit: longitude "
                             "and latitude look swapped (GeoJSON is lon, lat).", field=label)
        raise InputError(f"{label}: coordinates out of range for WGS 84.", field=label)
    if (np.abs(lon) > 180).any():
        raise InputError(f"{label}: coordinates out of range for WGS 84.", field=label)
    if not geom.is_valid:
        raise InputError(f"{label}: invalid geometry: {shapely.is_valid_reason(geom)}.",
                         field=label)
