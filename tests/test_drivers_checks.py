"""Driver plausibility checks at the edge (issue 17): one test per check in
soilresp.drivers.checks, plus the readers refusing each case end to end."""

from __future__ import annotations

import os
import threading

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from soilresp.config import DriverSource
from soilresp.drivers import checks as C
from soilresp.drivers.readers import open_source
from soilresp.errors import InputError


def _monthly(values=None, start="2000-01", n=24, units="degC", name="tas"):
    t = pd.date_range(start, periods=n, freq="MS")
    v = np.full((n, 4, 8), 15.0, np.float32) if values is None else values
    da = xr.DataArray(v, dims=("time", "lat", "lon"),
                      coords={"time": t, "lat": np.linspace(-45, 45, 4), "lon": np.linspace(-157.5, 157.5, 8)},
                      name=name)
    if units:
        da.attrs["units"] = units
    return da


def _write(tmp_path, da, name="tas.nc", encoding=None):
    p = tmp_path / name
    da.to_dataset().to_netcdf(p, encoding=encoding)
    return p


def _src(path, variable="tas", **kw):
    return DriverSource(variable=variable, path=str(path), **kw)


# ------------------------------------------------------------------ units and ranges
def test_kelvin_without_units_is_an_error_suggesting_units_K(tmp_path):
    p = _write(tmp_path, _monthly(np.full((24, 4, 8), 288.0, np.float32), units=None))
    with pytest.raises(InputError, match=r"tas.nc.*'tas'.*kelvin.*units = \"K\""):
        open_source(_src(p), tmp_path)
    da = open_source(_src(p, units="K"), tmp_path)  # the suggested fix works
    assert da.attrs["units"] == "K"


def test_kelvin_under_degC_units(tmp_path):
    with pytest.raises(InputError, match=r"'tas'.*kelvin.*units 'degC'"):
        C.check_temperature_units(np.array([280.0, 290.0, 300.0]), "degC", "f.nc", "tas")
    C.check_temperature_units(np.array([280.0, 290.0]), "K", "f.nc", "tas")
    C.check_temperature_units(np.array([-5.0, 20.0]), "degC", "f.nc", "tas")
    C.check_temperature_units(np.array([280.0]), None, "f.nc", "pr")   # not a temperature


def test_celsius_under_kelvin_units():
    with pytest.raises(InputError, match=r"units 'K' but the values look like degC"):
        C.check_temperature_units(np.array([5.0, 15.0, 25.0]), "K", "f.nc", "lst_day")


def test_physical_range():
    with pytest.raises(InputError, match=r"'pr'.*outside the plausible range"):
        C.check_physical_range(np.r_[np.full(100, 50.0), -40.0 * np.ones(5)], "mm month-1", "f.nc", "pr")
    with pytest.raises(InputError, match=r"'ndvi'.*value 1000"):
        C.check_physical_range(np.r_[np.full(50, 0.5), np.full(50, 1000.0)], "1", "f.nc", "ndvi")
    C.check_physical_range(np.full(10, 0.5), "1", "f.nc", "ndvi")
    C.check_physical_range(np.full(10, 1e6), "x", "f.nc", "unknown_var")   # no rule: no error


def test_undeclared_fill():
    for fill in (-9999.0, 9.969209968386869e36, -32768.0, 1e20):
        with pytest.raises(InputError, match=r"'gpp'.*undeclared fill"):
            C.check_undeclared_fill(np.r_[np.full(10, 3.0), fill], "f.nc", "gpp")
    C.check_undeclared_fill(np.array([3.0, -12.5]), "f.nc", "gpp")


def test_valid_range_decoding():
    da = _monthly()
    da.encoding.update({"_FillValue": 0.0, "valid_range": [-50.0, 60.0]})
    with pytest.raises(InputError, match=r"_FillValue 0.0 lies inside the valid range"):
        C.check_valid_range_decoding(da, "f.nc", "tas")
    da.encoding.update({"_FillValue": -999.0, "valid_range": [60.0, -50.0]})
    with pytest.raises(InputError, match="reversed"):
        C.check_valid_range_decoding(da, "f.nc", "tas")
    da.encoding["valid_range"] = [-50.0, 60.0]
    C.check_valid_range_decoding(da, "f.nc", "tas")


def test_fill_equal_to_class_code():
    da = xr.DataArray(np.ones((3, 3)), dims=("lat", "lon"))
    da.encoding["_FillValue"] = 12
    with pytest.raises(InputError, match=r"lc.nc.*'LC_Type1'.*_FillValue 12 is also a valid class code"):
        C.check_fill_not_class(da, "lc.nc", "LC_Type1", range(1, 18))
    da.encoding["_FillValue"] = 255
    C.check_fill_not_class(da, "lc.nc", "LC_Type1", range(1, 18))


# ------------------------------------------------------------------ time axis
def test_time_duplicates(tmp_path):
    da = _monthly()
    t = da.time.values.copy()
    t[5] = t[4]
    p = _write(tmp_path, da.assign_coords(time=t))
    with pytest.raises(InputError, match=r"tas.nc.*'time'.*2000-05-01 occurs 2 times"):
        from soilresp.drivers.aggregate import aggregate

        aggregate(open_source(_src(p), tmp_path), _src(p), (2000, 2001), 0.75, str(p))


def test_time_gap_is_error_unless_allowed_and_then_recorded(tmp_path):
    from soilresp.drivers.aggregate import aggregate

    da = _monthly(n=24)
    da = da.isel(time=[i for i in range(24) if not (12 <= i < 21)])   # 2001: 9 months missing
    p = _write(tmp_path, da)
    with pytest.raises(InputError, match=r"tas.nc.*'time'.*year 2001 lacks 9 of its 12 monthly"):
        aggregate(open_source(_src(p), tmp_path), _src(p), (2000, 2001), 0.2, str(p))
    src = _src(p, max_missing_fraction=0.8)
    out = aggregate(open_source(src, tmp_path), src, (2000, 2001), 0.2, str(p))
    assert out["tas"].attrs["soilresp_missing_steps"] == "2001: 9 of 12"
    assert C.missing_steps(pd.date_range("2000-01", periods=12, freq="MS"), [2000], "monthly") == {}


# ------------------------------------------------------------------ files and network
def test_fifo_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "tas.nc"
    os.mkfifo(fifo)
    box = {}

    def go():
        try:
            open_source(_src(fifo), tmp_path)
        except InputError as e:
            box["e"] = e

    th = threading.Thread(target=go, daemon=True)
    th.start()
    th.join(20)
    assert not th.is_alive(), "reading a named pipe hung"
    assert "named pipe" in str(box["e"]) and "tas.nc" in str(box["e"])


def test_regular_file_check():
    with pytest.raises(InputError, match="/dev/null.*device"):
        C.check_regular_file("/dev/null")
    with pytest.raises(InputError, match="not found"):
        C.check_regular_file("/no/such/file.nc")


def test_vrt_disguised_as_tif_is_refused(tmp_path):
    p = tmp_path / "tc.tif"
    p.write_text('<VRTDataset rasterXSize="4" rasterYSize="4"><VRTRasterBand dataType="Byte" band="1">'
                 '<SimpleSource><SourceFilename>/vsicurl/http://127.0.0.1:9/x.tif</SourceFilename>'
                 '</SimpleSource></VRTRasterBand></VRTDataset>')
    with pytest.raises(InputError, match=r"tc.tif.*GDAL VRT.*allow_vrt"):
        open_source(_src(p, variable="tc", format="geotiff"), tmp_path)


def test_network_path_refused_unless_allowed(tmp_path):
    for url in ("https://example.org/tas.nc", "/vsicurl/https://example.org/tas.tif"):
        with pytest.raises(InputError, match=r"network.*allow_network"):
            open_source(_src(url), tmp_path)
