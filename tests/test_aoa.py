"""Area of applicability (Meyer & Pebesma 2021) against a hand-computed case."""

import numpy as np
import pytest
import xarray as xr

from soilresp.aoa import di_points, dissimilarity, train_aoa, upper_whisker


def test_aoa_hand_computed():
    # one informative predictor x = 0, 1, 2, 4 and one with weight 0 (ignored)
    X = np.array([[0.0, 5.0], [1.0, -3.0], [2.0, 8.0], [4.0, 0.0]])
    a = train_aoa(X, np.array([1.0, 0.0]), folds=np.array([0, 0, 1, 1]))
    sd = np.std([0, 1, 2, 4], ddof=1)
    # mean pairwise distance: (1+2+4+1+3+2)/6 = 13/6 in x units
    assert a["d_bar"] == pytest.approx(13 / 6 / sd)
    # CV DI (nearest row outside the own fold): 2, 1, 1, 3 -> / (13/6)
    # sorted 6/13, 6/13, 12/13, 18/13: Q3 + 1.5 IQR = 24.75/13, so the threshold is 18/13
    assert a["threshold"] == pytest.approx(18 / 13)
    di = di_points(np.array([[7.0, 100.0], [7.5, 0.0], [1.5, 0.0], [np.nan, 0.0]]), a)
    np.testing.assert_allclose(di[:3], [18 / 13, 21 / 13, 3 / 13])
    assert np.isnan(di[3])
    assert di[0] <= a["threshold"] < di[1]


def test_upper_whisker_drops_outliers():
    x = np.r_[np.arange(1.0, 11.0), 100.0]
    assert upper_whisker(x) == 10.0


def test_dissimilarity_grid_kernel_matches_points():
    from soilresp.models import BiomeModel, NonlinearRs

    X = np.array([[0.0], [1.0], [2.0], [4.0]])
    m = BiomeModel(1, "nls", ["tas"], NonlinearRs("eq1").fit(X, 100 * np.exp(0.1 * X[:, 0])),
                   {"aoa": {"predictors": ["tas"], **train_aoa(X, np.ones(1), np.array([0, 0, 1, 1]))}})
    tas = xr.DataArray(np.array([[[7.0, 7.5], [1.5, np.nan]]]), dims=("year", "lat", "lon"),
                       coords={"year": [2000], "lat": [0.0, 1.0], "lon": [0.0, 1.0]}).chunk({"lat": 1})
    biome = xr.DataArray(np.array([[1, 1], [1, 0]], dtype=np.int8), dims=("lat", "lon"),
                         coords={"lat": [0.0, 1.0], "lon": [0.0, 1.0]}).chunk({"lat": 1})
    di, flag = dissimilarity(xr.Dataset({"tas": tas}), biome, {1: m})
    np.testing.assert_allclose(di.values[0].ravel()[:3], [18 / 13, 21 / 13, 3 / 13], rtol=1e-6)
    assert flag.values[0].tolist() == [[1, 0], [1, -1]]


def test_static_years_computed_once_same_result():
    from soilresp.aoa import di_block

    X = np.array([[0.0], [1.0], [2.0], [4.0]])
    a = {"predictors": ["tas"], **train_aoa(X, np.ones(1), np.array([0, 0, 1, 1]))}
    tas = np.broadcast_to(np.array([[7.0, 1.5], [np.nan, 3.0]]), (3, 2, 2)).copy()
    b = np.array([[1, 1], [1, 2]])
    same = di_block(b, tas, aoas={1: (["tas"], a)}, names=["tas"])
    tas[2, 0, 0] = 7.5                                       # one year differs: per-year path
    diff = di_block(b, tas, aoas={1: (["tas"], a)}, names=["tas"])
    np.testing.assert_allclose(same[0], [[18 / 13, 3 / 13], [np.nan, np.nan]], rtol=1e-6)
    assert np.allclose(same[1], same[0], equal_nan=True) and np.allclose(same[2], same[0], equal_nan=True)
    np.testing.assert_allclose(diff[:2], same[:2], rtol=1e-6, equal_nan=True)
    assert diff[2, 0, 0] == pytest.approx(21 / 13, rel=1e-6)


def test_product_outside_aoa_modes_and_totals():
    from soilresp.models import BiomeModel, NonlinearRs
    from soilresp.product import add_aoa, predict_dataset, regional_areas, regional_totals, totals_table

    X = np.array([[0.0], [1.0], [2.0], [4.0]])
    est = NonlinearRs("eq1").fit(X, 100 * np.exp(0.1 * X[:, 0]))
    m = BiomeModel(1, "nls", ["tas"], est,
                   {"aoa": {"predictors": ["tas"], **train_aoa(X, np.ones(1), np.array([0, 0, 1, 1]))},
                    "biome_mean_rs": 111.0})
    c = {"lat": [0.0, 1.0], "lon": [0.0, 1.0]}
    tas = xr.DataArray(np.array([[[7.0, 7.5], [1.5, 3.0]]]), dims=("year", "lat", "lon"),
                       coords={"year": [2000], **c})
    biome = xr.DataArray(np.ones((2, 2), dtype=np.int8), dims=("lat", "lon"), coords=c)
    cube = xr.Dataset({"tas": tas})
    keep = add_aoa(predict_dataset(cube, biome, {1: m}), cube, biome, {1: m}, "keep").compute()
    mask = add_aoa(predict_dataset(cube, biome, {1: m}), cube, biome, {1: m}, "mask").compute()
    fb = add_aoa(predict_dataset(cube, biome, {1: m}), cube, biome, {1: m}, "fallback").compute()
    out = (keep["aoa"] == 0).values
    assert out.sum() == 1 and out[0, 0, 1]                   # 7.5 is beyond the threshold
    assert np.isnan(mask["rs"].values[out]).all() and np.isfinite(mask["rs"].values[~out]).all()
    assert fb["rs"].values[out] == pytest.approx(111.0)
    np.testing.assert_allclose(fb["rs"].values[~out], keep["rs"].values[~out])
    area = xr.DataArray(np.full((2, 2), 1e6), dims=("lat", "lon"), coords=c)
    region = xr.DataArray(np.full((2, 2), 2, dtype=np.int8), dims=("lat", "lon"), coords=c)
    rs, rin = keep["rs"], keep["rs"].where(keep["aoa"] == 1)
    tab = totals_table(regional_totals(rs, region, area), regional_areas(rs, region, area),
                       regional_totals(rin, region, area), regional_areas(rin, region, area))
    g = tab[tab.region == "global"].iloc[0]
    assert g.share_area_outside_aoa == pytest.approx(0.25)
    assert g.share_flux_outside_aoa == pytest.approx(float(rs.values[out].sum() / rs.values.sum()))


def test_importance_weights_skip_rows_without_finite_inputs():
    """A biome-mean model is fitted on rows whose predictor may be missing: the importance is
    computed on the finite rows (it failed with 'Input contains NaN' in the models stage)."""
    from soilresp.aoa import importance_weights
    from soilresp.models.nonlinear import constant_model

    rng = np.random.default_rng(0)
    T = rng.uniform(0, 20, 30)
    T[:5] = np.nan
    y = rng.normal(500, 50, 30)
    w = importance_weights(constant_model(y, T), T[:, None], y, seed=1)
    assert w.shape == (1,) and np.isfinite(w).all()
    assert importance_weights(constant_model(y, T), np.full((30, 1), np.nan), y).tolist() == [1.0]


def test_train_aoa_ignores_rows_with_a_missing_predictor():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 2))
    Xn = X.copy()
    Xn[:4, 1] = np.nan
    folds = np.arange(40) % 5
    a, b = train_aoa(Xn, np.ones(2), folds), train_aoa(X[4:], np.ones(2), folds[4:])
    assert np.isfinite(a["threshold"]) and a["threshold"] == pytest.approx(b["threshold"])
