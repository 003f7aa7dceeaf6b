"""Export soilresp grids (any ``*.zarr`` output) as CF NetCDF or Cloud-Optimized GeoTIFFs.

* NetCDF: one file, every variable with its CF attributes, ``crs`` grid-mapping variable
  (WGS84 lat/lon), zlib level 4; written chunk by chunk from the lazy Zarr arrays.
* COG: one GeoTIFF per variable and year (``<var>_<year>.tif``; ``<var>.tif`` for static
  maps), EPSG:4326, north up, DEFLATE, written by rioxarray/GDAL's COG driver with a
  windowed (dask, locked) write of a tiled GeoTIFF first, then translated to COG (GDAL
  builds the overviews from the file, not from memory).
"""

from __future__ import annotations

import datetime as _dt
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


def annual_time(years) -> tuple[np.ndarray, np.ndarray, str]:
    """CF time axis of annual values: mid-year points and [1 Jan, 1 Jan next] bounds in days
    since the first year's 1 January (proleptic Gregorian / "standard" calendar)."""
    years = [int(y) for y in np.asarray(years).ravel()]
    t0 = _dt.date(years[0], 1, 1)
    lo = np.array([(_dt.date(y, 1, 1) - t0).days for y in years], dtype=np.float64)
    hi = np.array([(_dt.date(y + 1, 1, 1) - t0).days for y in years], dtype=np.float64)
    return (lo + hi) / 2, np.stack([lo, hi], axis=1), f"days since {t0.isoformat()} 00:00:00"


def _netcdf_attr(a):
    if isinstance(a, (bool, np.bool_)):
        return np.int8(a)
    if isinstance(a, (str, int, float, np.number, np.ndarray)):
        return a
    if isinstance(a, (list, tuple)) and all(isinstance(x, (int, float)) for x in a):
        return np.asarray(a)
    return str(a)


def to_netcdf(src: Path, dest: Path) -> Path:
    """Write the grid ``src`` (Zarr) as one CF-1.10 NetCDF file ``dest``; returns ``dest``.

    The integer ``year`` axis becomes a CF ``time`` axis (mid-year, ``time_bnds`` over the
    calendar year, so CDO/NCO see time steps); units are UDUNITS (:mod:`soilresp.cf`),
    class maps carry ``flag_values`` of their own type, and ``spatial_ref`` holds the WKT2
    CRS and the GeoTransform GDAL reads.
    """
    from soilresp import cf

    ds = _open(src).copy()
    ds.attrs = {k: _netcdf_attr(v) for k, v in ds.attrs.items()
                if k not in (io.COMPLETE_ATTR,)}
    ds.attrs["Conventions"] = "CF-1.10"
    ds.attrs.setdefault("title", f"soilresp {Path(src).stem}")
    ds.attrs.setdefault("source", "soilresp")
    from soilresp import __version__

    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    ds.attrs["history"] = f"{stamp}: soilresp {__version__} export {Path(src).name} -> NetCDF"
    for v in list(ds.data_vars):
        if ds[v].dtype == bool:
            ds[v] = ds[v].astype(np.int8).assign_attrs(
                ds[v].attrs, flag_values=np.array([0, 1], np.int8), flag_meanings="false true")
    ds = cf.annotate(ds, gdal_crs=False)
    if "year" in ds.dims:
        mid, bnds, units = annual_time(ds["year"].values)
        ds = ds.rename({"year": "time"}).assign_coords(time=("time", mid))
        ds = ds.drop_vars([c for c in ds.coords if c == "year"])
        ds["time"].attrs = {"standard_name": "time", "long_name": "time", "axis": "T",
                            "units": units, "calendar": "standard", "bounds": "time_bnds"}
        ds["time_bnds"] = (("time", "bnds"), bnds)
        for v in ds.data_vars:
            if "time" in ds[v].dims and v != "time_bnds":
                ds[v].attrs.setdefault("cell_methods", "time: mean")
    enc = {}
    for v in ds.variables:
        a = ds[v].attrs
        for k in list(a):
            a[k] = _netcdf_attr(a[k])
        a.pop("_CRS", None)
        if "flag_values" in a:  # CF 3.5: the same type as the variable
            a["flag_values"] = np.asarray(a["flag_values"]).astype(ds[v].dtype)
        if "nodata" in a and "flag_values" in a:
            a["missing_value"] = np.asarray(a.pop("nodata")).astype(ds[v].dtype)
        if v in ds.coords or v in cf.HELPER_VARS or v == "time_bnds":
            enc[v] = {"_FillValue": None}
            continue
        e = {"zlib": True, "complevel": 4}
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


def _classes(attrs: dict) -> dict[int, str] | None:
    """Class code -> name of a categorical layer (CF ``flag_values``/``flag_meanings``)."""
    if "flag_values" not in attrs:
        return None
    vals = [int(v) for v in np.ravel(attrs["flag_values"])]
    names = str(attrs.get("flag_meanings", "")).split()
    if len(names) != len(vals):
        names = [str(v) for v in vals]
    return dict(zip(vals, names))


def _class_nodata(classes: dict[int, str], attrs: dict, dtype) -> int:
    """Nodata of a class map: its ``nodata`` attribute, else the code meaning none/no data,
    else 0 when 0 is no class, else the type's minimum."""
    if "nodata" in attrs:
        return int(attrs["nodata"])
    for code, name in classes.items():
        if name.lower() in ("none", "no_data", "nodata", "missing"):
            return code
    return 0 if 0 not in classes else int(np.iinfo(dtype).min)


# matplotlib's "tab20" (qualitative, distinguishable), without importing matplotlib
_TAB20 = ("1f77b4", "aec7e8", "ff7f0e", "ffbb78", "2ca02c", "98df8a", "d62728", "ff9896",
          "9467bd", "c5b0d5", "8c564b", "c49c94", "e377c2", "f7b6d2", "7f7f7f", "c7c7c7",
          "bcbd22", "dbdb8d", "17becf", "9edae5")


def _colours(codes: list[int]) -> dict[int, tuple[int, int, int, int]]:
    return {c: tuple(int(_TAB20[k % 20][i:i + 2], 16) for i in (0, 2, 4)) + (255,)
            for k, c in enumerate(codes)}


def _layer_to_cog(da: xr.DataArray, dest: Path) -> Path:
    """One COG. Class maps (``flag_values``): integer, nodata declared, overviews by MODE
    (every overview pixel is a class of its block, never an interpolated code), a colour
    table and the class names as band tags (``class_<code>``). Continuous layers: float,
    nodata NaN, AVERAGE overviews (GDAL's COG default, CUBIC, overshoots)."""
    import rasterio
    import rioxarray  # noqa: F401  (registers .rio; to_cog checked the [geotiff] extra)

    classes = _classes(da.attrs)
    da = da.isel(lat=slice(None, None, -1))  # north up
    da.attrs.pop("_FillValue", None)
    da.encoding = {}
    if da.dtype == bool:
        da = da.astype(np.uint8)
        classes = classes or {0: "false", 1: "true"}
    tags = {}
    if classes is not None:
        if not np.issubdtype(da.dtype, np.integer):
            da = da.fillna(-128).astype(np.int16)
        nodata = _class_nodata(classes, da.attrs, da.dtype)
        if min([*classes, nodata]) >= 0 and max([*classes, nodata]) <= 255:
            da = da.astype(np.uint8)  # a palette (colour table) needs Byte
        da = da.rio.write_nodata(nodata, encoded=False)
        tags = {f"class_{c}": n for c, n in classes.items()}
        tags.update(flag_values=" ".join(map(str, classes)),
                    flag_meanings=" ".join(classes.values()), nodata_class=str(nodata))
        resampling = "MODE"
    else:
        resampling = "AVERAGE"
        if np.issubdtype(da.dtype, np.floating):
            da = da.rio.write_nodata(np.nan, encoded=False)
    da = da.rio.set_spatial_dims(x_dim="lon", y_dim="lat").rio.write_crs("EPSG:4326")
    tmp, out_tmp = io._tmp_sibling(dest, ".gtiff"), io._tmp_sibling(dest)
    try:
        da.rio.to_raster(tmp, driver="GTiff", tiled=True, compress="DEFLATE", lock=threading.Lock(),
                         windowed=True)
        if tags:
            with rasterio.open(tmp, "r+") as f:
                f.update_tags(1, **tags)
                if f.dtypes[0] == "uint8":
                    f.write_colormap(1, _colours(sorted(classes)))
        from rasterio.shutil import copy as rio_copy

        rio_copy(str(tmp), str(out_tmp), driver="COG", compress="DEFLATE", resampling=resampling,
                 overview_resampling=resampling)
        io._replace(out_tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
        out_tmp.unlink(missing_ok=True)
    return dest


def to_cog(src: Path, dest_dir: Path, variables: list[str] | None = None, progress=None) -> list[Path]:
    """One COG per variable and year of the grid ``src`` in ``dest_dir``; returns the paths.
    Needs the ``[geotiff]`` extra (rioxarray, rasterio)."""
    from soilresp.extras import require

    for mod in ("rioxarray", "rasterio"):
        require(mod, "geotiff", "COG export")
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
        da.attrs = {a: b for a, b in ds[v].attrs.items() if a != "_CRS"}
        out.append(_layer_to_cog(da, dest_dir / (f"{v}.tif" if y is None else f"{v}_{y}.tif")))
    if progress:
        progress("export COG", len(jobs), len(jobs))
    return out
