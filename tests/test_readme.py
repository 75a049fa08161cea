"""README's walk-through, run as written against a real `alluvial demo` ledger and server."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from string import Template

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def walkthrough(heading: str = "## Walk-through") -> list[tuple[str, list[str]]]:
    """(command, expected output lines) from the console blocks of a README section."""
    text = README.read_text(encoding="utf-8")
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif line.strip():
                steps[-1][1].append(line.strip())
    return steps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("readme")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLUVIAL_")}
    subprocess.run(["alluvial", "demo", "--no-serve"], cwd=folder, env=env, check=True,
                   capture_output=True)
    port = _free_port()
    server = subprocess.Popen(["alluvial", "serve", "--port", str(port)], cwd=folder, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/checkpoint", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.2)
    try:
        yield folder, port, env
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_walkthrough_has_a_step_for_each_role() -> None:
    text = README.read_text(encoding="utf-8")
    for role in ("Officer", "Buyer", "Exporter", "Authority", "Auditor"):
        assert f"### {role}" in text
    assert len(walkthrough()) >= 15


def test_walkthrough_writes_are_dated_from_the_clock() -> None:
    """No day is typed into a command: what the walk-through writes is dated today (UTC), so
    that it runs as written on any day (SPEC 4 DATE_ORDER refuses a day after today, SPEC 5
    flags LATE_ENTRY one more than 30 days back); the one backdating is computed too."""
    steps = walkthrough()
    for command, _ in steps:
        assert not re.search(r"\d{4}-\d{2}-\d{2}", command), command
    assert any("date -u -d '-1 year'" in command for command, _ in steps)
    assert ["LATE_ENTRY" in " ".join(expected) for _, expected in steps].count(True) >= 2


@pytest.mark.slow
def test_every_walkthrough_command_runs_as_written(
    demo: tuple[Path, int, dict[str, str]]
) -> None:
    folder, port, env = demo
    # As in one terminal: what a `source` or `export` step sets (evaluated once, so a date
    # taken from the clock stays the same) holds for every later step, and $NAME in the
    # output shown stands for that variable's value.
    shell = dict(env)
    for command, expected in walkthrough():
        # The one liberty taken: the server listens on a free port, not on 5000.
        line = command.replace("127.0.0.1:5000", f"127.0.0.1:{port}")
        sets = line.startswith(("export ", "source "))
        result = subprocess.run(["bash", "-c", f"{line} && env -0" if sets else line],
                                cwd=folder, env=shell, capture_output=True, text=True,
                                timeout=120)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{command}\n{output}"
        if sets:
            shell = dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)
            output = result.stderr
        for want in (Template(w).substitute(shell) for w in expected):
            assert want in output, f"{command}\nexpected: {want}\ngot: {output}"


def test_backup_section_restores_a_ledger_that_verifies(tmp_path: Path) -> None:
    """The README's "Backup and restore" section, run as written in a ledger's folder: the
    restored copy verifies against the checkpoint saved from the live log."""
    steps = walkthrough("## Backup and restore")
    assert len(steps) >= 4
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLUVIAL_")}
    subprocess.run(["alluvial", "init"], cwd=tmp_path, env=env, check=True, capture_output=True)
    for command, expected in steps:
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{command}\n{output}"
        for want in expected:
            assert want in output, f"{command}\nexpected: {want}\ngot: {output}"
    assert (tmp_path / "backup.note").read_text().startswith("alluvial.local\n1\n")
