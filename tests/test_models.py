import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from soilresp.models import FORMS, FitError, NonlinearRs, eq5_scores, predict_form, select_biome

TRUE = {"eq1": [300.0, 0.07], "eq2": [250.0, 0.08, -0.001],
        "eq3": [200.0, 0.07, -0.001, 2.5, -3.0], "eq4": [180.0, 0.06, -0.0008, 2.0, -2.5, 0.12]}


def _data(form, n=400, seed=0, noise=0.05):
    rng = np.random.default_rng(seed)
    T, M, P = rng.uniform(-5, 28, n), rng.uniform(0.05, 0.95, n), rng.uniform(100, 3000, n)
    X = np.column_stack([T, M, P])[:, : {"eq1": 1, "eq2": 1, "eq3": 2, "eq4": 3}[form]]
    y = predict_form(form, TRUE[form], T, M, P) * np.exp(rng.normal(0, noise, n))
    return X, y


@pytest.mark.parametrize("form", sorted(FORMS))
def test_recovers_known_parameters(form):
    X, y = _data(form)
    m = NonlinearRs(form).fit(X, y)
    np.testing.assert_allclose(m.params_, TRUE[form], rtol=0.25, atol=2e-4)
    # and the fitted function itself, within 5 % over the data range (edges included)
    np.testing.assert_allclose(m.predict(X), predict_form(form, TRUE[form], *X.T), rtol=0.05)
    assert m.stderr_.shape == (len(FORMS[form]),) and np.all(np.isfinite(m.stderr_))
    assert m.score(X, y) > 0.9
    if form == "eq1":
        assert m.q10_ == pytest.approx(np.exp(10 * 0.07), rel=0.05)


def test_sklearn_contract_and_errors():
    m = NonlinearRs("eq3")
    assert clone(m).get_params() == {"form": "eq3", "max_nfev": 2000, "t_response": "concave",
                                     "q10_range": (1.0, 6.0)}
    with pytest.raises(ValueError, match="needs 2 input"):
        m.fit(np.ones((10, 1)), np.ones(10))
    with pytest.raises(ValueError, match="form must be"):
        NonlinearRs("eq9").fit(np.ones((10, 1)), np.ones(10))
    with pytest.raises(FitError, match="usable observations"):
        NonlinearRs("eq2").fit(np.ones((3, 1)), np.ones(3))


def test_convex_fit_is_constrained_and_flagged():
    """Data whose log is convex in T (Rs rising as T falls below 0): the default concave
    response cannot follow it (c <= 0), the fit says why, and Rs stays bounded in the cold."""
    rng = np.random.default_rng(3)
    T = rng.uniform(-10, 25, 300)
    y = 400 * np.exp(-0.05 * T + 0.004 * T * T) * np.exp(rng.normal(0, 0.05, T.size))
    free = NonlinearRs("eq2", t_response="free").fit(T[:, None], y)
    assert free.params_[2] > 0.003                       # the unconstrained fit is convex
    m = NonlinearRs("eq2").fit(T[:, None], y)
    assert m.params_[2] <= 0 and (m.at_bound_ or m.shape_bound_ == ["c"])
    assert "c (T^2 term)" in m.bound_reason_ or "Q10" in m.bound_reason_
    cold = np.array([[-40.0]])
    assert m.predict(cold)[0] <= m.predict(np.array([[T.min()]]))[0] * 1.0001
    assert free.predict(cold)[0] > 10 * free.predict(np.array([[T.min()]]))[0]


def test_q10_bound_and_effective_q10():
    from soilresp.models.nonlinear import effective_q10

    rng = np.random.default_rng(4)
    T = rng.uniform(0, 25, 200)
    y = 100 * np.exp(0.25 * T) * np.exp(rng.normal(0, 0.03, T.size))   # Q10 = 12 > 6
    m = NonlinearRs("eq1").fit(T[:, None], y)
    assert m.q10_ == pytest.approx(6.0, rel=1e-4) and m.at_bound_ and "Q10" in m.bound_reason_
    # monotone: the bound holds at the warmest T, so Q10 >= 1 over the whole range
    X, y2 = _data("eq2")
    mono = NonlinearRs("eq2", t_response="monotone").fit(X, y2)
    q = effective_q10("eq2", mono.params_, np.linspace(X.min(), X.max(), 50))
    assert np.all(q >= 1 - 1e-6)
    # Eq 2: Q10(T) = exp(10 (b + 2 c T)), checked against a numerical derivative of ln Rs
    m2 = NonlinearRs("eq2").fit(X, y2)
    t0 = m2.x_ref_[0]
    h = 1e-4
    num = np.exp(10 * (np.log(m2.predict([[t0 + h]])) - np.log(m2.predict([[t0 - h]])))[0] / (2 * h))
    assert m2.q10_ == pytest.approx(num, rel=1e-5)
    assert m2.q10_ != pytest.approx(np.exp(10 * m2.params_[1]), rel=1e-3)
    # Eq 4: the P term dilutes the sensitivity
    X4, y4 = _data("eq4")
    m4 = NonlinearRs("eq4").fit(X4, y4)
    x = m4.x_ref_
    num4 = np.exp(10 * (np.log(m4.predict([[x[0] + h, x[1], x[2]]])) -
                        np.log(m4.predict([[x[0] - h, x[1], x[2]]])))[0] / (2 * h))
    assert m4.q10_ == pytest.approx(num4, rel=1e-5)


def test_eq5_metric():
    eps = eq5_scores([100, 200], [0.5, 0.25], [50, 100])
    np.testing.assert_allclose(eps, [0.25 + 0.25 + 0.25, 0.125 + 0.125 + 0.5])
    assert np.all(np.isfinite(eq5_scores([100, np.nan], [-0.2, np.nan], [10, 10])))


def test_stepwise_selection_picks_true_predictors():
    rng = np.random.default_rng(5)
    n = 300
    df = pd.DataFrame({
        "t_true": rng.uniform(-5, 28, n), "m_true": rng.uniform(0.1, 0.45, n), "p_true": rng.uniform(100, 3000, n),
        "site_id": np.repeat(np.arange(100), 3),
    })
    df["t_noise"] = df["t_true"] + rng.normal(0, 8, n)
    df["m_noise"] = rng.uniform(0.1, 0.45, n)
    df["p_noise"] = rng.uniform(100, 3000, n)
    df["rs"] = predict_form("eq4", TRUE["eq4"], df.t_true, df.m_true, df.p_true) * np.exp(rng.normal(0, 0.05, n))
    sel = select_biome(df, 1, temperature=["t_noise", "t_true"], moisture=["m_noise", "m_true"],
                       productivity=["p_noise", "p_true"], folds=5, seed=0)
    assert sel.predictors == {"T": "t_true", "M": "m_true", "P": "p_true"}
    assert sel.form == "eq4"
    best = next(s for s in sel.skill if s["selected"])
    assert best["cv_r2"] > 0.9 and best["site_cv_r2"] > 0.9
    assert {r["step"] for r in sel.steps} == {"temperature", "moisture", "productivity"}


def test_eq5_picks_true_seasonal_version_and_stops_without_moisture():
    from soilresp.models import candidate_columns, stepwise_predictors
    from soilresp.models.selection import nls_forms

    rng = np.random.default_rng(8)
    n = 240
    df = pd.DataFrame({"tas": rng.uniform(-5, 28, n), "site_id": np.arange(n)})
    df["tas_mam"] = df["tas"] + rng.normal(0, 4, n)
    df["tas_jja"] = df["tas"] + rng.normal(0, 4, n)        # the truth is the summer value
    df["sm_jja"] = rng.uniform(0.1, 0.45, n)
    df["sm"] = df["sm_jja"] + rng.normal(0, 0.08, n)
    df.loc[:9, "sm_jja"] = np.nan                           # fewer rows: n/n_max term of Eq 5
    df["rs"] = predict_form("eq3", TRUE["eq3"], df.tas_jja, df.sm_jja.fillna(0.3)) * np.exp(rng.normal(0, .05, n))
    cand = {"temperature": candidate_columns(["tas"], df.columns), "moisture": candidate_columns(["sm"], df.columns),
            "productivity": candidate_columns(["gpp"], df.columns)}
    assert cand == {"temperature": ["tas", "tas_mam", "tas_jja"], "moisture": ["sm", "sm_jja"], "productivity": []}
    preds, steps = stepwise_predictors(df, **cand)
    assert preds == {"T": "tas_jja", "M": "sm_jja"}
    st = pd.DataFrame(steps)
    assert st.loc[st.chosen, "candidate"].tolist() == ["tas_jja", "sm_jja"]
    # eps recomputed from the step table (Eq 5 on that step's candidates)
    t = st[st.step == "temperature"]
    np.testing.assert_allclose(t["eps"], eq5_scores(t["rmse"], t["r2"], t["n"]))
    assert st.loc[st.candidate == "sm_jja", "n"].item() == n - 10
    assert set(nls_forms(preds)) == {"eq1", "eq2", "eq3"}
    # no moisture candidate at all: T only, Eq 1 and Eq 2
    preds2, _ = stepwise_predictors(df, temperature=cand["temperature"], moisture=[], productivity=["gpp"])
    assert preds2 == {"T": "tas_jja"} and set(nls_forms(preds2)) == {"eq1", "eq2"}
    with pytest.raises(FitError, match="temperature candidates"):
        stepwise_predictors(df, temperature=["nope"], moisture=[], productivity=[])


def test_q10_of_one_is_a_shape_bound_not_a_degenerate_fit():
    """Rs falling with T across sites (a confounded narrow tropical range): the sign
    constraint holds Q10 at 1 at the anchor, the temperature term drops out, and the fit
    stays eligible; a lower Q10 limit above 1 is a plausibility limit, so there it is not."""
    rng = np.random.default_rng(1)
    T, M = rng.uniform(27, 33, 150), rng.uniform(0.3, 1.0, 150)
    y = 300 * M * np.exp(-0.04 * (T - 30)) * np.exp(rng.normal(0, 0.1, T.size))
    for form, X in (("eq1", T[:, None]), ("eq3", np.c_[T, M])):
        m = NonlinearRs(form).fit(X, y)
        assert not m.at_bound_ and m.q10_ == pytest.approx(1.0, abs=1e-6)
        assert "Q10 held at 1" in m.bound_reason_
        # b is held in covariance draws only when the whole T term is 0
        assert ("b" in m.shape_bound_) == (form == "eq1" or "c" in m.shape_bound_)
        hi = NonlinearRs(form, q10_range=(1.5, 6.0)).fit(X, y)
        assert hi.at_bound_ and "Q10 at the anchor temperature at its lower bound" in hi.bound_reason_
    free = NonlinearRs("eq1", t_response="free").fit(T[:, None], y)
    assert free.params_[1] < 0 and not free.shape_bound_
    # flat below 29 degC, falling above: the concave fit is a hump pinned at the median T
    # (Rs falls above it), a forced optimum, so refused; anchored at the warmest T
    # (monotone) Q10 = 1 there with c <= 0 never lets Rs fall, so it is a valid nested fit
    y2 = 500 * np.exp(-0.3 * np.clip(T - 29, 0, None)) * np.exp(rng.normal(0, 0.05, T.size))
    hump = NonlinearRs("eq2").fit(T[:, None], y2)
    assert hump.q10_ == pytest.approx(1.0, abs=1e-6) and hump.params_[2] < -1e-3
    assert hump.at_bound_ and "Q10 at the anchor temperature at its lower bound" in hump.bound_reason_
    mono = NonlinearRs("eq2", t_response="monotone").fit(T[:, None], y2)
    assert not mono.at_bound_ and "Q10 held at 1" in mono.bound_reason_


def test_t2_term_on_its_box_limit_is_dropped_and_refitted():
    """A hump a few degC wide drives c to its box limit (-0.05): the T^2 term is not
    identified, so the fit drops it (c = 0) and refits; the result is eligible, says why,
    equals the fit with c held at 0, and survives the model file."""
    from soilresp.models.base import nls_from_dict

    rng = np.random.default_rng(2)
    T, M, P = rng.uniform(28, 33, 150), rng.uniform(0.3, 1, 150), rng.uniform(1500, 3000, 150)
    y = (300 * M + 0.12 * P) * np.exp(-0.2 * (T - 30.5) ** 2) * np.exp(rng.normal(0, 0.1, T.size))
    for form, X in (("eq2", T[:, None]), ("eq4", np.c_[T, M, P])):
        m = NonlinearRs(form).fit(X, y)
        assert m.t2_dropped_ and not m.at_bound_ and abs(m.params_[2]) < 1e-9
        assert "refitted without it" in m.bound_reason_ and "c" in m.shape_bound_
        free = NonlinearRs(form, t_response="free").fit(X, y)   # the box limit binds there too
        assert free.t2_dropped_
        back = nls_from_dict(m.to_dict())
        assert back.t2_dropped_ and np.allclose(back.predict(X), m.predict(X))
    # without the hump, the T^2 term is kept
    y2 = 300 * M * np.exp(0.05 * T - 0.004 * T * T) * np.exp(rng.normal(0, 0.05, T.size))
    assert not NonlinearRs("eq3").fit(np.c_[T, M], y2).t2_dropped_


def test_covariance_matches_curve_fit_and_excludes_held_parameters():
    """cov_ is s^2 (J'J)^-1 with s^2 = RSS / (n - free parameters), as scipy's curve_fit
    reports it for an interior optimum; a parameter held by a sign constraint (c = 0 of a
    convex truth, or c dropped at its box limit) adds no variance and no degree of freedom, so
    the held Eq 2 has exactly the covariance of the nested Eq 1 fit."""
    from scipy.optimize import curve_fit

    for seed in range(5):
        rng = np.random.default_rng(seed)
        T = rng.uniform(-5, 25, 60 + 20 * seed)
        y = 200 * np.exp(0.06 * T + 0.0015 * T * T) * np.exp(rng.normal(0, 0.15, T.size))  # convex
        e1 = NonlinearRs("eq1").fit(T[:, None], y)
        assert not e1.at_bound_
        popt, pcov = curve_fit(lambda t, a, b: a * np.exp(b * t), T, y, p0=e1.params_)
        np.testing.assert_allclose(e1.params_, popt, rtol=1e-5)
        np.testing.assert_allclose(e1.cov_, pcov, rtol=1e-3, atol=1e-12)
        e2 = NonlinearRs("eq2").fit(T[:, None], y)
        assert e2.shape_bound_ == ["c"] and not e2.at_bound_
        np.testing.assert_allclose(e2.params_[:2], e1.params_, rtol=1e-5)
        np.testing.assert_allclose(e2.cov_[:2, :2], e1.cov_, rtol=1e-3)
        assert e2.stderr_[2] == 0 and np.all(e2.cov_[2] == 0)
    # c dropped at its box limit: se(b) is that of the refit without the T^2 term
    rng = np.random.default_rng(2)
    T = rng.uniform(28, 33, 150)
    y = 300 * np.exp(-0.2 * (T - 30.5) ** 2) * np.exp(rng.normal(0, 0.1, T.size))
    m = NonlinearRs("eq2").fit(T[:, None], y)
    assert m.t2_dropped_ and m.stderr_[2] == 0
    one = NonlinearRs("eq1", q10_range=(1e-3, 6.0)).fit(T[:, None], y)   # same nested fit, b free
    np.testing.assert_allclose(m.stderr_[:2], one.stderr_, rtol=0.05)


def test_monotone_fit_with_q10_held_has_the_reduced_models_covariance_and_is_identified():
    """``monotone`` with the response falling at the warmest T: Q10 is held at 1 there and c
    stays free, so b = -2 c r is a function of c (``dependent_``). The covariance of (a, c)
    is that of the reduced model a' exp(c (T - r)^2) fitted by curve_fit, and the covariance
    draws do not call the fit singular for the exact b-c correlation."""
    from scipy.optimize import curve_fit

    from soilresp.models.base import nls_from_dict
    from soilresp.product.uncertainty import covariance_spec

    rng = np.random.default_rng(4)
    T = rng.uniform(5, 30, 200)
    y = 400 * np.exp(-0.004 * (T - 20) ** 2) * np.exp(rng.normal(0, 0.1, T.size))
    m = NonlinearRs("eq2", t_response="monotone").fit(T[:, None], y)
    assert not m.at_bound_ and m.dependent_ == ["b"] and "b" not in m.shape_bound_
    r = T.max()
    (a1, c1), pcov = curve_fit(lambda t, a, c: a * np.exp(c * (t - r) ** 2), T, y, p0=[y.max(), -0.004])
    assert m.params_[2] == pytest.approx(c1, rel=1e-4)
    assert m.stderr_[2] == pytest.approx(np.sqrt(pcov[1, 1]), rel=1e-2)
    np.testing.assert_allclose(m.params_[1], -2 * m.params_[2] * r, rtol=1e-6)
    sp = covariance_spec(1, "eq2", m.params_, m.cov_, m.shape_bound_, m.dependent_)
    assert not sp.singular and sp.identified
    assert covariance_spec(1, "eq2", m.params_, m.cov_, m.shape_bound_).singular   # b-c counted
    assert nls_from_dict(m.to_dict()).dependent_ == ["b"]
