"""Projections: the current state derived from the entries, and nothing else (SPEC 3).

Actors with their licences, zones, sites, parcels (holder, status, hold), custody
edges, exports and flags. :func:`apply` folds one entry into them; `alluvial
rebuild` drops them and folds every entry again, giving the same state (compare
:func:`digest`). Carats are kept as integer points (1 carat = 100 points), money
as integer cents, so rules add them up exactly.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa

projection_metadata = sa.MetaData()
Id = sa.String(64)
Day = sa.String(10)

actors = sa.Table(
    "actors", projection_metadata,
    sa.Column("actor_id", Id, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("licence_no", Id),
    sa.Column("licence_valid_from", Day),
    sa.Column("licence_valid_to", Day),
    sa.Column("revoked_on", Day),  # the latest revocation, as shown
    # SPEC 4 licence.renewed / licence.revoked: JSON lists (ledger.custody.licences)
    sa.Column("renewals", sa.Text),
    sa.Column("revocations", sa.Text),
    sa.Column("seq", sa.BigInteger, nullable=False),
)

zones = sa.Table(
    "zones", projection_metadata,
    sa.Column("zone_id", Id, primary_key=True),
    sa.Column("zone_type", sa.String(8), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("licence_no", Id, index=True),
    sa.Column("country", sa.String(2)),  # a licence zone's (JURISDICTION); null for risk areas
    sa.Column("holder", sa.String(200)),
    sa.Column("category", sa.String(16)),
    sa.Column("source", sa.String(2000)),
    sa.Column("valid_from", Day, nullable=False),
    sa.Column("valid_to", Day),
    sa.Column("revoked_on", Day),  # the latest revocation, as shown
    sa.Column("renewals", sa.Text),  # JSON lists, as on actors
    sa.Column("revocations", sa.Text),
    sa.Column("retired_to", Day),  # zone.retired: the last day it counts, on every version
    # The geometry and validity of the latest version (as shown); screening reads versions.
    sa.Column("geometry", sa.Text, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False, index=True),
)

# SPEC 5: a zone's versions. The registration is the first (effective null: from the start),
# each zone.amended one more from its ``effective`` day on. A version keeps the fields it
# sets; null geometry or valid_from, or valid_to with ``sets_valid_to`` false, are the
# version before's (in effective order).
zone_versions = sa.Table(
    "zone_versions", projection_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("zone_id", Id, nullable=False, index=True),
    sa.Column("effective", Day),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("geometry", sa.Text),
    sa.Column("valid_from", Day),
    sa.Column("valid_to", Day),
    sa.Column("sets_valid_to", sa.Boolean, nullable=False),
)

sites = sa.Table(
    "sites", projection_metadata,
    sa.Column("site_id", Id, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("licence_no", Id, nullable=False),
    sa.Column("operator", sa.String(200), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("date", Day, nullable=False),
    sa.Column("suspended_on", Day),
    sa.Column("capacity_points", sa.BigInteger),  # SPEC 4 capacity_ct_month, in points
    sa.Column("seq", sa.BigInteger, nullable=False),
)

parcels = sa.Table(
    "parcels", projection_metadata,
    sa.Column("parcel_id", Id, primary_key=True),
    sa.Column("holder", Id, nullable=False, index=True),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("stones", sa.Integer, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # active | spent
    sa.Column("open_flags", sa.Integer, nullable=False),
    sa.Column("site_id", Id),  # for purchases: the declared site
    # For purchases: the seller, when a registered actor at the time (SPEC 5 LICENCE_INVALID).
    sa.Column("seller_id", Id),
    sa.Column("dig_lon", sa.Float),  # for purchases: the declared dig point, if any
    sa.Column("dig_lat", sa.Float),
    # For purchases (first sales; SPEC 5 footprints, SPEC 6 stats): the price as written, the
    # declared site's licence_no when that site was registered, the sieve classes (JSON).
    sa.Column("price_cents", sa.BigInteger),
    sa.Column("currency", sa.String(3)),
    sa.Column("licence_no", Id),
    sa.Column("sieve", sa.Text),
    sa.Column("date", Day, nullable=False),
    # SPEC 4 DATE_ORDER: the date of its last custody event (made, or transferred)
    sa.Column("last_date", Day, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),  # the entry that made it
    sa.Column("spent_seq", sa.BigInteger),
)

# Rescreen reads the few purchases sold by registered actors from this index alone.
sa.Index("ix_parcels_seller_id", parcels.c.seller_id, sqlite_where=parcels.c.seller_id.is_not(None),
         postgresql_where=parcels.c.seller_id.is_not(None))
# SPEC 5 footprints and capacity, at write time: a licence zone's purchases of the last 365
# days, a site's purchases of the last 12 months.
sa.Index("ix_parcels_licence_date", parcels.c.licence_no, parcels.c.date)
sa.Index("ix_parcels_site_date", parcels.c.site_id, parcels.c.date)
# Issue 19: the keyset of the parcels list's default order, newest first (ledger.lists).
sa.Index("ix_parcels_seq", parcels.c.seq, parcels.c.parcel_id)
sa.Index("ix_parcels_points", parcels.c.points, parcels.c.parcel_id)
sa.Index("ix_parcels_date", parcels.c.date, parcels.c.parcel_id)
# Issue 19: a holder's holdings page, in its default order (on hold first, then newest).
sa.Index("ix_parcels_held", parcels.c.holder, parcels.c.status, parcels.c.open_flags,
         parcels.c.seq, parcels.c.parcel_id)

# One row per custody step: purchase (site -> parcel), transfer (parcel -> itself),
# split and merge (parent -> child), export (parcel -> certificate), and a site's
# licence zone (zone -> site).
edges = sa.Table(
    "custody_edges", projection_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("from_type", sa.String(8), nullable=False),
    sa.Column("from_id", Id, nullable=False, index=True),
    sa.Column("to_type", sa.String(8), nullable=False),
    sa.Column("to_id", Id, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", Id, nullable=False),
    sa.Column("date", Day, nullable=False),
    sa.Column("points", sa.BigInteger),
)
# A backward trace reads every edge into a node from this index alone (no table lookups).
sa.Index("ix_custody_edges_into", edges.c.to_id, edges.c.to_type, edges.c.from_type,
         edges.c.from_id, edges.c.seq, edges.c.kind, edges.c.actor, edges.c.date, edges.c.points)
# Issue 19: what an actor held (Scope.seen_parcels, Scope.sees_parcel): every buyer's and
# exporter's list pages read them.
sa.Index("ix_custody_edges_actor", edges.c.actor)
sa.Index("ix_custody_edges_from_actor", edges.c.from_id, edges.c.actor)

exports = sa.Table(
    "exports", projection_metadata,
    sa.Column("certificate_no", Id, primary_key=True),
    sa.Column("exporter", Id, nullable=False),
    sa.Column("importer", sa.String(200), nullable=False),
    sa.Column("destination", sa.String(2), nullable=False),
    sa.Column("hs_code", sa.String(8), nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("value_cents", sa.BigInteger, nullable=False),
    sa.Column("date", Day, nullable=False),
    sa.Column("expires", Day, nullable=False),
    sa.Column("open_flags", sa.Integer, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("parcel_count", sa.Integer),  # how many parcel_ids it names
    # SPEC 4 certificate.validated: the entry, the authority (actor), its official, its
    # date and valuation; null until validated.
    sa.Column("validated_seq", sa.BigInteger),
    sa.Column("validated_by", Id),
    sa.Column("validating_officer", sa.String(200)),
    sa.Column("validated_on", Day),
    sa.Column("valuation_cents", sa.BigInteger),
    # SPEC 4 import.confirmed: what arrived, and whether it differs from the certificate
    # (SPEC 5 CONFIRMATION_MISMATCH); null until confirmed, and for confirmations written
    # before they carried carats, parcels and importer.
    sa.Column("confirmed_seq", sa.BigInteger),
    sa.Column("confirmed_on", Day),
    sa.Column("received_points", sa.BigInteger),
    sa.Column("received_parcels", sa.Integer),
    sa.Column("received_importer", sa.String(200)),
    sa.Column("mismatched", sa.Boolean),
)
# The certificates list's keyset orders (issue 19, ledger.lists.CERTIFICATE_LIST): a page
# is the next rows of an index walk, not a sort of every export (at 100k events, 7,431
# exports: the auditor's first page 45 ms without, 1 ms with).
sa.Index("ix_exports_date", exports.c.date, exports.c.certificate_no)
sa.Index("ix_exports_points", exports.c.points, exports.c.certificate_no)
# An exporter's latest certificates (its dashboard) and its country's (an authority's desk):
# at 1,000,000 events, 74,000 exports read for 10 rows without it (issue 19).
sa.Index("ix_exports_exporter", exports.c.exporter, exports.c.seq)

flags = sa.Table(
    "flags", projection_metadata,
    sa.Column("flag_id", sa.String(160), primary_key=True),
    sa.Column("subject_type", sa.String(8), nullable=False),
    sa.Column("subject_id", Id, nullable=False, index=True),
    sa.Column("code", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # open | resolved
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("cause_seq", sa.BigInteger, index=True),  # the entry whose screening raised it
    sa.Column("resolved_seq", sa.BigInteger),
    sa.Column("resolution", sa.Text),
)

# The few parcels on hold (stats' flagged carats, the holds pages) from this index alone; its
# condition is written as SQL text where read, so that SQLite sees the same term.
sa.Index("ix_parcels_open", parcels.c.date, sqlite_where=sa.text("open_flags > 0"),
         postgresql_where=sa.text("open_flags > 0"))

# SPEC 6 statistics: purchases (first sales) summed by calendar quarter (the finest period
# `stats` takes), so that `stats` over a million purchases reads thousands of rows, not a
# million. Each purchase adds to three rows, one per grain: ``zone`` (country, licence_no:
# `--by country|zone`), ``site`` (site_id: `--by site`) and ``buyer`` (buyer: `--by buyer`),
# each also split by whether it was priced in USD. ``country`` and ``licence_no`` are the
# declared site's when it was registered at the purchase (null: an unknown site). ``bucket``
# names the row (JSON of its key columns).
purchase_quarters = sa.Table(
    "purchase_quarters", projection_metadata,
    sa.Column("bucket", sa.String(400), primary_key=True),
    sa.Column("grain", sa.String(5), nullable=False),
    sa.Column("month", sa.String(7), nullable=False),  # the quarter's first month, YYYY-MM
    sa.Column("country", sa.String(2)),
    sa.Column("licence_no", Id),  # zone grain
    sa.Column("site_id", Id),  # site grain
    sa.Column("buyer", Id),  # buyer grain
    sa.Column("usd", sa.Boolean, nullable=False),
    sa.Column("purchases", sa.BigInteger, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("stones", sa.BigInteger, nullable=False),
    sa.Column("cents", sa.BigInteger, nullable=False),  # USD rows only; 0 otherwise
)
sa.Index("ix_purchase_quarters", purchase_quarters.c.grain, purchase_quarters.c.month)

# Table -> primary key column name, in the order the digest reads them.
KEYS = {
    "actors": "actor_id", "zones": "zone_id", "sites": "site_id", "parcels": "parcel_id",
    "custody_edges": "id", "zone_versions": "id", "exports": "certificate_no",
    "flags": "flag_id", "purchase_quarters": "bucket",
}
# Tables only ever appended to, whose surrogate ids differ between two folds of the log:
# the digest reads them by the entry that made each row.
APPENDED = {"custody_edges": ("seq", "from_id", "to_id"), "zone_versions": ("seq",)}


def points(carats: float | int) -> int:
    """Carats to integer points; exact for the two-decimal numbers the schemas admit."""
    return round(carats * 100)


def cents(amount: float | int) -> int:
    return round(amount * 100)


def create(conn: sa.Connection) -> None:
    projection_metadata.create_all(conn)


def drop(conn: sa.Connection) -> None:
    projection_metadata.drop_all(conn)


def outdated(conn: sa.Connection) -> list[str]:
    """The columns (``table.column``) that this version keeps and the database's projection
    tables lack, because an earlier version made them; none before `alluvial init`."""
    inspector = sa.inspect(conn)
    missing: list[str] = []
    made = [name for name in projection_metadata.tables if inspector.has_table(name)]
    for name, table in projection_metadata.tables.items():
        if name in made:
            have = {c["name"] for c in inspector.get_columns(name)}
            missing += [f"{name}.{c.name}" for c in table.columns if c.name not in have]
        elif made:
            missing.append(f"{name} (table)")
    return missing


def digest(conn: sa.Connection) -> str:
    """SHA-256 over every projection row in key order: equal state, equal digest."""
    h = hashlib.sha256()
    for name, key in KEYS.items():
        table = projection_metadata.tables[name]
        cols = [c for c in table.columns if name not in APPENDED or c.name != "id"]
        order = [table.c[c] for c in APPENDED.get(name, (key,))]
        h.update(name.encode())
        for row in conn.execute(sa.select(*cols).order_by(*order)):
            h.update(repr(tuple(row)).encode())
    return h.hexdigest()


def row_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)
