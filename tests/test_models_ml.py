"""Machine-learning families, nested CV, best-model choice, fallback and repeatability."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import soilresp.models.ml as ml
from soilresp.config import ModelsConfig
from soilresp.models import (ML_FAMILIES, PARAM_GRIDS, BiomeModel, fit_biomes, load_biome_model, make_estimator,
                             oof_predict, predict_form, save_biome_model)

TRUE4 = [180.0, 0.06, -0.0008, 2.0, -2.5, 0.12]
BIOMES3 = {1: "forest", 2: "grass", 3: "tiny"}


def _table(n=(60, 50, 6), seed=0, noise=0.05):
    """Three biomes of Eq 4 data (tas, sm, gpp true; noise columns beside), 3 rows per site."""
    rng = np.random.default_rng(seed)
    parts = []
    for code, k in zip(BIOMES3, n):
        d = pd.DataFrame({"tas": rng.uniform(-5, 28, k), "sm": rng.uniform(0.1, 0.45, k),
                          "gpp": rng.uniform(100, 3000, k), "pr": rng.uniform(200, 2000, k)})
        d["tas_jja"] = d["tas"] + rng.normal(0, 6, k)
        d["rs"] = predict_form("eq4", TRUE4, d.tas, d.sm, d.gpp) * np.exp(rng.normal(0, noise, k))
        d["biome"] = code
        d["site_id"] = [f"b{code}s{i // 3}" for i in range(k)]
        parts.append(d)
    return pd.concat(parts, ignore_index=True)


def _cfg(**kw):
    base = dict(families=["nls", "rf", "svr", "ann"], temperature=["tas"], moisture=["sm", "pr"],
                productivity=["gpp"], cv_folds=3, inner_folds=2, min_observations=15)
    return ModelsConfig(**{**base, **kw})


def _xy(n=80, seed=1):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(-5, 28, n), rng.uniform(0.1, 0.45, n), rng.uniform(100, 3000, n)])
    y = predict_form("eq4", TRUE4, *X.T) * np.exp(rng.normal(0, 0.05, n))
    return X, y


@pytest.mark.parametrize("family", ML_FAMILIES)
def test_family_fits_predicts_and_roundtrips(family, tmp_path):
    X, y = _xy()
    search = ml.fit_search(family, X, y, seed=3, inner_folds=2)
    assert isinstance(search, GridSearchCV)
    n_grid = int(np.prod([len(v) for v in PARAM_GRIDS[family].values()]))
    assert len(search.cv_results_["params"]) == n_grid >= 2          # the grid was searched
    est = search.best_estimator_
    assert np.corrcoef(est.predict(X), y)[0, 1] > 0.9
    m = BiomeModel(2, family, ["tas", "sm", "gpp"], est, {"seed": 3})
    back = load_biome_model(save_biome_model(tmp_path, m))
    Xq = np.vstack([X[:5], [[np.nan, 0.2, 500.0]]])
    np.testing.assert_array_equal(back.predict(Xq), m.predict(Xq))
    assert np.isnan(back.predict(Xq)[-1]) and back.family == family
    # clone of the saved estimator: unfitted, same hyper-parameters and seed (product Monte Carlo)
    fresh = clone(back.estimator)
    assert {k: repr(v) for k, v in fresh.get_params().items()} == {k: repr(v) for k, v in est.get_params().items()}
    with pytest.raises(Exception):
        fresh.predict(X[:2])
    assert back.supports_intervals == (family == "qrf")


def test_estimators_are_seeded_single_threaded():
    for fam in ML_FAMILIES:
        p = make_estimator(fam, 11).get_params()
        seeds = [v for k, v in p.items() if k.endswith("random_state")]
        jobs = [v for k, v in p.items() if k.endswith("n_jobs")]
        assert fam == "svr" or seeds == [11]
        assert all(j == 1 for j in jobs)
    with pytest.raises(ValueError, match="unknown machine-learning family"):
        make_estimator("xgb", 0)


def test_qrf_intervals_cover():
    rng = np.random.default_rng(4)
    n = 1200
    X = rng.uniform(0, 25, (n, 1))
    y = 300 * np.exp(0.06 * X[:, 0]) * rng.lognormal(0, 0.25, n)   # heteroscedastic
    est = make_estimator("qrf", 0).set_params(min_samples_leaf=10).fit(X[:800], y[:800])
    m = BiomeModel(1, "qrf", ["tas"], est)
    q = m.predict_quantiles(X[800:], [0.05, 0.5, 0.95])
    assert q.shape == (400, 3) and np.all(q[:, 0] <= q[:, 1]) and np.all(q[:, 1] <= q[:, 2])
    cover = np.mean((y[800:] >= q[:, 0]) & (y[800:] <= q[:, 2]))
    assert 0.82 <= cover <= 0.97, cover   # nominal 0.90; QRF leaves make it a little narrow
    # intervals widen with the level of Rs, as the noise does
    w = q[:, 2] - q[:, 0]
    assert w[X[800:, 0] > 18].mean() > 1.5 * w[X[800:, 0] < 7].mean()
    with pytest.raises(ValueError, match="no prediction intervals"):
        BiomeModel(1, "rf", ["tas"], make_estimator("rf", 0).fit(X, y)).predict_quantiles(X, [0.5])


def test_grid_search_is_nested_inside_each_training_fold(monkeypatch):
    X, y = _xy(60)
    groups = np.repeat(np.arange(20), 3)
    seen = []
    real = ml.fit_search

    def spy(family, Xt, yt, **kw):
        seen.append((Xt.copy(), kw.get("groups")))
        return real(family, Xt, yt, **kw)

    monkeypatch.setattr(ml, "fit_search", spy)
    for scheme in ("random", "site"):
        seen.clear()
        yhat = oof_predict("svr", None, X, y, groups, scheme=scheme, folds=4, seed=0, inner_folds=2)
        assert len(seen) == 4 and np.all(np.isfinite(yhat))          # one grid search per outer fold
        for Xt, g in seen:
            test_rows = ~np.isin(X[:, 0], Xt[:, 0])
            assert Xt.shape[0] == 60 - test_rows.sum() and test_rows.any()
            if scheme == "site":                                      # grouped inner CV, training sites only
                assert g is not None and not set(g) & set(groups[test_rows])
            else:
                assert g is None


def test_fit_biomes_tables_selection_and_fallback(tmp_path):
    tab = _table()
    prog = []
    res = fit_biomes(tab, _cfg(), seed=5, biomes=BIOMES3, units={"tas": "degC"},
                     progress=lambda *a: prog.append(a))
    sk, sel, par = res.skill, res.selected, res.parameters
    # S2: every biome x family x form (+ the biome-mean baseline), all four CV schemes
    assert set(sk["family"]) == {"nls", "rf", "svr", "ann", "mean"}
    own = sk[sk.biome == 1]
    assert len(own) == 8 and set(own.loc[own.family == "nls", "form"]) == {"eq1", "eq2", "eq3", "eq4"}
    cols = [p + m for p in ("cv_", "site_cv_", "loc_cv_", "block_cv_") for m in ("r2", "rmse", "bias")]
    assert own[cols].notna().all().all()
    assert (own["n"] == 60).all() and (own["n_sites"] == 20).all()
    assert own.loc[own.family == "mean", "loc_cv_r2"].item() < 0.05       # the baseline
    # the documented rule: highest location-CV R2 among the eligible candidates (not on a bound)
    elig = own[(own.family != "mean") & ~own["at_bound"]]
    best = elig.loc[elig["loc_cv_r2"].idxmax()]
    assert own["selected"].sum() == 1 and bool(best["selected"])
    r1 = sel.set_index("biome").loc[1]
    assert (r1["family"], r1["form"]) == (best["family"], best["form"])
    assert r1["loc_cv_r2"] == pytest.approx(best["loc_cv_r2"]) and r1["loc_cv_r2"] > 0.8 and r1["fallback"] == ""
    assert r1["predictors"].split(",") == ["tas", "sm", "gpp"][: len(r1["predictors"].split(","))]
    # fallback: biome 3 has 6 < 15 rows -> pooled model over all rows, scored on its own rows
    r3 = sel.set_index("biome").loc[3]
    assert "pooled" in r3["fallback"] and "6 < min_observations = 15" in r3["fallback"]
    assert r3["n"] == 6 and r3["n_fit"] == 116
    tiny = sk[(sk.biome == 3) & sk.selected]
    assert (tiny["n"] == 6).all() and (tiny["fallback"] != "").all()
    m3 = res.models[3]
    assert m3.meta["fallback"] == r3["fallback"] and m3.meta["n_training"] == 116 and m3.meta["n_biome"] == 6
    # S4: Eq 1-4 parameters with standard errors and roles; tuned hyper-parameters for ML
    nls = par[(par.biome == 1) & (par.family == "nls") & (par.form == "eq4")].set_index("param")
    assert list(nls.index) == ["a", "b", "c", "d", "e", "f", "q10", "t_ref"]
    assert nls.loc["b", "role"] == "T" and nls.loc["d", "predictor"] == "sm" and nls.loc["f", "role"] == "P"
    assert nls["stderr"].drop("t_ref").notna().all()
    svr = par[(par.biome == 1) & (par.family == "svr")]
    assert list(svr["param"]) == ["C"] and svr["value"].iloc[0] in PARAM_GRIDS["svr"]["regressor__svr__C"]
    assert par.groupby("biome")["selected"].any().all()
    # model files: metadata contract, round trip
    for m in res.models.values():
        p = save_biome_model(tmp_path, m)
    doc = json.loads(p.read_text())
    for key in ("training_hash", "predictors", "units", "versions", "seed", "skill", "fallback", "select_by",
                "training_range", "predictor_range", "aoa"):
        assert key in doc
    assert doc["versions"]["scikit-learn"] and doc["seed"] == 5 and doc["units"]["rs"] == "g C m-2 yr-1"
    # progress per biome and model family
    assert ("fit biome  1 forest", 5, 5) in prog and ("fit biome  1 forest", 1, 5) in prog
    assert len(res.steps) and set(res.steps["biome"]) == {1, 2, 3}


def test_repeatable_from_seed_and_parallel_same():
    tab = _table(n=(30, 24, 0), seed=2)
    cfg = _cfg(families=["nls", "ann"], moisture=["sm"])
    a = fit_biomes(tab, cfg, seed=9, biomes=BIOMES3)
    b = fit_biomes(tab, cfg.model_copy(update={"n_jobs": 2}), seed=9, biomes=BIOMES3)
    pd.testing.assert_frame_equal(a.skill, b.skill)
    pd.testing.assert_frame_equal(a.parameters, b.parameters)
    X = tab[["tas", "sm", "gpp"]].to_numpy()[:20]
    for code in BIOMES3:
        cols = a.models[code].predictors
        Xc = tab[cols].to_numpy()[:20]
        np.testing.assert_array_equal(a.models[code].predict(Xc), b.models[code].predict(Xc))
    c = fit_biomes(tab, cfg.model_copy(update={"families": ["ann"]}), seed=10, biomes=BIOMES3)
    assert not a.skill[a.skill.family == "ann"]["cv_rmse"].equals(c.skill[c.skill.family == "ann"]["cv_rmse"])
    assert X.shape == (20, 3)
    # a biome with no rows at all gets the pooled model, with NaN skill on its (empty) rows
    r3 = a.selected.set_index("biome").loc[3]
    assert r3["n"] == 0 and "pooled" in r3["fallback"] and np.isnan(r3["cv_r2"])


def test_select_by_site_and_select_from():
    tab = _table(n=(60, 50, 20), seed=3)
    res = fit_biomes(tab, _cfg(families=["nls", "svr"], select_by="site", select_from=["nls"]), seed=1,
                     biomes=BIOMES3)
    assert set(res.selected["family"]) == {"nls"} and set(res.selected["select_by"]) == {"site"}
    own = res.skill[(res.skill.biome == 1) & (res.skill.family == "nls") & ~res.skill["at_bound"]]
    best = own.loc[own["site_cv_r2"].idxmax()]
    assert bool(best["selected"])
    assert {m.family for m in res.models.values()} == {"nls"} and res.models[1].form == best["form"]


def test_config_validation():
    from pydantic import ValidationError

    assert ModelsConfig().families == ["nls", "rf", "svr", "ann"] and ModelsConfig().select_by == "location"
    with pytest.raises(ValidationError, match="select_from"):
        ModelsConfig(families=["nls"], select_from=["rf"])
    with pytest.raises(ValidationError):
        ModelsConfig(select_by="loo")
    with pytest.raises(ValidationError, match="twice"):
        ModelsConfig(families=["rf", "rf"])


def test_missing_columns_and_candidates():
    tab = _table(n=(20, 20, 20))
    with pytest.raises(KeyError, match="site_id"):
        fit_biomes(tab.drop(columns="site_id"), _cfg(), seed=0, biomes=BIOMES3)
    with pytest.raises(KeyError, match="temperature candidates"):
        fit_biomes(tab, _cfg(temperature=["lst_day"]), seed=0, biomes=BIOMES3)


def test_empty_biome_without_deployable_pooled_model_takes_the_mean_of_all_rows():
    """A biome with no rows whose pooled model has no skill (the Rh example's temperate
    deciduous needleleaf forest) gets the mean of all biomes' rows, not a crash."""
    rng = np.random.default_rng(3)
    tab = _table(n=(30, 30, 0), seed=3)
    tab["rs"] = rng.lognormal(6.0, 0.3, len(tab))           # no relation to any predictor
    res = fit_biomes(tab, _cfg(families=["nls"], moisture=["pr"], productivity=[]), seed=1, biomes=BIOMES3)
    r3 = res.selected.set_index("biome").loc[3]
    assert r3["fallback"].startswith("mean of all biomes' rows (0 < min_observations = 15")
    assert "pooled model" in r3["fallback"] and r3["family"] == "mean"
    assert r3["n"] == 0 and r3["n_fit"] == 60
    m3 = res.models[3]
    pred = m3.predict(pd.DataFrame({"tas": [-3.0, 25.0]}))
    np.testing.assert_allclose(pred, tab["rs"].mean(), rtol=1e-9)
    assert (res.skill[(res.skill.biome == 3) & res.skill.selected]["n"] == 0).all()
