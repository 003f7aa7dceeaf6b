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
