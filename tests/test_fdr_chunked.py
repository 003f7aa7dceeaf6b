"""Chunked two-pass Benjamini-Hochberg (xr_fdr_bh on dask) against statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from statsmodels.stats.multitest import multipletests

from soilresp.stats import xr_fdr_bh
from soilresp.stats.fdr import BIN_RELATIVE_WIDTH, bin_histogram, merge_histograms, p_bins


def _map(seed, shape=(120, 150)):
    rng = np.random.default_rng(seed)
    p = np.where(rng.random(shape) < 0.2, rng.beta(0.3, 8, shape), rng.random(shape))
    p = np.round(p, 5)  # ties
    p[rng.random(shape) < 0.1] = np.nan
    p[0, :3] = [0.0, 1.0, 0.0]
    return p


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
@pytest.mark.parametrize("seed", [0, 1])
def test_histogram_path_rejections_exact_q_within_bin_width(alpha, seed):
    p = _map(seed)
    da = xr.DataArray(p, dims=("lat", "lon")).chunk({"lat": 31, "lon": 47})
    rej, q = xr_fdr_bh(da, alpha, exact_limit=0)  # force the two-pass histogram path
    ok = ~np.isnan(p)
    ref_rej, ref_q, _, _ = multipletests(p[ok], alpha=alpha, method="fdr_bh")
    r, qq = rej.values, q.values
    np.testing.assert_array_equal(r[ok], ref_rej)
    assert not r[~ok].any() and np.all(np.isnan(qq[~ok]))
    assert np.all(qq[ok] >= ref_q - 1e-15)
    assert np.all(qq[ok] * (1 - BIN_RELATIVE_WIDTH) <= ref_q + 1e-15)
    assert 0 < r.sum() < ok.sum()
    assert q.attrs["exact"] == 0


def test_exact_path_on_dask_equals_statsmodels():
    p = _map(3)
    rej, q = xr_fdr_bh(xr.DataArray(p, dims=("y", "x")).chunk({"y": 17}), 0.05)
    ok = ~np.isnan(p)
    ref_rej, ref_q, _, _ = multipletests(p[ok], alpha=0.05, method="fdr_bh")
    np.testing.assert_array_equal(rej.values[ok], ref_rej)
    assert np.max(np.abs(q.values[ok] - ref_q)) <= 1e-15 and q.attrs["exact"] == 1


def test_bins_are_monotone_and_histograms_merge():
    v = np.sort(np.random.default_rng(0).random(10_000) ** 4)
    assert np.all(np.diff(p_bins(v)) >= 0)
    a, b = bin_histogram(v[:4000]), bin_histogram(v[4000:])
    m = merge_histograms(a, b)
    whole = bin_histogram(v)
    for x, y in zip(m, whole):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError):
        bin_histogram(np.array([0.5, 1.5]))


def test_all_nan_and_no_rejection():
    da = xr.DataArray(np.full((4, 5), np.nan)).chunk(2)
    rej, q = xr_fdr_bh(da, exact_limit=0)
    assert not rej.values.any() and np.all(np.isnan(q.values))
    da = xr.DataArray(np.linspace(0.5, 1, 20).reshape(4, 5)).chunk(2)
    rej, q = xr_fdr_bh(da, exact_limit=0)
    assert not rej.values.any()
