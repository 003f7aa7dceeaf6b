import numpy as np
import pandas as pd
import pytest
import xarray as xr

from soilresp.config import DriverSource
from soilresp.drivers import aggregate, build_cube, extract_at_sites, regrid_nearest
from soilresp.errors import InputError
from soilresp.grid import Grid


def _monthly_file(path, values, lat, lon, name="v", units="degC", years=(2000, 2001), lon360=False):
    time = pd.date_range(f"{years[0]}-01-01", periods=12 * (years[1] - years[0] + 1), freq="MS") + pd.Timedelta(days=14)
    lo = (np.asarray(lon) % 360) if lon360 else lon
    da = xr.DataArray(values, dims=("time", "lat", "lon"), coords={"time": time, "lat": lat, "lon": lo},
                      attrs={"units": units, "long_name": name})
    xr.Dataset({name: da}).to_netcdf(path, encoding={name: {"_FillValue": -9999.0}})
    return path


def test_aggregation_mean_sum_seasons_and_fill(tmp_path):
    lat, lon = np.array([10.0, -10.0]), np.array([-10.0, 10.0])
    months = np.arange(24, dtype=float)
    vals = np.broadcast_to(months[:, None, None], (24, 2, 2)).copy()
    vals[0, 0, 0] = np.nan  # one missing month
    vals[12:18, 1, 1] = np.nan  # half of 2001 missing at one pixel
    p = _monthly_file(tmp_path / "pr.nc", vals, lat, lon, name="pr", units="mm month-1")
    da = xr.open_dataset(p)["pr"]
    src = DriverSource(variable="pr", path="pr.nc", aggregation="sum")
    out = aggregate(da, src, (2000, 2001), 0.75, "pr.nc")
    a = out["pr"].sortby("lat").compute()
    # complete year: the exact sum; a gap: valid sum / valid days x days of the year
    assert a.sel(year=2000, lat=-10.0, lon=10.0) == pytest.approx(np.arange(12).sum())
    assert a.sel(year=2000, lat=10.0, lon=-10.0) == pytest.approx(np.arange(1, 12).sum() / (366 - 31) * 366,
                                                                  rel=1e-6)
    assert np.isnan(a.sel(year=2001, lat=-10.0, lon=10.0))  # 6 of 12 valid < 75 %
    assert out["pr_mam"].sel(year=2001, lat=10.0, lon=-10.0) == pytest.approx((14 + 15 + 16) / 3 * 3)
    assert out["pr_jja"].attrs["units"] == "mm" and out["pr"].attrs["units"] == "mm yr-1"


def test_kelvin_converted_and_missing_year(tmp_path):
    lat, lon = np.array([0.0]), np.array([0.0])
    p = _monthly_file(tmp_path / "lst.nc", np.full((24, 1, 1), 300.0), lat, lon, name="lst_day", units="K")
    da = xr.open_dataset(p)["lst_day"]
    out = aggregate(da, DriverSource(variable="lst_day", path="lst.nc"), (2000, 2001), 0.75, "lst.nc")
    assert float(out["lst_day"].isel(year=0).squeeze()) == pytest.approx(26.85)
    assert out["lst_day"].attrs["units"] == "degC"
    with pytest.raises(InputError, match=r"lst.nc, column 'time': years \[2002\]"):
        aggregate(da, DriverSource(variable="lst_day", path="lst.nc"), (2000, 2002), 0.75, "lst.nc")


def test_build_cube_regrids_nearest_and_handles_orientation(tmp_path):
    # source: 2-degree, north-to-south, lon 0..360; target 1-degree
    lat = np.arange(29.0, -31.0, -2.0)
    lon = np.arange(-179.0, 180.0, 2.0)
    base = lat[:, None] + 0 * lon[None, :]
    vals = np.broadcast_to(base, (24,) + base.shape).astype(np.float32)
    _monthly_file(tmp_path / "tas.nc", vals, lat, lon, name="tas", lon360=True)
    _monthly_file(tmp_path / "et.nc", vals * 0 + 50, lat, lon, name="et", units="mm month-1")
    _monthly_file(tmp_path / "pet.nc", vals * 0 + 100, lat, lon, name="pet", units="mm month-1")
    g = Grid(1.0, -30, 30, -180, 180, chunk=16)
    srcs = [DriverSource(variable="tas", path="tas.nc"),
            DriverSource(variable="et", path="et.nc", aggregation="sum"),
            DriverSource(variable="pet", path="pet.nc", aggregation="sum")]
    cube = build_cube(srcs, g, (2000, 2001), tmp_path).compute()
    assert list(cube["tas"].dims) == ["year", "lat", "lon"]
    assert np.all(np.diff(cube["lat"].values) > 0)
    # target cell centred at 20.5 lies in the source cell centred at 21 (covers 20-22)
    assert float(cube["tas"].sel(year=2000, lat=20.5, lon=0.5)) == pytest.approx(21.0)
    assert float(cube["tas"].sel(year=2000, lat=-20.5, lon=-179.5)) == pytest.approx(-21.0)
    np.testing.assert_allclose(cube["et_pet"].values, 0.5)
    assert cube["et_pet_jja"].attrs["units"] == "1"


def test_missing_variable_and_file_are_named(tmp_path):
    _monthly_file(tmp_path / "a.nc", np.zeros((24, 1, 1)), [0.0], [0.0], name="a")
    g = Grid(1.0, -1, 1, -1, 1)
    with pytest.raises(InputError, match=r"a.nc, column 'tas': variable not found"):
        build_cube([DriverSource(variable="tas", path="a.nc")], g, (2000, 2001), tmp_path)
    with pytest.raises(InputError, match="no such driver file"):
        build_cube([DriverSource(variable="tas", path="b.nc")], g, (2000, 2001), tmp_path)


def test_regrid_outside_source_is_nan():
    da = xr.DataArray(np.ones((2, 2)), dims=("lat", "lon"), coords={"lat": [0.5, 1.5], "lon": [0.5, 1.5]})
    out = regrid_nearest(da, Grid(1.0, 0, 3, 0, 2))
    assert np.isnan(out.values[2]).all() and (out.values[:2] == 1).all()


def test_extract_at_sites_nearest_and_distance():
    g = Grid(1.0, 0, 3, 0, 3)
    v = np.arange(2 * 3 * 3, dtype=float).reshape(2, 3, 3)
    cube = xr.Dataset({"tas": (("year", "lat", "lon"), v)}, coords={"year": [2000, 2001], **g.coords()})
    obs = pd.DataFrame({"lat": [0.4, 2.9, 1.5, 50.0], "lon": [0.6, 2.2, 1.5, 1.0], "year": [2000, 2001, 1999, 2000]})
    out = extract_at_sites(cube, obs, g, max_distance_km=100)
    assert out["tas"].iloc[0] == v[0, 0, 0] and out["tas"].iloc[1] == v[1, 2, 2]
    assert np.isnan(out["tas"].iloc[2]) and np.isnan(out["tas"].iloc[3])  # year / grid outside
    assert out["distance_km"].iloc[0] == pytest.approx(15.7, abs=0.5)
