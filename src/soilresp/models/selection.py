"""Per-biome model choice (method step 4): Eq 5 stepwise predictors, k-fold CV, best model.

Eq 5 (Huang et al. 2020) scores each candidate fit by::

    eps = 0.25 * RMSE_min / RMSE + 0.25 * R2 / R2_max + 0.5 * n / n_max

over the candidates of one step; the highest eps wins. Steps: the temperature variable in
Eq 2; then, with it, the moisture variable in Eq 3; then the productivity variable in Eq 4.
As in the paper, the step metrics are those of the fit itself (candidates within a step
share one form, so in-sample RMSE and R2 compare like with like). Among the four nonlinear
forms (Eq 1 with the chosen T, Eq 2-4 with the chosen predictors) the final model is the one
with the highest **cross-validated** R2 (ties: lower RMSE), the paper's rule, so a more
flexible form only wins when it predicts better. Skill is also reported under site-grouped k-fold
CV (no site in both training and test folds), the honest estimate for new locations.

:func:`oof_predict` gives the out-of-fold predictions of any family under either scheme (for
the machine-learning families with the grid search nested in each training fold);
:func:`soilresp.models.fit_biomes` uses it to compare all families (``docs/models.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold

from soilresp.models.nonlinear import FitError, NonlinearRs


@dataclass
class CVScore:
    r2: float
    rmse: float
    bias: float
    n: int


def _score(y, yhat) -> CVScore:
    ok = np.isfinite(yhat)
    y, yhat = y[ok], yhat[ok]
    if y.size < 2:
        return CVScore(np.nan, np.nan, np.nan, int(y.size))
    ss = np.sum((y - y.mean()) ** 2)
    r2 = 1 - np.sum((y - yhat) ** 2) / ss if ss > 0 else np.nan
    return CVScore(float(r2), float(np.sqrt(np.mean((y - yhat) ** 2))), float(np.mean(yhat - y)), int(y.size))


def splitter(scheme: str, folds: int, seed: int, n: int, groups: np.ndarray | None):
    """Outer CV: ``"random"`` k-fold or ``"site"``-grouped k-fold (None when k < 2)."""
    if scheme == "random":
        k = min(folds, n)
        return KFold(k, shuffle=True, random_state=seed) if k >= 2 else None
    if scheme == "site":
        k = min(folds, len(np.unique(groups)))
        return GroupKFold(k, shuffle=True, random_state=seed) if k >= 2 else None
    raise ValueError(f"CV scheme must be 'random' or 'site', got {scheme!r}")


def oof_predict(family: str, form: str | None, X: np.ndarray, y: np.ndarray, groups: np.ndarray, *,
                scheme: str, folds: int, seed: int, inner_folds: int = 3, grid: dict | None = None) -> np.ndarray:
    """Out-of-fold predictions (g C m-2 yr-1) under ``scheme`` CV; NaN where a fold's fit failed.

    For the machine-learning families the grid search runs inside each training fold (nested
    CV), with a site-grouped inner CV when ``scheme == "site"``, so the tuning never sees the
    test fold.
    """
    from soilresp.models.ml import fit_search

    yhat = np.full(y.size, np.nan)
    cv = splitter(scheme, folds, seed, y.size, groups)
    if cv is None:
        return yhat
    for tr, te in cv.split(X, y, groups if scheme == "site" else None):
        if family == "nls":
            try:
                yhat[te] = NonlinearRs(form).fit(X[tr], y[tr]).predict(X[te])
            except FitError:
                pass
        else:
            g = groups[tr] if scheme == "site" else None
            yhat[te] = fit_search(family, X[tr], y[tr], seed=seed, inner_folds=inner_folds, groups=g,
                                  grid=grid).predict(X[te])
    return yhat


def cross_validate(form: str, X: np.ndarray, y: np.ndarray, *, folds: int, seed: int,
                   groups: np.ndarray | None = None) -> CVScore:
    """Skill of a nonlinear form under k-fold (or, with ``groups``, site-grouped k-fold) CV."""
    scheme = "random" if groups is None else "site"
    g = np.zeros(y.size) if groups is None else groups
    return _score(y, oof_predict("nls", form, X, y, g, scheme=scheme, folds=folds, seed=seed))


def eq5_scores(rmse: np.ndarray, r2: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Huang et al. 2020 Eq 5 weighted metric for a set of candidates (higher is better)."""
    rmse, r2, n = (np.asarray(a, dtype=float) for a in (rmse, r2, n))
    r2c = np.clip(np.nan_to_num(r2, nan=0.0), 0, None)
    r2max = r2c.max() if r2c.size else 0.0
    rm = np.where(np.isfinite(rmse), rmse, np.inf)
    term_r = 0.25 * np.where(rm > 0, rm.min() / rm, 0.0)
    term_q = 0.25 * (r2c / r2max if r2max > 0 else np.zeros_like(r2c))
    term_n = 0.5 * n / n.max() if n.size and n.max() > 0 else np.zeros_like(n)
    return term_r + term_q + term_n


@dataclass
class BiomeSelection:
    """Result of the model choice for one biome."""

    biome: int
    predictors: dict[str, str]
    form: str
    model: NonlinearRs
    steps: list[dict] = field(default_factory=list)   # Eq 5 candidates, one row each
    skill: list[dict] = field(default_factory=list)   # CV skill of every form, both CV schemes


def _xy(df: pd.DataFrame, cols: list[str]):
    sub = df[cols + ["rs", "site_id"]].dropna()
    return sub[cols].to_numpy(float), sub["rs"].to_numpy(float), sub["site_id"].to_numpy()


def stepwise_predictors(df: pd.DataFrame, *, temperature: list[str], moisture: list[str],
                        productivity: list[str], biome: int = 0) -> tuple[dict[str, str], list[dict]]:
    """Eq 5 stepwise choice of T (Eq 2), then M (Eq 3 with T), then P (Eq 4 with T, M).

    Returns ``({"T": ..., "M": ..., "P": ...}, steps)``: the chosen names (M, P absent when no
    candidate could be fitted) and one row per candidate (step, form, candidate, r2, rmse, n,
    eps, chosen). Metrics are those of the fit on all rows with the candidate present.
    """
    steps: list[dict] = []

    def run_step(step: str, form: str, fixed: list[str], cands: list[str]) -> str | None:
        rows = []
        for c in cands:
            if c not in df or df[c].notna().sum() == 0:
                continue
            X, y, _ = _xy(df, fixed + [c])
            try:
                s = _score(y, NonlinearRs(form).fit(X, y).predict(X))
            except FitError:
                continue
            rows.append({"step": step, "form": form, "candidate": c, "r2": s.r2,
                         "rmse": s.rmse, "n": s.n})
        if not rows:
            return None
        eps = eq5_scores([r["rmse"] for r in rows], [r["r2"] for r in rows],
                         [r["n"] for r in rows])
        best = int(np.argmax(eps))
        for r, e in zip(rows, eps):
            r.update(eps=float(e), chosen=r is rows[best])
        steps.extend(rows)
        return rows[best]["candidate"]

    T = run_step("temperature", "eq2", [], temperature)
    if T is None:
        raise FitError(f"biome {biome}: none of the temperature candidates {temperature} can be fitted")
    preds = {"T": T}
    M = run_step("moisture", "eq3", [T], moisture)
    if M:
        preds["M"] = M
        P = run_step("productivity", "eq4", [T, M], productivity)
        if P:
            preds["P"] = P
    return preds, steps


def nls_forms(predictors: dict[str, str]) -> dict[str, list[str]]:
    """Eq 1-4 with the chosen predictors (Eq 3 needs M, Eq 4 needs M and P)."""
    T = predictors["T"]
    forms = {"eq1": [T], "eq2": [T]}
    if "M" in predictors:
        forms["eq3"] = [T, predictors["M"]]
        if "P" in predictors:
            forms["eq4"] = [T, predictors["M"], predictors["P"]]
    return forms


def select_biome(df: pd.DataFrame, biome: int, *, temperature: list[str], moisture: list[str],
                 productivity: list[str], folds: int = 10, seed: int = 0) -> BiomeSelection:
    """Stepwise Eq 5 predictor choice and best nonlinear form for one biome's observations.

    ``df`` has columns ``rs`` (g C m-2 yr-1), ``site_id`` and the candidate predictors. The
    nonlinear-only path; :func:`soilresp.models.fit_biomes` adds the machine-learning families.
    """
    preds, steps = stepwise_predictors(df, temperature=temperature, moisture=moisture,
                                       productivity=productivity, biome=biome)
    forms = nls_forms(preds)
    skill = []
    for form, cols in forms.items():
        X, y, g = _xy(df, cols)
        rnd = cross_validate(form, X, y, folds=folds, seed=seed)
        grp = cross_validate(form, X, y, folds=folds, seed=seed, groups=g)
        skill.append({"form": form, "predictors": ",".join(cols), "n": rnd.n,
                      "cv_r2": rnd.r2, "cv_rmse": rnd.rmse, "cv_bias": rnd.bias,
                      "site_cv_r2": grp.r2, "site_cv_rmse": grp.rmse, "site_cv_bias": grp.bias})
    ok = [s for s in skill if np.isfinite(s["cv_r2"])]
    if not ok:
        raise FitError(f"biome {biome}: no nonlinear form could be cross-validated")
    best = max(ok, key=lambda s: (round(s["cv_r2"], 6), -s["cv_rmse"]))
    for s in skill:
        s["selected"] = s is best
    cols = forms[best["form"]]
    X, y, _ = _xy(df, cols)
    model = NonlinearRs(best["form"]).fit(X, y)
    return BiomeSelection(biome, preds, best["form"], model, steps, skill)
