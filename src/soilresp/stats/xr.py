"""xarray wrappers: the array kernels applied along a time dimension with
``xarray.apply_ufunc(..., dask="parallelized")``.

Every pixel is computed independently, so chunked (dask) and unchunked input give
bit-identical results; the time dimension is merged into one chunk first. Field
significance (Benjamini-Hochberg) needs all pixels: with dask it is a second, global pass
(:func:`xr_fdr_bh`) that computes the p-values once more unless they are persisted.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import xarray as xr

from soilresp.stats.fdr import (
    bh_table,
    bh_threshold_candidates,
    bh_threshold_exact,
    bin_histogram,
    bin_q_table,
    fdr_bh,
    merge_histograms,
    p_bins,
    q_from_bins,
    q_from_table,
)
from soilresp.stats.partial import critical_r, partial_corr
from soilresp.stats.trend import (
    TREND_CLASS_LABELS,
    TREND_CLASS_NODATA,
    trend_class,
    trend_test,
)

_TREND_FIELDS = ("s", "z", "p", "tau", "n", "slope", "intercept", "slope_lo", "slope_hi")
_TREND_DTYPES = (np.float64,) * 4 + (np.int32,) + (np.float64,) * 4


def _single_chunk(da: xr.DataArray, dim: str) -> xr.DataArray:
    if da.chunks is not None:
        return da.chunk({dim: -1})
    return da


def _time_values(da: xr.DataArray, dim: str, x):
    n = da.sizes[dim]
    if x is not None:
        return np.asarray(x, dtype=np.float64)
    if dim in da.coords:
        c = np.asarray(da[dim].values)
        if c.dtype.kind in "iuf" and c.size == n and np.all(np.isfinite(c)) and \
                (n < 2 or np.all(np.diff(c) > 0)):
            return c.astype(np.float64)
        if c.dtype.kind == "M":  # datetimes: use calendar years
            yrs = c.astype("datetime64[Y]").astype(np.int64) + 1970
            if n < 2 or np.all(np.diff(yrs) > 0):
                return yrs.astype(np.float64)
    return np.arange(n, dtype=np.float64)


def xr_trend(da: xr.DataArray, dim: str = "year", *, x=None, alpha: float = 0.05,
             slight_alpha: float = 0.5, min_years: int = 3, exact: bool = False,
             fdr: bool = False) -> xr.Dataset:
    """Per-pixel Mann-Kendall + Theil-Sen along ``dim`` (see :func:`trend_test`).

    Returns a Dataset with ``s, z, p, tau, n, slope, intercept, slope_lo, slope_hi``,
    ``trend_class`` (int8, Huang et al. 2020 Fig. 2B; -128 = no data) and ``net_change``
    (``slope * (x[-1] - x[0])``, = slope * (years - 1) for consecutive years). Time values
    ``x`` default to the ``dim`` coordinate when numeric and increasing (datetimes become
    calendar years), else ``arange(n)``; slopes are per unit of ``x``.

    ``fdr=True`` adds ``q`` (Benjamini-Hochberg q-values over the whole map) and
    ``fdr_reject``, and ``trend_class`` then uses the BH rejections at ``alpha`` for the
    significant classes.
    """
    if dim not in da.dims:
        raise ValueError(f"{dim!r} is not a dimension of the array (dims {da.dims})")
    xv = _time_values(da, dim, x)
    da = _single_chunk(da, dim)

    def _kernel(arr):
        res = trend_test(arr, xv, alpha=alpha, min_years=min_years, exact=exact)
        return tuple(res[f] for f in _TREND_FIELDS)

    outs = xr.apply_ufunc(
        _kernel, da,
        input_core_dims=[[dim]],
        output_core_dims=[[] for _ in _TREND_FIELDS],
        dask="parallelized",
        output_dtypes=list(_TREND_DTYPES),
        keep_attrs=False,
    )
    ds = xr.Dataset(dict(zip(_TREND_FIELDS, outs)))
    span = float(xv[-1] - xv[0]) if xv.size else np.nan
    significant = None
    if fdr:
        rej, q = xr_fdr_bh(ds["p"], alpha)
        ds["q"] = q
        ds["fdr_reject"] = rej
        significant = rej
    cls_args = [ds["slope"], ds["p"]] + ([significant] if significant is not None else [])

    def _cls(slope, p, sig=None):
        return trend_class(slope, p, alpha=alpha, slight_alpha=slight_alpha, significant=sig)

    ds["trend_class"] = xr.apply_ufunc(_cls, *cls_args, dask="parallelized",
                                       output_dtypes=[np.int8])
    ds["net_change"] = ds["slope"] * span
    units = da.attrs.get("units")
    per = "year" if dim == "year" else f"{dim} unit"
    ds["s"].attrs = {"long_name": "Mann-Kendall S"}
    ds["z"].attrs = {"long_name": "Mann-Kendall z (continuity-corrected)"}
    ds["p"].attrs = {"long_name": "Mann-Kendall two-sided p-value"}
    ds["tau"].attrs = {"long_name": "Kendall tau-a"}
    ds["n"].attrs = {"long_name": "number of years used"}
    for f in ("slope", "slope_lo", "slope_hi"):
        ds[f].attrs = {"long_name": f"Theil-Sen {f.replace('_', ' ')}"}
        if units:
            ds[f].attrs["units"] = f"{units} / {per}"
    ds["slope_lo"].attrs["confidence_level"] = 1.0 - alpha
    ds["slope_hi"].attrs["confidence_level"] = 1.0 - alpha
    ds["intercept"].attrs = {"long_name": "Theil-Sen intercept at x = 0 (Conover)"}
    ds["net_change"].attrs = {"long_name": "net change over the period: slope * (x[-1] - x[0])"}
    if units:
        ds["intercept"].attrs["units"] = units
        ds["net_change"].attrs["units"] = units
    codes = sorted(TREND_CLASS_LABELS)
    ds["trend_class"].attrs = {
        "long_name": "trend class (Huang et al. 2020, Fig. 2B)",
        "flag_values": np.array(codes, dtype=np.int8),
        "flag_meanings": " ".join(TREND_CLASS_LABELS[c].replace(" ", "_") for c in codes),
        "nodata": TREND_CLASS_NODATA,
        "rule": f"|class| 2 if {'BH q' if fdr else 'p'} < {alpha}, 1 if p < {slight_alpha}, "
                "else 0; sign of the slope",
    }
    ds.attrs = {"alpha": alpha, "slight_alpha": slight_alpha, "min_years": min_years,
                "fdr": int(bool(fdr)), "exact_p": int(bool(exact)), "time_dim": dim}
    return ds


def _tree(func, parts, width: int = 8):
    import dask

    parts = list(parts)
    while len(parts) > 1:
        parts = [dask.delayed(func)(*parts[i:i + width]) for i in range(0, len(parts), width)]
    return parts[0]


def _gather_bins(block, bins):
    v = np.asarray(block, dtype=np.float64).reshape(-1)
    v = v[~np.isnan(v)]
    b = p_bins(v)
    keep = np.isin(b, bins)
    return b[keep], v[keep]


def _concat_pairs(*parts):
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def xr_fdr_bh(p: xr.DataArray, alpha: float = 0.05, *,
              exact_limit: int = 2**22) -> tuple[xr.DataArray, xr.DataArray]:
    """Benjamini-Hochberg over all finite values of a p-value map (:func:`fdr_bh`).

    Returns (reject, q) DataArrays like ``p`` (lazy for a dask-backed ``p``). A dask map is
    never held whole; it is read in two passes, block by block:

    1. a sparse histogram of the finite p over monotone bins of their float64 bits (count,
       min and max per occupied bin; relative bin width 2**-12), merged as a tree;
    2. the p-values of the few bins that may contain the BH threshold are gathered, which
       gives the **exact** threshold t*: ``reject = p <= t*``, identical to statsmodels.

    q-values: when the map has at most ``exact_limit`` finite p (default 2**22, i.e. no more
    memory than the histogram itself) they are gathered and q is exact; otherwise q is the
    bin q-value ``min_{bins >= bin(p)} m max_bin / C_bin``, an upper bound within a relative
    2**-12 (2.4e-4) of the exact BH q. Either way the memory is bounded independently of the
    map size (at most ~2**22 bins). p is computed twice (or three times) unless persisted.
    """
    from soilresp.stats._util import check_alpha

    alpha = check_alpha(alpha)
    if p.chunks is None:
        rej, q = fdr_bh(p.values, alpha)
        return (xr.DataArray(rej, dims=p.dims, coords=p.coords, name="fdr_reject"),
                xr.DataArray(q, dims=p.dims, coords=p.coords, name="q"))
    import dask
    import dask.array as dsa

    data = p.data
    blocks = data.to_delayed().ravel()
    hist = _tree(merge_histograms, [dask.delayed(bin_histogram)(b) for b in blocks]).compute()
    m = int(hist[1].sum())
    if m <= exact_limit:
        allv = _tree(_concat_pairs, [dask.delayed(_gather_bins)(b, hist[0]) for b in blocks]).compute()[1]
        tp, tq = bh_table(allv)
        below = tp <= (np.arange(1, m + 1) / float(max(m, 1))) * alpha
        thr = float(tp[np.nonzero(below)[0].max()]) if below.any() else -np.inf
        tp_d, tq_d = dask.delayed(tp), dask.delayed(tq)
        qd = dsa.map_blocks(q_from_table, data, tp_d, tq_d, dtype=np.float64)
    else:
        _, amb = bh_threshold_candidates(hist, alpha)
        gathered: dict[int, np.ndarray] = {}
        if amb.size:
            gb, gv = _tree(_concat_pairs, [dask.delayed(_gather_bins)(b, amb) for b in blocks]).compute()
            for x in np.unique(gb):
                gathered[int(x)] = gv[gb == x]
        thr = bh_threshold_exact(hist, alpha, gathered)
        bins, qb = bin_q_table(hist)
        qd = dsa.map_blocks(q_from_bins, data, dask.delayed(bins), dask.delayed(qb), dtype=np.float64)
    rd = dsa.map_blocks(lambda a, t: np.where(np.isnan(a), False, a <= t), data, thr, dtype=bool)
    q = xr.DataArray(qd, dims=p.dims, coords=p.coords, name="q")
    rej = xr.DataArray(rd, dims=p.dims, coords=p.coords, name="fdr_reject")
    q.attrs = {"long_name": "Benjamini-Hochberg q-value (false discovery rate)",
               "exact": int(m <= exact_limit)}
    rej.attrs = {"long_name": f"field-significant at FDR {alpha} (Benjamini-Hochberg)",
                 "bh_threshold_p": thr}
    return rej, q


def xr_partial_corr(response: xr.DataArray,
                    drivers: xr.Dataset | Mapping[str, xr.DataArray],
                    dim: str = "year", *, detrend: bool = True, min_years: int | None = None,
                    fdr: bool = False, alpha: float = 0.05) -> xr.Dataset:
    """Per-pixel detrended partial correlation of ``response`` with each driver controlling
    for the others (:func:`partial_corr`).

    Returns a Dataset with ``r_<name>`` and ``p_<name>`` per driver, ``n`` (complete years
    used) and attrs ``df`` (degrees of freedom of a complete series), ``detrend``,
    ``drivers`` and ``critical_r`` (|r| significant at ``alpha`` for a complete series).
    ``fdr=True`` adds ``q_<name>``, Benjamini-Hochberg q-values over each driver's map.
    Inputs are aligned exactly on their coordinates (mismatch -> ValueError).
    """
    if isinstance(drivers, xr.Dataset):
        names = [str(v) for v in drivers.data_vars]
        arrs = [drivers[v] for v in drivers.data_vars]
    else:
        names = [str(k) for k in drivers]
        arrs = [drivers[k] for k in drivers]
    if not names:
        raise ValueError("no drivers given")
    for nm, a in [("response", response)] + list(zip(names, arrs)):
        if dim not in a.dims:
            raise ValueError(f"{dim!r} is not a dimension of {nm} (dims {a.dims})")
    k = len(names)
    response = _single_chunk(response, dim)
    arrs = [_single_chunk(a, dim) for a in arrs]
    n_years = response.sizes[dim]

    def _kernel(y, *xs):
        X = np.stack(np.broadcast_arrays(*xs), axis=-2)
        res = partial_corr(y, X, detrend=detrend, min_years=min_years)
        ok = np.isfinite(y)[..., None, :] & np.isfinite(X)
        m = np.all(ok, axis=-2).sum(axis=-1).astype(np.int32)
        m = np.broadcast_to(m, res.r.shape[:-1])
        return tuple(res.r[..., j] for j in range(k)) + tuple(
            res.p[..., j] for j in range(k)) + (m,)

    outs = xr.apply_ufunc(
        _kernel, response, *arrs,
        input_core_dims=[[dim]] * (k + 1),
        output_core_dims=[[] for _ in range(2 * k + 1)],
        dask="parallelized",
        output_dtypes=[np.float64] * (2 * k) + [np.int32],
    )
    ds = xr.Dataset()
    df = n_years - 2 - (k - 1) - int(bool(detrend))
    for j, nm in enumerate(names):
        ds[f"r_{nm}"] = outs[j]
        ds[f"r_{nm}"].attrs = {"long_name": f"partial correlation with {nm}",
                               "controls": ", ".join([o for o in names if o != nm] +
                                                     (["linear trend"] if detrend else []))}
        ds[f"p_{nm}"] = outs[k + j]
        ds[f"p_{nm}"].attrs = {"long_name": f"two-sided p-value of r_{nm}"}
        if fdr:
            _rej, q = xr_fdr_bh(ds[f"p_{nm}"], alpha)
            ds[f"q_{nm}"] = q
    ds["n"] = outs[2 * k]
    ds["n"].attrs = {"long_name": "complete years used"}
    ds.attrs = {"df": int(df), "detrend": int(bool(detrend)), "drivers": ", ".join(names),
                "alpha": alpha, "time_dim": dim}
    if df >= 1:
        ds.attrs["critical_r"] = critical_r(n_years, k - 1, alpha, detrend=detrend)
    return ds
