"""Scoring of candidate models (method step 4): Eq 5 stepwise predictors and CV metrics.

Eq 5 (Huang et al. 2020) scores each candidate fit by::

    eps = 0.25 * RMSE_min / RMSE + 0.25 * R2 / R2_max + 0.5 * n / n_max

over the candidates of one step; the highest eps wins. Steps: the temperature variable in
Eq 2; then, with it, the moisture variable in Eq 3; then the productivity variable in Eq 4.
As in the paper, the step metrics are those of the fit itself (candidates within a step
share one form, so in-sample RMSE and R2 compare like with like).

This module only scores; the folds and the nested loop (which re-runs this choice in every
outer training fold) are in :mod:`soilresp.models.cv`, the orchestration in
:mod:`soilresp.models.fit`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

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


def _xy(df: pd.DataFrame, cols: list[str]):
    sub = df[cols + ["rs", "site_id"]].dropna()
    return sub[cols].to_numpy(float), sub["rs"].to_numpy(float), sub["site_id"].to_numpy()


def stepwise_predictors(df: pd.DataFrame, *, temperature: list[str], moisture: list[str],
                        productivity: list[str], biome: int = 0,
                        nls_kw: dict | None = None) -> tuple[dict[str, str], list[dict]]:
    """Eq 5 stepwise choice of T (Eq 2), then M (Eq 3 with T), then P (Eq 4 with T, M).

    Returns ``({"T": ..., "M": ..., "P": ...}, steps)``: the chosen names (M, P absent when no
    candidate could be fitted) and one row per candidate (step, form, candidate, r2, rmse, n,
    eps, chosen). Metrics are those of the fit on all rows with the candidate present.
    ``nls_kw``: keyword arguments of :class:`NonlinearRs` (``t_response``, ``q10_range``).
    """
    steps: list[dict] = []

    def run_step(step: str, form: str, fixed: list[str], cands: list[str]) -> str | None:
        rows = []
        for c in cands:
            if c not in df or df[c].notna().sum() == 0:
                continue
            X, y, _ = _xy(df, fixed + [c])
            try:
                s = _score(y, NonlinearRs(form, **(nls_kw or {})).fit(X, y).predict(X))
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
