"""Benchmark of `alluvial stats` (SPEC 6, issue 17) over N purchases on SQLite.

    python -m benchmarks.stats [--size N]        # default N = 1,000,000 purchases
    python -m benchmarks.stats --size 100000     # a quick run

The statistics read only the projections (production: the monthly sums of
projections.purchase_quarters and the few parcels with open flags), so the ledger is built by
bulk-inserting projection rows directly (not by ingest: that is ingest's benchmark, and 1M purchases
would take it an hour here): N purchases (parcels rows with price, currency, licence_no;
their purchase edges, for --by buyer) dated 2004-2016 at 2,000 sites of 40 licence zones
in GH and SL, bought by 200 buyers, 2% carrying an open flag, 5% priced in cedis or
leones; and N/100 exports (GH and SL to BE, IN, AE, IL), half of them confirmed (their
import.confirmed entries in the log table, whose date trade reads).

Each query of QUERIES is timed --runs times through ``ledger.stats.table`` (the code
`alluvial stats` and `GET /api/v1/stats` run), interleaved run by run with its baseline
in the same run: one plain ``GROUP BY`` statement computing the same figures from the
parcels themselves (SQLite's own scan and grouping of every purchase, with no Python around
it: what answering from the purchases costs at best). Target: every
query at N = 1M within 1 s (median). The table goes to stdout and its last line is one
JSON object of the figures; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from datetime import date, timedelta
from typing import Any

from benchmarks._common import Report, done_with, fmt_ms, machine, median_ms, stage, workdir
from ledger import projections as pj
from ledger.db import entries, log_metadata, make_engine
from ledger.stats import Query, table

TARGET_S = 1.0  # issue 17: stats over 1M purchases, any period and key, <= 1 s
# (period, by, kind), and the plain GROUP BY computing the same figures.
_USD = ("sum(CASE WHEN p.currency = 'USD' THEN p.price_cents ELSE 0 END), "
        "sum(CASE WHEN p.currency = 'USD' THEN p.points ELSE 0 END), "
        "sum(CASE WHEN p.open_flags > 0 THEN p.points ELSE 0 END)")
_PROD = ("SELECT {label}, s.country{key}, count(*), sum(p.points), sum(p.stones), " + _USD +
         " FROM parcels p LEFT JOIN sites s ON s.site_id = p.site_id{join} "
         "WHERE p.site_id IS NOT NULL{where} GROUP BY {label}, s.country{key}")
_YEAR = "substr(p.date, 1, 4)"
_HALF = ("substr(p.date, 1, 4) || '-H' || CASE WHEN substr(p.date, 6, 2) <= '06' THEN '1' "
         "ELSE '2' END")
_QUARTER = ("substr(p.date, 1, 4) || '-Q' || CASE WHEN substr(p.date, 6, 2) <= '03' THEN '1' "
            "WHEN substr(p.date, 6, 2) <= '06' THEN '2' WHEN substr(p.date, 6, 2) <= '09' "
            "THEN '3' ELSE '4' END")
QUERIES: list[tuple[str | None, str, str, str]] = [
    (None, "country", "production", _PROD.format(label=_YEAR, key="", join="", where="")),
    ("2008-H1", "zone", "production", _PROD.format(
        label=_HALF, key=", p.licence_no", join="",
        where=" AND p.date BETWEEN '2008-01-01' AND '2008-06-30'")),
    ("2008-Q3", "site", "production", _PROD.format(
        label=_QUARTER, key=", p.site_id", join="",
        where=" AND p.date BETWEEN '2008-07-01' AND '2008-09-30'")),
    (None, "zone", "production", _PROD.format(label=_YEAR, key=", p.licence_no", join="",
                                              where="")),
    (None, "site", "production", _PROD.format(label=_YEAR, key=", p.site_id", join="",
                                              where="")),
    ("2004..2016", "buyer", "production", _PROD.format(
        label=_YEAR, key=", e.actor",
        join=" JOIN custody_edges e ON e.to_id = p.parcel_id AND e.to_type = 'parcel' "
             "AND e.kind = 'parcel.purchased'",
        where=" AND p.date BETWEEN '2004-01-01' AND '2016-12-31'")),
    ("2008-Q1..2008-Q4", "partner", "trade",
     "SELECT substr(x.date, 1, 4) || '-Q' || CASE WHEN substr(x.date, 6, 2) <= '03' THEN '1' "
     "WHEN substr(x.date, 6, 2) <= '06' THEN '2' WHEN substr(x.date, 6, 2) <= '09' THEN '3' "
     "ELSE '4' END AS q, a.country, x.destination, count(*), sum(x.points), "
     "sum(x.value_cents) FROM exports x JOIN actors a ON a.actor_id = x.exporter "
     "WHERE x.date BETWEEN '2008-01-01' AND '2008-12-31' GROUP BY q, a.country, x.destination"),
    (None, "hs", "trade",
     "SELECT substr(x.date, 1, 4), a.country, x.hs_code, count(*), sum(x.points), "
     "sum(x.value_cents) FROM exports x JOIN actors a ON a.actor_id = x.exporter "
     "GROUP BY substr(x.date, 1, 4), a.country, x.hs_code"),
]


def _days() -> list[str]:
    first = date(2004, 1, 1)
    return [(first + timedelta(days=i)).isoformat() for i in range((date(2016, 12, 31) - first)
                                                                  .days + 1)]


_GRAIN = {"zone": "licence_no", "site": "site_id", "buyer": "buyer"}
# A purchase's quarter, named by its first month (as ledger.custody.state names it).
_QUARTER_OF = ("(substr(p.date, 1, 5) || printf('%02d', "
               "(CAST(substr(p.date, 6, 2) AS INTEGER) - 1) / 3 * 3 + 1))")


def build(url: str, n: int, seed: int = 17) -> dict[str, Any]:
    """Projection rows for N purchases and N/100 exports, bulk-inserted."""
    rng = random.Random(seed)
    engine = make_engine(url)
    days = _days()
    zones = [(f"{c}-Z-{i:02d}", f"{c}-ML-{i:02d}", c) for c in ("GH", "SL") for i in range(20)]
    sites = [(f"S-{i:04d}", zones[i % len(zones)]) for i in range(2000)]
    buyers = [f"buyer-{i:03d}" for i in range(200)]
    with engine.begin() as conn:
        log_metadata.create_all(conn)
        pj.create(conn)
        conn.execute(pj.zones.insert(), [
            {"zone_id": z, "zone_type": "licence", "licence_no": lic, "country": c,
             "valid_from": "2000-01-01", "geometry": "{}", "seq": 1, "last_seq": 1}
            for z, lic, c in zones])
        conn.execute(pj.sites.insert(), [
            {"site_id": s, "name": s, "licence_no": lic, "operator": "op", "country": c,
             "location": "{}", "date": "2003-01-01", "seq": 2} for s, (_, lic, c) in sites])
        conn.execute(pj.actors.insert(), [
            {"actor_id": a, "name": a, "role": role, "country": c, "seq": 3}
            for a, role, c in [*((b, "buyer", "GH") for b in buyers),
                               ("exp-gh", "exporter", "GH"), ("exp-sl", "exporter", "SL")]])
        raw = conn.connection.driver_connection
        assert raw is not None
        chunk = 50_000
        for start in range(0, n, chunk):
            parcels, edges = [], []
            for i in range(start, min(n, start + chunk)):
                site, (_, lic, country) = sites[rng.randrange(len(sites))]
                pts = rng.randint(10, 5000)
                day = days[rng.randrange(len(days))]
                usd = rng.random() >= 0.05
                cents = pts * rng.randint(20, 600) if usd else pts * rng.randint(100, 3000)
                pid, buyer = f"P{i:08d}", buyers[rng.randrange(len(buyers))]
                parcels.append((pid, buyer, pts, rng.randint(1, 80), "active",
                                1 if rng.random() < 0.02 else 0, site, cents,
                                "USD" if usd else ("GHS" if country == "GH" else "SLE"), lic,
                                day, day, 10 + i))
                edges.append(("site", site, "parcel", pid, 10 + i, "parcel.purchased", buyer,
                              day, pts))
            raw.executemany(
                "INSERT INTO parcels (parcel_id, holder, points, stones, status, open_flags, "
                "site_id, price_cents, currency, licence_no, date, last_date, seq) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", parcels)
            raw.executemany(
                "INSERT INTO custody_edges (from_type, from_id, to_type, to_id, seq, kind, "
                "actor, date, points) VALUES (?,?,?,?,?,?,?,?,?)", edges)
        # The quarterly sums the fold keeps beside the parcels (projections.purchase_quarters),
        # made here in one statement from the same rows.
        for grain, key in (("zone", "p.licence_no"), ("site", "p.site_id"),
                           ("buyer", "e.actor")):
            raw.execute(
                f"INSERT INTO purchase_quarters (bucket, grain, month, country, {_GRAIN[grain]}, "
                "usd, purchases, points, stones, cents) SELECT "
                f"json_array('{grain}', {_QUARTER_OF}, s.country, {key}, "
                "p.currency = 'USD'), "
                f"'{grain}', {_QUARTER_OF}, s.country, {key}, p.currency = 'USD', "
                "count(*), sum(p.points), sum(p.stones), "
                "sum(CASE WHEN p.currency = 'USD' THEN p.price_cents ELSE 0 END) "
                "FROM parcels p JOIN sites s ON s.site_id = p.site_id "
                "JOIN custody_edges e ON e.to_id = p.parcel_id AND e.kind = 'parcel.purchased' "
                f"GROUP BY {_QUARTER_OF}, s.country, {key}, p.currency = 'USD'")
        exports, confirmations = [], []
        for k in range(max(1, n // 100)):
            country = "GH" if k % 2 else "SL"
            day = days[rng.randrange(len(days) - 40)]
            seq = n + 100 + k
            confirmed = seq + 10 * n if k % 2 == 0 else None
            exports.append((f"{country}-{k:08d}", f"exp-{country.lower()}", "Importer",
                            rng.choice(("BE", "IN", "AE", "IL")),
                            rng.choice(("7102.10", "7102.21", "7102.31")),
                            rng.randint(100, 100_000), rng.randint(10_000, 10_000_000), day,
                            "2030-01-01", seq, confirmed))
            if confirmed is not None:
                when = (date.fromisoformat(day) + timedelta(days=rng.randint(1, 30))).isoformat()
                confirmations.append((confirmed, "2026-01-01T00:00:00Z", "import.confirmed",
                                      "aud", json.dumps({"certificate_no": exports[-1][0],
                                                         "date": when}), "", b"\0" * 32))
        raw.executemany(
            "INSERT INTO exports (certificate_no, exporter, importer, destination, hs_code, "
            "points, value_cents, date, expires, open_flags, seq, confirmed_seq) "
            "VALUES (?,?,?,?,?,?,?,?,?,0,?,?)", exports)
        raw.executemany(
            f"INSERT INTO {entries.name} (seq, ts, kind, actor, payload, prev, entry_hash) "
            "VALUES (?,?,?,?,?,?,?)", confirmations)
    engine.dispose()
    return {"purchases": n, "exports": len(exports), "imports": len(confirmations)}


def measure(url: str, runs: int) -> list[dict[str, Any]]:
    engine = make_engine(url)
    out = []
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        for period, by, kind, plain in QUERIES:
            query = Query.parse(period, by, kind)
            ours, base, cpu = [], [], []
            rows = groups = 0
            table(conn, query)  # warm the page cache for both alike
            raw.execute(plain).fetchall()
            for _ in range(runs):  # interleaved A/B
                start, start_cpu = time.perf_counter(), time.process_time()
                rows = len(table(conn, query).rows)
                ours.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
                start = time.perf_counter()
                groups = len(raw.execute(plain).fetchall())
                base.append(time.perf_counter() - start)
            out.append({"query": f"{kind} by {by}, {period or 'every year'}", "rows": rows,
                        "groups": groups, "ms": median_ms(ours), "cpu_ms": median_ms(cpu),
                        "base_ms": median_ms(base), "max_ms": max(ours) * 1e3})
    engine.dispose()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="purchases")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each query")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    tmp = workdir("stats")
    url = f"sqlite:///{tmp / 'stats.db'}"
    with stage(f"bulk-insert {args.size:,} purchases"):
        start = time.perf_counter()
        built = build(url, args.size)
        build_s = time.perf_counter() - start
    load = os.getloadavg()[0]
    with stage("time the queries"):
        results = measure(url, args.runs)
    full = args.size >= 1_000_000
    report = Report(f"stats over {args.size:,} purchases, {built['exports']:,} exports "
                    f"({built['imports']:,} confirmed), SQLite, {machine()}, load {load:.2f}; "
                    f"built by bulk insert of projection rows in {build_s:.0f} s")
    report.section(f"median of {args.runs} runs each, interleaved with a plain GROUP BY")
    for r in results:
        ok = r["ms"] <= TARGET_S * 1e3
        report.row(f"{r['query']} ({r['rows']:,} rows)", fmt_ms(r["ms"]),
                   fmt_ms(r["base_ms"]) + " GROUP BY", f"{r['ms'] / r['base_ms']:.2f}x",
                   f"<= {TARGET_S:g} s" if full else "", ok if full else None)
        key = r["query"].replace(" ", "_").replace(",", "").replace(".", "_")
        report.put(**{f"{key}_ms": r["ms"], f"{key}_base_ms": r["base_ms"],
                      f"{key}_cpu_ms": r["cpu_ms"]})
    worst = max(results, key=lambda r: r["ms"])
    report.row("slowest query", f"{worst['ms']:,.0f} ms ({worst['query']})", "", "",
               f"<= {TARGET_S:g} s" if full else "",
               worst["ms"] <= TARGET_S * 1e3 if full else None)
    report.put(size=args.size, exports=built["exports"], build_s=build_s, load=load,
               slowest_ms=worst["ms"])
    report.print()
    done_with(tmp, args.keep)


if __name__ == "__main__":
    main()
