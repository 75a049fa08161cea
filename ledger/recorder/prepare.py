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

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Generator, Iterable, Iterator
from itertools import chain, islice
from multiprocessing.connection import Connection

from ledger.custody.envelope import Event
from ledger.custody.schema import validate_payload
from ledger.errors import LedgerError
from ledger.log.canonical import canonical_text, parse

Line = tuple[int, str]
# (line number, the event or None for a blank line, the error that refuses the line)
Prepared = tuple[int, Event | None, LedgerError | None]

CHUNK = 1000  # lines per hand-over


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


def check_lines(lines: list[Line]) -> list[Prepared]:
    """The helper process's task: one chunk of lines."""
    return [check_line(number, text) for number, text in lines]


def prepared_events(numbered: Iterable[Line],
                    helper_after: int | None) -> Generator[Prepared, None, None]:
    """Every line read, in order; after ``helper_after`` lines (None: never) the rest are
    read and checked by a helper process, a few chunks ahead of the writer.

    Close the iterator when done with it early: that stops the helper.
    """
    numbered = iter(numbered)
    if helper_after is None or not hasattr(os, "fork"):
        yield from (read_line(n, t) for n, t in numbered)
        return
    yield from (read_line(n, t) for n, t in islice(numbered, helper_after))
    first = next(numbered, None)
    if first is None:
        return
    rest = chain([first], numbered)
    chunks = iter(lambda: list(islice(rest, CHUNK)), [])
    helper = _Helper.start()
    feeder = threading.Thread(target=helper.feed, args=(chunks,), name="ingest-feeder",
                              daemon=True)
    feeder.start()
    try:
        while (done := helper.receive()) is not None:
            yield from done
    finally:
        helper.stop(feeder)
    if helper.feed_error is not None:  # reading the input failed (after the lines before)
        raise helper.feed_error


class _Helper:
    """The helper process: forked, fed chunks of lines over one pipe, answering over another.

    Issue 15: it holds nothing of its parent's but the two pipes (every other descriptor
    inherited at fork, a database connection's socket among them, is pointed at /dev/null
    at once), so a killed ingest's transaction ends with it; and it dies with its parent:
    on Linux by PR_SET_PDEATHSIG, elsewhere when the pipe it reads from reaches its end.
    """

    def __init__(self, pid: int, to_helper: Connection, from_helper: Connection) -> None:
        self.pid, self.to_helper, self.from_helper = pid, to_helper, from_helper
        self.feed_error: BaseException | None = None

    @classmethod
    def start(cls) -> _Helper:
        down_r, down_w = os.pipe()  # chunks of lines, to the helper
        up_r, up_w = os.pipe()  # their results, back
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the helper
            code = 1
            try:
                _detach(keep=(down_r, up_w), parent=parent)
                _serve(Connection(down_r, writable=False), Connection(up_w, readable=False))
                code = 0
            finally:
                os._exit(code)
        os.close(down_r)
        os.close(up_w)
        return cls(pid, Connection(down_w, readable=False), Connection(up_r, writable=False))

    def feed(self, chunks: Iterator[list[Line]]) -> None:
        """(In a thread of the writing process.) Send every chunk, then the end; the pipe's
        capacity keeps the helper only a few chunks ahead."""
        try:
            for chunk in chunks:
                self.to_helper.send(chunk)
            self.to_helper.send(None)
        except (BrokenPipeError, OSError):
            pass  # the helper was stopped (the writer is done early) or died: receive says so
        except BaseException as exc:  # reading the input failed: the writer raises it
            self.feed_error = exc
            with contextlib.suppress(OSError):
                self.to_helper.send(None)

    def receive(self) -> list[Prepared] | None:
        """The next chunk's results, in order; None after the last."""
        try:
            answer = self.from_helper.recv()
        except EOFError:
            if self.feed_error is not None:
                raise self.feed_error from None
            raise LedgerError("ingest: the helper process that reads the lines ahead "
                              "stopped unexpectedly; run ingest again.", rule="INGEST") from None
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]

    def stop(self, feeder: threading.Thread) -> None:
        """End the helper (at once if it is still working), reap it, and let the feeder
        finish: a send of it fails now that the helper's end of the pipe is gone."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        self.from_helper.close()
        feeder.join(timeout=1.0)
        if not feeder.is_alive():  # else it waits on input that never ends (a pipe): left be
            self.to_helper.close()


def _detach(keep: tuple[int, ...], parent: int) -> None:
    """In the helper, at once: die with the parent, leave Ctrl-C to it, and let go of every
    descriptor inherited but ``keep`` and the standard streams."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    null = os.open(os.devnull, os.O_RDWR)
    # Pointed at /dev/null, not closed: objects of the parent's that still name a descriptor
    # (a pooled connection) can never reach a file the helper opens later under that number.
    for fd in _open_descriptors():
        if fd > 2 and fd != null and fd not in keep:
            with contextlib.suppress(OSError):
                os.dup2(null, fd)


def _open_descriptors() -> list[int]:
    for where in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return [int(name) for name in os.listdir(where)]
    return list(range(3, 1024))


def _serve(requests: Connection, answers: Connection) -> None:
    """The helper's loop: a chunk in, its results out, until the end or the pipe's end."""
    while True:
        try:
            chunk = requests.recv()
        except EOFError:
            return  # the writing process is gone
        if chunk is None:
            answers.send(None)
            return
        try:
            answer: list[Prepared] | BaseException = check_lines(chunk)
        except Exception as exc:  # handed to the writer, which raises it
            answer = exc
        answers.send(answer)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
