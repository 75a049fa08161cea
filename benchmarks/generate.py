"""Scale generation of the sample scenario (issue 6): time and memory against N.

Generates N ingest lines with ``python -m sample_data.generate --events N`` in a
fresh process (to /dev/null), at N/10 and at N, and reports the rate and the peak
RSS of each run: the rate should hold and the memory should not grow with N.
Baseline, in the same run: writing N preformatted lines of the same length, so the
ratio says what the scenario's logic costs over plain output.

    python -m benchmarks.generate [--size N]     (default 1,000,000)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from benchmarks._common import PEAK_RSS_SOURCE, Report, fmt_rate, progress, rate

CHILD = PEAK_RSS_SOURCE + """
import sys, time
from sample_data.generate import events, write_jsonl
n = int(sys.argv[1])
start = time.perf_counter()
with open("/dev/null", "wb") as sink:
    write_jsonl(events(n), sink)
print(time.perf_counter() - start, peak_rss_mb())
"""

BASELINE = PEAK_RSS_SOURCE + """
import sys, time
n = int(sys.argv[1])
line = b'{"kind":"parcel.purchased","actor":"buyer-gh-akwatia","payload":{}}' + b"x" * 180 + b"\\n"
start = time.perf_counter()
with open("/dev/null", "wb") as sink:
    for _ in range(n):
        sink.write(line)
print(time.perf_counter() - start, peak_rss_mb())
"""


def run(code: str, n: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", code, str(n)], check=True, capture_output=True,
                         text=True).stdout.split()
    return float(out[0]), float(out[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    small = max(1, args.size // 10)
    progress(f"generating {small:,} then {args.size:,} events")
    t_small, rss_small = run(CHILD, small)
    t_full, rss_full = run(CHILD, args.size)
    t_base, _ = run(BASELINE, args.size)
    report = Report(f"sample_data.generate --events {args.size:,} (load {os.getloadavg()[0]:.1f})")
    ok = t_full <= 60
    report.row(f"generate {args.size:,} events", f"{t_full:.1f} s", f"{t_base:.2f} s plain",
               f"{t_full / t_base:.0f}x", "<= 60 s", ok)
    report.row("rate at N", fmt_rate(rate(args.size, t_full), "events"),
               fmt_rate(rate(small, t_small), "events") + f" at {small:,}",
               f"{(args.size / t_full) / (small / t_small):.2f}")
    report.row("peak RSS at N", f"{rss_full:.1f} MiB", f"{rss_small:.1f} MiB at {small:,}",
               f"{rss_full / rss_small:.2f}", "flat (<= 1.2x)", rss_full <= 1.2 * rss_small)
    report.put(events=args.size, seconds=t_full, baseline_seconds=t_base,
               ratio_to_plain=t_full / t_base, events_per_s=rate(args.size, t_full),
               rss_mb=rss_full, rss_mb_small=rss_small, rss_growth=rss_full / rss_small)
    report.print()


if __name__ == "__main__":
    main()
