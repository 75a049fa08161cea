"""Memory soak of `alluvial serve` (issue 15): does either process's memory keep rising?

    python -m benchmarks.soak [--size MINUTES]          # default 30 minutes, mixed load
    python -m benchmarks.soak --size 3 --mode read      # a short read-only soak
    python -m benchmarks.soak --size 10 --tracemalloc   # and what grew, by source line

In a fresh temporary folder it runs `alluvial demo --no-serve` (the demo ledger, its key
and demo-tokens.env), starts `alluvial serve --port 0` there (the web process, which
starts the writer process) and drives it on 127.0.0.1 at ``--rate`` requests a second
(default 20) for ``--size`` minutes, then stops both. The load is a fixed mix
(``--mode mixed``): public reads (checkpoint, proofs), reads with the auditor's token
(parcels, custody, flags, entries, stats), HTML pages of a signed-in auditor, an export
bundle now and then, and writes through POST /api/v1/events with the demo buyer's
token: purchases with fresh event_ids and parcel ids, and transfers of them to the
exporter. ``--mode read`` sends the reads only and ``--mode write`` the writes only, to
tell growth that follows the data written (the ledger grows with each write) from a
leak. The requests are paced by a schedule (request k at k / rate seconds), sent by
``--clients`` keep-alive connections; the count is bounded (minutes x 60 x rate) and so is
the time (the soak stops a minute past its end whatever happens).

Every ``--sample`` seconds (default 10) the resident set size (VmRSS in /proc) of both
processes is sampled. The table shows RSS at the start of the load, at every tenth of the
run and at the end, against the baseline of the same processes a minute in (warm: pools,
caches and lazily imported code in place), and the slope of a least-squares line over the
second half of the run, in MiB a minute (what a leak would show). Once a minute each
process also writes a probe line (a ``sitecustomize`` in the run's folder, on SIGUSR2):
glibc's heap in use and free, SQLite's allocations, Python's live blocks, SQLAlchemy's
compiled statements and a census of objects by type; the table compares the probe a minute
in with the last, which tells a leak of objects from memory the allocator keeps free.
Progress and the samples go to stderr; the last line of stdout is one JSON object of the
figures.

``--tracemalloc``: both processes trace their allocations (PYTHONTRACEMALLOC, and a
``sitecustomize`` in the run's folder that dumps a snapshot on SIGUSR1); snapshots are
taken after the first tenth of the run and at its end, and the source lines whose
allocations grew the most in between are printed on stderr. Tracing slows the server
and adds its own memory, so its RSS figures are not those of a plain run.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from benchmarks._common import Report, done_with, machine, progress, workdir

ROOT = Path(__file__).resolve().parent.parent  # the checkout whose code is soaked
HOST = "127.0.0.1"
SITE = "GH-S-AKW-01"  # a licensed site of the demo buyer's (buyer-gh-akwatia)
EXPORTER = "exporter-gh-accra"

# The sitecustomize of the served processes. On SIGUSR2 each appends one JSON line to
# $ALLUVIAL_SOAK_DUMPS/<pid>.probe: where its memory is (glibc's heap in use and free,
# SQLite's own allocations, Python's live blocks), so that RSS can be told apart into the
# interpreter's objects, the database driver's caches and the allocator's free space. With
# tracemalloc on, SIGUSR1 dumps a snapshot to <pid>-<n>.snap (written whole, then renamed).
_SITECUSTOMIZE = '''
import ctypes, ctypes.util, json, os, signal, sys, threading, time, tracemalloc
_dir = os.environ.get("ALLUVIAL_SOAK_DUMPS")
class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
def _probe(signum, frame):
    out = {"t": time.time(), "blocks": sys.getallocatedblocks(),
           "threads": threading.active_count()}
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("sqlite3"))
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        out["sqlite"] = lib.sqlite3_memory_used()
    except Exception as exc:
        out["sqlite_error"] = repr(exc)
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _Mallinfo2
        m = libc.mallinfo2()
        out.update(heap=m.arena, mmapped=m.hblkhd, heap_used=m.uordblks, heap_free=m.fordblks)
    except Exception as exc:
        out["malloc_error"] = repr(exc)
    if tracemalloc.is_tracing():
        out["traced"] = tracemalloc.get_traced_memory()[0]
    import collections, gc
    objects = gc.get_objects()
    kinds = collections.Counter(type(o).__qualname__ for o in objects)
    out["types"] = dict(kinds.most_common(400))
    engines = [o for o in objects if type(o).__name__ == "Engine" and hasattr(o, "pool")]
    out["compiled_cache"] = sum(len(e._compiled_cache or ()) for e in engines)
    out["pool"] = [e.pool.status() for e in engines]
    del objects
    with open(os.path.join(_dir, "%d.probe" % os.getpid()), "a") as f:
        f.write(json.dumps(out) + "\\n")
_count = [0]
def _dump(signum, frame):
    _count[0] += 1
    path = os.path.join(_dir, "%d-%d.snap" % (os.getpid(), _count[0]))
    tracemalloc.take_snapshot().dump(path + ".part")
    os.replace(path + ".part", path)
if _dir:
    signal.signal(signal.SIGUSR2, _probe)
    if tracemalloc.is_tracing():
        signal.signal(signal.SIGUSR1, _dump)
'''


# -- the demo ledger and the server ----------------------------------------------------------

def child_env(folder: Path, trace: bool, probe: bool = False) -> dict[str, str]:
    """The environment of `alluvial`: this checkout's code, the demo's defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLUVIAL_")}
    paths = [str(ROOT)]
    if probe:
        (folder / "soakhook").mkdir(exist_ok=True)
        (folder / "soakhook" / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        (folder / "dumps").mkdir(exist_ok=True)
        paths.insert(0, str(folder / "soakhook"))
        env["ALLUVIAL_SOAK_DUMPS"] = str(folder / "dumps")
    if trace:
        env["PYTHONTRACEMALLOC"] = "10"
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def make_demo(folder: Path) -> dict[str, str]:
    """`alluvial demo --no-serve` in ``folder``; the demo tokens, by role."""
    subprocess.run([sys.executable, "-m", "ledger.cli", "demo", "--no-serve"], cwd=folder,
                   env=child_env(folder, False), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=600)
    text = (folder / "demo-tokens.env").read_text()
    return {m[1].lower(): m[2] for m in re.finditer(r"export (\w+)_TOKEN=(\S+)", text)}


@contextmanager
def served(folder: Path, trace: bool) -> Iterator[tuple[int, int, int]]:
    """`alluvial serve --port 0` in ``folder``; yields its port, its pid, its writer's pid."""
    log_file = folder / "serve.log"
    with open(log_file, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "serve", "--host", HOST, "--port", "0"],
            cwd=folder, env=child_env(folder, trace, True), stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while not (found := re.search(r"http://127\.0\.0\.1:(\d+)/", log_file.read_text())):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("alluvial serve did not start:\n" + log_file.read_text())
            time.sleep(0.1)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        if len(children) != 1:
            raise RuntimeError(f"expected one writer process, found {children}")
        writer = int(children[0])
        # The probe's signal would end a process that has not installed its hook yet.
        while not all(catches(pid, signal.SIGUSR2) for pid in (proc.pid, writer)):
            if time.monotonic() > deadline:
                raise RuntimeError("the served processes do not answer the probe signal")
            time.sleep(0.1)
        yield int(found.group(1)), proc.pid, writer
    finally:
        proc.send_signal(signal.SIGINT)  # serve stops its writer process on the way out
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def catches(pid: int, signum: int) -> bool:
    """Whether a process has a handler for ``signum`` (SigCgt in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def rss_mib(pid: int) -> float:
    """VmRSS of a process, in MiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# -- the load --------------------------------------------------------------------------------

@dataclass
class World:
    """What the requests refer to: the demo's ids, and the parcels this soak bought."""

    tokens: dict[str, str]
    parcels: list[str]
    certificates: list[str]
    size: int
    run: str
    bought: list[str] = field(default_factory=list)  # purchased, not yet transferred
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: int = 0

    def next_id(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter


def demo_world(folder: Path, tokens: dict[str, str]) -> World:
    import sqlite3

    with sqlite3.connect(folder / "alluvial.db") as db:
        parcels = [r[0] for r in db.execute("SELECT parcel_id FROM parcels ORDER BY parcel_id")]
        certs = [r[0] for r in db.execute("SELECT certificate_no FROM exports ORDER BY 1")]
        (size,), = db.execute("SELECT size FROM log_head")
    return World(tokens, parcels, certs, size, run=f"{os.getpid()}-{int(time.time())}")


@dataclass
class Request:
    kind: str
    method: str
    path: str
    token: str | None = None  # bearer token (API)
    page: bool = False  # a page of the signed-in auditor (session cookie)
    body: dict[str, object] | None = None
    expect: tuple[int, ...] = (200,)
    then: object = None  # called with the status and the body once answered


# (kind, weight): about one request in three is a write in the mixed load.
READS = [("checkpoint", 16), ("parcel", 9), ("custody", 5), ("flags", 5), ("inclusion", 5),
         ("consistency", 3), ("entries", 4), ("stats", 3), ("sites", 2), ("page", 14),
         ("bundle", 1)]
WRITES = [("purchase", 20), ("transfer", 13)]
PAGES = ["/", "/flags", "/stats", "/map", "/audit", "/search?q=GH-P0000", "/parcels/{parcel}",
         "/entries/{seq}"]


def make_request(kind: str, world: World, rng: random.Random) -> Request:
    auditor = world.tokens["auditor"]
    parcel = rng.choice(world.parcels)
    size = world.size  # the demo's size: every proof below it stays valid
    if kind == "checkpoint":
        return Request(kind, "GET", "/api/v1/checkpoint")
    if kind == "parcel":
        return Request(kind, "GET", f"/api/v1/parcels/{parcel}", auditor)
    if kind == "custody":
        return Request(kind, "GET", f"/api/v1/parcels/{parcel}/custody", auditor)
    if kind == "flags":
        query = rng.choice(["", "?status=open", "?status=resolved", "?code=IN_RISK_AREA"])
        return Request(kind, "GET", f"/api/v1/flags{query}", auditor)
    if kind == "inclusion":
        seq = rng.randint(1, size)
        query = {"seq": seq} if rng.random() < 0.5 else {"seq": seq, "size": size}
        return Request(kind, "GET", f"/api/v1/proofs/inclusion?{urlencode(query)}")
    if kind == "consistency":
        return Request(kind, "GET", f"/api/v1/proofs/consistency?old={rng.randint(1, size)}")
    if kind == "entries":
        after = rng.randint(0, size)
        return Request(kind, "GET", f"/api/v1/entries?after={after}&limit=100", auditor)
    if kind == "stats":
        return Request(kind, "GET", "/api/v1/stats", auditor)
    if kind == "sites":
        return Request(kind, "GET", rng.choice(["/api/v1/sites", "/api/v1/zones"]), auditor)
    if kind == "page":
        path = rng.choice(PAGES).format(parcel=parcel, seq=rng.randint(1, size))
        return Request(kind, "GET", path, page=True)
    if kind == "bundle":
        cert = rng.choice(world.certificates)
        return Request(kind, "GET", f"/api/v1/exports/{cert}/bundle", auditor)
    if kind == "transfer":
        with world.lock:
            parcel_id = world.bought.pop(0) if world.bought else None
        if parcel_id is not None:
            return Request(kind, "POST", "/api/v1/events", world.tokens["buyer"], body={
                "kind": "parcel.transferred", "event_id": f"soak-{world.run}-t-{parcel_id}",
                "payload": {"parcel_id": parcel_id, "to_actor": EXPORTER, "date": "2017-02-02",
                            "price": {"amount": 520.0, "currency": "USD"}}}, expect=(201,))
        kind = "purchase"  # nothing to transfer yet
    n = world.next_id()
    parcel_id = f"GH-P-SOAK-{world.run}-{n}"

    def bought(status: int, body: bytes) -> None:
        # Only a parcel bought without a flag can move on (a flag holds it: SPEC 5).
        if status == 201 and not json.loads(body).get("flags"):
            with world.lock:
                world.bought.append(parcel_id)

    return Request(kind, "POST", "/api/v1/events", world.tokens["buyer"], body={
        "kind": "parcel.purchased", "event_id": f"soak-{world.run}-p-{n}", "payload": {
            "parcel_id": parcel_id, "site_id": SITE, "seller": "Kwabena Asare",
            "date": "2017-02-01", "carats": round(0.5 + (n % 400) / 20, 2), "stones": 1 + n % 60,
            "price": {"amount": 420.0 + n % 100, "currency": "USD"}}},
        expect=(201,), then=bought)


class Client:
    """One keep-alive connection; signs the auditor in for the pages on first need."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)
        self.cookie: str | None = None

    def send(self, method: str, path: str, headers: dict[str, str],
             body: bytes | None = None) -> tuple[int, bytes, http.client.HTTPResponse]:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read(), response
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _take_cookie(self, response: http.client.HTTPResponse) -> None:
        for header in response.headers.get_all("Set-Cookie") or []:
            if header.startswith("session="):
                self.cookie = header.split(";", 1)[0]

    def sign_in(self, password: str) -> None:
        status, body, response = self.send("GET", "/login", {})
        self._take_cookie(response)
        csrf = re.search(rb'name="csrf_token" value="([^"]+)"', body)
        if csrf is None:
            raise RuntimeError(f"GET /login: no CSRF token (status {status})")
        form = urlencode({"csrf_token": csrf.group(1).decode(), "name": "auditor",
                          "password": password}).encode()
        status, _, response = self.send("POST", "/login", {
            "Content-Type": "application/x-www-form-urlencoded",
            **({"Cookie": self.cookie} if self.cookie else {})}, form)
        self._take_cookie(response)
        if status != 302:
            raise RuntimeError(f"POST /login answered {status}")

    def do(self, req: Request) -> tuple[int, bytes]:
        headers: dict[str, str] = {}
        body = None
        if req.page:
            if self.cookie is None:
                self.sign_in("demo-auditor")
            assert self.cookie is not None
            headers["Cookie"] = self.cookie
        if req.token is not None:
            headers["Authorization"] = f"Bearer {req.token}"
        if req.body is not None:
            body = json.dumps(req.body).encode()
            headers["Content-Type"] = "application/json"
        status, answer, response = self.send(req.method, req.path, headers, body)
        if req.page:
            self._take_cookie(response)
        return status, answer


@dataclass
class Load:
    """What the clients did."""

    sent: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)  # "kind status"
    errors: Counter[str] = field(default_factory=Counter)
    late: int = 0  # requests sent more than a second after their time
    lock: threading.Lock = field(default_factory=threading.Lock)


def drive(port: int, world: World, mix: list[tuple[str, int]], rate: float, total: int,
          clients: int, deadline: float, load: Load, stop: threading.Event) -> None:
    """Send ``total`` requests, request k at ``start + k / rate``, on ``clients`` threads."""
    kinds = [k for k, _ in mix]
    weights = [w for _, w in mix]
    start = time.monotonic()

    def client(index: int) -> None:
        rng = random.Random(index)
        conn = Client(port)
        for k in range(index, total, clients):
            due = start + k / rate
            now = time.monotonic()
            if now > deadline or stop.is_set():
                return
            if due > now:
                time.sleep(due - now)
            elif now - due > 1:
                with load.lock:
                    load.late += 1
            req = make_request(rng.choices(kinds, weights)[0], world, rng)
            try:
                status, answer = conn.do(req)
            except (OSError, http.client.HTTPException, RuntimeError) as exc:
                with load.lock:
                    load.errors[f"{req.kind} {type(exc).__name__}"] += 1
                continue
            if callable(req.then):
                req.then(status, answer)
            with load.lock:
                load.sent[req.kind] += 1
                if status not in req.expect:
                    load.unexpected[f"{req.kind} {status}"] += 1
        conn.conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 5)


# -- tracemalloc snapshots -------------------------------------------------------------------

def snapshot(folder: Path, pid: int, timeout: float = 120) -> Path | None:
    """Ask a traced process for a snapshot; the file it wrote, or None."""
    before = set((folder / "dumps").glob(f"{pid}-*.snap"))
    os.kill(pid, signal.SIGUSR1)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        new = set((folder / "dumps").glob(f"{pid}-*.snap")) - before
        if new:
            return new.pop()
        time.sleep(0.2)
    progress(f"no snapshot from {pid}")
    return None


def growth(first: Path, last: Path, top: int = 15) -> list[str]:
    """The source lines whose live allocations grew the most between two snapshots."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__),
              tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")]
    old = tracemalloc.Snapshot.load(str(first)).filter_traces(ignore)
    new = tracemalloc.Snapshot.load(str(last)).filter_traces(ignore)
    total = sum(s.size for s in new.statistics("filename")) - sum(
        s.size for s in old.statistics("filename"))
    lines = [f"traced memory grew {total / 2**20:+.2f} MiB; top lines:"]
    for stat in new.compare_to(old, "lineno")[:top]:
        frame = stat.traceback[0]
        lines.append(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  "
                     f"{frame.filename}:{frame.lineno}")
    return lines


# -- the run ---------------------------------------------------------------------------------

def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minute, MiB) points, MiB a minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=float, default=30, help="minutes of load")
    parser.add_argument("--rate", type=float, default=20, help="requests a second")
    parser.add_argument("--sample", type=float, default=10, help="seconds between RSS samples")
    parser.add_argument("--clients", type=int, default=4, help="keep-alive connections")
    parser.add_argument("--mode", choices=("mixed", "read", "write"), default="mixed")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="trace allocations in both processes and print what grew")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder")
    args = parser.parse_args(argv)
    if args.size <= 0 or args.rate <= 0 or args.sample <= 0 or args.clients < 1:
        parser.error("--size, --rate, --sample and --clients must be positive")
    mix = {"mixed": READS + WRITES, "read": READS, "write": WRITES}[args.mode]
    seconds = args.size * 60
    total = int(seconds * args.rate)
    folder = workdir("soak")
    report = Report(f"Memory soak of `alluvial serve` (SQLite demo ledger), {args.mode} load at "
                    f"{args.rate:g} requests/s for {args.size:g} min, {args.clients} clients; "
                    f"{machine()}" + (" [tracemalloc on]" if args.tracemalloc else ""))
    report.put(minutes=args.size, rate=args.rate, mode=args.mode, tracemalloc=args.tracemalloc)
    try:
        progress("making the demo ledger")
        tokens = make_demo(folder)
        world = demo_world(folder, tokens)
        load = Load()
        samples: list[tuple[float, float, float]] = []  # (minute, web MiB, writer MiB)
        lines: list[str] = []
        with served(folder, args.tracemalloc) as (port, web, writer):
            progress(f"serving on {port}: web process {web}, writer process {writer}")
            stop = threading.Event()
            start = time.monotonic()
            deadline = start + seconds + 60
            runner = threading.Thread(target=drive, daemon=True, args=(
                port, world, mix, args.rate, total, args.clients, deadline, load, stop))
            runner.start()
            first: dict[int, Path | None] = {}
            k = 0
            while True:
                at = (time.monotonic() - start) / 60
                samples.append((at, rss_mib(web), rss_mib(writer)))
                if k % max(1, round(60 / args.sample)) == 0 or not runner.is_alive():
                    for pid in (web, writer):
                        with contextlib.suppress(ProcessLookupError):  # a writer restarted
                            os.kill(pid, signal.SIGUSR2)  # a probe line: _SITECUSTOMIZE
                    progress(f"{at:5.1f} min  web {samples[-1][1]:6.1f} MiB  writer "
                             f"{samples[-1][2]:6.1f} MiB  sent {sum(load.sent.values())}")
                if not runner.is_alive():
                    time.sleep(2)  # the last probe lines are written before the processes stop
                    break
                if args.tracemalloc and not first and at >= args.size / 10:
                    first = {pid: snapshot(folder, pid) for pid in (web, writer)}
                k += 1
                runner.join(max(0.0, start + k * args.sample - time.monotonic()))
            if args.tracemalloc:
                for pid, name in ((web, "web"), (writer, "writer")):
                    was, now = first.get(pid), snapshot(folder, pid)
                    if was is not None and now is not None:
                        lines += [f"{name} process ({pid}):", *growth(was, now)]
            stop.set()
        for line in lines:
            print(line, file=sys.stderr)
        record(report, samples, load, args.size, total)
        probes(report, folder, web, writer, args.size)
    finally:
        done_with(folder, args.keep)
    report.print()


def record(report: Report, samples: list[tuple[float, float, float]], load: Load,
           minutes: float, total: int) -> None:
    sent = sum(load.sent.values())
    report.section("load")
    report.row("requests answered", f"{sent:,} of {total:,}", ok=sent == total)
    report.row("unexpected statuses", ", ".join(f"{k}: {n}" for k, n in
                                               load.unexpected.most_common()) or "none",
               ok=not load.unexpected and not load.errors)
    if load.errors:
        report.row("errors", ", ".join(f"{k}: {n}" for k, n in load.errors.items()))
    report.row("sent over a second late", f"{load.late:,}")
    report.row("mix", ", ".join(f"{k} {n}" for k, n in load.sent.most_common()))
    report.put(requests=sent, requests_planned=total, unexpected=sum(load.unexpected.values()),
               errors=sum(load.errors.values()), late=load.late,
               **{f"sent_{k}": n for k, n in load.sent.items()})
    # The baseline: the same processes a minute into the load, warm (pools, caches and
    # lazily imported code in place); what a leak adds shows as a ratio above 1 after it.
    warm = min(samples, key=lambda s: abs(s[0] - min(1.0, minutes / 2)))
    report.section(f"RSS (MiB) web process / writer process; baseline: at {warm[0]:.1f} min")
    report.put(rss_web_mib_warm=warm[1], rss_writer_mib_warm=warm[2])
    shown: set[float] = set()
    for i in range(11):
        mark = round(minutes * i / 10, 2)
        at, web, writer = min(samples, key=lambda s: abs(s[0] - mark))
        if at in shown:
            continue  # a short run: the same sample again
        shown.add(at)
        report.row(f"at {at:.1f} min", f"{web:.1f} / {writer:.1f}",
                   f"{warm[1]:.1f} / {warm[2]:.1f}",
                   f"{web / warm[1]:.3f} / {writer / warm[2]:.3f}")
        report.put(**{f"rss_web_mib_{mark:g}min": web, f"rss_writer_mib_{mark:g}min": writer})
    half = [s for s in samples if s[0] >= minutes / 2]
    for i, name in ((1, "web"), (2, "writer")):
        rise = slope([(s[0], s[i]) for s in half])
        report.row(f"{name}: slope over the second half", f"{rise:+.3f} MiB/min")
        report.put(**{f"{name}_slope_second_half_mib_per_min": rise,
                      f"{name}_rss_peak_mib": max(s[i] for s in samples)})


def probes(report: Report, folder: Path, web: int, writer: int, minutes: float) -> None:
    """Where each process's memory was, a minute in (warm) and at the end, from the probe
    lines of the served processes: glibc's heap in use and free, SQLite's allocations and
    Python's live blocks."""
    report.section("inside each process (MiB; Python: thousands of live blocks), warm -> end")
    for pid, name in ((web, "web"), (writer, "writer")):
        path = folder / "dumps" / f"{pid}.probe"
        lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
        if len(lines) < 2:
            report.row(f"{name}: probes", f"{len(lines)} lines: too few")
            continue
        warm = lines[1 if minutes >= 2 else 0]
        last = lines[-1]
        for key, label, unit in (("heap_used", "heap in use (malloc)", 2**20),
                                 ("heap_free", "heap free, kept (malloc)", 2**20),
                                 ("mmapped", "mmapped blocks (malloc)", 2**20),
                                 ("sqlite", "SQLite's allocations", 2**20),
                                 ("blocks", "Python live blocks", 1000)):
            if key in warm and key in last:
                a, b = warm[key] / unit, last[key] / unit
                report.row(f"{name}: {label}", f"{a:.1f} -> {b:.1f}", ratio=f"{b - a:+.1f}")
                report.put(**{f"{name}_{key}_warm": a, f"{name}_{key}_end": b})
        if "compiled_cache" in last:
            report.row(f"{name}: SQLAlchemy compiled statements",
                       f"{warm['compiled_cache']} -> {last['compiled_cache']}")
            report.put(**{f"{name}_compiled_cache_end": last["compiled_cache"]})
        grew = Counter(last.get("types", {}))
        grew.subtract(warm.get("types", {}))
        top = [f"{kind} {n:+,}" for kind, n in grew.most_common(6) if n > 0]
        report.row(f"{name}: objects that grew most", ", ".join(top) or "none")
        progress(f"{name}: pool at the end: {last.get('pool')}")


if __name__ == "__main__":
    main()
