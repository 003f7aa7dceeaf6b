import numpy as np
import pandas as pd
import pytest
import xarray as xr

from soilresp.grid import Grid
from soilresp.biomes import classify_region
from soilresp.synthetic import SRDB_HEADER, TRUE_MODELS, SyntheticWorld, _monthly_from_annual, write_world


def test_world_is_deterministic_and_block_independent():
    g = Grid(2.0, -60, 84, -180, 180, chunk=16)
    w1, w2 = SyntheticWorld(g, seed=3), SyntheticWorld(g, seed=3)
    a = w1.block(g.lat[:10], g.lon[:20])
    b = w2.block(g.lat[:10], g.lon[:20])
    for k in ("tas", "gpp", "rs_true", "biome"):
        np.testing.assert_array_equal(a[k], b[k])
    # smooth fields do not depend on how the globe is cut into blocks
    c = w1.block(g.lat[:5], g.lon[:20])
    np.testing.assert_array_equal(a["tas_mean"][:5], c["tas_mean"])
    assert not np.array_equal(SyntheticWorld(g, seed=4).block(g.lat[:10], g.lon[:20])["tas"], a["tas"])


def test_plausible_magnitudes_and_biomes():
    g = Grid(2.0, -60, 84, -180, 180)
    b = SyntheticWorld(g, seed=1).block(g.lat, g.lon)
    land = b["land"]
    assert 0.2 < land.mean() < 0.4
    tas = b["tas"][:, land]
    assert -30 < np.nanmin(tas) and np.nanmax(tas) < 40
    assert set(np.unique(b["biome"])) == set(range(11))
    rs = b["rs_true"][:, b["biome"] > 0]
    assert np.all(np.isfinite(rs)) and 50 < np.nanmedian(rs) < 1500
    cover = b["tc"] + b["sv"] + b["bg"]
    np.testing.assert_allclose(cover[:, land], 100.0, atol=1e-3)


@pytest.mark.parametrize("var", ["tas", "pr", "gpp", "sm", "evi", "spei", "lst_day"])
def test_monthly_expansion_preserves_annual(var):
    rng = np.random.default_rng(0)
    annual = rng.uniform(0.1, 0.4, size=(3, 4, 5)).astype(np.float32) * (1000 if var in ("pr", "gpp") else 1)
    lat = np.array([-40.0, -5.0, 5.0, 60.0])
    m = _monthly_from_annual(var, annual, lat).reshape(3, 12, 4, 5).astype(np.float64)
    agg = m.sum(axis=1) if var in ("pr", "gpp") else m.mean(axis=1)
    if var.startswith("lst"):
        agg = agg - 273.15
    np.testing.assert_allclose(agg, annual, rtol=1e-5, atol=1e-4)


def test_classify_region_bounds():
    out = classify_region(np.array([-5, 2, 10, 17, 17.01, np.nan]))
    assert out.tolist() == [1, 2, 2, 2, 3, 0]


def test_write_world_files(tmp_path):
    p = write_world(tmp_path, resolution=5.0, n_sites=150, seed=2)
    df = pd.read_csv(p["srdb"], keep_default_na=False)
    assert list(df.columns) == SRDB_HEADER and len(SRDB_HEADER) == 85
    assert (df["Meas_method"] == "Soda lime").any() and (df["Manipulation"] == "None").any()
    ds = xr.open_dataset(p["tas"])
    assert ds["tas"].attrs["units"] == "degC" and ds.sizes["time"] == 180
    assert ds["lat"].values[0] > ds["lat"].values[-1]  # north to south, like many products
    assert xr.open_dataset(p["lst_day"])["lst_day"].attrs["units"] == "K"
    truth = xr.open_zarr(p["truth"])
    assert truth["rs_true"].attrs["units"] == "g C m-2 yr-1"
    import json
    doc = json.loads(p["truth_json"].read_text())
    assert doc["synthetic"] is True and set(doc["totals_pg_per_yr"]) == {"global", "tropical", "temperate", "boreal"}
    assert len(doc["true_models"]) == len(TRUE_MODELS)


def test_world_land_uses_the_packaged_mask_not_global_land_mask(monkeypatch):
    """The twin's land/sea comes from soilresp.landmask (global-land-mask costs ~940 MB of RAM
    and is no core dependency); same answers: 3885 land cells of 2-degree centres, as
    global_land_mask.globe.is_land gives on this grid."""
    import sys

    monkeypatch.setitem(sys.modules, "global_land_mask", None)  # any import of it now fails
    g = Grid(2.0, -60, 84, -180, 180)
    land = SyntheticWorld(g, seed=1).land(g.lat, g.lon)
    assert land.shape == g.shape and int(land.sum()) == 3885


def test_demo_keeps_every_twin_site_at_a_coarse_grid(tmp_path):
    """A twin site lies inside its cell and observes that cell's truth, so the demo's
    max_site_distance_km must reach every site: at 5 degrees the 100 km default dropped more
    than 30 % of them (cell half-diagonal 394 km)."""
    from soilresp.demo import demo_site_distance_km
    from soilresp.drivers import extract_at_sites
    from soilresp.field.srdb import read_srdb

    p = write_world(tmp_path, resolution=5.0, n_sites=150, seed=2, kind="hard")
    g = Grid(5.0, -60, 84, -180, 180)
    obs = read_srdb(p["srdb"])
    obs = obs.assign(year=np.floor(obs["Study_midyear"]).astype(int), lat=obs["Latitude"], lon=obs["Longitude"])
    cube = xr.open_zarr(p["truth"], consolidated=False)[["tas"]]
    obs = obs[obs["year"].isin(cube["year"].values)]           # the planted 1995 records
    far = extract_at_sites(cube, obs, g, 100.0)
    assert far["tas"].isna().mean() > 0.3                      # what the default lost
    kept = extract_at_sites(cube, obs, g, demo_site_distance_km(5.0))
    assert kept["tas"].notna().all() and demo_site_distance_km(0.5) == 100.0
