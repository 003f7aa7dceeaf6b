"""The paper's tables S2-S4, the field filter cascade and supporting tables, from a run folder.

Each builder takes the run's output folder and returns a :class:`pandas.DataFrame`; it raises
:class:`~soilresp.report._common.MissingOutput` when a file it needs is absent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from soilresp.report._common import MissingOutput, need, table

# Eq 1-4 parameter roles (soilresp.models.nonlinear): a scale, b c temperature, d e moisture,
# f productivity; the index is the position of the predictor the parameter multiplies.
_PARAM_ROLES = {"a": ("scale", None), "b": ("temperature", 0), "c": ("temperature", 0),
                "d": ("moisture", 1), "e": ("moisture", 1), "f": ("productivity", 2)}
_FORM_PARAMS = {"eq1": "ab", "eq2": "abc", "eq3": "abcde", "eq4": "abcdef"}


def table_s2(run_dir: Path) -> pd.DataFrame:
    """Table S2: 10-fold CV skill (R2, RMSE and bias in g C m-2 yr-1; random and site-grouped
    folds) of every candidate model per biome and family. Reads ``models/skill.parquet``."""
    df = table(run_dir, "models/skill.parquet", ["biome"])
    keys = [c for c in ("biome", "family", "form") if c in df]
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


def table_s3(run_dir: Path) -> pd.DataFrame:
    """Table S3: the model selected per biome (family, form, predictors, n, CV skill, fallback).
    Reads ``models/selected.parquet`` (the JSON ``params`` column is in Table S4)."""
    df = table(run_dir, "models/selected.parquet", ["biome"])
    return df.drop(columns=[c for c in ("params",) if c in df]).sort_values("biome").reset_index(drop=True)


def table_s4(run_dir: Path) -> pd.DataFrame:
    """Table S4: predictors and fitted parameters (with standard errors) of each selected model.

    Reads ``models/parameters.parquet`` when the models stage wrote it; otherwise builds it from
    ``models/selected.parquet`` (``predictors``, ``params``) and the standard errors in
    ``models/biome_XX.json``, adding the model file's effective Q10 at its reference temperature
    (exp(10 d ln Rs/dT), not exp(10 b), which holds for Eq 1 only).
    """
    try:
        df = table(run_dir, "models/parameters.parquet", ["biome"])
        if "selected" in df:  # the models stage lists every candidate; S4 is the selected ones
            df = df[df["selected"].astype(bool)].drop(columns=["selected"])
        df = df.drop(columns=[c for c in ("text",) if c in df])
        df["param"] = df["param"].replace({"q10": "Q10"})
        return df.reset_index(drop=True)
    except MissingOutput:
        pass
    sel = table(run_dir, "models/selected.parquet", ["biome", "predictors"])
    rows = []
    for _, r in sel.sort_values("biome").iterrows():
        preds = [p for p in str(r.get("predictors") or "").split(",") if p]
        params = _json_list(r.get("params"))
        doc = _model_doc(run_dir, int(r["biome"]))
        names = doc.get("param_names") or list(_FORM_PARAMS.get(str(r.get("form")), ""))[: len(params)]
        stderr = doc.get("stderr") or [math.nan] * len(params)
        base = {"biome": int(r["biome"]), "biome_name": r.get("biome_name", ""), "family": r.get("family", ""),
                "form": r.get("form", "")}
        q10 = []
        for name, value, se in zip(names, params, stderr):
            role, k = _PARAM_ROLES.get(name, ("", None))
            rows.append({**base, "role": role, "predictor": preds[k] if k is not None and k < len(preds) else "",
                         "param": name, "value": float(value), "stderr": _num(se)})
            if name == "b" and doc.get("q10") is not None:  # effective Q10 at t_ref (docs/models.md)
                q10.append({**base, "role": "temperature", "predictor": preds[0] if preds else "", "param": "Q10",
                            "value": float(doc["q10"]), "stderr": _num(doc.get("q10_se", math.nan))})
        rows += q10
        if not params:  # machine-learning families: no closed-form parameters
            rows.append({**base, "role": "", "predictor": ",".join(preds), "param": "", "value": math.nan,
                         "stderr": math.nan})
    return pd.DataFrame(rows, columns=["biome", "biome_name", "family", "form", "role", "predictor", "param",
                                       "value", "stderr"])


def _json_list(v) -> list:
    if isinstance(v, str) and v.strip():
        try:
            out = json.loads(v)
            return list(out) if isinstance(out, list) else []
        except json.JSONDecodeError:
            return []
    return list(v) if isinstance(v, (list, tuple)) else []


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _model_doc(run_dir: Path, biome: int) -> dict:
    p = Path(run_dir) / "models" / f"biome_{biome:02d}.json"
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}


def field_cascade(run_dir: Path) -> pd.DataFrame:
    """Field filter cascade: records left and removed after each selection rule (the paper's
    SRDB filtering, Methods). Reads ``field/cascade.csv``."""
    return pd.read_csv(need(run_dir, "field/cascade.csv"))


def _simple(rel: str, doc: str) -> Callable[[Path], pd.DataFrame]:
    def build(run_dir: Path) -> pd.DataFrame:
        return table(run_dir, rel)

    build.__doc__ = f"{doc} Reads ``{rel}``."
    return build


@dataclass(frozen=True)
class TableSpec:
    name: str          # CSV file stem in report/
    title: str
    build: Callable[[Path], pd.DataFrame]
    reads: tuple[str, ...]
    paper: bool = True  # one of the paper's tables (shown first)


TABLES: dict[str, TableSpec] = {s.name: s for s in [
    TableSpec("table_s2_skill", "Table S2. Cross-validated skill per biome, family and form", table_s2,
              ("models/skill.parquet",)),
    TableSpec("table_s3_selected", "Table S3. Selected model per biome", table_s3, ("models/selected.parquet",)),
    TableSpec("table_s4_parameters", "Table S4. Predictors and parameters of the selected models", table_s4,
              ("models/parameters.parquet", "models/selected.parquet", "models/biome_XX.json")),
    TableSpec("field_cascade", "Field data filter cascade", field_cascade, ("field/cascade.csv",)),
    TableSpec("totals", "Annual totals (Pg C yr-1) and shares, with the Monte Carlo 95 % interval",
              _simple("product/totals.parquet", "Annual totals per region."), ("product/totals.parquet",), False),
    TableSpec("series_trends", "Trends of the regional series (Pg C yr-2)",
              _simple("trends/series_trends.parquet", "Sen slope, MK p and bootstrap CI per region."),
              ("trends/series_trends.parquet",), False),
    TableSpec("class_shares", "Area shares of the trend classes",
              _simple("trends/class_shares.parquet", "Trend class shares per region."),
              ("trends/class_shares.parquet",), False),
    TableSpec("series_partial_corr", "Partial correlations of the regional mean series",
              _simple("attribution/series_partial_corr.parquet", "Partial r, p and df per region and driver."),
              ("attribution/series_partial_corr.parquet",), False),
    TableSpec("colocation", "Co-location of significant Rs and driver trends",
              _simple("attribution/colocation.parquet", "Co-location shares per region and driver."),
              ("attribution/colocation.parquet",), False),
    TableSpec("change_shares", "Climate vs land-cover shares of the Rs change",
              _simple("attribution/change_shares.parquet", "Change shares per region and driver class."),
              ("attribution/change_shares.parquet",), False),
]}
