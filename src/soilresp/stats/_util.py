"""Argument checks and array plumbing shared by the statistics wrappers."""

from __future__ import annotations

import numbers

import numpy as np


def as_pixels(y, name: str = "y") -> tuple[np.ndarray, tuple[int, ...]]:
    """``y`` shaped ``(..., n)`` as a C-contiguous float64 ``(pixels, n)`` array.

    Returns the 2-D array and the leading shape. Raises ``ValueError`` for a 0-d input and
    ``TypeError`` for a non-numeric (e.g. complex, string, object) dtype.
    """
    a = np.asarray(y)
    if a.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the year axis last)")
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be real numbers, got dtype {a.dtype}")
    lead = a.shape[:-1]
    n = a.shape[-1]
    p = int(np.prod(lead, dtype=np.int64)) if lead else 1
    return writable_f64(a.reshape(p, n)), lead


def writable_f64(a) -> np.ndarray:
    """C-contiguous, writeable float64 copy-if-needed of ``a``. The numba kernels only
    read their inputs, but a read-only array (np.broadcast_to, some dask chunks) would make
    numba compile (and cache) a second specialisation."""
    out = np.ascontiguousarray(a, dtype=np.float64)
    if not out.flags.writeable:
        out = out.copy()
    return out


def check_x(x, n: int) -> np.ndarray:
    """Time values for a series of length ``n``: default ``arange(n)``; else 1-D, length
    ``n``, finite and strictly increasing (``ValueError`` otherwise)."""
    if x is None:
        return np.arange(n, dtype=np.float64)
    xa = np.asarray(x)
    if xa.dtype.kind not in "biuf":
        raise TypeError(f"x must be real numbers, got dtype {xa.dtype}")
    xa = writable_f64(xa)
    if xa.ndim != 1 or xa.shape[0] != n:
        raise ValueError(f"x must be 1-D with one value per year (length {n}), got shape {xa.shape}")
    if not np.all(np.isfinite(xa)):
        raise ValueError("x must be finite")
    if n > 1 and not np.all(np.diff(xa) > 0):
        raise ValueError("x must be strictly increasing (one value per year, no repeats)")
    return xa


def check_alpha(alpha, name: str = "alpha") -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1), got {alpha!r}")
    a = float(alpha)
    if not 0.0 < a < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {alpha!r}")
    return a


def check_int(v, name: str, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {v!r}")
    if int(v) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
    return int(v)
