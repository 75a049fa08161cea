"""The basemap under the zones: country outlines and coastline of West and Central Africa.

From Natural Earth 10m Admin-0 countries (public domain), cut and simplified by
``sample_data/basemap.py`` into ``ledger/geo/data/countries.geojson``, which ships with the
package: nothing is fetched at run time (SPEC 6: no tile server). Border lines are Natural
Earth's, not an opinion of this project on any boundary.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import shapely
from shapely.geometry.base import BaseGeometry

DATA = "data/countries.geojson"


@dataclass(frozen=True)
class Country:
    iso_a2: str
    name: str
    name_fr: str
    outline: BaseGeometry  # WGS 84 longitude, latitude


@functools.cache
def _all() -> tuple[Country, ...]:
    text = resources.files("ledger.geo").joinpath(DATA).read_text(encoding="utf-8")
    found = []
    for f in json.loads(text)["features"]:
        p = f["properties"]
        found.append(Country(p["iso_a2"], p["name"], p["name_fr"],
                             shapely.from_geojson(json.dumps(f["geometry"]))))
    outlines = [c.outline for c in found]
    shapely.prepare(outlines)
    return tuple(found)


def countries(bounds: tuple[float, float, float, float], tolerance: float = 0.0
              ) -> list[Country]:
    """The countries that cross ``bounds`` (west, south, east, north), each cut to them and,
    when ``tolerance`` (degrees) is given, simplified further: what a map of that box
    draws. Sorted by ISO code."""
    box = shapely.box(*bounds)
    drawn = []
    for c in _all():
        if not c.outline.intersects(box):
            continue
        cut = shapely.clip_by_rect(c.outline, *bounds)
        if tolerance > 0:
            cut = cut.simplify(tolerance, preserve_topology=False)
        if not cut.is_empty:
            drawn.append(Country(c.iso_a2, c.name, c.name_fr, cut))
    return drawn
