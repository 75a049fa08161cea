"""Where to resume an ingest that stopped part-way (issue 15; SPEC 6 `ingest`).

An ``ingest --batch N`` that was killed leaves its committed batches in the log and says
nothing; run again on the same file, it is refused at line 1, whose event is already
there. Lines that carry an ``event_id`` need nothing: the same event sent again is written
once (SPEC 4), so the rerun resumes by itself. For lines without one, the log is compared
with the file's leading lines: line 1's event is looked up among the entries (same kind,
actor, payload text and event_id), and each following line must be the next entry after
it, passing over the flags the ledger raised itself (written by ``system``). Where the two
part is the line to resume from. The comparison is strict, so an entry another writer
appended between two batches ends the match early: the rerun from there is refused at its
first line again, and says again where to go on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ledger.custody.rules import SYSTEM
from ledger.db import driver_rows, entries
from ledger.errors import LedgerError
from ledger.log.canonical import canonical_text
from ledger.recorder.events import Ledger
from ledger.recorder.prepare import read_line


@dataclass(frozen=True)
class Written:
    """The file's lines ``1..last_line`` are the log's entries ``first_seq..last_seq``
    (with the ledger's own flags among them)."""

    last_line: int
    first_seq: int
    last_seq: int
    more: bool  # whether the file goes on after last_line

    @property
    def resume_from(self) -> int:
        return self.last_line + 1


def _key(number: int, text: str) -> tuple[str, str, str, str | None] | None:
    """(kind, actor, canonical payload text, event_id) of a line; None when it does not read."""
    _, event, error = read_line(number, text)
    if event is None or error is not None:
        return None
    try:
        return event.kind, event.actor, canonical_text(event.payload), event.event_id
    except (LedgerError, TypeError, ValueError):
        return None


def already_written(ledger: Ledger, lines: Iterable[str]) -> Written | None:
    """The leading lines of ``lines`` that an earlier ingest of them wrote, or None when
    line 1 (the first that is not blank) is not in the log."""
    numbered = ((n, t) for n, t in enumerate(lines, 1) if t.strip())
    first = next(numbered, None)
    key = None if first is None else _key(*first)
    if first is None or key is None:
        return None
    kind, actor, payload, event_id = key
    e = entries
    with ledger.engine.connect() as conn:
        found = conn.execute(
            e.select().with_only_columns(e.c.seq)
            .where(e.c.kind == kind, e.c.actor == actor, e.c.payload == payload,
                   e.c.event_id.is_(None) if event_id is None else e.c.event_id == event_id)
            .order_by(e.c.seq).limit(1)).scalar()
        if found is None:
            return None
        last_line, last_seq = first[0], int(found)
        rows = driver_rows(conn, f"SELECT seq, kind, actor, payload, event_id FROM {e.name} "
                                 "WHERE seq > ? AND actor <> ? ORDER BY seq",
                           (last_seq, SYSTEM), name="resume")
        try:
            for number, text in numbered:
                row = next(rows, None)
                if row is None or _key(number, text) != tuple(row[1:]):
                    return Written(last_line, int(found), last_seq, more=True)
                last_line, last_seq = number, int(row[0])
        finally:
            getattr(rows, "close", lambda: None)()  # the cursor, before the connection goes
    return Written(last_line, int(found), last_seq, more=False)
