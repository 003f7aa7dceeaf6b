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


def test_block_groups_and_scheme_groups():
    import pandas as pd

    from soilresp.models.cv import block_groups, outer_splits, scheme_groups

    g = block_groups(np.array([0.1, 4.9, 5.0, -0.1, np.nan]), np.array([0.0, 4.9, 0.0, 0.0, 0.0]), 5.0)
    assert g[0] == g[1] and len({g[0], g[2], g[3], g[4]}) == 4     # south/west edge inside the block
    tab = pd.DataFrame({"site_id": ["a", "b", "c", "d"], "lat": [10.0, 10.0, 10.1, 40.0], "lon": [5.0, 5.0, 5.0, 5.0]})
    sg = scheme_groups(tab, location_km=20.0, block_deg=5.0)
    assert sg["random"] is None and len(set(sg["site"])) == 4
    assert sg["location"][0] == sg["location"][1] == sg["location"][2] != sg["location"][3]
    # no location group is split between a training and its test fold
    for tr, te in outer_splits("location", 2, 0, sg["location"], 4):
        assert not set(sg["location"][tr]) & set(sg["location"][te])
    # without coordinates location and block CV fall back to the sites
    nog = scheme_groups(tab.drop(columns=["lat", "lon"]), location_km=20.0, block_deg=5.0)
    assert list(nog["location"]) == list(nog["site"])


def test_nested_selection_does_not_leak():
    """Pure-noise Rs and 100 noise temperature candidates: choosing the predictor on all rows
    and then cross-validating (non-nested) finds skill that is not there; the nested loop,
    which re-runs Eq 5 in every training fold, does not."""
    import pandas as pd

    from soilresp.models.cv import nested_oof, oof_predict
    from soilresp.models.selection import _score, stepwise_predictors

    kw = {"t_response": "free"}
    leak, nest = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        n, k = 30, 100
        df = pd.DataFrame(rng.normal(10, 5, (n, k)), columns=[f"t{i}" for i in range(k)])
        df["rs"] = 500 * np.exp(rng.normal(0, 0.3, n))
        df["site_id"] = np.arange(n).astype(str)
        cand = dict(temperature=[f"t{i}" for i in range(k)], moisture=[], productivity=[])
        T = stepwise_predictors(df, nls_kw=kw, **cand)[0]["T"]
        y = df["rs"].to_numpy()
        yl = oof_predict("nls", "eq2", df[[T]].to_numpy(), y, None, scheme="random", folds=5, seed=0, nls_kw=kw)
        yn = nested_oof(df, [("nls", "eq2")], choose=lambda d: stepwise_predictors(d, nls_kw=kw, **cand)[0],
                        columns=lambda c, p: [p["T"]], scheme="random", groups=None, folds=5, seed=0,
                        nls_kw=kw)[("nls", "eq2")]
        leak.append(_score(y, yl).r2)
        nest.append(_score(y, yn).r2)
    assert np.mean(leak) > 0.1          # the leak: skill on noise
    assert max(nest) < 0.05 and np.mean(nest) < np.mean(leak) - 0.3
