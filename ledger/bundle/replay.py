"""The custody replay and the re-screening of origins: a bundle's entries, folded offline.

:mod:`ledger.bundle.verify` checks a provenance bundle's signatures and proofs, then
hands the entries whose proofs hold, in seq order, to :func:`replay`, which rebuilds
what the log's database would know from those entries alone and writes what it finds
into the verifier's report:

* ``custody``: the graph replayed, each entry judged on what the entries before it
  established, as the ledger judged it when writing: ROLE, JURISDICTION (an officer or
  authority acts within the country of its registration), LICENCE (a writing buyer's or
  exporter's licence windows, renewals and revocations), HOLDER, SPENT, DATE_ORDER
  (dates never going back along a parcel's path, no event dated after the day its entry
  was written), MASS, HOLD, CERTIFICATE (SPEC 4; a destination other than the exporter's
  country), and the certificate's ``certificate.validated`` (by an authority of the
  exporter's country, once, between issue and expiry) and ``import.confirmed`` (by one of
  the destination, once, between validation or issue and expiry; a confirmation that
  differs from the certificate must carry its CONFIRMATION_MISMATCH flag). A dropped entry
  shows as a graph that no longer balances. What a rule needs and the bundle does not hold
  (the registration of a zone or actor off the path) is not judged.
* ``screening`` of every purchase the export descends from (on its dig point, else its
  site's location, on its date, against the bundle's zones as they now stand, each in the
  version in force on that date and within its licence windows (:mod:`ledger.bundle.windows`):
  OUTSIDE_LICENSED_ZONE, IN_RISK_AREA, UNREGISTERED_SITE; SPEC 5). LICENCE_INVALID and
  LATE_ENTRY are not re-derived: the ledger's flags of those codes are in the bundle and
  count as any flag does. A dirty origin passes
  only when the bundle carries a flag of that code on that purchase that an auditor
  resolved. Geometry needs shapely, imported lazily: where it is not installed the
  geometric tests are skipped and the report says so plainly.
* ``validation`` and ``import`` facts: who validated the certificate (authority, officer,
  date, valuation), or that nobody did, which is reported and is not a failure (SPEC 7);
  and what the importing authority confirmed.
* ``flags``: any open flag in the bundle fails it (SPEC 1: no export holding tainted
  diamonds is certified).

Shares of origin: a purchase is an origin; the export's carats flow back through
transfers unchanged, from a split child wholly to its parent, and from a merge child to
its parents in proportion to their carats. Exact fractions, so shares sum to the
export's carats.

Standard library only (plus shapely, optionally, and :mod:`ledger.bundle.windows`), and no
import of the verifier: it reads entries and writes findings through the two small
protocols below.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Protocol

from ledger.bundle.windows import NO_DAY, Span, ZoneHistory, valid_on, windows, zone_country

SYSTEM = "system"
# The ids of the ledger's own flags, which no writer may take (as in ledger.custody.rules).
SYSTEM_FLAG_ID = re.compile(r"F-[0-9]")
MAP_KINDS = frozenset({"zone.registered", "zone.amended", "zone.retired", "licence.revoked",
                       "licence.renewed"})
LICENCE_KINDS = frozenset({"licence.revoked", "licence.renewed"})

# SPEC 4: who may write each kind (repeated from ledger.rules, which needs a database).
ROLES: dict[str, frozenset[str]] = {
    "actor.registered": frozenset({"officer", "admin"}),
    "licence.revoked": frozenset({"officer", "admin"}),
    "licence.renewed": frozenset({"officer", "admin"}),
    "zone.registered": frozenset({"officer", "admin"}),
    "zone.amended": frozenset({"officer", "admin"}),
    "zone.retired": frozenset({"officer", "admin"}),
    "site.registered": frozenset({"officer", "admin"}),
    "site.suspended": frozenset({"officer", "auditor"}),
    "parcel.purchased": frozenset({"buyer"}),
    "parcel.transferred": frozenset({"buyer", "exporter"}),
    "parcel.split": frozenset({"buyer", "exporter"}),
    "parcel.merged": frozenset({"buyer", "exporter"}),
    "export.declared": frozenset({"exporter"}),
    "certificate.validated": frozenset({"authority"}),
    "import.confirmed": frozenset({"authority", "auditor"}),
    "archive.imported": frozenset({"admin"}),
    "flag.raised": frozenset({"auditor"}),
    "flag.resolved": frozenset({"auditor"}),
}
# SPEC 4 JURISDICTION and LICENCE: the roles each binds.
BOUND = frozenset({"officer", "authority"})
LICENSED = frozenset({"buyer", "exporter"})


@dataclass
class Share:
    """Carats of the export (in points, exact) traced back to one origin site or zone."""

    label: str
    points: Fraction = Fraction(0)


class Logged(Protocol):
    """An entry of the bundle whose hash and proof held (``bundle_format.Item``)."""

    @property
    def entry(self) -> dict[str, Any]: ...

    @property
    def seq(self) -> int: ...

    @property
    def where(self) -> str: ...


class Findings(Protocol):
    """What the replay writes to (``bundle_verify.Report``); it also reads ``problems``."""

    problems: list[str]
    facts: list[str]
    notes: list[str]
    export_points: int
    sites: dict[str, Share]
    zones: dict[str, Share]

    def fail(self, part: str, message: str) -> None: ...


def replay(certificate_no: str, items: Iterable[Logged], findings: Findings, screen: bool
           ) -> None:
    """Replay custody over ``items`` for the export ``certificate_no``, then re-screen its
    origins (when ``screen``) and check its flags, writing into ``findings``."""
    custody = _Replay(certificate_no, findings)
    for item in sorted(items, key=lambda it: it.seq):
        custody.apply(item)
    custody.finish(screen)


def _points(value: Any) -> int:
    """Carats as integer hundredths, exactly (SPEC 4: decimals, never binary floats)."""
    if type(value) not in (int, float):
        raise ValueError(f"{value!r} is not a number of carats")
    try:
        hundredths = Decimal(repr(value)) * 100
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not a number of carats") from exc
    if hundredths != hundredths.to_integral_value():
        raise ValueError(f"{value!r} has more than two decimals")
    return int(hundredths)


@dataclass
class _Parcel:
    holder: str
    points: int
    stones: int
    date: str
    made: Logged
    consumed: int | None = None


class _Replay:
    """The custody graph and the map, folded from the bundle's entries in seq order."""

    def __init__(self, certificate_no: str, findings: Findings) -> None:
        self.cert, self.r = certificate_no, findings
        self.actors: dict[str, dict[str, Any]] = {}
        self.parcels: dict[str, _Parcel] = {}
        self.sites: dict[str, dict[str, Any]] = {}
        self.zones: dict[str, ZoneHistory] = {}
        self.exports: dict[str, dict[str, Any]] = {}  # certificate_no -> payload
        self.flags: dict[str, dict[str, Any]] = {}
        self.open: dict[str, set[str]] = {}  # parcel -> open flag ids (SPEC 4 HOLD)
        self.export: Logged | None = None
        self.steps: list[Logged] = []  # splits and merges, in seq order

    def apply(self, item: Logged) -> None:
        e, p = item.entry, item.entry["payload"]
        kind, actor, seq = e["kind"], e["actor"], item.seq
        try:
            self._role(item, kind, actor, p)
            self._jurisdiction(item, kind, actor, p)
            self._licence(item, kind, actor, p)
            self._today(item, kind, p)
            if kind == "actor.registered":
                self.actors.setdefault(p["actor_id"], {
                    "role": p["role"], "country": p["country"], "name": p["name"], "licence_no":
                    p.get("licence_no"), "from": p.get("licence_valid_from"), "to":
                    p.get("licence_valid_to"), "renewals": [], "revocations": []})
            elif kind in LICENCE_KINDS and p.get("actor_id"):
                self._actor_licence(kind, p)
            elif kind in MAP_KINDS:
                self._zone(kind, p, item)
            elif kind == "site.registered":
                self.sites[p["site_id"]] = {k: p[k] for k in ("name", "licence_no", "location",
                                                              "country")}
            elif kind == "site.suspended" and p["site_id"] in self.sites:
                # the latest suspension counts, as in the ledger's projection
                self.sites[p["site_id"]]["suspended_on"] = p["date"]
            elif kind == "certificate.validated":
                self._validated(item, actor, p)
            elif kind == "import.confirmed":
                self._confirmed(item, actor, p)
            elif kind == "flag.raised":
                self._flag_id(item, actor, p["flag_id"])
                self.flags[p["flag_id"]] = {"p": p, "seq": seq, "resolved": None}
                if p["subject"]["type"] == "parcel":
                    self.open.setdefault(p["subject"]["id"], set()).add(p["flag_id"])
            elif kind == "flag.resolved":
                self._resolve(item, p)
            elif kind.startswith("parcel.") or kind == "export.declared":
                self._custody(item, kind, actor, p)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            self.r.fail(item.where, f"its {kind} payload cannot be read: {exc!r}.")

    # -- ROLE ------------------------------------------------------------------------
    def _role(self, item: Logged, kind: str, actor: str, p: dict[str, Any]) -> None:
        if actor == SYSTEM:
            if kind != "flag.raised":
                self.r.fail("custody", f"entry {item.seq}: 'system' may only raise flags.")
            return
        if item.seq == 1 and kind == "actor.registered" and p.get("actor_id") == actor:
            return  # SPEC 3: entry 1 registers the admin, who writes it
        role = self.actors.get(actor, {}).get("role")
        if role is None:
            self.r.fail("custody", f"entry {item.seq} ({kind}) is written by '{actor}', whose "
                        "registration is not in the bundle.")
        elif role not in ROLES.get(kind, ()):
            self.r.fail("custody", f"entry {item.seq}: '{actor}' is a {role} and may not "
                        f"write {kind} (SPEC 4 ROLE).")

    # -- JURISDICTION, LICENCE, DATE_ORDER's "not after today" -------------------------------
    def _jurisdiction(self, item: Logged, kind: str, actor: str, p: dict[str, Any]) -> None:
        """SPEC 4 JURISDICTION: an officer or authority acts only within its own country."""
        writer = self.actors.get(actor)
        if writer is None or writer["role"] not in BOUND:
            return
        judged, country = self._country_of(kind, p)
        if not judged:
            return
        if country is None:
            self.r.fail("custody", f"entry {item.seq}: '{actor}' ({writer['role']}) writes "
                        f"{kind} of a licence zone whose country is not known (SPEC 4 "
                        "JURISDICTION).")
        elif country != writer["country"]:
            self.r.fail("custody", f"entry {item.seq}: '{actor}' is an {writer['role']} of "
                        f"{writer['country']} and may not write {kind} for {country} (SPEC 4 "
                        "JURISDICTION).")

    def _country_of(self, kind: str, p: dict[str, Any]) -> tuple[bool, str | None]:
        """(judged, country) of what an entry acts on, as ``ledger.custody.rules`` finds it;
        not judged: a risk area, or what the bundle does not hold."""
        if kind in ("actor.registered", "site.registered"):
            return True, p["country"]
        if kind == "zone.registered":
            return p["zone_type"] == "licence", zone_country(p)
        if kind in LICENCE_KINDS and p.get("actor_id"):
            found = self.actors.get(p["actor_id"])
            return found is not None, None if found is None else found["country"]
        if kind in LICENCE_KINDS or kind in ("zone.amended", "zone.retired"):
            zone = self.zones.get(p.get("zone_id") or "")
            if zone is None or zone.zone_type != "licence":
                return False, None
            return True, zone.country
        if kind == "site.suspended":
            site = self.sites.get(p["site_id"])
            return site is not None, None if site is None else site["country"]
        if kind == "import.confirmed":
            export = self.exports.get(p["certificate_no"])
            return export is not None, None if export is None else export["destination"]
        if kind == "certificate.validated":  # SPEC 1: the exporter's country validates
            export = self.exports.get(p["certificate_no"])
            exporter = None if export is None else self.actors.get(export["exporter"])
            return exporter is not None, None if exporter is None else exporter["country"]
        return False, None

    def _licence(self, item: Logged, kind: str, actor: str, p: dict[str, Any]) -> None:
        """SPEC 4 LICENCE: a writing buyer's or exporter's licence is valid on the date."""
        writer = self.actors.get(actor)
        if writer is None or writer["role"] not in LICENSED:
            return
        spans = windows(writer["from"], writer["to"], writer["renewals"], writer["revocations"])
        if not valid_on(spans, p["date"]):
            licence = f"licence {writer['licence_no']}" if writer["licence_no"] else "licence"
            self.r.fail("custody", f"entry {item.seq} ({kind}, {p['date']}): the {licence} of "
                        f"'{actor}' is not valid that day (SPEC 4 LICENCE).")

    def _today(self, item: Logged, kind: str, p: dict[str, Any]) -> None:
        """SPEC 4 DATE_ORDER: no event is dated after the day its entry was written."""
        day, written = p.get("date"), str(item.entry["ts"])[:10]
        if isinstance(day, str) and day > written:
            self.r.fail("custody", f"entry {item.seq} ({kind}) is dated {day}, after the day "
                        f"it was written ({written}; SPEC 4 DATE_ORDER).")

    def _actor_licence(self, kind: str, p: dict[str, Any]) -> None:
        actor = self.actors.get(p["actor_id"])
        if actor is None:
            return  # off the path: the bundle holds no trade it could judge
        if kind == "licence.revoked":
            actor["revocations"].append(p["date"])
        else:
            actor["renewals"].append((p["valid_from"], p.get("valid_to")))

    def _once(self, item: Logged, cert: str, done: str, verb: str) -> dict[str, Any] | None:
        """The export a validation or confirmation names, when it is in the bundle before it
        and was not ``done`` already (SPEC 4 UNKNOWN_REFERENCE, DUPLICATE); else None."""
        export = self.exports.get(cert)
        if export is None:
            self.r.fail("custody", f"entry {item.seq} {verb} {cert}, whose export.declared "
                        "entry is not before it in the bundle (SPEC 4 UNKNOWN_REFERENCE).")
        elif done in export:
            self.r.fail("custody", f"entry {item.seq} {verb} {cert} again (entry "
                        f"{export[done][0].seq} {done} it; SPEC 4 DUPLICATE).")
            export = None
        return export

    def _validated(self, item: Logged, actor: str, p: dict[str, Any]) -> None:
        """SPEC 4: validated once, between the certificate's issue and expiry, and not after
        a confirmation already written (DUPLICATE, DATE_ORDER)."""
        cert, fail = p["certificate_no"], self.r.fail
        export = self._once(item, cert, "validated", "validates")
        if export is None:
            return
        if not export["date"] <= p["date"] <= export["expires"]:
            fail("custody", f"entry {item.seq} validates {cert} on {p['date']}, outside its "
                 f"issue and expiry ({export['date']} to {export['expires']}; SPEC 4 "
                 "DATE_ORDER).")
        confirmed = export.get("confirmed")
        if confirmed is not None and p["date"] > confirmed[1]["date"]:
            fail("custody", f"entry {item.seq} validates {cert} on {p['date']}, after its "
                 f"import was confirmed ({confirmed[1]['date']}; SPEC 4 DATE_ORDER).")
        _points(p["valuation_usd"])  # a number with two decimals, or the entry is unreadable
        export["validated"] = (item, p, actor)

    def _confirmed(self, item: Logged, actor: str, p: dict[str, Any]) -> None:
        """SPEC 4: confirmed once, between the certificate's validation (or, unvalidated,
        its issue) and its expiry (DUPLICATE, DATE_ORDER)."""
        cert, fail = p["certificate_no"], self.r.fail
        export = self._once(item, cert, "confirmed", "confirms")
        if export is None:
            return
        validated = export.get("validated")
        start = validated[1]["date"] if validated is not None else export["date"]
        if not start <= p["date"] <= export["expires"]:
            what = "validation" if validated is not None else "issue"
            fail("custody", f"entry {item.seq} confirms {cert} on {p['date']}, outside its "
                 f"{what} and expiry ({start} to {export['expires']}; SPEC 4 DATE_ORDER).")
        if "carats_received" in p:  # older confirmations carried only the date
            _points(p["carats_received"])
            if type(p["parcels_received"]) is not int or not isinstance(p["importer"], str):
                raise ValueError("parcels_received or importer is not what SPEC 4 says")
        export["confirmed"] = (item, p, actor)

    def _flag_id(self, item: Logged, actor: str, flag_id: str) -> None:
        """SPEC 4 DUPLICATE, as the ledger judges a flag id: new, and, for a writer's flag,
        outside the namespace the ledger keeps for its own (``ledger.custody.rules``)."""
        if flag_id in self.flags:
            self.r.fail("flags", f"entry {item.seq} raises flag {flag_id} again (entry "
                        f"{self.flags[flag_id]['seq']} raised it; SPEC 4 DUPLICATE).")
        if actor != SYSTEM and SYSTEM_FLAG_ID.match(flag_id):
            self.r.fail("flags", f"entry {item.seq}: '{actor}' raises flag {flag_id}, an id in "
                        "the namespace the ledger keeps for its own screening flags (SPEC 4 "
                        "DUPLICATE).")

    # -- the map -----------------------------------------------------------------------
    def _zone(self, kind: str, p: dict[str, Any], item: Logged) -> None:
        if kind == "zone.registered":
            self.zones[p["zone_id"]] = ZoneHistory.registered(p, item.seq)
            return
        zone = self.zones.get(p.get("zone_id") or "")
        if zone is None:
            self.r.fail(item.where, f"{kind} of zone {p.get('zone_id')!r}, which the "
                        "bundle does not register.")
        elif kind == "zone.amended":  # SPEC 5: a version from its effective day on
            zone.amended(p, item.seq)
        elif kind == "zone.retired":  # without valid_to: valid on no day (SPEC 5)
            zone.retired_to = p.get("valid_to") or NO_DAY
        elif kind == "licence.revoked":
            zone.revocations.append(p["date"])
        else:  # SPEC 4 licence.renewed: valid again on the new window
            zone.renewals.append((p["valid_from"], p.get("valid_to")))

    # -- custody -------------------------------------------------------------------------
    def _take(self, item: Logged, pid: str, actor: str, date: str) -> _Parcel | None:
        """The parcel an entry moves, after HOLDER, SPENT, HOLD and date checks."""
        fail = self.r.fail
        parcel = self.parcels.get(pid)
        what = f"entry {item.seq} ({item.entry['kind']})"
        if parcel is None:
            fail("custody", f"{what} moves parcel {pid}, but no entry in the bundle made it: "
                 "the custody graph does not balance.")
            return None
        if parcel.consumed is not None:
            fail("custody", f"{what}: parcel {pid} was already consumed by entry "
                 f"{parcel.consumed} (SPEC 4 SPENT: spent twice).")
        if parcel.holder != actor:
            fail("custody", f"{what}: parcel {pid} is held by '{parcel.holder}', not by "
                 f"'{actor}' (SPEC 4 HOLDER).")
        if date < parcel.date:
            fail("custody", f"{what} is dated {date}, before {parcel.date}, when parcel {pid} "
                 "last changed.")
        for flag_id in sorted(self.open.get(pid, ())):
            fail("custody", f"{what}: parcel {pid} moved while flag {flag_id} was open "
                 "(SPEC 4 HOLD).")
        return parcel

    def _new(self, item: Logged, pid: str, holder: str, points: int, stones: int, date: str
             ) -> None:
        if pid in self.parcels:
            self.r.fail("custody", f"entry {item.seq} makes parcel {pid} again (entry "
                        f"{self.parcels[pid].made.seq} made it).")
        self.parcels[pid] = _Parcel(holder, points, stones, date, item)

    def _custody(self, item: Logged, kind: str, actor: str, p: dict[str, Any]) -> None:
        fail, seq, date = self.r.fail, item.seq, p["date"]
        if kind == "parcel.purchased":
            if not isinstance(p["site_id"], str):
                raise TypeError("site_id is not a string")
            self._new(item, p["parcel_id"], actor, _points(p["carats"]), p["stones"], date)
            sieve = p.get("sieve")
            if sieve is not None and sum(_points(v) for v in sieve.values()) != _points(
                    p["carats"]):
                fail("custody", f"entry {seq}: the sieve classes of {p['parcel_id']} do not "
                     "add up to its carats (SPEC 5, SPEC 4 MASS).")
        elif kind == "parcel.transferred":
            parcel = self._take(item, p["parcel_id"], actor, date)
            if parcel is not None:
                parcel.holder, parcel.date = p["to_actor"], date
        elif kind == "parcel.split":
            parent = self._take(item, p["parent_id"], actor, date)
            kids = [(c["parcel_id"], _points(c["carats"]), c["stones"]) for c in p["children"]]
            if parent is not None:
                parent.consumed = seq
                if sum(k[1] for k in kids) > parent.points or sum(k[2] for k in kids) > \
                        parent.stones:
                    fail("custody", f"entry {seq}: the children of {p['parent_id']} outweigh "
                         "it (SPEC 4 MASS).")
            for pid, pts, stones in kids:
                self._new(item, pid, actor, pts, stones, date)
            self.steps.append(item)
        elif kind == "parcel.merged":
            parents = [self._take(item, pid, actor, date) for pid in p["parent_ids"]]
            for parent in parents:
                if parent is not None:
                    parent.consumed = seq
            child = p["child"]
            pts = _points(child["carats"])
            if all(x is not None for x in parents) and (pts > sum(x.points for x in parents if x) or
                                        child["stones"] > sum(x.stones for x in parents if x)):
                fail("custody", f"entry {seq}: merged parcel {child['parcel_id']} outweighs "
                     "its parents (SPEC 4 MASS).")
            self._new(item, child["parcel_id"], actor, pts, child["stones"], date)
            self.steps.append(item)
        elif kind == "export.declared":
            self._export(item, actor, p)

    def _export(self, item: Logged, actor: str, p: dict[str, Any]) -> None:
        fail, seq = self.r.fail, item.seq
        self.exports.setdefault(p["certificate_no"], dict(p))
        if p["certificate_no"] != self.cert:
            return
        if self.export is not None:
            fail("custody", f"entries {self.export.seq} and {seq} both declare {self.cert}.")
        declared, pids = _points(p["carats"]), list(p["parcel_ids"])
        self.export = item
        parcels = [self._take(item, pid, actor, p["date"]) for pid in pids]
        for parcel in parcels:
            if parcel is not None:
                parcel.consumed = seq
        total = sum(x.points for x in parcels if x is not None)
        if all(x is not None for x in parcels) and total != declared:
            fail("custody", f"entry {seq}: {self.cert} declares {declared / 100:.2f} ct but its "
                 f"parcels weigh {total / 100:.2f} ct (SPEC 4 CERTIFICATE).")
        if p["exporter"] != actor or not p["expires"] > p["date"]:
            fail("custody", f"entry {seq}: the exporter is not the writer, or the certificate "
                 "expires before it is issued (SPEC 4 CERTIFICATE).")
        country = self.actors.get(actor, {}).get("country")
        if p["destination"] == country:
            fail("custody", f"entry {seq}: {self.cert} goes to {country}, the exporter's own "
                 "country (SPEC 4 CERTIFICATE).")
        self.r.export_points = declared

    def _resolve(self, item: Logged, p: dict[str, Any]) -> None:
        flag = self.flags.get(p["flag_id"])
        if flag is None:
            self.r.fail("flags", f"entry {item.seq} resolves flag {p['flag_id']}, whose "
                        "flag.raised entry is not in the bundle.")
            return
        flag["resolved"] = p["resolution"]
        subject = flag["p"]["subject"]
        self.open.get(subject["id"] if subject["type"] == "parcel" else "", set()).discard(
            p["flag_id"])

    # -- after the last entry -------------------------------------------------------------
    def finish(self, screen: bool) -> None:
        r = self.r
        if self.export is None:
            r.fail("custody", f"the bundle holds no export.declared entry for {self.cert}.")
            return
        origins = self._origins()
        moved = len(self.parcels)
        if not r.problems:
            r.facts.append(f"custody: {moved} parcels from {len(origins)} purchases; holders, "
                           "mass, dates and holds verified; no parcel spent twice.")
        _Screen(self, origins).run(screen)
        self._certificate()
        for flag_id, flag in sorted(self.flags.items(), key=lambda kv: kv[1]["seq"]):
            if flag["resolved"] is None:
                p = flag["p"]
                r.fail("flags", f"flag {flag_id} ({p['code']} on {p['subject']['type']} "
                       f"{p['subject']['id']}, entry {flag['seq']}) is open: {p['detail']}")
        resolved = sum(f["resolved"] is not None for f in self.flags.values())
        if not any(x.startswith("flags:") for x in r.problems):
            r.facts.append(f"flags: {len(self.flags)} on the custody path, {resolved} resolved "
                           "by an auditor, none open.")

    def _certificate(self) -> None:
        """SPEC 7: whether the exporting country's authority validated the certificate, and
        by whom; and what the importing one confirmed (SPEC 5 CONFIRMATION_MISMATCH: a
        confirmation that differs carries its flag)."""
        r, export = self.r, self.exports[self.cert]
        exporter = self.actors.get(export["exporter"], {})
        validated = export.get("validated")
        if validated is None:
            r.facts.append(f"validation: NOT validated: the bundle holds no "
                           f"certificate.validated entry for {self.cert}; the KP authority of "
                           f"{exporter.get('country', 'the exporting country')} has not "
                           "signed it off (a fact reported, not a proof failure).")
        else:
            item, p, actor = validated
            who = self.actors.get(actor, {})
            r.facts.append(f"validation: validated on {p['date']} by '{actor}' "
                           f"({who.get('name', '?')}, KP authority of {who.get('country', '?')})"
                           f", officer {p['officer']}, valuation USD "
                           f"{_points(p['valuation_usd']) / 100:,.2f} (entry {item.seq}).")
        confirmed = export.get("confirmed")
        if confirmed is None:
            r.facts.append(f"import: not confirmed by the authority of {export['destination']}.")
            return
        item, p, actor = confirmed
        if "carats_received" not in p:
            r.facts.append(f"import: confirmed on {p['date']} by '{actor}' (entry {item.seq}).")
            return
        differs = [what for what, same in (
            ("carats", _points(p["carats_received"]) == _points(export["carats"])),
            ("parcels", p["parcels_received"] == len(export["parcel_ids"])),
            ("importer", _name_key(p["importer"]) == _name_key(export["importer"]))) if not same]
        r.facts.append(f"import: confirmed on {p['date']} by '{actor}': "
                       f"{_points(p['carats_received']) / 100:.2f} ct, {p['parcels_received']} "
                       f"parcel(s), importer {p['importer']} (entry {item.seq})" +
                       (f"; it differs from the certificate in {', '.join(differs)}."
                        if differs else ", as certified."))
        flagged = any(f["p"]["code"] == "CONFIRMATION_MISMATCH" and f["seq"] > item.seq and
                      f["p"]["subject"] == {"type": "export", "id": self.cert}
                      for f in self.flags.values())
        if differs and not flagged:
            r.fail("flags", f"entry {item.seq}'s confirmation differs from the certificate "
                   f"({', '.join(differs)}) but the bundle holds no CONFIRMATION_MISMATCH flag "
                   "on it (SPEC 5).")

    def _origins(self) -> dict[str, tuple[Logged, Fraction]]:
        """Purchases the export descends from, with the points of the export each gave."""
        assert self.export is not None
        weight: dict[str, Fraction] = {}
        for pid in self.export.entry["payload"]["parcel_ids"]:
            if pid in self.parcels:
                weight[pid] = weight.get(pid, Fraction(0)) + self.parcels[pid].points
        for item in reversed(self.steps):  # children are consumed after they are made
            p = item.entry["payload"]
            if item.entry["kind"] == "parcel.split":
                got = sum((weight.pop(c["parcel_id"], Fraction(0)) for c in p["children"]),
                          Fraction(0))
                if got:
                    weight[p["parent_id"]] = weight.get(p["parent_id"], Fraction(0)) + got
            else:
                got = weight.pop(p["child"]["parcel_id"], Fraction(0))
                parents = [(pid, self.parcels[pid].points) for pid in p["parent_ids"]
                           if pid in self.parcels]
                total = sum(pts for _, pts in parents)
                for pid, pts in parents if got and total else ():
                    weight[pid] = weight.get(pid, Fraction(0)) + got * pts / total
        origins = {}
        for pid, w in weight.items():
            parcel = self.parcels.get(pid)  # missing: already failed as custody
            if parcel is not None and parcel.made.entry["kind"] == "parcel.purchased":
                origins[pid] = (parcel.made, w)
        return origins


def _name_key(name: Any) -> str:
    """A name as the ledger compares it: case and runs of spaces make no other importer."""
    return " ".join(str(name).split()).casefold()


class _Screen:
    """Re-screening of each origin purchase against the bundle's zones (SPEC 5)."""

    def __init__(self, replay: _Replay, origins: dict[str, tuple[Logged, Fraction]]) -> None:
        self.replay, self.origins, self.r = replay, origins, replay.r

    def run(self, screen: bool) -> None:
        shapely = _shapely() if screen else None
        zones = self.replay.zones
        licence = {z: v for z, v in zones.items() if v.zone_type == "licence"}
        risk = {z: v for z, v in zones.items() if v.zone_type == "risk"}
        spans = {z: v.spans() for z, v in zones.items()}  # SPEC 5: versions x windows
        shapes: dict[int, Any] = {}
        if shapely is None:
            self.r.notes.append("re-screening skipped: shapely is not installed." if screen else
                                "re-screening skipped: not asked for.")
        else:
            for span in (s for found in spans.values() for s in found):
                if id(span.geometry) not in shapes:
                    shapes[id(span.geometry)] = shapely.prepared.prep(
                        shapely.geometry.shape(span.geometry))

        def on(zone_id: str, day: str) -> list[Span]:
            return [s for s in spans[zone_id] if s.days.valid_on(day)]

        clean = True
        for pid, (item, weight) in sorted(self.origins.items(), key=lambda kv: kv[1][0].seq):
            p = item.entry["payload"]
            site = self.replay.sites.get(p["site_id"])
            day = p["date"]
            dirty: list[tuple[str, str]] = []
            if site is not None and (site.get("suspended_on") or "9999") <= day:
                site = None  # SPEC 4: a suspended site sells as an unknown one
            if site is None:
                dirty.append(("UNREGISTERED_SITE", f"site {p['site_id']} is not registered in "
                              "the bundle, or was suspended"))
            valid = {z: found for z, v in licence.items() if site is not None and
                     v.licence_no == site["licence_no"] and (found := on(z, day))}
            covering = sorted(valid)
            if shapely is not None:
                where = p.get("dig_location") or (site or {}).get("location")
                geom = shapely.geometry.shape(where) if where else None
                covering = [z for z in covering if geom is not None and
                            any(shapes[id(s.geometry)].covers(geom) for s in valid[z])]
                if site is not None and not covering:
                    dirty.append(("OUTSIDE_LICENSED_ZONE", f"no zone of licence "
                                  f"{site['licence_no']} valid on {day} covers it"))
                hits = sorted(z for z in risk if geom is not None and any(
                    shapes[id(s.geometry)].intersects(geom) for s in on(z, day)))
                if hits:
                    dirty.append(("IN_RISK_AREA", "it lies in risk area " + ", ".join(
                        f"{z} ({risk[z].category})" for z in hits)))
            clean = self._judge(pid, item, dirty) and clean
            self._share(site, p["site_id"], covering, weight)
        if shapely is not None and clean:
            self.r.facts.append(f"screening: {len(self.origins)} purchases re-screened offline "
                                f"against {len(licence)} licence and {len(risk)} risk zones: "
                                "every origin is clean or cleared by an auditor.")

    def _judge(self, pid: str, item: Logged, dirty: list[tuple[str, str]]) -> bool:
        ok = True
        for code, why in dirty:
            resolved = [(fid, f["resolved"]) for fid, f in self.replay.flags.items()
                        if f["p"]["code"] == code and f["p"]["subject"] == {"type": "parcel",
                                                                            "id": pid}
                        and f["resolved"] is not None]
            if resolved:
                self.r.notes.append(f"screening: purchase {pid} (entry {item.seq}): {code}, "
                                    f"cleared by flag {resolved[0][0]}: {resolved[0][1]}")
            else:
                ok = False
                self.r.fail("screening", f"purchase {pid} (entry {item.seq}, "
                            f"{item.entry['payload']['date']}): {code}: {why}; the bundle holds "
                            "no flag an auditor resolved for it.")
        return ok

    def _share(self, site: dict[str, Any] | None, site_id: str, zones: list[str],
               weight: Fraction) -> None:
        if site is None:
            label = f"{site_id} (not registered in the bundle)"
        else:
            label = (f"{site_id} ({site['name']}, licence {site['licence_no']}, zone "
                     f"{', '.join(zones) or 'none'})")
        self.r.sites.setdefault(site_id, Share(label)).points += weight
        zone = zones[0] if zones else None
        zlabel = (f"{zone} (licence {self.replay.zones[zone].licence_no})" if zone
                  else "outside every licence zone")
        self.r.zones.setdefault(zone or "", Share(zlabel)).points += weight


def _shapely() -> Any:
    try:
        import shapely
        import shapely.geometry
        import shapely.prepared
    except ImportError:
        return None
    return shapely
