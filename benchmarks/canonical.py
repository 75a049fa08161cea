"""Benchmark of RFC 8785 encoding: ``ledger.log.canonical`` against ``rfc8785.dumps``.

    python -m benchmarks.canonical [--size N]      # default N = 20,000

Encodes N custody-sized events ({kind, actor, event_id, payload} with a
``parcel.purchased``-shaped payload: price {amount, currency}, carats, a GeoJSON
Point; one in ten with integral amounts or carats, which the fast path rewrites)
with the reference ``rfc8785.dumps`` (the baseline) and with
``ledger.log.canonical.canonical_bytes``, checks the bytes are identical, and reports
µs per event and the speedup. For context it also times ``ledger.log.canonical.parse``
of the same events against plain ``json.loads`` (the duplicate-key hook's cost).

Each figure is the best of ``--repeat`` passes over all N events, so that other load
on the machine inflates it as little as possible. The table goes to stdout and its
last line is one JSON object of the figures; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from typing import Any

import rfc8785

from benchmarks._common import Report, fmt_x, progress
from ledger.log.canonical import canonical_bytes, parse

# The per-entry budget of bulk append: 40,000 entries/s, everything included.
ENTRY_BUDGET_US = 1e6 / 40_000
SPEEDUP_TARGET = 3.0

SELLERS = [
    "Kwame Mensah", "Fatmata Kamara", "Ibrahim Sesay", "Aminata Conteh", "Mohamed Bangura",
    "Isatu Koroma", "Abu Turay", "Mariama Jalloh", "José Tshibangu", "Aïssata Diallo",
]


def event(i: int, rng: random.Random) -> dict[str, Any]:
    """A custody-sized ``parcel.purchased`` event as the ledger hashes it."""
    carats = round(rng.uniform(0.2, 250.0), 2)
    amount = round(rng.uniform(50.0, 250_000.0), 2)
    if i % 10 == 0:  # integral values: JCS writes 12.0 as 12
        carats, amount = float(round(carats)), float(round(amount))
    return {
        "kind": "parcel.purchased",
        "actor": f"buyer-sl-{rng.randrange(1, 40):02d}",
        "event_id": f"{rng.getrandbits(128):032x}",
        "payload": {
            "parcel_id": f"SL-P{i:08d}",
            "site_id": f"SL-S-KON-{rng.randrange(1, 400):03d}",
            "seller": rng.choice(SELLERS),
            "date": f"20{rng.randrange(10, 25)}-{rng.randrange(1, 13):02d}-"
                    f"{rng.randrange(1, 29):02d}",
            "carats": carats,
            "stones": rng.randrange(1, 60),
            "price": {"amount": amount, "currency": "USD"},
            "dig_location": {
                "type": "Point",
                "coordinates": [round(rng.uniform(-13.3, -10.3), 10),
                                round(rng.uniform(6.9, 10.0), 10)],
            },
        },
    }


def best_us(call: Callable[[Any], Any], items: list[Any], repeat: int) -> float:
    """Best pass over ``items``, in µs per item."""
    best = float("inf")
    clock = time.perf_counter
    for _ in range(repeat):
        start = clock()
        for item in items:
            call(item)
        best = min(best, clock() - start)
    return best / len(items) * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.canonical",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", type=int, default=20_000, help="events (default 20000)")
    parser.add_argument("--repeat", type=int, default=3, help="passes, best kept (default 3)")
    parser.add_argument("--seed", type=int, default=8785)
    args = parser.parse_args(argv)
    if args.size < 1 or args.repeat < 1:
        parser.error("--size and --repeat must be at least 1")

    rng = random.Random(args.seed)
    events = [event(i, rng) for i in range(args.size)]
    texts = [json.dumps(e) for e in events]

    progress(f"checking {args.size:,} events encode identically")
    identical = sum(canonical_bytes(e) == rfc8785.dumps(e) for e in events)

    progress(f"encoding {args.size:,} events x {args.repeat}")
    rfc_us = best_us(rfc8785.dumps, events, args.repeat)
    ours_us = best_us(canonical_bytes, events, args.repeat)
    progress(f"parsing {args.size:,} events x {args.repeat}")
    loads_us = best_us(json.loads, texts, args.repeat)
    parse_us = best_us(parse, texts, args.repeat)

    speedup = rfc_us / ours_us
    report = Report(f"RFC 8785 encoding, {args.size:,} custody-sized events "
                    f"(best of {args.repeat})")
    report.section("canonical bytes")
    report.row("identical to rfc8785", f"{identical:,}/{args.size:,}",
               target="all", ok=identical == args.size)
    report.row("encode, µs/event", f"{ours_us:.2f} µs", f"{rfc_us:.2f} µs (rfc8785)",
               fmt_x(speedup, "faster", "slower"), f">= {SPEEDUP_TARGET:.0f}x faster",
               speedup >= SPEEDUP_TARGET)
    report.row("share of 25 µs/entry budget", f"{ours_us / ENTRY_BUDGET_US:.0%}",
               f"{rfc_us / ENTRY_BUDGET_US:.0%}")
    report.section("strict parse (context)")
    report.row("parse, µs/event", f"{parse_us:.2f} µs", f"{loads_us:.2f} µs (json.loads)",
               fmt_x(loads_us / parse_us, "faster", "slower"))
    report.put(
        size=args.size,
        identical=identical,
        rfc8785_us=rfc_us,
        canonical_us=ours_us,
        speedup=speedup,
        json_loads_us=loads_us,
        parse_us=parse_us,
        parse_overhead_us=parse_us - loads_us,
    )
    report.print()


if __name__ == "__main__":
    main()
