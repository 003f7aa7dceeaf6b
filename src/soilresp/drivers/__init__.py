"""Gridded drivers (method step 2): read, aggregate to annual / MAM / JJA, regrid, extract.

Output contract, ``drivers/drivers.zarr``: one Dataset, dims ``(year, lat, lon)`` on the
target grid (:mod:`soilresp.grid`), chunked ``year: all, lat/lon: grid.chunk``, one variable
per driver and season: ``<var>`` (annual), ``<var>_mam`` (March-May), ``<var>_jja``
(June-August), each with CF ``units`` and ``long_name``. Derived variables (Huang et al.
2020, Methods): ``lst_diff = lst_day - lst_night`` (degC) and ``et_pet = et / pet`` (1).

Modules: :mod:`~soilresp.drivers.readers` (NetCDF/CF, GeoTIFF/COG, CSV point tables),
:mod:`~soilresp.drivers.modis` (HDF4-EOS tiles, QA bits, sinusoidal mosaic),
:mod:`~soilresp.drivers.aggregate` (annual / seasonal rules), :mod:`~soilresp.drivers.regrid`
(nearest, bilinear, area, mode), :mod:`~soilresp.drivers.cube` (the cube and its writer),
:mod:`~soilresp.drivers.sites` (values at field sites). See ``docs/drivers.md``.
"""

from soilresp.drivers._common import standardise_coords
from soilresp.drivers.aggregate import (
    SEASONS,
    STEPS_PER_YEAR,
    TEMPERATURE_VARS,
    aggregate,
    aggregate_block,
    step_days,
)
from soilresp.drivers.cube import build_cube, build_source, derived, write_cube
from soilresp.drivers.readers import open_geotiff, open_netcdf, open_point_table, open_source
from soilresp.drivers.regrid import regrid, regrid_area, regrid_bilinear, regrid_mode, regrid_nearest
from soilresp.drivers.sites import extract_at_sites, haversine_km

_standardise_coords = standardise_coords  # old private name, used by callers of 0.x

__all__ = [
    "SEASONS", "STEPS_PER_YEAR", "TEMPERATURE_VARS", "aggregate", "aggregate_block", "step_days",
    "build_cube", "build_source", "derived", "write_cube", "open_geotiff", "open_netcdf",
    "open_point_table", "open_source", "regrid", "regrid_area", "regrid_bilinear", "regrid_mode",
    "regrid_nearest", "extract_at_sites", "haversine_km", "standardise_coords",
]
