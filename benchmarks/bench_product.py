"""Time and peak memory of the product chain (predict -> totals -> Monte Carlo -> trends ->
partial correlations -> attribution) on the synthetic world, and a projection of the 1 km
global run from the measured throughput (issue 7 targets on 2 cores: peak memory < 4 GB at
0.05 degree; projected 1 km central estimate with trends and partial correlations < 8 h).

    python benchmarks/bench_product.py                       # 0.25 deg global + 0.05 deg window
    python benchmarks/bench_product.py --res 0.25 --mc 500 --mc-pixels 20000

The annual driver cube is written directly from the analytic world (soilresp.synthetic,
block by block; not timed as part of the chain), the biome models are the world's true
Eq 4 models (so the benchmark measures the product chain, not the fitting). The stages
are the real ones (soilresp.pipeline.STAGES[...].run) on the threaded dask scheduler.
Peak memory is the maximum resident set size of this process sampled every 50 ms during
each stage. Outputs are deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

KM1_LAND_PIXELS = 150e6          # 1 km land pixels (issue 7)
KM1_CELLS = 17280 * 43200        # 1/120 degree cells between 60S and 84N
VARS = ("tas", "lst_night", "sm", "et_pet", "gpp", "evi", "pr", "spei", "tc", "sv", "bg")


class PeakRSS:
    """Maximum RSS (bytes) of this process while the context is open."""

    def __init__(self, dt: float = 0.05):
        import psutil

        self.proc, self.dt, self.peak = psutil.Process(os.getpid()), dt, 0
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.dt)

    def __enter__(self):
        self.peak = self.proc.memory_info().rss
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def write_inputs(out: Path, res: float, bounds, years=(2000, 2014), chunk=256, seed=42) -> dict:
    """drivers.zarr, biomes.zarr and the true models for a window of the synthetic world."""
    import xarray as xr

    from soilresp import io
    from soilresp.biomes import classify_region
    from soilresp.config import BIOMES
    from soilresp.grid import Grid
    from soilresp.models import BiomeModel, NonlinearRs, save_biome_model
    from soilresp.synthetic import TRUE_MODELS, SyntheticWorld

    g = Grid(res, bounds[0], bounds[1], bounds[2], bounds[3], chunk)
    world = SyntheticWorld(g, years, seed)
    ny = world.n_years
    coords = {"year": world.year_values, **g.coords()}
    tmp = out / "drivers" / "drivers.zarr"
    bio_path = out / "biomes" / "biomes.zarr"
    for p in (tmp, bio_path):
        shutil.rmtree(p, ignore_errors=True)
        p.parent.mkdir(parents=True, exist_ok=True)
    ch = {"year": -1, **g.chunks()}
    xr.Dataset({v: (("year", "lat", "lon"), np.empty((ny,) + g.shape, np.float32)) for v in VARS},
               coords=coords).chunk(ch).to_zarr(tmp, mode="w", compute=False, consolidated=False)
    xr.Dataset({"biome": (("lat", "lon"), np.empty(g.shape, np.int8)),
                "region": (("lat", "lon"), np.empty(g.shape, np.int8)),
                "tas_mean": (("lat", "lon"), np.empty(g.shape, np.float32))},
               coords=g.coords()).chunk(g.chunks()).to_zarr(bio_path, mode="w", compute=False,
                                                             consolidated=False)
    blocks = [(slice(i, min(i + chunk, g.nlat)), slice(j, min(j + chunk, g.nlon)))
              for i in range(0, g.nlat, chunk) for j in range(0, g.nlon, chunk)]
    units = {"tas": "degC", "lst_night": "degC", "sm": "m3 m-3", "et_pet": "1", "gpp": "g C m-2 yr-1",
             "evi": "1", "pr": "mm yr-1", "spei": "1", "tc": "%", "sv": "%", "bg": "%"}

    def one(b):
        si, sj = b
        d = world.block(g.lat[si], g.lon[sj])
        xr.Dataset({v: (("year", "lat", "lon"), d[v]) for v in VARS}).to_zarr(
            tmp, region={"year": slice(None), "lat": si, "lon": sj}, consolidated=False)
        region = classify_region(d["tas_mean"])
        xr.Dataset({"biome": (("lat", "lon"), d["biome"]), "region": (("lat", "lon"), region),
                    "tas_mean": (("lat", "lon"), d["tas_mean"])}).to_zarr(
            bio_path, region={"lat": si, "lon": sj}, consolidated=False)
        return int((d["biome"] > 0).sum())

    with ThreadPoolExecutor(2) as ex:
        land = sum(ex.map(one, blocks))
    import zarr

    zg = zarr.open_group(str(tmp), mode="r+")
    for v in VARS:
        zg[v].attrs.update({"units": units[v]})
    io.mark_complete(tmp)
    bg = zarr.open_group(str(bio_path), mode="r+")
    area = g.cell_area()
    ds_area = xr.Dataset({"cell_area": area})
    ds_area.to_zarr(bio_path, mode="a", consolidated=False)
    io.mark_complete(bio_path)
    del bg
    for code, m in TRUE_MODELS.items():
        est = NonlinearRs("eq4")
        est.params_ = np.asarray(m["params"], float)
        est.cov_ = np.zeros((6, 6))
        est.stderr_ = np.zeros(6)
        est.q10_, est.n_obs_, est.at_bound_, est.n_features_in_ = float(np.exp(10 * est.params_[1])), 0, False, 3
        save_biome_model(out / "models", BiomeModel(code, "nls", [m["T"], m["M"], m["P"]], est,
                                                    {"biome_name": BIOMES[code], "fallback": ""}))
    return {"grid": g, "land": land, "cells": g.nlat * g.nlon, "years": ny}


def bench(res: float, bounds, args) -> dict:
    from soilresp.config import config_from_dict
    from soilresp.pipeline import STAGES, Context, compute_context

    out = Path(tempfile.mkdtemp(prefix=f"soilresp-bench-product-{res}-", dir=args.tmp))
    t0 = time.perf_counter()
    info = write_inputs(out, res, bounds)
    t_inputs = time.perf_counter() - t0
    size_gb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e9
    cfg = config_from_dict({
        "run": {"output_dir": str(out), "years": [2000, 2014], "seed": 42},
        "grid": {"resolution": res, "lat_min": bounds[0], "lat_max": bounds[1], "lon_min": bounds[2],
                 "lon_max": bounds[3], "chunk": 256},
        "product": {"mc_samples": args.mc, "mc_sample_pixels": args.mc_pixels, "mc_batch": max(1, args.mc),
                    "mc_qualitative": "none"},
        "trends": {"bootstrap": 1000, "fdr": args.fdr},
        "attribution": {"drivers": ["tas", "pr", "spei", "tc", "sv", "bg"]},
    }, base_dir=out)
    phases: list[tuple[str, float]] = []

    def progress(name, done, total):
        phases.append((f"{name} {done}/{total}", time.perf_counter()))

    ctx = Context(cfg, progress)
    rows = []
    with compute_context("threads"):
        for stage in ("product", "uncertainty", "trends", "attribution"):
            phases.clear()
            with PeakRSS() as mem:
                t = time.perf_counter()
                STAGES[stage].run(ctx)
                dt = time.perf_counter() - t
            rows.append({"stage": stage, "seconds": dt, "peak_gb": mem.peak / 1e9,
                         "phases": [(n, round(p - t, 1)) for n, p in phases]})
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return {"res": res, "bounds": bounds, **info, "inputs_s": t_inputs, "inputs_gb": size_gb,
            "rows": rows, "out": out}


def report(r: dict, args) -> None:
    land, cells, ny = r["land"], r["cells"], r["years"]
    print(f"\n== {r['res']} deg, lat {r['bounds'][0]}..{r['bounds'][1]}, lon {r['bounds'][2]}..{r['bounds'][3]}: "
          f"{cells:,} cells, {land:,} land (biome) pixels x {ny} years; inputs written in "
          f"{r['inputs_s']:.0f} s ({r['inputs_gb']:.2f} GB on disk)")
    print(f"{'stage':<12} {'time s':>8} {'peak GB':>8} {'land px/s':>12} {'px-years/s':>12} "
          f"{'1 km (land) h':>14} {'1 km (cells) h':>15}")
    tot_land = tot_cells = 0.0
    for row in r["rows"]:
        s = row["seconds"]
        per_land, per_cell = s / land, s / cells
        if row["stage"] == "uncertainty" and args.mc_pixels:
            h_land = h_cell = s / 3600 * (KM1_CELLS / cells)  # a scan of the grid + a fixed sample
        else:
            h_land, h_cell = per_land * KM1_LAND_PIXELS / 3600, per_cell * KM1_CELLS / 3600
        if row["stage"] != "uncertainty":
            tot_land += h_land
            tot_cells += h_cell
        print(f"{row['stage']:<12} {s:8.1f} {row['peak_gb']:8.2f} {land / s:12,.0f} {land * ny / s:12,.0f} "
              f"{h_land:14.2f} {h_cell:15.2f}")
        spans: dict[str, list[float]] = {}
        for n, t in row["phases"]:
            spans.setdefault(n.rsplit(" ", 1)[0], []).append(t)
        print("             phases (s from stage start): " +
              ", ".join(f"{n} {min(v):.1f}-{max(v):.1f}" for n, v in spans.items()))
    print(f"projected 1 km central estimate + trends + partial correlations + attribution: "
          f"{tot_land:.2f} h scaled by land pixels (150 M), {tot_cells:.2f} h scaled by all cells "
          f"({KM1_CELLS / 1e6:.0f} M) (target < 8 h)")
    print(f"peak memory over the chain: {max(x['peak_gb'] for x in r['rows']):.2f} GB (target < 4 GB at 0.05 deg)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--res", type=float, nargs="+", default=[0.25, 0.05])
    ap.add_argument("--window", type=float, nargs=4, default=[-20.0, 40.0, -20.0, 40.0],
                    metavar=("LAT0", "LAT1", "LON0", "LON1"), help="window for resolutions < 0.25 deg")
    ap.add_argument("--mc", type=int, default=500, help="Monte Carlo realisations")
    ap.add_argument("--mc-pixels", type=int, default=20000, help="stratified sample size (0 = full grid)")
    ap.add_argument("--fdr", action="store_true", help="Benjamini-Hochberg on every map")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--tmp", default=None, help="folder for the temporary run (default: system temp)")
    args = ap.parse_args()
    import dask

    print(f"soilresp product benchmark (SYNTHETIC world); {os.cpu_count()} CPUs, dask threads; "
          f"load average before start {os.getloadavg()[0]:.1f}")
    for res in args.res:
        bounds = (-60.0, 84.0, -180.0, 180.0) if res >= 0.25 else tuple(args.window)
        with dask.config.set(scheduler="threads"):
            r = bench(res, bounds, args)
        report(r, args)
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
