"""Fit the whole per-biome model suite from a training table (method step 4).

:func:`fit_biomes` is the one entry point used by the models stage (``soilresp fit``) and by
the real-data check (:mod:`soilresp.models.srdb_covariates`). Per biome:

1. **Predictors** by the Eq 5 stepwise choice (:func:`~soilresp.models.selection.stepwise_predictors`).
2. **Candidates**: Eq 1-4 with the chosen predictors (family ``nls``) and each configured
   machine-learning family on the chosen (T, M, P) (:mod:`soilresp.models.ml`).
3. **Skill** of every candidate under k-fold CV (``random``) and site-grouped k-fold CV
   (``site``: no site in both a training and its test fold); the ML grid search runs inside
   each training fold (nested CV). R2 = 1 - SS_res / SS_tot of the pooled out-of-fold
   predictions, RMSE and bias = mean(predicted - observed), g C m-2 yr-1, n rows.
4. **Selection**: the candidate with the highest CV R2 under ``[models] select_by`` (ties,
   to 1e-6: lower RMSE), the paper's rule; refitted (and, for ML, re-tuned) on all rows.
5. **Fallback**: a biome with fewer than ``min_observations`` rows, or where no model can
   be fitted, gets the **pooled model**: the same procedure on all rows of biomes 1-10; its
   skill rows score the pooled out-of-fold predictions on that biome's own rows; the
   ``fallback`` field says so.

The Eq 5 predictor choice uses all of a biome's rows (not repeated per CV fold), so the CV skill is
conditional on the chosen predictors for every family alike.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from soilresp.config import BIOMES, ModelsConfig
from soilresp.models.base import BiomeModel
from soilresp.models.nonlinear import FORMS, FitError, NonlinearRs
from soilresp.models.selection import _score, nls_forms, oof_predict, stepwise_predictors

SCHEMES = ("random", "site")
SKILL_COLUMNS = ["biome", "biome_name", "family", "form", "predictors", "n", "n_sites", "cv_r2", "cv_rmse",
                 "cv_bias", "site_cv_r2", "site_cv_rmse", "site_cv_bias", "selected", "fallback"]
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
    family: str
    form: str            # eq1-eq4 for nls, "" for the ML families
    cols: list[str]
    index: np.ndarray    # row labels of the biome table used (predictors and rs present)
    sites: np.ndarray
    y: np.ndarray
    oof: dict[str, np.ndarray] = field(default_factory=dict)
    final: object = None
    tuned: dict = field(default_factory=dict)


@dataclass
class BiomeFit:
    """The candidates of one biome (or of the pooled model) and the chosen one."""

    biome: int
    predictors: dict[str, str]
    steps: list[dict]
    cands: list[_Cand]
    chosen: int


@dataclass
class FitResult:
    """Everything :func:`fit_biomes` produced: fitted models and the S2-S4 tables."""

    models: dict[int, BiomeModel]
    selected: pd.DataFrame      # table S3, one row per biome
    skill: pd.DataFrame         # table S2, one row per biome x family x form
    parameters: pd.DataFrame    # table S4
    steps: pd.DataFrame         # Eq 5 candidates
    pooled_skill: pd.DataFrame = field(default_factory=pd.DataFrame)  # the pooled model on all its rows


def fit_biome(df: pd.DataFrame, biome: int, cfg: ModelsConfig, cand: dict[str, list[str]], *, seed: int,
              grids: dict | None = None, on_family: Callable[[str], None] | None = None) -> BiomeFit:
    """Predictor choice, nested CV of every family, selection and final fits for one table.

    ``df``: rows of one biome (or all biomes, for the pooled model) with ``rs`` (g C m-2 yr-1),
    ``site_id`` and the candidate predictor columns; ``cand``: candidate names per role.
    """
    preds, steps = stepwise_predictors(df, biome=biome, **cand)
    chosen_cols = [preds[k] for k in ("T", "M", "P") if k in preds]
    specs = []
    for fam in cfg.families:
        if fam == "nls":
            specs += [("nls", f, cols) for f, cols in nls_forms(preds).items()]
        else:
            specs.append((fam, "", chosen_cols))
    grids = grids or {}
    cands: list[_Cand] = []
    for fam in cfg.families:
        for _, form, cols in [sp for sp in specs if sp[0] == fam]:
            sub = df[cols + ["rs", "site_id"]].dropna()
            sub = sub[sub["rs"] > 0]
            X, y, g = sub[cols].to_numpy(float), sub["rs"].to_numpy(float), sub["site_id"].astype(str).to_numpy()
            c = _Cand(fam, form, cols, sub.index.to_numpy(), g, y)
            if fam != "nls" and y.size < 2 * cfg.inner_folds + 2:  # too few rows to tune: no candidate
                c.oof = {k: np.full(y.size, np.nan) for k in SCHEMES}
                cands.append(c)
                continue
            for scheme in SCHEMES:
                c.oof[scheme] = oof_predict(fam, form or None, X, y, g, scheme=scheme, folds=cfg.cv_folds, seed=seed,
                                            inner_folds=cfg.inner_folds, grid=grids.get(fam))
            c.final, c.tuned = _final_fit(fam, form, X, y, g, cfg, seed, grids.get(fam))
            cands.append(c)
        if on_family:
            on_family(fam)
    eligible = set(cfg.select_from or cfg.families)
    scores = []
    for k, c in enumerate(cands):
        s = _score(c.y, c.oof[cfg.select_by])
        if c.family in eligible and c.final is not None and np.isfinite(s.r2):
            scores.append((round(s.r2, 6), -s.rmse, -k))
    if not scores:
        raise FitError(f"biome {biome}: no model could be fitted and cross-validated")
    chosen = -max(scores)[2]
    return BiomeFit(biome, preds, steps, cands, chosen)


def _fit_task(sub, code, cfg, cand, seed, grids, on_family=None) -> tuple[int, "BiomeFit | str"]:
    """:func:`fit_biome` with one BLAS thread (tiny matrices); a failure comes back as its message."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        try:
            return code, fit_biome(sub, code, cfg, cand, seed=seed, grids=grids, on_family=on_family)
        except FitError as e:
            return code, str(e)


def _final_fit(fam, form, X, y, g, cfg, seed, grid):
    """The candidate refitted on all rows (ML: grid search with the ``select_by`` inner CV)."""
    from soilresp.models.ml import fit_search, tuned_params

    if fam == "nls":
        try:
            return NonlinearRs(form).fit(X, y), {}
        except FitError:
            return None, {}
    search = fit_search(fam, X, y, seed=seed, inner_folds=cfg.inner_folds,
                        groups=g if cfg.select_by == "site" else None, grid=grid)
    return search.best_estimator_, tuned_params(search)


def _skill_rows(code: int, fit: BiomeFit, rows: pd.Index | None, fallback: str) -> list[dict]:
    """S2 rows of ``fit`` scored on all its rows, or (fallback) on the labels ``rows`` only."""
    out = []
    for k, c in enumerate(fit.cands):
        keep = np.ones(c.y.size, bool) if rows is None else np.isin(c.index, rows)
        r = {"biome": code, "biome_name": BIOMES.get(code, "pooled"), "family": c.family, "form": c.form,
             "predictors": ",".join(c.cols), "n": int(keep.sum()), "n_sites": int(len(set(c.sites[keep])))}
        for scheme, pre in (("random", "cv_"), ("site", "site_cv_")):
            s = _score(c.y[keep], c.oof[scheme][keep])
            r.update({pre + "r2": s.r2, pre + "rmse": s.rmse, pre + "bias": s.bias})
        r.update(selected=k == fit.chosen, fallback=fallback)
        out.append(r)
    return out


def _parameter_rows(code: int, fit: BiomeFit) -> list[dict]:
    """S4 rows: Eq 1-4 parameters with standard errors (and Q10), ML tuned hyper-parameters."""
    out = []
    for k, c in enumerate(fit.cands):
        if c.final is None:
            continue
        base = {"biome": code, "biome_name": BIOMES.get(code, "pooled"), "family": c.family, "form": c.form,
                "selected": k == fit.chosen}
        roles = dict(zip(("T", "M", "P"), c.cols))
        if c.family == "nls":
            m = c.final
            for name, v, se in zip(FORMS[c.form], m.params_, m.stderr_):
                role = _ROLE[name]
                out.append({**base, "role": role, "predictor": roles.get(role, ""), "param": name,
                            "value": float(v), "stderr": float(se), "text": repr(float(v))})
            q10_se = 10 * m.q10_ * float(m.stderr_[1])  # delta method
            out.append({**base, "role": "T", "predictor": roles["T"], "param": "q10", "value": m.q10_,
                        "stderr": q10_se, "text": repr(m.q10_)})
        else:
            for name, v in sorted(c.tuned.items()):
                num = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan
                out.append({**base, "role": "", "predictor": "", "param": name, "value": num,
                            "stderr": np.nan, "text": repr(v)})
    return out


def _model(code: int, fit: BiomeFit, *, fallback: str, n_rows: int, skill: dict, meta: dict,
           units: dict) -> BiomeModel:
    c = fit.cands[fit.chosen]
    doc = {"biome_name": BIOMES.get(code, "pooled"), "n_biome": int(n_rows), "n_training": int(c.y.size),
           "fallback": fallback,
           "form": c.form if c.family == "nls" else None,
           "roles": dict(zip(("T", "M", "P"), c.cols)),
           "units": {"rs": "g C m-2 yr-1", **{v: units.get(v, "") for v in c.cols}},
           "tuned_params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in c.tuned.items()},
           # null, not NaN, where a biome has no rows to score (strict JSON)
           "skill": {k: (None if isinstance(skill[k], float) and not np.isfinite(skill[k]) else skill[k])
                     for k in ("n", "cv_r2", "cv_rmse", "cv_bias", "site_cv_r2", "site_cv_rmse", "site_cv_bias")},
           **meta}
    if c.family != "nls":
        doc.pop("form")
    return BiomeModel(code, c.family, c.cols, c.final, doc)


def fit_biomes(table: pd.DataFrame, cfg: ModelsConfig, *, seed: int, progress=None, units: dict | None = None,
               biomes: dict[int, str] | None = None, grids: dict | None = None, meta: dict | None = None) -> FitResult:
    """Fit, cross-validate and select a model for every biome (see module docstring).

    ``table``: one row per observation with ``rs`` (g C m-2 yr-1), ``site_id``, ``biome``
    (codes of ``biomes``, default :data:`soilresp.config.BIOMES`; 0 = none) and driver columns;
    candidates are ``cfg.temperature`` / ``moisture`` / ``productivity`` and their ``_mam`` /
    ``_jja`` versions present in the table. ``units`` maps driver names to units (recorded in
    the model files). ``progress(name, done, total)`` is called per biome and family.
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
    base_meta = {"training_hash": table_hash(table), "seed": int(seed), "select_by": cfg.select_by,
                 "cv_folds": cfg.cv_folds, "inner_folds": cfg.inner_folds, "families": list(cfg.families),
                 "versions": package_versions(), **(meta or {})}
    progress = progress or (lambda *a: None)
    table = table.reset_index(drop=True)
    nfam = len(cfg.families)
    labels = {code: f"fit biome {code:2d} {biomes[code]}" for code in sorted(biomes)}
    subs = {code: table[table["biome"] == code] for code in sorted(biomes)}
    todo = [code for code in sorted(biomes) if len(subs[code]) >= cfg.min_observations]
    fits: dict[int, BiomeFit | str] = {}
    if cfg.n_jobs == 1:
        for code in todo:
            done = []
            progress(labels[code], 0, nfam)
            _, fits[code] = _fit_task(subs[code], code, cfg, cand, seed, grids,
                                      lambda f, c=code: (done.append(f), progress(labels[c], len(done), nfam)))
    else:
        from joblib import Parallel, delayed

        for code in todo:
            progress(labels[code], 0, nfam)
        jobs = Parallel(n_jobs=cfg.n_jobs, return_as="generator_unordered")(
            delayed(_fit_task)(subs[code], code, cfg, cand, seed, grids) for code in todo)
        for code, fit in jobs:
            fits[code] = fit
            progress(labels[code], nfam, nfam)
    pooled: BiomeFit | None = None
    models, selected, skill, params, steps = {}, [], [], [], []
    for code in sorted(biomes):
        label, sub = labels[code], subs[code]
        fit = fits.get(code)
        if fit is None:
            fallback = f"pooled model of all biomes ({len(sub)} < min_observations = {cfg.min_observations})"
        elif isinstance(fit, str):
            fallback, fit = f"pooled model of all biomes (own fit failed: {fit})", None
        else:
            fallback = ""
        if fit is None:
            if pooled is None:
                progress("fit pooled model", 0, 1)
                _, pooled = _fit_task(table[table["biome"].isin(list(biomes))], 0, cfg, cand, seed, grids)
                if isinstance(pooled, str):
                    raise FitError(f"pooled model: {pooled}")
                progress("fit pooled model", 1, 1)
            fit = pooled
        rows = sub.index if fallback else None
        srows = _skill_rows(code, fit, rows, fallback)
        for r in srows:
            r["biome_name"] = biomes[code]
        skill += srows
        best = srows[fit.chosen]
        steps += [{"biome": code, "biome_name": biomes[code], "pooled": bool(fallback), **r} for r in fit.steps]
        prow = _parameter_rows(code, fit)
        for r in prow:
            r["biome_name"] = biomes[code]
        params += prow
        m = _model(code, fit, fallback=fallback, n_rows=len(sub), skill=best, meta=base_meta, units=units)
        m.meta["biome_name"] = biomes[code]
        models[code] = m
        c = fit.cands[fit.chosen]
        pvals = c.final.params_.tolist() if c.family == "nls" else m.meta["tuned_params"]
        selected.append({"biome": code, "biome_name": biomes[code], "family": c.family, "form": c.form,
                         "predictors": ",".join(c.cols), "params": json.dumps(pvals), "n": int(len(sub)),
                         "n_sites": int(sub["site_id"].nunique()), "n_fit": best["n"] if not fallback else
                         int(c.y.size),
                         "cv_r2": best["cv_r2"], "cv_rmse": best["cv_rmse"], "cv_bias": best["cv_bias"],
                         "site_cv_r2": best["site_cv_r2"], "site_cv_rmse": best["site_cv_rmse"],
                         "site_cv_bias": best["site_cv_bias"], "select_by": cfg.select_by,
                         "fallback": fallback})
    pooled_skill = pd.DataFrame(_skill_rows(0, pooled, None, "") if pooled else [], columns=SKILL_COLUMNS)
    return FitResult(models, pd.DataFrame(selected), pd.DataFrame(skill, columns=SKILL_COLUMNS),
                     pd.DataFrame(params, columns=["biome", "biome_name", "family", "form", "selected", "role",
                                                   "predictor", "param", "value", "stderr", "text"]),
                     pd.DataFrame(steps), pooled_skill)
