"""Throughput of soilresp.stats against the usual per-pixel Python loops (issue 3).

Run: python benchmarks/bench_stats.py [--pixels 2000000] [--pc-pixels 1000000]

One run, one synthetic data set (float32, n = 15 annual values per pixel, AR(1) noise plus
a random trend, rounded to 0.1 so there are ties, 2 % missing values; six correlated
drivers for the partial correlations). Prints pixels/s for

* soilresp.stats.trend_test (Mann-Kendall + Theil-Sen + Sen CI, all pixels) vs loops of
  pymannkendall.original_test and of scipy (kendalltau + theilslopes) on a subsample of
  the same pixels;
* soilresp.stats.partial_corr (k drivers, detrended) vs a loop of pingouin.partial_corr
  (k calls per pixel, time as a covariate) on a subsample;

the ratios, and the projected wall time for 150 million pixels (a 1 km global land grid).
The numba kernels use all cores (``NUMBA_NUM_THREADS``); the loops use one, as they would.
Compilation is excluded (one warm-up call on a few pixels first).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np

GLOBAL_PIXELS = 150e6


def make_data(pixels: int, n: int, k: int, seed: int):
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float32)
    e = rng.normal(size=(pixels, n)).astype(np.float32)
    for j in range(1, n):
        e[:, j] += 0.3 * e[:, j - 1]
    y = 800 + rng.normal(scale=3, size=(pixels, 1)).astype(np.float32) * t + 20 * e
    y = np.round(y, 1)
    y[rng.random(y.shape) < 0.02] = np.nan
    return y


def make_drivers(y, k: int, seed: int):
    rng = np.random.default_rng(seed + 1)
    pixels, n = y.shape
    X = rng.normal(size=(pixels, k, n)).astype(np.float32)
    X += 0.5 * rng.normal(size=(pixels, 1, n)).astype(np.float32)
    X[:, 0] += 0.02 * np.nan_to_num(y - 800)
    return X


def rate(pixels: int, seconds: float) -> float:
    return pixels / seconds


def best_of(fn, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def fmt_time(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pixels", type=int, default=2_000_000, help="pixels for our MK + Sen")
    ap.add_argument("--pc-pixels", type=int, default=1_000_000,
                    help="pixels for our partial correlation")
    ap.add_argument("--sub", type=int, default=2000, help="pixels for the pymannkendall/scipy loops")
    ap.add_argument("--pg-sub", type=int, default=40, help="pixels for the pingouin loop")
    ap.add_argument("--years", type=int, default=15)
    ap.add_argument("--drivers", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-xr", dest="xr", action="store_false",
                    help="skip the xr_trend (dask) line")
    args = ap.parse_args()

    import numba
    import pandas as pd
    import pingouin as pg
    import pymannkendall as pmk
    from scipy import stats as sps

    from soilresp.stats import partial_corr, trend_test

    n, k = args.years, args.drivers
    P = max(args.pixels, args.pc_pixels, args.sub, args.pg_sub)
    y = make_data(P, n, k, args.seed)
    trend_test(y[:64])  # compile / load the numba cache before naming the threading layer
    print(f"soilresp.stats benchmark on {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, numba threads = {numba.get_num_threads()} "
          f"({numba.threading_layer()} layer)")
    print(f"data: {P:,} synthetic pixels x {n} years (float32, ties, 2 % missing), "
          f"{k} drivers\n")

    # ---------------- Mann-Kendall + Theil-Sen ----------------
    Y = y[: args.pixels]
    trend_test(Y[:64])  # compile / load the numba cache
    t_ours = best_of(lambda: trend_test(Y), args.repeat)
    r_ours = rate(len(Y), t_ours)

    sub = y[: args.sub]
    x = np.arange(n, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        ref = [pmk.original_test(row) for row in sub]
        t_pmk = time.perf_counter() - t0
        t0 = time.perf_counter()
        for row in sub:
            ok = np.isfinite(row)
            sps.kendalltau(x[ok], row[ok])
            sps.theilslopes(row[ok], x[ok])
        t_sp = time.perf_counter() - t0
    r_pmk, r_sp = rate(len(sub), t_pmk), rate(len(sub), t_sp)
    ours_sub = trend_test(sub)
    agree = max(max(abs(ours_sub["s"][i] - ref[i].s), abs(ours_sub["p"][i] - ref[i].p),
                    abs(ours_sub["slope"][i] - ref[i].slope)) for i in range(len(sub)))

    print("Mann-Kendall + Theil-Sen (S, Var S, z, p, tau, slope, intercept, 95 % Sen CI)")
    print(f"  soilresp.stats.trend_test  {len(Y):>10,} px  {r_ours:>14,.0f} px/s  "
          f"-> 150 M px in {fmt_time(GLOBAL_PIXELS / r_ours)}")
    print(f"  pymannkendall loop         {len(sub):>10,} px  {r_pmk:>14,.0f} px/s  "
          f"-> 150 M px in {fmt_time(GLOBAL_PIXELS / r_pmk)}")
    print(f"  scipy kendalltau+theilslopes loop {len(sub):>3,} px  {r_sp:>11,.0f} px/s  "
          f"-> 150 M px in {fmt_time(GLOBAL_PIXELS / r_sp)}")
    print(f"  speed-up: {r_ours / r_pmk:,.0f}x pymannkendall, {r_ours / r_sp:,.0f}x scipy "
          f"(target >= 1000x pymannkendall); max |diff| vs pymannkendall on the subsample "
          f"(S, p, slope) = {agree:.1e}")
    if args.xr:
        import xarray as xr

        from soilresp.stats import xr_trend

        side = int(np.sqrt(len(Y)))
        da = xr.DataArray(Y[: side * side].reshape(side, side, n), dims=("lat", "lon", "year"),
                          coords={"year": np.arange(2000, 2000 + n)})
        dac = da.chunk({"lat": max(1, side // 8)})
        t_xr = best_of(lambda: xr_trend(dac).compute(), args.repeat)
        r_xr = rate(side * side, t_xr)
        print(f"  xr_trend, dask threads, {dac.data.numblocks[0]} chunks {side * side:>8,} px "
              f"{r_xr:>14,.0f} px/s  -> 150 M px in {fmt_time(GLOBAL_PIXELS / r_xr)}")
    print()

    # ---------------- partial correlation ----------------
    Ypc = y[: args.pc_pixels]
    X = make_drivers(Ypc, k, args.seed)
    partial_corr(Ypc[:64], X[:64])
    t_pc = best_of(lambda: partial_corr(Ypc, X), args.repeat)
    r_pc = rate(len(Ypc), t_pc)

    m = args.pg_sub
    tcol = np.arange(n, dtype=float)
    names = [f"x{j}" for j in range(k)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        for i in range(m):
            df = pd.DataFrame({"y": Ypc[i].astype(float), "time": tcol,
                               **{nm: X[i, j].astype(float) for j, nm in enumerate(names)}})
            for j, nm in enumerate(names):
                pg.partial_corr(df, x=nm, y="y", covar=[o for o in names if o != nm] + ["time"])
        t_pg = time.perf_counter() - t0
    r_pg = rate(m, t_pg)
    print(f"Partial correlation ({k} drivers, each controlling for the other {k - 1} + linear "
          f"trend; r and p)")
    print(f"  soilresp.stats.partial_corr {len(Ypc):>9,} px  {r_pc:>14,.0f} px/s  "
          f"-> 150 M px in {fmt_time(GLOBAL_PIXELS / r_pc)}")
    print(f"  pingouin.partial_corr loop  {m:>9,} px  {r_pg:>14,.1f} px/s  "
          f"-> 150 M px in {fmt_time(GLOBAL_PIXELS / r_pg)}")
    print(f"  speed-up: {r_pc / r_pg:,.0f}x pingouin (target >= 5000x)")


if __name__ == "__main__":
    main()
