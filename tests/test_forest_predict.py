"""Packed-forest prediction equals scikit-learn's / quantile-forest's own predict."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from soilresp.models import BiomeModel
from soilresp.models.forest_predict import _round_down_f32, is_packable, pack_forest
from soilresp.models.ml import make_estimator


def _data(seed, n=200, p=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * [5.0, 0.1, 800.0][:p] + [12.0, 0.3, 1500.0][:p]
    y = 50 + 3 * X[:, 0] + 400 * X[:, -1] ** 2 / X[:, -1].std() ** 2 + rng.normal(0, 5, n)
    Xq = rng.normal(size=(3001, p)) * [6.0, 0.12, 900.0][:p] + [12.0, 0.3, 1500.0][:p]
    Xq[:40] = X[:40]  # training rows: values exactly at thresholds' neighbours
    return X, y, Xq


@pytest.mark.parametrize("depth,leaf,p", [(None, 1, 3), (3, 1, 3), (8, 2, 2), (None, 5, 1)])
def test_rf_equals_sklearn(depth, leaf, p):
    X, y, Xq = _data(depth or 0, p=p)
    rf = RandomForestRegressor(n_estimators=13, max_depth=depth, min_samples_leaf=leaf, random_state=3).fit(X, y)
    assert is_packable(rf)
    got = pack_forest(rf).predict(Xq)
    np.testing.assert_allclose(got, rf.predict(Xq), rtol=1e-12, atol=0)


def test_threshold_rounding_is_exact():
    """x <= t (float64) and x <= round_down_f32(t) agree for float32 x next to t."""
    rng = np.random.default_rng(0)
    t = rng.normal(size=2000) * 10 ** rng.uniform(-3, 3, 2000)
    t32 = _round_down_f32(t)
    for x in (t.astype(np.float32), np.nextafter(t.astype(np.float32), np.float32(np.inf)),
              np.nextafter(t.astype(np.float32), np.float32(-np.inf))):
        assert np.array_equal(x.astype(np.float64) <= t, x <= t32)


def test_qrf_mean_equals_quantile_forest():
    X, y, Xq = _data(5)
    q = make_estimator("qrf", 7).set_params(min_samples_leaf=5).fit(X, y)
    assert is_packable(q)
    np.testing.assert_allclose(pack_forest(q).predict(Xq), q.predict(Xq), rtol=1e-12, atol=0)


def test_biome_model_uses_pack_and_keeps_nan_rows():
    X, y, Xq = _data(9)
    rf = make_estimator("rf", 1).fit(X, y)
    m = BiomeModel(4, "rf", ["a", "b", "c"], rf)
    Xq[3, 1] = np.nan
    got = m.predict(Xq)
    assert np.isnan(got[3]) and m.__dict__["_packed"][1] is not None
    ok = np.isfinite(Xq).all(axis=1)
    np.testing.assert_allclose(got[ok], rf.predict(Xq[ok]), rtol=1e-12)
    m.estimator = make_estimator("rf", 2).fit(X, y)  # a new estimator is packed anew
    np.testing.assert_allclose(m.predict(Xq[ok]), m.estimator.predict(Xq[ok]), rtol=1e-12)


def test_not_packable_families_fall_back():
    X, y, _ = _data(1)
    for fam in ("svr", "ann"):
        assert not is_packable(make_estimator(fam, 0).fit(X, y))
    q = make_estimator("qrf", 0).set_params(default_quantiles=0.5).fit(X, y)
    assert not is_packable(q)  # its point prediction is the median, not the mean
