"""Drivers at the field sites (method step 2): the cell containing the site (:func:`soilresp.grid.axis_cell`, the rule the biome of a site uses too), distance recorded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from soilresp.grid import Grid


def extract_at_sites(cube: xr.Dataset, obs: pd.DataFrame, grid: Grid,
                     max_distance_km: float = 100.0) -> pd.DataFrame:
    """Driver values at each observation's site (the cell containing it, :func:`soilresp.grid.axis_cell`) and year (method step 2).

    Adds every cube variable as a column plus ``pixel_lat``, ``pixel_lon``, ``distance_km``
    (great-circle distance, km, on a sphere of the mean Earth radius 6371.0088 km, from the
    site to the centre of the grid cell containing it). Rows farther than
    ``max_distance_km``, outside the grid or in a year the cube lacks get NaN drivers (the
    distance is still recorded when the site is on the grid).
    """
    i, j = grid.nearest_index(obs["lat"].to_numpy(), obs["lon"].to_numpy())
    on_grid = i >= 0
    years = cube["year"].values
    oy = obs["year"].to_numpy()
    yi = np.searchsorted(years, oy)
    ok = on_grid & (yi < years.size) & (years[np.minimum(yi, years.size - 1)] == oy)
    out = obs.copy()
    plat = np.where(on_grid, grid.lat[np.maximum(i, 0)], np.nan)
    plon = np.where(on_grid, grid.lon[np.maximum(j, 0)], np.nan)
    out["pixel_lat"], out["pixel_lon"] = plat, plon
    out["distance_km"] = haversine_km(obs["lat"].to_numpy(), obs["lon"].to_numpy(), plat, plon)
    ok &= out["distance_km"].to_numpy() <= max_distance_km
    idx = np.nonzero(ok)[0]
    sel = cube.isel(
        year=xr.DataArray(yi[idx], dims="obs"),
        lat=xr.DataArray(i[idx], dims="obs"),
        lon=xr.DataArray(j[idx], dims="obs"),
    ).compute()
    for v in cube.data_vars:
        col = np.full(len(obs), np.nan)
        col[idx] = sel[v].values
        out[v] = col
    return out


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance (km) on the sphere of mean radius 6371.0088 km."""
    r = 6371.0088
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dphi, dl = p2 - p1, np.deg2rad(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * r * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
