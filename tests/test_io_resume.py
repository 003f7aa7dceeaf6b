"""Resumable Zarr writes: finished blocks are kept after a crash and not recomputed."""

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from soilresp import io


def _dataset(calls, fail_at=None):
    def f(x, block_info=None):
        loc = tuple(block_info[0]["chunk-location"])
        calls.append(loc)
        # a location, or "last": the last block to run (the order of blocks is dask's choice)
        if fail_at == "last" and len(calls) == 6 or fail_at is not None and loc == fail_at:
            raise RuntimeError("killed")
        return x * (1 + loc[0] + 10 * loc[1])

    base = da.ones((6, 8), chunks=(2, 4), dtype="float32")
    v = base.map_blocks(f, dtype="float32")
    lab = (base > 0).astype("int8")
    return xr.Dataset({"v": (("lat", "lon"), v), "flag": (("lat", "lon"), lab),
                       "static": (("lon",), np.arange(8.0))},
                      coords={"lat": np.arange(6.0), "lon": np.arange(8.0)})


def test_resume_computes_only_missing_blocks(tmp_path):
    p = tmp_path / "g.zarr"
    prov = io.provenance("x", extra={"stage_key": "k1"})
    calls: list = []
    with dask.config.set(scheduler="synchronous"), pytest.raises(RuntimeError):
        io.write_zarr(p, _dataset(calls, fail_at="last"), prov)
    assert not p.exists() and not io.is_complete(p)
    ndone = len(list((io.partial_dir(p) / "done" / "v").iterdir()))
    assert 0 < ndone < 6
    calls2: list = []
    with dask.config.set(scheduler="synchronous"):
        io.write_zarr(p, _dataset(calls2), prov)
    assert len(calls2) == 6 - ndone           # finished blocks were not recomputed
    assert io.is_complete(p) and not io.partial_dir(p).exists()
    ref = tmp_path / "ref.zarr"
    _dataset([]).to_zarr(ref, consolidated=False)
    got, want = xr.open_zarr(p, consolidated=False), xr.open_zarr(ref, consolidated=False)
    for name in ("v", "flag", "static", "lat"):
        np.testing.assert_array_equal(got[name].values, want[name].values)
        assert got[name].dtype == want[name].dtype
    assert io.read_provenance(p)["stage_key"] == "k1"


def test_other_key_starts_afresh(tmp_path):
    p = tmp_path / "g.zarr"
    calls: list = []
    with dask.config.set(scheduler="synchronous"), pytest.raises(RuntimeError):
        io.write_zarr(p, _dataset(calls, fail_at=(2, 1)), io.provenance("x", extra={"stage_key": "a"}))
    calls2: list = []
    with dask.config.set(scheduler="synchronous"):
        io.write_zarr(p, _dataset(calls2), io.provenance("x", extra={"stage_key": "b"}))
    assert len(calls2) == 6


def test_fill_values_and_nan_survive_block_writes(tmp_path):
    a = da.from_array(np.array([[np.nan, 1.5], [2.5, np.nan]], "float32"), chunks=1)
    c = da.from_array(np.array([[0, 3], [-1, 7]], "int8"), chunks=1)
    ds = xr.Dataset({"a": (("lat", "lon"), a), "c": (("lat", "lon"), c)})
    ds["c"].encoding["_FillValue"] = -1
    p = io.write_zarr(tmp_path / "f.zarr", ds, io.provenance("x"))
    ref = tmp_path / "r.zarr"
    ds.to_zarr(ref, consolidated=False)
    for name in ("a", "c"):
        np.testing.assert_array_equal(xr.open_zarr(p, consolidated=False)[name].values,
                                      xr.open_zarr(ref, consolidated=False)[name].values)


def test_write_on_distributed_cluster(tmp_path):
    from soilresp.pipeline import compute_context

    ds = xr.Dataset({"v": (("year", "lat"), da.arange(12, chunks=3, dtype="float64").reshape(3, 4))})
    with compute_context("local-cluster", 2):
        p = io.write_zarr(tmp_path / "d.zarr", ds, io.provenance("x", extra={"stage_key": "d"}))
    np.testing.assert_array_equal(io.open_zarr(p)["v"].values, np.arange(12.0).reshape(3, 4))


def test_provenance_command_for_every_output_type(tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from soilresp.cli import app

    prov = io.provenance("x", seed=5)
    io.write_table(tmp_path / "t.parquet", pd.DataFrame({"a": [1]}), prov)
    io.write_zarr(tmp_path / "g.zarr", xr.Dataset({"v": ("x", np.ones(2))}), prov)
    io.write_json(tmp_path / "m.json", {"provenance": prov, "form": "eq1"})
    (tmp_path / "f.csv").write_text("a\n1\n")
    io.write_json(io.sidecar_path(tmp_path / "f.csv"), prov)
    r = CliRunner()
    for name in ("t.parquet", "g.zarr", "m.json", "f.csv"):
        res = r.invoke(app, ["provenance", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        assert '"seed": 5' in res.output and "soilresp_version" in res.output
    (tmp_path / "plain.csv").write_text("a\n")
    res = r.invoke(app, ["provenance", str(tmp_path / "plain.csv")])
    assert res.exit_code == 2 and "plain.csv: no provenance" in res.output
