"""Detrended partial correlation of a response with each of k drivers, per pixel.

For driver j, the partial correlation r_j is the Pearson correlation of the response and
driver j after both are regressed on the other k - 1 drivers, an intercept and, with
``detrend=True``, a linear function of time (Frisch-Waugh-Lovell: removing a linear trend
from every series first and then partialling out the other drivers gives the same r as
adding time as one more covariate). The test statistic is
``t = r sqrt(df / (1 - r^2))`` with ``df = n - 2 - (k - 1) - detrend`` (Student t, two-sided),
as in ``pingouin.partial_corr`` with time as a covariate.

Huang et al. (2020, Fig. 6) mark partial correlations beyond +-0.51 as significant for
n = 15 at p = 0.05: that is the critical value of a plain correlation (df = 13,
``critical_r(15, 0, detrend=False)``). With six drivers and detrending the correct
threshold is ``critical_r(15, 5) = 0.67`` (df = 7). This module never uses the paper's
thresholds by default.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats

from soilresp.stats import _kernels as K
from soilresp.stats._util import check_alpha, check_int, writable_f64


class PCResult(NamedTuple):
    """Partial correlations.

    r : (..., k) partial correlation of the response with each driver (dimensionless)
    p : (..., k) two-sided p-value (Student t)
    df : degrees of freedom for a complete series, ``n - 2 - (k - 1) - detrend``; a pixel
        with missing years uses ``m - 2 - (k - 1) - detrend`` for its m complete years
        (see :func:`complete_years`).
    """

    r: np.ndarray
    p: np.ndarray
    df: int


def _prepare(y, X):
    ya = np.asarray(y)
    Xa = np.asarray(X)
    for name, a in (("y", ya), ("X", Xa)):
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be real numbers, got dtype {a.dtype}")
    if ya.ndim < 1:
        raise ValueError("y must have the year axis last, shape (..., n)")
    if Xa.ndim < 2:
        raise ValueError("X must be shaped (..., k, n): drivers on the second-to-last axis")
    n = ya.shape[-1]
    if Xa.shape[-1] != n:
        raise ValueError(f"y has {n} years but X has {Xa.shape[-1]}")
    k = Xa.shape[-2]
    if k < 1:
        raise ValueError("X must hold at least one driver")
    try:
        lead = np.broadcast_shapes(ya.shape[:-1], Xa.shape[:-2])
    except ValueError as e:
        raise ValueError(f"leading shapes of y {ya.shape[:-1]} and X {Xa.shape[:-2]} do not "
                         "broadcast") from e
    P = int(np.prod(lead, dtype=np.int64)) if lead else 1
    Y = writable_f64(np.broadcast_to(ya, lead + (n,)).reshape(P, n))
    XX = writable_f64(np.broadcast_to(Xa, lead + (k, n)).reshape(P, k, n))
    return Y, XX, lead, k, n


def partial_corr(y, X, *, detrend: bool = True, min_years: int | None = None) -> PCResult:
    """Partial correlation of ``y`` with each driver in ``X`` controlling for the others.

    Parameters
    ----------
    y : (..., n) response (e.g. annual soil respiration), any real dtype.
    X : (..., k, n) drivers; leading shapes broadcast with ``y``'s.
    detrend : also control for a linear trend in time (counted as one control in df).
        Time is the position along the year axis (equal spacing assumed).
    min_years : least number of complete years (all k + 1 series finite) for a pixel to be
        computed; default and minimum ``k + 2 + detrend`` (df >= 1).

    Returns :class:`PCResult`. Degenerate pixels (too few years; a constant series; a series
    that is an exact linear trend when detrending; drivers numerically collinear, i.e. one
    explained to 1 - 1e-12 by the others) give NaN for all k drivers, as
    ``pingouin.partial_corr`` does for constant columns.

    Method: each series is residualised on [1, t] (or centred), scaled to unit norm, the
    (k+1)x(k+1) correlation matrix R of the residuals is inverted by Cholesky, and
    ``r_j = -P_0j / sqrt(P_00 P_jj)``, ``P = R^-1`` (e.g. Whittaker 1990); p from the
    Student t with df degrees of freedom (closed form for integer df, Abramowitz & Stegun
    26.7). Equals ``pingouin.partial_corr(..., covar=[other drivers, time])`` to ~1e-12.
    """
    Y, XX, lead, k, n = _prepare(y, X)
    detrend = bool(detrend)
    need = k + 2 + int(detrend)
    if min_years is None:
        min_years = need
    else:
        min_years = max(check_int(min_years, "min_years", 1), need)
    r, p, _m = K.partial_corr_kernel(Y, XX, detrend, min_years)
    df = n - 2 - (k - 1) - int(detrend)
    return PCResult(r.reshape(lead + (k,)), p.reshape(lead + (k,)), int(df))


def complete_years(y, X) -> np.ndarray:
    """Number of years where the response and all drivers are finite, shape ``(...)``."""
    Y, XX, lead, k, n = _prepare(y, X)
    ok = np.isfinite(Y) & np.all(np.isfinite(XX), axis=1)
    return ok.sum(axis=-1).astype(np.int32).reshape(lead)


def critical_r(n: int, k_controls: int, alpha: float = 0.05, detrend: bool = True) -> float:
    """Critical |r| of a two-sided partial-correlation test.

    ``df = n - 2 - k_controls - detrend``; ``r_c = t_c / sqrt(df + t_c^2)`` with
    ``t_c = t_{1 - alpha/2, df}``. ``k_controls`` counts the control variables besides the
    linear trend (k drivers -> k - 1). Examples: ``critical_r(15, 0, detrend=False)`` =
    0.514 (the ±0.51 of Huang et al. 2020, Fig. 6, a plain correlation with df = 13);
    ``critical_r(15, 5)`` = 0.666 (six drivers, detrended, df = 7).
    Raises ValueError if df < 1.
    """
    n = check_int(n, "n", 1)
    k_controls = check_int(k_controls, "k_controls", 0)
    alpha = check_alpha(alpha)
    df = n - 2 - k_controls - int(bool(detrend))
    if df < 1:
        raise ValueError(f"no degrees of freedom left: n={n}, k_controls={k_controls}, "
                         f"detrend={detrend} gives df={df}")
    t = stats.t.ppf(1.0 - alpha / 2.0, df)
    return float(t / np.sqrt(df + t * t))


def t_pvalue(t, df) -> np.ndarray:
    """Two-sided Student-t p-value ``P(|T| >= |t|)`` for integer ``df`` >= 1 (closed form,
    Abramowitz & Stegun 26.7.3-4; the function the kernels use). NaN where df < 1."""
    t, df = np.broadcast_arrays(np.asarray(t, dtype=np.float64), np.asarray(df))
    out = K.t_two_sided_p_array(writable_f64(t.ravel()), np.array(df.ravel(), dtype=np.int64))
    return out.reshape(t.shape)
