"""The one home of the cross-validation of the per-biome models (method step 4): fold schemes
and the nested loop (Roberts et al. 2017, Ecography 40:913, "Cross-validation strategies for
data with temporal, spatial, hierarchical, or phylogenetic structure"; Ploton et al. 2020,
Nat. Commun. 11:4540; Valavi et al. 2019, blockCV).

Schemes (:data:`SCHEMES`), all k-fold with ``cv_folds`` folds shuffled by the run seed:

* ``random``: :class:`~sklearn.model_selection.KFold` on rows (the paper's 10-fold CV);
* ``site``: grouped by ``site_id``;
* ``location``: grouped by *location groups* (:func:`location_groups`). Site names in SRDB
  are not locations: one forest can appear under several names, and two names can share
  coordinates. Sites joined by single linkage when their great-circle distance is at most
  ``distance_km`` (config default: one grid cell) share a group; equal coordinates always do;
* ``block``: grouped by square blocks of ``block_deg`` degrees (spatial block CV).

:func:`nested_oof` is the nested loop: in every outer training fold it re-runs the
predictor choice (Eq 5) and each candidate's fit (and, for the machine-learning families,
the grid search, grouped like the outer scheme), and predicts the test fold. So the CV
scores the whole procedure; no choice sees the rows it is scored on. The candidate scoring
itself (Eq 5, R2 / RMSE / bias) is in :mod:`soilresp.models.selection`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from soilresp.grid import KM_PER_DEG  # noqa: F401  (re-exported: the CV's default distance)

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
SCHEMES = ("random", "site", "location", "block")
#: column prefix of each scheme's skill in skill.parquet / selected.parquet
PREFIX = {"random": "cv_", "site": "site_cv_", "location": "loc_cv_", "block": "block_cv_"}


def location_groups(lat: np.ndarray, lon: np.ndarray, distance_km: float) -> np.ndarray:
    """Location group (int64, 0..k-1, numbered by first appearance) of each point.

    Points (degrees) closer than or equal to ``distance_km`` (great-circle, km) are linked,
    and groups are the connected components of that graph (single linkage), so a chain of
    near sites is one group. ``distance_km = 0`` groups equal coordinates only. A point with
    a NaN coordinate is a group of its own.
    """
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    if lat.shape != lon.shape or lat.ndim != 1:
        raise ValueError("lat and lon must be 1-D arrays of the same length")
    if not np.isfinite(distance_km) or distance_km < 0:
        raise ValueError(f"distance_km must be >= 0, got {distance_km!r}")
    n = lat.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ok = np.isfinite(lat) & np.isfinite(lon)
    # unique coordinates first: equal points are one node
    key = np.where(ok[:, None], np.c_[lat, ((lon + 180.0) % 360.0) - 180.0], np.nan)
    uniq, inv = np.unique(np.round(key[ok], 9), axis=0, return_inverse=True)
    inv = np.asarray(inv).ravel()
    m = uniq.shape[0]
    rows, cols = [np.arange(m)], [np.arange(m)]
    if distance_km > 0 and m > 1:
        from sklearn.neighbors import BallTree

        tree = BallTree(np.deg2rad(uniq), metric="haversine")
        nbrs = tree.query_radius(np.deg2rad(uniq), r=distance_km / EARTH_RADIUS_KM)
        for a, nb in enumerate(nbrs):
            rows.append(np.full(nb.size, a))
            cols.append(nb)
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(r.size, dtype=np.int8), (r, c)), shape=(m, m))
    _, comp = connected_components(graph, directed=False)
    raw = np.empty(n, dtype=np.int64)
    raw[ok] = comp[inv]
    raw[~ok] = m + np.arange((~ok).sum())  # NaN coordinates: each its own group
    # renumber by first appearance so the labels do not depend on coordinate order
    _, first, lab = np.unique(raw, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[np.asarray(lab).ravel()].astype(np.int64)


def block_groups(lat: np.ndarray, lon: np.ndarray, size_deg: float) -> np.ndarray:
    """Spatial block (int64, numbered by first appearance) of each point: squares of
    ``size_deg`` degrees from (-90, -180), half-open (south/west edge inside). NaN: own block."""
    lat = np.asarray(lat, dtype=float)
    lon = ((np.asarray(lon, dtype=float) + 180.0) % 360.0) - 180.0
    if not size_deg > 0:
        raise ValueError(f"block size must be > 0 degrees, got {size_deg!r}")
    ok = np.isfinite(lat) & np.isfinite(lon)
    i = np.floor(np.round((np.where(ok, lat, 0) + 90.0) / size_deg, 9)).astype(np.int64)
    j = np.floor(np.round((np.where(ok, lon, 0) + 180.0) / size_deg, 9)).astype(np.int64)
    key = i * 100000 + j
    key[~ok] = -1 - np.arange((~ok).sum())
    _, first, lab = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[np.asarray(lab).ravel()].astype(np.int64)


def scheme_groups(table: pd.DataFrame, *, location_km: float, block_deg: float) -> dict[str, np.ndarray | None]:
    """Group label per row of ``table`` for every scheme (None for ``random``).

    ``location`` and ``block`` need ``lat`` / ``lon`` columns (degrees, the site's); a table
    without them falls back to the site groups for both (said in the models' JSON).
    """
    site = pd.factorize(table["site_id"].astype(str))[0].astype(np.int64)
    out: dict[str, np.ndarray | None] = {"random": None, "site": site}
    if {"lat", "lon"} <= set(table.columns):
        lat, lon = table["lat"].to_numpy(float), table["lon"].to_numpy(float)
        out["location"] = location_groups(lat, lon, location_km)
        out["block"] = block_groups(lat, lon, block_deg)
    else:
        out["location"] = out["block"] = site
    return out


def splitter(scheme: str, folds: int, seed: int, n: int, groups: np.ndarray | None):
    """Outer CV splitter of ``scheme`` (None when fewer than 2 folds are possible)."""
    from sklearn.model_selection import GroupKFold, KFold

    if scheme == "random":
        k = min(folds, n)
        return KFold(k, shuffle=True, random_state=seed) if k >= 2 else None
    if scheme in SCHEMES:
        k = min(folds, len(np.unique(groups)))
        return GroupKFold(k, shuffle=True, random_state=seed) if k >= 2 else None
    raise ValueError(f"CV scheme must be one of {SCHEMES}, got {scheme!r}")


def outer_splits(scheme: str, folds: int, seed: int, groups: np.ndarray | None, n: int) -> list:
    """(train, test) row positions of every outer fold of ``scheme``."""
    cv = splitter(scheme, folds, seed, n, groups)
    if cv is None:
        return []
    return list(cv.split(np.zeros((n, 1)), None, None if scheme == "random" else groups))


def fold_of(splits: list, n: int) -> np.ndarray:
    """Test-fold number of each row (-1 where a row is in no test fold)."""
    f = np.full(n, -1, dtype=np.int64)
    for k, (_, te) in enumerate(splits):
        f[te] = k
    return f


def fit_predict(family: str, form: str | None, Xtr, ytr, gtr, Xte, *, seed: int, inner_folds: int,
                grid: dict | None = None, nls_kw: dict | None = None) -> np.ndarray:
    """Fit one candidate on a training fold and predict the test rows (NaN if the fit fails).

    ``gtr``: groups of the training rows for a grouped inner grid search (None: k-fold).
    """
    from soilresp.models import ml
    from soilresp.models.nonlinear import FitError, NonlinearRs
    from soilresp.models.warns import fitting

    with fitting(family):   # its warnings are counted under the family (soilresp.models.warns)
        if family == "nls":
            try:
                return NonlinearRs(form, **(nls_kw or {})).fit(Xtr, ytr).predict(Xte)
            except FitError:
                return np.full(len(Xte), np.nan)
        return ml.fit_search(family, Xtr, ytr, seed=seed, inner_folds=inner_folds, groups=gtr,
                             grid=grid).predict(Xte)


def oof_predict(family: str, form: str | None, X: np.ndarray, y: np.ndarray, groups: np.ndarray, *,
                scheme: str, folds: int, seed: int, inner_folds: int = 3, grid: dict | None = None,
                nls_kw: dict | None = None) -> np.ndarray:
    """Out-of-fold predictions (g C m-2 yr-1) of one candidate on fixed predictors under
    ``scheme``; the ML grid search runs inside each training fold, grouped like the outer
    scheme (random: k-fold). NaN where a fold's fit failed."""
    yhat = np.full(y.size, np.nan)
    for tr, te in outer_splits(scheme, folds, seed, groups, y.size):
        g = None if scheme == "random" else groups[tr]
        yhat[te] = fit_predict(family, form, X[tr], y[tr], g, X[te], seed=seed, inner_folds=inner_folds,
                               grid=grid, nls_kw=nls_kw)
    return yhat


def candidate_rows(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """Positions of the rows of ``df`` usable by a candidate on ``cols``: all present, Rs > 0."""
    ok = df[cols + ["rs"]].notna().all(axis=1).to_numpy() & (df["rs"].to_numpy(float) > 0)
    return np.flatnonzero(ok)


def nested_oof(df: pd.DataFrame, candidates: list[tuple[str, str]], *, choose: Callable,
               columns: Callable, scheme: str, groups: np.ndarray | None, folds: int, seed: int,
               inner_folds: int = 3, grids: dict | None = None, nls_kw: dict | None = None,
               on_fold: Callable | None = None) -> dict[tuple[str, str], np.ndarray]:
    """Nested CV: out-of-fold predictions of every candidate, with the predictor choice redone
    in every outer training fold.

    ``df``: one row per observation (``rs`` g C m-2 yr-1 and predictor columns), positions
    0..n-1; ``candidates``: (family, form) pairs; ``choose(train_df) -> predictors`` (Eq 5;
    a :class:`~soilresp.models.nonlinear.FitError` leaves the fold's rows NaN);
    ``columns(candidate, predictors) -> list | None`` the columns the candidate reads (None:
    not defined with those predictors, e.g. Eq 3 without a moisture variable). Returns, per
    candidate, predictions for every row of ``df`` (NaN where not predicted).
    """
    from soilresp.models.nonlinear import FitError

    n = len(df)
    out = {c: np.full(n, np.nan) for c in candidates}
    for tr, te in outer_splits(scheme, folds, seed, groups, n):
        train, test = df.iloc[tr], df.iloc[te]
        try:
            preds = choose(train)
        except FitError:
            continue
        for cand in candidates:
            cols = columns(cand, preds)
            if cols is None:
                continue
            rtr, rte = candidate_rows(train, cols), test[cols].notna().all(axis=1).to_numpy()
            fam, form = cand
            if rtr.size < 2 or not rte.any() or (fam != "nls" and rtr.size < 2 * inner_folds + 2):
                continue
            g = None if scheme == "random" else groups[tr][rtr]
            out[cand][te[rte]] = fit_predict(
                fam, form or None, train[cols].to_numpy(float)[rtr], train["rs"].to_numpy(float)[rtr], g,
                test[cols].to_numpy(float)[rte], seed=seed, inner_folds=inner_folds,
                grid=(grids or {}).get(fam), nls_kw=nls_kw)
        if on_fold:
            on_fold()
    return out
