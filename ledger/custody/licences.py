"""When a licence is valid (SPEC 4 `licence.revoked`, `licence.renewed`; SPEC 5 LICENCE_INVALID).

A licence, an actor's or a licence zone's, is a list of windows: the one it was
registered with, then one per renewal. Revocations are dates. On day D the licence
is valid when some window holds D and no revocation counts inside that window on D:
a revocation counts inside a window from its date on, unless it is dated before the
window's first day ("a revocation dated before valid_from no longer counts inside it").

Windows and revocations are kept on the actor's or zone's projection row as JSON text
(``renewals``, ``revocations``), written only by the folds of those two kinds, so the
rules read a licence from the row they already hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ledger.i18n import N_


@dataclass(frozen=True)
class Window:
    """Days ``start``..``end`` (inclusive; None open), cut from ``revoked`` on (None: never)."""

    start: str | None
    end: str | None
    revoked: str | None = None

    def holds(self, day: str) -> bool:
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)

    def valid_on(self, day: str) -> bool:
        return self.holds(day) and (self.revoked is None or day < self.revoked)


def windows(start: str | None, end: str | None, renewals: str | None,
            revocations: str | None) -> list[Window]:
    """The windows of a licence registered for ``start``..``end``, with the renewals and
    revocations kept as JSON text on its row (None: none yet)."""
    return list(_windows(start, end, renewals, revocations))


@lru_cache(maxsize=4096)
def _windows(start: str | None, end: str | None, renewals: str | None,
             revocations: str | None) -> tuple[Window, ...]:
    """:func:`windows`, read once per distinct row: the LICENCE rule asks it of the writing
    actor on every trade, and parsing the JSON each time made ingest 10% slower (issue 16)."""
    spans = [(start, end)] + [(a, b) for a, b in json.loads(renewals or "[]")]
    revoked = sorted(json.loads(revocations or "[]"))
    return tuple(Window(a, b, _first_counting(revoked, a)) for a, b in spans)


def _first_counting(revoked: list[str], start: str | None) -> str | None:
    return next((r for r in revoked if start is None or r >= start), None)


def valid_on(spans: Iterable[Window], day: str) -> bool:
    return any(w.valid_on(day) for w in spans)


@dataclass(frozen=True)
class Why:
    """Why a licence is not valid on a day: ``str()`` gives the clause ("licence GH-1 expired
    on 2008-01-31"); ``template`` and ``values`` let the LICENCE rule make whole sentences
    of it in the pages' languages (ledger.custody.rules, issue 19)."""

    template: str
    values: dict[str, Any]

    def __str__(self) -> str:
        return self.template % self.values


# Each clause of why_not, as the whole sentence of a LICENCE refusal.
NO_TRADE = {
    "licence %(licence)s was revoked on %(on)s": N_(
        "licence %(licence)s was revoked on %(on)s ('%(actor)s'), so it may not trade on "
        "%(day)s."),
    "licence %(licence)s is not valid until %(on)s": N_(
        "licence %(licence)s is not valid until %(on)s ('%(actor)s'), so it may not trade on "
        "%(day)s."),
    "licence %(licence)s expired on %(on)s": N_(
        "licence %(licence)s expired on %(on)s ('%(actor)s'), so it may not trade on %(day)s."),
    "licence %(licence)s is not valid on %(on)s": N_(
        "licence %(licence)s is not valid on %(on)s ('%(actor)s'), so it may not trade on "
        "%(day)s."),
    "the licence was revoked on %(on)s": N_(
        "the licence was revoked on %(on)s ('%(actor)s'), so it may not trade on %(day)s."),
    "the licence is not valid until %(on)s": N_(
        "the licence is not valid until %(on)s ('%(actor)s'), so it may not trade on %(day)s."),
    "the licence expired on %(on)s": N_(
        "the licence expired on %(on)s ('%(actor)s'), so it may not trade on %(day)s."),
    "the licence is not valid on %(on)s": N_(
        "the licence is not valid on %(on)s ('%(actor)s'), so it may not trade on %(day)s."),
}


def why_not(spans: list[Window], day: str, licence_no: str | None) -> Why | None:
    """Why the licence is not valid on ``day`` ("was revoked on ...", "expired on ..."), or
    None when it is."""
    if valid_on(spans, day):
        return None
    name = "licence %(licence)s" if licence_no else "the licence"
    cut = [w for w in spans if w.holds(day)]
    starts = [w.start for w in spans if w.start is not None]
    ended = [w.end for w in spans if w.end is not None and w.end < day]
    if cut:
        what, on = "was revoked on", min(w.revoked for w in cut if w.revoked)
    elif len(starts) == len(spans) and day < min(starts):
        what, on = "is not valid until", min(starts)
    elif ended:
        what, on = "expired on", max(ended)
    else:
        what, on = "is not valid on", day
    values = {"on": on, **({"licence": licence_no} if licence_no else {})}
    return Why(f"{name} {what} %(on)s", values)


def renewed(renewals: str | None, start: str, end: str | None) -> str:
    """The JSON text of ``renewals`` with one more window."""
    return json.dumps([*json.loads(renewals or "[]"), [start, end]], separators=(",", ":"))


def revoked(revocations: str | None, day: str) -> str:
    """The JSON text of ``revocations`` with one more date."""
    return json.dumps([*json.loads(revocations or "[]"), day], separators=(",", ":"))
