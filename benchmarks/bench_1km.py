"""The whole chain measured stage by stage on a 0.05-degree window and projected to 1 km
(150 M land pixels x 15 years) on this machine.

    python benchmarks/bench_1km.py [--quick] [--scheduler threads|local-cluster] [--workers 1 2]

Stages and what is run (SYNTHETIC data in the real formats):

* ``drivers``: :mod:`bench_modis` -- MOD11A2 / MOD13A2 / MOD16A2 / MOD17A2H HDF4 tiles in
  the real layout through the real drivers stage (``write_cube``) at 1/120 degree; projected
  per tile-composite (317 land tiles, 46 or 23 composites a year, 15 years). Precipitation
  NetCDF and land-cover GeoTIFF are not timed here (``bench_drivers.py``: 15 years of a
  0.05-degree global NetCDF variable in ~2-3 min).
* the 0.05-degree window's annual driver cube, biome map and cell areas are written from the
  analytic synthetic world (``bench_product.write_inputs``; input fabrication, not timed);
  the ``biomes`` and ``sites`` stages are therefore not timed (both read maps chunk-wise or
  pointwise: seconds).
* ``models``: the training table is 300 synthetic sites per biome drawn from the window's
  cube with the true Eq 4 Rs x lognormal noise; every other biome present in the window (at
  least half) gets a random forest tuned as the models stage tunes it (``fit_search``, grid
  search with 3-fold site-grouped inner CV), the others keep the true Eq 4 model. A fixed
  cost (independent of the resolution).
* ``product``, ``uncertainty`` (``--mc`` realisations of the default mode, site bootstrap,
  ``--mc-pixels`` stratified sample), ``trends``, ``attribution``: the real stages. The
  product stage's stability diagnostic (``product/stability.parquet``: 20 drops + 10
  jackknife blocks, each refit's total evaluated on the default ``stability_sample_pixels``
  stratified sample) is timed as its own row ``stability``; its one pass over the grid
  (stratum counts + gathering the sample) is timed alone and scaled to the 1 km grid, the
  refits on the sample are not scaled (the same cells at any resolution).
* ``aoa (stand-in)``: the area-of-applicability index is being built on another branch
  (issue 15). As a stand-in, a nearest-neighbour dissimilarity index (Meyer & Pebesma 2021:
  distance to the nearest training row in standardised predictor space) is timed with
  ``scipy.spatial.cKDTree.query(workers=-1)`` on 1 M pixel-years of the forest biomes.
* ``report``: not run (its cost follows the display size, not the grid: ~20 s at 0.05
  degree global, ``bench_report.py``).

Per stage: time, land pixels per second, peak RSS (this process + its children, i.e. the
cluster's workers, sampled every 50 ms). The last line is
``projected_1km_hours_2cores=<h> peak_rss_gb=<GB>``: the sum of the per-land-pixel stages
scaled to 150 M land pixels; the uncertainty as its one pass over the grid (stratum counts and
gathering the sampled cells, timed alone by :func:`sample_scan`) scaled to the 746 M-cell
grid plus its realisations on the sample (the same ``--mc-pixels`` cells at any resolution,
so not scaled); the drivers from the per-tile-composite rate; plus the fixed model fits.
With ``--scheduler local-cluster --workers 1 2`` the dask stages are run once per worker
count in one invocation: speed-up, efficiency and Amdahl's serial fraction per stage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import bench_modis  # noqa: E402
from bench_product import KM1_CELLS, KM1_LAND_PIXELS, write_inputs  # noqa: E402

DASK_STAGES = ("product", "stability", "uncertainty", "trends", "attribution")


def _default_stability_pixels() -> int:
    from soilresp.config import ProductConfig

    return ProductConfig().stability_sample_pixels


STABILITY_PIXELS = _default_stability_pixels()


class PeakTreeRSS:
    """Peak RSS (bytes) of this process plus all its children while open."""

    def __init__(self, dt: float = 0.05):
        import psutil

        self.proc, self.dt, self.peak = psutil.Process(os.getpid()), dt, 0
        self._stop = threading.Event()

    def rss(self) -> int:
        tot = self.proc.memory_info().rss
        for c in self.proc.children(recursive=True):
            try:
                tot += c.memory_info().rss
            except Exception:
                pass
        return tot

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.dt)

    def __enter__(self):
        self.peak = self.rss()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.rss())


def training_table(out: Path, n_per_biome: int = 300, seed: int = 3) -> pd.DataFrame:
    """Synthetic sites drawn from the window's cube: predictors at the pixel, true Eq 4 Rs x noise."""
    import xarray as xr

    from soilresp.synthetic import TRUE_MODELS, eq4

    rng = np.random.default_rng(seed)
    cube = xr.open_zarr(out / "drivers" / "drivers.zarr", consolidated=False)
    biome = xr.open_zarr(out / "biomes" / "biomes.zarr", consolidated=False)["biome"].values
    parts = []
    for code, m in TRUE_MODELS.items():
        ii, jj = np.nonzero(biome == code)
        if ii.size == 0:  # every biome has a model (write_inputs): sites from any land pixel
            ii, jj = np.nonzero(biome > 0)
        k = rng.integers(0, ii.size, n_per_biome)
        yr = rng.integers(0, cube.sizes["year"], n_per_biome)
        d = {v: cube[v].isel(year=xr.DataArray(yr, dims="r"), lat=xr.DataArray(ii[k], dims="r"),
                          lon=xr.DataArray(jj[k], dims="r")).values for v in (m["T"], m["M"], m["P"])}
        rs = eq4(d[m["T"]], d[m["M"]], d[m["P"]], *m["params"]) * np.exp(rng.normal(0, 0.1, n_per_biome))
        df = pd.DataFrame(d)
        df["rs"], df["biome"], df["site_id"] = rs, code, [f"{code}-{i}" for i in k]
        df["lat"], df["lon"] = cube["lat"].values[ii[k]], cube["lon"].values[jj[k]]
        parts.append(df)
    tab = pd.concat(parts, ignore_index=True)
    for m in TRUE_MODELS.values():  # every saved model's predictors are columns (NaN off its biome)
        for v in (m["T"], m["M"], m["P"]):
            if v not in tab:
                tab[v] = np.nan
    return tab


def rf_biomes(tab: pd.DataFrame, biome_map: np.ndarray) -> list[int]:
    """Every other biome present in the window (sorted codes): at least half get a forest."""
    present = sorted(int(b) for b in np.unique(biome_map) if b > 0)
    return present[::2]


def fit_models(out: Path, tab: pd.DataFrame, rf: list[int]) -> float:
    from soilresp import io
    from soilresp.config import BIOMES
    from soilresp.models import BiomeModel, save_biome_model
    from soilresp.models.ml import fit_search
    from soilresp.synthetic import TRUE_MODELS

    io.write_table(out / "sites" / "training.parquet", tab, {})
    t0 = time.perf_counter()
    for code in rf:
        m = TRUE_MODELS[code]
        preds = [m["T"], m["M"], m["P"]]
        sub = tab[tab["biome"] == code].dropna(subset=preds)
        if len(sub) < 20:
            continue
        s = fit_search("rf", sub[preds].to_numpy(float), sub["rs"].to_numpy(float), seed=42, inner_folds=3,
                       groups=sub["site_id"].to_numpy())
        save_biome_model(out / "models", BiomeModel(code, "rf", preds, s.best_estimator_,
                                                    {"biome_name": BIOMES[code], "fallback": ""}))
    return time.perf_counter() - t0


def aoa_standin(out: Path, tab: pd.DataFrame, rf: list[int], n: int = 1_000_000) -> tuple[float, int]:
    """Seconds for the nearest-training-row distance of ``n`` pixel-years of the forest biomes."""
    import xarray as xr
    from scipy.spatial import cKDTree

    from soilresp.synthetic import TRUE_MODELS

    cube = xr.open_zarr(out / "drivers" / "drivers.zarr", consolidated=False)
    biome = xr.open_zarr(out / "biomes" / "biomes.zarr", consolidated=False)["biome"].values
    rng = np.random.default_rng(0)
    per = n // len(rf)
    todo = []
    for code in rf:
        m = TRUE_MODELS[code]
        preds = [m["T"], m["M"], m["P"]]
        ii, jj = np.nonzero(biome == code)
        if ii.size == 0:
            continue
        k = rng.integers(0, ii.size, per)
        yr = rng.integers(0, cube.sizes["year"], per)
        sel = {"year": xr.DataArray(yr, dims="r"), "lat": xr.DataArray(ii[k], dims="r"),
               "lon": xr.DataArray(jj[k], dims="r")}
        X = np.column_stack([cube[v].isel(sel).values for v in preds])
        T = tab.loc[tab["biome"] == code, preds].to_numpy(float)
        todo.append((X, T))
    t0 = time.perf_counter()
    rows = 0
    for X, T in todo:
        mu, sd = T.mean(0), T.std(0)
        tree = cKDTree((T - mu) / sd)
        d, _ = tree.query((X - mu) / sd, k=1, workers=-1)
        rows += X.shape[0]
    return time.perf_counter() - t0, rows


def sample_scan(out: Path, pixels: int, seed: int) -> float:
    """Seconds of the Monte Carlo's one pass over the grid (stratum counts, then gathering the
    sampled cells' drivers, :func:`soilresp.product.uncertainty.gather_sample`): the part of
    the uncertainty stage that grows with the grid; its realisations read only the sample."""
    from soilresp import io
    from soilresp.config import BIOMES
    from soilresp.models import load_biome_models
    from soilresp.product.uncertainty import MCSettings, gather_sample, inclusion_probabilities, stratum_counts

    t0 = time.perf_counter()
    models = load_biome_models(out / "models", BIOMES)
    cube = io.open_zarr(out / "drivers" / "drivers.zarr")
    bio = io.open_zarr(out / "biomes" / "biomes.zarr", ["biome", "region", "cell_area"])
    names = sorted({v for m in models.values() for v in m.predictors})
    counts = stratum_counts(bio["biome"], bio["region"])
    p_table = inclusion_probabilities(counts, pixels, MCSettings().min_per_stratum)
    first = cube[names[0]]
    chunks = dict(zip(first.dims, first.chunks))
    bch = {d: chunks[d] for d in bio["biome"].dims}
    b3 = bio["biome"].chunk(bch).data[None]
    r3 = bio["region"].chunk(bch).data[None]
    a3 = bio["cell_area"].broadcast_like(bio["biome"]).chunk(bch).data[None]
    gather_sample(b3, r3, a3, [cube[v].chunk(chunks).data for v in names], p_table, seed)
    return time.perf_counter() - t0


def _stability_alone(out: Path, cfgd: dict) -> None:
    """The product stage's stability part (``product/stability.parquet``: default drops and
    jackknife, each refit's total evaluated on the default stratified sample), timed apart
    from the map."""
    from soilresp import io
    from soilresp.config import BIOMES, config_from_dict
    from soilresp.models import load_biome_models
    from soilresp.pipeline import Context
    from soilresp.product import _stability

    d = {**cfgd, "product": {k: v for k, v in cfgd["product"].items() if not k.startswith("stability")}}
    ctx = Context(config_from_dict(d, base_dir=out), lambda *a: None)
    models = load_biome_models(out / "models", BIOMES)
    cube = io.open_zarr(out / "drivers" / "drivers.zarr")
    bio = io.open_zarr(out / "biomes" / "biomes.zarr", ["biome", "region", "cell_area"])
    _stability(ctx, models, cube, bio)


def run_dask_stages(out: Path, cfgd: dict, scheduler: str, workers: int) -> list[dict]:
    from soilresp.config import config_from_dict
    from soilresp.pipeline import STAGES, Context, compute_context

    cfg = config_from_dict(cfgd, base_dir=out)
    ctx = Context(cfg, lambda *a: None)
    rows = []
    with compute_context(scheduler, workers):
        for stage in DASK_STAGES:
            with PeakTreeRSS() as mem:
                t = time.perf_counter()
                if stage == "stability":
                    _stability_alone(out, cfgd)
                else:
                    STAGES[stage].run(ctx)
                dt = time.perf_counter() - t
            rows.append({"stage": stage, "seconds": dt, "peak_gb": mem.peak / 1e9})
            if stage == "uncertainty" and cfgd["product"]["mc_sample_pixels"]:
                rows[-1]["scan_s"] = sample_scan(out, cfgd["product"]["mc_sample_pixels"], cfgd["run"]["seed"])
            if stage == "stability" and STABILITY_PIXELS:
                rows[-1]["scan_s"] = sample_scan(out, STABILITY_PIXELS, cfgd["run"]["seed"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 x 10 degree window, 1 MODIS tile x 2 composites")
    ap.add_argument("--window", type=float, nargs=4, default=[-20.0, 40.0, -20.0, 40.0],
                    metavar=("LAT0", "LAT1", "LON0", "LON1"))
    ap.add_argument("--res", type=float, default=0.05)
    ap.add_argument("--scheduler", default="threads", choices=["threads", "local-cluster"])
    ap.add_argument("--workers", type=int, nargs="+", default=[2])
    ap.add_argument("--mc", type=int, default=100)
    ap.add_argument("--mc-pixels", type=int, default=40000)
    ap.add_argument("--tiles", type=int, default=2)
    ap.add_argument("--composites", type=int, default=6)
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--chunk", type=int, default=256,
                    help="grid chunk (cells); the 1 km globe has ~14,000 chunks of 256, a 20-degree "
                         "window only 4: a smaller chunk gives the workers enough blocks to balance")
    a = ap.parse_args()
    if a.quick:
        a.window, a.tiles, a.composites, a.mc = [0.0, 10.0, 10.0, 20.0], 1, 2, 20
    print(f"soilresp 1 km chain benchmark (SYNTHETIC data, real formats); chunk {a.chunk}; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f} (machine shared with other sessions)")
    table = []
    # drivers from real-format MODIS tiles
    with PeakTreeRSS() as mem:
        md = bench_modis.bench(a.tiles, a.composites, 1 / 120, tmp=a.tmp)
    print(md["table"].to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    drv_s = float(md["table"]["stage_s"].sum())
    table.append({"stage": "drivers (MODIS, 4 products)", "seconds": drv_s, "land_px": md["grid"].nlat * md["grid"].nlon,
                  "peak_gb": mem.peak / 1e9, "km1_h": md["hours"]})
    # window inputs
    out = Path(tempfile.mkdtemp(prefix="soilresp-bench-1km-", dir=a.tmp))
    t0 = time.perf_counter()
    info = write_inputs(out, a.res, tuple(a.window), chunk=a.chunk)
    print(f"window {a.window} at {a.res} deg: {info['cells']:,} cells, {info['land']:,} land pixels x "
          f"{info['years']} years (inputs written in {time.perf_counter() - t0:.0f} s, not timed)")
    land, cells = info["land"], info["cells"]
    tab = training_table(out)
    import xarray as xr

    bmap = xr.open_zarr(out / "biomes" / "biomes.zarr", consolidated=False)["biome"].values
    rf = rf_biomes(tab, bmap)
    with PeakTreeRSS() as mem:
        fit_s = fit_models(out, tab, rf)
    table.append({"stage": f"models (rf in {len(rf)}/{len(np.unique(bmap[bmap > 0]))} biomes, grid search)",
                  "seconds": fit_s,
                  "land_px": np.nan, "peak_gb": mem.peak / 1e9, "km1_h": fit_s / 3600})
    with PeakTreeRSS() as mem:
        aoa_s, aoa_rows = aoa_standin(out, tab, rf)
    table.append({"stage": "aoa stand-in (NN DI, cKDTree)", "seconds": aoa_s, "land_px": aoa_rows / info["years"],
                  "peak_gb": mem.peak / 1e9,
                  "km1_h": aoa_s / aoa_rows * KM1_LAND_PIXELS * info["years"] / 3600})
    cfgd = {"run": {"output_dir": str(out), "years": [2000, 2014], "seed": 42},
            "grid": {"resolution": a.res, "lat_min": a.window[0], "lat_max": a.window[1],
                     "lon_min": a.window[2], "lon_max": a.window[3], "chunk": a.chunk},
            "product": {"mc_samples": a.mc, "mc_sample_pixels": a.mc_pixels, "mc_batch": max(1, a.mc // 2),
                        "mc_qualitative": "none", "stability_drops": 0, "stability_jackknife": 0},
            "trends": {"bootstrap": 1000},
            "attribution": {"drivers": ["tas", "pr", "spei", "tc", "sv", "bg"]}}
    runs = {}
    for w in a.workers:
        for stage in DASK_STAGES[2:]:
            shutil.rmtree(out / stage, ignore_errors=True)
        shutil.rmtree(out / "product", ignore_errors=True)
        runs[w] = run_dask_stages(out, cfgd, a.scheduler, w)
        print(f"{a.scheduler} x {w}: " + ", ".join(f"{r['stage']} {r['seconds']:.1f} s" for r in runs[w]), flush=True)
    main_w = 2 if 2 in runs else a.workers[-1]
    for r in runs[main_w]:
        s = r["seconds"]
        if r["stage"] in ("uncertainty", "stability") and "scan_s" in r:
            # the grid pass scales with the cells; the realisations / refits on the sample do not
            scan = min(r["scan_s"], s)
            h = (scan * KM1_CELLS / cells + (s - scan)) / 3600
            print(f"{r['stage']}: grid pass (stratum counts + gathering the sample) {scan:.1f} s, "
                  f"{'realisations' if r['stage'] == 'uncertainty' else 'refits'} on the sample "
                  f"{s - scan:.1f} s (fixed at any resolution)")
        elif r["stage"] == "uncertainty":
            h = s / 3600 * (KM1_CELLS / cells)
        else:
            h = s / land * KM1_LAND_PIXELS / 3600
        table.append({"stage": r["stage"], "seconds": s, "land_px": land, "peak_gb": r["peak_gb"], "km1_h": h})
    df = pd.DataFrame(table)
    df["land_px_per_s"] = df["land_px"] / df["seconds"]
    print(df[["stage", "seconds", "land_px_per_s", "peak_gb", "km1_h"]].to_string(
        index=False, float_format=lambda v: f"{v:,.2f}"))
    if len(runs) > 1 and 1 in runs:
        print("\nscaling (dask stages, same window):")
        for w in sorted(runs):
            if w == 1:
                continue
            for r1, rw in zip(runs[1], runs[w]):
                sp = r1["seconds"] / rw["seconds"]
                f = max(0.0, (1 / sp - 1 / w) / (1 - 1 / w))
                proj = {n: 1 / (f + (1 - f) / n) for n in (4, 8, 16, 64)}
                print(f"  {r1['stage']:<12} 1 worker {r1['seconds']:7.1f} s, {w} workers {rw['seconds']:7.1f} s: "
                      f"speed-up {sp:.2f}, efficiency {sp / w:.2f}, serial fraction {f:.2f}; "
                      "Amdahl speed-up " + ", ".join(f"{n}: {v:.1f}" for n, v in proj.items()))
    sp = out / "uncertainty" / "mc_summary.parquet"
    if sp.is_file() and a.mc_pixels:
        g = pd.read_parquet(sp)
        g = g[g["region"] == "global"]
        rel = float((g["sampling_se_pg"] / g["total_pg"]).mean())
        f = min(a.mc_pixels / land, 0.99)  # finite-population factor (1 - p) of this window
        rel_inf = rel / np.sqrt(1 - f)  # the same n among 150 M pixels (p -> 0)
        need = a.mc_pixels * (rel_inf / 0.005) ** 2
        print(f"Monte Carlo sampling error of the global total with {a.mc_pixels:,} sampled pixels: "
              f"{100 * rel:.2f} % (mean over years) in this window, {100 * rel_inf:.2f} % for the same sample "
              f"among 1 km's 150 M pixels; < 0.5 % there needs about {max(need, 1):,.0f} pixels "
              "(SE ~ 1/sqrt(n), same stratification)")
    shutil.rmtree(out, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"projected_1km_hours_2cores={df['km1_h'].sum():.2f} peak_rss_gb={df['peak_gb'].max():.2f}")


if __name__ == "__main__":
    main()
