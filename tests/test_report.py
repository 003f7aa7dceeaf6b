"""Report (issue 8): every figure and table from the small synthetic run, the HTML, the CLI,
runs with absent stages, offline drawing, and rendering in headless Chromium."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import socket
import subprocess
import xml.etree.ElementTree as ET

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from soilresp import io
from soilresp.cli import app
from soilresp.report import FIGURES, TABLES, MissingOutput, panels, write_report
from soilresp.report._common import MAX_MAP_CELLS, display, land_mask


@pytest.fixture(scope="module")
def run_dir(small_demo):
    return small_demo[0] / "run"


@pytest.fixture(scope="module")
def report(run_dir):
    """The full report of the small run: the one its report stage wrote (write_report into
    run/report with the config found beside the run), read rather than drawn a second time."""
    out = run_dir / "report"
    return out, (out / "report.html").read_text(), json.loads((out / "report.json").read_text())


def _partial_run(run_dir, dest, drop=("trends", "attribution"), mc=False):
    """A copy of the run without some stages (and, unless ``mc``, without Monte Carlo)."""
    keep = ("field", "models", "product", "biomes", ".soilresp", *(s for s in ("trends", "attribution")
                                                                      if s not in drop),
            *(("uncertainty",) if mc else ()))
    dest.mkdir(parents=True)
    for d in keep:
        shutil.copytree(run_dir / d, dest / d)
    return dest


# ------------------------------------------------------------------ figures
@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_is_a_non_trivial_image(report, name):
    out, _, summary = report
    assert name in summary["figures"], summary["absent"]
    png = out / f"{name}.png"
    assert png.stat().st_size > 30_000
    img = mpimg.imread(png)[..., :3]
    assert img.shape[0] > 350 and img.shape[1] > 1000
    assert img.std() > 0.05                                  # not uniform
    assert (img.min(axis=2) < 0.9).mean() > 0.04             # ink on more than 4 % of the canvas
    rgb = (img * 255).astype(np.uint32).reshape(-1, 3)
    assert np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2]).size > 40  # distinct colours
    svg = out / f"{name}.svg"
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and svg.stat().st_size > 20_000
    assert summary["figures"][name]["panels"] == FIGURES[name].panels


def test_figures_state_units_df_and_fdr(run_dir):
    fig = FIGURES["fig1_mean_rs"].draw(run_dir)
    texts = [t.get_text() for a in fig.axes for t in (a.xaxis.label, a.yaxis.label, a.title)]
    assert any("g C m$^{-2}$ yr$^{-1}$" in t for t in texts)  # colour bar and profile units
    assert any("Tg C yr" in t for t in texts)
    assert panels(fig) == ["A", "B"]
    pc = io.open_zarr(run_dir / "attribution" / "pixel_partial_corr.zarr")
    fig6 = FIGURES["fig6_pixel_partial_corr"].draw(run_dir)
    labels = [a.xaxis.label.get_text() for a in fig6.axes]
    assert any("df = " in t and "no FDR" in t for t in labels), labels
    assert sorted(panels(fig6)) == sorted(["tas", "pr", "spei", "tc", "sv", "bg"])
    # each panel states its own df and number of controls (issue 18: covers are fitted with
    # fewer controls than the climate drivers), the title names the drivers used
    titles = {a.get_label()[6:]: a.get_title() for a in fig6.axes if a.get_label().startswith("panel:")}
    for d in ("tas", "tc"):
        a = pc[f"r_{d}"].attrs
        k = int(a["n_controls"])
        assert f"df = {a['df']}, {k} control" in titles[d], titles[d]
    assert pc["r_tas"].attrs["n_controls"] != pc["r_tc"].attrs["n_controls"]
    from soilresp.report._common import driver_label

    sup = fig6._suptitle.get_text()
    assert "6 drivers" in sup and all(driver_label(d) in sup for d in ("tas", "pr", "bg")), sup


def test_fig2_marks_significance_from_the_series_table(run_dir):
    st = io.read_table(run_dir / "trends" / "series_trends.parquet").set_index("region")
    fig = FIGURES["fig2_trends"].draw(run_dir)
    for ax in fig.axes:
        lab = ax.get_label()
        if lab.startswith("panel:A-"):
            reg = lab[len("panel:A-"):]
            first = ax.get_title().split("\n")[0]
            assert ("*" in first) == (st.loc[reg, "p"] < 0.05), (reg, first)
            assert f"{st.loc[reg, 'slope'] * 1000:+.1f}" in ax.get_title()


def test_fig6_applies_fdr_when_the_run_asked_for_it(run_dir, tmp_path):
    run = _partial_run(run_dir, tmp_path / "run", drop=(), mc=True)
    # the attribution stage records its own fdr setting on the map (it wins over the trends')
    for rel in ("trends/trends.zarr", "attribution/pixel_partial_corr.zarr"):
        ds = io.open_zarr(run / rel).load()
        ds.attrs["fdr"] = 1
        io.write_zarr(run / rel, ds)
    fig = FIGURES["fig6_pixel_partial_corr"].draw(run)
    assert any("Benjamini-Hochberg" in a.xaxis.label.get_text() for a in fig.axes)


def test_figures_need_no_network(run_dir, monkeypatch):
    def refuse(*a, **k):
        raise OSError("network access attempted while drawing")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for name in ("fig1_mean_rs", "fig5_change_shares"):
        assert len(panels(FIGURES[name].draw(run_dir))) == FIGURES[name].panels


def test_missing_output_is_named(tmp_path):
    (tmp_path / "product").mkdir()
    with pytest.raises(MissingOutput, match="product/rs.zarr.*stage 'product'"):
        FIGURES["fig1_mean_rs"].draw(tmp_path)


# ------------------------------------------------------------------ maps
def test_display_reduces_large_grids_lazily():
    import dask.array as dsa

    ny, nx = 2 * MAX_MAP_CELLS[0] + 1, 2 * MAX_MAP_CELLS[1]
    lat = np.linspace(-90, 90, ny)
    lon = np.linspace(-180, 180, nx)
    data = dsa.from_array(np.add.outer(np.arange(ny), np.arange(nx)).astype(np.float32), chunks=500)
    da = xr.DataArray(data, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    small = display(da)
    assert small.sizes["lat"] <= MAX_MAP_CELLS[0] and small.sizes["lon"] <= MAX_MAP_CELLS[1]
    f = math.ceil(ny / MAX_MAP_CELLS[0])
    assert float(small[0, 0]) == pytest.approx(np.add.outer(np.arange(f), np.arange(f)).mean())
    cls = display(xr.DataArray(data.astype(np.int8) % 3, dims=("lat", "lon"), coords=da.coords), categorical=True)
    assert set(np.unique(cls.values)) <= {0, 1, 2}


def test_packaged_land_mask_knows_land_from_sea():
    lon, lat, land = land_mask((-180.0, 180.0, -90.0, 90.0), 0.5)
    assert land.shape == (360, 720)

    def at(la, lo):
        return land[np.searchsorted(lat, la), np.searchsorted(lon, lo)]

    assert at(0.0, 20.0) == 1 and at(48.0, 2.0) == 1 and at(-25.0, 135.0) == 1   # Congo, Paris, Australia
    assert at(0.0, -150.0) == 0 and at(30.0, -40.0) == 0 and at(-40.0, 80.0) == 0  # Pacific, Atlantic, Indian
    w = np.cos(np.deg2rad(lat))[:, None] * np.ones_like(land)
    assert 0.27 < (land * w).sum() / w.sum() < 0.32                               # Earth: 29 % land


# ------------------------------------------------------------------ tables
def test_tables_written_as_csv(report, run_dir):
    out, _, summary = report
    assert set(summary["tables"]) == set(TABLES)
    s2 = pd.read_csv(out / "table_s2_skill.csv")
    assert len(s2) == len(io.read_table(run_dir / "models" / "skill.parquet"))
    assert {"biome", "family", "form", "predictors", "cv_r2", "cv_rmse", "site_cv_r2"} <= set(s2.columns)
    s3 = pd.read_csv(out / "table_s3_selected.csv")
    assert len(s3) == 10 and "params" not in s3
    cascade = pd.read_csv(out / "field_cascade.csv")
    assert cascade.equals(pd.read_csv(run_dir / "field" / "cascade.csv"))


def test_table_s4_from_selected_models_matches_the_model_files(report, run_dir):
    s4 = pd.read_csv(report[0] / "table_s4_parameters.csv")
    sel = io.read_table(run_dir / "models" / "selected.parquet").set_index("biome")
    for biome, g in s4.groupby("biome"):
        doc = json.loads((run_dir / "models" / f"biome_{biome:02d}.json").read_text())
        if doc["family"] != "nls":
            continue
        fitted = g[~g["param"].isin(["Q10", "t_ref"])]
        assert fitted["param"].tolist() == doc["param_names"]
        np.testing.assert_allclose(fitted["value"], json.loads(sel.loc[biome, "params"]), rtol=1e-12)
        np.testing.assert_allclose(fitted["stderr"], doc["stderr"], rtol=1e-12)
        q10 = g[g["param"] == "Q10"].iloc[0]  # effective Q10 at t_ref, not exp(10 b) (issue 15)
        assert q10["value"] == pytest.approx(doc["q10"], rel=1e-12)
        preds = sel.loc[biome, "predictors"].split(",")
        assert g.set_index("param").loc["b", "predictor"] == preds[0]
        if "d" in set(g["param"]):
            assert g.set_index("param").loc["d", "predictor"] == preds[1]


# ------------------------------------------------------------------ HTML
def test_html_embeds_every_figure_and_table(report, run_dir):
    out, html, summary = report
    from soilresp.report.trust import TRUST_FIGURES

    assert html.count("data:image/png;base64,") == len(FIGURES) + len(TRUST_FIGURES) + 1  # + partition
    assert all(f"id='img-{n}'" in html for n in TRUST_FIGURES)     # AOA and interpretation
    for name, spec in FIGURES.items():
        m = re.search(rf"id='img-{name}'[^>]*src='data:image/png;base64,([^']+)'", html)
        assert m, name
        assert base64.b64decode(m.group(1)) == (out / f"{name}.png").read_bytes()
        assert spec.title in html
    for spec in TABLES.values():
        assert spec.title in html
    assert html.count("<table>") >= len(TABLES)
    # no external resource: one self-contained file
    assert not re.search(r"(src|href)=['\"](https?:|//|file:)", html) and "<script" not in html
    assert summary["absent"] == [] and "Absent parts" not in html


def test_html_has_config_provenance_and_recovery(report, run_dir):
    _, html, _ = report
    assert "SYNTHETIC WORLD" in html and "Recovery of the truth" in html
    rec = json.loads((run_dir / "recovery.json").read_text())
    for check in rec["checks"]:
        assert check in html
    assert "[product]" in html and "mc_samples" in html                  # the TOML the run used
    dprov = io.read_provenance(run_dir / "drivers" / "drivers.zarr")
    for f, checksum in dprov["inputs"].items():
        assert checksum in html and f in html
    import numpy

    assert f"<td class='t'>numpy</td><td class='t'>{numpy.__version__}</td>" in html
    assert dprov["config_hash"][:16] in html


def test_key_numbers_say_what_the_interval_samples(report, run_dir):
    """Beside the interval: what the run's mode samples, and what no mode samples."""
    import html as h

    from soilresp.product.uncertainty import LEFT_OUT, mode_scope

    _, page, _ = report
    mode = str(io.read_table(run_dir / "uncertainty" / "mc_summary.parquet")["mode"].iloc[0])
    summary = page[page.index("id='summary'"):page.index("id='summary'") + 20000]
    assert h.escape(mode_scope(mode), quote=True) in summary and h.escape(LEFT_OUT, quote=True) in summary
    # the paper mode's text follows the run's settings, not the defaults
    text = mode_scope("paper", {"param_cv": 0.25, "qualitative": "none"})
    assert "25%" in text and "Eq 5" not in text and "bootstrap" in text
    assert "Eq 5" in mode_scope("paper") and "10%" in mode_scope("paper")
    assert "rows" in mode_scope("bootstrap", {"bootstrap_unit": "row"})
    assert all(mode_scope(m) for m in ("covariance", "site-bootstrap", "selection-bootstrap", "structural"))
    assert mode_scope("nonsense") == ""


def test_report_of_a_run_without_trends_attribution_or_monte_carlo(run_dir, tmp_path):
    run = _partial_run(run_dir, tmp_path / "run")
    html = write_report(run, tmp_path / "rep").read_text()
    summary = json.loads((tmp_path / "rep" / "report.json").read_text())
    from soilresp.report.trust import TRUST_FIGURES

    trust = set(summary["figures"]) & set(TRUST_FIGURES)     # drawn when product / sites are there
    assert set(summary["figures"]) - trust == {"fig1_mean_rs", "figS2_totals"}
    absent = " ".join(summary["absent"])
    for name in ("Fig 2", "Fig 3", "Fig 4", "Fig 5", "Fig 6"):
        assert name in absent
    assert "trends/series_trends.parquet is absent" in absent and "Absent parts" in html
    assert "Table S2" not in absent                                       # models ran
    assert html.count("data:image/png;base64,") == 2 + len(trust)
    fig = FIGURES["figS2_totals"].draw(run)
    assert "No Monte Carlo" in fig._suptitle.get_text()


def test_not_a_run_folder_is_a_clear_error(tmp_path):
    from soilresp.errors import StageError

    with pytest.raises(StageError, match="not a soilresp run folder"):
        write_report(tmp_path)


# ------------------------------------------------------------------ CLI
def test_cli_report_takes_a_run_folder_or_its_config(run_dir, tmp_path, small_demo):
    run = _partial_run(run_dir, tmp_path / "run", drop=("trends", "attribution"))
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(run), "--out", str(tmp_path / "a"), "--formats", "png,pdf"])
    assert res.exit_code == 0, res.output
    assert "HTML report:" in res.output and "absent:" in res.output
    assert (tmp_path / "a" / "fig1_mean_rs.pdf").read_bytes()[:4] == b"%PDF"
    toml = (small_demo[0] / "soilresp.toml").read_text().replace('output_dir = "run"', f'output_dir = "{run}"')
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(toml.replace('path = "world/', f'path = "{small_demo[0]}/world/'))
    res = runner.invoke(app, ["report", str(cfg), "--formats", "png"])
    assert res.exit_code == 0, res.output
    html = (run / "report" / "report.html").read_text()
    assert "synthetic-demo" in html and "Configuration" in html
    assert runner.invoke(app, ["report", str(run), "--formats", "gif"]).exit_code == 2
    res = runner.invoke(app, ["report", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "run folder not found" in res.output


# ------------------------------------------------------------------ browser
_CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_CHECK = ("<script>window.addEventListener('load',()=>{const r=[...document.images].map(i=>({id:i.id,"
          "ok:i.complete&&i.naturalWidth>0,w:i.naturalWidth}));const p=document.createElement('pre');"
          "p.id='imgcheck';p.textContent=JSON.stringify(r);document.body.appendChild(p);});</script>")


def test_report_renders_in_headless_chromium_without_missing_images(report, tmp_path):
    if _CHROMIUM is None:
        if os.environ.get("CI", "").lower() == "true":  # .ci/run installs it: a skip would hide
            pytest.fail("no chromium browser installed, and CI=true (.ci/run installs it)")
        pytest.skip("no chromium browser installed (Debian: apt-get install chromium)")
    out, html, _ = report
    page = tmp_path / "page.html"
    page.write_text(html.replace("</body>", _CHECK + "</body>"))
    cmd = [_CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=180).stdout
    m = re.search(r'<pre id="imgcheck">(.*?)</pre>', dom, re.S)
    assert m, dom[-2000:]
    imgs = json.loads(m.group(1).replace("&quot;", '"'))
    from soilresp.report.trust import TRUST_FIGURES

    assert sorted(i["id"] for i in imgs) == sorted([f"img-{n}" for n in [*FIGURES, *TRUST_FIGURES]]
                                                   + ["img-fig_partition"])
    assert all(i["ok"] and i["w"] > 500 for i in imgs), imgs


def test_find_config_prefers_the_config_that_made_the_outputs(small_demo):
    from soilresp.pipeline import find_config

    out = small_demo[0]
    decoy = out / "aaa-decoy.toml"  # sorts first; same output_dir, other model settings
    text = (out / "soilresp.toml").read_text()
    assert "cv_folds = 5\n" in text
    decoy.write_text(text.replace("cv_folds = 5\n", "cv_folds = 4\n"))
    try:
        path, cfg = find_config(out / "run")
    finally:
        decoy.unlink()
    assert path is not None and path != decoy and cfg.models.cv_folds == 5
