"""The packaged 1 km land mask answers exactly as global-land-mask, without its ~940 MB."""

from __future__ import annotations

import numpy as np
import pytest

from soilresp.landmask import is_land, land_grid


def test_same_answer_as_global_land_mask():
    globe = pytest.importorskip("global_land_mask.globe")
    rng = np.random.default_rng(11)
    lat = np.concatenate([rng.uniform(-90, 90, 300_000), [90, -90, 0, 89.999, -89.9999]])
    lon = np.concatenate([rng.uniform(-180, 180, 300_000), [180, -180, 0, 179.9999, -179.9999]])
    # coastal points: the mixed blocks, where the bits matter
    lat = np.concatenate([lat, 41.85 + rng.uniform(-0.5, 0.5, 50_000)])
    lon = np.concatenate([lon, -70.45 + rng.uniform(-0.5, 0.5, 50_000)])
    np.testing.assert_array_equal(is_land(lat, lon), globe.is_land(lat.copy(), lon.copy()))


def test_known_points_and_bad_input():
    assert is_land(48.85, 2.35) and not is_land(0.0, -30.0)  # Paris; the mid-Atlantic
    assert is_land(np.array([[48.85]]), np.array([[2.35]])).shape == (1, 1)
    with pytest.raises(ValueError, match="latitude"):
        is_land(91.0, 0.0)


def test_report_mask_agrees_with_the_1km_mask_on_most_cells():
    g = land_grid()
    lat = -90 + 0.1 * (np.arange(g.shape[0]) + 0.5)
    lon = -180 + 0.1 * (np.arange(g.shape[1]) + 0.5)
    sub = (slice(None, None, 7), slice(None, None, 7))
    la, lo = np.meshgrid(lat[sub[0]], lon[sub[1]], indexing="ij")
    assert (is_land(la, lo) == g[sub]).mean() > 0.97
