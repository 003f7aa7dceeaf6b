"""Bootstrap confidence interval for the trend of ONE short, possibly autocorrelated series
(a regional or global annual total).

Method: prewhitened moving-block bootstrap-t of the Theil-Sen slope.

1. Fit the Theil-Sen line ``a + b x`` (:func:`soilresp.stats.sens_slope`); residuals
   ``e_t`` (centred).
2. Prewhiten with an AR(1): ``phi`` = lag-1 autocorrelation of ``e`` with Kendall's (1954)
   small-sample bias correction ``r1 + (1 + 3 r1) / n``, clipped to [-0.9, 0.9];
   innovations ``u_t = e_t - phi e_{t-1}`` (centred).
3. Resample the innovations with the moving-block bootstrap (Kuensch 1989): blocks of
   ``block_length`` consecutive innovations, drawn with replacement from the ``n - 1 - l + 1``
   overlapping blocks, concatenated; re-colour them through the AR(1) with a burn-in of 30
   values ("post-blackening", Davison & Hinkley 1997, sec. 8.2.3) to get ``e*``, and
   ``y* = a + b x + e*``. Blocks keep any dependence the AR(1) leaves in the innovations.
4. Studentize (bootstrap-t; Hall 1988): ``se(b) = sqrt(s_e^2 (1 + phi)/(1 - phi) / Sxx)``
   computed the same way on the original and on every resample; the interval is
   ``[b - t*_{1-alpha/2} se, b - t*_{alpha/2} se]`` with ``t* = (b* - b) / se*``; the
   p-value of H0 "no trend" is ``(1 + #{|t*| >= |b/se|}) / (n_boot + 1)``.

The series is never resampled as iid (year, value) pairs: with n = 15 that ignores
autocorrelation and, for percentile intervals, covers the true slope far less than the
nominal 95 %. The default block length is ``round(n^(1/3))`` (the optimal order for
distribution estimation, Hall, Horowitz & Jing 1995): 2 for n = 15, 4 for n = 58. In a
simulation with AR(1) errors (n = 15, 1000 series, 1000 resamples each) the 95 % interval
covered the true slope in 94.2 % of series for phi = 0, 93.7 % for phi = 0.3 and 91.2 % for
phi = 0.6 (``tests/test_stats_bootstrap.py`` checks phi = 0.3); an iid residual bootstrap
with percentile intervals covers about 77 % at phi = 0.3.
"""

from __future__ import annotations

import math

import numpy as np

from soilresp.stats._util import check_alpha, check_int, check_x
from soilresp.stats.trend import sens_slope

_BURN = 30
_PHI_MAX = 0.9


def default_block_length(n: int) -> int:
    """``max(1, round(n ** (1/3)))`` blocks for ``n`` years (2 for n = 15)."""
    return max(1, int(round(n ** (1.0 / 3.0))))


def _phi(e: np.ndarray) -> np.ndarray:
    """Bias-corrected lag-1 autocorrelation along the last axis (rows of zeros -> 0)."""
    n = e.shape[-1]
    c = e - e.mean(axis=-1, keepdims=True)
    den = np.sum(c * c, axis=-1)
    num = np.sum(c[..., 1:] * c[..., :-1], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    r = r + (1.0 + 3.0 * r) / n
    return np.clip(r, -_PHI_MAX, _PHI_MAX)


def _se(e: np.ndarray, sxx: float, phi: np.ndarray) -> np.ndarray:
    n = e.shape[-1]
    c = e - e.mean(axis=-1, keepdims=True)
    s2 = np.sum(c * c, axis=-1) / (n - 2)
    return np.sqrt(s2 * (1.0 + phi) / (1.0 - phi) / sxx)


def bootstrap_trend_ci(y, x=None, *, n_boot: int = 1000, block_length: int | None = None,
                       alpha: float = 0.05, seed: int = 0, min_years: int = 5) -> dict:
    """Confidence interval and p-value for the Theil-Sen trend of one series (1-D).

    See the module docstring for the method (prewhitened moving-block bootstrap-t).

    Parameters
    ----------
    y : 1-D series (e.g. global annual soil respiration, Pg C yr-1); non-finite values are
        missing years and are dropped (the AR(1) then treats consecutive available years as
        adjacent).
    x : time values (default ``arange(n)``), 1-D, finite, strictly increasing.
    n_boot : number of resamples (>= 10).
    block_length : innovations per block; default :func:`default_block_length` of the
        number of years used; must be <= n - 1.
    alpha : 1 - confidence level.
    seed : seed of ``numpy.random.default_rng``; the result is a deterministic function of
        (y, x, n_boot, block_length, alpha, seed).
    min_years : fewer finite years give NaN results (>= 4).

    Returns
    -------
    dict with ``slope`` (Theil-Sen, y per unit x), ``intercept``, ``lo``, ``hi`` (interval
    for the slope), ``p`` (two-sided bootstrap p of zero trend), ``block_length`` (used),
    ``phi`` (AR(1) coefficient used), ``n`` (years used), ``n_boot``.
    """
    ya = np.asarray(y)
    if ya.dtype.kind not in "biuf":
        raise TypeError(f"y must be real numbers, got dtype {ya.dtype}")
    if ya.ndim != 1:
        raise ValueError(f"bootstrap_trend_ci takes ONE series (1-D), got shape {ya.shape}")
    ya = ya.astype(np.float64)
    xa = check_x(x, ya.shape[0])
    n_boot = check_int(n_boot, "n_boot", 10)
    alpha = check_alpha(alpha)
    min_years = check_int(min_years, "min_years", 4)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    ok = np.isfinite(ya)
    yv = ya[ok]
    xv = xa[ok]
    n = int(yv.size)
    if block_length is not None:
        block_length = check_int(block_length, "block_length", 1)
    nan = math.nan
    out = {"slope": nan, "intercept": nan, "lo": nan, "hi": nan, "p": nan,
           "block_length": block_length if block_length is not None else
           default_block_length(n), "phi": nan, "n": n, "n_boot": n_boot}
    if n < min_years:
        return out
    L = out["block_length"]
    if L > n - 1:
        raise ValueError(f"block_length={L} exceeds the {n - 1} innovations of a {n}-year "
                         "series")
    fit = sens_slope(yv, xv)
    b = float(fit.slope)
    a = float(fit.intercept)
    out["slope"], out["intercept"] = b, a
    e = yv - (a + b * xv)
    e = e - e.mean()
    sxx = float(np.sum((xv - xv.mean()) ** 2))
    if not np.any(e != 0.0):
        # exact straight line (or constant): no sampling variability to resample
        out.update(lo=b, hi=b, phi=0.0, p=1.0 if b == 0.0 else 1.0 / (n_boot + 1))
        return out
    phi = float(_phi(e))
    out["phi"] = phi
    u = e[1:] - phi * e[:-1]
    u = u - u.mean()
    m = u.size
    rng = np.random.default_rng(seed)
    tot = n + _BURN
    nb = -(-tot // L)
    starts = rng.integers(0, m - L + 1, size=(n_boot, nb))
    idx = (starts[:, :, None] + np.arange(L)).reshape(n_boot, -1)[:, :tot]
    us = u[idx]
    es = np.empty((n_boot, tot))
    es[:, 0] = us[:, 0]
    for t in range(1, tot):
        es[:, t] = phi * es[:, t - 1] + us[:, t]
    es = es[:, _BURN:]
    # Theil-Sen is regression-equivariant: Sen(a + b x + e*) = b + Sen(e*)
    b0 = sens_slope(es, xv).slope
    se = float(_se(e, sxx, np.asarray(phi)))
    ee = es - b0[:, None] * xv
    se_star = _se(ee, sxx, _phi(ee))
    with np.errstate(invalid="ignore", divide="ignore"):
        tstar = b0 / se_star
    tstar = tstar[np.isfinite(tstar)]
    if tstar.size < 10 or not (se > 0):
        return out
    qlo, qhi = np.quantile(tstar, [alpha / 2.0, 1.0 - alpha / 2.0])
    out["lo"] = b - qhi * se
    out["hi"] = b - qlo * se
    tobs = abs(b / se)
    out["p"] = float((1 + np.count_nonzero(np.abs(tstar) >= tobs)) / (tstar.size + 1))
    return out
