"""Benchmark of the command line's start-up: each `alluvial` command beside `python -c pass`.

    python -m benchmarks.cli [--repeat N] [--keep]     # default N = 7

Times whole processes, as a user waits for them: `alluvial --help`, `alluvial --version`,
every subcommand's `--help` (found by walking the click group, the entry-point commands
`serve` and `demo` included), and `alluvial verify` of a freshly loaded demo ledger
(`alluvial demo --no-serve` in a temporary folder). The baseline is the interpreter's own
start-up, `python -c pass`, run interleaved with the commands in every round so that load
on the machine weighs on both alike. Load only ever adds time, so each figure is the best of
N rounds (as timeit reports), shown with the median and with the process's CPU time (user +
system, which load inflates far less than wall time); the targets are checked on the best.

It also runs each command once under a small wrapper that lists the modules it loaded,
and reports any of the web or geospatial stack (issue 19: no command imports them until
it needs them; `--help` never does). Targets (issue 19): `--help` and `--version` within
0.3 s, `verify` of the demo within 1 s, whole process; the same 0.3 s is shown for each
subcommand's `--help`. The table goes to stdout, its last line one JSON object of the
figures; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click

from benchmarks._common import Report, done_with, machine, progress, workdir

ROOT = Path(__file__).resolve().parents[1]
HELP_TARGET_S = 0.3
VERIFY_TARGET_S = 1.0
# Top-level packages of the web and geospatial stacks (and numpy, which screening needs).
HEAVY = ("flask", "werkzeug", "jinja2", "flask_wtf", "waitress", "geopandas", "shapely",
         "pyogrio", "pyproj", "pandas", "numpy")
# Runs `alluvial ARGS` in this interpreter and prints the heavy packages it left loaded.
PROBE = (
    "import sys\n"
    "from ledger.cli import main\n"
    "sys.argv = ['alluvial', *sys.argv[1:]]\n"
    "try:\n"
    "    main()\n"
    "except SystemExit:\n"
    "    pass\n"
    "sys.stdout.flush()\n"
    f"heavy = {HEAVY!r}\n"
    "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))),"
    " file=sys.stderr)\n"
)


def alluvial_script() -> str:
    """The `alluvial` console script of this interpreter (not a pyenv shim on PATH)."""
    beside = Path(sys.executable).parent / "alluvial"
    found = str(beside) if beside.exists() else shutil.which("alluvial")
    if found is None:
        sys.exit("no `alluvial` script: run `python3 -m pip install -e .` first")
    return found


def subcommand_paths() -> list[list[str]]:
    """Every command of the group as the words that name it (`prove inclusion` ...)."""
    from ledger.cli import cli

    paths: list[list[str]] = []

    def walk(group: click.Group, prefix: list[str]) -> None:
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            paths.append([*prefix, name])
            if isinstance(command, click.Group):
                walk(command, [*prefix, name])

    walk(cli, [])
    return paths


def _children_cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run_s(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one whole process; it must exit 0."""
    cpu = _children_cpu_s()
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, _children_cpu_s() - cpu


def heavy_loaded(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, check=True,
                          capture_output=True, text=True)
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cli",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeat", type=int, default=7, help="rounds, median kept (default 7)")
    parser.add_argument("--keep", action="store_true", help="keep the demo ledger's folder")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    script = alluvial_script()
    tmp = workdir("cli")
    # This checkout's code, whatever an editable install points at; no ALLUVIAL_ settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLUVIAL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    progress("loading the demo ledger (alluvial demo --no-serve)")
    demo_s = run_s([script, "demo", "--no-serve"], tmp, env)[0]
    entries = subprocess.run([script, "verify"], cwd=tmp, env=env, check=True,
                             capture_output=True, text=True).stdout.split()[1]

    commands: list[tuple[str, list[str], float]] = [
        ("alluvial --help", ["--help"], HELP_TARGET_S),
        ("alluvial --version", ["--version"], HELP_TARGET_S),
        *((f"alluvial {' '.join(p)} --help", [*p, "--help"], HELP_TARGET_S)
          for p in subcommand_paths()),
        (f"alluvial verify (demo, {entries} entries)", ["verify"], VERIFY_TARGET_S),
    ]
    baseline: list[tuple[float, float]] = []
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in commands}
    for round_no in range(1, args.repeat + 1):
        progress(f"round {round_no}/{args.repeat}: {len(commands)} commands")
        for name, words, _ in commands:  # interleaved: pass, command, pass, command ...
            baseline.append(run_s([sys.executable, "-c", "pass"], tmp, env))
            times[name].append(run_s([script, *words], tmp, env))
    progress("listing the modules each command loads")
    loaded = {name: heavy_loaded(words, tmp, env) for name, words, _ in commands}

    def summary(runs: list[tuple[float, float]]) -> tuple[float, float, float]:
        """Best wall, median wall, median CPU, in ms."""
        walls = [w for w, _ in runs]
        return (min(walls) * 1e3, statistics.median(walls) * 1e3,
                statistics.median(c for _, c in runs) * 1e3)

    base, base_median, base_cpu = summary(baseline)
    report = Report(f"alluvial start-up, whole process: best of {args.repeat} rounds (median; "
                    f"CPU) ({machine()}; `python -c pass` interleaved; load "
                    f"{os.getloadavg()[0]:.1f})")
    report.row("python -c pass (baseline)",
               f"{base:.0f} ms ({base_median:.0f}; cpu {base_cpu:.0f})")
    report.row("alluvial demo --no-serve (context)", f"{demo_s:.1f} s")
    report.section("start-up")
    figures: dict[str, object] = {"python_pass_ms": round(base, 1),
                                  "python_pass_median_ms": round(base_median, 1),
                                  "python_pass_cpu_ms": round(base_cpu, 1)}
    for name, words, target in commands:
        best, median, cpu = summary(times[name])
        key = "_".join(w.strip("-").replace("-", "_") for w in words)
        report.row(name, f"{best:.0f} ms ({median:.0f}; cpu {cpu:.0f})", f"{base:.0f} ms",
                   f"+{best - base:.0f} ms", f"<= {target:.1f} s", best <= target * 1e3)
        figures.update({f"{key}_ms": round(best, 1), f"{key}_median_ms": round(median, 1),
                        f"{key}_cpu_ms": round(cpu, 1)})
    report.section("web or geospatial modules loaded")
    for name, words, _ in commands:
        if words[-1] != "--help" and words != ["--version"]:
            report.row(name, loaded[name] or "none")  # verify may need what it needs
            continue
        report.row(name, loaded[name] or "none", target="none", ok=not loaded[name])
    figures["help_loads_heavy"] = sorted({m for n, w, _ in commands if w[-1] == "--help"
                                          for m in loaded[n].split()})
    figures["demo_entries"] = int(entries)
    report.put(**figures)
    report.print()
    done_with(tmp, args.keep)


if __name__ == "__main__":
    main()
