"""Stability of the global total when field data are left out (issue: a product whose total
jumps when a few hundred records are added is not a result).

Two designs, both on **location groups** (:func:`soilresp.models.cv.location_groups`, the
unit of the location CV, so co-located sites leave together):

* ``drop``: ``n_drops`` random drops of ``frac`` (10 %) of the location groups;
* ``jackknife``: the groups split at random into ``k`` (10) blocks, each left out once
  (grouped delete-a-group jackknife; standard error
  sqrt((k - 1) / k * sum (T_i - mean T)^2), Efron & Tibshirani 1993, ch. 11).

After each drop every biome's **deployed model** is refitted on the remaining rows with
its family, form, predictors and hyper-parameters fixed (Eq 1-4 by least squares with the
same bounds; the biome mean as the mean; a pooled fallback on all remaining rows of biomes
1-10, and a scaled one's level then on the biome's remaining rows; ML families by ``sklearn.base.clone``), and the mean annual global total (Pg C yr-1)
is recomputed on the product grid. This measures how much the fitted responses move, not
the choice among candidates (the full nested selection would cost the models stage again
per drop).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from soilresp.models.base import BiomeModel


def _rows(table: pd.DataFrame, m: BiomeModel, biomes) -> pd.DataFrame:
    fb = str(m.meta.get("fallback") or "")
    sub = table[table["biome"].isin(list(biomes))] if fb.startswith("pooled") else table[table["biome"] == m.biome]
    sub = sub[np.isfinite(sub["rs"].to_numpy(float)) & (sub["rs"].to_numpy(float) > 0)]
    # a biome mean reads Rs only (as its fit, models/fit.py)
    return sub if fb.startswith(("biome mean", "mean of all")) else sub.dropna(subset=list(m.predictors))


def refit(m: BiomeModel, table: pd.DataFrame, biomes) -> BiomeModel | None:
    """``m`` refitted on ``table`` (its rows: the biome, or all biomes for a pooled fallback)
    with everything but the fitted values fixed; None when too few rows remain."""
    from sklearn.base import clone

    from soilresp.models.nonlinear import FitError, NonlinearRs, constant_model

    sub = _rows(table, m, biomes)
    if len(sub) < 3:
        return None
    X, y = sub[m.predictors].to_numpy(float), sub["rs"].to_numpy(float)
    fb = str(m.meta.get("fallback") or "")
    try:
        if m.family == "nls" and fb.startswith("biome mean"):
            est = constant_model(y, X[:, 0])
        elif m.family == "nls":
            p = m.estimator.get_params()
            est = NonlinearRs(m.form, t_response=p["t_response"], q10_range=tuple(p["q10_range"])).fit(X, y)
        else:
            est = clone(m.estimator).fit(X, y)
    except (FitError, ValueError):
        return None
    out = BiomeModel(m.biome, m.family, m.predictors, est, dict(m.meta))
    if fb.startswith("pooled response scaled"):  # the level too, from the biome's remaining rows
        from soilresp.product.uncertainty import _level

        out.meta["level_scale"] = 1.0
        k = _level(out, X, y, sub["biome"].to_numpy() == m.biome)
        if k is None:
            return None
        out.meta["level_scale"] = k
    return out


def _total(cube, biome, area, models) -> float:
    from soilresp.product import G_PER_PG, predict_rs

    rs = predict_rs(cube, biome, models)
    return float(((rs * area).sum(["lat", "lon"]).mean("year") / G_PER_PG).compute())


def stability_totals(table: pd.DataFrame, models: dict[int, BiomeModel], cube: xr.Dataset, biome: xr.DataArray,
                     area: xr.DataArray, *, groups: np.ndarray, n_drops: int = 20, frac: float = 0.1,
                     jackknife: int = 10, seed: int = 0) -> pd.DataFrame:
    """One row per refit: ``design`` (full, drop, jackknife), ``replicate``, ``dropped_groups``,
    ``dropped_rows``, ``total_pg`` (mean annual global total) and ``change`` (relative to the
    full refit's total). ``groups``: location group of each row of ``table``."""
    biomes = sorted(models)
    base = _total(cube, biome, area, models)
    rows = [{"design": "full", "replicate": 0, "dropped_groups": 0, "dropped_rows": 0, "total_pg": base}]
    ug = np.unique(groups)
    rng = np.random.default_rng([seed, 7001])
    k = max(1, int(round(frac * ug.size)))
    designs = [("drop", r, rng.choice(ug, k, replace=False)) for r in range(n_drops)]
    if jackknife > 1:
        perm = rng.permutation(ug)
        designs += [("jackknife", j, blk) for j, blk in enumerate(np.array_split(perm, jackknife))]
    for design, r, drop in designs:
        keep = ~np.isin(groups, drop)
        tab = table[keep]
        new = {}
        for code, m in models.items():
            f = refit(m, tab, biomes)
            new[code] = f if f is not None else m
        rows.append({"design": design, "replicate": r, "dropped_groups": int(len(drop)),
                     "dropped_rows": int((~keep).sum()), "total_pg": _total(cube, biome, area, new)})
    out = pd.DataFrame(rows)
    out["change"] = out["total_pg"] / base - 1
    return out


def jackknife_se(totals: pd.DataFrame) -> float:
    """Grouped jackknife standard error (Pg C yr-1) of the mean annual global total."""
    t = totals.loc[totals["design"] == "jackknife", "total_pg"].to_numpy(float)
    k = t.size
    return float(np.sqrt((k - 1) / k * np.sum((t - t.mean()) ** 2))) if k > 1 else float("nan")
