"""`alluvial ingest`: one event per line, all or nothing, refusals name the line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.cli import cli
from ledger.recorder.events import Ledger
from tests.test_custody import SQUARE, licensed


def line(kind: str, actor: str, **payload: Any) -> str:
    return json.dumps({"kind": kind, "actor": actor, "payload": payload})


def purchase(pid: str, carats: float = 2.5, date: str = "2008-03-14") -> str:
    return line("parcel.purchased", "buyer-a", parcel_id=pid, site_id="S-AKW",
                seller="Ama Owusu", date=date, carats=carats, stones=2,
                price={"amount": 100, "currency": "USD"})


SETUP = [
    line("actor.registered", "admin", actor_id="off-gh", name="Minerals Commission",
         role="officer", country="GH", date="2004-01-02"),
    line("actor.registered", "off-gh", **licensed("buyer-a", "buyer")),
    line("zone.registered", "off-gh", zone_id="Z-AKW", zone_type="licence", geometry=SQUARE,
         date="2004-01-06", valid_from="2000-01-01", licence_no="GH-ML-AKW-1", holder="Coop"),
    line("site.registered", "off-gh", site_id="S-AKW", name="Akwatia pit 1",
         location={"type": "Point", "coordinates": [-0.8, 6.04]}, licence_no="GH-ML-AKW-1",
         operator="Coop", country="GH", date="2004-01-07"),
]


@pytest.fixture(autouse=True, params=[None, 0], ids=["in-process", "helper-process"])
def helper(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int | None:
    """Every test twice: lines read by the writing process, and by a helper process
    (``ingest`` starts one after HELPER_AFTER lines; 0 here: from the first line)."""
    monkeypatch.setattr("ledger.recorder.ingest.HELPER_AFTER", request.param)
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def jsonl(tmp_path: Path):  # type: ignore[no-untyped-def]
    def _write(lines: list[str]) -> str:
        path = tmp_path / "events.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return str(path)
    return _write


def test_ingest_writes_every_line(ledger: Ledger, runner: CliRunner, jsonl) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(cli, ["ingest", jsonl([*SETUP, purchase("P1"), purchase("P2")])])
    assert result.exit_code == 0, result.output
    assert "6 lines: 6 entries written" in result.stdout
    assert ledger.log.size() == 7
    assert runner.invoke(cli, ["verify"]).exit_code == 0


@pytest.mark.parametrize(("bad", "message"), [
    (purchase("P1", carats=-3), "line 6: SCHEMA: payload.carats"),
    ('{"kind": "parcel.purchased", "actor": "buyer-a", "payload": {', "line 6: SCHEMA"),
    (purchase("P1"), "line 6: DUPLICATE: payload.parcel_id"),
    (line("parcel.transferred", "buyer-a", parcel_id="P404", to_actor="buyer-a",
          date="2008-04-01", price={"amount": 1, "currency": "USD"}),
     "line 6: UNKNOWN_REFERENCE: payload.parcel_id"),
    (json.dumps({"kind": "parcel.purchased", "actor": "buyer-a", "event_id": "E-1",
                 "payload": {"parcel_id": "P9", "carats": -1}}),
     "line 6: EVENT_ID_CONFLICT: event_id"),  # the event_id is judged before the schema
    ('{"kind": "parcel.purchased", "actor": "buyer-a", "payload": {}, "sig": 1}',
     "line 6: SCHEMA: sig"),
], ids=["schema", "not-json", "duplicate", "unknown-parcel", "event-id-before-schema",
        "envelope"])
def test_refused_line_after_valid_lines_writes_none_of_them(
    ledger: Ledger, runner: CliRunner, jsonl, bad: str, message: str  # type: ignore[no-untyped-def]
) -> None:
    first = json.loads(purchase("P1")) | {"event_id": "E-1"}
    result = runner.invoke(cli, ["ingest", jsonl([*SETUP, json.dumps(first), bad])])
    assert result.exit_code == 2
    assert result.stderr.startswith(message), result.stderr
    assert "Nothing from this file was written." in result.stderr
    assert ledger.log.size() == 1
    assert runner.invoke(cli, ["verify"]).exit_code == 0


def test_batches_commit_and_name_the_line_to_resume_from(
    ledger: Ledger, runner: CliRunner, jsonl  # type: ignore[no-untyped-def]
) -> None:
    lines = [*SETUP, purchase("P1"), purchase("P2"), purchase("P3"), purchase("P2"),
             purchase("P5")]
    result = runner.invoke(cli, ["ingest", "--batch", "3", jsonl(lines)])
    assert result.exit_code == 2
    assert result.stderr.startswith("line 8: DUPLICATE")
    assert "resume from line 7" in result.stderr
    assert ledger.log.size() == 1 + 6  # two whole batches of three
    assert runner.invoke(cli, ["verify"]).exit_code == 0


def test_blank_lines_are_skipped_and_counted(ledger: Ledger, runner: CliRunner, jsonl) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(cli, ["ingest", jsonl([*SETUP, "", purchase("P1")])])
    assert result.exit_code == 0, result.output
    assert ledger.log.size() == 6


def test_trace_cli_prints_tree_and_json(ledger: Ledger, runner: CliRunner, jsonl) -> None:  # type: ignore[no-untyped-def]
    runner.invoke(cli, ["ingest", jsonl([*SETUP, purchase("P1")])])
    tree = runner.invoke(cli, ["trace", "P1", "--backward"])
    assert tree.exit_code == 0, tree.output
    assert tree.stdout.splitlines()[0] == "parcel P1"
    assert "site S-AKW" in tree.stdout
    assert "parcel.purchased by buyer-a on 2008-03-14" in tree.stdout
    assert "2.50 ct" in tree.stdout
    as_json = json.loads(runner.invoke(cli, ["trace", "P1", "--json"]).stdout)
    assert as_json["direction"] == "backward"
    assert {"type": "site", "id": "S-AKW"} in as_json["nodes"]
    missing = runner.invoke(cli, ["trace", "NOPE"])
    assert missing.exit_code == 2 and "NOPE" in missing.stderr


def test_rebuild_cli_reports_the_same_digest(ledger: Ledger, runner: CliRunner, jsonl) -> None:  # type: ignore[no-untyped-def]
    runner.invoke(cli, ["ingest", jsonl([*SETUP, purchase("P1")])])
    digest = ledger.digest()
    result = runner.invoke(cli, ["rebuild"])
    assert result.exit_code == 0 and digest in result.stdout


def test_helper_process_checks_payloads_ahead() -> None:
    """What the helper hands back: canonical payload text, or the refusal kept for the
    moment the line is written; a line that cannot be read is refused at once."""
    from ledger.errors import InputError
    from ledger.recorder.prepare import prepared_events
    lines = [purchase("P1", carats=2.5), "", purchase("P2", carats=-3), "{not json"]
    got = list(prepared_events(enumerate(lines, 1), 0))
    assert [n for n, _, _ in got] == [1, 2, 3, 4]
    (_, ok, _), (_, blank, _), (_, bad, _), (_, unread, error) = got
    assert ok is not None and isinstance(ok.checked, str) and '"carats":2.5' in ok.checked
    assert blank is None
    assert bad is not None and isinstance(bad.checked, InputError)
    assert bad.checked.rule == "SCHEMA" and bad.checked.data["field"] == "payload.carats"
    assert unread is None and error is not None and error.rule == "SCHEMA"
