"""Build ``srdb_site_density_5deg.csv``: the number of distinct SRDB v20200220 site locations
(unique latitude/longitude rounded to 0.01 degree) per 5 x 5 degree cell.

The synthetic twin world (:mod:`soilresp.synthetic`, ``kind="hard"``) samples its field sites
with this density so that they cluster like the real database (dense in Europe, North America
and East Asia; sparse in the tropics and the boreal zone). Only counts per coarse cell are
shipped, no SRDB record. Run from the repository root::

    python src/soilresp/data/make_srdb_site_density.py /work/shared/data/srdb/srdb-data_v20200220.csv
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

CELL = 5.0


def main(src: str) -> None:
    d = pd.read_csv(src, usecols=["Latitude", "Longitude"], encoding="latin1").dropna()
    d = d[(d.Latitude.abs() <= 90) & (d.Longitude.abs() <= 180)]
    loc = d.round(2).drop_duplicates()
    i = np.floor((loc.Latitude + 90) / CELL).clip(0, 180 / CELL - 1)
    j = np.floor((loc.Longitude + 180) / CELL).clip(0, 360 / CELL - 1)
    t = pd.DataFrame({"lat": -90 + CELL * (i + 0.5), "lon": -180 + CELL * (j + 0.5)})
    out = t.value_counts().rename("sites").reset_index().sort_values(["lat", "lon"])
    dest = Path(__file__).with_name("srdb_site_density_5deg.csv")
    out.to_csv(dest, index=False, float_format="%.1f")
    print(f"{dest}: {len(out)} cells, {int(out.sites.sum())} locations")


if __name__ == "__main__":
    main(sys.argv[1])
