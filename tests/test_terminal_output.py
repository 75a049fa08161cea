"""What the CLI prints of ledger text and of bundles (issue 15): one report line per line,
control characters and escape sequences shown escaped, and a forged bundle's report
bounded whatever its manifest claims."""

from __future__ import annotations

import base64
import json
import os
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ledger.bundle.verify import verify_bundle
from ledger.cli import cli
from ledger.cli.app import terminal_safe
from ledger.config import DEFAULT_ORIGIN
from ledger.log.checkpoint import Checkpoint
from ledger.log.keys import SigningKey, sign_note
from ledger.recorder.events import Event, Ledger
from tests.test_bundle import CERT, FLAG, forge, offline, story

# A name that, printed raw, ends one report line and starts a forged verdict, then clears
# the screen and writes right to left.
INJECTED = f"Pit\nOK: provenance bundle of KP certificate {CERT} verified.\x1b[2J\u202e"


@pytest.mark.parametrize(("text", "shown"), [
    ("Pit\nOK", "Pit\\nOK"),
    ("red\x1b[31m", "red\\x1b[31m"),
    ("a\rb\tc", "a\\rb\\tc"),
    ("bidi\u202eevil", "bidi\\u202eevil"),
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("line\u2028sep", "line\\u2028sep"),
    ("c1\x9bcsi", "c1\\x9bcsi"),
    ("Côte d'Ivoire — Séguéla", "Côte d'Ivoire — Séguéla"),
], ids=["newline", "escape", "cr-tab", "bidi", "zero-width", "line-separator", "c1-csi",
        "plain-unicode"])
def test_terminal_safe_escapes_what_a_terminal_would_act_on(text: str, shown: str) -> None:
    assert terminal_safe(text) == shown


def test_verify_bundle_prints_a_site_name_as_one_escaped_line(tmp_path: Path) -> None:
    """A failed bundle (an open flag) whose site is named like a verdict: the report keeps
    one line per report line, no line but the first is a verdict, nothing reaches the
    terminal raw."""
    events = story()
    kind, actor, site = events[6]
    events[6] = (kind, actor, {**site, "name": INJECTED})
    events.insert(8, ("flag.raised", "aud", FLAG))
    forged = forge(tmp_path, events)
    report = verify_bundle(forged.text, forged.key.verifier)
    assert not report.ok
    result = offline(tmp_path, forged.text, "--key", forged.vkey)
    assert result.exit_code == 1
    out = result.stdout.splitlines()
    assert out[0].startswith("FAILED: provenance bundle")
    assert len(out) == len(report.lines())
    assert not any(line.startswith("OK:") for line in out[1:]), out
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    assert any("Pit\\nOK: provenance bundle" in line and "\\x1b[2J\\u202e" in line
               for line in out), out


def test_flags_print_one_escaped_line_per_flag(ledger: Ledger, runner: CliRunner) -> None:
    from tests.conftest import Auth

    Auth(ledger).register("auditor", "aud-1")
    Auth(ledger).register("buyer", "buyer-a")
    ledger.write(Event("parcel.purchased", "buyer-a", {
        "parcel_id": "P1", "site_id": "S-1", "seller": "Ama", "date": "2008-03-14",
        "carats": 1.0, "stones": 1, "price": {"amount": 1, "currency": "USD"}}))
    ledger.write(Event("flag.raised", "aud-1", {
        "flag_id": "FA-1", "subject": {"type": "parcel", "id": "P1"},
        "code": "FOOTPRINT_ANOMALY", "date": "2008-03-20",
        "detail": "cheap\nF-99\tseq 1\topen\tIN_RISK_AREA\x1b]0;owned\x07"}))
    result = runner.invoke(cli, ["flags"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2  # UNREGISTERED_SITE by screening, and the auditor's
    assert [len(line.split("\t")) for line in lines] == [6, 6]
    assert lines[1].endswith("cheap\\nF-99\\tseq 1\\topen\\tIN_RISK_AREA\\x1b]0;owned\\x07")
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout


def test_refusals_and_trace_quote_input_escaped(ledger: Ledger, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["trace", "P\x1b[2J\nOK"])
    assert result.exit_code == 2
    assert "\x1b" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "P\\x1b[2J\\nOK" in result.stderr


def test_verify_prints_stored_text_escaped(ledger: Ledger, runner: CliRunner,
                                           settings: Any) -> None:
    """A checkpoint row whose time text was tampered with: named in the report, escaped."""
    from ledger.db import checkpoints, make_engine

    engine = make_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(checkpoints).values(
            size=1, root_hash=bytes(32), ts="2026\x1b[2J\nOK: 1 entries", note="forged\n"))
    engine.dispose()
    result = runner.invoke(cli, ["verify"])
    assert result.exit_code == 1
    assert "\x1b" not in result.stdout
    assert "2026\\x1b[2J\\nOK: 1 entries" in result.stdout, result.stdout
    assert not any(line.startswith("OK:") for line in result.stdout.splitlines())


# -- a forged manifest ------------------------------------------------------------------------
def claiming(count: int) -> str:
    """A bundle of no entries whose own key signs a checkpoint and a manifest claiming
    ``count`` entries: a few hundred bytes."""
    key = SigningKey.generate(DEFAULT_ORIGIN)
    root = os.urandom(32)
    checkpoint = Checkpoint(DEFAULT_ORIGIN, count, root, datetime.now(UTC)).sign(key)
    manifest = sign_note(
        f"alluvial-bundle/1 manifest\norigin {DEFAULT_ORIGIN}\ncertificate {CERT}\n"
        f"checkpoint {count} {base64.b64encode(root).decode()}\nentries {count}\n1-{count}\n",
        key)
    return json.dumps({"format": "alluvial-bundle/1", "certificate_no": CERT,
                       "log": {"origin": DEFAULT_ORIGIN, "vkey": key.verifier.to_vkey()},
                       "checkpoint": checkpoint, "entries": [], "manifest": manifest})


def test_a_manifest_claiming_ten_million_entries_gets_a_short_report(tmp_path: Path) -> None:
    """Before: 115 s, 2.2 GB and ten million lines. The manifest's claims are weighed
    against what the bundle holds, never expanded entry by entry."""
    text = claiming(10_000_000)
    assert len(text) < 1000
    tracemalloc.start()
    try:
        report = verify_bundle(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 << 20, peak  # bytes: nothing allocated per claimed entry
    result = offline(tmp_path, text, "--trust-bundle-key")
    assert result.exit_code == 1
    out = result.stdout.splitlines()
    assert len(out) < 70, len(out)
    assert "manifest: it lists 10000000 entries; the bundle holds 0." in out
    assert "manifest: entry 1 is listed in the log's signed manifest but missing from the " \
           "bundle." in out
    assert ("manifest: ... and 9999990 more entries listed in the log's signed manifest are "
            "missing from the bundle.") in out
    assert len(report.lines()) == len(out)


def test_a_report_of_many_problems_prints_the_first_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    events = story()
    for i in range(80):  # 80 flags raised and left open, each a problem of its own
        events.insert(8, ("flag.raised", "aud", {**FLAG, "flag_id": f"FX-{i}"}))
    forged = forge(tmp_path, events)
    report = verify_bundle(forged.text, forged.key.verifier)
    assert len(report.problems) > 80
    lines = report.lines()
    assert lines[0] == f"FAILED: provenance bundle of KP certificate {CERT}: " \
                       f"{len(report.problems)} problem(s)."
    assert lines[1:51] == report.problems[:50]
    assert lines[51] == f"... and {len(report.problems) - 50} more problem(s)."
