"""The drivers stage on MODIS HDF4 tiles in the real format: seconds per tile-composite and
the projected global 15-year cost.

    python benchmarks/bench_modis.py [--tiles 2] [--composites 8] [--res 0.008333] [--quick]

Writes, with pyhdf, sinusoidal HDF4-EOS tiles ``hHHv07`` (h = 18, 19, ...) of four products
with their real SDS names, types, scale factors, fill values, valid ranges and QA layers,
deflate-compressed as NASA distributes them:

=========  ====================  =====================================  =========  ===========
product    pixels                SDS read (type, scale)                 QA SDS     composites/yr
=========  ====================  =====================================  =========  ===========
MOD11A2    1200 x 1200 (1 km)    ``LST_Day_1km`` (uint16, 0.02 K)       ``QC_Day``  46
MOD13A2    1200 x 1200 (1 km)    ``1 km 16 days EVI`` (int16, 1e-4)     pixel rel.  23
MOD16A2    2400 x 2400 (500 m)   ``ET_500m`` (int16, 0.1 kg m-2 8d-1)   ET_QC       46
MOD17A2H   2400 x 2400 (500 m)   ``Gpp_500m`` (int16, 1e-4 kg C m-2)    Psn_QC      46
=========  ====================  =====================================  =========  ===========

(each file also carries the product's other main SDS, which the stage does not read), then
runs :func:`soilresp.drivers.write_cube` (the drivers stage: mosaic, QA, regrid to the
target grid, annual aggregation, ``drivers.zarr``) on the threaded scheduler for the tiles'
window at ``--res`` degrees (default 1/120 degree = 1 km), after a warm-up run, once with all
composites and once with the first half. The difference gives the marginal seconds per
tile-composite (shown next to the time pyhdf takes just to read and inflate the same SDS + QA
layers: the floor), the rest the cost per tile and year (aggregation, writing, the value
checks' three sampled composites). Projection, per product:
317 land tiles x 15 years x (composites per year x marginal + per tile-year), 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

R = 6371007.181
TILE = 1111950.5196666666
X0, Y0 = -20015109.355798, 10007554.677899
LAND_TILES = 317  # MODIS sinusoidal tiles with land (of 460 with data)
YEARS = 15


def _struct(h, v, n, name):
    ulx, uly = X0 + h * TILE, Y0 - v * TILE
    return ("GROUP=SwathStructure\nEND_GROUP=SwathStructure\nGROUP=GridStructure\n"
            f"\tGROUP=GRID_1\n\t\tGridName=\"{name}\"\n\t\tXDim={n}\n\t\tYDim={n}\n"
            f"\t\tUpperLeftPointMtrs=({ulx:.6f},{uly:.6f})\n\t\tLowerRightMtrs=({ulx + TILE:.6f},{uly - TILE:.6f})\n"
            "\t\tProjection=GCTP_SNSOID\n\t\tProjParams=(6371007.181000,0,0,0,0,0,0,0,0,0,0,0,0)\n"
            "\t\tSphereCode=-1\n\tEND_GROUP=GRID_1\nEND_GROUP=GridStructure\nEND\n")


# product -> (grid name, n, composites/yr, read SDS, [(sds, dtype, attrs, generator)])
def _products():
    def lst(rng, n, k):
        v = (14500 + 500 * np.sin(k / 7) + rng.integers(-300, 300, (n, n))).astype(np.uint16)
        v[rng.random((n, n)) < 0.05] = 0  # cloud fill
        return v

    def qc_lst(rng, n, k):
        return rng.choice(np.array([0, 1, 2, 65], np.uint8), (n, n), p=[0.7, 0.15, 0.1, 0.05])

    def vi(rng, n, k):
        return (3000 + rng.integers(-1500, 1500, (n, n))).astype(np.int16)

    def rel(rng, n, k):
        return rng.choice(np.array([0, 1, 2, 3], np.int8), (n, n), p=[0.7, 0.15, 0.1, 0.05])

    def et(rng, n, k):
        v = (150 + rng.integers(-100, 100, (n, n))).astype(np.int16)
        v[rng.random((n, n)) < 0.03] = 32765  # barren / special code
        return v

    def psnqc(rng, n, k):
        return rng.choice(np.array([0, 0b001 << 5, 0b010 << 5, 1], np.uint8), (n, n), p=[0.6, 0.2, 0.1, 0.1])

    def gpp(rng, n, k):
        return (300 + rng.integers(-250, 250, (n, n))).astype(np.int16)

    lst_a = {"long_name": "Daytime Land Surface Temperature", "units": "K", "scale_factor": 0.02,
             "add_offset": 0.0, "_FillValue": 0, "valid_range": [7500, 65535]}
    vi_a = {"long_name": "1 km 16 days EVI", "units": "EVI", "scale_factor": 1e-4, "add_offset": 0.0,
            "_FillValue": -3000, "valid_range": [-2000, 10000]}
    et_a = {"long_name": "MODIS Gridded 500m 8-day Composite ET", "units": "kg/m^2/8day", "scale_factor": 0.1,
            "add_offset": 0.0, "_FillValue": 32767, "valid_range": [-32767, 32700]}
    gpp_a = {"long_name": "Gross Primary Productivity", "units": "kg C/m^2/8d", "scale_factor": 1e-4,
             "add_offset": 0.0, "_FillValue": 32767, "valid_range": [0, 30000]}
    return {
        "MOD11A2": ("MODIS_Grid_8Day_1km_LST", 1200, 46, "LST_Day_1km", "lst_day", "mean", [
            ("LST_Day_1km", lst_a, lst), ("QC_Day", {"_FillValue": 255}, qc_lst),
            ("LST_Night_1km", lst_a, lst), ("QC_Night", {"_FillValue": 255}, qc_lst)]),
        "MOD13A2": ("MODIS_Grid_16DAY_1km_VI", 1200, 23, "1 km 16 days EVI", "evi", "mean", [
            ("1 km 16 days EVI", vi_a, vi), ("1 km 16 days NDVI", vi_a, vi),
            ("1 km 16 days pixel reliability", {"_FillValue": -1}, rel)]),
        "MOD16A2": ("MOD_Grid_MOD16A2", 2400, 46, "ET_500m", "et", "sum", [
            ("ET_500m", et_a, et), ("PET_500m", et_a, et), ("ET_QC_500m", {"_FillValue": 255}, psnqc)]),
        "MOD17A2H": ("MOD_Grid_MOD17A2H", 2400, 46, "Gpp_500m", "gpp", "sum", [
            ("Gpp_500m", gpp_a, gpp), ("PsnNet_500m", gpp_a, gpp), ("Psn_QC_500m", {"_FillValue": 255}, psnqc)]),
    }


def write_tiles(folder: Path, tiles: list[tuple[int, int]], composites: int, year: int = 2001) -> dict:
    from pyhdf.SD import SD, SDC

    types = {np.dtype(np.uint16): SDC.UINT16, np.dtype(np.uint8): SDC.UINT8, np.dtype(np.int16): SDC.INT16,
             np.dtype(np.int8): SDC.INT8}
    rng = np.random.default_rng(0)
    files: dict[str, list[Path]] = {}
    for prod, (gname, n, per_year, _, _, _, layers) in _products().items():
        step = 365 // per_year
        for k in range(min(composites, per_year)):
            doy = 1 + k * step
            for h, v in tiles:
                p = folder / f"{prod}.A{year}{doy:03d}.h{h:02d}v{v:02d}.061.2021000000000.hdf"
                f = SD(str(p), SDC.WRITE | SDC.CREATE)
                f.attr("StructMetadata.0").set(SDC.CHAR, _struct(h, v, n, gname))
                for name, attrs, gen in layers:
                    arr = gen(rng, n, k)
                    typ = types[arr.dtype]
                    s = f.create(name, typ, arr.shape)
                    for key, val in attrs.items():
                        if isinstance(val, str):
                            s.attr(key).set(SDC.CHAR, val)
                        elif key in ("scale_factor", "add_offset"):
                            s.attr(key).set(SDC.FLOAT64, float(val))
                        elif key == "valid_range":
                            s.attr(key).set(typ, np.asarray(val, dtype=arr.dtype).tolist())
                        else:
                            s.attr(key).set(typ, np.asarray(val, dtype=arr.dtype).item())
                    s.setcompress(SDC.COMP_DEFLATE, value=6)
                    s[:] = arr
                    s.endaccess()
                f.end()
                files.setdefault(prod, []).append(p)
    return files


def read_floor(files: list[Path], sds: str, qa_sds: str) -> float:
    """Seconds for pyhdf to read and decompress the SDS and its QA layer of every file."""
    from pyhdf.SD import SD, SDC

    t0 = time.perf_counter()
    for p in files:
        f = SD(str(p), SDC.READ)
        for name in (sds, qa_sds):
            s = f.select(name)
            s.get()
            s.endaccess()
        f.end()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=2, help="tiles h18v07, h19v07, ... per product")
    ap.add_argument("--composites", type=int, default=8, help="composites per product (one year at most)")
    ap.add_argument("--res", type=float, default=1 / 120, help="target grid (degrees)")
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--quick", action="store_true", help="1 tile, 4 composites")
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--reps", type=int, default=1, help="best of this many runs of each stage")
    a = ap.parse_args()
    if a.quick:
        a.tiles, a.composites = 1, 4
    print(f"MODIS drivers benchmark; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    r = bench(a.tiles, a.composites, a.res, a.chunk, a.tmp, a.keep, a.reps)
    print(r["table"].to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    print(f"projected global {YEARS}-year drivers stage (4 products, {LAND_TILES} land tiles, 2 cores): "
          f"{r['hours']:.2f} h (read+decompress floor {r['floor_hours']:.2f} h)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def bench(ntiles: int, composites: int, res: float, chunk: int = 256, tmp=None, keep=False,
          reps: int = 1) -> dict:
    """Write the tiles, run the drivers stage per product; a dict with the per-product table,
    the projected global hours and the read floor."""
    import dask

    from soilresp.config import DriverSource
    from soilresp.drivers import write_cube
    from soilresp.drivers.modis import qa_rule
    from soilresp.grid import Grid

    folder = Path(tempfile.mkdtemp(prefix="soilresp-bench-modis-", dir=tmp))
    tiles = [(18 + i, 7) for i in range(ntiles)]
    t0 = time.perf_counter()
    files = write_tiles(folder, tiles, composites)
    t_write = time.perf_counter() - t0
    # target window: the tiles' latitude band (v07: 10-20 N) and longitudes at its equator side
    lat0, lat1 = 10.0, 20.0
    lon0, lon1 = 0.0, 10.0 * ntiles
    grid = Grid(res, lat0, lat1, lon0, lon1, chunk)
    rows = []
    hours = floor_hours = 0.0
    for prod, (_, n, per_year, sds, var, agg, _) in _products().items():
        fl = files[prod]
        qa = qa_rule(prod, sds).qa_sds
        floor = min(read_floor(fl, sds, qa) for _ in range(2))
        def stage(pattern):
            src = DriverSource(variable=var, path=pattern, name=sds, frequency="8day", aggregation=agg,
                               seasons=False, product=prod, max_missing_fraction=0.99)  # a partial year on purpose
            out = folder / f"drivers_{prod}.zarr"
            with dask.config.set(scheduler="threads"):
                t0 = time.perf_counter()
                write_cube(out, [src], grid, (2001, 2001), folder, min_valid_fraction=0.01)
                dt = time.perf_counter() - t0
            shutil.rmtree(out, ignore_errors=True)
            return dt

        # all composites, then the first half: the difference is the marginal cost of a
        # tile-composite; the rest is per tile and year (aggregation, writing the year, and
        # the value checks, which read 3 composites of a source whatever its length: so the
        # half has at least 4 composites when there are 8 or more)
        ntc = len(fl)
        ncomp = ntc // ntiles
        half = max(1, ncomp // 2)
        sub = folder / f"half_{prod}"
        sub.mkdir(exist_ok=True)
        for p in fl:
            if int(p.name.split(".")[1][5:8]) <= 1 + (half - 1) * (365 // per_year):
                (sub / p.name).symlink_to(p)
        stage(f"half_{prod}/{prod}.A2001001.*.hdf")  # warm-up: imports, numba / pyproj set-up
        dt = min(stage(f"{prod}.*.hdf") for _ in range(reps))
        dt1 = min(stage(f"half_{prod}/{prod}.*.hdf") for _ in range(reps))
        marg = max(dt - dt1, 0.0) / (ntiles * (ncomp - half)) if ncomp > half else dt1 / ntiles
        fixed = max(dt1 / ntiles - half * marg, 0.0)
        h = (marg * per_year + fixed) * LAND_TILES * YEARS / 3600
        fh = floor / ntc * LAND_TILES * per_year * YEARS / 3600
        hours += h
        floor_hours += fh
        rows.append({"product": prod, "pixels": f"{n}x{n}", "tile_composites": ntc,
                     "stage_s": dt, "s_per_tile_composite": marg, "s_per_tile_year": fixed,
                     "read_floor_s_per_tc": floor / ntc, "marginal/floor": marg / (floor / ntc),
                     "global_15y_h": h})
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return {"table": pd.DataFrame(rows), "hours": hours, "floor_hours": floor_hours, "write_s": t_write,
            "grid": grid, "folder": folder}


if __name__ == "__main__":
    main()
