"""Statistics with charts (SPEC 6), open to every account, and as CSV."""

from __future__ import annotations

from flask import Blueprint, Response, render_template

from ledger.stats import public_stats
from webui.pages import access, links
from webui.pages.charts import bar_chart
from webui.services import reading

bp = Blueprint("stats", __name__)


@bp.get("/stats")
@access.signed_in()
def charts() -> str:
    with reading(access.principal()) as scope:
        figures = public_stats(scope.conn)
    return render_template(
        "stats.html", stats=figures,
        purchases=bar_chart(figures["purchases"], "carats", "ct"),
        exports=bar_chart(figures["exports"], "value_usd", "USD"))


@bp.get("/stats.csv")
@access.signed_in()
def stats_csv() -> Response:
    """Purchases and exports by country and year, one row each."""
    with reading(access.principal()) as scope:
        figures = public_stats(scope.conn)
    rows = [["purchases", r["country"] or "", r["year"], r["parcels"], r["carats"], ""]
            for r in figures["purchases"]]
    rows += [["exports", r["country"], r["year"], r["certificates"], r["carats"],
              r["value_usd"]] for r in figures["exports"]]
    return links.csv_download(["flow", "country", "year", "count", "carats", "value_usd"],
                              rows, "alluvial-stats.csv")
