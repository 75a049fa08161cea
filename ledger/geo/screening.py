"""Screening: red flags raised on what is written, as of its date (SPEC 5).

Screening never refuses: what happened is recorded, with its flags. Each rule is
a small object with one method, ``check(subject) -> flags``; adding a red flag is
adding a rule to :data:`DEFAULT_RULES`. Sites are screened at registration,
purchases on their dig point (else their site's location), on the payload's date,
against the map as it stood that day.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import shapely
from shapely.geometry.base import BaseGeometry

from ledger.custody import licences
from ledger.custody.state import Row, State
from ledger.geo.zones import Zone, ZoneSet


@dataclass(frozen=True)
class Flag:
    """A flag to raise: written by `system` as a flag.raised entry."""

    code: str
    subject_type: str
    subject_id: str
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Subject:
    """What a rule screens: a site at registration, or a purchase, on ``day``."""

    kind: str
    payload: dict[str, Any]
    seq: int
    state: State
    zones: Callable[[], ZoneSet]
    site: Row | None = None
    geometry: BaseGeometry | None = None
    xy: tuple[float, float] | None = None  # a point, screened without a shapely object
    where: str = ""
    # What rules keep for the rest of their write session (ledger.geo.patterns).
    memory: dict[str, Any] = field(default_factory=dict)

    @property
    def day(self) -> str:
        return str(self.payload["date"])

    @property
    def licence_no(self) -> str | None:
        if self.kind == "site.registered":
            return str(self.payload["licence_no"])
        return None if self.site is None else str(self.site["licence_no"])

    @property
    def located(self) -> bool:
        return self.xy is not None or self.geometry is not None

    def licences_covering(self, licence_no: str) -> list[Zone]:
        if self.xy is not None:
            return self.zones().licences_covering_xy(self.xy, licence_no, self.day)
        assert self.geometry is not None
        return self.zones().licences_covering(self.geometry, licence_no, self.day)

    def risks_touching(self) -> list[Zone]:
        if self.xy is not None:
            return self.zones().risks_touching_xy(self.xy, self.day)
        assert self.geometry is not None
        return self.zones().risks_touching(self.geometry, self.day)

    def flag(self, code: str, detail: str, **evidence: Any) -> Flag:
        if self.kind == "site.registered":
            kind, ident = "site", self.payload["site_id"]
        else:
            kind, ident = "parcel", self.payload["parcel_id"]
        return Flag(code, kind, ident, detail, {"seq": self.seq, **evidence})


def subject_for(kind: str, payload: dict[str, Any], seq: int, state: State,
                zones: Callable[[], ZoneSet],
                memory: dict[str, Any] | None = None) -> Subject | None:
    """The screening subject of an entry, or None for kinds that are not screened;
    ``memory``: the write session's, for rules that keep something between writes."""
    if kind == "site.registered":
        return Subject(kind, payload, seq, state, zones,
                       geometry=shapely.geometry.shape(payload["location"]),
                       where=f"site {payload['site_id']}")
    if kind != "parcel.purchased":
        return None
    site = state.get("sites", payload["site_id"])
    if site is not None and site["suspended_on"] and site["suspended_on"] <= payload["date"]:
        site = None
    subject = Subject(kind, payload, seq, state, zones, site=site,
                      memory={} if memory is None else memory)
    if payload.get("dig_location"):
        subject.xy = point_of(payload["dig_location"])
        subject.where = "dig point {:.4f}, {:.4f}".format(*subject.xy)
    elif site is not None:
        location = json.loads(site["location"])
        if location["type"] == "Point":
            subject.xy = point_of(location)
        else:
            subject.geometry = shapely.geometry.shape(location)
        subject.where = f"site {site['site_id']}"
    return subject


def point_of(geometry: dict[str, Any]) -> tuple[float, float]:
    """A GeoJSON Point's longitude and latitude (an altitude is ignored)."""
    x, y = geometry["coordinates"][:2]
    return (x, y)


def purchase_points(payloads: Iterable[dict[str, Any]],
                    site_location: Callable[[Any], str | None]) -> list[tuple[float, float]]:
    """The points the purchases among ``payloads`` are screened on: the dig point, else
    the site's location when it is a point (to prime the zone trees with).
    ``site_location``: a site_id's location GeoJSON text, or None when not at hand."""
    points = []
    for payload in payloads:
        dig = payload.get("dig_location")
        if dig is None:
            text = site_location(payload.get("site_id"))
            dig = json.loads(text) if text is not None else None
        xy = None
        if isinstance(dig, dict) and dig.get("type") == "Point":
            xy = dig.get("coordinates")
        # Not validated yet: what is not a pair of numbers is left to the schema.
        if isinstance(xy, list) and len(xy) >= 2 and all(
                type(c) in (int, float) for c in xy[:2]):
            points.append((xy[0], xy[1]))
    return points


class Rule(Protocol):
    code: str

    def check(self, subject: Subject) -> list[Flag]: ...


class UnregisteredSite:
    """UNREGISTERED_SITE: a purchase names a site that is unknown, or suspended on its date."""

    code = "UNREGISTERED_SITE"

    def check(self, s: Subject) -> list[Flag]:
        if s.kind != "parcel.purchased" or s.site is not None:
            return []
        site_id = s.payload["site_id"]
        known = s.state.get("sites", site_id)
        why = (f"site {site_id} is not registered" if known is None
               else f"site {site_id} was suspended on {known['suspended_on']}")
        return [s.flag(self.code, f"Bought on {s.day} where no registered site can sell: {why}.",
                       site_id=site_id)]


class OutsideLicensedZone:
    """OUTSIDE_LICENSED_ZONE: no licence zone valid that day with the licence_no covers it."""

    code = "OUTSIDE_LICENSED_ZONE"

    def check(self, s: Subject) -> list[Flag]:
        licence_no = s.licence_no
        if not s.located or licence_no is None:
            return []
        if s.licences_covering(licence_no):
            return []
        return [s.flag(self.code, f"The {s.where} lies outside every zone of licence "
                       f"{licence_no} valid on {s.day}.", licence_no=licence_no)]


class InRiskArea:
    """IN_RISK_AREA: the point or site polygon touches a risk area valid that day."""

    code = "IN_RISK_AREA"

    def check(self, s: Subject) -> list[Flag]:
        if not s.located:
            return []
        hits = s.risks_touching()
        if not hits:
            return []
        names = ", ".join(z.describe() for z in hits)
        return [s.flag(self.code, f"The {s.where} lies in risk area {names} on {s.day}.",
                       zones=[z.zone_id for z in hits])]


class LicenceInvalid:
    """LICENCE_INVALID: the site's mining licence, or a registered seller's, is not valid."""

    code = "LICENCE_INVALID"

    def check(self, s: Subject) -> list[Flag]:
        reasons = []
        if s.licence_no is not None:
            why = s.zones().licence_status(s.licence_no, s.day)
            if why:
                reasons.append(f"the mining licence is not valid on {s.day}: {why}")
        seller = s.payload.get("seller")
        actor = s.state.get("actors", seller) if s.kind == "parcel.purchased" and seller else None
        if actor is not None and not actor["licence_no"]:
            reasons.append(f"the seller {seller} is a registered actor without a licence")
        elif actor is not None and not licences.valid_on(seller_licence(actor), s.day):
            reasons.append(f"the seller {seller}'s licence {actor['licence_no']} is not "
                           f"valid on {s.day}")
        if not reasons:
            return []
        return [s.flag(self.code, "; ".join(reasons).capitalize() + ".")]


def seller_licence(actor: Row) -> list[licences.Window]:
    return licences.windows(actor["licence_valid_from"], actor["licence_valid_to"],
                            actor["renewals"], actor["revocations"])


# -- LATE_ENTRY (SPEC 5): an event dated long before it was recorded ----------------------

# Kind -> the payload fields naming the days it claims effect from (the earliest counts).
LATE_DAYS_OF = {
    "actor.registered": ("date", "licence_valid_from"),
    "licence.revoked": ("date",),
    "licence.renewed": ("date", "valid_from"),
    "zone.registered": ("date", "valid_from"),
    "zone.amended": ("date", "effective"),
    "zone.retired": ("date", "valid_to"),
    "site.registered": ("date",),
    "parcel.purchased": ("date",),
}


def late_entry(kind: str, payload: dict[str, Any], seq: int, recorded: str,
               limit: int) -> Flag | None:
    """LATE_ENTRY when the event claims a day more than ``limit`` days before ``recorded``
    (its entry's ts day): a licence backdated, a purchase logged years on."""
    fields = LATE_DAYS_OF.get(kind)
    if fields is None:
        return None
    claimed = min(d for d in (payload.get(f) for f in fields) if isinstance(d, str))
    late = (date.fromisoformat(recorded) - date.fromisoformat(claimed)).days
    if late <= limit:
        return None
    if kind == "parcel.purchased":
        subject = ("parcel", payload["parcel_id"])
    elif kind == "site.registered":
        subject = ("site", payload["site_id"])
    elif payload.get("actor_id"):
        subject = ("actor", payload["actor_id"])
    else:
        subject = ("zone", payload["zone_id"])
    what = {"parcel": "Bought", "site": "Registered"}.get(subject[0], "Effective")
    return Flag("LATE_ENTRY", *subject,
                f"{what} on {claimed} but recorded on {recorded}, {late} days later (more than "
                f"the {limit} days ALLUVIAL_LATE_DAYS allows without an archive import).",
                {"seq": seq, "claimed": claimed, "recorded": recorded})


DEFAULT_RULES: tuple[Rule, ...] = (
    UnregisteredSite(), OutsideLicensedZone(), InRiskArea(), LicenceInvalid(),
)
