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
