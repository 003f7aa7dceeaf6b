"""Memory and time of building a 0.05-degree global driver cube (issue 6 acceptance).

Run: python benchmarks/bench_drivers.py [--resolution 0.05] [--years 15] [--workdir DIR]
                                        [--keep] [--chunk 256]

1. Writes the synthetic input: one CF-NetCDF file per year of monthly near-surface air
   temperature on the [grid] -60..84 N x -180..180 E at ``--resolution`` (0.05 deg: 2880 x
   7200 cells, 12 steps a year), packed int16 with scale_factor / add_offset / _FillValue
   (as many products are), zlib level 1, NetCDF chunks (12, 240, 240). The values are a
   smooth latitude-season field plus a 0.01-degC hash "texture" and 1 % missing cells. The
   files are written from dask arrays chunk by chunk, so writing them needs little memory.
2. Builds ``drivers.zarr`` (``tas``, ``tas_mam``, ``tas_jja``; 15 years) with
   :func:`soilresp.drivers.write_cube` - the code of the ``drivers`` stage - on the local
   threaded scheduler, sampling the process RSS every 0.2 s in a thread (psutil).
3. Prints the wall time, the peak RSS (sampled, and ``ru_maxrss``), the input and output
   sizes, and checks a few output values against the generating formula.

The target is a peak below 2 GB. Input generation is timed separately and excluded.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def field(year: int, month: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """degC: 28 - 0.5 |lat| + seasonal cycle + 0.02 x year trend + small deterministic texture."""
    m = month[:, None, None]
    la, lo = lat[None, :, None], lon[None, None, :]
    season = 0.25 * np.abs(la) * np.cos(2 * np.pi * (m - 6.5) / 12) * np.sign(la + 1e-9)
    tex = ((np.floor(lo * 20) * 7 + np.floor(la * 20) * 13) % 10) * 0.01
    return (28 - 0.5 * np.abs(la) + season + 0.02 * (year - 2000) + tex).astype(np.float32)


def write_inputs(folder: Path, years: range, res: float, lat0=-60.0, lat1=84.0) -> list[Path]:
    import dask.array as dsa
    import pandas as pd
    import xarray as xr

    lat = lat1 - res * (np.arange(round((lat1 - lat0) / res)) + 0.5)  # north to south
    lon = -180 + res * (np.arange(round(360 / res)) + 0.5)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for y in years:
        months = np.arange(1, 13)
        blk = 480

        def make(block_info=None, _y=y):
            (t0, t1), (i0, i1), (j0, j1) = block_info[None]["array-location"]
            v = field(_y, months[t0:t1], lat[i0:i1], lon[j0:j1])
            miss = ((np.arange(i0, i1)[:, None] * 31 + np.arange(j0, j1)[None, :] * 17) % 100) == 0
            return np.where(miss[None], np.nan, v)

        arr = dsa.map_blocks(make, chunks=((12,), (blk,) * (lat.size // blk) + ((lat.size % blk,) if lat.size % blk else ()),
                                           (blk,) * (lon.size // blk) + ((lon.size % blk,) if lon.size % blk else ())),
                             dtype=np.float32)
        time_ = pd.date_range(f"{y}-01-01", periods=12, freq="MS") + pd.Timedelta(days=14)
        da = xr.DataArray(arr, dims=("time", "lat", "lon"), coords={"time": time_, "lat": lat, "lon": lon},
                          attrs={"units": "degC", "long_name": "near-surface air temperature"})
        p = folder / f"tas_{y}.nc"
        xr.Dataset({"tas": da}).to_netcdf(p, encoding={"tas": {
            "dtype": "int16", "scale_factor": 0.01, "add_offset": 0.0, "_FillValue": -32768,
            "zlib": True, "complevel": 1, "chunksizes": (12, 240, 240)}})
        out.append(p)
        print(f"  wrote {p.name} ({p.stat().st_size / 1e6:.0f} MB)", flush=True)
    return out


class RSSSampler:
    def __init__(self, every: float = 0.2):
        import psutil

        self.proc, self.every, self.peak, self._stop = psutil.Process(), every, 0, threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.every)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self.t.join()


def du(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resolution", type=float, default=0.05)
    ap.add_argument("--years", type=int, default=15)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the input and output files")
    a = ap.parse_args()

    import dask

    from soilresp.config import DriverSource
    from soilresp.drivers import write_cube
    from soilresp.grid import Grid

    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench_drivers_"))
    years = range(2000, 2000 + a.years)
    grid = Grid(a.resolution, -60, 84, -180, 180, chunk=a.chunk)
    print(f"grid {grid.nlat} x {grid.nlon} at {a.resolution} deg, {a.years} years, chunk {a.chunk}; "
          f"cpus {os.cpu_count()}; work {work}")
    inp = work / "input"
    t0 = time.perf_counter()
    if not (inp.is_dir() and len(list(inp.glob("tas_*.nc"))) == a.years):
        with dask.config.set(scheduler="threads"):
            write_inputs(inp, years, a.resolution)
    t_in = time.perf_counter() - t0
    print(f"input: {du(inp) / 1e9:.2f} GB in {t_in:.0f} s (excluded from the timing)")

    src = DriverSource(variable="tas", path=str(inp / "tas_*.nc"), frequency="monthly")
    out = work / "drivers.zarr"
    rss0 = RSSSampler().proc.memory_info().rss
    last = {}

    def progress(name, done, total):
        if last.get(name) != done:
            last[name] = done
            print(f"  {name}: {done}/{total}", flush=True)

    with RSSSampler() as s, dask.config.set(scheduler="threads"):
        t0 = time.perf_counter()
        write_cube(out, [src], grid, (years[0], years[-1]), work, progress=progress)
        wall = time.perf_counter() - t0
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"build: {wall:.0f} s; peak RSS sampled {s.peak / 1e9:.2f} GB (before the build "
          f"{rss0 / 1e9:.2f} GB); ru_maxrss {maxrss / 1e9:.2f} GB; output {du(out) / 1e9:.2f} GB")

    import xarray as xr

    cube = xr.open_zarr(out, consolidated=False)
    i, j = grid.nlat // 3, grid.nlon // 5
    lat, lon = grid.lat[i], grid.lon[j]
    y = years[-1]
    exp = field(y, np.arange(1, 13), np.array([lat]), np.array([lon]))[:, 0, 0]
    got = float(cube["tas"].sel(year=y).isel(lat=i, lon=j))
    got_jja = float(cube["tas_jja"].sel(year=y).isel(lat=i, lon=j))
    print(f"check at ({lat:.3f}, {lon:.3f}) {y}: tas {got:.3f} vs {exp.mean():.3f}; "
          f"tas_jja {got_jja:.3f} vs {exp[5:8].mean():.3f} (int16 packing: 0.01 degC)")
    assert abs(got - exp.mean()) < 0.011 and abs(got_jja - exp[5:8].mean()) < 0.011
    assert cube["tas"].chunks[0] == (a.years,)
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
