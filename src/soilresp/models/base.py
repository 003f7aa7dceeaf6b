"""A fitted per-biome model and its file contract (shared by the models and product stages).

A :class:`BiomeModel` is what the product stage applies to pixels: a fitted estimator, the
ordered driver names it reads, and metadata. Every family answers the same calls:

* ``predict(X)`` -- ``X`` float array (n, len(predictors)) in the drivers' units; returns Rs
  in g C m-2 yr-1, NaN for rows with any non-finite input.
* ``supports_intervals`` / ``predict_quantiles(X, quantiles)`` -- per-row quantiles
  (n, len(quantiles)), for families that have them (quantile regression forest).

Files, below ``<run>/models/`` (see ``docs/architecture.md``):

* ``biome_XX.json`` -- always: ``biome``, ``biome_name``, ``family`` (``nls``, ``rf``,
  ``svr``, ``ann``, ``qrf``), ``predictors``, ``units``, ``training_hash``, ``seed``,
  ``versions``, ``fallback`` and the selection's skill (``level_scale``, a factor on the
  prediction, for a scaled fallback). For ``nls`` it also holds ``form``,
  ``params``, ``stderr`` and ``cov`` (the whole model is JSON).
* ``biome_XX.skops`` -- for scikit-learn families, the estimator in skops format, with its
  SHA-256 in the JSON (``estimator_sha256``). Loading never unpickles, and builds only the
  exact, fully qualified classes soilresp itself writes (:data:`TRUSTED_NODES`): every node of
  the file's schema is checked before skops constructs anything; a function, method, reduce
  call, object array or any other class is refused with an error naming the file and the type
  (trust model: ``docs/reliability.md``). The checksum only detects accidents: whoever can
  write the ``.skops`` file can write the JSON too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soilresp import io
from soilresp.errors import input_error
from soilresp.models.nonlinear import FORMS, N_INPUTS, NonlinearRs

FAMILIES = ("nls", "rf", "svr", "ann", "qrf")
# Plausibility of loaded models: |Rs| above this is no soil (the largest annual Rs in SRDB is
# ~ 4,500 g C m-2 yr-1); nonlinear parameters outside the fit's bounds (models/nonlinear.py
# _BOUNDS for a, b, c; a generous cap for the M and P terms in original units) are refused.
RS_LIMIT = 1e5
# a scaled fallback's factor (models/fit.py): the biome's mean over the pooled model's mean
LEVEL_SCALE_LIMITS = (1e-3, 1e3)
# how a biome's model was deployed (meta['fallback_kind'], docs/models.md §6): its own fit, the
# pooled model, the pooled response scaled to the biome mean, the biome mean, all biomes' mean
FALLBACK_KINDS = ("", "pooled", "scaled", "mean", "all-mean")


def ratio_level(y, p) -> float | None:
    """sum(y) / sum(p): the level of a scaled fallback (Rs observed over the pooled response,
    docs/models.md §6; ratio estimator); None when p is not all finite or the ratio lies
    outside :data:`LEVEL_SCALE_LIMITS`."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if p.size == 0 or not np.isfinite(p).all() or not p.sum() > 0:
        return None
    k = float(np.nansum(y) / p.sum())
    return k if LEVEL_SCALE_LIMITS[0] <= k <= LEVEL_SCALE_LIMITS[1] else None
# The fits bound the anchored parameters (models/nonlinear.py): a' <= 1e6, |s| <= 1, |c| <= 0.05,
# anchor r = median training T; the paper's b = s - 2 c r and a = a' exp(-s r + c r^2) reach
# |b| <= 1 + 2 * 0.05 * 60 = 7 and a <= 1e6 exp(60 + 180) ~ 1e110 for |r| <= 60 degC (a tropical
# concave Eq 2-4 has b ~ 2.7 with c ~ -0.047). Predictions are checked against RS_LIMIT too.
_PARAM_LIMITS = {"a": (0.0, 1e110), "b": (-7.0, 7.0), "c": (-0.05, 0.05), "d": (-1e8, 1e8), "e": (-1e8, 1e8),
                 "f": (-1e8, 1e8)}
# Every (skops loader, fully qualified type) that the rf/svr/ann/qrf estimators of models/ml.py
# serialise to (found with skops.io.get_untrusted_types and the schema of files soilresp wrote;
# tests/test_models_trust.py re-derives it). Exact names only: no prefix, no function.
_JSON_SCALARS = ("builtins.str", "builtins.int", "builtins.float", "builtins.bool", "builtins.NoneType")
TRUSTED_NODES: frozenset[tuple[str, str]] = frozenset(
    [("ObjectNode", t) for t in (
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.compose._target.TransformedTargetRegressor",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.svm._classes.SVR",
        "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
        "quantile_forest._quantile_forest.RandomForestQuantileRegressor",
    )]
    + [("TreeNode", "sklearn.tree._tree.Tree"),
       ("QuantileForestNode", "quantile_forest._quantile_forest_fast.QuantileForest"),
       ("RandomStateNode", "numpy.random.mtrand.RandomState"),
       ("DictNode", "builtins.dict"), ("ListNode", "builtins.list"), ("TupleNode", "builtins.tuple"),
       ("TypeNode", "builtins.str")]
    + [("JsonNode", t) for t in _JSON_SCALARS]
    # plain (non-object) arrays and numpy scalars, read by numpy.load(allow_pickle=False)
    + [("NdArrayNode", f"numpy.{t}") for t in (
        "ndarray", "float64", "float32", "int64", "int32", "intp", "uint8", "bool_", "int8", "uint32",
        "uint64")]
)


POOLED_KINDS = ("pooled", "scaled", "all-mean")  # fitted on all biomes' rows


def fallback_kind(model: BiomeModel) -> str:
    """How the model was deployed (``meta['fallback']``, docs/models.md §6): ``""`` (its own
    fit), ``"pooled"`` (the pooled model of all biomes), ``"scaled"`` (the pooled response
    scaled to the biome mean, ``meta['level_scale']``), ``"mean"`` (the biome mean) or
    ``"all-mean"`` (the mean of all biomes' rows): ``meta['fallback_kind']``, written by the
    models stage; a model file without it (older runs) is read from the ``fallback`` text."""
    kind = model.meta.get("fallback_kind")
    if kind is not None:
        if kind not in FALLBACK_KINDS:   # checked when a model file is read (load_biome_model)
            raise ValueError(f"biome {model.biome}: fallback_kind must be one of {list(FALLBACK_KINDS)}, "
                             f"got {kind!r}")
        return kind
    fb = str(model.meta.get("fallback") or "")
    if not fb:
        return ""
    if fb.startswith("pooled response scaled"):
        return "scaled"
    if fb.startswith("biome mean"):
        return "mean"
    if fb.startswith("mean of all biomes"):
        return "all-mean"
    return "pooled"


@dataclass
class BiomeModel:
    biome: int
    family: str
    predictors: list[str]
    estimator: object
    meta: dict = field(default_factory=dict)
    source: Path | None = field(default=None, compare=False, repr=False)  # file it was loaded from

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        self.predictors = list(self.predictors)

    # --------------------------------------------------------------- prediction
    def _rows(self, X) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        if X.shape[1] != len(self.predictors):
            raise ValueError(f"biome {self.biome} model reads {self.predictors}; got {X.shape[1]} columns")
        return X, np.isfinite(X).all(axis=1)

    def clamp_bounds(self, predictors=None, fill: dict | None = None):
        """(lo, hi) arrays that :meth:`clamp` clips ``predictors`` (default: the model's) to:
        the training range (``meta['training_range']``, else ``fill[name]``, else unbounded)
        widened by ``meta['predictor_margin']`` x its span on both sides; None when
        ``meta['predictor_range'] != 'clamp'`` (docs/models.md, "Prediction range")."""
        rng = self.meta.get("training_range")
        if self.meta.get("predictor_range") != "clamp" or not rng:
            return None
        fill = fill or {}
        m = float(self.meta.get("predictor_margin", 0.0))
        lo, hi = [], []
        for v in self.predictors if predictors is None else predictors:
            a, b = rng.get(v) or fill.get(v) or (-np.inf, np.inf)
            w = m * (b - a) if np.isfinite(a) and np.isfinite(b) else 0.0
            lo.append(a - w), hi.append(b + w)
        return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)

    def clamp(self, X: np.ndarray) -> np.ndarray:
        """Each predictor clipped to :meth:`clamp_bounds`; ``X`` unchanged when the model does
        not clamp (docs/models.md)."""
        b = self.clamp_bounds()
        return X if b is None else np.clip(X, *b)  # NaN stays NaN

    def predict(self, X) -> np.ndarray:
        """Rs (g C m-2 yr-1) per row; NaN where any input is missing. Predictors are clamped to
        the training range first (:meth:`clamp`)."""
        X, ok = self._rows(X)
        X = self.clamp(X)
        if ok.all():  # no missing input: no masking copy
            return self._checked(np.asarray(self._point_predict(X), dtype=np.float64), X)
        out = np.full(X.shape[0], np.nan)
        if ok.any():
            out[ok] = self._checked(np.asarray(self._point_predict(X[ok]), dtype=np.float64), X[ok])
        return out

    def _checked(self, y: np.ndarray, X: np.ndarray) -> np.ndarray:
        """A model read from a file must give finite Rs of soil magnitude (|Rs| <= RS_LIMIT)
        for finite inputs; anything else means a corrupt or hand-edited model file."""
        if self.source is None or y.size == 0:
            return y
        bad = ~np.isfinite(y) | (np.abs(y) > RS_LIMIT)
        if bad.any():
            i = int(np.argmax(bad))
            raise input_error(self.source, f"biome {self.biome} model predicts Rs {y[i]!r} g C m-2 yr-1 for inputs "
                              f"{X[i].tolist()} (limit +-{RS_LIMIT:g}); the model file is corrupt or was edited",
                              column="params" if self.family == "nls" else "estimator_file")
        return y

    def packed(self):
        """The forest (rf, qrf mean) packed for fast prediction
        (:mod:`soilresp.models.forest_predict`), or None for other families. Built from the
        estimator in memory once per estimator object (kept, and shipped with the model to
        dask workers), never read from a file."""
        from soilresp.models import forest_predict

        cached = self.__dict__.get("_packed")
        if cached is None or cached[0] is not self.estimator:
            pf = forest_predict.pack_forest(self.estimator) if forest_predict.is_packable(self.estimator) else None
            cached = self.__dict__["_packed"] = (self.estimator, pf)
        return cached[1]

    @property
    def level_scale(self) -> float:
        """Factor on the estimator's output (``meta['level_scale']``, default 1): the pooled
        response scaled to a biome's mean Rs (docs/models.md §6, scaled fallback)."""
        return float(self.meta.get("level_scale", 1.0) or 1.0)

    def _point_predict(self, X: np.ndarray) -> np.ndarray:
        """The estimator's point prediction of finite rows (forests through their packed trees:
        the same outputs, several times faster), times :attr:`level_scale`."""
        pf = self.packed()
        y = self.estimator.predict(X) if pf is None else pf.predict(X)
        k = self.level_scale
        return y if k == 1.0 else np.asarray(y, dtype=np.float64) * k

    @property
    def supports_intervals(self) -> bool:
        return self.family == "qrf"

    def predict_quantiles(self, X, quantiles) -> np.ndarray:
        """Per-row quantiles (n, len(quantiles)) of Rs, g C m-2 yr-1 (quantile forest only)."""
        if not self.supports_intervals:
            raise ValueError(f"biome {self.biome}: family {self.family!r} gives no prediction intervals")
        X, ok = self._rows(X)
        X = self.clamp(X)
        q = [float(v) for v in np.atleast_1d(quantiles)]
        out = np.full((X.shape[0], len(q)), np.nan)
        if ok.any():
            out[ok] = np.asarray(self.estimator.predict(X[ok], quantiles=q)).reshape(int(ok.sum()), len(q)) \
                * self.level_scale
        return out

    # --------------------------------------------------------------- nls helpers
    @property
    def form(self) -> str | None:
        return getattr(self.estimator, "form", None) if self.family == "nls" else None

    @property
    def params(self) -> np.ndarray | None:
        return np.asarray(self.estimator.params_) if self.family == "nls" else None


def nls_from_dict(doc: dict, path: Path | str = "<model>") -> NonlinearRs:
    """Rebuild a fitted :class:`NonlinearRs` from its JSON description."""
    form = doc.get("form")
    if form not in FORMS:
        raise input_error(path, "not a soilresp nonlinear model", column="form", value=form)
    try:
        params = np.asarray(doc.get("params", []), dtype=float)
    except (TypeError, ValueError):
        raise input_error(path, f"{form} parameters must be numbers", column="params",
                          value=doc.get("params")) from None
    if params.size != len(FORMS[form]) or not np.all(np.isfinite(params)):
        raise input_error(path, f"{form} needs {len(FORMS[form])} finite parameters", column="params",
                          value=doc.get("params"))
    for name, v in zip(FORMS[form], params):
        lo, hi = _PARAM_LIMITS[name]
        if not lo <= v <= hi or (name == "a" and v <= 0):
            raise input_error(path, f"{form} parameter {name} = {v!r} is outside the plausible range "
                              f"[{lo:g}, {hi:g}] (corrupt or edited model?)", column="params", value=float(v))
    m = NonlinearRs(form)
    m.params_ = params
    cov = doc.get("cov")
    m.cov_ = np.asarray(cov, dtype=float) if cov is not None else np.full((params.size,) * 2, np.nan)
    m.stderr_ = np.sqrt(np.clip(np.diag(m.cov_), 0, None))
    m.x_ref_ = np.asarray(doc.get("x_ref") or [np.nan] * N_INPUTS[form], dtype=float)
    m.q10_ = float(doc["q10"]) if doc.get("q10") is not None else float("nan")
    m.t_response = str(doc.get("t_response", "free"))
    m.q10_range = tuple(float(v) for v in (doc.get("q10_range") or (1.0, 6.0)))
    m.bound_reason_ = str(doc.get("bound_reason", ""))
    m.n_obs_ = int(doc.get("n_obs", 0))
    m.at_bound_ = bool(doc.get("at_bound", False))
    m.shape_bound_ = [str(v) for v in doc.get("shape_bound", []) if str(v) in FORMS[form]]
    m.t2_dropped_ = bool(doc.get("t2_dropped", False))
    m.dependent_ = [str(v) for v in doc.get("dependent", []) if str(v) in FORMS[form]]
    m.n_features_in_ = N_INPUTS[form]
    return m


def model_paths(models_dir: Path, biome: int) -> tuple[Path, Path]:
    return models_dir / f"biome_{biome:02d}.json", models_dir / f"biome_{biome:02d}.skops"


def save_biome_model(models_dir: Path, model: BiomeModel) -> Path:
    """Write ``biome_XX.json`` (and ``biome_XX.skops`` for scikit-learn families) atomically."""
    jpath, spath = model_paths(Path(models_dir), model.biome)
    doc = {"biome": model.biome, "family": model.family, "predictors": model.predictors, **model.meta}
    if model.family == "nls":
        doc.update(model.estimator.to_dict())
    else:
        from soilresp.extras import require

        sio = require("skops.io", "ml", f"saving the {model.family} model of biome {model.biome}")
        blob = sio.dumps(model.estimator)
        io.write_bytes_atomic(spath, blob)
        doc["estimator_file"] = spath.name
        doc["estimator_sha256"] = hashlib.sha256(blob).hexdigest()
    doc["family"] = model.family
    io.write_json(jpath, doc)
    return jpath


def load_biome_model(json_path: Path) -> BiomeModel:
    """Read one model file pair; never executes code from the files (see module docstring)."""
    json_path = Path(json_path)
    doc = io.read_json(json_path)
    fam = doc.get("family")
    if fam not in FAMILIES:
        raise input_error(json_path, f"unknown model family (expected one of {FAMILIES})", column="family", value=fam)
    preds = doc.get("predictors")
    if not isinstance(preds, list) or not preds or not all(isinstance(p, str) for p in preds):
        raise input_error(json_path, "predictors must be a non-empty list of driver names", column="predictors",
                          value=preds)
    biome = int(doc.get("biome", -1))
    meta = {k: v for k, v in doc.items() if k not in ("biome", "family", "predictors")}
    ls = meta.get("level_scale", 1.0)
    if isinstance(ls, bool) or not isinstance(ls, (int, float)) or not LEVEL_SCALE_LIMITS[0] <= ls <= LEVEL_SCALE_LIMITS[1]:
        raise input_error(json_path, f"level_scale must be a number in {LEVEL_SCALE_LIMITS}", column="level_scale",
                          value=ls)
    fk = meta.get("fallback_kind", "")
    if fk not in FALLBACK_KINDS:
        raise input_error(json_path, f"fallback_kind must be one of {list(FALLBACK_KINDS)}", column="fallback_kind",
                          value=fk)
    if "fallback_kind" in meta and bool(fk) != bool(meta.get("fallback")):
        raise input_error(json_path, "fallback_kind and fallback disagree (a fallback needs both, an own fit "
                          "neither)", column="fallback_kind", value=fk)
    if fam == "nls":
        est = nls_from_dict(doc, json_path)
        if len(preds) != N_INPUTS[est.form]:
            raise input_error(json_path, f"{est.form} reads {N_INPUTS[est.form]} predictor(s)", column="predictors",
                              value=preds)
        return BiomeModel(biome, fam, preds, est, meta, source=json_path)
    spath = json_path.parent / str(doc.get("estimator_file", ""))
    if not spath.is_file():
        raise input_error(json_path, f"estimator file {spath.name!r} is missing", column="estimator_file",
                          value=doc.get("estimator_file"))
    blob = spath.read_bytes()
    if hashlib.sha256(blob).hexdigest() != doc.get("estimator_sha256"):
        raise input_error(spath, "checksum differs from the one recorded in the model's JSON (file changed?)",
                          column="estimator_sha256")
    est = _skops_load(spath, blob)
    _check_training_scale(est, spath)
    m = BiomeModel(biome, fam, preds, est, meta, source=spath)
    m.packed()  # pack forests once here, not in every dask task that receives a copy
    return m


def _check_training_scale(est, path: Path) -> None:
    """The Rs scale an estimator was trained on, read from the file before any prediction:
    a forest's leaf values, or the y-standardiser's mean and spread (svr, ann). Non-finite or
    beyond :data:`RS_LIMIT` means a corrupt file or one trained on other units."""
    vals = []
    for tree in getattr(est, "estimators_", None) or []:
        t = getattr(tree, "tree_", None)
        if t is not None:
            vals.append(np.asarray(t.value, dtype=float).ravel())
    tr = getattr(est, "transformer_", None)
    if tr is not None and hasattr(tr, "mean_"):
        m, s = np.asarray(tr.mean_, float), np.asarray(getattr(tr, "scale_", 1.0), float)
        vals.append(np.concatenate([m + 3 * s, m - 3 * s]))
    if not vals:
        return
    v = np.concatenate(vals)
    if v.size and (not np.all(np.isfinite(v)) or np.max(np.abs(v)) > RS_LIMIT):
        worst = v[~np.isfinite(v)][0] if not np.all(np.isfinite(v)) else v[np.argmax(np.abs(v))]
        raise input_error(path, f"estimator was trained on Rs up to {float(worst):g}, beyond +-{RS_LIMIT:g} "
                          "g C m-2 yr-1 (other units, or a corrupt or edited file)", column="estimator_file",
                          value=float(worst))


def _schema_types(path: Path, blob: bytes) -> list[tuple[str, str]]:
    """Every (loader, module.class) named anywhere in a skops file's schema, before any load."""
    import json
    import zipfile
    from io import BytesIO

    try:
        with zipfile.ZipFile(BytesIO(blob)) as z:
            names = z.namelist()
            odd = [n for n in names if n != "schema.json" and not re.fullmatch(r"[0-9]+\.npy", n)]
            if "schema.json" not in names or odd:
                raise input_error(path, "not a soilresp skops model file (unexpected archive members)",
                                  value=", ".join(odd[:3]) or "no schema.json")
            schema = json.loads(z.read("schema.json"))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise input_error(path, f"not a readable skops model file ({type(e).__name__}: {e})") from None
    found: list[tuple[str, str]] = []

    def walk(node):
        if isinstance(node, dict):
            if any(k in node for k in ("__loader__", "__class__", "__module__")):
                found.append((str(node.get("__loader__")),
                              f"{node.get('__module__')}.{node.get('__class__')}"))
                if node.get("__loader__") == "NdArrayNode" and node.get("type") != "numpy":
                    found.append(("NdArrayNode", f"object array ({node.get('type')!r})"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return found


def _skops_load(path: Path, blob: bytes):
    """Rebuild an estimator only if every node of the file is in :data:`TRUSTED_NODES`."""
    from soilresp.extras import require

    sio = require("skops.io", "ml", f"loading the model file {path}")

    types = _schema_types(path, blob)
    bad = sorted({f"{t} ({loader})" for loader, t in types if (loader, t) not in TRUSTED_NODES})
    if bad:
        raise input_error(path, "model file contains types outside soilresp's exact allow-list; refusing to load",
                          value=", ".join(bad[:5]))
    try:
        untrusted = sio.get_untrusted_types(data=blob)
    except Exception as e:  # corrupt archive
        raise input_error(path, f"not a readable skops model file ({type(e).__name__}: {e})") from None
    allowed = {t for _, t in TRUSTED_NODES}
    extra = [t for t in untrusted if t not in allowed]
    if extra:  # skops saw a type the schema walk did not: refuse rather than guess
        raise input_error(path, "model file contains types outside soilresp's exact allow-list; refusing to load",
                          value=", ".join(extra[:5]))
    try:
        return sio.loads(blob, trusted=list(untrusted))
    except Exception as e:
        raise input_error(path, f"cannot rebuild model ({type(e).__name__}: {e})") from None


def load_biome_models(models_dir: Path, biomes) -> dict[int, BiomeModel]:
    """All biomes' models from a run's ``models/`` folder."""
    out = {}
    for code in sorted(biomes):
        jpath, _ = model_paths(Path(models_dir), code)
        if not jpath.is_file():
            raise input_error(jpath, f"no model file for biome {code}: run the models stage")
        m = load_biome_model(jpath)
        if m.biome != code:
            raise input_error(jpath, f"file is for biome {m.biome}, expected {code}", column="biome", value=m.biome)
        out[code] = m
    return out
