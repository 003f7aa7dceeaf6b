"""Same config and seed -> bit-identical tables and grids: twice with threads (the shared
reference run, conftest.tiny_reference, made by `soilresp run` in its own process, and one
here in this process) and once on a 2-process dask.distributed LocalCluster (provenance
timestamps aside)."""

from __future__ import annotations

import pytest

from _tinyworld import assert_same_outputs, leftovers, write_config
from soilresp.config import load_config
from soilresp.pipeline import Context, compute_context, run_all

pytestmark = pytest.mark.slow   # > 20 s; still runs in CI


def _run(cfg_path):
    cfg = load_config(cfg_path)
    with compute_context(cfg.run.scheduler, 2):
        done = run_all(Context(cfg))
    assert set(done.values()) == {"ran"}
    return cfg.output_dir


@pytest.fixture(scope="module")
def root(tiny_reference):
    return tiny_reference[0]


def test_threads_twice_and_local_cluster_are_bit_identical(root):
    a = root / "reference"       # the first threads run: shared with the resume and lock tests
    assert 'scheduler = "threads"' in (root / "reference.toml").read_text()
    b = _run(write_config(root, "repeat_threads.toml", output_dir="repeat_threads"))
    c = _run(write_config(root, "repeat_cluster.toml", output_dir="repeat_cluster",
                          scheduler="local-cluster"))
    assert_same_outputs(a, b)
    assert_same_outputs(a, c)
    for run in (a, b, c):
        assert leftovers(run) == []


def test_comparison_detects_a_changed_value(root, tmp_path):
    """The comparison itself can fail: one changed grid value or table cell is caught."""
    import shutil

    import numpy as np
    import pandas as pd
    import zarr

    from soilresp import io

    a = root / "reference"
    for target in ("grid", "table"):
        b = tmp_path / target
        shutil.copytree(a, b)
        if target == "grid":
            g = zarr.open_group(str(b / "product" / "rs.zarr"), mode="r+")
            arr = g["rs"]
            idx = tuple(int(i) for i in np.argwhere(np.isfinite(arr[:]))[0])
            arr[idx] = np.nextafter(arr[idx], np.inf)
        else:
            p = b / "product" / "totals.parquet"
            df = io.read_table(p)
            df.loc[0, "total_pg"] = np.nextafter(df.loc[0, "total_pg"], np.inf)
            io.write_table(p, df, io.table_provenance(p))
        with pytest.raises(AssertionError):
            assert_same_outputs(a, b)
