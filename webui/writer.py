"""Group commit: the writes of concurrent requests share one transaction and one
checkpoint (SPEC 3: "a new checkpoint at least after every write request").

Each request queues its event and waits. When no group is being written, one waiting
request thread becomes the leader: it takes every event queued by then and writes
them, in arrival order, in one ``Ledger.session()``: the rules judge each event
against all before it, exactly as one after another, and one signed checkpoint
covers the group. Every request is answered only after that transaction commits;
the requests of a group are woken together, and the next leader is one whose event
came too late for it. Before taking its group, the leader waits up to ``linger``
seconds while more writes keep arriving, so that a busy server commits fewer, larger
groups. An event the ledger refuses writes nothing, so the others of its group go
on; anything else that goes wrong rolls the whole group back, and each of its events
is then written alone, so each request gets its own answer (:mod:`webui.group_commit`).

A write may carry the digest of the bearer token it was made with: the group's
transaction reads which of its tokens still exist, and refuses (401) the writes of a
token deleted meanwhile, so that the request itself may take its principal from
memory (webui.auth.TokenCache).

`alluvial serve` commits the groups in a writer process of their own
(:mod:`webui.writer_process`), so that the web process's interpreter lock is free
for other requests meanwhile; the groups are formed here all the same.

This is the only concurrency the web layer adds; the rules and the log are the
ledger's. Two events with one event_id never share a group, so a retry racing its
original is answered as a repeat with the original's flags.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from ledger.recorder.events import Event, Ledger, WriteResult
from webui import group_commit
from webui.group_commit import Pending
from webui.writer_process import WriterProcess


class GroupWriter:
    """Writes events for concurrent callers, committing them in groups."""

    def __init__(self, ledger: Ledger, max_group: int = 128, linger: float = 0.0,
                 process: WriterProcess | None = None) -> None:
        self.ledger = ledger
        self.max_group = max_group
        self.linger = linger
        # Where the groups are committed: here, or in a writer process of their own.
        self.process = process
        self._queue: deque[Pending] = deque()
        self._queue_lock = threading.Lock()
        # Guards _leading and the done flags; waiters sleep on it until their group commits.
        self._turn = threading.Condition(self._queue_lock)
        self._leading = False
        self._arrived = threading.Condition(self._queue_lock)  # wakes a lingering leader

    def write(self, event: Event, token: str | None = None) -> WriteResult:
        """Write one event (or find it again by event_id); raises the ledger's refusal.

        ``token``: the digest of the bearer token the write was made with, checked in
        the write's own transaction (:class:`Unauthenticated` once it is deleted).
        """
        pending = Pending(event, token)
        with self._turn:
            self._queue.append(pending)
            self._arrived.notify()
        while True:
            with self._turn:
                # A finished request leaves at once: it never waits for the next group.
                while not pending.done and self._leading:
                    self._turn.wait()
                if pending.done:
                    break
                self._leading = True
            try:
                self._commit(self._take())
            finally:
                with self._turn:
                    self._leading = False
                    self._turn.notify_all()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def close(self) -> None:
        """Stop the writer process, if the groups are committed in one."""
        if self.process is not None:
            self.process.close()

    def _gather(self) -> None:
        """Wait up to ``linger`` seconds while more writes keep arriving: the wait ends
        when none has arrived for a quarter of ``linger`` (woken by each arrival, not
        by polling)."""
        deadline = time.monotonic() + self.linger
        with self._turn:
            while len(self._queue) < self.max_group:
                left = deadline - time.monotonic()
                if left <= 0 or not self._arrived.wait(min(self.linger / 4, left)):
                    return

    def _take(self) -> list[Pending]:
        if self.linger:
            self._gather()
        group: list[Pending] = []
        later: list[Pending] = []
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

    def _commit(self, group: list[Pending]) -> None:
        """Write the group; each member then holds its result or its error, and is done."""
        if self.process is None:
            group_commit.commit(self.ledger, group)
            return
        try:
            self.process.commit(group)
        finally:
            for pending in group:
                pending.done = True
