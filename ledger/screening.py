"""Screening: red flags raised on what is written (SPEC 5).

Screening never refuses: what happened is recorded, with its flags. Each rule is
a small object with one method, ``check(state, kind, payload, seq)``, returning
the flags it raises; adding a red flag is adding a rule to :data:`DEFAULT_RULES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ledger.state import State


@dataclass(frozen=True)
class Flag:
    """A flag to raise: written by `system` as a flag.raised entry."""

    code: str
    subject_type: str
    subject_id: str
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)


class Rule(Protocol):
    def check(self, state: State, kind: str, payload: dict[str, Any], seq: int) -> list[Flag]:
        ...


class UnregisteredSite:
    """UNREGISTERED_SITE: a purchase names a site that is unknown, or suspended on its date."""

    code = "UNREGISTERED_SITE"

    def check(self, state: State, kind: str, payload: dict[str, Any], seq: int) -> list[Flag]:
        if kind != "parcel.purchased":
            return []
        site_id, day = payload["site_id"], payload["date"]
        site = state.get("sites", site_id)
        if site is None:
            why = f"site '{site_id}' is not registered"
        elif site["suspended_on"] and site["suspended_on"] <= day:
            why = f"site '{site_id}' was suspended on {site['suspended_on']}"
        else:
            return []
        return [Flag(self.code, "parcel", payload["parcel_id"],
                     f"Bought on {day} at a site that cannot sell: {why}.",
                     {"seq": seq, "site_id": site_id})]


DEFAULT_RULES: tuple[Rule, ...] = (UnregisteredSite(),)
