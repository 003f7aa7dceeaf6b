"""Product: prediction of any model family, interval layers, totals, Monte Carlo schemes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from quantile_forest import RandomForestQuantileRegressor
from scipy.stats import theilslopes
from sklearn.ensemble import RandomForestRegressor

from soilresp.grid import Grid
from soilresp.models import BiomeModel, NonlinearRs
from soilresp.product import (FAMILY_CODES, predict_dataset, regional_totals, totals_table)
from soilresp.product.uncertainty import (MCSettings, inclusion_probabilities, monte_carlo_totals,
                                          realisation_trends, stratum_counts, summarise_mc)


def _world(seed=0, ny=8, nlat=12, nlon=16):
    rng = np.random.default_rng(seed)
    g = Grid(5.0, -30, 30, -40, 40, chunk=5)
    yrs = np.arange(2000, 2000 + ny)
    base = rng.normal(12, 8, (nlat, nlon))
    tas = base[None] + 0.08 * (yrs - 2000)[:, None, None] + rng.normal(0, 0.3, (ny, nlat, nlon))
    sm = rng.uniform(0.1, 0.4, (ny, nlat, nlon))
    gpp = rng.uniform(300, 2500, (ny, nlat, nlon))
    c = {"year": yrs, **g.coords()}
    cube = xr.Dataset({k: (("year", "lat", "lon"), v.astype(np.float32)) for k, v in
                       dict(tas=tas, sm=sm, gpp=gpp).items()}, coords=c)
    biome = np.where(base < 8, 1, np.where(base < 16, 2, 3)).astype(np.int8)
    biome[0, :3] = 0
    mean_t = tas.mean(0)
    region = np.where(mean_t < 2, 1, np.where(mean_t <= 17, 2, 3)).astype(np.int8)
    bio = xr.Dataset({"biome": (("lat", "lon"), biome), "region": (("lat", "lon"), region),
                      "cell_area": g.cell_area()}, coords=g.coords())
    # training rows: true Rs = 200 exp(0.06 T) (1 + sm) + 0.1 gpp, lognormal noise
    n = 240
    tr = pd.DataFrame({"tas": rng.normal(12, 8, n), "sm": rng.uniform(0.1, 0.4, n),
                       "gpp": rng.uniform(300, 2500, n)})
    tr["rs"] = (200 * np.exp(0.06 * tr.tas) * (1 + tr.sm) + 0.1 * tr.gpp) * np.exp(rng.normal(0, 0.1, n))
    tr["biome"] = np.where(tr.tas < 8, 1, np.where(tr.tas < 16, 2, 3))
    tr["site_id"] = [f"s{i // 2}" for i in range(n)]
    return cube, bio, tr


def _models(tr, families=("nls", "rf", "qrf")):
    out = {}
    for code, fam in zip((1, 2, 3), families):
        sub = tr[tr.biome == code]
        if fam == "nls":
            est, preds = NonlinearRs("eq2").fit(sub[["tas"]].values, sub.rs.values), ["tas"]
        elif fam == "rf":
            preds = ["tas", "sm"]
            est = RandomForestRegressor(30, min_samples_leaf=3, random_state=0).fit(sub[preds].values, sub.rs.values)
        else:
            preds = ["tas", "gpp"]
            est = RandomForestQuantileRegressor(n_estimators=30, min_samples_leaf=3, random_state=0).fit(
                sub[preds].values, sub.rs.values)
        out[code] = BiomeModel(code, fam, preds, est)
    return out


def test_prediction_per_family_with_intervals():
    cube, bio, tr = _world()
    models = _models(tr)
    ds = predict_dataset(cube.chunk({"lat": 5, "lon": 7}), bio["biome"], models).compute()
    b = bio["biome"].values
    for code, m in models.items():
        sel = b == code
        X = np.column_stack([cube[v].values[:, sel].ravel() for v in m.predictors])
        np.testing.assert_allclose(ds["rs"].values[:, sel].ravel(), m.predict(X).astype(np.float32), rtol=1e-6)
        assert np.all(ds["model_family"].values[sel] == FAMILY_CODES[m.family])
    assert np.all(np.isnan(ds["rs"].values[:, b == 0])) and np.all(ds["model_family"].values[b == 0] == 0)
    lo, hi, rs = ds["rs_lo"].values, ds["rs_hi"].values, ds["rs"].values
    q = b == 3
    assert np.all(lo[:, q] <= hi[:, q]) and np.all(np.isfinite(lo[:, q]))
    assert np.mean((rs[:, q] >= lo[:, q]) & (rs[:, q] <= hi[:, q])) > 0.9
    assert np.all(np.isnan(lo[:, b == 1]))
    assert ds["rs"].attrs["units"] == "g m-2 yr-1" and ds["rs_lo"].attrs["quantile"] == 0.025
    assert "none nls rf svr ann qrf" == ds["model_family"].attrs["flag_meanings"]
    # no interval layers without a quantile forest
    ds2 = predict_dataset(cube, bio["biome"], _models(tr, ("nls", "rf", "rf")))
    assert "rs_lo" not in ds2


def test_totals_regions_partition_global():
    cube, bio, tr = _world()
    ds = predict_dataset(cube, bio["biome"], _models(tr))
    tot = regional_totals(ds["rs"], bio["region"], bio["cell_area"]).compute()
    df = totals_table(tot)
    g = df[df.region == "global"].set_index("year").total_pg
    parts = df[df.region != "global"].groupby("year").total_pg.sum()
    np.testing.assert_allclose(g, parts, rtol=1e-9)
    ref = np.nansum(ds["rs"].values * bio["cell_area"].values[None, :, None], axis=(1, 2)) / 1e15
    np.testing.assert_allclose(g.values, ref, rtol=1e-6)


def _mc(cube, bio, models, tr, **kw):
    s = MCSettings(**{"n": 24, "seed": 5, "batch": 10, **kw})
    return monte_carlo_totals(cube.chunk({"lat": 5, "lon": 7}), bio, models, s, tr, None)


def test_mc_repeatable_and_ci_narrows_with_lower_cv():
    cube, bio, tr = _world()
    models = _models(tr, ("nls", "nls", "nls"))
    a = _mc(cube, bio, models, tr, param_cv=0.10)
    b = _mc(cube, bio, models, tr, param_cv=0.10)
    np.testing.assert_array_equal(a["total"].values, b["total"].values)
    # batching and chunking do not change a realisation
    c = monte_carlo_totals(cube.chunk({"lat": 12}), bio, models, MCSettings(n=24, seed=5, batch=7), tr, None)
    np.testing.assert_allclose(a["total"].values, c["total"].values, rtol=1e-12)
    narrow = _mc(cube, bio, models, tr, param_cv=0.02)
    w = lambda m: (m["total"].quantile(0.975, "realisation") - m["total"].quantile(0.025, "realisation"))
    ratio = (w(narrow) / w(a)).sel(region="global").values
    assert np.all(ratio < 0.4), ratio
    assert np.all(a["sampling_se"].values == 0)
    full = regional_totals(predict_dataset(cube, bio["biome"], models)["rs"], bio["region"],
                           bio["cell_area"]).compute()
    np.testing.assert_allclose(a["central"].values, full.values, rtol=1e-6)
    # the interval brackets the central estimate
    sm = summarise_mc(a["total"]).set_index(["region", "year"])
    cen = a["central"].to_series()
    assert ((sm.mc_lo <= cen) & (cen <= sm.mc_hi)).mean() > 0.9


def test_bootstrap_refit_every_family_repeatable():
    cube, bio, tr = _world()
    models = _models(tr)
    a = _mc(cube, bio, models, tr, mode="bootstrap", n=8)
    b = _mc(cube, bio, models, tr, mode="bootstrap", n=8)
    np.testing.assert_array_equal(a["total"].values, b["total"].values)
    g = a["total"].sel(region="global")
    assert float(g.std("realisation").min()) > 0
    rel = np.abs(g.mean("realisation") / a["central"].sel(region="global") - 1)
    assert float(rel.max()) < 0.1
    # ML families also fall back to bootstrap refits under the parameter scheme
    c = _mc(cube, bio, models, tr, mode="parameters", n=4)
    assert np.all(np.isfinite(c["total"].values))
    with pytest.raises(ValueError, match="training table"):
        monte_carlo_totals(cube, bio, models, MCSettings(n=2), None, None)


def test_stratified_sample_estimate_and_sampling_error():
    cube, bio, tr = _world(nlat=12, nlon=16)
    models = _models(tr, ("nls", "nls", "nls"))
    full = _mc(cube, bio, models, tr, n=0)
    counts = stratum_counts(bio["biome"].chunk(5), bio["region"])
    assert counts.sum() == int((bio["biome"] > 0).sum())
    p = inclusion_probabilities(counts, 60, 5)
    assert np.all((p >= 0) & (p <= 1)) and 40 < (p * counts).sum() < 120
    ests = []
    for seed in range(12):
        s = monte_carlo_totals(cube.chunk({"lat": 5}), bio, models,
                               MCSettings(n=0, seed=seed, sample_pixels=60, min_per_stratum=5), tr, None)
        ests.append((s["central"] - full["central"]) / s["central_sampling_se"])
        assert float(s["central_sampling_se"].sel(region="global").min()) > 0
    z = xr.concat(ests, "k").sel(region="global").values
    assert np.mean(np.abs(z) < 3) > 0.9 and abs(np.mean(z)) < 1.0


def test_trend_inside_each_realisation_matches_scipy():
    cube, bio, tr = _world()
    mc = _mc(cube, bio, _models(tr, ("nls", "nls", "nls")), tr, n=6)
    t = realisation_trends(mc["total"])
    x = mc["year"].values
    for _, r in t.sample(5, random_state=0).iterrows():
        y = mc["total"].sel(realisation=r.realisation, region=r.region).values
        assert r.slope == pytest.approx(theilslopes(y, x).slope, rel=1e-12)


def test_qualitative_draws_from_eq5_candidates():
    from soilresp.product.uncertainty import qualitative_draws

    cube, bio, tr = _world()
    rng = np.random.default_rng(9)
    cube["tas2"] = cube["tas"] + rng.normal(0, 0.5, cube["tas"].shape).astype(np.float32)
    tr["tas2"] = tr["tas"] + rng.normal(0, 0.5, len(tr))
    models = _models(tr, ("nls", "nls", "nls"))
    steps = pd.DataFrame([{"biome": b, "step": "temperature", "candidate": c, "eps": e}
                          for b in (1, 2, 3) for c, e in (("tas", 1.0), ("tas2", 0.95), ("sm", 0.5))])
    s = MCSettings(n=30, seed=2, qualitative="eq5")
    keys = qualitative_draws(models, s, tr, steps)
    assert keys and {k[1] for k in keys} == {("tas2",)}  # sm is outside the 10 % tolerance
    assert {k[1] for k in qualitative_draws(models, MCSettings(n=30, seed=2, qualitative="uniform"), tr, steps)} \
        == {("tas2",), ("sm",)}
    a = monte_carlo_totals(cube.chunk({"lat": 6}), bio, models, s, tr, steps)
    b = monte_carlo_totals(cube.chunk({"lat": 4}), bio, models, MCSettings(n=30, seed=2, qualitative="eq5", batch=7),
                           tr, steps)
    np.testing.assert_allclose(a["total"].values, b["total"].values, rtol=1e-12)
    none = monte_carlo_totals(cube, bio, models, MCSettings(n=30, seed=2, qualitative="none"), tr, steps)
    assert not np.allclose(a["total"].values, none["total"].values)
