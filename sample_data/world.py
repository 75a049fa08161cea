"""The scenario's world: places, zones, sites, actors and the trade's footprints.

Every coordinate of a town is public gazetteer knowledge (rounded); every polygon is
a hand-drawn approximation around it, not an official boundary; every person and
company is invented. ``sample_data/README.md`` records the source of each fact.
Coordinates are GeoJSON order, ``(longitude, latitude)``, WGS 84; polygons are
counter-clockwise (RFC 7946 3.1.6) and closed.
"""

from __future__ import annotations

from dataclasses import dataclass

Ring = tuple[tuple[float, float], ...]

GO_LIVE = "2003-06-02"  # the day the cadastres start the ledger (officers, auditor)
ACTORS_DAY = "2003-06-16"  # buyers and exporters registered
ZONES_DAY = "2003-06-09"  # licence zones loaded
SITES_DAY = "2003-06-23"  # mine sites registered
FIRST_TRADE = "2004-01-01"
LAST_TRADE = "2016-12-31"

# The Ivorian crisis and the UN embargo on Ivorian rough (README: sources).
REBEL_FROM, REBEL_TO = "2002-09-19", "2011-04-11"
EMBARGO_FROM, EMBARGO_TO = "2005-12-15", "2014-04-29"


def point_in_ring(x: float, y: float, ring: Ring) -> bool:
    """Even-odd ray casting: is (x, y) inside the closed ring? (An edge may go either way.)"""
    inside = False
    x1, y1 = ring[0]
    for x2, y2 in ring[1:]:
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
        x1, y1 = x2, y2
    return inside


def _closed(*points: tuple[float, float]) -> Ring:
    return (*points, points[0])


def polygon(ring: Ring) -> dict[str, object]:
    """The GeoJSON Polygon of one outer ring."""
    return {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}


@dataclass(frozen=True)
class Footprint:
    """What a parcel bought in an area looks like: stone size, stones per parcel, US$ per carat.

    Bounded log-uniform sizes and prices and stone counts in a narrow range (no long tails),
    so that no clean parcel lies far outside its
    area's distribution and only the laundered ones trip FOOTPRINT_ANOMALY (SPEC 5).
    """

    size_lo: float  # average carats per stone
    size_hi: float
    stones_lo: int
    stones_hi: int
    usd_lo: float  # US$ per carat, before the year's market index
    usd_hi: float


GHANA = Footprint(0.09, 0.18, 40, 200, 26.0, 52.0)  # small, mostly industrial stones
SIERRA_LEONE = Footprint(0.60, 1.80, 4, 16, 200.0, 560.0)  # larger gem-quality stones
IVORY_COAST = Footprint(0.60, 1.40, 2, 30, 190.0, 420.0)  # Séguéla/Tortiya: larger gem stones

# A rough-market index by year (boom to 2008, crash in 2009, peak in 2011, slump 2015-16).
MARKET = {2004: 0.86, 2005: 0.90, 2006: 0.94, 2007: 1.00, 2008: 1.08, 2009: 0.84, 2010: 0.96,
          2011: 1.12, 2012: 1.04, 2013: 1.04, 2014: 1.08, 2015: 0.92, 2016: 0.88}


@dataclass(frozen=True)
class Zone:
    zone_id: str
    name: str
    country: str
    officer: str
    ring: Ring
    valid_from: str
    valid_to: str | None
    date: str
    licence_no: str | None = None
    holder: str | None = None
    category: str | None = None
    source: str | None = None

    @property
    def zone_type(self) -> str:
        return "licence" if self.licence_no else "risk"

    def contains(self, x: float, y: float) -> bool:
        return point_in_ring(x, y, self.ring)

    def valid_on(self, day: str) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def payload(self) -> dict[str, object]:
        """The zone.registered payload (and the GeoJSON feature's properties, plus geometry)."""
        p: dict[str, object] = {"zone_id": self.zone_id, "zone_type": self.zone_type,
                                "name": self.name, "geometry": polygon(self.ring),
                                "date": self.date, "valid_from": self.valid_from,
                                "valid_to": self.valid_to}
        if self.licence_no:
            p["licence_no"], p["holder"] = self.licence_no, self.holder
        else:
            p["category"], p["source"] = self.category, self.source
        return p


# Licence zones, around the towns' coordinates (README: gazetteer positions).
LICENCE_ZONES: tuple[Zone, ...] = (
    Zone("GH-Z-AKWATIA", "Akwatia alluvial field", "GH", "officer-gh",
         _closed((-0.868, 5.992), (-0.795, 5.978), (-0.735, 6.004), (-0.722, 6.062),
                 (-0.760, 6.104), (-0.835, 6.098), (-0.880, 6.048)),
         "1995-01-01", None, ZONES_DAY, "GH-SSML-1995-014",
         "Akwatia Small-Scale Miners Association"),
    Zone("GH-Z-BIRIM", "Birim basin gravels (Kade-Oda)", "GH", "officer-gh",
         _closed((-1.105, 6.128), (-1.010, 6.118), (-0.915, 6.145), (-0.890, 6.215),
                 (-0.940, 6.290), (-1.040, 6.300), (-1.110, 6.240)),
         "1998-04-01", None, ZONES_DAY, "GH-SSML-1998-031",
         "Birim Valley Artisanal Mining Cooperative"),
    Zone("SL-Z-KONO", "Koidu-Kono alluvial field", "SL", "officer-sl",
         _closed((-11.070, 8.575), (-10.965, 8.555), (-10.875, 8.590), (-10.860, 8.680),
                 (-10.920, 8.740), (-11.020, 8.735), (-11.080, 8.660)),
         "2003-01-01", None, ZONES_DAY, "SL-AML-2003-0107",
         "Kono Artisanal Diggers Cooperative"),
    Zone("SL-Z-TONGO", "Tongo Field", "SL", "officer-sl",
         _closed((-11.140, 8.150), (-11.060, 8.140), (-10.995, 8.175), (-10.990, 8.250),
                 (-11.045, 8.290), (-11.125, 8.275), (-11.155, 8.215)),
         "2003-01-01", None, ZONES_DAY, "SL-AML-2003-0212",
         "Tongo Field Mining Cooperative"),
    Zone("CI-Z-SEGUELA", "Séguéla alluvial field", "CI", "officer-ci",
         _closed((-6.760, 7.890), (-6.660, 7.880), (-6.590, 7.920), (-6.585, 8.010),
                 (-6.650, 8.050), (-6.745, 8.035), (-6.780, 7.960)),
         "1990-01-01", None, ZONES_DAY, "CI-PE-1990-004",
         "Coopérative des exploitants de Séguéla"),
    Zone("CI-Z-TORTIYA", "Tortiya alluvial field", "CI", "officer-ci",
         _closed((-5.750, 8.490), (-5.670, 8.480), (-5.605, 8.515), (-5.600, 8.600),
                 (-5.665, 8.630), (-5.740, 8.615), (-5.770, 8.550)),
         "1990-01-01", None, ZONES_DAY, "CI-PE-1990-007",
         "Coopérative des exploitants de Tortiya"),
)

# North of the 2002-2007 ceasefire line ("zone of confidence"), inside the outline below.
REBEL_NORTH_RING: Ring = _closed(
    (-8.40, 7.40), (-7.20, 7.45), (-6.20, 7.50), (-5.20, 7.45), (-4.20, 7.60), (-3.20, 7.90),
    (-2.75, 8.20), (-2.70, 9.45), (-3.30, 9.90), (-4.30, 9.70), (-4.90, 9.90), (-5.50, 10.45),
    (-6.20, 10.25), (-6.90, 10.35), (-7.60, 10.45), (-8.05, 10.35), (-8.20, 9.80),
    (-8.10, 8.30), (-8.45, 7.60))

# All of Côte d'Ivoire, a rough outline of its borders.
IVORY_COAST_RING: Ring = _closed(
    (-7.55, 4.35), (-6.60, 4.70), (-6.00, 4.95), (-5.00, 5.12), (-4.00, 5.22), (-3.10, 5.10),
    (-3.20, 6.20), (-3.05, 6.80), (-2.70, 8.00), (-2.55, 8.60), (-2.65, 9.50), (-3.30, 9.95),
    (-4.30, 9.75), (-4.90, 9.95), (-5.50, 10.50), (-6.20, 10.30), (-6.90, 10.40),
    (-7.60, 10.50), (-8.10, 10.40), (-8.25, 9.80), (-8.20, 8.30), (-8.55, 7.60),
    (-8.30, 6.80), (-7.60, 5.90), (-7.50, 5.10))

RISK_ZONES: tuple[Zone, ...] = (
    Zone("RISK-CI-REBEL-NORTH", "Rebel-held northern Côte d'Ivoire (Forces Nouvelles)", "CI",
         "officer-gh", REBEL_NORTH_RING, REBEL_FROM, REBEL_TO, ZONES_DAY,
         category="rebel_held",
         source="Linas-Marcoussis (2003) and Ouagadougou (2007) accords; UN Group of Experts "
                "on Côte d'Ivoire reports. Hand-drawn approximation of the area north of the "
                "ceasefire line, from the rebellion of 19 September 2002 to the end of the "
                "post-electoral crisis on 11 April 2011."),
    Zone("RISK-CI-UN-EMBARGO", "UN embargo on rough diamonds from Côte d'Ivoire", "CI",
         "officer-gh", IVORY_COAST_RING, EMBARGO_FROM, EMBARGO_TO, EMBARGO_FROM,
         category="embargo",
         source="UN Security Council resolution 1643 (2005), paragraph 6, in force from 15 "
                "December 2005; lifted by resolution 2153 (2014) of 29 April 2014. Rough "
                "outline of Côte d'Ivoire, not an official boundary."),
)

ZONES: tuple[Zone, ...] = LICENCE_ZONES + RISK_ZONES
ZONE_BY_LICENCE = {z.licence_no: z for z in LICENCE_ZONES}

# The towns the zones are drawn around (gazetteer positions, rounded).
TOWNS: dict[str, tuple[float, float]] = {
    "Akwatia": (-0.8025, 6.0428), "Birim basin (Kade-Oda)": (-1.000, 6.200),
    "Koidu": (-10.9714, 8.6439), "Tongo": (-11.070, 8.210),
    "Séguéla": (-6.6731, 7.9611), "Tortiya": (-5.680, 8.550),
}


@dataclass(frozen=True)
class Site:
    site_id: str
    name: str
    zone: Zone
    lon: float
    lat: float
    operator: str

    def payload(self) -> dict[str, object]:
        return {"site_id": self.site_id, "name": self.name,
                "location": {"type": "Point", "coordinates": [self.lon, self.lat]},
                "licence_no": self.zone.licence_no, "operator": self.operator,
                "country": self.zone.country, "date": SITES_DAY}


def _site(site_id: str, name: str, zone: Zone, lon: float, lat: float) -> Site:
    """A site worked under the zone's licence, its holder as operator."""
    return Site(site_id, name, zone, lon, lat, zone.holder or zone.name)


_AKW, _BIR, _KON, _TON = LICENCE_ZONES[:4]
SITES: tuple[Site, ...] = (
    _site("GH-S-AKW-01", "Akwatia pit A1 (river terrace)", _AKW, -0.8050, 6.0400),
    _site("GH-S-AKW-02", "Akwatia pit A2 (flood plain)", _AKW, -0.7700, 6.0600),
    _site("GH-S-AKW-03", "Akwatia pit A3 (old tailings)", _AKW, -0.8350, 6.0250),
    _site("GH-S-AKW-04", "Akwatia pit A4 (upper gravels)", _AKW, -0.7950, 6.0800),
    _site("GH-S-BIR-01", "Birim pit B1 (main channel)", _BIR, -1.0000, 6.2000),
    _site("GH-S-BIR-02", "Birim pit B2 (west bank)", _BIR, -1.0600, 6.2300),
    _site("GH-S-BIR-03", "Birim pit B3 (east terrace)", _BIR, -0.9400, 6.1800),
    _site("GH-S-BIR-04", "Birim pit B4 (north gravels)", _BIR, -0.9900, 6.2600),
    _site("SL-S-KON-01", "Kono pit K1 (Koidu north)", _KON, -10.9700, 8.6700),
    _site("SL-S-KON-02", "Kono pit K2 (Koidu east swamp)", _KON, -10.9200, 8.6300),
    _site("SL-S-KON-03", "Kono pit K3 (river flats)", _KON, -11.0300, 8.6100),
    _site("SL-S-KON-04", "Kono pit K4 (upper terrace)", _KON, -10.9800, 8.7000),
    _site("SL-S-TON-01", "Tongo pit T1 (central)", _TON, -11.0700, 8.2100),
    _site("SL-S-TON-02", "Tongo pit T2 (east swamp)", _TON, -11.0300, 8.2000),
    _site("SL-S-TON-03", "Tongo pit T3 (north gravels)", _TON, -11.0900, 8.2500),
)
SITES_BY_AREA: dict[str, tuple[Site, ...]] = {
    area: tuple(s for s in SITES if s.zone.zone_id == zid)
    for area, zid in (("akwatia", "GH-Z-AKWATIA"), ("birim", "GH-Z-BIRIM"),
                      ("kono", "SL-Z-KONO"), ("tongo", "SL-Z-TONGO"))
}

# Where the laundering ring's stones are really dug: around Séguéla and Tortiya.
LAUNDERING_CENTRES: tuple[tuple[float, float], ...] = (TOWNS["Séguéla"], TOWNS["Tortiya"])


@dataclass(frozen=True)
class Actor:
    actor_id: str
    name: str
    role: str
    country: str
    registered_by: str
    licence_no: str | None = None
    licence_valid_from: str | None = None
    licence_valid_to: str | None = None
    areas: tuple[str, ...] = ()  # where a buyer buys
    weight: int = 0  # a buyer's share of purchases

    def payload(self) -> dict[str, object]:
        p: dict[str, object] = {"actor_id": self.actor_id, "name": self.name, "role": self.role,
                                "country": self.country}
        if self.licence_no:
            p["licence_no"] = self.licence_no
            p["licence_valid_from"] = self.licence_valid_from
            p["licence_valid_to"] = self.licence_valid_to
        p["date"] = GO_LIVE if self.registered_by == "admin" else ACTORS_DAY
        return p

    def renewal(self) -> dict[str, object] | None:
        """The licence.renewed payload of a licence still running at the end of the trade."""
        if not self.licence_valid_to or self.licence_valid_to < LAST_TRADE:
            return None
        return {"actor_id": self.actor_id, "valid_from": RENEWED_FROM, "valid_to": None,
                "reason": RENEWAL_REASON, "date": RENEWED_ON}


_FROM, _TO = "2003-07-01", "2017-06-30"
EXPIRING_BUYER = "buyer-gh-asamankese"
RING_BUYER = "buyer-gh-oda"
EXPIRY = "2009-06-30"
# The licences still running at the end of the trade are renewed by their officer on the
# trade's last day, from the day after they end, open-ended (SPEC 4 licence.renewed), so
# that the demo's dealers and exporters may buy and sell on any later day. The ring's
# buyer is renewed too: nothing in its licensing shows the ring, only the ledger's flags
# hold its stones (SPEC 4 HOLD).
RENEWED_ON, RENEWED_FROM = LAST_TRADE, "2017-07-01"
RENEWAL_REASON = "Licence renewed on application; open-ended until revoked."

ACTORS: tuple[Actor, ...] = (
    Actor("officer-gh", "Minerals Commission of Ghana, mining cadastre officer", "officer", "GH",
          "admin"),
    Actor("officer-sl", "Sierra Leone Ministry of Mineral Resources, mining cadastre officer",
          "officer", "SL", "admin"),
    Actor("officer-ci", "Côte d'Ivoire Direction des mines, cadastre minier", "officer", "CI",
          "admin"),
    Actor("auditor-kp", "Kimberley Process review mission (auditor)", "auditor", "ZZ", "admin"),
    # The national KP authorities (SPEC 1): each validates its country's export certificates
    # and confirms the imports into its country.
    Actor("authority-gh", "Precious Minerals Marketing Company (PMMC), Ghana's KP authority",
          "authority", "GH", "admin"),
    Actor("authority-sl", "Government Gold and Diamond Office (GGDO), Sierra Leone's KP "
          "authority", "authority", "SL", "admin"),
    Actor("authority-be", "FPS Economy, Diamond Office Antwerp, Belgium's KP import authority",
          "authority", "BE", "admin"),
    Actor("exporter-gh-accra", "Osu Rough Exports Ltd, Accra", "exporter", "GH", "officer-gh",
          "GH-EXL-2003-002", _FROM, _TO),
    Actor("exporter-sl-freetown", "Lumley Rough Exports Ltd, Freetown", "exporter", "SL",
          "officer-sl", "SL-EXL-2003-005", _FROM, _TO),
    Actor("buyer-gh-akwatia", "Akwatia Rough Buyers Ltd", "buyer", "GH", "officer-gh",
          "GH-LBL-2003-011", _FROM, _TO, ("akwatia", "birim"), 5),
    Actor("buyer-gh-kade", "Kade Stone House", "buyer", "GH", "officer-gh",
          "GH-LBL-2003-014", _FROM, _TO, ("akwatia", "birim"), 4),
    Actor(RING_BUYER, "Oda Star Gem Buyers", "buyer", "GH", "officer-gh",
          "GH-LBL-2003-019", _FROM, _TO, ("birim",), 3),
    Actor(EXPIRING_BUYER, "Asamankese Diamond Agency", "buyer", "GH", "officer-gh",
          "GH-LBL-2003-023", _FROM, EXPIRY, ("birim", "akwatia"), 3),
    Actor("buyer-sl-koidu", "Tankoro Diamond Buying Office", "buyer", "SL", "officer-sl",
          "SL-DDL-2003-031", _FROM, _TO, ("kono",), 4),
    Actor("buyer-sl-sewa", "Sewa River Traders", "buyer", "SL", "officer-sl",
          "SL-DDL-2003-036", _FROM, _TO, ("kono", "tongo"), 3),
    Actor("buyer-sl-tongo", "Lower Bambara Diamond Agency", "buyer", "SL", "officer-sl",
          "SL-DDL-2003-042", _FROM, _TO, ("tongo",), 3),
)
ACTOR_BY_ID = {a.actor_id: a for a in ACTORS}
EXPORTER_OF = {"GH": "exporter-gh-accra", "SL": "exporter-sl-freetown"}
AUTHORITY_OF = {"GH": "authority-gh", "SL": "authority-sl", "BE": "authority-be"}
# The officials who sign validations off (invented names).
VALUERS = {"GH": ("Kwesi Amponsah", "Efua Ansah"), "SL": ("Mohamed Kamara", "Isatu Bangura")}
FOOTPRINT_OF = {"GH": GHANA, "SL": SIERRA_LEONE, "CI": IVORY_COAST}

# Export destinations: (country, importer), the rough trading centres.
IMPORTERS: tuple[tuple[str, str], ...] = (
    ("BE", "Schelde Rough Trading BVBA, Antwerp"), ("BE", "Hoveniers Rough NV, Antwerp"),
    ("AE", "Creek Rough Diamonds DMCC, Dubai"), ("IN", "Tapi Rough Imports Pvt Ltd, Surat"),
    ("IL", "Ayalon Rough Ltd, Ramat Gan"),
)

# Invented diggers and gang leaders (common given names and surnames of each area).
SELLERS: dict[str, tuple[str, ...]] = {
    "GH": tuple(f"{a} {b}" for a in ("Kwame", "Kofi", "Kwabena", "Yaw", "Kwaku", "Kwasi",
                                     "Akua", "Ama", "Abena", "Yaa")
                for b in ("Mensah", "Asante", "Boateng", "Owusu", "Osei", "Ofori", "Appiah",
                          "Badu")),
    "SL": tuple(f"{a} {b}" for a in ("Sahr", "Tamba", "Finda", "Komba", "Momoh", "Fatmata",
                                     "Ibrahim", "Aiah")
                for b in ("Kamara", "Sesay", "Koroma", "Conteh", "Fomba", "Kallon", "Bangura",
                          "Mansaray")),
}
