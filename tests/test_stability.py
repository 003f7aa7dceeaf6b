"""Stability refits evaluated on the Monte Carlo's stratified sample (issue 19): the same
refits as on the whole grid, Horvitz-Thompson totals with their sampling error."""

import numpy as np
import pandas as pd

from soilresp.product import predict_dataset
from soilresp.product.uncertainty import _strata, _uniform, inclusion_probabilities, stratum_counts
from soilresp.stability import stability_totals
from tests.test_product import _models, _world


def _run(cube, bio, tr, models, **kw):
    groups = pd.factorize(tr["site_id"])[0]
    return stability_totals(tr, models, cube.chunk({"lat": 5, "lon": 7}), bio["biome"], bio["cell_area"],
                            groups=groups, n_drops=3, jackknife=2, seed=5, region=bio["region"], **kw)


def test_sample_covering_the_grid_equals_whole_grid_refits():
    cube, bio, tr = _world(nlat=12, nlon=16)
    models = _models(tr)  # nls, rf, qrf
    grid = _run(cube, bio, tr, models)
    full = _run(cube, bio, tr, models, sample_pixels=10_000, min_per_stratum=4)  # more than the land pixels
    assert list(grid["design"]) == ["full", "drop", "drop", "drop", "jackknife", "jackknife"]
    assert (grid[["dropped_groups", "dropped_rows"]].values == full[["dropped_groups", "dropped_rows"]].values).all()
    assert (grid["dropped_rows"].iloc[1:] > 0).all()
    np.testing.assert_allclose(full["total_pg"], grid["total_pg"], rtol=2e-6)  # the grid sums float32 maps
    assert (full["sampling_se_pg"] == 0).all() and (grid["sampling_se_pg"] == 0).all()
    assert full["sample_pixels"].iloc[0] == int((bio["biome"].values > 0).sum())
    assert grid["sample_pixels"].iloc[0] == 0
    assert grid["change"].abs().iloc[1:].max() > 0  # the refits move the total


def test_sampled_refits_are_horvitz_thompson_with_their_error():
    cube, bio, tr = _world(nlat=12, nlon=16)
    models = _models(tr)
    grid = _run(cube, bio, tr, models)
    smp = _run(cube, bio, tr, models, sample_pixels=60, min_per_stratum=4)
    n = smp["sample_pixels"].iloc[0]
    assert 20 < n < 120
    # independent: the documented hash and inclusion probabilities, the product map x area / p
    p_table = inclusion_probabilities(stratum_counts(bio["biome"], bio["region"]), 60, 4)
    biome, region = bio["biome"].values, bio["region"].values
    p = p_table[_strata(biome, region)]
    ii, jj = np.meshgrid(np.arange(biome.shape[0]), np.arange(biome.shape[1]), indexing="ij")
    take = (biome > 0) & (p > 0) & (_uniform(5, ii, jj) < p)
    assert take.sum() == n
    rs = np.nan_to_num(predict_dataset(cube, bio["biome"], models)["rs"].values).mean(axis=0)
    w = np.where(take, bio["cell_area"].broadcast_like(bio["biome"]).values / np.where(take, p, 1), 0.0)
    np.testing.assert_allclose(smp["total_pg"].iloc[0], np.sum(w * rs) / 1e15, rtol=1e-6)
    np.testing.assert_allclose(smp["sampling_se_pg"].iloc[0], np.sqrt(np.sum((1 - p) * (w * rs) ** 2)) / 1e15,
                               rtol=1e-6)
    # every refit's sampled total is within 4 sampling SE of its whole-grid total
    se = smp["sampling_se_pg"].to_numpy()
    assert (se > 0).all()
    assert (np.abs(smp["total_pg"] - grid["total_pg"]).to_numpy() < 4 * se).all()
    # the change shares the full refit's sample: its error is below the total's relative error
    assert smp["change_sampling_se"].iloc[0] == 0
    assert (smp["change_sampling_se"].iloc[1:] < se[1:] / smp["total_pg"].iloc[1:]).all()
    assert (np.abs(smp["change"] - grid["change"]).to_numpy()[1:] < 4 * smp["change_sampling_se"].to_numpy()[1:] + 1e-9).all()
