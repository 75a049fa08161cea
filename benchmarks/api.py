"""Benchmark of the HTTP API (issue 5) against a real `alluvial serve`, on loopback.

    python -m benchmarks.api [--size N]        # N requests per measured run (default 8000)
    python -m benchmarks.api --size 2000       # a quick run
    python -m benchmarks.api --no-postgresql   # SQLite only

For each database (a SQLite file, and a throwaway PostgreSQL server when `pg_ctl` is
installed) the benchmark initialises a ledger, registers a licensed buyer, a licence
zone and a site, gives the buyer an API token, starts `alluvial serve` as a separate
process (request logs to a file, as in production) and drives it over ``--clients``
keep-alive connections, each sending its next request once its answer is in (one
client thread serves them all from a selector):

1. the baseline, ``GET /api/v1/checkpoint`` (public, one small read), N requests;
2. ``POST /api/v1/events``, one ``parcel.purchased`` per request (with an event_id),
   N requests: acknowledged writes per second, median and p99 latency, and the ratio
   of each to the baseline measured in the same run.

Every write must be acknowledged (201) and the log must have grown by exactly the
writes acknowledged. The table goes to stdout and its last line is one JSON object
of the figures; progress goes to stderr. The targets (SQLite, 8 clients): at least
1,000 writes/s, median at most 5 ms, p99 at most 25 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import Report, fmt_ms, fmt_rate, median_ms, percentile_ms, progress, rate
from ledger import accounts
from ledger.db import make_engine
from ledger.log.keys import load_or_create
from ledger.recorder.events import Event, Ledger

ORIGIN = "bench.alluvial.local"
TARGET_WRITES = 1000.0
TARGET_MEDIAN_MS = 5.0
TARGET_P99_MS = 25.0
SQUARE = {"type": "Polygon", "coordinates": [[[-0.9, 5.9], [-0.7, 5.9], [-0.7, 6.1],
                                              [-0.9, 6.1], [-0.9, 5.9]]]}


# -- the world and the server --------------------------------------------------------------

def prepare(url: str, key_path: Path) -> str:
    """Initialise a ledger with a buyer, its licence zone and site; return a buyer token."""
    engine = make_engine(url)
    try:
        ledger = Ledger(engine, load_or_create(key_path, ORIGIN))
        ledger.initialise()

        def write(kind: str, actor: str, **payload: Any) -> None:
            ledger.write(Event(kind, actor, payload))

        write("actor.registered", "admin", actor_id="off-gh", name="Minerals Commission",
              role="officer", country="GH", date="2004-01-02")
        write("actor.registered", "off-gh", actor_id="buyer-a", name="Buyer A", role="buyer",
              country="GH", licence_no="LIC-A", licence_valid_from="2000-01-01",
              licence_valid_to="2030-12-31", date="2004-01-05")
        write("zone.registered", "off-gh", zone_id="Z-AKW", zone_type="licence",
              geometry=SQUARE, date="2004-01-06", valid_from="2000-01-01", valid_to=None,
              licence_no="ML-AKW-1", holder="Akwatia Diggers Cooperative")
        write("site.registered", "off-gh", site_id="S-AKW", name="Akwatia pit 1",
              location={"type": "Point", "coordinates": [-0.8, 6.04]}, licence_no="ML-AKW-1",
              operator="Akwatia Diggers Cooperative", country="GH", date="2004-01-07")
        accounts.create_tables(engine)
        accounts.add_user(engine, "bench-buyer", "buyer", "buyer-a")
        return accounts.create_token(engine, "bench-buyer")
    finally:
        engine.dispose()


@contextmanager
def served(env: dict[str, str], log_file: Path, threads: int) -> Iterator[int]:
    """`alluvial serve` on a free loopback port, as its own process; yields the port."""
    with open(log_file, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "serve", "--host", "127.0.0.1", "--port", "0",
             "--threads", str(threads)],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"http://127\.0\.0\.1:(\d+)/", log_file.read_text())):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("alluvial serve did not start:\n" + log_file.read_text())
            time.sleep(0.05)
        yield int(found.group(1))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# -- a lean HTTP/1.1 keep-alive client --------------------------------------------------------

_LENGTH = re.compile(rb"(?i)\r\ncontent-length:[ \t]*(\d+)")


class Connection:
    """One keep-alive connection sending its prepared requests one after another: each is
    sent when the answer to the one before has been read whole (status line, headers,
    then Content-Length bytes of body). Cheaper than http.client, so that the client, on
    the same two cores, takes as little from the server as it can."""

    def __init__(self, port: int, requests: list[bytes]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.requests = requests
        self.sent = 0
        self.buf = b""
        self.started = 0.0
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}

    def send_next(self, now: float) -> bool:
        """Send the next request; False when there is none left."""
        if self.sent == len(self.requests):
            return False
        self.started = now
        self.sock.sendall(self.requests[self.sent])
        self.sent += 1
        return True

    def received(self, clock: Callable[[], float]) -> bool:
        """Read what has arrived; once the answer is whole, record it and send the next
        request. False when the last answer is in."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return True
        found = _LENGTH.search(self.buf, 0, end + 2)
        if found is None:
            raise ConnectionError(f"an answer without Content-Length: {self.buf[:end]!r}")
        total = end + 4 + int(found.group(1))
        if len(self.buf) < total:
            return True
        now = clock()
        self.latencies.append(now - self.started)
        status = int(self.buf[9:12])
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.buf = self.buf[total:]
        return self.send_next(now)

    def close(self) -> None:
        self.sock.close()


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def post(path: str, token: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


def purchase(i: int) -> bytes:
    return json.dumps({"kind": "parcel.purchased", "event_id": f"bench-{i}", "payload": {
        "parcel_id": f"P-{i:08d}", "site_id": "S-AKW", "seller": "Kwame Mensah",
        "date": "2008-03-14", "carats": round(0.01 * (1 + i % 25000), 2), "stones": 1 + i % 60,
        "price": {"amount": 420.5, "currency": "USD"}}}).encode()


@dataclass
class Run:
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]

    @property
    def per_second(self) -> float:
        return rate(len(self.latencies), self.seconds)

    def ok(self, status: int) -> int:
        return self.statuses.get(status, 0)


def drive(port: int, clients: int, requests: list[bytes]) -> Run:
    """Send the requests on ``clients`` keep-alive connections (request k on connection
    k % clients), each waiting for its answer before sending the next.

    One thread serves every connection from a selector: the client threads this
    replaces each woke for every answer and queued for the client's GIL (answers of one
    group commit arrive together), which cost CPU the server shares and added the
    client's own waits to the latencies measured.
    """
    conns = [Connection(port, requests[k::clients]) for k in range(clients)]
    clock = time.perf_counter
    with selectors.DefaultSelector() as selector:
        start = clock()
        for conn in conns:
            if conn.send_next(clock()):
                selector.register(conn.sock, selectors.EVENT_READ, conn)
        active = len(selector.get_map())
        while active:
            for key, _ in selector.select():
                if not key.data.received(clock):
                    selector.unregister(key.fileobj)
                    active -= 1
        seconds = clock() - start
    merged: dict[int, int] = {}
    for conn in conns:
        conn.close()
        for status, count in conn.statuses.items():
            merged[status] = merged.get(status, 0) + count
    return Run(seconds, [x for conn in conns for x in conn.latencies], merged)


# -- one database ----------------------------------------------------------------------------

def bench(name: str, url: str, workdir: Path, size: int, clients: int, threads: int,
          report: Report, targets: bool) -> None:
    key = workdir / f"{name}.key"
    report.put(**{f"{name}_load_avg_1m": os.getloadavg()[0]})  # a busy machine skews it all
    progress(f"{name}: preparing the ledger")
    token = prepare(url, key)
    env = {"ALLUVIAL_DATABASE_URL": url, "ALLUVIAL_LOG_KEY": str(key),
           "ALLUVIAL_LOG_ORIGIN": ORIGIN}
    with served(env, workdir / f"{name}-serve.log", threads) as port:
        warm = max(200, size // 20)
        drive(port, clients, [get("/api/v1/checkpoint")] * warm)
        drive(port, clients, [post("/api/v1/events", token, purchase(-1 - i))
                              for i in range(warm)])
        progress(f"{name}: {size} x GET /checkpoint at {clients} clients")
        base = drive(port, clients, [get("/api/v1/checkpoint")] * size)
        progress(f"{name}: {size} x POST /events at {clients} clients")
        engine = make_engine(url)
        before = Ledger(engine, load_or_create(key, ORIGIN)).log.size()
        writes = drive(port, clients, [post("/api/v1/events", token, purchase(i))
                                       for i in range(size)])
        after = Ledger(engine, load_or_create(key, ORIGIN)).log.size()
        engine.dispose()
    if writes.ok(201) != size or after - before != size or base.ok(200) != size:
        raise RuntimeError(f"{name}: writes {writes.statuses}, log grew by {after - before}, "
                           f"checkpoint reads {base.statuses}")
    record(report, name, base, writes, targets)


def record(report: Report, name: str, base: Run, writes: Run, targets: bool) -> None:
    w_med, w_p99 = median_ms(writes.latencies), percentile_ms(writes.latencies, 99)
    b_med, b_p99 = median_ms(base.latencies), percentile_ms(base.latencies, 99)
    report.section(f"{name}: POST /events (one purchase each) vs GET /checkpoint")

    def check(ok: bool) -> bool | None:
        return ok if targets else None

    report.row("acknowledged writes/s", fmt_rate(writes.per_second, "writes"),
               fmt_rate(base.per_second, "reads"), f"{writes.per_second / base.per_second:.2f}",
               f">= {TARGET_WRITES:,.0f}/s", check(writes.per_second >= TARGET_WRITES))
    report.row("median latency", fmt_ms(w_med), fmt_ms(b_med), f"{w_med / b_med:.2f}",
               f"<= {TARGET_MEDIAN_MS:g} ms", check(w_med <= TARGET_MEDIAN_MS))
    report.row("p99 latency", fmt_ms(w_p99), fmt_ms(b_p99), f"{w_p99 / b_p99:.2f}",
               f"<= {TARGET_P99_MS:g} ms", check(w_p99 <= TARGET_P99_MS))
    report.put(**{
        f"{name}_writes_per_s": writes.per_second, f"{name}_write_median_ms": w_med,
        f"{name}_write_p99_ms": w_p99, f"{name}_checkpoint_per_s": base.per_second,
        f"{name}_checkpoint_median_ms": b_med, f"{name}_checkpoint_p99_ms": b_p99,
        f"{name}_writes_to_checkpoint_rate": writes.per_second / base.per_second,
        f"{name}_median_to_checkpoint": w_med / b_med,
        f"{name}_p99_to_checkpoint": w_p99 / b_p99,
    })


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8000, help="requests per measured run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument("--threads", type=int, default=16, help="`alluvial serve --threads`")
    parser.add_argument("--no-postgresql", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    report = Report(f"HTTP API on loopback, `alluvial serve` (waitress, {args.threads} threads), "
                    f"{args.clients} clients, {args.size:,} requests per run")
    report.put(size=args.size, clients=args.clients, threads=args.threads)
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="alluvial-bench-api-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        runs: list[tuple[str, Callable[[], str], bool]] = [
            ("sqlite", lambda: f"sqlite:///{workdir / 'ledger.db'}", True)]
        if not args.no_postgresql:
            from tests import pg

            if pg.pg_bindir() is not None:
                def pg_url() -> str:
                    server = stack.enter_context(pg.running_server())
                    return stack.enter_context(pg.fresh_database(server))

                runs.append(("postgresql", pg_url, False))
            else:
                progress("PostgreSQL is not installed: SQLite only")
        for name, url, targets in runs:
            bench(name, url(), workdir, args.size, args.clients, args.threads, report, targets)
    report.print()


if __name__ == "__main__":
    main()
