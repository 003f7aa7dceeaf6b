"""Trends of the product (method step 6; Huang et al. 2020, Fig 2).

Output contract, ``trends/``:

* ``trends.zarr`` (lat, lon): per-pixel Mann-Kendall ``s``, ``z``, ``p``, ``tau``, ``n`` and
  Theil-Sen ``slope`` (g C m-2 yr-2) with ``slope_lo``/``slope_hi`` (Sen 1968 CI),
  ``trend_class`` (2 significant increase ... -2 significant decrease, Fig 2B),
  ``net_change`` = slope x (years - 1) (g C m-2 yr-1), and ``significant`` (p < alpha, or
  Benjamini-Hochberg over the map when ``[trends] fdr = true``, then also ``q`` and
  ``fdr_reject``; computed in two chunked passes, never holding the map).
* ``series_trends.parquet``: per region (global, tropical, temperate, boreal) the Sen slope of
  the annual totals (Pg C yr-2), MK p (exact for <= ``[trends] mk_exact_max_n`` years), and a moving-block bootstrap 95 % CI (Fig 2A).
* ``class_shares.parquet``: area share of each trend class per region (Fig 2C).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from soilresp import io, stats
from soilresp.biomes import REGION_NAMES


def use_exact_p(n_years: int, exact_max_n: int) -> bool:
    """The exact Mann-Kendall p (Kendall 1975, ch. 4) for series of at most ``exact_max_n``
    years (``[trends] mk_exact_max_n``, default 20; 0 = always the normal approximation).
    Series with ties keep the normal approximation (``stats.mann_kendall``)."""
    return 0 < n_years <= exact_max_n


def pixel_trends(rs: xr.DataArray, *, alpha: float, slight_alpha: float, min_years: int,
                 fdr: bool, exact: bool = False) -> xr.Dataset:
    """Per-pixel trend statistics of ``rs`` (year, lat, lon); lazy when ``rs`` is dask-backed.
    ``exact``: exact Mann-Kendall p for tie-free pixels (:func:`use_exact_p`)."""
    # with fdr, xr_trend runs the chunked two-pass Benjamini-Hochberg (stats.xr_fdr_bh):
    # the p map is never held whole, and the significant classes use the BH rejections
    ds = stats.xr_trend(rs, dim="year", alpha=alpha, slight_alpha=slight_alpha, min_years=min_years,
                        fdr=fdr, exact=exact)
    if fdr:
        ds["significant"] = ds["fdr_reject"]
    else:
        ds["significant"] = ds["p"] < alpha
    ds["significant"].attrs = {"long_name": "significant trend" + (
        f" (Benjamini-Hochberg FDR {alpha})" if fdr else f" (Mann-Kendall p < {alpha})")}
    from soilresp import cf

    units = cf.cf_units(rs.attrs.get("units"))
    for f in ("slope", "slope_lo", "slope_hi"):
        ds[f].attrs["units"] = cf.per_year(units)
    ds["net_change"].attrs["units"] = units
    ds["intercept"].attrs["units"] = units
    ds.attrs["comment"] = (f"Mann-Kendall two-sided (tie-corrected) with Theil-Sen slope; alpha={alpha}, "
                           f"fdr={fdr}; Huang et al. 2020 Fig 2B")
    return ds


def series_trends(totals: pd.DataFrame, *, n_boot: int, alpha: float, seed: int,
                  min_years: int = 3, exact_max_n: int = 20) -> pd.DataFrame:
    """Sen slope, MK p and block-bootstrap CI of each region's annual totals (Fig 2A).
    ``p`` is the exact Mann-Kendall p when the series has at most ``exact_max_n`` years
    (column ``p_exact`` says which)."""
    rows = []
    for region, g in totals.groupby("region", sort=False):
        g = g.sort_values("year")
        y, x = g["total_pg"].to_numpy(float), g["year"].to_numpy(float)
        ex = use_exact_p(len(y), exact_max_n)
        t = stats.trend_test(y, x, alpha=alpha, min_years=min_years, exact=ex)
        row = {"region": region, "slope": float(t["slope"]), "p": float(t["p"]), "z": float(t["z"]),
               "p_exact": bool(ex and len(np.unique(y)) == len(y)),
               "sen_lo": float(t["slope_lo"]), "sen_hi": float(t["slope_hi"]),
               "net_change": float(stats.net_change(t["slope"], len(y))), "n_years": len(y),
               "mean_total": float(np.mean(y))}
        if n_boot > 0:
            b = stats.bootstrap_trend_ci(y, x, n_boot=n_boot, alpha=alpha, seed=seed)
            row.update(boot_lo=float(b["lo"]), boot_hi=float(b["hi"]), block_length=int(b["block_length"]))
        row["relative_slope_pct"] = 100 * row["slope"] / row["mean_total"] if row["mean_total"] else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def class_shares(trend_class: xr.DataArray, region: xr.DataArray, area: xr.DataArray) -> pd.DataFrame:
    """Area share (0-1) of each trend class, global and per region (Fig 2C); one dask pass."""
    import dask

    valid = (trend_class != stats.TREND_CLASS_NODATA) & (region > 0)
    a = area.broadcast_like(trend_class)
    masks = {"global": valid, **{n: valid & (region == c) for c, n in REGION_NAMES.items()}}
    sums = {}
    for name, m in masks.items():
        sums[(name, None)] = a.where(m).sum()
        for code in stats.TREND_CLASS_LABELS:
            sums[(name, code)] = a.where(m & (trend_class == code)).sum()
    v = dict(zip(sums, (float(x) for x in dask.compute(*sums.values()))))
    rows = []
    for name in masks:
        tot = v[(name, None)]
        for code, label in stats.TREND_CLASS_LABELS.items():
            s = v[(name, code)]
            rows.append({"region": name, "class": int(code), "label": label,
                         "share": s / tot if tot > 0 else np.nan, "area_km2": s / 1e6})
    return pd.DataFrame(rows)


def run(ctx) -> None:
    t = ctx.cfg.trends
    rs = io.open_zarr(ctx.path("product", "rs.zarr"), ["rs"])["rs"]
    bio = io.open_zarr(ctx.path("biomes", "biomes.zarr"), ["region", "cell_area"])
    from soilresp.product._progress import task_progress

    rs = rs.chunk({"year": -1})
    with task_progress(ctx.progress, "pixel trends"):
        ds = pixel_trends(rs, alpha=t.alpha, slight_alpha=t.slight_alpha, min_years=t.min_years, fdr=t.fdr,
                          exact=use_exact_p(rs.sizes["year"], t.mk_exact_max_n))
        io.write_zarr(ctx.path("trends", "trends.zarr"), ds, ctx.prov("trends"))
    totals = io.read_table(ctx.path("product", "totals.parquet"), ["region", "year", "total_pg"])
    st = series_trends(totals, n_boot=t.bootstrap, alpha=t.alpha, seed=ctx.cfg.run.seed,
                       min_years=t.min_years, exact_max_n=t.mk_exact_max_n)
    io.write_table(ctx.path("trends", "series_trends.parquet"), st, ctx.prov("trends"))
    tr = io.open_zarr(ctx.path("trends", "trends.zarr"), ["trend_class"])
    cs = class_shares(tr["trend_class"], bio["region"], bio["cell_area"])
    io.write_table(ctx.path("trends", "class_shares.parquet"), cs, ctx.prov("trends"))
