"""Monte Carlo uncertainty of the totals (method step 5; Huang et al. 2020, Methods).

Each realisation regenerates every biome's model, recomputes the annual totals (global,
tropical, temperate, boreal) and, inside the realisation, their Sen slope. Modes
(``[product] mc_mode``, one or several; assumptions in ``docs/product.md``):

``paper`` (alias ``parameters``; Huang et al. 2020, Methods)
    *Nonlinear models (Eq 1-4)*: every quantitative parameter ~ Normal(value,
    |param_cv x value|) (10 % CV by default). *Qualitative settings* are the predictor
    choices of the Eq 5 stepwise selection (``mc_qualitative``: ``"eq5"`` among the
    candidates within ``mc_eps_tolerance`` of the step's best, weighted by eps; ``"uniform"``;
    ``"none"``); a drawn set other than the selected one is refitted, then perturbed.
    *Machine-learning models* have no parameters with a standard error: bootstrap refits.
``covariance``
    Eq 1-4 parameters ~ multivariate normal from the fit's covariance, the positive ``a`` on
    the log scale (:class:`CovarianceSpec`); singular or ill-identified fits are warned about
    and listed; ML models and fits without a finite covariance get site-bootstrap refits.
``site-bootstrap``
    Location groups (:func:`soilresp.models.cv.location_groups`, ``mc_group_km``) resampled
    with replacement; the selected family, form and predictors refitted
    (``sklearn.base.clone``, ``random_state`` reseeded). Efron & Tibshirani (1993); the
    bootstrap-refit propagation of Jian et al. (2022).
``selection-bootstrap``
    As ``site-bootstrap``, but the model choice is redone in every realisation (Buckland,
    Burnham & Augustin 1997, Biometrics 53:603): every Eq 1-4 candidate the biome's selection
    cross-validated (``models/skill.parquet``), and the selected model, is refitted on the
    drawn location groups and scored on the groups not drawn (out of bag); the lowest
    out-of-bag mean squared error is the realisation's model (:func:`reselect_refit`). A
    biome deployed with a fallback (pooled, scaled or mean) is refitted as in
    ``site-bootstrap``. How often each candidate was chosen is in ``mode_diagnostics``.
``structural``
    One model per biome drawn among those within ``mc_structural_tolerance`` of the best
    CV score (:func:`structural_candidates`), across families and forms.
``bootstrap``
    As ``site-bootstrap`` with site ids (or rows, ``mc_bootstrap_unit``) as the unit.

Summaries are the median and 2.5 / 97.5 percentiles; the mean is a diagnostic
(:func:`summarise_mc`). The headline total stays the product's central estimate.

Realisation r of biome b uses ``numpy.random.default_rng([seed, 9173, r, b])``, so results do
not depend on batching, chunking or the scheduler.

Cost control: with ``mc_sample_pixels = 0`` every land pixel is predicted in every
realisation; otherwise totals are estimated from a stratified (biome x region) Poisson
sample of about that many pixels. A pixel is in the sample when a counter-based hash
(splitmix64) of (seed, row, column) is below its stratum's inclusion probability
p_h = n_h / N_h (proportional allocation, at least ``mc_min_per_stratum`` per stratum), and is
weighted by area / p_h (Horvitz-Thompson). The sampling variance
sum (1 - p_h) (area y / p_h)^2 is reported as ``sampling_se_pg`` beside the model spread.

With a sample, one pass over the grid gathers the sampled cells' drivers first
(:func:`gather_sample`, ~n x years x drivers values); every batch of realisations is then
evaluated on those cells only, so the realisations cost the same at any resolution.

Memory: each dask task handles one grid block (or part of the gathered sample) for one batch
of ``mc_batch`` realisations and returns (batch, 2, year, 4) partial sums; batches are
computed one after another.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from soilresp.models.base import POOLED_KINDS, BiomeModel, fallback_kind
from soilresp.models.nonlinear import FORMS, N_INPUTS, FitError, NonlinearRs, constant_model, predict_form

REGIONS = ("global", "tropical", "temperate", "boreal")
_REGION_INDEX = {3: 1, 2: 2, 1: 3}  # region code -> column in REGIONS
G_PER_PG = 1e15
_SLOTS = ("temperature", "moisture", "productivity")
_N_STRATA = 64


MODES = ("paper", "covariance", "site-bootstrap", "selection-bootstrap", "structural", "bootstrap")
_ALIASES = {"parameters": "paper"}

def mode_scope(mode: str, settings: dict | None = None) -> str:
    """What the interval of ``mode`` samples, in words, from the run's recorded settings
    (:class:`MCSettings` as a dict; defaults when absent). The report prints it beside the
    interval; "" for an unknown mode."""
    import dataclasses

    s = {**dataclasses.asdict(MCSettings()), **(settings or {})}
    if mode == "paper":
        q = {"eq5": "the Eq 5 predictor choice (weighted by eps)", "uniform": "the predictor choice (uniform)",
             "none": ""}.get(s["qualitative"], "")
        return (f"a prescribed {s['param_cv']:.0%} coefficient of variation on every Eq 1-4 parameter"
                + (f" and {q}" if q else "") + " (Huang et al. 2020), not an estimate of the fits' error; "
                "machine-learning biomes: bootstrap refits")
    return {
        "covariance": "the Eq 1-4 parameters' sampling error (the fit's covariance), given the "
                      "selected form and predictors; machine-learning biomes and unusable covariances: "
                      "location-group bootstrap refits",
        "site-bootstrap": "which locations were measured: location groups resampled, the selected "
                          "family, form and predictors refitted",
        "selection-bootstrap": "which locations were measured and the model choice: location groups "
                               "resampled, the Eq 1-4 candidates refitted and re-selected out of bag "
                               "(fallback biomes refit their deployed model)",
        "structural": "the choice among models within the CV tolerance of the best, not the fits' "
                      "sampling error",
        "bootstrap": f"which {s['bootstrap_unit']}s were measured: resampled, the selected model refitted",
    }.get(mode, "")


LEFT_OUT = ("No mode samples the error of the model form itself (a true response outside the "
            "candidate forms) or the bias of a trend read from spatial gradients (space for time). "
            "On the synthetic twin the default interval covered the global annual total as "
            "nominal but was too narrow for the temperate and boreal totals and for the trend "
            "(docs/product.md, 'Which mode to use').")


def normalise_modes(mode) -> list[str]:
    """``[product] mc_mode`` as a list of canonical mode names (``parameters`` = ``paper``)."""
    modes = [mode] if isinstance(mode, str) else list(mode)
    out = []
    for m in modes:
        m = _ALIASES.get(m, m)
        if m not in MODES:
            raise ValueError(f"mc mode must be one of {list(MODES)}, got {m!r}")
        if m not in out:
            out.append(m)
    if not out:
        raise ValueError("mc mode: at least one mode")
    return out


@dataclass(frozen=True)
class MCSettings:
    """Monte Carlo settings of one mode (``[product]`` mc_* keys); see the module docstring."""

    n: int = 500
    mode: str = "paper"
    param_cv: float = 0.10
    qualitative: str = "eq5"
    bootstrap_unit: str = "site"
    sample_pixels: int = 0
    min_per_stratum: int = 30
    batch: int = 50
    seed: int = 0
    eps_tolerance: float = 0.10
    group_km: float = 0.0
    structural_tolerance: float = 0.02
    structural_score: str = "loc_cv_r2"

    def __post_init__(self):
        object.__setattr__(self, "mode", _ALIASES.get(self.mode, self.mode))
        if self.mode not in MODES:
            raise ValueError(f"mc mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.qualitative not in ("eq5", "uniform", "none"):
            raise ValueError(f"mc qualitative must be 'eq5', 'uniform' or 'none', got {self.qualitative!r}")
        if self.bootstrap_unit not in ("site", "row"):
            raise ValueError(f"bootstrap unit must be 'site' or 'row', got {self.bootstrap_unit!r}")
        if self.n < 0 or self.batch < 1 or self.param_cv < 0 or self.sample_pixels < 0:
            raise ValueError("mc settings: n >= 0, batch >= 1, param_cv >= 0, sample_pixels >= 0")
        if self.group_km < 0 or self.structural_tolerance < 0:
            raise ValueError("mc settings: group_km >= 0, structural_tolerance >= 0")

    @classmethod
    def from_config(cls, pc, seed: int, mode: str | None = None, resolution: float = 0.5,
                    select_by: str = "location") -> "MCSettings":
        """Settings of ``mode`` (default: the first of ``pc.mc_mode``). ``mc_group_km`` unset:
        one grid cell (``resolution`` x 111.32 km), the distance of the CV's location groups;
        ``mc_structural_score`` unset: the R2 column of the CV scheme ``select_by``."""
        from soilresp.models.cv import PREFIX

        km = pc.mc_group_km if pc.mc_group_km is not None else resolution * 111.32
        score = pc.mc_structural_score or PREFIX[select_by] + "r2"
        return cls(n=pc.mc_samples, mode=mode or normalise_modes(pc.mc_mode)[0], param_cv=pc.param_cv,
                   qualitative=pc.mc_qualitative, bootstrap_unit=pc.mc_bootstrap_unit,
                   sample_pixels=pc.mc_sample_pixels, min_per_stratum=pc.mc_min_per_stratum,
                   batch=pc.mc_batch, seed=seed, eps_tolerance=pc.mc_eps_tolerance, group_km=km,
                   structural_tolerance=pc.mc_structural_tolerance,
                   structural_score=score)


# ---------------------------------------------------------------- realisation models
class PerturbedNLS:
    """An Eq 1-4 model with drawn parameters (and possibly drawn predictors). ``ranges``
    ((lo, hi) arrays per predictor) clamps the inputs as the deployed model does
    (``[models] predictor_range``): a realisation follows the same deployment rule as the
    central estimate, or its draws extrapolate where the central model does not."""

    family = "nls"

    def __init__(self, biome: int, form: str, params, predictors, ranges=None, scale: float = 1.0):
        self.biome, self.form = biome, form
        self.params = np.asarray(params, dtype=float)
        self.predictors = list(predictors)
        self.ranges = ranges
        self.scale = float(scale)  # the deployed model's level_scale (scaled fallback)

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if self.ranges is not None:
            X = np.clip(X, *self.ranges)  # NaN stays NaN
        ok = np.isfinite(X).all(axis=1)
        out = np.full(X.shape[0], np.nan)
        if ok.any():
            out[ok] = predict_form(self.form, self.params, *(X[ok, i] for i in range(X.shape[1]))) * self.scale
        return out


def clamp_ranges(model: BiomeModel, predictors, training: pd.DataFrame | None = None):
    """(lo, hi) arrays clamping ``predictors`` as ``model`` clamps its own
    (:meth:`BiomeModel.clamp_bounds`), or None when the model does not clamp. A predictor
    outside the model's recorded training range (a drawn Eq 5 alternative) gets the range of
    the rows the model is fitted on, or no bound without a training table."""
    if model.clamp_bounds() is None:
        return None
    fill = {}
    rng = model.meta.get("training_range") or {}
    new = [v for v in predictors if v not in rng]
    if new and training is not None:
        pooled = fallback_kind(model) in POOLED_KINDS
        sub = training[training["biome"] > 0] if pooled else training[training["biome"] == model.biome]
        for v in new:
            col = sub[v].to_numpy(float) if v in sub else np.array([np.nan])
            ok = col[np.isfinite(col)]
            if ok.size:
                fill[v] = (float(ok.min()), float(ok.max()))
    return model.clamp_bounds(predictors, fill)


def training_rows(model: BiomeModel, training: pd.DataFrame, predictors=None, group_km: float | None = None,
                  own: bool = False):
    """(X, y, group) the biome's model is (re)fitted on: the biome's rows, or all biomes'
    rows for a model that fell back to the pooled fit (``meta['fallback']``). ``group`` is the
    site id, or with ``group_km`` the location group of :func:`soilresp.models.cv.location_groups`
    (sites within ``group_km`` by single linkage; needs ``lat``/``lon`` columns). ``own``:
    also return a boolean array, True for the rows of the model's own biome (a scaled
    fallback's level comes from them)."""
    preds = list(predictors or model.predictors)
    missing = [c for c in preds + ["rs", "biome"] if c not in training]
    if missing:
        raise KeyError(f"training table lacks column(s) {missing}")
    pooled = fallback_kind(model) in POOLED_KINDS
    sub = training[training["biome"] > 0] if pooled else training[training["biome"] == model.biome]
    extra = [c for c in ("site_id", "lat", "lon") if c in sub]
    # a mean model needs only Rs (its predictor may be missing where Rs was measured)
    need = ["rs"] if fallback_kind(model) in ("mean", "all-mean") else preds + ["rs"]
    sub = sub[list(dict.fromkeys(preds + ["rs", "biome"] + extra))].dropna(subset=need)
    if group_km is not None:
        if not {"lat", "lon"} <= set(sub.columns):
            raise KeyError("training table lacks column(s) ['lat', 'lon'] (site-bootstrap location groups)")
        from soilresp.models.cv import location_groups

        g = location_groups(sub["lat"].to_numpy(float), sub["lon"].to_numpy(float), group_km)
    else:
        g = sub["site_id"].to_numpy() if "site_id" in sub else np.arange(len(sub))
    out = sub[preds].to_numpy(float), sub["rs"].to_numpy(float), g
    return (*out, sub["biome"].to_numpy() == model.biome) if own else out


# ---------------------------------------------------------------- covariance mode
@dataclass
class CovarianceSpec:
    """Multivariate-normal draw of one Eq 1-4 fit's parameters from its covariance.

    Parameters with a positive lower bound (``a``) are drawn on the log scale, with the
    delta-method covariance ``cov(log a, t) = cov(a, t) / a``; the others on their own scale.
    ``usable`` is False when the covariance is not finite (the biome then gets site-bootstrap
    refits); ``singular`` when an eigenvalue of the correlation matrix is <= 1e-10 of the
    largest (draws then lie in the identified subspace; ``condition`` is that matrix's
    condition number); ``identified`` False when a parameter's relative standard
    error exceeds 1 or two parameters correlate beyond 0.99.
    """

    biome: int
    form: str
    mean: np.ndarray       # transformed scale
    factor: np.ndarray     # (k, k): draw = mean + factor @ z
    log: np.ndarray        # bool per parameter
    usable: bool
    singular: bool
    identified: bool
    max_abs_corr: float
    max_rel_se: float
    condition: float

    def draw(self, rng) -> np.ndarray:
        z = self.mean + self.factor @ rng.normal(size=self.mean.size)
        return np.where(self.log, np.exp(z), z)

    def row(self) -> dict:
        return {"biome": self.biome, "form": self.form, "usable": self.usable, "singular": self.singular,
                "identified": self.identified, "max_abs_corr": self.max_abs_corr,
                "max_rel_se": self.max_rel_se, "condition": self.condition,
                "log_scale": ",".join(n for n, lg in zip(FORMS[self.form], self.log) if lg)}


def covariance_spec(code: int, form: str, params, cov, fixed=(), dependent=()) -> CovarianceSpec:
    """The :class:`CovarianceSpec` of a fit (``params`` and ``cov`` in original units).
    ``fixed``: names of parameters held at 0 by a shape constraint (``shape_bound_``); they
    stay at 0 and the others are drawn from their covariance conditional on them (Schur
    complement), so no draw leaves the constrained, concave response. ``dependent``: names of
    parameters that are exact functions of others (``dependent_``); they are drawn, but left
    out of the singularity and identification checks."""
    from soilresp.models.nonlinear import _bounds

    p = np.asarray(params, dtype=float)
    c = np.asarray(cov, dtype=float)
    k = p.size
    fx = np.array([n in set(fixed) for n in FORMS[form]][:k], dtype=bool)
    if fx.any() and c.shape == (k, k) and np.isfinite(c).all():
        fr = ~fx
        css = c[np.ix_(fx, fx)]
        cond = c[np.ix_(fr, fr)] - c[np.ix_(fr, fx)] @ np.linalg.pinv(css) @ c[np.ix_(fx, fr)]
        c = np.zeros_like(c)
        c[np.ix_(fr, fr)] = cond
    log = (_bounds(form, "free", (1.0, 6.0))[0][:k] > 0) & (p > 0)  # strictly positive parameters (a)
    if c.shape != (k, k) or not np.isfinite(c).all():
        return CovarianceSpec(code, form, p, np.zeros((k, k)), np.zeros(k, bool), False, True, False,
                              float("nan"), float("nan"), float("inf"))
    d = np.where(log, 1.0 / np.where(log, p, 1.0), 1.0)
    ct = c * d[:, None] * d[None, :]
    ct = 0.5 * (ct + ct.T)
    w, v = np.linalg.eigh(ct)
    w = np.clip(w, 0.0, None)
    # singularity and conditioning on the scale-free correlation matrix of the drawn parameters
    dep = np.array([n in set(dependent) for n in FORMS[form]][:k], dtype=bool)
    fr = ~fx & ~dep
    kf = int(fr.sum())
    ctf = ct[np.ix_(fr, fr)]
    st = np.sqrt(np.diag(ctf))
    if np.all(st > 0):
        wc = np.clip(np.linalg.eigvalsh(ctf / np.outer(st, st)), 0.0, None)
        singular = bool(wc.min() <= 1e-10 * wc.max())
        cond = float(wc.max() / wc.min()) if wc.min() > 0 else float("inf")
    else:
        singular, cond = True, float("inf")
    cf, pf = c[np.ix_(fr, fr)], p[fr]
    sd = np.sqrt(np.clip(np.diag(cf), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cf / np.outer(sd, sd)
        rel = np.where(pf != 0, sd / np.abs(pf), np.inf)
    off = np.abs(corr[~np.eye(kf, dtype=bool)]) if kf > 1 else np.zeros(1)
    max_corr = float(np.nanmax(off)) if off.size else 0.0
    max_rel = float(np.nanmax(rel))
    identified = (not singular) and max_corr <= 0.99 and max_rel <= 1.0
    mean = np.where(log, np.log(np.where(log, p, 1.0)), p)
    return CovarianceSpec(code, form, mean, v * np.sqrt(w)[None, :], log, True, singular,
                          bool(identified), max_corr, max_rel, cond)


def covariance_specs(models: dict[int, BiomeModel]) -> dict[int, CovarianceSpec]:
    """Covariance draw specs of the nonlinear models; warns for each singular or unidentified fit."""
    import warnings

    out = {}
    for code, m in sorted(models.items()):
        if m.family != "nls":
            continue
        sp = covariance_spec(code, m.form, m.params, getattr(m.estimator, "cov_", None),
                             getattr(m.estimator, "shape_bound_", ()), getattr(m.estimator, "dependent_", ()))
        out[code] = sp
        if not sp.usable:
            warnings.warn(f"biome {code}: the fit's covariance is not finite; the covariance mode "
                          "uses site-bootstrap refits for it", stacklevel=2)
        elif sp.singular or not sp.identified:
            warnings.warn(f"biome {code} ({m.form}): {'singular' if sp.singular else 'ill-identified'} fit "
                          f"(max |corr| {sp.max_abs_corr:.3f}, max relative se {sp.max_rel_se:.2f}); "
                          "covariance draws of it are unreliable", stacklevel=2)
    return out


# ---------------------------------------------------------------- structural mode
def structural_candidates(models: dict[int, BiomeModel], skill: pd.DataFrame, training: pd.DataFrame | None,
                          score: str = "site_cv_r2", tolerance: float = 0.02
                          ) -> tuple[dict[int, list], pd.DataFrame]:
    """Per biome, the models whose CV ``score`` (a column of ``models/skill.parquet``, higher is
    better, e.g. ``site_cv_r2``) is within ``tolerance`` of the biome's best, across families
    and forms: the selected model itself, and Eq 1-4 candidates refitted on the biome's rows
    (:class:`NonlinearRs` with the row's form and predictors). Candidates of other ML families
    cannot be rebuilt without their tuned hyper-parameters and are listed, not used
    (``used`` False, ``reason``). Returns (biome -> list of models, the listing table)."""
    if score not in skill:
        raise KeyError(f"models/skill.parquet has no column {score!r} (mc_structural_score)")
    cands: dict[int, list] = {}
    rows = []
    for code, m in sorted(models.items()):
        sk = skill[skill["biome"] == code]
        sc = pd.to_numeric(sk[score], errors="coerce")
        best = float(sc.max()) if sc.notna().any() else np.nan
        sel_key = (m.family, m.form or "", ",".join(m.predictors))
        cands[code] = [m]
        seen = {sel_key}
        rows.append({"biome": code, "family": m.family, "form": m.form or "", "predictors": ",".join(m.predictors),
                     "score": float(sc[(sk["family"] == m.family) & (sk["predictors"] == ",".join(m.predictors))
                                       & (sk["form"].fillna("") == (m.form or ""))].max()) if len(sk) else np.nan,
                     "best_score": best, "selected": True, "used": True, "reason": "selected model"})
        if not np.isfinite(best):
            continue
        for (_, r), v in zip(sk.iterrows(), sc):
            key = (r["family"], r["form"] if isinstance(r["form"], str) else "", r["predictors"])
            if key in seen or not np.isfinite(v) or v < best - tolerance:
                continue
            seen.add(key)
            row = {"biome": code, "family": key[0], "form": key[1], "predictors": key[2], "score": float(v),
                   "best_score": best, "selected": False, "used": False, "reason": ""}
            if key[0] == "mean":
                row["reason"] = "biome mean: a fallback, not a candidate model"
            elif key[0] != "nls":
                row["reason"] = "machine-learning candidate: tuned hyper-parameters not stored"
            elif training is None:
                row["reason"] = "no training table"
            else:
                preds = key[2].split(",")
                # the biome's own candidate: none of the deployed model's fallback (rows, level)
                own_meta = {k: v for k, v in m.meta.items() if k not in ("fallback", "fallback_kind", "level_scale")}
                base = BiomeModel(code, "nls", preds, NonlinearRs(key[1]), own_meta)
                try:
                    X, y, _ = training_rows(base, training, preds)
                    fit = _nls_like(m, key[1]).fit(X, y)
                except (FitError, ValueError, KeyError) as e:
                    row["reason"] = f"refit failed: {e}"
                else:
                    if fit.at_bound_:
                        row["reason"] = "refit ends on a parameter bound"
                    else:
                        meta = dict(own_meta, training_range={v: [float(X[:, j].min()), float(X[:, j].max())]
                                                              for j, v in enumerate(preds)})
                        cands[code].append(BiomeModel(code, "nls", preds, fit, meta))
                        row["used"], row["reason"] = True, "refitted on the biome's rows"
            rows.append(row)
    return cands, pd.DataFrame(rows)


def _step_candidates(steps: pd.DataFrame | None, biome: int, slot: str):
    if steps is None or not {"biome", "step", "candidate"} <= set(steps.columns):
        return [], np.array([])
    s = steps[(steps["biome"] == biome) & (steps["step"] == slot)]
    eps = s["eps"].to_numpy(float) if "eps" in s else np.ones(len(s))
    eps = np.where(np.isfinite(eps) & (eps > 0), eps, 0.0)
    return list(s["candidate"]), eps


def _draw_predictors(model: BiomeModel, steps, rng, how: str, available, tol: float = 0.1) -> list[str]:
    preds = list(model.predictors)
    for k, slot in enumerate(_SLOTS[: N_INPUTS[model.form]]):
        cands, eps = _step_candidates(steps, model.biome, slot)
        keep = [i for i, c in enumerate(cands) if c in available]
        if how == "eq5" and keep:
            top = max(eps[i] for i in keep)
            keep = [i for i in keep if eps[i] >= (1.0 - tol) * top]
        u = rng.random()  # always consumed: draws stay aligned across settings
        if how == "none" or not keep:
            continue
        w = eps[keep] if how == "eq5" else np.ones(len(keep))
        if w.sum() <= 0:
            continue
        cdf = np.cumsum(w) / w.sum()
        preds[k] = cands[keep[int(np.searchsorted(cdf, u, side="right").clip(0, len(keep) - 1))]]
    return preds


def _seed_estimator(est, rng):
    params = est.get_params(deep=True)
    new = {k: int(rng.integers(0, 2**31 - 1)) for k in params if k == "random_state" or k.endswith("__random_state")}
    if new:
        est.set_params(**new)
    return est


def _refit_clone(model: BiomeModel, X, y, rng) -> BiomeModel | None:
    """``clone(model.estimator)`` (``random_state`` reseeded from ``rng``; a biome mean stays a
    mean, Eq 1 with b = 0) fitted on (X, y), as a model that clamps as ``model`` does; None
    when the fit fails or ends on a degenerate bound (not a model, as in :func:`_refit`)."""
    from sklearn.base import clone

    try:
        if fallback_kind(model) in ("mean", "all-mean"):
            est = constant_model(y, X[:, 0])
        else:
            est = _seed_estimator(clone(model.estimator), rng)
            est.fit(X, y)
    except (FitError, ValueError, np.linalg.LinAlgError, FloatingPointError):
        return None
    if getattr(est, "at_bound_", False):
        return None
    keep = {k: model.meta[k] for k in ("predictor_range", "predictor_margin", "training_range") if k in model.meta}
    return BiomeModel(model.biome, model.family, model.predictors, est, keep)


def bootstrap_refit(model: BiomeModel, X, y, groups, rng, unit: str = "site", tries: int = 5, own=None):
    """A refit of ``clone(model.estimator)`` on training rows drawn with replacement (by site
    or by row); returns (BiomeModel, ok). A fit that fails, or (Eq 1-4) ends on a parameter
    bound, is redrawn; after ``tries`` failures the original model is returned with ok False.
    A scaled fallback (``own``: True for the biome's rows among the pooled rows) refits the
    pooled response and then its level, sum(Rs) / sum(response) over the drawn biome rows."""
    n = y.size
    if n == 0:
        return model, False
    if unit == "site":
        codes, uniq = pd.factorize(groups)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(uniq) + 1))
        members = [order[bounds[k]:bounds[k + 1]] for k in range(len(uniq))]
    for _ in range(tries):
        if unit == "site":
            pick = rng.integers(0, len(members), len(members))
            idx = np.concatenate([members[k] for k in pick])
        else:
            idx = rng.integers(0, n, n)
        bm = _refit_clone(model, X[idx], y[idx], rng)
        if bm is None:
            continue
        if fallback_kind(model) == "scaled":
            k = _level(bm, X[idx], y[idx], np.asarray(own, bool)[idx])
            if k is None:
                continue
            bm.meta["level_scale"] = k
        return bm, True
    return model, False


def _level(model: BiomeModel, X, y, own) -> float | None:
    """sum(Rs) / sum(prediction) over the rows ``own``: a scaled fallback's level (models/fit.py
    ``_scaled_pooled``); None without such rows or with a non-positive response."""
    from soilresp.models.base import ratio_level

    with np.errstate(all="ignore"):
        return ratio_level(y[own], model.predict(X[own])) if own.any() else None


def reselect_candidates(models: dict[int, BiomeModel], skill: pd.DataFrame, training: pd.DataFrame | None,
                        families=None) -> tuple[dict[int, list], pd.DataFrame]:
    """Per biome deployed with its own fit, the models a ``selection-bootstrap`` realisation
    chooses among: the selected model and every Eq 1-4 candidate of ``models/skill.parquet``
    that refits on the biome's rows off the degenerate bounds (:func:`structural_candidates`
    with no score tolerance), when ``families`` (``[models] select_from``, default all) admits
    ``nls``. Fallback biomes get no list (their realisations refit the deployed model).
    Returns (biome -> list, the listing table)."""
    if families is not None and "nls" not in families:
        skill = skill[skill["family"] != "nls"]
    cands, listing = structural_candidates(models, skill.assign(_all=0.0), training, "_all", np.inf)
    out = {c: v for c, v in cands.items() if fallback_kind(models[c]) == ""}
    listing = listing[listing["biome"].isin(list(out))].drop(columns=["score", "best_score"])
    return out, listing.reset_index(drop=True)


def reselect_table(pool: list, training: pd.DataFrame, group_km: float):
    """(predictor table, Rs, location group) of the rows the candidates of ``pool`` (one
    biome, each on its own rows) are refitted on: the biome's rows with Rs, grouped over all
    those rows (:func:`soilresp.models.cv.location_groups`)."""
    from soilresp.models.cv import location_groups

    code = pool[0].biome
    names = sorted({v for m in pool for v in m.predictors})
    missing = [c for c in names + ["rs", "biome", "lat", "lon"] if c not in training]
    if missing:
        raise KeyError(f"training table lacks column(s) {missing}")
    sub = training.loc[training["biome"] == code, names + ["rs", "lat", "lon"]].dropna(subset=["rs"])
    g = location_groups(sub["lat"].to_numpy(float), sub["lon"].to_numpy(float), group_km)
    return sub[names], sub["rs"].to_numpy(float), g


def reselect_refit(pool: list, table: pd.DataFrame, y: np.ndarray, groups: np.ndarray, rng, tries: int = 5):
    """One realisation of the selection (``selection-bootstrap``): location groups drawn with
    replacement; each candidate of ``pool`` (the selected model first) refitted on the drawn
    rows complete in its predictors (``clone``, ``random_state`` reseeded; a fit that fails
    or ends on a degenerate bound drops out); the candidate with the lowest mean squared
    error on the rows of the groups not drawn, complete in every candidate's predictors, is
    returned, as (BiomeModel, True). Without out-of-bag rows the selected model's refit is
    taken. After ``tries`` draws where no candidate fits: (the selected model, False)."""
    m0 = pool[0]
    k = int(groups.max()) + 1 if groups.size else 0
    if k == 0:
        return m0, False
    for _ in range(tries):
        counts = np.bincount(rng.integers(0, k, k), minlength=k)
        w = counts[groups]                      # each row's multiplicity in the draw
        bag = np.repeat(np.arange(y.size), w)
        oob = w == 0
        fits, common = [], oob.copy()
        for m in pool:
            X = table[list(m.predictors)].to_numpy(float)
            ok = np.isfinite(X).all(axis=1)
            common &= ok
            idx = bag[ok[bag]]
            fits.append(_refit_clone(m, X[idx], y[idx], rng))
        if all(f is None for f in fits):
            continue
        if not common.any():
            if fits[0] is not None:
                return fits[0], True
            continue
        mse = [np.inf if f is None else
               float(np.mean((f.predict(table[list(f.predictors)].to_numpy(float)[common]) - y[common]) ** 2))
               for f in fits]
        mse = np.where(np.isfinite(mse), mse, np.inf)   # a NaN prediction loses
        best = int(np.argmin(mse))
        if fits[best] is not None and np.isfinite(mse[best]):
            return fits[best], True
    return m0, False


def _nls_like(m: BiomeModel, form: str) -> NonlinearRs:
    """An unfitted Eq 1-4 estimator of ``form`` with the deployed fit's bounds
    (``t_response``, ``q10_range``); the defaults for a machine-learning or mean model (a mean
    is stored as an unconstrained Eq 1 with b = 0)."""
    if m.family == "nls" and isinstance(m.estimator, NonlinearRs) and fallback_kind(m) not in ("mean", "all-mean"):
        from sklearn.base import clone

        return clone(m.estimator).set_params(form=form)
    return NonlinearRs(form)


def _refit(m: BiomeModel, training: pd.DataFrame, preds) -> tuple[np.ndarray, float] | None:
    """(parameters, level scale) of the model's form refitted with other predictors (the level
    is refitted too for a scaled fallback, else 1); None when the fit fails or ends on a
    parameter bound (a degenerate optimum is not a candidate model)."""
    try:
        X, y, _, own = training_rows(m, training, preds, own=True)
        fit = _nls_like(m, m.form).fit(X, y)
    except (FitError, ValueError, KeyError):
        return None
    if fit.at_bound_:
        return None
    k = 1.0
    if fallback_kind(m) == "scaled":
        k = _level(BiomeModel(m.biome, "nls", list(preds), fit), X, y, own)
        if k is None:
            return None
    return fit.params_, k


def _refits(models, keys, training):
    import warnings

    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return {k: _refit(models[k[0]], training, list(k[1])) for k in keys}


def qualitative_draws(models: dict[int, BiomeModel], s: MCSettings, training, steps) -> set:
    """The distinct (biome, predictors) sets other than the selected ones that the
    realisations draw (the same draws :func:`realisation_models` makes)."""
    keys = set()
    if s.mode != "paper" or s.qualitative == "none" or training is None or steps is None:
        return keys
    available = set(training.columns)
    for r in range(s.n):
        for code in sorted(models):
            m = models[code]
            if m.family != "nls":
                continue
            preds = _draw_predictors(m, steps, np.random.default_rng([s.seed, 9173, r, code]),
                                     s.qualitative, available, s.eps_tolerance)
            if preds != list(m.predictors):
                keys.add((code, tuple(preds)))
    return keys


def realisation_models(models: dict[int, BiomeModel], r: int, s: MCSettings,
                       training: pd.DataFrame | None, steps: pd.DataFrame | None,
                       cache: dict | None = None, extra: dict | None = None,
                       kept: set | None = None) -> tuple[dict, int]:
    """The models of realisation ``r`` (biome -> object with ``predictors`` and
    ``predict(X)``) and the number of failed refits. ``kept``, when given, receives the
    biomes whose refit failed: they keep the fitted model (in the ``paper`` mode, its fitted
    predictors, still perturbed).

    ``extra``: ``covariance`` (biome -> :class:`CovarianceSpec`) for the covariance mode,
    ``candidates`` (biome -> list of models) for the structural mode, ``reselect`` (biome ->
    list of models, :func:`reselect_candidates`) for the selection-bootstrap mode."""
    cache = {} if cache is None else cache
    extra = extra or {}
    kept = set() if kept is None else kept
    out = {}
    available = set(training.columns) if training is not None else set()
    for code in sorted(models):
        m = models[code]
        rng = np.random.default_rng([s.seed, 9173, r, code])
        if s.mode == "structural":
            cands = extra.get("candidates", {}).get(code) or [m]
            out[code] = cands[int(rng.integers(0, len(cands)))]
            continue
        spec = extra.get("covariance", {}).get(code) if s.mode == "covariance" else None
        if s.mode == "covariance" and spec is not None and spec.usable:
            out[code] = PerturbedNLS(code, m.form, spec.draw(rng), m.predictors, clamp_ranges(m, m.predictors),
                                     m.level_scale)
        elif s.mode == "paper" and m.family == "nls":
            preds = _draw_predictors(m, steps, rng, s.qualitative, available, s.eps_tolerance) \
                if training is not None else list(m.predictors)
            base, scale = m.params, m.level_scale
            if preds != list(m.predictors):
                key = (code, tuple(preds))
                if key not in cache:
                    cache[key] = _refit(m, training, preds)
                if cache[key] is None:
                    preds = list(m.predictors)
                    kept.add(code)
                else:
                    base, scale = cache[key]
            p = base + rng.normal(size=base.size) * np.abs(s.param_cv * base)
            out[code] = PerturbedNLS(code, m.form, p, preds, clamp_ranges(m, preds, training), scale)
        else:
            if training is None:
                raise ValueError(f"biome {code}: the {s.mode!r} Monte Carlo of a {m.family!r} model "
                                 "needs the training table (sites/training.parquet)")
            # paper (ML families), bootstrap: site ids or rows; site-bootstrap and covariance
            # fallbacks: location groups
            located = s.mode in ("site-bootstrap", "selection-bootstrap", "covariance")
            pool = extra.get("reselect", {}).get(code) if s.mode == "selection-bootstrap" else None
            if pool is not None and len(pool) > 1:
                key = ("reselect", code)
                if key not in cache:
                    cache[key] = reselect_table(pool, training, s.group_km)
                bm, ok = reselect_refit(pool, *cache[key], rng)
                if not ok:
                    kept.add(code)
                out[code] = bm
                continue
            key = ("rows", code, located)
            if key not in cache:
                cache[key] = training_rows(m, training, group_km=s.group_km if located else None, own=True)
            X, y, g, own = cache[key]
            bm, ok = bootstrap_refit(m, X, y, g, rng, "site" if located else s.bootstrap_unit, own=own)
            if not ok:
                kept.add(code)
            out[code] = bm
    return out, len(kept)


def draw_parameters(models: dict[int, BiomeModel], n: int, cv: float, seed: int) -> dict[int, np.ndarray]:
    """Parameter draws (n, n_params) per nonlinear biome model under the paper's scheme
    without qualitative draws: each parameter ~ Normal(value, |cv value|)."""
    s = MCSettings(n=n, mode="paper", param_cv=cv, qualitative="none", seed=seed)
    nls = {c: m for c, m in models.items() if m.family == "nls"}
    out = {c: np.empty((n, nls[c].params.size)) for c in nls}
    for r in range(n):
        real, _ = realisation_models(nls, r, s, None, None)
        for c in nls:
            out[c][r] = real[c].params
    return out


# ---------------------------------------------------------------- sampling
def _uniform(seed: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Counter-based uniform [0, 1) per global pixel (splitmix64 of seed, row, column)."""
    with np.errstate(over="ignore"):
        x = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)) ^ \
            (i.astype(np.uint64) << np.uint64(32)) ^ j.astype(np.uint64)
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _strata(biome, region):
    return (np.asarray(biome).astype(np.int64) * 4 + np.asarray(region).astype(np.int64)) % _N_STRATA


def stratum_counts(biome: xr.DataArray, region: xr.DataArray) -> np.ndarray:
    """Pixel count per (biome x region) stratum over the grid, one lazy pass."""
    import dask.array as dsa

    b = biome.data if biome.chunks is not None else dsa.from_array(biome.values)
    r = region.data if region.chunks is not None else dsa.from_array(region.values)
    r = r.rechunk(b.chunks)

    def _count(bb, rr):
        st = _strata(bb, rr)[np.asarray(bb) > 0]
        return np.bincount(st, minlength=_N_STRATA)[None, None, :]

    parts = dsa.map_blocks(_count, b, r, new_axis=2, dtype=np.int64,
                           chunks=((1,) * b.numblocks[0], (1,) * b.numblocks[1], (_N_STRATA,)))
    return np.asarray(parts.sum(axis=(0, 1)).compute())


def inclusion_probabilities(counts: np.ndarray, n_sample: int, min_per_stratum: int) -> np.ndarray:
    """p_h = n_h / N_h with n_h proportional to N_h, at least ``min_per_stratum``, at most N_h;
    1 everywhere when ``n_sample`` is 0 (full grid)."""
    counts = np.asarray(counts, dtype=float)
    if n_sample <= 0:
        return np.ones(counts.size)
    N = counts.sum()
    nh = np.maximum(min_per_stratum, np.round(n_sample * counts / max(N, 1)))
    nh = np.minimum(nh, counts)
    return np.where(counts > 0, nh / np.maximum(counts, 1), 0.0)


# ---------------------------------------------------------------- grid kernel
def _mc_block(biome, region, area, *arrays, members, names, p_table, seed, block_info=None, where=None):
    """Kernel: partial sums of one block, shape (members, 2, year, 4, 1, 1) in g C yr-1:
    [:, 0] the Horvitz-Thompson sum of w Rs (w = area / p), [:, 1] its sampling variance
    sum (1 - p) (w Rs)^2 (0 on the full grid). ``where``: the global (row, column) of each
    cell when the block is the gathered sample (:func:`_take_sample`), not a grid block."""
    b, reg, a = biome[0], region[0], np.broadcast_to(area[0], biome[0].shape)
    drivers = dict(zip(names, arrays))
    ny = arrays[0].shape[0]
    acc = np.zeros((len(members), 2, ny, len(REGIONS)))
    if where is None:
        loc = block_info[0]["array-location"]
        i0, j0 = loc[1][0], loc[2][0]
        ii, jj = np.meshgrid(np.arange(i0, i0 + b.shape[0]), np.arange(j0, j0 + b.shape[1]), indexing="ij")
    else:
        ii, jj = where
    p = p_table[_strata(b, reg)]
    take = (b > 0) & (p > 0)
    if np.any(take & (p < 1)):
        take &= _uniform(seed, ii, jj) < p
    for code in np.unique(b[take]):
        sel = take & (b == code)
        w = a[sel] / p[sel]
        q = (1.0 - p[sel])
        rcol = np.array([_REGION_INDEX.get(int(c), -1) for c in reg[sel]])
        cache: dict[tuple, np.ndarray] = {}
        for k, mods in enumerate(members):
            m = mods.get(int(code))
            if m is None:
                continue
            key = tuple(m.predictors)
            if key not in cache:
                cache[key] = np.stack([drivers[v][:, sel] for v in key], axis=-1).reshape(-1, len(key))
            y = m.predict(cache[key]).reshape(ny, -1)
            wy = np.where(np.isfinite(y), y, 0.0) * w
            var = q * wy * wy
            acc[k, 0, :, 0] += wy.sum(axis=1)
            acc[k, 1, :, 0] += var.sum(axis=1)
            for c in (1, 2, 3):
                mask = rcol == c
                if mask.any():
                    acc[k, 0, :, c] += wy[:, mask].sum(axis=1)
                    acc[k, 1, :, c] += var[:, mask].sum(axis=1)
    return acc[..., None, None]


def _take_sample(biome, region, area, *arrays, i0, j0, p_table, seed):
    """The sampled cells of one grid block (the same selection as :func:`_mc_block`), flat:
    rows, columns, biome, region, area and each driver (year, cells)."""
    b, reg, a = biome[0], region[0], np.broadcast_to(area[0], biome[0].shape)
    ii, jj = np.meshgrid(np.arange(i0, i0 + b.shape[0]), np.arange(j0, j0 + b.shape[1]), indexing="ij")
    p = p_table[_strata(b, reg)]
    take = (b > 0) & (p > 0)
    if np.any(take & (p < 1)):
        take &= _uniform(seed, ii, jj) < p
    return ii[take], jj[take], b[take], reg[take], a[take], [np.asarray(x)[:, take] for x in arrays]


def gather_sample(b3, r3, a3, arrs, p_table, seed: int, parts: int = 8) -> list[tuple]:
    """One pass over the grid that keeps the stratified sample's cells (biome, region, area,
    drivers): the realisations are then evaluated on these ``parts`` pseudo-blocks (shape
    (1, 1, n) / (year, 1, n)) instead of rescanning the whole grid per batch."""
    import dask

    offs = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in b3.chunks[1:]]
    blocks = [dask.delayed(_take_sample, pure=True)(
        b3.blocks[0, i, j], r3.blocks[0, i, j], a3.blocks[0, i, j], *[x.blocks[0, i, j] for x in arrs],
        i0=int(offs[0][i]), j0=int(offs[1][j]), p_table=p_table, seed=seed)
        for i in range(b3.numblocks[1]) for j in range(b3.numblocks[2])]
    got = dask.compute(*blocks)
    cat = [np.concatenate([g[k] for g in got]) for k in range(5)]
    X = [np.concatenate([g[5][v] for g in got], axis=1) for v in range(len(arrs))]
    n = cat[0].size
    out = []
    for sl in np.array_split(np.arange(n), max(1, min(parts, n))):
        out.append(((cat[0][sl][None], cat[1][sl][None]), cat[2][sl][None, None], cat[3][sl][None, None],
                    cat[4][sl][None, None], [x[:, None, sl] for x in X]))
    return out


def _sum_parts(parts):
    return np.sum(parts, axis=0)[..., 0, 0]


def _fit_batch(models, rs, s, training, steps, refits=None, extra=None):
    """The realisation models of ``rs`` and ``(failed refits, {(family, warning): n},
    {(biome, family, form, predictors): times used}, {biome: times its refit failed})``: the
    refits' fitting warnings (an MLP stopping at max_iter on a resample) are counted where they
    are raised, in any worker (:func:`soilresp.models.warns.count_warnings`), not printed."""
    from soilresp.models.warns import count_warnings, fitting

    cache: dict = dict(refits or {})
    out, failed, chosen, unrefitted = [], 0, Counter(), Counter()
    # trial steps of the least-squares solver on resampled data may overflow (RuntimeWarning,
    # dropped in this thread); a failed fit is retried or counted, never silently kept
    with count_warnings(ignore=(RuntimeWarning,)) as counts, np.errstate(over="ignore", invalid="ignore"):
        for r in rs:
            kept: set = set()
            with fitting("Monte Carlo refits"):
                mods, f = realisation_models(models, r, s, training, steps, cache, extra, kept)
            out.append(mods)
            failed += f
            unrefitted.update(kept)
            # a biome whose refits all failed keeps its deployed model: not a choice
            chosen.update((c, m.family, getattr(m, "form", None) or "", ",".join(m.predictors))
                          for c, m in mods.items() if c not in kept)
    return out, (failed, dict(counts), dict(chosen), dict(unrefitted))


def monte_carlo_totals(cube: xr.Dataset, bio: xr.Dataset, models: dict[int, BiomeModel],
                       settings: MCSettings, training: pd.DataFrame | None = None,
                       steps: pd.DataFrame | None = None, progress=None,
                       extra: dict | None = None) -> xr.Dataset:
    """Monte Carlo totals (module docstring).

    Returns a Dataset with ``total`` (realisation, region, year, Pg C yr-1), ``sampling_se``
    (same dims; 0 on the full grid), ``central`` and ``central_sampling_se`` (region, year:
    the fitted models on the same pixels) and attrs ``failed_refits``, ``sample_pixels``,
    ``expected_sample_size``, ``chosen`` (a list of dicts: how often each biome's
    (family, form, predictors) was a realisation's model, the realisations whose refit failed
    left out) and ``unrefitted`` (biome -> realisations whose refit failed and kept the fitted
    model); pop both before writing attrs.
    ``extra``: see :func:`realisation_models` (covariance specs, built here when missing;
    structural candidates; selection-bootstrap pools, required in that mode).
    """
    import dask
    import dask.array as dsa

    s = settings
    say = progress or (lambda *a: None)
    extra = dict(extra or {})
    if s.mode == "covariance" and "covariance" not in extra:
        extra["covariance"] = covariance_specs(models)
    if s.mode == "selection-bootstrap" and "reselect" not in extra:
        raise ValueError("the 'selection-bootstrap' Monte Carlo needs its candidate pools: "
                         "extra={'reselect': reselect_candidates(models, skill, training)[0]}")
    pools = {"structural": "candidates", "selection-bootstrap": "reselect"}
    cand_models = [c for v in extra.get(pools[s.mode], {}).values() for c in v] if s.mode in pools else []
    names = sorted({v for m in list(models.values()) + cand_models for v in m.predictors})
    if s.mode == "paper" and s.qualitative != "none" and training is not None and steps is not None:
        extra = {c for c in steps.get("candidate", pd.Series(dtype=str)).unique() if c in cube}
        names = sorted(set(names) | extra)
    missing = [v for v in names if v not in cube]
    if missing:
        raise KeyError(f"models need driver(s) {missing} that the driver cube lacks")
    biome, region = bio["biome"], bio["region"]
    counts = stratum_counts(biome, region) if s.sample_pixels > 0 else np.zeros(_N_STRATA)
    p_table = inclusion_probabilities(counts, s.sample_pixels, s.min_per_stratum)
    if training is None:
        needs = [c for c, m in models.items()
                 if s.mode in ("bootstrap", "site-bootstrap", "selection-bootstrap")
                 or (s.mode == "paper" and m.family != "nls")
                 or (s.mode == "covariance" and not (c in extra["covariance"] and extra["covariance"][c].usable))]
        if needs and s.n:
            raise ValueError(f"biome {needs[0]}: the {s.mode!r} Monte Carlo of a {models[needs[0]].family!r} "
                             "model needs the training table (sites/training.parquet)")
    first = cube[names[0]]
    if first.chunks is None:
        first = first.chunk({"year": -1})
    chunks = dict(zip(first.dims, first.chunks))
    bchunks = {d: chunks[d] for d in biome.dims}
    area2d = bio["cell_area"].broadcast_like(biome).chunk(bchunks)
    b3 = biome.chunk(bchunks).data[None]
    r3 = region.chunk(bchunks).data[None]
    a3 = area2d.data[None]
    arrs = [cube[v].chunk(chunks).data for v in names]
    ny = arrs[0].shape[0]
    nbi, nbj = arrs[0].numblocks[1], arrs[0].numblocks[2]

    sample = gather_sample(b3, r3, a3, arrs, p_table, s.seed) if s.sample_pixels > 0 else None

    def grid_sums(members_delayed, m):
        if sample is not None:  # the gathered sample, not the grid, once per batch
            return dask.delayed(_sum_parts)([dask.delayed(_mc_block)(
                b, r, a, *xs, members=members_delayed, names=names, p_table=p_table, seed=s.seed, where=w)
                for w, b, r, a, xs in sample])
        out = dsa.map_blocks(
            _mc_block, b3, r3, a3, *arrs, members=members_delayed, names=names, p_table=p_table,
            seed=s.seed, new_axis=[0, 1, 3], dtype=np.float64,
            chunks=((m,), (2,), (ny,), (len(REGIONS),), (1,) * nbi, (1,) * nbj))
        return out.sum(axis=(4, 5))

    central = grid_sums(dask.delayed([models]), 1).compute()[0]
    batches = [list(range(i, min(i + s.batch, s.n))) for i in range(0, s.n, s.batch)]
    # nonlinear realisations are small: all batches run at once (fits in parallel); with
    # machine-learning refits, one batch of models at a time bounds the memory
    # each distinct drawn predictor set is refitted once, in parallel tasks, then shared
    keys = sorted(qualitative_draws(models, s, training, steps))
    parts = [dask.delayed(_refits, pure=True)(models, keys[i::2], training) for i in range(2)] if keys else []
    refits = {k: v for d in dask.compute(*parts) for k, v in d.items()} if parts else None
    light = s.mode == "structural" or (s.mode in ("paper", "covariance") and all(m.family == "nls" for m in models.values()))
    group = max(1, len(batches)) if light else 1
    totals, failed, warned, chosen, unrefitted = [], 0, Counter(), Counter(), Counter()
    for k in range(0, len(batches), group):
        say("Monte Carlo", k, len(batches))
        sums, fails = [], []
        for rs in batches[k:k + group]:
            fit = dask.delayed(_fit_batch, pure=True, nout=2)(models, rs, s, training, steps, refits, extra)
            sums.append(grid_sums(fit[0], len(rs)))
            fails.append(fit[1])
        sums, fails = dask.compute(sums, fails)
        totals += list(sums)
        for n, w, ch, kept in fails:
            failed += int(n)
            warned.update(w)
            chosen.update(ch)
            unrefitted.update(kept)
    say("Monte Carlo", len(batches), len(batches))
    tot = np.concatenate(totals) if totals else np.zeros((0, 2, ny, len(REGIONS)))
    years = cube["year"].values
    dims = ("realisation", "region", "year")
    ds = xr.Dataset(
        {"total": (dims, tot[:, 0].transpose(0, 2, 1) / G_PER_PG),
         "sampling_se": (dims, np.sqrt(tot[:, 1]).transpose(0, 2, 1) / G_PER_PG),
         "central": (("region", "year"), central[0].T / G_PER_PG),
         "central_sampling_se": (("region", "year"), np.sqrt(central[1]).T / G_PER_PG)},
        coords={"realisation": np.arange(tot.shape[0]), "region": list(REGIONS), "year": years})
    for v in ds.data_vars:
        ds[v].attrs["units"] = "Pg C yr-1"
    ds.attrs = {"failed_refits": failed, "sample_pixels": s.sample_pixels,
                "fit_warnings": {f"{fam}: {cat}": int(n) for (fam, cat), n in sorted(warned.items())},
                "expected_sample_size": float((p_table * counts).sum()) if s.sample_pixels else 0.0,
                "mode": s.mode, "param_cv": s.param_cv, "qualitative": s.qualitative,
                "bootstrap_unit": s.bootstrap_unit, "seed": s.seed,
                "chosen": [dict(biome=int(k[0]), family=k[1], form=k[2], predictors=k[3], n_chosen=int(n))
                           for k, n in sorted(chosen.items())],
                "unrefitted": {int(c): int(n) for c, n in sorted(unrefitted.items())}}
    return ds


# ---------------------------------------------------------------- summaries
def summarise_mc(mc: xr.DataArray, central: xr.DataArray | None = None) -> pd.DataFrame:
    """Per region, year: the median and 95 % percentile interval (2.5 / 97.5 %) of the
    realisations (the summaries), and as diagnostics the mean, sd and, given ``central`` (the
    fitted models' totals), ``central_minus_mean`` and ``median_vs_central_pct``
    (100 (median - central) / central)."""
    q = mc.quantile([0.025, 0.5, 0.975], dim="realisation")
    df = pd.DataFrame({
        "mc_median": q.sel(quantile=0.5).drop_vars("quantile").to_series(),
        "mc_lo": q.sel(quantile=0.025).drop_vars("quantile").to_series(),
        "mc_hi": q.sel(quantile=0.975).drop_vars("quantile").to_series(),
        "mc_mean": mc.mean("realisation").to_series(),
        "mc_sd": mc.std("realisation", ddof=1).to_series(),
    })
    if central is not None:
        c = central.to_series().reindex(df.index)
        df["central_minus_mean"] = c - df["mc_mean"]
        df["median_vs_central_pct"] = 100.0 * (df["mc_median"] - c) / c
    return df.reset_index()


def model_error_totals(mc: xr.Dataset, full_totals: xr.DataArray | None = None) -> xr.DataArray:
    """Realisation totals on the scale of the full-grid estimate: on the full grid the
    realisations themselves; from a pixel sample, ``full x realisation / central`` (the
    realisations and the central estimate share the sample, so the ratio carries the model
    error and not the sampling error, which is reported separately)."""
    if not mc.attrs.get("sample_pixels") or full_totals is None:
        return mc["total"]
    return mc["total"] / mc["central"] * full_totals


def realisation_trends(mc_total: xr.DataArray, min_years: int = 3, exact: bool = False) -> pd.DataFrame:
    """Sen slope (Pg C yr-2) and Mann-Kendall p (exact with ``exact``, for tie-free series) of
    each realisation's annual totals, per region: the trend inside each realisation, not the
    trend of pooled realisations."""
    from soilresp import stats

    x = mc_total["year"].values.astype(float)
    t = stats.trend_test(mc_total.transpose("realisation", "region", "year").values, x,
                         min_years=min_years, exact=exact)
    rows = []
    for i, r in enumerate(mc_total["realisation"].values):
        for j, reg in enumerate(mc_total["region"].values):
            rows.append({"realisation": int(r), "region": str(reg), "slope": float(t["slope"][i, j]),
                         "p": float(t["p"][i, j])})
    return pd.DataFrame(rows)


def trend_summary(tr: pd.DataFrame, alpha: float = 0.05, central: dict | None = None) -> pd.DataFrame:
    """Per region: median and 95 % interval of the per-realisation slopes (the summary), the
    mean (diagnostic), the share of positive slopes and of slopes significant at ``alpha``;
    with ``central`` (region -> Sen slope of the central totals) also ``central_slope``."""
    rows = []
    for reg, g in tr.groupby("region", sort=False):
        s = g["slope"].to_numpy()
        row = {"region": reg, "slope_median": float(np.median(s)),
               "slope_lo": float(np.quantile(s, 0.025)), "slope_hi": float(np.quantile(s, 0.975)),
               "slope_mean": float(np.mean(s)),
               "share_positive": float(np.mean(s > 0)),
               "share_significant": float(np.mean(g["p"].to_numpy() < alpha)), "n": int(s.size)}
        if central is not None:
            row["central_slope"] = float(central.get(reg, np.nan))
        rows.append(row)
    return pd.DataFrame(rows)


def central_slopes(central: xr.DataArray, min_years: int = 3) -> dict:
    """Sen slope (Pg C yr-2) of each region's central totals."""
    from soilresp import stats

    x = central["year"].values.astype(float)
    t = stats.trend_test(central.transpose("region", "year").values, x, min_years=min_years)
    return {str(r): float(v) for r, v in zip(central["region"].values, t["slope"])}


# ---------------------------------------------------------------- stage
OUTPUTS = ("mc_summary.parquet", "mc_totals.parquet", "mc_trends.parquet", "mc_trend_summary.parquet",
           "mode_diagnostics.parquet")


def run(ctx) -> None:
    """The uncertainty stage. Writes only below ``uncertainty/`` (the product stage's files
    are read, never rewritten): ``mc_totals.parquet`` (realisations), ``mc_summary.parquet``
    (per mode, region, year: central estimate, median, 95 % interval; mean as a diagnostic),
    ``mc_trends.parquet``, ``mc_trend_summary.parquet`` and ``mode_diagnostics.parquet`` (the
    covariance mode's fit checks, the structural mode's models, and the selection-bootstrap
    mode's candidates with ``n_chosen``, ``share_chosen`` and ``n_unrefitted``)."""
    import warnings

    from soilresp import io
    from soilresp.config import BIOMES
    from soilresp.models import load_biome_models
    from soilresp.trends import use_exact_p

    pc = ctx.cfg.product
    modes = normalise_modes(pc.mc_mode)
    models = load_biome_models(ctx.out / "models", BIOMES)
    cube = io.open_zarr(ctx.path("drivers", "drivers.zarr"))
    bio = io.open_zarr(ctx.path("biomes", "biomes.zarr"), ["biome", "region", "cell_area"])
    tp = ctx.path("sites", "training.parquet")
    training = io.read_table(tp) if tp.is_file() else None
    sp = ctx.path("models", "selection_steps.parquet")
    steps = io.read_table(sp) if sp.is_file() else None
    totals = io.read_table(ctx.path("product", "totals.parquet"), ["region", "year", "total_pg"])
    full = totals.set_index(["region", "year"])["total_pg"].to_xarray()
    exact = use_exact_p(ctx.cfg.run.years[1] - ctx.cfg.run.years[0] + 1, ctx.cfg.trends.mk_exact_max_n)
    all_tot, all_summ, all_tr, all_ts, diags = [], [], [], [], []
    settings = {}
    for mode in modes:
        s = MCSettings.from_config(pc, ctx.cfg.run.seed, mode=mode, resolution=ctx.cfg.grid.resolution,
                                   select_by=ctx.cfg.models.select_by)
        settings[mode] = dict(s.__dict__)
        extra: dict = {}
        if mode == "covariance":
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                extra["covariance"] = covariance_specs(models)
            for w in caught:
                ctx.progress(f"warning: {w.message}", 0, 0)
            diags.append(pd.DataFrame([dict(sp_.row(), mode=mode, kind="covariance")
                                       for sp_ in extra["covariance"].values()]))
        if mode == "structural":
            skp = ctx.path("models", "skill.parquet")
            skill = io.read_table(skp)
            with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                extra["candidates"], listing = structural_candidates(
                    models, skill, training, s.structural_score, s.structural_tolerance)
            diags.append(listing.assign(mode=mode, kind="structural", score_column=s.structural_score,
                                        tolerance=s.structural_tolerance))
        if mode == "selection-bootstrap":
            if training is None:
                raise ValueError("the 'selection-bootstrap' Monte Carlo needs the training table "
                                 "(sites/training.parquet)")
            skill = io.read_table(ctx.path("models", "skill.parquet"))
            with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                mcfg = ctx.cfg.models
                extra["reselect"], listing = reselect_candidates(models, skill, training,
                                                                 mcfg.select_from or mcfg.families)
        mc = monte_carlo_totals(cube, bio, models, s, training, steps, ctx.progress, extra)
        if mode == "selection-bootstrap":
            ch = pd.DataFrame(mc.attrs.pop("chosen"), columns=["biome", "family", "form", "predictors", "n_chosen"])
            listing = listing.merge(ch, on=["biome", "family", "form", "predictors"], how="left")
            listing["n_chosen"] = listing["n_chosen"].fillna(0).astype(int)
            listing["share_chosen"] = listing["n_chosen"] / max(1, s.n)
            # realisations in which no candidate refitted (the deployed model kept)
            listing["n_unrefitted"] = listing["biome"].map(mc.attrs.pop("unrefitted")).fillna(0).astype(int)
            diags.append(listing.assign(mode=mode, kind="selection"))
        fl = full.sel(region=list(REGIONS), year=mc["year"].values)
        tot = model_error_totals(mc, fl)
        df = tot.to_dataframe(name="total_pg").reset_index()
        df = df.merge(mc["sampling_se"].to_dataframe(name="sampling_se_pg").reset_index(),
                      on=["realisation", "region", "year"])
        if s.sample_pixels:
            df = df.merge(mc["total"].to_dataframe(name="sample_total_pg").reset_index(),
                          on=["realisation", "region", "year"])
        all_tot.append(df.assign(mode=mode))
        central = fl if s.sample_pixels else mc["central"]
        summ = summarise_mc(tot, central) if s.n else pd.DataFrame(
            columns=["region", "year", "mc_median", "mc_lo", "mc_hi", "mc_mean", "mc_sd",
                     "central_minus_mean", "median_vs_central_pct"])
        cen = pd.DataFrame({"central_pg": central.to_series(),
                            "sampling_se_pg": mc["central_sampling_se"].to_series()}).reset_index()
        summ = cen.merge(summ, on=["region", "year"], how="left")
        for c in summ.columns.drop(["region", "year"]):
            summ[c] = summ[c].astype(float)
        summ = summ.merge(totals[["region", "year", "total_pg"]], on=["region", "year"], how="left")
        summ["mode"], summ["n"], summ["sample_pixels"] = mode, s.n, s.sample_pixels
        summ["failed_refits"] = int(mc.attrs["failed_refits"])
        for what, n in mc.attrs.get("fit_warnings", {}).items():
            ctx.note("uncertainty", f"{mode}: {what} x {n} (counted, not printed)")
        if mode == "structural":
            summ["models_spanned"] = int(sum(len(v) for v in extra["candidates"].values()))
        all_summ.append(summ)
        cs = central_slopes(central, ctx.cfg.trends.min_years)
        tr = realisation_trends(tot, ctx.cfg.trends.min_years, exact) if s.n else pd.DataFrame(
            columns=["realisation", "region", "slope", "p"])
        all_tr.append(tr.assign(mode=mode))
        ts = trend_summary(tr, ctx.cfg.trends.alpha, cs) if s.n else pd.DataFrame(
            {"region": list(cs), "central_slope": list(cs.values())})
        all_ts.append(ts.assign(mode=mode, p_exact=exact))
    prov = ctx.prov("uncertainty", mc=settings, modes=modes)
    io.write_table(ctx.path("uncertainty", "mc_totals.parquet"), pd.concat(all_tot, ignore_index=True), prov)
    io.write_table(ctx.path("uncertainty", "mc_summary.parquet"), pd.concat(all_summ, ignore_index=True), prov)
    io.write_table(ctx.path("uncertainty", "mc_trends.parquet"), pd.concat(all_tr, ignore_index=True), prov)
    io.write_table(ctx.path("uncertainty", "mc_trend_summary.parquet"), pd.concat(all_ts, ignore_index=True), prov)
    dg = pd.concat(diags, ignore_index=True) if diags else pd.DataFrame({"mode": pd.Series(dtype=str),
                                                                        "kind": pd.Series(dtype=str)})
    io.write_table(ctx.path("uncertainty", "mode_diagnostics.parquet"), dg, prov)
