"""Group commit: the writes of concurrent requests share one transaction and one
checkpoint (SPEC 3: "a new checkpoint at least after every write request").

Each request queues its event; whichever request thread next holds the commit lock
takes every event queued by then and writes them, in arrival order, in one
``Ledger.session()``: the rules judge each event against all before it, exactly as
one after another, and one signed checkpoint covers the group. Every request is
answered only after that transaction commits. Before taking its group, the committing
thread waits up to ``linger`` seconds while more writes keep arriving, so that a
busy server commits fewer, larger groups. An event the ledger refuses writes
nothing, so the others of its group go on; anything else that goes wrong rolls the
whole group back, and each of its events is then written alone, so each request
gets its own answer.

This is the only concurrency the web layer adds; the rules and the log are the
ledger's. Two events with one event_id never share a group, so a retry racing its
original is answered as a repeat with the original's flags.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from ledger.errors import LedgerError
from ledger.events import Event, Ledger, WriteResult


@dataclass
class _Pending:
    event: Event
    result: WriteResult | None = None
    error: BaseException | None = None
    done: bool = False


class _Partial(Exception):
    """A refusal after part of an event was appended: the group must roll back."""


class GroupWriter:
    """Writes events for concurrent callers, committing them in groups."""

    def __init__(self, ledger: Ledger, max_group: int = 128, linger: float = 0.0) -> None:
        self.ledger = ledger
        self.max_group = max_group
        self.linger = linger
        self._queue: deque[_Pending] = deque()
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()

    def write(self, event: Event) -> WriteResult:
        """Write one event (or find it again by event_id); raises the ledger's refusal."""
        pending = _Pending(event)
        with self._queue_lock:
            self._queue.append(pending)
        while not pending.done:
            with self._commit_lock:
                if not pending.done:
                    self._commit(self._take())
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _gather(self) -> None:
        """Wait up to ``linger`` seconds while more requests keep arriving."""
        deadline = time.monotonic() + self.linger
        seen = len(self._queue)
        while seen < self.max_group and time.monotonic() < deadline:
            time.sleep(self.linger / 4)
            if len(self._queue) == seen:
                return
            seen = len(self._queue)

    def _take(self) -> list[_Pending]:
        if self.linger:
            self._gather()
        group: list[_Pending] = []
        later: list[_Pending] = []
        ids: set[str] = set()
        with self._queue_lock:
            while self._queue and len(group) < self.max_group:
                pending = self._queue.popleft()
                event_id = pending.event.event_id
                if event_id is not None and event_id in ids:
                    later.append(pending)
                    continue
                if event_id is not None:
                    ids.add(event_id)
                group.append(pending)
            self._queue.extendleft(reversed(later))
        return group

    def _commit(self, group: list[_Pending]) -> None:
        try:
            self._commit_together(group)
        except Exception:
            for pending in group:
                self._commit_alone(pending)
        finally:
            for pending in group:
                pending.done = True

    def _commit_together(self, group: list[_Pending]) -> None:
        results: list[WriteResult | LedgerError] = []
        with self.ledger.session() as session:
            session.prefetch([pending.event for pending in group])  # a few queries, not many
            for pending in group:
                size = session.appender.size
                try:
                    results.append(session.write(pending.event))
                except LedgerError as exc:
                    if session.appender.size != size:
                        raise _Partial from exc
                    results.append(exc)
        checkpoint = session.appender.checkpoint
        for pending, outcome in zip(group, results, strict=True):
            if isinstance(outcome, LedgerError):
                pending.error = outcome
            else:
                outcome.checkpoint = checkpoint
                pending.result = outcome

    def _commit_alone(self, pending: _Pending) -> None:
        pending.result = pending.error = None
        try:
            pending.result = self.ledger.write(pending.event)
        except Exception as exc:
            pending.error = exc
