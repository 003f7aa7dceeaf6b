"""xarray wrappers: same numbers as the array kernels, identical chunked and unchunked."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from soilresp.stats import (
    TREND_CLASS_NODATA,
    critical_r,
    fdr_bh,
    partial_corr,
    trend_class,
    trend_test,
    xr_fdr_bh,
    xr_partial_corr,
    xr_trend,
)


def _cube(seed=0, ny=13, nx=17, nt=15, gaps=0.05):
    rng = np.random.default_rng(seed)
    years = np.arange(2000, 2000 + nt)
    trend = rng.normal(scale=0.1, size=(ny, nx, 1)) * np.arange(nt)
    data = np.round(rng.normal(size=(ny, nx, nt)) + trend, 2).astype(np.float32)
    data[rng.random(data.shape) < gaps] = np.nan
    data[0, 0] = np.nan  # an all-missing pixel
    data[1, 1] = 3.0  # a constant pixel
    return xr.DataArray(data, dims=("lat", "lon", "year"),
                        coords={"lat": np.arange(ny), "lon": np.arange(nx), "year": years},
                        name="rs", attrs={"units": "g C m-2 yr-1"})


def _assert_same(a: xr.Dataset, b: xr.Dataset):
    assert set(a.data_vars) == set(b.data_vars)
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)
        assert a[v].dtype == b[v].dtype, v


def test_xr_trend_matches_kernels_and_is_chunk_invariant():
    da = _cube()
    plain = xr_trend(da, "year", min_years=8)
    chunked = xr_trend(da.chunk({"lat": 4, "lon": 5, "year": 5}), "year", min_years=8)
    assert chunked["slope"].chunks is not None
    _assert_same(plain, chunked.compute())
    ref = trend_test(da.values, da["year"].values, min_years=8)
    for k, v in ref.items():
        np.testing.assert_array_equal(plain[k].values, v, err_msg=k)
    np.testing.assert_array_equal(plain["trend_class"].values,
                                  trend_class(ref["slope"], ref["p"]))
    np.testing.assert_allclose(plain["net_change"].values, ref["slope"] * 14)
    assert plain["trend_class"].values[0, 0] == TREND_CLASS_NODATA
    assert plain["p"].values[1, 1] == 1 and plain["slope"].values[1, 1] == 0
    assert plain["slope"].attrs["units"] == "g C m-2 yr-1 / year"
    assert plain["intercept"].dims == ("lat", "lon")


def test_xr_trend_fdr_chunked_equals_unchunked():
    da = _cube(seed=1, gaps=0.0)
    plain = xr_trend(da, fdr=True)
    chunked = xr_trend(da.chunk({"lat": 5}), fdr=True).compute()
    _assert_same(plain, chunked)
    rej, q = fdr_bh(plain["p"].values, 0.05)
    np.testing.assert_array_equal(plain["q"].values, q)
    np.testing.assert_array_equal(plain["fdr_reject"].values, rej)
    sig = np.abs(plain["trend_class"].values) == 2
    np.testing.assert_array_equal(sig, rej & (plain["slope"].values != 0))


def test_xr_fdr_bh_dask_matches_numpy():
    rng = np.random.default_rng(3)
    p = rng.random((40, 50)) ** 3
    p[rng.random(p.shape) < 0.2] = np.nan
    da = xr.DataArray(p, dims=("y", "x"))
    r1, q1 = xr_fdr_bh(da)
    r2, q2 = xr_fdr_bh(da.chunk({"y": 7, "x": 11}))
    np.testing.assert_array_equal(q1.values, q2.values)
    np.testing.assert_array_equal(r1.values, r2.values)


def test_xr_trend_time_coordinate_variants():
    da = _cube(nt=8, gaps=0)
    as_dates = da.assign_coords(year=np.array([f"{y}-07-01" for y in da["year"].values],
                                              dtype="datetime64[ns]"))
    a = xr_trend(da)
    b = xr_trend(as_dates)
    np.testing.assert_array_equal(a["intercept"].values, b["intercept"].values)
    c = xr_trend(da.rename(year="t").drop_vars("t"), dim="t")
    np.testing.assert_array_equal(a["slope"].values, c["slope"].values)
    with pytest.raises(ValueError):
        xr_trend(da, dim="time")


def test_xr_partial_corr_matches_kernel_and_is_chunk_invariant():
    rng = np.random.default_rng(4)
    shape = (9, 11, 15)
    dims = ("lat", "lon", "year")
    coords = {"lat": np.arange(9), "lon": np.arange(11), "year": np.arange(2000, 2015)}
    names = ["tas", "pr", "sv"]
    drv = {nm: xr.DataArray(rng.normal(size=shape), dims=dims, coords=coords) for nm in names}
    y = 0.5 * drv["tas"] - 0.3 * drv["sv"] + xr.DataArray(rng.normal(size=shape), dims=dims,
                                                          coords=coords)
    y = y.where(rng.random(shape) > 0.05)
    plain = xr_partial_corr(y, drv, "year", fdr=True)
    chunked = xr_partial_corr(y.chunk({"lat": 4}), xr.Dataset(drv).chunk({"lon": 3}), "year",
                              fdr=True).compute()
    _assert_same(plain, chunked)
    X = np.stack([drv[nm].values for nm in names], axis=-2)
    ref = partial_corr(y.values, X)
    for j, nm in enumerate(names):
        np.testing.assert_array_equal(plain[f"r_{nm}"].values, ref.r[..., j])
        np.testing.assert_array_equal(plain[f"p_{nm}"].values, ref.p[..., j])
        np.testing.assert_array_equal(plain[f"q_{nm}"].values, fdr_bh(ref.p[..., j])[1])
    assert plain.attrs["df"] == ref.df == 15 - 2 - 2 - 1
    assert plain.attrs["critical_r"] == critical_r(15, 2) == pytest.approx(0.5760, abs=1e-4)
    assert int(plain["n"].max()) == 15 and int(plain["n"].min()) < 15


def test_xr_partial_corr_errors():
    a = xr.DataArray(np.ones((2, 5)), dims=("x", "year"))
    with pytest.raises(ValueError):
        xr_partial_corr(a, {}, "year")
    with pytest.raises(ValueError):
        xr_partial_corr(a, {"b": xr.DataArray(np.ones((2, 5)), dims=("x", "time"))}, "year")
