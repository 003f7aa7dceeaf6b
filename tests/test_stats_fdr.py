"""soilresp.stats.fdr_bh against statsmodels' multipletests(method="fdr_bh")."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from statsmodels.stats.multitest import multipletests

from soilresp.stats import fdr_bh


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fdr_bh_matches_statsmodels(alpha, seed):
    rng = np.random.default_rng(seed)
    m = 20_000
    # a map: mostly nulls, some real effects, ties from rounding, NaN (no data) pixels
    p = np.where(rng.random(m) < 0.15, rng.beta(0.3, 8, m), rng.random(m))
    p = np.round(p, 4)
    p[rng.random(m) < 0.1] = np.nan
    p = p.reshape(100, 200)
    rej, q = fdr_bh(p, alpha)
    ok = ~np.isnan(p)
    ref_rej, ref_q, _, _ = multipletests(p[ok], alpha=alpha, method="fdr_bh")
    assert rej.shape == p.shape and q.shape == p.shape
    np.testing.assert_array_equal(rej[ok], ref_rej)
    assert np.max(np.abs(q[ok] - ref_q)) <= 1e-15
    assert np.all(np.isnan(q[~ok])) and not np.any(rej[~ok])
    assert 0 < rej.sum() < ok.sum()


def test_fdr_edge_cases():
    rej, q = fdr_bh(np.array([np.nan, np.nan]))
    assert not rej.any() and np.all(np.isnan(q))
    rej, q = fdr_bh(np.array([]))
    assert rej.shape == (0,)
    rej, q = fdr_bh(np.float64(0.01))
    assert rej.shape == () and bool(rej) and float(q) == 0.01
    rej, q = fdr_bh([0.0, 1.0, 0.5])
    assert rej.tolist() == [True, False, False]
    with pytest.raises(ValueError):
        fdr_bh([0.1, 1.5])
    with pytest.raises(ValueError):
        fdr_bh([0.1], alpha=0)


@settings(max_examples=100, deadline=None)
@given(p=hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=20),
                    elements=st.one_of(st.floats(0, 1), st.just(np.nan))),
       alpha=st.floats(0.001, 0.999))
def test_fdr_property_vs_statsmodels(p, alpha):
    rej, q = fdr_bh(p, alpha)
    ok = ~np.isnan(p)
    if ok.any():
        ref_rej, ref_q, _, _ = multipletests(p[ok], alpha=alpha, method="fdr_bh")
        np.testing.assert_array_equal(rej[ok], ref_rej)
        np.testing.assert_allclose(q[ok], ref_q, rtol=0, atol=1e-15)
    assert np.all(q[ok] >= p[ok])
