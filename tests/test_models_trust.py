"""Model files never run code (issue 17): every route skops offers to name a callable or an
arbitrary class is refused BEFORE anything is built, with an error naming the file and the type;
the planted payload (it would create a marker file) never runs."""

from __future__ import annotations

import hashlib
import io
import json
import warnings
import zipfile

import numpy as np
import pytest

from soilresp.errors import InputError
from soilresp.models import BiomeModel, load_biome_model, save_biome_model
from soilresp.models.base import TRUSTED_NODES, _schema_types
from soilresp.models.ml import ML_FAMILIES, fit_search


def _s(v: str) -> dict:
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(v), "is_json": True}


def _tuple(*items) -> dict:
    return {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": list(items)}


def _reduce(module: str, name: str, *args) -> dict:
    """skops' constructor-from-reduce node: ``module.name(*args)`` at load time."""
    return {"__class__": name, "__module__": module, "__loader__": "ConstructorFromReduceNode",
            "content": _tuple(*args)}


def _payloads(marker):
    m = str(marker)
    touch = f"open({m!r}, 'w').write('ran')"
    shell = f"touch {m}"
    fn = lambda mod, name: {"__class__": name, "__module__": mod, "__loader__": "FunctionNode"}  # noqa: E731
    return {
        "reduce_builtins_exec": _reduce("builtins", "exec", _s(touch)),
        "reduce_builtins_eval": _reduce("builtins", "eval", _s(f"__import__('os').system({shell!r})")),
        "reduce_os_system": _reduce("os", "system", _s(shell)),
        "reduce_posix_system": _reduce("posix", "system", _s(shell)),
        "reduce_subprocess": _reduce("subprocess", "getoutput", _s(shell)),
        "reduce_numpy_prefix": _reduce("numpy.testing._private.utils", "runstring", _s(touch), _s("{}")),
        "reduce_scipy_prefix": _reduce("scipy._lib._testutils", "check_free_memory", _s(touch)),
        "function_exec": fn("builtins", "exec"),
        "function_os_system": fn("os", "system"),
        "type_exec": {"__class__": "exec", "__module__": "builtins", "__loader__": "TypeNode"},
        "method_node": {"__class__": "Popen", "__module__": "subprocess", "__loader__": "MethodNode",
                        "content": {"obj": {"__class__": "Popen", "__module__": "subprocess",
                                            "__loader__": "ObjectNode"}, "func": "communicate"}},
        "partial_exec": {"__class__": "partial", "__module__": "functools", "__loader__": "PartialNode",
                         "content": {"func": fn("builtins", "exec"), "args": _tuple(_s(touch)),
                                     "kwds": {"__class__": "dict", "__module__": "builtins",
                                              "__loader__": "DictNode", "content": {}},
                                     "namespace": _s("")}},
        "operator_methodcaller": {"__class__": "methodcaller", "__module__": "operator",
                                  "__loader__": "OperatorFuncNode", "attrs": _tuple(_s("system"), _s(shell))},
        "object_subprocess": {"__class__": "Popen", "__module__": "subprocess", "__loader__": "ObjectNode"},
        "object_collections_prefix": {"__class__": "UserString", "__module__": "collections",
                                      "__loader__": "ObjectNode"},
        "ndarray_as_eval": {"__class__": "eval", "__module__": "builtins", "__loader__": "NdArrayNode",
                            "type": "numpy", "file": "0.npy"},
        "object_array_exec": {"__class__": "ndarray", "__module__": "numpy", "__loader__": "NdArrayNode",
                              "type": "json", "content": [_reduce("builtins", "exec", _s(touch))],
                              "shape": _tuple({"__class__": "int", "__module__": "builtins",
                                               "__loader__": "JsonNode", "content": "1", "is_json": True})},
        "defaultdict_factory": {"__class__": "defaultdict", "__module__": "collections",
                                "__loader__": "DefaultDictNode",
                                "content": {"main": {"__class__": "dict", "__module__": "builtins",
                                                     "__loader__": "DictNode", "content": {}},
                                            "default_factory": fn("os", "system")}},
    }


@pytest.fixture(scope="module")
def rf_blob():
    from sklearn.ensemble import RandomForestRegressor
    import skops.io as sio

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 25, (40, 1))
    return sio.dumps(RandomForestRegressor(n_estimators=2, random_state=0).fit(X, 300 + X[:, 0]))


def _plant(blob: bytes, node: dict | None, extra: dict | None = None) -> bytes:
    """A copy of a legitimate skops file whose ``n_estimators`` attribute is ``node`` (kept
    when ``node`` is None), plus the archive members ``extra``."""
    src = zipfile.ZipFile(io.BytesIO(blob))
    schema = json.loads(src.read("schema.json"))
    if node is not None:
        schema["content"]["content"]["n_estimators"] = node
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for n in src.namelist():
            z.writestr(n, json.dumps(schema) if n == "schema.json" else src.read(n))
        for n, data in (extra or {}).items():
            z.writestr(n, data)
    return out.getvalue()


def _write_pair(d, blob: bytes, biome=5):
    (d / f"biome_{biome:02d}.skops").write_bytes(blob)
    doc = {"biome": biome, "family": "rf", "predictors": ["tas"], "estimator_file": f"biome_{biome:02d}.skops",
           "estimator_sha256": hashlib.sha256(blob).hexdigest()}
    (d / f"biome_{biome:02d}.json").write_text(json.dumps(doc))
    return d / f"biome_{biome:02d}.json"


@pytest.mark.parametrize("route", sorted(_payloads("x")))
def test_payload_refused_and_never_runs(route, rf_blob, tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    node = _payloads(marker)[route]
    jpath = _write_pair(tmp_path, _plant(rf_blob, node))
    with pytest.raises(InputError) as e:
        load_biome_model(jpath)
    msg = str(e.value)
    assert "biome_05.skops" in msg and "allow-list" in msg, msg
    assert f"{node['__module__']}.{node['__class__']}" in msg or "object array" in msg, msg
    assert not marker.exists(), "the planted payload ran"


def test_payload_at_top_level_never_runs(tmp_path):
    """A whole file that is one reduce call (the issue's finding: exit 0 after exec ran)."""
    marker = tmp_path / "PAYLOAD_RAN"
    schema = {**_payloads(marker)["reduce_builtins_exec"], "protocol": 2, "_skops_version": "0.16.0"}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("schema.json", json.dumps(schema))
    jpath = _write_pair(tmp_path, out.getvalue())
    with pytest.raises(InputError, match=r"biome_05\.skops.*builtins\.exec"):
        load_biome_model(jpath)
    assert not marker.exists()


def test_extra_archive_member_refused(rf_blob, tmp_path):
    import pickle

    blob = _plant(rf_blob, json.loads(json.dumps({"__class__": "int", "__module__": "builtins",
                                                   "__loader__": "JsonNode", "content": "2", "is_json": True})),
                  extra={"payload.pkl": pickle.dumps(print)})
    with pytest.raises(InputError, match=r"biome_05\.skops.*payload\.pkl"):
        load_biome_model(_write_pair(tmp_path, blob))


def test_allow_list_is_exact_and_has_no_functions():
    for loader, t in TRUSTED_NODES:
        assert loader not in ("FunctionNode", "MethodNode", "PartialNode", "OperatorFuncNode",
                              "ConstructorFromReduceNode", "ReduceNode"), (loader, t)
        assert not t.endswith("."), t
    assert ("TypeNode", "builtins.str") in TRUSTED_NODES and len(TRUSTED_NODES) < 40


@pytest.mark.parametrize("family", ML_FAMILIES)
def test_every_family_soilresp_writes_loads(family, tmp_path):
    """The allow-list covers what the pipeline serialises: grid-searched fits of each family,
    1 to 3 predictors; predictions round-trip exactly."""
    rng = np.random.default_rng(1)
    for k in (1, 3):
        X = rng.normal(size=(50, k))
        y = 400 + 60 * X.sum(1) + rng.normal(0, 5, 50)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = fit_search(family, X, y, seed=3, inner_folds=2, groups=np.arange(50) % 6).best_estimator_
        p = save_biome_model(tmp_path, BiomeModel(2, family, [f"v{i}" for i in range(k)], est))
        blob = (tmp_path / "biome_02.skops").read_bytes()
        assert all(node in TRUSTED_NODES for node in _schema_types(p, blob))
        back = load_biome_model(p)
        # forests predict through packed trees (models.forest_predict): rf bit-equal, the
        # qrf mean equal to rounding (leaf means summed in another order)
        np.testing.assert_allclose(back.predict(X), est.predict(X), rtol=1e-12, atol=0)
