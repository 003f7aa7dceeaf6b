"""The heavy stages give identical outputs on a 2-process dask.distributed LocalCluster and on
the default threaded scheduler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from soilresp import io
from soilresp.config import BIOMES, config_from_dict
from soilresp.models import save_biome_model
from soilresp.pipeline import STAGES, Context, compute_context

from test_product import _models, _world

HEAVY = ("product", "uncertainty", "trends", "attribution")


def _inputs(out):
    cube, bio, tr = _world(seed=2, ny=10)
    rng = np.random.default_rng(1)
    ramp = np.linspace(0.0, 70.0, cube.sizes["lon"])[None, None, :]  # covers below and above 25 %
    cube["tc"] = (ramp + 40 * cube["sm"] + rng.normal(0, 2, cube["sm"].shape) - 10).clip(0, 100).astype(np.float32)
    cube["tc"].attrs["units"] = "%"
    cube = cube.chunk({"year": -1, "lat": 5, "lon": 7})
    io.write_zarr(out / "drivers" / "drivers.zarr", cube)
    io.write_zarr(out / "biomes" / "biomes.zarr", bio.chunk({"lat": 5, "lon": 7}))
    io.write_table(out / "sites" / "training.parquet", tr)
    models = _models(tr)
    for code in BIOMES:
        m = models.get(code, models[1])
        m = type(m)(code, m.family, m.predictors, m.estimator, {"fallback": "" if code in models else "pooled"})
        save_biome_model(out / "models", m)


def _run(tmp, scheduler):
    out = tmp / scheduler
    _inputs(out)
    cfg = config_from_dict({"run": {"output_dir": str(out), "years": [2000, 2009], "seed": 3,
                                    "scheduler": scheduler, "workers": 2},
                            "product": {"mc_samples": 6, "mc_batch": 3, "mc_mode": "bootstrap"},
                            "trends": {"min_years": 5, "bootstrap": 50, "fdr": True},
                            "attribution": {"drivers": ["tas", "sm", "tc"]}}, base_dir=tmp)
    ctx = Context(cfg)
    with compute_context(cfg.run.scheduler, cfg.run.workers) as client:
        if client is not None:  # one core per single-threaded worker: numba kernels included
            import numba

            assert set(client.run(numba.get_num_threads).values()) == {1}
        for s in HEAVY:
            STAGES[s].run(ctx)
    return out


@pytest.mark.slow
def test_local_cluster_outputs_identical_to_threads(tmp_path):
    a = _run(tmp_path, "threads")
    b = _run(tmp_path, "local-cluster")
    for stage in ("product", "uncertainty", "trends", "attribution"):
        for f in sorted((a / stage).iterdir()):
            g = b / stage / f.name
            if f.suffix == ".parquet":
                pd.testing.assert_frame_equal(io.read_table(f), io.read_table(g))
            elif f.suffix == ".zarr":
                xa, xb = io.open_zarr(f).load(), io.open_zarr(g).load()
                xa.attrs.pop(io.PROVENANCE_KEY, None), xb.attrs.pop(io.PROVENANCE_KEY, None)
                xr.testing.assert_identical(xa, xb)
    sm = io.read_table(a / "uncertainty" / "mc_summary.parquet")
    assert {"mc_median", "mc_lo", "mc_hi"} <= set(sm.columns) and sm["mc_lo"].notna().all()
    tr = io.open_zarr(a / "trends" / "trends.zarr")
    assert {"q", "fdr_reject", "significant"} <= set(tr.data_vars)
