"""Benchmark of footprint and capacity screening (SPEC 5, issue 17) on SQLite.

    python -m benchmarks.patterns [--size N] [--rounds R]   # default N = 100,000

A generated history of N purchases (the worst case for this screening: every event is
a purchase, the only kind it judges) at 200 sites of 50 licence zones, dated 2004-2016
in date order, about 40 USD/ct and 0.3 ct stones with 1% at Séguéla's 150 USD/ct and
1.2 ct, written after its zones, sites and actors:

1. ``ingest`` into a fresh ledger with the write-time rules of before (the baseline) and
   with FOOTPRINT_ANOMALY and CAPACITY_ANOMALY added, interleaved A/B for R rounds (the
   machine is shared: the medians are compared). Target: at most +15% per event.
2. ``rescreen``'s footprint and capacity pass over the ledger written without them
   (reading the purchases as columns, walking each zone's days, the capacity months),
   beside its baseline in the same run: a plain SELECT of the same columns. Target (issue
   17): 1,000,000 purchases in 5 s.

The table goes to stdout and its last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Iterator
from datetime import date, timedelta

import numpy as np

from benchmarks._common import Report, done_with, machine, progress, workdir
from ledger.db import driver_rows, make_engine
from ledger.geo.patterns import PATTERN_RULES, History, capacity_history, footprint_history
from ledger.geo.screening import DEFAULT_RULES
from ledger.log.keys import SigningKey
from ledger.recorder.events import Ledger
from ledger.recorder.ingest import ingest

ZONES, SITES_PER_ZONE = 50, 4
FIRST, DAYS = date(2004, 1, 1), 13 * 365


def lines(n: int, seed: int = 17) -> Iterator[str]:
    """The history as ingest lines."""
    rng = np.random.default_rng(seed)

    def line(kind: str, actor: str, **payload: object) -> str:
        return json.dumps({"kind": kind, "actor": actor, "payload": payload})

    yield line("actor.registered", "admin", actor_id="off", name="Officer", role="officer",
               country="GH", date="2004-01-01")
    yield line("actor.registered", "off", actor_id="buyer", name="Buyer", role="buyer",
               country="GH", licence_no="GH-LBL-1", licence_valid_from="2000-01-01",
               licence_valid_to=None, date="2004-01-01")
    for z in range(ZONES):
        x = -3.0 + 0.05 * z
        ring = [[x, 6.0], [x + 0.04, 6.0], [x + 0.04, 6.04], [x, 6.04], [x, 6.0]]
        yield line("zone.registered", "off", zone_id=f"Z{z}", zone_type="licence",
                   geometry={"type": "Polygon", "coordinates": [ring]}, date="2004-01-01",
                   valid_from="2000-01-01", valid_to=None, licence_no=f"GH-ML-{z}",
                   holder="Coop")
        for s in range(SITES_PER_ZONE):
            yield line("site.registered", "off", site_id=f"S{z}-{s}", name="Pit",
                       location={"type": "Point", "coordinates": [x + 0.01 * (s + 1), 6.02]},
                       licence_no=f"GH-ML-{z}", operator="Coop", country="GH",
                       date="2004-01-01")
    days = np.sort(rng.integers(0, DAYS, n))
    zone = rng.integers(0, ZONES, n)
    site = rng.integers(0, SITES_PER_ZONE, n)
    ring = rng.random(n) < 0.01
    stones = rng.integers(5, 40, n)
    size = np.where(ring, 1.2, 0.3) * np.exp(rng.normal(0, 0.3, n))
    usd = np.where(ring, 150.0, 40.0) * np.exp(rng.normal(0, 0.3, n))
    for k in range(n):
        carats = max(0.01, round(float(size[k] * stones[k]), 2))
        yield line("parcel.purchased", "buyer", parcel_id=f"P{k}",
                   site_id=f"S{zone[k]}-{site[k]}", seller="Kofi", date=(
                       FIRST + timedelta(days=int(days[k]))).isoformat(),
                   carats=carats, stones=int(stones[k]),
                   price={"amount": round(float(usd[k]) * carats, 2), "currency": "USD"})


def write(url: str, text: list[str], patterns: bool) -> tuple[float, Ledger]:
    rules = DEFAULT_RULES + (PATTERN_RULES if patterns else ())
    book = Ledger(make_engine(url), SigningKey.generate("bench"), screening=rules,
                  late_days=100 * 366)
    book.initialise()
    started = time.perf_counter()
    ingest(book, iter(text))
    return time.perf_counter() - started, book


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    n = args.size
    tmp = workdir("patterns")
    text = list(lines(n))
    times: dict[bool, list[float]] = {False: [], True: []}
    book = None
    for r in range(args.rounds):
        for on in (False, True):
            progress(f"round {r + 1}: ingest of {len(text):,} lines, patterns {on}")
            url = f"sqlite:///{tmp / f'r{r}-{int(on)}.db'}"
            seconds, written = write(url, text, on)
            times[on].append(seconds)
            if book is None and not on:
                book = written
            else:
                written.engine.dispose()
    assert book is not None
    base = statistics.median(times[False]) / len(text) * 1e6
    with_patterns = statistics.median(times[True]) / len(text) * 1e6
    with book.engine.connect() as conn:
        progress("rescreen's footprint and capacity pass, and its baseline")
        started = time.perf_counter()
        plain = sum(1 for _ in driver_rows(
            conn, "SELECT seq, date, points, stones, price_cents, currency, licence_no, "
                  "site_id FROM parcels WHERE site_id IS NOT NULL"))
        read_plain = time.perf_counter() - started
        started = time.perf_counter()
        history = History.read(conn)
        read = time.perf_counter() - started
        started = time.perf_counter()
        footprints = footprint_history(conn, history)
        walk = time.perf_counter() - started
        started = time.perf_counter()
        capacity = capacity_history(conn, history, {})
        months = time.perf_counter() - started
    book.engine.dispose()
    total = read + walk + months
    assert plain == n
    report = Report(f"Footprint and capacity screening, {n:,} purchases ({machine()})")
    report.section("ingest, per event (median of the rounds; A/B interleaved)")
    ratio = with_patterns / base
    report.row("ingest with footprints+capacity", f"{with_patterns:.1f} µs",
               f"{base:.1f} µs without", f"{ratio:.3f}x", "<= 1.15x", ratio <= 1.15)
    report.section("rescreen, footprints and capacity over every purchase")
    report.row("read as columns", f"{read:.2f} s", f"{read_plain:.2f} s plain SELECT",
               f"{read / read_plain:.2f}x")
    report.row("footprint walk", f"{walk:.2f} s", "", "", "")
    report.row("capacity months", f"{months:.2f} s")
    target = 5.0 * n / 1_000_000
    report.row("footprint+capacity pass", f"{total:.2f} s", "", "",
               f"<= {target:.2f} s (5 s per 1M)", total <= target)
    report.put(size=n, rounds=args.rounds, ingest_us_base=base, ingest_us_patterns=with_patterns,
               ingest_ratio=ratio, ingest_runs_base=times[False], ingest_runs_patterns=times[True],
               rescreen_read_s=read, rescreen_plain_select_s=read_plain,
               rescreen_footprint_s=walk, rescreen_capacity_s=months, rescreen_total_s=total,
               footprint_flags=len(footprints), capacity_flags=len(capacity),
               ring_share=round(0.01 * n), per_million_s=total * 1_000_000 / n)
    report.print()
    done_with(tmp, args.keep)
    if not math.isfinite(total):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
