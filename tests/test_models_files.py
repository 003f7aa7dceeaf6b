"""Model file contract: JSON for nonlinear models, skops (allow-listed types) for the rest."""

import json

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from soilresp.errors import InputError
from soilresp.models import BiomeModel, NonlinearRs, load_biome_model, load_biome_models, save_biome_model


def _xy(n=80, seed=0):
    rng = np.random.default_rng(seed)
    T = rng.uniform(0, 25, n)
    y = 300 * np.exp(0.06 * T) * rng.lognormal(0, 0.05, n)
    return T[:, None], y


def test_nls_roundtrip_predicts_identically(tmp_path):
    X, y = _xy()
    m = BiomeModel(3, "nls", ["lst_night"], NonlinearRs("eq1").fit(X, y), {"seed": 1})
    p = save_biome_model(tmp_path, m)
    back = load_biome_model(p)
    Xq = np.array([[5.0], [np.nan], [20.0]])
    np.testing.assert_array_equal(back.predict(Xq), m.predict(Xq))
    assert np.isnan(back.predict(Xq)[1]) and back.form == "eq1" and back.meta["seed"] == 1


def test_skops_roundtrip_and_checksum(tmp_path):
    X, y = _xy()
    rf = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, y)
    save_biome_model(tmp_path, BiomeModel(4, "rf", ["tas"], rf))
    back = load_biome_models(tmp_path, [4])[4]
    np.testing.assert_array_equal(back.predict(X), rf.predict(X))
    (tmp_path / "biome_04.skops").write_bytes((tmp_path / "biome_04.skops").read_bytes()[:-10] + b"0123456789")
    with pytest.raises(InputError, match="biome_04.skops.*checksum"):
        load_biome_model(tmp_path / "biome_04.json")


def test_untrusted_type_refused(tmp_path):
    import hashlib

    import skops.io as sio
    class Evil(RandomForestRegressor):
        pass

    X, y = _xy()
    est = Evil(n_estimators=2, random_state=0).fit(X, y)
    blob = sio.dumps(est)
    (tmp_path / "biome_05.skops").write_bytes(blob)
    doc = {"biome": 5, "family": "rf", "predictors": ["tas"], "estimator_file": "biome_05.skops",
           "estimator_sha256": hashlib.sha256(blob).hexdigest()}
    (tmp_path / "biome_05.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="biome_05.skops.*allow-list.*Evil"):
        load_biome_model(tmp_path / "biome_05.json")


def test_bad_json_fields_named(tmp_path):
    (tmp_path / "biome_01.json").write_text(json.dumps({"biome": 1, "family": "nls", "predictors": ["tas"],
                                                        "form": "eq9", "params": [1, 2]}))
    with pytest.raises(InputError, match="biome_01.json.*form.*eq9"):
        load_biome_model(tmp_path / "biome_01.json")
    (tmp_path / "biome_01.json").write_text(json.dumps({"biome": 1, "family": "pickle", "predictors": ["tas"]}))
    with pytest.raises(InputError, match="family.*pickle"):
        load_biome_model(tmp_path / "biome_01.json")


def test_anchored_fit_of_a_warm_biome_loads(tmp_path):
    """A concave Eq 2 anchored at 27 degC: b = s - 2 c r = 2.65 with c = -0.047 (Q10 3.1 at the
    anchor). The paper-form b lies far outside [-1, 1]; the loader refused it and the demo
    stopped at the product stage."""
    (tmp_path / "biome_07.json").write_text(json.dumps({"biome": 7, "family": "nls", "predictors": ["tas"],
                                                        "form": "eq2", "params": [2.0e-13, 2.65, -0.047]}))
    m = load_biome_model(tmp_path / "biome_07.json")
    y = m.predict(np.array([[24.0], [27.0], [30.0]]))
    assert np.all((y > 100) & (y < 5000))


@pytest.mark.parametrize("params, name", [([1e300, 0.05], "a"), ([300.0, 1e300], "b"), ([-5.0, 0.05], "a"),
                                          ([300.0, 0.05, 7.0], None)])
def test_implausible_nls_parameters_refused(tmp_path, params, name):
    """Issue 17: parameters of 1e300 gave an exit 0 and absurd totals."""
    form = "eq1" if len(params) == 2 else "eq2"
    (tmp_path / "biome_01.json").write_text(json.dumps({"biome": 1, "family": "nls", "predictors": ["tas"],
                                                        "form": form, "params": params}))
    with pytest.raises(InputError, match="biome_01.json.*'params'.*outside the plausible range") as e:
        load_biome_model(tmp_path / "biome_01.json")
    if name:
        assert f"parameter {name} =" in str(e.value)


def test_loaded_model_trained_on_absurd_rs_is_an_error(tmp_path):
    X, y = _xy()
    rf = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, y * 1e4)  # Rs of ~3e6
    save_biome_model(tmp_path, BiomeModel(4, "rf", ["tas"], rf))
    with pytest.raises(InputError, match="biome_04.skops.*trained on Rs up to"):
        load_biome_model(tmp_path / "biome_04.json")
    m = BiomeModel(4, "rf", ["tas"], rf, source=tmp_path / "biome_04.skops")   # the predict-time net
    with pytest.raises(InputError, match="biome_04.skops.*biome 4 model predicts Rs"):
        m.predict(X)
    fresh = BiomeModel(4, "rf", ["tas"], rf)  # in-memory refits are not file inputs
    assert np.isfinite(fresh.predict(X)).all()
