"""Committing a group of writes in one transaction (the part of group commit that both
the web process and the writer process run; the grouping is ``webui.writer``'s).

Each write may carry the digest of the bearer token it was made with: the group's
transaction reads which of its tokens still count (SPEC 6: unrevoked, unexpired, of an
enabled user who exists; ``ledger.accounts.live_tokens``), and refuses (401) the writes
of the others, whatever the web process remembered of them. An event the ledger refuses
writes nothing, so the others of its group go on; anything else that goes wrong rolls
the whole group back, and each of its events is then written alone, so each request
gets its own answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.accounts import Unauthenticated, live_tokens
from ledger.errors import LedgerError
from ledger.recorder.events import Event, Ledger, WriteResult


@dataclass
class Pending:
    """One write of a group, and then its outcome."""

    event: Event
    token: str | None = None  # the digest of the token the write was made with
    result: WriteResult | None = None
    error: BaseException | None = None
    done: bool = False


class _Partial(Exception):
    """A refusal after part of an event was appended: the group must roll back."""


def commit(ledger: Ledger, group: list[Pending]) -> None:
    """Write the group together, or each alone should that fail; every member is then done."""
    try:
        try:
            commit_together(ledger, group)
        except Exception:
            for pending in group:
                commit_alone(ledger, pending)
    finally:
        for pending in group:
            pending.done = True


def commit_together(ledger: Ledger, group: list[Pending]) -> None:
    """Write the group in one transaction; each member holds its result or refusal."""
    _write(ledger, group)


def _write(ledger: Ledger, group: list[Pending]) -> None:
    results: list[WriteResult | LedgerError] = []
    with ledger.session() as session:
        live = live_tokens(session.appender.conn, {p.token for p in group if p.token})
        session.prefetch([pending.event for pending in group])  # a few queries, not many
        for pending in group:
            if pending.token is not None and pending.token not in live:
                results.append(_revoked())
                continue
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


def commit_alone(ledger: Ledger, pending: Pending) -> None:
    """Write one event in a transaction of its own, its token checked inside it too."""
    pending.result = pending.error = None
    try:
        _write(ledger, [pending])
    except _Partial as exc:
        pending.error = exc.__cause__
    except Exception as exc:
        pending.error = exc


def _revoked() -> Unauthenticated:
    return Unauthenticated("Authorization: the bearer token is not valid.")
