"""Whole-config consistency before compute (issue 17): each cross-section check names the key,
and `soilresp config --check` runs the same checks as `soilresp run`."""

from __future__ import annotations

import os
import re

import pytest
from typer.testing import CliRunner

from soilresp.cli import app
from soilresp.config import load_config
from soilresp.errors import ConfigError
from soilresp.validate import validate_run


@pytest.fixture()
def cfgfile(tmp_path):
    from conftest import checkable_config

    return checkable_config(tmp_path)


def _edit(p, old, new):
    t = p.read_text()
    assert old in t, old
    p.write_text(t.replace(old, new, 1))
    return load_config(p)


def test_valid_config_passes(cfgfile):
    validate_run(load_config(cfgfile))
    res = CliRunner().invoke(app, ["config", "--check", str(cfgfile)])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("old, new, key", [
    ("min_years = 3", "min_years = 8", "'trends.min_years'"),            # issue 17: all-NaN trend maps
    ("[product]", "[product]\nregion_bounds = [17.0, 2.0]", "'product.region_bounds'"),
    ("[product]", "[product]\nregion_temperature = \"soil_temp\"", "'product.region_temperature'"),
    ("[trends]", "[trends]\nslight_alpha = 0.01", "'trends.slight_alpha'"),
    ("[trends]", "[attribution]\ndrivers = [\"tas\", \"vpd\"]\n\n[trends]", "'attribution.drivers'"),
    ("temperature = [", "temperature = [\"t2m\"]\n_old = [", "'models.temperature'"),
])
def test_cross_section_errors_name_the_key(cfgfile, old, new, key):
    if "_old" in new:   # replace the whole temperature line
        t = cfgfile.read_text()
        t = re.sub(r"temperature = \[.*\]", 'temperature = ["t2m"]', t)
        cfgfile.write_text(t)
        cfg = load_config(cfgfile)
    else:
        cfg = _edit(cfgfile, old, new)
    with pytest.raises(ConfigError, match=re.escape(key)):
        validate_run(cfg)
    res = CliRunner().invoke(app, ["config", "--check", str(cfgfile)])
    assert res.exit_code == 2 and key in res.output and "Traceback" not in res.output, res.output
    run = CliRunner().invoke(app, ["run", str(cfgfile)])   # fails before any stage starts
    assert run.exit_code == 2 and key in run.output
    assert not (cfgfile.parent / "run" / "field").exists()


def test_paths_must_be_regular_files(cfgfile):
    srdb = cfgfile.parent / "world" / "srdb-data.csv"
    srdb.unlink()
    os.mkfifo(srdb)
    with pytest.raises(ConfigError, match=r"'field.path'.*named pipe"):
        validate_run(load_config(cfgfile))
    srdb.unlink()
    with pytest.raises(ConfigError, match=r"'field.path'.*not found"):
        validate_run(load_config(cfgfile))
    with pytest.raises(ConfigError, match=r"'field.path'"):
        validate_run(load_config(cfgfile), ["field"])
    validate_run(load_config(cfgfile), ["drivers"])   # only what the stages need


def test_output_dir_under_a_file(cfgfile):
    (cfgfile.parent / "afile").write_text("x")
    cfg = _edit(cfgfile, 'output_dir = "run"', 'output_dir = "afile/out"')
    with pytest.raises(ConfigError, match=r"'run.output_dir'.*is a file"):
        validate_run(cfg)
