"""Helpers shared by the benchmarks: timing, percentiles, peak RSS, the result table.

Every benchmark measures a baseline in the same run and prints one table (figure,
value, baseline, ratio, target, pass/fail) on stdout, then, as its last line, one JSON
object of the same figures with flat keys, so a script can compare runs. Progress
goes to stderr: stdout stays machine-readable.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def progress(message: str) -> None:
    """A timestamped progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Stopwatch:
    """Accumulates the time spent inside ``with watch:`` blocks (perf_counter)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._start


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Log the start and the wall time of a benchmark stage on stderr."""
    progress(f"{name} ...")
    start = time.perf_counter()
    yield
    progress(f"{name}: done in {time.perf_counter() - start:.1f} s")


def timed_calls(call: Callable[[Any], Any], args: list[Any]) -> tuple[list[float], list[Any]]:
    """Call ``call(a)`` for each argument; return the seconds of each call and the results."""
    times: list[float] = []
    results: list[Any] = []
    clock = time.perf_counter
    for a in args:
        start = clock()
        results.append(call(a))
        times.append(clock() - start)
    return times, results


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1e3


def percentile_ms(seconds: list[float], pct: int) -> float:
    """The ``pct``-th percentile (1..99, exclusive method) in milliseconds."""
    if len(seconds) < 2:
        return seconds[0] * 1e3
    return statistics.quantiles(seconds, n=100)[pct - 1] * 1e3


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux's ru_maxrss survives execve, so a child started by a big benchmark process
    would report the parent's peak; VmHWM in /proc/self/status belongs to the current
    address space and is read first. Self-contained (see PEAK_RSS_SOURCE).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)  # bytes on macOS


# The same function as source text, for the fresh processes run with ``python -c``.
PEAK_RSS_SOURCE = inspect.getsource(peak_rss_mb)


@dataclass
class Row:
    """One line of the result table."""

    figure: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    ok: bool | None = None  # None: no target, reported for context

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else ("PASS" if self.ok else "FAIL")


@dataclass
class Report:
    """The rows of the table and the flat figures of the final JSON line."""

    title: str
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def row(
        self,
        figure: str,
        value: str,
        baseline: str = "",
        ratio: str = "",
        target: str = "",
        ok: bool | None = None,
    ) -> None:
        self.rows.append(Row(figure, value, baseline, ratio, target, ok))

    def section(self, name: str) -> None:
        self.rows.append(Row(f"-- {name}", ""))

    def put(self, **figures: Any) -> None:
        """Record figures for the JSON line (floats rounded for readability)."""
        for key, value in figures.items():
            self.figures[key] = round(value, 4) if isinstance(value, float) else value

    def print(self) -> None:
        """The table, then the JSON object as the very last line of stdout."""
        headers = ("figure", "value", "baseline", "ratio", "target", "result")
        cells = [(r.figure, r.value, r.baseline, r.ratio, r.target, r.verdict) for r in self.rows]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]

        def line(values: tuple[str, ...]) -> str:
            return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

        print(self.title)
        print(line(headers))
        print(line(tuple("-" * w for w in widths)))
        for c in cells:
            print(line(c))
        checked = [r for r in self.rows if r.ok is not None]
        failed = [r.figure for r in checked if not r.ok]
        print(
            f"{len(checked) - len(failed)}/{len(checked)} targets met"
            + (f"; missed: {', '.join(failed)}" if failed else "")
        )
        self.figures["targets_met"] = len(checked) - len(failed)
        self.figures["targets_total"] = len(checked)
        print(json.dumps(self.figures, sort_keys=False), flush=True)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def fmt_rate(per_second: float, unit: str) -> str:
    return f"{per_second:,.0f} {unit}/s"


def fmt_ms(ms: float) -> str:
    return f"{ms:.3f} ms" if ms < 10 else f"{ms:,.1f} ms"


def fmt_x(factor: float, better: str, worse: str) -> str:
    """``2.5x slower`` / ``40x faster`` from a factor where > 1 means ``better``."""
    if factor >= 1:
        return f"{factor:.1f}x {better}" if factor < 100 else f"{factor:,.0f}x {better}"
    return f"{1 / factor:.1f}x {worse}"


# -- the working folder and the machine ------------------------------------------------------


def workdir(name: str) -> Path:
    """A fresh temporary folder for one benchmark run (see :func:`done_with`)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"alluvial-bench-{name}-"))
    progress(f"working in {tmp}")
    return tmp


def done_with(tmp: Path, keep: bool) -> None:
    """Remove the benchmark's folder, unless asked to keep it."""
    if keep:
        progress(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def drop_sqlite(url: str) -> None:
    """Delete a SQLite ledger's files, to free the disk (1M events take about 0.9 GB)."""
    for extra in ("", "-wal", "-shm"):
        Path(url.removeprefix("sqlite:///") + extra).unlink(missing_ok=True)


def machine() -> str:
    """What the figures were measured on, for a report's title."""
    return f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"

