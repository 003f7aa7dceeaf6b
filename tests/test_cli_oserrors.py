"""Disk full, read-only folders and missing permissions are one-line errors in every command
(issue 17: report and export ended in tracebacks). CI runs as root, for whom chmod blocks
nothing: the errors are raised by a file standing where a folder is expected, or injected."""

from __future__ import annotations

import errno

import pytest
from typer.testing import CliRunner

from soilresp.cli import app

runner = CliRunner()


def _one_line(res, *want):
    out = res.output.strip()
    assert res.exit_code == 2, out
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, out
    for w in want:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize("code, word", [(errno.ENOSPC, "disk full"), (errno.EROFS, "read-only"),
                                        (errno.EACCES, "permission denied")])
def test_report_os_errors(tmp_path, monkeypatch, code, word):
    import soilresp.report as rep

    def boom(*a, **k):
        raise OSError(code, "injected", str(tmp_path / "run" / "report" / "fig1.png"))

    monkeypatch.setattr(rep, "write_report", boom)
    (tmp_path / "run").mkdir()
    _one_line(runner.invoke(app, ["report", str(tmp_path / "run")]), "fig1.png", word)


@pytest.mark.parametrize("fmt, fn", [("netcdf", "to_netcdf"), ("cog", "to_cog")])
def test_export_disk_full(tmp_path, monkeypatch, fmt, fn):
    from soilresp.product import export

    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "rs.nc"))

    monkeypatch.setattr(export, fn, boom)
    _one_line(runner.invoke(app, ["export", str(tmp_path / "rs.zarr"), "--format", fmt]), "rs.nc", "disk full")


def test_run_output_under_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[run]\noutput_dir = "afile/out"\n[field]\npath = "x.csv"\n')
    (tmp_path / "x.csv").write_text("a\n")
    _one_line(runner.invoke(app, ["run", str(cfg), "--stage", "field"]), "afile", "run.output_dir")
