"""Make the basemap the pages draw under the zones: country outlines and coastline of West
and Central Africa, cut from Natural Earth (public domain) and simplified to keep the
package small.

    python -m sample_data.basemap [SOURCE] [--tolerance DEGREES]

SOURCE defaults to ``../shared/data/ne_10m_admin0_west_central_africa.geojson`` beside the
repository (its README there records the source: Natural Earth 10m Admin-0 countries,
v5.1.1). The result, ``ledger/geo/data/countries.geojson``, is checked in and shipped with
the package; nothing is fetched at run time. Each country keeps ``iso_a2``, ``name`` and
``name_fr`` (the source's mis-encoded accents repaired); its outline is simplified
(Douglas-Peucker, topology kept) at ``--tolerance`` degrees (default 0.01, about 1.1 km:
under a pixel on the map of the region, a few on a close-up) and rounded to 0.001 degree.
Same source, same bytes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import mapping, shape

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "data" / "ne_10m_admin0_west_central_africa.geojson"
TARGET = ROOT / "ledger" / "geo" / "data" / "countries.geojson"
TOLERANCE = 0.01
GRID = 0.001
KEPT = ("iso_a2", "name", "name_fr")


def repaired(text: str) -> str:
    """The name as written: the source's names are UTF-8 read once as Latin-1
    ("CÃ´te d'Ivoire"); a name that is not so is kept as it is."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def simplified(collection: dict[str, Any], tolerance: float = TOLERANCE) -> dict[str, Any]:
    """The countries of ``collection`` with their kept properties and simpler outlines,
    sorted by ISO code."""
    features = []
    for f in sorted(collection["features"], key=lambda f: f["properties"]["iso_a2"]):
        outline = shape(f["geometry"]).simplify(tolerance, preserve_topology=True)
        outline = shapely.set_precision(outline, GRID)
        if outline.is_empty:
            continue
        features.append({"type": "Feature",
                         "properties": {k: repaired(f["properties"][k]) for k in KEPT},
                         "geometry": mapping(outline)})
    return {"type": "FeatureCollection", "features": features}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=SOURCE)
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    args = parser.parse_args(argv)
    made = simplified(json.loads(args.source.read_text(encoding="utf-8")), args.tolerance)
    text = json.dumps(made, ensure_ascii=False, separators=(",", ":"))
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text + "\n", encoding="utf-8")
    print(f"{TARGET.relative_to(ROOT)}: {len(made['features'])} countries, "
          f"{len(text.encode()):,} bytes")


if __name__ == "__main__":
    main()
