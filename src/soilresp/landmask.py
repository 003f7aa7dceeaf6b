"""Packaged land masks, loaded lazily: the 1 km GLOBE mask of ``global-land-mask`` (MIT) for
the site QC, exactly, and a 0.1-degree mask for the report's coastlines.

``global-land-mask`` unpacks its 1 km mask (21600 x 43200 booleans) into ~940 MB of RAM on
import. Only coastal 0.1-degree blocks hold both land and ocean, so
``land_1km_blocks.npz`` stores, per 12 x 12-pixel block, whether it is all ocean, all land
or mixed, and the 144 bits of the mixed blocks only (~2 MB on disk, ~40 MB in RAM).
:func:`is_land` indexes it with the package's own rule (``globe.lat_to_index``,
``lon_to_index``), so it gives the same answer for every point (tested against the package).
Rebuild with :func:`build_1km` when ``global-land-mask`` changes.

``land_mask_0p1deg.npz`` (47 kB, 1800 x 3600, south to north, 180W to 180E): a 0.1-degree
cell is land when less than half of its 1 km pixels are ocean (drawn by the report).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

LAND_MASK_FILE = "land_mask_0p1deg.npz"
LAND_1KM_FILE = "land_1km_blocks.npz"
_BLOCK = 12  # 1 km pixels (1/120 degree) per 0.1-degree block side


def _data_file(name: str):
    from importlib import resources

    return resources.as_file(resources.files("soilresp") / "data" / name)


@functools.lru_cache(maxsize=1)
def land_grid() -> np.ndarray:
    """The 0.1-degree majority land mask (1800, 3600): row 0 is 90S-89.9S, column 0 is
    180W-179.9W."""
    with _data_file(LAND_MASK_FILE) as p, np.load(p, allow_pickle=False) as z:
        shape = tuple(int(v) for v in z["shape"])
        return np.unpackbits(z["land"])[: shape[0] * shape[1]].reshape(shape).astype(bool)


@functools.lru_cache(maxsize=1)
def _blocks() -> dict:
    with _data_file(LAND_1KM_FILE) as p, np.load(p, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    state = d["state"]
    rank = np.cumsum((state == 2).ravel(), dtype=np.int32) - 1  # index into "mixed"
    d["rank"] = rank.reshape(state.shape)
    return d


def _index(v, first: float, step: float, lo: float, hi: float) -> np.ndarray:
    v = np.clip(np.asarray(v, float), lo, hi)
    return ((v - first) / step).astype(int)  # global_land_mask's lat_to_index / lon_to_index


def is_land(lat, lon) -> np.ndarray:
    """True where the 1 km GLOBE pixel of (``lat``, ``lon``) in degrees is land (most lakes
    count as land); the same result as ``global_land_mask.globe.is_land``. Arrays broadcast;
    latitudes must lie in [-90, 90] and longitudes in [-180, 180]."""
    d = _blocks()
    lat, lon = np.broadcast_arrays(np.asarray(lat, float), np.asarray(lon, float))
    if np.any(np.abs(lat) > 90) or np.any(np.abs(lon) > 180):
        raise ValueError("latitude must be in [-90, 90] and longitude in [-180, 180]")
    i = _index(lat, *d["lat_axis"])
    j = _index(lon, *d["lon_axis"])
    bi, bj = i // _BLOCK, j // _BLOCK
    state = d["state"][bi, bj]
    out = state == 1
    mixed = state == 2
    if mixed.any():
        k = d["rank"][bi[mixed], bj[mixed]]
        bit = (i[mixed] % _BLOCK) * _BLOCK + (j[mixed] % _BLOCK)
        byte = d["mixed"][k, bit // 8]
        out[mixed] = (byte >> (7 - bit % 8)) & 1 == 1
    return out


def build_1km(dest: str | Path) -> Path:
    """Write ``land_1km_blocks.npz`` from ``global-land-mask`` (needs it and ~2 GB of RAM)."""
    from soilresp.extras import require

    globe = require("global_land_mask.globe", "test", "rebuilding the packaged land mask")

    ocean = globe._mask  # True = ocean, rows north to south
    ny, nx = ocean.shape[0] // _BLOCK, ocean.shape[1] // _BLOCK
    blocks = ocean.reshape(ny, _BLOCK, nx, _BLOCK).transpose(0, 2, 1, 3).reshape(ny, nx, -1)
    n_ocean = blocks.sum(axis=2)
    state = np.where(n_ocean == _BLOCK * _BLOCK, 0, np.where(n_ocean == 0, 1, 2)).astype(np.uint8)
    mixed = np.packbits(~blocks[state == 2], axis=1)  # land bits of the mixed blocks
    lat, lon = globe._lat, globe._lon
    dest = Path(dest)
    np.savez_compressed(
        dest, state=state, mixed=mixed,
        lat_axis=np.array([lat[0], lat[1] - lat[0], lat.min(), lat.max()]),
        lon_axis=np.array([lon[0], lon[1] - lon[0], lon.min(), lon.max()]))
    return dest
