"""Global product (method step 5): per-biome prediction, area-weighted totals, latitude profile.

Output contract, ``product/`` (see ``docs/product.md``):

* ``rs.zarr`` (dims year, lat, lon; CF-1.10):

  - ``rs`` float32, g C m-2 yr-1, NaN outside the modelled biomes or where a predictor is
    missing;
  - ``biome`` int8 (lat, lon), the biome whose model made the pixel (0 = none);
  - ``model_family`` int8 (lat, lon), the model family used (``flag_values`` /
    ``flag_meanings``: 1 nls, 2 rf, 3 svr, 4 ann, 5 qrf; 0 = none);
  - ``rs_lo`` / ``rs_hi`` float32 (only when some biome's model gives prediction intervals,
    i.e. a quantile forest): the ``[product] interval_quantiles`` per pixel and year, NaN for
    biomes whose model gives no intervals.

* ``totals.parquet``: one row per (region, year): ``total_pg`` (Pg C yr-1), ``share`` of the
  global total, ``area_km2`` of the pixels with Rs (the uncertainty stage reads it and writes
  its intervals to ``uncertainty/``, never here).
* ``latitude_profile.parquet``: per latitude row, the area-weighted mean Rs of the years'
  mean (g C m-2 yr-1) and its total (Tg C yr-1) (Huang et al. 2020, Fig 1B).

Totals are sums of Rs x exact WGS84 cell area (:meth:`soilresp.grid.Grid.cell_area`,
``biomes.zarr`` ``cell_area``), 1 Pg = 1e15 g. Regions (``biomes.zarr`` ``region``) are fixed
per pixel from its mean air temperature over the run's years: tropical > 17 degC, temperate
2-17 degC, boreal < 2 degC (``[product] region_bounds``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from soilresp.models.base import FAMILIES, BiomeModel

REGIONS = ("global", "tropical", "temperate", "boreal")
_REGION_CODE = {"tropical": 3, "temperate": 2, "boreal": 1}
G_PER_PG = 1e15
FAMILY_CODES = {f: i + 1 for i, f in enumerate(FAMILIES)}


def _predictor_names(models: dict[int, BiomeModel]) -> list[str]:
    return sorted({v for m in models.values() for v in m.predictors})


def _check_drivers(cube: xr.Dataset, names: list[str]) -> None:
    missing = [v for v in names if v not in cube]
    if missing:
        raise KeyError(f"models need driver(s) {missing} that the driver cube lacks")


def _predict_block(biome, *arrays, models, names):
    """Pure kernel: Rs for every biome's pixels of one block (numpy in, numpy out)."""
    drivers = dict(zip(names, arrays))
    shape = np.broadcast_shapes(biome.shape, *(a.shape for a in arrays))
    out = np.full(shape, np.nan, dtype=np.float32)
    b = np.broadcast_to(biome, shape)
    for code, m in models.items():
        sel = b == code
        if not sel.any():
            continue
        X = np.column_stack([np.broadcast_to(drivers[v], shape)[sel] for v in m.predictors])
        out[sel] = m.predict(X)
    return out


def _quantile_block(biome, *arrays, models, names, quantiles):
    """Pure kernel: per-pixel prediction quantiles, shape (..., n_quantiles); NaN for biomes
    whose model gives no intervals."""
    drivers = dict(zip(names, arrays))
    shape = np.broadcast_shapes(biome.shape, *(a.shape for a in arrays))
    out = np.full(shape + (len(quantiles),), np.nan, dtype=np.float32)
    b = np.broadcast_to(biome, shape)
    for code, m in models.items():
        if not m.supports_intervals:
            continue
        sel = b == code
        if not sel.any():
            continue
        X = np.column_stack([np.broadcast_to(drivers[v], shape)[sel] for v in m.predictors])
        out[sel] = m.predict_quantiles(X, quantiles)
    return out


def predict_rs(cube: xr.Dataset, biome: xr.DataArray, models: dict[int, BiomeModel]) -> xr.DataArray:
    """Rs (year, lat, lon), g C m-2 yr-1, by applying each biome's model to its pixels, chunk
    by chunk (``xarray.apply_ufunc(dask="parallelized")`` over :func:`_predict_block`).

    ``models`` maps biome code -> a fitted :class:`soilresp.models.BiomeModel` of any family
    whose predictors are variables of ``cube``. Method step 5 (Huang et al. 2020).
    """
    names = _predictor_names(models)
    _check_drivers(cube, names)
    rs = xr.apply_ufunc(
        _predict_block, biome, *(cube[v] for v in names),
        kwargs={"models": models, "names": names},
        dask="parallelized", output_dtypes=[np.float32],
    ).transpose("year", "lat", "lon")
    rs.name = "rs"
    fams = sorted({m.family for m in models.values()})
    from soilresp.cf import RS_UNITS

    rs.attrs = {"units": RS_UNITS, "long_name": "annual soil respiration (carbon)",
                "cell_methods": "time: sum (annual total)",
                "comment": "per-biome models (Huang et al. 2020, method step 5) applied per pixel; "
                           f"families used: {', '.join(fams)}"}
    return rs


def predict_intervals(cube: xr.Dataset, biome: xr.DataArray, models: dict[int, BiomeModel],
                      quantiles=(0.025, 0.975)) -> xr.DataArray | None:
    """Per-pixel prediction quantiles (quantile, year, lat, lon), g C m-2 yr-1, from the
    biomes whose model supports intervals (quantile regression forest,
    :meth:`BiomeModel.predict_quantiles`); None when no biome's model does."""
    if not any(m.supports_intervals for m in models.values()):
        return None
    q = [float(v) for v in quantiles]
    names = _predictor_names(models)
    _check_drivers(cube, names)
    out = xr.apply_ufunc(
        _quantile_block, biome, *(cube[v] for v in names),
        kwargs={"models": models, "names": names, "quantiles": q},
        output_core_dims=[["quantile"]], dask="parallelized", output_dtypes=[np.float32],
        dask_gufunc_kwargs={"output_sizes": {"quantile": len(q)}},
    ).assign_coords(quantile=q).transpose("quantile", "year", "lat", "lon")
    return out


def model_family_map(biome: xr.DataArray, models: dict[int, BiomeModel]) -> xr.DataArray:
    """Model family per pixel, int8 codes of :data:`FAMILY_CODES` (0 = no model)."""
    lut = np.zeros(256, dtype=np.int8)
    for code, m in models.items():
        lut[int(code) % 256] = FAMILY_CODES[m.family]
    fam = xr.apply_ufunc(lambda b: lut[np.asarray(b).astype(np.int64) % 256], biome,
                         dask="parallelized", output_dtypes=[np.int8])
    fam.name = "model_family"
    fam.attrs = {"long_name": "model family used for the pixel",
                 "flag_values": np.array([0, *FAMILY_CODES.values()], dtype=np.int8),
                 "flag_meanings": "none " + " ".join(FAMILY_CODES)}
    return fam


def predict_dataset(cube: xr.Dataset, biome: xr.DataArray, models: dict[int, BiomeModel], *,
                    intervals: bool = True, quantiles=(0.025, 0.975)) -> xr.Dataset:
    """The ``rs.zarr`` Dataset (module docstring): ``rs``, ``biome``, ``model_family`` and,
    when a model supports intervals and ``intervals``, ``rs_lo``/``rs_hi``. Lazy."""
    from soilresp.cf import RS_UNITS

    ds = xr.Dataset({"rs": predict_rs(cube, biome, models)})
    ds["biome"] = biome.astype(np.int8)
    ds["biome"].attrs = {"long_name": "biome whose model made the pixel", "units": "1",
                         **{k: v for k, v in biome.attrs.items() if k.startswith("flag")}}
    ds["model_family"] = model_family_map(biome, models)
    if intervals:
        qi = predict_intervals(cube, biome, models, quantiles)
        if qi is not None:
            for name, q in zip(("rs_lo", "rs_hi"), qi["quantile"].values):
                v = qi.sel(quantile=q).drop_vars("quantile")
                v.attrs = {"units": RS_UNITS, "quantile": float(q),
                           "long_name": f"{float(q):g} quantile of annual soil respiration "
                                        "(quantile regression forest)",
                           "comment": "NaN where the biome's model gives no prediction interval"}
                ds[name] = v
    ds["rs"].attrs["ancillary_variables"] = " ".join(
        v for v in ("rs_lo", "rs_hi", "biome", "model_family") if v in ds)
    ds.attrs.update({"Conventions": "CF-1.10", "title": "soilresp annual soil respiration",
                     "references": "Huang et al. 2020, Sci. Adv. 6:eabb8508"})
    return ds


# ---------------------------------------------------------------- totals
def region_masks(region: xr.DataArray) -> dict[str, xr.DataArray]:
    """Boolean masks of :data:`REGIONS` from the ``biomes.zarr`` region codes."""
    return {"global": region > 0, **{r: region == _REGION_CODE[r] for r in REGIONS[1:]}}


def regional_totals(rs: xr.DataArray, region: xr.DataArray, area: xr.DataArray) -> xr.DataArray:
    """Totals in Pg C yr-1, dims (region, year), regions global/tropical/temperate/boreal.

    ``global`` is the sum over every pixel with Rs (whatever its region code); the three
    regions partition the pixels with a region code. Lazy for dask input.
    """
    mass = rs * area  # g C yr-1 per cell
    parts = [mass.sum(["lat", "lon"], skipna=True)]
    for r in REGIONS[1:]:
        parts.append(mass.where(region == _REGION_CODE[r]).sum(["lat", "lon"], skipna=True))
    tot = xr.concat(parts, dim=pd.Index(list(REGIONS), name="region")) / G_PER_PG
    tot.attrs = {"units": "Pg C yr-1"}
    return tot


def regional_areas(rs: xr.DataArray, region: xr.DataArray, area: xr.DataArray) -> xr.DataArray:
    """Area (km2) of the pixels with Rs, dims (region, year).

    Summed as whole square metres (int64): an integer sum is exact, so the result does not
    depend on the order in which chunks and array layouts are added (threads and a cluster
    agree to the bit). 1 m2 per cell is far below the cells' own accuracy.
    """
    m2 = np.rint(area).astype(np.int64)
    valid = rs.notnull()
    parts = [m2.where(valid, 0).sum(["lat", "lon"])]
    for r in REGIONS[1:]:
        parts.append(m2.where(valid & (region == _REGION_CODE[r]), 0).sum(["lat", "lon"]))
    return xr.concat(parts, dim=pd.Index(list(REGIONS), name="region")) / 1e6


def totals_table(tot: xr.DataArray, area_km2: xr.DataArray | None = None, tot_aoa: xr.DataArray | None = None,
                 area_aoa: xr.DataArray | None = None) -> pd.DataFrame:
    """Long table region, year, total_pg, share (of the global total) [, area_km2]; with the
    totals inside the area of applicability also ``total_pg_aoa``, ``area_km2_aoa`` and the
    shares of flux and area outside it (``share_flux_outside_aoa``, ``share_area_outside_aoa``)."""
    df = tot.to_dataframe(name="total_pg").reset_index()
    glob = df[df.region == "global"].set_index("year")["total_pg"]
    df["share"] = df["total_pg"] / df["year"].map(glob)
    if area_km2 is not None:
        df = df.merge(area_km2.to_dataframe(name="area_km2").reset_index(), on=["region", "year"])
    if tot_aoa is not None and area_aoa is not None:
        df = df.merge(tot_aoa.to_dataframe(name="total_pg_aoa").reset_index(), on=["region", "year"])
        df = df.merge(area_aoa.to_dataframe(name="area_km2_aoa").reset_index(), on=["region", "year"])
        with np.errstate(invalid="ignore", divide="ignore"):
            df["share_flux_outside_aoa"] = 1 - df["total_pg_aoa"] / df["total_pg"]
            df["share_area_outside_aoa"] = 1 - df["area_km2_aoa"] / df["area_km2"]
    return df


def add_aoa(ds: xr.Dataset, cube: xr.Dataset, biome: xr.DataArray, models: dict[int, BiomeModel],
            outside: str = "keep") -> xr.Dataset:
    """Add ``di`` and ``aoa`` (:func:`soilresp.aoa.dissimilarity`) to the product and apply
    ``[product] outside_aoa`` to ``rs``: ``keep``, ``mask`` (NaN outside) or ``fallback``
    (the biome's mean observed Rs, ``meta['biome_mean_rs']``, outside). Lazy."""
    from soilresp.aoa import dissimilarity

    di, flag = dissimilarity(cube, biome, models)
    ds["di"], ds["aoa"] = di, flag
    attrs = dict(ds["rs"].attrs)
    if outside == "mask":
        ds["rs"] = ds["rs"].where(flag != 0)
    elif outside == "fallback":
        lut = np.full(256, np.nan, dtype=np.float32)
        for code, m in models.items():
            v = m.meta.get("biome_mean_rs")
            lut[int(code) % 256] = np.nan if v is None else v
        mean = xr.apply_ufunc(lambda b: lut[np.asarray(b).astype(np.int64) % 256], biome, dask="parallelized",
                              output_dtypes=[np.float32])
        ds["rs"] = xr.where(flag == 0, mean, ds["rs"]).astype(np.float32).transpose("year", "lat", "lon")
    elif outside != "keep":
        raise ValueError(f"outside_aoa must be keep, mask or fallback, got {outside!r}")
    attrs["ancillary_variables"] = (attrs.get("ancillary_variables", "") + " di aoa").strip()
    attrs["comment"] = attrs.get("comment", "") + f"; outside the area of applicability: {outside}"
    ds["rs"].attrs = attrs
    return ds


def latitude_profile(rs: xr.DataArray, area: xr.DataArray) -> pd.DataFrame:
    """Fig 1B: per latitude row, mean Rs (g C m-2 yr-1, area-weighted, of the years' mean)
    and total (Tg C yr-1). One lazy pass; only the per-row results are held."""
    m = rs.mean("year", skipna=True)
    valid = np.isfinite(m)
    tot = (m * area).sum("lon", skipna=True)
    a = area * valid.sum("lon")
    prof = xr.Dataset({"mean_rs": tot / a.where(a > 0), "total_tg": tot / 1e12}).compute()
    return prof.to_dataframe().reset_index()[["lat", "mean_rs", "total_tg"]]


# ---------------------------------------------------------------- stage
def run(ctx) -> None:
    """The product stage: ``rs.zarr``, ``totals.parquet``, ``latitude_profile.parquet``."""
    import dask

    from soilresp import io
    from soilresp.config import BIOMES
    from soilresp.models import load_biome_models

    pc = ctx.cfg.product
    models = load_biome_models(ctx.out / "models", BIOMES)
    cube = io.open_zarr(ctx.path("drivers", "drivers.zarr"))
    bio = io.open_zarr(ctx.path("biomes", "biomes.zarr"), ["biome", "region", "cell_area"])
    ds = predict_dataset(cube, bio["biome"], models, intervals=pc.intervals,
                         quantiles=pc.interval_quantiles)
    ds = add_aoa(ds, cube, bio["biome"], models, pc.outside_aoa)
    from soilresp.targets import apply_attrs, target_info

    apply_attrs(ds, target_info(ctx.cfg.field.target))  # names follow [field] target
    from soilresp.product._progress import task_progress

    with task_progress(ctx.progress, "predict Rs"):
        io.write_zarr(ctx.path("product", "rs.zarr"), ds, ctx.prov("product"))
    out = io.open_zarr(ctx.path("product", "rs.zarr"))
    rs = out["rs"]
    with task_progress(ctx.progress, "totals"):
        rin = rs.where(out["aoa"] == 1)
        tot, ar, tin, ain = dask.compute(regional_totals(rs, bio["region"], bio["cell_area"]),
                                         regional_areas(rs, bio["region"], bio["cell_area"]),
                                         regional_totals(rin, bio["region"], bio["cell_area"]),
                                         regional_areas(rin, bio["region"], bio["cell_area"]))
        prof = latitude_profile(rs, bio["cell_area"])
    io.write_table(ctx.path("product", "totals.parquet"), totals_table(tot, ar, tin, ain), ctx.prov("product"))
    io.write_table(ctx.path("product", "latitude_profile.parquet"), prof, ctx.prov("product"))
    if pc.stability_drops > 0 or pc.stability_jackknife > 1:
        _stability(ctx, models, cube, bio)


def _stability(ctx, models, cube, bio) -> None:
    """``product/stability.parquet`` (:func:`soilresp.stability.stability_totals`)."""
    from soilresp import io
    from soilresp.models.cv import location_groups
    from soilresp.product._progress import task_progress
    from soilresp.stability import stability_totals

    pc = ctx.cfg.product
    src = ctx.path("sites", "training.parquet")
    if not src.is_file():
        return
    tab = io.read_table(src)
    tab = tab[tab["biome"] > 0].reset_index(drop=True)
    km = next(iter(models.values())).meta.get("location_km", 0.0) if models else 0.0
    if {"lat", "lon"} <= set(tab.columns):
        groups = location_groups(tab["lat"].to_numpy(float), tab["lon"].to_numpy(float), float(km or 0.0))
    else:  # a training table made without coordinates: sites are the units
        key = tab["site_id"] if "site_id" in tab else pd.Series(np.arange(len(tab)))
        groups = pd.factorize(key)[0].astype(np.int64)
    with task_progress(ctx.progress, "stability of the total"):
        st = stability_totals(tab, models, cube, bio["biome"], bio["cell_area"], groups=groups,
                              n_drops=pc.stability_drops, frac=pc.stability_fraction,
                              jackknife=pc.stability_jackknife, seed=ctx.cfg.run.seed, region=bio["region"],
                              sample_pixels=pc.stability_sample_pixels, min_per_stratum=pc.mc_min_per_stratum)
    io.write_table(ctx.path("product", "stability.parquet"), st, ctx.prov("product"))


# Monte Carlo lives in soilresp.product.uncertainty; re-exported for convenience.
from soilresp.product.uncertainty import (  # noqa: E402
    MCSettings,
    draw_parameters,
    monte_carlo_totals,
    summarise_mc,
)

__all__ = ["REGIONS", "G_PER_PG", "FAMILY_CODES", "predict_rs", "predict_intervals",
           "model_family_map", "predict_dataset", "region_masks", "regional_totals",
           "regional_areas", "totals_table", "add_aoa", "latitude_profile", "run", "MCSettings",
           "draw_parameters", "monte_carlo_totals", "summarise_mc"]
