"""Rebuild ``countries_ne110m.csv`` from Natural Earth 1:110m admin-0 countries (developer tool).

Natural Earth (https://www.naturalearthdata.com) is public domain. The input used for the
shipped file is ``naturalearth_lowres.shp``/``.dbf`` (Natural Earth 110m admin-0, version
5.x, as bundled in the geopandas 0.14.4 wheel under ``geopandas/datasets/``). Only the
standard library is needed::

    python make_countries.py path/to/naturalearth_lowres.shp > countries_ne110m.csv

Output: one line per polygon ring, ``iso3,name,ring,coords`` where ``coords`` is
``lon lat`` pairs (degrees, 3 decimals) joined by ``;``. Holes are stored as rings too:
the reader uses the even-odd rule over all rings of a country.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path


def read_dbf(path: Path) -> list[dict[str, str]]:
    cpg = path.with_suffix(".cpg")
    encoding = cpg.read_text().strip() if cpg.is_file() else "latin-1"
    data = path.read_bytes()
    n, header_len, rec_len = struct.unpack("<xxxxIHH", data[:12])
    fields, pos = [], 32
    while data[pos] != 0x0D:
        name = data[pos : pos + 11].split(b"\0")[0].decode()
        flen = data[pos + 16]
        fields.append((name, flen))
        pos += 32
    rows, pos = [], header_len
    for _ in range(n):
        rec, off = {}, pos + 1
        for name, flen in fields:
            rec[name] = data[off : off + flen].decode(encoding).strip()
            off += flen
        rows.append(rec)
        pos += rec_len
    return rows


def read_shp_polygons(path: Path) -> list[list[list[tuple[float, float]]]]:
    data = path.read_bytes()
    pos, shapes = 100, []
    while pos < len(data):
        _, content_len = struct.unpack(">ii", data[pos : pos + 8])
        start = pos + 8
        shape_type = struct.unpack("<i", data[start : start + 4])[0]
        rings = []
        if shape_type == 5:
            n_parts, n_points = struct.unpack("<ii", data[start + 36 : start + 44])
            parts = struct.unpack(f"<{n_parts}i", data[start + 44 : start + 44 + 4 * n_parts])
            p0 = start + 44 + 4 * n_parts
            pts = struct.unpack(f"<{2 * n_points}d", data[p0 : p0 + 16 * n_points])
            bounds = list(parts) + [n_points]
            for a, b in zip(bounds[:-1], bounds[1:]):
                rings.append([(pts[2 * i], pts[2 * i + 1]) for i in range(a, b)])
        shapes.append(rings)
        pos = start + 2 * content_len
    return shapes


def main(shp: str) -> None:
    shp_path = Path(shp)
    recs = read_dbf(shp_path.with_suffix(".dbf"))
    shapes = read_shp_polygons(shp_path)
    print("iso3,name,ring,coords")
    for rec, rings in zip(recs, shapes):
        iso = rec.get("iso_a3") or rec.get("ISO_A3")
        if iso == "-99" and rec.get("name") == "Kosovo":
            iso = "XKX"  # user-assigned code; Natural Earth leaves it as -99
        name = (rec.get("name") or rec.get("NAME")).replace(",", " ")
        for k, ring in enumerate(rings):
            coords = ";".join(f"{x:.3f} {y:.3f}" for x, y in ring)
            print(f"{iso},{name},{k},{coords}")


if __name__ == "__main__":
    main(sys.argv[1])
