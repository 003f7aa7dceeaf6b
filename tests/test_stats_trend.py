"""soilresp.stats trend kernels against the reference implementations.

Mann-Kendall and Sen slope vs ``pymannkendall`` (original, Hamed-Rao, Yue-Wang), the Sen
interval vs ``scipy.stats.theilslopes``, the exact p vs enumeration and
``scipy.stats.kendalltau(method="exact")``; edge cases; hypothesis property tests.
"""

from __future__ import annotations

import warnings
from itertools import permutations

import numpy as np
import pymannkendall as pmk
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from soilresp.stats import (
    TREND_CLASS_LABELS,
    TREND_CLASS_NODATA,
    mann_kendall,
    mann_kendall_hamed_rao,
    mann_kendall_yue_wang,
    mk_exact_p,
    net_change,
    sens_slope,
    trend_class,
    trend_test,
)

TOL = 1e-9


def _random_series(rng, count, n, *, gaps=0.0, decimals=1):
    """Normal noise + random trend, rounded (ties), optional missing years."""
    y = rng.normal(size=(count, n)) + rng.normal(scale=0.2, size=(count, 1)) * np.arange(n)
    y = np.round(y, decimals)
    if gaps:
        y[rng.random(y.shape) < gaps] = np.nan
    return y


# (years, series): 10,500 series in all; half of each block has ~8 % missing years, so a
# few short ones fall below min_years = 3 (checked to be NaN); over 10,300 are compared.
PEER_BLOCKS = ((3, 500), (4, 400), (5, 600), (8, 800), (10, 1000), (15, 4000), (20, 1600),
               (25, 1600))


def _peer_block(n, count):
    rng = np.random.default_rng(1000 + n)
    half = count // 2
    return np.concatenate([_random_series(rng, half, n, decimals=int(rng.integers(0, 3))),
                           _random_series(rng, count - half, n, gaps=0.08, decimals=1)])


@pytest.fixture(scope="module")
def peer_set():
    return [_peer_block(n, c) for n, c in PEER_BLOCKS]


def test_peer_set_has_10000_series():
    assert sum(c for _, c in PEER_BLOCKS) >= 10_000


@pytest.mark.parametrize("n,count", PEER_BLOCKS)
def test_mann_kendall_and_sen_match_pymannkendall(n, count):
    """S, Var(S), z, p, tau, slope, intercept vs pymannkendall.original_test (<= 1e-9)."""
    Y = _peer_block(n, count)
    mk = mann_kendall(Y)
    tt = trend_test(Y)
    worst = dict.fromkeys(("s", "var_s", "z", "p", "tau", "slope", "intercept"), 0.0)
    compared = 0
    for i in range(Y.shape[0]):
        y = Y[i]
        if np.isfinite(y).sum() < 3:
            assert np.isnan(mk.s[i]) and np.isnan(tt["slope"][i])
            continue
        ref = pmk.original_test(y)
        for f, ours in (("s", mk.s[i]), ("var_s", mk.var_s[i]), ("z", mk.z[i]),
                        ("p", mk.p[i]), ("tau", mk.tau[i]), ("slope", tt["slope"][i]),
                        ("intercept", tt["intercept"][i])):
            theirs = ref.Tau if f == "tau" else getattr(ref, f)
            worst[f] = max(worst[f], abs(float(ours) - float(theirs)))
        assert tt["s"][i] == mk.s[i] and tt["p"][i] == mk.p[i]
        compared += 1
    assert compared >= (0.85 if n == 3 else 0.97) * count
    assert max(worst.values()) <= TOL, worst


def test_sen_interval_matches_scipy_theilslopes(peer_set):
    worst = 0.0
    checked = 0
    for Y in peer_set:
        for alpha in (0.05, 0.1):
            sr = sens_slope(Y, alpha=alpha)
            for i in range(0, Y.shape[0], 3):
                ok = np.isfinite(Y[i])
                if ok.sum() < 3:
                    continue
                x = np.arange(Y.shape[1], dtype=float)[ok]
                ref = stats.theilslopes(Y[i][ok], x, alpha=alpha)
                d = max(abs(sr.slope[i] - ref.slope), abs(sr.intercept[i] - ref.intercept),
                        abs(sr.lo[i] - ref.low_slope), abs(sr.hi[i] - ref.high_slope))
                worst = max(worst, d)
                checked += 1
    assert checked > 5000
    assert worst <= TOL


def test_sen_with_year_values_matches_scipy():
    rng = np.random.default_rng(3)
    years = np.arange(2000, 2015)
    Y = _random_series(rng, 300, 15, gaps=0.1)
    sr = sens_slope(Y, years, alpha=0.01)
    for i in range(300):
        ok = np.isfinite(Y[i])
        ref = stats.theilslopes(Y[i][ok], years[ok].astype(float), alpha=0.01)
        assert sr.slope[i] == pytest.approx(ref.slope, abs=TOL)
        assert sr.intercept[i] == pytest.approx(ref.intercept, abs=1e-7)  # x ~ 2000
        assert sr.lo[i] == pytest.approx(ref.low_slope, abs=TOL)
        assert sr.hi[i] == pytest.approx(ref.high_slope, abs=TOL)


def test_long_series_path_matches_peers():
    """n > 100 sorts per pixel instead of with a network."""
    rng = np.random.default_rng(5)
    Y = _random_series(rng, 12, 110, gaps=0.05)
    tt = trend_test(Y)
    for i in range(Y.shape[0]):
        ref = pmk.original_test(Y[i])
        assert tt["s"][i] == ref.s
        assert tt["p"][i] == pytest.approx(ref.p, abs=TOL)
        assert tt["slope"][i] == pytest.approx(ref.slope, abs=TOL)
        ok = np.isfinite(Y[i])
        th = stats.theilslopes(Y[i][ok], np.arange(110.0)[ok], alpha=0.05)
        assert tt["slope_lo"][i] == pytest.approx(th.low_slope, abs=TOL)
        assert tt["slope_hi"][i] == pytest.approx(th.high_slope, abs=TOL)


EDGE_CASES = {
    "n3": [1.0, 2.0, 3.0],
    "n3_down": [3.0, 1.0, 2.0],
    "n3_tie": [1.0, 1.0, 2.0],
    "all_ties": [2.5] * 15,
    "two_groups": [1.0] * 7 + [2.0] * 8,
    "nan_inside": [1.0, np.nan, 3.0, 2.0, np.nan, 5.0, 4.0],
    "nan_ends": [np.nan, 1.0, 2.0, 2.0, 0.5, np.nan],
    "zigzag": [0.0, 1.0] * 7 + [0.0],
    "huge": [1e12, 1e12 + 1, 1e12 - 1, 1e12 + 2, 1e12],
    "negative_zero": [0.0, -0.0, 0.0, 1.0],
}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases_match_peers(name):
    y = np.asarray(EDGE_CASES[name])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tt = trend_test(y)
        mk = mann_kendall(y)
    ref = pmk.original_test(y)
    assert tt["s"] == ref.s and mk.var_s == pytest.approx(ref.var_s, abs=TOL)
    assert tt["p"] == pytest.approx(ref.p, abs=TOL)
    assert tt["z"] == pytest.approx(ref.z, abs=TOL)
    assert tt["slope"] == pytest.approx(ref.slope, abs=TOL)
    assert tt["intercept"] == pytest.approx(ref.intercept, abs=TOL)
    ok = np.isfinite(y)
    th = stats.theilslopes(y[ok], np.arange(y.size, dtype=float)[ok])
    assert tt["slope_lo"] == pytest.approx(th.low_slope, abs=TOL)
    assert tt["slope_hi"] == pytest.approx(th.high_slope, abs=TOL)


def test_constant_series_is_stable_without_warnings():
    y = np.full((4, 15), 7.25, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tt = trend_test(y)
        mk = mann_kendall(y, exact=True)
    assert np.all(tt["s"] == 0) and np.all(tt["p"] == 1) and np.all(tt["z"] == 0)
    assert np.all(tt["slope"] == 0) and np.all(tt["slope_lo"] == 0) and np.all(tt["slope_hi"] == 0)
    assert np.all(tt["tau"] == 0) and np.all(tt["intercept"] == 7.25)
    assert np.all(mk.p == 1)
    assert np.all(trend_class(tt["slope"], tt["p"]) == 0)


def test_missing_years_and_min_years():
    y = np.array([[1.0, np.nan, np.nan, 2.0, np.nan, 3.0],
                  [np.nan] * 6,
                  [1.0, 2.0, np.inf, 4.0, -np.inf, 3.0]])
    tt = trend_test(y, min_years=3)
    assert list(tt["n"]) == [3, 0, 4]
    assert tt["s"][0] == 3 and np.isnan(tt["s"][1])
    ref = pmk.original_test([1.0, 2.0, 4.0, 3.0])
    assert tt["s"][2] == ref.s and tt["p"][2] == pytest.approx(ref.p, abs=TOL)
    tt4 = trend_test(y, min_years=4)
    assert np.isnan(tt4["s"][0]) and np.isnan(tt4["slope"][0]) and tt4["n"][0] == 3
    assert np.isfinite(tt4["s"][2])


def test_float32_and_shapes():
    rng = np.random.default_rng(11)
    y64 = np.round(rng.normal(size=(3, 4, 15)), 2)
    y32 = y64.astype(np.float32)
    a = trend_test(y32)
    b = trend_test(y32.astype(np.float64))
    for k in a:
        assert a[k].shape == (3, 4)
        np.testing.assert_array_equal(a[k], b[k])
    single = trend_test(y64[0, 0])
    assert single["s"].shape == ()
    assert float(single["s"]) == float(trend_test(y64)["s"][0, 0])
    ints = trend_test(np.arange(10))
    assert ints["slope"] == 1.0 and ints["s"] == 45


def test_argument_errors():
    with pytest.raises(ValueError):
        mann_kendall(np.float64(1.0))
    with pytest.raises(ValueError):
        mann_kendall(np.ones((2, 5)), min_years=1)
    with pytest.raises(TypeError):
        mann_kendall(np.ones(5), min_years=3.5)
    with pytest.raises(TypeError):
        mann_kendall(np.array(["a", "b", "c"]))
    with pytest.raises(ValueError):
        sens_slope(np.ones(5), x=[0, 1, 1, 2, 3])
    with pytest.raises(ValueError):
        sens_slope(np.ones(5), x=[0, 1, 2])
    with pytest.raises(ValueError):
        sens_slope(np.ones(5), alpha=1.5)
    with pytest.raises(ValueError):
        trend_class([1.0], [0.01], alpha=0.1, slight_alpha=0.05)


# ---------------------------------------------------------------------------------------
# exact p-value
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7])
def test_exact_p_equals_enumeration(n):
    perms = np.array(list(permutations(range(n))), dtype=float)
    s_all = mann_kendall(perms, min_years=2).s
    for s in np.unique(s_all):
        enum = np.mean(np.abs(s_all) >= abs(s))
        assert mk_exact_p(s, n) == pytest.approx(enum, abs=1e-13)


def test_exact_p_matches_scipy_kendalltau_exact():
    rng = np.random.default_rng(8)
    worst = 0.0
    for n in range(3, 31):
        Y = rng.normal(size=(20, n)) + 0.05 * np.arange(n)
        mk = mann_kendall(Y, exact=True)
        for i in range(20):
            ref = stats.kendalltau(np.arange(n), Y[i], method="exact")
            worst = max(worst, abs(mk.p[i] - ref.pvalue))
    assert worst <= 1e-10


def test_exact_p_only_without_ties():
    y = np.array([[1, 2, 3, 4, 5, 6], [1, 1, 2, 3, 4, 5]], dtype=float)
    approx = mann_kendall(y)
    exact = mann_kendall(y, exact=True)
    assert exact.p[0] == pytest.approx(2 / 720)  # only 2 of 6! orders reach |S| = 15
    assert exact.p[1] == approx.p[1]  # ties: normal approximation kept
    long = np.arange(70, dtype=float)
    assert mann_kendall(long, exact=True).p == mann_kendall(long).p


# ---------------------------------------------------------------------------------------
# autocorrelation-corrected variants
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("lag", [None, 1, 3])
def test_hamed_rao_and_yue_wang_match_pymannkendall(lag):
    rng = np.random.default_rng(12 if lag is None else lag)
    Y = np.round(rng.normal(size=(200, 15)) + 0.1 * np.arange(15), 1)
    e = rng.normal(size=(200, 15))
    for t in range(1, 15):  # AR(1) noise, phi = 0.5
        e[:, t] += 0.5 * e[:, t - 1]
    Y = np.concatenate([Y, np.round(e, 2)])
    hr = mann_kendall_hamed_rao(Y, lag=lag)
    yw = mann_kendall_yue_wang(Y, lag=lag)
    worst = 0.0
    nan_seen = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pymannkendall's sqrt of negatives
        for i in range(Y.shape[0]):
            for ours, ref in ((hr, pmk.hamed_rao_modification_test(Y[i], lag=lag)),
                              (yw, pmk.yue_wang_modification_test(Y[i], lag=lag))):
                assert ours.s[i] == ref.s
                for f in ("z", "p", "var_s"):
                    a, b = getattr(ours, f)[i], getattr(ref, f)
                    if f == "var_s" and not np.isfinite(a):
                        continue
                    if np.isnan(b):
                        assert np.isnan(a)
                        nan_seen += 1
                        continue
                    worst = max(worst, abs(a - b))
    assert worst <= TOL


# ---------------------------------------------------------------------------------------
# classes, net change
# ---------------------------------------------------------------------------------------
def test_trend_class_rule():
    slope = np.array([1.0, 1.0, 1.0, -1.0, -1.0, 0.0, np.nan, 2.0, -2.0])
    p = np.array([0.01, 0.2, 0.7, 0.049, 0.3, 0.001, 0.01, np.nan, 0.05])
    cls = trend_class(slope, p)
    assert cls.dtype == np.int8
    assert cls.tolist() == [2, 1, 0, -2, -1, 0, TREND_CLASS_NODATA, TREND_CLASS_NODATA, -1]
    assert set(TREND_CLASS_LABELS) == {-2, -1, 0, 1, 2}
    sig = np.array([False, True, False, False, False, False, False, False, False])
    assert trend_class(slope, p, significant=sig).tolist()[:2] == [1, 2]


def test_net_change():
    assert net_change(0.5, 15) == pytest.approx(7.0)
    np.testing.assert_allclose(net_change(np.array([1.0, -2.0]), 58), [57.0, -114.0])


# ---------------------------------------------------------------------------------------
# property tests: no crash on any input of the right shape
# ---------------------------------------------------------------------------------------
_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -0.0, 1.0, 1.0, 2.0, np.nan, 1e308, -1e308, 5e-324]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    y=hnp.arrays(dtype=np.float64,
                 shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=12),
                 elements=_floats),
    single=st.booleans(),
    min_years=st.integers(2, 6),
    alpha=st.floats(0.001, 0.999),
)
def test_trend_kernels_never_crash(y, single, min_years, alpha):
    if single:
        with np.errstate(over="ignore"):
            y = y.astype(np.float32)  # overflow -> inf, a legitimate missing value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tt = trend_test(y, min_years=min_years, alpha=alpha)
        mk = mann_kendall(y, min_years=min_years, exact=True)
    lead = y.shape[:-1]
    for k, v in tt.items():
        assert v.shape == lead, k
    p = tt["p"][np.isfinite(tt["p"])]
    assert np.all((p >= 0) & (p <= 1))
    pe = mk.p[np.isfinite(mk.p)]
    assert np.all((pe >= 0) & (pe <= 1))
    n = tt["n"]
    assert np.all(n == np.isfinite(y).sum(axis=-1))
    assert np.all(np.isnan(tt["s"][n < min_years]))
    good = np.isfinite(tt["slope"]) & np.isfinite(tt["slope_lo"]) & np.isfinite(tt["slope_hi"])
    assert np.all(tt["slope_lo"][good] <= tt["slope"][good])
    assert np.all(tt["slope"][good] <= tt["slope_hi"][good])
    cls = trend_class(tt["slope"], tt["p"], alpha=min(alpha, 0.5))
    assert set(np.unique(cls)) <= set(TREND_CLASS_LABELS) | {TREND_CLASS_NODATA}


@settings(max_examples=60, deadline=None)
@given(y=hnp.arrays(dtype=np.float64,
                    shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=15),
                    elements=_floats),
       lag=st.one_of(st.none(), st.integers(1, 5)))
def test_modified_mk_never_crash(y, lag):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for res in (mann_kendall_hamed_rao(y, lag=lag), mann_kendall_yue_wang(y, lag=lag)):
            assert res.p.shape == y.shape[:-1]
            p = res.p[np.isfinite(res.p)]
            assert np.all((p >= 0) & (p <= 1))
