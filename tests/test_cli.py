from typer.testing import CliRunner

from soilresp.cli import app

runner = CliRunner()


def test_help_lists_every_command():
    out = runner.invoke(app, ["--help"]).output
    for cmd in ("demo", "run", "field", "drivers", "fit", "predict", "trends", "attribute", "report",
                "config", "provenance", "stages", "fetch"):
        assert cmd in out


def test_config_example_prints_valid_toml(tmp_path):
    res = runner.invoke(app, ["config", "--example"])
    assert res.exit_code == 0 and "[run]" in res.output
    p = tmp_path / "c.toml"
    p.write_text(res.output)
    from soilresp.config import load_config

    load_config(p)   # schema-valid; --check also wants the example's input files (issue 17)
    chk = runner.invoke(app, ["config", "--check", str(p)])
    assert chk.exit_code == 2 and "'field.path'" in chk.output and "not found" in chk.output, chk.output
    assert "Traceback" not in chk.output


def test_bad_config_is_one_line_error_not_traceback(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[grid]\nresolution = 'fine'\n")
    res = runner.invoke(app, ["run", str(p)])
    assert res.exit_code == 2
    assert "grid.resolution" in res.output and "Traceback" not in res.output


def test_missing_input_file_is_named(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[field]\npath = "nowhere/srdb-data.csv"\n[run]\noutput_dir = "out"\n')
    res = runner.invoke(app, ["run", str(p), "--stage", "field"])
    assert res.exit_code == 2
    assert "nowhere/srdb-data.csv" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out" / "field" / "observations.parquet").exists()


def test_stage_needs_upstream(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[run]\noutput_dir = "out"\n')
    res = runner.invoke(app, ["run", str(p), "--stage", "models"])
    assert res.exit_code == 2 and "run it first" in res.output


def test_quickstart_says_what_to_do_next(tmp_path, monkeypatch):
    import sys
    from pathlib import Path

    from soilresp.quickstart import realdata_files

    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["quickstart"])
    assert res.exit_code == 0, res.output
    for cmd in ("soilresp demo --out soilresp-demo", "soilresp config --example > my.toml",
                "soilresp config --check my.toml", "soilresp run my.toml", "soilresp report my.toml"):
        assert cmd in res.output, cmd
    assert "in data/: 0 of 5 files" in res.output and "soilresp fetch srdb" in res.output
    assert "absent: data/srdb/srdb-data.csv" in res.output
    for p in realdata_files(Path("data")):   # the fetched real data present, an extra missing
        Path(p).parent.mkdir(parents=True, exist_ok=True)
        Path(p).write_text("x")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    res = runner.invoke(app, ["quickstart"])
    assert res.exit_code == 0, res.output
    assert "in data/: 5 of 5 files" in res.output and "absent:" not in res.output
    assert "[report] MISSING (matplotlib)" in res.output and "[geotiff] installed" in res.output
    assert "pip install 'soilresp[all]'" in res.output and "Traceback" not in res.output
