"""Model-suite benchmark: fit time per biome and family, prediction throughput per family.

    python benchmarks/bench_models.py [--training sites/training.parquet] [--rows 200000] [--predict-only]

Without ``--training`` a synthetic table like the 1-degree demo's is made (10 biomes, 46-274
observations each, Eq 4 truth with 8 % noise, three records per site). Fit times are those of
:func:`soilresp.models.fit_biomes` with the default ``[models]`` settings (Eq 5 choice, nested
random and site-grouped 10-fold CV, grid search inside every training fold, final refit), one
process (``n_jobs = 1``): wall and CPU seconds per biome and family. Prediction: rows per second
of :meth:`BiomeModel.predict` (NaN screening + the estimator) against the estimator's own
``predict`` on the same finite rows (best of 3), and their ratio.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from soilresp.config import BIOMES, ModelsConfig
from soilresp.models import BiomeModel, fit_biomes, make_estimator, predict_form
from soilresp.models.ml import ML_FAMILIES

SIZES = [46, 78, 124, 164, 69, 49, 119, 176, 274, 116]  # the 1-degree demo's biomes


def synthetic_table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for code, n in zip(sorted(BIOMES), SIZES):
        d = pd.DataFrame({"tas": rng.uniform(-5, 28, n), "sm": rng.uniform(0.1, 0.45, n),
                          "gpp": rng.uniform(100, 3000, n)})
        for v, s in (("tas", 3.0), ("sm", 0.05), ("gpp", 200.0)):
            d[f"{v}_jja"] = d[v] + rng.normal(0, s, n)
        d["pr"] = rng.uniform(200, 2500, n)
        d["rs"] = predict_form("eq4", [180.0, 0.06, -0.0008, 2.0, -2.5, 0.12], d.tas, d.sm, d.gpp) \
            * np.exp(rng.normal(0, 0.08, n))
        d["biome"], d["site_id"] = code, [f"{code}-{i // 3}" for i in range(n)]
        parts.append(d)
    return pd.concat(parts, ignore_index=True)


def bench_fit(tab: pd.DataFrame, cfg: ModelsConfig) -> pd.DataFrame:
    stamps: dict[str, list] = {}

    def progress(name, done, total):
        stamps.setdefault(name, []).append((done, time.perf_counter(), time.process_time()))

    fit_biomes(tab, cfg, seed=42, progress=progress)
    rows = []
    for name, st in stamps.items():
        if not name.startswith("fit biome"):
            continue
        for (d0, w0, c0), (d1, w1, c1) in zip(st, st[1:]):
            if d1 > d0:
                rows.append({"biome": name[len("fit biome "):].strip(), "family": cfg.families[d1 - 1],
                             "n": int((tab["biome"] == int(name.split()[2])).sum()),
                             "wall_s": w1 - w0, "cpu_s": c1 - c0})
    return pd.DataFrame(rows)


def bench_predict(tab: pd.DataFrame, rows: int) -> pd.DataFrame:
    from soilresp.models import NonlinearRs

    sub = tab[tab["biome"] == 9]
    X, y = sub[["tas", "sm", "gpp"]].to_numpy(), sub["rs"].to_numpy()
    rng = np.random.default_rng(1)
    Xq = np.column_stack([rng.uniform(-5, 28, rows), rng.uniform(0.1, 0.45, rows), rng.uniform(100, 3000, rows)])
    out = []
    ests = {"nls": NonlinearRs("eq4").fit(X, y)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ests.update({f: make_estimator(f, 0).fit(X, y) for f in ML_FAMILIES})
    for fam, est in ests.items():
        m = BiomeModel(9, fam, ["tas", "sm", "gpp"], est)
        t = {}
        fns = (("biome_model", m.predict), ("sklearn", est.predict))
        for key, fn in fns:
            fn(Xq[:1000])
            t[key] = np.inf
        for _ in range(3):  # best of 3, interleaved (the machine may be shared)
            for key, fn in fns:
                t0 = time.perf_counter()
                fn(Xq)
                t[key] = min(t[key], time.perf_counter() - t0)
        out.append({"family": fam, "rows": rows, "biome_model_rows_per_s": rows / t["biome_model"],
                    "sklearn_rows_per_s": rows / t["sklearn"], "ratio": t["sklearn"] / t["biome_model"]})
    return pd.DataFrame(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--training", help="a sites/training.parquet (default: synthetic demo-like table)")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--predict-only", action="store_true", help="skip the fit timing")
    a = ap.parse_args()
    if a.training:
        tab = pd.read_parquet(a.training)
        cfg = ModelsConfig(temperature=["tas", "lst_day", "lst_night"], moisture=["sm", "et_pet", "pr"],
                           productivity=["gpp", "evi", "ndvi"])
    else:
        tab = synthetic_table()
        cfg = ModelsConfig(temperature=["tas"], moisture=["sm", "pr"], productivity=["gpp"])
    pd.set_option("display.width", 160)
    if a.predict_only:
        print(bench_predict(tab, a.rows).to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
        return
    fit = bench_fit(tab, cfg)
    print(f"fit time per biome and family ({len(tab)} observations, {cfg.cv_folds}-fold random + site CV, "
          f"inner {cfg.inner_folds}-fold grid search, n_jobs=1)")
    print(fit.round(2).to_string(index=False))
    tot = fit.groupby("family", sort=False)[["wall_s", "cpu_s"]].sum()
    print("\ntotal per family\n" + tot.round(1).to_string())
    print(f"all: wall {fit['wall_s'].sum():.1f} s, cpu {fit['cpu_s'].sum():.1f} s\n")
    pr = bench_predict(tab, a.rows)
    print(f"prediction throughput, {a.rows} rows of 3 predictors (biome 9 model)")
    print(pr.to_string(index=False, float_format=lambda v: f"{v:,.3g}"))


if __name__ == "__main__":
    main()
