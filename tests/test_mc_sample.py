"""The Monte Carlo on a stratified sample: the cells gathered once (issue 19) give the same
Horvitz-Thompson totals as summing the sampled cells of the predicted map directly."""

import numpy as np

from soilresp.product import predict_dataset
from soilresp.product.uncertainty import (_N_STRATA, MCSettings, _strata, _uniform, inclusion_probabilities,
                                          monte_carlo_totals, stratum_counts)
from tests.test_product import _models, _world


def test_gathered_sample_equals_direct_horvitz_thompson_sum():
    cube, bio, tr = _world(nlat=12, nlon=16)
    models = _models(tr)  # nls, rf, qrf
    s = MCSettings(n=3, seed=11, sample_pixels=50, min_per_stratum=4, mode="bootstrap")
    a = monte_carlo_totals(cube.chunk({"lat": 5, "lon": 7}), bio, models, s, tr, None)
    b = monte_carlo_totals(cube.chunk({"lat": 12}), bio, models, s, tr, None)
    np.testing.assert_allclose(a["total"].values, b["total"].values, rtol=1e-12)  # chunking-free
    # independent: the sample drawn with the documented hash, predicted map x area / p
    counts = stratum_counts(bio["biome"], bio["region"])
    assert counts.size == _N_STRATA
    p_table = inclusion_probabilities(counts, 50, 4)
    biome, region = bio["biome"].values, bio["region"].values
    p = p_table[_strata(biome, region)]
    ii, jj = np.meshgrid(np.arange(biome.shape[0]), np.arange(biome.shape[1]), indexing="ij")
    take = (biome > 0) & (p > 0) & (_uniform(11, ii, jj) < p)
    assert 20 < take.sum() < 120
    rs = predict_dataset(cube, bio["biome"], models)["rs"].values
    area = bio["cell_area"].broadcast_like(bio["biome"]).values
    w = np.where(take, area / np.where(take, p, 1), 0.0)
    ht = np.nansum(np.nan_to_num(rs) * w[None], axis=(1, 2)) / 1e15
    np.testing.assert_allclose(a["central"].sel(region="global").values, ht, rtol=1e-6)  # the map is float32
    var = np.nansum(((1 - p) * w)[None] * w[None] * np.nan_to_num(rs) ** 2, axis=(1, 2)) / 1e30
    np.testing.assert_allclose(a["central_sampling_se"].sel(region="global").values, np.sqrt(var), rtol=1e-6)  # the map is float32
