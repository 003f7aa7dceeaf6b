"""Per-pixel monotonic-trend statistics on arrays shaped ``(..., year)``.

* Mann-Kendall test (Mann 1945; Kendall 1975), two-sided, with the tie-corrected variance
  and the continuity-corrected z, as in pyMannKendall's ``original_test`` (Hussain & Mahmud
  2019) and Gilbert (1987).
* Theil-Sen slope (Theil 1950; Sen 1968) with Sen's distribution-free confidence interval,
  as in ``scipy.stats.theilslopes``.
* Optional exact null distribution of S for short series without ties, and the
  autocorrelation-corrected variances of Hamed & Rao (1998) and Yue & Wang (2004).
* Trend classes of Huang et al. (2020, Fig. 2B) and net change.

Units: ``slope``, ``slope_lo`` and ``slope_hi`` are in units of ``y`` per unit of ``x``
(per year when ``x`` holds years or is the default ``arange(n)`` of consecutive years);
``intercept`` is in units of ``y``; ``s`` is a count of pairs; ``z`` is a standard-normal
deviate; ``p`` and ``tau`` are dimensionless.

Missing data: any non-finite value (NaN, ±inf) is a missing year. A pixel is computed on
its available years when at least ``min_years`` remain, otherwise every statistic is NaN
(``n`` still reports the count). A constant series gives ``s = 0``, ``z = 0``, ``p = 1``,
``tau = 0``, slope 0 and a zero-width interval, without warnings.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from scipy.stats import norm

from soilresp.stats import _kernels as K
from soilresp.stats._util import as_pixels, check_alpha, check_int, check_x

#: Longest series for which ``exact=True`` uses the exact null distribution of S.
EXACT_MAX_N = 60

#: Series longer than this sort their pairwise slopes per pixel instead of with a network.
_NETWORK_MAX_N = 100


class MKResult(NamedTuple):
    """Mann-Kendall statistics; each field has the input's leading shape.

    s : Mann-Kendall S = sum over pairs i<j of sign(y_j - y_i) (float, NaN if too few years)
    var_s : Var(S) under H0 with the tie correction (Kendall 1975, eq. 4.3)
    z : (S - sign(S)) / sqrt(Var(S)), 0 when S = 0 (continuity correction)
    p : two-sided p-value, 2 * (1 - Phi(|z|)) (or exact, see ``mann_kendall``)
    tau : Kendall's tau-a = S / (n (n - 1) / 2)
    n : number of years used (int32), reported even when the statistics are NaN
    """

    s: np.ndarray
    var_s: np.ndarray
    z: np.ndarray
    p: np.ndarray
    tau: np.ndarray
    n: np.ndarray


class SenResult(NamedTuple):
    """Theil-Sen line; each field has the input's leading shape (float64).

    slope : median of the pairwise slopes (y_j - y_i) / (x_j - x_i), i < j
    intercept : median(y) - slope * median(x) (Conover 1980), over the years used
    lo, hi : Sen (1968) confidence limits of the slope at level 1 - alpha
    """

    slope: np.ndarray
    intercept: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


class ModifiedMKResult(NamedTuple):
    """Autocorrelation-corrected Mann-Kendall; like :class:`MKResult` plus ``ratio`` = n/n*,
    the variance inflation factor applied to Var(S)."""

    s: np.ndarray
    var_s: np.ndarray
    z: np.ndarray
    p: np.ndarray
    tau: np.ndarray
    n: np.ndarray
    ratio: np.ndarray


@lru_cache(maxsize=None)
def _networks(n: int):
    q = n * (n - 1) // 2
    if n > _NETWORK_MAX_N:
        dummy = np.zeros(0, np.int64)
        return dummy, dummy, dummy, dummy, False
    ci, cj = K.sorting_network(max(q, 1))
    ciy, cjy = K.sorting_network(max(n, 1))
    return ci, cj, ciy, cjy, True


@lru_cache(maxsize=64)
def _norm_ppf(q: float) -> float:
    return float(norm.ppf(q))


def _run_trend(y, x, alpha, min_years, want_sen):
    Y, lead = as_pixels(y)
    n = Y.shape[1]
    xv = check_x(x, n)
    alpha = check_alpha(alpha)
    min_years = check_int(min_years, "min_years", 2)
    zq = _norm_ppf(alpha / 2.0)
    ci, cj, ciy, cjy, use_net = _networks(n)
    out = K.trend_kernel(Y, xv, min_years, zq, want_sen, ci, cj, ciy, cjy, use_net)
    return [o.reshape(lead) for o in out]


@lru_cache(maxsize=None)
def _exact_cdf(n: int) -> np.ndarray:
    """P(I <= i), i = 0 .. n(n-1)/2, for the number of inversions I of a uniformly random
    permutation of n items (the null distribution of S = n(n-1)/2 - 2 I without ties)."""
    dist = np.ones(1)
    for k in range(2, n + 1):
        c = np.concatenate([[0.0], np.cumsum(dist)])
        m = dist.size + k - 1
        i = np.arange(m)
        hi = np.minimum(i, dist.size - 1) + 1
        lo = np.maximum(i - (k - 1), 0)
        dist = (c[hi] - c[lo]) / k
    return np.cumsum(dist)


def mk_exact_p(s, n) -> np.ndarray:
    """Exact two-sided p-value P(|S| >= |s|) of the Mann-Kendall S for ``n`` distinct values
    (Kendall 1975, ch. 4: S = n(n-1)/2 - 2 I, I the inversion count of a random
    permutation). ``s`` and ``n`` broadcast; NaN where ``n`` > :data:`EXACT_MAX_N`, n < 2 or
    ``s`` is NaN."""
    s = np.asarray(s, dtype=np.float64)
    n = np.asarray(n)
    s, n = np.broadcast_arrays(s, n)
    out = np.full(s.shape, np.nan)
    ok = np.isfinite(s) & (n >= 2) & (n <= EXACT_MAX_N)
    for nn in np.unique(n[ok]):
        sel = ok & (n == nn)
        tot = nn * (nn - 1) // 2
        cdf = _exact_cdf(int(nn))
        a = np.abs(s[sel])
        c = np.floor((tot - a) / 2.0 + 1e-9).astype(np.int64)  # I <= (tot - |s|) / 2
        c = np.clip(c, 0, tot)
        p = np.minimum(1.0, 2.0 * cdf[c])
        p[a == 0] = 1.0
        out[sel] = p
    return out


def mann_kendall(y, *, min_years: int = 3, exact: bool = False) -> MKResult:
    """Two-sided Mann-Kendall trend test for every series along the last axis.

    Formulas (Mann 1945; Kendall 1975; Gilbert 1987, ch. 16):
    ``S = sum_{i<j} sign(y_j - y_i)``;
    ``Var(S) = [n(n-1)(2n+5) - sum_g t_g(t_g-1)(2t_g+5)] / 18`` over groups of tied values
    (exact float equality); ``z = (S - 1)/sqrt(Var S)`` if S > 0, ``(S + 1)/sqrt(Var S)``
    if S < 0, else 0; ``p = 2 (1 - Phi(|z|))``; ``tau = S / (n(n-1)/2)`` (tau-a).
    These equal ``pymannkendall.original_test`` to rounding error.

    Parameters
    ----------
    y : array (..., n), any real dtype (float32 accepted; computed in float64). Non-finite
        values are missing years.
    min_years : pixels with fewer finite values give NaN (>= 2).
    exact : if True, pixels without ties and with at most :data:`EXACT_MAX_N` years get the
        exact permutation p-value P(|S| >= |s|) (no continuity correction needed); pixels
        with ties keep the normal approximation.

    Raises
    ------
    ValueError for a 0-d ``y`` or ``min_years`` < 2; TypeError for a non-real dtype.
    """
    s, v, z, p, tau, n, *_rest, ties = _run_trend(y, None, 0.05, min_years, False)
    if exact:
        use = np.isfinite(s) & ~ties & (n <= EXACT_MAX_N)
        if np.any(use):
            p = p.copy()
            p[use] = mk_exact_p(s[use], n[use])
    return MKResult(s, v, z, p, tau, n)


def sens_slope(y, x=None, *, alpha: float = 0.05, min_years: int = 3) -> SenResult:
    """Theil-Sen slope, intercept and Sen's (1968) confidence interval per series.

    * slope: median of ``(y_j - y_i) / (x_j - x_i)`` over all pairs i < j of available
      years (Theil 1950; Sen 1968); the median of an even number of slopes is the mean of the
      two middle ones (numpy's convention).
    * intercept: ``median(y) - slope * median(x)`` over the available years (Conover 1980,
      scipy's ``method='separate'``; pyMannKendall's convention with ``x = arange(n)``).
      It is the value of the line at ``x = 0``: pass ``x`` relative to a reference year if
      you want the value there.
    * interval: Sen (1968) eq. 2.6 with the tie correction, ranks as in
      ``scipy.stats.theilslopes``: with N = number of pairwise slopes,
      ``C = -Phi^-1(alpha/2) * sqrt(Var S)``, the limits are the sorted slopes at 0-based
      positions ``round((N - C)/2) - 1`` and ``round((N + C)/2)`` (round half to even,
      clipped to [0, N-1]).

    ``x`` are the time values (default ``arange(n)``): 1-D, one per year, finite and
    strictly increasing. Slopes are in units of y per unit of x.
    """
    out = _run_trend(y, x, alpha, min_years, True)
    return SenResult(out[6], out[7], out[8], out[9])


def trend_test(y, x=None, *, alpha: float = 0.05, min_years: int = 3, exact: bool = False,
               fdr: bool = False) -> dict:
    """Mann-Kendall test and Theil-Sen line in one pass (see :func:`mann_kendall` and
    :func:`sens_slope` for the formulas and conventions).

    Returns a dict of arrays with the input's leading shape: ``s, z, p, tau, n, slope,
    intercept, slope_lo, slope_hi``; with ``fdr=True`` also ``q``, the Benjamini-Hochberg
    q-values of ``p`` over all pixels (field significance; :func:`soilresp.stats.fdr_bh`).
    ``alpha`` sets the level of the slope interval (and of nothing else).
    """
    s, v, z, p, tau, n, sl, ic, lo, hi, ties = _run_trend(y, x, alpha, min_years, True)
    if exact:
        use = np.isfinite(s) & ~ties & (n <= EXACT_MAX_N)
        if np.any(use):
            p = p.copy()
            p[use] = mk_exact_p(s[use], n[use])
    out = {"s": s, "z": z, "p": p, "tau": tau, "n": n, "slope": sl, "intercept": ic,
           "slope_lo": lo, "slope_hi": hi}
    if fdr:
        from soilresp.stats.fdr import fdr_bh

        out["q"] = fdr_bh(p, alpha)[1]
    return out


def _modified(y, variant, lag, alpha, min_years):
    alpha = check_alpha(alpha)
    min_years = check_int(min_years, "min_years", 3)
    if lag is None:
        lagv = 0
    else:
        lagv = check_int(lag, "lag", 1)
    Y, lead = as_pixels(y)
    n = Y.shape[1]
    ci, cj, ciy, cjy, use_net = _networks(n)
    s, v, _z, _p, tau, nn, slope, *_rest = K.trend_kernel(
        Y, np.arange(n, dtype=np.float64), min_years, -1.96, True, ci, cj, ciy, cjy, use_net)
    zc = _norm_ppf(1.0 - alpha / 2.0)
    var_c, z, p, ratio = K.modified_mk_kernel(Y, s, v, slope, variant, lagv, zc)
    return ModifiedMKResult(*[o.reshape(lead) for o in (s, var_c, z, p, tau, nn, ratio)])


def mann_kendall_hamed_rao(y, *, lag: int | None = None, alpha: float = 0.05,
                           min_years: int = 3) -> ModifiedMKResult:
    """Mann-Kendall with the Hamed & Rao (1998) variance correction for autocorrelation.

    The series is detrended with its Sen slope (``y_i - (i+1) * slope`` on the available
    values), ranked (average ranks), and the lag-k autocorrelations r_k of the ranks that
    are significant at ``alpha`` (|r_k| > Phi^-1(1 - alpha/2)/sqrt(n)) enter
    ``n/n* = 1 + 2/(n(n-1)(n-2)) sum_k (n-k)(n-k-1)(n-k-2) r_k``; ``Var*(S) = Var(S) n/n*``.
    ``lag`` = number of lags considered (default: all, 1..n-1, as pyMannKendall); Hamed &
    Rao suggest 3. Matches ``pymannkendall.hamed_rao_modification_test`` on complete series.

    Caveats for n = 15: each r_k is estimated from 15 - k pairs, so the significance screen
    (|r_k| > 0.51 at alpha = 0.05) keeps only large, noisy autocorrelations; the correction
    is unstable, can be < 1 (deflating the variance) and, rarely, makes Var* <= 0 (then z and
    p are NaN). Use it for sensitivity analysis, not as the default test. With missing years
    the ACF is computed on the available values as if consecutive.
    """
    return _modified(y, 1, lag, alpha, min_years)


def mann_kendall_yue_wang(y, *, lag: int | None = None, min_years: int = 3) -> ModifiedMKResult:
    """Mann-Kendall with the Yue & Wang (2004) effective-sample-size correction.

    The series is detrended with its Sen slope and ``n/n* = 1 + 2 sum_k (1 - k/n) r_k`` from
    the sample autocorrelations r_k of the detrended values (biased estimator); ``Var*(S) =
    Var(S) n/n*``. ``lag`` = number of lags (default all, as pyMannKendall; Yue & Wang use
    the lag-1 term, ``lag=1``). Matches ``pymannkendall.yue_wang_modification_test`` on
    complete series.

    Caveats for n = 15: r_1 is biased low by (1 + 3 phi)/n or more, so the correction is
    under-sized for positive autocorrelation; summing all lags adds noise and can make
    n/n* <= 0 (z and p then NaN). Sensitivity analysis only.
    """
    return _modified(y, 2, lag, 0.05, min_years)


# --------------------------------------------------------------------------------------
# Trend classes (Huang et al. 2020, Fig. 2B)
# --------------------------------------------------------------------------------------
#: int8 code of each trend class.
TREND_CLASS_LABELS: dict[int, str] = {
    2: "significant increase",
    1: "slight increase",
    0: "stable",
    -1: "slight decrease",
    -2: "significant decrease",
}
#: Code for pixels whose slope or p is NaN (too few years).
TREND_CLASS_NODATA = -128


def trend_class(slope, p, *, alpha: float = 0.05, slight_alpha: float = 0.5,
                significant=None) -> np.ndarray:
    """Five trend classes as in Huang et al. (2020), Fig. 2B.

    Rule (direction from the sign of the Theil-Sen slope, strength from the Mann-Kendall p):

    * ``p < alpha`` and slope > 0: 2 significant increase (slope < 0: -2 significant decrease)
    * ``alpha <= p < slight_alpha`` and slope > 0: 1 slight increase (< 0: -1 slight decrease)
    * otherwise (``p >= slight_alpha`` or slope == 0): 0 stable
    * slope or p NaN: :data:`TREND_CLASS_NODATA` (-128)

    The defaults (0.05, 0.5) are the project's configuration (``[trends] alpha`` and
    ``slight_alpha``). ``significant`` (bool array, optional) overrides ``p < alpha`` for
    the significant classes, e.g. the Benjamini-Hochberg rejections of :func:`fdr_bh`;
    "slight" then means not significant and ``p < slight_alpha``.
    Returns an int8 array of the broadcast shape of ``slope`` and ``p``.
    """
    alpha = check_alpha(alpha)
    if not (isinstance(slight_alpha, (int, float)) and alpha <= slight_alpha <= 1.0):
        raise ValueError(f"slight_alpha must be in [alpha, 1], got {slight_alpha!r}")
    slope = np.asarray(slope, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    slope, p = np.broadcast_arrays(slope, p)
    if significant is None:
        sig = p < alpha
    else:
        sig = np.broadcast_to(np.asarray(significant, dtype=bool), slope.shape)
    slight = ~sig & (p < slight_alpha)
    mag = np.where(sig, 2, np.where(slight, 1, 0)).astype(np.int8)
    out = (np.sign(np.nan_to_num(slope)).astype(np.int8) * mag).astype(np.int8)
    return np.where(np.isnan(slope) | np.isnan(p), np.int8(TREND_CLASS_NODATA), out)


def net_change(slope, n_years):
    """Net change over a period: ``slope * (n_years - 1)`` (units of y), i.e. the change of
    the trend line between the first and the last of ``n_years`` consecutive years
    (Huang et al. 2020). ``slope`` in y per year."""
    return np.asarray(slope) * (np.asarray(n_years) - 1)
