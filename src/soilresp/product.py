"""Global product (method step 5): per-biome prediction, area-weighted totals, Monte Carlo.

Output contract:

* ``product/rs.zarr``: ``rs`` (year, lat, lon), float32, g C m-2 yr-1, NaN outside the
  modelled biomes; ``model_id`` (lat, lon) int8, the biome whose model made the pixel.
* ``product/totals.parquet``: one row per (region, year) with ``total_pg`` (Pg C yr-1),
  ``share`` of the global total, ``area_km2`` covered and, from the Monte Carlo,
  ``mc_mean``, ``mc_lo``, ``mc_hi`` (2.5 / 97.5 percentiles).
* ``product/latitude_profile.parquet``: mean (g C m-2 yr-1) and total (Tg C yr-1) per
  latitude row, averaged over years (Huang et al. 2020, Fig 1B).

Totals: sum of Rs x exact WGS84 cell area (:meth:`soilresp.grid.Grid.cell_area`), 1 Pg = 1e15 g.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from soilresp.models.base import BiomeModel
from soilresp.models.nonlinear import predict_form

REGIONS = ("global", "tropical", "temperate", "boreal")
_REGION_CODE = {"tropical": 3, "temperate": 2, "boreal": 1}
G_PER_PG = 1e15


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


def predict_rs(cube: xr.Dataset, biome: xr.DataArray, models: dict[int, BiomeModel]) -> xr.DataArray:
    """Rs (year, lat, lon) by applying each biome's model to its pixels, chunk by chunk.

    ``models`` maps biome code -> a fitted :class:`soilresp.models.BiomeModel` whose
    predictors are variables of ``cube``.
    """
    names = sorted({v for m in models.values() for v in m.predictors})
    missing = [v for v in names if v not in cube]
    if missing:
        raise KeyError(f"models need driver(s) {missing} that the driver cube lacks")
    rs = xr.apply_ufunc(
        _predict_block, biome, *(cube[v] for v in names),
        kwargs={"models": models, "names": names},
        dask="parallelized", output_dtypes=[np.float32],
    ).transpose("year", "lat", "lon")
    rs.name = "rs"
    rs.attrs = {"units": "g C m-2 yr-1", "long_name": "annual soil respiration",
                "standard_name": "soil_respiration_carbon_flux",
                "comment": "per-biome models of Huang et al. 2020 (Eq 1-4) applied per pixel"}
    return rs


def regional_totals(rs: xr.DataArray, region: xr.DataArray, area: xr.DataArray) -> xr.DataArray:
    """Totals in Pg C yr-1, dims (region, year), regions global/tropical/temperate/boreal."""
    mass = rs * area  # g C yr-1 per cell
    parts = [mass.sum(["lat", "lon"], skipna=True)]
    for r in REGIONS[1:]:
        parts.append(mass.where(region == _REGION_CODE[r]).sum(["lat", "lon"], skipna=True))
    tot = xr.concat(parts, dim=pd.Index(list(REGIONS), name="region")) / G_PER_PG
    tot.attrs = {"units": "Pg C yr-1"}
    return tot


def totals_table(tot: xr.DataArray) -> pd.DataFrame:
    df = tot.to_dataframe(name="total_pg").reset_index()
    glob = df[df.region == "global"].set_index("year")["total_pg"]
    df["share"] = df["total_pg"] / df["year"].map(glob)
    return df


def latitude_profile(rs: xr.DataArray, area: xr.DataArray) -> pd.DataFrame:
    """Fig 1B: per latitude row, mean Rs (g C m-2 yr-1, area-weighted) and total (Tg C yr-1)."""
    m = rs.mean("year", skipna=True)
    valid = np.isfinite(m)
    tot = (m * area).sum("lon", skipna=True)
    a = area * valid.sum("lon")
    prof = xr.Dataset({"mean_rs": tot / a.where(a > 0), "total_tg": tot / 1e12}).compute()
    return prof.to_dataframe().reset_index()[["lat", "mean_rs", "total_tg"]]


# ---------------------------------------------------------------- Monte Carlo (paper's scheme)
def draw_parameters(models: dict[int, BiomeModel], n: int, cv: float, seed: int) -> dict[int, np.ndarray]:
    """Parameter sets (n, n_params) per biome: each parameter ~ Normal(value, |cv * value|),
    Huang et al. 2020, Methods (uncertainty, N = 500, 10 % CV). Nonlinear models only."""
    rng = np.random.default_rng([seed, 17])
    out = {}
    for code in sorted(models):
        if models[code].family != "nls":
            raise NotImplementedError(f"biome {code}: parameter Monte Carlo needs a nonlinear model, "
                                      f"not {models[code].family!r}")
        p = np.asarray(models[code].params, dtype=float)
        out[code] = p[None, :] + rng.normal(size=(n, p.size)) * np.abs(cv * p)[None, :]
    return out


def _mc_block(biome, region, area, *arrays, models, names, draws):
    """Kernel: per-block partial sums, shape (n_real, n_year, 4 regions), in g C yr-1."""
    drivers = dict(zip(names, arrays))
    ny = arrays[0].shape[0]
    n = next(iter(draws.values())).shape[0] if draws else 0
    acc = np.zeros((n, ny, len(REGIONS)))
    for code, m in models.items():
        sel = biome[0] == code  # (lat, lon)
        if not sel.any():
            continue
        cols = [drivers[v][:, sel] for v in m.predictors]  # (year, npix)
        w = np.broadcast_to(area[0], sel.shape)[sel]  # (npix,)
        reg = region[0][sel]
        for r in range(n):
            pred = predict_form(m.form, draws[code][r], *cols)  # (year, npix)
            pred = np.where(np.isfinite(pred), pred, 0.0) * w
            acc[r, :, 0] += pred.sum(axis=1)
            for k, name in enumerate(REGIONS[1:], start=1):
                acc[r, :, k] += pred[:, reg == _REGION_CODE[name]].sum(axis=1)
    return acc[:, :, :, None, None]


def monte_carlo_totals(cube: xr.Dataset, bio: xr.Dataset, models: dict[int, BiomeModel], n: int,
                       cv: float, seed: int) -> xr.DataArray:
    """Totals (realisation, region, year) in Pg C yr-1 under parameter perturbation.

    Each block returns its partial sums for every realisation, so memory stays at one block;
    the grid is never held whole.
    """
    names = sorted({v for m in models.values() for v in m.predictors})
    draws = draw_parameters(models, n, cv, seed)
    area2d = bio["cell_area"].broadcast_like(bio["biome"]).chunk(dict(zip(bio["biome"].dims, bio["biome"].chunks)))
    arrs = [cube[v].data for v in names]
    ny = cube.sizes["year"]
    parts = _mc_parts(bio, area2d, arrs, models, names, draws, n, ny)
    tot = parts.sum(axis=(3, 4)) / G_PER_PG
    return xr.DataArray(tot, dims=("realisation", "year", "region"),
                        coords={"year": cube["year"].values, "region": list(REGIONS)},
                        attrs={"units": "Pg C yr-1"}).transpose("realisation", "region", "year")


def _mc_parts(bio, area2d, arrs, models, names, draws, n, ny):
    import dask
    import dask.array as dsa

    lat_chunks, lon_chunks = arrs[0].chunks[1], arrs[0].chunks[2]
    blocks = []
    i0 = 0
    for ci in lat_chunks:
        row = []
        j0 = 0
        for cj in lon_chunks:
            sl = (slice(i0, i0 + ci), slice(j0, j0 + cj))
            d = dask.delayed(_mc_block)(
                bio["biome"].data[sl][None], bio["region"].data[sl][None], area2d.data[sl][None],
                *(a[:, sl[0], sl[1]] for a in arrs), models=models, names=names, draws=draws)
            row.append(dsa.from_delayed(d, shape=(n, ny, len(REGIONS), 1, 1), dtype=np.float64))
            j0 += cj
        blocks.append(row)
        i0 += ci
    return dsa.block(blocks)


def summarise_mc(mc: xr.DataArray) -> pd.DataFrame:
    """Mean and 95 % interval (2.5 / 97.5 percentiles) per region and year."""
    q = mc.quantile([0.025, 0.975], dim="realisation")
    df = pd.DataFrame({
        "mc_mean": mc.mean("realisation").to_series(),
        "mc_lo": q.sel(quantile=0.025).drop_vars("quantile").to_series(),
        "mc_hi": q.sel(quantile=0.975).drop_vars("quantile").to_series(),
    }).reset_index()
    return df
