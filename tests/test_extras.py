"""Optional dependencies (issue 18): a missing extra stops with one line naming it, at
``config --check`` when the config needs it, never with a traceback; the core install lists
no GeoTIFF / MODIS / land-mask library."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from soilresp.cli import app
from soilresp.errors import ConfigError, SoilrespError
from soilresp.extras import EXTRAS, installed, require

ROOT = Path(__file__).resolve().parents[1]


def _block(monkeypatch, *modules):
    """Make ``import m`` fail for each module, as in an install without its extra."""
    for m in modules:
        for k in [k for k in sys.modules if k == m or k.startswith(m + ".")]:   # loaded by earlier tests
            monkeypatch.setitem(sys.modules, k, None)
        monkeypatch.setitem(sys.modules, m, None)


def _one_line(msg: str, extra: str):
    assert f"pip install 'soilresp[{extra}]'" in msg, msg
    assert "\n" not in msg.strip() and "Traceback" not in msg, msg


def test_pyproject_extras_match_the_table():
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = lambda reqs: {re.split(r"[<>=\[ ;]", r)[0].replace("-", "_").lower() for r in reqs}  # noqa: E731
    core = names(proj["dependencies"])
    assert not core & {"rasterio", "rioxarray", "pyproj", "global_land_mask", "matplotlib",
                       "distributed", "skops", "quantile_forest", "pyhdf"}
    opt = proj["optional-dependencies"]
    for extra, mods in EXTRAS.items():
        assert names(opt[extra]) == set(mods), extra
    assert set(EXTRAS) <= set(re.findall(r"\w+", opt["all"][0].split("[")[1]))
    assert "soilresp[all]" in opt["test"]


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_require_names_the_extra(monkeypatch, extra):
    mod = EXTRAS[extra][0]
    _block(monkeypatch, mod)
    with pytest.raises(SoilrespError) as e:
        require(mod, extra, "this step")
    assert str(e.value).startswith(f"this step needs {mod}:")
    _one_line(str(e.value), extra)
    assert mod in installed()[extra]


def test_crs_wkt_is_epsg_4326_for_pyproj():
    pyproj = pytest.importorskip("pyproj")
    from soilresp.cf import crs_wkt

    crs = pyproj.CRS.from_wkt(crs_wkt())
    assert crs == pyproj.CRS.from_epsg(4326) and crs.to_epsg() == 4326


def test_geotiff_reader_without_the_extra(monkeypatch, tmp_path):
    from soilresp.drivers.checks import gdal_driver
    from soilresp.drivers.readers import open_geotiff

    (tmp_path / "lc.tif").write_bytes(b"II*\x00")
    _block(monkeypatch, "rioxarray")
    with pytest.raises(SoilrespError) as e:
        open_geotiff([tmp_path / "lc.tif"], None)
    _one_line(str(e.value), "geotiff")
    assert "lc.tif" in str(e.value)
    _block(monkeypatch, "rasterio")
    with pytest.raises(SoilrespError) as e:
        gdal_driver(tmp_path / "lc.tif")
    _one_line(str(e.value), "geotiff")


def test_modis_reprojection_without_pyproj(monkeypatch):
    from soilresp.drivers.modis import _target_xy
    from soilresp.grid import Grid

    _block(monkeypatch, "pyproj")
    with pytest.raises(SoilrespError) as e:
        _target_xy(Grid(30.0, -60, 60, -180, 180), np.arange(2), np.arange(2))
    _one_line(str(e.value), "modis")


def test_cog_export_without_the_extra_cli_one_line(monkeypatch, tmp_path):
    store = tmp_path / "g.zarr"
    xr.Dataset({"rs": (("lat", "lon"), np.ones((2, 2)))},
               coords={"lat": [0.5, 1.5], "lon": [0.5, 1.5]}).to_zarr(store, zarr_format=2)
    _block(monkeypatch, "rasterio", "rioxarray")
    res = CliRunner().invoke(app, ["export", str(store), "--format", "cog"])
    assert res.exit_code == 2, res.output
    assert "COG export needs rioxarray" in res.output
    _one_line(res.output, "geotiff")
    assert not (tmp_path / "g.cog").exists()


@pytest.fixture()
def cfgfile(tmp_path):
    from conftest import checkable_config

    return checkable_config(tmp_path, ("world/lc.tif",))


def _set_tif_biomes(p: Path):
    t = p.read_text()
    t2 = re.sub(r'(\[biomes\][^\[]*?)path = "[^"]+"', r'\1path = "world/lc.tif"', t, count=1)
    assert t2 != t
    p.write_text(t2)


def test_config_check_names_the_missing_extra(monkeypatch, cfgfile):
    from soilresp.config import load_config
    from soilresp.validate import validate_run

    validate_run(load_config(cfgfile))        # everything installed: passes
    _set_tif_biomes(cfgfile)
    cfg = load_config(cfgfile)
    validate_run(cfg)
    _block(monkeypatch, "rioxarray", "matplotlib")
    with pytest.raises(ConfigError) as e:
        validate_run(cfg)
    msg = str(e.value)
    assert "'biomes.path' = 'world/lc.tif' (GeoTIFF) needs rioxarray: pip install 'soilresp[geotiff]'" in msg
    assert "the report stage needs matplotlib: pip install 'soilresp[report]'" in msg
    validate_run(cfg, ["field", "drivers"])   # only what the stages need
    res = CliRunner().invoke(app, ["config", "--check", str(cfgfile)])
    assert res.exit_code == 2 and "soilresp[geotiff]" in res.output and "Traceback" not in res.output
    run = CliRunner().invoke(app, ["run", str(cfgfile)])   # fails before any stage starts
    assert run.exit_code == 2 and "soilresp[geotiff]" in run.output, run.output
    assert not (cfgfile.parent / "run" / "field").exists()


def test_config_check_ml_families_and_scheduler(monkeypatch, cfgfile):
    from soilresp.config import load_config
    from soilresp.validate import validate_run

    t = cfgfile.read_text()
    t = re.sub(r"families = \[[^\]]*\]", 'families = ["nls", "qrf"]', t)
    t = t.replace("[run]", '[run]\nscheduler = "local-cluster"', 1) if "scheduler" not in t else \
        re.sub(r'scheduler = "[^"]*"', 'scheduler = "local-cluster"', t)
    cfgfile.write_text(t)
    cfg = load_config(cfgfile)
    _block(monkeypatch, "skops", "quantile_forest", "distributed")
    with pytest.raises(ConfigError) as e:
        validate_run(cfg, ["models"])
    msg = str(e.value)
    assert "'models.families' = ['nls', 'qrf'] needs skops: pip install 'soilresp[ml]'" in msg
    assert "needs quantile_forest" in msg
    assert "'run.scheduler' = 'local-cluster' needs distributed: pip install 'soilresp[cluster]'" in msg


def test_other_optional_imports_name_their_extra(monkeypatch, tmp_path):
    """Model files of the ML families, the qrf estimator, the evaluation figure and the land
    mask rebuild: each optional import fails with the one-line error."""
    from soilresp.evaluate import evaluate
    from soilresp.landmask import build_1km
    from soilresp.models.base import _skops_load
    from soilresp.models.ml import make_estimator

    _block(monkeypatch, "skops", "quantile_forest", "matplotlib", "global_land_mask")
    cases = [(lambda: _skops_load(tmp_path / "biome_01.skops", b""), "ml", "biome_01.skops"),
             (lambda: make_estimator("qrf", 0), "ml", "qrf"),
             (lambda: evaluate(None, tmp_path / "obs.csv"), "report", "soilresp evaluate"),
             (lambda: build_1km(tmp_path / "m.npz"), "test", "land mask")]
    for call, extra, what in cases:
        with pytest.raises(SoilrespError) as e:
            call()
        assert what in str(e.value)
        _one_line(str(e.value), extra)
