"""Fitting warnings counted where they are raised, per model family, in any process.

scikit-learn's ``ConvergenceWarning`` (an MLP's lbfgs stopping at ``max_iter``), scipy's
``OptimizeWarning``, numpy's overflow ``RuntimeWarning`` and ``FitFailedWarning`` are expected
on some folds and grid points; cross-validation judges the result. They are counted, not
printed: :func:`count_warnings` around one biome's fit (in the main process or in a joblib
worker, ``[models] n_jobs`` > 1) returns ``{(family, category): n}`` with the fit, and the
models stage writes one line per biome, family and category (``soilresp.models.stage``).
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections import Counter

#: Warnings of the numerical fits that are counted instead of printed one by one.
TALLIED = ("ConvergenceWarning", "OptimizeWarning", "RuntimeWarning", "FitFailedWarning")

_local = threading.local()   # per thread: .family, .frames (stack of (key, counts))
_lock = threading.Lock()
_state = {"depth": 0, "saved": None, "show": None}   # process-wide hook, refcounted


def _categories() -> list[type[Warning]]:
    from scipy.optimize import OptimizeWarning
    from sklearn.exceptions import ConvergenceWarning, FitFailedWarning

    return [ConvergenceWarning, OptimizeWarning, RuntimeWarning, FitFailedWarning]


def _current_family() -> str:
    return getattr(_local, "family", "")


@contextlib.contextmanager
def fitting(family: str):
    """Warnings raised inside (in this thread) are counted under ``family`` (e.g. ``ann``)."""
    prev = _current_family()
    _local.family = family
    try:
        yield
    finally:
        _local.family = prev


def _show(message, category, filename, lineno, file=None, line=None):
    """The process-wide hook while any thread counts: a :data:`TALLIED` warning goes to the
    innermost counter of the thread that raised it; anything else is shown by the hook that
    was in place before counting began."""
    frames = getattr(_local, "frames", None)
    if frames and issubclass(category, frames[-1][2]):
        return
    if frames and category.__name__ in TALLIED:
        key, counts, _ = frames[-1]
        counts[(key(), category.__name__)] += 1
    else:
        (_state["show"] or warnings._showwarning_orig)(message, category, filename, lineno, file, line)


@contextlib.contextmanager
def tally(key, counts: Counter, categories=None, ignore: tuple = ()):
    """Count the :data:`TALLIED` warnings raised inside, in this thread, into
    ``counts[(key(), category name)]`` (every occurrence, none printed); other warnings are
    shown as usual. ``categories``: the classes switched to "always" (default: every warning);
    ``ignore``: classes dropped, neither counted nor shown, in this thread only.

    The counters work across threads (``warnings.catch_warnings`` does not): the first
    context of the process saves the warning filters and ``showwarning`` and installs one
    hook that routes each warning to its own thread's innermost counter; the last one to
    leave restores both. The "always" filters are process-wide while any thread counts. A
    ``catch_warnings`` block of another thread that outlives every count can still put the
    hook back; it then shows warnings through the saved hook, as before counting."""
    with _lock:
        if _state["depth"] == 0:
            show = warnings.showwarning
            if show is _show:   # put back by another thread's catch_warnings
                show = _state["show"] or warnings._showwarning_orig
            _state["saved"] = (warnings.filters[:], show)
            _state["show"] = show
            warnings.showwarning = _show
        _state["depth"] += 1
        if categories is None:
            warnings.simplefilter("always")
        for c in categories or ():
            warnings.filterwarnings("always", category=c)
    frames = _local.__dict__.setdefault("frames", [])
    frames.append((key, counts, tuple(ignore)))
    try:
        yield counts
    finally:
        frames.pop()
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                filters, show = _state["saved"]
                warnings.filters[:] = filters
                getattr(warnings, "_filters_mutated", lambda: None)()   # refresh the filter caches
                warnings.showwarning = show


@contextlib.contextmanager
def count_warnings(ignore: tuple = ()):
    """Yield a Counter of ``(family, category name)`` for the :data:`TALLIED` warnings raised
    inside (every occurrence, none printed); ``ignore``: classes dropped in this thread; other
    warnings are shown as usual."""
    with tally(_current_family, Counter(), _categories(), ignore) as counts:
        yield counts
