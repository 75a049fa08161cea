"""The custody state inside one write transaction, and how each entry changes it.

A write reads the projections through this working set: rows are fetched once
(or prefetched for a whole chunk of an ingest file), changed in memory as entries
are folded in, and written back in batches by :meth:`State.flush`. After a flush
the cache is dropped, so memory does not grow with the size of a file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from ledger.custody import licences
from ledger.db import driver_rows, insert_many, update_many
from ledger.log.canonical import canonical_text
from ledger.projections import APPENDED, KEYS, cents, points, projection_metadata

Row = dict[str, Any]
CACHED = tuple(t for t in KEYS if t not in APPENDED)
_COLUMNS = {t: [c.name for c in projection_metadata.tables[t].columns] for t in CACHED}


class State:
    """Cached, write-back view of the projection tables on one connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.cache: dict[str, dict[str, Row | None]] = {t: {} for t in CACHED}
        self.new: dict[str, set[str]] = {t: set() for t in CACHED}
        self.dirty: dict[str, set[str]] = {t: set() for t in CACHED}
        self.edges: list[Row] = []
        self.versions: list[Row] = []  # zone_versions, appended only

    # -- reading ----------------------------------------------------------------
    def get(self, table: str, key: str) -> Row | None:
        cache = self.cache[table]
        if key not in cache:
            self.prefetch(table, [key])
        return cache[key]

    def prefetch(self, table: str, keys: Iterable[str]) -> None:
        cache = self.cache[table]
        missing = list({k for k in keys if k not in cache})
        columns = _COLUMNS[table]
        key = columns.index(KEYS[table])
        for i in range(0, len(missing), 500):
            chunk = missing[i : i + 500]
            for k in chunk:
                cache[k] = None
            sql = (f"SELECT {', '.join(columns)} FROM {table} "
                   f"WHERE {KEYS[table]} IN ({', '.join('?' * len(chunk))})")
            for row in driver_rows(self.conn, sql, chunk):
                cache[row[key]] = dict(zip(columns, row, strict=True))

    # -- writing ----------------------------------------------------------------
    def insert(self, table: str, row: Row) -> None:
        key = row[KEYS[table]]
        self.cache[table][key] = row
        self.new[table].add(key)

    def update(self, table: str, key: str, **values: Any) -> Row:
        row = self.get(table, key)
        assert row is not None, f"{table} {key} vanished inside a transaction"
        row.update(values)
        if key not in self.new[table]:
            self.dirty[table].add(key)
        return row

    def edge(self, **row: Any) -> None:
        self.edges.append(row)

    def flush(self) -> None:
        """Write every change back and forget the cache."""
        for table in CACHED:
            t = projection_metadata.tables[table]
            cache = self.cache[table]
            insert_many(self.conn, t, [cache[k] for k in self.new[table]])  # type: ignore[misc]
            update_many(self.conn, t, KEYS[table],
                        [cache[k] for k in self.dirty[table]])  # type: ignore[misc]
            self.cache[table] = {}
            self.new[table] = set()
            self.dirty[table] = set()
        insert_many(self.conn, projection_metadata.tables["custody_edges"], self.edges)
        insert_many(self.conn, projection_metadata.tables["zone_versions"], self.versions)
        self.edges = []
        self.versions = []

    # -- folding entries in ------------------------------------------------------
    def apply(self, seq: int, kind: str, actor: str, p: dict[str, Any]) -> None:
        """Fold one entry into the projections (SPEC 3: derived only from entries)."""
        FOLDS[kind](self, seq, actor, p)


def _actor_registered(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    s.insert("actors", {
        "actor_id": p["actor_id"], "name": p["name"], "role": p["role"],
        "country": p["country"], "licence_no": p.get("licence_no"),
        "licence_valid_from": p.get("licence_valid_from"),
        "licence_valid_to": p.get("licence_valid_to"), "revoked_on": None,
        "renewals": None, "revocations": None, "seq": seq,
    })


def _licence_revoked(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    table, key, extra = _licensed(p, seq)
    row = s.get(table, key)
    assert row is not None, f"{table} {key} vanished inside a transaction"
    s.update(table, key, revoked_on=p["date"],
             revocations=licences.revoked(row["revocations"], p["date"]), **extra)


def _licence_renewed(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    """SPEC 4: valid again on the new window (a revocation before its first day no longer
    counts inside it)."""
    table, key, extra = _licensed(p, seq)
    row = s.get(table, key)
    assert row is not None, f"{table} {key} vanished inside a transaction"
    s.update(table, key, renewals=licences.renewed(row["renewals"], p["valid_from"],
                                                   p.get("valid_to")), **extra)


def _licensed(p: dict[str, Any], seq: int) -> tuple[str, str, dict[str, Any]]:
    """The row a licence event is about; a zone's change also changes the map's version."""
    if p.get("actor_id"):
        return "actors", p["actor_id"], {}
    return "zones", p["zone_id"], {"last_seq": seq}


_VERSIONED = ("geometry", "valid_from", "valid_to")
_COUNTRY_PREFIX = re.compile(r"([A-Z]{2})-")


def zone_country(p: dict[str, Any]) -> str | None:
    """SPEC 4: a licence zone's country, or the alpha-2 code its licence_no begins with."""
    if p.get("zone_type") != "licence":
        return None
    if p.get("country"):
        return str(p["country"])
    found = _COUNTRY_PREFIX.match(p.get("licence_no") or "")
    return found.group(1) if found else None


def _zone_registered(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    s.insert("zones", {
        "zone_id": p["zone_id"], "zone_type": p["zone_type"], "name": p.get("name"),
        "licence_no": p.get("licence_no"), "country": zone_country(p),
        "holder": p.get("holder"), "category": p.get("category"), "source": p.get("source"),
        "valid_from": p["valid_from"], "valid_to": p.get("valid_to"), "revoked_on": None,
        "renewals": None, "revocations": None, "retired_to": None,
        "geometry": canonical_text(p["geometry"]), "seq": seq, "last_seq": seq,
    })
    _version(s, seq, p, None, {"geometry": p["geometry"], "valid_from": p["valid_from"],
                               "valid_to": p.get("valid_to")})


def _zone_amended(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    """SPEC 5: a new version from ``effective`` on; earlier days keep the earlier version.
    An amendment written before versions existed has no ``effective``: it counts from the
    start, as it did then."""
    changes = {f: p[f] for f in _VERSIONED if f in p}
    _version(s, seq, p, p.get("effective"), changes)
    shown: dict[str, Any] = {k: v for k, v in changes.items() if k != "geometry"}
    if "geometry" in changes:
        shown["geometry"] = canonical_text(changes["geometry"])
    s.update("zones", p["zone_id"], last_seq=seq, **shown)


def _version(s: State, seq: int, p: dict[str, Any], effective: str | None,
             changes: dict[str, Any]) -> None:
    geometry = changes.get("geometry")
    s.versions.append({"zone_id": p["zone_id"], "effective": effective, "seq": seq,
                       "geometry": None if geometry is None else canonical_text(geometry),
                       "valid_from": changes.get("valid_from"),
                       "valid_to": changes.get("valid_to"),
                       "sets_valid_to": "valid_to" in changes})


def _zone_retired(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    """The zone counts up to valid_to, in every version; without one, on no day at all
    (SPEC 5: the payload's date plays no part in validity)."""
    zone = s.get("zones", p["zone_id"])
    assert zone is not None, f"zone {p['zone_id']} vanished inside a transaction"
    retired_to = p.get("valid_to") or NO_DAY
    s.update("zones", p["zone_id"], valid_to=p.get("valid_to") or _day_before(zone["valid_from"]),
             retired_to=retired_to, last_seq=seq)


NO_DAY = "0000-12-31"  # before every date a payload can carry


def _day_before(day: str) -> str:
    """The ISO date before ``day`` (0000-12-31 before the first that Python can name)."""
    d = date.fromisoformat(day)
    return "0000-12-31" if d == date.min else (d - timedelta(days=1)).isoformat()


def _site_registered(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    s.insert("sites", {
        "site_id": p["site_id"], "name": p["name"], "licence_no": p["licence_no"],
        "operator": p["operator"], "country": p["country"],
        "location": canonical_text(p["location"]), "date": p["date"],
        "suspended_on": None, "seq": seq,
        "capacity_points": points(p["capacity_ct_month"]) if "capacity_ct_month" in p else None,
    })


def _site_suspended(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    s.update("sites", p["site_id"], suspended_on=p["date"])


def _new_parcel(s: State, seq: int, holder: str, pid: str, carats: float, stones: int,
                date: str, site_id: str | None = None, dig: Any = None,
                seller_id: str | None = None, sale: dict[str, Any] | None = None) -> None:
    lon, lat = dig["coordinates"][:2] if dig else (None, None)
    s.insert("parcels", {
        "parcel_id": pid, "holder": holder, "points": points(carats), "stones": stones,
        "status": "active", "open_flags": 0, "site_id": site_id, "seller_id": seller_id,
        "dig_lon": lon, "dig_lat": lat, "date": date, "last_date": date, "seq": seq,
        "spent_seq": None, "price_cents": None, "currency": None, "licence_no": None,
        "sieve": None, **(sale or {}),
    })


def _edge(s: State, seq: int, kind: str, actor: str, date: str, src: tuple[str, str],
          dst: tuple[str, str], pts: int | None) -> None:
    s.edge(from_type=src[0], from_id=src[1], to_type=dst[0], to_id=dst[1], seq=seq, kind=kind,
           actor=actor, date=date, points=pts)


def _parcel_purchased(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    seller, site = p["seller"], s.get("sites", p["site_id"])
    sale = {"price_cents": cents(p["price"]["amount"]), "currency": p["price"]["currency"],
            "licence_no": site["licence_no"] if site is not None else None,
            "sieve": canonical_text(p["sieve"]) if "sieve" in p else None}
    _new_parcel(s, seq, actor, p["parcel_id"], p["carats"], p["stones"], p["date"], p["site_id"],
                p.get("dig_location"), seller if s.get("actors", seller) is not None else None,
                sale)
    _count_purchase(s, actor, p, site)
    _edge(s, seq, "parcel.purchased", actor, p["date"], ("site", p["site_id"]),
          ("parcel", p["parcel_id"]), points(p["carats"]))


def _count_purchase(s: State, buyer: str, p: dict[str, Any], site: Row | None) -> None:
    """SPEC 6: add a purchase to its quarter's sums, at each grain
    (projections.purchase_quarters; a quarter is named by its first month)."""
    usd = p["price"]["currency"] == "USD"
    month = f"{p['date'][:5]}{(int(p['date'][5:7]) - 1) // 3 * 3 + 1:02d}"
    country, licence_no = (site["country"], site["licence_no"]) if site else (None, None)
    pts, cts = points(p["carats"]), cents(p["price"]["amount"]) if usd else 0
    for grain, keys in (("zone", {"licence_no": licence_no}), ("site", {"site_id": p["site_id"]}),
                        ("buyer", {"buyer": buyer})):
        bucket = json.dumps([grain, month, country, *keys.values(), usd])
        row = s.get("purchase_quarters", bucket)
        if row is None:
            s.insert("purchase_quarters", {
                "bucket": bucket, "grain": grain, "month": month, "country": country,
                "licence_no": None, "site_id": None, "buyer": None, **keys, "usd": usd,
                "purchases": 1, "points": pts, "stones": p["stones"], "cents": cts})
        else:
            s.update("purchase_quarters", bucket, purchases=row["purchases"] + 1,
                     points=row["points"] + pts, stones=row["stones"] + p["stones"],
                     cents=row["cents"] + cts)


def _parcel_transferred(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    row = s.update("parcels", p["parcel_id"], holder=p["to_actor"], last_date=p["date"])
    _edge(s, seq, "parcel.transferred", actor, p["date"], ("parcel", p["parcel_id"]),
          ("parcel", p["parcel_id"]), row["points"])


def _parcel_split(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    s.update("parcels", p["parent_id"], status="spent", spent_seq=seq)
    for child in p["children"]:
        _new_parcel(s, seq, actor, child["parcel_id"], child["carats"], child["stones"], p["date"])
        _edge(s, seq, "parcel.split", actor, p["date"], ("parcel", p["parent_id"]),
              ("parcel", child["parcel_id"]), points(child["carats"]))


def _parcel_merged(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    child = p["child"]
    for parent in p["parent_ids"]:
        row = s.update("parcels", parent, status="spent", spent_seq=seq)
        _edge(s, seq, "parcel.merged", actor, p["date"], ("parcel", parent),
              ("parcel", child["parcel_id"]), row["points"])
    _new_parcel(s, seq, actor, child["parcel_id"], child["carats"], child["stones"], p["date"])


def _export_declared(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    s.insert("exports", {
        "certificate_no": p["certificate_no"], "exporter": p["exporter"],
        "importer": p["importer"], "destination": p["destination"], "hs_code": p["hs_code"],
        "points": points(p["carats"]), "value_cents": cents(p["value_usd"]), "date": p["date"],
        "expires": p["expires"], "open_flags": 0, "seq": seq,
        "parcel_count": len(p["parcel_ids"]), "validated_seq": None, "validated_by": None,
        "validating_officer": None, "validated_on": None, "valuation_cents": None,
        "confirmed_seq": None, "confirmed_on": None, "received_points": None,
        "received_parcels": None, "received_importer": None, "mismatched": None,
    })
    for pid in p["parcel_ids"]:
        row = s.update("parcels", pid, status="spent", spent_seq=seq)
        _edge(s, seq, "export.declared", actor, p["date"], ("parcel", pid),
              ("export", p["certificate_no"]), row["points"])


def _certificate_validated(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    s.update("exports", p["certificate_no"], validated_seq=seq, validated_by=actor,
             validating_officer=p["officer"], validated_on=p["date"],
             valuation_cents=cents(p["valuation_usd"]))


def _import_confirmed(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    """What arrived; a confirmation written before the payload carried carats, parcels and
    importer (issue 18) keeps them null and is not judged a mismatch."""
    if "carats_received" not in p:
        s.update("exports", p["certificate_no"], confirmed_seq=seq, confirmed_on=p["date"])
        return
    row = s.update("exports", p["certificate_no"], confirmed_seq=seq, confirmed_on=p["date"],
                   received_points=points(p["carats_received"]),
                   received_parcels=p["parcels_received"], received_importer=p["importer"])
    row["mismatched"] = bool(confirmation_differences(row))


def confirmation_differences(export: Row) -> list[str]:
    """SPEC 5 CONFIRMATION_MISMATCH: how what arrived differs from the certificate, each
    difference a phrase stating both figures (none: it matches)."""
    found = []
    if export["received_points"] != export["points"]:
        found.append(f"{export['received_points'] / 100:.2f} ct received for the "
                     f"{export['points'] / 100:.2f} ct certified")
    if export["parcel_count"] is not None and export["received_parcels"] != export["parcel_count"]:
        found.append(f"{export['received_parcels']} parcel(s) received for the "
                     f"{export['parcel_count']} certified")
    if _name_key(export["received_importer"]) != _name_key(export["importer"]):
        found.append(f"received by '{export['received_importer']}', not the certified importer "
                     f"'{export['importer']}'")
    return found


def _name_key(name: str | None) -> str:
    """A name as compared: case and runs of spaces do not make another importer."""
    return " ".join((name or "").split()).casefold()


SUBJECT_TABLES = {"parcel": "parcels", "export": "exports"}


def _flag_raised(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    subject = p["subject"]
    evidence = p.get("evidence") or {}
    s.insert("flags", {
        "flag_id": p["flag_id"], "subject_type": subject["type"], "subject_id": subject["id"],
        "code": p["code"], "detail": p["detail"], "status": "open", "seq": seq,
        "cause_seq": evidence.get("seq") if isinstance(evidence.get("seq"), int) else None,
        "resolved_seq": None, "resolution": None,
    })
    _count_open(s, subject["type"], subject["id"], +1)


def _flag_resolved(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    row = s.update("flags", p["flag_id"], status="resolved", resolved_seq=seq,
                   resolution=p["resolution"])
    _count_open(s, row["subject_type"], row["subject_id"], -1)


def _count_open(s: State, subject_type: str, subject_id: str, delta: int) -> None:
    table = SUBJECT_TABLES.get(subject_type)
    if table is None:
        return
    row = s.get(table, subject_id)
    if row is not None:
        s.update(table, subject_id, open_flags=row["open_flags"] + delta)


def _nothing(s: State, seq: int, actor: str, p: dict[str, Any]) -> None:
    """Entries that change no projection (``archive.imported`` only says where lines came from)."""


FOLDS: dict[str, Callable[[State, int, str, dict[str, Any]], None]] = {
    "actor.registered": _actor_registered,
    "licence.revoked": _licence_revoked,
    "licence.renewed": _licence_renewed,
    "archive.imported": _nothing,
    "zone.registered": _zone_registered,
    "zone.amended": _zone_amended,
    "zone.retired": _zone_retired,
    "site.registered": _site_registered,
    "site.suspended": _site_suspended,
    "parcel.purchased": _parcel_purchased,
    "parcel.transferred": _parcel_transferred,
    "parcel.split": _parcel_split,
    "parcel.merged": _parcel_merged,
    "export.declared": _export_declared,
    "certificate.validated": _certificate_validated,
    "import.confirmed": _import_confirmed,
    "flag.raised": _flag_raised,
    "flag.resolved": _flag_resolved,
}
