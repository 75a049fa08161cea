"""Verification of the whole log from the auditor's page (SPEC 6 `verify`), shown as it
goes (issue 19): it reads every entry, about 10 s for 300,000, so the page is streamed
and says how many entries have been checked out of how many, with no script and no
timed refresh (axe-core's ``meta-refresh`` rule counts a refresh every few seconds as a
critical barrier). A pasted checkpoint that is not in the form of one is the user's
input error, said line by line before anything runs. Both the problems with the pasted
text and the report's lines are :class:`ledger.errors.Said`: the page says them in its
language (``|say``), the CLI in English.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from ledger.db import log_head
from ledger.errors import InputError, Said
from ledger.i18n import N_
from ledger.log.checkpoint import pasted_problems
from ledger.log.verify import Report, verify_log
from ledger.recorder.events import Ledger

PASTED = Said.said(N_("the checkpoint you pasted"))  # what the report's problems call it


@dataclass(frozen=True)
class Progress:
    checked: int
    total: int

    @property
    def percent(self) -> int:
        return min(100, 100 * self.checked // self.total) if self.total else 100


def pasted(note: str) -> str | None:
    """The pasted checkpoint as the verifier takes it, or None when nothing was pasted;
    InputError listing each malformed line (``errors``, field ``checkpoint``)."""
    text = note.replace("\r\n", "\n").strip()
    if not text:
        return None
    problems = pasted_problems(text + "\n")
    if problems:
        raise InputError.said(
            N_("this text is not a signed checkpoint as the log writes them."),
            lead="checkpoint: ", field="checkpoint",
            errors=[{"field": "checkpoint", "line": number, "message": why}
                    for number, why in problems])
    return text + "\n"


def run(book: Ledger, note: str | None) -> Iterator[Progress | Report]:
    """Verification in a thread of this process: its progress as the entries stream by
    (every ``ledger.log.verify.STREAM_BATCH`` entries), then its report."""
    with book.engine.connect() as conn:
        head = conn.execute(sa.select(log_head.c.size)).first()
    total = int(head[0]) if head else 0
    found: queue.SimpleQueue[int | Report | BaseException] = queue.SimpleQueue()

    def work() -> None:
        try:
            found.put(verify_log(book.engine, book.log.verifier, note, progress=found.put,
                                 earlier_name=PASTED))
        except BaseException as exc:  # handed to the request thread, which raises it
            found.put(exc)

    threading.Thread(target=work, name="alluvial-verify", daemon=True).start()
    checked = 0
    while True:
        item = found.get()
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Report):
            yield item
            return
        checked += item
        yield Progress(checked, total)
