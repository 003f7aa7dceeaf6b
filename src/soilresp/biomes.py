"""Biomes and climate regions (method step 3).

Output contract, ``biomes/biomes.zarr`` on the target grid, dims ``(lat, lon)``:

* ``biome`` (int8): codes 1-10 of :data:`soilresp.config.BIOMES`; 0 = excluded (bare ground,
  water, snow/ice, urban; Huang et al. 2020 excluded them);
* ``region`` (int8): 1 boreal, 2 temperate, 3 tropical from the pixel's mean air
  temperature over the run's years (< 2, 2-17, > 17 degC; fixed in time; the bounds come from
  ``[product] region_bounds``), 0 where undefined;
* ``tas_mean`` (float32, degC): that mean temperature;
* ``cell_area`` (float64, m2, dims ``lat``): exact WGS84 cell areas.

The biome map is either given (``[biomes] path``) or built (``[biomes] climate_zones`` +
``land_cover``) from an IPCC climate-zone map and MODIS IGBP land cover as Huang et al.
(2020) did: :func:`classify_biomes` applies the packaged tables
``soilresp/data/ipcc_climate_zones.csv`` (zone -> tropical / temperate / boreal / polar) and
``soilresp/data/igbp_biome_mapping.csv`` (IGBP class x region -> biome), documented in
``docs/drivers.md``. Land cover finer than the grid is aggregated by majority (mode);
climate zones are taken by nearest neighbour. Land cover of a year without a file is taken
from the nearest later year (2000 from 2001, as in the paper), else the nearest earlier.
"""

from __future__ import annotations

import csv
import io as _io
import logging
from importlib import resources
from pathlib import Path

import numpy as np
import xarray as xr

from soilresp.config import BIOMES, BiomesConfig
from soilresp.errors import input_error
from soilresp.grid import Grid

log = logging.getLogger("soilresp.biomes")

REGION_NAMES = {1: "boreal", 2: "temperate", 3: "tropical"}


def classify_region(mean_tas: np.ndarray, bounds: tuple[float, float] = (2.0, 17.0)) -> np.ndarray:
    """Region code from a pixel's mean air temperature (degC): 1 boreal (< low),
    2 temperate (low..high), 3 tropical (> high), 0 where undefined (Huang et al. 2020).
    The synthetic world's truth uses the same rule."""
    lo, hi = bounds
    out = np.zeros(np.shape(mean_tas), dtype=np.int8)
    ok = np.isfinite(mean_tas)
    out[ok & (mean_tas < lo)] = 1
    out[ok & (mean_tas >= lo) & (mean_tas <= hi)] = 2
    out[ok & (mean_tas > hi)] = 3
    return out


def read_biome_map(path: Path, variable: str, grid: Grid) -> xr.DataArray:
    """Read an integer biome map (NetCDF or Zarr) and put it on ``grid`` by nearest neighbour."""
    from soilresp.drivers import _standardise_coords, regrid_nearest

    from soilresp.drivers.checks import check_fill_not_class, check_regular_file

    if not Path(path).exists():
        raise input_error(path, "biome map not found")
    check_regular_file(path, allow_dir=str(path).endswith(".zarr"), what="biome map")
    try:
        ds = xr.open_zarr(path) if str(path).endswith(".zarr") else xr.open_dataset(path)
    except (OSError, ValueError) as e:
        raise input_error(path, f"cannot read biome map: {e}") from None
    if variable not in ds:
        raise input_error(path, f"variable not found; the file has {sorted(ds.data_vars)}", column=variable)
    check_fill_not_class(ds[variable], path, variable, BIOMES)
    da = _standardise_coords(ds[variable], Path(path))
    vals = np.unique(da.values[np.isfinite(da.values)]) if da.size < 5e7 else None
    if vals is not None:
        bad = [int(v) for v in vals if int(v) not in (0, *BIOMES)]
        if bad:
            raise input_error(path, "biome codes must be 0-10", column=variable, value=bad[0])
    out = regrid_nearest(da, grid).fillna(0).astype(np.int8)
    out.attrs = {"long_name": "biome (Huang et al. 2020 classes)", "units": "1",
                 "flag_values": list(BIOMES), "flag_meanings": " ".join(BIOMES.values())}
    return out


def build_biome_dataset(biome: xr.DataArray, tas: xr.DataArray, grid: Grid,
                        bounds: tuple[float, float] = (2.0, 17.0)) -> xr.Dataset:
    """Biome, region and cell-area grids; ``tas`` is annual air temperature (year, lat, lon)."""
    tas_mean = tas.mean("year", skipna=True).astype(np.float32)
    region = xr.apply_ufunc(classify_region, tas_mean, kwargs={"bounds": bounds},
                            dask="parallelized", output_dtypes=[np.int8])
    region = region.where(biome > 0, 0).astype(np.int8)
    region.attrs = {"long_name": "climate region", "units": "1", "flag_values": [1, 2, 3],
                    "flag_meanings": "boreal temperate tropical",
                    "comment": f"from mean air temperature: boreal < {bounds[0]} degC <= temperate "
                               f"<= {bounds[1]} degC < tropical"}
    tas_mean.attrs = {"units": "degC", "long_name": "mean annual air temperature over the run's years"}
    ds = xr.Dataset({"biome": biome, "region": region, "tas_mean": tas_mean,
                     "cell_area": grid.cell_area()})
    return ds.chunk(grid.chunks())


# ----------------------------------------------------------------------------- biome map from
# climate zones x land cover
REGIONS = ("tropical", "temperate", "boreal", "polar")


def _read_csv_table(path: Path | None, name: str) -> tuple[list[dict], str]:
    if path is None:
        text = (resources.files("soilresp") / "data" / name).read_text(encoding="utf-8")
        where = f"soilresp/data/{name}"
    else:
        if not Path(path).is_file():
            raise input_error(path, "mapping table not found")
        text, where = Path(path).read_text(encoding="utf-8"), str(path)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return list(csv.DictReader(_io.StringIO("\n".join(lines)))), where


def climate_zone_regions(path: Path | None = None) -> dict[int, str]:
    """IPCC climate-zone code -> region (tropical, temperate, boreal, polar, none)."""
    rows, where = _read_csv_table(path, "ipcc_climate_zones.csv")
    out = {}
    for n, r in enumerate(rows, start=2):
        if r.get("region") not in (*REGIONS, "none"):
            raise input_error(where, "region must be one of " + ", ".join(REGIONS) + " or none",
                              row=n, column="region", value=r.get("region"))
        out[int(r["code"])] = r["region"]
    return out


def biome_lookup(mapping: Path | None = None, zones: Path | None = None) -> np.ndarray:
    """Lookup table ``lut[zone, igbp] -> biome code`` (int8, 0 = excluded) from the packaged
    (or given) climate-zone and IGBP mapping tables. Codes outside the tables map to 0."""
    regions = climate_zone_regions(zones)
    rows, where = _read_csv_table(mapping, "igbp_biome_mapping.csv")
    lut = np.zeros((max(regions) + 1, 256), dtype=np.int8)
    for n, r in enumerate(rows, start=2):
        for reg in REGIONS:
            if reg not in r:
                raise input_error(where, "mapping table lacks a region column", column=reg)
            b = int(r[reg])
            if b not in (0, *BIOMES):
                raise input_error(where, "biome codes must be 0-10", row=n, column=reg, value=b)
            for z, zr in regions.items():
                if zr == reg:
                    lut[z, int(r["igbp"])] = b
    return lut


def classify_biomes(zone: np.ndarray, igbp: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Biome code per pixel from climate zone and IGBP class (pure kernel; NaN/negative or
    unknown codes -> 0)."""
    z = np.asarray(zone, dtype=np.float64)
    c = np.asarray(igbp, dtype=np.float64)
    ok = np.isfinite(z) & np.isfinite(c) & (z >= 0) & (z < lut.shape[0]) & (c >= 0) & (c < lut.shape[1])
    zi = np.where(ok, z, 0).astype(np.int64)
    ci = np.where(ok, c, 0).astype(np.int64)
    return np.where(ok, lut[zi, ci], 0).astype(np.int8)


def land_cover_year(available: list[int], wanted: int) -> int:
    """The land-cover year used for ``wanted``: itself, else the nearest later year (the
    paper took 2000 from 2001), else the nearest earlier year."""
    if not available:
        raise ValueError("no land-cover years")
    if wanted in available:
        return wanted
    later = [y for y in available if y > wanted]
    return min(later) if later else max(available)


def _open_static(path: Path, variable: str | None) -> xr.DataArray:
    from soilresp.drivers.readers import open_geotiff, open_netcdf

    if path.suffix.lower() in (".tif", ".tiff"):
        da = open_geotiff([path], variable)
    else:
        da = open_netcdf([path], variable)
    if "time" in da.dims:
        if da.sizes["time"] != 1:
            raise input_error(path, "expected a single map", column="time")
        da = da.isel(time=0, drop=True)
    return da


def _to_grid_categorical(da: xr.DataArray, grid: Grid) -> xr.DataArray:
    from soilresp.drivers.regrid import regrid_mode, regrid_nearest

    res = float(np.abs(np.diff(da["lon"].values)).mean())
    if res < grid.resolution * 0.99:
        return regrid_mode(da, grid, ignore=(255,)).astype(np.float32).where(lambda x: x >= 0)
    return regrid_nearest(da, grid)


def biome_map_from_config(cfg: BiomesConfig, base_dir: Path, grid: Grid,
                          years: tuple[int, int]) -> xr.DataArray:
    """Build the biome map on ``grid`` from ``[biomes] climate_zones`` and ``land_cover``."""
    from soilresp.drivers._common import date_from_name, expand

    base = Path(base_dir)
    zpath = cfg.climate_zones if Path(cfg.climate_zones).is_absolute() else base / cfg.climate_zones
    if not zpath.exists():
        raise input_error(zpath, "climate-zone map not found")
    from soilresp.drivers.checks import check_fill_not_class

    zraw = _open_static(zpath, cfg.climate_zones_variable)
    check_fill_not_class(zraw, zpath, cfg.climate_zones_variable, range(1, 13))
    zones = _to_grid_categorical(zraw, grid)
    lpat = Path(cfg.land_cover).expanduser()
    files = expand(lpat if lpat.is_absolute() else base / lpat)
    by_year: dict[int | None, list[Path]] = {}
    for f in files:
        t = date_from_name(f)
        by_year.setdefault(t.year if t is not None else None, []).append(f)
    if None in by_year:
        if len(files) > 1:
            raise input_error(by_year[None][0], "several land-cover files: each name needs its year")
        lc_files, used = by_year[None], None
    else:
        wanted = cfg.land_cover_year or years[0]
        used = land_cover_year(sorted(by_year), wanted)
        if used != wanted:
            log.warning("no land cover for %s: using %s (%s)", wanted, used, by_year[used][0])
        lc_files = by_year[used]
    lc_file = lc_files[0]
    if lc_file.suffix.lower() == ".hdf":
        # MCD12Q1 sinusoidal tiles of one year: mosaicked and sampled at the target cell
        # centres (nearest pixel, as every MODIS driver); no QA mask for a class map
        from soilresp.drivers.modis import open_modis

        lc = open_modis(lc_files, cfg.land_cover_variable, grid, product="MCD12Q1", qa="none")
        lc = lc.isel(time=0, drop=True)
    elif len(lc_files) > 1:
        raise input_error(lc_files[1], f"several land-cover files for year {used}; only MODIS "
                          "HDF tiles of one year are mosaicked")
    else:
        lraw = _open_static(lc_file, cfg.land_cover_variable)
        check_fill_not_class(lraw, lc_file, cfg.land_cover_variable, range(1, 18))   # IGBP classes
        lc = _to_grid_categorical(lraw, grid)
    lut = biome_lookup(cfg.mapping)
    biome = xr.apply_ufunc(classify_biomes, zones, lc, kwargs={"lut": lut}, dask="parallelized",
                           output_dtypes=[np.int8])
    biome.attrs = {"long_name": "biome (Huang et al. 2020 classes)", "units": "1",
                   "flag_values": list(BIOMES), "flag_meanings": " ".join(BIOMES.values()),
                   "comment": f"IPCC climate zones {zpath.name} x IGBP land cover {lc_file.name}"
                              + (f" (+{len(lc_files) - 1} tiles)" if len(lc_files) > 1 else "")
                              + (f" (year {used})" if used is not None else "")
                              + "; 0 = excluded (water, wetland, urban, snow/ice, barren)"}
    return biome.rename("biome")
