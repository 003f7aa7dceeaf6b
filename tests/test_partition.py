"""[field] target, target naming, the Rh/Rs ratio models, the partition stage and the twin's split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from soilresp import partition as P
from soilresp.config import FieldConfig, config_from_dict
from soilresp.errors import InputError
from soilresp.field import read_srdb, select_observations
from soilresp.targets import apply_attrs, relabel, target_info

from test_field_select import YEARS, write_srdb


# ------------------------------------------------------------------ target selection
def _recs():
    return [dict(Rs_annual="800", Rh_annual="500", Ra_annual="280"),
            dict(Rs_annual="900", Rh_annual="", Ra_annual="300", Site_name="B", Latitude="43.5"),
            dict(Rs_annual="700", Rh_annual="450", Site_name="C", Latitude="44.5")]


def test_target_selects_the_flux_column(tmp_path):
    p = write_srdb(tmp_path / "srdb-data.csv", _recs())
    df = read_srdb(p)
    rs = select_observations(df, FieldConfig(), YEARS, source=p)
    rh = select_observations(df, FieldConfig(target="Rh_annual"), YEARS, source=p)
    ra = select_observations(df, FieldConfig(target="Ra_annual"), YEARS, source=p)
    assert sorted(rs.observations["rs"]) == [700, 800, 900]
    assert sorted(rh.observations["rs"]) == [450, 500]           # record 2 has no Rh
    assert sorted(ra.observations["rs"]) == [280, 300]
    assert rh.records.set_index("record_number").loc["2", "excluded_by"] == "rs_annual_present"
    assert rh.meta["target"] == "Rh_annual" and rs.meta["target"] == "Rs_annual"


def test_unknown_target_is_a_one_line_error(tmp_path):
    p = write_srdb(tmp_path / "srdb-data.csv", _recs())
    with pytest.raises(InputError, match="Rx_annual"):
        select_observations(read_srdb(p), FieldConfig(target="Rx_annual"), YEARS, source=p)


def test_target_names_a_column_of_a_user_table(tmp_path):
    from soilresp.field import build_observations

    t = tmp_path / "t.csv"
    pd.DataFrame({"lat": [42.54, 61.85], "lon": [-72.17, 24.29], "year": [2005, 2006],
                  "rs_total": [800.0, 600.0], "rh_flux": [430.0, 350.0]}).to_csv(t, index=False)
    cfg = FieldConfig(path=t, format="table", target="rh_flux", columns={}, country_check=False)
    res = build_observations(cfg, YEARS)
    assert sorted(res.observations["rs"]) == [350.0, 430.0]
    assert target_info("rh_flux").symbol == "rh_flux"


# ------------------------------------------------------------------ naming / units
def test_target_naming_and_units_propagate_to_product_attrs():
    ds = xr.Dataset({"rs": (("year", "lat", "lon"), np.ones((1, 2, 2), np.float32),
                            {"units": "g C m-2 yr-1", "long_name": "annual soil respiration",
                             "standard_name": "soil_respiration_carbon_flux"}),
                     "rs_lo": (("year", "lat", "lon"), np.ones((1, 2, 2), np.float32),
                               {"long_name": "0.025 quantile of annual soil respiration"})})
    apply_attrs(ds, target_info("Rh_annual"))
    assert ds["rs"].attrs["long_name"] == "annual soil heterotrophic respiration"
    assert ds["rs"].attrs["standard_name"] == "heterotrophic_respiration_carbon_flux"
    assert ds["rs"].attrs["units"] == "g m-2 yr-1" and "carbon" in ds["rs"].attrs["comment"]  # UDUNITS
    assert "heterotrophic" in ds["rs_lo"].attrs["long_name"]
    assert ds.attrs["soilresp_target"] == "Rh_annual" and "heterotrophic" in ds.attrs["title"]
    apply_attrs(ds, target_info("Ra_annual"))
    assert "standard_name" not in ds["rs"].attrs and ds["rs"].attrs["long_name"] == "annual root respiration"
    info = target_info("Rh_annual")
    assert relabel("Fig 1. Mean annual soil respiration: Rs (g C)", info) == \
        "Fig 1. Mean annual soil heterotrophic respiration: Rh (g C)"
    assert relabel("Rs trends", target_info(None)) == "Rs trends"
    assert relabel("Results", info) == "Results"            # whole words only


def test_relabel_figure_rewrites_every_text():
    from soilresp.report._common import plt
    from soilresp.report.partition import relabel_figure

    fig, ax = plt.subplots()
    ax.set_title("mean annual soil respiration")
    ax.set_ylabel("Rs (Pg C yr$^{-1}$)")
    ax.plot([0, 1], label="Rs series")
    ax.legend()
    relabel_figure(fig, target_info("Rh_annual"))
    texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    assert "mean annual soil heterotrophic respiration" in texts and "Rh (Pg C yr$^{-1}$)" in texts
    assert "Rh series" in texts and not any("Rs" in t for t in texts)
    plt.close(fig)


def test_config_target_and_partition_defaults():
    cfg = config_from_dict({"field": {"target": "Rh_annual"}})
    assert cfg.field.target == "Rh_annual" and cfg.partition.bootstrap == 200
    from soilresp.errors import ConfigError

    with pytest.raises(ConfigError):
        config_from_dict({"field": {"target": ""}})


# ------------------------------------------------------------------ ratio models
def _simulated_pairs(n_sites=60, seed=1):
    """Paired Rs/Rh at sites of two biomes with known logit-linear ratio coefficients."""
    rng = np.random.default_rng(seed)
    truth = {1: (0.2, 0.03, -0.4), 2: (0.6, 0.01, -0.2)}
    rows = []
    for b, (a, bt, cp) in truth.items():
        for s in range(n_sites):
            t, p = rng.uniform(-5, 28), rng.uniform(200, 3000)
            for y in range(2):
                rs = rng.uniform(300, 1500)
                ratio = 1 / (1 + np.exp(-(a + bt * t + cp * p / 1000 + rng.normal(0, 0.15))))
                rows.append(dict(site_id=f"b{b}s{s}", year=2000 + y, biome=b, tas=t, pr=p, rs=rs,
                                 rh=rs * ratio, ra=rs * (1 - ratio), ratio=ratio))
    return pd.DataFrame(rows), truth


def test_ratio_models_recover_simulated_coefficients():
    d, truth = _simulated_pairs()
    m = P.fit_ratio_models(d, "tas", "pr", min_obs=10).set_index("biome")
    for b, coef in truth.items():
        assert not m.loc[b, "pooled"]
        np.testing.assert_allclose(m.loc[b, ["a", "b_t", "c_p"]].to_numpy(float), coef, atol=0.12)
    assert m.loc[0, "pooled"] and m.loc[1, "cv_rmse_ratio"] < m.loc[1, "cv_rmse_bl2004"]
    # least squares checked against scikit-learn on the same design
    from sklearn.linear_model import LinearRegression

    s = d[d["biome"] == 1]
    lr = LinearRegression().fit(np.column_stack([s["tas"], s["pr"] / 1000]), P.logit(np.clip(s["ratio"], 0.05, 0.95)))
    np.testing.assert_allclose(m.loc[1, ["a", "b_t", "c_p"]].to_numpy(float),
                               [lr.intercept_, *lr.coef_], rtol=1e-9, atol=1e-12)


def test_small_biome_falls_back_to_the_pooled_model():
    d, _ = _simulated_pairs(n_sites=30)
    d = pd.concat([d, d[d["biome"] == 2].head(4).assign(biome=3)])
    m = P.fit_ratio_models(d, "tas", "pr", min_obs=10).set_index("biome")
    assert m.loc[3, "pooled"] and m.loc[3, "a"] == m.loc[0, "a"]
    tab = P.coef_table(m.reset_index())
    assert np.allclose(tab[3], tab[0 + 7]) and np.isnan(tab[0]).all()   # 7: no row -> pooled


def test_bootstrap_interval_covers_the_true_ratio_total():
    d, truth = _simulated_pairs(n_sites=40, seed=3)
    m = P.fit_ratio_models(d, "tas", "pr", min_obs=10)
    draws = P.bootstrap_tables(d, "tas", "pr", m, 100, seed=0, min_obs=10, clip=(0.05, 0.95))
    t, p = np.array([15.0]), np.array([1000.0])
    vals = np.array([P.ratio_kernel(np.array([1]), t, p, tab)[0] for tab in draws])
    true = 1 / (1 + np.exp(-(truth[1][0] + truth[1][1] * 15 + truth[1][2])))
    assert np.percentile(vals, 2.5) <= true <= np.percentile(vals, 97.5)


def test_bl2004_and_global_sums_against_numpy():
    np.testing.assert_allclose(P.bl2004_rh(np.array([500.0])), np.exp(1.22 + 0.73 * np.log(500.0)))
    assert np.isnan(P.bl2004_rh(np.array([0.0]))[0])
    rng = np.random.default_rng(0)
    ny, nl, nn = 3, 10, 7
    coords = {"year": [2000, 2001, 2002], "lat": np.arange(nl) * 1.0, "lon": np.arange(nn) * 1.0}
    rs = xr.DataArray(rng.uniform(100, 1000, (ny, nl, nn)), dims=("year", "lat", "lon"), coords=coords)
    rs[0, 0, 0] = np.nan
    t = xr.DataArray(rng.uniform(0, 25, (ny, nl, nn)), dims=rs.dims, coords=coords)
    p = xr.DataArray(rng.uniform(300, 2000, (ny, nl, nn)), dims=rs.dims, coords=coords)
    bio = xr.DataArray(rng.integers(0, 3, (nl, nn)), dims=("lat", "lon"), coords={k: coords[k] for k in ("lat", "lon")})
    area = xr.DataArray(rng.uniform(1e9, 2e9, nl), dims="lat", coords={"lat": coords["lat"]})
    tab = np.full((256, 3), np.nan)
    tab[1:] = (0.1, 0.02, -0.1)
    tab[2] = (0.5, 0.0, 0.0)
    out = P.global_sums(rs.chunk({"lat": 4}), t, p, bio, area, tab[None])
    ok = np.isfinite(rs.values) & (bio.values[None] > 0)
    A = np.broadcast_to(area.values[None, :, None], rs.shape)
    b = np.broadcast_to(bio.values[None], rs.shape)
    lin = tab[b, 0] + tab[b, 1] * t.values + tab[b, 2] * p.values / 1000
    ratio = 1 / (1 + np.exp(-lin))
    exp = np.where(ok, rs.values * A * ratio, 0).sum(axis=(1, 2)) / 1e15
    np.testing.assert_allclose(out["ratio"][0], exp, rtol=1e-12)
    np.testing.assert_allclose(out["rs"], np.where(ok, rs.values * A, 0).sum(axis=(1, 2)) / 1e15, rtol=1e-12)


def test_ratio_trend_against_scipy():
    from scipy import stats

    y = np.array([0.55, 0.56, 0.555, 0.57, 0.58, 0.575, 0.59])
    x = np.arange(2000, 2007)
    r = P.ratio_trend(x, y)
    assert r["slope"] == pytest.approx(stats.theilslopes(y, x).slope)


def test_paired_observations_join_rs_rh_ra(tmp_path):
    p = write_srdb(tmp_path / "srdb-data.csv", _recs())
    d = P.paired_observations(FieldConfig(path=p), tmp_path, YEARS)
    assert len(d) == 2
    row = d.set_index("rs").loc[800.0]
    assert row["rh"] == 500 and row["ra"] == 280 and row["ratio"] == pytest.approx(0.625)
    assert np.isnan(d.set_index("rs").loc[700.0, "ra"])
    c = P.consistency(d)
    assert c["n"] == 1 and c["median_sum_over_rs"] == pytest.approx(780 / 800)


# ------------------------------------------------------------------ twin world
def test_true_ratio_is_the_documented_rule():
    from soilresp.synthetic_partition import true_ratio

    r = true_ratio(np.array([10.0, 10.0, 60.0, 10.0]), np.array([1000.0, 1000.0, 0.0, 1000.0]),
                   np.array([1, 8, 8, 0]))
    np.testing.assert_allclose(r[:3], [0.50, 0.62, 0.85])
    assert np.isnan(r[3])


def test_demo_partition_recovers_the_true_rh(small_demo):
    out, rec = small_demo
    part = rec["partition"]["ratio"]
    assert part["max_abs_relative_error"] <= 0.05, part
    assert rec["checks"]["partition_rh_within_5pct_every_year"]
    s = json.loads((out / "run" / "partition" / "summary.json").read_text())
    assert s["available"] and s["consistency"]["n"] > 50
    # the Rs interval and the ratio draws' Rs factors come from the uncertainty stage's files
    assert s["rs_mc_mode"] and s["rs_mc_mode"] in s["rs_uncertainty"], s["rs_uncertainty"]
    tot = pd.read_parquet(out / "run" / "partition" / "totals.parquet")
    rs = tot[tot["route"] == "product"]
    assert np.isfinite(rs[["lo_pg", "hi_pg"]].to_numpy()).all()
    assert (rs["lo_pg"] < rs["total_pg"]).all() and (rs["total_pg"] < rs["hi_pg"]).all()
    truth = json.loads((out / "world" / "truth.json").read_text())["partition"]
    assert len(truth["rh_total_pg_per_yr"]) == len(part["true_pg"])


def test_direct_route_reads_an_rh_run_and_checks_its_target(tmp_path):
    from types import SimpleNamespace

    from soilresp import io

    run = tmp_path / "rh-out"
    tot = pd.DataFrame({"region": ["global"] * 3, "year": [2000, 2001, 2002],
                        "total_pg": [50.0, 51.0, 52.0]})  # the product stage's contract: no interval
    io.write_table(run / "product" / "totals.parquet", tot, {})
    ds = xr.Dataset({"rs": (("year",), np.ones(3, np.float32))}, coords={"year": [2000, 2001, 2002]})
    io.write_zarr(run / "product" / "rs.zarr", apply_attrs(ds, target_info("Rh_annual")), {})
    ctx = SimpleNamespace(cfg=SimpleNamespace(resolve=lambda p: tmp_path / p))
    d = P._direct_totals(ctx, "rh-out", "Rh", [2000, 2001, 2002])
    assert d["total_pg"].tolist() == [50.0, 51.0, 52.0] and d["hi_pg"].isna().all()  # no uncertainty stage
    # the interval is the uncertainty stage's, first mode of the file (as the report's summary)
    rows = [dict(mode=m, region=r, year=y, mc_lo=lo + k, mc_hi=hi + k)
            for m, lo, hi in (("site-bootstrap", 45.0, 56.0), ("paper", 30.0, 80.0))
            for r in ("global", "tropical") for k, y in enumerate([2000, 2001, 2002])]
    io.write_table(run / "uncertainty" / "mc_summary.parquet", pd.DataFrame(rows), {})
    d = P._direct_totals(ctx, "rh-out", "Rh", [2000, 2001, 2002])
    assert d["lo_pg"].tolist() == [45.0, 46.0, 47.0] and d["hi_pg"].tolist() == [56.0, 57.0, 58.0]
    assert d.attrs["mode"] == "site-bootstrap"
    with pytest.raises(InputError, match="not Ra_annual"):
        P._direct_totals(ctx, "rh-out", "Ra", [2000, 2001, 2002])
    with pytest.raises(InputError, match=r"lacks years \[2003\]"):
        P._direct_totals(ctx, "rh-out", "Rh", [2001, 2002, 2003])
    # both routes in the summary: intervals overlap -> agree
    rows = []
    for route, flux, base, lo, hi in (("product", "Rs", 90, 80, 100), ("ratio", "Rh", 53, 45, 60),
                                      ("direct", "Rh", 50, 45, 56), ("direct", "Ra", 38, 30, 45)):
        for k, y in enumerate([2000, 2001, 2002]):
            rows.append(dict(route=route, flux=flux, year=y, total_pg=base + k, lo_pg=lo, hi_pg=hi,
                             rs_pg=90 + k, ratio=(base + k) / (90 + k)))
    paired = pd.DataFrame({"site_id": ["a"], "rs": [800.0], "rh": [500.0], "ra": [300.0]})
    s = P.summarise(pd.DataFrame(rows), paired, None, [2000, 2001, 2002])
    assert s["routes_agree"] and s["direct_sum_over_rs"] == pytest.approx(np.mean([88 / 90, 90 / 91, 92 / 92]))
    assert s["routes"]["direct_Rh"]["ratio_trend_slope"] > 0
    assert s["intervals_missing_total"] == [] and s["routes"]["ratio_Rh"]["interval_contains_total"]
    # a direct run whose Monte Carlo interval misses its own total (real Rh example, issue 20) is flagged
    bad = pd.DataFrame(rows).assign(lo_pg=lambda d: np.where(d["route"] == "direct", d["total_pg"] + 2, d["lo_pg"]))
    s = P.summarise(bad, paired, None, [2000, 2001, 2002])
    assert s["intervals_missing_total"] == ["direct_Ra", "direct_Rh"]
    assert s["routes"]["ratio_Rh"]["interval_contains_total"]


def test_paired_observations_from_a_mapped_user_table(tmp_path):
    t = tmp_path / "t.csv"
    pd.DataFrame({"la": [42.54, 61.85], "lo": [-72.17, 24.29], "yr": [2005, 2006],
                  "soil_resp": [800.0, 600.0], "Rh_annual": [430.0, 350.0]}).to_csv(t, index=False)
    cfg = FieldConfig(path=t, format="table", country_check=False,
                      columns={"lat": "la", "lon": "lo", "year": "yr", "rs": "soil_resp"})
    d = P.paired_observations(cfg, tmp_path, YEARS)
    assert sorted(d["ratio"].round(4)) == sorted([round(350 / 600, 4), round(430 / 800, 4)])


def test_rs_mc_scale_reads_the_uncertainty_stage_realisations(tmp_path):
    """Ratio draws are scaled by Rs realisations of uncertainty/mc_totals.parquet (one mode)."""
    from soilresp import io

    years = [2000, 2001]
    rows = [dict(mode=m, realisation=i, region=r, year=y, total_pg=base * f * (1 + 0.01 * k))
            for m, base in (("site-bootstrap", 100.0), ("paper", 50.0))
            for i, f in enumerate((0.9, 1.1, 1.2)) for r in ("global", "boreal")
            for k, y in enumerate(years)]
    assert P.rs_mc_scale(tmp_path, years, np.array([100.0, 101.0]), 4) is None  # stage not run
    io.write_table(tmp_path / "uncertainty" / "mc_totals.parquet", pd.DataFrame(rows), {})
    sc = P.rs_mc_scale(tmp_path, years, np.array([100.0, 101.0]), 4)
    np.testing.assert_allclose(sc[:, 0], [0.9, 1.1, 1.2, 0.9])  # cycled over the 3 realisations
    np.testing.assert_allclose(sc[:, 1], [0.9, 1.1, 1.2, 0.9])
    sc = P.rs_mc_scale(tmp_path, years, np.array([50.0, 50.5]), 3, mode="paper")
    np.testing.assert_allclose(sc[:, 0], [0.9, 1.1, 1.2])
    assert P.rs_mc_scale(tmp_path, [2000, 2003], np.array([100.0, 100.0]), 3) is None  # years absent


def test_report_literature_matches_the_docs_table():
    """Every published Rh figure of the report's table is the one docs/partition.md §3 gives
    for that study, with the same verification status."""
    import re
    from pathlib import Path

    from soilresp.report.partition import LITERATURE

    doc = (Path(__file__).resolve().parents[1] / "docs" / "partition.md").read_text(encoding="utf-8")
    sec = doc[doc.index("## 3. Literature"):doc.index("## 4.")]
    rows = {}
    for line in sec.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.match(r"[A-Z][a-z]+ et al\. \d{4}$", cells[0]):
            rows[cells[0]] = cells
    assert len(rows) == len(LITERATURE) == 6
    for lit in LITERATURE:
        key = re.match(r"[A-Z][a-z]+ et al\. \d{4}", lit["study"]).group(0)
        cells = rows[key]
        num = lambda t: re.findall(r"\d+(?:\.\d+)?", t)  # noqa: E731
        assert num(lit["rh_pg"])[0] == num(cells[4])[0], (key, lit["rh_pg"], cells[4])
        assert ("not verified" in lit["checked"]) == ("not verified" in cells[6]), key
