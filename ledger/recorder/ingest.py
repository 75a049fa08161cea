"""Reading an ingest file: one event per line, all or nothing (SPEC 6 `ingest`).

Lines are read and written in chunks, so memory does not grow with the file;
each chunk's references are prefetched in a few queries. Without ``batch`` the
whole file is one transaction; with it, every ``batch`` lines commit together.
"""

from __future__ import annotations

import gc
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Literal

from ledger.custody.envelope import Event
from ledger.errors import LedgerError
from ledger.log.store import ADMIN
from ledger.recorder.events import Ledger
from ledger.recorder.prepare import Prepared, prepared_events

CHUNK = 1000
# Lines read in this process before a helper process starts reading ahead: small files
# never start one.
HELPER_AFTER = 20_000
# Allocations between two passes of the cyclic garbage collector while ingesting (Python's
# default: 700). An event's objects are freed by reference counting, yet the default
# passes, over a heap that holds the chunk's state and the helper's answers, took 15% of
# the writer's time at 1,000,000 events (benchmarks/ingest.py: 12,400 -> 14,600 events/s).
GC_EVERY = 50_000


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


@dataclass(frozen=True)
class Archive:
    """SPEC 6 `ingest --archive`: records kept elsewhere, migrated as they are."""

    reason: str
    file_sha256: str
    lines: int

    def event(self, today: str) -> Event:
        return Event("archive.imported", ADMIN, {"reason": self.reason,
                                                 "file_sha256": self.file_sha256,
                                                 "lines": self.lines, "date": today})


def archive_of(path: Path, reason: str) -> Archive:
    """The archive record of a file: its SHA-256 and line count, read in one pass."""
    digest, count, last = hashlib.sha256(), 0, b"\n"
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
            count += block.count(b"\n")
            last = block[-1:]
    return Archive(reason, digest.hexdigest(), count + (last != b"\n"))


def ingest(
    ledger: Ledger,
    lines: Iterable[str],
    batch: int | None = None,
    progress: Callable[[int], None] | None = None,
    helper_after: int | Literal["auto"] | None = "auto",
    archive: Archive | None = None,
) -> IngestReport:
    """Write every line's event; raise :class:`LineError` for the first refused line.

    With ``archive``, an ``archive.imported`` entry comes first, in the transaction of the
    first line, and no line raises LATE_ENTRY (SPEC 5, 6).

    After ``helper_after`` lines (None: never; "auto": :data:`HELPER_AFTER`), a second
    process reads and checks the lines ahead of the writer (:mod:`ledger.recorder.prepare`) when
    the machine has two cores.
    """
    report = IngestReport()
    if helper_after == "auto":
        helper_after = HELPER_AFTER
    if (os.cpu_count() or 1) < 2:
        helper_after = None
    with _fewer_collections():
        return _ingest(ledger, lines, batch, progress, helper_after, report, archive)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Collect cyclic garbage every :data:`GC_EVERY` allocations (the helper process,
    forked inside, too); the default thresholds come back afterwards."""
    before = gc.get_threshold()
    gc.set_threshold(GC_EVERY, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _ingest(ledger: Ledger, lines: Iterable[str], batch: int | None,
            progress: Callable[[int], None] | None, helper_after: int | None,
            report: IngestReport, archive: Archive | None = None) -> IngestReport:
    prepared = prepared_events(enumerate(lines, 1), helper_after)
    unit_start = 1
    try:
        while True:
            unit = prepared if batch is None else islice(prepared, batch)
            try:
                done = _write_unit(ledger, unit, report, progress, archive,
                                   first=unit_start == 1)
            except LineError as exc:
                exc.resume_from = unit_start if batch is not None else None
                raise
            report.committed_through = report.lines
            unit_start = report.lines + 1
            if batch is None or done < batch:
                return report
    finally:
        prepared.close()


def _write_unit(
    ledger: Ledger,
    unit: Iterable[Prepared],
    report: IngestReport,
    progress: Callable[[int], None] | None,
    archive: Archive | None = None,
    first: bool = False,
) -> int:
    """One transaction over the given lines; returns how many lines it read."""
    count = 0
    written = repeated = flags = 0
    lines = iter(unit)
    with ledger.session(bulk=True) as session:
        if archive is not None:
            session.archive = True
            if first:
                session.write(archive.event(session.today()))
        while True:
            chunk = list(islice(lines, CHUNK))
            if not chunk:
                break
            session.prefetch([ev for _, ev, _ in chunk if ev is not None])
            for number, event, error in chunk:
                count += 1
                if error is not None:
                    raise LineError(number, error, None) from error
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
