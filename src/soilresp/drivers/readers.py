"""Readers: one driver source -> a lazy xarray DataArray with units and fill values applied.

Every reader returns dims ``(time, lat, lon)`` (or ``(lat, lon)`` for a source without a
time axis, ``frequency = "static"``) with ``lat`` ascending, ``lon`` ascending in
[-180, 180), values in physical units (scale factor and offset applied), fill values and
values outside the valid range masked to NaN, and ``units`` / ``long_name`` attributes.

Formats (``[[drivers.sources]] format``, ``"auto"`` guesses from the file suffix):

* ``netcdf`` - NetCDF / CF (also HDF5-based NetCDF-4 and OPeNDAP URLs): ``_FillValue``,
  ``missing_value``, ``scale_factor``, ``add_offset`` (xarray) and ``valid_range`` /
  ``valid_min`` / ``valid_max`` (here).
* ``geotiff`` - GeoTIFF / Cloud-Optimised GeoTIFF through rioxarray: nodata, scale and
  offset tags. A geographic CRS gives a lat/lon array; any other CRS is sampled by nearest
  neighbour onto the target grid directly (cell centres projected with pyproj). Several
  files are stacked along time with the date in each file name (``AYYYYDDD``,
  ``YYYYMMDD``, ``YYYY-MM`` or ``YYYY``).
* ``modis`` - MODIS HDF4-EOS tiles (:mod:`soilresp.drivers.modis`).
* ``csv`` - a point table with latitude / longitude columns (``lat``/``latitude``,
  ``lon``/``longitude``, any case) and one value column (``name``) on a regular grid of
  cell centres; lines starting with ``#`` are comments. Always static.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from soilresp.config import DriverSource
from soilresp.drivers._common import (
    LAT_NAMES,
    LON_NAMES,
    apply_valid_range,
    date_from_name,
    decode_time,
    expand,
    standardise_coords,
)
from soilresp.errors import input_error
from soilresp.grid import Grid

FORMATS = ("netcdf", "geotiff", "modis", "csv")
_SUFFIX_FORMAT = {".nc": "netcdf", ".nc4": "netcdf", ".cdf": "netcdf", ".h5": "netcdf",
                  ".tif": "geotiff", ".tiff": "geotiff", ".hdf": "modis", ".csv": "csv",
                  ".txt": "csv"}


def source_paths(src: DriverSource, base_dir: Path) -> list[Path]:
    from soilresp.drivers.checks import check_not_network, is_network_path

    check_not_network(src.path, getattr(src, "allow_network", False))
    if is_network_path(src.path):
        return [Path(src.path)]
    p = Path(src.path).expanduser()
    return expand(p if p.is_absolute() else Path(base_dir) / p)


def detect_format(src: DriverSource, paths: list[Path]) -> str:
    fmt = getattr(src, "format", "auto")
    if fmt != "auto":
        return fmt
    suf = paths[0].suffix.lower()
    if suf not in _SUFFIX_FORMAT:
        raise input_error(paths[0], f"cannot tell the format from the suffix {suf!r}; set "
                          f"format to one of {FORMATS}", column="format")
    return _SUFFIX_FORMAT[suf]


def open_source(src: DriverSource, base_dir: Path, chunk: int = 256,
                grid: Grid | None = None) -> xr.DataArray:
    """Open one driver source lazily (dask) as described in the module docstring.

    MODIS tiles and projected GeoTIFFs are sampled straight onto ``grid`` (their result
    carries the attribute ``soilresp_on_target_grid = 1``), so ``grid`` is required for them.
    """
    paths = source_paths(src, base_dir)
    fmt = detect_format(src, paths)
    name = src.name or src.variable
    if fmt == "modis":
        from soilresp.drivers import modis

        if grid is None:
            raise input_error(paths[0], "MODIS tiles are read onto a target grid: pass grid")
        da = modis.open_modis(paths, name, grid, product=getattr(src, "product", None),
                              qa=getattr(src, "qa", "default"))
    elif fmt == "geotiff":
        da = open_geotiff(paths, name, chunk, grid, allow_vrt=getattr(src, "allow_vrt", False))
    elif fmt == "csv":
        if len(paths) > 1:
            raise input_error(paths[0], "a CSV point table is one file; the glob matched "
                              f"{len(paths)}")
        da = open_point_table(paths[0], name)
    else:
        da = open_netcdf(paths, name, chunk)
    if getattr(src, "units", None):
        da.attrs["units"] = src.units
    da.attrs.setdefault("units", "1")
    da.attrs.setdefault("long_name", src.variable)
    da.name = src.variable
    da = _finish_time(da, src, paths[0], chunk)
    from soilresp.drivers.checks import check_source_values, sample_values

    vals = sample_values(da)  # computed once, shared by both checks (a MODIS step reads every tile)
    _check_has_values(da, paths[0], name, vals)
    check_source_values(da, paths[0] if len(paths) == 1 else src.path, src.variable, vals)
    return da


def _check_has_values(da: xr.DataArray, path: Path, name: str, sample: np.ndarray | None = None) -> None:
    """A source with no valid value at all (NaN/fill everywhere) is an error, not a NaN map.

    Looks at the finite values of three time steps first (``sample``, cheap); only if there
    are none is the whole source scanned before raising.
    """
    from soilresp.drivers.checks import sample_values

    if sample is None:
        sample = sample_values(da)
    if sample.size or bool(np.isfinite(da).any()):
        return
    raise input_error(path, "no valid value anywhere (every cell is missing, fill or outside "
                      "the valid range)", column=name)


def _finish_time(da: xr.DataArray, src: DriverSource, path: Path, chunk: int) -> xr.DataArray:
    static = src.frequency == "static"
    if "time" in da.dims:
        if static:
            if da.sizes["time"] != 1:
                raise input_error(path, f"frequency 'static' but the variable has "
                                  f"{da.sizes['time']} time steps", column="time")
            da = da.isel(time=0, drop=True)
        else:
            da = decode_time(da, path)
    elif not static:
        raise input_error(path, "variable has no 'time' dimension; set frequency = "
                          "\"static\" for a map without time (it is used for every run year)",
                          column=src.name or src.variable)
    # time keeps the file's chunks (one file = one chunk, typically); aggregation regroups
    # them by year. Merging all times into one chunk would make every task hold the series.
    if da.chunks is None:  # numpy-backed (CSV tables)
        da = da.chunk({"lat": chunk, "lon": chunk})
    return da


# ----------------------------------------------------------------------------- NetCDF / CF
def open_netcdf(paths: list[Path], name: str, chunk: int | None = None) -> xr.DataArray:
    """NetCDF/CF file(s); with ``chunk``, dask chunks of ``chunk`` lat/lon cells read straight
    from the file (no rechunking step that would hold several file chunks per task)."""
    chunks: dict = {}
    if chunk:
        try:
            with xr.open_dataset(paths[0], decode_times=False) as probe:
                v = probe[name] if name in probe else None
                dims = v.dims if v is not None else ()
                stored = v.encoding.get("chunksizes") if v is not None else None
        except (OSError, ValueError) as e:
            raise input_error(paths[0], f"cannot read as NetCDF/CF: {e}") from None
        for k, d in enumerate(dims):
            if str(d).lower() in LAT_NAMES + LON_NAMES:
                # a whole number of the file's own chunks, close to the requested size
                st = int(stored[k]) if stored else 0
                chunks[d] = max(1, round(chunk / st)) * st if st else chunk
    kw = dict(chunks=chunks, mask_and_scale=True, decode_times=xr.coders.CFDatetimeCoder(use_cftime=None))
    try:
        if len(paths) == 1:
            ds = xr.open_dataset(paths[0], **kw)
        else:
            _same_grid(paths)
            ds = xr.open_mfdataset(paths, combine="by_coords", **kw)
    except (OSError, ValueError) as e:
        raise input_error(paths[0], f"cannot read as NetCDF/CF: {e}") from None
    if name not in ds:
        raise input_error(paths[0], f"variable not found; the file has {sorted(ds.data_vars)}",
                          column=name)
    from soilresp.drivers.checks import check_valid_range_decoding

    check_valid_range_decoding(ds[name], paths[0], name)   # before the valid range is applied and dropped
    da = apply_valid_range(ds[name])
    return standardise_coords(da, paths[0])


def _same_grid(paths: list[Path]) -> None:
    """Files of one source must share one lat/lon grid (they are stacked along time)."""
    ref = None
    for p in paths:
        with xr.open_dataset(p, decode_times=False) as ds:
            coords = {}
            for names, std in ((LAT_NAMES, "lat"), (LON_NAMES, "lon")):
                hit = [d for d in ds.dims if str(d).lower() in names]
                coords[std] = np.asarray(ds[hit[0]].values, float) if hit and hit[0] in ds else None
        if ref is None:
            ref = (p, coords)
            continue
        for std in ("lat", "lon"):
            a, b = ref[1][std], coords[std]
            if a is None or b is None:
                continue
            if a.shape != b.shape or not np.allclose(a, b):
                raise input_error(p, f"grid differs from {ref[0].name} ({std}: {b.size} values "
                                  f"{b.min():g}..{b.max():g} vs {a.size} values {a.min():g}..{a.max():g})",
                                  column=std)


# ----------------------------------------------------------------------------- GeoTIFF
def open_geotiff(paths: list[Path], name: str | None, chunk: int = 256,
                 grid: Grid | None = None, allow_vrt: bool = False) -> xr.DataArray:
    """GeoTIFF / COG band 1 (or the band named ``name`` in its description), masked and
    scaled. Several files: one time step each, dated from the file name."""
    from soilresp.drivers.checks import check_not_vrt, gdal_driver
    from soilresp.extras import require

    rioxarray = require("rioxarray", "geotiff", f"reading GeoTIFF {paths[0]}")  # registers .rio

    arrays, times = [], []
    for p in paths:
        check_not_vrt(p, allow_vrt)
        try:
            # an explicit GDAL driver allow-list: no VRT, no other format found by content sniffing
            gdal_driver(p, allow_vrt)
            da = rioxarray.open_rasterio(p, chunks={"x": chunk, "y": chunk}, masked=True, mask_and_scale=True)
        except Exception as e:  # rasterio raises its own error types
            raise input_error(p, f"cannot read as GeoTIFF: {e}") from None
        da = _pick_band(da, name, p)
        crs = da.rio.crs
        if crs is None:
            raise input_error(p, "GeoTIFF has no CRS")
        if not crs.is_geographic:
            if grid is None:
                raise input_error(p, "projected GeoTIFF needs the target grid")
            from soilresp.drivers.modis import sample_projected_raster

            da = sample_projected_raster(da, crs, grid, p)
        else:
            da = da.drop_vars(["spatial_ref"], errors="ignore").rename({"y": "lat", "x": "lon"})
            da = standardise_coords(da, p)
        arrays.append(da)
        if len(paths) > 1:
            t = date_from_name(p)
            if t is None:
                raise input_error(p, "several GeoTIFFs form a time series but this file name "
                                  "holds no date (AYYYYDDD, YYYYMMDD, YYYY-MM or YYYY)")
            times.append(t)
    if len(arrays) == 1:
        out = arrays[0]
    else:
        out = xr.concat(arrays, dim=pd.Index(pd.DatetimeIndex(times), name="time"))
        out = out.sortby("time")
    attrs = dict(arrays[0].attrs)
    out.attrs = {k: v for k, v in attrs.items() if k in ("units", "long_name", "standard_name",
                                                        "soilresp_on_target_grid")}
    return out


def _pick_band(da: xr.DataArray, name: str | None, path: Path) -> xr.DataArray:
    if "band" not in da.dims:
        return da
    descr = da.attrs.get("long_name")
    if da.sizes["band"] == 1:
        return da.isel(band=0, drop=True)
    if isinstance(descr, (list, tuple)) and name in descr:
        return da.isel(band=list(descr).index(name), drop=True)
    raise input_error(path, f"GeoTIFF has {da.sizes['band']} bands; name one by its "
                      f"description ({descr})", column=name)


# ----------------------------------------------------------------------------- CSV points
def open_point_table(path: Path, name: str) -> xr.DataArray:
    """A CSV of grid-cell centres (lat, lon, value columns) as a static lat/lon grid.

    The grid step is the smallest spacing of the distinct latitudes (and longitudes);
    every point must fall on a cell centre of that regular grid. Missing cells are NaN.
    """
    try:
        df = pd.read_csv(path, comment="#", skip_blank_lines=True)
    except (OSError, ValueError) as e:
        raise input_error(path, f"cannot read as CSV: {e}") from None
    cols = {c.lower().strip(): c for c in df.columns}
    lat_c = next((cols[c] for c in ("lat", "latitude", "y") if c in cols), None)
    lon_c = next((cols[c] for c in ("lon", "longitude", "long", "x") if c in cols), None)
    if lat_c is None or lon_c is None:
        raise input_error(path, f"no latitude/longitude columns; the file has {list(df.columns)}",
                          column="lat" if lat_c is None else "lon")
    if name not in df.columns:
        raise input_error(path, f"value column not found; the file has {list(df.columns)}",
                          column=name)
    lat = pd.to_numeric(df[lat_c], errors="coerce").to_numpy(float)
    lon = pd.to_numeric(df[lon_c], errors="coerce").to_numpy(float)
    val = pd.to_numeric(df[name], errors="coerce").to_numpy(float)
    bad = ~(np.isfinite(lat) & np.isfinite(lon))
    if bad.any():
        r = int(np.nonzero(bad)[0][0])
        raise input_error(path, "latitude/longitude is not a number", row=r + 2, column=lat_c)
    lon = ((lon + 180.0) % 360.0) - 180.0
    axes = []
    for v, what in ((lat, "lat"), (lon, "lon")):
        u = np.unique(v)
        step = float(np.min(np.diff(u))) if u.size > 1 else 1.0
        idx = np.rint((v - u[0]) / step)
        off = np.abs(v - (u[0] + idx * step))
        if np.any(off > 1e-4 * step):
            r = int(np.argmax(off))
            raise input_error(path, f"points are not on a regular {what} grid of step {step}",
                              row=r + 2, column=what, value=float(v[r]))
        n = int(idx.max()) + 1
        axes.append((u[0] + step * np.arange(n), idx.astype(np.int64)))
    (glat, ilat), (glon, ilon) = axes
    grid = np.full((glat.size, glon.size), np.nan, dtype=np.float32)
    grid[ilat, ilon] = val
    da = xr.DataArray(grid, dims=("lat", "lon"), coords={"lat": glat, "lon": glon}, name=name,
                      attrs={"long_name": name})
    return standardise_coords(da, path)
