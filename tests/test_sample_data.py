"""The sample data: deterministic, schema-valid, and accepted by the custody rules.

The rules are replayed here in plain Python (SPEC 4 and the screening of SPEC 5 that
puts parcels on hold), independently of ``ledger``, so this file runs while the ledger
is being built. Point-in-polygon checks use shapely when it is installed, and always
a ray-casting test of their own.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import statistics
import subprocess
import sys
import tracemalloc
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from sample_data import generate, world

ROOT = Path(__file__).resolve().parents[1]
SCALE_SAMPLE = 20_000

try:  # optional: an independent geometry engine
    from shapely.geometry import Point, shape
except ImportError:  # pragma: no cover
    Point = shape = None


# --- schemas ------------------------------------------------------------------------------

@cache
def _validators() -> Any:
    """validate(kind, payload), from ledger.schema when it imports, else fastjsonschema."""
    try:
        from ledger.custody.schema import validate_payload
        return validate_payload
    except ImportError:  # pragma: no cover - while ledger is being built
        import fastjsonschema

        base = "https://alluvial.local/schemas/"

        def load(name: str) -> Any:
            return json.loads((ROOT / "schemas" / name).read_text("utf-8"))

        def fetch(uri: str) -> Any:
            return load(uri.removeprefix(base))

        compiled: dict[str, Any] = {}

        def validate(kind: str, payload: Any) -> None:
            if kind not in compiled:
                compiled[kind] = fastjsonschema.compile(
                    load(f"{kind}.json"), handlers={"https": fetch},
                    formats={"date": r"^\d{4}-\d{2}-\d{2}$"})
            compiled[kind](payload)
        return validate


def _check_lines(lines: list[str]) -> None:
    validate = _validators()
    for number, line in enumerate(lines, 1):
        event = json.loads(line)
        assert set(event) == {"kind", "actor", "payload"}, f"line {number}"
        try:
            validate(event["kind"], event["payload"])
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"line {number}: {exc}: {line[:300]}")


# --- a pure-Python replay of the custody rules --------------------------------------------

ROLES = {
    "actor.registered": {"officer", "admin"}, "zone.registered": {"officer", "admin"},
    "site.registered": {"officer", "admin"}, "parcel.purchased": {"buyer"},
    "parcel.transferred": {"buyer", "exporter"}, "parcel.split": {"buyer", "exporter"},
    "parcel.merged": {"buyer", "exporter"}, "export.declared": {"exporter"},
    "licence.renewed": {"officer", "admin"},
    "certificate.validated": {"authority"}, "import.confirmed": {"authority", "auditor"},
}
HS_CODES = {"7102.10", "7102.21", "7102.31"}


class Refused(Exception):
    def __init__(self, rule: str, why: str) -> None:
        super().__init__(f"{rule}: {why}")
        self.rule = rule


def points(carats: float) -> int:
    """Exact hundredths of a JSON number with at most two decimals."""
    d = Decimal(repr(carats)) * 100
    assert d == d.to_integral_value(), f"{carats} has more than two decimals"
    return int(d)


def inside(ring: list[list[float]], lon: float, lat: float) -> bool:
    inside_ = world.point_in_ring(lon, lat, tuple(map(tuple, ring)))  # type: ignore[arg-type]
    if shape is not None:
        geo = shape({"type": "Polygon", "coordinates": [ring]})
        assert geo.contains(Point(lon, lat)) == inside_, (lon, lat)
    return inside_


class Replay:
    """Just enough state to apply the rules: refuses with the first rule broken, or applies."""

    def __init__(self) -> None:
        self.actors: dict[str, dict[str, Any]] = {"admin": {"role": "admin", "country": "ZZ"}}
        self.zones: dict[str, dict[str, Any]] = {}
        self.sites: dict[str, dict[str, Any]] = {}
        self.parcels: dict[str, dict[str, Any]] = {}
        self.certificates: set[str] = set()
        self.exports: dict[str, dict[str, Any]] = {}  # certificate_no -> what happened to it
        self.flagged: list[str] = []
        self.footprint_flagged: list[str] = []
        # SPEC 5 footprint references: licence_no -> [(day, ln US$/ct, ln ct/stone)] of the
        # purchases not flagged FOOTPRINT_ANOMALY, in date order (the sample is).
        self.references: dict[str, list[tuple[str, float, float]]] = {}
        self.monthly: dict[str, Counter[str]] = {}  # site -> "YYYY-MM" -> points bought
        self.last_trade_day = ""

    def licensed(self, actor: dict[str, Any], day: str) -> bool:
        """SPEC 4 LICENCE: the registered window or a renewal's holds ``day``."""
        return any(start <= day and (end is None or day <= end)
                   for start, end in actor.get("windows", ()))

    def _valid(self, zone: dict[str, Any], day: str) -> bool:
        return zone["valid_from"] <= day and (zone["valid_to"] is None or day <= zone["valid_to"])

    def screen(self, p: dict[str, Any]) -> list[str]:
        """SPEC 5 codes a purchase would be flagged with."""
        site = self.sites.get(p["site_id"])
        if site is None:
            return ["UNREGISTERED_SITE"]
        lon, lat = (p.get("dig_location") or site["location"])["coordinates"][:2]
        day, codes = p["date"], []
        if not any(z["zone_type"] == "licence" and z["licence_no"] == site["licence_no"]
                   and self._valid(z, day) and inside(z["geometry"]["coordinates"][0], lon, lat)
                   for z in self.zones.values()):
            codes.append("OUTSIDE_LICENSED_ZONE")
        if any(z["zone_type"] == "risk" and self._valid(z, day)
               and inside(z["geometry"]["coordinates"][0], lon, lat)
               for z in self.zones.values()):
            codes.append("IN_RISK_AREA")
        if self.footprint_anomaly(site["licence_no"], p):
            codes.append("FOOTPRINT_ANOMALY")
        return codes

    def capacity_anomaly(self, p: dict[str, Any]) -> list[str]:
        """SPEC 5 CAPACITY_ANOMALY, on its own: the purchase that takes its site's month past
        capacity_ct_month, or past ten times the median of its previous 12 months that had
        purchases (the last 12 such months, at least 3). Records the purchase's carats."""
        months = self.monthly.setdefault(p["site_id"], Counter())
        had = [months[m] for m in sorted(months) if m < p["date"][:7] and months[m] > 0][-12:]
        site = self.sites.get(p["site_id"], {})
        line = (points(site["capacity_ct_month"]) if "capacity_ct_month" in site
                else 10 * statistics.median(had) if len(had) >= 3 else None)
        before = months[p["date"][:7]]
        months[p["date"][:7]] += points(p["carats"])
        crossed = line is not None and before <= line < months[p["date"][:7]]
        return ["CAPACITY_ANOMALY"] if crossed else []

    def footprint_anomaly(self, licence_no: str, p: dict[str, Any]) -> bool:
        """SPEC 5 FOOTPRINT_ANOMALY, computed here on its own: ln US$/ct or ln ct/stone more
        than 3.5 robust deviations from the zone's unflagged purchases of the 365 days before."""
        day = p["date"]
        since = (date.fromisoformat(day) - timedelta(days=365)).isoformat()
        ref = [r for r in self.references.get(licence_no, []) if since <= r[0] < day]
        if len(ref) < 30:
            return False
        x = (math.log(p["price"]["amount"] / p["carats"]), math.log(p["carats"] / p["stones"]))
        for i in (0, 1):
            values = [r[1 + i] for r in ref]
            mid = statistics.median(values)
            mad = statistics.median(abs(v - mid) for v in values)
            if mad > 0 and abs(x[i] - mid) / (1.4826 * mad) > 3.5:
                return True
        return False

    def apply(self, event: dict[str, Any]) -> None:
        kind, actor_id, p = event["kind"], event["actor"], event["payload"]
        actor = self.actors.get(actor_id)
        if actor is None or actor["role"] not in ROLES[kind]:
            raise Refused("ROLE", f"{actor_id} may not write {kind}")
        day = p["date"]
        # SPEC 1, 4 JURISDICTION: an officer registers and renews within its own country
        if actor["role"] == "officer":
            target = {"actor.registered": lambda: p["country"],
                      "site.registered": lambda: p["country"],
                      "zone.registered": lambda: (p.get("licence_no") or actor["country"])[:2],
                      "licence.renewed": lambda: self.actors.get(p["actor_id"], {}).get(
                          "country", actor["country"])}[kind]()
            if target != actor["country"]:
                raise Refused("JURISDICTION", f"{actor_id} ({actor['country']}) in {target}")
        if kind in ("certificate.validated", "import.confirmed"):
            self.certificate(kind, actor_id, actor, p)
            return
        if actor["role"] in ("buyer", "exporter") and not self.licensed(actor, day):
            raise Refused("LICENCE", f"{actor_id} on {day}")
        if kind == "licence.renewed" and p["actor_id"] not in self.actors:
            raise Refused("UNKNOWN_REFERENCE", p["actor_id"])
        moved = {"parcel.transferred": lambda: [p["parcel_id"]],
                 "parcel.split": lambda: [p["parent_id"]],
                 "parcel.merged": lambda: p["parent_ids"],
                 "export.declared": lambda: p["parcel_ids"]}.get(kind, list)()
        if any(pid not in self.parcels for pid in moved) or (
                kind == "parcel.transferred" and p["to_actor"] not in self.actors):
            raise Refused("UNKNOWN_REFERENCE", str(moved))
        new = {"actor.registered": lambda: [p["actor_id"]],
               "zone.registered": lambda: [p["zone_id"]], "site.registered": lambda: [p["site_id"]],
               "parcel.purchased": lambda: [p["parcel_id"]],
               "parcel.split": lambda: [c["parcel_id"] for c in p["children"]],
               "parcel.merged": lambda: [p["child"]["parcel_id"]],
               "export.declared": lambda: [p["certificate_no"]]}.get(kind, list)()
        table = {"actor.registered": self.actors, "zone.registered": self.zones,
                 "site.registered": self.sites}.get(kind, self.parcels)
        taken = self.certificates if kind == "export.declared" else table
        if len(set(new)) != len(new) or any(i in taken for i in new):
            raise Refused("DUPLICATE", str(new))
        rows = [self.parcels[pid] for pid in moved]
        if any(r["holder"] != actor_id for r in rows):
            raise Refused("HOLDER", f"{actor_id} does not hold {moved}")
        if any(r["spent"] for r in rows) or (
                kind == "parcel.transferred" and p["to_actor"] == actor_id):
            raise Refused("SPENT", str(moved))
        if any(r["day"] > day for r in rows):  # SPEC 4 DATE_ORDER
            raise Refused("DATE_ORDER", f"{moved} moved on {day}, before its last event")
        if kind == "parcel.split":
            assert sum(points(c["carats"]) for c in p["children"]) <= rows[0]["points"], "MASS"
            assert sum(c["stones"] for c in p["children"]) <= rows[0]["stones"], "MASS"
        if kind == "parcel.merged":
            assert points(p["child"]["carats"]) <= sum(r["points"] for r in rows), "MASS"
            assert p["child"]["stones"] <= sum(r["stones"] for r in rows), "MASS"
        if any(r["flagged"] for r in rows):
            raise Refused("HOLD", f"{moved} on hold")
        if kind == "export.declared":
            assert p["exporter"] == actor_id, "CERTIFICATE"
            assert p["certificate_no"].startswith(actor["country"]), "CERTIFICATE"
            assert p["hs_code"] in HS_CODES, "CERTIFICATE"
            assert points(p["carats"]) == sum(r["points"] for r in rows), "CERTIFICATE"
            assert p["expires"] > day, "CERTIFICATE"
            assert p["destination"] != actor["country"], "CERTIFICATE"
        # what the sample data promises beyond the rules: trade in date order
        if kind.startswith(("parcel.", "export.")):
            assert day >= self.last_trade_day, f"trade out of order at {day}"
            self.last_trade_day = day
        self._write(kind, actor_id, p, rows, day)

    def _write(self, kind: str, actor_id: str, p: dict[str, Any], rows: list[dict[str, Any]],
               day: str) -> None:
        for row in rows:
            if kind == "parcel.transferred":
                row["holder"] = p["to_actor"]
                row["day"] = day
            else:
                row["spent"] = True

        def parcel(pid: str, carats: float, stones: int, flagged: bool = False) -> None:
            assert carats > 0 and stones >= 1
            self.parcels[pid] = {"holder": actor_id, "points": points(carats), "stones": stones,
                                 "spent": False, "flagged": flagged, "day": day}

        if kind == "actor.registered":
            self.actors[p["actor_id"]] = {
                **p, "windows": [(p.get("licence_valid_from"), p.get("licence_valid_to"))]
                if p.get("licence_no") else []}
        elif kind == "licence.renewed":
            self.actors[p["actor_id"]]["windows"].append((p["valid_from"], p["valid_to"]))
        elif kind == "zone.registered":
            self.zones[p["zone_id"]] = {"valid_to": None, **p}
        elif kind == "site.registered":
            self.sites[p["site_id"]] = p
        elif kind == "parcel.purchased":
            flags = self.screen(p) + self.capacity_anomaly(p)
            parcel(p["parcel_id"], p["carats"], p["stones"], bool(flags))
            if flags:
                self.flagged.append(p["parcel_id"])
            if "FOOTPRINT_ANOMALY" in flags:
                self.footprint_flagged.append(p["parcel_id"])
            elif p["site_id"] in self.sites and p["price"]["currency"] == "USD":
                self.references.setdefault(self.sites[p["site_id"]]["licence_no"], []).append(
                    (day, math.log(p["price"]["amount"] / p["carats"]),
                     math.log(p["carats"] / p["stones"])))
        elif kind == "parcel.split":
            for child in p["children"]:
                parcel(child["parcel_id"], child["carats"], child["stones"])
        elif kind == "parcel.merged":
            parcel(p["child"]["parcel_id"], p["child"]["carats"], p["child"]["stones"])
        elif kind == "export.declared":
            self.certificates.add(p["certificate_no"])
            self.exports[p["certificate_no"]] = {"p": p}

    def certificate(self, kind: str, actor_id: str, actor: dict[str, Any], p: dict[str, Any]
                    ) -> None:
        """SPEC 1, 4: the exporter's country validates, the destination's confirms; once
        each; a validation between issue and expiry, a confirmation between the validation
        (or the issue) and the expiry."""
        export = self.exports.get(p["certificate_no"])
        if export is None:
            raise Refused("UNKNOWN_REFERENCE", p["certificate_no"])
        e, validating = export["p"], kind == "certificate.validated"
        country = self.actors[e["exporter"]]["country"] if validating else e["destination"]
        if actor["role"] == "authority" and actor["country"] != country:
            raise Refused("JURISDICTION", f"{actor_id} ({actor['country']}) in {country}")
        done = "validated" if validating else "confirmed"
        if done in export:
            raise Refused("DUPLICATE", f"{p['certificate_no']} {done} twice")
        start = e["date"] if validating else export.get("validated", e["date"])
        if not start <= p["date"] <= e["expires"]:
            raise Refused("DATE_ORDER", f"{p['certificate_no']} {done} on {p['date']}")
        export[done] = p["date"]


def _replay(lines: list[str]) -> Replay:
    replay = Replay()
    for number, line in enumerate(lines, 1):
        try:
            replay.apply(json.loads(line))
        except Refused as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"line {number} refused, {exc}: {line[:300]}")
    return replay


# --- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scenario_lines() -> dict[str, list[str]]:
    files = generate.scenario_files()
    return {name: files[name].read_text("utf-8").splitlines()
            for name in ("events.jsonl", "laundering_exports.jsonl")}


@pytest.fixture(scope="module")
def scale_lines() -> list[str]:
    return list(map(generate.dump_line, generate.events(SCALE_SAMPLE, seed=11)))


@pytest.fixture(scope="module")
def scenario_replay(scenario_lines: dict[str, list[str]]) -> Replay:
    return _replay(scenario_lines["events.jsonl"])


# --- tests --------------------------------------------------------------------------------

def test_same_seed_same_bytes_and_other_seed_other_bytes() -> None:
    def run(seed: int) -> bytes:
        out = io.BytesIO()
        assert generate.write_jsonl(generate.events(3000, seed=seed), out) == 3000
        return out.getvalue()

    assert run(5) == run(5)
    assert run(5) != run(6)
    main_a, attempts_a = generate.scenario()
    main_b, attempts_b = generate.scenario()
    assert (main_a, attempts_a) == (main_b, attempts_b)


def test_checked_in_scenario_equals_a_fresh_generation(tmp_path: Path) -> None:
    fresh = generate.write_scenario(tmp_path)
    checked_in = generate.scenario_files()
    assert sorted(fresh) == sorted(checked_in) == sorted(generate.SCENARIO_FILES)
    for name, path in checked_in.items():
        assert path.read_bytes() == fresh[name].read_bytes(), f"{name}: rerun --scenario"


def test_cli_writes_exactly_n_lines_to_stdout() -> None:
    out = subprocess.run([sys.executable, "-m", "sample_data.generate", "--events", "500",
                          "--seed", "3"], cwd=ROOT, capture_output=True, check=True).stdout
    lines = out.decode("utf-8").splitlines()
    assert len(lines) == 500
    assert lines == list(map(generate.dump_line, generate.events(500, seed=3)))


@pytest.mark.parametrize("n", [0, 1, 10, 36, 37, 100])
def test_events_gives_exactly_n(n: int) -> None:
    assert len(list(generate.events(n))) == n


def test_scenario_lines_match_their_schemas(scenario_lines: dict[str, list[str]]) -> None:
    for lines in scenario_lines.values():
        _check_lines(lines)
    assert 3000 <= len(scenario_lines["events.jsonl"]) <= 5000


def test_scale_lines_match_their_schemas(scale_lines: list[str]) -> None:
    _check_lines(scale_lines)


def test_scenario_obeys_the_custody_rules(scenario_replay: Replay,
                                          scenario_lines: dict[str, list[str]]) -> None:
    lines = scenario_lines["events.jsonl"]
    kinds = [json.loads(line)["kind"] for line in lines]
    # registrations first: actors (officers by admin first), zones, sites, then trade
    head = len(generate.preamble())
    assert kinds[:head] == sorted(kinds[:head], key=["actor.registered", "zone.registered",
                                                     "site.registered"].index)
    assert not {"actor.registered", "zone.registered", "site.registered"} & set(kinds[head:])
    first = [json.loads(line) for line in lines[:4]]
    assert all(e["actor"] == "admin" for e in first)
    assert {e["payload"]["role"] for e in first} == {"officer", "auditor"}
    days = [json.loads(line)["payload"]["date"] for line in lines[head:]]
    assert days[0] >= "2004-01-01" and days[-1] <= "2016-12-31" and days[-1] >= "2016-06-01"
    # only the laundering ring's purchases are flagged, and none of them ever moved
    assert len(scenario_replay.flagged) >= 20
    holders = {scenario_replay.parcels[pid]["holder"] for pid in scenario_replay.flagged}
    assert holders == {world.RING_BUYER}
    assert not any(scenario_replay.parcels[pid]["spent"] for pid in scenario_replay.flagged)


def test_the_licences_still_running_in_2016_are_renewed_and_valid_today_and_on(
        scenario_replay: Replay, scenario_lines: dict[str, list[str]]) -> None:
    """The demo and README write today as the demo's dealers: their licences must hold today
    and on any later day (they ended on 2017-06-30 before the renewals), while the buyer whose
    licence expired in 2009 stays expired; the sites' licence zones are open too."""
    today = datetime.now(UTC).date().isoformat()
    licensed = [a for a in world.ACTORS if a.licence_no]
    assert {a.actor_id for a in licensed if a.licence_valid_to == "2017-06-30"} == {
        a.actor_id for a in licensed} - {world.EXPIRING_BUYER}
    for actor in licensed:
        row = scenario_replay.actors[actor.actor_id]
        # 2017-06-30 and 07-01: the renewal leaves no gap
        for day in ("2017-06-30", "2017-07-01", today, "2099-12-31"):
            assert scenario_replay.licensed(row, day) == (
                actor.actor_id != world.EXPIRING_BUYER), (actor.actor_id, day)
    for site in scenario_replay.sites.values():
        zone = next(z for z in scenario_replay.zones.values()
                    if z.get("licence_no") == site["licence_no"])
        assert scenario_replay._valid(zone, today)
    # the renewals close the file, recorded by the actors' own officers at the end of 2016
    events = [json.loads(line) for line in scenario_lines["events.jsonl"]]
    renewals = [e for e in events if e["kind"] == "licence.renewed"]
    assert events[-len(renewals):] == renewals and len(renewals) == len(licensed) - 1
    assert all(e["payload"]["date"] <= world.LAST_TRADE for e in renewals)


def test_expiring_buyer_stops_trading(scenario_lines: dict[str, list[str]]) -> None:
    mine = [json.loads(line) for line in scenario_lines["events.jsonl"]]
    mine = [e for e in mine if e["actor"] == world.EXPIRING_BUYER]
    assert mine and max(e["payload"]["date"] for e in mine) <= world.EXPIRY
    assert max(e["payload"]["date"] for e in mine) >= "2009-01-01"


def test_every_laundering_attempt_is_refused(scenario_replay: Replay,
                                             scenario_lines: dict[str, list[str]]) -> None:
    attempts = [json.loads(line) for line in scenario_lines["laundering_exports.jsonl"]]
    assert attempts and attempts[0]["kind"] == "parcel.transferred"
    tried: set[str] = set()
    for event in attempts:
        state = copy.deepcopy(scenario_replay)  # each line alone, against the whole scenario
        with pytest.raises(Refused) as refusal:
            state.apply(event)
        p = event["payload"]
        if event["kind"] == "parcel.transferred":
            assert refusal.value.rule == "HOLD"
            tried.add(p["parcel_id"])
        else:
            assert event["kind"] == "export.declared"
            assert refusal.value.rule in ("HOLDER", "HOLD")
            assert set(p["parcel_ids"]) <= tried
            # and even once the transfers were let through, the export itself is held
            for pid in p["parcel_ids"]:
                state.parcels[pid]["holder"] = p["exporter"]
            with pytest.raises(Refused, match="HOLD"):
                state.apply(event)
    assert tried == set(scenario_replay.flagged)


def test_scale_sample_obeys_the_custody_rules(scale_lines: list[str]) -> None:
    replay = _replay(scale_lines)
    kinds = Counter(json.loads(line)["kind"] for line in scale_lines[len(generate.preamble()):])
    total = sum(kinds.values())
    target = {"parcel.purchased": 0.55, "parcel.transferred": 0.20, "parcel.split": 0.10,
              "parcel.merged": 0.07, "export.declared": 0.08}
    for kind, share in target.items():
        assert abs(kinds[kind] / total - share) < 0.02, (kind, kinds[kind] / total)
    bought = kinds["parcel.purchased"]
    assert 0 < len(replay.flagged) < 0.01 * bought
    assert not any(replay.parcels[pid]["spent"] or replay.parcels[pid]["holder"].startswith(
        "exporter") for pid in replay.flagged)


def test_laundering_dig_points_lie_in_the_rebel_north_not_in_ghana(
        scenario_replay: Replay, scenario_lines: dict[str, list[str]]) -> None:
    zones = {json.loads(line)["payload"]["zone_id"]: json.loads(line)["payload"]
             for line in scenario_lines["events.jsonl"] if '"zone.registered"' in line[:40]}
    rebel = zones["RISK-CI-REBEL-NORTH"]["geometry"]["coordinates"][0]
    embargo = zones["RISK-CI-UN-EMBARGO"]["geometry"]["coordinates"][0]
    ghana = [z["geometry"]["coordinates"][0] for z in zones.values()
             if z.get("licence_no", "").startswith("GH")]
    purchases = {e["payload"]["parcel_id"]: e["payload"] for e in map(
        json.loads, scenario_lines["events.jsonl"]) if e["kind"] == "parcel.purchased"}
    for pid in scenario_replay.flagged:
        p = purchases[pid]
        if "dig_location" not in p:  # the ring's later purchases: only the footprint shows them
            assert p["date"] >= generate.RING_UNPLACED
            assert "FOOTPRINT_ANOMALY" in scenario_replay.screen(p), pid
            continue
        lon, lat = p["dig_location"]["coordinates"]
        assert inside(rebel, lon, lat) and inside(embargo, lon, lat), pid
        assert not any(inside(ring, lon, lat) for ring in ghana), pid
        assert scenario_replay.sites[p["site_id"]]["country"] == "GH"
        assert "IN_RISK_AREA" in scenario_replay.screen(p)
        assert "OUTSIDE_LICENSED_ZONE" in scenario_replay.screen(p)
    # every purchase that leaves out its dig point is the ring's, and its footprint gives it away
    unplaced = {pid for pid, p in purchases.items() if "dig_location" not in p}
    assert len(unplaced) >= 20
    assert unplaced <= set(scenario_replay.footprint_flagged)
    if shape is not None:
        assert shape({"type": "Polygon", "coordinates": [rebel]}).within(
            shape({"type": "Polygon", "coordinates": [embargo]}))


def test_towns_sites_and_zones_agree() -> None:
    for zone in world.LICENCE_ZONES:
        assert sum(zone.contains(*xy) for xy in world.TOWNS.values()) == 1, zone.zone_id
    for town in ("Séguéla", "Tortiya"):
        assert world.point_in_ring(*world.TOWNS[town], world.REBEL_NORTH_RING)
    for site in world.SITES:
        assert site.zone.contains(site.lon, site.lat)
        assert not any(z.contains(site.lon, site.lat) for z in world.RISK_ZONES)


def test_footprints_differ_by_area_and_the_ring_looks_ivorian(
        scenario_replay: Replay, scenario_lines: dict[str, list[str]]) -> None:
    by_area: dict[str, list[tuple[float, float]]] = {"GH": [], "SL": [], "ring": []}
    flagged = set(scenario_replay.flagged)
    for event in map(json.loads, scenario_lines["events.jsonl"]):
        if event["kind"] != "parcel.purchased":
            continue
        p = event["payload"]
        area = "ring" if p["parcel_id"] in flagged else p["site_id"][:2]
        by_area[area].append((p["price"]["amount"] / p["carats"], p["carats"] / p["stones"]))
    gh, sl, ring = (by_area[k] for k in ("GH", "SL", "ring"))
    def mean(values: list[tuple[float, float]], i: int) -> float:
        return sum(v[i] for v in values) / len(values)

    # no overlap between Ghana's clean parcels and the ring's, in US$/ct and in stone size
    assert max(v for v, _ in gh) < min(v for v, _ in ring)
    assert max(s for _, s in gh) < min(s for _, s in ring)
    assert 20 <= mean(gh, 0) <= 60 < 150 <= mean(ring, 0) < mean(sl, 0) <= 600
    assert 0.05 <= mean(gh, 1) <= 0.2 < mean(ring, 1) < mean(sl, 1) <= 2


def test_zone_and_actor_files_match_the_events(scenario_lines: dict[str, list[str]]) -> None:
    files = generate.scenario_files()
    events = [json.loads(line) for line in scenario_lines["events.jsonl"]]
    zones = {e["payload"]["zone_id"]: e["payload"] for e in events
             if e["kind"] == "zone.registered"}
    for name, zone_type in (("zones_licence.geojson", "licence"), ("zones_risk.geojson", "risk")):
        collection = json.loads(files[name].read_text("utf-8"))
        assert collection["type"] == "FeatureCollection"
        for feature in collection["features"]:
            props = feature["properties"]
            payload = zones.pop(props["zone_id"])
            assert {**props, "zone_type": zone_type, "geometry": feature["geometry"]} == payload
    assert not zones
    actors = {e["payload"]["actor_id"]: e["payload"] for e in events
              if e["kind"] == "actor.registered"}
    with files["actors.csv"].open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["actor_id"] for r in rows] == list(actors) or {r["actor_id"] for r in rows} == set(
        actors)
    for row in rows:
        payload = actors[row["actor_id"]]
        for key, value in row.items():
            assert (payload.get(key) or "") == value, (row["actor_id"], key)


def test_memory_does_not_grow_with_n() -> None:
    stream = generate.events(60_000, seed=9)
    tracemalloc.start()
    try:
        for _ in range(10_000):
            next(stream)
        settled, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in stream:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - settled < 512 * 1024, f"grew by {peak - settled} bytes over 50,000 events"
