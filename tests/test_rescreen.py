"""`alluvial rescreen` finds on history what write-time screening finds on each write (SPEC 5).

Every purchase below is written twice on the same map: once screened as it is written,
once by a ledger that does not screen. `rescreen` must then give each unscreened copy
exactly the codes its screened twin got, and give the screened ones nothing new.
"""

from __future__ import annotations

from typing import Any

import pytest
from shapely.geometry import box, mapping

from ledger.recorder.events import Event, Ledger
from ledger.recorder.rescreen import rescreen
from tests.test_custody import licensed
from tests.test_screening import (
    AKWATIA,
    AKWATIA_ZONE,
    CIV_NORTH,
    EAST_25_KM,
    HOLE,
    MULTI,
    SEGUELA,
    point,
)

OLD_PART, NEW_PART = box(-1.30, 6.30, -1.20, 6.40), box(-1.10, 6.30, -1.00, 6.40)
SITE_PATCH = box(-0.82, 6.00, -0.80, 6.02)  # a site drawn as a polygon, inside Z-AKW
STRADDLING = box(-0.86, 6.00, -0.84, 6.02)  # across Z-AKW's western edge

# (site, dig point or None for the site's location, date)
PURCHASES: list[tuple[str, tuple[float, float] | None, str]] = [
    ("S-AKW", AKWATIA, "2007-05-02"),  # inside, before the dispute
    ("S-AKW", AKWATIA, "2008-05-02"),  # inside the disputed area in 2008
    ("S-AKW", None, "2008-05-02"),  # on the site's location, in the disputed area
    ("S-AKW", None, "2012-05-02"),
    ("S-AKW", (-0.85, 6.04), "2012-05-02"),  # on the licence boundary: covered
    ("S-AKW", EAST_25_KM, "2012-05-02"),  # outside its licence
    ("S-AKW", SEGUELA, "2004-05-02"),  # rebel-held only
    ("S-AKW", SEGUELA, "2008-05-02"),  # rebel-held and embargoed
    ("S-AKW", SEGUELA, "2013-05-02"),  # embargoed only
    ("S-AKW", SEGUELA, "2015-05-02"),  # neither
    ("S-AKW", (-2.5, 8.0), "2008-05-02"),  # on the rebel-held boundary: touches it
    ("S-HOLE", AKWATIA, "2012-05-02"),  # in the hole
    ("S-HOLE", (-0.88, 5.95), "2012-05-02"),  # in the ring around it
    ("S-MULTI", (-0.45, 6.04), "2012-05-02"),  # in the second part
    ("S-MULTI", (-0.60, 6.04), "2012-05-02"),  # between the parts
    ("S-TWO", (-1.25, 6.35), "2005-05-02"),  # the old part, while it was valid
    ("S-TWO", (-1.25, 6.35), "2008-05-02"),  # the old part after it ran out
    ("S-TWO", (-1.05, 6.35), "2005-05-02"),  # the new part, before it began
    ("S-TWO", (-1.05, 6.35), "2008-05-02"),
    ("S-REV", AKWATIA, "2009-12-31"),  # the day before the revocation
    ("S-REV", AKWATIA, "2010-01-01"),  # revoked
    ("S-EXP", AKWATIA, "2009-12-31"),  # the licence's last day
    ("S-EXP", AKWATIA, "2010-01-01"),  # expired
    ("S-PATCH", None, "2012-05-02"),  # a site polygon inside its zone
    ("S-STRADDLE", None, "2012-05-02"),  # a site polygon across its zone's edge
    ("S-SEGUELA", None, "2008-05-02"),  # before the suspension, on the site's location
    ("S-SEGUELA", None, "2010-05-02"),  # suspended: no point to screen
    ("S-SEGUELA", SEGUELA, "2010-05-02"),  # suspended, dug in a risk area
    ("S-NOWHERE", SEGUELA, "2008-05-02"),  # an unknown site, dug in a risk area
    ("S-NOWHERE", None, "2008-05-02"),  # an unknown site and no point at all
    # Sold by registered actors (SELLERS below):
    ("S-AKW", AKWATIA, "2009-12-31"),  # the last day of the seller's licence
    ("S-AKW", AKWATIA, "2010-01-01"),  # the seller's licence has expired
    ("S-AKW", AKWATIA, "2009-12-31"),  # the day before the seller's licence was revoked
    ("S-AKW", AKWATIA, "2010-01-01"),  # the seller's licence is revoked
    ("S-AKW", AKWATIA, "2010-01-01"),  # a seller with a valid licence
    ("S-REV", AKWATIA, "2010-01-01"),  # the site's licence and the seller's are both void
    ("S-AKW", AKWATIA, "2012-05-02"),  # a registered seller without a licence
]
# The purchases sold by a registered actor; the others by "Kofi Boateng", who is not one.
SELLERS = {30: "miner-exp", 31: "miner-exp", 32: "miner-rev", 33: "miner-rev",
           34: "miner-ok", 35: "miner-exp", 36: "off-gh"}


# (site_id, licence_no, location), each registered on 2004-01-07
SITES: list[tuple[str, str, dict[str, Any]]] = [
    *[(site_id, licence_no, point(AKWATIA)) for site_id, licence_no in [
        ("S-AKW", "GH-ML-AKW-1"), ("S-HOLE", "GH-ML-HOLE"), ("S-MULTI", "GH-ML-MULTI"),
        ("S-TWO", "GH-ML-TWO"), ("S-REV", "GH-ML-REV"), ("S-EXP", "GH-ML-EXP")]],
    ("S-PATCH", "GH-ML-AKW-1", mapping(SITE_PATCH)),
    ("S-STRADDLE", "GH-ML-AKW-1", mapping(STRADDLING)),
    ("S-SEGUELA", "GH-ML-AKW-1", point(SEGUELA)),
    ("S-UNLICENSED", "GH-ML-NONE", point(AKWATIA)),
    ("S-DISPUTED", "GH-ML-AKW-1", point((-0.795, 6.035))),  # in the 2008 dispute, from 2004
]


def zone(ledger: Ledger, zone_id: str, geom: Any, zone_type: str = "licence",
         valid_from: str = "1990-01-01", valid_to: str | None = None, **extra: Any) -> None:
    fields = ({"licence_no": extra.pop("licence_no"), "holder": "Coop"}
              if zone_type == "licence" else {"category": "rebel_held", "source": "UN"})
    ledger.write(Event("zone.registered", "off-gh", {
        "zone_id": zone_id, "zone_type": zone_type, "geometry": mapping(geom),
        "date": "2004-01-06", "valid_from": valid_from, "valid_to": valid_to, **fields}))


def site(ledger: Ledger, site_id: str, licence_no: str, location: Any) -> None:
    ledger.write(Event("site.registered", "off-gh", {
        "site_id": site_id, "name": "Pit", "location": location, "licence_no": licence_no,
        "operator": "Coop", "country": "GH", "date": "2004-01-07"}))


@pytest.fixture
def mapped(ledger: Ledger) -> Ledger:
    """Licence zones with holes, parts, two periods, a revocation and an expiry; overlapping
    risk areas; sites on points and on polygons; a suspended site."""
    ledger.write(Event("actor.registered", "admin", {
        "actor_id": "off-gh", "name": "Minerals Commission", "role": "officer",
        "country": "GH", "date": "2004-01-02"}))
    ledger.write(Event("actor.registered", "off-gh", licensed("buyer-a", "buyer")))
    for seller, until in (("miner-ok", "2030-12-31"), ("miner-exp", "2009-12-31"),
                          ("miner-rev", "2030-12-31")):
        ledger.write(Event("actor.registered", "off-gh", licensed(seller, "buyer", until=until)))
    ledger.write(Event("licence.revoked", "off-gh", {
        "actor_id": "miner-rev", "reason": "sold stones from a suspended pit",
        "date": "2010-01-01"}))
    zone(ledger, "Z-AKW", AKWATIA_ZONE, licence_no="GH-ML-AKW-1")
    zone(ledger, "Z-HOLE", HOLE, licence_no="GH-ML-HOLE")
    zone(ledger, "Z-MULTI", MULTI, licence_no="GH-ML-MULTI")
    zone(ledger, "Z-TWO-OLD", OLD_PART, valid_to="2006-12-31", licence_no="GH-ML-TWO")
    zone(ledger, "Z-TWO-NEW", NEW_PART, valid_from="2007-01-01", licence_no="GH-ML-TWO")
    zone(ledger, "Z-REV", AKWATIA_ZONE, licence_no="GH-ML-REV")
    zone(ledger, "Z-EXP", AKWATIA_ZONE, valid_to="2009-12-31", licence_no="GH-ML-EXP")
    ledger.write(Event("licence.revoked", "off-gh", {
        "zone_id": "Z-REV", "reason": "mining outside plan", "date": "2010-01-01"}))
    zone(ledger, "R-CIV-NORTH", CIV_NORTH, zone_type="risk", valid_from="2002-09-19",
         valid_to="2011-04-11")
    zone(ledger, "R-EMBARGO", box(-8.6, 4.3, -2.4, 10.8), zone_type="risk",
         valid_from="2005-12-15", valid_to="2014-04-29")
    zone(ledger, "R-AKW-DISPUTE", box(-0.81, 6.03, -0.79, 6.05), zone_type="risk",
         valid_from="2008-01-01", valid_to="2008-12-31")
    for site_id, licence_no, location in SITES:
        site(ledger, site_id, licence_no, location)
    ledger.write(Event("site.suspended", "off-gh", {
        "site_id": "S-SEGUELA", "reason": "pit in rebel-held territory", "date": "2009-01-01"}))
    return ledger


def purchase(n: int, prefix: str) -> Event:
    site_id, dig, day = PURCHASES[n]
    extra = {} if dig is None else {"dig_location": point(dig)}
    return Event("parcel.purchased", "buyer-a", {
        "parcel_id": f"{prefix}{n:02d}", "site_id": site_id,
        "seller": SELLERS.get(n, "Kofi Boateng"), "date": day, "carats": 10.0, "stones": 5,
        "price": {"amount": 420.5, "currency": "USD"},
        **extra})


def codes(ledger: Ledger, subject_type: str, prefix: str) -> dict[str, set[str]]:
    """Flag codes by subject (without the prefix), for the subjects whose id has it."""
    found: dict[str, set[str]] = {}
    with ledger.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT subject_type, subject_id, code FROM flags").all()
    for kind, subject, code in rows:
        if kind == subject_type and subject.startswith(prefix):
            found.setdefault(subject[len(prefix):], set()).add(code)
    return found


def parcel_codes(ledger: Ledger, prefix: str) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {n: set() for n in range(len(PURCHASES))}
    for n, flagged in codes(ledger, "parcel", prefix).items():
        found[int(n)] = flagged
    return found


def test_rescreen_flags_each_purchase_and_site_as_its_write_was_flagged(mapped: Ledger) -> None:
    unscreened = Ledger(mapped.engine, mapped.log.key, screening=(), late_days=mapped.late_days)
    for site_id, licence_no, location in SITES:
        site(unscreened, "H" + site_id, licence_no, location)
    for n in range(len(PURCHASES)):
        mapped.write(purchase(n, "W"))  # screened as written
        unscreened.write(purchase(n, "H"))  # history that was never screened
    at_write = parcel_codes(mapped, "W")
    sites_at_write = codes(mapped, "site", "S-")
    assert parcel_codes(mapped, "H") == {n: set() for n in range(len(PURCHASES))}
    assert codes(mapped, "site", "HS-") == {}
    assert len({frozenset(found) for found in at_write.values()}) >= 6  # the cases differ
    assert len(sites_at_write) >= 3

    report = rescreen(mapped)

    assert parcel_codes(mapped, "H") == at_write
    assert codes(mapped, "site", "HS-") == sites_at_write
    # Nothing added to what the writes flagged.
    assert parcel_codes(mapped, "W") == at_write
    assert codes(mapped, "site", "S-") == sites_at_write
    assert report.new_flags == (sum(len(found) for found in at_write.values())
                                + sum(len(found) for found in sites_at_write.values()))
    size = mapped.log.size()
    assert rescreen(mapped).new_flags == 0
    assert mapped.log.size() == size


def test_a_suspended_site_without_a_dig_point_is_only_unregistered(mapped: Ledger) -> None:
    """SPEC 5: at a suspended site only the dig point is screened; the site's own location
    (here in a risk area) no longer speaks for the purchase."""
    unscreened = Ledger(mapped.engine, mapped.log.key, screening=(), late_days=mapped.late_days)
    unscreened.write(purchase(PURCHASES.index(("S-SEGUELA", None, "2010-05-02")), "H"))
    rescreen(mapped)
    assert set().union(*parcel_codes(mapped, "H").values()) == {"UNREGISTERED_SITE"}


def test_a_seller_licence_revoked_later_reaches_back_over_history(mapped: Ledger) -> None:
    """SPEC 5: a licence revoked with an effective date in the past flags, on rescreen, the
    purchases its holder sold from that day on, and no earlier one."""
    days = ["2011-06-29", "2011-06-30", "2011-07-01"]
    for n, day in enumerate(days):
        mapped.write(Event("parcel.purchased", "buyer-a", {
            "parcel_id": f"K{n}", "site_id": "S-AKW", "seller": "miner-ok", "date": day,
            "carats": 3.5, "stones": 2, "price": {"amount": 150.0, "currency": "USD"},
            "dig_location": point(AKWATIA)}))
    # Sold by someone who became a registered actor, unlicensed until 2012, only afterwards.
    mapped.write(Event("parcel.purchased", "buyer-a", {
        "parcel_id": "K3", "site_id": "S-AKW", "seller": "miner-late", "date": "2011-07-01",
        "carats": 3.5, "stones": 2, "price": {"amount": 150.0, "currency": "USD"},
        "dig_location": point(AKWATIA)}))
    assert codes(mapped, "parcel", "K") == {}  # licensed, or not an actor, when written
    mapped.write(Event("actor.registered", "off-gh",
                       licensed("miner-late", "buyer", since="2012-01-01")))
    mapped.write(Event("licence.revoked", "off-gh", {
        "actor_id": "miner-ok", "reason": "licence obtained by fraud", "date": "2011-06-30"}))

    report = rescreen(mapped)

    assert codes(mapped, "parcel", "K") == {"1": {"LICENCE_INVALID"}, "2": {"LICENCE_INVALID"}}
    assert report.new_flags == 2
    with mapped.engine.connect() as conn:
        details = conn.exec_driver_sql(
            "SELECT subject_id, detail FROM flags ORDER BY subject_id").all()
    assert [(s, d) for s, d in details if s.startswith("K")] == [
        ("K1", "The seller, a registered actor, has no licence valid on 2011-06-30 (found by "
               "rescreen)."),
        ("K2", "The seller, a registered actor, has no licence valid on 2011-07-01 (found by "
               "rescreen)."),
    ]
    assert rescreen(mapped).new_flags == 0
