"""numba kernels: pure functions, 2-D float64 arrays in, arrays out.

Every kernel works on ``Y`` shaped ``(pixels, n)`` (C-contiguous float64) and loops over pixels
with ``prange`` in blocks, so each thread owns its scratch buffers. Non-finite values (NaN,
±inf) are missing years. The public wrappers in :mod:`soilresp.stats.trend`,
:mod:`soilresp.stats.partial` and :mod:`soilresp.stats.bootstrap` validate arguments,
reshape and convert dtypes; the kernels assume valid arguments.

The arithmetic deliberately follows the reference implementations operation by operation
(pyMannKendall 1.4 for S, Var(S), z and Sen's slope; ``scipy.stats.theilslopes`` for the
Sen (1968) interval; pingouin's t-test for partial correlations) so the results agree to
rounding error.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_BLOCK = 256  # pixels per parallel work item (each item allocates its own buffers)
_SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------------------
# scalar helpers
# --------------------------------------------------------------------------------------
@njit(cache=True, inline="always", error_model="numpy")
def _median_sorted(a, m):
    """Median of the first ``m`` entries of the sorted 1-D array ``a`` (numpy's convention:
    mean of the two middle values when ``m`` is even)."""
    h = m // 2
    if m % 2 == 1:
        return a[h]
    return (a[h - 1] + a[h]) / 2.0


@njit(cache=True, error_model="numpy")
def _shellsort(a, m):
    """Sort a[:m] in place (Shell sort with Knuth's gaps 1, 4, 13, ...; no NaN). Small code
    that compiles fast; used only off the hot path (long series)."""
    gap = 1
    while gap < m // 3:
        gap = 3 * gap + 1
    while gap >= 1:
        for i in range(gap, m):
            v = a[i]
            j = i
            while j >= gap and a[j - gap] > v:
                a[j] = a[j - gap]
                j -= gap
            a[j] = v
        gap //= 3


@njit(cache=True, error_model="numpy")
def _t_two_sided_p(t, df):
    """Two-sided p-value of Student's t with integer ``df`` >= 1: ``P(|T| >= |t|)``.

    Closed form of Abramowitz & Stegun (1964) 26.7.3-26.7.4 (finite series in
    ``cos(theta)``, ``theta = atan(|t| / sqrt(df))``); absolute error ~1e-15.
    """
    if not math.isfinite(t):
        if math.isnan(t):
            return math.nan
        return 0.0
    at = abs(t)
    theta = math.atan(at / math.sqrt(df))
    c = math.cos(theta)
    s = math.sin(theta)
    c2 = c * c
    if df % 2 == 1:
        # A = 2/pi * (theta + sin * (cos + 2/3 cos^3 + ... ))
        acc = 0.0
        if df > 1:
            term = c
            acc = term
            k = 3
            while k <= df - 2:
                term = term * c2 * (k - 1) / k
                acc += term
                k += 2
        a = 2.0 / math.pi * (theta + s * acc)
    else:
        # A = sin * (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
        term = 1.0
        acc = 1.0
        k = 2
        while k <= df - 2:
            term = term * c2 * (k - 1) / k
            acc += term
            k += 2
        a = s * acc
    p = 1.0 - a
    if p < 0.0:
        p = 0.0
    return p


@njit(cache=True, error_model="numpy")
def t_two_sided_p_array(t, df):
    """Vectorised :func:`_t_two_sided_p` (``t`` and ``df`` 1-D of equal length)."""
    out = np.empty(t.shape[0])
    for i in range(t.shape[0]):
        if df[i] < 1:
            out[i] = math.nan
        else:
            out[i] = _t_two_sided_p(t[i], df[i])
    return out


# --------------------------------------------------------------------------------------
# Sorting networks
# --------------------------------------------------------------------------------------
def sorting_network(size):
    """Comparator pairs (i, j), i < j, of Batcher's odd-even merge sort for ``size`` inputs.

    Built for the next power of two and pruned: when the unused top positions hold +inf,
    every comparator touching them is a no-op. Returns two int64 arrays (CI, CJ).
    """
    big = 1
    while big < size:
        big *= 2
    pairs = []
    p = 1
    while p < big:
        k = p
        while k >= 1:
            for j in range(k % p, big - k, 2 * k):
                for i in range(min(k, big - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < size:
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return np.ascontiguousarray(arr[:, 0]), np.ascontiguousarray(arr[:, 1])


@njit(cache=True, error_model="numpy")
def _network_sort_lanes(A, CI, CJ):
    """Sort every column of ``A`` (rows = items, columns = independent lanes) with the
    comparator network (CI, CJ). Branch-free; the loop over lanes vectorises. Items must not
    be NaN (callers map padding to +inf)."""
    W = A.shape[1]
    for k in range(CI.shape[0]):
        a = A[CI[k]]
        b = A[CJ[k]]
        for w in range(W):
            u = a[w]
            v = b[w]
            # "+ 0.0" keeps LLVM from turning the store into a masked (conditional) store,
            # which is microcoded and very slow on AMD cores; it only maps -0.0 to +0.0.
            a[w] = min(u, v) + 0.0
            b[w] = max(u, v) + 0.0


LANES = 32  # pixels processed together (one SIMD-friendly column each)


@njit(parallel=True, cache=True, error_model="numpy")
def trend_kernel(Y, x, min_years, zq, want_sen, CI, CJ, CIy, CJy, use_net):
    """Mann-Kendall S, Var(S) (tie-corrected), z, two-sided p, tau-a; Sen slope, intercept
    and the Sen (1968) confidence interval, for every row of ``Y``.

    Pixels are processed in groups of ``LANES``; within a group the pairwise loops and the
    sorting network run across pixels (vectorisable, branch-free).

    Parameters
    ----------
    Y : (P, n) float64; non-finite = missing.
    x : (n,) float64, strictly increasing (time values).
    min_years : int; rows with fewer finite values give NaN (``n`` still reported).
    zq : float, ``norm.ppf(alpha / 2)`` (negative) for the slope interval.
    want_sen : compute the Sen outputs (else they are NaN).
    CI, CJ : sorting network for n(n-1)/2 items; CIy, CJy : for n items.
    use_net : use the networks (small n) or a per-pixel sort (large n).

    Returns
    -------
    s, var_s, z, p, tau, n (int32), slope, intercept, lo, hi, ties (bool: any tied values)
    """
    P, n = Y.shape
    W = LANES
    s_o = np.full(P, np.nan)
    v_o = np.full(P, np.nan)
    z_o = np.full(P, np.nan)
    p_o = np.full(P, np.nan)
    tau_o = np.full(P, np.nan)
    sl_o = np.full(P, np.nan)
    ic_o = np.full(P, np.nan)
    lo_o = np.full(P, np.nan)
    hi_o = np.full(P, np.nan)
    n_o = np.zeros(P, np.int32)
    tie_o = np.zeros(P, np.bool_)
    q0 = n * (n - 1) // 2
    ngroups = (P + W - 1) // W
    per = 8  # groups per parallel work item
    nitems = (ngroups + per - 1) // per
    for it in prange(nitems):
        T = np.empty((n, W))
        X = np.empty((n, W))
        Ys = np.empty((n, W))
        A = np.empty((q0, W))
        cnt = np.zeros((n, W), np.int64)
        sv = np.zeros(W, np.int64)
        M = np.zeros(W, np.int64)
        col = np.empty(max(q0, n))
        for g in range(it * per, min(ngroups, it * per + per)):
            p0 = g * W
            # 1. compact each pixel's finite values to the top of its column
            for w in range(W):
                i = p0 + w
                m = 0
                if i < P:
                    for t in range(n):
                        v = Y[i, t]
                        if math.isfinite(v):
                            T[m, w] = v
                            X[m, w] = x[t]
                            m += 1
                    n_o[i] = m
                M[w] = m
                for t in range(m, n):
                    T[t, w] = np.nan
                    X[t, w] = 0.0
            # 2. Mann-Kendall: S and tie-group sizes (NaN padding compares false)
            for w in range(W):
                sv[w] = 0
            for t in range(n):
                ct = cnt[t]
                for w in range(W):
                    ct[w] = 0
            for a in range(n - 1):
                ta = T[a]
                ca = cnt[a]
                for c in range(a + 1, n):
                    tc = T[c]
                    cc = cnt[c]
                    for w in range(W):
                        ya = ta[w]
                        yc = tc[w]
                        sv[w] += (yc > ya) - (yc < ya)
                        e = yc == ya
                        ca[w] += e
                        cc[w] += e
            if want_sen:
                # 3. pairwise slopes; padding pairs -> +inf (sort to the end)
                q = 0
                for a in range(n - 1):
                    ta = T[a]
                    xa = X[a]
                    for c in range(a + 1, n):
                        tc = T[c]
                        xc = X[c]
                        aq = A[q]
                        for w in range(W):
                            d = (tc[w] - ta[w]) / (xc[w] - xa[w])
                            aq[w] = d if d == d else np.inf
                        q += 1
                for t in range(n):
                    tt = T[t]
                    yt = Ys[t]
                    for w in range(W):
                        v = tt[w]
                        yt[w] = v if v == v else np.inf
                if use_net:
                    _network_sort_lanes(A, CI, CJ)
                    _network_sort_lanes(Ys, CIy, CJy)
                else:
                    for w in range(W):
                        if M[w] >= 2:
                            for u in range(q0):
                                col[u] = A[u, w]
                            _shellsort(col, q0)
                            for u in range(q0):
                                A[u, w] = col[u]
                            for u in range(n):
                                col[u] = Ys[u, w]
                            _shellsort(col, n)
                            for u in range(n):
                                Ys[u, w] = col[u]
            # 4. per-pixel statistics
            for w in range(W):
                i = p0 + w
                m = M[w]
                if i >= P or m < min_years or m < 2:
                    continue
                tsum = 0
                for t in range(m):
                    ct = cnt[t, w]
                    tsum += ct * (2 * ct + 7)
                base = m * (m - 1) * (2 * m + 5)
                s = sv[w]
                var_s = (base - tsum) / 18.0
                tie_o[i] = tsum > 0
                s_o[i] = s
                v_o[i] = var_s
                tau_o[i] = s / (0.5 * m * (m - 1))
                if s > 0:
                    z = (s - 1) / math.sqrt(var_s)
                elif s < 0:
                    z = (s + 1) / math.sqrt(var_s)
                else:
                    z = 0.0
                z_o[i] = z
                p_o[i] = math.erfc(abs(z) / _SQRT2)
                if want_sen:
                    qm = m * (m - 1) // 2
                    h = qm // 2
                    if qm % 2 == 1:
                        slope = A[h, w]
                    else:
                        slope = (A[h - 1, w] + A[h, w]) / 2.0
                    sl_o[i] = slope
                    hm = m // 2
                    if m % 2 == 1:
                        medy = Ys[hm, w]
                        medx = X[hm, w]
                    else:
                        medy = (Ys[hm - 1, w] + Ys[hm, w]) / 2.0
                        medx = (X[hm - 1, w] + X[hm, w]) / 2.0
                    ic_o[i] = medy - slope * medx
                    # Sen (1968) eq. 2.6 exactly as scipy.stats.theilslopes (x has no ties)
                    sigsq = (1.0 / 18.0) * (base - tsum)
                    sigma = math.sqrt(sigsq)
                    ru = int(np.rint((qm - zq * sigma) / 2.0))
                    if ru > qm - 1:
                        ru = qm - 1
                    rl = int(np.rint((qm + zq * sigma) / 2.0)) - 1
                    if rl < 0:
                        rl = 0
                    lo_o[i] = A[rl, w]
                    hi_o[i] = A[ru, w]
    return s_o, v_o, z_o, p_o, tau_o, n_o, sl_o, ic_o, lo_o, hi_o, tie_o


# --------------------------------------------------------------------------------------
# Autocorrelation-corrected Mann-Kendall (Hamed & Rao 1998; Yue & Wang 2004)
# --------------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def _acf(v, m, nlags, out):
    """Sample autocorrelation r_0..r_nlags of v[:m] (biased autocovariance / n, as in
    pyMannKendall and statsmodels ``acf(adjusted=False)``)."""
    mu = 0.0
    for t in range(m):
        mu += v[t]
    mu /= m
    c0 = 0.0
    for t in range(m):
        c0 += (v[t] - mu) * (v[t] - mu)
    c0 /= m
    for k in range(nlags + 1):
        ck = 0.0
        for t in range(m - k):
            ck += (v[t] - mu) * (v[t + k] - mu)
        ck /= m
        out[k] = ck / c0


@njit(parallel=True, cache=True, error_model="numpy")
def modified_mk_kernel(Y, s_in, var_in, slope_in, variant, lag, zcrit):
    """Variance-corrected Mann-Kendall, given S, Var(S) and the Sen slope of every row
    (from :func:`trend_kernel`; NaN rows are skipped).

    ``variant`` 1 = Hamed & Rao (1998): ACF of the (average) ranks of the Sen-detrended
    series, only lags whose |r_k| exceeds ``zcrit / sqrt(n)`` count;
    ``n/n* = 1 + 2/(n(n-1)(n-2)) sum (n-k)(n-k-1)(n-k-2) r_k``. ``variant`` 2 = Yue & Wang
    (2004): ACF of the detrended values, ``n/n* = 1 + 2 sum (1 - k/n) r_k``. ``lag`` <= 0
    means all lags 1..n-1 (pyMannKendall's default), else lags 1..lag. Detrending uses
    ``y_i - (i+1) * slope`` on the available values (pyMannKendall's convention).
    Returns var_s (corrected), z, p, ratio (n/n*).
    """
    P, n = Y.shape
    v_o = np.full(P, np.nan)
    z_o = np.full(P, np.nan)
    p_o = np.full(P, np.nan)
    r_o = np.full(P, np.nan)
    nblk = (P + _BLOCK - 1) // _BLOCK
    for b in prange(nblk):
        dv = np.empty(n)
        rk = np.empty(n)
        ac = np.empty(n + 1)
        i0 = b * _BLOCK
        i1 = min(P, i0 + _BLOCK)
        for i in range(i0, i1):
            s = s_in[i]
            slope = slope_in[i]
            if not (math.isfinite(s) and math.isfinite(slope)):
                continue
            m = 0
            for t in range(n):
                v = Y[i, t]
                if math.isfinite(v):
                    dv[m] = v - (m + 1) * slope
                    m += 1
            if m < 3:
                continue
            nl = m - 1 if lag <= 0 else min(lag, m - 1)
            if variant == 1:
                # average ranks (scipy.stats.rankdata 'average') by counting
                for a in range(m):
                    lt = 0
                    eq = 0
                    for c in range(m):
                        lt += dv[c] < dv[a]
                        eq += dv[c] == dv[a]
                    rk[a] = lt + 0.5 * (eq + 1)
                _acf(rk, m, nl, ac)
                bound = zcrit / math.sqrt(m)
                sni = 0.0
                for k in range(1, nl + 1):
                    if not (ac[k] <= bound and ac[k] >= -bound):
                        sni += (m - k) * (m - k - 1) * (m - k - 2) * ac[k]
                ratio = 1.0 + (2.0 / (m * (m - 1) * (m - 2))) * sni
            else:
                _acf(dv, m, nl, ac)
                sni = 0.0
                for k in range(1, nl + 1):
                    sni += (1.0 - k / m) * ac[k]
                ratio = 1.0 + 2.0 * sni
            var_c = var_in[i] * ratio
            v_o[i] = var_c
            r_o[i] = ratio
            if s == 0:
                z = 0.0
            elif not (var_c > 0.0):
                z = math.nan
            elif s > 0:
                z = (s - 1) / math.sqrt(var_c)
            else:
                z = (s + 1) / math.sqrt(var_c)
            z_o[i] = z
            p_o[i] = math.erfc(abs(z) / _SQRT2) if math.isfinite(z) else math.nan
    return v_o, z_o, p_o, r_o


# --------------------------------------------------------------------------------------
# Partial correlation
# --------------------------------------------------------------------------------------
@njit(parallel=True, cache=True, error_model="numpy")
def partial_corr_kernel(Y, X, detrend, min_years):
    """Partial correlation of ``Y[i]`` with each ``X[i, j]`` given the other drivers (and a
    linear time trend if ``detrend``), on the years where all k+1 series are finite.

    Frisch-Waugh-Lovell: every series is residualised on ``[1, t]`` (or centred), the
    residual correlation matrix R is inverted by Cholesky, and
    ``r_j = -P_0j / sqrt(P_00 P_jj)`` with ``P = R^-1``. p is two-sided Student t on
    ``df = m - 2 - (k - 1) - detrend``.

    Degenerate pixels give NaN for all k: fewer than ``min_years`` complete years, df < 1,
    a constant series (exactly equal values), a series whose residual sum of squares is
    below 1e-20 of its centred sum of squares (e.g. an exact linear trend when detrending),
    or a residual correlation matrix that is numerically singular (a Cholesky pivot below
    1e-12, i.e. a series explained to 1 - 1e-12 by the others).

    Y : (P, n); X : (P, k, n); returns r (P, k), p (P, k), m (P,) int32 years used.
    """
    P, k, n = X.shape
    kv = k + 1
    ncontrols = (k - 1) + (1 if detrend else 0)
    r_o = np.full((P, k), np.nan)
    p_o = np.full((P, k), np.nan)
    m_o = np.zeros(P, np.int32)
    nblk = (P + _BLOCK - 1) // _BLOCK
    for b in prange(nblk):
        Z = np.empty((kv, n))
        tv = np.empty(n)
        R = np.empty((kv, kv))
        L = np.empty((kv, kv))
        Pm = np.empty((kv, kv))
        i0 = b * _BLOCK
        i1 = min(P, i0 + _BLOCK)
        for i in range(i0, i1):
            m = 0
            for t in range(n):
                ok = math.isfinite(Y[i, t])
                for j in range(k):
                    if not math.isfinite(X[i, j, t]):
                        ok = False
                if ok:
                    Z[0, m] = Y[i, t]
                    for j in range(k):
                        Z[j + 1, m] = X[i, j, t]
                    tv[m] = t
                    m += 1
            m_o[i] = m
            df = m - 2 - ncontrols
            if m < min_years or df < 1:
                continue
            bad = False
            # constant series -> undefined
            for v in range(kv):
                z0 = Z[v, 0]
                const = True
                for t in range(1, m):
                    if Z[v, t] != z0:
                        const = False
                        break
                if const:
                    bad = True
                    break
            if bad:
                continue
            tm = 0.0
            for t in range(m):
                tm += tv[t]
            tm /= m
            stt = 0.0
            for t in range(m):
                tv[t] -= tm
                stt += tv[t] * tv[t]
            for v in range(kv):
                mu = 0.0
                for t in range(m):
                    mu += Z[v, t]
                mu /= m
                ss0 = 0.0
                for t in range(m):
                    Z[v, t] -= mu
                    ss0 += Z[v, t] * Z[v, t]
                if detrend:
                    st = 0.0
                    for t in range(m):
                        st += tv[t] * Z[v, t]
                    bt = st / stt
                    for t in range(m):
                        Z[v, t] -= bt * tv[t]
                ss = 0.0
                for t in range(m):
                    ss += Z[v, t] * Z[v, t]
                if not (ss > 1e-20 * ss0) or not math.isfinite(ss):
                    bad = True
                    break
                sc = 1.0 / math.sqrt(ss)
                for t in range(m):
                    Z[v, t] *= sc
            if bad:
                continue
            for u in range(kv):
                for v in range(u, kv):
                    acc = 0.0
                    for t in range(m):
                        acc += Z[u, t] * Z[v, t]
                    R[u, v] = acc
                    R[v, u] = acc
            # Cholesky R = L L^T
            for u in range(kv):
                for v in range(u + 1):
                    acc = R[u, v]
                    for w in range(v):
                        acc -= L[u, w] * L[v, w]
                    if u == v:
                        if not (acc > 1e-12):
                            bad = True
                            break
                        L[u, u] = math.sqrt(acc)
                    else:
                        L[u, v] = acc / L[v, v]
                if bad:
                    break
            if bad:
                continue
            # inverse of L (lower triangular), stored in Pm, then R^-1 = L^-T L^-1
            for u in range(kv):
                for v in range(kv):
                    Pm[u, v] = 0.0
            for v in range(kv):
                Pm[v, v] = 1.0 / L[v, v]
                for u in range(v + 1, kv):
                    acc = 0.0
                    for w in range(v, u):
                        acc -= L[u, w] * Pm[w, v]
                    Pm[u, v] = acc / L[u, u]
            # precision entries needed: P_00, P_jj, P_0j ; P_ab = sum_w Linv[w,a] Linv[w,b]
            p00 = 0.0
            for w in range(kv):
                p00 += Pm[w, 0] * Pm[w, 0]
            for j in range(1, kv):
                pjj = 0.0
                p0j = 0.0
                for w in range(j, kv):
                    pjj += Pm[w, j] * Pm[w, j]
                    p0j += Pm[w, 0] * Pm[w, j]
                r = -p0j / math.sqrt(p00 * pjj)
                if r > 1.0:
                    r = 1.0
                elif r < -1.0:
                    r = -1.0
                r_o[i, j - 1] = r
                if abs(r) >= 1.0:
                    p_o[i, j - 1] = 0.0
                else:
                    tstat = r * math.sqrt(df / (1.0 - r * r))
                    p_o[i, j - 1] = _t_two_sided_p(tstat, df)
    return r_o, p_o, m_o
