"""The Monte Carlo modes of issue 16: covariance draws, location-group site bootstrap,
structural spread, median/percentile summaries (docs/product.md, "Monte Carlo modes")."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from soilresp.models import BiomeModel, NonlinearRs
from soilresp.product.uncertainty import (MCSettings, bootstrap_refit, covariance_spec, covariance_specs,
                                          monte_carlo_totals, normalise_modes, reselect_candidates,
                                          reselect_refit, reselect_table, structural_candidates,
                                          summarise_mc, training_rows)
from test_product import _models, _world


def test_covariance_draws_reproduce_a_known_covariance():
    p = np.array([150.0, 0.06, -0.001])
    sd = np.array([15.0, 0.004, 0.0002])
    corr = np.array([[1.0, -0.6, 0.3], [-0.6, 1.0, -0.5], [0.3, -0.5, 1.0]])
    cov = corr * np.outer(sd, sd)
    spec = covariance_spec(1, "eq2", p, cov)
    assert spec.usable and not spec.singular and spec.identified
    assert spec.log.tolist() == [True, False, False]         # a > 0 by its bound: log scale
    rng = np.random.default_rng(0)
    d = np.array([spec.draw(rng) for _ in range(40000)])
    t = d.copy()
    t[:, 0] = np.log(d[:, 0])
    # delta-method covariance on the drawn scale: cov(log a, x) = cov(a, x) / a
    D = np.diag([1 / p[0], 1.0, 1.0])
    want = D @ cov @ D
    got = np.cov(t, rowvar=False)
    np.testing.assert_allclose(got, want, rtol=0.05, atol=1e-3 * np.sqrt(np.outer(np.diag(want), np.diag(want))).max())
    np.testing.assert_allclose(np.corrcoef(t, rowvar=False), corr, atol=0.02)
    np.testing.assert_allclose(np.median(d, axis=0), p, rtol=0.01, atol=2e-5)
    assert (d[:, 0] > 0).all()


def test_covariance_singular_and_unidentified_fits_are_reported():
    p = np.array([150.0, 0.06])
    cov = np.array([[25.0, 0.01], [0.01, 0.01 ** 2 / 25.0]])   # correlation 1
    spec = covariance_spec(6, "eq1", p, cov)
    assert spec.singular and not spec.identified and spec.max_abs_corr > 0.999
    nan = covariance_spec(6, "eq1", p, np.full((2, 2), np.nan))
    assert not nan.usable
    cube, bio, tr = _world()
    models = _models(tr, ("nls", "nls", "nls"))
    models[1].estimator.cov_ = np.full((3, 3), np.nan)
    with pytest.warns(UserWarning, match="biome 1: the fit's covariance is not finite"):
        specs = covariance_specs(models)
    assert not specs[1].usable and specs[2].usable
    # the unusable biome falls back to site-bootstrap refits; the others are MVN draws
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mc = monte_carlo_totals(cube, bio, models, MCSettings(n=6, mode="covariance", seed=1, group_km=0.0),
                                tr.assign(lat=0.0, lon=np.arange(len(tr)) * 0.01), None)
    assert np.isfinite(mc["total"].values).all()


class _Recorder(RegressorMixin, BaseEstimator):
    """Records the rows it was fitted on (first column holds the row id)."""

    def fit(self, X, y):
        self.rows_ = np.asarray(X[:, 0]).astype(int)
        return self

    def predict(self, X):
        return np.zeros(len(X))


def test_site_bootstrap_resamples_location_groups_not_rows():
    n = 60
    # 12 locations, 5 rows each; locations 0-1, 2-3 ... are 5 km apart (one group each
    # at 10 km), pairs 500 km apart
    loc = np.repeat(np.arange(12), 5)
    lat = 40.0 + (loc // 2) * 4.5 + (loc % 2) * 0.045
    tr = pd.DataFrame({"rowid": np.arange(n, dtype=float), "rs": 1.0, "biome": 1,
                       "site_id": [f"s{k}" for k in loc], "lat": lat, "lon": 10.0})
    m = BiomeModel(1, "rf", ["rowid"], _Recorder())
    X, y, g = training_rows(m, tr, group_km=10.0)
    assert len(np.unique(g)) == 6 and all(len(set(g[loc == k])) == 1 for k in range(12))
    rng = np.random.default_rng(3)
    for _ in range(20):
        bm, ok = bootstrap_refit(m, X, y, g, rng, "site")
        rows = bm.estimator.rows_
        assert ok and rows.size % 10 == 0 and rows.size >= 10
        counts = np.bincount(rows, minlength=n)
        for grp in np.unique(g):
            c = counts[g == grp]
            assert (c == c[0]).all()   # a group's rows come together, each as often as the group
    # row resampling does not keep groups together
    bm, _ = bootstrap_refit(m, X, y, np.arange(n), np.random.default_rng(3), "row")
    c = np.bincount(bm.estimator.rows_, minlength=n)
    assert any(len(set(c[g == grp])) > 1 for grp in np.unique(g))


def test_structural_lists_the_models_it_spans():
    cube, bio, tr = _world()
    models = _models(tr, ("nls", "nls", "nls"))
    rows = []
    for code in (1, 2, 3):
        rows += [dict(biome=code, family="nls", form="eq2", predictors="tas", site_cv_r2=0.80),
                 dict(biome=code, family="nls", form="eq1", predictors="tas", site_cv_r2=0.79),
                 dict(biome=code, family="nls", form="eq3", predictors="tas,sm", site_cv_r2=0.60),
                 dict(biome=code, family="rf", form=None, predictors="tas,sm", site_cv_r2=0.795)]
    skill = pd.DataFrame(rows)
    cands, listing = structural_candidates(models, skill, tr, "site_cv_r2", 0.02)
    for code in (1, 2, 3):
        lst = listing[listing.biome == code]
        assert set(lst["form"].fillna("")) == {"eq2", "eq1", ""}        # eq3 is 0.2 below the best
        assert lst.loc[lst.selected, "form"].tolist() == ["eq2"]
        assert not lst.loc[lst.family == "rf", "used"].any()            # listed, not used
        assert [c.form for c in cands[code]] == ["eq2", "eq1"]
    mc = monte_carlo_totals(cube, bio, models, MCSettings(n=8, mode="structural", seed=2), tr, None,
                            extra={"candidates": cands})
    g = mc["total"].sel(region="global").values
    assert len(np.unique(np.round(g[:, 0], 6))) > 1                   # realisations differ by model
    with pytest.raises(KeyError, match="no column 'loc_cv_r2'"):
        structural_candidates(models, skill, tr, "loc_cv_r2", 0.02)


def test_summaries_median_interval_and_mean_as_diagnostic():
    import xarray as xr

    v = np.exp(np.random.default_rng(0).normal(0, 0.3, (400, 1, 2)))
    mc = xr.DataArray(v, dims=("realisation", "region", "year"),
                      coords={"realisation": np.arange(400), "region": ["global"], "year": [2000, 2001]})
    central = xr.DataArray(np.ones((1, 2)), dims=("region", "year"), coords={"region": ["global"], "year": [2000, 2001]})
    s = summarise_mc(mc, central)
    np.testing.assert_allclose(s["mc_median"], np.median(v[:, 0], axis=0))
    np.testing.assert_allclose(s["mc_lo"], np.quantile(v[:, 0], 0.025, axis=0))
    np.testing.assert_allclose(s["central_minus_mean"], 1 - v[:, 0].mean(axis=0))
    assert (s["central_minus_mean"] < 0).all()                          # Jensen: lognormal mean > median
    np.testing.assert_allclose(s["median_vs_central_pct"], 100 * (np.median(v[:, 0], axis=0) - 1))


def test_modes_config():
    from soilresp.config import config_from_dict

    assert normalise_modes("parameters") == ["paper"]
    assert normalise_modes(["paper", "structural", "paper"]) == ["paper", "structural"]
    c = config_from_dict({"product": {"mc_mode": ["covariance", "site-bootstrap"]}})
    assert c.product.mc_mode == ["covariance", "site-bootstrap"]
    with pytest.raises(Exception, match="mc mode must be one of"):
        config_from_dict({"product": {"mc_mode": "jackknife"}})
    s = MCSettings.from_config(c.product, 1, resolution=0.5)
    assert s.mode == "covariance" and s.group_km == pytest.approx(55.66)


def test_realisations_clamp_predictors_as_the_deployed_model():
    """A realisation follows the central model's deployment rule: predictors clamped to the
    training range (no exp() blow-up of a drawn or refitted Eq 2 beyond the sites' T)."""
    from soilresp.product.uncertainty import PerturbedNLS, clamp_ranges, realisation_models

    rng = np.random.default_rng(0)
    n = 80
    t = rng.uniform(0, 15, n)
    tr = pd.DataFrame({"tas": t, "rs": 300 * np.exp(0.07 * t) * rng.lognormal(0, 0.1, n), "biome": 1,
                       "site_id": [f"s{k}" for k in range(n)], "lat": rng.uniform(40, 50, n), "lon": rng.uniform(0, 10, n)})
    est = NonlinearRs("eq1").fit(tr[["tas"]].to_numpy(), tr["rs"].to_numpy())
    meta = {"predictor_range": "clamp", "training_range": {"tas": [float(t.min()), float(t.max())]}}
    m = BiomeModel(1, "nls", ["tas"], est, meta)
    lo, hi = clamp_ranges(m, ["tas"])
    assert lo[0] == t.min() and hi[0] == t.max()
    assert clamp_ranges(BiomeModel(1, "nls", ["tas"], est, dict(meta, predictor_range="allow")), ["tas"]) is None
    hot = np.array([[t.max()], [t.max() + 20.0], [np.nan]])
    for mode in ("paper", "site-bootstrap"):
        s = MCSettings(n=3, mode=mode, seed=2, group_km=1.0)
        for r in range(3):
            ms, _ = realisation_models({1: m}, r, s, tr, None)
            p = ms[1].predict(hot)
            assert p[0] == pytest.approx(p[1]) and np.isnan(p[2]), (mode, p)
    free = PerturbedNLS(1, "eq1", est.params_, ["tas"])
    assert free.predict(hot)[1] > free.predict(hot)[0]


def test_covariance_draws_hold_shape_bound_parameters_at_zero():
    """A concave fit with e held at 0 by its shape constraint: draws keep e = 0 and the other
    parameters follow their covariance conditional on it (Schur complement)."""
    p = np.array([150.0, 0.06, -0.001, 0.5, 0.0])
    sd = np.array([15.0, 0.004, 0.0002, 0.05, 0.01])
    corr = np.eye(5)
    corr[3, 4] = corr[4, 3] = 0.8
    cov = corr * np.outer(sd, sd)
    spec = covariance_spec(1, "eq3", p, cov, fixed=("e",))
    assert spec.usable and not spec.singular and spec.identified
    d = np.array([spec.draw(np.random.default_rng(i)) for i in range(4000)])
    assert (d[:, 4] == 0).all()
    assert np.std(d[:, 3]) == pytest.approx(0.05 * np.sqrt(1 - 0.8 ** 2), rel=0.06)


def test_shape_constraint_at_zero_is_not_a_degenerate_fit():
    """Data linear in M in the log: the concave fit holds e at 0 (the M^2 term drops out);
    that fit stays eligible (at_bound_ False), says so, and the flag survives the model file."""
    from soilresp.models.base import nls_from_dict

    rng = np.random.default_rng(5)
    T, M = rng.uniform(0, 25, 300), rng.uniform(0, 1, 300)
    y = 100 * np.exp(0.07 * T - 0.001 * T * T) * np.exp(0.8 * M + 0.6 * M * M) * rng.lognormal(0, 0.05, 300)
    m = NonlinearRs("eq3").fit(np.c_[T, M], y)
    assert m.params_[4] == pytest.approx(0.0, abs=1e-5) and not m.at_bound_
    assert m.shape_bound_ == ["e"] and "held at 0" in m.bound_reason_
    back = nls_from_dict(m.to_dict())
    assert back.shape_bound_ == ["e"] and not back.at_bound_


def test_bootstrap_of_a_biome_mean_stays_the_biome_mean():
    """A biome-mean fallback (Eq 1 with b = 0) is bootstrapped as a mean of its own biome's
    resampled rows: not a free Eq 1 refit, and not the pooled rows of all biomes."""
    from soilresp.models.nonlinear import constant_model
    from soilresp.models.base import fallback_kind

    rng = np.random.default_rng(1)
    n = 40
    tr = pd.DataFrame({"tas": np.r_[rng.uniform(0, 20, n), rng.uniform(0, 20, n)],
                       "rs": np.r_[rng.normal(300, 30, n), rng.normal(1500, 30, n)],
                       "biome": np.r_[np.full(n, 2), np.full(n, 7)],
                       "site_id": [f"s{k}" for k in range(2 * n)]})
    tr["rs"] = tr["rs"] * np.exp(0.05 * tr["tas"]) / np.exp(0.05 * 10)  # a T signal a free Eq 1 would fit
    tr.loc[0, "tas"] = np.nan  # a mean model keeps rows whose predictor is missing
    own = tr[tr.biome == 2]
    m = BiomeModel(2, "nls", ["tas"], constant_model(own["rs"], own["tas"]),
                   {"fallback": "biome mean (best candidate nls eq1 has location CV R2 -0.1 <= 0; ...)"})
    assert fallback_kind(m) == "mean"
    X, y, g = training_rows(m, tr)
    assert len(y) == n
    r = np.random.default_rng(4)
    draws = []
    for _ in range(200):
        bm, ok = bootstrap_refit(m, X, y, g, r, "site")
        assert ok and bm.params[1] == 0.0
        draws.append(bm.params[0])
    assert np.mean(draws) == pytest.approx(own["rs"].mean(), rel=0.02)
    assert np.std(draws) == pytest.approx(own["rs"].std() / np.sqrt(n), rel=0.25)
    pooled = BiomeModel(2, "nls", ["tas"], constant_model(tr["rs"], tr["tas"]),
                        {"fallback": "mean of all biomes' rows (0 < 15; ...; no rows of its own)"})
    assert fallback_kind(pooled) == "all-mean" and len(training_rows(pooled, tr)[1]) == 2 * n


class _Const(RegressorMixin, BaseEstimator):
    """Records its fit rows (first column: row id) and predicts ``level`` times their mean Rs."""

    def __init__(self, level=1.0):
        self.level = level

    def fit(self, X, y):
        self.rows_ = np.asarray(X[:, 0]).astype(int)
        self.mean_ = float(np.mean(y)) * self.level
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


def test_selection_bootstrap_refits_each_candidate_on_the_drawn_groups_and_keeps_the_best_out_of_bag():
    """Independent re-computation of one draw: the rows fitted are whole location groups, the
    same for every candidate; the out-of-bag rows are those of the groups not drawn; the
    model returned has the lowest out-of-bag mean squared error."""
    rng0 = np.random.default_rng(0)
    loc = np.repeat(np.arange(15), 4)
    n = loc.size
    tr = pd.DataFrame({"rowid": np.arange(n, dtype=float), "rowid2": np.arange(n, dtype=float),
                       "rs": rng0.lognormal(6, 0.5, n), "biome": 1, "lat": 30.0 + loc * 3.0, "lon": 5.0})
    pool = [BiomeModel(1, "rf", ["rowid"], _Const(1.0)), BiomeModel(1, "rf", ["rowid2"], _Const(0.97)),
            BiomeModel(1, "rf", ["rowid", "rowid2"], _Const(1.2))]
    table, y, g = reselect_table(pool, tr, 50.0)
    assert len(np.unique(g)) == 15
    picked, repeated = [], 0
    for seed in range(40):
        bm, ok = reselect_refit(pool, table, y, g, np.random.default_rng(seed))
        assert ok
        rows = bm.estimator.rows_
        counts = np.bincount(rows, minlength=n)
        for grp in range(15):
            assert len(set(counts[g == grp])) == 1          # a group comes whole
        repeated += counts.max() > 1          # drawn twice: its rows twice
        oob = counts == 0
        mse = [np.mean((y[rows].mean() * lv - y[oob]) ** 2) for lv in (1.0, 0.97, 1.2)]
        assert bm.estimator.level == (1.0, 0.97, 1.2)[int(np.argmin(mse))]
        picked.append(bm.estimator.level)
    assert len(set(picked)) >= 2 and repeated > 30   # the choice varies; groups come with multiplicity
    # a candidate whose predictor is missing on some rows: scored on the rows every candidate
    # can predict, never on fewer
    t2 = table.copy()
    t2.loc[t2.index[:8], "rowid2"] = np.nan
    for seed in range(10):
        bm, ok = reselect_refit(pool, t2, y, g, np.random.default_rng(seed))
        counts = np.bincount(bm.estimator.rows_, minlength=n)
        oob = (counts == 0) & np.isfinite(t2["rowid2"].to_numpy())
        if not oob.any():
            continue
        mse = [np.mean((y[bm.estimator.rows_].mean() * lv - y[oob]) ** 2) if lv != 0.97 else np.inf
               for lv in (1.0, 0.97, 1.2)]
        if bm.estimator.level != 0.97:   # the 0.97 candidate fits on other rows; check the others
            assert bm.estimator.level == (1.0, 0.97, 1.2)[int(np.argmin(mse))]


def test_selection_bootstrap_mode_chooses_the_model_the_data_support():
    """On data whose Rs rises with gpp, a selected Eq 2 on T alone loses most realisations to
    the Eq 4 candidate with gpp; the choice counts add up to the realisations; fallback
    biomes keep no pool."""
    cube, bio, tr = _world()
    tr = tr.assign(lat=np.repeat(np.linspace(-30, 30, 120), 2), lon=0.0)
    models = _models(tr, ("nls", "nls", "nls"))
    rows = []
    for code in (1, 2, 3):
        rows += [dict(biome=code, family="nls", form="eq2", predictors="tas", loc_cv_r2=0.5),
                 dict(biome=code, family="nls", form="eq4", predictors="tas,sm,gpp", loc_cv_r2=0.45),
                 dict(biome=code, family="mean", form=None, predictors="", loc_cv_r2=0.0)]
    models[3].meta["fallback"] = "biome mean (test)"
    pools, listing = reselect_candidates(models, pd.DataFrame(rows), tr)
    assert sorted(pools) == [1, 2] and [c.form for c in pools[1]] == ["eq2", "eq4"]
    assert not listing.loc[listing.family == "mean", "used"].any()
    s = MCSettings(n=30, mode="selection-bootstrap", seed=1, group_km=100.0)
    mc = monte_carlo_totals(cube, bio, models, s, tr, None, extra={"reselect": pools})
    ch = pd.DataFrame(mc.attrs["chosen"])
    assert (ch.groupby("biome")["n_chosen"].sum() == 30).all()
    for code in (1, 2):
        c = ch[ch.biome == code].set_index("form")["n_chosen"]
        assert c.get("eq4", 0) > c.get("eq2", 0), c
    g = mc["total"].sel(region="global").values
    assert np.unique(np.round(g[:, 0], 6)).size > 10
    assert normalise_modes("selection-bootstrap") == ["selection-bootstrap"]
    # [models] select_from without nls: only the selected model, nothing to re-select
    only, _ = reselect_candidates(models, pd.DataFrame(rows), tr, families=["rf"])
    assert all(len(v) == 1 for v in only.values())
    with pytest.raises(ValueError, match="candidate pools"):
        monte_carlo_totals(cube, bio, models, s, tr, None)


def test_selection_bootstrap_does_not_count_a_kept_model_as_chosen():
    """A biome none of whose candidates can refit (its training rows lack the predictor)
    keeps its deployed model in every realisation: each is a failed refit, none a choice."""
    cube, bio, tr = _world()
    tr = tr.assign(lat=np.repeat(np.linspace(-30, 30, 120), 2), lon=0.0)
    models = _models(tr, ("nls", "nls", "nls"))
    rows = [dict(biome=c, family="nls", form=f, predictors=p, loc_cv_r2=0.5)
            for c in (1, 2, 3) for f, p in (("eq2", "tas"), ("eq4", "tas,sm,gpp"))]
    pools, _ = reselect_candidates(models, pd.DataFrame(rows), tr)
    tr.loc[tr.biome == 2, "tas"] = np.nan
    s = MCSettings(n=8, mode="selection-bootstrap", seed=3, group_km=100.0)
    mc = monte_carlo_totals(cube, bio, models, s, tr, None, extra={"reselect": pools})
    n = pd.DataFrame(mc.attrs["chosen"]).groupby("biome")["n_chosen"].sum()
    assert n.get(2, 0) == 0 and n[1] == 8 and n[3] == 8
    assert mc.attrs["unrefitted"] == {2: 8} and mc.attrs["failed_refits"] == 8


def test_structural_candidates_of_a_fallback_biome_are_fitted_on_its_own_rows():
    """A biome deployed with the pooled model: its own Eq 1-4 candidates are refitted on the
    biome's rows, not on the pooled rows the deployed model reads."""
    cube, bio, tr = _world()
    models = _models(tr, ("nls", "nls", "nls"))
    models[2].meta.update(fallback="pooled model of all biomes (test)", fallback_kind="pooled")
    skill = pd.DataFrame([dict(biome=c, family="nls", form=f, predictors="tas", site_cv_r2=0.5)
                          for c in (1, 2, 3) for f in ("eq2", "eq1")])
    cands, listing = structural_candidates(models, skill, tr, "site_cv_r2", 0.02)
    own = int((tr.biome == 2).sum())
    assert [c.estimator.n_obs_ for c in cands[2][1:]] == [own]
    assert listing.loc[(listing.biome == 2) & ~listing.selected, "reason"].tolist() == ["refitted on the biome's rows"]


def test_selection_bootstrap_stage_reports_its_choices(small_demo, tmp_path):
    """The uncertainty stage alone with ``mc_mode = "selection-bootstrap"`` on a copy of the
    3-degree demo: its rows in mc_summary, and in mode_diagnostics the candidates of each
    biome deployed with its own fit, with choice shares adding up to 1."""
    import shutil

    from soilresp import io
    from soilresp.config import load_config
    from soilresp.pipeline import Context, run_stage

    out, _ = small_demo
    d = tmp_path / "d"
    shutil.copytree(out, d)
    toml = d / "soilresp.toml"
    toml.write_text(toml.read_text().replace("[product]\n", '[product]\nmc_mode = "selection-bootstrap"\n')
                    .replace("mc_samples = 60", "mc_samples = 12"))
    cfg = load_config(toml)
    assert run_stage(Context(cfg), "uncertainty") == "ran"
    run = cfg.output_dir
    sm = io.read_table(run / "uncertainty" / "mc_summary.parquet")
    assert set(sm["mode"]) == {"selection-bootstrap"} and sm["mc_lo"].notna().all()
    dg = io.read_table(run / "uncertainty" / "mode_diagnostics.parquet")
    sel = dg[dg["kind"] == "selection"]
    assert len(sel) and sel["selected"].any()
    used = sel[sel["used"]]
    # every realisation is either a listed candidate's refit or a failed refit (measured apart)
    per = used.groupby("biome").agg(n=("n_chosen", "sum"), kept=("n_unrefitted", "first"))
    assert ((per["n"] + per["kept"]) == 12).all(), per
    assert (sel.loc[~sel["used"], "n_chosen"] == 0).all()
