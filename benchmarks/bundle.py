"""Benchmark of provenance bundles (SPEC 7): building one and verifying it offline.

    python -m benchmarks.bundle [--size N] [--parcels P]     # default N = 100,000, P = 500

Builds a SQLite ledger of N events: the generator's realistic stream
(``sample_data.generate.events``) through ``ledger.ingest.ingest``, with one export's
story woven into it at even intervals, so that the export's entries lie all over the
log: 2P purchases, P merges of two, P transfers, P splits, P transfers to the
exporter and one export of P parcels (custody depth 6: purchase, merge, transfer,
split, transfer, export). Then it times, for that export:

* ``build_bundle`` (trace, every entry SPEC 7 lists, batched inclusion proofs, the
  signed manifest) against reading the same entries plain from the database;
* ``verify_bundle`` on the file's bytes (JCS hashes, inclusion proofs, signatures,
  custody replay, shapely re-screening) against parsing the same JSON alone;
* for context, ``alluvial verify-bundle`` as a whole process.

Each figure is the median of ``--repeat`` runs (the first run, cold caches, is shown
too). The table goes to stdout, its last line one JSON object; progress to stderr.
Target (issue #8): building and verifying each at most 1 s at N = 1,000,000, P = 500.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks._common import Report, fmt_ms, fmt_x, progress, stage
from ledger.bundle.build import _chunks, build_bundle, dumps
from ledger.bundle.verify import verify_bundle
from ledger.config import DEFAULT_ORIGIN
from ledger.custody.trace import trace
from ledger.db import entries, make_engine
from ledger.log.keys import load_or_create
from ledger.recorder.events import Ledger
from ledger.recorder.ingest import ingest
from sample_data.generate import dump_line, events, preamble

TARGET_S = 1.0
CERT = "GH-BENCH-2016-000001"
FIRST_DAY, LAST_DAY = date(2004, 1, 1), date(2016, 10, 30)


def _square(lon: float, lat: float, half: float) -> dict[str, Any]:
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half],
            [lon - half, lat + half], [lon - half, lat - half]]
    return {"type": "Polygon", "coordinates": [ring]}


def story(parcels: int) -> list[dict[str, Any]]:
    """The export's own events, in custody order, dated later by ``_dated``."""
    out: list[dict[str, Any]] = []

    def ev(kind: str, actor: str, **payload: Any) -> None:
        out.append({"kind": kind, "actor": actor, "payload": payload})

    for actor_id, role in (("bench-buyer-a", "buyer"), ("bench-buyer-b", "buyer"),
                           ("bench-exporter", "exporter")):
        ev("actor.registered", "officer-gh", actor_id=actor_id, name=actor_id.title(),
           role=role, country="GH", licence_no=f"LIC-{actor_id}",
           licence_valid_from="2000-01-01", licence_valid_to="2030-12-31", date="")
    ev("zone.registered", "officer-gh", zone_id="BENCH-Z", zone_type="licence",
       geometry=_square(-1.2, 6.5, 0.2), date="", valid_from="2000-01-01", valid_to=None,
       licence_no="GH-BENCH-ML-1", holder="Bench Diggers Cooperative")
    ev("site.registered", "officer-gh", site_id="BENCH-S", name="Bench pit",
       location={"type": "Point", "coordinates": [-1.2, 6.5]}, licence_no="GH-BENCH-ML-1",
       operator="Bench Diggers Cooperative", country="GH", date="")
    money = {"amount": 1000.0, "currency": "USD"}

    def points(i: int) -> int:  # purchase i weighs 1.00 to 2.99 ct
        return 100 + i % 200

    for i in range(2 * parcels):
        lon, lat = -1.3 + (i % 97) * 0.002, 6.4 + (i % 89) * 0.002
        ev("parcel.purchased", "bench-buyer-a", parcel_id=f"BP-{i:05d}", site_id="BENCH-S",
           seller="Kwame Mensah", date="", carats=points(i) / 100,
           stones=2 + i % 3, price=money,
           dig_location={"type": "Point", "coordinates": [lon, lat]})
    kept = 0
    for i in range(parcels):
        a, b = 2 * i, 2 * i + 1
        pts, stones = points(a) + points(b), 4 + a % 3 + b % 3
        ev("parcel.merged", "bench-buyer-a", parent_ids=[f"BP-{a:05d}", f"BP-{b:05d}"],
           child={"parcel_id": f"BM-{i:05d}", "carats": pts / 100, "stones": stones}, date="")
    for i in range(parcels):
        ev("parcel.transferred", "bench-buyer-a", parcel_id=f"BM-{i:05d}",
           to_actor="bench-buyer-b", price=money, date="")
    for i in range(parcels):
        a, b = 2 * i, 2 * i + 1
        pts, stones = points(a) + points(b), 4 + a % 3 + b % 3
        keep = pts - 100
        kept += keep
        ev("parcel.split", "bench-buyer-b", parent_id=f"BM-{i:05d}", date="", children=[
            {"parcel_id": f"BE-{i:05d}", "carats": keep / 100, "stones": stones - 1},
            {"parcel_id": f"BR-{i:05d}", "carats": 1.0, "stones": 1}])
    for i in range(parcels):
        ev("parcel.transferred", "bench-buyer-b", parcel_id=f"BE-{i:05d}",
           to_actor="bench-exporter", price=money, date="")
    ev("export.declared", "bench-exporter", certificate_no=CERT, exporter="bench-exporter",
       importer="Antwerp Diamond Bank", destination="BE", hs_code="7102.10",
       parcel_ids=[f"BE-{i:05d}" for i in range(parcels)], carats=kept / 100,
       value_usd=250000.0, date="", expires="")
    return out


def stream(n: int, parcels: int) -> Iterator[str]:
    """N ingest lines: the generator's stream with the story spread evenly through it."""
    mine = story(parcels)
    head = len(preamble())
    background = n - len(mine)
    if background < head + len(mine):
        raise SystemExit(f"--size {n} is too small for {parcels} exported parcels")
    trade = background - head
    gap = trade / len(mine)
    days = (LAST_DAY - FIRST_DAY).days
    base = events(background)
    yield from map(dump_line, islice(base, head))
    done = 0
    for k, event in enumerate(mine):
        until = int((k + 1) * gap)
        yield from map(dump_line, islice(base, until - done))
        done = until
        day = (FIRST_DAY + timedelta(days=days * k // len(mine))).isoformat()
        payload = event["payload"]
        payload["date"] = day
        if "expires" in payload:
            payload["expires"] = (date.fromisoformat(day) + timedelta(days=60)).isoformat()
        yield dump_line(event)
    yield from map(dump_line, base)


def median_and_first(call: Any, repeat: int) -> tuple[float, float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times[0], result


def measure(folder: Path, repeat: int) -> dict[str, Any]:
    """Build and verify the bundle of CERT from the ledger in ``folder`` (a fresh process)."""
    url = f"sqlite:///{folder / 'ledger.db'}"
    key = load_or_create(folder / "log.key", DEFAULT_ORIGIN)
    engine = make_engine(url)
    log = Ledger(engine, key).log
    progress(f"building the bundle of {CERT} x {repeat}")
    build_s, build_first_s, bundle = median_and_first(lambda: build_bundle(log, CERT), repeat)
    seqs = [it.seq for it in bundle.items]

    def read_plain() -> int:
        rows = 0
        with engine.connect() as conn:
            for chunk in _chunks(seqs):
                rows += len(conn.execute(sa.select(entries).where(
                    entries.c.seq.in_(chunk))).all())
        return rows

    def trace_only() -> int:
        with engine.connect() as conn:
            return len(trace(conn, CERT, "backward").edges)

    read_s, _, _ = median_and_first(read_plain, repeat)
    trace_s, _, _ = median_and_first(trace_only, repeat)
    data = dumps(bundle).encode("utf-8")
    (folder / "bundle.json").write_bytes(data)
    size = log.size()
    engine.dispose()
    progress(f"verifying the bundle ({len(data) / 1e6:.1f} MB) x {repeat}")
    verify_s, verify_first_s, verdict = median_and_first(
        lambda: verify_bundle(data, key.verifier), repeat)
    if not verdict.ok:
        raise SystemExit("the bundle does not verify:\n" + "\n".join(verdict.problems))
    parse_s, _, _ = median_and_first(lambda: json.loads(data), repeat)
    progress("`alluvial verify-bundle` as a whole process")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ledger.cli", "verify-bundle",
                    str(folder / "bundle.json"), "--key", key.verifier.to_vkey()],
                   check=True, capture_output=True)
    cli_s = time.perf_counter() - start
    return {"size": size, "bundle_entries": len(seqs), "bundle_bytes": len(data),
            "build_s": build_s, "build_first_s": build_first_s, "plain_read_s": read_s,
            "trace_s": trace_s, "verify_s": verify_s, "verify_first_s": verify_first_s,
            "json_parse_s": parse_s, "cli_verify_s": cli_s}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bundle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="events in the ledger")
    parser.add_argument("--parcels", type=int, default=500, help="parcels in the export")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--batch", type=int, default=50_000, help="ingest lines per commit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--reuse", type=Path, metavar="DIR",
                        help="measure the ledger a --keep run left in DIR (no ingest)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeat)))
        return
    n, p = args.size, args.parcels
    tmp = args.reuse or Path(tempfile.mkdtemp(prefix="alluvial-bench-bundle-"))
    progress(f"working in {tmp}")
    ingest_s = written = 0.0
    try:
        if args.reuse is None:
            engine = make_engine(f"sqlite:///{tmp / 'ledger.db'}")
            # History of 2004-2016 written today: no LATE_ENTRY, as an archive import (#16).
            ledger = Ledger(engine, load_or_create(tmp / "log.key", DEFAULT_ORIGIN),
                            late_days=100 * 366)
            ledger.initialise()
            with stage(f"ingesting {n:,} events (the export of {p} parcels woven in)"):
                start = time.perf_counter()
                written = ingest(ledger, stream(n - 1, p), batch=args.batch).written
                ingest_s = time.perf_counter() - start
            engine.dispose()
        # A fresh process measures, as a server or the CLI would: not the ingest's heap.
        child = subprocess.run([sys.executable, "-m", "benchmarks.bundle", "--measure",
                                str(tmp), "--repeat", str(args.repeat)],
                               check=True, stdout=subprocess.PIPE, text=True)
        got = json.loads(child.stdout.splitlines()[-1])
    finally:
        if args.keep or args.reuse:
            progress(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    out = Report(f"benchmarks.bundle: export of {p} parcels (depth 6) in a ledger of "
                 f"{got['size']:,} entries, SQLite, {os.cpu_count()} CPUs, Python "
                 f"{sys.version.split()[0]}")
    build_s, verify_s = got["build_s"], got["verify_s"]
    out.section("the bundle")
    out.row("entries in the bundle", f"{got['bundle_entries']:,}")
    out.row("file size", f"{got['bundle_bytes'] / 1e6:.2f} MB")
    if ingest_s:
        out.row("ingest (context)", f"{ingest_s:.0f} s", f"{written / ingest_s:,.0f} events/s")
    out.section("build (build_bundle, fresh process)")
    out.row("build, median", fmt_ms(build_s * 1e3), fmt_ms(got["plain_read_s"] * 1e3) +
            " plain read", fmt_x(got["plain_read_s"] / build_s, "faster", "slower"),
            f"<= {TARGET_S:g} s", build_s <= TARGET_S)
    out.row("build, first call", fmt_ms(got["build_first_s"] * 1e3), "", "",
            f"<= {TARGET_S:g} s", got["build_first_s"] <= TARGET_S)
    out.row("  trace alone (context)", fmt_ms(got["trace_s"] * 1e3))
    out.section("verify (verify_bundle, offline)")
    out.row("verify, median", fmt_ms(verify_s * 1e3), fmt_ms(got["json_parse_s"] * 1e3) +
            " json.loads", fmt_x(got["json_parse_s"] / verify_s, "faster", "slower"),
            f"<= {TARGET_S:g} s", verify_s <= TARGET_S)
    out.row("verify, first call", fmt_ms(got["verify_first_s"] * 1e3), "",
            "", f"<= {TARGET_S:g} s", got["verify_first_s"] <= TARGET_S)
    out.row("`alluvial verify-bundle`, whole process (context)", f"{got['cli_verify_s']:.2f} s")
    out.put(parcels=p, ingest_s=ingest_s, ingest_eps=written / ingest_s if ingest_s else 0.0,
            **got, build_vs_plain_read=build_s / got["plain_read_s"],
            verify_vs_parse=verify_s / got["json_parse_s"])
    out.print()


if __name__ == "__main__":
    main()
