"""Readers (NetCDF valid range, GeoTIFF, CSV point tables, static maps), aggregation of
8-day / daily series, and the bilinear / area / mode resamplers."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from soilresp.config import DriverSource, config_from_dict
from soilresp.drivers import (
    aggregate,
    build_cube,
    open_source,
    regrid_area,
    regrid_bilinear,
    regrid_mode,
    step_days,
    write_cube,
)
from soilresp.errors import InputError
from soilresp.grid import Grid, band_area


def test_netcdf_packed_values_fill_and_valid_range(tmp_path):
    import netCDF4

    raw = np.array([[[100, 200], [-9999, 30000]]], dtype=np.int16)
    with netCDF4.Dataset(tmp_path / "a.nc", "w") as nc:
        for d, n in (("time", 1), ("lat", 2), ("lon", 2)):
            nc.createDimension(d, n)
        nc.createVariable("time", "f8", ("time",), fill_value=False)[:] = [14.0]
        nc["time"].units = "days since 2001-01-01"
        nc.createVariable("lat", "f8", ("lat",))[:] = [1.0, 0.0]
        nc.createVariable("lon", "f8", ("lon",))[:] = [0.0, 1.0]
        v = nc.createVariable("lst_day", "i2", ("time", "lat", "lon"), fill_value=np.int16(-9999))
        v.set_auto_maskandscale(False)
        v.scale_factor, v.add_offset, v.units = 0.5, 100.0, "K"
        v.valid_range = np.array([0, 20000], np.int16)
        v[:] = raw
    src = DriverSource(variable="lst_day", path="a.nc")
    got = open_source(src, tmp_path).compute()
    # lat sorted ascending: row 0 is lat 0 (the fill and the out-of-range value)
    assert np.isnan(got.values[0, 0, 0]) and np.isnan(got.values[0, 0, 1])
    np.testing.assert_allclose(got.values[0, 1], [150.0, 200.0])
    assert got.attrs["units"] == "K"


def _tif(path, arr, west, north, res, nodata=None, scale=None, offset=None):
    import rioxarray  # noqa: F401

    y = north - res * (np.arange(arr.shape[-2]) + 0.5)
    x = west + res * (np.arange(arr.shape[-1]) + 0.5)
    da = xr.DataArray(arr, dims=("y", "x"), coords={"y": y, "x": x}).rio.write_crs("EPSG:4326")
    if nodata is not None:
        da = da.rio.write_nodata(nodata)
    if scale is not None:
        da.attrs.update(scale_factor=scale, add_offset=offset)
    da.rio.to_raster(path)
    return path


def test_geotiff_time_series_scale_and_nodata(tmp_path):
    for y in (2001, 2002, 2003):
        arr = np.full((4, 4), 10 * (y - 2000), np.int16)
        arr[0, 0] = -1
        _tif(tmp_path / f"tc_{y}.tif", arr, 0.0, 4.0, 1.0, nodata=-1, scale=0.5, offset=1.0)
    src = DriverSource(variable="tc", path="tc_*.tif", frequency="annual", units="%")
    da = open_source(src, tmp_path).compute()
    assert list(pd.DatetimeIndex(da["time"].values).year) == [2001, 2002, 2003]
    assert np.isnan(da.sel(lat=3.5, lon=0.5)).all()
    np.testing.assert_allclose(da.sel(lat=0.5, lon=2.5).values, [6.0, 11.0, 16.0])
    assert da.attrs["units"] == "%"
    cube = build_cube([src], Grid(1.0, 0, 4, 0, 4, chunk=8), (2001, 2003), tmp_path).compute()
    np.testing.assert_allclose(cube["tc"].sel(lat=1.5, lon=1.5).values, [6.0, 11.0, 16.0])
    assert "tc_mam" not in cube


def test_projected_geotiff_sampled_on_target_grid(tmp_path):
    import rioxarray  # noqa: F401
    from pyproj import Transformer

    # a Web-Mercator raster whose value is its column index
    res, n = 100_000.0, 40
    x = -2_000_000 + res * (np.arange(n) + 0.5)
    y = 2_000_000 - res * (np.arange(n) + 0.5)
    arr = np.broadcast_to(np.arange(n, dtype=np.float32), (n, n)).copy()
    xr.DataArray(arr, dims=("y", "x"), coords={"y": y, "x": x}).rio.write_crs("EPSG:3857").rio.to_raster(tmp_path / "m.tif")
    g = Grid(1.0, -10, 10, -10, 10, chunk=8)
    da = open_source(DriverSource(variable="sv", path="m.tif", frequency="static"), tmp_path, grid=g).compute()
    tx, _ = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(
        *np.meshgrid(g.lon, g.lat))
    np.testing.assert_array_equal(da.values, np.floor((tx + 2_000_000) / res))


@pytest.mark.realdata
def test_csv_point_table_real_udel_climatology(shared_data):
    p = shared_data / "grids_static" / "udel_MAT_MAP_0.5deg_climatology.csv"
    src = DriverSource(variable="tas", path=str(p), name="MAT_Del", frequency="static", units="degC")
    da = open_source(src, p.parent).compute()
    assert da.sizes["lat"] <= 360 and da.sizes["lon"] == 720
    assert np.isclose(np.diff(da["lat"].values), 0.5).all()
    raw = pd.read_csv(p, comment="#")
    assert int(np.isfinite(da.values).sum()) == len(raw)
    r = raw.iloc[1234]
    assert float(da.sel(lat=r.Latitude, lon=r.Longitude)) == pytest.approx(r.MAT_Del, abs=1e-4)
    # through the normal config: a static climatology repeated for every run year
    cfg = config_from_dict({"run": {"years": [2001, 2003]}, "grid": {"resolution": 0.5},
                            "drivers": {"sources": [
                                {"variable": "tas", "path": str(p), "name": "MAT_Del", "frequency": "static", "units": "degC"},
                                {"variable": "pr", "path": str(p), "name": "MAP_Del", "frequency": "static", "units": "mm yr-1"}]}})
    g = Grid.from_config(cfg.grid)
    cube = build_cube(list(cfg.drivers.sources), g, (2001, 2003), p.parent)
    v = cube["tas"].sel(lat=r.Latitude, lon=r.Longitude).values
    np.testing.assert_allclose(v, r.MAT_Del, atol=1e-4)
    assert cube["pr"].attrs["units"] == "mm yr-1" and "tas_mam" not in cube


@pytest.mark.realdata
def test_real_fractional_land_lon360_static(shared_data):
    p = shared_data / "grids_static" / "fractional_land.0.5-deg.nc"
    src = DriverSource(variable="land", path=str(p), name="data", frequency="static")
    da = open_source(src, p.parent).compute()
    assert da["lon"].values[0] == -179.75 and da["lon"].values[-1] == 179.75
    raw = xr.open_dataset(p, decode_times=False)["data"].isel(time=0)
    # lon 0.25 in the file is lon 0.25; lon 359.75 is -0.25
    assert float(da.sel(lat=51.25, lon=-0.25)) == pytest.approx(float(raw.sel(lat=51.25, lon=359.75)))
    with pytest.raises(InputError, match="no 'time' dimension"):
        open_source(DriverSource(variable="tas", path=str(shared_data / "grids_static" / "udel_MAT_MAP_0.5deg_climatology.csv"),
                                 name="MAT_Del"), p.parent)


def test_step_days_and_8day_daily_aggregation():
    t = pd.DatetimeIndex([pd.Timestamp(2004, 1, 1) + pd.Timedelta(days=8 * k) for k in range(46)])
    d = step_days(t, "8day")
    assert d[:-1].tolist() == [8.0] * 45 and d[-1] == 6.0  # 2004 is a leap year
    # daily precipitation of 1 mm on every day of 2001, with March missing
    days = pd.date_range("2001-01-01", "2001-12-31", freq="D")
    v = np.ones((days.size, 1, 1))
    v[days.month == 3] = np.nan
    da = xr.DataArray(v, dims=("time", "lat", "lon"), coords={"time": days, "lat": [0.0], "lon": [0.0]},
                      attrs={"units": "mm day-1"})
    out = aggregate(da, DriverSource(variable="pr", path="x", frequency="daily", aggregation="sum"),
                    (2001, 2001), 0.75, "x")
    assert float(out["pr"].squeeze()) == pytest.approx(365.0)
    assert np.isnan(float(out["pr_mam"].squeeze()))  # 61 of 92 days < 75 %
    assert float(out["pr_jja"].squeeze()) == pytest.approx(92.0)
    assert out["pr"].attrs["units"] == "mm yr-1"
    # 8-day LST mean: the mean of the valid composites; JJA = composites starting Jun-Aug
    t01 = pd.DatetimeIndex([pd.Timestamp(2001, 1, 1) + pd.Timedelta(days=8 * k) for k in range(46)])
    lst = np.arange(46, dtype=float)[:, None, None] + 273.15
    da = xr.DataArray(lst, dims=("time", "lat", "lon"), coords={"time": t01, "lat": [0.0], "lon": [0.0]},
                      attrs={"units": "K"})
    out = aggregate(da, DriverSource(variable="lst_day", path="x", frequency="8day"), (2001, 2001), 0.75, "x")
    jja = np.nonzero(np.isin(t01.month, (6, 7, 8)))[0]
    assert float(out["lst_day"].squeeze()) == pytest.approx(22.5, abs=1e-4)
    assert float(out["lst_day_jja"].squeeze()) == pytest.approx(jja.mean(), abs=1e-4)
    assert out["lst_day"].attrs["units"] == "degC"


def _src(values, lat, lon):
    return xr.DataArray(values, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})


def test_bilinear_exact_on_a_plane_and_wraps_dateline():
    lat = np.arange(-89.5, 90, 1.0)
    lon = np.arange(-179.5, 180, 1.0)
    plane = 2.0 * lat[:, None] + 0.0 * lon[None, :]
    g = Grid(0.25, -10, 10, 170, 180, chunk=16)
    out = regrid_bilinear(_src(plane, lat, lon), g).compute()
    np.testing.assert_allclose(out.values, 2.0 * g.lat[:, None] * np.ones((1, g.nlon)), atol=1e-4)
    # dateline: between lon 179.5 and -179.5 (= 180.5) the value is interpolated, not NaN
    ramp = np.broadcast_to(np.cos(np.deg2rad(lon)), (lat.size, lon.size))
    g2 = Grid(0.25, 0, 1, 179.5, 180, chunk=8)
    o2 = regrid_bilinear(_src(ramp, lat, lon), g2).compute().values
    assert np.isfinite(o2).all()
    np.testing.assert_allclose(o2[0], np.cos(np.deg2rad(179.5)), atol=1e-4)


def test_area_average_weights_and_gaps():
    lat = np.array([0.25, 0.75, 1.25, 1.75])
    lon = np.array([0.25, 0.75, 1.25, 1.75])
    v = np.arange(16, dtype=float).reshape(4, 4)
    v[3, 3] = np.nan
    out = regrid_area(_src(v, lat, lon), Grid(1.0, 0, 2, 0, 2, chunk=8)).compute().values
    w = band_area(np.array([0.0, 0.5]), np.array([0.5, 1.0]), 0.5)
    exp00 = (w[0] * (v[0, 0] + v[0, 1]) + w[1] * (v[1, 0] + v[1, 1])) / (2 * w.sum())
    assert out[0, 0] == pytest.approx(exp00, rel=1e-6)
    w2 = band_area(np.array([1.0, 1.5]), np.array([1.5, 2.0]), 0.5)
    exp11 = (w2[0] * (v[2, 2] + v[2, 3]) + w2[1] * v[3, 2]) / (2 * w2[0] + w2[1])
    assert out[1, 1] == pytest.approx(exp11, rel=1e-6)


def test_mode_majority():
    lat = np.arange(0.125, 1, 0.25)
    lon = np.arange(0.125, 2, 0.25)
    v = np.full((4, 8), 5.0)
    v[:, :4] = [[1, 1, 2, 2], [1, 1, 2, 2], [1, 3, 3, 3], [255, 255, 255, 255]]
    out = regrid_mode(_src(v, lat, lon), Grid(1.0, 0, 1, 0, 2, chunk=8), ignore=(255,)).compute().values
    np.testing.assert_array_equal(out, [[1, 5]])


def test_write_cube_progress_and_derived(tmp_path):
    time = pd.date_range("2001-01-01", periods=36, freq="MS") + pd.Timedelta(days=14)
    lat, lon = np.array([0.5, 1.5]), np.array([0.5, 1.5])
    for name, val, units in (("lst_day", 300.0, "K"), ("lst_night", 290.0, "K"),
                             ("et", 10.0, "mm month-1"), ("pet", 40.0, "mm month-1")):
        da = xr.DataArray(np.full((36, 2, 2), val), dims=("time", "lat", "lon"),
                          coords={"time": time, "lat": lat, "lon": lon}, attrs={"units": units})
        xr.Dataset({name: da}).to_netcdf(tmp_path / f"{name}.nc")
    srcs = [DriverSource(variable=v, path=f"{v}.nc", aggregation="sum" if v in ("et", "pet") else "mean")
            for v in ("lst_day", "lst_night", "et", "pet")]
    seen = []
    out = write_cube(tmp_path / "out" / "drivers.zarr", srcs, Grid(1.0, 0, 2, 0, 2, chunk=8), (2001, 2003),
                     tmp_path, progress=lambda n, d, t: seen.append((n, d, t)), prov={"stage": "drivers"})
    from soilresp import io

    assert io.is_complete(out)
    cube = io.open_zarr(out)
    np.testing.assert_allclose(cube["lst_diff"].values, 10.0, atol=1e-4)
    np.testing.assert_allclose(cube["et_pet_jja"].values, 0.25)
    assert cube["et"].attrs["units"] == "mm yr-1" and cube["lst_day"].attrs["units"] == "degC"
    assert cube["tas" if "tas" in cube else "et"].chunks[0] == (3,)
    assert ("drivers: et", 3, 3) in seen and ("drivers: lst_day", 0, 3) in seen
    assert io.zarr_provenance(out)["stage"] == "drivers"
