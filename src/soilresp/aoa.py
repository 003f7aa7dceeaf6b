"""Area of applicability (AOA) of a per-biome model (Meyer & Pebesma 2021, Methods Ecol. Evol.
12:1620, "Predicting into unknown space? Estimating the area of applicability of spatial
prediction models"; R package CAST, ``trainDI`` / ``aoa``).

For a model on predictors x_1..x_p (training rows i = 1..n):

* each predictor is standardised by the training mean and SD and multiplied by its
  importance weight w_j (permutation importance of the fitted model, negative set to 0; all
  zero -> equal weights);
* the **dissimilarity index** of a point is DI = d_min / d_bar: d_min the Euclidean distance
  (weighted, standardised space) to the nearest training row, d_bar the mean distance
  between all pairs of training rows;
* the **threshold** comes from the CV: the training DI of row i uses the nearest training
  row *outside i's CV test fold*; the threshold is the upper whisker of their boxplot (the
  largest training DI <= Q3 + 1.5 IQR, as CAST's ``aoa``);
* the AOA is DI <= threshold.

:func:`train_aoa` builds the JSON-able description stored in the model file (``aoa`` key);
:func:`di_block` is the pure per-pixel kernel (nearest neighbour by
:class:`scipy.spatial.cKDTree` on the training rows; a block whose drivers are the same in
every year is computed for one year and broadcast); :func:`dissimilarity` wraps it with
``xarray.apply_ufunc(dask="parallelized")`` for the product stage.
"""

from __future__ import annotations

import numpy as np
import xarray as xr


def importance_weights(estimator, X: np.ndarray, y: np.ndarray, *, seed: int = 0, n_repeats: int = 5) -> np.ndarray:
    """Permutation importance (:func:`sklearn.inspection.permutation_importance`, R2 drop) of
    each column of ``X`` for a fitted estimator, negatives set to 0, scaled to max 1; equal
    weights when every importance is 0, or when fewer than 3 rows have finite inputs and a
    finite prediction (a biome-mean model is fitted on rows whose predictors may be missing)."""
    from sklearn.inspection import permutation_importance

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
    if ok.sum() >= 3:
        ok[ok] = np.isfinite(np.asarray(estimator.predict(X[ok]), dtype=float))
    if ok.sum() < 3:
        return np.ones(X.shape[1])
    imp = permutation_importance(estimator, X[ok], y[ok], n_repeats=n_repeats, random_state=seed,
                                 scoring="r2").importances_mean
    w = np.clip(np.nan_to_num(np.asarray(imp, dtype=float)), 0, None)
    return w / w.max() if w.max() > 0 else np.ones(X.shape[1])


def _space(X: np.ndarray, mean, sd, weights) -> np.ndarray:
    return (np.asarray(X, dtype=float) - mean) / sd * weights


def upper_whisker(x: np.ndarray) -> float:
    """Largest value <= Q3 + 1.5 IQR (R's ``boxplot.stats()$stats[5]``, quantile type 7;
    R uses Tukey's hinges, which equal the type-7 quartiles up to interpolation)."""
    x = np.sort(np.asarray(x, dtype=float)[np.isfinite(x)])
    if x.size == 0:
        return float("nan")
    q1, q3 = np.percentile(x, [25, 75])
    return float(x[x <= q3 + 1.5 * (q3 - q1)].max())


def train_aoa(X: np.ndarray, weights: np.ndarray, folds: np.ndarray) -> dict:
    """AOA description of a model trained on ``X`` (n, p) with importance ``weights`` (p) and
    the CV test fold of each row (``folds``, -1: in none; rows in no fold use every other row).

    Returns a JSON-able dict: ``mean``, ``sd``, ``weights``, ``d_bar``, ``threshold``,
    ``train`` (the rows in the weighted standardised space) and ``train_di`` summary.
    """
    from scipy.spatial.distance import pdist

    X = np.asarray(X, dtype=float)
    keep = np.isfinite(X).all(axis=1)
    if 2 <= keep.sum() < X.shape[0]:  # rows with a missing predictor (biome-mean models) carry no position
        X, folds = X[keep], np.asarray(folds)[keep]
    mean = X.mean(axis=0)
    sd = X.std(axis=0, ddof=1) if X.shape[0] > 1 else np.ones(X.shape[1])
    sd = np.where(sd > 0, sd, 1.0)
    w = np.asarray(weights, dtype=float)
    Z = _space(X, mean, sd, w)
    d = pdist(Z)
    d_bar = float(d.mean()) if d.size else float("nan")
    from scipy.spatial.distance import squareform

    D = squareform(d)
    np.fill_diagonal(D, np.inf)
    folds = np.asarray(folds)
    same = (folds[:, None] == folds[None, :]) & (folds[:, None] >= 0)
    D[same] = np.inf
    train_di = D.min(axis=1) / d_bar if d_bar > 0 else np.full(X.shape[0], np.nan)
    train_di[~np.isfinite(train_di)] = np.nan
    thr = upper_whisker(train_di)
    return {"method": "Meyer & Pebesma 2021 (CAST aoa)", "mean": mean.tolist(), "sd": sd.tolist(),
            "weights": w.tolist(), "d_bar": d_bar, "threshold": thr, "train": Z.tolist(),
            "train_di_median": float(np.nanmedian(train_di)) if np.isfinite(train_di).any() else None}


def di_points(X: np.ndarray, aoa: dict) -> np.ndarray:
    """DI of each row of ``X`` (n, p, the model's predictors in its units); NaN where any is
    missing."""
    from scipy.spatial import cKDTree

    X = np.asarray(X, dtype=float)
    out = np.full(X.shape[0], np.nan)
    ok = np.isfinite(X).all(axis=1)
    if ok.any():
        tree = aoa.get("_tree")
        if tree is None:
            tree = cKDTree(np.asarray(aoa["train"], dtype=float))
        Z = _space(X[ok], np.asarray(aoa["mean"]), np.asarray(aoa["sd"]), np.asarray(aoa["weights"]))
        dist, _ = tree.query(Z, k=1)
        out[ok] = np.asarray(dist).reshape(-1) / aoa["d_bar"]
    return out


def di_block(biome, *arrays, aoas: dict, names: list[str]) -> np.ndarray:
    """Pure kernel: DI of every pixel of one block with its biome's AOA (NaN: no model or a
    missing predictor). ``aoas``: biome code -> (predictor names, AOA dict)."""
    if arrays and all(a.ndim == 3 and a.shape[0] > 1 for a in arrays) and all(
            np.array_equal(a, np.broadcast_to(a[:1], a.shape), equal_nan=True) for a in arrays):
        # drivers constant over the block's years (a static climatology): one year, broadcast
        one = di_block(biome, *(a[:1] for a in arrays), aoas=aoas, names=names)
        return np.broadcast_to(one, np.broadcast_shapes(biome.shape, *(a.shape for a in arrays))).copy()
    drivers = dict(zip(names, arrays))
    shape = np.broadcast_shapes(biome.shape, *(a.shape for a in arrays))
    out = np.full(shape, np.nan, dtype=np.float32)
    b = np.broadcast_to(biome, shape)
    for code, (preds, a) in aoas.items():
        sel = b == code
        if not sel.any():
            continue
        X = np.column_stack([np.broadcast_to(drivers[v], shape)[sel] for v in preds])
        out[sel] = di_points(X, a)
    return out


def model_aoas(models) -> dict:
    """biome -> (predictors, AOA dict with a built KDTree) for the models that carry one."""
    from scipy.spatial import cKDTree

    out = {}
    for code, m in models.items():
        a = m.meta.get("aoa")
        if a and a.get("train") and np.isfinite(a.get("d_bar") or np.nan) and a["d_bar"] > 0:
            a = dict(a)
            a["_tree"] = cKDTree(np.asarray(a["train"], dtype=float))
            out[code] = (list(a.get("predictors", m.predictors)), a)
    return out


def dissimilarity(cube: xr.Dataset, biome: xr.DataArray, models) -> tuple[xr.DataArray, xr.DataArray]:
    """``di`` (year, lat, lon; float32) and ``aoa`` (int8: 1 inside, 0 outside, -1 no DI) of the
    product, chunk by chunk (``apply_ufunc(dask="parallelized")`` over :func:`di_block`)."""
    aoas = model_aoas(models)
    names = sorted({v for p, _ in aoas.values() for v in p}) or sorted(
        {v for m in models.values() for v in m.predictors})
    di = xr.apply_ufunc(di_block, biome, *(cube[v] for v in names), kwargs={"aoas": aoas, "names": names},
                        dask="parallelized", output_dtypes=[np.float32]).transpose("year", "lat", "lon")
    di.name = "di"
    di.attrs = {"units": "1", "long_name": "dissimilarity index to the biome model's training data",
                "references": "Meyer & Pebesma 2021, Methods Ecol. Evol. 12:1620"}
    lut = np.full(256, np.nan, dtype=np.float32)
    for code, (_, a) in aoas.items():
        lut[int(code) % 256] = a["threshold"]
    thr = xr.apply_ufunc(lambda b: lut[np.asarray(b).astype(np.int64) % 256], biome, dask="parallelized",
                         output_dtypes=[np.float32])
    flag = xr.where(di.isnull() | thr.isnull(), -1, (di <= thr).astype(np.int8)).astype(np.int8)
    flag.name = "aoa"
    flag.attrs = {"long_name": "inside the area of applicability of the biome model",
                  "flag_values": np.array([-1, 0, 1], dtype=np.int8),
                  "flag_meanings": "no_di outside inside",
                  "comment": "inside: DI <= the model's CV threshold (Meyer & Pebesma 2021)"}
    return di, flag
