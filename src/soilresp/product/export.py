"""Export soilresp grids (any ``*.zarr`` output) as CF NetCDF or Cloud-Optimized GeoTIFFs.

* NetCDF: one file, every variable with its CF attributes, ``crs`` grid-mapping variable
  (WGS84 lat/lon), zlib level 4; written chunk by chunk from the lazy Zarr arrays.
* COG: one GeoTIFF per variable and year (``<var>_<year>.tif``; ``<var>.tif`` for static
  maps), EPSG:4326, north up, DEFLATE, written by rioxarray/GDAL's COG driver with a
  windowed (dask, locked) write of a tiled GeoTIFF first, then translated to COG (GDAL
  builds the overviews from the file, not from memory).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import xarray as xr

from soilresp import io
from soilresp.errors import input_error

FORMATS = ("netcdf", "cog")


def _open(path: Path) -> xr.Dataset:
    path = Path(path)
    if path.suffix != ".zarr":
        raise input_error(path, "export reads a soilresp Zarr grid (*.zarr)")
    ds = io.open_zarr(path)
    grid_vars = [v for v in ds.data_vars if {"lat", "lon"} <= set(ds[v].dims)]
    if not grid_vars:
        raise input_error(path, "no (lat, lon) variables to export")
    return ds[grid_vars]


def to_netcdf(src: Path, dest: Path) -> Path:
    """Write the grid ``src`` (Zarr) as one CF-1.10 NetCDF file ``dest``; returns ``dest``."""
    ds = _open(src)
    ds = ds.copy()
    ds.attrs = {k: (v if isinstance(v, (str, int, float)) else str(v)) for k, v in ds.attrs.items()}
    ds.attrs.pop(io.COMPLETE_ATTR, None)
    ds.attrs.setdefault("Conventions", "CF-1.10")
    ds["crs"] = xr.DataArray(np.int32(0), attrs={
        "grid_mapping_name": "latitude_longitude", "semi_major_axis": 6378137.0,
        "inverse_flattening": 298.257223563, "crs_wkt": "EPSG:4326"})
    enc = {}
    for v in ds.data_vars:
        if v == "crs":
            continue
        ds[v].attrs["grid_mapping"] = "crs"
        for k in list(ds[v].attrs):
            if isinstance(ds[v].attrs[k], (bool, np.bool_)):
                ds[v].attrs[k] = int(ds[v].attrs[k])
        e = {"zlib": True, "complevel": 4}
        if ds[v].dtype == bool:
            ds[v] = ds[v].astype(np.int8)
        if ds[v].chunks is not None:
            e["chunksizes"] = tuple(c[0] for c in ds[v].chunks)
        ds[v].encoding = {}
        enc[v] = e
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = io._tmp_sibling(dest)   # soilresp's own temp name: a user's ".x.tmp" is never touched
    try:
        ds.to_netcdf(tmp, encoding=enc, engine="netcdf4")
        io._replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _layer_to_cog(da: xr.DataArray, dest: Path) -> Path:
    import rioxarray  # noqa: F401  (registers .rio)

    da = da.isel(lat=slice(None, None, -1))  # north up
    da.attrs.pop("_FillValue", None)
    da.encoding = {}
    if da.dtype == bool:
        da = da.astype(np.uint8)
    da = da.rio.set_spatial_dims(x_dim="lon", y_dim="lat").rio.write_crs("EPSG:4326")
    nodata = np.nan if np.issubdtype(da.dtype, np.floating) else None
    if nodata is not None:
        da = da.rio.write_nodata(nodata, encoded=False)
    tmp, out_tmp = io._tmp_sibling(dest, ".gtiff"), io._tmp_sibling(dest)
    try:
        da.rio.to_raster(tmp, driver="GTiff", tiled=True, compress="DEFLATE", lock=threading.Lock(),
                         windowed=True)
        from rasterio.shutil import copy as rio_copy

        rio_copy(str(tmp), str(out_tmp), driver="COG", compress="DEFLATE")
        io._replace(out_tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
        out_tmp.unlink(missing_ok=True)
    return dest


def to_cog(src: Path, dest_dir: Path, variables: list[str] | None = None, progress=None) -> list[Path]:
    """One COG per variable and year of the grid ``src`` in ``dest_dir``; returns the paths."""
    ds = _open(src)
    names = variables or list(ds.data_vars)
    bad = [v for v in names if v not in ds]
    if bad:
        raise input_error(src, "variable not in the grid", column=bad[0])
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for v in names:
        if "year" in ds[v].dims:
            jobs += [(v, int(y)) for y in ds["year"].values]
        elif set(ds[v].dims) == {"lat", "lon"}:
            jobs.append((v, None))
    out = []
    for k, (v, y) in enumerate(jobs):
        if progress:
            progress("export COG", k, len(jobs))
        da = ds[v] if y is None else ds[v].sel(year=y)
        da = da.transpose("lat", "lon")
        da.attrs = {a: (b if isinstance(b, (str, int, float)) else str(b)) for a, b in ds[v].attrs.items()}
        out.append(_layer_to_cog(da, dest_dir / (f"{v}.tif" if y is None else f"{v}_{y}.tif")))
    if progress:
        progress("export COG", len(jobs), len(jobs))
    return out
