import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from soilresp import io
from soilresp.errors import InputError, StageError


def test_table_roundtrip_with_provenance(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    p = io.write_table(tmp_path / "t.parquet", df, io.provenance("x", seed=3))
    pd.testing.assert_frame_equal(io.read_table(p), df)
    prov = io.read_provenance(p)
    assert prov["seed"] == 3 and prov["soilresp_version"]
    assert not list(tmp_path.glob(".*tmp*"))


def test_zarr_atomic_complete_and_provenance(tmp_path):
    ds = xr.Dataset({"v": (("lat", "lon"), np.ones((4, 5), np.float32))}).chunk(2)
    p = io.write_zarr(tmp_path / "g.zarr", ds, io.provenance("y"))
    assert io.is_complete(p)
    assert io.read_provenance(p)["stage"] == "y"
    np.testing.assert_array_equal(io.open_zarr(p)["v"].values, 1)
    # rewriting replaces the old store
    io.write_zarr(p, ds * 2)
    np.testing.assert_array_equal(io.open_zarr(p)["v"].values, 2)


def test_failed_zarr_write_leaves_nothing(tmp_path):
    import dask.array as da

    def boom(x):
        raise RuntimeError("disk full")

    arr = da.ones((4, 4), chunks=2).map_blocks(boom, dtype=float)
    ds = xr.Dataset({"v": (("lat", "lon"), arr)})
    with pytest.raises(RuntimeError):
        io.write_zarr(tmp_path / "g.zarr", ds)
    # no output; at most the in-progress folder a rerun resumes from, never taken as complete
    assert [p.name for p in tmp_path.iterdir()] in ([], [".soilresp-partial-g.zarr"])
    assert not io.is_complete(tmp_path / "g.zarr")
    assert not io.is_complete(io.partial_dir(tmp_path / "g.zarr") / "store.zarr")


def test_incomplete_zarr_is_not_taken(tmp_path):
    ds = xr.Dataset({"v": (("lat",), np.ones(3))})
    ds.to_zarr(tmp_path / "half.zarr")
    assert not io.is_complete(tmp_path / "half.zarr")
    with pytest.raises(StageError, match="incomplete"):
        io.open_zarr(tmp_path / "half.zarr")


def test_errors_name_the_file(tmp_path):
    with pytest.raises(StageError, match="missing table"):
        io.read_table(tmp_path / "none.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(InputError, match="bad.parquet"):
        io.read_table(bad)
    j = tmp_path / "x.json"
    j.write_text("{")
    with pytest.raises(InputError, match="x.json: not valid JSON"):
        io.read_json(j)
    io.write_json(tmp_path / "ok.json", {"a": np.float32(1.5)})
    assert json.loads((tmp_path / "ok.json").read_text()) == {"a": 1.5}


def test_outputs_get_the_usual_permissions(tmp_path):
    """Atomic writes go through mkstemp (mode 0600); the output must not stay private."""
    import os
    import stat

    import pandas as pd

    from soilresp import io

    mask = os.umask(0o022)
    try:
        p1 = io.write_json(tmp_path / "a.json", {"x": 1})
        p2 = io.write_table(tmp_path / "t.parquet", pd.DataFrame({"a": [1]}))
    finally:
        os.umask(mask)
    for p in (p1, p2):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
