"""The models stage: per-biome Eq 1-4 fits, Eq 5 predictor choice, CV, saved models.

Reads ``sites/training.parquet``; writes ``models/biome_XX.json`` (+ ``.skops``), see
:mod:`soilresp.models.base`, and the tables ``selection_steps``, ``skill`` and ``selected``
(Parquet).
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from soilresp import io
from soilresp.config import BIOMES
from soilresp.errors import input_error
from soilresp.models.base import BiomeModel, save_biome_model
from soilresp.models.nonlinear import FitError
from soilresp.models.selection import select_biome


def _driver_units(ctx) -> dict:
    p = ctx.path("drivers", "drivers.zarr")
    if not io.is_complete(p):
        return {}
    cube = io.open_zarr(p)
    return {v: cube[v].attrs.get("units", "") for v in cube.data_vars}


def _candidates(names: list[str], columns) -> list[str]:
    """Annual, spring and summer versions of each candidate that the data provide."""
    out = []
    for n in names:
        out += [c for c in (n, f"{n}_mam", f"{n}_jja") if c in columns]
    return out


def run(ctx) -> None:
    m = ctx.cfg.models
    tab = io.read_table(ctx.path("sites", "training.parquet"), ["rs", "site_id", "biome"])
    cand = {k: _candidates(getattr(m, k), tab.columns) for k in ("temperature", "moisture", "productivity")}
    if not cand["temperature"]:
        raise input_error(ctx.path("sites", "training.parquet"),
                          f"none of the temperature candidates {m.temperature} is in the driver cube",
                          column="temperature")
    units = {v: str(u) for v, u in _driver_units(ctx).items()}
    training_hash = hashlib.sha256(pd.util.hash_pandas_object(tab, index=False).values.tobytes()).hexdigest()
    pooled = None
    steps, skill, selected = [], [], []
    codes = sorted(BIOMES)
    for n, code in enumerate(codes):
        ctx.progress("fit biome models", n, len(codes))
        sub = tab[tab["biome"] == code]
        fallback = ""
        if len(sub) < m.min_observations:
            if pooled is None:
                pooled = select_biome(tab[tab["biome"] > 0], 0, **cand, folds=m.cv_folds, seed=ctx.cfg.run.seed)
            sel, fallback = pooled, f"pooled model ({len(sub)} < {m.min_observations} observations)"
        else:
            try:
                sel = select_biome(sub, code, **cand, folds=m.cv_folds, seed=ctx.cfg.run.seed)
            except FitError as e:
                raise input_error(ctx.path("sites", "training.parquet"), f"biome {code} ({BIOMES[code]}): {e}",
                                  column="biome", value=code) from None
        for r in sel.steps:
            steps.append({"biome": code, **r})
        for r in sel.skill:
            skill.append({"biome": code, "biome_name": BIOMES[code], "family": "nls", **r})
        preds = [sel.predictors[k] for k in ("T", "M", "P") if k in sel.predictors]
        preds = preds[: {"eq1": 1, "eq2": 1, "eq3": 2, "eq4": 3}[sel.form]]
        meta = {"biome_name": BIOMES[code], "n_training": int(len(sub)), "fallback": fallback,
                "units": {"rs": "g C m-2 yr-1", **{v: units.get(v, "") for v in preds}},
                "training_hash": training_hash, "seed": ctx.cfg.run.seed,
                "provenance": ctx.prov("models")}
        model = BiomeModel(code, "nls", preds, sel.model, meta)
        save_biome_model(ctx.out / "models", model)
        doc = {"predictors": preds, "params": sel.model.params_.tolist()}
        best = next(s for s in sel.skill if s["selected"])
        selected.append({"biome": code, "biome_name": BIOMES[code], "family": "nls", "form": sel.form,
                         "predictors": ",".join(doc["predictors"]), "params": json.dumps(doc["params"]),
                         "n": int(len(sub)), "cv_r2": best["cv_r2"], "cv_rmse": best["cv_rmse"],
                         "site_cv_r2": best["site_cv_r2"], "site_cv_rmse": best["site_cv_rmse"],
                         "fallback": fallback})
    ctx.progress("fit biome models", len(codes), len(codes))
    prov = ctx.prov("models")
    io.write_table(ctx.path("models", "selection_steps.parquet"), pd.DataFrame(steps), prov)
    io.write_table(ctx.path("models", "skill.parquet"), pd.DataFrame(skill), prov)
    io.write_table(ctx.path("models", "selected.parquet"), pd.DataFrame(selected), prov)


