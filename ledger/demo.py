"""The demo scenario: a West African trade on public facts, loaded into a fresh ledger.

The scenario's events (registrations, then a dozen years of trade) are ingested as
an archive (SPEC 6 `ingest --archive`: records kept elsewhere, so its old dates raise
no LATE_ENTRY), then each of the laundering ring's attempts to move its stones towards
an export is written on its own, to show every one refused with the flags named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ledger.errors import LedgerError
from ledger.log.canonical import parse
from ledger.recorder.events import Event, Ledger
from ledger.recorder.ingest import Archive, IngestReport, archive_of, ingest

SCENARIO = Path(__file__).resolve().parent.parent / "sample_data" / "scenario"
ARCHIVE_REASON = "paper registers and dealer books 2004-2016 (demo scenario)"


@dataclass
class DemoReport:
    ingested: IngestReport
    archive: Archive  # the archive.imported record of events.jsonl (SHA-256, lines)
    attempts: int = 0
    refusals: list[tuple[int, str, str]] = field(default_factory=list)


def load_scenario(
    ledger: Ledger,
    folder: Path = SCENARIO,
    progress: Callable[[int], None] | None = None,
) -> DemoReport:
    """Ingest the scenario, then try the laundering ring's exports one by one."""
    archive = archive_of(folder / "events.jsonl", ARCHIVE_REASON)
    with (folder / "events.jsonl").open(encoding="utf-8") as lines:
        report = DemoReport(ingest(ledger, lines, progress=progress, archive=archive), archive)
    with (folder / "laundering_exports.jsonl").open(encoding="utf-8") as attempts:
        for number, line in enumerate(attempts, 1):
            report.attempts += 1
            try:
                ledger.write(Event.from_json(parse(line)))
            except LedgerError as exc:
                report.refusals.append((number, exc.rule, str(exc)))
    return report
