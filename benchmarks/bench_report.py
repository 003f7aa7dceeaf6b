"""Time and peak memory of the report's map figures on a large grid (issue 8).

Writes a run folder with a random Rs cube (year, lat, lon; chunked Zarr) at ``--resolution``
and six per-pixel partial-correlation maps, then draws Fig 1, Fig 6 and Fig S2 with
``soilresp.report.write_report`` (the other figures are reported absent). Prints the cube size,
the time per figure and the peak resident memory, to show that maps are reduced before they
are loaded (the peak stays far below the cube size at fine resolution).

    python benchmarks/bench_report.py --resolution 0.05 --years 15
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr


def make_run(root: Path, res: float, years: int, chunk: int) -> float:
    from soilresp import io

    lat = np.arange(-60 + res / 2, 84, res)
    lon = np.arange(-180 + res / 2, 180, res)
    yr = np.arange(2000, 2000 + years)
    rng = da.random.default_rng(0)
    rs = rng.gamma(4.0, 150.0, size=(years, lat.size, lon.size), chunks=(years, chunk, chunk)).astype(np.float32)
    ds = xr.Dataset({"rs": (("year", "lat", "lon"), rs)}, coords={"year": yr, "lat": lat, "lon": lon})
    ds["rs"].attrs["units"] = "g C m-2 yr-1"
    io.write_zarr(root / "product" / "rs.zarr", ds)
    prof = pd.DataFrame({"lat": lat, "mean_rs": 600.0, "total_tg": 10.0})
    io.write_table(root / "product" / "latitude_profile.parquet", prof)
    tot = pd.DataFrame([{"region": r, "year": int(y), "total_pg": 70.0 + i, "share": 1.0}
                        for i, r in enumerate(("global", "tropical", "temperate", "boreal")) for y in yr])
    io.write_table(root / "product" / "totals.parquet", tot)
    pc = xr.Dataset(coords={"lat": lat, "lon": lon}, attrs={"df": years - 8})
    for n in ("tas", "pr", "spei", "tc", "sv", "bg"):
        r = rng.uniform(-1, 1, size=(lat.size, lon.size), chunks=chunk).astype(np.float32)
        pc[f"r_{n}"] = (("lat", "lon"), r)
        pc[f"p_{n}"] = (("lat", "lon"), rng.uniform(0, 1, size=r.shape, chunks=chunk).astype(np.float32))
    io.write_zarr(root / "attribution" / "pixel_partial_corr.zarr", pc)
    return rs.nbytes / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resolution", type=float, default=0.1, help="grid cell size, degrees")
    ap.add_argument("--years", type=int, default=15)
    ap.add_argument("--chunk", type=int, default=720, help="lat/lon chunk size, cells")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "run"
        t0 = time.perf_counter()
        gb = make_run(root, args.resolution, args.years, args.chunk)
        t_make = time.perf_counter() - t0
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        from soilresp.report import FIGURES, save_figure

        times = {}
        for name in ("fig1_mean_rs", "fig6_pixel_partial_corr", "figS2_totals"):
            t0 = time.perf_counter()
            save_figure(FIGURES[name].draw(root), Path(tmp) / "rep", name, ("png", "svg"))
            times[name] = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"grid {args.resolution} deg, {args.years} years: Rs cube {gb:.2f} GB (written in {t_make:.0f} s)")
    for k, v in times.items():
        print(f"  {k:<26} {v:6.1f} s (PNG + SVG)")
    print(f"peak RSS {rss:.2f} GB (after writing the run: {rss0:.2f} GB)")


if __name__ == "__main__":
    main()
