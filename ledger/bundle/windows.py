"""Licence windows and zone versions for the offline replay: which days a licence is valid
and which version of a zone is in force, computed as the ledger computes them.

The ledger's own code (``ledger.custody.licences``, ``ledger.geo.zones.zone_entries``)
reads projection rows and numpy arrays; this module is the same arithmetic over plain
dicts and ISO date strings, standard library only, so the bundle verifier can be vendored
alone. ``tests/test_bundle.py`` checks that both give the same days on random histories.

* A licence (an actor's or a zone's) is a list of windows: the one it was registered
  with, then one per ``licence.renewed``. A revocation counts inside a window from its
  date on, unless it is dated before the window's first day (SPEC 4 ``licence.renewed``).
* A zone has versions (SPEC 5): the registration, then each ``zone.amended`` from its
  ``effective`` day on (a legacy amendment without ``effective`` from the start). A
  version keeps the fields it does not set from the version before it in effective
  order; of two versions effective the same day the later entry wins. Each version,
  within each licence window, up to a retirement, is one :class:`Span` of days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

NO_DAY = "0000-12-31"  # a zone retired without valid_to counts on no day (ledger.custody.state)
_COUNTRY_PREFIX = re.compile(r"([A-Z]{2})-")


@dataclass(frozen=True)
class Window:
    """Days ``start``..``end`` (inclusive; None open), cut from ``revoked`` on (None: never)."""

    start: str | None
    end: str | None
    revoked: str | None = None

    def valid_on(self, day: str) -> bool:
        return ((self.start is None or self.start <= day) and (self.end is None or day <= self.end)
                and (self.revoked is None or day < self.revoked))


def windows(start: str | None, end: str | None, renewals: list[tuple[str, str | None]],
            revocations: list[str]) -> list[Window]:
    """SPEC 4: the registered window, then one per renewal, each with the first revocation
    that counts inside it."""
    revoked = sorted(revocations)
    return [Window(a, b, next((r for r in revoked if a is None or r >= a), None))
            for a, b in [(start, end), *renewals]]


def valid_on(spans: list[Window], day: str) -> bool:
    return any(w.valid_on(day) for w in spans)


@dataclass(frozen=True)
class Span:
    """One version of a zone within one licence window: its geometry on its own days."""

    geometry: dict[str, Any]
    days: Window


@dataclass
class ZoneHistory:
    """A zone as the bundle's entries describe it, folded in seq order."""

    zone_type: str
    licence_no: str | None
    category: str | None
    country: str | None
    # (effective, seq, changes): the registration first, effective None
    versions: list[tuple[str | None, int, dict[str, Any]]] = field(default_factory=list)
    renewals: list[tuple[str, str | None]] = field(default_factory=list)
    revocations: list[str] = field(default_factory=list)
    retired_to: str | None = None

    @classmethod
    def registered(cls, p: dict[str, Any], seq: int) -> ZoneHistory:
        zone = cls(p["zone_type"], p.get("licence_no"), p.get("category"), zone_country(p))
        zone.versions.append((None, seq, {"geometry": p["geometry"], "valid_from":
                                          p["valid_from"], "valid_to": p.get("valid_to")}))
        return zone

    def amended(self, p: dict[str, Any], seq: int) -> None:
        changes: dict[str, Any] = {k: p[k] for k in ("geometry", "valid_from", "valid_to")
                                   if k in p}
        self.versions.append((p.get("effective"), seq, changes))

    def spans(self) -> list[Span]:
        """Every version within every window, each valid on its own days (SPEC 5)."""
        kept = sorted(self.versions, key=lambda v: (v[0] or "", v[1]))
        found: list[Span] = []
        state: dict[str, Any] = {}
        for i, (effective, _, changes) in enumerate(kept):
            state.update(changes)
            following = kept[i + 1][0] if i + 1 < len(kept) else None
            if i + 1 < len(kept) and (following or "") <= (effective or ""):
                continue  # a later version from the same day: this one counts on no day
            last = None if following is None else _day_before(following)
            for w in windows(state["valid_from"], state["valid_to"], self.renewals,
                             self.revocations):
                start = max(filter(None, (effective, w.start)), default=None)
                end = min(filter(None, (last, w.end, self.retired_to)), default=None)
                if start is not None and end is not None and start > end:
                    continue
                found.append(Span(state["geometry"], Window(start, end, w.revoked)))
        return found


def zone_country(p: dict[str, Any]) -> str | None:
    """SPEC 4: a licence zone's country, or the alpha-2 code its licence_no begins with."""
    if p.get("zone_type") != "licence":
        return None
    if p.get("country"):
        return str(p["country"])
    found = _COUNTRY_PREFIX.match(p.get("licence_no") or "")
    return found.group(1) if found else None


def _day_before(day: str) -> str:
    d = date.fromisoformat(day)
    return NO_DAY if d == date.min else (d - timedelta(days=1)).isoformat()
