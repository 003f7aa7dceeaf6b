"""The packaged 0.1-degree land mask (``soilresp/data/land_mask_0p1deg.npz``), loaded lazily.

Derived from the 1 km GLOBE mask of the ``global-land-mask`` package (MIT): a 0.1-degree
cell is land when less than half of its 1 km pixels are ocean (lakes count as land). The
47 kB file (bit-packed, 1800 x 3600, south to north, 180W to 180E) replaces importing
``global-land-mask``, whose 1 km array costs ~940 MB of RAM.
"""

from __future__ import annotations

import functools

import numpy as np

LAND_MASK_FILE = "land_mask_0p1deg.npz"
RESOLUTION = 0.1  # degrees


@functools.lru_cache(maxsize=1)
def land_grid() -> np.ndarray:
    """Boolean land mask (1800, 3600): row 0 is 90S-89.9S, column 0 is 180W-179.9W."""
    from importlib import resources

    with resources.as_file(resources.files("soilresp") / "data" / LAND_MASK_FILE) as p, \
            np.load(p, allow_pickle=False) as z:
        shape = tuple(int(v) for v in z["shape"])
        return np.unpackbits(z["land"])[: shape[0] * shape[1]].reshape(shape).astype(bool)


def is_land(lat, lon) -> np.ndarray:
    """True where the 0.1-degree cell holding (``lat``, ``lon``) in degrees is land."""
    base = land_grid()
    lat = np.asarray(lat, float)
    lon = np.asarray(lon, float)
    iy = np.clip(np.floor((lat + 90.0) / RESOLUTION).astype(int), 0, base.shape[0] - 1)
    ix = np.floor(((lon + 180.0) % 360.0) / RESOLUTION).astype(int) % base.shape[1]
    return base[iy, ix]
