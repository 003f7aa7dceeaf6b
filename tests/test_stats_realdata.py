"""soilresp.stats on real series: University of Delaware v5.01 monthly air temperature and
precipitation at the 696 half-degree cells holding SRDB sites (Lei et al. 2021 extraction).

Annual means (temperature) / totals (precipitation) over 2000-2014 (the paper's period) and
1960-2017. Reads ``../shared/data`` beside the project; skips cleanly when it is absent.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pingouin as pg
import pymannkendall as pmk
import pytest
from scipy import stats

from soilresp.stats import partial_corr, trend_test

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "srdb_site_covariates"
TMP = DATA / "lei2020_udel_v501_tmp_monthly_at_srdb_cells.csv"
PRE = DATA / "lei2020_udel_v501_pre_monthly_at_srdb_cells.csv"

pytestmark = pytest.mark.realdata


def _annual(path: Path, how: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cells, years) annual mean/sum of the monthly columns ``YYYY_M``; keys; years."""
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    df = pd.read_csv(path)
    key = df.columns[0]
    months = [c for c in df.columns[1:]]
    years = np.array(sorted({int(c.split("_")[0]) for c in months}))
    vals = df[months].to_numpy(dtype=np.float64)
    # columns are in calendar order; check before reshaping
    expect = [f"{y}_{m}" for y in years for m in range(1, 13)]
    assert months == expect
    cube = vals.reshape(len(df), len(years), 12)
    annual = cube.mean(axis=2) if how == "mean" else cube.sum(axis=2)
    return annual, df[key].to_numpy(), years


@pytest.fixture(scope="module")
def udel_tmp():
    return _annual(TMP, "mean")


@pytest.mark.parametrize("first,last", [(2000, 2014), (1960, 2017)])
def test_udel_temperature_trends_match_pymannkendall(udel_tmp, first, last):
    annual, keys, years = udel_tmp
    assert annual.shape[0] == 696 and len(set(keys)) == 696
    sel = (years >= first) & (years <= last)
    Y = annual[:, sel]
    x = years[sel].astype(float)
    tt = trend_test(Y, x)
    worst = {"s": 0.0, "p": 0.0, "slope": 0.0, "lo": 0.0, "hi": 0.0}
    for i in range(Y.shape[0]):
        ref = pmk.original_test(Y[i])
        worst["s"] = max(worst["s"], abs(tt["s"][i] - ref.s))
        worst["p"] = max(worst["p"], abs(tt["p"][i] - ref.p))
        worst["slope"] = max(worst["slope"], abs(tt["slope"][i] - ref.slope))
        if i % 4 == 0:
            th = stats.theilslopes(Y[i], x)
            worst["lo"] = max(worst["lo"], abs(tt["slope_lo"][i] - th.low_slope))
            worst["hi"] = max(worst["hi"], abs(tt["slope_hi"][i] - th.high_slope))
    assert worst["s"] == 0
    assert max(worst.values()) <= 1e-9, worst
    # warming dominates at these cells over 1960-2017
    if first == 1960:
        assert np.mean(tt["slope"] > 0) > 0.8


def test_udel_partial_correlation_matches_pingouin(udel_tmp):
    """Temperature vs precipitation (and previous-year precipitation), detrended, 2000-2014."""
    annual_t, keys_t, years = udel_tmp
    annual_p, keys_p, years_p = _annual(PRE, "sum")
    assert np.array_equal(keys_t, keys_p) and np.array_equal(years, years_p)
    sel = (years >= 2000) & (years <= 2014)
    y = annual_t[:, sel]
    idx = np.nonzero(sel)[0]
    X = np.stack([annual_p[:, idx], annual_p[:, idx - 1]], axis=1)
    res = partial_corr(y, X)
    assert res.df == 15 - 2 - 1 - 1
    worst = 0.0
    t = np.arange(15, dtype=float)
    for i in range(0, y.shape[0], 3):
        df = pd.DataFrame({"y": y[i], "p0": X[i, 0], "p1": X[i, 1], "time": t})
        for j, (a, b) in enumerate((("p0", "p1"), ("p1", "p0"))):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = pg.partial_corr(df, x=a, y="y", covar=[b, "time"])
            if df[["y", "p0", "p1"]].nunique().min() < 2:
                assert np.isnan(res.r[i, j])
                continue
            worst = max(worst, abs(res.r[i, j] - ref["r"].iloc[0]),
                        abs(res.p[i, j] - ref["p_val"].iloc[0]))
    assert worst <= 1e-8
