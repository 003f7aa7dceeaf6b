"""The models stage (``soilresp fit``): :func:`soilresp.models.fit_biomes` on the sites table.

Reads ``sites/training.parquet``; writes ``models/biome_XX.json`` (+ ``.skops``), see
:mod:`soilresp.models.base`, and the Parquet tables (``docs/models.md``):

* ``skill.parquet`` -- table S2, one row per biome x family x form;
* ``selected.parquet`` -- table S3, the chosen model per biome with its CV skill;
* ``parameters.parquet`` -- table S4, Eq 1-4 parameters (with standard errors) and the tuned
  hyper-parameters of the machine-learning families;
* ``selection_steps.parquet`` -- the Eq 5 candidates of every step;
* ``pooled_skill.parquet`` -- S2 rows of the pooled model on all its rows (empty when no
  biome falls back to it).
"""

from __future__ import annotations

import contextlib
from collections import Counter

from soilresp import io
from soilresp.config import BIOMES
from soilresp.errors import input_error
from soilresp.models.base import save_biome_model
from soilresp.models.cv import KM_PER_DEG
from soilresp.models.fit import fit_biomes
from soilresp.models.warns import tally


def _driver_units(ctx) -> dict:
    p = ctx.path("drivers", "drivers.zarr")
    if not io.is_complete(p):
        return {}
    cube = io.open_zarr(p)
    return {v: str(cube[v].attrs.get("units", "")) for v in cube.data_vars}


@contextlib.contextmanager
def tally_warnings(progress):
    """Count the fitting warnings (scikit-learn ``ConvergenceWarning``, scipy
    ``OptimizeWarning``, numpy overflow ``RuntimeWarning``) per biome and family instead of
    printing hundreds of lines. Yields ``(progress, counts)``: the wrapped progress callback
    (its last label names the biome being fitted) and a Counter of (label, category).
    The fits themselves count their warnings per family where they run, in this process or
    in a joblib worker (``[models] n_jobs`` > 1): :func:`soilresp.models.warns.count_warnings`,
    returned in ``FitResult.warnings`` and added to the Counter by :func:`run`."""
    counts: Counter = Counter()
    current = ["models"]

    def prog(name, done, total):
        current[0] = name
        progress(name, done, total)

    with tally(lambda: current[0], counts):
        yield prog, counts


def warning_lines(counts: Counter) -> list[str]:
    """One line per biome/family and warning type: '<label>: <n> x <Category>'."""
    return [f"{label.strip()}: {n} x {cat}" for (label, cat), n in sorted(counts.items())]


def _check_extras(families) -> None:
    """The machine-learning families need the [ml] extra (skops files, quantile forests)."""
    import importlib.util

    from soilresp.errors import ConfigError

    ml = [f for f in families if f != "nls"]
    need = (["skops"] if ml else []) + (["quantile_forest"] if "qrf" in ml else [])
    for mod in need:
        if importlib.util.find_spec(mod) is None:
            raise ConfigError(f"config [models] families: {', '.join(ml)} need {mod}: "
                              "pip install 'soilresp[ml]' (or keep families = [\"nls\"])")


def run(ctx) -> None:
    _check_extras(ctx.cfg.models.families)
    src = ctx.path("sites", "training.parquet")
    tab = io.read_table(src, ["rs", "site_id", "biome"])
    try:
        with tally_warnings(ctx.progress) as (prog, counts):
            res = fit_biomes(tab, ctx.cfg.models, seed=ctx.cfg.run.seed, progress=prog,
                             units=_driver_units(ctx), biomes=BIOMES,
                             meta={"provenance": ctx.prov("models")},
                             cell_km=ctx.cfg.grid.resolution * KM_PER_DEG)
        counts.update(res.warnings)   # counted inside the fits (worker processes included)
    except KeyError as e:
        raise input_error(src, str(e.args[0])) from None
    for line in warning_lines(counts):
        ctx.note("models", line)
    for m in res.models.values():
        save_biome_model(ctx.out / "models", m)
    prov = ctx.prov("models")
    io.write_table(ctx.path("models", "selection_steps.parquet"), res.steps, prov)
    io.write_table(ctx.path("models", "skill.parquet"), res.skill, prov)
    io.write_table(ctx.path("models", "parameters.parquet"), res.parameters, prov)
    io.write_table(ctx.path("models", "pooled_skill.parquet"), res.pooled_skill, prov)
    io.write_table(ctx.path("models", "selected.parquet"), res.selected, prov)
