"""Public aggregates (SPEC 1, 6 `GET /stats`): what anyone may know about the trade.

Computed from the projections, never from single parcels: counts of what the
ledger holds, purchases by declared origin country and year (carats, parcels),
and exports by exporting country and year (carats, value). Carats are summed as
integer points and money as integer cents, so the totals are exact.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ledger import projections as pj


def _count(conn: sa.Connection, table: sa.Table, *where: Any) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))
               .scalar_one())


def counts(conn: sa.Connection) -> dict[str, int]:
    f = pj.flags
    return {
        "actors": _count(conn, pj.actors),
        "zones": _count(conn, pj.zones),
        "sites": _count(conn, pj.sites),
        "parcels": _count(conn, pj.parcels),
        "purchases": _count(conn, pj.parcels, pj.parcels.c.site_id.is_not(None)),
        "exports": _count(conn, pj.exports),
        "flags": _count(conn, f),
        "open_flags": _count(conn, f, f.c.status == "open"),
    }


def purchases(conn: sa.Connection) -> list[dict[str, Any]]:
    """Purchases by the declared site's country (``null``: unknown site) and year."""
    p, s = pj.parcels, pj.sites
    year = sa.func.substr(p.c.date, 1, 4)
    query = (
        sa.select(s.c.country, year.label("year"), sa.func.count().label("parcels"),
                  sa.func.sum(p.c.points).label("points"))
        .select_from(p.outerjoin(s, s.c.site_id == p.c.site_id))
        .where(p.c.site_id.is_not(None))
        .group_by(s.c.country, year)
    )
    rows = sorted(conn.execute(query), key=lambda r: (r.country or "", r.year))
    return [{"country": r.country, "year": int(r.year), "parcels": int(r.parcels),
             "carats": int(r.points) / 100} for r in rows]


def exports(conn: sa.Connection) -> list[dict[str, Any]]:
    """Exports by the exporter's country (the certificate's prefix) and year of issue."""
    x = pj.exports
    country, year = sa.func.substr(x.c.certificate_no, 1, 2), sa.func.substr(x.c.date, 1, 4)
    query = (
        sa.select(country.label("country"), year.label("year"),
                  sa.func.count().label("certificates"), sa.func.sum(x.c.points).label("points"),
                  sa.func.sum(x.c.value_cents).label("cents"))
        .group_by(country, year)
    )
    rows = sorted(conn.execute(query), key=lambda r: (r.country, r.year))
    return [{"country": r.country, "year": int(r.year), "certificates": int(r.certificates),
             "carats": int(r.points) / 100, "value_usd": int(r.cents) / 100} for r in rows]


def public_stats(conn: sa.Connection) -> dict[str, Any]:
    """Everything `GET /stats` shows an anonymous caller."""
    return {"counts": counts(conn), "purchases": purchases(conn), "exports": exports(conn)}
