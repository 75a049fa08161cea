"""Reads of the projections that only the pages need: a record and its neighbours,
a holder's parcels, recent entries, search. Plain queries that decide nothing;
who may see what is decided before they run (``webui.pages.access`` and
``ledger.accounts.Scope``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from ledger import projections as pj
from ledger.accounts import Token, User
from ledger.custody import Node, Trace
from ledger.db import entries
from ledger.errors import NotFound

RECENT = 10
FOUND = 25
# The id an entry's payload is about, by kind (for one-line summaries).
_ABOUT = ("certificate_no", "parcel_id", "parent_id", "site_id", "zone_id", "actor_id",
          "flag_id")


def _rows(conn: sa.Connection, query: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(query)]


def _one(conn: sa.Connection, table: sa.Table, key: str, value: str, what: str
         ) -> dict[str, Any]:
    row = conn.execute(sa.select(table).where(table.c[key] == value)).first()
    if row is None:
        raise NotFound(f"{key}: there is no {what} '{value}'.", field=key)
    return dict(row._mapping)


def summary(kind: str, payload: dict[str, Any]) -> str:
    """What an entry is about, in a few words."""
    if kind == "parcel.merged":
        return f"{', '.join(payload['parent_ids'])} → {payload['child']['parcel_id']}"
    if kind == "flag.raised":
        return f"{payload['flag_id']} {payload['code']} on {payload['subject']['id']}"
    about = next((payload[k] for k in _ABOUT if k in payload), "")
    if kind == "parcel.transferred":
        return f"{about} → {payload['to_actor']}"
    return str(about)


def recent_entries(conn: sa.Connection, actor: str | None = None,
                   limit: int = RECENT) -> list[dict[str, Any]]:
    """The latest entries, or the latest an actor wrote."""
    e = entries
    query = sa.select(e.c.seq, e.c.ts, e.c.kind, e.c.actor, e.c.payload)
    if actor is not None:
        query = query.where(e.c.actor == actor)
    rows = conn.execute(query.order_by(e.c.seq.desc()).limit(limit))
    return [{"seq": r.seq, "ts": r.ts, "kind": r.kind, "actor": r.actor,
             "about": summary(r.kind, json.loads(r.payload))} for r in rows]


def holdings(conn: sa.Connection, actor: str) -> list[dict[str, Any]]:
    """The parcels the actor holds now (active): those on hold first, then the newest."""
    p = pj.parcels
    rows = _rows(conn, sa.select(p).where(p.c.holder == actor, p.c.status == "active")
                 .order_by(p.c.open_flags.desc(), p.c.seq.desc()))
    for r in rows:
        r["carats"] = r["points"] / 100
    return rows


def parcel_ids(conn: sa.Connection, actor: str) -> list[str]:
    p = pj.parcels
    return list(conn.execute(sa.select(p.c.parcel_id).where(
        p.c.holder == actor, p.c.status == "active").order_by(p.c.seq)).scalars())


def exports_of(conn: sa.Connection, exporter: str, limit: int = RECENT) -> list[dict[str, Any]]:
    x = pj.exports
    rows = _rows(conn, sa.select(x).where(x.c.exporter == exporter)
                 .order_by(x.c.seq.desc()).limit(limit))
    for r in rows:
        r["carats"], r["value_usd"] = r["points"] / 100, r["value_cents"] / 100
    return rows


def suggestions(conn: sa.Connection, actor: str) -> dict[str, list[str]]:
    """Ids a form offers while typing: sites, the actor's parcels, registered actors."""
    return {
        "sites": list(conn.execute(sa.select(pj.sites.c.site_id).where(
            pj.sites.c.suspended_on.is_(None)).order_by(pj.sites.c.site_id)).scalars()),
        "parcels": parcel_ids(conn, actor),
        "actors": list(conn.execute(sa.select(pj.actors.c.actor_id).where(
            pj.actors.c.role.in_(("buyer", "exporter"))).order_by(pj.actors.c.actor_id))
            .scalars()),
    }


def flags_on(conn: sa.Connection, subject_type: str, subject_id: str) -> list[dict[str, Any]]:
    f = pj.flags
    return _rows(conn, sa.select(f).where(f.c.subject_type == subject_type,
                                          f.c.subject_id == subject_id).order_by(f.c.seq))


def site(conn: sa.Connection, site_id: str) -> dict[str, Any]:
    """A site, its own flags, and the purchases declared at it (flagged ones first)."""
    row = _one(conn, pj.sites, "site_id", site_id, "site")
    p = pj.parcels
    row["flags"] = flags_on(conn, "site", site_id)
    row["purchases"] = conn.execute(sa.select(sa.func.count()).where(
        p.c.site_id == site_id)).scalar_one()
    row["flagged"] = list(conn.execute(sa.select(p.c.parcel_id).where(
        p.c.site_id == site_id, p.c.open_flags > 0).order_by(p.c.seq)).scalars())
    row["zones"] = list(conn.execute(sa.select(pj.zones.c.zone_id).where(
        pj.zones.c.licence_no == row["licence_no"], pj.zones.c.zone_type == "licence")
        .order_by(pj.zones.c.zone_id)).scalars())
    return row


def zone(conn: sa.Connection, zone_id: str) -> dict[str, Any]:
    row = _one(conn, pj.zones, "zone_id", zone_id, "zone")
    s = pj.sites
    row["sites"] = [] if row["licence_no"] is None else list(conn.execute(
        sa.select(s.c.site_id).where(s.c.licence_no == row["licence_no"])
        .order_by(s.c.site_id)).scalars())
    return row


def actor(conn: sa.Connection, actor_id: str) -> dict[str, Any]:
    row = _one(conn, pj.actors, "actor_id", actor_id, "actor")
    p = pj.parcels
    row["held"] = conn.execute(sa.select(sa.func.count()).where(
        p.c.holder == actor_id, p.c.status == "active")).scalar_one()
    row["on_hold"] = conn.execute(sa.select(sa.func.count()).where(
        p.c.holder == actor_id, p.c.status == "active", p.c.open_flags > 0)).scalar_one()
    return row


def export(conn: sa.Connection, certificate_no: str) -> dict[str, Any]:
    row = _one(conn, pj.exports, "certificate_no", certificate_no, "export certificate")
    row["carats"], row["value_usd"] = row["points"] / 100, row["value_cents"] / 100
    row["flags"] = flags_on(conn, "export", certificate_no)
    return row


def flag(conn: sa.Connection, flag_id: str) -> dict[str, Any]:
    return _one(conn, pj.flags, "flag_id", flag_id, "flag")


def search(conn: sa.Connection, text: str) -> dict[str, list[str]]:
    """Ids of parcels, sites, actors, certificates, zones and flags containing ``text``."""
    pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    found = {}
    for name, table, key in (("parcels", pj.parcels, "parcel_id"), ("sites", pj.sites, "site_id"),
                             ("actors", pj.actors, "actor_id"),
                             ("exports", pj.exports, "certificate_no"),
                             ("zones", pj.zones, "zone_id"), ("flags", pj.flags, "flag_id")):
        column = table.c[key]
        found[name] = list(conn.execute(sa.select(column).where(
            sa.func.lower(column).like(pattern, escape="\\")).order_by(column).limit(FOUND))
            .scalars())
    return found


def node_seqs(conn: sa.Connection, nodes: Iterable[Node]) -> dict[Node, int]:
    """The entry that made each node of a trace (its registration, purchase, split...)."""
    tables = {"parcel": (pj.parcels, "parcel_id"), "site": (pj.sites, "site_id"),
              "zone": (pj.zones, "zone_id"), "export": (pj.exports, "certificate_no")}
    wanted: dict[str, list[str]] = {}
    for kind, ident in nodes:
        wanted.setdefault(kind, []).append(ident)
    seqs: dict[Node, int] = {}
    for kind, ids in wanted.items():
        table, key = tables[kind]
        for k in range(0, len(ids), 500):
            rows = conn.execute(sa.select(table.c[key], table.c.seq).where(
                table.c[key].in_(ids[k:k + 500])))
            seqs.update({(kind, ident): seq for ident, seq in rows})
    return seqs


def flagged_nodes(conn: sa.Connection, nodes: Iterable[Node]) -> set[Node]:
    """The parcels and exports of a trace with open flags."""
    f = pj.flags
    wanted = [n for n in nodes if n[0] in ("parcel", "export", "site")]
    found: set[Node] = set()
    for k in range(0, len(wanted), 500):
        ids = [i for _, i in wanted[k:k + 500]]
        rows = conn.execute(sa.select(f.c.subject_type, f.c.subject_id).where(
            f.c.subject_id.in_(ids), f.c.status == "open"))
        found.update((t, i) for t, i in rows)
    return found & set(wanted)


def origin_features(conn: sa.Connection, graph: Trace) -> list[dict[str, Any]]:
    """The origin map of a trace: its sites, their licence zones, the dig points of its
    purchases (in the shape of ``ledger.maps.feature_collection``), and every risk area."""
    site_ids = graph.sites()
    zone_ids = [i for t, i in graph.nodes if t == "zone"]
    parcel_ids = [i for t, i in graph.nodes if t == "parcel"]
    z, s, p = pj.zones, pj.sites, pj.parcels
    features = []
    for r in conn.execute(sa.select(z).where(sa.or_(z.c.zone_id.in_(zone_ids),
                                                    z.c.zone_type == "risk"))):
        layer = "licence_zone" if r.zone_type == "licence" else "risk_area"
        features.append(_feature(r.geometry, layer=layer, zone_id=r.zone_id, name=r.name,
                                 category=r.category, licence_no=r.licence_no,
                                 valid_from=r.valid_from, valid_to=r.valid_to))
    for r in conn.execute(sa.select(s).where(s.c.site_id.in_(site_ids))):
        features.append(_feature(r.location, layer="site", site_id=r.site_id, name=r.name,
                                 open_flags=0, flags=""))
    for k in range(0, len(parcel_ids), 500):
        rows = conn.execute(sa.select(p).where(p.c.parcel_id.in_(parcel_ids[k:k + 500]),
                                               p.c.dig_lon.is_not(None)))
        for r in rows:
            point = json.dumps({"type": "Point", "coordinates": [r.dig_lon, r.dig_lat]})
            layer = "flagged_purchase" if r.open_flags else "dig_point"
            features.append(_feature(point, layer=layer, parcel_id=r.parcel_id,
                                     site_id=r.site_id, date=r.date, flags=""))
    return features


def near(collection: dict[str, Any], zone_ids: Iterable[str], site_ids: Iterable[str]
         ) -> list[dict[str, Any]]:
    """Of ``ledger.maps.feature_collection``: these zones and sites, the purchases flagged
    at these sites, and every risk area."""
    zones_, sites_ = set(zone_ids), set(site_ids)
    kept = []
    for f in collection["features"]:
        p = f["properties"]
        if (p["layer"] == "risk_area" or (p["layer"] == "licence_zone" and p["zone_id"] in zones_)
                or (p["layer"] in ("site", "flagged_purchase") and p["site_id"] in sites_)):
            kept.append(f)
    return kept


def screened(conn: sa.Connection, geometry: dict[str, Any], licence_no: str | None,
             flags: int) -> list[dict[str, Any]]:
    """A map of a preview: the point or polygon screened, the licence zones of its mining
    licence, and every risk area."""
    z = pj.zones
    own = sa.and_(z.c.zone_type == "licence", z.c.licence_no == licence_no)
    rows = conn.execute(sa.select(z).where(sa.or_(z.c.zone_type == "risk", own)))
    features = [_feature(r.geometry, layer="licence_zone" if r.zone_type == "licence"
                         else "risk_area", zone_id=r.zone_id, name=r.name,
                         licence_no=r.licence_no, category=r.category,
                         valid_from=r.valid_from, valid_to=r.valid_to) for r in rows]
    features.append({"type": "Feature", "geometry": geometry, "properties": {
        "layer": "site", "site_id": "", "name": "what was screened", "open_flags": flags,
        "flags": ""}})
    return features


def _feature(geometry: str, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": json.loads(geometry), "properties": properties}


def users(conn: sa.Connection) -> list[dict[str, Any]]:
    tokens = sa.select(sa.func.count()).where(Token.user == User.name).scalar_subquery()
    rows = conn.execute(sa.select(User.name, User.role, User.actor_id, User.created,
                                  User.password_hash.is_not(None).label("has_password"),
                                  tokens.label("tokens")).order_by(User.name))
    return [dict(r._mapping) for r in rows]
