"""Calibration of the Monte Carlo modes on the hard twin world (issue 16).

For each seed: write the hard synthetic world (``soilresp.synthetic.write_world(kind="hard")``)
at a coarse resolution, run the stages up to ``uncertainty`` with every mode, and compare each
mode's nominal 95 % interval with the known truth. Reports, per mode:

* empirical coverage of the annual global and regional totals over (seed, year) and of the
  global and regional Sen trend over seeds;
* mean interval width and mean half-width / RMS error of the central estimate;
* the mean interval score (Gneiting & Raftery 2007, JASA 102:359, eq. 43, alpha = 0.05):
  IS = (hi - lo) + (2 / alpha) (lo - x) 1{x < lo} + (2 / alpha) (x - hi) 1{x > hi};
* the largest |MC median - central| in % of the central estimate.

Usage: ``python benchmarks/bench_calibration.py --seeds 10 --resolution 4 --mc 100 --out /tmp/calib``
(resumes: a seed whose run finished is not recomputed). Prints a Markdown table and writes
``calibration.csv`` (one row per mode, seed, region, year) below ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

MODES = ["paper", "covariance", "site-bootstrap", "selection-bootstrap", "structural"]
STAGES = ["field", "drivers", "biomes", "sites", "models", "product", "uncertainty"]
ALPHA = 0.05


def config_text(res: float, seed: int, mc: int) -> str:
    from soilresp.demo import demo_config_text

    t = demo_config_text(res, seed, mc=mc, cv_folds=5, families=("nls",))
    t = t.replace("n_jobs = 2", "n_jobs = 1")
    t = t.replace(f"mc_samples = {mc}\n", f"mc_samples = {mc}\nmc_mode = {json.dumps(MODES)}\n"
                  "mc_group_km = 55.66\nstability_drops = 0\nstability_jackknife = 0\n")
    return t


def run_seed(root: Path, res: float, seed: int, mc: int) -> pd.DataFrame:
    from soilresp import io
    from soilresp.config import load_config
    from soilresp.pipeline import Context, compute_context, run_all
    from soilresp.synthetic import write_world

    d = root / f"seed{seed}"
    if not (d / "world" / "truth.json").is_file():
        write_world(d / "world", resolution=res, seed=seed, kind="hard")
    (d / "soilresp.toml").write_text(config_text(res, seed, mc))
    cfg = load_config(d / "soilresp.toml")
    with compute_context("threads"):
        run_all(Context(cfg), STAGES)
    truth = json.loads((d / "world" / "truth.json").read_text())
    sm = io.read_table(d / "run" / "uncertainty" / "mc_summary.parquet")
    ts = io.read_table(d / "run" / "uncertainty" / "mc_trend_summary.parquet")
    y0 = truth["years"][0]
    rows = []
    for _, r in sm.iterrows():
        x = truth["totals_pg_per_yr"][r["region"]][int(r["year"]) - y0]
        rows.append(dict(seed=seed, mode=r["mode"], region=r["region"], year=int(r["year"]), what="total",
                         truth=x, central=r["central_pg"], lo=r["mc_lo"], hi=r["mc_hi"], median=r["mc_median"]))
    for _, r in ts.iterrows():
        x = truth["trends_pg_per_yr2"][r["region"]]["sen_slope"]
        rows.append(dict(seed=seed, mode=r["mode"], region=r["region"], year=-1, what="trend", truth=x,
                         central=r["central_slope"], lo=r["slope_lo"], hi=r["slope_hi"], median=r["slope_median"]))
    return pd.DataFrame(rows)


def interval_score(lo, hi, x, alpha=ALPHA):
    """Gneiting & Raftery (2007) eq. 43; lower is better."""
    return (hi - lo) + 2 / alpha * np.clip(lo - x, 0, None) + 2 / alpha * np.clip(x - hi, 0, None)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (mode, what, region), g in df.groupby(["mode", "what", "region"], sort=False):
        err = g["central"] - g["truth"]
        rms = float(np.sqrt(np.mean(err ** 2)))
        hw = float(np.mean((g["hi"] - g["lo"]) / 2))
        out.append(dict(mode=mode, what=what, region=region, cases=len(g),
                        coverage=float(np.mean((g["lo"] <= g["truth"]) & (g["truth"] <= g["hi"]))),
                        mean_width=float(np.mean(g["hi"] - g["lo"])), rms_error=rms,
                        halfwidth_over_rms=hw / rms if rms else np.nan,
                        interval_score=float(np.mean(interval_score(g["lo"], g["hi"], g["truth"]))),
                        max_median_vs_central_pct=float(np.max(np.abs(100 * (g["median"] - g["central"])
                                                                         / g["central"]))) if what == "total" else np.nan))
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--resolution", type=float, default=4.0)
    ap.add_argument("--mc", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("/tmp/soilresp-calibration"))
    ap.add_argument("--summarise-only", action="store_true", help="summarise the seeds already run")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    parts = []
    for seed in range(a.first_seed, a.first_seed + a.seeds):
        done = a.out / f"seed{seed}" / "calibration_rows.csv"
        if a.summarise_only:
            if done.is_file():
                parts.append(pd.read_csv(done))
            continue
        t1 = time.perf_counter()
        rows = run_seed(a.out, a.resolution, seed, a.mc)
        rows.to_csv(done, index=False)
        parts.append(rows)
        print(f"seed {seed}: {time.perf_counter() - t1:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)
    df = pd.concat(parts, ignore_index=True)
    a.seeds = df["seed"].nunique()
    df.to_csv(a.out / "calibration.csv", index=False)
    s = summarise(df)
    s.to_csv(a.out / "calibration_summary.csv", index=False)
    mc = "?" if a.summarise_only else a.mc
    print(f"\n{a.seeds} seeds, {a.resolution} degree, {mc} realisations per mode, "
          f"{time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f}\n")
    show = s[s.region.isin(["global", "tropical", "temperate", "boreal"])]
    print(show.to_markdown(index=False, floatfmt=".3g"))
    print("\n" + central_checks(df))


def central_checks(df: pd.DataFrame) -> str:
    """The demo's hard-world checks of the central estimate, per seed (mode-independent):
    global total within 5 % every year, global Sen trend with the true sign and within 20 %."""
    one = df[df["mode"] == df["mode"].iloc[0]]
    rows = []
    for seed, g in one.groupby("seed"):
        t = g[(g.what == "total") & (g.region == "global")]
        tr = g[(g.what == "trend") & (g.region == "global")].iloc[0]
        rel = float(np.max(np.abs(t["central"] / t["truth"] - 1)))
        trel = float(tr["central"] / tr["truth"] - 1)
        rows.append(dict(seed=seed, max_abs_total_error_pct=100 * rel, total_within_5pct=rel <= 0.05,
                         trend_error_pct=100 * trel, trend_sign=bool(np.sign(tr["central"]) == np.sign(tr["truth"])),
                         trend_within_20pct=abs(trel) <= 0.20))
    t = pd.DataFrame(rows)
    return (t.to_markdown(index=False, floatfmt=".3g") + f"\n\ntotal within 5 % every year: {int(t.total_within_5pct.sum())}"
            f"/{len(t)} seeds; trend sign right: {int(t.trend_sign.sum())}/{len(t)}; trend within 20 %: "
            f"{int(t.trend_within_20pct.sum())}/{len(t)}")


if __name__ == "__main__":
    main()
