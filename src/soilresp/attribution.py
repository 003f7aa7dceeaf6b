"""What drove the change (method step 7; Huang et al. 2020, Figs 3-6).

Output contract, ``attribution/``:

* ``series_partial_corr.parquet``: detrended partial correlation of the area-weighted mean
  Rs series with each driver (controlling for the others; compositional covers: see
  :func:`control_groups`), global and per region, with p, df and the controls (Fig 3).
* ``pixel_partial_corr.zarr`` (lat, lon): ``r_<driver>``, ``p_<driver>`` per pixel (Fig 6);
  land-cover drivers only where that cover's mean exceeds ``cover_threshold``; plus
  ``p_trend_<driver>`` (MK p of each driver) and ``change_class`` (1 climate, 2 land cover,
  0 no valid Rs) used for Fig 5.
* ``colocation.parquet``: area share of pixels with a significant Rs trend that also have a
  significant trend in each driver, global and per region (Fig 4).
* ``change_shares.parquet``: share of the absolute Rs net change (area-weighted) in pixels
  whose land cover changed significantly (any of tc, sv, bg; p < alpha) versus the rest
  (climate), global and per region, with the per-type breakdown (Fig 5). A pixel with
  several significant cover trends is given to the one with the smallest p.
"""

from __future__ import annotations

import json

import dask
import numpy as np
import pandas as pd
import xarray as xr

from soilresp import cf, io, stats
from soilresp.biomes import REGION_NAMES
from soilresp.errors import input_error

LAND_COVER = ("tc", "sv", "bg")


def _cover_threshold(da: xr.DataArray, threshold: float) -> float:
    """Threshold in the cover variable's own units (% or fraction)."""
    return threshold * 100.0 if da.attrs.get("units", "%") in ("%", "percent") else threshold


def regional_mean_series(da: xr.DataArray, valid: xr.DataArray, region: xr.DataArray,
                         area: xr.DataArray) -> xr.DataArray:
    """Area-weighted mean over valid pixels, dims (region, year)."""
    masks = {"global": valid, **{n: valid & (region == c) for c, n in REGION_NAMES.items()}}
    out = []
    for m in masks.values():
        w = area.where(m)
        out.append((da * w).sum(["lat", "lon"]) / w.sum(["lat", "lon"]))
    return xr.concat(out, dim=pd.Index(list(masks), name="region"))


def control_groups(names: list[str], cover_controls: str = "climate") -> list[tuple[list[str], list[str]]]:
    """Partial-correlation calls as (drivers of the call, drivers whose r it reports).

    Tree canopy, short vegetation and bare ground are fractions of one pixel that sum to
    100 %, so with all three among the drivers each is a linear function of the other two
    and "controlling for the others" leaves nothing of it: the partial correlation is
    undefined (singular). With ``cover_controls="climate"`` (the default) the climate
    drivers are reported from one call with the climate drivers and two of the covers (the
    same span as all three plus the intercept, so their r is what controlling for all would
    mean), and each cover from a call with the climate drivers and that cover alone.
    Otherwise (``"all"``, or fewer than three covers) one call with every driver.
    """
    covers = [n for n in names if n in LAND_COVER]
    if cover_controls == "all" or len(covers) < len(LAND_COVER):
        return [(list(names), list(names))]
    climate = [n for n in names if n not in LAND_COVER]
    groups = [(climate + covers[:-1], climate)] if climate else []
    return groups + [(climate + [c], [c]) for c in covers]


def series_partial_correlations(rs, cube, names, region, area,
                                cover_controls: str = "climate") -> pd.DataFrame:
    """Fig 3: detrended partial correlation (``stats.partial_corr``, time as a covariate) of the
    area-weighted mean Rs series with each driver's mean series, controlling for the other
    drivers, for the globe and each region; columns region, driver, r, p, df."""
    valid = rs.notnull().all("year")
    # one dask pass over Rs and every driver (only the (region, year) series are held)
    y, *X = dask.compute(regional_mean_series(rs, valid, region, area),
                         *(regional_mean_series(cube[n], valid, region, area) for n in names))
    series = dict(zip(names, X))
    rows = []
    for reg in y["region"].values:
        yy = y.sel(region=reg).values
        got = {}
        for call, report in control_groups(names, cover_controls):
            res = stats.partial_corr(yy, np.stack([series[n].sel(region=reg).values for n in call]),
                                     detrend=True)
            for n in report:
                k = call.index(n)
                got[n] = {"region": str(reg), "driver": n, "r": float(res.r[k]), "p": float(res.p[k]),
                          "df": int(np.asarray(res.df).max()),
                          "controls": ",".join(c for c in call if c != n)}
        rows += [got[n] for n in names]
    return pd.DataFrame(rows)


def run(ctx) -> None:
    a = ctx.cfg.attribution
    alpha = ctx.cfg.trends.alpha
    fdr = ctx.cfg.trends.fdr
    names = list(a.drivers)
    cube = io.open_zarr(ctx.path("drivers", "drivers.zarr"))
    missing = [n for n in names if n not in cube]
    if missing:
        from soilresp.errors import ConfigError

        have = ", ".join(sorted(v for v in cube.data_vars if "_" not in str(v)))
        raise ConfigError(
            f"config [attribution] drivers: '{missing[0]}' is "
            f"no [[drivers.sources]] variable (the cube has: {have}); add that source or "
            "remove it from [attribution] drivers")
    rs = io.open_zarr(ctx.path("product", "rs.zarr"), ["rs"])["rs"]
    bio = io.open_zarr(ctx.path("biomes", "biomes.zarr"), ["region", "cell_area"])
    region, area = bio["region"], bio["cell_area"]
    tr = io.open_zarr(ctx.path("trends", "trends.zarr"), ["p", "net_change", "significant"])

    ctx.progress("attribution", 0, 4)
    spc = series_partial_correlations(rs, cube, names, region, area, a.cover_controls)
    io.write_table(ctx.path("attribution", "series_partial_corr.parquet"), spc, ctx.prov("attribution"))

    ctx.progress("attribution", 1, 4)
    rs = rs.chunk({"year": -1})
    pcs, dfs, controls = {}, {}, {}
    for call, report in control_groups(names, a.cover_controls):
        pc = stats.xr_partial_corr(rs, {n: cube[n] for n in call}, dim="year")
        for n in report:
            pcs[n], dfs[n] = pc, int(pc.attrs.get("df", -1))
            controls[n] = [c for c in call if c != n]
    pc = pcs[names[0]]
    out = xr.Dataset()
    for n in names:
        r, p = pcs[n][f"r_{n}"], pcs[n][f"p_{n}"]
        if n in LAND_COVER:
            keep = cube[n].mean("year") > _cover_threshold(cube[n], a.cover_threshold)
            r, p = r.where(keep), p.where(keep)
        out[f"r_{n}"], out[f"p_{n}"] = r.astype(np.float32), p.astype(np.float32)
        out[f"r_{n}"].attrs = out[f"p_{n}"].attrs = {
            "df": dfs[n], "n_controls": len(controls[n]), "controls": " ".join(controls[n])}
    out.attrs.update({"df": int(pc.attrs.get("df", -1)), "critical_r": float(pc.attrs.get("critical_r", np.nan)),
                      "cover_threshold": a.cover_threshold, "fdr": int(fdr),
                      "cover_controls": a.cover_controls,
                      "df_per_driver": json.dumps(dfs)})
    ctx.progress("attribution", 2, 4)
    for n in names:
        dt = stats.xr_trend(cube[n], dim="year", alpha=alpha, min_years=ctx.cfg.trends.min_years)
        out[f"p_trend_{n}"] = dt["p"].astype(np.float32)
        out[f"slope_{n}"] = dt["slope"].astype(np.float32)
        out[f"slope_{n}"].attrs = {"long_name": f"Theil-Sen slope of {n}",
                                   "units": cf.per_year(cube[n].attrs.get("units", "1"))}
    if fdr:  # Benjamini-Hochberg on every map, chunked two-pass (never holds a map)
        for key in [k for k in out.data_vars if k.startswith("p_")]:
            rej, q = stats.xr_fdr_bh(out[key], alpha)
            out["q_" + key[2:]] = q.astype(np.float32)
            out["sig_" + key[2:]] = rej
    from soilresp.product._progress import task_progress

    with task_progress(ctx.progress, "pixel partial correlations"):
        io.write_zarr(ctx.path("attribution", "pixel_partial_corr.zarr"), out, ctx.prov("attribution"))

    ctx.progress("attribution", 3, 4)
    # lazy from here on: every sum below is computed in one dask pass, chunk by chunk
    out = io.open_zarr(ctx.path("attribution", "pixel_partial_corr.zarr"))
    sig_rs = tr["significant"].astype(bool)
    valid_rs = tr["p"].notnull()
    masks = {"global": valid_rs & (region > 0),
             **{nm: valid_rs & (region == c) for c, nm in REGION_NAMES.items()}}
    lc = [n for n in LAND_COVER if f"p_trend_{n}" in out]
    change = np.abs(tr["net_change"]) * area  # g C yr-1 of change per pixel
    if lc:
        pstack = xr.concat([out[f"p_trend_{n}"].fillna(1.0) for n in lc], dim="lc")
        if fdr:
            lc_sig = xr.concat([out[f"sig_trend_{n}"] for n in lc], dim="lc").any("lc")
        else:
            lc_sig = (pstack < alpha).any("lc")
        dominant = pstack.argmin("lc")
    else:
        lc_sig = xr.zeros_like(valid_rs)
        dominant = xr.zeros_like(region)
    sums: dict[tuple, xr.DataArray] = {}
    for reg, m in masks.items():
        sums[(reg, "sig_rs")] = area.where(m & sig_rs).sum()
        for n in names:
            drv_sig = out[f"sig_trend_{n}"].astype(bool) if fdr else out[f"p_trend_{n}"] < alpha
            sums[(reg, "both", n)] = area.where(m & sig_rs & drv_sig).sum()
        sums[(reg, "change")] = change.where(m).sum()
        sums[(reg, "change_lc")] = change.where(m & lc_sig).sum()
        for k, n in enumerate(lc):
            sums[(reg, "change_lc", n)] = change.where(m & lc_sig & (dominant == k)).sum()
    v = dict(zip(sums, (float(x) for x in dask.compute(*sums.values()))))

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 else np.nan

    rows = [{"region": reg, "driver": n, "share_of_significant_rs": ratio(v[(reg, "both", n)], v[(reg, "sig_rs")]),
             "significant_rs_area_km2": v[(reg, "sig_rs")] / 1e6} for reg in masks for n in names]
    io.write_table(ctx.path("attribution", "colocation.parquet"), pd.DataFrame(rows), ctx.prov("attribution"))

    cls = xr.where(valid_rs, xr.where(lc_sig, 2, 1), 0).astype(np.int8)
    cls.attrs = {"flag_values": [0, 1, 2], "flag_meanings": "no_data climate land_cover"}
    rows = []
    # without a land-cover driver no change can be put down to land cover: the split is not
    # assessable, and calling it "100 % climate" would be a claim the run did not test
    reason = "" if lc else ("no land-cover driver (" + ", ".join(LAND_COVER)
                            + ") among [attribution] drivers")
    for reg in masks:
        tot, lc_part = v[(reg, "change")], v[(reg, "change_lc")]
        rows.append({"region": reg, "driver_class": "climate",
                     "share": ratio(tot - lc_part, tot) if lc else np.nan,
                     "abs_change_tg": (tot - lc_part) / 1e12, "assessable": bool(lc),
                     "reason": reason})
        rows.append({"region": reg, "driver_class": "land_cover",
                     "share": ratio(lc_part, tot) if lc else np.nan,
                     "abs_change_tg": lc_part / 1e12 if lc else np.nan, "assessable": bool(lc),
                     "reason": reason})
        for n in lc:
            part = v[(reg, "change_lc", n)]
            rows.append({"region": reg, "driver_class": f"land_cover:{n}", "share": ratio(part, tot),
                         "abs_change_tg": part / 1e12, "assessable": True, "reason": ""})
    io.write_table(ctx.path("attribution", "change_shares.parquet"), pd.DataFrame(rows), ctx.prov("attribution"))
    io.write_zarr(ctx.path("attribution", "change_class.zarr"), xr.Dataset({"change_class": cls}),
                  ctx.prov("attribution"))
    ctx.progress("attribution", 4, 4)
