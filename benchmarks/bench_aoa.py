"""Per-pixel cost of the area of applicability (soilresp.aoa, Meyer & Pebesma 2021) against
the prediction it accompanies, and its projection to the 1 km product (issue 15: the AOA
must not dominate the product stage).

    python benchmarks/bench_aoa.py [--pixels 1000000] [--train 1200] [--predictors 3]

One block of random pixels with ``--predictors`` drivers; one biome model (Eq 3, or a
50-tree random forest) fitted on ``--train`` rows; times the DI kernel (KD-tree nearest
neighbour, :func:`soilresp.aoa.di_points`) and ``BiomeModel.predict`` (clamping included)
on the same block, single thread. Projection: 150 M land pixels x 15 years (issue 7).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

KM1_LAND_PIXELS = 150e6
YEARS = 15


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pixels", type=int, default=1_000_000)
    ap.add_argument("--train", type=int, default=1200)
    ap.add_argument("--predictors", type=int, default=3)
    a = ap.parse_args()
    from threadpoolctl import threadpool_limits

    from soilresp.aoa import model_aoas, train_aoa, di_points
    from soilresp.models import BiomeModel, NonlinearRs, make_estimator

    rng = np.random.default_rng(0)
    p = a.predictors
    lo, hi = np.array([-10.0, 100.0, 0.0])[:p], np.array([30.0, 3000.0, 2000.0])[:p]
    Xt = rng.uniform(lo, hi, (a.train, p))
    yt = 300 * np.exp(0.06 * Xt[:, 0]) * np.exp(rng.normal(0, 0.2, a.train))
    Xp = rng.uniform(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo), (a.pixels, p))
    folds = rng.integers(0, 10, a.train)
    aoa = {"predictors": [f"x{i}" for i in range(p)], **train_aoa(Xt, np.ones(p), folds)}
    form = {1: "eq1", 2: "eq3", 3: "eq4"}[p]
    models = {
        "nls " + form: NonlinearRs(form).fit(Xt, yt),
        "rf": make_estimator("rf", 0).fit(Xt, yt),
    }
    rows = []
    with threadpool_limits(1):
        for name, est in models.items():
            fam = "nls" if name.startswith("nls") else "rf"
            m = BiomeModel(1, fam, aoa["predictors"], est,
                           {"aoa": aoa, "predictor_range": "clamp",
                            "training_range": {v: [float(Xt[:, i].min()), float(Xt[:, i].max())]
                                               for i, v in enumerate(aoa["predictors"])}})
            tr = model_aoas({1: m})[1][1]
            t = time.perf_counter()
            m.predict(Xp)
            tp = time.perf_counter() - t
            t = time.perf_counter()
            di_points(Xp, tr)
            ta = time.perf_counter() - t
            rows.append((name, tp, ta))
    print(f"block {a.pixels:,} pixels, {a.train} training rows, {p} predictors, 1 thread")
    print("| model | predict us/px | AOA (DI) us/px | AOA / predict | 1 km x 15 yr AOA CPU-h | on 2 cores h |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, tp, ta in rows:
        upx_p, upx_a = tp / a.pixels * 1e6, ta / a.pixels * 1e6
        cpu_h = ta / a.pixels * KM1_LAND_PIXELS * YEARS / 3600
        print(f"| {name} | {upx_p:.3f} | {upx_a:.3f} | {ta / tp:.2f} | {cpu_h:.2f} | {cpu_h / 2:.2f} |")


if __name__ == "__main__":
    main()
