"""The map as GeoJSON for GIS tools: zones, risk areas, sites and flagged purchases.

Properties are flat (text and numbers only) so that QGIS opens the file as it is;
each feature's ``layer`` says what it is. Drawn "as of" a day (SPEC 5), each zone has the
geometry and validity of its version in force that day, a zone not valid that day is left
out, and so are purchases dated after it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Collection
from typing import Any

import sqlalchemy as sa

from ledger.geo.zones import zone_entries
from ledger.projections import flags, parcels, sites, zone_versions, zones

# A test of a parcel id, row by row (ledger.reads.Scope.sees_parcel): the open flags are few
# beside the parcels a busy buyer ever held (issue 19: 240 ms at 100,000 events as a subquery).
Seen = Callable[[sa.ColumnElement[str]], sa.ColumnElement[bool]]


def _flag_codes(conn: sa.Connection, subject_type: str,
                among: Seen | None = None) -> dict[str, list[str]]:
    codes: dict[str, list[str]] = defaultdict(list)
    query = sa.select(flags.c.subject_id, flags.c.code).where(
        flags.c.subject_type == subject_type, flags.c.status == "open").order_by(flags.c.seq)
    if among is not None:
        query = query.where(among(flags.c.subject_id))
    rows = conn.execute(query)
    for subject, code in rows:
        codes[subject].append(code)
    return codes


def _zones_as_of(conn: sa.Connection, day: str | None) -> list[tuple[Any, str, str, str | None]]:
    """(zone row, geometry text, valid_from, valid_to) of every zone; as of ``day``, of the
    version in force that day and only for zones valid on it."""
    rows = list(conn.execute(sa.select(zones).order_by(zones.c.zone_id)))
    if day is None:
        return [(z, z.geometry, z.valid_from, z.valid_to) for z in rows]
    by_id = {z.zone_id: z for z in rows}
    found: dict[str, tuple[Any, str, str, str | None]] = {}
    for entry, geometry in zone_entries(rows, list(conn.execute(sa.select(zone_versions)))):
        if entry.zone_id not in found and entry.valid_on(day):
            found[entry.zone_id] = (by_id[entry.zone_id], geometry, entry.valid_from,
                                    entry.valid_to)
    return list(found.values())


def _declared_at(site_ids: list[str], seen: Seen | None) -> Seen:
    """``seen`` (if any), and declared at one of these sites."""
    def test(parcel_id: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
        here = sa.exists().where(parcels.c.parcel_id == parcel_id,
                                 parcels.c.site_id.in_(site_ids))
        return here if seen is None else sa.and_(here, seen(parcel_id))
    return test


def feature_collection(conn: sa.Connection, seen: Seen | None = None,
                       site_flags: bool = True, as_of: str | None = None,
                       site_ids: Collection[str] | None = None) -> dict[str, Any]:
    """Every layer; ``seen`` (a test of a parcel id) limits the flagged purchases to those
    parcels, and ``site_flags=False`` leaves out the flags of sites (a caller's scope);
    ``as_of`` draws the map as it stood that day (None: every zone's latest version);
    ``site_ids``: those sites and the flagged purchases declared at them only (a site's
    page: not the thousands flagged elsewhere)."""
    test, at_sites = seen, sa.select(sites)
    if site_ids is not None:
        at_sites = at_sites.where(sites.c.site_id.in_(list(site_ids)))
        test = _declared_at(list(site_ids), seen)
    features: list[dict[str, Any]] = []
    for z, geometry, valid_from, valid_to in _zones_as_of(conn, as_of):
        features.append({"type": "Feature", "geometry": json.loads(geometry), "properties": {
            "layer": "licence_zone" if z.zone_type == "licence" else "risk_area",
            "zone_id": z.zone_id, "name": z.name, "licence_no": z.licence_no,
            "holder": z.holder, "category": z.category, "source": z.source,
            "valid_from": valid_from, "valid_to": valid_to, "revoked_on": z.revoked_on}})
    on_sites = _flag_codes(conn, "site") if site_flags else {}
    for s in conn.execute(at_sites.order_by(sites.c.site_id)):
        codes = on_sites.get(s.site_id, [])
        features.append({"type": "Feature", "geometry": json.loads(s.location), "properties": {
            "layer": "site", "site_id": s.site_id, "name": s.name, "licence_no": s.licence_no,
            "operator": s.operator, "country": s.country, "registered": s.date,
            "suspended_on": s.suspended_on, "open_flags": len(codes), "flags": ",".join(codes)}})
    parcel_flags = _flag_codes(conn, "parcel", test)
    locations = {r.site_id: r.location for r in conn.execute(sa.select(sites.c.site_id,
                                                                        sites.c.location))}
    flagged = list(parcel_flags)
    for k in range(0, len(flagged), 500):
        rows = conn.execute(sa.select(parcels).where(parcels.c.parcel_id.in_(flagged[k:k + 500]),
                                                     parcels.c.site_id.is_not(None)))
        for p in rows:
            if as_of is not None and p.date > as_of:
                continue
            if p.dig_lon is not None:
                point: dict[str, Any] = {"type": "Point", "coordinates": [p.dig_lon, p.dig_lat]}
            elif p.site_id in locations:
                point = json.loads(locations[p.site_id])
            else:
                continue
            features.append({"type": "Feature", "geometry": point, "properties": {
                "layer": "flagged_purchase", "parcel_id": p.parcel_id, "site_id": p.site_id,
                "date": p.date, "carats": p.points / 100, "holder": p.holder,
                "flags": ",".join(parcel_flags[p.parcel_id])}})
    return {"type": "FeatureCollection", "features": features}
