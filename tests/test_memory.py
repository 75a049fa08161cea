"""`alluvial serve` keeps its request threads to a few malloc arenas (issue 15, the memory
soak): with one arena per thread the free memory each kept made the web process's RSS climb
for 20 minutes of steady load (webui.memory; benchmarks/soak.py measures it)."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ledger.recorder.events import Ledger
from webui.memory import ARENAS

HEAP = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit systems: each extra arena is one such heap
glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr(
    "CS_GNU_LIBC_VERSION") is None, reason="malloc arenas are glibc's")


def arena_heaps(maps: str) -> int:
    """The malloc arenas a process has besides the main one, from its /proc/PID/maps: glibc
    maps each as a heap of HEAP bytes aligned to HEAP, its used part read-write and the rest
    reserved (---p)."""
    regions = []
    for line in maps.splitlines():
        fields = line.split()
        if len(fields) == 5:  # anonymous: no path
            start, end = (int(x, 16) for x in fields[0].split("-"))
            regions.append((start, end, fields[1]))
    ends = {start: (end, perms) for start, end, perms in regions}
    heaps = 0
    for start, end, perms in regions:
        if start % HEAP or perms != "rw-p":
            continue
        rest = ends.get(end)
        if end == start + HEAP or (rest is not None and rest[1] == "---p"
                                   and rest[0] == start + HEAP):
            heaps += 1
    return heaps


@contextmanager
def serving(env: dict[str, str], log_file: Path) -> Iterator[tuple[int, int]]:
    """`alluvial serve --port 0` (16 request threads); yields its port and pid."""
    with open(log_file, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"http://127\.0\.0\.1:(\d+)/", log_file.read_text())):
            assert proc.poll() is None, log_file.read_text()
            assert time.monotonic() < deadline, "alluvial serve did not start"
            time.sleep(0.05)
        yield int(found.group(1)), proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def busy(port: int, clients: int = 16, each: int = 25) -> list[int]:
    """``clients`` connections at once, ``each`` requests apiece: every request thread works."""
    statuses: list[int] = []
    start = threading.Barrier(clients)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start.wait()
        for _ in range(each):
            conn.request("GET", "/api/v1/checkpoint")
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


@glibc
def test_serve_shares_few_malloc_arenas_among_its_request_threads(
    ledger: Ledger, env: dict[str, str], tmp_path: Path
) -> None:
    with serving(env, tmp_path / "serve.log") as (port, pid):
        assert busy(port) == [200] * 16 * 25
        heaps = arena_heaps(Path(f"/proc/{pid}/maps").read_text())
    # Without the cap each of the 16 threads that allocated had an arena of its own (16 on
    # two CPUs, where glibc allows 8 a CPU); capped, one besides the main arena, and one
    # mapping of that shape more is let pass, should anything else have made it.
    assert heaps <= ARENAS


THREADS = """
import sys, threading
from webui.memory import cap_arenas
if sys.argv[1] == "capped":
    assert cap_arenas(2)
go = threading.Event()
def work():
    [bytearray(4096) for _ in range(200)]  # above pymalloc's 512 bytes: from malloc
    go.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
while sum(t.is_alive() for t in threads) < 8:
    pass
import time; time.sleep(0.3)
sys.stdout.write(open("/proc/self/maps").read())
go.set()
"""


@glibc
@pytest.mark.parametrize(("mode", "most", "least"), [("free", 8, 2), ("capped", 1, 0)])
def test_threads_started_after_the_cap_share_its_arenas(mode: str, most: int,
                                                         least: int) -> None:
    """The map reading above sees the heaps of eight threads, and one once capped at two."""
    found = subprocess.run([sys.executable, "-c", THREADS, mode], capture_output=True,
                           text=True, timeout=60, check=True, env={
                               **os.environ, "MALLOC_ARENA_MAX": ""})
    assert least <= arena_heaps(found.stdout) <= most
