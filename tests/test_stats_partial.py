"""soilresp.stats.partial_corr against pingouin.partial_corr (time as a covariate),
scipy's Pearson test and Student t; the null rejection rate; degenerate pixels; hypothesis."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from soilresp.stats import complete_years, critical_r, partial_corr, t_pvalue

TOL = 1e-8


def _drivers(rng, P, k, n):
    """Correlated drivers with trends, and a response depending on some of them."""
    t = np.arange(n)
    common = rng.normal(size=(P, 1, n))
    X = 0.6 * common + rng.normal(size=(P, k, n)) + rng.normal(scale=0.1, size=(P, k, 1)) * t
    w = rng.normal(size=(P, k, 1))
    y = (w * X).sum(axis=1) * 0.3 + 0.05 * t + rng.normal(size=(P, n))
    return y, X


def _pingouin(y, X, detrend):
    """pingouin.partial_corr of y with each row of X given the other rows (+ time)."""
    k, n = X.shape
    df = pd.DataFrame({"y": y, **{f"x{j}": X[j] for j in range(k)}})
    if detrend:
        df["time"] = np.arange(n, dtype=float)  # before dropna: keeps the real years
    df = df.dropna()
    r, p = np.empty(k), np.empty(k)
    for j in range(k):
        covar = [f"x{o}" for o in range(k) if o != j] + (["time"] if detrend else [])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = pg.partial_corr(df, x=f"x{j}", y="y", covar=covar or None)
        r[j], p[j] = res["r"].iloc[0], res["p_val"].iloc[0]
    return r, p


@pytest.mark.parametrize("k,n,detrend,gaps", [
    (1, 15, True, False), (2, 15, True, True), (3, 15, False, False), (3, 20, True, True),
    (6, 15, True, False), (6, 15, True, True), (4, 58, False, True),
])
def test_partial_corr_matches_pingouin(k, n, detrend, gaps):
    rng = np.random.default_rng(100 * k + n + detrend)
    P = 40
    y, X = _drivers(rng, P, k, n)
    if gaps:
        y[rng.random(y.shape) < 0.04] = np.nan
        X[rng.random(X.shape) < 0.02] = np.nan
    res = partial_corr(y, X, detrend=detrend)
    assert res.r.shape == (P, k) and res.p.shape == (P, k)
    assert res.df == n - 2 - (k - 1) - int(detrend)
    worst = 0.0
    compared = 0
    for i in range(P):
        ok = np.isfinite(y[i]) & np.all(np.isfinite(X[i]), axis=0)
        if ok.sum() < k + 2 + detrend:
            assert np.all(np.isnan(res.r[i]))
            continue
        r_ref, p_ref = _pingouin(y[i], X[i], detrend)
        worst = max(worst, np.max(np.abs(res.r[i] - r_ref)), np.max(np.abs(res.p[i] - p_ref)))
        compared += 1
    assert compared > P * 0.8
    assert worst <= TOL


def test_single_driver_without_detrend_is_pearson():
    rng = np.random.default_rng(4)
    y, X = _drivers(rng, 200, 1, 15)
    res = partial_corr(y, X, detrend=False)
    for i in range(200):
        ref = stats.pearsonr(X[i, 0], y[i])
        assert res.r[i, 0] == pytest.approx(ref.statistic, abs=1e-12)
        assert res.p[i, 0] == pytest.approx(ref.pvalue, abs=1e-10)


def test_t_pvalue_matches_scipy():
    t = np.array([0.0, 1e-3, 0.3, 1.0, 2.0, 2.36, 5.0, 40.0, -3.3, np.inf, -np.inf])
    for df in list(range(1, 61)) + [100, 999]:
        ours = t_pvalue(t, df)
        ref = 2 * stats.t.sf(np.abs(t), df)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    assert np.isnan(t_pvalue(1.0, 0))
    # closed forms (scipy's t.sf(1e-8, 1) is off by 3e-9 here; the kernel is not)
    tiny = 1e-8
    assert t_pvalue(tiny, 1) == pytest.approx(1 - 2 * np.arctan(tiny) / np.pi, abs=1e-15)
    assert t_pvalue(tiny, 2) == pytest.approx(1 - tiny / np.sqrt(2 + tiny**2), abs=1e-15)


def test_critical_r():
    assert critical_r(15, 0, detrend=False) == pytest.approx(0.5140, abs=1e-4)  # paper: 0.51
    assert critical_r(15, 5) == pytest.approx(0.6664, abs=1e-4)  # six drivers + trend, df 7
    for n, kc, a, d in ((15, 5, 0.05, True), (15, 2, 0.1, False), (30, 3, 0.01, True)):
        r = critical_r(n, kc, a, detrend=d)
        df = n - 2 - kc - int(d)
        assert t_pvalue(r * np.sqrt(df / (1 - r * r)), df) == pytest.approx(a, abs=1e-10)
    with pytest.raises(ValueError):
        critical_r(5, 3)


def test_null_rejection_rate_is_nominal():
    """True null (response independent of driver 0 given the others): ~5 % rejections."""
    rng = np.random.default_rng(2024)
    trials, n, k = 1000, 15, 6
    t = np.arange(n)
    X = 0.6 * rng.normal(size=(trials, 1, n)) + rng.normal(size=(trials, k, n)) \
        + rng.normal(scale=0.2, size=(trials, k, 1)) * t
    y = 2.0 * X[:, 1] - 0.5 * X[:, 2] + 0.1 * t + rng.normal(size=(trials, n))
    res = partial_corr(y, X)
    rate = np.mean(res.p[:, 0] < 0.05)
    assert 0.03 <= rate <= 0.07, rate
    pooled = np.mean(res.p[:, [0, 3, 4, 5]] < 0.05)  # all four null drivers
    assert 0.035 <= pooled <= 0.065, pooled
    assert np.mean(res.p[:, 1] < 0.05) > 0.9  # and it has power where there is an effect
    # the paper's |r| > 0.51 rule (df = 13) on these df = 7 partial correlations over-rejects
    assert np.mean(np.abs(res.r[:, 0]) > 0.51) > 0.1


def test_degenerate_pixels_are_nan_without_warnings():
    rng = np.random.default_rng(9)
    n = 15
    t = np.arange(n, dtype=float)
    base_y = rng.normal(size=n)
    base_X = rng.normal(size=(3, n))
    cases = []
    X = base_X.copy(); X[1] = 4.0  # constant driver
    cases.append((base_y, X))
    cases.append((np.full(n, 2.0), base_X))  # constant response
    X = base_X.copy(); X[2] = 2 * X[0] - X[1]  # collinear drivers
    cases.append((base_y, X))
    cases.append((3.0 + 0.5 * t, base_X))  # response is an exact trend (detrended: nothing)
    y = base_y.copy(); y[:10] = np.nan  # too few complete years
    cases.append((y, base_X))
    Y = np.stack([c[0] for c in cases])
    XX = np.stack([c[1] for c in cases])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = partial_corr(Y, XX)
    assert np.all(np.isnan(res.r)) and np.all(np.isnan(res.p))
    assert complete_years(Y, XX).tolist() == [15, 15, 15, 15, 5]
    # without detrending an exact trend is a fine response
    assert np.all(np.isfinite(partial_corr(Y[3], XX[3], detrend=False).r))


def test_min_years_and_broadcasting():
    rng = np.random.default_rng(1)
    y, X = _drivers(rng, 6, 2, 12)
    y[0, :4] = np.nan
    res = partial_corr(y, X, min_years=9)
    assert np.all(np.isnan(res.r[0])) and np.all(np.isfinite(res.r[1:]))
    # one response against a grid of driver sets
    res_b = partial_corr(y[1], X)
    assert res_b.r.shape == (6, 2)
    np.testing.assert_array_equal(res_b.r[1], res.r[1])
    # float32 inputs
    r32 = partial_corr(y.astype(np.float32), X.astype(np.float32)).r
    r64 = partial_corr(y.astype(np.float32).astype(np.float64),
                       X.astype(np.float32).astype(np.float64)).r
    np.testing.assert_array_equal(r32, r64)


def test_argument_errors():
    with pytest.raises(ValueError):
        partial_corr(np.ones((3, 10)), np.ones(10))  # X lacks the driver axis
    with pytest.raises(ValueError):
        partial_corr(np.ones((3, 10)), np.ones((3, 2, 9)))
    with pytest.raises(ValueError):
        partial_corr(np.ones((3, 10)), np.ones((4, 2, 10)))
    with pytest.raises(ValueError):
        partial_corr(np.ones((3, 10)), np.ones((3, 0, 10)))
    with pytest.raises(TypeError):
        partial_corr(np.ones((3, 10)), np.ones((3, 2, 10), dtype=complex))


_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0.0, 1.0, 1.0, np.nan, 1e300, -1e300]))


@settings(max_examples=120, deadline=None)
@given(data=st.data(), P=st.integers(0, 4), k=st.integers(1, 4), n=st.integers(0, 16),
       detrend=st.booleans())
def test_partial_corr_never_crashes(data, P, k, n, detrend):
    y = data.draw(hnp.arrays(np.float64, (P, n), elements=_floats))
    X = data.draw(hnp.arrays(np.float64, (P, k, n), elements=_floats))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = partial_corr(y, X, detrend=detrend)
    assert res.r.shape == (P, k)
    r = res.r[np.isfinite(res.r)]
    p = res.p[np.isfinite(res.p)]
    assert np.all(np.abs(r) <= 1) and np.all((p >= 0) & (p <= 1))
    assert np.array_equal(np.isnan(res.r), np.isnan(res.p))
