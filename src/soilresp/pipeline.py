"""The stages of the method in order, their file contracts, and rerun-only-what-changed.

Every stage reads the outputs of earlier stages (and input files named in the config) and
writes its own outputs below ``<output_dir>/<stage>/``. After a stage succeeds, a manifest
``<output_dir>/.soilresp/<stage>.json`` records its *key*: a hash of the config sections it
uses, the fingerprints (size, mtime) of its input files, the keys of the stages it reads
from and the package version. A stage whose key is unchanged and whose outputs are complete
is skipped. See ``docs/architecture.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr

from soilresp import __version__, io
from soilresp.config import BIOMES, Config
from soilresp.errors import SoilrespError, StageError, input_error
from soilresp.grid import Grid

Progress = Callable[[str, int, int], None]


def _noop(*_a) -> None:
    return None


@dataclass(frozen=True)
class Stage:
    name: str
    sections: tuple[str, ...]           # config sections that change its result
    upstream: tuple[str, ...]           # stages whose outputs it reads
    outputs: tuple[str, ...]            # paths relative to the stage folder
    run: Callable[["Context"], None]
    doc: str


@dataclass
class Context:
    cfg: Config
    progress: Progress = _noop

    @property
    def out(self) -> Path:
        return self.cfg.output_dir

    @property
    def grid(self) -> Grid:
        return Grid.from_config(self.cfg.grid)

    def path(self, stage: str, name: str) -> Path:
        return self.out / stage / name

    def prov(self, stage: str, **extra) -> dict:
        return io.provenance(stage, config_hash=stage_key(self.cfg, STAGES[stage]),
                             inputs=input_checksums(self.cfg, stage), seed=self.cfg.run.seed,
                             extra=extra or None)


# ------------------------------------------------------------------ input files and keys
def input_files(cfg: Config, stage: str) -> list[Path]:
    if stage == "field" and cfg.field.path is not None:
        return [cfg.resolve(cfg.field.path)]
    if stage == "drivers":
        import glob

        files: list[Path] = []
        for s in cfg.drivers.sources:
            hits = sorted(glob.glob(str(cfg.resolve(s.path))))
            files += [Path(h) for h in hits] or [cfg.resolve(s.path)]
        return files
    if stage == "biomes" and cfg.biomes.path is not None:
        return [cfg.resolve(cfg.biomes.path)]
    if stage == "biomes" and cfg.biomes.climate_zones is not None:
        import glob

        extra = [cfg.resolve(p) for p in (cfg.biomes.climate_zones, cfg.biomes.mapping) if p]
        lc = sorted(glob.glob(str(cfg.resolve(cfg.biomes.land_cover))))
        return extra + ([Path(h) for h in lc] or [cfg.resolve(cfg.biomes.land_cover)])
    return []


def _fingerprint(p: Path) -> str:
    if not p.exists():
        return "missing"
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(p.rglob("*")):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.relative_to(p)}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()
    st = p.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


_SHA_LIMIT = 2 * 1024**3


def input_checksums(cfg: Config, stage: str) -> dict[str, str]:
    """SHA-256 of each input file (files over 2 GiB: size and mtime only, said so)."""
    out = {}
    for p in input_files(cfg, stage):
        if p.is_file() and p.stat().st_size <= _SHA_LIMIT:
            out[str(p)] = "sha256:" + io.file_sha256(p)
        else:
            out[str(p)] = "fingerprint:" + _fingerprint(p)
    return out


def stage_key(cfg: Config, stage: Stage) -> str:
    parts = {
        "version": __version__,
        "stage": stage.name,
        "config": cfg.section_hash(*stage.sections),
        "years": list(cfg.run.years),
        "seed": cfg.run.seed,
        "inputs": {str(p): _fingerprint(p) for p in input_files(cfg, stage.name)},
        "upstream": {u: _manifest_key(cfg, u) for u in stage.upstream},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _manifest_path(cfg: Config, stage: str) -> Path:
    return cfg.output_dir / ".soilresp" / f"{stage}.json"


def _manifest_key(cfg: Config, stage: str) -> str | None:
    p = _manifest_path(cfg, stage)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text()).get("key")
    except json.JSONDecodeError:
        return None


def is_fresh(cfg: Config, stage: Stage) -> bool:
    key = _manifest_key(cfg, stage.name)
    if key is None or key != stage_key(cfg, stage):
        return False
    return all(io.is_complete(cfg.output_dir / stage.name / o) for o in stage.outputs)


def _check_upstream(ctx: Context, stage: Stage) -> None:
    for u in stage.upstream:
        up = STAGES[u]
        for o in up.outputs:
            p = ctx.path(u, o)
            if not io.is_complete(p):
                raise StageError(f"stage '{stage.name}' needs {p}, which stage '{u}' writes: run it first")


def run_stage(ctx: Context, name: str, *, force: bool = False) -> str:
    """Run one stage; returns 'ran' or 'skipped' (inputs, config and version unchanged)."""
    stage = STAGES[name]
    if not force and is_fresh(ctx.cfg, stage):
        return "skipped"
    _check_upstream(ctx, stage)
    t0 = time.perf_counter()
    stage.run(ctx)
    io.write_json(_manifest_path(ctx.cfg, name), {
        "stage": name, "key": stage_key(ctx.cfg, stage), "version": __version__,
        "seconds": round(time.perf_counter() - t0, 3),
        "outputs": [str(ctx.path(name, o)) for o in stage.outputs],
    })
    return "ran"


def run_all(ctx: Context, stages: list[str] | None = None, *, force: bool = False,
            on_stage: Callable[[str, str], None] | None = None) -> dict[str, str]:
    todo = stages or list(STAGES)
    unknown = [s for s in todo if s not in STAGES]
    if unknown:
        raise StageError(f"unknown stage {unknown[0]!r}; stages are {list(STAGES)}")
    done = {}
    for s in todo:
        if on_stage:
            on_stage(s, "start")
        done[s] = run_stage(ctx, s, force=force)
        if on_stage:
            on_stage(s, done[s])
    return done


# ------------------------------------------------------------------ dask scheduler
@contextlib.contextmanager
def compute_context(scheduler: str = "threads", workers: int = 2):
    """Where dask work runs: local threads, a new LocalCluster, or an existing cluster."""
    import dask

    if scheduler in ("threads", "synchronous"):
        with dask.config.set(scheduler=scheduler):
            yield None
        return
    from distributed import Client, LocalCluster

    if scheduler == "local-cluster":
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(scheduler, timeout="20s")
    except OSError as e:
        raise SoilrespError(f"cannot reach dask scheduler at {scheduler!r}: {e}") from None
    with client:
        yield client


# ------------------------------------------------------------------ stages
def _field(ctx: Context) -> None:
    from soilresp import field

    if ctx.cfg.field.path is None:
        raise input_error("config [field]", "no field database configured", column="path")
    res = field.build_observations(ctx.cfg.field, ctx.cfg.run.years, base_dir=ctx.cfg.base_dir)
    field.write_field_outputs(res, ctx.out / "field", ctx.prov("field"))


def _drivers(ctx: Context) -> None:
    from soilresp.drivers import write_cube

    d = ctx.cfg.drivers
    write_cube(ctx.path("drivers", "drivers.zarr"), d.sources, ctx.grid, ctx.cfg.run.years,
               ctx.cfg.base_dir, d.min_valid_fraction, d.regrid, ctx.prov("drivers"), ctx.progress)


def _biomes(ctx: Context) -> None:
    from soilresp.biomes import biome_map_from_config, build_biome_dataset, read_biome_map

    b = ctx.cfg.biomes
    if b.path is None and b.climate_zones is None:
        raise input_error("config [biomes]", "no biome map configured (path, or climate_zones "
                          "+ land_cover)", column="path")
    cube = io.open_zarr(ctx.path("drivers", "drivers.zarr"), [ctx.cfg.product.region_temperature])
    if b.path is not None:
        biome = read_biome_map(ctx.cfg.resolve(b.path), b.variable, ctx.grid)
    else:
        biome = biome_map_from_config(b, ctx.cfg.base_dir, ctx.grid, ctx.cfg.run.years)
    ds = build_biome_dataset(biome, cube[ctx.cfg.product.region_temperature], ctx.grid,
                             ctx.cfg.product.region_bounds)
    io.write_zarr(ctx.path("biomes", "biomes.zarr"), ds, ctx.prov("biomes"))


def _sites(ctx: Context) -> None:
    from soilresp import field
    from soilresp.drivers import extract_at_sites

    obs = io.read_table(ctx.path("field", "observations.parquet"))
    bio = io.open_zarr(ctx.path("biomes", "biomes.zarr"), ["biome"])
    obs = field.assign_biomes(obs, bio["biome"].load())
    cube = io.open_zarr(ctx.path("drivers", "drivers.zarr"))
    tab = extract_at_sites(cube, obs, ctx.grid, ctx.cfg.drivers.max_site_distance_km)
    io.write_table(ctx.path("sites", "training.parquet"), tab, ctx.prov("sites"))


def _models(ctx: Context) -> None:
    from soilresp.models import stage

    stage.run(ctx)


def _product(ctx: Context) -> None:
    from soilresp import product

    product.run(ctx)


def _uncertainty(ctx: Context) -> None:
    from soilresp.product import uncertainty

    uncertainty.run(ctx)


def _trends(ctx: Context) -> None:
    from soilresp import trends

    trends.run(ctx)


def _attribution(ctx: Context) -> None:
    from soilresp import attribution

    attribution.run(ctx)


def _report(ctx: Context) -> None:
    from soilresp import report

    report.write_report(ctx.out, ctx.out / "report", config=ctx.cfg, progress=ctx.progress)


STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("field", ("field",), (), ("observations.parquet", "cascade.csv", "qc.csv"), _field,
          "field Rs records -> filtered, averaged site-year observations"),
    Stage("drivers", ("grid", "drivers"), (), ("drivers.zarr",), _drivers,
          "gridded driver files -> annual/MAM/JJA driver cube on the target grid"),
    Stage("biomes", ("grid", "biomes", "product.region_temperature", "product.region_bounds"), ("drivers",), ("biomes.zarr",), _biomes,
          "biome map and climate regions on the target grid"),
    Stage("sites", ("drivers",), ("field", "drivers", "biomes"), ("training.parquet",), _sites,
          "drivers and biome at each observation's site and year"),
    Stage("models", ("models",), ("sites",), ("selected.parquet", "skill.parquet",
                                              "selection_steps.parquet"), _models,
          "per-biome Eq 1-4 fits, Eq 5 predictor choice, 10-fold CV, best model"),
    Stage("product", ("product.intervals", "product.interval_quantiles"), ("models", "drivers", "biomes"),
          ("rs.zarr", "totals.parquet", "latitude_profile.parquet"), _product,
          "Rs for every land pixel and year (model family, QRF intervals); totals; latitude profile"),
    Stage("uncertainty", ("product", "trends.min_years", "trends.alpha"), ("product", "models", "sites"),
          ("mc_summary.parquet", "mc_trends.parquet", "mc_trend_summary.parquet"), _uncertainty,
          "Monte Carlo totals (parameter draws or bootstrap refits), 95 % CI, per-realisation trends"),
    Stage("trends", ("trends",), ("product", "biomes"),
          ("trends.zarr", "series_trends.parquet", "class_shares.parquet"), _trends,
          "Mann-Kendall / Theil-Sen per pixel and for regional series; trend classes"),
    Stage("attribution", ("attribution", "trends"), ("product", "drivers", "biomes", "trends"),
          ("series_partial_corr.parquet", "pixel_partial_corr.zarr", "colocation.parquet",
           "change_shares.parquet", "change_class.zarr"), _attribution,
          "partial correlations, co-location and land-cover vs climate shares of change"),
    Stage("report", (), ("product", "trends", "attribution", "models", "field"),
          ("report.html",), _report, "figures, tables and one self-contained HTML report"),
]}
