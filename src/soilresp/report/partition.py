"""Report section of the Rh / Ra partition and the target naming of the figures.

* :func:`fig_partition` (the partition figure): (A) mean Rh of the ratio route, (B) mean
  Rh/Rs ratio, (C) global Rh and Rs series with their 95 % intervals, every route.
* :func:`table_partition_totals`, :func:`table_ratio_models`, :func:`table_literature`.
* :func:`partition_section`: the HTML section (``docs/partition.md``; ``docs/report.md``).
* :func:`relabel_figure`: rewrites the Rs wording of a drawn figure for a run whose
  ``[field] target`` is another flux (:mod:`soilresp.targets`).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd

from soilresp.report._common import RS_UNITS, MissingOutput, display, draw_map, grid, panel, panels, plt, save_figure, table
from soilresp.targets import TargetInfo, relabel

#: Published global Rh estimates (Pg C yr-1), the same rows and figures as docs/partition.md §3
#: (which says where each figure is and how it was checked); ``checked``: against what.
LITERATURE = [
    {"study": "Ciais et al. 2021, Natl. Sci. Rev. 8:nwaa145", "period": "2000s",
     "method": "bottom-up carbon budgets, NEE decomposed", "rh_pg": "39 (IQR 33-46)", "rs_pg": "",
     "checked": "abstract"},
    {"study": "Konings et al. 2019, Biogeosciences 16:2269", "period": "",
     "method": "top-down: inversion NEP, SIF GPP, CARDAMOM CUE", "rh_pg": "43.6 ± 19.3", "rs_pg": "",
     "checked": "abstract"},
    {"study": "Lei et al. 2021, Nat. Commun. (doi:10.1038/s41467-020-20616-z)", "period": "1987-2016",
     "method": "SRDB Rs regression x Bond-Lamberty 2004 relation", "rh_pg": "49.4", "rs_pg": "86.7",
     "checked": "authors' code output; paper not verified"},
    {"study": "Jian et al. 2022 (as quoted in issue 20)", "period": "", "method": "",
     "rh_pg": "~46-50", "rs_pg": "", "checked": "not verified"},
    {"study": "Hashimoto et al. 2015, Biogeosciences 12:4121", "period": "1965-2012",
     "method": "climate-driven model calibrated on SRDB", "rh_pg": "51", "rs_pg": "91",
     "checked": "not verified"},
    {"study": "Tang et al. 2020, Earth Syst. Sci. Data 12:1037", "period": "1980-2016",
     "method": "random forest on SRDB", "rh_pg": "57.2 ± 0.6", "rs_pg": "", "checked": "abstract"},
]


def relabel_figure(fig, info: TargetInfo):
    """Replace Rs wording in every text of ``fig`` (titles, labels, legends) for ``info``."""
    if info.symbol == "Rs":
        return fig
    from matplotlib.text import Text

    for t in fig.findobj(Text):
        s = t.get_text()
        if s:
            new = relabel(s, info)
            if new != s:
                t.set_text(new)
    return fig


def fig_partition(run_dir: Path):
    """Partition figure: (A) mean annual Rh of the ratio route (Rh/Rs model x Rs product,
    g C m-2 yr-1); (B) mean Rh/Rs ratio; (C) global Rh (every route) and Rs totals per year
    (Pg C yr-1) with their 95 % intervals.

    Reads ``partition/partition.zarr`` and ``partition/totals.parquet``.
    """
    ds = grid(run_dir, "partition/partition.zarr", ["rh", "ratio"])
    tot = table(run_dir, "partition/totals.parquet")
    years = ds["year"].values
    ylab = f"{int(years.min())}–{int(years.max())}" if years.size else ""
    fig = plt.figure(figsize=(13.5, 9.0))
    gs = fig.add_gridspec(2, 2, height_ratios=[1.1, 1], hspace=0.3, wspace=0.1)
    for k, (var, title, cmap, unit) in enumerate((
            ("rh", f"(A) mean annual Rh (ratio route), {ylab}", "YlOrBr", RS_UNITS),
            ("ratio", f"(B) mean Rh/Rs, {ylab}", "viridis", "1"))):
        ax = panel(fig.add_subplot(gs[0, k]), "AB"[k])
        m = display(ds[var].mean("year"))
        vals = m.values[np.isfinite(m.values)]
        vmax = float(np.percentile(vals, 99)) if vals.size else 1.0
        vmin = 0 if var == "rh" else (float(np.percentile(vals, 1)) if vals.size else 0.0)
        im = draw_map(ax, m, cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=10)
        cb = fig.colorbar(im, ax=ax, orientation="horizontal", fraction=0.05, pad=0.08)
        cb.set_label(f"{'Rh' if var == 'rh' else 'Rh/Rs'} ({unit})", fontsize=8)
    ax = panel(fig.add_subplot(gs[1, :]), "C")
    colours = {("product", "Rs"): "0.2", ("ratio", "Rh"): "#b35806", ("bl2004", "Rh"): "#8073ac",
               ("direct", "Rh"): "#1b7837", ("direct", "Ra"): "#2166ac", ("ratio", "Ra"): "#67a9cf"}
    names = {"product": "Rs product", "ratio": "ratio route", "bl2004": "BL2004 baseline", "direct": "direct run"}
    for (route, flux), g in tot.groupby(["route", "flux"], sort=False):
        g = g.sort_values("year")
        c = colours.get((route, flux), "k")
        ax.plot(g["year"], g["total_pg"], "o-", ms=3, lw=1.3, color=c,
                label=f"{flux}, {names.get(route, route)}: {g['total_pg'].mean():.1f}")
        if g["lo_pg"].notna().all():
            ax.fill_between(g["year"], g["lo_pg"], g["hi_pg"], color=c, alpha=0.15, lw=0)
    ax.set_ylabel("global total (Pg C yr$^{-1}$)")
    ax.set_xlabel("year")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title("(C) global Rh and Rs with 95 % intervals (shaded; mean in the legend)", fontsize=10)
    return fig


def table_partition_totals(run_dir: Path) -> pd.DataFrame:
    """Global Rh, Ra and Rs per route: mean total (Pg C yr-1) with the mean of the annual
    95 % bounds, mean Rh/Rs, and the Theil-Sen trend of the global ratio (per decade) with
    its Mann-Kendall p. Reads ``partition/summary.json``."""
    p = Path(run_dir) / "partition" / "summary.json"
    if not p.is_file():
        raise MissingOutput("partition/summary.json is absent (stage 'partition' has not written it)")
    s = json.loads(p.read_text(encoding="utf-8"))
    if not s.get("available"):
        raise MissingOutput(f"partition not available: {s.get('reason', '')}")
    rows = []
    for r in s["routes"].values():
        rows.append({"route": r["route"], "flux": r["flux"], "mean total (Pg C/yr)": r["mean_total_pg"],
                     "95 % interval": ("" if not np.isfinite(r["mean_lo_pg"]) else
                                       f"{r['mean_lo_pg']:.1f}–{r['mean_hi_pg']:.1f}"),
                     "mean ratio to Rs": r["mean_ratio"],
                     "ratio trend (per decade)": r.get("ratio_trend_slope", np.nan) * 10,
                     "ratio trend 95 % (per decade)": (
                         f"{r['ratio_trend_boot_lo'] * 10:+.4f}, {r['ratio_trend_boot_hi'] * 10:+.4f} (bootstrap)"
                         if "ratio_trend_boot_lo" in r else
                         (f"{r['ratio_trend_slope_lo'] * 10:+.4f}, {r['ratio_trend_slope_hi'] * 10:+.4f} (Sen)"
                          if np.isfinite(r.get("ratio_trend_slope_lo", np.nan)) else "")),
                     "MK p": r.get("ratio_trend_p", np.nan)})
    return pd.DataFrame(rows)


def table_ratio_models(run_dir: Path) -> pd.DataFrame:
    """Rh/Rs models per biome, logit(Rh/Rs) = a + b_t T + c_p P/1000 (T degC, P mm yr-1;
    biome 0 = pooled), with the in-sample and site-grouped 5-fold CV RMSE of the ratio and the
    RMSE of the Bond-Lamberty 2004 baseline on the same records. Reads
    ``partition/ratio_models.parquet``."""
    return table(run_dir, "partition/ratio_models.parquet")


def table_literature(run_dir: Path) -> pd.DataFrame:
    """This run's global Rh beside published estimates (docs/partition.md §3 gives the sources,
    where in each paper the figure is, and which figures could not be verified).
    Reads ``partition/summary.json``."""
    lit = pd.DataFrame(LITERATURE)
    p = Path(run_dir) / "partition" / "summary.json"
    s = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
    rows = []
    for key, r in (s.get("routes") or {}).items():
        if r["flux"] != "Rh":
            continue
        iv = "" if not np.isfinite(r["mean_lo_pg"]) else f" ({r['mean_lo_pg']:.1f}–{r['mean_hi_pg']:.1f})"
        rows.append({"study": f"this run, {r['route']} route", "period": "", "method": "soilresp",
                     "rh_pg": f"{r['mean_total_pg']:.1f}{iv}", "rs_pg": "", "checked": ""})
    return pd.concat([pd.DataFrame(rows), lit], ignore_index=True).rename(
        columns={"rh_pg": "Rh (Pg C/yr)", "rs_pg": "Rs (Pg C/yr)", "checked": "figure checked against"})


def partition_section(run_dir: Path, out_dir: Path, formats=("png", "svg")) -> tuple[str, dict]:
    """The report's partition section (HTML) and the files it wrote; empty when the
    partition stage has not run."""
    from soilresp.report.document import _esc, _html_table, _rst

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    sp = run_dir / "partition" / "summary.json"
    if not sp.is_file():
        return "", {}
    s = json.loads(sp.read_text(encoding="utf-8"))
    parts = ["<h2 id='partition'>Partition: heterotrophic (Rh) and root (Ra) respiration</h2>"]
    if not s.get("available"):
        parts.append(f"<p class='note'>Partition not available: {_esc(s.get('reason', ''))}</p>")
        return "\n".join(parts), {}
    c = s.get("consistency", {})
    parts.append(
        f"<p>Two routes (docs/partition.md): the <b>ratio route</b> applies per-biome models of Rh/Rs "
        f"(fitted on {s['n_paired']} paired Rh/Rs observations at {s['n_paired_sites']} sites) to the Rs "
        f"product; the <b>direct route</b> maps Rh with its own per-biome models (a run with "
        f"<code>[field] target = \"Rh_annual\"</code>, named by <code>[partition] rh_run</code>). "
        f"Rs uncertainty in the ratio route: {_esc(s.get('rs_uncertainty', ''))}. The Bond-Lamberty et al. "
        f"2004 baseline (ln Rh = 1.22 + 0.73 ln Rs) has no interval here.</p>")
    bad = s.get("intervals_missing_total") or []
    if bad:
        parts.append(f"<p class='note'>Warning: the 95 % interval of {_esc(', '.join(bad))} does not contain "
                     f"its own central total in every year: that interval (the uncertainty stage of the run it "
                     f"comes from) is not an interval of this estimate; the route agreement below uses it.</p>")
    if "routes_agree" in s:
        parts.append(f"<p>Ratio and direct routes {'agree' if s['routes_agree'] else 'do NOT agree'} "
                     f"within their intervals.</p>")
    if c.get("n"):
        parts.append(f"<p>Consistency at {c['n']} paired observations reporting Rs, Rh and Ra: median "
                     f"(Ra + Rh)/Rs = {c['median_sum_over_rs']:.2f} (10–90 %: {c['p10']:.2f}–{c['p90']:.2f}); "
                     f"{100 * c['share_within_10pct']:.0f} % within ±10 %, {100 * c['share_within_25pct']:.0f} % "
                     f"within ±25 %.</p>")
    if "direct_sum_over_rs" in s:
        parts.append(f"<p>Direct Rh + direct Ra over the Rs product (mean of years): "
                     f"{s['direct_sum_over_rs']:.3f}.</p>")
    bl = s.get("bl2004_refit") or {}
    if bl:
        parts.append(f"<p>ln Rh = a + b ln Rs refitted on the paired observations: a = {bl['a']:.2f}, "
                     f"b = {bl['b']:.2f} (n = {bl['n']}); published: a = 1.22, b = 0.73.</p>")
    files: dict = {}
    try:
        fig = fig_partition(run_dir)
        n_panels = len(panels(fig))
        f = save_figure(fig, out_dir, "fig_partition", tuple(formats))
        b64 = base64.b64encode(f["png"].read_bytes()).decode()
        files["fig_partition"] = {"panels": n_panels, **{k: v.name for k, v in f.items()}}
        parts.append(f"<h3 id='fig_partition'>Partition maps and series</h3><figure><img id='img-fig_partition' alt='partition' "
                     f"src='data:image/png;base64,{b64}'/><figcaption>{_rst(' '.join(fig_partition.__doc__.split()))}"
                     f"</figcaption></figure>")
    except MissingOutput as e:
        parts.append(f"<p class='note'>Partition figure not drawn: {_esc(e)}.</p>")
    from soilresp import io

    for name, fn, title in (("partition_totals", table_partition_totals, "Global Rh, Ra and Rs by route"),
                            ("partition_literature", table_literature, "Global Rh beside the literature"),
                            ("partition_ratio_models", table_ratio_models, "Rh/Rs models per biome")):
        try:
            df = fn(run_dir)
        except MissingOutput as e:
            parts.append(f"<h3>{_esc(title)}</h3><p class='note'>Absent: {_esc(e)}.</p>")
            continue
        io.write_csv(out_dir / f"{name}.csv", df)
        files[name] = f"{name}.csv"
        doc = " ".join((fn.__doc__ or "").split())
        parts.append(f"<h3 id='{name}'>{_esc(title)}</h3><p>{_rst(doc)} CSV: <code>{name}.csv</code>.</p>"
                     + _html_table(df))
    return "\n".join(parts), files
