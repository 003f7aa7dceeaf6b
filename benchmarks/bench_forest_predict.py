"""Prediction throughput of every model family, and packed forests against scikit-learn.

    python benchmarks/bench_forest_predict.py [--rows 400000] [--train 274 2000] [--threads 2]
                                              [--families rf qrf svr ann]

For each training size (rows of an Eq 4-like biome table, 3 predictors: tas, sm, gpp), the
default estimators of :mod:`soilresp.models.ml` are fitted at each grid point of the forest
families (rf ``min_samples_leaf`` 1 and 5, qrf 5 and 10) and at the defaults of svr / ann.
Timed on the same ``--rows`` random pixels (float32, as the product reads them), best of 3,
interleaved (the machine is shared):

* forests: scikit-learn's / quantile-forest's own ``predict`` with ``n_jobs=1`` (as deployed)
  and ``n_jobs=2`` (its threads on both cores) against
  :func:`soilresp.models.forest_predict.pack_forest` ``.predict`` (numba, ``--threads``
  threads), both ratios, the per-core ratio of CPU seconds (scikit-learn 1 job against the
  packed kernel on 1 thread: robust to other processes on the machine) and the largest
  absolute difference of the outputs (g C m-2 yr-1);
  also the one-off packing time. First it reports whether LLVM vectorised the walk on this
  CPU (gather instructions in a fresh, uncached compile of the kernel: 0 means scalar code,
  several times slower);
* svr / ann: ``BiomeModel.predict`` rows/s, the number of support vectors, and the
  projected hours for one 1 km pass (150 M land pixels x 15 years) on this machine;
* ``--svr-approx``: for the largest training size, the default SVR against two cheaper
  stand-ins (not deployed; measured to document their error): the same SVR fitted on a random
  subset of ``m`` rows (a cap of ``m`` support vectors), and a Nystroem RBF feature map of
  ``m`` components (same kernel width as SVR's ``gamma="scale"`` on standardised inputs) with
  a linear epsilon-SVR. Rows/s, and RMSE against the full SVR and against the noise-free Eq 4
  truth (g C m-2 yr-1).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from numba import get_num_threads, set_num_threads
from sklearn.exceptions import ConvergenceWarning

from soilresp.models import BiomeModel, predict_form
from soilresp.models.forest_predict import pack_forest
from soilresp.models.ml import make_estimator

PIXELS_1KM = 150e6 * 15


def table(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(-5, 28, n), rng.uniform(0.1, 0.45, n), rng.uniform(100, 3000, n)])
    y = predict_form("eq4", [180.0, 0.06, -0.0008, 2.0, -2.5, 0.12], X[:, 0], X[:, 1], X[:, 2]) \
        * np.exp(rng.normal(0, 0.08, n))
    return X, y


def best(fns: dict, reps: int = 3, clock=time.perf_counter) -> dict:
    t = {k: np.inf for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = clock()
            fn()
            t[k] = min(t[k], clock() - t0)
    return t


def cpu_ratio(est, pf, Xq, threads: int) -> float:
    """scikit-learn (1 job) CPU seconds / packed CPU seconds on 1 numba thread: the per-core
    speed, which other processes on the machine do not change (wall-clock ratios do)."""
    set_num_threads(1)
    t = best({"sk": lambda: est.predict(Xq), "pk": lambda: pf.predict(Xq)}, clock=time.process_time)
    set_num_threads(threads)
    return t["sk"] / t["pk"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--train", type=int, nargs="+", default=[274, 2000])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--families", nargs="+", default=["rf", "qrf", "svr", "ann"],
                    choices=["rf", "qrf", "svr", "ann"])
    ap.add_argument("--svr-approx", action="store_true", help="only the SVR cap / kernel approximation table")
    a = ap.parse_args()
    set_num_threads(min(a.threads, get_num_threads()))
    rng = np.random.default_rng(1)
    Xq = np.column_stack([rng.uniform(-5, 28, a.rows), rng.uniform(0.1, 0.45, a.rows),
                          rng.uniform(100, 3000, a.rows)]).astype(np.float32)
    print(f"{a.rows} rows, numba threads {get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    print(f"packed walk vectorised: {kernel_gathers()} gather instructions in the compiled kernel")
    if a.svr_approx:
        return svr_approx(max(a.train), Xq)
    print(f"{'train':>6} {'model':<12} {'nodes':>7} {'depth':>5} {'pack s':>7} {'sk 1 job r/s':>12} "
          f"{'sk 2 jobs r/s':>13} {'packed r/s':>11} {'x 1 job':>7} {'x 2 jobs':>8} {'x CPU/core':>10} {'max |diff|':>10}")
    for n in a.train:
        X, y = table(n)
        for fam, leaf in (("rf", 1), ("rf", 5), ("qrf", 5), ("qrf", 10)):
            if fam not in a.families:
                continue
            est = make_estimator(fam, 0).set_params(min_samples_leaf=leaf).fit(X, y)
            t0 = time.perf_counter()
            pf = pack_forest(est)
            tpack = time.perf_counter() - t0
            pf.predict(Xq[:100])  # compile / load the numba cache
            d = np.abs(pf.predict(Xq) - est.predict(Xq)).max()
            # the same fitted forest; n_jobs only changes how predict splits the trees
            t = best({"sk": lambda: est.set_params(n_jobs=1).predict(Xq),
                      "sk2": lambda: est.set_params(n_jobs=2).predict(Xq), "pk": lambda: pf.predict(Xq)})
            est.set_params(n_jobs=1)
            xc = cpu_ratio(est, pf, Xq, get_num_threads())
            print(f"{n:>6} {fam + ' leaf ' + str(leaf):<12} {pf.n_nodes:>7} {int(pf.depth.max()):>5} "
                  f"{tpack:>7.3f} {a.rows / t['sk']:>12,.0f} {a.rows / t['sk2']:>13,.0f} {a.rows / t['pk']:>11,.0f} "
                  f"{t['sk'] / t['pk']:>7.1f} {t['sk2'] / t['pk']:>8.1f} {xc:>10.1f} {d:>10.2e}", flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for fam in [f for f in ("svr", "ann") if f in a.families]:
                est = make_estimator(fam, 0).fit(X, y)
                m = BiomeModel(1, fam, ["tas", "sm", "gpp"], est)
                t = best({"m": lambda: m.predict(Xq)})
                nsv = est.regressor_["svr"].support_vectors_.shape[0] if fam == "svr" else 0
                rate = a.rows / t["m"]
                print(f"{n:>6} {fam:<12} support vectors {nsv:>5}  BiomeModel.predict {rate:>11,.0f} rows/s  "
                      f"one 1 km pass {PIXELS_1KM / rate / 3600:6.2f} h", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


def kernel_gathers() -> int:
    """Gather instructions in a fresh (uncached) compile of the packed-forest kernel."""
    from numba import njit

    from soilresp.models import forest_predict as fp

    fresh = njit(parallel=True, boundscheck=False)(fp._walk.py_func)
    pf = pack_forest(make_estimator("rf", 0).set_params(n_estimators=2).fit(*table(50)))
    Xk = np.zeros((10, 1 << pf.shift), dtype=np.int32)
    fresh(Xk, pf.key, pf.link, pf.shift, pf.num, pf.den, pf.root, pf.depth)
    return sum(a.count("gather") for a in fresh.inspect_asm().values())


def svr_approx(n: int, Xq: np.ndarray) -> None:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.kernel_approximation import Nystroem
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVR

    X, y = table(n)
    truth = predict_form("eq4", [180.0, 0.06, -0.0008, 2.0, -2.5, 0.12], *Xq.astype(np.float64).T)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full = make_estimator("svr", 0).fit(X, y)
        ref = full.predict(Xq)
        C = full.regressor_["svr"].C
        rows = [("svr (all rows)", full, full.regressor_["svr"].support_vectors_.shape[0])]
        rng = np.random.default_rng(0)
        for m in (200, 500):
            sub = rng.choice(n, size=min(m, n), replace=False)
            cap = make_estimator("svr", 0).fit(X[sub], y[sub])
            rows.append((f"svr on {m} rows", cap, cap.regressor_["svr"].support_vectors_.shape[0]))
            nys = TransformedTargetRegressor(regressor=Pipeline([
                ("scale", StandardScaler()), ("map", Nystroem(gamma=1.0 / X.shape[1], n_components=m, random_state=0)),
                ("svr", LinearSVR(C=C, epsilon=0.1, max_iter=20000, random_state=0))]),
                transformer=StandardScaler()).fit(X, y)
            rows.append((f"nystroem {m} + linear svr", nys, m))
    print(f"train rows {n}; RMSE in g C m-2 yr-1 (truth: noise-free Eq 4; Rs mean {truth.mean():.0f})")
    print(f"{'model':<26} {'SV/comp':>7} {'rows/s':>11} {'RMSE vs full svr':>16} {'RMSE vs truth':>13}")
    for name, est, k in rows:
        t = best({"m": lambda: est.predict(Xq)})
        p = est.predict(Xq)
        print(f"{name:<26} {k:>7} {Xq.shape[0] / t['m']:>11,.0f} {np.sqrt(np.mean((p - ref) ** 2)):>16.2f} "
              f"{np.sqrt(np.mean((p - truth) ** 2)):>13.2f}", flush=True)


if __name__ == "__main__":
    main()
