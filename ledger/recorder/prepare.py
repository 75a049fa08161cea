"""The per-line work of ingest that needs no ledger state, for a helper process.

Reading a line, checking its envelope and its payload's schema, and encoding the
payload's canonical text depend on the line alone; rules, hashing and projections
depend on every entry before it. A large ``ingest`` hands the first kind of work,
a chunk of lines at a time, to one other process (:func:`prepared_events`), so the
two run side by side on two cores. The results are exactly what the writing
process would have found: a line that does not parse is refused at that line, and
a payload that fails its schema is refused when it is written, after the event_id
check, as in :meth:`ledger.recorder.events.Session.write`.

This module imports no database, geometry or web code.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import chain, islice

from ledger.custody.envelope import Event
from ledger.custody.schema import validate_payload
from ledger.errors import LedgerError
from ledger.log.canonical import canonical_text, parse

Line = tuple[int, str]
# (line number, the event or None for a blank line, the error that refuses the line)
Prepared = tuple[int, Event | None, LedgerError | None]

CHUNK = 1000  # lines per hand-over
AHEAD = 4  # chunks handed over before the first comes back


def read_line(number: int, text: str) -> Prepared:
    """One line's event (payload not yet checked), or why the line cannot be read."""
    if not text.strip():
        return number, None, None
    try:
        return number, Event.from_json(parse(text)), None
    except LedgerError as exc:
        return number, None, exc


def check_event(event: Event) -> Event:
    """The event with its payload checked against its kind's schema and encoded: its
    canonical text, or the refusal the writer raises after the event_id check.

    Also what the web process does before an event crosses to the writer process
    (issue #15): a write is bounded and validated where it arrived.
    """
    try:
        validate_payload(event.kind, event.payload)
        checked: str | LedgerError = canonical_text(event.payload)
    except LedgerError as exc:
        checked = exc
    except (TypeError, ValueError):
        return event  # left to the writer, which meets it as it always does
    return Event(event.kind, event.actor, event.payload, event.event_id, checked)


def check_line(number: int, text: str) -> Prepared:
    """:func:`read_line`, then :func:`check_event`."""
    number, event, error = read_line(number, text)
    if event is None:
        return number, event, error
    return number, check_event(event), None


def _context() -> multiprocessing.context.BaseContext:
    """fork where there is one: the helper starts at once, with the schemas compiled, and
    never re-runs the caller's main module (as a spawned helper would, unguarded)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def check_lines(lines: list[Line]) -> list[Prepared]:
    """The helper process's task: one chunk of lines."""
    return [check_line(number, text) for number, text in lines]


def prepared_events(numbered: Iterable[Line],
                    helper_after: int | None) -> Generator[Prepared, None, None]:
    """Every line read, in order; after ``helper_after`` lines (None: never) the rest are
    read and checked by a helper process, ``AHEAD`` chunks ahead of the writer.

    Close the iterator when done with it early: that stops the helper.
    """
    numbered = iter(numbered)
    if helper_after is None:
        yield from (read_line(n, t) for n, t in numbered)
        return
    yield from (read_line(n, t) for n, t in islice(numbered, helper_after))
    first = next(numbered, None)
    if first is None:
        return
    rest = chain([first], numbered)
    chunks = iter(lambda: list(islice(rest, CHUNK)), [])
    pool = ProcessPoolExecutor(1, mp_context=_context())
    try:
        pending: deque[Future[list[Prepared]]] = deque(
            pool.submit(check_lines, chunk) for chunk in islice(chunks, AHEAD))
        while pending:
            done = pending.popleft().result()
            following = next(chunks, None)
            if following is not None:
                pending.append(pool.submit(check_lines, following))
            yield from done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
