"""Benchmark of the map (issue 19) on the demo: the /map page's server time and size, and
what the basemap, the label placement and the counting cells cost.

    python -m benchmarks.map [--runs R] [--size N]

Loads the demo (``alluvial demo --no-serve``) in a scratch folder and, signed in as the
auditor, times GET /map as of 2008-01-01 (both Ivorian risk areas in force) and as of
today (median of R runs, CPU time of this process, the first request apart: it reads the
basemap). Baseline in the same run: the same features drawn and written out as SVG
without the countries and without labels (``draw_map(..., countries=False,
labels=False)``), against the full drawing. Then N flagged purchases scattered over the
region (default 2,000) drawn as counted cells, against the same drawn one mark each.
The table goes to stdout, its last line one JSON object; progress to stderr.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from benchmarks._common import Report, done_with, fmt_ms, fmt_x, stage, workdir
from ledger import signin
from ledger.cli import cli
from webui import create_app, login
from webui.pages import cartography, links


def cpu_ms(call: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.process_time()
        call()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    folder = workdir("map")
    with stage("demo"):
        old = Path.cwd()
        os.chdir(folder)
        try:
            made = CliRunner(env={"ALLUVIAL_DATABASE_URL": "", "ALLUVIAL_LOG_KEY": ""}).invoke(
                cli, ["demo", "--no-serve"])
        finally:
            os.chdir(old)
        assert made.exit_code == 0, made.output
    app = create_app({"DATABASE_URL": f"sqlite:///{folder / 'alluvial.db'}",
                      "LOG_KEY": str(folder / "alluvial-log.key"), "SECRET_KEY": "bench",
                      "TESTING": True})
    client = app.test_client()
    with client.session_transaction() as session:
        session[login.SESSION_ID] = signin.open_session(
            app.extensions["alluvial"].ledger.engine, "auditor")
    report = Report("The map on the demo (CPU ms of this process, median)")
    with stage("pages"):
        start = time.process_time()
        client.get("/map")
        first = (time.process_time() - start) * 1e3
        report.section("GET /map (whole page: query, drawings, template)")
        report.row("first request of the process", fmt_ms(first))
        report.put(first_ms=first)
        for day in ("2008-01-01", None):
            path = f"/map?as_of={day}" if day else "/map"
            size = len(client.get(path).data)
            ms = cpu_ms(lambda path=path: client.get(path), args.runs)
            report.row(f"{path}", f"{fmt_ms(ms)}, {size / 1024:.1f} KB")
            key = day or "today"
            report.put(**{f"page_ms_{key}": ms, f"page_kb_{key}": size / 1024})
    features = client.get("/map.geojson?as_of=2008-01-01").get_json()["features"]
    macro = app.jinja_env.get_template("macros.html").module.map_svg  # type: ignore[attr-defined]

    def svg(**options: Any) -> str:
        drawing = cartography.draw_map(features, links.feature_or_none, **options)
        return str(macro(drawing, "bench"))

    with stage("drawing"), app.test_request_context():
        full = cpu_ms(lambda: svg(as_of="2008-01-01"), args.runs)
        bare = cpu_ms(lambda: svg(countries=False, labels=False), args.runs)
        full_kb = len(svg(as_of="2008-01-01")) / 1024
        bare_kb = len(svg(countries=False, labels=False)) / 1024
        report.section("the map of the region, as of 2008-01-01: drawn and written as SVG")
        report.row("with countries and labels", fmt_ms(full), fmt_ms(bare),
                   fmt_x(bare / full, "faster", "slower"))
        report.row("SVG size", f"{full_kb:.1f} KB", f"{bare_kb:.1f} KB",
                   fmt_x(bare_kb / full_kb, "smaller", "larger"))
        report.put(draw_ms=full, draw_bare_ms=bare, svg_kb=full_kb, svg_bare_kb=bare_kb)
    rnd = random.Random(19)
    many = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [
        rnd.uniform(-8.0, -3.0), rnd.uniform(5.0, 10.0)]}, "properties": {
            "layer": "flagged_purchase", "parcel_id": f"P-{k}", "site_id": "S"}}
            for k in range(args.size)]
    with stage("cells"), app.test_request_context():
        counted = cartography.draw_map(many, links.feature_or_none)
        cells_kb = len(str(macro(counted, "bench"))) / 1024
        cells_ms = cpu_ms(lambda: str(macro(cartography.draw_map(
            many, links.feature_or_none), "bench")), max(3, args.runs // 3))
        one_each = len(str(macro(cartography.draw_map(
            many, links.feature_or_none, cluster_above=args.size), "bench"))) / 1024
        one_ms = cpu_ms(lambda: str(macro(cartography.draw_map(
            many, links.feature_or_none, cluster_above=args.size), "bench")),
            max(3, args.runs // 3))
        report.section(f"{args.size:,} flagged purchases over the region")
        report.row(f"counted in {len(counted.cells)} cells: time", fmt_ms(cells_ms),
                   fmt_ms(one_ms), fmt_x(one_ms / cells_ms, "faster", "slower"))
        report.row("SVG size", f"{cells_kb:.1f} KB", f"{one_each:.1f} KB",
                   fmt_x(one_each / cells_kb, "smaller", "larger"))
        report.put(cells=len(counted.cells), cells_ms=cells_ms, marks_ms=one_ms,
                   cells_kb=cells_kb, marks_kb=one_each)
    app.extensions["alluvial"].ledger.engine.dispose()
    done_with(folder, args.keep)
    report.print()


if __name__ == "__main__":
    main()
