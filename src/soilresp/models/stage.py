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

from soilresp import io
from soilresp.config import BIOMES
from soilresp.errors import input_error
from soilresp.models.base import save_biome_model
from soilresp.models.cv import KM_PER_DEG
from soilresp.models.fit import fit_biomes


def _driver_units(ctx) -> dict:
    p = ctx.path("drivers", "drivers.zarr")
    if not io.is_complete(p):
        return {}
    cube = io.open_zarr(p)
    return {v: str(cube[v].attrs.get("units", "")) for v in cube.data_vars}


def run(ctx) -> None:
    src = ctx.path("sites", "training.parquet")
    tab = io.read_table(src, ["rs", "site_id", "biome"])
    try:
        res = fit_biomes(tab, ctx.cfg.models, seed=ctx.cfg.run.seed, progress=ctx.progress,
                         units=_driver_units(ctx), biomes=BIOMES, meta={"provenance": ctx.prov("models")},
                         cell_km=ctx.cfg.grid.resolution * KM_PER_DEG)
    except KeyError as e:
        raise input_error(src, str(e.args[0])) from None
    for m in res.models.values():
        save_biome_model(ctx.out / "models", m)
    prov = ctx.prov("models")
    io.write_table(ctx.path("models", "selection_steps.parquet"), res.steps, prov)
    io.write_table(ctx.path("models", "skill.parquet"), res.skill, prov)
    io.write_table(ctx.path("models", "parameters.parquet"), res.parameters, prov)
    io.write_table(ctx.path("models", "pooled_skill.parquet"), res.pooled_skill, prov)
    io.write_table(ctx.path("models", "selected.parquet"), res.selected, prov)
