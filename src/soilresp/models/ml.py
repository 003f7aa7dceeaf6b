"""Machine-learning model families (Huang et al. 2020, Methods: RF, SVR, ANN) and their grids.

Each family is a scikit-learn estimator built by :func:`make_estimator` and tuned by
:class:`~sklearn.model_selection.GridSearchCV` over the small grid in :data:`PARAM_GRIDS`
(:func:`make_search`). Inputs are the predictors Eq 5 chose for the biome (T, M, P, in that
order, in the drivers' units); the target is Rs in g C m-2 yr-1.

========  ===================================================================  ==========================
family    estimator                                                            grid (GridSearchCV)
========  ===================================================================  ==========================
``rf``    ``RandomForestRegressor(n_estimators=50)``                           ``min_samples_leaf`` 1, 5
``svr``   y-standardised ``StandardScaler -> SVR(rbf, gamma="scale",           ``C`` 1, 10, 100
          epsilon=0.1)``
``ann``   y-standardised ``StandardScaler -> MLPRegressor(16 hidden units,     ``alpha`` 0.1, 1
          lbfgs, max_iter=300)``
``qrf``   ``RandomForestQuantileRegressor(n_estimators=50, max_samples=0.5)``  ``min_samples_leaf`` 5, 10
          (quantile-forest; point prediction = conditional mean; quantiles
          per row from all training values in the leaves)
========  ===================================================================  ==========================

"y-standardised" = :class:`~sklearn.compose.TransformedTargetRegressor` with a
``StandardScaler`` on Rs, so ``C``, ``epsilon`` and ``alpha`` mean the same in every biome.
Every estimator has ``random_state = seed`` and ``n_jobs = 1`` (the cores are used by the
callers); ``sklearn.base.clone`` of a saved model gives the unfitted estimator with the same
hyper-parameters and seed. The grids are small on purpose: nested CV refits them
``(2 x folds + 1) x (grid size x inner folds + 1)`` times per biome.
"""

from __future__ import annotations


import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

ML_FAMILIES = ("rf", "svr", "ann", "qrf")

# parameter names are those of the estimator returned by make_estimator
PARAM_GRIDS: dict[str, dict[str, list]] = {
    "rf": {"min_samples_leaf": [1, 5]},
    "qrf": {"min_samples_leaf": [5, 10]},  # leaves hold a distribution, not one value
    "svr": {"regressor__svr__C": [1.0, 10.0, 100.0]},
    "ann": {"regressor__mlp__alpha": [0.1, 1.0]},
}


def make_estimator(family: str, seed: int):
    """Unfitted estimator of ``family`` (see module table), seeded and single-threaded."""
    if family == "rf":
        return RandomForestRegressor(n_estimators=50, random_state=seed, n_jobs=1)
    if family == "qrf":
        from soilresp.extras import require

        RandomForestQuantileRegressor = require("quantile_forest", "ml",
                                                "the qrf family").RandomForestQuantileRegressor

        # half-samples and >= 5 per leaf: intervals near nominal (tests/test_models_ml.py)
        return RandomForestQuantileRegressor(n_estimators=50, default_quantiles="mean", max_samples_leaf=None,
                                             max_samples=0.5, random_state=seed, n_jobs=1)
    if family == "svr":
        pipe = Pipeline([("scale", StandardScaler()), ("svr", SVR(kernel="rbf", gamma="scale", epsilon=0.1))])
        return TransformedTargetRegressor(regressor=pipe, transformer=StandardScaler())
    if family == "ann":
        pipe = Pipeline([("scale", StandardScaler()),
                         ("mlp", MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=300,
                                                      random_state=seed))])
        return TransformedTargetRegressor(regressor=pipe, transformer=StandardScaler())
    raise ValueError(f"unknown machine-learning family {family!r}; expected one of {ML_FAMILIES}")


def inner_splitter(n_folds: int, seed: int, groups: np.ndarray | None, n: int):
    """The grid search's CV: k-fold, or site-grouped k-fold when ``groups`` is given."""
    if groups is not None:
        k = min(n_folds, len(np.unique(groups)))
        if k >= 2:
            return GroupKFold(k, shuffle=True, random_state=seed)
    return KFold(max(2, min(n_folds, n)), shuffle=True, random_state=seed)


def make_search(family: str, seed: int, cv, grid: dict | None = None) -> GridSearchCV:
    """GridSearchCV of ``family`` over its grid, scored by mean squared error, refit on all rows."""
    return GridSearchCV(make_estimator(family, seed), grid if grid is not None else PARAM_GRIDS[family],
                        cv=cv, scoring="neg_mean_squared_error", n_jobs=1, refit=True, error_score="raise")


def fit_search(family: str, X: np.ndarray, y: np.ndarray, *, seed: int, inner_folds: int,
               groups: np.ndarray | None = None, grid: dict | None = None) -> GridSearchCV:
    """Tune ``family`` on (X, y) by grid search (grouped inner CV when ``groups`` is given)."""
    from threadpoolctl import threadpool_limits

    search = make_search(family, seed, inner_splitter(inner_folds, seed, groups, y.size), grid)
    with threadpool_limits(1):  # tiny matrices: BLAS threads only contend
        # lbfgs stopping at max_iter is expected on some grid points; CV judges the result and
        # the models stage counts the ConvergenceWarnings per biome and family (models.warns)
        search.fit(X, y, groups=groups)
    return search


def tuned_params(search: GridSearchCV) -> dict:
    """The chosen grid point with short names (``C``, ``alpha``, ...)."""
    return {k.rsplit("__", 1)[-1]: v for k, v in search.best_params_.items()}
