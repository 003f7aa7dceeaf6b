"""The synthetic world's true Rh / Ra split (docs/partition.md, *Twin world*).

Given the twin's true Rs and climate (``truth.zarr``: ``rs_true``, ``tas`` degC, ``pr``
mm yr-1, ``biome``), the true heterotrophic share is a documented function of climate and
biome, **not** of the logit-linear form the ratio route fits (a clipped linear ramp):

    Rh/Rs = clip(base[biome] + 0.008 (T - 10) - 0.06 (P/1000 - 1), 0.25, 0.85)

with ``base`` 0.50 for forests, 0.62 for grassland, cropland and shrubland (Rh/Rs is higher
in non-forest ecosystems and in warm climates: Bond-Lamberty et al. 2004; Subke et al.
2006). Rh = ratio x Rs and Ra = Rs - Rh, per pixel and year.

:func:`add_partition` writes

* ``partition_truth.zarr`` (year, lat, lon): ``rh_true``, ``ra_true`` (g C m-2 yr-1), ``ratio_true``;
* ``truth.json`` key ``partition``: the true global Rh and Ra totals per year (Pg C yr-1),
  the global ratio series and the rule above;
* ``Rh_annual`` and ``Ra_annual`` in ``srdb-data.csv`` for the records of a share of the
  sites (``share``, default 40 %), each with independent log-normal measurement noise
  (``noise_sd``), so Ra + Rh differs from Rs at a record as in SRDB.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from soilresp import io

#: base Rh/Rs by biome code (soilresp.config.BIOMES): forests 1-7 lower, open biomes higher
BASE_RATIO = {1: 0.50, 2: 0.50, 3: 0.50, 4: 0.50, 5: 0.50, 6: 0.50, 7: 0.50,
              8: 0.62, 9: 0.62, 10: 0.62}
RULE = ("Rh/Rs = clip(base[biome] + 0.008 (T - 10) - 0.06 (P/1000 - 1), 0.25, 0.85); base 0.50 "
        "forests (biomes 1-7), 0.62 grassland, cropland, shrubland (8-10); Ra = Rs - Rh")


def true_ratio(tas, pr, biome):
    """Pure kernel: the true Rh/Rs (1) from air temperature (degC), precipitation (mm yr-1)
    and biome code; NaN where the biome has no base ratio."""
    lut = np.full(256, np.nan)
    for k, v in BASE_RATIO.items():
        lut[k] = v
    base = lut[np.asarray(biome).astype(np.int64) % 256]
    r = base + 0.008 * (np.asarray(tas, float) - 10.0) - 0.06 * (np.asarray(pr, float) / 1000.0 - 1.0)
    return np.clip(r, 0.25, 0.85)


def add_partition(world_dir: str | Path, *, seed: int = 42, share: float = 0.4,
                  noise_sd: float = 0.10) -> dict:
    """Write the Rh/Ra truth and the Rh/Ra columns of the world's SRDB CSV (module doc)."""
    from soilresp.grid import Grid

    world_dir = Path(world_dir)
    truth = xr.open_zarr(world_dir / "truth.zarr", consolidated=False)
    ratio = xr.apply_ufunc(true_ratio, truth["tas"], truth["pr"], truth["biome"],
                           dask="parallelized", output_dtypes=[np.float64])
    ratio = ratio.where(truth["biome"] > 0)
    rs = truth["rs_true"].where(truth["biome"] > 0)
    ds = xr.Dataset({"rh_true": (ratio * rs).astype(np.float32),
                     "ra_true": ((1 - ratio) * rs).astype(np.float32),
                     "ratio_true": ratio.astype(np.float32)})
    for v, ln in (("rh_true", "true annual soil heterotrophic respiration"),
                  ("ra_true", "true annual root respiration")):
        ds[v].attrs = {"units": "g C m-2 yr-1", "long_name": ln}
    ds["ratio_true"].attrs = {"units": "1", "long_name": "true Rh/Rs", "comment": RULE}
    ds.attrs["title"] = "soilresp synthetic world Rh/Ra truth (NOT real data)"
    io.write_zarr(world_dir / "partition_truth.zarr", ds, {"rule": RULE})

    res = float(abs(truth["lat"].values[1] - truth["lat"].values[0]))
    lat = truth["lat"].values
    grid = Grid(res, float(lat.min() - res / 2), float(lat.max() + res / 2), -180.0, 180.0)
    area = grid.cell_area()
    pt = xr.open_zarr(world_dir / "partition_truth.zarr", consolidated=False)
    rh_tot = (pt["rh_true"] * area).sum(("lat", "lon")).values / 1e15
    ra_tot = (pt["ra_true"] * area).sum(("lat", "lon")).values / 1e15
    tj = world_dir / "truth.json"
    doc = json.loads(tj.read_text())
    doc["partition"] = {"rule": RULE, "rh_total_pg_per_yr": [float(v) for v in rh_tot],
                        "ra_total_pg_per_yr": [float(v) for v in ra_tot],
                        "ratio_global": [float(a / (a + b)) for a, b in zip(rh_tot, ra_tot)],
                        "share_of_sites": share, "noise_sd": noise_sd}
    io.write_json(tj, doc)
    _add_columns(world_dir / "srdb-data.csv", pt, truth, seed, share, noise_sd)
    return doc["partition"]


def _add_columns(path: Path, pt: xr.Dataset, truth: xr.Dataset, seed: int, share: float,
                 noise_sd: float) -> None:
    """Rh_annual / Ra_annual for the records of a random ``share`` of the studies."""
    from soilresp.field.srdb import read_srdb

    df = read_srdb(path).reset_index(drop=True)
    rng = np.random.default_rng([seed, 20])
    studies = df["Study_number"].dropna().unique()
    pick = set(rng.choice(studies, size=int(round(share * len(studies))), replace=False).tolist())
    rs = pd.to_numeric(df["Rs_annual"], errors="coerce").to_numpy(float)
    use = df["Study_number"].isin(pick).to_numpy() & np.isfinite(rs)
    yr = np.floor(pd.to_numeric(df["Study_midyear"], errors="coerce").to_numpy(float))
    years = truth["year"].values
    use &= np.isin(yr, years)
    k = np.flatnonzero(use)
    sel = pt["ratio_true"].sel(year=xr.DataArray(yr[k].astype(int), dims="r"),
                               lat=xr.DataArray(df["Latitude"].to_numpy(float)[k], dims="r"),
                               lon=xr.DataArray(df["Longitude"].to_numpy(float)[k], dims="r"),
                               method="nearest").values
    ok = np.isfinite(sel)
    k, sel = k[ok], sel[ok]
    rh = rs[k] * sel * np.exp(rng.normal(0, noise_sd, k.size))
    ra = rs[k] * (1 - sel) * np.exp(rng.normal(0, noise_sd, k.size))
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    raw.loc[k, "Rh_annual"] = np.round(rh, 1).astype(str)
    raw.loc[k, "Ra_annual"] = np.round(ra, 1).astype(str)
    io.write_csv(path, raw)


def partition_recovery(run_dir: str | Path, truth: dict) -> dict:
    """Estimated (ratio route) vs true global Rh per year; ``max_abs_relative_error``."""
    run_dir = Path(run_dir)
    part = truth.get("partition")
    p = run_dir / "partition" / "totals.parquet"
    if not part or not io.is_complete(p):
        return {}
    tot = io.read_table(p)
    out = {}
    for route in sorted(set(tot.loc[tot["flux"] == "Rh", "route"])):
        e = tot[(tot["route"] == route) & (tot["flux"] == "Rh")].sort_values("year")
        t = np.asarray(part["rh_total_pg_per_yr"], float)[: len(e)]
        rel = (e["total_pg"].to_numpy(float) - t) / t
        rec = {"estimated_pg": np.round(e["total_pg"].to_numpy(float), 4).tolist(),
               "true_pg": np.round(t, 4).tolist(), "relative_error": np.round(rel, 5).tolist(),
               "max_abs_relative_error": float(np.max(np.abs(rel)))}
        if e["lo_pg"].notna().all():
            rec["truth_inside_95"] = int(((t >= e["lo_pg"]) & (t <= e["hi_pg"])).sum())
        out[route] = rec
    return out
