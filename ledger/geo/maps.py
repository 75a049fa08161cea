"""The map as GeoJSON for GIS tools: zones, risk areas, sites and flagged purchases.

Properties are flat (text and numbers only) so that QGIS opens the file as it is;
each feature's ``layer`` says what it is.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from ledger.projections import flags, parcels, sites, zones


def _flag_codes(conn: sa.Connection, subject_type: str,
                among: sa.CompoundSelect[Any] | None = None) -> dict[str, list[str]]:
    codes: dict[str, list[str]] = defaultdict(list)
    query = sa.select(flags.c.subject_id, flags.c.code).where(
        flags.c.subject_type == subject_type, flags.c.status == "open").order_by(flags.c.seq)
    if among is not None:
        query = query.where(flags.c.subject_id.in_(among))
    rows = conn.execute(query)
    for subject, code in rows:
        codes[subject].append(code)
    return codes


def feature_collection(conn: sa.Connection, seen: sa.CompoundSelect[Any] | None = None,
                       site_flags: bool = True) -> dict[str, Any]:
    """Every layer; ``seen`` (a query of parcel ids) limits the flagged purchases to those
    parcels, and ``site_flags=False`` leaves out the flags of sites (a caller's scope)."""
    features: list[dict[str, Any]] = []
    for z in conn.execute(sa.select(zones).order_by(zones.c.zone_id)):
        features.append({"type": "Feature", "geometry": json.loads(z.geometry), "properties": {
            "layer": "licence_zone" if z.zone_type == "licence" else "risk_area",
            "zone_id": z.zone_id, "name": z.name, "licence_no": z.licence_no,
            "holder": z.holder, "category": z.category, "source": z.source,
            "valid_from": z.valid_from, "valid_to": z.valid_to, "revoked_on": z.revoked_on}})
    on_sites = _flag_codes(conn, "site") if site_flags else {}
    for s in conn.execute(sa.select(sites).order_by(sites.c.site_id)):
        codes = on_sites.get(s.site_id, [])
        features.append({"type": "Feature", "geometry": json.loads(s.location), "properties": {
            "layer": "site", "site_id": s.site_id, "name": s.name, "licence_no": s.licence_no,
            "operator": s.operator, "country": s.country, "registered": s.date,
            "suspended_on": s.suspended_on, "open_flags": len(codes), "flags": ",".join(codes)}})
    parcel_flags = _flag_codes(conn, "parcel", seen)
    locations = {r.site_id: r.location for r in conn.execute(sa.select(sites.c.site_id,
                                                                        sites.c.location))}
    flagged = list(parcel_flags)
    for k in range(0, len(flagged), 500):
        rows = conn.execute(sa.select(parcels).where(parcels.c.parcel_id.in_(flagged[k:k + 500]),
                                                     parcels.c.site_id.is_not(None)))
        for p in rows:
            if p.dig_lon is not None:
                geometry = {"type": "Point", "coordinates": [p.dig_lon, p.dig_lat]}
            elif p.site_id in locations:
                geometry = json.loads(locations[p.site_id])
            else:
                continue
            features.append({"type": "Feature", "geometry": geometry, "properties": {
                "layer": "flagged_purchase", "parcel_id": p.parcel_id, "site_id": p.site_id,
                "date": p.date, "carats": p.points / 100, "holder": p.holder,
                "flags": ",".join(parcel_flags[p.parcel_id])}})
    return {"type": "FeatureCollection", "features": features}
