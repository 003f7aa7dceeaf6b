"""Biome map from IPCC climate zones x MODIS IGBP land cover."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from soilresp.biomes import (
    biome_lookup,
    biome_map_from_config,
    classify_biomes,
    climate_zone_regions,
    land_cover_year,
)
from soilresp.config import BIOMES, BiomesConfig, config_from_dict
from soilresp.errors import ConfigError, InputError
from soilresp.grid import Grid


def test_packaged_tables_cover_every_zone_and_class():
    reg = climate_zone_regions()
    assert reg[2] == "tropical" and reg[7] == "temperate" and reg[10] == "boreal" and reg[12] == "polar"
    lut = biome_lookup()
    z = np.array([2, 5, 9, 11, 3, 7, 7, 7, 7, 7, 7, 7, 7, 0, 4])
    c = np.array([1, 1, 1, 1, 12, 4, 2, 3, 5, 13, 15, 16, 0, 10, 11])
    got = classify_biomes(z, c, lut)
    # tropical ENF -> tropical forest; temperate ENF -> 4; boreal / polar ENF -> boreal forest
    # cropland 9; DBF 1, EBF 2, DNF 3, MF 5; urban, snow, barren, water, wetland 0; no zone 0
    np.testing.assert_array_equal(got, [7, 4, 6, 6, 9, 1, 2, 3, 5, 0, 0, 0, 0, 0, 0])
    # every IGBP class 1-16 that is vegetation maps to a biome in every thermal region
    for zone in (2, 7, 9, 11):
        for igbp in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14):
            assert classify_biomes(np.array([zone]), np.array([igbp]), lut)[0] in BIOMES
    # NaN and out-of-table codes are excluded
    np.testing.assert_array_equal(classify_biomes(np.array([np.nan, 7, 99]), np.array([1, 255, 1]), lut), 0)


def test_land_cover_year_rule():
    assert land_cover_year([2001, 2002, 2010], 2000) == 2001  # the paper's rule
    assert land_cover_year([2001, 2002, 2010], 2002) == 2002
    assert land_cover_year([2001, 2002, 2010], 2005) == 2010
    assert land_cover_year([2001, 2002, 2010], 2014) == 2010


def test_config_needs_both_inputs():
    with pytest.raises(ConfigError, match="go together"):
        config_from_dict({"biomes": {"climate_zones": "z.nc"}})
    with pytest.raises(ConfigError, match="either path"):
        config_from_dict({"biomes": {"path": "b.nc", "climate_zones": "z.nc", "land_cover": "l.tif"}})


def _write_tif(path, arr, lat_edges, lon_edges):
    import rioxarray  # noqa: F401

    res_y = (lat_edges[1] - lat_edges[0]) / arr.shape[0]
    res_x = (lon_edges[1] - lon_edges[0]) / arr.shape[1]
    y = lat_edges[1] - res_y * (np.arange(arr.shape[0]) + 0.5)
    x = lon_edges[0] + res_x * (np.arange(arr.shape[1]) + 0.5)
    da = xr.DataArray(arr, dims=("y", "x"), coords={"y": y, "x": x}).rio.write_crs("EPSG:4326")
    da.rio.to_raster(path)
    return path


def test_build_from_files_mode_and_year_fallback(tmp_path):
    # 1-degree target; land cover at 0.25 degree (4x4 per cell), climate zones at 1 degree
    g = Grid(1.0, 0, 2, 0, 2, chunk=8)
    zones = xr.Dataset({"ipcc_climate_zone": (("lat", "lon"), np.array([[2, 7], [9, 0]], np.int16))},
                       coords={"lat": [0.5, 1.5], "lon": [0.5, 1.5]})
    zones.to_netcdf(tmp_path / "zones.nc")
    lc = np.zeros((8, 8), np.uint8)  # rows north to south
    lc[4:, :4] = 2      # cell (lat 0.5, lon 0.5): all EBF in tropical zone -> 7
    lc[4:, 4:] = 12     # cell (0.5, 1.5): 9 cropland pixels ...
    lc[4:7, 4:6] = 10   # ... 6 grassland, 1 urban -> majority cropland -> 9
    lc[7, 4] = 13
    lc[:4, :4] = 1      # cell (1.5, 0.5): boreal ENF -> 6 ...
    lc[:2, :4] = 17     # ... 8 water vs 8 ENF: a tie goes to the smaller code (1) -> 6
    lc[:4, 4:] = 5      # cell (1.5, 1.5): zone 0 (no data) -> 0
    _write_tif(tmp_path / "MCD12Q1_LC_2001.tif", lc, (0, 2), (0, 2))
    _write_tif(tmp_path / "MCD12Q1_LC_2003.tif", np.full((8, 8), 16, np.uint8), (0, 2), (0, 2))
    cfg = BiomesConfig(climate_zones=Path("zones.nc"), land_cover="MCD12Q1_LC_*.tif")
    b = biome_map_from_config(cfg, tmp_path, g, (2000, 2002)).compute()
    np.testing.assert_array_equal(b.values, [[7, 9], [6, 0]])
    assert "year 2001" in b.attrs["comment"]
    cfg3 = BiomesConfig(climate_zones=Path("zones.nc"), land_cover="MCD12Q1_LC_*.tif", land_cover_year=2003)
    assert (biome_map_from_config(cfg3, tmp_path, g, (2000, 2002)).values == 0).all()  # barren
    with pytest.raises(InputError, match="climate-zone map not found"):
        biome_map_from_config(BiomesConfig(climate_zones=Path("nope.nc"), land_cover="x.tif"),
                              tmp_path, g, (2000, 2002))


@pytest.mark.realdata
def test_real_half_degree_biome_map_areas(shared_data):
    """IPCC 2019 climate zones (0.5 deg) x MODIS IGBP 2010 (0.1 deg, majority to 0.5 deg)."""
    from soilresp.drivers import open_netcdf, regrid_nearest

    d = shared_data / "grids_static"
    g = Grid(0.5, -90, 90, -180, 180, chunk=360)
    cfg = BiomesConfig(climate_zones=d / "ipcc_climate_zones.tif", land_cover=str(d / "MODIS_LC_2010.tif"),
                       )
    b = biome_map_from_config(cfg, d, g, (2010, 2014)).compute().values
    area = np.broadcast_to(g.cell_area().values[:, None], g.shape)
    mkm2 = {k: area[b == k].sum() / 1e12 for k in BIOMES}
    # the NetCDF copy of the climate zones gives the same map
    cfg_nc = BiomesConfig(climate_zones=d / "ipcc_climate_zones.nc", land_cover=str(d / "MODIS_LC_2010.tif"))
    np.testing.assert_array_equal(biome_map_from_config(cfg_nc, d, g, (2010, 2014)).values, b)
    # land area from the land-fraction map (lon 0-360, read through the same reader)
    frac = regrid_nearest(open_netcdf([d / "fractional_land.0.5-deg.nc"], "data").isel(time=0), g).values
    land = float(np.nansum(frac * area)) / 1e12
    total = sum(mkm2.values())
    assert 140 < land < 155          # Earth's land incl. Antarctica and lakes: ~149 Mkm2
    assert 80 < total < land         # biomes exclude barren, ice, water, wetland, urban
    assert 9 < mkm2[7] < 20          # tropical forest
    assert 6 < mkm2[6] < 18          # boreal forest
    assert 9 < mkm2[9] < 20          # cropland
    assert 25 < mkm2[8] < 60         # grassland incl. savannas
    assert all(v > 0 for k, v in mkm2.items() if k != 3)
    # biome pixels lie on land: almost all have a positive land fraction
    assert np.mean(frac[b > 0] > 0) > 0.99


def test_mcd12q1_hdf_tiles_mosaicked(tmp_path):
    """MCD12Q1 LC_Type1 as two sinusoidal HDF4 tiles of one year (+ a later year ignored)."""
    pytest.importorskip("pyhdf")
    from test_drivers_modis import write_tile

    n = 12
    lc_attrs = {"long_name": "Land Cover Type 1: Annual International Geosphere-Biosphere "
                "Programme (IGBP) classification", "units": "class number", "_FillValue": 255,
                "valid_range": [1, 17]}
    for h, cls in ((18, 4), (19, 10)):  # deciduous broadleaf | grassland
        arr = np.full((n, n), cls, np.uint8)
        arr[0, 0] = 255  # fill
        write_tile(tmp_path / f"MCD12Q1.A2001001.h{h}v04.061.hdf", h, 4, {"LC_Type1": (arr, lc_attrs)}, n)
    write_tile(tmp_path / "MCD12Q1.A2005001.h18v04.061.hdf", 18, 4,
               {"LC_Type1": (np.full((n, n), 16, np.uint8), lc_attrs)}, n)
    g = Grid(1.0, 41.0, 49.0, 2.0, 18.0, chunk=8)
    zones = xr.Dataset({"ipcc_climate_zone": (("lat", "lon"), np.full((g.nlat, g.nlon), 4, np.int16))},
                       coords={"lat": g.lat, "lon": g.lon})  # zone 4: warm temperate moist
    zones.to_netcdf(tmp_path / "zones.nc")
    cfg = BiomesConfig(climate_zones=Path("zones.nc"), land_cover="MCD12Q1.A*.hdf")
    b = biome_map_from_config(cfg, tmp_path, g, (2001, 2003)).compute()
    lut = biome_lookup()
    # tile h18 covers x < 0 + ... : the boundary between tiles is x = -20015109 + 19 * TILE (sinusoidal)
    from test_drivers_modis import TILE, X0, R

    lon, lat = np.meshgrid(np.deg2rad(g.lon), np.deg2rad(g.lat))
    x = R * lon * np.cos(lat)
    in18 = (x >= X0 + 18 * TILE) & (x < X0 + 19 * TILE)
    in19 = (x >= X0 + 19 * TILE) & (x < X0 + 20 * TILE)
    exp = np.where(in18, lut[4, 4], np.where(in19, lut[4, 10], 0))
    np.testing.assert_array_equal(b.values, exp)
    assert in18.any() and in19.any() and "+1 tiles" in b.attrs["comment"]
