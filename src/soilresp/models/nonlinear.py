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
so the problem is well conditioned; reported parameters are in the original units. Parameters
are bounded (see ``_BOUNDS``) so that a small sample cannot produce a degenerate optimum.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

FORMS = {"eq1": ("a", "b"), "eq2": ("a", "b", "c"), "eq3": ("a", "b", "c", "d", "e"),
         "eq4": ("a", "b", "c", "d", "e", "f")}
N_INPUTS = {"eq1": 1, "eq2": 1, "eq3": 2, "eq4": 3}


# Bounds keep fits physical (Q10 = exp(10 b) within exp(+-10); |c| <= 0.05 degC-2; M, P terms
# on scaled inputs); a degenerate optimum on a bound is reported by ``at_bound_``.
_BOUNDS = (np.array([1e-6, -1.0, -0.05, -20.0, -20.0, -np.inf]),
           np.array([1e6, 1.0, 0.05, 20.0, 20.0, np.inf]))


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


class NonlinearRs(RegressorMixin, BaseEstimator):
    """Huang et al. 2020 Eq 1-4 regression, fitted by nonlinear least squares.

    Parameters
    ----------
    form : {"eq1", "eq2", "eq3", "eq4"}
    max_nfev : int
        Maximum function evaluations of the least-squares solver.

    Attributes
    ----------
    params_ : ndarray, parameters in original units (names in :data:`FORMS`).
    cov_ : ndarray, parameter covariance (original units) from the Jacobian at the optimum.
    stderr_ : ndarray, standard errors.
    q10_ : float, exp(10 b) (temperature sensitivity, meaningful for eq1).
    """

    def __init__(self, form: str = "eq2", max_nfev: int = 2000):
        self.form = form
        self.max_nfev = max_nfev

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
        y = np.asarray(y, dtype=float)
        ok = np.isfinite(X).all(axis=1) & np.isfinite(y) & (y > 0)
        X, y = X[ok], y[ok]
        npar = len(FORMS[self.form])
        if y.size < npar + 2:
            raise FitError(f"{self.form}: {y.size} usable observations, need at least {npar + 2}")
        T = X[:, 0]
        sm = float(np.std(X[:, 1])) if X.shape[1] > 1 else 1.0
        sp = float(np.std(X[:, 2])) if X.shape[1] > 2 else 1.0
        sm, sp = (sm if sm > 0 else 1.0), (sp if sp > 0 else 1.0)
        M = X[:, 1] / sm if X.shape[1] > 1 else None
        P = X[:, 2] / sp if X.shape[1] > 2 else None
        # start: OLS of log(y) on the exponent's terms
        cols = [np.ones_like(T), T]
        if self.form != "eq1":
            cols.append(T * T)
        if self.form in ("eq3", "eq4"):
            cols += [M, M * M]
        A = np.column_stack(cols)
        beta, *_ = np.linalg.lstsq(A, np.log(y), rcond=None)
        q0 = np.concatenate([[np.exp(beta[0])], beta[1:]])
        if self.form == "eq4":
            q0 = np.concatenate([q0, [0.0]])
            q0[0] *= 0.7
            resid = y - predict_form("eq3", q0[:5], T, M)
            q0[5] = max(0.0, float(np.dot(P, resid) / np.dot(P, P)))

        def f(q):
            return predict_form(self.form, q, T, M, P) - y

        lb, ub = _BOUNDS[0][:npar], _BOUNDS[1][:npar]
        q0 = np.clip(np.nan_to_num(q0, nan=0.0), lb + 1e-12, ub - 1e-12)
        try:
            res = least_squares(f, q0, bounds=(lb, ub), method="trf", max_nfev=self.max_nfev,
                                x_scale="jac")
        except ValueError as e:
            raise FitError(f"{self.form}: least squares failed: {e}") from None
        if not res.success or not np.all(np.isfinite(res.x)):
            raise FitError(f"{self.form}: no convergence ({res.message})")
        q = res.x
        dof = max(1, y.size - npar)
        s2 = 2 * res.cost / dof
        try:
            covq = np.linalg.pinv(res.jac.T @ res.jac) * s2
        except np.linalg.LinAlgError:
            covq = np.full((npar, npar), np.nan)
        scale = np.ones(npar)
        if self.form in ("eq3", "eq4"):
            scale[3], scale[4] = 1 / sm, 1 / sm**2
        if self.form == "eq4":
            scale[5] = 1 / sp
        self.params_ = _scaled_params(self.form, q, sm, sp)
        self.cov_ = covq * np.outer(scale, scale)
        self.stderr_ = np.sqrt(np.clip(np.diag(self.cov_), 0, None))
        self.q10_ = float(np.exp(10 * self.params_[1]))
        self.n_obs_ = int(y.size)
        self.at_bound_ = bool(np.any(np.isclose(q, lb) | np.isclose(q, ub)))
        self.n_features_in_ = X.shape[1]
        return self

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
                "at_bound": self.at_bound_}
