"""The Statistics page (SPEC 6, issue 17): the `stats` table for a period and key, a licence
zone's value per carat against its footprint band, a country's production against its
exports per half-year; a table below each chart and a CSV beside each."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template, request
from flask_babel import lazy_gettext

from ledger import reads
from ledger.stats import ALL_KEYS, FINE_ROLES, KINDS, Query, countries, counts, licence_zones
from webui.pages import access, links
from webui.pages.charts import band_chart, pair_chart
from webui.services import reading

bp = Blueprint("stats", __name__)

ZONE_COLUMNS = ["month", "purchases", "usd_per_ct", "reference", "band_low", "band_median",
                "band_high", "footprint_anomalies"]
COUNTRY_COLUMNS = ["period", "produced_carats", "produced_usd", "exported_carats",
                   "exported_usd"]
# The words the page shows for the ledger's names of kinds, keys, columns and counts; the
# English is the name itself (underscores as spaces), as the page said before issue 19.
# The CSV downloads keep the names: they are for programs.
WORDS = {
    "production": lazy_gettext("production"), "trade": lazy_gettext("trade"),
    "country": lazy_gettext("country"), "zone": lazy_gettext("zone"), "site": lazy_gettext("site"),
    "buyer": lazy_gettext("buyer"), "hs": lazy_gettext("hs"), "partner": lazy_gettext("partner"),
    "period": lazy_gettext("period"), "purchases": lazy_gettext("purchases"),
    "carats": lazy_gettext("carats"), "stones": lazy_gettext("stones"),
    "value_usd": lazy_gettext("value usd"), "usd_per_ct": lazy_gettext("usd per ct"),
    "flagged_carats": lazy_gettext("flagged carats"), "flow": lazy_gettext("flow"),
    "hs_code": lazy_gettext("hs code"), "certificates": lazy_gettext("certificates"),
    "actors": lazy_gettext("actors"), "zones": lazy_gettext("zones"),
    "sites": lazy_gettext("sites"), "parcels": lazy_gettext("parcels"),
    "exports": lazy_gettext("exports"), "flags": lazy_gettext("flags"),
    "open_flags": lazy_gettext("open flags"),
    "export": lazy_gettext("export"), "import": lazy_gettext("import"),  # a trade row's flow
}


def _query() -> Query:
    args = request.args
    return Query.parse(args.get("period"), args.get("by"), args.get("kind"))


@bp.get("/stats")
@access.signed_in()
def charts() -> str:
    query, principal = _query(), access.principal()
    fine = principal.role in FINE_ROLES
    with reading(principal) as scope:
        zones, places = licence_zones(scope.conn), countries(scope.conn)
        zone = _pick(request.args.get("zone"), zones)
        country = _pick(request.args.get("country"), places)
        months = reads.zone_prices(scope, zone) if fine and zone else []
        halves = reads.country_halves(scope, country) if country else []
        return render_template(
            "stats.html", table=reads.statistics(scope, query), query=query,
            counts=counts(scope.conn), fine=fine, keys=ALL_KEYS, kinds=KINDS, zones=zones,
            zone=zone, months=months, band=band_chart(months), countries=places,
            country=country, halves=halves, pairs=pair_chart(halves), words=WORDS)


def _pick(wanted: str | None, choices: list[str]) -> str | None:
    """The asked-for choice when it is one; else the first (the page shows what exists)."""
    return wanted if wanted in choices else (choices[0] if choices else None)


@bp.get("/stats.csv")
@access.signed_in()
def stats_csv() -> Response:
    """The `stats` table of the page's period, key and kind, as `alluvial stats --csv`."""
    query = _query()
    with reading(access.principal()) as scope:
        table = reads.statistics(scope, query)
    return links.csv_download(table.columns, table.csv_rows(),
                              f"alluvial-stats-{query.kind}-{query.by}.csv")


@bp.get("/stats/zone.csv")
@access.signed_in()
def zone_csv() -> Response:
    zone = request.args.get("zone", "")
    with reading(access.principal()) as scope:
        months = reads.zone_prices(scope, zone)
    return _download(ZONE_COLUMNS, [[m.month, m.purchases, m.usd_per_ct, m.reference, m.low,
                                      m.median, m.high, m.anomalies] for m in months],
                     f"alluvial-zone-{links.safe(zone)}.csv")


@bp.get("/stats/country.csv")
@access.signed_in()
def country_csv() -> Response:
    country = request.args.get("country", "")
    with reading(access.principal()) as scope:
        halves = reads.country_halves(scope, country)
    return _download(COUNTRY_COLUMNS, [[h.period, h.produced, h.produced_usd, h.exported,
                                         h.exported_usd] for h in halves],
                     f"alluvial-country-{links.safe(country)}.csv")


def _download(columns: list[str], rows: list[list[Any]], name: str) -> Response:
    """A series as CSV: figures as written (exact decimals), an empty cell for none."""
    return links.csv_download(columns, [["" if v is None else str(v) for v in r] for r in rows],
                              name)
