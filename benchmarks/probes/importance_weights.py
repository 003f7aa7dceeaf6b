"""Probe (not adopted): importance-weighted (covariate-shift) refits of the own-fit nls biome
models (Shimodaira 2000; Sugiyama, Krauledat & Mueller 2007; docs/product.md, "Tried and not
adopted").

Usage: OMP_NUM_THREADS=1 python benchmarks/probes/importance_weights.py --out DIR ROOT [ROOT ...]
ROOT holds world/ and run/ (a ``soilresp demo`` folder, or a seed folder of
``benchmarks/bench_calibration.py``). Writes DIR/results.csv (per biome) and DIR/global.csv.

Weighted least squares: NonlinearRs.fit calls the module-global scipy `least_squares(f, q0, ...)`
from inside its `solve`; we temporarily replace `soilresp.models.nonlinear.least_squares` by a
wrapper that calls scipy with residuals sqrt(w_i) * r_i, so the solver minimises sum w_i r_i^2
exactly (weighted NLS), including the c-dropped refit. Start values (log-OLS), the anchor
temperature (median of T) and M/P scales stay those of the unweighted fit (reparameterisation /
start only; the Q10 box bound stays at the unweighted anchor). Rows are pre-filtered to
finite X, y>0 so that the estimator's own `ok` mask keeps every row and weights stay aligned.

Density ratio: pixel-rows = every (year, pixel) of the biome (product `biome` map) with finite
raw (unclamped) predictors, all years; training rows = biome rows complete in its predictors.
Classifier: LogisticRegression on standardised predictors + squares (standardised on the union);
w = P(pix|x)/P(row|x) * n_rows/n_pix, clipped [0.05, 20], normalised to mean 1. Flattened: w**0.5
(renormalised). Variant "IW-area": pixel-rows weighted by cell area in the classifier (the biome
total is an area-weighted sum), same clipping.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import pandas as pd
import scipy.optimize
import xarray as xr
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

import soilresp.models.nonlinear as nl
from soilresp.config import BIOMES
from soilresp.models.base import BiomeModel, fallback_kind, load_biome_models

_LS = scipy.optimize.least_squares


@contextmanager
def weighted(w):
    sw = None if w is None else np.sqrt(np.asarray(w, float))

    def ls(fun, x0, **kw):
        return _LS(lambda q: sw * fun(q), x0, **kw)

    if sw is not None:
        nl.least_squares = ls
    try:
        yield
    finally:
        nl.least_squares = _LS


def ols_slope(y):
    x = np.arange(len(y), dtype=float)
    return float(np.polyfit(x, np.asarray(y, float), 1)[0])


def density_ratio(Xr, Xp, wp=None):
    Z = np.vstack([Xr, Xp])
    mu, sd = Z.mean(0), Z.std(0)
    sd[sd == 0] = 1
    Zs = (Z - mu) / sd
    F = np.hstack([Zs, Zs ** 2])
    lab = np.r_[np.zeros(len(Xr)), np.ones(len(Xp))]
    sw = np.r_[np.ones(len(Xr)), np.ones(len(Xp)) if wp is None else wp / wp.mean()]
    clf = LogisticRegression(max_iter=2000)
    clf.fit(F, lab, sample_weight=sw)
    p = clf.predict_proba(F[: len(Xr)])[:, 1]
    p = np.clip(p, 1e-12, 1 - 1e-12)
    w = p / (1 - p) * len(Xr) / sw[len(Xr):].sum()
    w = np.clip(w, 0.05, 20)
    return w / w.mean()


def ess(w):
    return float(w.sum() ** 2 / (w ** 2).sum())


def process(root: Path):
    run = root / "run"
    models = load_biome_models(run / "models", BIOMES)
    tr = pd.read_parquet(run / "sites" / "training.parquet")
    prod = xr.open_zarr(run / "product" / "rs.zarr")
    bio = prod["biome"].values
    rs_prod = prod["rs"].values.astype(float)
    years = prod["year"].values
    drv = xr.open_zarr(run / "drivers" / "drivers.zarr")
    area = xr.open_zarr(run / "biomes" / "biomes.zarr")["cell_area"].values.astype(float)
    A = np.broadcast_to(area[:, None], bio.shape)
    truth = xr.open_zarr(root / "world" / "truth.zarr")["rs_true"].sel(year=years).values.astype(float)
    ny = len(years)
    cache = {}

    def var(v):
        if v not in cache:
            cache[v] = drv[v].sel(year=years).values.astype(float)
        return cache[v]

    def total(field, mask):  # (year,) Pg C/yr
        return np.array([np.nansum(np.where(mask, field[t], np.nan) * A) for t in range(ny)]) / 1e15

    rows, est_tot = [], {}
    for code, m in sorted(models.items()):
        mask = bio == code
        if not mask.any():
            continue
        true_t = total(truth, mask)
        prod_t = total(rs_prod, mask)
        own = m.family == "nls" and fallback_kind(m) == ""
        est_tot.setdefault("deployed", {})[code] = prod_t
        if not own:
            for k in ("refit", "IW", "IW-flat", "IW-area"):
                est_tot.setdefault(k, {})[code] = prod_t
            continue
        preds = m.predictors
        sub = tr[tr["biome"] == code]
        X = sub[preds].to_numpy(float)
        y = sub["rs"].to_numpy(float)
        ok = np.isfinite(X).all(1) & np.isfinite(y) & (y > 0)
        X, y = X[ok], y[ok]
        # pixel-rows: all years
        P = np.stack([np.stack([var(v)[t][mask] for v in preds], 1) for t in range(ny)])  # (ny, npix, k)
        Ap = np.broadcast_to(A[mask][None, :], P.shape[:2]).reshape(-1)
        Pf = P.reshape(-1, len(preds))
        fin = np.isfinite(Pf).all(1)
        w = density_ratio(X, Pf[fin])
        wa = density_ratio(X, Pf[fin], Ap[fin])
        wf = w ** 0.5
        wf = wf / wf.mean()
        variants = {"refit": None, "IW": w, "IW-flat": wf, "IW-area": wa}

        def predict_total(est):
            bm = BiomeModel(code, m.family, preds, est, dict(m.meta))
            out = np.full((ny,) + bio.shape, np.nan)
            for t in range(ny):
                out[t][mask] = bm.predict(P[t])
            return total(out, mask)

        dep_t = predict_total(m.estimator)
        rec = dict(run=root.name if root.name.startswith("seed") else str(root), biome=code, form=m.form,
                   preds="+".join(preds), n=len(y), ess=ess(w), ess_frac=ess(w) / len(y),
                   ess_flat_frac=ess(wf) / len(y), ess_area_frac=ess(wa) / len(y), wmax=w.max(),
                   T_rows_med=float(np.median(X[:, 0])), T_pix_med=float(np.nanmedian(Pf[fin, 0])),
                   true_level=true_t.mean(), repro_pct=100 * (dep_t.mean() / prod_t.mean() - 1),
                   lvl_deployed=prod_t.mean() / true_t.mean(),
                   trd_deployed=ols_slope(prod_t) / ols_slope(true_t),
                   true_trend=ols_slope(true_t))
        for k, wk in variants.items():
            est = clone(m.estimator)
            try:
                with weighted(wk):
                    est.fit(X, y)
                t_k = predict_total(est)
                if k == "refit":
                    rec["refit_maxrel_param"] = float(np.max(np.abs(est.params_ - m.estimator.params_)
                                                             / np.maximum(np.abs(m.estimator.params_), 1e-9)))
                rec[f"bound_{k}"] = bool(est.at_bound_)
            except Exception as e:  # noqa: BLE001
                print(f"  {code} {k}: fit failed {e}", file=sys.stderr)
                t_k = prod_t * np.nan
            est_tot.setdefault(k, {})[code] = t_k
            rec[f"lvl_{k}"] = t_k.mean() / true_t.mean()
            rec[f"trd_{k}"] = ols_slope(t_k) / ols_slope(true_t)
        rows.append(rec)
        print(f"  {rec['run']} b{code} {m.form} {preds} n={len(y)} ess={rec['ess_frac']:.2f} "
              f"repro={rec['repro_pct']:+.2f}% lvl dep/IW/flat={rec['lvl_deployed']:.3f}/{rec['lvl_IW']:.3f}/"
              f"{rec['lvl_IW-flat']:.3f} trd={rec['trd_deployed']:.2f}/{rec['trd_IW']:.2f}/{rec['trd_IW-flat']:.2f}",
              flush=True)
    # global
    gmask = bio > 0
    g_true = total(truth, gmask)
    g = dict(run=rows[0]["run"] if rows else str(root), true_level=g_true.mean())
    for k, d in est_tot.items():
        tot = np.sum([d[c] for c in d], axis=0)
        g[f"lvl_{k}"] = tot.mean() / g_true.mean()
        g[f"trd_{k}"] = ols_slope(tot) / ols_slope(g_true)
    g["prod_vs_sum_pct"] = 100 * (total(rs_prod, gmask).mean() / np.sum([est_tot["deployed"][c] for c in est_tot["deployed"]], axis=0).mean() - 1)
    return rows, g


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("iw_probe_out"))
    ap.add_argument("roots", nargs="+", type=Path)
    args = ap.parse_args()
    roots, out = args.roots, args.out
    out.mkdir(parents=True, exist_ok=True)
    allrows, glob = [], []
    for r in roots:
        print(r, flush=True)
        rows, g = process(r)
        allrows += rows
        glob.append(g)
        pd.DataFrame(allrows).to_csv(out / "results.csv", index=False)
        pd.DataFrame(glob).to_csv(out / "global.csv", index=False)


if __name__ == "__main__":
    main()
