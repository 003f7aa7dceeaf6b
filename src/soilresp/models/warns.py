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
import warnings
from collections import Counter

#: Warnings of the numerical fits that are counted instead of printed one by one.
TALLIED = ("ConvergenceWarning", "OptimizeWarning", "RuntimeWarning", "FitFailedWarning")

_family = [""]   # the family being fitted in this process ("" outside any)


def _categories() -> list[type[Warning]]:
    from scipy.optimize import OptimizeWarning
    from sklearn.exceptions import ConvergenceWarning, FitFailedWarning

    return [ConvergenceWarning, OptimizeWarning, RuntimeWarning, FitFailedWarning]


@contextlib.contextmanager
def fitting(family: str):
    """Warnings raised inside are counted under ``family`` (e.g. ``ann``, ``nls``)."""
    prev = _family[0]
    _family[0] = family
    try:
        yield
    finally:
        _family[0] = prev


@contextlib.contextmanager
def tally(key, counts: Counter, categories=None):
    """Count the :data:`TALLIED` warnings raised inside into ``counts[(key(), category name)]``
    (every occurrence, none printed); other warnings are shown as usual. ``categories``: the
    classes switched to "always" (default: every warning)."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__name__ in TALLIED:
            counts[(key(), category.__name__)] += 1
        else:
            original(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        if categories is None:
            warnings.simplefilter("always")
        for c in categories or ():
            warnings.filterwarnings("always", category=c)
        warnings.showwarning = show
        yield counts


@contextlib.contextmanager
def count_warnings():
    """Yield a Counter of ``(family, category name)`` for the :data:`TALLIED` warnings raised
    inside (every occurrence, none printed); other warnings are shown as usual."""
    with tally(lambda: _family[0], Counter(), _categories()) as counts:
        yield counts
