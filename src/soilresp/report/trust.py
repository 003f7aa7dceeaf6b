"""Report figures on where the product can be believed (issue 15): the area of applicability
of the biome models (Meyer & Pebesma 2021) and their interpretation (permutation importance,
partial dependence; scikit-learn's :mod:`sklearn.inspection`), with the range of the field
observations marked so a curve that leaves the data shows at a glance.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from soilresp.report._common import RS_UNITS, display, draw_map, grid, need, panel, table
from soilresp.report.figures import FigureSpec


def figT1_aoa(run_dir: Path):
    """Area of applicability: (A) the dissimilarity index of the first year (DI, Meyer &
    Pebesma 2021; DI above the biome model's CV threshold is outside) and (B) inside /
    outside per pixel, with the shares of land area and flux outside in the title.

    Reads ``product/rs.zarr`` (``di``, ``aoa``) and ``product/totals.parquet``.
    """
    ds = grid(run_dir, "product/rs.zarr", ["di", "aoa"])
    y0 = ds["year"].values[0]
    di = display(ds["di"].sel(year=y0))
    flag = display(ds["aoa"].sel(year=y0).astype("float32").where(ds["aoa"].sel(year=y0) >= 0), categorical=True)
    tot = table(run_dir, "product/totals.parquet")
    g = tot[(tot.region == "global") & (tot.year == y0)]
    fig, (a, b) = plt.subplots(1, 2, figsize=(14, 4.6))
    a, b = panel(a, "A"), panel(b, "B")
    vals = di.values[np.isfinite(di.values)]
    im = draw_map(a, di, cmap="magma_r", vmin=0, vmax=float(np.percentile(vals, 99)) if vals.size else 1)
    fig.colorbar(im, ax=a, shrink=0.8, label="DI (1)")
    a.set_title(f"(A) dissimilarity index, {y0}", fontsize=11)
    draw_map(b, flag, cmap="RdYlBu", vmin=0, vmax=1)
    note = ""
    if len(g) and "share_area_outside_aoa" in g:
        r = g.iloc[0]
        note = (f": {100 * r.share_area_outside_aoa:.0f} % of area, {100 * r.share_flux_outside_aoa:.0f} % of flux "
                f"outside ({r.total_pg:.1f} Pg C yr$^{{-1}}$ all, {r.total_pg_aoa:.1f} inside)")
    b.set_title(f"(B) inside (blue) / outside (red) the AOA{note}", fontsize=10)
    fig.tight_layout()
    return fig


def figT2_interpretation(run_dir: Path):
    """Interpretation of every deployed biome model: partial dependence of Rs on each
    predictor (``sklearn.inspection.partial_dependence`` on the training rows, over the
    training range +-30 %; the model clamps outside its training range) with the observations'
    range shaded and their values as ticks, and the permutation importance (R2 drop,
    ``sklearn.inspection.permutation_importance``) in each panel's legend.

    Reads ``models/biome_XX.json`` and ``sites/training.parquet``.
    """
    from sklearn.inspection import partial_dependence, permutation_importance

    from soilresp.config import BIOMES
    from soilresp.models import load_biome_models
    from soilresp.models.base import POOLED_KINDS, fallback_kind

    need(run_dir, "sites/training.parquet")
    tab = table(run_dir, "sites/training.parquet")
    models = load_biome_models(Path(run_dir) / "models", BIOMES)
    preds = sorted({v for m in models.values() for v in m.predictors})
    fig, axes = plt.subplots(len(preds), 1, figsize=(10, 3.2 * len(preds)), squeeze=False)
    colours = plt.get_cmap("tab10")
    for k, v in enumerate(preds):
        ax = panel(axes[k, 0], chr(65 + k))
        for code, m in sorted(models.items()):
            if v not in m.predictors:
                continue
            fb = str(m.meta.get("fallback") or "")
            pooled = fallback_kind(m) in POOLED_KINDS   # fitted on all biomes' rows
            rows = tab[tab["biome"].isin(list(BIOMES))] if pooled else tab[tab["biome"] == code]
            rows = rows.dropna(subset=list(m.predictors) + ["rs"])
            if len(rows) < 3:
                continue
            X, y = rows[m.predictors].to_numpy(float), rows["rs"].to_numpy(float)
            j = m.predictors.index(v)
            lo, hi = X[:, j].min(), X[:, j].max()
            span = hi - lo if hi > lo else 1.0
            values = np.linspace(lo - 0.3 * span, hi + 0.3 * span, 60)
            est = _Clamped(m)
            pd_ = partial_dependence(est, X, [j], custom_values={j: values}, kind="average")
            imp = permutation_importance(est, X, y, n_repeats=5, random_state=0).importances_mean[j]
            c = colours(code % 10)
            ax.plot(values, pd_["average"][0], color=c, lw=1.5,
                    label=f"{code} {BIOMES[code][:22]}{' (' + fb.split(' (')[0] + ')' if fb else ''}: imp {imp:.2f}")
            ax.axvspan(lo, hi, color=c, alpha=0.06)
            ax.plot(X[:, j], np.full(len(X), 0), "|", color=c, ms=6, alpha=0.5)
        unit = next((m.meta.get("units", {}).get(v) for m in models.values() if m.meta.get("units", {}).get(v)), "")
        ax.set_xlabel(f"{v} ({unit})" if unit else v)
        ax.set_ylabel(f"partial dependence of Rs ({RS_UNITS})")
        ax.legend(fontsize=7, ncol=2)
        ax.set_title(f"({chr(65 + k)}) {v}: shaded = observations' range per biome", fontsize=10)
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    return fig


class _Clamped:
    """A deployed model as a scikit-learn regressor (clamping included) for the inspection
    tools."""

    _estimator_type = "regressor"

    def __init__(self, m):
        self.m = m
        self.fitted_ = True

    def fit(self, X, y):  # pragma: no cover - never refitted here
        return self

    def predict(self, X):
        return self.m.predict(np.asarray(X, dtype=float))

    def score(self, X, y):
        from sklearn.metrics import r2_score

        return r2_score(y, self.predict(X))

    def __sklearn_tags__(self):
        from sklearn.utils import Tags, TargetTags, RegressorTags

        return Tags(estimator_type="regressor", target_tags=TargetTags(required=True),
                    regressor_tags=RegressorTags())


TRUST_FIGURES = {s.name: s for s in [
    FigureSpec("figT1_aoa", "Area of applicability of the biome models (Meyer & Pebesma 2021)", figT1_aoa,
               ("product/rs.zarr", "product/totals.parquet"), 2),
    FigureSpec("figT2_interpretation", "Partial dependence and permutation importance of the biome models",
               figT2_interpretation, ("sites/training.parquet",), 1),
]}
