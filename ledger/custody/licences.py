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


def why_not(spans: list[Window], day: str, licence_no: str | None) -> str | None:
    """Why the licence is not valid on ``day`` ("was revoked on ...", "expired on ..."), or
    None when it is."""
    if valid_on(spans, day):
        return None
    name = f"licence {licence_no}" if licence_no else "the licence"
    cut = [w for w in spans if w.holds(day)]
    if cut:
        return f"{name} was revoked on {min(w.revoked for w in cut if w.revoked)}"
    starts = [w.start for w in spans if w.start is not None]
    if len(starts) == len(spans) and day < min(starts):
        return f"{name} is not valid until {min(starts)}"
    ended = [w.end for w in spans if w.end is not None and w.end < day]
    return f"{name} expired on {max(ended)}" if ended else f"{name} is not valid on {day}"


def renewed(renewals: str | None, start: str, end: str | None) -> str:
    """The JSON text of ``renewals`` with one more window."""
    return json.dumps([*json.loads(renewals or "[]"), [start, end]], separators=(",", ":"))


def revoked(revocations: str | None, day: str) -> str:
    """The JSON text of ``revocations`` with one more date."""
    return json.dumps([*json.loads(revocations or "[]"), day], separators=(",", ":"))
