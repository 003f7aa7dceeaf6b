"""Biomes and climate regions (method step 3).

Output contract, ``biomes/biomes.zarr`` on the target grid, dims ``(lat, lon)``:

* ``biome`` (int8): codes 1-10 of :data:`soilresp.config.BIOMES`; 0 = excluded (bare ground,
  water, snow/ice, urban; Huang et al. 2020 excluded them);
* ``region`` (int8): 1 boreal, 2 temperate, 3 tropical from the pixel's mean air
  temperature over the run's years (< 2, 2-17, > 17 degC; fixed in time; the bounds come from
  ``[product] region_bounds``), 0 where undefined;
* ``tas_mean`` (float32, degC): that mean temperature;
* ``cell_area`` (float64, m2, dims ``lat``): exact WGS84 cell areas.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from soilresp.config import BIOMES
from soilresp.errors import input_error
from soilresp.grid import Grid

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

    if not Path(path).exists():
        raise input_error(path, "biome map not found")
    try:
        ds = xr.open_zarr(path) if str(path).endswith(".zarr") else xr.open_dataset(path)
    except (OSError, ValueError) as e:
        raise input_error(path, f"cannot read biome map: {e}") from None
    if variable not in ds:
        raise input_error(path, f"variable not found; the file has {sorted(ds.data_vars)}", column=variable)
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
