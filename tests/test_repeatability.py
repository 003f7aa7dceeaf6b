"""Same config and seed -> bit-identical tables and grids: twice with threads (the two shared
runs of conftest.tiny_reference, each a `soilresp run` process) and once on a 2-process
dask.distributed LocalCluster (provenance timestamps aside)."""

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
    # the two threads runs: `soilresp run` twice, shared with the resume and lock tests
    a, b = root / "first_run", root / "reference"
    assert 'scheduler = "threads"' in (root / "reference.toml").read_text()
    assert (root / "first_run.toml").read_text() == (root / "reference.toml").read_text().replace(
        'output_dir = "reference"', 'output_dir = "first_run"')
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
