"""Command line: ``soilresp --help`` lists every command.

Errors that are the user's (a bad config value, a missing or malformed input) are printed as
one line naming the file and key/column/value, with exit status 2; nothing is written.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape  # messages hold [brackets]: soilresp[geotiff], [field] path
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from soilresp import __version__
from soilresp.errors import SoilrespError

app = typer.Typer(
    help="soilresp: global annual soil respiration from field data and gridded drivers "
    "(Huang et al. 2020, Sci. Adv. 6:eabb8508, generalised). Start with `soilresp demo`.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
console = Console(stderr=False)
err = Console(stderr=True)


@contextmanager
def _errors():
    try:
        yield
    except SoilrespError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    except OSError as e:   # disk full, read-only or missing folder, permissions: one line, every command
        err.print(f"[bold red]error:[/] {escape(_os_error_text(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/]: finished outputs are kept; rerun to resume")
        raise typer.Exit(130)


def _os_error_text(e: OSError) -> str:
    """``PATH: problem`` for an operating-system error (the path the OS names, if any)."""
    import errno

    hint = {errno.ENOSPC: " (disk full: free space or use another run.output_dir / --out)",
            errno.EROFS: " (read-only file system: use another folder)",
            errno.EACCES: " (permission denied: use a folder you can write)",
            errno.EPERM: " (operation not permitted: use a folder you can write)",
            errno.ENOTDIR: " (a file stands where a folder is expected)"}.get(e.errno, "")
    where = e.filename if e.filename is not None else "file system"
    return f"{where}: {e.strerror or e}{hint}"


@contextmanager
def _progress():
    """A rich progress display; yields (progress callback, stage callback)."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as prog:
        tasks: dict[str, int] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = prog.add_task(f"  {name}", total=total)
            prog.update(tasks[name], completed=done, total=total)

        def on_stage(stage: str, state: str) -> None:
            key = f"stage:{stage}"
            if state == "start":
                tasks[key] = prog.add_task(f"[bold]{stage}", total=1)
            else:
                prog.update(tasks[key], completed=1,
                            description=f"[bold]{stage}[/] ({'skipped, unchanged' if state == 'skipped' else 'done'})")

        yield progress, on_stage


def _version(value: bool):
    if value:
        console.print(f"soilresp {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")):
    """soilresp command line."""


@app.command()
def demo(
    out: Path = typer.Option(Path("soilresp-demo"), "--out", help="Folder for the synthetic world and the run."),
    resolution: float = typer.Option(1.0, help="Grid cell size in degrees (0.05-5)."),
    seed: int = typer.Option(42, help="Seed of the synthetic world and of the run."),
    mc_samples: int = typer.Option(500, help="Monte Carlo realisations for the totals' CI."),
    scheduler: str = typer.Option("threads", help="'threads', 'local-cluster' or a dask scheduler address."),
    world: str = typer.Option("hard", help="'hard' (truth outside the fitted forms, clustered sites; "
                              "default) or 'easy' (the paper's Eq 4 truth, for quick checks)."),
):
    """Build a SYNTHETIC world with known truth, run the whole method on it, and report how well
    it recovered the truth (no downloads needed)."""
    from soilresp.demo import recovery_table, run_demo

    console.rule("[bold]soilresp demo: SYNTHETIC world (not real data)")
    with _errors(), _progress() as (progress, on_stage):
        rec = run_demo(out, resolution=resolution, seed=seed, mc_samples=mc_samples,
                       scheduler=scheduler, progress=progress, on_stage=on_stage, world_kind=world)
    _print_recovery(rec, recovery_table(rec))


def _print_recovery(rec: dict, tab) -> None:
    t = Table(title="Annual totals, Pg C/yr: estimated vs TRUE (synthetic world)")
    for c in ("year", "global est", "global true", "trop est", "trop true", "temp est", "temp true",
              "boreal est", "boreal true"):
        t.add_column(c, justify="right")
    for _, r in tab.iterrows():
        t.add_row(str(int(r.year)), *(f"{r[c]:.2f}" for c in tab.columns[1:]))
    console.print(t)
    tr = rec["trends"]["global"]
    console.print(f"Global trend: estimated {tr['estimated_sen_slope'] * 1000:+.1f} Tg C/yr², "
                  f"true {tr['true_sen_slope'] * 1000:+.1f} Tg C/yr²")
    g = rec["totals"]["global"]
    for mode, k in (g.get("truth_inside_mc_95") or {}).items():
        console.print(f"Monte Carlo ({mode}): truth inside the 95 % interval in {k} of {len(g['year'])} years; "
                      f"mean half-width {g['mc_half_width_mean'][mode]:.2f} Pg C/yr; max |median - central| "
                      f"{g['mc_median_vs_central_pct_max'][mode]:.2f} %")
    m = Table(title="Per-biome model choice (random / site-grouped 10-fold CV)")
    for c in ("biome", "family", "form", "predictors", "true predictors", "n", "CV R²", "site CV R²"):
        m.add_column(c)
    for r in rec["models"]:
        m.add_row(r["biome"], r.get("family", "nls"), r["form"], r["predictors"], r["true_predictors"], str(r["n"]),
                  f"{r['cv_r2']:.2f}", f"{r['site_cv_r2']:.2f}")
    console.print(m)
    bb = rec.get("biome_budget") or {}
    if bb.get("available"):
        worst = sorted(bb["biomes"], key=lambda r: -abs(r["trend_error_tg_per_yr2"]))[:3]
        console.print("Largest contributions to the global trend error (OLS, Tg C/yr²): " + "; ".join(
            f"{r['biome']} ({r['model']}): {r['trend_error_tg_per_yr2']:+.1f}, trend est/true "
            + (f"{round(r['trend_ratio'], 2) + 0.0:.2f}" if r["trend_ratio"] is not None else "n/a") for r in worst))
    a = rec["attribution"]
    console.print(f"Attribution: climate-only box -> climate {a['climate_only_box']['climate_share']:.0%}; "
                  f"land-cover-only box -> land cover {a['landcover_only_box']['land_cover_share']:.0%}")
    for k, v in rec["checks"].items():
        console.print(f"  {'[green]PASS' if v else '[red]FAIL'}[/] {k}")
    console.print(f"[bold]This world is SYNTHETIC.[/] Recovery report: {rec['paths']['recovery']}")
    console.print(f"HTML report: {rec['paths']['report']}")


@app.command()
def run(
    config: Path = typer.Argument(..., help="TOML run configuration (see `soilresp config --example`)."),
    stage: Optional[list[str]] = typer.Option(None, "--stage", help="Run only this stage (repeatable)."),
    force: bool = typer.Option(False, help="Rerun stages even if their inputs did not change."),
    scheduler: Optional[str] = typer.Option(None, help="Override [run] scheduler: 'threads', "
                                            "'local-cluster' or a dask scheduler address (tcp://host:8786)."),
):
    """Run the method's stages (field, drivers, biomes, sites, models, product, trends,
    attribution, report); stages whose inputs and config did not change are skipped."""
    from soilresp.config import load_config
    from soilresp.pipeline import Context, compute_context, run_all

    with _errors():
        from soilresp.validate import validate_run

        cfg = load_config(config)
        validate_run(cfg, stage or None, source=str(config))   # before any stage starts (run_all repeats it)
        if scheduler:
            cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"scheduler": scheduler})})
        with _progress() as (progress, on_stage), compute_context(cfg.run.scheduler, cfg.run.workers):
            ctx = Context(cfg, progress)
            done = run_all(ctx, stage or None, force=force, on_stage=on_stage)
    for note in ctx.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"outputs in {cfg.output_dir}: " + ", ".join(f"{k} {v}" for k, v in done.items()))


def _one_stage(name: str):
    def cmd(config: Path = typer.Argument(..., help="TOML run configuration."),
            force: bool = typer.Option(False, help="Rerun even if nothing changed."),
            scheduler: Optional[str] = typer.Option(None, help="dask scheduler (see `run`).")):
        run(config, [name], force, scheduler)

    return cmd


for _name, _help in (("drivers", "Build the driver cube (annual, MAM, JJA) on the target grid."),
                     ("fit", "Fit, select and cross-validate the per-biome models."),
                     ("predict", "Predict Rs for every land pixel and year (model family, QRF intervals); totals."),
                     ("uncertainty", "Monte Carlo totals: 95 % CI per year and region, trend per realisation."),
                     ("trends", "Per-pixel and regional trends (Mann-Kendall, Theil-Sen, bootstrap)."),
                     ("attribute", "Partial correlations and climate vs land-cover shares of change."),
                     ("partition", "Rh / Ra partition of an Rs run: Rh/Rs ratio models and direct Rh/Ra runs.")):
    _stage = {"fit": "models", "predict": "product", "attribute": "attribution"}.get(_name, _name)
    app.command(name=_name, help=_help)(_one_stage(_stage))


@app.command("report")
def report_cmd(
    path: Path = typer.Argument(..., help="A run folder (the config's output_dir), or the TOML config of the run."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for figures, tables and report.html "
                                       "(default: RUN_DIR/report)."),
    formats: str = typer.Option("png,svg", "--formats", help="Figure files to write, comma-separated: png, svg, "
                                "pdf (PNG is always written; it is embedded in the HTML)."),
):
    """Figures (the paper's Figs 1-6 and S2), tables S2-S4 and the field cascade (CSV), and one
    self-contained HTML report of a run; parts whose stage did not run are listed, not fatal."""
    from soilresp.pipeline import need_extra

    fmts = tuple(f.strip().lower() for f in formats.split(",") if f.strip())
    bad = [f for f in fmts if f not in ("png", "svg", "pdf")]
    if bad:
        raise typer.BadParameter(f"unknown figure format {bad[0]!r}; use png, svg or pdf", param_hint="--formats")
    with _errors():
        need_extra("matplotlib", "report", "soilresp report")
        from soilresp.report import write_report

        if path.is_file():
            from soilresp.config import load_config

            cfg, cfg_path = load_config(path), path
            run_dir = cfg.output_dir
        else:
            from soilresp.pipeline import find_config

            run_dir = path
            cfg_path, cfg = find_config(run_dir) if path.is_dir() else (None, None)
        with _progress() as (progress, _):
            html_path = write_report(run_dir, out, config=cfg, config_path=cfg_path, formats=fmts,
                                     progress=progress)
    summary = json.loads((html_path.parent / "report.json").read_text())
    for note in summary["absent"]:
        console.print(f"[yellow]absent:[/] {note}", highlight=False)
    console.print(f"HTML report: {html_path}")


@app.command("evaluate")
def evaluate_cmd(
    config: Path = typer.Argument(..., help="TOML configuration of a finished run."),
    observations: Path = typer.Option(..., "--observations", help="Independent observations: SRDB-format "
                                      "CSV, or a table mapped by the run's [field] columns."),
    fmt: Optional[str] = typer.Option(None, "--format", help="'srdb' or 'table' (default: the run's [field] format)."),
):
    """Score a finished run on independent observations: R2, RMSE and bias per biome, inside and
    outside the area of applicability, beside a per-biome-mean baseline (and a figure)."""
    from soilresp.config import load_config
    from soilresp.evaluate import evaluate

    if fmt not in (None, "srdb", "table"):
        raise typer.BadParameter(f"unknown format {fmt!r}; use srdb or table", param_hint="--format")
    with _errors():
        cfg = load_config(config)
        res = evaluate(cfg, observations, fmt=fmt)
    s = res["scores"]
    console.print(s[s.subset == "all"].to_string(index=False, float_format=lambda v: f"{v:.3g}"), highlight=False)
    console.print(f"scores and figure in {res['dir']}")


@app.command("export")
def export_cmd(
    path: Path = typer.Argument(..., help="A soilresp grid, e.g. soilresp-out/product/rs.zarr."),
    format: str = typer.Option("netcdf", "--format", help="'netcdf' (one CF file) or 'cog' (one COG per variable and year)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output file (netcdf) or folder (cog); default beside PATH."),
    variable: Optional[list[str]] = typer.Option(None, "--variable", help="COG: only this variable (repeatable)."),
):
    """Export a Zarr output as CF NetCDF or Cloud-Optimized GeoTIFFs."""
    from soilresp.product import export

    with _errors():
        if format not in export.FORMATS:
            raise typer.BadParameter(f"--format must be one of {export.FORMATS}")
        if format == "netcdf":
            dest = export.to_netcdf(path, out or path.with_suffix(".nc"))
            console.print(f"wrote {dest}")
        else:
            with _progress() as (progress, _):
                files = export.to_cog(path, out or path.with_suffix(".cog"), variable or None, progress)
            console.print(f"wrote {len(files)} COG files in {files[0].parent if files else out}")


@app.command("field")
def field_cmd(config: Path = typer.Argument(..., help="TOML run configuration."),
              force: bool = typer.Option(False, help="Rerun even if nothing changed.")):
    """Read and filter the field database (the paper's rules); print the filter cascade."""
    import pandas as pd

    from soilresp.config import load_config
    from soilresp.field import format_cascade

    run(config, ["field"], force, None)
    with _errors():
        cfg = load_config(config)
        cascade = pd.read_csv(cfg.output_dir / "field" / "cascade.csv")
    console.print(format_cascade(cascade, {"years": list(cfg.run.years), "source": str(cfg.field.path)}),
                  highlight=False)


fetch_app = typer.Typer(help="Download public inputs (or take local copies offline), with checksums.",
                        no_args_is_help=True)
app.add_typer(fetch_app, name="fetch")


@fetch_app.command("srdb")
def fetch_srdb_cmd(
    dest: Path = typer.Option(Path("data/srdb"), "--dest", help="Folder to put srdb-data.csv in."),
    version: Optional[str] = typer.Option(None, "--version", help="Pinned SRDB release tag."),
    from_path: Optional[Path] = typer.Option(None, "--from", help="Use this local srdb-data.csv (offline)."),
):
    """Fetch a pinned SRDB release (github.com/bpbond/srdb, MIT) with a checksum check."""
    from soilresp.field import DEFAULT_SRDB_VERSION, fetch_srdb

    with _errors():
        path = fetch_srdb(dest, version or DEFAULT_SRDB_VERSION, from_path)
    console.print(f"SRDB at {path} (manifest: {path.parent / 'srdb-manifest.json'})")


@fetch_app.command("url")
def fetch_url_cmd(
    url: str = typer.Argument(..., help="HTTP(S) URL of one file."),
    dest: Path = typer.Option(Path("data/drivers"), "--dest", help="Folder to put the file in."),
    sha256: Optional[str] = typer.Option(None, "--sha256", help="Expected SHA-256 (verified)."),
    name: Optional[str] = typer.Option(None, "--name", help="File name (default: from the URL)."),
):
    """Fetch one file over HTTPS: resumable, checksummed, recorded in DEST/manifest.json."""
    from soilresp.download import fetch_url

    with _errors(), _progress() as (progress, _):
        path = fetch_url(url, dest, sha256=sha256, name=name, progress=progress)
    console.print(f"{path} (manifest: {path.parent / 'manifest.json'})")


@fetch_app.command("climate")
def fetch_climate_cmd(
    names: list[str] = typer.Argument(None, help="Catalogue names (see --list)."),
    dest: Path = typer.Option(Path("data/drivers"), "--dest", help="Folder to put the files in."),
    list_: bool = typer.Option(False, "--list", help="List the catalogue and exit."),
):
    """Fetch named public climate / land files (UDel, IPCC climate zones, land cover...)."""
    from soilresp.download import CATALOGUE, fetch_catalogue

    if list_ or not names:
        for k, e in sorted(CATALOGUE.items()):
            console.print(f"[bold]{k}[/]: {e['description']}\n    {e['url']}", highlight=False)
        return
    with _errors(), _progress() as (progress, _):
        paths = fetch_catalogue(list(names), dest, progress)
    for p in paths:
        console.print(str(p))


@fetch_app.command("modis")
def fetch_modis_cmd(
    product: str = typer.Argument(..., help="MODIS short name, e.g. MOD11A2, MOD13A1, MOD17A2H, MOD16A2, MCD12Q1."),
    years: tuple[int, int] = typer.Option(..., "--years", help="First and last year."),
    dest: Path = typer.Option(Path("data/modis"), "--dest", help="Folder for the HDF files."),
    version: str = typer.Option("061", "--version", help="Collection version."),
    bbox: Optional[tuple[float, float, float, float]] = typer.Option(
        None, "--bbox", help="west south east north, degrees."),
    tiles: Optional[str] = typer.Option(None, "--tiles", help="Comma-separated tiles, e.g. h18v04,h19v04."),
):
    """Fetch MODIS HDF4 tiles from NASA Earthdata with earthaccess (your Earthdata login)."""
    from soilresp.download import fetch_modis

    with _errors(), _progress() as (progress, _):
        files = fetch_modis(product, years, dest, version=version, bbox=bbox,
                            tiles=tiles.split(",") if tiles else None, progress=progress)
    console.print(f"{len(files)} files in {dest} (manifest: {dest / 'manifest.json'})")


@app.command("config")
def config_cmd(
    example: bool = typer.Option(False, "--example", help="Print a commented example configuration."),
    check: Optional[Path] = typer.Option(None, "--check", help="Validate a configuration file."),
):
    """Print an example configuration, or check one."""
    from soilresp.config import EXAMPLE_TOML, dump_config, load_config

    if example:
        sys.stdout.write(EXAMPLE_TOML)
        return
    if check:
        with _errors():
            from soilresp.validate import validate_run

            cfg = load_config(check)
            validate_run(cfg, None, source=str(check))   # the same checks `run` makes, for every stage
        console.print_json(json.dumps(dump_config(cfg)))
        console.print(f"[green]{check} is valid")
        return
    raise typer.BadParameter("give --example or --check FILE")


@app.command()
def quickstart(data: Path = typer.Option(Path("data"), "--data", help="Folder `soilresp fetch` puts the real data in.")):
    """New here? What is installed, which input data are present, and the next commands to type."""
    from soilresp.quickstart import report

    for line in report(data):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command()
def provenance(path: Path = typer.Argument(..., help="Any soilresp output (Zarr, Parquet, JSON).")):
    """Print the provenance of an output: versions, config hash, input checksums, seed, time."""
    from soilresp.io import read_provenance

    with _errors():
        prov = read_provenance(path)
    console.print_json(json.dumps(prov))


@app.command()
def stages():
    """List the stages, what each does and what it writes."""
    from soilresp.pipeline import STAGES

    t = Table(title="soilresp stages (in order)")
    for c in ("stage", "does", "writes"):
        t.add_column(c)
    for s in STAGES.values():
        t.add_row(s.name, s.doc, ", ".join(f"{s.name}/{o}" for o in s.outputs))
    console.print(t)


if __name__ == "__main__":  # pragma: no cover
    app()
