"""The driver cube: every source read, aggregated per year and season, resampled onto the
target grid, plus the derived variables; written to Zarr one variable at a time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr

from soilresp.config import DriverSource
from soilresp.drivers.aggregate import aggregate
from soilresp.drivers.readers import open_source
from soilresp.drivers.regrid import regrid
from soilresp.errors import input_error
from soilresp.grid import Grid

Progress = Callable[[str, int, int], None]
SUFFIXES = ("", "_mam", "_jja")


def build_source(src: DriverSource, grid: Grid, years: tuple[int, int], base_dir: Path,
                 min_valid_fraction: float = 0.75, method: str = "nearest") -> dict[str, xr.DataArray]:
    """Lazy ``(year, lat, lon)`` float32 arrays of one source on ``grid``: ``var`` and, when
    seasons are on, ``var_mam`` / ``var_jja``."""
    da = open_source(src, base_dir, grid.chunk, grid)
    on_grid = bool(da.attrs.get("soilresp_on_target_grid"))
    agg = aggregate(da, src, years, min_valid_fraction, src.path)
    out = {}
    for k, v in agg.items():
        if not on_grid:
            v = regrid(v, grid, src.regrid or method)
        v = v.astype(np.float32).transpose("year", "lat", "lon")
        v.attrs = {**agg[k].attrs, "resampling": "none (sampled on read)" if on_grid else (src.regrid or method)}
        out[k] = v.chunk({"year": -1, **grid.chunks()})
    return out


def derived(data: dict[str, xr.DataArray]) -> dict[str, xr.DataArray]:
    """``lst_diff = lst_day - lst_night`` (degC) and ``et_pet = et / pet`` (1; NaN where
    pet <= 0), for the annual value and each season present (Huang et al. 2020, Methods)."""
    out = {}
    for suffix in SUFFIXES:
        d, n = f"lst_day{suffix}", f"lst_night{suffix}"
        if d in data and n in data:
            out[f"lst_diff{suffix}"] = (data[d] - data[n]).assign_attrs(
                units="degC", long_name="day-night land surface temperature difference")
        e, p = f"et{suffix}", f"pet{suffix}"
        if e in data and p in data:
            out[f"et_pet{suffix}"] = (data[e] / data[p].where(data[p] > 0)).astype(np.float32).assign_attrs(
                units="1", long_name="ratio of evapotranspiration to potential evapotranspiration")
    return out


def _finish(ds: xr.Dataset, grid: Grid) -> xr.Dataset:
    ds = ds.transpose("year", "lat", "lon").chunk({"year": -1, **grid.chunks()})
    ds["year"].attrs = {"long_name": "calendar year", "units": "1"}
    ds.attrs.update({"Conventions": "CF-1.10", "title": "soilresp driver cube"})
    return ds


def build_cube(sources: list[DriverSource], grid: Grid, years: tuple[int, int], base_dir: Path,
               min_valid_fraction: float = 0.75, method: str = "nearest") -> xr.Dataset:
    """The lazy driver cube (dask-backed) for all sources plus derived variables."""
    if not sources:
        raise input_error("config [drivers]", "no driver sources configured", column="sources")
    data: dict[str, xr.DataArray] = {}
    for src in sources:
        data.update(build_source(src, grid, years, base_dir, min_valid_fraction, method))
    data.update(derived(data))
    return _finish(xr.Dataset(data), grid)


def write_cube(path: Path, sources: list[DriverSource], grid: Grid, years: tuple[int, int],
               base_dir: Path, min_valid_fraction: float = 0.75, method: str = "nearest",
               prov: dict | None = None, progress: Progress | None = None) -> Path:
    """Build and write ``drivers.zarr`` atomically, one source at a time.

    ``progress(name, done, total)`` is called per source (``drivers: <var>``, one step per
    run year: the chunk tasks of that source are counted and reported as years done) so
    ``soilresp drivers`` shows one bar per variable. Memory stays at a few chunks: each
    source is computed chunk by chunk straight into the store.
    """
    from soilresp import io

    if not sources:
        raise input_error("config [drivers]", "no driver sources configured", column="sources")
    progress = progress or (lambda *_: None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = io.temp_dir(path)
    nyears = years[1] - years[0] + 1
    try:
        names: list[str] = []
        first = True
        for src in sources:
            name = f"drivers: {src.variable}"
            progress(name, 0, nyears)
            arrs = build_source(src, grid, years, base_dir, min_valid_fraction, method)
            _store(tmp, _finish(xr.Dataset(arrs), grid), first, lambda f, _n=name: progress(_n, int(f * nyears), nyears))
            first = False
            names += list(arrs)
            progress(name, nyears, nyears)
        stored = xr.open_zarr(tmp, consolidated=False)
        der = derived({k: stored[k] for k in names})
        if der:
            progress("drivers: derived", 0, 1)
            _store(tmp, _finish(xr.Dataset(der), grid), False, None)
            progress("drivers: derived", 1, 1)
        if prov is not None:
            import zarr

            zarr.open_group(str(tmp), mode="r+").attrs[io.PROVENANCE_KEY] = json.dumps(
                prov, sort_keys=True, default=str)
        io.annotate_store(tmp)
        io.mark_complete(tmp)
        io._replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


# output held per band of chunk rows: rows x lon x years x variables x 4 bytes
_BAND_BYTES = 256 * 1024**2


def _store(tmp: Path, ds: xr.Dataset, first: bool, report: Callable[[float], None] | None) -> None:
    """Write ``ds`` into the store one band of chunk rows at a time.

    Each band's graph is computed alone (``to_zarr(region=...)``), so memory is bounded by
    one band's output and the reads that feed it, whatever the shape of the graph: a source
    whose file chunks do not line up with the grid's chunks (or whose years are spread over
    several files) would otherwise let the scheduler hold results of many input blocks
    while it waits for the rechunk that consumes them.
    """
    from soilresp import io

    for v in ds.variables.values():
        v.encoding.pop("chunks", None)
        v.encoding.pop("preferred_chunks", None)
    data = ds.drop_vars(["year", "lat", "lon"])
    # metadata (and, for the first source, the coordinates) now; the data band by band
    if first:
        ds.to_zarr(tmp, mode="w", consolidated=False, compute=False, zarr_format=io.ZARR_FORMAT)
    else:
        data.to_zarr(tmp, mode="a", consolidated=False, compute=False)
    lat_chunks = ds.chunks["lat"]
    row_bytes = 4 * ds.sizes["lon"] * ds.sizes["year"] * max(len(data.data_vars), 1)
    per_band = max(1, int(_BAND_BYTES // max(row_bytes * lat_chunks[0], 1)))
    edges = np.concatenate([[0], np.cumsum(lat_chunks)])[::per_band].tolist()
    if edges[-1] != ds.sizes["lat"]:
        edges.append(ds.sizes["lat"])
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        data.isel(lat=slice(a, b)).to_zarr(tmp, mode="r+", consolidated=False,
                                           region={"year": slice(None), "lat": slice(a, b),
                                                   "lon": slice(None)})
        if report is not None:
            report((k + 1) / (len(edges) - 1))
