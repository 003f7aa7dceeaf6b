"""soilresp.stats.bootstrap_trend_ci: coverage on AR(1) series, determinism, edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from soilresp.stats import bootstrap_trend_ci, default_block_length, sens_slope


def _ar1(rng, n, phi):
    e = np.empty(n)
    e[0] = rng.normal() / np.sqrt(1 - phi**2)
    for t in range(1, n):
        e[t] = phi * e[t - 1] + rng.normal()
    return e


def test_coverage_on_ar1_series():
    """95 % interval covers the true slope in 90-98 % of 1000 AR(1) series (phi=0.3, n=15)."""
    rng = np.random.default_rng(1968)
    n, phi, slope, trials = 15, 0.3, 0.1, 1000
    x = np.arange(2000, 2000 + n, dtype=float)
    hits = 0
    widths = []
    for k in range(trials):
        y = 50.0 + slope * (x - 2000) + _ar1(rng, n, phi)
        res = bootstrap_trend_ci(y, x, n_boot=1000, seed=k)
        hits += res["lo"] <= slope <= res["hi"]
        widths.append(res["hi"] - res["lo"])
    coverage = hits / trials
    assert 0.90 <= coverage <= 0.98, coverage
    assert np.median(widths) < 0.5  # informative, not just wide


def test_naive_bootstrap_would_fail_the_same_check():
    """Sanity check of the coverage test itself: an iid residual bootstrap with percentile
    intervals (no block structure, no studentization) under-covers on the same series."""
    rng = np.random.default_rng(7)
    n, phi, slope, trials = 15, 0.3, 0.1, 300
    x = np.arange(n, dtype=float)
    hits = 0
    for _ in range(trials):
        y = slope * x + _ar1(rng, n, phi)
        fit = sens_slope(y)
        e = y - (fit.intercept + fit.slope * x)
        b0 = sens_slope(e[rng.integers(0, n, size=(1000, n))]).slope
        lo, hi = fit.slope + np.quantile(b0, [0.025, 0.975])
        hits += lo <= slope <= hi
    assert hits / trials < 0.88


def test_deterministic_and_seed_dependent():
    rng = np.random.default_rng(3)
    y = 0.2 * np.arange(15) + _ar1(rng, 15, 0.3)
    a = bootstrap_trend_ci(y, seed=11)
    b = bootstrap_trend_ci(y, seed=11)
    c = bootstrap_trend_ci(y, seed=12)
    assert a == b
    assert (a["lo"], a["hi"]) != (c["lo"], c["hi"])
    assert a["slope"] == pytest.approx(float(sens_slope(y).slope))
    assert a["lo"] < a["slope"] < a["hi"]
    assert a["block_length"] == default_block_length(15) == 2
    assert 0 < a["p"] <= 1 and a["n"] == 15 and a["n_boot"] == 1000


def test_p_value_is_small_for_strong_trend_and_large_for_none():
    rng = np.random.default_rng(5)
    strong = bootstrap_trend_ci(1.0 * np.arange(15) + rng.normal(size=15), seed=1)
    none = bootstrap_trend_ci(rng.normal(size=15), seed=1)
    assert strong["p"] < 0.01
    assert none["p"] > 0.05


def test_edge_cases():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        const = bootstrap_trend_ci(np.full(15, 3.0))
        line = bootstrap_trend_ci(2.0 + 0.5 * np.arange(15))
        short = bootstrap_trend_ci([1.0, 2.0, np.nan, 3.0])
        gaps = bootstrap_trend_ci(np.r_[np.arange(10.0), np.nan, np.arange(10.0, 14.0)],
                                  block_length=3)
    assert const["slope"] == 0 and const["lo"] == const["hi"] == 0 and const["p"] == 1
    assert line["lo"] == pytest.approx(0.5) and line["hi"] == pytest.approx(0.5)
    assert np.isnan(short["slope"]) and short["n"] == 3
    assert gaps["n"] == 14 and gaps["block_length"] == 3 and gaps["lo"] <= 1 <= gaps["hi"]
    with pytest.raises(ValueError):
        bootstrap_trend_ci(np.ones((2, 15)))
    with pytest.raises(ValueError):
        bootstrap_trend_ci(np.arange(6.0), block_length=6)
    with pytest.raises(ValueError):
        bootstrap_trend_ci(np.arange(6.0), n_boot=5)
    with pytest.raises(TypeError):
        bootstrap_trend_ci(np.arange(6.0), seed=1.5)


@settings(max_examples=40, deadline=None)
@given(y=hnp.arrays(np.float64, st.integers(0, 25),
                    elements=st.one_of(st.floats(-1e6, 1e6), st.just(np.nan),
                                       st.just(np.inf), st.just(0.0))),
       seed=st.integers(0, 2**32), n_boot=st.integers(10, 60))
def test_bootstrap_never_crashes(y, seed, n_boot):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = bootstrap_trend_ci(y, n_boot=n_boot, seed=seed)
    assert res["n"] == int(np.isfinite(y).sum())
    if np.isfinite(res["lo"]):
        assert res["lo"] <= res["hi"] and 0 < res["p"] <= 1
