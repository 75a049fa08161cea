"""A process of its own for the group commits of `alluvial serve`.

A group's transaction (rules, append, screening, signing, commit) is Python work
that would otherwise hold the web process's interpreter lock while every other
request waits, even a read of the checkpoint. :class:`WriterProcess` runs it in a
second process: the web process sends a group of events down a pipe, waits for the
answers without holding its lock, and goes on parsing and answering other requests
meanwhile. The writes, the rules and the order are exactly those of
:class:`webui.writer.GroupWriter`, which the writer process runs on its own ledger.

If the writer process dies, the writes of the group in flight are answered 503
(whether that group committed is not known, so the client retries with the same
event_id, which SPEC 4 makes safe), and so is every write for the next second; the
first write after that starts a new writer process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection

import sqlalchemy as sa

from ledger.config import Settings
from ledger.errors import LedgerError
from webui import group_commit
from webui.group_commit import Pending

log = logging.getLogger("alluvial.writer")

# A new writer process starts at most this often (seconds): one that dies at once, again
# and again (a bad configuration), costs the writes meanwhile a 503, not a new
# interpreter each.
RESTART_PAUSE = 1.0
# The folder holding the webui and ledger packages.
_HOME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WriterProcess:
    """The writer process of one app: commits the groups it is sent, one at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()  # one group in flight (GroupWriter has one leader)
        self._process: subprocess.Popen[bytes] | None = None
        self._pipe: Connection | None = None
        self._exitcode: int | None = None
        self._stopped_at = -RESTART_PAUSE
        self._start()

    def _start(self) -> None:
        """A fresh interpreter running :func:`main`, its end of a socket pair inherited.

        Not multiprocessing's spawn or fork: spawn runs the parent's main module again in
        the child (an unguarded script that makes the app would start writers without
        end), and fork copies a process that may run threads and hold connections by
        then. The settings go in the environment, so no password shows in `ps`.
        """
        ours, theirs = socket.socketpair()
        env = {**os.environ, "ALLUVIAL_DATABASE_URL": self.settings.database_url,
               "ALLUVIAL_LOG_KEY": str(self.settings.log_key_path),
               "ALLUVIAL_LOG_ORIGIN": self.settings.origin,
               "ALLUVIAL_LATE_DAYS": str(self.settings.late_days),
               # the code this process runs, installed or not
               "PYTHONPATH": os.pathsep.join(filter(None, [_HOME, os.environ.get("PYTHONPATH")]))}
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", "import sys; from webui.writer_process import main; "
                                       "main(int(sys.argv[1]))", str(theirs.fileno())],
                env=env, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self._pipe = Connection(ours.detach())

    def commit(self, group: list[Pending]) -> None:
        """Write the group in the writer process; each member then holds its result or
        its error (503 when the writer process died on the way)."""
        with self._lock:
            if self._pipe is None:
                if time.monotonic() - self._stopped_at < RESTART_PAUSE:
                    _lost(group, RuntimeError("the writer process is restarting"))
                    return
                self._start()
            assert self._pipe is not None
            try:
                self._pipe.send([(p.event, p.token) for p in group])
                answers = self._pipe.recv()
            except (EOFError, OSError) as exc:
                self._stopped()
                log.error("the writer process stopped (exit code %s); the %d writes in flight "
                          "were answered 503, and a new one starts in %.0f s",
                          self._exitcode, len(group), RESTART_PAUSE)
                _lost(group, exc)
                return
        for pending, (result, error) in zip(group, answers, strict=True):
            pending.result, pending.error = result, error

    def _stopped(self) -> None:
        """Forget a writer process that died; the next group starts another."""
        if self._pipe is not None:
            self._pipe.close()
        if self._process is not None:
            try:
                self._exitcode = self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # alive, yet its pipe is broken
                self._process.kill()
                self._exitcode = self._process.wait()
        self._process = self._pipe = None
        self._stopped_at = time.monotonic()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def close(self) -> None:
        with self._lock:
            if self._pipe is not None:
                with contextlib.suppress(OSError):  # already gone
                    self._pipe.send(None)
            self._stopped()


def _lost(group: list[Pending], why: BaseException) -> None:
    """Answer every write of the group 503 (retry): the writer process is gone."""
    for pending in group:
        pending.result = None
        pending.error = sa.exc.OperationalError(
            "group commit", None, RuntimeError(f"no writer process ({why!r})"))


def _portable(error: BaseException | None) -> BaseException | None:
    """An error that can cross the pipe and means the same on the other side: the
    ledger's refusals and SQLAlchemy's errors pickle as they are; anything else is an
    internal error there too (500), named by its type and message."""
    if error is None or isinstance(error, sa.exc.SQLAlchemyError | LedgerError):
        return error
    return RuntimeError(f"{type(error).__name__}: {error}")


def _serve(pipe: Connection, settings: Settings) -> None:
    """The writer process: commit each group received until told to stop or orphaned."""
    # Ctrl-C in a terminal reaches the whole process group: the web process stops this
    # one by closing the pipe, after its last group is answered.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from ledger.recorder.events import Ledger

    ledger = Ledger.open(settings)
    try:
        while True:
            try:
                items = pipe.recv()
            except EOFError:
                return
            if items is None:
                return
            group = [Pending(event, token) for event, token in items]
            group_commit.commit(ledger, group)
            try:
                pipe.send([(p.result, _portable(p.error)) for p in group])
            except OSError:
                return  # the web process is gone (stopped): nobody is waiting for answers
    finally:
        ledger.engine.dispose()


def main(fd: int) -> None:
    """The writer process's entry (:meth:`WriterProcess._start`): ``fd`` is its end of
    the socket pair; the settings are in the environment."""
    _serve(Connection(fd), Settings.from_env())
