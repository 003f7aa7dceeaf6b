"""Fitting warnings raised in joblib workers ([models] n_jobs > 1) are counted per biome and
family like those of a serial fit, and none is printed one by one (issue 18)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from soilresp.config import ModelsConfig
from soilresp.models import fit_biomes, predict_form
from soilresp.models.stage import tally_warnings, warning_lines

BIOMES2 = {1: "forest", 2: "grass"}
#: an MLP that cannot converge: two lbfgs iterations
NO_CONVERGENCE = {"ann": {"regressor__mlp__alpha": [0.1], "regressor__mlp__max_iter": [2]}}


def _table(k=30, seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for code in BIOMES2:
        d = pd.DataFrame({"tas": rng.uniform(-5, 28, k), "sm": rng.uniform(0.1, 0.45, k),
                          "gpp": rng.uniform(100, 3000, k)})
        d["rs"] = predict_form("eq4", [180.0, 0.06, -0.0008, 2.0, -2.5, 0.12], d.tas, d.sm, d.gpp)
        d["rs"] *= np.exp(rng.normal(0, 0.05, k))
        d["biome"] = code
        d["site_id"] = [f"b{code}s{i // 3}" for i in range(k)]
        parts.append(d)
    return pd.concat(parts, ignore_index=True)


def _fit(n_jobs, progress=None):
    cfg = ModelsConfig(families=["ann"], temperature=["tas"], moisture=["sm"], productivity=["gpp"],
                       cv_folds=3, inner_folds=2, min_observations=15, n_jobs=n_jobs)
    return fit_biomes(_table(), cfg, seed=3, biomes=BIOMES2, grids=NO_CONVERGENCE, progress=progress)


def test_worker_convergence_warnings_counted_per_biome_and_family(capfd):
    with tally_warnings(lambda *a: None) as (prog, counts):
        par = _fit(2, prog)
        counts.update(par.warnings)     # as the models stage does
    for code, name in BIOMES2.items():
        assert par.warnings.get((f"fit biome {code:2d} {name}, ann", "ConvergenceWarning"), 0) > 0, par.warnings
    lines = warning_lines(counts)
    assert any(ln.startswith("fit biome  1 forest, ann: ") and ln.endswith(" x ConvergenceWarning")
               for ln in lines), lines
    err = capfd.readouterr().err       # the workers' stderr too (inherited file descriptor)
    assert "ConvergenceWarning" not in err and "converge" not in err, err
    ser = _fit(1)                        # the same counts as a serial fit
    assert ser.warnings == par.warnings
    assert "converge" not in capfd.readouterr().err


def test_counting_in_threads_keeps_each_threads_warnings_and_restores_the_hooks():
    """count_warnings in overlapping threads (the Monte Carlo's dask threads): each counter
    gets its own thread's warnings under its own family, and afterwards warnings are shown
    again through the original hook with the original filters (nothing stays swallowed)."""
    import threading
    import warnings

    from scipy.optimize import OptimizeWarning
    from sklearn.exceptions import ConvergenceWarning

    from soilresp.models.warns import count_warnings, fitting

    hook, filters = warnings.showwarning, list(warnings.filters)
    got, barrier = {}, threading.Barrier(2)

    def work(name, n, cat, first):
        with fitting(name), count_warnings() as c:
            barrier.wait()
            for _ in range(n):
                warnings.warn("x", cat)
            if first:           # leave while the other thread still counts
                barrier.wait()
            else:
                barrier.wait()
                barrier.wait()
        if first:
            barrier.wait()
        got[name] = dict(c)

    for _ in range(20):
        got.clear()
        ts = [threading.Thread(target=work, args=("ann", 3, ConvergenceWarning, True)),
              threading.Thread(target=work, args=("nls", 5, OptimizeWarning, False))]
        [t.start() for t in ts]
        [t.join() for t in ts]
        assert got == {"ann": {("ann", "ConvergenceWarning"): 3}, "nls": {("nls", "OptimizeWarning"): 5}}
        assert warnings.showwarning is hook and warnings.filters == filters


def test_a_hook_put_back_by_another_threads_catch_warnings_still_shows_warnings():
    """Another thread's catch_warnings that outlives a count puts the counting hook back as
    the process hook; the next count and the warnings after it must still reach the user's
    own hook (not recurse, not vanish). Per-thread ``ignore`` drops only that thread's."""
    import threading
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from soilresp.models.warns import count_warnings

    shown = []
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda m, c, *a, **k: shown.append(c.__name__)
        entered, leave = threading.Event(), threading.Event()

        def other():
            with warnings.catch_warnings():
                entered.set()
                leave.wait()

        with count_warnings():
            t = threading.Thread(target=other)
            t.start()
            entered.wait()
        leave.set()
        t.join()
        with count_warnings(ignore=(RuntimeWarning,)) as c:
            warnings.warn("counted", ConvergenceWarning)
            warnings.warn("dropped", RuntimeWarning)
            warnings.warn("shown inside", UserWarning)
        warnings.warn("shown after", UserWarning)
        assert dict(c) == {("", "ConvergenceWarning"): 1}
        assert shown == ["UserWarning", "UserWarning"]
