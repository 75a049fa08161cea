"""Reading an ingest file: one event per line, all or nothing (SPEC 6 `ingest`).

Lines are read and written in chunks, so memory does not grow with the file;
each chunk's references are prefetched in a few queries. Without ``batch`` the
whole file is one transaction; with it, every ``batch`` lines commit together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from ledger.canonical import parse
from ledger.errors import LedgerError
from ledger.events import Event, Ledger

CHUNK = 1000


class LineError(LedgerError):
    """A refused line: the rule, the sentence, the line number and where to resume."""

    def __init__(self, line: int, error: LedgerError, resume_from: int | None) -> None:
        super().__init__(f"line {line}: {error.rule}: {error}", rule=error.rule,
                         line=line, **error.data)
        self.line = line
        self.error = error
        self.resume_from = resume_from


@dataclass
class IngestReport:
    lines: int = 0
    written: int = 0
    repeated: int = 0
    flags: int = 0
    committed_through: int = 0


def _events(numbered: Iterable[tuple[int, str]]) -> Iterator[tuple[int, Event | None]]:
    for number, text in numbered:
        if not text.strip():
            yield number, None
            continue
        try:
            yield number, Event.from_json(parse(text))
        except LedgerError as exc:
            raise LineError(number, exc, None) from exc


def ingest(
    ledger: Ledger,
    lines: Iterable[str],
    batch: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Write every line's event; raise :class:`LineError` for the first refused line."""
    report = IngestReport()
    numbered = enumerate(lines, 1)
    unit_start = 1
    while True:
        unit = numbered if batch is None else islice(numbered, batch)
        try:
            done = _write_unit(ledger, unit, report, progress)
        except LineError as exc:
            exc.resume_from = unit_start if batch is not None else None
            raise
        report.committed_through = report.lines
        unit_start = report.lines + 1
        if batch is None or done < batch:
            return report


def _write_unit(
    ledger: Ledger,
    unit: Iterable[tuple[int, str]],
    report: IngestReport,
    progress: Callable[[int], None] | None,
) -> int:
    """One transaction over the given lines; returns how many lines it read."""
    count = 0
    written = repeated = flags = 0
    events = _events(unit)
    with ledger.session() as session:
        while True:
            chunk = list(islice(events, CHUNK))
            if not chunk:
                break
            session.prefetch([ev for _, ev in chunk if ev is not None])
            for number, event in chunk:
                count += 1
                if event is None:
                    continue
                try:
                    result = session.write(event)
                except LedgerError as exc:
                    raise LineError(number, exc, None) from exc
                written += result.created
                repeated += not result.created
                flags += len(result.flags)
            # Write the chunk's projections back so memory does not grow with the file.
            session.state.flush()
            if progress is not None:
                progress(len(chunk))
    report.lines += count
    report.written += written
    report.repeated += repeated
    report.flags += flags
    return count
