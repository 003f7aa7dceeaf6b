"""Cleanup removes only paths soilresp created (issue 17: it deleted a user's ``.tmp``,
``.old-...`` and ``.partial`` files in the output folder)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from soilresp import io
from soilresp.pipeline import _clean_temporaries

# every pattern the old cleanup matched, as a user might name files
USER_NAMES = [".notes.tmp", ".draft.txt.tmp", ".mine.tmp.bak", ".rs.zarr.old-123", ".backup.old-1",
              ".rs.zarr.partial", ".field.partial", ".x.tmp-7", ".soilresp-tmp-"]


def _plant(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for n in USER_NAMES:
        (folder / n).write_text("user data")
    (folder / ".user.partial").mkdir()
    (folder / ".user.partial" / "keep.txt").write_text("user data")


def _assert_planted(folder):
    for n in USER_NAMES:
        assert (folder / n).read_text() == "user data", n
    assert (folder / ".user.partial" / "keep.txt").is_file()


def test_cleanup_keeps_user_files_and_removes_own(tmp_path):
    _plant(tmp_path)
    own = [io._tmp_sibling(tmp_path / "a.parquet"), io.temp_dir(tmp_path / "b.zarr"),
           tmp_path / f"{io.OLD_PREFIX}c.zarr-99", io.partial_dir(tmp_path / "d.zarr")]
    own[2].mkdir()
    own[3].mkdir()
    _clean_temporaries(tmp_path, keep_partial=True)
    _assert_planted(tmp_path)
    assert [p.exists() for p in own] == [False, False, False, True]
    _clean_temporaries(tmp_path, keep_partial=False)
    _assert_planted(tmp_path)
    assert not own[3].exists()


def test_writers_use_soilresp_prefix(tmp_path):
    _plant(tmp_path)
    io.write_json(tmp_path / "x.json", {"a": 1})
    io.write_zarr(tmp_path / "g.zarr", xr.Dataset({"v": (("lat", "lon"), np.ones((2, 2)))}))
    io.write_zarr(tmp_path / "g.zarr", xr.Dataset({"v": (("lat", "lon"), np.zeros((2, 2)))}))  # swap
    _assert_planted(tmp_path)
    extra = {p.name for p in tmp_path.iterdir()} - set(USER_NAMES) - {".user.partial", "x.json", "g.zarr"}
    assert extra == set(), extra


def test_temp_kind_matches_only_soilresp_names():
    assert io.temp_kind(".soilresp-tmp-a.1") == "tmp" and io.temp_kind(".a.tmp") is None
    assert io.temp_kind(".soilresp-partial-rs.zarr") == "partial" and io.temp_kind(".rs.zarr.partial") is None
