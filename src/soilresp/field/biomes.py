"""Site -> biome assignment from the biome map (Huang et al. 2020, Methods: biome-specific
models; Table S1 lists the ten biomes, codes in :data:`soilresp.config.BIOMES`)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from soilresp.errors import input_error

log = logging.getLogger("soilresp.field")

#: attrs key of the returned table listing the site ids left with biome 0
UNASSIGNED_KEY = "soilresp_biome_unassigned"

_LAT = ("lat", "latitude", "y")
_LON = ("lon", "longitude", "x")


def _coord(da, names):
    for n in names:
        if n in da.coords or n in da.dims:
            return n
    raise input_error(getattr(da, "name", None) or "biome map",
                      f"no coordinate named one of {names}")


def _nearest_index(axis: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the map cell containing each value and whether it is on the map: the one
    cell rule of :func:`soilresp.grid.axis_cell` (the same as the drivers at a site)."""
    from soilresp.grid import axis_cell

    return axis_cell(axis, values)


def assign_biomes(obs: pd.DataFrame, biome, *, max_cells: int = 0) -> pd.DataFrame:
    """Add the ``biome`` code (int16) of the map cell containing each observation
    (:func:`soilresp.grid.axis_cell`: half-open cells, a site on an edge belongs to the cell
    north / east of it).

    ``biome``: :class:`xarray.DataArray` on (lat, lon) with integer codes 1-10 and 0 =
    excluded (water, ice, non-modelled land). Longitudes may be -180..180 or 0..360; lat may
    be ascending or descending. Sites outside the map or on a 0 cell keep biome 0; with
    ``max_cells > 0`` such a site takes the most common non-zero code within that many
    cells (off by default). Sites left at 0 are logged and listed in
    ``result.attrs["soilresp_biome_unassigned"]``; the pipeline should exclude them from
    fitting. The observation's own ``vegetation`` column is kept unchanged.
    """
    import xarray as xr

    latn, lonn = _coord(biome, _LAT), _coord(biome, _LON)
    da = biome.transpose(latn, lonn)
    glat = np.asarray(da[latn].values, dtype=float)
    glon = np.asarray(da[lonn].values, dtype=float)
    lat = obs["lat"].to_numpy(dtype=float)
    lon = obs["lon"].to_numpy(dtype=float)
    if glon.max() > 180.0:
        lon = np.mod(lon, 360.0)
    iy, oky = _nearest_index(glat, lat)
    ix, okx = _nearest_index(glon, lon)
    # pointwise selection: only the chunks holding sites are read (maps may be dask-backed)
    pts = da.isel({latn: xr.DataArray(iy, dims="site"), lonn: xr.DataArray(ix, dims="site")})
    codes = np.asarray(pts.values, dtype=float)
    codes = np.where(np.isfinite(codes) & oky & okx, codes, 0).astype(np.int64)
    if max_cells > 0:
        for k in np.flatnonzero((codes == 0) & oky & okx):
            win = np.asarray(da.isel({
                latn: slice(max(iy[k] - max_cells, 0), iy[k] + max_cells + 1),
                lonn: slice(max(ix[k] - max_cells, 0), ix[k] + max_cells + 1),
            }).values, dtype=float).ravel()
            win = win[np.isfinite(win) & (win > 0)].astype(np.int64)
            if win.size:
                vals, counts = np.unique(win, return_counts=True)
                codes[k] = vals[np.argmax(counts)]
    out = obs.copy()
    out["biome"] = codes.astype("int16")
    unassigned = sorted(set(out.loc[out["biome"] == 0, "site_id"].astype(str)))
    out.attrs[UNASSIGNED_KEY] = unassigned
    if unassigned:
        log.warning(
            "%d of %d sites fall on excluded (0) or missing biome cells and keep biome 0: %s%s",
            len(unassigned), out["site_id"].nunique(), ", ".join(unassigned[:5]),
            " ..." if len(unassigned) > 5 else "",
        )
    return out
