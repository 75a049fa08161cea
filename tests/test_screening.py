"""Geospatial screening with real coordinates, as of the event date (SPEC 5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas
import pytest
import shapely
import sqlalchemy as sa
from click.testing import CliRunner
from shapely.geometry import Polygon, box, mapping

from ledger.cli import cli
from ledger.projections import flags
from ledger.recorder.events import Event, Ledger, WriteResult
from tests.test_custody import buy, export, licensed, merge, move, split

AKWATIA = (-0.80, 6.04)
SEGUELA = (-6.67, 7.96)
# 25 km east of Akwatia at 6 degrees north (1 degree of longitude is about 110.6 km there).
EAST_25_KM = (AKWATIA[0] + 25 / 110.6, AKWATIA[1])
AKWATIA_ZONE = box(-0.85, 5.99, -0.75, 6.09)  # about 11 km across
CIV_NORTH = Polygon([(-8.5, 7.4), (-2.5, 7.4), (-2.5, 10.7), (-8.5, 10.7)])


def codes(result: WriteResult) -> set[str]:
    return {f["code"] for f in result.flags}


def point(lon_lat: tuple[float, float]) -> dict[str, Any]:
    return {"type": "Point", "coordinates": list(lon_lat)}


@pytest.fixture
def write(ledger: Ledger):  # type: ignore[no-untyped-def]
    def _write(kind: str, actor: str, event_id: str | None = None, **payload: Any) -> WriteResult:
        return ledger.write(Event(kind, actor, payload, event_id))
    return _write


def zone(write, zone_id: str, geom: Any, zone_type: str = "licence", valid_from: str = "1990-01-01",  # type: ignore[no-untyped-def]
         valid_to: str | None = None, **extra: Any) -> WriteResult:
    fields = ({"licence_no": extra.pop("licence_no", "GH-ML-AKW-1"), "holder": "Coop"}
              if zone_type == "licence" else
              {"category": extra.pop("category", "rebel_held"), "source": "UN Group of Experts"})
    return write("zone.registered", "off-gh", zone_id=zone_id, zone_type=zone_type,
                 geometry=mapping(geom) if not isinstance(geom, dict) else geom,
                 date=valid_from, valid_from=valid_from, valid_to=valid_to, **fields, **extra)


@pytest.fixture
def world(ledger: Ledger, write) -> Ledger:  # type: ignore[no-untyped-def]
    write("actor.registered", "admin", actor_id="off-gh", name="Minerals Commission",
          role="officer", country="GH", date="2004-01-02")
    for actor_id, role in [("buyer-a", "buyer"), ("exp-gh", "exporter")]:
        write("actor.registered", "off-gh", **licensed(actor_id, role))
    write("actor.registered", "admin", actor_id="aud-1", name="KP Review Mission",
          role="auditor", country="BE", date="2004-01-05")
    zone(write, "Z-AKW", AKWATIA_ZONE)
    zone(write, "R-CIV-NORTH", CIV_NORTH, zone_type="risk", valid_from="2002-09-19",
         valid_to="2011-04-11")
    write("site.registered", "off-gh", site_id="S-AKW", name="Akwatia pit 1",
          location=point(AKWATIA), licence_no="GH-ML-AKW-1", operator="Coop", country="GH",
          date="2004-01-07")
    return ledger


@pytest.mark.parametrize(("dig", "date", "expected"), [
    (SEGUELA, "2008-05-02", {"IN_RISK_AREA", "OUTSIDE_LICENSED_ZONE"}),
    (SEGUELA, "2015-05-02", {"OUTSIDE_LICENSED_ZONE"}),
    (AKWATIA, "2008-05-02", set()),
    (EAST_25_KM, "2008-05-02", {"OUTSIDE_LICENSED_ZONE"}),
    (None, "2008-05-02", set()),
], ids=["seguela-2008", "seguela-2015", "akwatia", "25-km-outside", "no-dig-point-uses-site"])
def test_purchase_screened_on_its_dig_point_as_of_its_date(
    world: Ledger, write, dig: tuple[float, float] | None, date: str, expected: set[str]  # type: ignore[no-untyped-def]
) -> None:
    extra = {} if dig is None else {"dig_location": point(dig)}
    result = buy(write, "P1", date=date, **extra)
    assert codes(result) == expected
    assert all(f["subject"] == {"type": "parcel", "id": "P1"} for f in result.flags)
    if expected:  # flagged parcels are held
        with pytest.raises(Exception, match="on hold"):
            move(write, "P1", "exp-gh", date=date)


def test_site_whose_licence_differs_from_the_zones_is_flagged(world: Ledger, write) -> None:  # type: ignore[no-untyped-def]
    result = write("site.registered", "off-gh", site_id="S-ODD", name="Pit with another licence",
                   location=point(AKWATIA), licence_no="GH-ML-OTHER", operator="Coop",
                   country="GH", date="2008-01-01")
    assert codes(result) == {"OUTSIDE_LICENSED_ZONE", "LICENCE_INVALID"}
    assert result.flags[0]["subject"] == {"type": "site", "id": "S-ODD"}


def test_revoked_or_expired_licence_zone(world: Ledger, write) -> None:  # type: ignore[no-untyped-def]
    write("licence.revoked", "off-gh", zone_id="Z-AKW", reason="mining outside plan",
          date="2010-01-01")
    assert codes(buy(write, "P1", date="2009-12-31")) == set()
    assert codes(buy(write, "P2", date="2010-01-01")) == {"OUTSIDE_LICENSED_ZONE",
                                                          "LICENCE_INVALID"}


def test_a_seller_registered_without_a_licence_is_flagged(world: Ledger, write) -> None:  # type: ignore[no-untyped-def]
    """SPEC 5 LICENCE_INVALID: a seller who is a registered actor needs a licence of its own;
    one who is not registered (a digger) is not screened for it."""
    def bought(pid: str, seller: str) -> WriteResult:
        return write("parcel.purchased", "buyer-a", parcel_id=pid, site_id="S-AKW",
                     seller=seller, date="2008-03-14", carats=1.0, stones=1,
                     price={"amount": 10, "currency": "USD"}, dig_location=point(AKWATIA))
    unlicensed = bought("P1", "aud-1")
    assert codes(unlicensed) == {"LICENCE_INVALID"}
    assert "the seller aud-1 is a registered actor without a licence" in \
        unlicensed.flags[0]["detail"].lower()
    assert codes(bought("P2", "exp-gh")) == set()  # licensed until 2030
    assert codes(bought("P3", "Ama Owusu")) == set()  # not a registered actor


def test_a_retired_zone_counts_up_to_its_valid_to_or_not_at_all(world: Ledger, write) -> None:  # type: ignore[no-untyped-def]
    """SPEC 5: validity is valid_from..valid_to; the payload's date plays no part in it."""
    zone(write, "R-EMBARGO", box(-8.6, 4.3, -2.4, 10.8), zone_type="risk", category="embargo",
         valid_from="2005-12-15")
    write("zone.retired", "off-gh", zone_id="R-EMBARGO", valid_to="2013-12-31",
          reason="embargo lifted", date="2014-04-29")
    write("zone.retired", "off-gh", zone_id="R-CIV-NORTH", reason="drawn in error",
          date="2011-06-01")

    def risks(pid: str, day: str) -> str:
        result = buy(write, pid, date=day, dig_location=point(SEGUELA))
        return next((f["detail"] for f in result.flags if f["code"] == "IN_RISK_AREA"), "")

    assert "R-EMBARGO" in risks("P1", "2013-12-31")
    assert risks("P2", "2014-01-01") == ""  # after its new valid_to, before the retiring date
    for pid, day in (("P3", "2008-05-02"), ("P4", "2011-05-01")):
        detail = risks(pid, day)  # R-CIV-NORTH was retired without valid_to: on no day
        assert "R-EMBARGO" in detail and "R-CIV-NORTH" not in detail


HOLE = Polygon([(-0.9, 5.9), (-0.7, 5.9), (-0.7, 6.1), (-0.9, 6.1)],
               holes=[[(-0.82, 6.02), (-0.78, 6.02), (-0.78, 6.06), (-0.82, 6.06)]])
MULTI = shapely.MultiPolygon([box(-0.85, 5.99, -0.75, 6.09), box(-0.50, 5.99, -0.40, 6.09)])


@pytest.mark.parametrize(("geom", "dig", "expected"), [
    (AKWATIA_ZONE, (-0.85, 6.04), set()),  # on the licence boundary: covered
    (HOLE, AKWATIA, {"OUTSIDE_LICENSED_ZONE"}),  # inside the hole
    (HOLE, (-0.88, 5.95), set()),  # in the ring around the hole
    (MULTI, (-0.45, 6.04), set()),  # in the second part
    (MULTI, (-0.60, 6.04), {"OUTSIDE_LICENSED_ZONE"}),  # between the parts
], ids=["boundary", "hole", "ring", "multipolygon-part", "between-parts"])
def test_licence_geometry_cases(ledger: Ledger, write, geom, dig, expected) -> None:  # type: ignore[no-untyped-def]
    write("actor.registered", "admin", actor_id="off-gh", name="MC", role="officer",
          country="GH", date="2004-01-02")
    write("actor.registered", "off-gh", **licensed("buyer-a", "buyer"))
    zone(write, "Z-1", geom)
    write("site.registered", "off-gh", site_id="S-AKW", name="Pit", location=point(dig),
          licence_no="GH-ML-AKW-1", operator="Coop", country="GH", date="2004-01-07")
    assert codes(buy(write, "P1", dig_location=point(dig))) == expected


def test_risk_boundary_and_overlapping_areas(world: Ledger, write) -> None:  # type: ignore[no-untyped-def]
    zone(write, "R-EMBARGO", box(-8.6, 4.3, -2.4, 10.8), zone_type="risk", category="embargo",
         valid_from="2005-12-15", valid_to="2014-04-29")
    both = buy(write, "P1", date="2008-05-02", dig_location=point(SEGUELA))
    detail = next(f["detail"] for f in both.flags if f["code"] == "IN_RISK_AREA")
    assert "R-CIV-NORTH" in detail and "R-EMBARGO" in detail
    edge = buy(write, "P2", date="2008-05-02", dig_location=point((-2.5, 8.0)))
    assert "IN_RISK_AREA" in codes(edge)  # on the rebel-held boundary: touches it
    embargo_only = buy(write, "P3", date="2013-05-02", dig_location=point(SEGUELA))
    assert "R-EMBARGO" in str(embargo_only.flags) and "R-CIV-NORTH" not in str(
        embargo_only.flags)


def test_zone_file_in_utm_screens_like_wgs84(world: Ledger, runner: CliRunner,
                                             tmp_path: Path, write) -> None:  # type: ignore[no-untyped-def]
    frame = geopandas.GeoDataFrame(
        {"zone_id": ["Z-UTM"], "licence_no": ["GH-ML-UTM-1"], "holder": ["Birim Coop"],
         "valid_from": ["2000-01-01"]},
        geometry=[box(-1.05, 6.15, -0.95, 6.25)], crs=4326).to_crs(32630)
    path = tmp_path / "birim_utm.gpkg"
    frame.to_file(path, engine="pyogrio")
    result = runner.invoke(cli, ["import-zones", str(path), "--type", "licence",
                                 "--actor", "off-gh"])
    assert result.exit_code == 0, result.output
    write("site.registered", "off-gh", site_id="S-BIR", name="Birim pit",
          location=point((-1.0, 6.2)), licence_no="GH-ML-UTM-1", operator="Coop", country="GH",
          date="2004-01-07")
    assert codes(buy(write, "P1", site="S-BIR", dig_location=point((-0.96, 6.24)))) == set()
    assert codes(buy(write, "P2", site="S-BIR", dig_location=point((-0.94, 6.24)))) == {
        "OUTSIDE_LICENSED_ZONE"}


def test_rescreen_after_a_new_risk_area(world: Ledger, write, runner: CliRunner) -> None:  # type: ignore[no-untyped-def]
    buy(write, "P1", date="2008-03-20")
    buy(write, "P2", date="2008-03-20")
    buy(write, "P9", date="2008-03-20", dig_location=point((-0.76, 6.08)))
    merge(write, ["P1", "P2"], "P3", 20, 10)
    split(write, "P3", [("P4", 12, 6), ("P5", 8, 4)])
    move(write, "P4", "exp-gh")
    export(write, ["P4"], 12, cert="GH-2008-0007")
    # A risk area declared later that covers Akwatia's pit but not P9's dig point.
    zone(write, "R-AKW-DISPUTE", box(-0.81, 6.03, -0.79, 6.05), zone_type="risk",
         category="conflict", valid_from="2008-01-01", valid_to="2008-12-31")
    first = runner.invoke(cli, ["rescreen"])
    assert first.exit_code == 0, first.output
    listed = json.loads(runner.invoke(cli, ["flags", "--open", "--json"]).stdout)
    got = {(f["subject"]["type"], f["subject"]["id"], f["code"]) for f in listed}
    assert ("parcel", "P1", "IN_RISK_AREA") in got and ("parcel", "P2", "IN_RISK_AREA") in got
    assert ("parcel", "P9", "IN_RISK_AREA") not in got
    for tainted in [("parcel", "P3"), ("parcel", "P4"), ("parcel", "P5"),
                    ("export", "GH-2008-0007")]:
        assert (*tainted, "TAINTED_INPUT") in got
    assert all(set(f) == {"flag_id", "seq", "code", "subject", "detail", "status"}
               for f in listed)
    with pytest.raises(Exception, match="on hold"):
        move(write, "P5", "exp-gh")
    size = world.log.size()
    second = runner.invoke(cli, ["rescreen"])
    assert second.exit_code == 0 and "0 new flags" in second.stdout
    assert world.log.size() == size  # nothing appended


def bad_files(tmp_path: Path) -> list[tuple[str, Path, str]]:
    def geojson(name: str, coords: Any, gtype: str = "Polygon", crs: bool = False) -> Path:
        fc: dict[str, Any] = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"zone_id": "Z-OK", "licence_no": "L1",
                                               "holder": "H", "valid_from": "2000-01-01"},
             "geometry": mapping(box(-1, 6, -0.9, 6.1))},
            {"type": "Feature", "properties": {"zone_id": "Z-BAD", "licence_no": "L2",
                                               "holder": "H", "valid_from": "2000-01-01"},
             "geometry": None if coords is None else {"type": gtype, "coordinates": coords}}]}
        path = tmp_path / f"{name}.geojson"
        path.write_text(json.dumps(fc))
        return path

    bowtie = [[[0, 6], [1, 7], [1, 6], [0, 7], [0, 6]]]
    swapped = [[[6.0, -100.0], [6.1, -100.0], [6.1, -100.1], [6.0, -100.1], [6.0, -100.0]]]
    far = [[[-200, 6], [-199, 6], [-199, 7], [-200, 6]]]
    utm = geopandas.GeoDataFrame({"zone_id": ["Z-UTM"], "licence_no": ["L"], "holder": ["H"],
                                  "valid_from": ["2000-01-01"]},
                                 geometry=[box(600000, 660000, 610000, 670000)])
    shp = tmp_path / "no_prj.shp"
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        utm.to_file(shp, engine="pyogrio")  # a projected file without its .prj
    return [
        ("invalid-geometry", geojson("bowtie", bowtie), "feature 2 (Z-BAD): invalid geometry"),
        ("empty-geometry", geojson("empty", None), "feature 2 (Z-BAD): has no geometry"),
        ("lat-lon-swapped", geojson("swapped", swapped), "look swapped"),
        ("out-of-range", geojson("far", far), "out of range"),
        ("projected-without-crs", shp, "has no CRS"),
    ]


@pytest.mark.parametrize("case", range(5), ids=["invalid-geometry", "empty-geometry",
                                                "lat-lon-swapped", "out-of-range",
                                                "projected-without-crs"])
def test_bad_zone_files_are_refused_whole(world: Ledger, runner: CliRunner, tmp_path: Path,
                                          case: int) -> None:
    _, path, message = bad_files(tmp_path)[case]
    size = world.log.size()
    result = runner.invoke(cli, ["import-zones", str(path), "--type", "licence"])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert world.log.size() == size


def test_export_geojson_has_flat_properties(world: Ledger, write, runner: CliRunner) -> None:  # type: ignore[no-untyped-def]
    buy(write, "P1", date="2008-05-02", dig_location=point(SEGUELA))
    fc = json.loads(runner.invoke(cli, ["export-geojson"]).stdout)
    layers = {f["properties"]["layer"] for f in fc["features"]}
    assert layers == {"licence_zone", "risk_area", "site", "flagged_purchase"}
    for f in fc["features"]:
        assert all(not isinstance(v, dict | list) for v in f["properties"].values())
    flagged = next(f for f in fc["features"] if f["properties"]["layer"] == "flagged_purchase")
    assert flagged["geometry"]["coordinates"] == list(SEGUELA)
    assert "IN_RISK_AREA" in flagged["properties"]["flags"]


def test_ingest_screens_a_chunk_of_points_like_single_writes(world: Ledger, write) -> None:  # type: ignore[no-untyped-def]
    """Ingest looks a whole chunk's dig points up in the zone trees at once: the
    boundary, hole, multipolygon and overlapping-area cases flag exactly as single writes."""
    from ledger.recorder.ingest import ingest
    zone(write, "Z-HOLE", HOLE, licence_no="GH-ML-HOLE")
    zone(write, "Z-MULTI", MULTI, licence_no="GH-ML-MULTI")
    zone(write, "R-EMBARGO", box(-8.6, 4.3, -2.4, 10.8), zone_type="risk", category="embargo",
         valid_from="2005-12-15", valid_to="2014-04-29")
    for site, licence in [("S-HOLE", "GH-ML-HOLE"), ("S-MULTI", "GH-ML-MULTI")]:
        write("site.registered", "off-gh", site_id=site, name="Pit", location=point(AKWATIA),
              licence_no=licence, operator="Coop", country="GH", date="2004-01-07")
    cases = [  # site, dig point, date
        ("S-AKW", (-0.85, 6.04), "2008-05-02"), ("S-AKW", SEGUELA, "2008-05-02"),
        ("S-AKW", SEGUELA, "2013-05-02"), ("S-AKW", SEGUELA, "2015-05-02"),
        ("S-AKW", (-2.5, 8.0), "2008-05-02"), ("S-AKW", EAST_25_KM, "2008-05-02"),
        ("S-HOLE", AKWATIA, "2008-05-02"), ("S-HOLE", (-0.88, 5.95), "2008-05-02"),
        ("S-MULTI", (-0.45, 6.04), "2008-05-02"), ("S-MULTI", (-0.60, 6.04), "2008-05-02"),
        ("S-AKW", None, "2008-05-02"), ("S-UNKNOWN", AKWATIA, "2008-05-02"),
    ]
    one_by_one: dict[int, list[tuple[str, str]]] = {}
    lines = []
    for n, (site, dig, day) in enumerate(cases):
        extra = {} if dig is None else {"dig_location": point(dig)}
        result = buy(write, f"W{n}", site=site, date=day, **extra)
        one_by_one[n] = sorted((f["code"], f["detail"]) for f in result.flags)
        lines.append(json.dumps({"kind": "parcel.purchased", "actor": "buyer-a", "payload": {
            "parcel_id": f"I{n}", "site_id": site, "seller": "Kofi Boateng", "date": day,
            "carats": 10.0, "stones": 5, "price": {"amount": 420.5, "currency": "USD"},
            **extra}}))
    assert any(one_by_one.values()) and not all(one_by_one.values())
    ingest(world, lines)
    with world.engine.connect() as conn:
        rows = conn.execute(sa.select(flags.c.subject_id, flags.c.code, flags.c.detail)
                            .where(flags.c.subject_id.startswith("I"))).all()
    by_ingest: dict[int, list[tuple[str, str]]] = {n: [] for n in range(len(cases))}
    for subject, code, detail in rows:
        by_ingest[int(subject[1:])].append((code, detail))
    for n in one_by_one:
        assert sorted(by_ingest[n]) == one_by_one[n], n
