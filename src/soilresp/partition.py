"""Partition of soil respiration into heterotrophic (Rh) and root (Ra) parts (docs/partition.md).

Two routes, reported side by side:

* **ratio**: the Rh/Rs ratio modelled from climate and applied to this run's Rs product.
  Per biome, ``logit(Rh/Rs) = a + b T + c P/1000`` (T air temperature, degC; P precipitation,
  mm yr-1) fitted by least squares on SRDB records that report both Rh and Rs (paired,
  same selection rules and site-year averaging as the Rs observations); a biome with fewer
  than ``[partition] min_observations`` pairs (or 3 sites) uses the model fitted on all pairs.
  The observed ratio is clipped to ``ratio_clip`` before the logit (Rh and Rs of one record
  are often measured by different methods, and some records have Rh > Rs). Uncertainty:
  ``bootstrap`` refits on sites resampled within each biome, each draw paired with a Monte
  Carlo realisation of the Rs total when the uncertainty stage ran (the Rs error is then
  taken as a uniform factor over the globe in that realisation: an approximation, said so
  in the report). Baseline: Bond-Lamberty et al. 2004 (Global Change Biol. 10:1756-1766),
  ``ln Rh = 1.22 + 0.73 ln Rs`` (g C m-2 yr-1), applied per pixel; its refit on the paired
  records is reported beside the published coefficients.
* **direct**: Rh (and Ra) mapped by their own per-biome models, i.e. a run of the whole
  method with ``[field] target = "Rh_annual"`` (``"Ra_annual"``); ``[partition] rh_run`` /
  ``ra_run`` name those runs' output folders, whose ``product/totals.parquet`` this stage
  reads (same grid and years checked).

Consistency: at records reporting Rs, Rh and Ra, the distribution of (Ra + Rh) / Rs; with
both direct runs, Rh + Ra against the Rs product per year.

Outputs, ``partition/``:

* ``paired.parquet``: one row per site, year and vegetation with ``rs``, ``rh``, ``ra``
  (g C m-2 yr-1, NaN when absent), ``ratio`` = rh / rs, ``biome``, the two drivers, ``n_records``.
* ``ratio_models.parquet``: per biome (0 = pooled): ``n``, ``n_sites``, ``a``, ``b_t``
  (per degC), ``c_p`` (per 1000 mm yr-1), ``pooled`` (bool: the biome uses the pooled
  model), ``rmse_ratio`` (in-sample), ``cv_rmse_ratio`` (5-fold, grouped by site),
  ``cv_rmse_bl2004`` (ratio RMSE of the Bond-Lamberty 2004 baseline on the same rows).
* ``partition.zarr`` (year, lat, lon): ``rh`` (ratio route, g C m-2 yr-1), ``ratio`` (Rh/Rs,
  1), ``rh_bl2004`` (g C m-2 yr-1).
* ``totals.parquet``: one row per (route, flux, year): ``total_pg`` (Pg C yr-1), ``lo_pg``,
  ``hi_pg`` (95 % interval, NaN when the route has none), ``rs_pg`` (the Rs product total),
  ``ratio`` (global Rh/Rs of the route).
* ``summary.json``: ``available`` (and ``reason`` when not), counts, per route the mean
  global total with its interval and the Theil-Sen / Mann-Kendall trend of the global Rh/Rs
  ratio over the run's years, the consistency figures and whether the routes agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from soilresp.cf import CARBON_COMMENT, RS_UNITS
from soilresp.errors import input_error

#: Bond-Lamberty et al. 2004, Global Change Biol. 10:1756, ln(Rh) = 1.22 + 0.73 ln(Rs)
BL2004 = (1.22, 0.73)
G_PER_PG = 1e15


# ------------------------------------------------------------------ pure kernels
def logit(p):
    p = np.asarray(p, float)
    return np.log(p / (1 - p))


def expit(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, float)))


def bl2004_rh(rs):
    """Rh (g C m-2 yr-1) from Rs by Bond-Lamberty et al. 2004, ln Rh = 1.22 + 0.73 ln Rs."""
    rs = np.asarray(rs, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rs > 0, np.exp(BL2004[0] + BL2004[1] * np.log(np.where(rs > 0, rs, 1.0))), np.nan)


def _design(t, p):
    t, p = np.asarray(t, float), np.asarray(p, float)
    return np.column_stack([np.ones_like(t), t, p / 1000.0])


def fit_logit_ratio(ratio, t, p, clip=(0.05, 0.95)) -> np.ndarray:
    """Least-squares coefficients (a, b_t, c_p) of ``logit(clip(ratio)) = a + b t + c p/1000``."""
    y = logit(np.clip(np.asarray(ratio, float), *clip))
    coef, *_ = np.linalg.lstsq(_design(t, p), y, rcond=None)
    return coef


def ratio_kernel(biome, t, p, coef_table):
    """Pure kernel: Rh/Rs per pixel from the biome code and climate.

    ``coef_table``: (256, 3) coefficients indexed by biome code (NaN rows = no model)."""
    b = np.asarray(biome).astype(np.int64) % 256
    c = coef_table[b]
    with np.errstate(invalid="ignore", over="ignore"):
        return expit(c[..., 0] + c[..., 1] * t + c[..., 2] * np.asarray(p, float) / 1000.0)


# ------------------------------------------------------------------ paired records
def paired_observations(cfg, base_dir, years, rh_target: str = "Rh_annual",
                        ra_target: str = "Ra_annual") -> pd.DataFrame:
    """Rs, Rh and Ra at the same records, selected and averaged like the Rs observations.

    The field rules run once per flux (``[field] target`` set to Rs_annual, ``rh_target``,
    ``ra_target``); records kept for both Rs and Rh are joined on their record number and
    averaged per site, year and vegetation. Ra is joined where the same records carry it.
    """
    from soilresp.errors import InputError
    from soilresp.field import build_observations

    def kept(target):
        upd = {"target": target}
        if target != "Rs_annual":  # a table's columns.rs maps Rs, not this flux
            upd["columns"] = {k: v for k, v in cfg.columns.items() if k != "rs"}
        try:
            res = build_observations(cfg.model_copy(update=upd), years, base_dir=base_dir)
        except InputError:
            return None
        r = res.records
        r = r[r["excluded_by"].astype(str).isin(["", "nan", "None"])]
        return r[["record_number", "site_id", "year", "vegetation", "lat", "lon", "rs"]]

    rs = kept("Rs_annual")
    rh = kept(rh_target)
    if rs is None or rh is None:
        return pd.DataFrame()
    ra = kept(ra_target)
    df = rs.merge(rh[["record_number", "rs"]].rename(columns={"rs": "rh"}), on="record_number")
    ra_col = (ra[["record_number", "rs"]].rename(columns={"rs": "ra"}) if ra is not None
              else pd.DataFrame({"record_number": pd.Series([], dtype=str), "ra": []}))
    df = df.merge(ra_col, on="record_number", how="left")
    df["year"] = df["year"].astype("int64")
    g = df.groupby(["site_id", "year", "vegetation"], sort=True)
    out = g.agg(lat=("lat", "mean"), lon=("lon", "mean"), rs=("rs", "mean"), rh=("rh", "mean"),
                ra=("ra", "mean"), n_records=("rs", "size")).reset_index()
    out["ratio"] = out["rh"] / out["rs"]
    return out


# ------------------------------------------------------------------ ratio models
def fit_ratio_models(paired: pd.DataFrame, temp: str, precip: str, *, min_obs: int = 10,
                     clip=(0.05, 0.95), biomes=None) -> pd.DataFrame:
    """One logit-linear ratio model per biome (code 0 = pooled over all pairs); see module."""
    d = paired.dropna(subset=["ratio", temp, precip])
    d = d[d["biome"] > 0]
    if len(d) < 3:
        raise ValueError(f"only {len(d)} paired Rh/Rs observations with drivers: no ratio model")
    rows = []
    pooled = fit_logit_ratio(d["ratio"], d[temp], d[precip], clip)
    codes = sorted(set(int(b) for b in (biomes if biomes is not None else d["biome"].unique())))
    for code in [0] + [c for c in codes if c > 0]:
        sub = d if code == 0 else d[d["biome"] == code]
        own = code == 0 or (len(sub) >= min_obs and sub["site_id"].nunique() >= 3)
        coef = pooled if not own or code == 0 else fit_logit_ratio(sub["ratio"], sub[temp], sub[precip], clip)
        pred = expit(_design(sub[temp], sub[precip]) @ coef) if len(sub) else np.array([])
        rows.append({"biome": code, "n": len(sub), "n_sites": int(sub["site_id"].nunique()),
                     "a": coef[0], "b_t": coef[1], "c_p": coef[2], "pooled": not own or code == 0,
                     "rmse_ratio": float(np.sqrt(np.mean((pred - sub["ratio"]) ** 2))) if len(sub) else np.nan})
    out = pd.DataFrame(rows)
    cv, cvb = grouped_cv(d, temp, precip, out, min_obs=min_obs, clip=clip)
    out["cv_rmse_ratio"] = out["biome"].map(cv)
    out["cv_rmse_bl2004"] = out["biome"].map(cvb)
    return out


def coef_table(models: pd.DataFrame) -> np.ndarray:
    """(256, 3) coefficients by biome code for :func:`ratio_kernel` (pooled for codes 1-255
    without a row; NaN for code 0 = no biome)."""
    tab = np.full((256, 3), np.nan)
    pooled = models.loc[models["biome"] == 0, ["a", "b_t", "c_p"]].to_numpy(float)[0]
    tab[1:] = pooled
    for r in models[models["biome"] > 0].itertuples():
        tab[int(r.biome)] = (r.a, r.b_t, r.c_p)
    return tab


def grouped_cv(d, temp, precip, models, *, k=5, min_obs=10, clip=(0.05, 0.95), seed=0):
    """RMSE of the ratio in k-fold cross-validation grouped by site (scikit-learn GroupKFold),
    per biome and pooled (code 0); also the RMSE of the BL2004 ratio on the same rows."""
    from sklearn.model_selection import GroupKFold

    pred = np.full(len(d), np.nan)
    sites = d["site_id"].astype(str).to_numpy()
    k = min(k, len(np.unique(sites)))
    if k < 2:
        return {}, {}
    for tr, te in GroupKFold(n_splits=k).split(d, groups=sites):
        dt = d.iloc[tr]
        dt = dt.assign(biome=dt["biome"])
        try:
            m = fit_ratio_models_nocv(dt, temp, precip, min_obs=min_obs, clip=clip,
                                      biomes=models["biome"].tolist())
        except ValueError:
            continue
        tab = coef_table(m)
        te_d = d.iloc[te]
        pred[te] = ratio_kernel(te_d["biome"].to_numpy(), te_d[temp].to_numpy(float),
                                te_d[precip].to_numpy(float), tab)
    obs = d["ratio"].to_numpy(float)
    bl = bl2004_rh(d["rs"].to_numpy(float)) / d["rs"].to_numpy(float)
    cv, cvb = {}, {}
    for code in models["biome"]:
        m = np.ones(len(d), bool) if code == 0 else (d["biome"].to_numpy() == code)
        ok = m & np.isfinite(pred)
        cv[code] = float(np.sqrt(np.mean((pred[ok] - obs[ok]) ** 2))) if ok.any() else np.nan
        cvb[code] = float(np.sqrt(np.mean((bl[m] - obs[m]) ** 2))) if m.any() else np.nan
    return cv, cvb


def fit_ratio_models_nocv(d, temp, precip, *, min_obs, clip, biomes):
    rows = []
    pooled = fit_logit_ratio(d["ratio"], d[temp], d[precip], clip)
    rows.append({"biome": 0, "a": pooled[0], "b_t": pooled[1], "c_p": pooled[2]})
    for code in (int(b) for b in biomes if int(b) > 0):
        sub = d[d["biome"] == code]
        if len(sub) >= min_obs and sub["site_id"].nunique() >= 3:
            c = fit_logit_ratio(sub["ratio"], sub[temp], sub[precip], clip)
            rows.append({"biome": code, "a": c[0], "b_t": c[1], "c_p": c[2]})
    return pd.DataFrame(rows)


def bootstrap_tables(d, temp, precip, models, n, seed, *, min_obs, clip) -> np.ndarray:
    """(n, 256, 3) coefficient tables from refits on sites resampled (with replacement)
    within each biome; a biome keeps its own model only where the original fit had one."""
    rng = np.random.default_rng(seed)
    d = d.dropna(subset=["ratio", temp, precip])
    d = d[d["biome"] > 0]
    own = set(models.loc[~models["pooled"], "biome"].astype(int))
    by_biome = {b: g for b, g in d.groupby("biome")}
    out = np.empty((n, 256, 3))
    for i in range(n):
        parts = []
        for b, g in by_biome.items():
            sites = g["site_id"].unique()
            pick = rng.choice(sites, size=sites.size, replace=True)
            parts.append(pd.concat([g[g["site_id"] == s] for s in pick]))
        db = pd.concat(parts)
        tab = np.full((256, 3), np.nan)
        tab[1:] = fit_logit_ratio(db["ratio"], db[temp], db[precip], clip)
        for b in own:
            sub = db[db["biome"] == b]
            tab[b] = fit_logit_ratio(sub["ratio"], sub[temp], sub[precip], clip)
        out[i] = tab
    return out


def global_sums(rs, t, p, biome, area, tables: np.ndarray, *, progress=None) -> dict[str, np.ndarray]:
    """Global totals (Pg C yr-1, per year) block by block (the product's lat x lon chunks;
    whole-longitude bands grew with the grid: ~0.5 GB of float64 temporaries at 0.25 degree,
    ~2.5 GB at 0.05 degree), never the whole globe in memory.

    ``tables`` (k, 256, 3): the first is the fitted model, the rest bootstrap draws.
    Returns ``rs`` (year,), ``bl2004`` (year,), ``ratio`` (k, year) Rh totals."""
    ny = rs.sizes["year"]
    out = {"rs": np.zeros(ny), "bl2004": np.zeros(ny), "ratio": np.zeros((tables.shape[0], ny))}
    step = int(rs.chunks[rs.get_axis_num("lat")][0]) if rs.chunks else rs.sizes["lat"]
    lstep = int(rs.chunks[rs.get_axis_num("lon")][0]) if rs.chunks else rs.sizes["lon"]
    blocks = [(slice(i0, i0 + step), slice(j0, j0 + lstep)) for i0 in range(0, rs.sizes["lat"], step)
              for j0 in range(0, rs.sizes["lon"], lstep)]
    for sl, sj in blocks:
        r = np.asarray(rs.isel(lat=sl, lon=sj).values, float)
        tt = np.asarray(t.isel(lat=sl, lon=sj).values, float)
        pp = np.asarray(p.isel(lat=sl, lon=sj).values, float)
        r0 = rs.isel(year=0, lat=sl, lon=sj)
        b = np.asarray(biome.isel(lat=sl, lon=sj).broadcast_like(r0).values)
        a = np.asarray((area.isel(lat=sl, lon=sj) if "lon" in area.dims else area.isel(lat=sl)).broadcast_like(r0).values,
                       float)
        ok = np.isfinite(r) & (b[None] > 0) & np.isfinite(tt) & np.isfinite(pp)
        w = np.where(ok, r * a[None], 0.0)
        out["rs"] += w.sum(axis=(1, 2)) / G_PER_PG
        out["bl2004"] += np.where(ok, np.nan_to_num(bl2004_rh(r)) * a[None], 0.0).sum(axis=(1, 2)) / G_PER_PG
        # the valid cells only, once per block: (year index, biome, T, P, weight)
        yi, ii, jj = np.nonzero(ok)
        bv, tv, pv, wv = b[ii, jj], tt[yi, ii, jj], pp[yi, ii, jj], w[yi, ii, jj]
        for k in range(tables.shape[0]):
            f = np.nan_to_num(ratio_kernel(bv, tv, pv, tables[k]))
            out["ratio"][k] += np.bincount(yi, weights=wv * f, minlength=ny) / G_PER_PG
        if progress and sj.stop >= rs.sizes["lon"]:
            progress("partition", min(sl.stop, rs.sizes["lat"]), rs.sizes["lat"])
    return out


def ratio_trend(years, ratio) -> dict:
    """Theil-Sen slope (per yr) with Sen's 95 % interval and Mann-Kendall p of a ratio series."""
    from soilresp.stats import trend_test

    r = trend_test(np.asarray(ratio, float)[None], np.asarray(years, float), min_years=3)
    return {k: float(np.asarray(r[k])[0]) for k in ("slope", "slope_lo", "slope_hi", "p")}


# ------------------------------------------------------------------ the stage
def _direct_totals(ctx, run: str, flux: str, years) -> pd.DataFrame | None:
    from soilresp import io
    from soilresp.targets import run_target

    folder = ctx.cfg.resolve(run)
    p = folder / "product" / "totals.parquet"
    key = f"partition.{flux.lower()}_run"
    if not io.is_complete(p):
        raise input_error(p, f"the {flux} run's product totals are absent (config key '{key}'): "
                          f"run `soilresp run` on that run's config first")
    got = run_target(folder)
    if got.symbol != flux:
        raise input_error(folder, f"config key '{key}' names a run whose target is {got.column}, "
                          f"not {flux}_annual")
    tot = io.read_table(p)
    g = tot[tot["region"] == "global"].set_index("year")
    missing = sorted(set(int(y) for y in years) - set(int(y) for y in g.index))
    if missing:
        raise input_error(p, f"the {flux} run lacks years {missing} of this run (config key '{key}')")
    g = g.loc[list(years)]
    iv, mode = mc_interval(folder, years)
    out = pd.DataFrame({"year": g.index.astype(int), "total_pg": g["total_pg"].to_numpy(float),
                        "lo_pg": iv["mc_lo"].to_numpy(float), "hi_pg": iv["mc_hi"].to_numpy(float)})
    out.attrs["mode"] = mode
    return out


def mc_interval(run_dir, years) -> tuple[pd.DataFrame, str]:
    """Global 95 % Monte Carlo interval per year (``mc_lo``, ``mc_hi``, Pg C yr-1) of a run's
    uncertainty stage (``uncertainty/mc_summary.parquet``) and the mode it comes from: the
    first mode of the file, as the report's summary (NaN and ``""`` when the stage did not run).
    The product's ``totals.parquet`` carries no interval: the uncertainty stage writes only
    below ``uncertainty/``."""
    from soilresp import io

    years = [int(y) for y in years]
    nan = pd.DataFrame({"mc_lo": np.nan, "mc_hi": np.nan}, index=pd.Index(years, name="year"))
    p = Path(run_dir) / "uncertainty" / "mc_summary.parquet"
    if not io.is_complete(p):
        return nan, ""
    sm = io.read_table(p)
    if sm.empty or not {"mode", "region", "year", "mc_lo", "mc_hi"} <= set(sm.columns):
        return nan, ""
    mode = str(sm["mode"].iloc[0])
    g = sm[(sm["mode"] == mode) & (sm["region"] == "global")].set_index("year")
    g.index = g.index.astype(int)
    return g[["mc_lo", "mc_hi"]].reindex(years).astype(float), mode


def _unavailable(ctx, reason: str) -> None:
    from soilresp import io

    prov = ctx.prov("partition")
    io.write_json(ctx.path("partition", "summary.json"), {"available": False, "reason": reason,
                                                          "provenance": prov})


def run(ctx) -> None:
    """The partition stage (module docstring): reads the field file, ``sites``' drivers via
    the driver cube, ``biomes.zarr``, ``product/rs.zarr`` and ``totals.parquet`` (and the
    uncertainty stage's ``mc_totals.parquet`` / ``mc_summary.parquet`` when present, of this
    run and of the direct runs); writes ``partition/``."""
    from soilresp import field, io
    from soilresp.drivers import extract_at_sites
    from soilresp.targets import target_info

    cfg, pc = ctx.cfg, ctx.cfg.partition
    (ctx.out / "partition").mkdir(parents=True, exist_ok=True)
    info = target_info(cfg.field.target)
    if not pc.enabled:
        return _unavailable(ctx, "switched off ([partition] enabled = false)")
    if info.symbol != "Rs":
        return _unavailable(ctx, f"the run maps {info.column}; the partition splits an Rs run")
    paired = paired_observations(cfg.field, cfg.base_dir, cfg.run.years, pc.rh_target, pc.ra_target)
    if paired.empty:
        return _unavailable(ctx, f"no field record carries both Rs_annual and {pc.rh_target} "
                            "after the selection rules")
    bio = io.open_zarr(ctx.path("biomes", "biomes.zarr"), ["biome", "cell_area"])
    paired = field.assign_biomes(paired, bio["biome"], max_cells=cfg.biomes.site_search_cells)
    cube = io.open_zarr(ctx.path("drivers", "drivers.zarr"))
    for v, key in ((pc.temperature, "temperature"), (pc.precipitation, "precipitation")):
        if v not in cube:  # the stage is on by default: say why, do not fail the run
            return _unavailable(ctx, f"driver {v!r} of config key 'partition.{key}' is not in "
                                f"the driver cube ({', '.join(sorted(cube.data_vars))})")
    paired = extract_at_sites(cube[[pc.temperature, pc.precipitation]], paired, ctx.grid,
                              cfg.drivers.max_site_distance_km)
    prov = ctx.prov("partition")
    io.write_table(ctx.path("partition", "paired.parquet"), paired, prov)
    try:
        models = fit_ratio_models(paired, pc.temperature, pc.precipitation,
                                  min_obs=pc.min_observations, clip=pc.ratio_clip)
    except ValueError as e:
        return _unavailable(ctx, str(e))
    io.write_table(ctx.path("partition", "ratio_models.parquet"), models, prov)

    tab = coef_table(models)
    prod = io.open_zarr(ctx.path("product", "rs.zarr"), ["rs"])
    rs = prod["rs"]
    t, p = cube[pc.temperature].sel(year=rs["year"]), cube[pc.precipitation].sel(year=rs["year"])
    ratio = xr.apply_ufunc(ratio_kernel, bio["biome"], t, p, kwargs={"coef_table": tab},
                           dask="parallelized", output_dtypes=[np.float64]).transpose("year", "lat", "lon")
    ratio = ratio.where(np.isfinite(rs)).astype(np.float32)
    ds = xr.Dataset({"rh": (ratio * rs).astype(np.float32), "ratio": ratio,
                     "rh_bl2004": xr.apply_ufunc(bl2004_rh, rs, dask="parallelized",
                                                 output_dtypes=[np.float64]).astype(np.float32)})
    ds["rh"].attrs = {"units": RS_UNITS, "comment": CARBON_COMMENT, "long_name": "annual soil heterotrophic respiration "
                      "(ratio route: Rh/Rs model x Rs product)",
                      "standard_name": "heterotrophic_respiration_carbon_flux"}
    ds["ratio"].attrs = {"units": "1", "long_name": "ratio of heterotrophic to total soil respiration"}
    ds["rh_bl2004"].attrs = {"units": RS_UNITS, "comment": CARBON_COMMENT, "long_name": "annual soil heterotrophic "
                             "respiration, Bond-Lamberty et al. 2004 ln Rh = 1.22 + 0.73 ln Rs"}
    ds.attrs.update({"Conventions": "CF-1.10", "title": "soilresp Rh/Ra partition",
                     "references": "Bond-Lamberty et al. 2004, Global Change Biol. 10:1756"})
    io.write_zarr(ctx.path("partition", "partition.zarr"), ds, prov)

    draws = bootstrap_tables(paired, pc.temperature, pc.precipitation, models, pc.bootstrap,
                             cfg.run.seed, min_obs=pc.min_observations, clip=pc.ratio_clip)
    sums = global_sums(rs, t, p, bio["biome"], bio["cell_area"], np.concatenate([tab[None], draws]),
                       progress=ctx.progress)
    years = [int(y) for y in rs["year"].values]
    rs_tot = io.read_table(ctx.path("product", "totals.parquet"))
    rs_tot = rs_tot[rs_tot["region"] == "global"].set_index("year").loc[years]
    rs_iv, rs_mode = mc_interval(ctx.out, years)
    scale = rs_mc_scale(ctx.out, years, rs_tot["total_pg"].to_numpy(float), pc.bootstrap, rs_mode)
    rows = []

    def add(route, flux, tot, lo=None, hi=None, rs_pg=None):
        rs_pg = rs_tot["total_pg"].to_numpy(float) if rs_pg is None else rs_pg
        for k, y in enumerate(years):
            rows.append({"route": route, "flux": flux, "year": y, "total_pg": float(tot[k]),
                         "lo_pg": np.nan if lo is None else float(lo[k]),
                         "hi_pg": np.nan if hi is None else float(hi[k]),
                         "rs_pg": float(rs_pg[k]), "ratio": float(tot[k] / rs_pg[k])})

    add("product", "Rs", rs_tot["total_pg"].to_numpy(float), rs_iv["mc_lo"].to_numpy(float),
        rs_iv["mc_hi"].to_numpy(float))
    central = sums["ratio"][0]
    boot = sums["ratio"][1:] * (scale if scale is not None else 1.0)
    lo, hi = ((np.percentile(boot, 2.5, axis=0), np.percentile(boot, 97.5, axis=0))
              if len(boot) else (None, None))
    add("ratio", "Rh", central, lo, hi)
    rs_arr = rs_tot["total_pg"].to_numpy(float)
    if len(boot):
        ra_boot = (rs_arr * (scale if scale is not None else 1.0)) - boot
        add("ratio", "Ra", rs_arr - central, np.percentile(ra_boot, 2.5, axis=0),
            np.percentile(ra_boot, 97.5, axis=0))
    else:
        add("ratio", "Ra", rs_arr - central)
    add("bl2004", "Rh", sums["bl2004"])
    direct = {}
    for flux, run_dir in (("Rh", pc.rh_run), ("Ra", pc.ra_run)):
        if run_dir is not None:
            d = _direct_totals(ctx, run_dir, flux, years)
            direct[flux] = d
            add("direct", flux, d["total_pg"].to_numpy(), d["lo_pg"].to_numpy(), d["hi_pg"].to_numpy())
    totals = pd.DataFrame(rows)
    io.write_table(ctx.path("partition", "totals.parquet"), totals, prov)

    summ = summarise(totals, paired, models, years, boot_ratio=(boot / (rs_arr * (scale if scale is not None else 1.0))
                                                              if len(boot) else None))
    summ.update({"available": True, "n_paired": int(len(paired)),
                 "n_paired_sites": int(paired["site_id"].nunique()),
                 "n_paired_with_ra": int(paired["ra"].notna().sum()),
                 "rs_uncertainty": (f"Monte Carlo totals of the uncertainty stage, mode {rs_mode} "
                                    f"(uniform factor per realisation)") if scale is not None
                 else "none (uncertainty stage not run): ratio-model bootstrap only",
                 "rs_mc_mode": rs_mode if scale is not None else "",
                 "direct_mc_mode": {f: d.attrs.get("mode", "") for f, d in direct.items()},
                 "bl2004_refit": _loglog_refit(paired), "provenance": prov})
    io.write_json(ctx.path("partition", "summary.json"), summ)


def rs_mc_scale(run_dir, years, central, n, mode: str = "") -> np.ndarray | None:
    """(n, year) factors mc_total / central total of the Rs Monte Carlo realisations of
    ``mode`` (default: the first in the file) in ``uncertainty/mc_totals.parquet``, cycled to
    ``n`` draws; None when the uncertainty stage did not run or has no realisation."""
    from soilresp import io

    p = Path(run_dir) / "uncertainty" / "mc_totals.parquet"
    if n == 0 or not io.is_complete(p):
        return None
    mc = io.read_table(p)
    if mc.empty:
        return None
    if "mode" in mc:
        mc = mc[mc["mode"] == (mode or str(mc["mode"].iloc[0]))]
    mc = mc[mc["region"] == "global"].pivot(index="realisation", columns="year", values="total_pg")
    if mc.empty or not set(years) <= set(int(y) for y in mc.columns):
        return None
    mc.columns = mc.columns.astype(int)
    mc = mc[list(years)].to_numpy(float)
    return mc[np.arange(n) % mc.shape[0]] / central[None]


def _loglog_refit(paired) -> dict:
    d = paired[(paired["rs"] > 0) & (paired["rh"] > 0)]
    if len(d) < 3:
        return {}
    x, y = np.log(d["rs"].to_numpy(float)), np.log(d["rh"].to_numpy(float))
    b, a = np.polyfit(x, y, 1)
    return {"a": float(a), "b": float(b), "n": int(len(d)), "published_a": BL2004[0],
            "published_b": BL2004[1]}


def consistency(paired: pd.DataFrame) -> dict:
    """(Ra + Rh) / Rs at the paired observations that report all three fluxes."""
    d = paired.dropna(subset=["ra", "rh", "rs"])
    if d.empty:
        return {"n": 0}
    q = ((d["ra"] + d["rh"]) / d["rs"]).to_numpy(float)
    return {"n": int(len(d)), "n_sites": int(d["site_id"].nunique()),
            "median_sum_over_rs": float(np.median(q)), "p10": float(np.percentile(q, 10)),
            "p90": float(np.percentile(q, 90)),
            "share_within_10pct": float(np.mean(np.abs(q - 1) <= 0.10)),
            "share_within_25pct": float(np.mean(np.abs(q - 1) <= 0.25))}


def summarise(totals, paired, models, years, boot_ratio=None) -> dict:
    """Per route: mean global total and interval, ratio trend; agreement; consistency."""
    routes = {}
    for (route, flux), g in totals.groupby(["route", "flux"], sort=False):
        g = g.sort_values("year")
        tr = ratio_trend(g["year"], g["ratio"]) if flux != "Rs" else {}
        rec = {"route": route, "flux": flux, "mean_total_pg": float(g["total_pg"].mean()),
               "mean_lo_pg": float(g["lo_pg"].mean()), "mean_hi_pg": float(g["hi_pg"].mean()),
               "mean_ratio": float(g["ratio"].mean()),
               **{f"ratio_trend_{k}": v for k, v in tr.items()}}
        iv = g[["lo_pg", "hi_pg"]].notna().all(axis=1)
        if iv.any():  # an interval that misses its own central total is not an interval of it
            gi = g[iv]
            rec["interval_contains_total"] = bool(((gi["lo_pg"] <= gi["total_pg"])
                                                   & (gi["total_pg"] <= gi["hi_pg"])).all())
        if route == "ratio" and flux == "Rh" and boot_ratio is not None and len(years) >= 3:
            from soilresp.stats import sens_slope

            s = np.asarray(sens_slope(boot_ratio, np.asarray(years, float)).slope, float)
            rec["ratio_trend_boot_lo"] = float(np.nanpercentile(s, 2.5))
            rec["ratio_trend_boot_hi"] = float(np.nanpercentile(s, 97.5))
        routes[f"{route}_{flux}"] = rec
    out = {"routes": routes, "consistency": consistency(paired),
           "intervals_missing_total": sorted(k for k, r in routes.items()
                                             if r.get("interval_contains_total") is False)}
    r, d = routes.get("ratio_Rh"), routes.get("direct_Rh")
    if r and d and all(np.isfinite([r["mean_lo_pg"], r["mean_hi_pg"]])):
        dlo, dhi = d["mean_lo_pg"], d["mean_hi_pg"]
        if not np.isfinite([dlo, dhi]).all():
            dlo = dhi = d["mean_total_pg"]
        out["routes_agree"] = bool(r["mean_lo_pg"] <= dhi and dlo <= r["mean_hi_pg"])
    if "direct_Rh" in routes and "direct_Ra" in routes:
        g = totals[totals["route"] == "direct"].pivot(index="year", columns="flux", values="total_pg")
        rs = totals[totals["route"] == "product"].set_index("year")["total_pg"]
        out["direct_sum_over_rs"] = float(((g["Rh"] + g["Ra"]) / rs.loc[g.index]).mean())
    return out


def read_summary(run_dir) -> dict | None:
    """``partition/summary.json`` of a run, or None."""
    from pathlib import Path

    p = Path(run_dir) / "partition" / "summary.json"
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None
