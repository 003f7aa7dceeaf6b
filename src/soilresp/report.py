"""Figures, tables and one self-contained HTML report (method step 8).

Every figure is a function of a run's output folder, so any run can be redrawn. Maps are
plate carree with coastlines drawn from the ``global-land-mask`` package (offline; no
download at run time). The HTML embeds the PNGs as base64, so it is one file.
"""

from __future__ import annotations

import base64
import functools
import html
import io as _bio
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from soilresp import io  # noqa: E402
from soilresp.stats import TREND_CLASS_LABELS, TREND_CLASS_NODATA  # noqa: E402

_CLASS_COLOURS = {2: "#b2182b", 1: "#f4a582", 0: "#e0e0e0", -1: "#92c5de", -2: "#2166ac"}
_REGION_COLOURS = {"global": "k", "tropical": "#d95f02", "temperate": "#1b9e77", "boreal": "#7570b3"}


@functools.lru_cache(maxsize=4)
def _land(extent: tuple, res: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from global_land_mask import globe

    lat = np.arange(extent[2] + res / 2, extent[3], res)
    lon = np.arange(extent[0] + res / 2, extent[1], res)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    return lon, lat, globe.is_land(la, lo).astype(float)


def _coastlines(ax, extent=(-180, 180, -60, 84), res: float = 0.25) -> None:
    lon, lat, land = _land(tuple(extent), res)  # computed once per extent, not per map
    ax.contour(lon, lat, land, levels=[0.5], colors="0.3", linewidths=0.4)


def _map(ax, da: xr.DataArray, **kw):
    im = ax.pcolormesh(da["lon"], da["lat"], da.values, shading="auto", **kw)
    _coastlines(ax, (float(da.lon.min()) - 0.5, float(da.lon.max()) + 0.5,
                     float(da.lat.min()) - 0.5, float(da.lat.max()) + 0.5))
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.set_aspect("equal")
    return im


def fig1_mean_rs(run_dir: Path):
    """Fig 1: map of mean annual Rs and its latitudinal profile (mean and total)."""
    rs = io.open_zarr(run_dir / "product" / "rs.zarr", ["rs"])["rs"].mean("year").load()
    prof = io.read_table(run_dir / "product" / "latitude_profile.parquet")
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [4, 1]})
    im = _map(ax, rs, cmap="YlOrBr", vmin=0, vmax=float(np.nanpercentile(rs.values, 99)))
    fig.colorbar(im, ax=ax, label="Rs (g C m$^{-2}$ yr$^{-1}$)", shrink=0.8)
    ax.set_title("(A) mean annual soil respiration")
    ax2.plot(prof["mean_rs"], prof["lat"], color="C1", label="mean (g C m$^{-2}$ yr$^{-1}$)")
    ax2.set_xlabel("mean Rs (g C m$^{-2}$ yr$^{-1}$)")
    ax3 = ax2.twiny()
    ax3.plot(prof["total_tg"], prof["lat"], color="C0", label="total (Tg C yr$^{-1}$)")
    ax3.set_xlabel("total per row (Tg C yr$^{-1}$)", color="C0")
    ax2.set_ylabel("latitude (°N)")
    ax2.set_title("(B) latitudinal profile", pad=28)
    fig.tight_layout()
    return fig


def fig_totals(run_dir: Path):
    """Annual totals per region with the Monte Carlo 95 % band (paper fig S2)."""
    tot = io.read_table(run_dir / "product" / "totals.parquet")
    regions = list(dict.fromkeys(tot["region"]))
    fig, axes = plt.subplots(1, len(regions), figsize=(3.4 * len(regions), 3.2))
    for ax, reg in zip(np.atleast_1d(axes), regions):
        g = tot[tot.region == reg].sort_values("year")
        ax.plot(g["year"], g["total_pg"], "o-", color=_REGION_COLOURS.get(reg, "k"), ms=3)
        if "mc_lo" in g:
            ax.fill_between(g["year"], g["mc_lo"], g["mc_hi"], alpha=0.25,
                            color=_REGION_COLOURS.get(reg, "k"), label="95 % MC interval")
        ax.set_title(reg)
        ax.set_xlabel("year")
    np.atleast_1d(axes)[0].set_ylabel("Rs (Pg C yr$^{-1}$)")
    fig.tight_layout()
    return fig


def fig2_trends(run_dir: Path):
    """Fig 2: (A) regional trends with bootstrap CI, (B) trend class map, (C) class shares."""
    st = io.read_table(run_dir / "trends" / "series_trends.parquet")
    tr = io.open_zarr(run_dir / "trends" / "trends.zarr", ["trend_class"])["trend_class"].load()
    tr = tr.where(tr != TREND_CLASS_NODATA)  # no data (ocean, excluded biomes) stays blank
    cs = io.read_table(run_dir / "trends" / "class_shares.parquet")
    fig = plt.figure(figsize=(13, 7))
    gs = fig.add_gridspec(2, 2, height_ratios=[1, 1.3])
    ax = fig.add_subplot(gs[0, 0])
    x = np.arange(len(st))
    lo = st["boot_lo"] if "boot_lo" in st else st["sen_lo"]
    hi = st["boot_hi"] if "boot_hi" in st else st["sen_hi"]
    ax.bar(x, st["slope"] * 1000, color=[_REGION_COLOURS.get(r, "grey") for r in st["region"]])
    ax.errorbar(x, st["slope"] * 1000, yerr=[(st["slope"] - lo) * 1000, (hi - st["slope"]) * 1000],
                fmt="none", ecolor="k", capsize=3)
    for i, p in enumerate(st["p"]):
        ax.text(i, max(st["slope"].iloc[i], hi.iloc[i]) * 1000, "*" if p < 0.05 else "", ha="center")
    ax.set_xticks(x, st["region"])
    ax.set_ylabel("trend (Tg C yr$^{-2}$)")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title("(A) Sen slope, 95 % block-bootstrap CI (* MK p < 0.05)")
    ax = fig.add_subplot(gs[0, 1])
    piv = cs.pivot(index="region", columns="class", values="share").reindex(columns=sorted(TREND_CLASS_LABELS, reverse=True))
    left = np.zeros(len(piv))
    for c in piv.columns:
        ax.barh(piv.index, piv[c] * 100, left=left, color=_CLASS_COLOURS[c], label=TREND_CLASS_LABELS[c])
        left += piv[c].fillna(0).to_numpy() * 100
    ax.set_xlabel("area share (%)")
    ax.set_title("(C) trend classes by region")
    ax.legend(fontsize=7, loc="lower right")
    ax = fig.add_subplot(gs[1, :])
    from matplotlib.colors import BoundaryNorm, ListedColormap

    codes = sorted(TREND_CLASS_LABELS)
    cmap = ListedColormap([_CLASS_COLOURS[c] for c in codes])
    im = _map(ax, tr.astype(float), cmap=cmap, norm=BoundaryNorm(np.arange(-2.5, 3), cmap.N))
    cb = fig.colorbar(im, ax=ax, ticks=codes, shrink=0.8)
    cb.ax.set_yticklabels([TREND_CLASS_LABELS[c] for c in codes], fontsize=7)
    ax.set_title("(B) trend classes of annual Rs")
    fig.tight_layout()
    return fig


def fig3_partial_corr(run_dir: Path):
    """Fig 3: detrended partial correlations of regional mean Rs with each driver."""
    pc = io.read_table(run_dir / "attribution" / "series_partial_corr.parquet")
    regions = list(dict.fromkeys(pc["region"]))
    fig, axes = plt.subplots(1, len(regions), figsize=(3.4 * len(regions), 3.2), sharey=True)
    for ax, reg in zip(np.atleast_1d(axes), regions):
        g = pc[pc.region == reg]
        ax.bar(g["driver"], g["r"], color=["C3" if p < 0.05 else "C7" for p in g["p"]])
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{reg} (df={int(g['df'].max())})")
        ax.tick_params(axis="x", rotation=45)
    np.atleast_1d(axes)[0].set_ylabel("partial r (red: p < 0.05)")
    fig.tight_layout()
    return fig


def fig45_change(run_dir: Path):
    """Fig 4: co-location with driver change; Fig 5: land-cover vs climate shares of change."""
    co = io.read_table(run_dir / "attribution" / "colocation.parquet")
    sh = io.read_table(run_dir / "attribution" / "change_shares.parquet")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.6))
    piv = co.pivot(index="driver", columns="region", values="share_of_significant_rs") * 100
    piv.plot.bar(ax=a1, color=[_REGION_COLOURS.get(c, "grey") for c in piv.columns])
    a1.set_ylabel("% of significant-Rs-trend area")
    a1.set_title("(Fig 4) co-location of significant Rs and driver trends")
    main = sh[sh.driver_class.isin(["climate", "land_cover"])]
    piv2 = main.pivot(index="region", columns="driver_class", values="share") * 100
    piv2.plot.barh(stacked=True, ax=a2, color={"climate": "#e6ab02", "land_cover": "#1b9e77"})
    a2.set_xlabel("share of absolute Rs net change (%)")
    a2.set_title("(Fig 5) climate vs land-cover change")
    fig.tight_layout()
    return fig


def fig6_pixel_partial_corr(run_dir: Path):
    """Fig 6: per-pixel detrended partial correlation maps, one per driver."""
    ds = io.open_zarr(run_dir / "attribution" / "pixel_partial_corr.zarr").load()
    names = [v[2:] for v in ds.data_vars if v.startswith("r_")]
    ncol = 3
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(15, 3.3 * nrow), squeeze=False)
    df = ds.attrs.get("df", "?")
    for ax, n in zip(axes.flat, names):
        im = _map(ax, ds[f"r_{n}"], cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(f"partial r: Rs vs {n}")
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    fig.colorbar(im, ax=axes, shrink=0.6, label=f"detrended partial r (df = {df}; no FDR)")
    return fig


FIGURES = {
    "fig1_mean_rs": fig1_mean_rs, "figS2_totals": fig_totals, "fig2_trends": fig2_trends,
    "fig3_partial_corr": fig3_partial_corr, "fig4_5_change": fig45_change,
    "fig6_pixel_partial_corr": fig6_pixel_partial_corr,
}
TABLES = {
    "Field filter cascade": ("field", "cascade.csv"),
    "Table S2: model skill per biome and form": ("models", "skill.parquet"),
    "Table S3/S4: selected model, predictors and parameters per biome": ("models", "selected.parquet"),
    "Totals (Pg C/yr) with Monte Carlo 95 % interval": ("product", "totals.parquet"),
    "Series trends": ("trends", "series_trends.parquet"),
    "Land-cover vs climate shares of Rs change": ("attribution", "change_shares.parquet"),
}


def _png(fig) -> bytes:
    buf = _bio.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_report(run_dir: Path, out_dir: Path) -> Path:
    """Draw every figure (PNG), export every table (CSV) and write ``report.html``."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    parts = [f"<h1>soilresp report: {html.escape(run_dir.name)}</h1>"]
    recovery = run_dir / "recovery.json"
    if recovery.is_file():
        parts.append("<p class='synthetic'><b>SYNTHETIC WORLD</b>: these results come from a synthetic "
                     "world whose truth is known; they are not an estimate for the real Earth.</p>")
        parts.append(f"<h2>Recovery of the truth</h2><pre>{html.escape(recovery.read_text())}</pre>")
    for name, fn in FIGURES.items():
        png = _png(fn(run_dir))
        io.write_bytes_atomic(out_dir / f"{name}.png", png)
        parts.append(f"<h2>{html.escape(name)}</h2><img alt='{name}' src='data:image/png;base64,"
                     f"{base64.b64encode(png).decode()}'/>")
    for title, (stage, fname) in TABLES.items():
        p = run_dir / stage / fname
        if not p.exists():
            continue
        df = pd.read_csv(p) if p.suffix == ".csv" else io.read_table(p)
        io.write_csv(out_dir / (Path(fname).stem + ".csv"), df)
        parts.append(f"<h2>{html.escape(title)}</h2>" + df.to_html(index=False, float_format=lambda v: f"{v:.4g}"))
    prov = io.read_provenance(run_dir / "product" / "totals.parquet")
    parts.append(f"<h2>Provenance</h2><pre>{html.escape(json.dumps(prov, indent=2))}</pre>")
    doc = ("<!doctype html><html><head><meta charset='utf-8'><title>soilresp report</title><style>"
           "body{font-family:sans-serif;max-width:1200px;margin:auto}img{max-width:100%}"
           "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
           ".synthetic{background:#fee;padding:8px}</style></head><body>" + "\n".join(parts) + "</body></html>")
    return io.write_text_atomic(out_dir / "report.html", doc)
