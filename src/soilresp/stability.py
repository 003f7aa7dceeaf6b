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

Where the total is evaluated (``sample_pixels``): 0 sums every pixel of the product grid per
refit (exact, one grid pass per refit: ~30 h at 1 km on 2 cores, benchmarks/README.md). N > 0
evaluates every refit on one stratified (biome x region) Poisson sample of about N pixels,
the same design and hash as the Monte Carlo's (:mod:`soilresp.product.uncertainty`,
``mc_sample_pixels``): the sample's drivers are gathered in one pass over the grid, then each
refit predicts only those cells, so the refits cost the same at any resolution. The
Horvitz-Thompson total sum(area / p * mean_year Rs) comes with its sampling standard error
sqrt(sum (1 - p) (area / p * mean_year Rs)^2) (``sampling_se_pg``) and that of the change,
whose sample is shared with the full refit's total (``change_sampling_se``: the same formula
on the per-pixel difference, relative to the full total). When N is at least the number of
land pixels every inclusion probability is 1 and the result is the whole-grid total.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from soilresp.models.base import BiomeModel


def _rows(table: pd.DataFrame, m: BiomeModel, biomes) -> pd.DataFrame:
    from soilresp.models.base import fallback_kind

    kind = fallback_kind(m)
    sub = table[table["biome"].isin(list(biomes))] if kind in ("pooled", "scaled") else table[table["biome"] == m.biome]
    sub = sub[np.isfinite(sub["rs"].to_numpy(float)) & (sub["rs"].to_numpy(float) > 0)]
    # a biome mean reads Rs only (as its fit, models/fit.py)
    return sub if kind in ("mean", "all-mean") else sub.dropna(subset=list(m.predictors))


def refit(m: BiomeModel, table: pd.DataFrame, biomes) -> BiomeModel | None:
    """``m`` refitted on ``table`` (its rows: the biome, or all biomes for a pooled fallback)
    with everything but the fitted values fixed; None when too few rows remain."""
    from sklearn.base import clone

    from soilresp.models.nonlinear import FitError, NonlinearRs, constant_model

    sub = _rows(table, m, biomes)
    if len(sub) < 3:
        return None
    X, y = sub[m.predictors].to_numpy(float), sub["rs"].to_numpy(float)
    from soilresp.models.base import fallback_kind
    from soilresp.product.uncertainty import _level

    kind = fallback_kind(m)
    try:
        if m.family == "nls" and kind == "mean":
            est = constant_model(y, X[:, 0])
        elif m.family == "nls":
            p = m.estimator.get_params()
            est = NonlinearRs(m.form, t_response=p["t_response"], q10_range=tuple(p["q10_range"])).fit(X, y)
        else:
            est = clone(m.estimator).fit(X, y)
    except (FitError, ValueError):
        return None
    out = BiomeModel(m.biome, m.family, m.predictors, est, dict(m.meta))
    if kind == "scaled":  # the level too, from the biome's remaining rows
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


def _designs(groups: np.ndarray, n_drops: int, frac: float, jackknife: int, seed: int) -> list[tuple]:
    """(design, replicate, dropped location groups) of every refit, in output order."""
    ug = np.unique(groups)
    rng = np.random.default_rng([seed, 7001])
    k = max(1, int(round(frac * ug.size)))
    designs = [("drop", r, rng.choice(ug, k, replace=False)) for r in range(n_drops)]
    if jackknife > 1:
        perm = rng.permutation(ug)
        designs += [("jackknife", j, blk) for j, blk in enumerate(np.array_split(perm, jackknife))]
    return designs


def _refit_all(models: dict[int, BiomeModel], table: pd.DataFrame, keep: np.ndarray) -> dict[int, BiomeModel]:
    """Every biome's model refitted on the kept rows (the deployed model where a refit fails)."""
    tab, biomes = table[keep], sorted(models)
    new = {}
    for code, m in models.items():
        f = refit(m, tab, biomes)
        new[code] = f if f is not None else m
    return new


def gather_stability_sample(cube: xr.Dataset, biome: xr.DataArray, region: xr.DataArray | None,
                            area: xr.DataArray, names: list[str], n_sample: int, min_per_stratum: int,
                            seed: int) -> dict:
    """The stratified sample of about ``n_sample`` pixels (design of
    :func:`soilresp.product.uncertainty.gather_sample`, one pass over the grid): ``biome``
    (n,), ``weight`` area / p (m2), ``q`` = 1 - p, and each driver of ``names`` as (year, n)."""
    from soilresp.product.uncertainty import _strata, gather_sample, inclusion_probabilities, stratum_counts

    if region is None:
        region = xr.zeros_like(biome, dtype=np.int8)
    counts = stratum_counts(biome, region)
    p_table = inclusion_probabilities(counts, n_sample, min_per_stratum)
    first = cube[names[0]]
    if first.chunks is None:
        first = first.chunk({"year": -1})
    chunks = dict(zip(first.dims, first.chunks))
    bchunks = {d: chunks[d] for d in biome.dims}
    b3 = biome.chunk(bchunks).data[None]
    r3 = region.chunk(bchunks).data[None]
    a3 = area.broadcast_like(biome).chunk(bchunks).data[None]
    arrs = [cube[v].chunk(chunks).data for v in names]
    (_, b, r, a, xs), = gather_sample(b3, r3, a3, arrs, p_table, seed, parts=1)
    b, r, a = b[0, 0], r[0, 0], a[0, 0]
    p = p_table[_strata(b, r)]
    return {"biome": b, "weight": a / p, "q": 1.0 - p,
            "drivers": {v: np.asarray(x)[:, 0] for v, x in zip(names, xs)},
            "expected_size": float((p_table * counts).sum())}


def sample_means(models: dict[int, BiomeModel], sample: dict) -> np.ndarray:
    """Mean over years of Rs (g C m-2 yr-1, a missing year counts 0 as in the grid totals) of
    every sampled pixel under ``models``."""
    b, drv = sample["biome"], sample["drivers"]
    out = np.zeros(b.size)
    for code, m in models.items():
        sel = b == code
        if not sel.any():
            continue
        X = np.stack([drv[v][:, sel] for v in m.predictors], axis=-1)
        y = m.predict(X.reshape(-1, X.shape[-1])).reshape(X.shape[:2])
        out[sel] = np.where(np.isfinite(y), y, 0.0).mean(axis=0)
    return out


def _refit_and_mean(models, table, keep, sample) -> np.ndarray:
    return sample_means(_refit_all(models, table, keep), sample)


def _on_cluster() -> bool:
    """Whether dask computes on a distributed client (worker processes)."""
    from dask.base import get_scheduler

    owner = getattr(get_scheduler(), "__self__", None)
    return type(owner).__name__ == "Client" and type(owner).__module__.startswith("distributed")


def stability_totals(table: pd.DataFrame, models: dict[int, BiomeModel], cube: xr.Dataset, biome: xr.DataArray,
                     area: xr.DataArray, *, groups: np.ndarray, n_drops: int = 20, frac: float = 0.1,
                     jackknife: int = 10, seed: int = 0, region: xr.DataArray | None = None,
                     sample_pixels: int = 0, min_per_stratum: int = 30) -> pd.DataFrame:
    """One row per refit: ``design`` (full, drop, jackknife), ``replicate``, ``dropped_groups``,
    ``dropped_rows``, ``total_pg`` (mean annual global total), ``change`` (relative to the
    full refit's total), ``sampling_se_pg`` and ``change_sampling_se`` (0 on the whole grid)
    and ``sample_pixels`` (pixels evaluated; 0 = whole grid). ``groups``: location group of
    each row of ``table``; ``region``: ``biomes.zarr`` region codes (strata of the sample,
    with the biome); ``sample_pixels``, ``min_per_stratum``: module docstring."""
    from soilresp.product import G_PER_PG

    designs = _designs(groups, n_drops, frac, jackknife, seed)
    meta = [{"design": "full", "replicate": 0, "dropped_groups": 0, "dropped_rows": 0}]
    keeps = []
    for design, r, drop in designs:
        keep = ~np.isin(groups, drop)
        keeps.append(keep)
        meta.append({"design": design, "replicate": r, "dropped_groups": int(len(drop)),
                     "dropped_rows": int((~keep).sum())})
    if sample_pixels > 0:
        import dask

        names = sorted({v for m in models.values() for v in m.predictors})
        sample = gather_stability_sample(cube, biome, region, area, names, sample_pixels, min_per_stratum, seed)
        base_mean = sample_means(models, sample)
        # one task per refit (fit + predict the sample), the sample shared by all of them; in
        # parallel on a cluster (single-threaded worker processes) only: the fits' warning
        # filters are process-global, so refits in parallel threads changed each other's results
        shared = [dask.delayed(x, traverse=False) for x in (models, table, sample)]
        tasks = [dask.delayed(_refit_and_mean, pure=False)(shared[0], shared[1], keep, shared[2]) for keep in keeps]
        means = [base_mean, *dask.compute(*tasks, **({} if _on_cluster() else {"scheduler": "synchronous"}))]
        w, q = sample["weight"], sample["q"]
        tot = np.array([np.sum(w * m) for m in means]) / G_PER_PG
        se = np.array([np.sqrt(np.sum(q * (w * m) ** 2)) for m in means]) / G_PER_PG
        dse = np.array([np.sqrt(np.sum(q * (w * (m - base_mean)) ** 2)) for m in means]) / G_PER_PG
        n_px = int(sample["biome"].size)
    else:
        tot = np.array([_total(cube, biome, area, models)]
                       + [_total(cube, biome, area, _refit_all(models, table, keep)) for keep in keeps])
        se = dse = np.zeros(tot.size)
        n_px = 0
    out = pd.DataFrame(meta)
    out["total_pg"] = tot
    out["change"] = out["total_pg"] / tot[0] - 1
    out["sampling_se_pg"] = se
    out["change_sampling_se"] = dse / abs(tot[0]) if tot[0] else np.nan
    out["sample_pixels"] = n_px
    return out


def jackknife_se(totals: pd.DataFrame) -> float:
    """Grouped jackknife standard error (Pg C yr-1) of the mean annual global total."""
    t = totals.loc[totals["design"] == "jackknife", "total_pg"].to_numpy(float)
    k = t.size
    return float(np.sqrt((k - 1) / k * np.sum((t - t.mean()) ** 2))) if k > 1 else float("nan")
