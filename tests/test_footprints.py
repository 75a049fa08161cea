"""FOOTPRINT_ANOMALY and CAPACITY_ANOMALY (SPEC 5), sieve classes and evidence (issue 17).

One history is written twice into the same database, under two sets of licences and
sites: once screened as it is written (W), in one session as `ingest` writes it, and once
as history that nobody screened (H), which `rescreen` then judges. A Birim-like zone has
two years of ordinary purchases (about 40 USD/ct, small stones); in 2008 its sites also
declare purchases that look like Séguéla's (about 150 USD/ct, carat-sized stones) with no
dig point. Beside it: zones with 29 and 30 purchases of reference, a zone whose reference
has no spread, a pit of tens of carats a month and a site registered at 100 ct a month.
"""

from __future__ import annotations

import math
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from ledger.bundle.verify import verify_bundle
from ledger.errors import LedgerError
from ledger.geo.patterns import judge, measure
from ledger.recorder.events import Event, Ledger
from ledger.recorder.rescreen import rescreen
from tests.conftest import Auth
from tests.test_bundle import forge, story
from tests.test_custody import licensed
from tests.test_pages import seed, sign_in

SQUARE = {"type": "Polygon", "coordinates": [[[-1.0, 5.9], [-0.6, 5.9], [-0.6, 6.3],
                                             [-1.0, 6.3], [-1.0, 5.9]]]}
INSIDE = {"type": "Point", "coordinates": [-0.8, 6.1]}
ZONES = ("BIRIM", "THIN29", "THIN30", "FLAT", "PIT")
# (site, zone, capacity_ct_month or None)
SITES = [("B1", "BIRIM", None), ("B2", "BIRIM", None), ("T29", "THIN29", None),
         ("T30", "THIN30", None), ("FL", "FLAT", None), ("PIT", "PIT", None),
         ("CAP", "PIT", 100)]

Purchase = dict[str, Any]


def day(start: str, n: int) -> str:
    return (date.fromisoformat(start) + timedelta(days=n)).isoformat()


def sale(pid: str, site: str, when: str, carats: float, stones: int, usd_per_ct: float,
         currency: str = "USD") -> Purchase:
    return {"parcel_id": pid, "site_id": site, "seller": "Kofi Boateng", "date": when,
            "carats": carats, "stones": stones,
            "price": {"amount": round(usd_per_ct * carats, 2), "currency": currency}}


def drawn(rng: np.random.Generator, pid: str, site: str, when: str, usd_per_ct: float,
          stone_ct: float) -> Purchase:
    """A purchase whose price per carat and stone size scatter about the given ones."""
    size = stone_ct * math.exp(rng.normal(0, 0.3))
    stones = int(rng.integers(5, 40))
    carats = max(0.01, round(size * stones, 2))
    return sale(pid, site, when, carats, stones, usd_per_ct * math.exp(rng.normal(0, 0.3)))


def history() -> tuple[list[Purchase], dict[str, set[str]]]:
    """The purchases in date order, and the parcel ids by role in the story."""
    rng = np.random.default_rng(17)
    out: list[Purchase] = []
    roles: dict[str, set[str]] = {"ordinary-2008": set(), "laundered": set()}
    for n in range(0, 731, 2):  # 2006-01-01 .. 2007-12-31, every other day
        out.append(drawn(rng, f"O{n}", "B1" if n % 4 else "B2", day("2006-01-01", n), 40, 0.3))
    for n in range(0, 366, 2):  # 2008: ordinary purchases go on...
        pid = f"N{n}"
        out.append(drawn(rng, pid, "B1" if n % 4 else "B2", day("2008-01-01", n), 40, 0.3))
        roles["ordinary-2008"].add(pid)
        if n % 8 == 4:  # ... and the ring's, declared at the same sites, without dig points
            pid = f"L{n}"
            out.append(drawn(rng, pid, "B2", day("2008-01-01", n), 150, 1.2))
            roles["laundered"].add(pid)
    # Reference of 29 and of 30 ordinary purchases, then one far off the footprint.
    for site, count in (("T29", 29), ("T30", 30)):
        out += [drawn(rng, f"{site}-{k}", site, day("2007-02-01", 10 * k), 40, 0.3)
                for k in range(count)]
        out.append(sale(f"{site}-odd", site, "2008-01-20", 60.0, 50, 400.0))
    # No spread: 40 identical purchases, then one far off (SPEC silent: MAD 0, not judged).
    out += [sale(f"FL-{k}", "FL", day("2007-02-01", 8 * k), 10.0, 30, 40.0) for k in range(40)]
    out.append(sale("FL-odd", "FL", "2008-01-20", 60.0, 50, 400.0))
    # A pit of tens of carats a month, then 5,000 ct and 20,000 stones in one day.
    out += [drawn(rng, f"PIT-{k}", "PIT", day("2007-01-05", 10 * k), 40, 0.3)
            for k in range(36)]
    out.append(sale("PIT-big", "PIT", "2008-01-10", 5000.0, 20000, 40.0))
    # A site registered at 100 ct a month: 40 + 40 + 20 is not past 100, +5 is, +10 after.
    for k, carats in enumerate((40.0, 40.0, 20.0, 5.0, 10.0)):
        out.append(sale(f"CAP-{k}", "CAP", f"2008-03-{10 + k:02d}", carats, 20, 40.0))
    out.sort(key=lambda p: p["date"])  # stable: the order above within a day
    return out, roles


def register(book: Ledger, prefix: str) -> None:
    """The zones and sites of one copy of the world, ids prefixed."""
    with book.session() as s:
        for zone in ZONES:
            s.write(Event("zone.registered", "off-gh", {
                "zone_id": f"{prefix}Z-{zone}", "zone_type": "licence", "geometry": SQUARE,
                "date": "2004-01-06", "valid_from": "2000-01-01", "valid_to": None,
                "licence_no": f"GH-{prefix}{zone}", "holder": "Coop"}))
        for site, zone, capacity in SITES:
            extra = {} if capacity is None else {"capacity_ct_month": capacity}
            s.write(Event("site.registered", "off-gh", {
                "site_id": f"{prefix}{site}", "name": "Pit", "location": INSIDE,
                "licence_no": f"GH-{prefix}{zone}", "operator": "Coop", "country": "GH",
                "date": "2004-01-07", **extra}))


def write_history(book: Ledger, prefix: str, purchases: list[Purchase]) -> None:
    with book.session() as s:
        for p in purchases:
            s.write(Event("parcel.purchased", "buyer-a", {
                **p, "parcel_id": prefix + p["parcel_id"], "site_id": prefix + p["site_id"]}))


def flags_by_parcel(book: Ledger, prefix: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    with book.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT subject_id, code FROM flags WHERE subject_type = "
                                    "'parcel'").all()
    for subject, code in rows:
        if subject.startswith(prefix):
            found.setdefault(subject[len(prefix):], set()).add(code)
    return found


def details(book: Ledger, parcel_id: str, code: str) -> list[str]:
    with book.engine.connect() as conn:
        return [d for d, in conn.execute(sa.text(
            "SELECT detail FROM flags WHERE subject_id = :s AND code = :c"),
            {"s": parcel_id, "c": code})]


@pytest.fixture
def world(ledger: Ledger) -> tuple[Ledger, dict[str, set[str]]]:
    """W written with screening; H written unscreened, then rescreened (twice)."""
    ledger.write(Event("actor.registered", "admin", {
        "actor_id": "off-gh", "name": "Minerals Commission", "role": "officer",
        "country": "GH", "date": "2004-01-02"}))
    ledger.write(Event("actor.registered", "off-gh", licensed("buyer-a", "buyer")))
    purchases, roles = history()
    register(ledger, "W")
    write_history(ledger, "W", purchases)
    unscreened = Ledger(ledger.engine, ledger.log.key, screening=(), late_days=ledger.late_days)
    register(unscreened, "H")
    write_history(unscreened, "H", purchases)
    return ledger, roles


def test_footprints_and_capacity_at_write_time_and_by_rescreen(
        world: tuple[Ledger, dict[str, set[str]]]) -> None:
    book, roles = world
    at_write = flags_by_parcel(book, "W")
    assert flags_by_parcel(book, "H") == {}

    report = rescreen(book)

    # Write-time and rescreen flags agree exactly: same codes, same parcels.
    assert flags_by_parcel(book, "H") == at_write
    assert flags_by_parcel(book, "W") == at_write  # rescreen added nothing to the screened
    assert report.new_flags == sum(len(codes) for codes in at_write.values())
    size = book.log.size()
    assert rescreen(book).new_flags == 0  # a second rescreen adds nothing
    assert book.log.size() == size

    # Acceptance 1: >= 90% of the ring's purchases flagged, <= 1% of the ordinary ones.
    footprint = {pid for pid, codes in at_write.items() if "FOOTPRINT_ANOMALY" in codes}
    caught = len(footprint & roles["laundered"]) / len(roles["laundered"])
    false = len(footprint & roles["ordinary-2008"]) / len(roles["ordinary-2008"])
    print(f"caught {caught:.1%} of {len(roles['laundered'])}, ordinary flagged {false:.1%} of "
          f"{len(roles['ordinary-2008'])}")
    assert caught >= 0.9, caught
    assert false <= 0.01, false
    assert not {pid for pid in footprint if pid.startswith("O")}  # nor in 2006-2007
    # Fewer than 30 purchases of reference: not judged; 30: judged.
    assert "FOOTPRINT_ANOMALY" not in at_write.get("T29-odd", set())
    assert "FOOTPRINT_ANOMALY" in at_write["T30-odd"]
    # A reference with no spread (MAD 0) judges nothing.
    assert "FOOTPRINT_ANOMALY" not in at_write.get("FL-odd", set())

    # Acceptance 2: the pit's 5,000 ct; the 100 ct site's purchase that passes 100, only.
    capacity = {pid for pid, codes in at_write.items() if "CAPACITY_ANOMALY" in codes}
    assert capacity == {"PIT-big", "CAP-3"}

    laundered = sorted(footprint & roles["laundered"])[0]
    for prefix in ("W", "H"):
        (text,) = details(book, prefix + laundered, "FOOTPRINT_ANOMALY")
        assert re.fullmatch(
            rf"Price [\d,]+\.\d\d USD/ct is \d+\.\d robust deviations above the "
            rf"GH-{prefix}BIRIM median of \d\d\.\d\d USD/ct over \d+ purchases.* from "
            r"\d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d \(SPEC 5: the footprint of licence .*\)\.",
            text), text
        (text,) = details(book, prefix + "CAP-3", "CAPACITY_ANOMALY")
        assert (f"site {prefix}CAP's purchases in 2008-03 reach 105.00 ct, past its "
                "registered capacity of 100.00 ct a month") in text
        (text,) = details(book, prefix + "PIT-big", "CAPACITY_ANOMALY")
        assert "past ten times the median monthly carats" in text

    # A footprint flag holds the parcel like every other flag (SPEC 4 HOLD).
    book.write(Event("actor.registered", "off-gh", licensed("buyer-b", "buyer")))
    size = book.log.size()
    with pytest.raises(LedgerError) as refused:
        book.write(Event("parcel.transferred", "buyer-a", {
            "parcel_id": "W" + laundered, "to_actor": "buyer-b", "date": "2009-01-05",
            "price": {"amount": 1, "currency": "USD"}}))
    assert refused.value.rule == "HOLD"
    assert book.log.size() == size


def test_a_measure_in_another_currency_is_judged_on_stone_size_only() -> None:
    refs = (measure(np.log(np.linspace(30, 50, 40))), measure(np.log(np.linspace(0.2, 0.4, 40))))
    assert judge(refs, (math.log(150), math.log(0.3))) != []  # price far off
    assert judge(refs, (math.nan, math.log(0.3))) == []  # not priced in USD: size only
    assert judge(refs, (math.nan, math.log(1.5))) != []
    assert measure(np.log(np.full(40, 40.0))) is None  # MAD 0: no scale
    assert measure(np.log(np.linspace(30, 50, 29))) is None  # fewer than 30


# -- the schemas and MASS -------------------------------------------------------------------

HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture
def site_world(ledger: Ledger) -> Ledger:
    ledger.write(Event("actor.registered", "admin", {
        "actor_id": "off-gh", "name": "Minerals Commission", "role": "officer",
        "country": "GH", "date": "2004-01-02"}))
    ledger.write(Event("actor.registered", "off-gh", licensed("buyer-a", "buyer")))
    register(ledger, "")
    return ledger


def purchase(**change: Any) -> Event:
    return Event("parcel.purchased", "buyer-a", {**sale("P1", "B1", "2008-01-10", 0.3, 3, 40),
                                                 **change})


def site_with(capacity: Any) -> Event:
    return Event("site.registered", "off-gh", {
        "site_id": "S-NEW", "name": "Pit", "location": INSIDE, "licence_no": "GH-BIRIM",
        "operator": "Coop", "country": "GH", "date": "2004-01-07",
        "capacity_ct_month": capacity})


REFUSED = [
    ("sieve-does-not-add-up", purchase(sieve={"-3": 0.1, "+3": 0.1}), "MASS", "payload.sieve",
     "the sieve classes add up to 0.20 ct, not the 0.30 ct of the purchase"),
    ("sieve-adds-up-to-more", purchase(sieve={"-3": 0.2, "+3": 0.2}), "MASS", "payload.sieve",
     "add up to 0.40 ct"),
    ("unknown-sieve-class", purchase(sieve={"+5": 0.3}), "SCHEMA", "payload.sieve.+5",
     "unknown field '+5'"),
    ("empty-sieve", purchase(sieve={}), "SCHEMA", "payload.sieve",
     "must name at least one sieve class"),
    ("sieve-class-of-no-carats", purchase(sieve={"-3": 0, "+3": 0.3}), "SCHEMA",
     "payload.sieve.-3", "must be greater than 0"),
    ("evidence-hash-uppercase", purchase(evidence=[
        {"sha256": HASH.upper(), "media_type": "image/jpeg", "name": "scale.jpg"}]), "SCHEMA",
     "payload.evidence[0].sha256", "64 lowercase hexadecimal digits"),
    ("evidence-hash-short", purchase(evidence=[
        {"sha256": HASH[:-1], "media_type": "image/jpeg", "name": "scale.jpg"}]), "SCHEMA",
     "payload.evidence[0].sha256", "SHA-256"),
    ("evidence-without-name", purchase(evidence=[{"sha256": HASH, "media_type": "image/jpeg"}]),
     "SCHEMA", "payload.evidence[0].name", "required"),
    ("evidence-bad-media-type", purchase(evidence=[
        {"sha256": HASH, "media_type": "jpeg", "name": "scale.jpg"}]), "SCHEMA",
     "payload.evidence[0].media_type", "media type"),
    ("capacity-zero", site_with(0), "SCHEMA", "payload.capacity_ct_month", "greater than 0"),
    ("capacity-negative", site_with(-5), "SCHEMA", "payload.capacity_ct_month",
     "greater than 0"),
    ("capacity-three-decimals", site_with(10.005), "SCHEMA", "payload.capacity_ct_month",
     "two decimals"),
]


@pytest.mark.parametrize(("event", "rule", "field", "words"), [r[1:] for r in REFUSED],
                         ids=[r[0] for r in REFUSED])
def test_refusals_name_the_field_and_write_nothing(site_world: Ledger, event: Event, rule: str,
                                                   field: str, words: str) -> None:
    size = site_world.log.size()
    with pytest.raises(LedgerError) as refused:
        site_world.write(event)
    assert refused.value.rule == rule
    assert refused.value.data["field"] == field
    assert str(refused.value).startswith("payload.") and words in str(refused.value)
    assert site_world.log.size() == size


def test_a_sieve_that_adds_up_in_decimals_is_accepted(site_world: Ledger) -> None:
    """0.1 + 0.2 is not 0.3 in binary floats; in carats it is (SPEC 4: decimals)."""
    result = site_world.write(purchase(sieve={"-3": 0.1, "+3": 0.2}, evidence=[
        {"sha256": HASH, "media_type": "image/jpeg", "name": "scale.jpg"}]))
    assert result.flags == []
    site_world.write(site_with(120.5))
    with site_world.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT capacity_points FROM sites WHERE site_id = "
                                    "'S-NEW'").scalar() == 12050


def test_the_verifier_refuses_a_purchase_whose_sieve_does_not_add_up(tmp_path: Path) -> None:
    """A log that broke MASS on a sieve signs a bundle: the offline replay refuses it."""
    events = story()
    kind, actor, p = events[7]
    assert kind == "parcel.purchased"
    (tmp_path / "honest").mkdir()
    events[7] = (kind, actor, {**p, "sieve": {"-3": 1.0, "+3": 2.0}})
    honest = forge(tmp_path / "honest", events)
    assert verify_bundle(honest.text, honest.key.verifier).ok
    events[7] = (kind, actor, {**p, "sieve": {"-3": 1.0, "+3": 1.99}})
    forged = forge(tmp_path, events)
    report = verify_bundle(forged.text, forged.key.verifier)
    assert not report.ok
    assert any("the sieve classes of P1 do not add up to its carats" in problem
               for problem in report.problems), report.problems


def test_the_parcel_page_and_api_show_the_sieve_and_the_evidence(ledger: Ledger) -> None:
    """SPEC 4-5: a purchase's sieve classes, in sieve order, and its evidence hashes."""
    from webui import create_app

    seed(ledger)
    ledger.write(Event("parcel.purchased", "buyer-a", {
        **sale("P-SIEVE", "S-AKW", "2008-01-10", 3.0, 12, 40),
        "sieve": {"specials": 1.5, "-3": 0.5, "+11": 1.0},
        "evidence": [{"sha256": HASH, "media_type": "image/jpeg", "name": "scale.jpg"}]}))
    client = create_app({"TESTING": True, "LEDGER": ledger}).test_client()
    sign_in(client, "auditor")
    page = client.get("/parcels/P-SIEVE").text
    assert "-3: 0.50 ct · +11: 1.00 ct · specials: 1.50 ct" in page
    assert f"sha256 {HASH}" in page and "scale.jpg" in page
    token = Auth(ledger).token("auditor")
    answer = client.get("/api/v1/parcels/P-SIEVE", headers={"Authorization": f"Bearer {token}"})
    assert answer.json["sieve"] == {"specials": 1.5, "-3": 0.5, "+11": 1.0}
    assert answer.json["evidence"] == [
        {"sha256": HASH, "media_type": "image/jpeg", "name": "scale.jpg"}]
