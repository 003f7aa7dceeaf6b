"""Nonlinear Rs regressions of Huang et al. 2020 (Eq 1-4) as scikit-learn estimators.

Forms implemented (Rs in g C m-2 yr-1; T temperature in degC; M a moisture variable in its
own units; P a productivity variable in its own units)::

    eq1:  Rs = a * exp(b*T)                                   (Q10 = exp(10*b))
    eq2:  Rs = a * exp(b*T + c*T**2)
    eq3:  Rs = a * exp(b*T + c*T**2) * exp(d*M + e*M**2)
    eq4:  Rs = a * exp(b*T + c*T**2) * exp(d*M + e*M**2) + f*P

``X`` columns are, in order, T; T, M; or T, M, P. Fitted by nonlinear least squares
(:func:`scipy.optimize.least_squares`, trust-region reflective, a > 0) from starting values
of a log-linear OLS fit. Internally M and P are divided by a scale (their standard deviation)
and T is taken about an anchor temperature, so the problem is well conditioned and the Q10
bound is a box bound; reported parameters are in the original units. The response is
physically bounded by default (``t_response="concave"``: c <= 0, e <= 0, f >= 0, Q10 at the
median training T within 1-6); see :class:`NonlinearRs`. A fit with a parameter on a bound
sets ``at_bound_`` (not eligible for selection) and says why in ``bound_reason_``; c, e or f
held at 0 by the shape constraint is not degenerate (the term drops out), nor is Q10 held at 1
where Rs then cannot fall with T (Eq 1, c = 0, or ``monotone``); c on its box limit is dropped
and the fit redone (``t2_dropped_``). The temperature sensitivity of every
form is :func:`effective_q10` (exp(10 d ln Rs / dT), which depends on T for Eq 2-4).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

FORMS = {"eq1": ("a", "b"), "eq2": ("a", "b", "c"), "eq3": ("a", "b", "c", "d", "e"),
         "eq4": ("a", "b", "c", "d", "e", "f")}
N_INPUTS = {"eq1": 1, "eq2": 1, "eq3": 2, "eq4": 3}


# Bounds of the internal parameters (a', s, c, d, e, f): a' and s at the anchor temperature,
# d, e on the scaled M. The slope s is bounded by the Q10 range (t_response "concave" or
# "monotone"); c <= 0 and e <= 0 make the response concave (no growth without bound as T or M
# leaves its range). "free" keeps the former box: |s| <= 1, |c| <= 0.05, |d|, |e| <= 20.
_A_BOUNDS = (1e-6, 1e6)
_C_MAX = 0.05
_DE_MAX = 20.0
T_RESPONSES = ("concave", "monotone", "free")


def _bounds(form: str, t_response: str, q10_range) -> tuple[np.ndarray, np.ndarray]:
    """Lower/upper bounds of the internal parameters of ``form`` (see module docstring)."""
    if t_response == "free":
        lo = [_A_BOUNDS[0], -1.0, -_C_MAX, -_DE_MAX, -_DE_MAX, -np.inf]
        hi = [_A_BOUNDS[1], 1.0, _C_MAX, _DE_MAX, _DE_MAX, np.inf]
    else:
        s_lo, s_hi = (np.log(q) / 10.0 for q in q10_range)
        lo = [_A_BOUNDS[0], s_lo, -_C_MAX, -_DE_MAX, -_DE_MAX, 0.0]
        hi = [_A_BOUNDS[1], s_hi, 0.0, _DE_MAX, 0.0, np.inf]
    k = len(FORMS[form])
    return np.array(lo[:k]), np.array(hi[:k])


_BOUND_NAMES = {0: "a", 1: "Q10 at the anchor temperature", 2: "c (T^2 term)", 3: "d (M term)",
                4: "e (M^2 term)", 5: "f (P term)"}


def dlnrs_dt(form: str, params, T, M=None, P=None) -> np.ndarray:
    """d ln Rs / dT (degC-1) of Eq 1-4 at (T, M, P), analytic.

    Eq 1-3: b + 2 c T. Eq 4: the exponential part's share of Rs times b + 2 c T (the f P term
    does not depend on T).
    """
    p = np.asarray(params, dtype=float)
    g = p[1] + (2 * p[2] * np.asarray(T, dtype=float) if form != "eq1" else 0.0)
    if form == "eq4":
        core = predict_form("eq3", p[:5], T, M)
        g = g * core / (core + p[5] * np.asarray(P, dtype=float))
    return np.asarray(g, dtype=float)


def effective_q10(form: str, params, T, M=None, P=None) -> np.ndarray:
    """Temperature sensitivity Q10(T) = exp(10 d ln Rs / dT) (Lloyd & Taylor 1994; Davidson &
    Janssens 2006): Eq 1's exp(10 b) for Eq 1, temperature-dependent for Eq 2-4."""
    return np.exp(10.0 * dlnrs_dt(form, params, T, M, P))


class FitError(RuntimeError):
    """A nonlinear fit did not converge or is degenerate."""


def predict_form(form: str, params, T, M=None, P=None) -> np.ndarray:
    """Evaluate Eq 1-4 (pure numpy; broadcasting); see module docstring for the forms."""
    p = list(params)
    with np.errstate(over="ignore", invalid="ignore"):
        if form == "eq1":
            return p[0] * np.exp(p[1] * T)
        core = p[0] * np.exp(p[1] * T + p[2] * T * T)
        if form == "eq2":
            return core
        core = core * np.exp(p[3] * M + p[4] * M * M)
        if form == "eq3":
            return core
        if form == "eq4":
            return core + p[5] * P
    raise ValueError(f"unknown form {form!r}; expected one of {sorted(FORMS)}")


def _scaled_params(form: str, q: np.ndarray, sm: float, sp: float) -> np.ndarray:
    """Parameters in original units from those fitted on M/sm and P/sp."""
    p = np.array(q, dtype=float)
    if form in ("eq3", "eq4"):
        p[3] = q[3] / sm
        p[4] = q[4] / sm**2
    if form == "eq4":
        p[5] = q[5] / sp
    return p


def _lower_tol(lb: np.ndarray) -> np.ndarray:
    return 1e-6 * np.maximum(1.0, np.abs(np.where(np.isfinite(lb), lb, 0)))


def _on_bound(q, lb, ub) -> list[int]:
    """Indices of the internal parameters on a lower or upper bound (relative tolerance 1e-6)."""
    tol = _lower_tol(lb)
    return [k for k in range(q.size) if (np.isfinite(lb[k]) and abs(q[k] - lb[k]) <= tol[k])
            or (np.isfinite(ub[k]) and abs(q[k] - ub[k]) <= 1e-6 * max(1.0, abs(ub[k])))]


class NonlinearRs(RegressorMixin, BaseEstimator):
    """Huang et al. 2020 Eq 1-4 regression, fitted by bounded nonlinear least squares.

    Internally the temperature term is written about an anchor temperature r,
    ``a' exp(s (T - r) + c (T - r)^2)``, so that ``s`` is d ln Rs / dT at r and its bound is
    the Q10 range: ``exp(10 s)`` within ``q10_range``. The reported parameters are those of
    the paper's form (``b = s - 2 c r``, ``a = a' exp(-s r + c r^2)``), covariance propagated
    by the Jacobian of that map.

    Parameters
    ----------
    form : {"eq1", "eq2", "eq3", "eq4"}
    max_nfev : int
        Maximum function evaluations of the least-squares solver.
    t_response : {"concave", "monotone", "free"}
        ``concave`` (default): c <= 0 and e <= 0 (Rs cannot grow without bound as T or M leave
        their range), f >= 0, Q10 at the median training T within ``q10_range``.
        ``monotone``: the same with the Q10 bound at the warmest training T, so with c <= 0
        d ln Rs / dT >= ln(q10_range[0]) / 10 at every T of the training range.
        ``free``: the former box (|b| <= 1, |c| <= 0.05, |d|, |e| <= 20), unconstrained shape.
    q10_range : (float, float)
        Plausible Q10 (default 1-6; Davidson & Janssens 2006, Hamdi et al. 2013).

    Attributes
    ----------
    params_ : ndarray, parameters in original units (names in :data:`FORMS`).
    cov_ : ndarray, parameter covariance (original units): s^2 (J'J)^-1 over the free
        parameters at the optimum (J the residuals' Jacobian, s^2 = RSS / (n - free)),
        propagated to the paper's parameters; a parameter held by a sign constraint
        (``shape_bound_``, or Q10 held at 1) has no variance of its own.
    stderr_ : ndarray, standard errors (0 for a held parameter).
    x_ref_ : ndarray, median of each input over the fitted rows (T degC, M, P).
    q10_ : float, effective Q10 = exp(10 d ln Rs / dT) at ``x_ref_`` (:func:`effective_q10`).
    at_bound_ : bool, a parameter sits on a bound that makes the fit degenerate (a, the Q10
        range, the box limits); ``bound_reason_`` says which. A shape constraint holding c, e
        or f at 0 (the term drops out: a nested simpler form), or Q10 at 1 where Rs cannot
        then fall with T, is listed in ``shape_bound_`` and ``bound_reason_`` but is not
        degenerate.
    t2_dropped_ : bool, c reached its box limit and the fit was redone with c = 0.
    dependent_ : list, parameters that are exact functions of others at the fit (``b`` when
        Q10 is held at 1 at the anchor and c is free: b = -2 c r); their correlation of 1
        with them is no sign of an unidentified fit.
    train_min_, train_max_ : ndarray, range of each input over the fitted rows.
    """

    def __init__(self, form: str = "eq2", max_nfev: int = 2000, t_response: str = "concave",
                 q10_range: tuple = (1.0, 6.0)):
        self.form = form
        self.max_nfev = max_nfev
        self.t_response = t_response
        self.q10_range = q10_range

    def _validate(self, X):
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {sorted(FORMS)}, got {self.form!r}")
        X = np.asarray(X, dtype=float)
        if X.ndim == 1:
            X = X[:, None]
        k = N_INPUTS[self.form]
        if X.shape[1] != k:
            raise ValueError(f"{self.form} needs {k} input column(s), got {X.shape[1]}")
        return X

    def fit(self, X, y):
        X = self._validate(X)
        if self.t_response not in T_RESPONSES:
            raise ValueError(f"t_response must be one of {T_RESPONSES}, got {self.t_response!r}")
        qlo, qhi = (float(v) for v in self.q10_range)
        if not 0 < qlo < qhi:
            raise ValueError(f"q10_range must satisfy 0 < low < high, got {self.q10_range!r}")
        y = np.asarray(y, dtype=float)
        ok = np.isfinite(X).all(axis=1) & np.isfinite(y) & (y > 0)
        X, y = X[ok], y[ok]
        npar = len(FORMS[self.form])
        if y.size < npar + 2:
            raise FitError(f"{self.form}: {y.size} usable observations, need at least {npar + 2}")
        T = X[:, 0]
        r = float(np.max(T)) if self.t_response == "monotone" else float(np.median(T))
        Tc = T - r
        sm = float(np.std(X[:, 1])) if X.shape[1] > 1 else 1.0
        sp = float(np.std(X[:, 2])) if X.shape[1] > 2 else 1.0
        sm, sp = (sm if sm > 0 else 1.0), (sp if sp > 0 else 1.0)
        M = X[:, 1] / sm if X.shape[1] > 1 else None
        P = X[:, 2] / sp if X.shape[1] > 2 else None
        # start: OLS of log(y) on the exponent's terms (T about the anchor)
        cols = [np.ones_like(Tc), Tc]
        if self.form != "eq1":
            cols.append(Tc * Tc)
        if self.form in ("eq3", "eq4"):
            cols += [M, M * M]
        A = np.column_stack(cols)
        beta, *_ = np.linalg.lstsq(A, np.log(y), rcond=None)
        q0 = np.concatenate([[np.exp(beta[0])], beta[1:]])
        if self.form == "eq4":
            q0 = np.concatenate([q0, [0.0]])
            q0[0] *= 0.7
            resid = y - predict_form("eq3", q0[:5], Tc, M)
            q0[5] = max(0.0, float(np.dot(P, resid) / np.dot(P, P)))

        def f(q):
            return predict_form(self.form, q, Tc, M, P) - y

        lb, ub = _bounds(self.form, self.t_response, (qlo, qhi))

        def solve(lb, ub, q0):
            span = np.where(np.isfinite(ub - lb), ub - lb, 1.0)
            q0 = np.clip(np.nan_to_num(q0, nan=0.0), lb + 1e-9 * span, ub - 1e-9 * span)
            try:
                res = least_squares(f, q0, bounds=(lb, ub), method="trf", max_nfev=self.max_nfev,
                                    x_scale="jac")
            except ValueError as e:
                raise FitError(f"{self.form}: least squares failed: {e}") from None
            if not res.success or not np.all(np.isfinite(res.x)):
                raise FitError(f"{self.form}: no convergence ({res.message})")
            return res

        res = solve(lb, ub, q0)
        # c on its box limit |c| = 0.05 (a hump a few degC wide: the T^2 term is not
        # identified, typically a narrow T range): drop the term (c = 0, the nested form
        # without it) and refit; recorded in bound_reason_ (backward elimination).
        self.t2_dropped_ = False
        if self.form != "eq1" and abs(abs(res.x[2]) - _C_MAX) <= 1e-6:   # the on-bound tolerance below
            lb2, ub2 = lb.copy(), ub.copy()
            lb2[2], ub2[2] = -1e-12, 1e-12
            q1 = res.x.copy()
            q1[2] = 0.0
            try:
                res2 = solve(lb2, ub2, q1)
            except FitError:
                res2 = None   # keep the first fit, refused as on a bound
            if res2 is not None:
                res, lb, ub = res2, lb2, ub2
                res.x[2] = 0.0
                self.t2_dropped_ = True
        q = res.x
        held = self._held(q, lb, ub, qlo)
        free = np.array([k not in held for k in range(npar)])
        # covariance over the free parameters only; a held one (c, e, f at 0, Q10 at 1, c
        # dropped) is a constraint, not an estimate: zero variance, no degree of freedom
        dof = max(1, y.size - int(free.sum()))
        s2 = 2 * res.cost / dof
        covq = np.zeros((npar, npar))
        try:
            jf = res.jac[:, free]
            covq[np.ix_(free, free)] = np.linalg.pinv(jf.T @ jf) * s2
        except np.linalg.LinAlgError:
            covq = np.full((npar, npar), np.nan)
        # internal (a', s, c, d', e', f') -> paper's (a, b, c, d, e, f), and its Jacobian
        p = _scaled_params(self.form, q, sm, sp)
        c = q[2] if self.form != "eq1" else 0.0
        p[0] = q[0] * np.exp(-q[1] * r + c * r * r)
        p[1] = q[1] - 2 * c * r
        J = np.zeros((npar, npar))
        J[0, 0] = p[0] / q[0]
        J[0, 1] = -r * p[0]
        J[1, 1] = 1.0
        if self.form != "eq1":
            J[0, 2] = r * r * p[0]
            J[1, 2] = -2 * r
            J[2, 2] = 1.0
        if self.form in ("eq3", "eq4"):
            J[3, 3], J[4, 4] = 1 / sm, 1 / sm**2
        if self.form == "eq4":
            J[5, 5] = 1 / sp
        self.params_ = p
        self.cov_ = J @ covq @ J.T
        self.stderr_ = np.sqrt(np.clip(np.diag(self.cov_), 0, None))
        self.x_ref_ = np.median(X, axis=0)
        self.train_min_, self.train_max_ = X.min(axis=0), X.max(axis=0)
        self.q10_ = float(effective_q10(self.form, p, *self.x_ref_))
        self.n_obs_ = int(y.size)
        tol = _lower_tol(lb)
        on = _on_bound(q, lb, ub)
        shape = self._held(q, lb, ub, qlo)
        hard = [k for k in on if k not in shape]
        self.at_bound_ = bool(hard)
        # b is listed (held in covariance draws) only when the whole T term is 0 (b = s - 2 c r)
        self.shape_bound_ = [FORMS[self.form][k] for k in shape if k != 1 or 2 in shape or self.form == "eq1"]
        # Q10 held at 1 with c free (monotone): b = -2 c r is a function of c, not an estimate
        self.dependent_ = ["b"] if 1 in shape and 2 not in shape and self.form != "eq1" else []
        self.bound_reason_ = "; ".join(
            ([f"c (T^2 term) on its box limit {_C_MAX:g}: refitted without it (c = 0)"] if self.t2_dropped_ else [])
            + [f"{_BOUND_NAMES[k]} at its {'lower' if abs(q[k] - lb[k]) <= tol[k] else 'upper'} bound"
               + (f" (Q10 {np.exp(10 * q[1]):.3g} at {r:.3g} degC)" if k == 1 else "") for k in hard]
            + [("Q10 held at 1 at the anchor temperature by the shape constraint (Rs does not fall as T "
                "rises; no temperature response there)" if k == 1 else
                f"{_BOUND_NAMES[k]} held at 0 by the shape constraint (term drops out)")
               for k in shape if not (k == 2 and self.t2_dropped_)])
        self.n_features_in_ = X.shape[1]
        return self

    def _held(self, q, lb, ub, qlo) -> list[int]:
        """Internal parameters held by a sign constraint (set ``t2_dropped_`` first): c = 0,
        e = 0 (concavity), f = 0 and, when ``q10_range`` starts at 1, Q10 = 1 where Rs then
        cannot fall as T rises. Such a bound leaves a simpler nested form, a valid model; any
        other bound (a, the Q10 plausibility limits, the box limits of c, d, e) is a
        degenerate optimum."""
        on = _on_bound(q, lb, ub)
        zero = {2, 4, 5} if self.t_response != "free" else set()
        if self.t2_dropped_:
            zero = zero | {2}
        shape = [k for k in on if k in zero and abs(q[k]) <= 1e-6]
        # Q10 held at 1 is a sign constraint (Rs never falls as T rises over the training
        # range) for Eq 1, with the T^2 term at 0, or with the anchor at the warmest T
        # (monotone); a concave hump pinned at the median T is a forced optimum, refused
        if (self.t_response != "free" and qlo == 1.0 and 1 in on and abs(q[1]) <= 1e-6
                and (self.form == "eq1" or 2 in shape or self.t_response == "monotone")):
            shape.append(1)
        return shape

    def predict(self, X):
        check_is_fitted(self, "params_")
        X = self._validate(X)
        cols = [X[:, i] for i in range(X.shape[1])]
        return predict_form(self.form, self.params_, *cols)

    def to_dict(self) -> dict:
        """JSON-able description: form, parameter names/values, covariance, standard errors."""
        check_is_fitted(self, "params_")
        return {"family": "nls", "form": self.form, "param_names": list(FORMS[self.form]),
                "params": self.params_.tolist(), "stderr": self.stderr_.tolist(),
                "cov": self.cov_.tolist(), "q10": self.q10_, "n_obs": self.n_obs_,
                "x_ref": np.asarray(getattr(self, "x_ref_", []), dtype=float).tolist(),
                "t_response": self.t_response, "q10_range": [float(v) for v in self.q10_range],
                "at_bound": self.at_bound_, "bound_reason": getattr(self, "bound_reason_", ""),
                "shape_bound": list(getattr(self, "shape_bound_", [])),
                "t2_dropped": bool(getattr(self, "t2_dropped_", False)),
                "dependent": list(getattr(self, "dependent_", []))}


def constant_model(y, T) -> NonlinearRs:
    """The biome-mean model as a fitted Eq 1 with b = 0: Rs = a = mean(y) whatever T (degC).

    The documented fallback when no candidate beats the mean (docs/models.md §6); written as
    Eq 1 so that it is stored, loaded and Monte-Carlo-perturbed like any Eq 1-4 model.
    ``cov``: Var(a) = s² / n, b fixed (0)."""
    y = np.asarray(y, dtype=float)
    T = np.asarray(T, dtype=float)
    ok = np.isfinite(y) & (y > 0)
    if not ok.any():
        raise FitError("biome mean: no observation with Rs > 0")
    y = y[ok]
    m = NonlinearRs("eq1", t_response="free")
    m.params_ = np.array([float(y.mean()), 0.0])
    var_a = float(y.var(ddof=1) / y.size) if y.size > 1 else 0.0
    m.cov_ = np.array([[var_a, 0.0], [0.0, 0.0]])
    m.stderr_ = np.sqrt(np.diag(m.cov_))
    t = T[ok] if T.shape == ok.shape else T
    m.x_ref_ = np.array([float(np.nanmedian(t))]) if np.isfinite(t).any() else np.array([np.nan])
    m.train_min_ = np.array([float(np.nanmin(t))]) if np.isfinite(t).any() else np.array([np.nan])
    m.train_max_ = np.array([float(np.nanmax(t))]) if np.isfinite(t).any() else np.array([np.nan])
    m.q10_ = 1.0
    m.n_obs_ = int(y.size)
    m.at_bound_ = False
    m.bound_reason_ = ""
    m.n_features_in_ = 1
    return m
