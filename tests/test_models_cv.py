"""Location groups: the unit of spatially honest CV folds (issue 15/16 share it)."""

import numpy as np
import pytest

from soilresp.models.cv import location_groups


def test_equal_coordinates_share_a_group_whatever_the_distance():
    g = location_groups(np.array([10.0, 10.0, 20.0]), np.array([5.0, 5.0, 5.0]), 0.0)
    assert g[0] == g[1] != g[2]


def test_single_linkage_chains_and_threshold():
    lat = np.array([0.0, 0.15, 0.30, 0.45, 5.0])  # 0.15 deg ~ 16.7 km apart
    lon = np.zeros(5)
    assert list(location_groups(lat, lon, 20.0)) == [0, 0, 0, 0, 1]
    assert len(set(location_groups(lat, lon, 10.0))) == 5


def test_dateline_and_nan():
    g = location_groups(np.array([0.0, 0.0, np.nan]), np.array([179.95, -179.95, 0.0]), 20.0)
    assert g[0] == g[1] and g[2] not in (g[0],)


def test_labels_by_first_appearance_and_validation():
    g = location_groups(np.array([50.0, 0.0, 50.0]), np.array([0.0, 0.0, 0.0]), 1.0)
    assert list(g) == [0, 1, 0]
    with pytest.raises(ValueError):
        location_groups(np.zeros(2), np.zeros(2), -1.0)
