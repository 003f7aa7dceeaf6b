"""Gridded drivers (method step 2): read, aggregate to annual / MAM / JJA, regrid, extract.

Output contract, ``drivers/drivers.zarr``: one Dataset, dims ``(year, lat, lon)`` on the
target grid (:mod:`soilresp.grid`), chunked ``year: all, lat/lon: grid.chunk``, one variable
per driver and season: ``<var>`` (annual), ``<var>_mam`` (March-May), ``<var>_jja``
(June-August), each with CF ``units`` and ``long_name``. Derived variables (Huang et al.
2020, Methods): ``lst_diff = lst_day - lst_night`` (degC) and ``et_pet = et / pet`` (1).

Aggregation: ``mean`` variables are the mean of the valid time steps; ``sum`` variables are
the mean of the valid steps times the number of steps in the period (so a gap does not
lower an annual total). A year or season with fewer than ``min_valid_fraction`` valid steps
is missing. Seasons are calendar MAM / JJA everywhere, as in the paper.
"""

from __future__ import annotations

import glob as _glob
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from soilresp.config import DriverSource
from soilresp.errors import input_error
from soilresp.grid import Grid

SEASONS = {"mam": (3, 4, 5), "jja": (6, 7, 8)}
STEPS_PER_YEAR = {"monthly": 12, "8day": 46, "daily": 365, "annual": 1}
TEMPERATURE_VARS = {"tas", "lst_day", "lst_night", "lst_diff"}
# units after aggregation, by variable and aggregation
_SUM_UNITS = {"mm month-1": "mm yr-1", "mm day-1": "mm yr-1", "mm": "mm yr-1",
              "g C m-2 month-1": "g C m-2 yr-1", "g C m-2 8day-1": "g C m-2 yr-1",
              "g C m-2 day-1": "g C m-2 yr-1", "kg C m-2 8day-1": "kg C m-2 yr-1"}
_LAT_NAMES = ("lat", "latitude", "y", "nav_lat")
_LON_NAMES = ("lon", "longitude", "x", "nav_lon")


def _expand(path: Path) -> list[Path]:
    hits = sorted(Path(p) for p in _glob.glob(str(path)))
    if not hits:
        raise input_error(path, "no such driver file")
    return hits


def open_source(src: DriverSource, base_dir: Path, chunk: int = 256) -> xr.DataArray:
    """Open one driver as a lazy DataArray (time, lat, lon) with fill values masked,
    lat ascending and lon in [-180, 180)."""
    paths = _expand(base_dir / src.path if not Path(src.path).is_absolute() else Path(src.path))
    name = src.name or src.variable
    try:
        if len(paths) == 1:
            ds = xr.open_dataset(paths[0], chunks={}, mask_and_scale=True)
        else:
            ds = xr.open_mfdataset(paths, chunks={}, mask_and_scale=True, combine="by_coords")
    except (OSError, ValueError) as e:
        raise input_error(paths[0], f"cannot read as NetCDF/CF: {e}") from None
    if name not in ds:
        raise input_error(paths[0], f"variable not found; the file has {sorted(ds.data_vars)}",
                          column=name)
    da = ds[name]
    da = _standardise_coords(da, paths[0])
    if "time" not in da.dims:
        raise input_error(paths[0], "variable has no 'time' dimension", column=name)
    if da["time"].dtype.kind != "M":
        try:
            da["time"] = da.indexes["time"].to_datetimeindex()
        except Exception:
            raise input_error(paths[0], "time coordinate is not decodable as dates", column="time") from None
    return da.chunk({"time": -1, "lat": chunk, "lon": chunk})


def _standardise_coords(da: xr.DataArray, path: Path) -> xr.DataArray:
    ren = {}
    for names, std in ((_LAT_NAMES, "lat"), (_LON_NAMES, "lon")):
        found = [d for d in da.dims if str(d).lower() in names]
        if not found:
            raise input_error(path, f"no {std} dimension (looked for {names})", column=da.name)
        if found[0] != std:
            ren[found[0]] = std
    da = da.rename(ren)
    lat = da["lat"].values
    if lat.size > 1 and not (np.all(np.diff(lat) > 0) or np.all(np.diff(lat) < 0)):
        raise input_error(path, "latitude is not monotonic", column="lat")
    if np.nanmax(np.abs(lat)) > 90:
        raise input_error(path, "latitude outside [-90, 90] (swapped lat/lon?)", column="lat",
                          value=float(np.nanmax(np.abs(lat))))
    lon = da["lon"].values
    if np.nanmax(lon) > 180:
        da = da.assign_coords(lon=((lon + 180.0) % 360.0) - 180.0)
    return da.sortby("lat").sortby("lon")


def _period_agg(da: xr.DataArray, steps: int, how: str, min_frac: float) -> xr.DataArray:
    """Aggregate one year's (or season's) steps, grouped by ``time.year``."""
    g = da.groupby("time.year")
    count = g.count("time")
    mean = g.mean("time", skipna=True)
    val = mean * steps if how == "sum" else mean
    return val.where(count >= np.ceil(min_frac * steps))


def aggregate(da: xr.DataArray, src: DriverSource, years: tuple[int, int], min_frac: float,
              path_for_errors: str) -> dict[str, xr.DataArray]:
    """Annual (and seasonal) values per year for one driver; keys ``var``, ``var_mam``, ``var_jja``."""
    y0, y1 = years
    da = da.sel(time=(da["time.year"] >= y0) & (da["time.year"] <= y1))
    have = set(np.unique(da["time.year"].values).tolist())
    missing = sorted(set(range(y0, y1 + 1)) - have)
    if missing:
        raise input_error(path_for_errors, f"years {missing} are not in the file", column="time")
    steps = STEPS_PER_YEAR[src.frequency]
    out = {src.variable: _period_agg(da, steps, src.aggregation if steps > 1 else "mean", min_frac)}
    if src.seasons and src.frequency != "annual":
        for s, months in SEASONS.items():
            sub = da.sel(time=da["time.month"].isin(months))
            n = max(1, round(steps * len(months) / 12))
            out[f"{src.variable}_{s}"] = _period_agg(sub, n, src.aggregation, min_frac)
    units = da.attrs.get("units", "1")
    for k, v in out.items():
        u = units
        if src.aggregation == "sum" and steps > 1:
            u = _SUM_UNITS.get(units, f"{units} (summed per period)")
        v.attrs = {"units": u, "long_name": da.attrs.get("long_name", src.variable)}
        if src.variable in TEMPERATURE_VARS and u in ("K", "kelvin", "Kelvin"):
            out[k] = v - 273.15
            out[k].attrs = {"units": "degC", "long_name": v.attrs["long_name"]}
    return out


def regrid_nearest(da: xr.DataArray, grid: Grid) -> xr.DataArray:
    """Nearest-neighbour onto the target grid (the paper's choice); NaN outside the source."""
    res = [float(np.abs(np.diff(da[c].values)).mean()) if da[c].size > 1 else 360.0 for c in ("lat", "lon")]
    tgt = grid.coords()
    out = da.reindex(lat=tgt["lat"].values, method="nearest", tolerance=res[0] / 2 + 1e-9)
    out = out.reindex(lon=tgt["lon"].values, method="nearest", tolerance=res[1] / 2 + 1e-9)
    out = out.assign_coords(lat=tgt["lat"], lon=tgt["lon"])
    out.attrs = da.attrs
    return out


def build_cube(sources: list[DriverSource], grid: Grid, years: tuple[int, int], base_dir: Path,
               min_valid_fraction: float = 0.75) -> xr.Dataset:
    """The lazy driver cube (dask-backed) for all sources plus derived variables."""
    if not sources:
        raise input_error("config [drivers]", "no driver sources configured", column="sources")
    data: dict[str, xr.DataArray] = {}
    for src in sources:
        da = open_source(src, base_dir, grid.chunk)
        agg = aggregate(da, src, years, min_valid_fraction, src.path)
        for k, v in agg.items():
            data[k] = regrid_nearest(v, grid).astype(np.float32)
    for suffix in ("", "_mam", "_jja"):
        d, n = f"lst_day{suffix}", f"lst_night{suffix}"
        if d in data and n in data:
            data[f"lst_diff{suffix}"] = (data[d] - data[n]).assign_attrs(
                units="degC", long_name="day-night land surface temperature difference")
        e, p = f"et{suffix}", f"pet{suffix}"
        if e in data and p in data:
            data[f"et_pet{suffix}"] = (data[e] / data[p].where(data[p] > 0)).assign_attrs(
                units="1", long_name="ratio of evapotranspiration to potential evapotranspiration")
    ds = xr.Dataset(data).transpose("year", "lat", "lon")
    ds = ds.chunk({"year": -1, **grid.chunks()})
    ds["year"].attrs = {"long_name": "calendar year", "units": "1"}
    ds.attrs.update({"Conventions": "CF-1.10", "title": "soilresp driver cube"})
    return ds


def extract_at_sites(cube: xr.Dataset, obs: pd.DataFrame, grid: Grid,
                     max_distance_km: float = 100.0) -> pd.DataFrame:
    """Driver values at each observation's site (nearest pixel) and year (method step 2).

    Adds every cube variable as a column plus ``pixel_lat``, ``pixel_lon``, ``distance_km``
    (great-circle distance from the site to the pixel centre). Rows farther than
    ``max_distance_km`` or outside the grid get NaN drivers.
    """
    i, j = grid.nearest_index(obs["lat"].to_numpy(), obs["lon"].to_numpy())
    ok = i >= 0
    years = cube["year"].values
    yi = np.searchsorted(years, obs["year"].to_numpy())
    ok &= (yi < years.size) & (years[np.minimum(yi, years.size - 1)] == obs["year"].to_numpy())
    out = obs.copy()
    plat = np.where(ok, grid.lat[np.maximum(i, 0)], np.nan)
    plon = np.where(ok, grid.lon[np.maximum(j, 0)], np.nan)
    out["pixel_lat"], out["pixel_lon"] = plat, plon
    out["distance_km"] = _haversine_km(obs["lat"].to_numpy(), obs["lon"].to_numpy(), plat, plon)
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


def _haversine_km(lat1, lon1, lat2, lon2):
    r = 6371.0088
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dphi, dl = p2 - p1, np.deg2rad(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * r * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
