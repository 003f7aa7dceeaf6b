"""End-to-end: a 3-degree synthetic world through every stage; contracts and recovery."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from soilresp import io
from soilresp.config import load_config
from soilresp.pipeline import STAGES, Context, run_all


def test_recovers_truth(small_demo):
    _, rec = small_demo
    assert rec["synthetic"] is True and "SYNTHETIC" in rec["note"]
    g = rec["totals"]["global"]
    assert g["max_abs_relative_error"] <= 0.05, g
    assert rec["checks"]["global_trend_true_sign"]
    for reg in ("tropical", "temperate", "boreal"):
        assert rec["totals"][reg]["max_abs_relative_error"] <= 0.15
    # small biomes of a coarse world can be poorly predicted; the observation-weighted skill cannot
    n = np.array([m["n"] for m in rec["models"]])
    r2 = np.array([m["cv_r2"] for m in rec["models"]])
    assert (n * r2).sum() / n.sum() > 0.5
    a = rec["attribution"]
    assert a["climate_only_box"]["climate_share"] >= 0.8
    assert a["landcover_only_box"]["land_cover_share"] >= 0.8


def test_every_stage_output_honours_its_contract(small_demo):
    out, _ = small_demo
    run = out / "run"
    for stage in STAGES.values():
        for o in stage.outputs:
            assert io.is_complete(run / stage.name / o), f"{stage.name}/{o}"
    obs = io.read_table(run / "field" / "observations.parquet")
    assert {"site_id", "lat", "lon", "year", "vegetation", "rs", "n_records", "biome"} <= set(obs.columns)
    cube = io.open_zarr(run / "drivers" / "drivers.zarr")
    assert cube["tas"].dims == ("year", "lat", "lon")
    assert cube["pr"].attrs["units"] == "mm yr-1" and cube["lst_day"].attrs["units"] == "degC"
    assert cube["lat"].attrs["units"] == "degrees_north" and np.all(np.diff(cube["lat"].values) > 0)
    assert {"tas_mam", "tas_jja", "lst_diff", "et_pet"} <= set(cube.data_vars)
    rs = io.open_zarr(run / "product" / "rs.zarr")
    assert rs["rs"].dims == ("year", "lat", "lon") and rs["rs"].attrs["units"] == "g m-2 yr-1"
    prov = io.read_provenance(run / "product" / "rs.zarr")
    assert prov["stage"] == "product" and prov["seed"] == 7 and prov["inputs"] == {}
    dprov = io.read_provenance(run / "drivers" / "drivers.zarr")
    assert all(v.startswith("sha256:") for v in dprov["inputs"].values()) and len(dprov["inputs"]) == 14
    tot = io.read_table(run / "product" / "totals.parquet")
    assert set(tot["region"]) == {"global", "tropical", "temperate", "boreal"}
    yr = tot[tot.year == 2000].set_index("region")["total_pg"]
    assert yr["global"] == pytest.approx(yr[["tropical", "temperate", "boreal"]].sum(), rel=1e-9)
    assert not any(c.startswith("mc_") for c in tot.columns)    # only the product stage writes it
    sm = io.read_table(run / "uncertainty" / "mc_summary.parquet")
    assert (sm["mc_lo"] <= sm["mc_hi"]).all() and (sm["mc_lo"] <= sm["mc_median"]).all()
    model = json.loads((run / "models" / "biome_01.json").read_text())
    assert {"form", "params", "predictors", "cov", "provenance", "training_hash"} <= set(model)
    tr = io.open_zarr(run / "trends" / "trends.zarr")
    assert {"slope", "p", "trend_class", "net_change"} <= set(tr.data_vars)
    html = (run / "report" / "report.html").read_text()
    from soilresp.report import FIGURES
    from soilresp.report.trust import TRUST_FIGURES

    assert html.count("data:image/png;base64") == len(FIGURES) + len(TRUST_FIGURES) + 1 and "SYNTHETIC" in html  # + partition


def test_rerun_skips_unchanged_and_reruns_changed(small_demo):
    out, _ = small_demo
    cfg = load_config(out / "soilresp.toml")
    ctx = Context(cfg)
    before = (out / "run" / "product" / "totals.parquet").stat().st_mtime_ns
    done = run_all(ctx, [s for s in STAGES if s != "report"])
    assert set(done.values()) == {"skipped"}
    assert (out / "run" / "product" / "totals.parquet").stat().st_mtime_ns == before
    # a change in [trends] reruns trends and what reads it, not the product
    text = (out / "soilresp.toml").read_text().replace("bootstrap = 1000", "bootstrap = 200")
    p2 = out / "changed.toml"
    p2.write_text(text)
    done = run_all(Context(load_config(p2)), ["product", "trends", "attribution"])
    assert done == {"product": "skipped", "trends": "ran", "attribution": "ran"}


def test_report_stage_runs_without_the_optional_stages(small_demo, tmp_path):
    """`soilresp run --stage ... --stage report` on a run that skipped trends, attribution and
    the Monte Carlo: the report is written and lists them as absent."""
    import shutil

    out, _ = small_demo
    run = tmp_path / "run"
    shutil.copytree(out / "run", run)
    for stage in ("trends", "attribution", "uncertainty", "partition"):
        shutil.rmtree(run / stage, ignore_errors=True)
        (run / ".soilresp" / f"{stage}.json").unlink(missing_ok=True)
    text = (out / "soilresp.toml").read_text().replace('output_dir = "run"', f'output_dir = "{run}"')
    cfg_path = out / "no_trends.toml"
    cfg_path.write_text(text)
    done = run_all(Context(load_config(cfg_path)), ["product", "report"])
    assert done["report"] == "ran"
    html = (run / "report" / "report.html").read_text()
    assert "trends/series_trends.parquet" in html and "attribution" in html


def test_site_search_cells_reaches_the_sites_stage(small_demo, tmp_path):
    """[biomes] site_search_cells is passed to the biome lookup of the sites stage and reruns it."""
    import shutil

    out, _ = small_demo
    run = tmp_path / "run"
    shutil.copytree(out / "run", run)
    base = (out / "soilresp.toml").read_text().replace('output_dir = "run"', f'output_dir = "{run}"')
    text = base.replace('[biomes]\n', '[biomes]\nsite_search_cells = 2\n')
    assert text != base
    cfg_path = out / "search.toml"
    cfg_path.write_text(text)
    before = len(io.read_table(run / "sites" / "training.parquet"))
    n_unassigned = int((io.read_table(run / "sites" / "training.parquet")["biome"] == 0).sum())
    done = run_all(Context(load_config(cfg_path)), ["biomes", "sites"])
    assert done == {"biomes": "ran", "sites": "ran"}   # a [biomes] key: the cheap map reruns too
    tab = io.read_table(run / "sites" / "training.parquet")
    assert len(tab) == before and int((tab["biome"] == 0).sum()) <= n_unassigned


def test_sites_stage_notes_rows_beyond_max_site_distance(small_demo, tmp_path):
    """Rows farther from their cell's centre than [drivers] max_site_distance_km get no
    drivers; the sites stage says how many and, on a coarse grid, the cell's half-diagonal."""
    import re
    import shutil

    out, _ = small_demo
    run = tmp_path / "run"
    shutil.copytree(out / "run", run)
    base = (out / "soilresp.toml").read_text().replace('output_dir = "run"', f'output_dir = "{run}"')
    text = re.sub(r"max_site_distance_km = [0-9.]+", "max_site_distance_km = 60", base)
    assert text != base
    cfg_path = out / "near.toml"
    cfg_path.write_text(text)
    ctx = Context(load_config(cfg_path))
    assert run_all(ctx, ["drivers", "biomes", "sites"])["sites"] == "ran"   # a [drivers] key: drivers and what reads them
    tab = io.read_table(run / "sites" / "training.parquet")
    far = int((tab["distance_km"] > 60).sum())
    assert far > 0 and tab.loc[tab["distance_km"] > 60, "tas"].isna().all()
    note = [n for n in ctx.notes if n.startswith("sites:")]
    assert len(note) == 1 and f"{far} of {len(tab)} observations" in note[0]
    assert "3-degree cell's half-diagonal is 236 km" in note[0]
