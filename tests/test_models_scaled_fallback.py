"""The scaled fallback (docs/models.md §6): the pooled response scaled to a biome's level; the
Monte Carlo refits' warning count."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from soilresp.config import ModelsConfig
from soilresp.errors import InputError
from soilresp.models import fit_biomes, load_biome_model, predict_form, save_biome_model
from soilresp.models.base import fallback_kind
from soilresp.product.uncertainty import MCSettings, PerturbedNLS, realisation_models, training_rows
from soilresp.stability import refit

TRUE4 = [180.0, 0.06, -0.0008, 2.0, -2.5, 0.12]
BIOMES3 = {1: "forest", 2: "grass", 3: "small"}
LEVEL = 2.5  # biome 3 respires 2.5 x the others at the same climate


def _table(seed=0, n=(60, 60, 12), noise=0.05):
    rng = np.random.default_rng(seed)
    parts = []
    for code, k in zip(BIOMES3, n):
        d = pd.DataFrame({"tas": rng.uniform(-5, 28, k), "sm": rng.uniform(0.1, 0.45, k),
                          "gpp": rng.uniform(100, 3000, k)})
        d["rs"] = predict_form("eq4", TRUE4, d.tas, d.sm, d.gpp) * np.exp(rng.normal(0, noise, k))
        if code == 3:
            d["rs"] *= LEVEL
        d["biome"] = code
        d["site_id"] = [f"b{code}s{i}" for i in range(k)]
        d["lat"], d["lon"] = rng.uniform(-60, 70, k), rng.uniform(-180, 180, k)
        parts.append(d)
    return pd.concat(parts, ignore_index=True)


def _cfg(**kw):
    base = dict(families=["nls"], temperature=["tas"], moisture=["sm"], productivity=["gpp"], cv_folds=4,
                inner_folds=2, min_observations=15)
    return ModelsConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def fitted():
    tab = _table()
    return tab, fit_biomes(tab, _cfg(), seed=3, biomes=BIOMES3)


def test_scaled_fallback_selected_and_scored_on_its_own_rows(fitted):
    tab, res = fitted
    r3 = res.selected.set_index("biome").loc[3]
    assert r3["fallback"].startswith("pooled response scaled to the biome mean")
    assert "12 < min_observations = 15" in r3["fallback"]
    # below 2.5: the pooled fit saw biome 3's own rows too
    assert 1.8 < r3["level_scale"] < LEVEL
    m = res.models[3]
    assert fallback_kind(m) == "scaled" and m.meta["level_scale"] == r3["level_scale"]
    # the skill row is the scaled response's own out-of-fold skill on the 12 rows, which
    # beats the biome mean's (the pooled model itself predicts them 2.5 x too low)
    sk = res.skill[(res.skill.biome == 3) & res.skill.selected]
    assert len(sk) == 1 and sk["n"].item() == 12 and sk["loc_cv_r2"].item() > 0.5
    assert "> biome mean's" in r3["fallback"]
    # prediction = the level x the pooled model's response, close to the truth
    sub = tab[tab.biome == 3]
    X = sub[m.predictors].to_numpy(float)
    truth = LEVEL * predict_form("eq4", TRUE4, sub.tas, sub.sm, sub.gpp)
    assert np.median(np.abs(m.predict(X) / truth - 1)) < 0.1
    assert res.models[1].level_scale == 1.0 and "level_scale" not in res.models[1].meta


def test_scaled_fallback_switch_and_mean_when_it_does_not_beat_the_mean():
    tab = _table()
    off = fit_biomes(tab, _cfg(scaled_fallback=False), seed=3, biomes=BIOMES3)
    assert off.selected.set_index("biome").loc[3, "fallback"].startswith("biome mean")
    # pure noise around a level: no response to borrow, the mean stays
    noisy = tab.copy()
    b3 = noisy.biome == 3
    noisy.loc[b3, "rs"] = 900.0 * np.exp(np.random.default_rng(1).normal(0, 0.6, b3.sum()))
    res = fit_biomes(noisy, _cfg(), seed=3, biomes=BIOMES3)
    fb = res.selected.set_index("biome").loc[3, "fallback"]
    assert fb.startswith("biome mean") and "scaled pooled response's CV R2" in fb


def test_level_scale_file_roundtrip_and_refused_values(fitted, tmp_path):
    tab, res = fitted
    m = res.models[3]
    path = save_biome_model(tmp_path, m)
    back = load_biome_model(path)
    X = tab[tab.biome == 3][m.predictors].to_numpy(float)
    np.testing.assert_array_equal(back.predict(X), m.predict(X))
    doc = json.loads(path.read_text())
    for bad in ("2", -1.0, 0.0, 1e9, True):
        path.write_text(json.dumps({**doc, "level_scale": bad}))
        with pytest.raises(InputError, match="level_scale"):
            load_biome_model(path)
    # the deployment kind is a code in the file, read back, never parsed from the text
    assert doc["fallback_kind"] == "scaled" and fallback_kind(back) == "scaled"
    assert [res.models[c].meta["fallback_kind"] for c in (1, 3)] == ["", "scaled"]
    path.write_text(json.dumps({**doc, "fallback": "biome mean (edited)"}))
    assert fallback_kind(load_biome_model(path)) == "scaled"
    for bad in ("Mean", "pooled model", 1, None, ""):   # "" with a fallback text: they disagree
        path.write_text(json.dumps({**doc, "fallback_kind": bad}))
        with pytest.raises(InputError, match="fallback_kind"):
            load_biome_model(path)
    path.write_text(json.dumps({**doc, "fallback": ""}))   # a kind without its text
    with pytest.raises(InputError, match="disagree"):
        load_biome_model(path)


def test_bootstrap_and_stability_refit_the_level(fitted):
    tab, res = fitted
    m = res.models[3]
    X, y, g, own = training_rows(m, tab, own=True)
    assert len(y) == len(tab) and own.sum() == 12        # pooled rows, the biome's flagged
    s = MCSettings(n=20, mode="site-bootstrap", group_km=1.0, seed=4)
    levels = []
    for r in range(20):
        real, failed = realisation_models({3: m}, r, s, tab, None)
        assert failed == 0
        levels.append(real[3].level_scale)
    levels = np.array(levels)
    assert np.all(np.abs(levels / m.level_scale - 1) < 0.25) and levels.std() > 0   # refitted per draw
    # covariance and paper draws carry the level
    pm = realisation_models({3: m}, 0, MCSettings(n=1, mode="paper", qualitative="none", param_cv=0.0),
                            tab, None)[0][3]
    assert isinstance(pm, PerturbedNLS) and pm.scale == m.level_scale
    np.testing.assert_allclose(pm.predict(X[own]), m.predict(X[own]), rtol=1e-9)
    # stability: the level refitted on the remaining rows of the biome
    keep = tab[~tab.site_id.isin(["b3s0", "b3s1"])]
    st = refit(m, keep, list(BIOMES3))
    rows = keep[keep.biome == 3]
    pooled_pred = st.estimator.predict(rows[m.predictors].to_numpy(float))
    assert st.level_scale == pytest.approx(rows["rs"].sum() / pooled_pred.sum(), rel=1e-6)


def test_monte_carlo_refit_warnings_are_counted_not_printed(fitted):
    """An MLP refit that stops at max_iter warns on every resample: the Monte Carlo counts it
    (reported as one stage note), and nothing reaches the terminal."""
    from sklearn.neural_network import MLPRegressor

    from soilresp.models import BiomeModel
    from soilresp.product.uncertainty import _fit_batch

    tab, _ = fitted
    sub = tab[tab.biome == 1]
    X, y = sub[["tas", "sm", "gpp"]].to_numpy(float), sub["rs"].to_numpy(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPRegressor(hidden_layer_sizes=(3,), max_iter=3, random_state=0).fit(X, y)
    m = BiomeModel(1, "ann", ["tas", "sm", "gpp"], est, {})
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        out, (failed, counts, chosen, unrefitted) = _fit_batch({1: m}, [0, 1, 2], MCSettings(n=3, mode="bootstrap", seed=1),
                                                   tab, None)
    assert len(out) == 3 and failed == 0 and unrefitted == {} and chosen == {(1, "ann", "", "tas,sm,gpp"): 3}
    assert counts.get(("Monte Carlo refits", "ConvergenceWarning"), 0) >= 3
    assert not [w for w in shown if "ConvergenceWarning" in w.category.__name__]


def test_biome_mean_uses_every_row_with_rs_like_its_cv_and_its_refits():
    """Rows whose predictors are missing (a MODIS driver before 2000) still measure Rs: the
    biome mean, its out-of-fold score, its Monte Carlo refits and its stability refits all
    use every row with Rs > 0 (before, the fit used only rows with the T predictor while the
    bootstrap used all of them: its median sat 7-12 % off the central estimate)."""
    tab = _table(n=(60, 60, 30))
    b3 = np.flatnonzero(tab.biome == 3)
    tab.loc[b3, "rs"] = 900.0 * np.exp(np.random.default_rng(1).normal(0, 0.6, b3.size))
    tab.loc[b3[:12], "rs"] *= 2.0                      # the rows without drivers are higher
    tab.loc[b3[:12], ["tas", "sm", "gpp"]] = np.nan
    res = fit_biomes(tab, _cfg(min_observations=10), seed=3, biomes=BIOMES3)
    m = res.models[3]
    assert fallback_kind(m) == "mean"
    allmean = tab.loc[b3, "rs"].mean()
    assert m.params[0] == pytest.approx(allmean) and m.meta["n_training"] == 30
    X, y, g = training_rows(m, tab)
    assert y.mean() == pytest.approx(allmean)
    st = refit(m, tab, list(BIOMES3))
    assert st.params[0] == pytest.approx(allmean)
