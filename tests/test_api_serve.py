"""`alluvial serve` as a real process on a loopback port: body limits, request logs,
and acceptance 3 of issue 5 (16 concurrent clients, no write lost, no gap, retries
written once), on SQLite and PostgreSQL."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from ledger.recorder.events import Event, Ledger
from tests.conftest import Auth

API = "/api/v1"
SQUARE = {"type": "Polygon", "coordinates": [[[-0.9, 5.9], [-0.7, 5.9], [-0.7, 6.1],
                                              [-0.9, 6.1], [-0.9, 5.9]]]}
CLIENTS, PER_CLIENT = 16, 200


def alluvial(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledger.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


@contextmanager
def served(env: dict[str, str], log_file: Path) -> Iterator[int]:
    """`alluvial serve` on a free loopback port; yields the port once it answers."""
    with open(log_file, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log)
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None:
            assert proc.poll() is None, log_file.read_text()
            assert time.monotonic() < deadline, "alluvial serve did not start"
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", log_file.read_text())
            port = int(found.group(1)) if found else None
            time.sleep(0.05)
        while request(port, "GET", "/checkpoint")[0] != 200:
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None,
            conn: http.client.HTTPConnection | None = None) -> tuple[int, Any, dict[str, str]]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, API + path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        ctype = response.getheader("Content-Type", "")
        value = json.loads(data) if "json" in ctype else data
        return response.status, value, dict(response.getheaders())
    finally:
        if own:
            conn.close()


def setup_buyer(ledger: Ledger, auth: Auth) -> str:
    """A buyer with a token, and a licensed site it buys at without any flag."""
    token = auth.token("buyer")
    ledger.write(Event("zone.registered", "off-gh", {
        "zone_id": "Z-AKW", "zone_type": "licence", "geometry": SQUARE, "date": "2004-01-06",
        "valid_from": "2000-01-01", "valid_to": None, "licence_no": "GH-ML-AKW-1",
        "holder": "Akwatia Diggers Cooperative"}))
    ledger.write(Event("site.registered", "off-gh", {
        "site_id": "S-AKW", "name": "Akwatia pit 1", "licence_no": "GH-ML-AKW-1",
        "location": {"type": "Point", "coordinates": [-0.8, 6.04]},
        "operator": "Akwatia Diggers Cooperative", "country": "GH", "date": "2004-01-07"}))
    return token


def purchase_body(client: int, n: int) -> bytes:
    return json.dumps({"kind": "parcel.purchased", "event_id": f"ev-{client}-{n}", "payload": {
        "parcel_id": f"P-{client}-{n}", "site_id": "S-AKW", "seller": "Kofi Boateng",
        "date": "2008-03-14", "carats": round(0.01 * (n + 1), 2), "stones": 1 + n % 7,
        "price": {"amount": 420.5, "currency": "USD"}}}).encode()


def test_serve_limits_bodies_logs_json_and_never_a_token(
    ledger: Ledger, auth: Auth, env: dict[str, str], tmp_path: Path
) -> None:
    token = setup_buyer(ledger, auth)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    log_file = tmp_path / "serve.log"
    with served(env, log_file) as port:
        status, body, _ = request(port, "POST", "/events", purchase_body(0, 0), headers)
        assert status == 201 and body["seq"] == ledger.log.size()
        big = b'{"kind": "parcel.purchased", "payload": {"seller": "' + b"x" * (2 << 20) + b'"}}'
        status, body, response_headers = request(port, "POST", "/events", big, headers)
        assert status == 413 and body["type"] == "TOO_LARGE"
        assert response_headers["Content-Type"] == "application/problem+json"
        status, body, _ = request(port, "GET", "/zones",
                                  headers={"Authorization": "Bearer alv_guess"})
        assert status == 401
    text = log_file.read_text()
    assert token not in text and "alv_guess" not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert [(x["method"], x["status"]) for x in lines][-3:] == [
        ("POST", 201), ("POST", 413), ("GET", 401)]
    assert lines[-3]["actor"] == "buyer-a" and lines[-3]["user"] == "buyer.buyer-a"


def _clients(port: int, token: str, jobs: list[list[bytes]]) -> list[list[tuple[int, Any]]]:
    """One thread per list of bodies, each on its own keep-alive connection."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    answers: list[list[tuple[int, Any]]] = [[] for _ in jobs]

    def run(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            for body in jobs[k]:
                status, value, _ = request(port, "POST", "/events", body, headers, conn)
                answers[k].append((status, value))
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


@pytest.mark.slow
def test_concurrent_clients_lose_nothing_and_retries_write_nothing(
    ledger: Ledger, auth: Auth, env: dict[str, str], tmp_path: Path
) -> None:
    token = setup_buyer(ledger, auth)
    start = ledger.log.size()
    jobs = [[purchase_body(c, n) for n in range(PER_CLIENT)] for c in range(CLIENTS)]
    with served(env, tmp_path / "serve.log") as port:
        first = _clients(port, token, jobs)
        acked = {}
        for c, answers in enumerate(first):
            for n, (status, body) in enumerate(answers):
                assert status == 201, body
                acked[f"ev-{c}-{n}"] = (body["seq"], body["entry_hash"])
        assert len(acked) == CLIENTS * PER_CLIENT
        size = ledger.log.size()
        # Every request twice (same event_id), the copies on different clients at once.
        again = _clients(port, token, [jobs[c] + jobs[(c + 1) % CLIENTS]
                                       for c in range(CLIENTS)])
        for c, answers in enumerate(again):
            for n, (status, body) in enumerate(answers):
                owner, m = (c, n) if n < PER_CLIENT else ((c + 1) % CLIENTS, n - PER_CLIENT)
                assert status == 200, body
                assert (body["seq"], body["entry_hash"]) == acked[f"ev-{owner}-{m}"]
    assert ledger.log.size() == size
    entries = []
    after = 0
    while page := ledger.log.entries(after, 1000):
        entries += page
        after = page[-1].seq
    assert [e.seq for e in entries] == list(range(1, size + 1))  # no gap
    ours = {e.event_id: (e.seq, e.entry_hash.hex()) for e in entries if e.seq > start
            and e.kind == "parcel.purchased"}
    assert ours == acked  # every acknowledged write, once
    verified = alluvial("verify", env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_retries_racing_their_original_are_written_once(
    ledger: Ledger, auth: Auth, client: FlaskClient
) -> None:
    """The group writer never puts two copies of one event in one transaction."""
    headers = {"Authorization": f"Bearer {setup_buyer(ledger, auth)}",
               "Content-Type": "application/json"}
    size = ledger.log.size()
    bodies = [purchase_body(99, n) for n in range(30)]
    statuses: list[tuple[bytes, int, int]] = []

    def run() -> None:
        for body in bodies:
            response = client.post(f"{API}/events", data=body, headers=headers)
            statuses.append((body, response.status_code, response.get_json()["seq"]))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.log.size() == size + len(bodies)
    for body in bodies:
        answers = [(s, q) for b, s, q in statuses if b == body]
        assert sorted(s for s, _ in answers) == [200] * 5 + [201]
        assert len({q for _, q in answers}) == 1
