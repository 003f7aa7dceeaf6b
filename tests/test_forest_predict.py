"""Packed-forest prediction equals scikit-learn's / quantile-forest's own predict."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from soilresp.models import BiomeModel
from soilresp.models.forest_predict import _key32, _round_down_f32, is_packable, pack_forest
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
    np.testing.assert_array_equal(got, rf.predict(Xq))  # same leaves, same summation order


def _edge_rows(rf, X, rng):
    """Rows whose values sit exactly on split thresholds, on their float32 neighbours and on
    the float64 thresholds' float32 roundings, zeros of both signs, huge and subnormal values
    (scikit-learn refuses infinities)."""
    thr = np.concatenate([e.tree_.threshold[e.tree_.children_left >= 0] for e in rf.estimators_])
    t32 = thr.astype(np.float32)
    vals = np.concatenate([thr, t32, np.nextafter(t32, np.float32(np.inf)), np.nextafter(t32, np.float32(-np.inf)),
                           [0.0, -0.0, 1e30, -1e30, 1e-45, -1e-45]])
    rows = rng.choice(vals, size=(4000, X.shape[1]))
    mix = rng.random(rows.shape) < 0.3  # some columns from the training rows instead
    return np.where(mix, X[rng.integers(0, len(X), 4000)], rows)


@pytest.mark.parametrize("leaf,p,seed", [(1, 3, 0), (5, 3, 1), (1, 1, 2), (2, 6, 3)])
def test_rf_equals_sklearn_at_thresholds(leaf, p, seed):
    """Ties (x == threshold), float32 rounding edges, zeros, extremes: the same leaves."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, p)) * 10.0 ** rng.integers(-3, 4, p)
    X[:150, 0] = np.round(X[:150, 0])  # repeated values: thresholds at .5
    X[150:200, 0] = rng.normal(size=50) * 1e-30  # splits near zero, thresholds below float32 precision
    y = X @ (rng.normal(size=p) / 10.0 ** rng.integers(-3, 4, p)) + rng.normal(0, 1, 300)
    rf = RandomForestRegressor(n_estimators=9, min_samples_leaf=leaf, random_state=seed).fit(X, y)
    Xq = _edge_rows(rf, X, rng)
    for Xin in (Xq, Xq.astype(np.float32)):
        np.testing.assert_array_equal(pack_forest(rf).predict(Xin), rf.predict(Xin))


def test_nan_rows_are_refused_and_biome_model_gives_nan():
    X, y, Xq = _data(4)
    rf = make_estimator("rf", 0).fit(X, y)
    Xq[[5, 77], [0, 2]] = np.nan
    with pytest.raises(ValueError, match="NaN in row 5"):
        pack_forest(rf).predict(Xq)
    got = BiomeModel(4, "rf", ["a", "b", "c"], rf).predict(Xq)
    assert np.isnan(got[[5, 77]]).all()
    ok = np.isfinite(Xq).all(axis=1)
    np.testing.assert_array_equal(got[ok], rf.predict(Xq[ok]))


def test_keys_order_as_floats():
    rng = np.random.default_rng(1)
    v = np.concatenate([rng.normal(size=500) * 10 ** rng.uniform(-40, 38, 500),
                        [0.0, np.inf, -np.inf, 1e-45, -1e-45, 3.4e38, -3.4e38]]).astype(np.float32)
    k = _key32(v)
    a, b = np.meshgrid(np.arange(v.size), np.arange(v.size))
    assert np.array_equal(v[a] > v[b], k[a] > k[b])
    assert _key32(np.float32(-0.0)) < _key32(np.float32(0.0))  # why -0.0 thresholds are stored as +0.0
    assert not np.signbit(_round_down_f32(np.array([-0.0, -1e-60]))[0])


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
