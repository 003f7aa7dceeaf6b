"""Field significance: Benjamini-Hochberg false-discovery-rate control over a map."""

from __future__ import annotations

import numpy as np

from soilresp.stats._util import check_alpha


def fdr_bh(p, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini & Hochberg (1995) step-up procedure over all finite p-values of ``p``.

    With the m finite p-values sorted, p_(1) <= ... <= p_(m), the q-value (adjusted p) is
    ``q_(i) = min_{j >= i} min(1, m p_(j) / j)`` and the pixels with the k smallest p are
    rejected (field-significant), k the largest i with ``p_(i) <= i alpha / m`` (so
    ``reject`` is ``q <= alpha`` up to rounding); this controls the expected proportion of false discoveries at
    ``alpha`` for independent or positively dependent tests (Benjamini & Yekutieli 2001).
    Equals ``statsmodels.stats.multitest.multipletests(p, alpha, method="fdr_bh")`` on the
    finite values.

    Parameters
    ----------
    p : array of any shape; NaN entries (e.g. pixels with too few years) are ignored: they
        are not counted in m, get ``q = NaN`` and ``reject = False``.
    alpha : target false discovery rate, in (0, 1).

    Returns
    -------
    reject : bool array, shape of ``p``
    q : float64 array, shape of ``p``

    Raises ValueError if a finite p lies outside [0, 1]. Memory: about 24 bytes per pixel
    (one global sort), so a 150-million-pixel map needs ~4 GB; for dask maps see
    :func:`soilresp.stats.xr_fdr_bh`.
    """
    alpha = check_alpha(alpha)
    pa = np.asarray(p, dtype=np.float64)
    flat = pa.reshape(-1)
    q = np.full(flat.shape, np.nan)
    reject = np.zeros(flat.shape, dtype=bool)
    ok = ~np.isnan(flat)
    pv = flat[ok]
    if pv.size:
        if np.any((pv < 0) | (pv > 1)):
            raise ValueError("p-values must lie in [0, 1] (NaN allowed)")
        qv, rv = _bh(pv, alpha)
        q[ok] = qv
        reject[ok] = rv
    return reject.reshape(pa.shape), q.reshape(pa.shape)


def _bh(pv: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """q-values and rejections of the finite p-values ``pv`` (statsmodels' arithmetic)."""
    m = pv.size
    order = np.argsort(pv, kind="mergesort")
    ps = pv[order]
    ecdf = np.arange(1, m + 1) / float(m)
    below = ps <= ecdf * alpha
    rej_sorted = np.zeros(m, dtype=bool)
    if below.any():
        rej_sorted[: np.nonzero(below)[0].max() + 1] = True
    ranked = np.minimum.accumulate((ps / ecdf)[::-1])[::-1]
    np.minimum(ranked, 1.0, out=ranked)
    q = np.empty(m)
    q[order] = ranked
    rej = np.empty(m, dtype=bool)
    rej[order] = rej_sorted
    return q, rej


def bh_table(pv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted finite p-values and their q-values, to map any p of the same family to its q
    with ``q_of(p) = table_q[searchsorted(table_p, p, 'left')]`` (ties share one q)."""
    sp = np.sort(pv[~np.isnan(pv)], kind="mergesort")
    m = sp.size
    if m == 0:
        return sp, sp.copy()
    ranked = np.minimum.accumulate((sp / (np.arange(1, m + 1) / float(m)))[::-1])[::-1]
    np.minimum(ranked, 1.0, out=ranked)
    return sp, ranked


def q_from_table(p: np.ndarray, table_p: np.ndarray, table_q: np.ndarray) -> np.ndarray:
    """q-values of ``p`` from :func:`bh_table` (NaN stays NaN)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if table_p.size and np.any(ok):
        idx = np.searchsorted(table_p, p[ok], side="left")
        idx = np.clip(idx, 0, table_p.size - 1)
        out[ok] = table_q[idx]
    return out


# ------------------------------------------------------------------ chunked two-pass BH
# Bins of the IEEE-754 bit pattern: for non-negative doubles the bits are monotone in the
# value, so bits >> 40 is a monotone bin index (sign, exponent, top 12 mantissa bits); a bin
# spans a relative width of at most 2**-12 (~2.4e-4). p in [0, 1] uses < 2**22 bins.
_SHIFT = np.uint64(40)
BIN_RELATIVE_WIDTH = 2.0**-12


def p_bins(p: np.ndarray) -> np.ndarray:
    """Monotone bin index of each finite p in [0, 1] (int64)."""
    p = np.asarray(p, dtype=np.float64) + 0.0  # -0.0 -> 0.0
    return (p.view(np.uint64) >> _SHIFT).astype(np.int64)


def bin_histogram(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sparse histogram of the finite p of one block: (bins, counts, min, max) per occupied
    bin, sorted by bin. Raises ValueError for a finite p outside [0, 1]."""
    v = np.asarray(p, dtype=np.float64).reshape(-1)
    v = v[~np.isnan(v)]
    if v.size and np.any((v < 0) | (v > 1)):
        raise ValueError("p-values must lie in [0, 1] (NaN allowed)")
    if v.size == 0:
        e = np.empty(0)
        return np.empty(0, np.int64), np.empty(0, np.int64), e, e.copy()
    b = p_bins(v)
    order = np.argsort(b, kind="stable")
    b, v = b[order], v[order]
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    return (b[starts], np.diff(np.r_[starts, b.size]).astype(np.int64),
            np.minimum.reduceat(v, starts), np.maximum.reduceat(v, starts))


def merge_histograms(*hs):
    """Combine sparse histograms of :func:`bin_histogram`."""
    b = np.concatenate([h[0] for h in hs])
    if b.size == 0:
        return hs[0]
    c, lo, hi = (np.concatenate([h[k] for h in hs]) for k in (1, 2, 3))
    order = np.argsort(b, kind="stable")
    b, c, lo, hi = b[order], c[order], lo[order], hi[order]
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    return (b[starts], np.add.reduceat(c, starts), np.minimum.reduceat(lo, starts),
            np.maximum.reduceat(hi, starts))


def bh_threshold_candidates(hist, alpha: float) -> tuple[float, np.ndarray]:
    """From a merged histogram: the largest bin maximum known to satisfy the BH step-up rule
    (``max_l <= C_l alpha / m``, C_l the cumulative count to the end of bin l) and the bins
    above it that may still hold the threshold (``min_l <= C_l alpha / m``)."""
    b, c, lo, hi = hist
    m = int(c.sum())
    if m == 0:
        return -np.inf, np.empty(0, np.int64)
    C = np.cumsum(c)
    lim = C * alpha / m
    ok = np.flatnonzero(hi <= lim)
    base = hi[ok[-1]] if ok.size else -np.inf
    start = ok[-1] + 1 if ok.size else 0
    amb = np.flatnonzero(lo[start:] <= lim[start:]) + start
    return float(base), b[amb]


def bh_threshold_exact(hist, alpha: float, gathered: dict[int, np.ndarray]) -> float:
    """Exact BH threshold t* (reject p <= t*) from the histogram and the values of the
    ambiguous bins (``gathered``: bin -> its p-values)."""
    b, c, lo, hi = hist
    m = int(c.sum())
    base, amb = bh_threshold_candidates(hist, alpha)
    if m == 0:
        return -np.inf
    C = np.cumsum(c)
    pos = {int(x): k for k, x in enumerate(b)}
    best = base
    for bb in amb:
        k = pos[int(bb)]
        v = np.sort(np.asarray(gathered.get(int(bb), np.empty(0))))
        if v.size != c[k]:
            raise RuntimeError("BH pass 2 gathered a different number of values than pass 1 counted")
        ranks = (C[k] - c[k]) + np.arange(1, v.size + 1)
        good = v <= ranks * alpha / m
        if good.any():
            best = max(best, float(v[np.flatnonzero(good)[-1]]))
    return best


def bin_q_table(hist) -> tuple[np.ndarray, np.ndarray]:
    """(bins, q) with q_l = min(1, min_{l' >= l} m max_l' / C_l'): for every p in bin l,
    ``q_l (1 - 2**-12) <= q_BH(p) <= q_l`` (the BH q-value to the bins' relative width)."""
    b, c, lo, hi = hist
    m = c.sum()
    if m == 0:
        return b, np.empty(0)
    g = m * hi / np.cumsum(c)
    q = np.minimum(np.minimum.accumulate(g[::-1])[::-1], 1.0)
    return b, q


def q_from_bins(p: np.ndarray, bins: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Bin q-values (:func:`bin_q_table`) of ``p`` (NaN stays NaN)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if bins.size and ok.any():
        idx = np.searchsorted(bins, p_bins(p[ok]))
        out[ok] = q[np.clip(idx, 0, bins.size - 1)]
    return out
