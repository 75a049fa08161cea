"""A deterministic, seeded generator of `alluvial ingest` lines, and the checked-in scenario.

    python -m sample_data.generate --scenario            # rewrite sample_data/scenario/
    python -m sample_data.generate --events N [--seed S] [--out FILE|-]

Both begin with the same registrations (officers by ``admin``, then buyers, exporters,
zones and sites by the officers) and go on with trade in chronological order over
2004-2016: purchases at sites, transfers, splits, merges and exports under KP
certificates, every event one the ledger accepts (SPEC 4). The scenario ends with the
renewal of the licences still running (:func:`renewals`), so that its dealers may trade
today; scale mode has no renewals. Trade keeps only bounded
state, a pool of at most :data:`CAP` open parcels per holder, so memory does not grow
with N. Carats and money are integer hundredths inside, divided by 100 only when
written. Only ``random.Random(seed)`` draws, so one seed gives the same bytes.

Parcels whose dig point lies outside their site's licence zone (the laundering ring
in the scenario, a ``risk_fraction`` of purchases in scale mode) are flagged by
screening and therefore on hold: they are never moved again.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import sys
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from sample_data import world as w

SEED = 2007  # the Kimberley Process's 2007 programme of action on Côte d'Ivoire
SCENARIO_TRADE = 4000  # trade events in the checked-in scenario
SCENARIO_DIR = Path(__file__).resolve().parent / "scenario"
SCENARIO_FILES = ("zones_licence.geojson", "zones_risk.geojson", "actors.csv", "events.jsonl",
                  "laundering_exports.jsonl")

# The mix of trade events (cumulative thresholds): 55% purchases, 20% transfers,
# 10% splits, 7% merges, 8% exports. An event that cannot happen (nobody holds a
# parcel yet) becomes a purchase.
P_PURCHASE, P_TRANSFER, P_SPLIT, P_MERGE = 0.55, 0.75, 0.85, 0.92
CAP = 48  # open parcels per holder kept in memory: a full holder merges instead of buying
MAX_MERGE = 16  # parents of one merge (buyers consolidate many small purchases into lots)
MAX_EXPORT = 12  # parcels under one certificate
TO_EXPORTER = 0.75  # share of transfers that go to the country's exporter
RISK_FRACTION = 0.005  # scale mode: purchases dug in the Ivorian risk area (held forever)
RING_FROM, RING_TO, RING_SHARE = "2006-02-01", "2010-11-30", 0.5  # the laundering ring
RING_UNPLACED = "2008-07-01"  # from this day on, the ring's purchases declare no dig point
CERT_DAYS = 60  # a KP certificate's validity
HS = {"GH": (("7102.21", 0.7), ("7102.10", 1.0)), "SL": (("7102.31", 0.75), ("7102.10", 1.0))}

Event = dict[str, Any]
Parcel = list[Any]  # [parcel_id, points (1/100 ct), stones, value in cents]


def _days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def _after(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def _money(cents: int) -> dict[str, Any]:
    return {"amount": cents / 100, "currency": "USD"}


def preamble() -> list[Event]:
    """Registrations: officers and the auditor by admin, buyers and exporters, zones, sites."""
    out: list[Event] = []
    for actor in sorted(w.ACTORS, key=lambda a: a.registered_by != "admin"):
        out.append({"kind": "actor.registered", "actor": actor.registered_by,
                    "payload": actor.payload()})
    for zone in w.ZONES:
        out.append({"kind": "zone.registered", "actor": zone.officer, "payload": zone.payload()})
    officer = {"GH": "officer-gh", "SL": "officer-sl", "CI": "officer-ci"}
    for site in w.SITES:
        out.append({"kind": "site.registered", "actor": officer[site.zone.country],
                    "payload": site.payload()})
    return out


def renewals() -> list[Event]:
    """The scenario's last lines: each licence still running renewed by its officer."""
    return [{"kind": "licence.renewed", "actor": actor.registered_by, "payload": payload}
            for actor in w.ACTORS if (payload := actor.renewal()) is not None]


class _Trade:
    """The trade after the registrations, n events, as a generator (:meth:`run`)."""

    def __init__(self, rng: random.Random, ring: list[tuple[Any, ...]] | None,
                 risk_fraction: float) -> None:
        self.rand = rng.random
        self.ring = ring  # the scenario's laundered parcels, collected; None in scale mode
        self.risk_fraction = risk_fraction
        self.buyers = [a for a in w.ACTORS if a.role == "buyer"]
        self.exporters = [w.EXPORTER_OF[c] for c in ("GH", "SL")]
        self.pools: dict[str, list[Parcel]] = {a.actor_id: [] for a in self.buyers}
        self.pools.update({e: [] for e in self.exporters})
        self.country = {a.actor_id: a.country for a in w.ACTORS}
        self.parcels = 0
        self.certificates: dict[tuple[str, str], int] = {}
        self._set_active(self.buyers)

    def _set_active(self, buyers: list[w.Actor]) -> None:
        self.active = buyers
        self.holders = [b.actor_id for b in buyers] + self.exporters
        self.total_weight = sum(b.weight for b in buyers)
        self.peers = {c: [b.actor_id for b in buyers if b.country == c] for c in ("GH", "SL")}
        self.sites = {b.actor_id: [s for a in b.areas for s in w.SITES_BY_AREA[a]]
                      for b in buyers}

    def _new_id(self, holder: str) -> str:
        self.parcels += 1
        return f"{self.country[holder]}-P{self.parcels:08d}"

    def _holder_with(self, candidates: list[str], least: int) -> str | None:
        """A holder, from a random start, whose pool holds at least ``least`` parcels."""
        n = len(candidates)
        start = int(self.rand() * n)
        for i in range(n):
            holder = candidates[(start + i) % n]
            if len(self.pools[holder]) >= least:
                return holder
        return None

    # --- the five kinds of trade event ---------------------------------------------------

    def purchase(self, day: str) -> Event:
        rand = self.rand
        pick = rand() * self.total_weight
        buyer = self.active[-1]
        for b in self.active:
            pick -= b.weight
            if pick < 0:
                buyer = b
                break
        bid = buyer.actor_id
        pool = self.pools[bid]
        if len(pool) >= CAP:
            return self._merge_at(day, bid)
        sites = self.sites[bid]
        site = sites[int(rand() * len(sites))]
        if self.ring is not None:
            dirty = bid == w.RING_BUYER and RING_FROM <= day <= RING_TO and rand() < RING_SHARE
        else:
            dirty = rand() < self.risk_fraction
        fp = w.IVORY_COAST if dirty else w.FOOTPRINT_OF[buyer.country]
        # log-uniform: no clean purchase strays far (in robust deviations) from its area's median
        size = fp.size_lo * (fp.size_hi / fp.size_lo) ** rand()
        stones = fp.stones_lo + int(rand() * (fp.stones_hi - fp.stones_lo + 1))
        points = int(stones * size * 100 + 0.5) or 1
        usd = fp.usd_lo * (fp.usd_hi / fp.usd_lo) ** rand() * w.MARKET[int(day[:4])]
        cents = int(points * usd + 0.5)
        if dirty:
            lon, lat = self._risk_point()  # drawn even when left out: the same draws follow
        else:
            zone = site.zone
            while True:
                lon = round(site.lon + (rand() - 0.5) * 0.03, 5)
                lat = round(site.lat + (rand() - 0.5) * 0.03, 5)
                if zone.contains(lon, lat):
                    break
        sellers = w.SELLERS[buyer.country]
        pid = self._new_id(bid)
        if not dirty:
            pool.append([pid, points, stones, cents])
        elif self.ring is not None:
            self.ring.append((pid, points, stones, cents, day))
        payload = {
            "parcel_id": pid, "site_id": site.site_id,
            "seller": sellers[int(rand() * len(sellers))], "date": day,
            "carats": points / 100, "stones": stones, "price": _money(cents),
            "dig_location": {"type": "Point", "coordinates": [lon, lat]}}
        if dirty and self.ring is not None and day >= RING_UNPLACED:
            del payload["dig_location"]  # SPEC 5: only the footprint can show where it was dug
        return {"kind": "parcel.purchased", "actor": bid, "payload": payload}

    def _risk_point(self) -> tuple[float, float]:
        """A dig point in rebel-held northern Côte d'Ivoire, near Séguéla or Tortiya."""
        rand = self.rand
        cx, cy = w.LAUNDERING_CENTRES[int(rand() * len(w.LAUNDERING_CENTRES))]
        while True:
            lon = round(cx + (rand() - 0.5) * 0.5, 5)
            lat = round(cy + (rand() - 0.5) * 0.5, 5)
            if w.point_in_ring(lon, lat, w.REBEL_NORTH_RING):
                return lon, lat

    def transfer(self, day: str) -> Event | None:
        rand = self.rand
        src = self._holder_with(self.holders[:-len(self.exporters)], 1)
        if src is None:
            return None
        country = self.country[src]
        exporter = w.EXPORTER_OF[country]
        dest = exporter
        peers = self.peers[country]
        if rand() >= TO_EXPORTER and len(peers) > 1:
            dest = peers[int(rand() * len(peers))]
            if dest == src or len(self.pools[dest]) >= CAP:
                dest = exporter
        if len(self.pools[dest]) >= CAP:
            return self._export_at(day, dest)
        pool = self.pools[src]
        i = int(rand() * len(pool))
        parcel = pool[i]
        pool[i] = pool[-1]
        pool.pop()
        parcel[3] = int(parcel[3] * (1.02 + rand() * 0.06) + 0.5)
        self.pools[dest].append(parcel)
        return {"kind": "parcel.transferred", "actor": src, "payload": {
            "parcel_id": parcel[0], "to_actor": dest, "date": day, "price": _money(parcel[3])}}

    def split(self, day: str) -> Event | None:
        rand = self.rand
        holder = self._holder_with(self.holders, 1)
        if holder is None:
            return None
        pool = self.pools[holder]
        if len(pool) >= CAP:
            return self._merge_at(day, holder)
        i = int(rand() * len(pool))
        parcel = pool[i]
        pid, points, stones, cents = parcel
        if stones < 2 or points < 2:
            return None
        k = 3 if stones >= 3 and points >= 3 and rand() < 0.3 else 2
        loss = int(points * rand() * 0.004)  # cleaning and reweighing
        if points - loss < k:
            loss = 0
        fractions = [0.2 + 0.6 * rand() for _ in range(k - 1)]
        kept = points - loss
        child_points = _parts(kept, fractions)
        child_stones = _parts(stones, fractions)
        pool[i] = pool[-1]
        pool.pop()
        children = []
        given = 0
        for j in range(k):
            value = cents - given if j == k - 1 else cents * child_points[j] // kept
            given += value
            cid = self._new_id(holder)
            pool.append([cid, child_points[j], child_stones[j], value])
            children.append({"parcel_id": cid, "carats": child_points[j] / 100,
                             "stones": child_stones[j]})
        return {"kind": "parcel.split", "actor": holder, "payload": {
            "parent_id": pid, "children": children, "date": day}}

    def merge(self, day: str) -> Event | None:
        holder = self._holder_with(self.holders, 2)
        return None if holder is None else self._merge_at(day, holder)

    def _merge_at(self, day: str, holder: str) -> Event:
        pool = self.pools[holder]
        size = len(pool)
        m = 2 + int(self.rand() * (min(size, MAX_MERGE) - 1))
        parents = pool[size - m:]
        del pool[size - m:]
        points = sum(p[1] for p in parents)
        stones = sum(p[2] for p in parents)
        cid = self._new_id(holder)
        pool.append([cid, points, stones, sum(p[3] for p in parents)])
        return {"kind": "parcel.merged", "actor": holder, "payload": {
            "parent_ids": [p[0] for p in parents],
            "child": {"parcel_id": cid, "carats": points / 100, "stones": stones},
            "date": day}}

    def export(self, day: str) -> Event | None:
        exporter = self._holder_with(self.exporters, 1)
        return None if exporter is None else self._export_at(day, exporter)

    def _export_at(self, day: str, exporter: str) -> Event:
        pool = self.pools[exporter]
        size = len(pool)
        e = 1 + int(self.rand() * min(size, MAX_EXPORT))
        parcels = pool[size - e:]
        del pool[size - e:]
        return self._declare(exporter, parcels, day)

    def _declare(self, exporter: str, parcels: list[Parcel], day: str) -> Event:
        rand = self.rand
        country = self.country[exporter]
        key = (country, day[:4])
        number = self.certificates[key] = self.certificates.get(key, 0) + 1
        destination, importer = w.IMPORTERS[int(rand() * len(w.IMPORTERS))]
        pick = rand()
        hs_code = next(code for code, upto in HS[country] if pick < upto)
        points = sum(p[1] for p in parcels)
        value = int(sum(p[3] for p in parcels) * (1.01 + rand() * 0.05) + 0.5)
        return {"kind": "export.declared", "actor": exporter, "payload": {
            "certificate_no": f"{country}-{day[:4]}-{number:06d}", "exporter": exporter,
            "importer": importer, "destination": destination, "hs_code": hs_code,
            "parcel_ids": [p[0] for p in parcels], "carats": points / 100,
            "value_usd": value / 100, "date": day, "expires": _after(day, CERT_DAYS)}}

    # --- the whole run ------------------------------------------------------------------

    def _retire(self, buyer_id: str, day: str) -> Iterator[Event]:
        """The expiring buyer sells its stock to the exporter on its last day, then stops."""
        exporter = w.EXPORTER_OF[self.country[buyer_id]]
        for parcel in self.pools.pop(buyer_id):
            parcel[3] = int(parcel[3] * 1.03 + 0.5)
            self.pools[exporter].append(parcel)
            yield {"kind": "parcel.transferred", "actor": buyer_id, "payload": {
                "parcel_id": parcel[0], "to_actor": exporter, "date": day,
                "price": _money(parcel[3])}}
        self._set_active([b for b in self.active if b.actor_id != buyer_id])

    def run(self, n: int) -> Iterator[Event]:
        days = _days(w.FIRST_TRADE, w.LAST_TRADE)
        nd = len(days)
        rand = self.rand
        expiring = [b for b in self.buyers if b.licence_valid_to and b.licence_valid_to < days[-1]]
        k = 0
        while k < n:
            day = days[k * nd // n]
            if expiring and day > (expiring[0].licence_valid_to or ""):
                retiring = expiring.pop(0)
                last = min(retiring.licence_valid_to or day, days[max(0, (k - 1) * nd // n)])
                for sale in self._retire(retiring.actor_id, last):
                    if k >= n:
                        return
                    yield sale
                    k += 1
                continue
            r = rand()
            event: Event | None
            if r < P_PURCHASE:
                event = self.purchase(day)
            elif r < P_TRANSFER:
                event = self.transfer(day)
            elif r < P_SPLIT:
                event = self.split(day)
            elif r < P_MERGE:
                event = self.merge(day)
            else:
                event = self.export(day)
            yield event or self.purchase(day)
            k += 1

    def attempts(self) -> Iterator[Event]:
        """The laundering ring's tries to export its held parcels (all refused by the ledger)."""
        assert self.ring is not None
        rand, exporter = self.rand, w.EXPORTER_OF["GH"]
        i = 0
        while i < len(self.ring):
            group = self.ring[i:i + 2 + int(rand() * 3)]
            i += len(group)
            day = _after(max(p[4] for p in group), 10 + int(rand() * 30))
            parcels: list[Parcel] = []
            for pid, points, stones, cents, _ in group:
                cents = int(cents * 1.04 + 0.5)
                parcels.append([pid, points, stones, cents])
                # SPEC 4 HOLD: refused, the parcel has open screening flags
                yield {"kind": "parcel.transferred", "actor": w.RING_BUYER, "payload": {
                    "parcel_id": pid, "to_actor": exporter, "date": day, "price": _money(cents)}}
            # SPEC 4 HOLDER (and HOLD behind it): the exporter never got these parcels
            yield self._declare(exporter, parcels, day)


def _parts(total: int, fractions: list[float]) -> list[int]:
    """len(fractions) + 1 positive integers summing to ``total`` (>= that many)."""
    out, left, k = [], total, len(fractions) + 1
    for i, f in enumerate(fractions):
        x = min(max(1, int(left * f + 0.5)), left - (k - i - 1))
        out.append(x)
        left -= x
    out.append(left)
    return out


def events(n: int, seed: int = SEED, risk_fraction: float = RISK_FRACTION) -> Iterator[Event]:
    """The first ``n`` ingest events of the scale stream: registrations, then trade.

    A ``risk_fraction`` of purchases is dug in the Ivorian risk area; those parcels are
    flagged on purchase and never moved. Constant memory whatever ``n``.
    """
    head = preamble()
    yield from head[:n]
    if n > len(head):
        yield from _Trade(random.Random(seed), None, risk_fraction).run(n - len(head))


# Issue 18: the share of exports their country's authority validates, the share of those
# bound for Antwerp that the Belgian authority confirms (the other destinations have no
# authority in the ledger), and the days each takes.
VALIDATED, CONFIRMED = 0.9, 0.85
VALIDATION_DAYS, CONFIRMATION_DAYS = (1, 6), (5, 30)


def certificates(trade: Iterable[Event], seed: int = SEED) -> list[Event]:
    """The authorities' part (SPEC 4 certificate.validated, import.confirmed): each export
    validated within days by its country's authority (valuation within -8%..+12% of the
    declared value), and most of those bound for BE confirmed by the Belgian authority
    within weeks, as certified, except the last one of 2015: 10% of its carats did not
    arrive (SPEC 5 CONFIRMATION_MISMATCH). Its own random stream: the trade is unchanged."""
    rand = random.Random(seed * 18 + 1).random
    validations: list[Event] = []
    confirmations: list[Event] = []
    for event in trade:
        if event["kind"] != "export.declared":
            continue
        p = event["payload"]
        country, start = p["certificate_no"][:2], p["date"]
        if rand() < VALIDATED:
            lo, hi = VALIDATION_DAYS
            start = min(_after(p["date"], lo + int(rand() * (hi - lo + 1))), p["expires"])
            valuers = w.VALUERS[country]
            validations.append({"kind": "certificate.validated", "actor": w.AUTHORITY_OF[country],
                                "payload": {
                "certificate_no": p["certificate_no"], "date": start,
                "valuation_usd": round(p["value_usd"] * (0.92 + rand() * 0.2), 2),
                "officer": valuers[int(rand() * len(valuers))]}})
        if p["destination"] in w.AUTHORITY_OF and rand() < CONFIRMED:
            lo, hi = CONFIRMATION_DAYS
            day = min(_after(start, lo + int(rand() * (hi - lo + 1))), p["expires"])
            confirmations.append({"kind": "import.confirmed",
                                  "actor": w.AUTHORITY_OF[p["destination"]], "payload": {
                "certificate_no": p["certificate_no"], "date": day,
                "carats_received": p["carats"], "parcels_received": len(p["parcel_ids"]),
                "importer": p["importer"]}})
    short = max((c for c in confirmations if c["payload"]["certificate_no"][3:7] == "2015"),
                key=lambda c: c["payload"]["date"])["payload"]
    short["carats_received"] = round(short["carats_received"] * 0.9, 2)
    return validations + confirmations


def scenario(seed: int = SEED) -> tuple[list[Event], list[Event]]:
    """The checked-in scenario: (events.jsonl, laundering_exports.jsonl) as event lists."""
    trade = _Trade(random.Random(seed), [], 0.0)
    history = list(trade.run(SCENARIO_TRADE))
    main = preamble() + history + certificates(history, seed) + renewals()
    return main, list(trade.attempts())


# --- writing ------------------------------------------------------------------------------

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def dump_line(event: Event) -> str:
    """One ingest line, compact JSON, UTF-8 text without escapes, no newline."""
    return _encode(event)


def write_jsonl(stream: Iterable[Event], out: BinaryIO, chunk: int = 4096) -> int:
    """Write events one per line; returns the number of lines."""
    count = 0
    it = iter(stream)
    while batch := list(islice(it, chunk)):
        out.write(("\n".join(map(_encode, batch)) + "\n").encode("utf-8"))
        count += len(batch)
    return count


def _geojson(zones: Iterable[w.Zone]) -> str:
    features = []
    for zone in zones:
        props = zone.payload()
        geometry = props.pop("geometry")
        props.pop("zone_type")
        features.append({"type": "Feature", "properties": props, "geometry": geometry})
    return json.dumps({"type": "FeatureCollection", "features": features},
                      ensure_ascii=False, indent=1) + "\n"


def _actors_csv() -> str:
    buf = io.StringIO()
    fields = ("actor_id", "name", "role", "country", "licence_no", "licence_valid_from",
              "licence_valid_to")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(fields)
    for a in w.ACTORS:
        writer.writerow([getattr(a, f) or "" for f in fields])
    return buf.getvalue()


def write_scenario(folder: Path = SCENARIO_DIR, seed: int = SEED) -> dict[str, Path]:
    """Write the five scenario files into ``folder``; returns their paths by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    main, attempts = scenario(seed)
    paths = {name: folder / name for name in SCENARIO_FILES}
    paths["zones_licence.geojson"].write_bytes(_geojson(w.LICENCE_ZONES).encode("utf-8"))
    paths["zones_risk.geojson"].write_bytes(_geojson(w.RISK_ZONES).encode("utf-8"))
    paths["actors.csv"].write_bytes(_actors_csv().encode("utf-8"))
    for name, stream in (("events.jsonl", main), ("laundering_exports.jsonl", attempts)):
        with paths[name].open("wb") as out:
            write_jsonl(stream, out)
    return paths


def scenario_files() -> dict[str, Path]:
    """The checked-in scenario files, by file name (``events.jsonl``, ``actors.csv``...)."""
    return {name: SCENARIO_DIR / name for name in SCENARIO_FILES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sample_data.generate",
        description="Generate Alluvial Ledger sample data: the checked-in scenario, or N "
                    "ingest lines for benchmarks (streamed, constant memory).")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--scenario", action="store_true",
                      help=f"write the scenario files into --out-dir (default {SCENARIO_DIR})")
    what.add_argument("--events", type=int, metavar="N", help="write N ingest lines")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    parser.add_argument("--out", default="-", help="file for --events, - for stdout (default)")
    parser.add_argument("--out-dir", type=Path, default=SCENARIO_DIR,
                        help="folder for --scenario")
    args = parser.parse_args(argv)
    if args.scenario:
        for path in write_scenario(args.out_dir, args.seed).values():
            print(path)
        return 0
    if args.events < 0:
        parser.error("--events must be 0 or more")
    stream = events(args.events, args.seed)
    if args.out == "-":
        write_jsonl(stream, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        with open(args.out, "wb") as out:
            write_jsonl(stream, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
