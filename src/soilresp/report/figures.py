"""The paper's figures (Huang et al. 2020, Figs 1-6 and S2), each a function of a run folder.

Every ``fig*`` function takes the run's output folder, reads only the files named in its
docstring, and returns a :class:`matplotlib.figure.Figure`; it raises
:class:`~soilresp.report._common.MissingOutput` when a file it needs is absent. Panels are
tagged ``panel:<label>`` (see :func:`~soilresp.report._common.panels`).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.patches import Patch

from soilresp.report._common import (
    REGION_COLOURS, RS_UNITS, MissingOutput, display, draw_map, driver_label, grid, need, panel, plt,
    region_order, significance_stars, stipple, table,
)
from soilresp.stats import TREND_CLASS_LABELS, TREND_CLASS_NODATA

CLASS_COLOURS = {2: "#b2182b", 1: "#f4a582", 0: "#fff3b0", -1: "#92c5de", -2: "#2166ac"}
CHANGE_COLOURS = {"climate": "#e6ab02", "land_cover": "#1b9e77"}
_LC_TYPE_COLOURS = ["#1b9e77", "#66c2a4", "#b2e2c9", "#006d2c", "#41ae76"]


def _years_label(years) -> str:
    years = np.asarray(years)
    return f"{int(years.min())}–{int(years.max())}" if years.size else ""


def _trend_attrs(run_dir: Path) -> dict:
    """alpha, slight_alpha and fdr of the run's trend stage (defaults when absent)."""
    try:
        attrs = grid(run_dir, "trends/trends.zarr").attrs
    except MissingOutput:
        attrs = {}
    return {"alpha": float(attrs.get("alpha", 0.05)), "slight_alpha": float(attrs.get("slight_alpha", 0.5)),
            "fdr": bool(attrs.get("fdr", False))}


def _align_height(ax_ref, ax) -> None:
    """Give ``ax`` the same vertical extent as ``ax_ref`` (a map whose aspect fixes its height)."""
    ax_ref.apply_aspect()
    r, p = ax_ref.get_position(), ax.get_position()
    ax.set_position([p.x0, r.y0, p.width, r.height])


# ------------------------------------------------------------------ Fig 1
def fig1_mean_rs(run_dir: Path):
    """Fig 1: (A) map of mean annual Rs (g C m-2 yr-1) over the run's years; (B) latitudinal
    profile of the mean (g C m-2 yr-1) and the total per latitude band (Tg C yr-1).

    Reads ``product/rs.zarr`` (``rs``) and ``product/latitude_profile.parquet``.
    """
    rs = grid(run_dir, "product/rs.zarr", ["rs"])["rs"]
    mean = display(rs.mean("year"))
    prof = table(run_dir, "product/latitude_profile.parquet", ["lat", "mean_rs", "total_tg"]).sort_values("lat")
    fig = plt.figure(figsize=(13.5, 5.2))
    gs = fig.add_gridspec(1, 2, width_ratios=[4.3, 1], wspace=0.06, left=0.05, right=0.97, bottom=0.2)
    ax = panel(fig.add_subplot(gs[0]), "A")
    vals = mean.values[np.isfinite(mean.values)]
    vmax = float(np.percentile(vals, 99)) if vals.size else 1.0
    im = draw_map(ax, mean, cmap="YlOrBr", vmin=0, vmax=vmax)
    ax.set_title(f"(A) mean annual soil respiration, {_years_label(rs['year'].values)}", fontsize=11)
    cax = fig.add_axes([0.12, 0.08, 0.5, 0.03])
    cb = fig.colorbar(im, cax=cax, orientation="horizontal", extend="max")
    cb.set_label(f"Rs ({RS_UNITS})")
    ax2 = panel(fig.add_subplot(gs[1]), "B")
    l1, = ax2.plot(prof["mean_rs"], prof["lat"], color="#b35806", lw=1.6, label=f"mean ({RS_UNITS})")
    ax2.set_xlabel(f"mean Rs ({RS_UNITS})", color="#b35806", fontsize=9)
    ax2.tick_params(axis="x", colors="#b35806", labelsize=8)
    ax2.set_xlim(left=0)
    ax3 = ax2.twiny()
    band = float(np.median(np.diff(prof["lat"]))) if len(prof) > 1 else float("nan")
    l2, = ax3.plot(prof["total_tg"], prof["lat"], color="#2166ac", lw=1.6, ls="--",
                   label=f"total per {band:g}° band (Tg C yr$^{{-1}}$)")
    ax3.set_xlabel(f"total per {band:g}° band (Tg C yr$^{{-1}}$)", color="#2166ac", fontsize=9)
    ax3.tick_params(axis="x", colors="#2166ac", labelsize=8)
    ax3.set_xlim(left=0)
    ylim = ax.get_ylim()
    ax2.set_ylim(ylim)
    ax2.set_yticks(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()])
    ax2.set_ylim(ylim)
    ax2.tick_params(axis="y", labelsize=8)
    ax2.grid(alpha=0.3)
    ax2.legend(handles=[l1, l2], fontsize=7, loc="lower right")
    _align_height(ax, ax2)
    ax3.set_position(ax2.get_position())
    pos = ax2.get_position()
    fig.text((pos.x0 + pos.x1) / 2, pos.y1 + 0.095, "(B) latitudinal profile", ha="center", fontsize=11)
    return fig


# ------------------------------------------------------------------ Fig S2
def figS2_totals(run_dir: Path):
    """Fig S2: annual global and regional totals (Pg C yr-1) with the Monte Carlo 95 % band.

    Reads ``product/totals.parquet`` (the headline: the fitted models' central estimate) and
    ``uncertainty/mc_summary.parquet`` (median and 2.5 / 97.5 percentiles of the first mode
    listed in ``[product] mc_mode``) when the uncertainty stage ran.
    """
    tot = table(run_dir, "product/totals.parquet", ["region", "year", "total_pg"])
    regions = region_order(tot["region"])
    has_mc, n_mc, mode = False, None, None
    try:
        sm = table(run_dir, "uncertainty/mc_summary.parquet")
        if "mode" in sm and len(sm):
            mode = str(sm["mode"].iloc[0])
            sm = sm[sm["mode"] == mode]
            has_mc = bool(sm["mc_lo"].notna().any())
            n_mc = int(sm["n"].iloc[0])
            tot = tot.merge(sm[["region", "year", "mc_lo", "mc_hi", "mc_median"]], on=["region", "year"],
                            how="left")
    except MissingOutput:
        pass
    fig, axes = plt.subplots(1, len(regions), figsize=(3.4 * len(regions), 3.4), squeeze=False)
    for ax, reg in zip(axes[0], regions):
        panel(ax, reg)
        g = tot[tot["region"] == reg].sort_values("year")
        c = REGION_COLOURS.get(reg, "k")
        if has_mc:
            lab = f"Monte Carlo 95 % interval ({mode}" + (f", N = {n_mc})" if n_mc else ")")
            ax.fill_between(g["year"], g["mc_lo"], g["mc_hi"], color=c, alpha=0.2, lw=0, label=lab)
            ax.plot(g["year"], g["mc_median"], ls="--", color=c, lw=1, label="Monte Carlo median")
        ax.plot(g["year"], g["total_pg"], "o-", ms=3, lw=1.3, color=c, label="estimate")
        ax.set_title(f"{reg}: mean {g['total_pg'].mean():.2f} Pg C yr$^{{-1}}$", fontsize=10)
        ax.set_xlabel("year")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("Rs (Pg C yr$^{-1}$)")
    axes[0, 0].legend(fontsize=7, loc="best")
    if not has_mc:
        fig.suptitle("No Monte Carlo in this run (uncertainty stage not run or mc_samples = 0): no band",
                     fontsize=9, color="0.35")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ Fig 2
def fig2_trends(run_dir: Path):
    """Fig 2: (A) global and regional trends of annual Rs: Theil-Sen slope (Tg C yr-2) with the
    95 % moving-block bootstrap CI (shaded fan) and Mann-Kendall significance (stars);
    (B) map of the five trend classes; (C) area share of each class by region.

    Reads ``trends/series_trends.parquet``, ``product/totals.parquet``, ``trends/trends.zarr``
    (``trend_class`` and the ``alpha``/``slight_alpha``/``fdr`` attributes) and
    ``trends/class_shares.parquet``.
    """
    st = table(run_dir, "trends/series_trends.parquet", ["region", "slope", "p"]).set_index("region")
    tot = table(run_dir, "product/totals.parquet", ["region", "year", "total_pg"])
    cs = table(run_dir, "trends/class_shares.parquet", ["region", "class", "share"])
    tds = grid(run_dir, "trends/trends.zarr", ["trend_class"])
    ta = _trend_attrs(run_dir)
    alpha = ta["alpha"]
    cls = display(tds["trend_class"], categorical=True)
    cls = cls.where(cls != TREND_CLASS_NODATA)
    regions = region_order(st.index)
    fig = plt.figure(figsize=(14, 8.6))
    outer = fig.add_gridspec(2, 1, height_ratios=[1, 1.55], hspace=0.3, left=0.06, right=0.98,
                             top=0.9, bottom=0.07)
    top = outer[0].subgridspec(1, len(regions), wspace=0.32)
    for i, reg in enumerate(regions):
        ax = panel(fig.add_subplot(top[i]), f"A-{reg}")
        g = tot[tot["region"] == reg].sort_values("year")
        x, y = g["year"].to_numpy(float), g["total_pg"].to_numpy(float)
        r = st.loc[reg]
        boot = "boot_lo" in r and np.isfinite(r.get("boot_lo", np.nan))
        lo, hi = (r["boot_lo"], r["boot_hi"]) if boot else (r.get("sen_lo", np.nan), r.get("sen_hi", np.nan))
        c = REGION_COLOURS.get(reg, "k")
        ax.plot(x, y, "o", ms=3.5, color=c, alpha=0.8)
        if len(x) and np.isfinite(r["slope"]):
            xm, ym = np.median(x), np.median(y)  # Theil-Sen line through the medians (Conover)
            ax.plot(x, ym + r["slope"] * (x - xm), color=c, lw=1.8)
            if np.isfinite(lo) and np.isfinite(hi):
                a, b = ym + lo * (x - xm), ym + hi * (x - xm)
                ax.fill_between(x, np.minimum(a, b), np.maximum(a, b), color=c, alpha=0.18, lw=0)
        stars = significance_stars(r["p"], alpha)
        stats = (f"{r['slope'] * 1000:+.1f} Tg C yr$^{{-2}}$ [{lo * 1000:+.1f}, {hi * 1000:+.1f}], p = {r['p']:.3f}"
                 if np.isfinite(r["slope"]) else "no trend estimate (too few valid years)")
        ax.set_title(f"{reg}{' ' + stars if stars else ''}\n{stats}", fontsize=9,
                     fontweight="bold" if stars else None)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.set_ylabel("Rs (Pg C yr$^{-1}$)")
    ci = "moving-block bootstrap" if "boot_lo" in st else "Sen"
    fig.text(0.06, 0.965, f"(A) trends of annual Rs: Theil-Sen line and slope (Tg C yr$^{{-2}}$), shaded "
             f"[95 % {ci} CI]; Mann-Kendall p, * p < {alpha:g}, ** p < {alpha / 5:g}, *** p < {alpha / 50:g}",
             fontsize=10.5, va="bottom")
    bottom = outer[1].subgridspec(1, 2, width_ratios=[3.3, 1], wspace=0.12)
    ax = panel(fig.add_subplot(bottom[0]), "B")
    codes = sorted(TREND_CLASS_LABELS)
    cmap = ListedColormap([CLASS_COLOURS[k] for k in codes])
    draw_map(ax, cls.astype(float), cmap=cmap, norm=BoundaryNorm(np.arange(codes[0] - 0.5, codes[-1] + 1), cmap.N))
    sig = "Benjamini-Hochberg FDR q" if ta["fdr"] else "p"
    ax.set_title(f"(B) trend classes of annual Rs (significant: MK {sig} < {alpha:g}; slight: p < "
                 f"{ta['slight_alpha']:g})", fontsize=10.5)
    handles = [Patch(fc=CLASS_COLOURS[k], ec="0.5", lw=0.5, label=TREND_CLASS_LABELS[k]) for k in reversed(codes)]
    handles.append(Patch(fc="0.8", ec="0.5", lw=0.5, label="land, no data"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=6, fontsize=8, frameon=False)
    ax = panel(fig.add_subplot(bottom[1]), "C")
    piv = (cs.pivot_table(index="region", columns="class", values="share", aggfunc="sum")
           .reindex(index=list(reversed(region_order(cs["region"]))), columns=list(reversed(codes))).fillna(0) * 100)
    left = np.zeros(len(piv))
    for k in piv.columns:
        v = piv[k].to_numpy()
        ax.barh(piv.index, v, left=left, color=CLASS_COLOURS[k], edgecolor="0.4", lw=0.4)
        for j, (l0, w) in enumerate(zip(left, v)):
            if w >= 8:
                ax.text(l0 + w / 2, j, f"{w:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(k) == 2 else "k")
        left += v
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of land area (%)")
    ax.set_title("(C) trend classes by region", fontsize=10.5)
    ax.tick_params(labelsize=8)
    return fig


# ------------------------------------------------------------------ Fig 3
def fig3_partial_corr(run_dir: Path):
    """Fig 3: detrended partial correlation (r, dimensionless) of spatially averaged annual Rs
    with each driver, controlling for the others; global and per region; stars mark p < alpha.

    Reads ``attribution/series_partial_corr.parquet`` (region, driver, r, p, df).
    """
    pc = table(run_dir, "attribution/series_partial_corr.parquet", ["region", "driver", "r", "p"])
    alpha = _trend_attrs(run_dir)["alpha"]
    regions = region_order(pc["region"])
    drivers = list(dict.fromkeys(pc["driver"]))
    fig, axes = plt.subplots(1, len(regions), figsize=(3.3 * len(regions), 3.6), sharey=True, squeeze=False)
    for ax, reg in zip(axes[0], regions):
        panel(ax, reg)
        g = pc[pc["region"] == reg].set_index("driver").reindex(drivers)
        r, p = g["r"].to_numpy(float), g["p"].to_numpy(float)
        sig = np.isfinite(p) & (p < alpha)
        colours = np.where(sig, np.where(r >= 0, "#d6604d", "#4393c3"), "0.82")
        x = np.arange(len(drivers))
        ax.bar(x, np.nan_to_num(r), color=colours, edgecolor="0.35", lw=0.5)
        for xi, ri, pi in zip(x, r, p):
            s = significance_stars(pi, alpha)
            if s and np.isfinite(ri):
                ax.text(xi, ri + (0.04 if ri >= 0 else -0.04), s, ha="center",
                        va="bottom" if ri >= 0 else "top", fontsize=9)
        ax.axhline(0, color="k", lw=0.6)
        df = g["df"].max() if "df" in g else np.nan
        ax.set_title(f"{reg}" + (f" (df = {int(df)})" if np.isfinite(df) else ""), fontsize=10)
        ax.set_xticks(x, [driver_label(d) for d in drivers], fontsize=8)
        ax.set_ylim(-1.15, 1.15)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel("detrended partial r")
    axes[0, -1].legend(handles=[Patch(fc="#d6604d", label=f"r > 0, p < {alpha:g}"),
                                Patch(fc="#4393c3", label=f"r < 0, p < {alpha:g}"),
                                Patch(fc="0.82", label="not significant")], fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ Fig 4
def fig4_colocation(run_dir: Path):
    """Fig 4: share (%) of the area with a significant Rs trend where the driver's own trend is
    also significant (co-location), per driver and region.

    Reads ``attribution/colocation.parquet`` (region, driver, share_of_significant_rs,
    significant_rs_area_km2).
    """
    co = table(run_dir, "attribution/colocation.parquet", ["region", "driver", "share_of_significant_rs"])
    regions = region_order(co["region"])
    drivers = list(dict.fromkeys(co["driver"]))
    piv = co.pivot_table(index="driver", columns="region", values="share_of_significant_rs").reindex(
        index=drivers, columns=regions) * 100
    area = co.groupby("region")["significant_rs_area_km2"].first() if "significant_rs_area_km2" in co else None
    fig, ax = plt.subplots(figsize=(10, 3.9))
    panel(ax, "A")
    w = 0.8 / len(regions)
    x = np.arange(len(drivers))
    for k, reg in enumerate(regions):
        lab = reg if area is None else f"{reg} ({area[reg] / 1e6:.1f} million km² significant)"
        bars = ax.bar(x - 0.4 + w * (k + 0.5), piv[reg].to_numpy(), w, color=REGION_COLOURS.get(reg, "grey"),
                      label=lab, edgecolor="white", lw=0.4)
        ax.bar_label(bars, fmt="%.0f", fontsize=6.5, padding=1)
    ax.set_xticks(x, [f"{driver_label(d)}" for d in drivers])
    ax.set_ylabel("% of significant-Rs-trend area")
    ax.set_ylim(0, min(105, max(10.0, float(np.nanmax(piv.to_numpy(), initial=0)) * 1.18)))
    ax.set_title("Co-location of significant Rs trends with significant driver trends", fontsize=11)
    ax.legend(fontsize=7.5, ncol=2, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ Fig 5
def fig5_change_shares(run_dir: Path):
    """Fig 5: (A) map of pixels whose Rs change is attributed to land-cover change (a significant
    land-cover trend) or to climate; (B) share (%) of the absolute Rs net change due to climate
    and to each land-cover type, per region.

    Reads ``attribution/change_shares.parquet`` (region, driver_class, share) and
    ``attribution/change_class.zarr`` (0 no data, 1 climate, 2 land cover).
    """
    sh = table(run_dir, "attribution/change_shares.parquet", ["region", "driver_class", "share"])
    cc = display(grid(run_dir, "attribution/change_class.zarr", ["change_class"])["change_class"], categorical=True)
    fig = plt.figure(figsize=(14, 4.6))
    gs = fig.add_gridspec(1, 2, width_ratios=[2.4, 1], wspace=0.18, left=0.05, right=0.98, bottom=0.2)
    ax = panel(fig.add_subplot(gs[0]), "A")
    cmap = ListedColormap([CHANGE_COLOURS["climate"], CHANGE_COLOURS["land_cover"]])
    draw_map(ax, cc.where(cc > 0).astype(float), cmap=cmap, norm=BoundaryNorm([0.5, 1.5, 2.5], 2))
    assessable = "assessable" not in sh or bool(sh["assessable"].astype(bool).any())
    ax.set_title("(A) driver of the Rs change per pixel" + (
        "" if assessable else " (land cover not assessable)"), fontsize=11)
    ax.legend(handles=[Patch(fc=CHANGE_COLOURS["climate"], label="climate"),
                       Patch(fc=CHANGE_COLOURS["land_cover"], label="land cover (significant cover trend)"),
                       Patch(fc="0.8", label="land, no data")],
              loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, fontsize=8, frameon=False)
    ax = panel(fig.add_subplot(gs[1]), "B")
    if "assessable" in sh and not sh["assessable"].astype(bool).any():
        reason = next((r for r in sh.get("reason", []) if r), "no land-cover driver")
        ax.axis("off")
        ax.set_title("(B) climate vs land-cover change", fontsize=11)
        ax.text(0.5, 0.5, "not assessable:\n" + textwrap.fill(reason, 40), ha="center",
                va="center", fontsize=10, transform=ax.transAxes)
        return fig
    regions = list(reversed(region_order(sh["region"])))
    types = [c for c in dict.fromkeys(sh["driver_class"]) if c.startswith("land_cover:")]
    parts = ["climate"] + (types or ["land_cover"])
    piv = sh.pivot_table(index="region", columns="driver_class", values="share").reindex(
        index=regions, columns=parts).fillna(0) * 100
    left = np.zeros(len(piv))
    for k, part in enumerate(parts):
        colour = CHANGE_COLOURS["climate"] if part == "climate" else _LC_TYPE_COLOURS[(k - 1) % len(_LC_TYPE_COLOURS)]
        label = "climate" if part == "climate" else (
            "land cover: " + driver_label(part.split(":", 1)[1]) if ":" in part else "land cover")
        v = piv[part].to_numpy()
        ax.barh(regions, v, left=left, color=colour, edgecolor="0.4", lw=0.4, label=label)
        for j, (l0, wv) in enumerate(zip(left, v)):
            if wv >= 7:
                ax.text(l0 + wv / 2, j, f"{wv:.0f}", ha="center", va="center", fontsize=7)
        left += v
    if "land_cover" in set(sh["driver_class"]):
        lc = sh[sh["driver_class"] == "land_cover"].set_index("region")["share"].reindex(regions) * 100
        for j, v in enumerate(lc):
            if np.isfinite(v):
                ax.text(101, j, f"LC {v:.0f} %", va="center", fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of absolute Rs net change (%)")
    ax.set_title("(B) climate vs land-cover change", fontsize=11)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=7.5, frameon=False)
    return fig


# ------------------------------------------------------------------ Fig 6
def _fdr_significance(p, alpha: float):
    from soilresp.stats import xr_fdr_bh

    reject, _ = xr_fdr_bh(p, alpha)
    return reject


def fig6_pixel_partial_corr(run_dir: Path):
    """Fig 6: per-pixel detrended partial correlation of annual Rs with each driver (r), dots
    where significant; the legend states the degrees of freedom and whether Benjamini-Hochberg
    FDR was applied (the run's ``[trends] fdr``; q-values from the file when present).

    Reads ``attribution/pixel_partial_corr.zarr`` (``r_<driver>``, ``p_<driver>``,
    optional ``q_<driver>``; attribute ``df``) and the ``alpha``/``fdr`` attributes of
    ``trends/trends.zarr``.
    """
    ds = grid(run_dir, "attribution/pixel_partial_corr.zarr")
    ta = _trend_attrs(run_dir)
    alpha, fdr = ta["alpha"], bool(ds.attrs.get("fdr", ta["fdr"]))
    found = [v[2:] for v in ds.data_vars if v.startswith("r_")]
    if not found:
        raise MissingOutput("attribution/pixel_partial_corr.zarr holds no r_<driver> variable")
    names = [d for d in ("tas", "pr", "spei", "tc", "sv", "bg") if d in found] + sorted(
        d for d in found if d not in ("tas", "pr", "spei", "tc", "sv", "bg"))
    ncol = 3 if len(names) > 4 else len(names)
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 2.25 * nrow + 1.0), squeeze=False,
                             gridspec_kw={"hspace": 0.3, "wspace": 0.12})
    im = None
    for ax, n in zip(axes.flat, names):
        panel(ax, n)
        r = display(ds[f"r_{n}"])
        if f"q_{n}" in ds:
            sig = ds[f"q_{n}"] < alpha
        elif f"p_{n}" in ds:
            sig = _fdr_significance(ds[f"p_{n}"], alpha) if fdr else ds[f"p_{n}"] < alpha
        else:
            sig = None
        im = draw_map(ax, r, cmap="RdBu_r", vmin=-1, vmax=1, coast_res=0.5)
        if sig is not None:
            s = display(sig.astype(np.float32)) >= 0.5
            stipple(ax, s, step=max(1, s.sizes["lon"] // 150))
        n_val = int(r.notnull().sum())
        share = float(s.where(r.notnull()).mean()) * 100 if sig is not None and n_val else np.nan
        a = ds[f"r_{n}"].attrs
        dfn = a.get("df", ds.attrs.get("df", "?"))
        k = a.get("n_controls")
        ctl = f"df = {dfn}" + (f", {int(k)} control{'s' if int(k) != 1 else ''}" if k is not None else "")
        ax.set_title(f"Rs vs {driver_label(n)} ({ctl}): " + (
            f"{share:.0f} % of {n_val} cells significant" if n_val else "no cell with a value"),
            fontsize=9)
    for k, ax in enumerate(axes.flat):
        if k >= len(names):
            ax.set_visible(False)
        if k // ncol < nrow - 1 and k + ncol < len(names):
            ax.tick_params(labelbottom=False)
        if k % ncol:
            ax.tick_params(labelleft=False)
    fig.suptitle(f"Partial correlation of annual Rs with {len(names)} driver"
                 f"{'s' if len(names) != 1 else ''}: " + ", ".join(driver_label(n) for n in names),
                 fontsize=11)
    dfs = sorted({ds[f"r_{n}"].attrs.get("df", ds.attrs.get("df")) for n in names}, key=str)
    df = dfs[0] if len(dfs) == 1 else "per panel"
    test = (f"dots: Benjamini-Hochberg FDR q < {alpha:g} over each map" if fdr
            else f"dots: p < {alpha:g} per pixel, no FDR correction")
    cb = fig.colorbar(im, ax=axes.ravel().tolist(), orientation="horizontal", fraction=0.04, pad=0.08, aspect=50)
    cb.set_label(f"detrended partial r (df = {df}; {test}); land-cover drivers only where cover "
                 f"exceeds the cover threshold", fontsize=9)
    return fig


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    draw: Callable[[Path], object]
    reads: tuple[str, ...]
    panels: int = field(default=1)  # panels a complete figure has (Fig 6: one per driver, up to 6)


FIGURES: dict[str, FigureSpec] = {s.name: s for s in [
    FigureSpec("fig1_mean_rs", "Fig 1. Mean annual soil respiration and its latitudinal profile", fig1_mean_rs,
               ("product/rs.zarr", "product/latitude_profile.parquet"), 2),
    FigureSpec("fig2_trends", "Fig 2. Trends of annual Rs: regional series, trend classes, class shares",
               fig2_trends, ("trends/series_trends.parquet", "product/totals.parquet", "trends/trends.zarr",
                             "trends/class_shares.parquet"), 6),
    FigureSpec("fig3_partial_corr", "Fig 3. Partial correlations of spatially averaged Rs with the drivers",
               fig3_partial_corr, ("attribution/series_partial_corr.parquet",), 4),
    FigureSpec("fig4_colocation", "Fig 4. Co-location of significant Rs and driver trends", fig4_colocation,
               ("attribution/colocation.parquet",), 1),
    FigureSpec("fig5_change_shares", "Fig 5. Climate vs land-cover shares of the Rs change", fig5_change_shares,
               ("attribution/change_shares.parquet", "attribution/change_class.zarr"), 2),
    FigureSpec("fig6_pixel_partial_corr", "Fig 6. Per-pixel partial correlations of Rs with the attribution drivers",
               fig6_pixel_partial_corr, ("attribution/pixel_partial_corr.zarr",), 6),
    FigureSpec("figS2_totals", "Fig S2. Annual global and regional totals with Monte Carlo 95 % interval",
               figS2_totals, ("product/totals.parquet", "uncertainty/mc_summary.parquet"), 4),
]}


def missing_inputs(run_dir: Path, spec: FigureSpec) -> list[str]:
    """The files of ``spec.reads`` that are absent (optional ones included)."""
    out = []
    for rel in spec.reads:
        try:
            need(run_dir, rel)
        except MissingOutput:
            out.append(rel)
    return out

