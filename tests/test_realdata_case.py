"""The real-data case study (examples/realdata_0.5deg.toml, docs/realdata.md) end to end.

The inputs are put in place with the same ``soilresp fetch`` commands the docs give, offline:
``fetch srdb --from`` the shared SRDB copy, and ``fetch climate`` served from the shared copies
by a local HTTP server (the catalogue's pinned SHA-256 is checked, so these are the bytes a user
downloads). Then ``soilresp run`` on an unchanged copy of the example, except 100 Monte Carlo
samples (500 in the example) and 200 bootstrap samples (1000) to keep CI short. Skipped when
``../shared/data`` is absent. The global number is reported in docs/realdata.md, not asserted.
"""

from __future__ import annotations

import functools
import re
import threading
import tomllib
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from soilresp import download, io
from soilresp.cli import app
from soilresp.config import load_config
from soilresp.field import fetch as srdb_fetch
from soilresp.io import file_sha256

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "realdata_0.5deg.toml"
SHARED_DATA = ROOT.parent / "shared" / "data"  # as tests/conftest.py
SRDB_COPY = SHARED_DATA / "srdb" / "srdb-data_v20200220.csv"
#: catalogue name -> our copy of the same file (shared data README: origins)
CLIMATE_COPIES = {
    "udel-climatology": "grids_static/udel_MAT_MAP_0.5deg_climatology.csv",
    "ipcc-climate-zones": "grids_static/ipcc_climate_zones.nc",
    "modis-lc-2010": "grids_static/MODIS_LC_2010.tif",
    "fractional-land": "grids_static/fractional_land.0.5-deg.nc",
}

needs_data = pytest.mark.skipif(not SRDB_COPY.is_file(), reason="../shared/data is absent")

runner = CliRunner()


def _fetch_commands() -> list[list[str]]:
    """The `soilresp fetch ...` commands listed in the example's header comment."""
    cmds = []
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#\s+soilresp (fetch [^#]+)", line)
        if m:
            cmds.append(m.group(1).split())
    return cmds


@pytest.mark.realdata
@needs_data
def test_catalogue_pins_are_the_shared_copies():
    """Every input of the example has a pinned download whose checksum is our copy's."""
    assert srdb_fetch.SRDB_RELEASES[srdb_fetch.DEFAULT_SRDB_VERSION]["sha256"] == file_sha256(SRDB_COPY)
    extra = {"jian2020-rc": "grids_static/jian2020_global_Rt_contribution_to_Rs2.nc"}  # EVI check
    for name, rel in {**CLIMATE_COPIES, **extra}.items():
        entry = download.CATALOGUE[name]
        assert entry["sha256"] == file_sha256(SHARED_DATA / rel), name
        assert entry["url"].startswith("https://raw.githubusercontent.com/"), name


def test_example_inputs_are_what_the_fetch_commands_give():
    cmds = _fetch_commands()
    assert ["fetch", "srdb"] in cmds
    climate = next(c[2:] for c in cmds if c[:2] == ["fetch", "climate"])
    assert sorted(climate) == sorted(CLIMATE_COPIES)
    docs = (ROOT / "docs" / "realdata.md").read_text(encoding="utf-8")
    for c in cmds:
        assert "soilresp " + " ".join(c) in docs, c
    fetched = {f"data/srdb/{srdb_fetch.FILE_NAME}"} | {
        "data/drivers/" + (download.CATALOGUE[n].get("name") or download.CATALOGUE[n]["url"].rsplit("/", 1)[1])
        for n in climate}
    cfg = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    used = {cfg["field"]["path"], cfg["biomes"]["climate_zones"], cfg["biomes"]["land_cover"],
            *(s["path"] for s in cfg["drivers"]["sources"])}
    assert used <= fetched, used - fetched
    load_config(EXAMPLE)  # valid as shipped


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """A folder laid out by the example's fetch commands (offline: local copies / server)."""
    if not SRDB_COPY.is_file():
        pytest.skip("../shared/data is absent")
    root = tmp_path_factory.mktemp("realdata")
    by_name = {Path(download.CATALOGUE[n]["url"]).name: SHARED_DATA / rel
               for n, rel in CLIMATE_COPIES.items()}

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def translate_path(self, path):
            return str(by_name.get(path.lstrip("/"), root / "missing"))

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    local = {n: {**e, "url": f"{base}/{Path(e['url']).name}"} for n, e in download.CATALOGUE.items()}
    mp = pytest.MonkeyPatch()
    mp.setattr(download, "CATALOGUE", local)
    mp.chdir(root)
    try:
        for cmd in _fetch_commands():
            if cmd[:2] == ["fetch", "srdb"]:
                cmd = cmd + ["--from", str(SRDB_COPY)]
            res = runner.invoke(app, cmd)
            assert res.exit_code == 0, res.output
    finally:
        mp.undo()
        server.shutdown()
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in (("mc_samples = 500", "mc_samples = 100"), ("bootstrap = 1000", "bootstrap = 200")):
        assert old in text
        text = text.replace(old, new)
    (root / EXAMPLE.name).write_text(text, encoding="utf-8")
    return root


@pytest.mark.realdata
def test_fetched_files_are_pinned_and_recorded(fetched):
    import json

    man = json.loads((fetched / "data" / "drivers" / "manifest.json").read_text())["files"]
    assert {f["catalogue"] for f in man.values()} == set(CLIMATE_COPIES)
    assert all(f["pinned"] for f in man.values())
    srdb = json.loads((fetched / "data" / "srdb" / srdb_fetch.MANIFEST_NAME).read_text())
    assert srdb["release"] == srdb_fetch.DEFAULT_SRDB_VERSION and srdb["pinned"]


@pytest.fixture(scope="module")
def run_dir(fetched):
    res = runner.invoke(app, ["run", str(fetched / EXAMPLE.name)])
    assert res.exit_code == 0, res.output
    return fetched / "realdata-out"


@pytest.mark.realdata
@pytest.mark.slow
def test_global_total_with_ci_and_regional_shares(run_dir):
    tot = io.read_table(run_dir / "product" / "totals.parquet")
    assert set(tot["region"]) == {"global", "tropical", "temperate", "boreal"}
    assert sorted(tot["year"].unique()) == list(range(2000, 2015))
    sm = io.read_table(run_dir / "uncertainty" / "mc_summary.parquet")
    g = tot[tot.region == "global"].merge(sm[sm["mode"] == sm["mode"].iloc[0]], on=["region", "year"],
                                          suffixes=("", "_mc"))
    for col in ("total_pg", "mc_median", "mc_lo", "mc_hi"):
        assert np.isfinite(g[col]).all() and (g[col] > 0).all(), col
    assert (g["mc_lo"] < g["mc_median"]).all() and (g["mc_median"] < g["mc_hi"]).all()
    # static climate: every year is the same map, so the same total
    assert np.ptp(g["total_pg"].to_numpy()) < 1e-9 * g["total_pg"].iloc[0]
    # the three regions partition the modelled land
    reg = tot[(tot.region != "global") & (tot.year == 2000)]
    assert (reg["share"] > 0).all()
    assert reg["share"].sum() == pytest.approx(1.0, rel=1e-6)
    mc = io.read_table(run_dir / "uncertainty" / "mc_totals.parquet")
    assert mc["realisation"].nunique() == 100


@pytest.mark.realdata
@pytest.mark.slow
def test_models_map_and_report(run_dir):
    sel = io.read_table(run_dir / "models" / "selected.parquet")
    assert set(sel["biome"]) == set(range(1, 11))
    fitted = sel[sel["family"] == "nls"]  # biome-mean fallbacks have no form
    assert set(fitted["form"]) <= {"eq1", "eq2", "eq3"}  # no productivity proxy in this run
    tr = io.read_table(run_dir / "sites" / "training.parquet")
    assert len(tr) == 1356 and tr["site_id"].nunique() == 835  # docs/field.md
    rs = io.open_zarr(run_dir / "product" / "rs.zarr")
    bio = io.open_zarr(run_dir / "biomes" / "biomes.zarr", ["biome"])["biome"].values
    m = rs["rs"].isel(year=0).values
    assert np.isfinite(m[bio > 0]).mean() > 0.99 and np.isnan(m[bio == 0]).all()
    assert np.nanmin(m) > 0
    st = io.read_table(run_dir / "trends" / "series_trends.parquet")
    assert (st["slope"] == 0).all()  # flat by construction
    html = (run_dir / "report" / "report.html").read_text(encoding="utf-8")
    assert "<img" in html and (run_dir / "report" / "fig1_mean_rs.png").is_file()
    # the report states the global total and its interval (at some rounding)
    tot = io.read_table(run_dir / "product" / "totals.parquet")
    sm = io.read_table(run_dir / "uncertainty" / "mc_summary.parquet")
    g = tot.merge(sm[sm["mode"] == sm["mode"].iloc[0]], on=["region", "year"], suffixes=("", "_mc"))
    g = g[(g.region == "global") & (g.year == 2000)].iloc[0]
    for x in (g["total_pg"], g["mc_lo"], g["mc_hi"]):
        assert any(f"{x:{f}}" in html for f in (".1f", ".2f", ".3g", ".4g")), x
