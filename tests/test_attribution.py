"""Attribution stage on a tiny world: Fig 3 series vs pingouin, Fig 6 cover mask, Fig 5 shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin as pg
import pytest

from soilresp import io
from soilresp.config import config_from_dict
from soilresp.pipeline import STAGES, Context

from test_cluster import _inputs


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("attr")
    _inputs(out)
    cfg = config_from_dict({"run": {"output_dir": str(out), "years": [2000, 2009], "seed": 3},
                            "product": {"mc_samples": 0},
                            "trends": {"min_years": 5, "bootstrap": 0},
                            "attribution": {"drivers": ["tas", "sm", "tc"]}}, base_dir=out)
    ctx = Context(cfg)
    for s in ("product", "trends", "attribution"):
        STAGES[s].run(ctx)
    return out


def test_series_partial_correlations_match_pingouin(run):
    spc = io.read_table(run / "attribution" / "series_partial_corr.parquet")
    rs = io.open_zarr(run / "product" / "rs.zarr")["rs"].load()
    cube = io.open_zarr(run / "drivers" / "drivers.zarr").load()
    area = io.open_zarr(run / "biomes" / "biomes.zarr")["cell_area"].load()
    valid = rs.notnull().all("year")
    w = area.broadcast_like(valid).where(valid)
    mean = lambda da: ((da * w).sum(["lat", "lon"]) / w.sum(["lat", "lon"])).values
    df = pd.DataFrame({"rs": mean(rs), **{n: mean(cube[n]) for n in ("tas", "sm", "tc")}})
    df["time"] = np.arange(len(df))
    g = spc[spc.region == "global"].set_index("driver")
    for n in ("tas", "sm", "tc"):
        ref = pg.partial_corr(df, x=n, y="rs", covar=[o for o in ("tas", "sm", "tc") if o != n] + ["time"])
        assert g.loc[n, "r"] == pytest.approx(float(ref["r"].iloc[0]), abs=1e-6)
        assert g.loc[n, "p"] == pytest.approx(float(ref["p_val"].iloc[0] if "p_val" in ref else ref["p-val"].iloc[0]),
                                              abs=1e-6)
    assert (spc["df"] == 10 - 2 - 2 - 1).all()
    assert set(spc.region) == {"global", "tropical", "temperate", "boreal"}


def test_pixel_cover_mask_and_change_shares(run):
    pc = io.open_zarr(run / "attribution" / "pixel_partial_corr.zarr").load()
    tc = io.open_zarr(run / "drivers" / "drivers.zarr")["tc"].load().mean("year")
    assert (tc <= 25).sum() > 10 and (tc > 25).sum() > 10
    assert np.all(np.isnan(pc["r_tc"].values[(tc <= 25).values]))
    assert np.isfinite(pc["r_tc"].values[(tc > 25).values]).any()
    assert np.isfinite(pc["r_tas"].values).sum() > np.isfinite(pc["r_tc"].values).sum()
    sh = io.read_table(run / "attribution" / "change_shares.parquet")
    for reg, g in sh.groupby("region"):
        s = g.set_index("driver_class")["share"]
        if np.isfinite(s["climate"]):
            assert s["climate"] + s["land_cover"] == pytest.approx(1.0)
            parts = s[[k for k in s.index if k.startswith("land_cover:")]].sum()
            assert parts == pytest.approx(s["land_cover"], abs=1e-12)
    co = io.read_table(run / "attribution" / "colocation.parquet")
    assert co["share_of_significant_rs"].dropna().between(0, 1).all()


def test_compositional_covers_control_groups_match_pingouin():
    """tc + sv + bg = 100 %: every driver gets a finite partial r, equal to pingouin's with
    the documented controls (covers: climate only; climate: others + two covers)."""
    from soilresp.attribution import control_groups
    from soilresp import stats

    names = ["tas", "pr", "spei", "tc", "sv", "bg"]
    groups = control_groups(names)
    assert groups[0] == (["tas", "pr", "spei", "tc", "sv"], ["tas", "pr", "spei"])
    assert [g[1] for g in groups[1:]] == [["tc"], ["sv"], ["bg"]]
    assert control_groups(names, "all") == [(names, names)]
    assert control_groups(["tas", "tc", "sv"]) == [(["tas", "tc", "sv"], ["tas", "tc", "sv"])]
    rng = np.random.default_rng(3)
    n = 15
    df = pd.DataFrame({"tas": rng.normal(size=n), "pr": rng.normal(size=n), "spei": rng.normal(size=n),
                       "tc": 40 + rng.normal(size=n) * 3, "sv": 30 + rng.normal(size=n) * 3})
    df["bg"] = 100 - df.tc - df.sv
    df["rs"] = 2 * df.tas + 0.3 * df.tc + rng.normal(size=n)
    df["time"] = np.arange(n)
    full = stats.partial_corr(df.rs.to_numpy(), df[names].to_numpy().T, detrend=True)
    assert not np.isfinite(full.r[3:]).any()          # the singular all-controls version
    for call, report in groups:
        res = stats.partial_corr(df.rs.to_numpy(), df[call].to_numpy().T, detrend=True)
        for name in report:
            k = call.index(name)
            ref = pg.partial_corr(df, x=name, y="rs", covar=[c for c in call if c != name] + ["time"])
            assert np.isfinite(res.r[k])
            assert res.r[k] == pytest.approx(float(ref["r"].iloc[0]), abs=1e-8)
