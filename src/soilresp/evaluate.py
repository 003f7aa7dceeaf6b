"""Score a finished run on independent observations (``soilresp evaluate``).

The observations go through exactly what the training rows went through: the run's
``[field]`` selection rules (SRDB-format, or a mapped table with the run's ``[field]
columns``), the biome of the cell containing each site and the drivers of that cell
(:func:`soilresp.grid.axis_cell`, the one cell rule), then each biome's deployed model (with
its clamping) and its area of applicability (:mod:`soilresp.aoa`).

Scores (R2 = 1 - SS_res / SS_tot, RMSE and bias = mean(predicted - observed), g C m-2 yr-1)
per biome and for all biomes together, for all rows, rows inside the AOA and rows outside
it, beside the same scores of the **per-biome mean** (the biome's mean observed Rs of the
training data, ``biome_mean_rs`` in the model file): the baseline every model must beat.

Outputs, below ``<output_dir>/evaluate/<observations file stem>/``: ``predictions.parquet``
(one row per observation: site, year, biome, rs, predicted, baseline, di, inside_aoa),
``scores.csv`` and ``scores.parquet`` (biome, subset, n, r2, rmse, bias, baseline_r2,
baseline_rmse, baseline_bias) and ``evaluate.png`` (observed vs predicted; RMSE per biome
against the baseline).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from soilresp import io
from soilresp.errors import input_error


def _score(y: np.ndarray, yhat: np.ndarray) -> tuple[int, float, float, float]:
    ok = np.isfinite(y) & np.isfinite(yhat)
    y, yhat = y[ok], yhat[ok]
    if y.size == 0:
        return 0, np.nan, np.nan, np.nan
    ss = np.sum((y - y.mean()) ** 2)
    r2 = 1 - np.sum((y - yhat) ** 2) / ss if (y.size > 1 and ss > 0) else np.nan
    return int(y.size), float(r2), float(np.sqrt(np.mean((y - yhat) ** 2))), float(np.mean(yhat - y))


def observation_rows(cfg, observations: Path, fmt: str | None = None) -> pd.DataFrame:
    """The run's field selection, biome and drivers for an observation file (training-table
    columns: site_id, lat, lon, year, rs, biome and the drivers)."""
    from soilresp import field
    from soilresp.drivers import extract_at_sites

    fcfg = cfg.field.model_copy(update={"path": Path(observations).resolve(),
                                        **({"format": fmt} if fmt else {})})
    res = field.build_observations(fcfg, cfg.run.years, base_dir=cfg.base_dir)
    obs = res.observations
    out = cfg.output_dir
    bpath, dpath = out / "biomes" / "biomes.zarr", out / "drivers" / "drivers.zarr"
    for p in (bpath, dpath):
        if not io.is_complete(p):
            raise input_error(p, "missing or incomplete: run the stages of this config first")
    bio = io.open_zarr(bpath, ["biome"])
    obs = field.assign_biomes(obs, bio["biome"], max_cells=cfg.biomes.site_search_cells)
    from soilresp.grid import Grid

    return extract_at_sites(io.open_zarr(dpath), obs, Grid.from_config(cfg.grid), cfg.drivers.max_site_distance_km)


def predict_rows(tab: pd.DataFrame, models: dict) -> pd.DataFrame:
    """Prediction, per-biome-mean baseline, DI and AOA flag for every row of ``tab``."""
    from soilresp.aoa import di_points

    out = tab.copy()
    out["predicted"] = np.nan
    out["baseline"] = np.nan
    out["di"] = np.nan
    out["inside_aoa"] = pd.array([pd.NA] * len(out), dtype="boolean")
    for code, m in models.items():
        sel = (out["biome"] == code).to_numpy()
        if not sel.any():
            continue
        miss = [v for v in m.predictors if v not in out]
        if miss:
            raise KeyError(f"biome {code} model reads {miss}, absent from the drivers")
        X = out.loc[sel, m.predictors].to_numpy(float)
        out.loc[sel, "predicted"] = m.predict(X)
        out.loc[sel, "baseline"] = m.meta.get("biome_mean_rs") if m.meta.get("biome_mean_rs") is not None else np.nan
        a = m.meta.get("aoa")
        if a and a.get("train"):
            di = di_points(out.loc[sel, a["predictors"]].to_numpy(float), a)
            out.loc[sel, "di"] = di
            out.loc[sel, "inside_aoa"] = pd.array(np.where(np.isfinite(di), di <= a["threshold"], pd.NA),
                                                  dtype="boolean")
    return out


def score_table(pred: pd.DataFrame) -> pd.DataFrame:
    """Scores per biome (0 = all biomes) and subset (all, inside_aoa, outside_aoa)."""
    rows = []
    ok = pred[np.isfinite(pred["rs"].to_numpy(float)) & pred["biome"].gt(0)]
    for code in [0] + sorted(int(b) for b in ok["biome"].unique()):
        d = ok if code == 0 else ok[ok["biome"] == code]
        ins = d["inside_aoa"].fillna(False).to_numpy(bool)
        outs = (~d["inside_aoa"].fillna(True)).to_numpy(bool)
        for subset, m in (("all", np.ones(len(d), bool)), ("inside_aoa", ins), ("outside_aoa", outs)):
            y = d["rs"].to_numpy(float)[m]
            n, r2, rmse, bias = _score(y, d["predicted"].to_numpy(float)[m])
            _, br2, brmse, bbias = _score(y, d["baseline"].to_numpy(float)[m])
            rows.append({"biome": code, "subset": subset, "n": n, "r2": r2, "rmse": rmse, "bias": bias,
                         "baseline_r2": br2, "baseline_rmse": brmse, "baseline_bias": bbias})
    return pd.DataFrame(rows)


def evaluation_figure(pred: pd.DataFrame, scores: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.6))
    ok = pred[np.isfinite(pred["predicted"]) & np.isfinite(pred["rs"])]
    ins = ok["inside_aoa"].fillna(False).to_numpy(bool)
    a.scatter(ok["rs"][ins], ok["predicted"][ins], s=10, c="tab:blue", label="inside AOA")
    a.scatter(ok["rs"][~ins], ok["predicted"][~ins], s=14, c="tab:red", marker="x", label="outside AOA")
    hi = float(np.nanmax([ok["rs"].max(), ok["predicted"].max(), 1.0])) if len(ok) else 1.0
    a.plot([0, hi], [0, hi], "k--", lw=0.8)
    a.set_xlabel("observed Rs (g C m$^{-2}$ yr$^{-1}$)")
    a.set_ylabel("predicted Rs (g C m$^{-2}$ yr$^{-1}$)")
    al = scores[(scores.biome == 0) & (scores.subset == "all")].iloc[0]
    a.set_title(f"all biomes: R2 {al.r2:.2f}, RMSE {al.rmse:.0f} (mean baseline {al.baseline_rmse:.0f})")
    a.legend(loc="upper left")
    s = scores[(scores.subset == "all") & (scores.biome > 0)]
    x = np.arange(len(s))
    b.bar(x - 0.2, s["rmse"], 0.4, label="model")
    b.bar(x + 0.2, s["baseline_rmse"], 0.4, label="biome mean (baseline)")
    b.set_xticks(x, [f"{int(v)}\nn={n}" for v, n in zip(s["biome"], s["n"])])
    b.set_ylabel("RMSE (g C m$^{-2}$ yr$^{-1}$)")
    b.set_xlabel("biome")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def evaluate(cfg, observations: Path, *, fmt: str | None = None, out_dir: Path | None = None) -> dict:
    """``soilresp evaluate``: scores of the run of ``cfg`` on ``observations``; writes the
    files of the module docstring and returns their paths and the all-biome scores."""
    from soilresp.config import BIOMES
    from soilresp.extras import require
    from soilresp.models import load_biome_models

    require("matplotlib", "report", "soilresp evaluate (its figure)")   # before any work
    observations = Path(observations)
    models = load_biome_models(cfg.output_dir / "models", BIOMES)
    tab = observation_rows(cfg, observations, fmt)
    pred = predict_rows(tab, models)
    scores = score_table(pred)
    out_dir = Path(out_dir) if out_dir else cfg.output_dir / "evaluate" / observations.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    keep = [c for c in ("site_id", "lat", "lon", "year", "biome", "rs", "predicted", "baseline", "di",
                        "inside_aoa") if c in pred]
    io.write_table(out_dir / "predictions.parquet", pred[keep].reset_index(drop=True), {})
    io.write_table(out_dir / "scores.parquet", scores, {})
    scores.to_csv(out_dir / "scores.csv", index=False)
    fig = evaluation_figure(pred, scores, out_dir / "evaluate.png")
    return {"dir": out_dir, "figure": fig, "scores": scores}
