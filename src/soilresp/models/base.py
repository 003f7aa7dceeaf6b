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
  ``versions``, ``fallback`` and the selection's skill. For ``nls`` it also holds ``form``,
  ``params``, ``stderr`` and ``cov`` (the whole model is JSON).
* ``biome_XX.skops`` -- for scikit-learn families, the estimator in skops format, with its
  SHA-256 in the JSON (``estimator_sha256``). Loading never unpickles: skops only builds types
  on an allow-list (scikit-learn, quantile-forest, numpy), anything else is refused with an
  error naming the file and the type.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soilresp import io
from soilresp.errors import input_error
from soilresp.models.nonlinear import FORMS, N_INPUTS, NonlinearRs

FAMILIES = ("nls", "rf", "svr", "ann", "qrf")
# module prefixes whose types a model file may contain
_TRUSTED_PREFIXES = ("sklearn.", "quantile_forest.", "numpy.", "builtins.", "scipy.", "collections.")


@dataclass
class BiomeModel:
    biome: int
    family: str
    predictors: list[str]
    estimator: object
    meta: dict = field(default_factory=dict)

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

    def predict(self, X) -> np.ndarray:
        """Rs (g C m-2 yr-1) per row; NaN where any input is missing."""
        X, ok = self._rows(X)
        if ok.all():  # no missing input: no masking copy
            return np.asarray(self._point_predict(X), dtype=np.float64)
        out = np.full(X.shape[0], np.nan)
        if ok.any():
            out[ok] = self._point_predict(X[ok])
        return out

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

    def _point_predict(self, X: np.ndarray) -> np.ndarray:
        """The estimator's point prediction of finite rows (forests through their packed trees:
        the same outputs, several times faster)."""
        pf = self.packed()
        return self.estimator.predict(X) if pf is None else pf.predict(X)

    @property
    def supports_intervals(self) -> bool:
        return self.family == "qrf"

    def predict_quantiles(self, X, quantiles) -> np.ndarray:
        """Per-row quantiles (n, len(quantiles)) of Rs, g C m-2 yr-1 (quantile forest only)."""
        if not self.supports_intervals:
            raise ValueError(f"biome {self.biome}: family {self.family!r} gives no prediction intervals")
        X, ok = self._rows(X)
        q = [float(v) for v in np.atleast_1d(quantiles)]
        out = np.full((X.shape[0], len(q)), np.nan)
        if ok.any():
            out[ok] = np.asarray(self.estimator.predict(X[ok], quantiles=q)).reshape(int(ok.sum()), len(q))
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
    m = NonlinearRs(form)
    m.params_ = params
    cov = doc.get("cov")
    m.cov_ = np.asarray(cov, dtype=float) if cov is not None else np.full((params.size,) * 2, np.nan)
    m.stderr_ = np.sqrt(np.clip(np.diag(m.cov_), 0, None))
    m.q10_ = float(np.exp(10 * params[1]))
    m.n_obs_ = int(doc.get("n_obs", 0))
    m.at_bound_ = bool(doc.get("at_bound", False))
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
        import skops.io as sio

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
    if fam == "nls":
        est = nls_from_dict(doc, json_path)
        if len(preds) != N_INPUTS[est.form]:
            raise input_error(json_path, f"{est.form} reads {N_INPUTS[est.form]} predictor(s)", column="predictors",
                              value=preds)
        return BiomeModel(biome, fam, preds, est, meta)
    spath = json_path.parent / str(doc.get("estimator_file", ""))
    if not spath.is_file():
        raise input_error(json_path, f"estimator file {spath.name!r} is missing", column="estimator_file",
                          value=doc.get("estimator_file"))
    blob = spath.read_bytes()
    if hashlib.sha256(blob).hexdigest() != doc.get("estimator_sha256"):
        raise input_error(spath, "checksum differs from the one recorded in the model's JSON (file changed?)",
                          column="estimator_sha256")
    est = _skops_load(spath, blob)
    m = BiomeModel(biome, fam, preds, est, meta)
    m.packed()  # pack forests once here, not in every dask task that receives a copy
    return m


def _skops_load(path: Path, blob: bytes):
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=blob)
    except Exception as e:  # corrupt archive
        raise input_error(path, f"not a readable skops model file ({type(e).__name__}: {e})") from None
    bad = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
    if bad:
        raise input_error(path, "model file contains types outside the allow-list; refusing to load",
                          value=", ".join(bad))
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
