"""One self-contained HTML report of a run (method step 8): figures, tables, config, provenance.

``write_report(run_dir)`` draws every figure of :data:`~soilresp.report.figures.FIGURES` (PNG
and SVG, or the formats asked for), writes every table of
:data:`~soilresp.report.tables.TABLES` as CSV, and writes ``report.html`` with the PNGs
embedded as base64 (no external file, script or font). Parts whose run outputs are absent (a
stage not run, no Monte Carlo) are listed in a note instead of failing the report.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import inspect
import json
import re
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from soilresp import __version__, io
from soilresp.errors import StageError
from soilresp.report._common import MissingOutput, panels, save_figure
from soilresp.report.figures import FIGURES
from soilresp.report.trust import TRUST_FIGURES

FIGURES = {**FIGURES, **TRUST_FIGURES}  # AOA and interpretation (report/trust.py)
from soilresp.report.tables import TABLES

#: The output whose provenance stands for each stage.
PROVENANCE_OUTPUTS = {
    "field": "field/observations.parquet", "drivers": "drivers/drivers.zarr", "biomes": "biomes/biomes.zarr",
    "sites": "sites/training.parquet", "models": "models/selected.parquet", "product": "product/rs.zarr",
    "uncertainty": "uncertainty/mc_summary.parquet",
    "trends": "trends/trends.zarr", "attribution": "attribution/pixel_partial_corr.zarr",
    "partition": "partition/totals.parquet",
}
_STAGE_DIRS = tuple(PROVENANCE_OUTPUTS)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1250px;margin:0 auto;
padding:0 18px 60px;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.6em}
img{max-width:100%;height:auto;border:1px solid #eee}
figure{margin:1em 0 2em}figcaption{font-size:.92em;color:#444;max-width:1100px}
table{border-collapse:collapse;font-size:12px;margin:.5em 0 1em}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f3f3f3}
td.t,th{text-align:left}
pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:12px}
code{background:#f3f3f3;padding:0 3px}
.synthetic{background:#fde0dd;border:2px solid #c51b8a;padding:8px 12px;font-size:1.05em}
.note{background:#fff7d6;border:1px solid #e6c200;padding:6px 12px}
.pass{color:#1a7f37;font-weight:bold}.fail{color:#c00;font-weight:bold}
nav ul{columns:2;font-size:.95em}
.wide{overflow-x:auto;max-width:100%}
.wide table{margin:0}
"""


# ------------------------------------------------------------------ consistency of the outputs
def _token(run_dir: Path, stage: str) -> str | None:
    p = run_dir / ".soilresp" / f"{stage}.json"
    try:
        m = json.loads(p.read_text()) if p.is_file() else None
    except json.JSONDecodeError:
        return None
    return None if m is None else f"{m.get('key')}:{m.get('outputs_sha256_digest', '')}"


def stage_versions(run_dir: Path) -> dict[str, dict]:
    """Per stage with outputs: its key (from its manifest, 12 hex digits) and the time its
    outputs were made (provenance ``created``); the report prints it beside each figure."""
    out = {}
    for stage, rel in PROVENANCE_OUTPUTS.items():
        p = run_dir / rel
        if not io.is_complete(p):
            continue
        try:
            prov = io.read_provenance(p) or {}
        except Exception:  # noqa: BLE001 - reported as unknown
            prov = {}
        tok = _token(run_dir, stage)
        out[stage] = {"key": (tok or "?")[:12], "created": prov.get("created", "?"),
                      "upstream": prov.get("upstream") or {}}
    return out


def check_consistency(run_dir: Path) -> None:
    """Refuse to mix outputs of different upstream versions: each stage's outputs record the
    token (key and output content hash) of every upstream stage they were made from; if an
    upstream stage has rerun since (another token in its manifest), raise :class:`StageError`
    naming the stage to rerun. Outputs without manifests (a copied folder) are not checked."""
    for stage, v in stage_versions(run_dir).items():
        for up, tok in v["upstream"].items():
            cur = _token(run_dir, up)
            if tok and cur and ":" not in str(tok):   # a record from before output hashes
                cur = cur.split(":")[0]
            if tok and cur and tok != cur:
                raise StageError(f"{run_dir / stage}: made from an earlier version of stage '{up}', which "
                                 f"has rerun since; rerun stage '{stage}' (soilresp run) before the report "
                                 "(it will not mix outputs of different upstream versions)")


# ------------------------------------------------------------------ small HTML helpers
def _esc(s: Any) -> str:
    return html.escape(str(s))


def _rst(text: str) -> str:
    """Docstring text to HTML: ``code`` to <code>, paragraphs kept."""
    out = _esc(text)
    out = re.sub(r"``(.+?)``", r"<code>\1</code>", out)
    out = re.sub(r":\w+:`~?([^`]+)`", r"<code>\1</code>", out)
    return out


def _doc_parts(fn: Callable) -> tuple[str, str]:
    doc = inspect.getdoc(fn) or ""
    paras = [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]
    reads = [p for p in paras if p.startswith("Reads")]
    rest = [p for p in paras if not p.startswith("Reads")]
    desc = re.sub(r"^(Fig|Table) \w+: ", "", " ".join(rest))  # the heading already names it
    return desc, " ".join(reads)


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "" if np.isnan(v) else str(v)
        a = abs(v)
        return f"{v:.4g}" if a == 0 or 1e-3 <= a < 1e6 else f"{v:.3e}"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, dict):  # never a raw Python dict in a table
        return "; ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple, np.ndarray)):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


#: Column headers as people read them (the CSV files keep the machine names).
_HEADERS = {
    "biome_name": "biome", "cv_r2": "CV R²", "cv_rmse": "CV RMSE (g C m⁻² yr⁻¹)",
    "cv_bias": "CV bias (g C m⁻² yr⁻¹)", "site_cv_r2": "site-CV R²",
    "site_cv_rmse": "site-CV RMSE (g C m⁻² yr⁻¹)", "site_cv_bias": "site-CV bias (g C m⁻² yr⁻¹)",
    "n": "n (site-years)", "n_sites": "sites", "stderr": "std. error", "param": "parameter",
    "total_pg": "total (Pg C yr⁻¹)", "area_km2": "area (km²)", "share": "share",
    "abs_change_tg": "|change| (Tg C yr⁻¹)", "fallback": "fallback rule",
}


def _html_table(df: pd.DataFrame, max_rows: int = 500) -> str:
    note = ""
    if len(df) > max_rows:
        note = f"<p class='note'>first {max_rows} of {len(df)} rows (all rows in the CSV)</p>"
        df = df.head(max_rows)
    head = "".join(f"<th>{_esc(_HEADERS.get(str(c), c))}</th>" for c in df.columns)
    def cell(v) -> str:  # text left-aligned, numbers right-aligned
        num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
        return f"<td>{_esc(_fmt(v))}</td>" if num else f"<td class='t'>{_esc(_fmt(v))}</td>"

    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in df.itertuples(index=False))
    return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{note}"


def _anchor(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


# ------------------------------------------------------------------ sections
def _summary(run_dir: Path) -> str:
    """Key numbers: mean global total with MC interval, regional shares, global trend."""
    rows = []
    try:
        tot = io.read_table(run_dir / "product" / "totals.parquet")
        years = f"{int(tot['year'].min())}–{int(tot['year'].max())}"
        settings = None
        try:
            msp = run_dir / "uncertainty" / "mc_summary.parquet"
            sm = io.read_table(msp)
            mode = str(sm["mode"].iloc[0]) if len(sm) else ""
            sm = sm[sm["mode"] == mode].groupby("region")[["mc_lo", "mc_hi"]].mean()
            settings = (io.read_provenance(msp).get("mc") or {}).get(mode)
        except (StageError, OSError, KeyError):
            sm, mode = pd.DataFrame(), ""
        for reg, g in tot.groupby("region", sort=False):
            row = {"region": reg, "years": years, "mean total (Pg C/yr)": g["total_pg"].mean()}
            if "share" in g:
                row["share of global"] = g["share"].mean()
            if reg in sm.index and np.isfinite(sm.loc[reg, "mc_lo"]):
                row[f"Monte Carlo 95 %, {mode} (mean of annual bounds)"] = \
                    f"{sm.loc[reg, 'mc_lo']:.2f}–{sm.loc[reg, 'mc_hi']:.2f}"
            rows.append(row)
    except (StageError, OSError):
        return ""
    try:
        st = io.read_table(run_dir / "trends" / "series_trends.parquet").set_index("region")
        for row in rows:
            if row["region"] in st.index:
                r = st.loc[row["region"]]
                lo, hi = (r["boot_lo"], r["boot_hi"]) if "boot_lo" in r else (r["sen_lo"], r["sen_hi"])
                row["trend (Tg C/yr²) [95 % CI]"] = f"{r['slope'] * 1e3:+.1f} [{lo * 1e3:+.1f}, {hi * 1e3:+.1f}]"
                row["MK p"] = r["p"]
    except (StageError, OSError):
        pass
    shown = not sm.empty and bool(np.isfinite(sm["mc_lo"]).any())
    return ("<h2 id='summary'>Key numbers</h2>" + _html_table(pd.DataFrame(rows))
            + (_interval_scope(mode, settings) if shown else ""))


def _interval_scope(mode: str, settings: dict | None) -> str:
    """What the Monte Carlo interval of ``mode`` (run with ``settings``, its provenance)
    samples and what no mode samples."""
    from soilresp.product.uncertainty import LEFT_OUT, mode_scope

    scope = mode_scope(mode, settings)
    if not scope:
        return ""
    return (f"<p class='note'>The Monte Carlo 95 % interval ({_esc(mode)}) samples "
            f"{_esc(scope)}. {_esc(LEFT_OUT)}</p>")


def _recovery(run_dir: Path) -> str:
    p = run_dir / "recovery.json"
    if not p.is_file():
        return ""
    try:
        rec = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        return f"<h2 id='recovery'>Recovery of the truth</h2><p class='note'>recovery.json unreadable: {_esc(e)}</p>"
    parts = ["<h2 id='recovery'>Recovery of the truth (synthetic world)</h2>",
             f"<p>{_esc(rec.get('note', ''))}</p>"]
    checks = rec.get("checks", {})
    if checks:
        parts.append("<div class='wide'><table><tr><th>check</th><th>result</th></tr>" + "".join(
            f"<tr><td>{_esc(k)}</td><td class='{'pass' if v else 'fail'}'>{'PASS' if v else 'FAIL'}</td></tr>"
            for k, v in checks.items()) + "</table></div>")
    tot = rec.get("totals", {})
    if tot:
        rows = []
        for reg, t in tot.items():
            row = {"region": reg, "mean estimated (Pg C/yr)": np.mean(t.get("estimated_pg", [np.nan])),
                   "mean true (Pg C/yr)": np.mean(t.get("true_pg", [np.nan])),
                   "max |relative error|": t.get("max_abs_relative_error")}
            ins = t.get("truth_inside_mc_95")
            for mode, k in (ins.items() if isinstance(ins, dict) else ([("", ins)] if ins is not None else [])):
                row[f"years with truth inside MC 95 % {mode}".strip()] = f"{k} of {len(t.get('year', []))}"
            rows.append(row)
        parts.append("<h3>Totals</h3>" + _html_table(pd.DataFrame(rows)))
    tr = rec.get("trends", {})
    if tr:
        parts.append("<h3>Trends of the regional totals</h3>" + _html_table(pd.DataFrame(
            [{"region": k, "estimated Sen slope (Tg C/yr²)": v.get("estimated_sen_slope", np.nan) * 1e3,
              "true Sen slope (Tg C/yr²)": v.get("true_sen_slope", np.nan) * 1e3, "same sign": v.get("same_sign"),
              "relative error": v.get("relative_error")} for k, v in tr.items()])))
    if rec.get("models"):
        parts.append("<h3>Model choice</h3>" + _html_table(_recovery_models(rec["models"])))
    bb = rec.get("biome_budget") or {}
    if bb.get("available"):
        parts.append(
            "<h3>Where the level and the trend are lost, by biome</h3>"
            f"<p>Global OLS trend: estimated {_fmt(bb.get('global_est_ols_trend_tg_per_yr2'))}, true "
            f"{_fmt(bb.get('global_true_ols_trend_tg_per_yr2'))} Tg C/yr². {_esc(bb.get('note', ''))}</p>"
            + _html_table(pd.DataFrame(bb["biomes"]).rename(columns=lambda c: c.replace("_", " "))))
    if rec.get("attribution"):
        parts.append("<h3>Attribution in the single-cause boxes</h3>" + _html_table(pd.DataFrame(
            [{"box": k.replace("_", " "),
              **{kk.replace("_", " "): vv for kk, vv in v.items() if kk != "box"},
              "lat / lon bounds": _box_text(v.get("box"))}
             for k, v in rec["attribution"].items()])))
    parts.append(f"<details><summary>recovery.json</summary><pre>{_esc(json.dumps(rec, indent=2))}</pre></details>")
    return "\n".join(parts)


def _box_text(box) -> str:
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return _fmt(box)
    return f"lat {box[0]:g} to {box[1]:g}, lon {box[2]:g} to {box[3]:g}"


def _recovery_models(models: list[dict]) -> pd.DataFrame:
    """The demo's per-biome model recovery as a table for people: one column per family's
    best candidate, the Eq 5 predictor match spelled out."""
    rows = []
    for m in models:
        row = {k: v for k, v in m.items() if k not in ("families", "predictors_match")}
        match = m.get("predictors_match")
        if isinstance(match, (list, tuple)):
            row["predictors match truth"] = ", ".join(
                f"{r} {'yes' if ok else 'no'}" for r, ok in zip(("T", "M", "P"), match))
        for fam, b in (m.get("families") or {}).items():
            row[f"best {fam}"] = (f"{b.get('form', '')}: CV R² {_fmt(b.get('cv_r2'))}, "
                                  f"site-CV R² {_fmt(b.get('site_cv_r2'))}")
        rows.append(row)
    return pd.DataFrame(rows)


def _config_section(config, path: Path | None) -> tuple[str, dict | None]:
    from soilresp.config import dump_config

    if config is None:
        return ("<h2 id='config'>Configuration</h2><p class='note'>No configuration file whose "
                "<code>output_dir</code> is this run folder was found beside it; the provenance below "
                "still gives each stage's config hash.</p>", None)
    dumped = dump_config(config)
    parts = ["<h2 id='config'>Configuration</h2>"]
    if path is not None:
        parts.append(f"<p>From <code>{_esc(path)}</code>:</p><pre>{_esc(path.read_text(encoding='utf-8'))}</pre>")
    parts.append("<details" + ("" if path is None else "") + "><summary>resolved configuration "
                 "(every key, defaults included)</summary><pre>" + _esc(json.dumps(dumped, indent=2)) + "</pre></details>")
    return "\n".join(parts), dumped


def _produced_by(reads, versions: dict) -> str:
    """'Produced by stage product (key ..., made ...), ...' for the files a figure reads."""
    parts = []
    for st in dict.fromkeys(r.split("/")[0] for r in reads):
        if st in versions:
            parts.append(f"{st} (key {versions[st]['key']}, made {versions[st]['created']})")
    return ("Produced by stage " + ", ".join(parts) + ".") if parts else ""


def _provenance_section(run_dir: Path) -> str:
    stages, deps, inputs = [], {}, []
    for stage, rel in PROVENANCE_OUTPUTS.items():
        p = run_dir / rel
        if not io.is_complete(p):
            continue
        try:
            prov = io.read_provenance(p) or {}
        except Exception as e:  # noqa: BLE001 - an unreadable record is reported, not fatal
            stages.append({"stage": stage, "output": rel, "note": f"provenance unreadable: {e}"})
            continue
        man = run_dir / ".soilresp" / f"{stage}.json"
        secs = None
        if man.is_file():
            try:
                secs = json.loads(man.read_text()).get("seconds")
            except json.JSONDecodeError:
                pass
        stages.append({"stage": stage, "output": rel, "soilresp": prov.get("soilresp_version", ""),
                       "config hash": str(prov.get("config_hash") or "")[:16], "seed": prov.get("seed", ""),
                       "created": prov.get("created", ""), "seconds": secs if secs is not None else "",
                       "input files": len(prov.get("inputs") or {})})
        for k, v in (prov.get("dependencies") or {}).items():
            deps.setdefault(k, {}).setdefault(v, []).append(stage)
        for f, c in (prov.get("inputs") or {}).items():
            inputs.append({"stage": stage, "file": f, "checksum": c})
    if not stages:
        return "<h2 id='provenance'>Provenance</h2><p class='note'>No stage output with provenance found.</p>"
    import matplotlib

    dep_rows = [{"package": k, "version": "; ".join(f"{ver} ({', '.join(s)})" if len(vs) > 1 else ver
                                                     for ver, s in vs.items())} for k, vs in sorted(deps.items())]
    dep_rows.append({"package": "matplotlib (report)", "version": matplotlib.__version__})
    parts = ["<h2 id='provenance'>Provenance</h2>",
             f"<p>Report written {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} by soilresp "
             f"{_esc(__version__)}. Each stage's record is stored in its output (<code>soilresp provenance "
             f"PATH</code> prints it).</p>",
             "<h3>Stages</h3>" + _html_table(pd.DataFrame(stages)),
             "<h3>Package versions</h3>" + _html_table(pd.DataFrame(dep_rows)),
             "<h3>Input files and checksums</h3>" + (_html_table(pd.DataFrame(inputs)) if inputs else
                                                      "<p>No input files recorded.</p>")]
    return "\n".join(parts)


# ------------------------------------------------------------------ main entry
def write_report(run_dir: str | Path, out_dir: str | Path | None = None, *, config=None,
                 config_path: str | Path | None = None, formats: tuple[str, ...] = ("png", "svg"), progress: Callable[[str, int, int], None] | None = None,
                 ) -> Path:
    """Draw every figure, export every table and write ``<out_dir>/report.html``.

    Parameters
    ----------
    run_dir : a run's output folder (the config's ``output_dir``).
    out_dir : where figures (``<name>.png`` and the other ``formats``), tables (``<name>.csv``)
        and ``report.html`` go; default ``run_dir/report``.
    config : the :class:`~soilresp.config.Config` of the run, if known (the report does not
        look for one: :func:`soilresp.pipeline.find_config` does, for the CLI and the stage).
    config_path : the TOML file of ``config``, shown verbatim when given.
    formats : figure file formats; PNG is always written (it is embedded in the HTML).

    Also writes ``report.json`` (figure and table files, absent parts) and ``config.json``.
    Returns the path of ``report.html``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise StageError(f"run folder not found: {run_dir}")
    if not any((run_dir / s).is_dir() for s in _STAGE_DIRS):
        raise StageError(f"{run_dir} is not a soilresp run folder (none of the stage folders "
                         f"{', '.join(_STAGE_DIRS)} is in it)")
    check_consistency(run_dir)
    versions = stage_versions(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "report"
    formats = ("png",) + tuple(f for f in formats if f != "png")
    progress = progress or (lambda *a: None)
    notes: list[str] = []
    total = len(FIGURES) + len(TABLES)
    done = 0

    from soilresp.report.partition import partition_section, relabel_figure
    from soilresp.targets import relabel, run_target

    target = run_target(run_dir)  # names follow [field] target (soilresp.targets)
    fig_html, figure_files, table_files = [], {}, {}
    for spec in FIGURES.values():
        progress("report", done, total)
        done += 1
        desc, reads = _doc_parts(spec.draw)
        head = f"<h3 id='{spec.name}'>{_esc(relabel(spec.title, target))}</h3>"
        try:
            fig = relabel_figure(spec.draw(run_dir), target)
            n_panels = len(panels(fig))
            files = save_figure(fig, out_dir, spec.name, formats)
        except MissingOutput as e:
            notes.append(f"{spec.title}: not drawn, {e}.")
            fig_html.append(f"{head}<p class='note'>Not drawn: {_esc(e)}.</p>")
            continue
        except Exception as e:  # noqa: BLE001 - one broken figure must not lose the whole report
            warnings.warn(f"soilresp report: {spec.name} failed: {e!r}", stacklevel=2)
            notes.append(f"{spec.title}: drawing failed ({type(e).__name__}: {e}).")
            fig_html.append(f"{head}<p class='note'>Drawing failed: {_esc(type(e).__name__)}: {_esc(e)}</p>"
                            f"<details><summary>traceback</summary><pre>{_esc(traceback.format_exc())}</pre></details>")
            continue
        figure_files[spec.name] = {"panels": n_panels, **{k: p.name for k, p in files.items()},
                                   "produced_by": {st: versions[st]["key"] for st in dict.fromkeys(
                                       r.split("/")[0] for r in spec.reads) if st in versions}}
        b64 = base64.b64encode(files["png"].read_bytes()).decode()
        links = ", ".join(f"<code>{_esc(p.name)}</code>" for p in files.values())
        fig_html.append(f"{head}<figure><img id='img-{spec.name}' alt='{_esc(spec.title)}' "
                        f"src='data:image/png;base64,{b64}'/><figcaption>{_rst(desc)} {_rst(reads)} "
                        f"{_esc(_produced_by(spec.reads, versions))} "
                        f"Panels: {n_panels}. Files: {links}.</figcaption></figure>")

    tab_html = []
    for spec in TABLES.values():
        progress("report", done, total)
        done += 1
        head = f"<h3 id='{spec.name}'>{_esc(relabel(spec.title, target))}</h3>"
        try:
            df = spec.build(run_dir)
        except MissingOutput as e:
            if spec.paper:
                notes.append(f"{spec.title}: absent, {e}.")
            tab_html.append(f"{head}<p class='note'>Absent: {_esc(e)}.</p>")
            continue
        io.write_csv(out_dir / f"{spec.name}.csv", df)
        table_files[spec.name] = f"{spec.name}.csv"
        desc, reads = _doc_parts(spec.build)
        tab_html.append(f"{head}<p>{_rst(desc)} {_rst(reads)} CSV: <code>{spec.name}.csv</code>.</p>"
                        + _html_table(df))
    progress("report", total, total)

    cfg_html, dumped = _config_section(config, Path(config_path) if config_path else None)
    if dumped is not None:
        io.write_json(out_dir / "config.json", dumped)
    recovery = _recovery(run_dir)
    part_html, part_files = partition_section(run_dir, out_dir, formats)
    toc = [("summary", "Key numbers"), ("notes", "Absent parts")] if notes else [("summary", "Key numbers")]
    toc += [(s.name, s.title) for s in FIGURES.values()] + [(s.name, s.title) for s in TABLES.values()]
    toc += [("partition", "Partition (Rh / Ra)")] if part_html else []
    toc += ([("recovery", "Recovery of the truth")] if recovery else []) + [("config", "Configuration"),
                                                                             ("provenance", "Provenance")]
    title = f"soilresp report ({target.long_name}): {run_dir.resolve().name}"
    if dumped:
        title += f" ({dumped.get('run', {}).get('name', '')})"
    body = [f"<h1>{_esc(title)}</h1>",
            f"<p>Run folder <code>{_esc(run_dir.resolve())}</code>. Method after Huang et al. 2020, "
            f"Sci. Adv. 6:eabb8508 (figures and tables numbered as in the paper).</p>"]
    if recovery:
        body.append("<p class='synthetic'><b>SYNTHETIC WORLD</b>: these results come from a synthetic world "
                    "whose truth is known (<code>soilresp demo</code>); they are not an estimate for the real "
                    "Earth.</p>")
    body.append("<nav><ul>" + "".join(f"<li><a href='#{a}'>{_esc(t)}</a></li>" for a, t in toc) + "</ul></nav>")
    if notes:
        body.append("<h2 id='notes'>Absent parts</h2><div class='note'><p>Some outputs of this run are absent "
                    "(their stage did not run, or was configured off); the rest of the report is complete."
                    "</p><ul>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul></div>")
    body.append(_summary(run_dir))
    body.append("<h2 id='figures'>Figures</h2>" + "\n".join(fig_html))
    body.append("<h2 id='tables'>Tables</h2>" + "\n".join(tab_html))
    body.append(part_html)
    if recovery:
        body.append(recovery)
    body.append(cfg_html)
    body.append(_provenance_section(run_dir))
    doc = ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
           f"<meta name='generator' content='soilresp {_esc(__version__)}'><title>{_esc(title)}</title>"
           f"<style>{_CSS}</style></head><body>\n" + "\n".join(b for b in body if b) + "\n</body></html>\n")
    io.write_json(out_dir / "report.json", {"figures": figure_files, "tables": table_files, "absent": notes,
                                            "partition": part_files})
    return io.write_text_atomic(out_dir / "report.html", doc)
