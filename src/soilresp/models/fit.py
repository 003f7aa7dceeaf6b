"""Fit the whole per-biome model suite from a training table (method step 4).

:func:`fit_biomes` is the one entry point used by the models stage (``soilresp fit``) and by
the real-data check (:mod:`soilresp.field.covariates`). Per biome:

1. **Predictors** by the Eq 5 stepwise choice (:func:`~soilresp.models.selection.stepwise_predictors`).
2. **Candidates**: Eq 1-4 with the chosen predictors (family ``nls``, physically bounded:
   ``[models] t_response``, ``q10_range``), each configured machine-learning family on the
   chosen (T, M, P) (:mod:`soilresp.models.ml`), and the biome mean (family ``mean``, the
   baseline every model must beat).
3. **Skill** of every candidate under random, site-, location- and spatial-block-grouped
   k-fold CV (:mod:`soilresp.models.cv`), **nested**: the Eq 5 choice and the ML grid search
   are redone inside every outer training fold. R2 = 1 - SS_res / SS_tot of the pooled
   out-of-fold predictions, RMSE and bias = mean(predicted - observed), g C m-2 yr-1.
4. **Selection**: the candidate with the highest CV R2 under ``[models] select_by`` (default
   ``location``; ties, to 1e-6: lower RMSE), refitted (and, for ML, re-tuned) on all rows.
   An Eq 1-4 fit with a parameter on a bound is not eligible (its ``bound_reason`` is in the
   skill table).
5. **Fallback**: a biome with fewer than ``min_observations`` rows, where nothing can be
   fitted, or whose best CV R2 is <= ``min_cv_r2`` (0) gets the **pooled model** (the same
   procedure on all rows of biomes 1-10) if that model's CV R2 on the biome's own rows is
   above ``min_cv_r2``, else the **biome mean** (Eq 1 with b = 0: Rs = mean observed Rs).
   The ``fallback`` field says which and why.
6. Every deployed model records its **training range** per predictor (clamped to at
   prediction, ``[models] predictor_range``) and its **area of applicability**
   (:mod:`soilresp.aoa`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
import platform
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from soilresp.config import BIOMES, ModelsConfig
from soilresp.models.base import BiomeModel, ratio_level
from soilresp.models.cv import KM_PER_DEG, PREFIX, SCHEMES, candidate_rows, fold_of, nested_oof, outer_splits
from soilresp.models.cv import scheme_groups
from soilresp.models.nonlinear import FORMS, FitError, NonlinearRs, constant_model, effective_q10
from soilresp.models.selection import _score, nls_forms, stepwise_predictors
from soilresp.models.warns import fitting

SKILL_COLUMNS = (["biome", "biome_name", "family", "form", "predictors", "n", "n_sites"]
                 + [PREFIX[k] + m for k in SCHEMES for m in ("r2", "rmse", "bias")]
                 + ["at_bound", "bound_reason", "selected", "fallback"])
_ROLE = {"a": "", "b": "T", "c": "T", "d": "M", "e": "M", "f": "P"}


def candidate_columns(names: list[str], columns) -> list[str]:
    """Annual, spring (``_mam``) and summer (``_jja``) versions of each name present in ``columns``."""
    out = []
    for n in names:
        out += [c for c in (n, f"{n}_mam", f"{n}_jja") if c in columns]
    return out


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for p in ("soilresp", "numpy", "scipy", "scikit-learn", "quantile-forest", "skops", "pandas"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = ""
    return out


def table_hash(table: pd.DataFrame) -> str:
    """SHA-256 of a training table's values (row order and columns included)."""
    return hashlib.sha256(pd.util.hash_pandas_object(table, index=False).values.tobytes()).hexdigest()


@dataclass
class _Cand:
    family: str          # nls, an ML family, or "mean" (the biome-mean baseline)
    form: str            # eq1-eq4 for nls, "" otherwise
    cols: list[str]      # predictors of the final fit
    index: np.ndarray    # row labels of the table used by the final fit (predictors and rs > 0)
    sites: np.ndarray
    y: np.ndarray
    X: np.ndarray
    pos: np.ndarray      # positions of those rows in the fitted table (for its CV groups)
    oof: dict[str, np.ndarray] = field(default_factory=dict)   # per scheme, aligned with ``index``
    final: object = None
    tuned: dict = field(default_factory=dict)

    @property
    def at_bound(self) -> bool:
        return bool(getattr(self.final, "at_bound_", False)) if self.family == "nls" else False


@dataclass
class BiomeFit:
    """The candidates of one biome (or of the pooled model) and the chosen one.

    ``chosen``: index of the best eligible candidate (-1: none); ``refused``: why it is not
    deployed ("" when it is); ``mean``: index of the biome-mean candidate."""

    biome: int
    predictors: dict[str, str]
    steps: list[dict]
    cands: list[_Cand]
    chosen: int
    refused: str = ""
    mean: int = -1
    groups: dict = field(default_factory=dict)
    index: np.ndarray = field(default_factory=lambda: np.zeros(0, int))


@dataclass
class FitResult:
    """Everything :func:`fit_biomes` produced: fitted models and the S2-S4 tables."""

    models: dict[int, BiomeModel]
    selected: pd.DataFrame      # table S3, one row per biome
    skill: pd.DataFrame         # table S2, one row per biome x family x form
    parameters: pd.DataFrame    # table S4
    steps: pd.DataFrame         # Eq 5 candidates
    pooled_skill: pd.DataFrame = field(default_factory=pd.DataFrame)  # the pooled model on all its rows
    #: fitting warnings counted per (label, category), label "fit biome NN name, family"
    warnings: dict = field(default_factory=dict)


def _nls_kw(cfg: ModelsConfig) -> dict:
    return {"t_response": cfg.t_response, "q10_range": tuple(float(v) for v in cfg.q10_range)}


def _columns(cand: tuple[str, str], preds: dict[str, str]) -> list[str] | None:
    fam, form = cand
    if fam == "nls":
        return nls_forms(preds).get(form)
    if fam == "mean":
        return [preds["T"]]
    return [preds[k] for k in ("T", "M", "P") if k in preds]


def fit_biome(df: pd.DataFrame, biome: int, cfg: ModelsConfig, cand: dict[str, list[str]], *, seed: int,
              groups: dict[str, np.ndarray | None] | None = None, grids: dict | None = None,
              on_family: Callable[[str], None] | None = None) -> BiomeFit:
    """Predictor choice, nested CV of every candidate, selection and final fits for one table.

    ``df``: rows of one biome (or all biomes, for the pooled model) with ``rs`` (g C m-2 yr-1),
    ``site_id`` and the candidate predictor columns; ``cand``: candidate names per role;
    ``groups``: CV group of each row per scheme (:func:`soilresp.models.cv.scheme_groups`;
    default: computed from ``df``). ``on_family(name)`` is called after each CV scheme and
    after the final fits.
    """
    nls_kw = _nls_kw(cfg)
    if groups is None:
        groups = scheme_groups(df, location_km=cfg.location_km or 0.0, block_deg=cfg.block_deg)
    pos = np.arange(len(df))
    dfp = df.reset_index(drop=True)
    with fitting("nls (Eq 5 choice)"):
        preds, steps = stepwise_predictors(dfp, biome=biome, nls_kw=nls_kw, **cand)

    def choose(train):
        with fitting("nls (Eq 5 choice)"):
            return stepwise_predictors(train, biome=biome, nls_kw=nls_kw, **cand)[0]

    specs: list[tuple[str, str]] = []
    for fam in cfg.families:
        specs += [("nls", f) for f in nls_forms(preds)] if fam == "nls" else [(fam, "")]
    specs.append(("mean", ""))
    grids = grids or {}
    oofs = {}
    for scheme in SCHEMES:
        ml = [c for c in specs if c[0] not in ("nls", "mean")]
        oofs[scheme] = nested_oof(dfp, [c for c in specs if c[0] == "nls"] + ml, choose=choose, columns=_columns,
                                  scheme=scheme, groups=groups[scheme], folds=cfg.cv_folds, seed=seed,
                                  inner_folds=cfg.inner_folds, grids=grids, nls_kw=nls_kw)
        oofs[scheme][("mean", "")] = _mean_oof(dfp, scheme, groups[scheme], cfg.cv_folds, seed)
        if on_family:
            on_family(scheme)
    gsel = groups[cfg.select_by]
    cands: list[_Cand] = []
    for spec in specs:
        fam, form = spec
        cols = _columns(spec, preds)
        # the biome mean is the mean of every row with Rs, as scored by _mean_oof (its T
        # column is only recorded; before 2000 a MODIS predictor is missing, Rs is not)
        rows = candidate_rows(dfp, [] if fam == "mean" else cols)
        X, y = dfp[cols].to_numpy(float)[rows], dfp["rs"].to_numpy(float)[rows]
        c = _Cand(fam, form, cols, df.index.to_numpy()[rows], df["site_id"].astype(str).to_numpy()[rows], y, X,
                  rows, {k: oofs[k][spec][rows] for k in SCHEMES})
        if fam != "nls" and fam != "mean" and y.size < 2 * cfg.inner_folds + 2:  # too few rows to tune
            cands.append(c)
            continue
        with fitting(fam):
            c.final, c.tuned = _final_fit(fam, form, X, y, None if gsel is None else gsel[rows], cfg, seed,
                                          grids.get(fam), nls_kw)
        cands.append(c)
    if on_family:
        on_family("final")
    eligible = set(cfg.select_from or cfg.families)
    scores = []
    for k, c in enumerate(cands):
        s = _score(c.y, c.oof[cfg.select_by])
        if c.family in eligible and c.final is not None and np.isfinite(s.r2) and not c.at_bound:
            scores.append((round(s.r2, 6), -s.rmse, -k))
    mean_k = len(cands) - 1
    if not scores:
        bound = [f"{c.form} ({c.final.bound_reason_})" for c in cands if c.at_bound]
        why = "no candidate could be fitted and cross-validated" + (
            f"; on a bound: {', '.join(bound)}" if bound else "")
        return BiomeFit(biome, preds, steps, cands, -1, why, mean_k, groups, pos)
    chosen = -max(scores)[2]
    r2 = max(scores)[0]
    refused = ""
    if not r2 > cfg.min_cv_r2:
        c = cands[chosen]
        refused = (f"best candidate {c.family} {c.form}".rstrip() +
                   f" has {cfg.select_by} CV R2 {r2:.3g} <= {cfg.min_cv_r2:g}")
    return BiomeFit(biome, preds, steps, cands, chosen, refused, mean_k, groups, pos)


def _mean_oof(df: pd.DataFrame, scheme: str, groups, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold prediction of the biome-mean baseline (mean Rs > 0 of the training fold)."""
    y = df["rs"].to_numpy(float)
    ok = np.isfinite(y) & (y > 0)
    out = np.full(y.size, np.nan)
    for tr, te in outer_splits(scheme, folds, seed, groups, y.size):
        t = tr[ok[tr]]
        if t.size:
            out[te] = y[t].mean()
    return out


def _fit_task(sub, code, cfg, cand, seed, grids, groups=None, on_family=None) -> tuple[int, "BiomeFit | str", dict]:
    """:func:`fit_biome` with one BLAS thread (tiny matrices); a failure comes back as its message.
    Also returns the fitting warnings it raised, ``{(family, category): n}``
    (:func:`soilresp.models.warns.count_warnings`): in a joblib worker nobody else sees them."""
    from threadpoolctl import threadpool_limits

    from soilresp.models.warns import count_warnings

    with threadpool_limits(1), count_warnings() as counts:
        try:
            fit = fit_biome(sub, code, cfg, cand, seed=seed, groups=groups, grids=grids, on_family=on_family)
        except FitError as e:
            fit = str(e)
    return code, fit, dict(counts)


def _final_fit(fam, form, X, y, g, cfg, seed, grid, nls_kw):
    """The candidate refitted on all rows (ML: grid search with the ``select_by`` inner CV)."""
    from soilresp.models.ml import fit_search, tuned_params

    if fam == "mean":
        return constant_model(y, X[:, 0]), {}
    if fam == "nls":
        try:
            return NonlinearRs(form, **nls_kw).fit(X, y), {}
        except FitError:
            return None, {}
    search = fit_search(fam, X, y, seed=seed, inner_folds=cfg.inner_folds,
                        groups=None if cfg.select_by == "random" else g, grid=grid)
    return search.best_estimator_, tuned_params(search)


def _skill_rows(code: int, fit: BiomeFit, rows: pd.Index | None, fallback: str, chosen: int | None = None) -> list[dict]:
    """S2 rows of ``fit`` scored on all its rows, or (fallback) on the labels ``rows`` only."""
    out = []
    chosen = fit.chosen if chosen is None else chosen
    for k, c in enumerate(fit.cands):
        keep = np.ones(c.y.size, bool) if rows is None else np.isin(c.index, rows)
        r = {"biome": code, "biome_name": BIOMES.get(code, "pooled"), "family": c.family, "form": c.form,
             "predictors": ",".join(c.cols) if c.family != "mean" else "",
             "n": int(keep.sum()), "n_sites": int(len(set(c.sites[keep])))}
        for scheme in SCHEMES:
            s = _score(c.y[keep], c.oof[scheme][keep])
            pre = PREFIX[scheme]
            r.update({pre + "r2": s.r2, pre + "rmse": s.rmse, pre + "bias": s.bias})
        r.update(at_bound=c.at_bound, bound_reason=getattr(c.final, "bound_reason_", "") if c.family == "nls" else "",
                 selected=k == chosen, fallback=fallback)
        out.append(r)
    return out


def _q10_stderr(m: NonlinearRs) -> float:
    """Delta-method standard error of the effective Q10 at ``x_ref_`` (numerical gradient)."""
    p = np.asarray(m.params_, dtype=float)
    g = np.zeros(p.size)
    for k in range(p.size):
        h = 1e-6 * max(abs(p[k]), 1e-3)
        up, dn = p.copy(), p.copy()
        up[k] += h
        dn[k] -= h
        g[k] = (effective_q10(m.form, up, *m.x_ref_) - effective_q10(m.form, dn, *m.x_ref_)) / (2 * h)
    v = float(g @ m.cov_ @ g)
    return float(np.sqrt(v)) if v >= 0 else float("nan")


def _parameter_rows(code: int, fit: BiomeFit, chosen: int | None = None) -> list[dict]:
    """S4 rows: Eq 1-4 parameters with standard errors, the effective Q10 at the median
    inputs (``q10``; ``t_ref``: that median T, degC), ML tuned hyper-parameters."""
    out = []
    chosen = fit.chosen if chosen is None else chosen
    for k, c in enumerate(fit.cands):
        if c.final is None:
            continue
        base = {"biome": code, "biome_name": BIOMES.get(code, "pooled"), "family": c.family, "form": c.form,
                "selected": k == chosen}
        roles = dict(zip(("T", "M", "P"), c.cols))
        if c.family in ("nls", "mean"):
            m = c.final
            for name, v, se in zip(FORMS[m.form], m.params_, m.stderr_):
                role = _ROLE[name]
                out.append({**base, "role": role, "predictor": roles.get(role, ""), "param": name,
                            "value": float(v), "stderr": float(se), "text": repr(float(v))})
            out.append({**base, "role": "T", "predictor": roles["T"], "param": "q10", "value": m.q10_,
                        "stderr": _q10_stderr(m), "text": repr(m.q10_)})
            out.append({**base, "role": "T", "predictor": roles["T"], "param": "t_ref",
                        "value": float(m.x_ref_[0]), "stderr": np.nan, "text": repr(float(m.x_ref_[0]))})
        else:
            for name, v in sorted(c.tuned.items()):
                num = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan
                out.append({**base, "role": "", "predictor": "", "param": name, "value": num,
                            "stderr": np.nan, "text": repr(v)})
    return out


def _model(code: int, fit: BiomeFit, chosen: int, *, fallback: str, n_rows: int, skill: dict, meta: dict,
           units: dict, cfg: ModelsConfig, seed: int) -> BiomeModel:
    from soilresp.aoa import importance_weights, train_aoa

    c = fit.cands[chosen]
    family = "nls" if c.family == "mean" else c.family
    skill_keys = ["n"] + [PREFIX[k] + m for k in SCHEMES for m in ("r2", "rmse", "bias")]
    weights = importance_weights(c.final, c.X, c.y, seed=seed)
    g = fit.groups.get(cfg.select_by)
    folds = fold_of(outer_splits(cfg.select_by, cfg.cv_folds, seed, None if g is None else g[c.pos], c.y.size),
                    c.y.size)
    aoa = {"predictors": list(c.cols), **train_aoa(c.X, weights, folds)}
    doc = {"biome_name": BIOMES.get(code, "pooled"), "n_biome": int(n_rows), "n_training": int(c.y.size),
           "fallback": fallback,
           "form": c.final.form if family == "nls" else None,
           "roles": dict(zip(("T", "M", "P"), c.cols)),
           "units": {"rs": "g C m-2 yr-1", **{v: units.get(v, "") for v in c.cols}},
           "tuned_params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in c.tuned.items()},
           # null, not NaN, where a biome has no rows to score (strict JSON)
           "skill": {k: (None if isinstance(skill[k], float) and not np.isfinite(skill[k]) else skill[k])
                     for k in skill_keys},
           "predictor_range": cfg.predictor_range,
           "predictor_margin": cfg.predictor_margin,
           "training_range": {v: [float(np.nanmin(c.X[:, j])), float(np.nanmax(c.X[:, j]))]
                              for j, v in enumerate(c.cols) if np.isfinite(c.X[:, j]).any()},
           "aoa": aoa,
           **meta}
    if family != "nls":
        doc.pop("form")
    return BiomeModel(code, family, c.cols, c.final, doc)


def _scaled_pooled(pfit: BiomeFit, sub: pd.DataFrame, groups: dict, cfg: ModelsConfig, seed: int):
    """The pooled model's response scaled to one biome's level: Rs = k f_pooled(x) with
    k = sum(Rs) / sum(f_pooled) over the biome's rows (ratio estimator, so the biome's
    training rows keep their mean Rs). One fitted number, like the biome mean, but the
    climate and productivity response of all biomes' data (partial pooling).

    Out of fold (every scheme): k from the training folds' rows and the pooled model's
    out-of-fold predictions (made without the test rows' location groups), times the test
    rows' pooled out-of-fold prediction. Returns (k, CV R2 under ``select_by``, the biome
    mean's CV R2 on the same rows and folds, a :class:`_Cand` holding that out-of-fold
    skill), or None when the biome has fewer than 3 rows the pooled model predicts or the
    pooled response is not positive on them."""
    c = pfit.cands[pfit.chosen]
    keep = np.isin(c.index, sub.index)
    if keep.sum() < 3:
        return None
    y = c.y[keep]
    pos = sub.index.get_indexer(c.index[keep])
    with np.errstate(all="ignore"):
        k = ratio_level(y, c.final.predict(c.X[keep]))
    if k is None:
        return None
    oof, r2 = {}, {}
    for scheme in SCHEMES:
        p = c.oof[scheme][keep]
        g = groups.get(scheme)
        out, mean = np.full(y.size, np.nan), np.full(y.size, np.nan)
        for tr, te in outer_splits(scheme, cfg.cv_folds, seed,
                                   None if g is None else g[pos], y.size):
            t = tr[np.isfinite(p[tr])]
            if (kf := ratio_level(y[t], p[t])) is not None:
                out[te] = kf * p[te]
            mean[te] = y[tr].mean()
        oof[scheme] = out
        r2[scheme] = (_score(y, out).r2, _score(y, mean).r2)
    r2s, r2m = r2[cfg.select_by]
    if not (np.isfinite(r2s) and np.isfinite(r2m)):
        return None
    cand = _Cand(c.family, c.form, c.cols, c.index[keep], c.sites[keep], y, c.X[keep], c.pos[keep], oof, c.final,
                 c.tuned)
    return k, float(r2s), float(r2m), cand


def _mean_only_fit(sub: pd.DataFrame, code: int, tcol: str, groups: dict, cfg: ModelsConfig, seed: int) -> BiomeFit:
    """A :class:`BiomeFit` holding only the biome-mean candidate of ``sub`` (too few rows for
    its own fit, and the pooled model does not predict them)."""
    d = sub.reset_index(drop=True)
    rows = np.flatnonzero(np.isfinite(d["rs"].to_numpy(float)) & (d["rs"].to_numpy(float) > 0))
    X = d[[tcol]].to_numpy(float)[rows] if tcol in d else np.full((rows.size, 1), np.nan)
    y = d["rs"].to_numpy(float)[rows]
    oof = {k: _mean_oof(d, k, groups[k], cfg.cv_folds, seed)[rows] for k in SCHEMES}
    c = _Cand("mean", "", [tcol], sub.index.to_numpy()[rows], d["site_id"].astype(str).to_numpy()[rows], y, X,
              rows, oof, constant_model(y, X[:, 0]))
    return BiomeFit(code, {"T": tcol}, [], [c], 0, "", 0, groups, np.arange(len(d)))


def fit_biomes(table: pd.DataFrame, cfg: ModelsConfig, *, seed: int, progress=None, units: dict | None = None,
               biomes: dict[int, str] | None = None, grids: dict | None = None, meta: dict | None = None,
               cell_km: float | None = None) -> FitResult:
    """Fit, cross-validate and select a model for every biome (see module docstring).

    ``table``: one row per observation with ``rs`` (g C m-2 yr-1), ``site_id``, ``biome``
    (codes of ``biomes``, default :data:`soilresp.config.BIOMES`; 0 = none), ``lat``/``lon``
    (degrees; without them the location and block CV use the sites) and driver columns;
    candidates are ``cfg.temperature`` / ``moisture`` / ``productivity`` and their ``_mam`` /
    ``_jja`` versions present in the table. ``units`` maps driver names to units (recorded in
    the model files). ``cell_km``: one grid cell, km (default distance of the location CV).
    ``progress(name, done, total)`` is called per biome and CV scheme.
    Returns the fitted :class:`BiomeModel` per biome and the tables S2 (skill), S3 (selected),
    S4 (parameters) and the Eq 5 steps. Repeatable bit for bit for a given ``seed``.
    """
    biomes = BIOMES if biomes is None else biomes
    missing = [c for c in ("rs", "site_id", "biome") if c not in table]
    if missing:
        raise KeyError(f"training table lacks column(s) {missing}")
    cand = {k: candidate_columns(getattr(cfg, k), table.columns) for k in ("temperature", "moisture", "productivity")}
    if not cand["temperature"]:
        raise KeyError(f"none of the temperature candidates {cfg.temperature} is a column of the training table")
    units = units or {}
    loc_km = cfg.location_km if cfg.location_km is not None else (cell_km or 0.0)
    base_meta = {"training_hash": table_hash(table), "seed": int(seed), "select_by": cfg.select_by,
                 "cv_folds": cfg.cv_folds, "inner_folds": cfg.inner_folds, "families": list(cfg.families),
                 "location_km": float(loc_km), "block_deg": float(cfg.block_deg),
                 "cv_groups": "lat/lon" if {"lat", "lon"} <= set(table.columns) else "site_id (no lat/lon)",
                 "min_cv_r2": cfg.min_cv_r2, "versions": package_versions(), **(meta or {})}
    progress = progress or (lambda *a: None)
    table = table.reset_index(drop=True)
    allg = scheme_groups(table, location_km=loc_km, block_deg=cfg.block_deg)

    def gsub(idx):
        return {k: None if v is None else v[np.asarray(idx)] for k, v in allg.items()}

    nstep = len(SCHEMES) + 1
    labels = {code: f"fit biome {code:2d} {biomes[code]}" for code in sorted(biomes)}
    subs = {code: table[table["biome"] == code] for code in sorted(biomes)}
    todo = [code for code in sorted(biomes) if len(subs[code]) >= cfg.min_observations]
    fits: dict[int, BiomeFit | str] = {}
    counted: Counter = Counter()

    def tally(label: str, w: dict) -> None:
        for (fam, cat), n in w.items():
            counted[(f"{label}, {fam}" if fam else label, cat)] += n

    if cfg.n_jobs == 1:
        for code in todo:
            done = []
            progress(labels[code], 0, nstep)
            _, fits[code], w = _fit_task(subs[code], code, cfg, cand, seed, grids, gsub(subs[code].index),
                                         lambda f, c=code: (done.append(f), progress(labels[c], len(done), nstep)))
            tally(labels[code], w)
    else:
        from joblib import Parallel, delayed

        for code in todo:
            progress(labels[code], 0, nstep)
        jobs = Parallel(n_jobs=cfg.n_jobs, return_as="generator_unordered")(
            delayed(_fit_task)(subs[code], code, cfg, cand, seed, grids, gsub(subs[code].index)) for code in todo)
        for code, fit, w in jobs:
            fits[code] = fit
            tally(labels[code], w)
            progress(labels[code], nstep, nstep)
    pooled: BiomeFit | None = None

    def get_pooled() -> BiomeFit:
        nonlocal pooled
        if pooled is None:
            progress("fit pooled model", 0, 1)
            ptab = table[table["biome"].isin(list(biomes))]
            _, pooled, w = _fit_task(ptab, 0, cfg, cand, seed, grids, gsub(ptab.index))
            tally("fit pooled model", w)
            if isinstance(pooled, str):
                raise FitError(f"pooled model: {pooled}")
            progress("fit pooled model", 1, 1)
        return pooled

    pre = PREFIX[cfg.select_by]
    models, selected, skill, params, steps = {}, [], [], [], []
    for code in sorted(biomes):
        sub = subs[code]
        fit = fits.get(code)
        own = fit if isinstance(fit, BiomeFit) else None
        if fit is None:
            reason = f"{len(sub)} < min_observations = {cfg.min_observations}"
        elif isinstance(fit, str):
            reason = f"own fit failed: {fit}"
        else:
            reason = fit.refused
        scale, scand, sc = None, None, None
        if not reason:
            src, chosen, rows, fallback, kind = own, own.chosen, None, "", ""
        else:
            pfit = get_pooled()
            pr = _skill_rows(code, pfit, sub.index, "")[pfit.chosen] if pfit.chosen >= 0 else None
            pr2 = pr[pre + "r2"] if pr else np.nan
            if pfit.chosen >= 0 and not pfit.refused and (len(sub) == 0 or pr2 > cfg.min_cv_r2):
                note = "no rows to score it on" if len(sub) == 0 else f"its {cfg.select_by} CV R2 on this biome's rows {pr2:.3g}"
                src, chosen, rows = pfit, pfit.chosen, sub.index
                fallback, kind = f"pooled model of all biomes ({reason}; {note})", "pooled"
            elif (cfg.scaled_fallback and pfit.chosen >= 0 and not pfit.refused
                  and (sc := _scaled_pooled(pfit, sub, gsub(sub.index), cfg, seed)) is not None
                  and sc[1] > sc[2]):
                k, r2s, r2m, scand = sc
                src, chosen, rows, scale, kind = pfit, pfit.chosen, sub.index, k, "scaled"
                fallback = (f"pooled response scaled to the biome mean ({reason}; pooled model's {cfg.select_by} "
                            f"CV R2 on this biome's rows {pr2:.3g} <= {cfg.min_cv_r2:g}; scaled by {k:.4g}: "
                            f"CV R2 {r2s:.3g} > biome mean's {r2m:.3g})")
            else:
                why = (f"pooled model's {cfg.select_by} CV R2 on this biome's rows {pr2:.3g} <= {cfg.min_cv_r2:g}"
                       if pfit.chosen >= 0 and not pfit.refused else f"pooled model not deployable: {pfit.refused}")
                if scaled_why := (sc and f"; scaled pooled response's CV R2 {sc[1]:.3g} <= biome mean's {sc[2]:.3g}"):
                    why += scaled_why
                fallback, kind = f"biome mean ({reason}; {why})", "mean"
                ys = sub["rs"].to_numpy(float)
                if own is not None:
                    src, chosen, rows = own, own.mean, None
                elif (np.isfinite(ys) & (ys > 0)).any():
                    src = _mean_only_fit(sub, code, pfit.predictors["T"], gsub(sub.index), cfg, seed)
                    chosen, rows = 0, None
                else:  # no row of its own: the mean of all biomes' rows, scored on none
                    allm = table[table["biome"].isin(list(biomes))]
                    src = _mean_only_fit(allm, code, pfit.predictors["T"], gsub(allm.index), cfg, seed)
                    chosen, rows = 0, sub.index
                    fallback = f"mean of all biomes' rows ({reason}; {why}; no rows of its own)"
                    kind = "all-mean"
        srows = _skill_rows(code, src, rows, fallback, chosen)
        if scand is not None:  # the scaled response's own out-of-fold skill, not the pooled model's
            srows = _skill_rows(code, BiomeFit(code, src.predictors, [], [scand], 0), None, fallback, 0)
        if src is not own and own is not None:   # the biome's own candidates, for the record
            srows = _skill_rows(code, own, None, "", -1) + srows
        elif src is not own and src is not pooled and pooled is not None:
            srows = _skill_rows(code, pooled, sub.index, "", -1) + srows
        for r in srows:
            r["biome_name"] = biomes[code]
        skill += srows
        best = next(r for r in srows if r["selected"])
        steps += [{"biome": code, "biome_name": biomes[code], "pooled": src is pooled, **r} for r in src.steps]
        prow = _parameter_rows(code, src, chosen)
        for r in prow:
            r["biome_name"] = biomes[code]
        params += prow
        m = _model(code, src, chosen, fallback=fallback, n_rows=len(sub), skill=best, meta=base_meta, units=units,
                   cfg=cfg, seed=seed)
        m.meta["biome_name"] = biomes[code]
        m.meta["fallback_kind"] = kind   # what `fallback` says, as a code (models.base.fallback_kind)
        if scale is not None:
            m.meta["level_scale"] = float(scale)
        ry = sub["rs"].to_numpy(float)
        ry = ry[np.isfinite(ry) & (ry > 0)]
        allr = table.loc[table["biome"].isin(list(biomes)), "rs"].to_numpy(float)
        allr = allr[np.isfinite(allr) & (allr > 0)]
        # the robust value outside the AOA ([product] outside_aoa = "fallback")
        m.meta["biome_mean_rs"] = float(ry.mean()) if ry.size else (float(allr.mean()) if allr.size else None)
        m.meta["biome_max_rs"] = float(ry.max()) if ry.size else None
        models[code] = m
        c = src.cands[chosen]
        pvals = c.final.params_.tolist() if c.family in ("nls", "mean") else m.meta["tuned_params"]
        selected.append({"biome": code, "biome_name": biomes[code], "family": c.family, "form": c.form,
                         "predictors": ",".join(c.cols), "params": json.dumps(pvals), "n": int(len(sub)),
                         "n_sites": int(sub["site_id"].nunique()), "n_fit": int(c.y.size),
                         **{k: best[k] for k in SKILL_COLUMNS if k.startswith(tuple(PREFIX.values()))},
                         "q10": float(c.final.q10_) if c.family in ("nls", "mean") else np.nan,
                         "t_ref": float(c.final.x_ref_[0]) if c.family in ("nls", "mean") else np.nan,
                         "select_by": cfg.select_by, "fallback": fallback,
                         "level_scale": 1.0 if scale is None else float(scale)})
    pooled_skill = pd.DataFrame(_skill_rows(0, pooled, None, "") if pooled else [], columns=SKILL_COLUMNS)
    return FitResult(models, pd.DataFrame(selected), pd.DataFrame(skill, columns=SKILL_COLUMNS),
                     pd.DataFrame(params, columns=["biome", "biome_name", "family", "form", "selected", "role",
                                                   "predictor", "param", "value", "stderr", "text"]),
                     pd.DataFrame(steps), pooled_skill, dict(counted))


def select_biome(df: pd.DataFrame, biome: int, *, temperature: list[str], moisture: list[str],
                 productivity: list[str], folds: int = 10, seed: int = 0, cfg: ModelsConfig | None = None):
    """Eq 5 predictors and best Eq 1-4 form for one biome (the nonlinear-only path of
    :func:`fit_biome`); returns its :class:`BiomeFit` with ``predictors``, ``form``,
    ``model`` and ``skill`` (S2 rows) attributes added for convenience."""
    cfg = cfg or ModelsConfig(families=["nls"], cv_folds=folds)
    fit = fit_biome(df, biome, cfg, {"temperature": temperature, "moisture": moisture, "productivity": productivity},
                    seed=seed)
    if fit.chosen < 0:
        raise FitError(f"biome {biome}: {fit.refused}")
    fit.form = fit.cands[fit.chosen].form
    fit.model = fit.cands[fit.chosen].final
    fit.skill = _skill_rows(biome, fit, None, "")
    return fit
