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
from dataclasses import field as _dc_field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr

from soilresp import __version__, io
from soilresp.config import BIOMES, Config, dump_config
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
    # stages whose outputs it uses when they ran (e.g. the report without trends)
    optional: tuple[str, ...] = ()


@dataclass
class Context:
    cfg: Config
    progress: Progress = _noop
    _prov: dict = _dc_field(default_factory=dict, repr=False)
    #: one-line messages of this run (e.g. tallied fitting warnings), in order
    notes: list = _dc_field(default_factory=list)

    def note(self, stage: str, message: str) -> None:
        """Record a one-line message: kept in ``notes`` (the CLI prints them at the end)
        and appended to ``<output_dir>/.soilresp/log.jsonl``."""
        self.notes.append(f"{stage}: {message}")
        _log(self.cfg, stage, "note", message=message)

    @property
    def out(self) -> Path:
        return self.cfg.output_dir

    @property
    def grid(self) -> Grid:
        return Grid.from_config(self.cfg.grid)

    def path(self, stage: str, name: str) -> Path:
        return self.out / stage / name

    def prov(self, stage: str, **extra) -> dict:
        """The provenance record of ``stage``'s outputs (computed once per stage run).

        Package and dependency versions, the stage key (``stage_key``; also kept under
        ``config_hash`` for older readers), the hash of the config sections it uses, the
        whole config, the SHA-256 of each input file, the seed and the time.
        """
        if stage not in self._prov:
            st = STAGES[stage]
            key = stage_key(self.cfg, st)
            self._prov[stage] = io.provenance(
                stage, config_hash=key, inputs=input_checksums(self.cfg, stage),
                seed=self.cfg.run.seed,
                extra={"stage_key": key, "config_sections": list(st.sections),
                       "config_sections_hash": self.cfg.section_hash(*st.sections),
                       "config": dump_config(self.cfg), "config_dir": str(self.cfg.base_dir),
                       "code_sha256": code_hash(),
                       "upstream": {u: upstream_token(self.cfg, u) for u in st.upstream + st.optional
                                    if _manifest_path(self.cfg, u).is_file()}})
        rec = dict(self._prov[stage])
        if extra:
            rec.update(extra)
        return rec


# ------------------------------------------------------------------ input files and keys
def input_files(cfg: Config, stage: str) -> list[Path]:
    if stage == "field" and cfg.field.path is not None:
        return [cfg.resolve(cfg.field.path)]
    if stage == "partition":  # the field file (paired Rh records) and the direct-route runs
        runs = [cfg.resolve(r) / sub for r in (cfg.partition.rh_run, cfg.partition.ra_run) if r is not None
                for sub in ("product/totals.parquet", "uncertainty/mc_summary.parquet")]
        return ([cfg.resolve(cfg.field.path)] if cfg.field.path is not None else []) + runs
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


@lru_cache(maxsize=1)
def code_hash() -> str:
    """SHA-256 of the package's source and data files: any code change reruns the stages."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in (".py", ".csv", ".json", ".toml") and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def stage_key(cfg: Config, stage: Stage) -> str:
    """Hash of what decides a stage's result: config sections, run years and seed, input
    fingerprints (size, mtime), the keys of the upstream stages and the content hashes of
    their outputs (:func:`upstream_token`: a forced rerun that rewrites an upstream output
    makes this stage stale), package version and code.

    Inputs are named by their file name, not their folder, so a run folder and its inputs
    copied elsewhere (mtimes kept) are still up to date."""
    parts = {
        "version": __version__,
        "code": code_hash(),
        "stage": stage.name,
        "config": cfg.section_hash(*stage.sections),
        "years": list(cfg.run.years),
        "seed": cfg.run.seed,
        "inputs": [[Path(p).name, _fingerprint(p)] for p in input_files(cfg, stage.name)],
        "upstream": {u: upstream_token(cfg, u) for u in stage.upstream + stage.optional},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _manifest_path(cfg: Config, stage: str) -> Path:
    return cfg.output_dir / ".soilresp" / f"{stage}.json"


def _read_manifest(cfg: Config, stage: str) -> dict | None:
    p = _manifest_path(cfg, stage)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError:
        return None


def upstream_token(cfg: Config, stage: str) -> str | None:
    """What a downstream stage depends on: ``stage``'s key and the SHA-256 of the contents of
    the outputs it wrote (recorded in its manifest), ``KEY:OUTPUTS``."""
    m = _read_manifest(cfg, stage)
    if m is None:
        return None
    return f"{m.get('key')}:{m.get('outputs_sha256_digest', '')}"


def output_hashes(cfg: Config, stage: Stage) -> dict[str, dict]:
    """Per output of ``stage``: SHA-256 of its contents (a Zarr store: of every file in it,
    provenance attributes included) and its cheap fingerprint (size, mtime)."""
    out = {}
    for o in stage.outputs:
        p = cfg.output_dir / stage.name / o
        out[o] = {"sha256": io.file_sha256(p) if p.exists() else "missing", "fingerprint": _fingerprint(p)}
    return out


def _digest(hashes: dict[str, dict]) -> str:
    return hashlib.sha256(json.dumps({k: v["sha256"] for k, v in sorted(hashes.items())}).encode()).hexdigest()


def outputs_unchanged(cfg: Config, stage: Stage) -> bool:
    """The stage's outputs still have the contents its manifest recorded: fingerprints equal,
    or else the content hash equal (a file rewritten by someone else makes the stage stale).
    Manifests without the record (older runs) count as unchanged."""
    m = _read_manifest(cfg, stage.name) or {}
    rec = m.get("outputs_sha256")
    if not rec:
        return True
    for o, r in rec.items():
        p = cfg.output_dir / stage.name / o
        if _fingerprint(p) == r.get("fingerprint"):
            continue
        if not p.exists() or io.file_sha256(p) != r.get("sha256"):
            return False
    return True


def _manifest_key(cfg: Config, stage: str) -> str | None:
    p = _manifest_path(cfg, stage)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text()).get("key")
    except json.JSONDecodeError:
        return None


def is_fresh(cfg: Config, stage: Stage) -> bool:
    """Finished with the current key, outputs complete, and every upstream stage fresh too
    (a changed biome map makes the models stale even though the sites stage did not rerun)."""
    key = _manifest_key(cfg, stage.name)
    if key is None or key != stage_key(cfg, stage):
        return False
    if not all(io.is_complete(cfg.output_dir / stage.name / o) for o in stage.outputs):
        return False
    if not outputs_unchanged(cfg, stage):
        return False
    return all(is_fresh(cfg, STAGES[u]) for u in stage.upstream + _ran(cfg, stage.optional))


def _ran(cfg: Config, names: tuple[str, ...]) -> tuple[str, ...]:
    """The optional upstream stages that have run (a manifest, even a stale one)."""
    return tuple(u for u in names if _manifest_path(cfg, u).is_file())


def _check_upstream(ctx: Context, stage: Stage) -> None:
    """Upstream stages must have FINISHED (manifest written last) with the current inputs."""
    for u in stage.upstream + _ran(ctx.cfg, stage.optional):
        up = STAGES[u]
        for o in up.outputs:
            p = ctx.path(u, o)
            if not io.is_complete(p):
                raise StageError(f"stage '{stage.name}' needs {p}, which stage '{u}' writes: run it first")
        if _manifest_key(ctx.cfg, u) is None:
            raise StageError(f"stage '{stage.name}' needs stage '{u}', which did not finish "
                             f"(no {_manifest_path(ctx.cfg, u)}): run it first")
        if not is_fresh(ctx.cfg, up):
            raise StageError(f"stage '{stage.name}' needs stage '{u}', whose outputs in "
                             f"{ctx.out / u} are out of date for this config or its inputs: rerun it")


def _clean_temporaries(folder: Path, keep_partial: bool) -> None:
    """Remove temp files/stores a killed writer left: only names soilresp's writers create
    (``io.temp_kind``: ``.soilresp-tmp-*``, ``.soilresp-old-*``), never a user's file.

    ``.soilresp-partial-*`` folders are kept while a stage runs (a resumable Zarr write picks
    them up) and removed once it has finished.
    """
    import shutil

    if not folder.is_dir():
        return
    for p in folder.iterdir():
        kind = io.temp_kind(p.name)
        if kind in ("tmp", "old") or (kind == "partial" and not keep_partial):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def write_sidecars(ctx: Context, name: str) -> list[Path]:
    """Provenance sidecar ``FILE.prov.json`` for each stage output that cannot hold it
    (CSV, PNG, HTML): the stage's record plus the file's SHA-256."""
    out = []
    folder = ctx.out / name
    for p in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if (not p.is_file() or p.name.startswith(".") or ".zarr" in str(p.relative_to(folder))
                or p.suffix in (".parquet", ".json", ".skops")):
            continue
        out.append(io.write_json(io.sidecar_path(p),
                                 ctx.prov(name, file=p.name, file_sha256=io.file_sha256(p))))
    return out


def run_stage(ctx: Context, name: str, *, force: bool = False) -> str:
    """Run one stage; returns 'ran' or 'skipped' (inputs, config, version, code unchanged).

    The manifest is removed before the stage starts and written after its last output, so
    a stage killed at any moment is never taken as finished; its Zarr outputs resume.
    """
    stage = STAGES[name]
    if not force and is_fresh(ctx.cfg, stage):
        return "skipped"
    _check_upstream(ctx, stage)
    manifest = _manifest_path(ctx.cfg, name)
    old = manifest.read_bytes() if manifest.is_file() else None
    manifest.unlink(missing_ok=True)
    _clean_temporaries(ctx.out / name, keep_partial=True)
    _clean_temporaries(manifest.parent, keep_partial=False)
    ctx._prov.pop(name, None)
    _log(ctx.cfg, name, "start")
    t0 = time.perf_counter()
    n_replaced = io.replaced_count()
    try:
        stage.run(ctx)
    except BaseException:
        _log(ctx.cfg, name, "failed")
        if old is not None and io.replaced_count() == n_replaced:
            io.write_bytes_atomic(manifest, old)   # nothing was replaced: still as before
        raise
    write_sidecars(ctx, name)
    _clean_temporaries(ctx.out / name, keep_partial=False)
    hashes = output_hashes(ctx.cfg, stage)
    io.write_json(manifest, {
        "outputs_sha256": hashes, "outputs_sha256_digest": _digest(hashes),
        "stage": name, "key": stage_key(ctx.cfg, stage), "version": __version__,
        "code_sha256": code_hash(), "seconds": round(time.perf_counter() - t0, 3),
        "outputs": [str(ctx.path(name, o)) for o in stage.outputs],
    })
    _log(ctx.cfg, name, "done")
    return "ran"


def _log(cfg: Config, stage: str, event: str, **extra) -> None:
    """Append one line to ``<output_dir>/.soilresp/log.jsonl`` (run history; not an output)."""
    import os

    p = cfg.output_dir / ".soilresp" / "log.jsonl"
    p.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"time": time.time(), "pid": os.getpid(), "stage": stage, "event": event,
                       **extra})
    with open(p, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def run_all(ctx: Context, stages: list[str] | None = None, *, force: bool = False,
            on_stage: Callable[[str, str], None] | None = None) -> dict[str, str]:
    todo = stages or list(STAGES)
    unknown = [s for s in todo if s not in STAGES]
    if unknown:
        raise StageError(f"unknown stage {unknown[0]!r}; stages are {list(STAGES)}")
    from soilresp.lock import output_lock
    from soilresp.validate import validate_run

    validate_run(ctx.cfg, todo)          # every cross-section config error before any compute
    with output_lock(ctx.out, "run " + " ".join(todo)):   # one writer per output folder
        _clean_temporaries(ctx.out, keep_partial=False)
        done = {}
        for s in todo:
            if on_stage:
                on_stage(s, "start")
            done[s] = run_stage(ctx, s, force=force)
            if on_stage:
                on_stage(s, done[s])
    return done


def check_writable(folder: Path) -> None:
    """Fail early, naming the folder, if outputs cannot be written below ``folder``."""
    import os
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".soilresp").mkdir(exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{io.TMP_PREFIX}write-test.", dir=folder / ".soilresp")
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):   # a running writer's cleanup may have taken it
            os.unlink(name)
    except OSError as e:
        raise input_error(folder, f"output folder (config key 'run.output_dir') is not "
                          f"writable: {e.strerror or e}") from None


# ------------------------------------------------------------------ dask scheduler
def active_client():
    """dask.distributed's current default client, or None (distributed not imported, or no
    client started)."""
    import sys

    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


@contextlib.contextmanager
def compute_context(scheduler: str = "threads", workers: int = 2, client=None):
    """Where dask work runs: local threads, a new LocalCluster, or an existing cluster.

    ``client``: a ``distributed.Client`` to use whatever ``scheduler`` says. With the default
    ``scheduler="threads"``, a client the user already started (dask's default client, e.g.
    in a notebook) is used instead of local threads; ``"synchronous"`` always runs locally.

    Rechunks use dask's task-based method on every scheduler, so a cluster builds the same
    graph as local threads (with a distributed client dask would otherwise pick its
    peer-to-peer rechunk). Bit-identical results across schedulers are tested in
    ``tests/test_repeatability.py``.
    """
    import dask

    same_graph = {"array.rechunk.method": "tasks"}
    if client is None and scheduler == "threads":
        client = active_client()
    if client is not None:
        with dask.config.set(scheduler=client, **same_graph):
            yield client
        return
    if scheduler in ("threads", "synchronous"):
        with dask.config.set(scheduler=scheduler, **same_graph):
            yield None
        return
    need_extra("distributed", "cluster", f"[run] scheduler = {scheduler!r}")
    from distributed import Client, LocalCluster

    if scheduler == "local-cluster":
        # one core per worker process: numba's parallel kernels (trends, attribution, forest
        # prediction) would otherwise start one thread per CPU in every worker, so 2 workers
        # ran 4 kernel threads on 2 cores and 1 worker already used both
        with dask.config.set(same_graph), LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None, env={"NUMBA_NUM_THREADS": "1"}) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(scheduler, timeout="20s")
    except OSError as e:
        raise SoilrespError(f"cannot reach dask scheduler at {scheduler!r}: {e}") from None
    with dask.config.set(same_graph), client:
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
    cube = io.open_zarr(ctx.path("drivers", "drivers.zarr"))
    tvar = ctx.cfg.product.region_temperature
    if tvar not in cube:  # name the key the user can fix, not the cube file
        from soilresp.errors import ConfigError

        raise ConfigError(f"config [product] region_temperature: '{tvar}' is no [[drivers.sources]] "
                          f"variable (the cube has: {', '.join(sorted(map(str, cube.data_vars)))})")
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
    from soilresp.grid import cell_half_diagonal_km

    obs = io.read_table(ctx.path("field", "observations.parquet"))
    bio = io.open_zarr(ctx.path("biomes", "biomes.zarr"), ["biome"])
    # pointwise reads: only the chunks holding sites (the map is never loaded whole)
    obs = field.assign_biomes(obs, bio["biome"], max_cells=ctx.cfg.biomes.site_search_cells)
    _check_biomes_observed(ctx, obs, bio["biome"])
    cube = io.open_zarr(ctx.path("drivers", "drivers.zarr"))
    lim = ctx.cfg.drivers.max_site_distance_km
    tab = extract_at_sites(cube, obs, ctx.grid, lim)
    far = int((tab["distance_km"] > lim).sum())
    if far:
        half = cell_half_diagonal_km(ctx.cfg.grid.resolution)
        ctx.note("sites", f"{far} of {len(tab)} observations lie farther than [drivers] max_site_distance_km = "
                          f"{lim:g} km from their cell's centre and get no drivers (not fitted)"
                          + (f"; a {ctx.cfg.grid.resolution:g}-degree cell's half-diagonal is {half:.0f} km"
                             if half > lim else ""))
    io.write_table(ctx.path("sites", "training.parquet"), tab, ctx.prov("sites"))


def _check_biomes_observed(ctx: Context, obs: pd.DataFrame, biome: xr.DataArray) -> None:
    """Every biome on the map needs field observations: with none, its Rs would come from
    other biomes' data alone (the paper fits one model per biome)."""
    import dask

    # one chunked pass over the map: cells per biome code (the map is never held whole)
    counts = dask.compute(*[(biome == code).sum() for code in BIOMES])
    seen = set(pd.to_numeric(obs["biome"], errors="coerce").dropna().astype(int))
    for code, n in ((c, int(k)) for c, k in zip(BIOMES, counts) if int(k) > 0):
        if int(code) not in seen:
            b = ctx.cfg.biomes
            where = ctx.cfg.resolve(b.path) if b.path is not None else ctx.path("biomes", "biomes.zarr")
            raise input_error(where, f"biome {int(code)} ({BIOMES.get(int(code), '?')}) covers {int(n)} "
                              f"land cells but no field observation of {ctx.cfg.resolve(ctx.cfg.field.path)} "
                              f"falls in it, so it has no model", column=b.variable, value=int(code))


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


def need_extra(module: str, extra: str, what: str) -> None:
    """Raise a one-line error when an optional dependency is not installed."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise SoilrespError(f"{what} needs {module}: pip install 'soilresp[{extra}]'")


def _partition(ctx: Context) -> None:
    from soilresp import partition

    partition.run(ctx)


def _report(ctx: Context) -> None:
    need_extra("matplotlib", "report", "the report stage")
    from soilresp import report

    path, found = find_config(ctx.out)
    if found is None or dump_config(found) != dump_config(ctx.cfg):
        path = None  # the file beside the run is not the config of this run
    report.write_report(ctx.out, ctx.out / "report", config=ctx.cfg, config_path=path,
                        progress=ctx.progress)


# ------------------------------------------------------------------ config discovery
def find_config(run_dir: Path) -> tuple[Path | None, Config | None]:
    """The TOML config whose ``output_dir`` is ``run_dir`` (beside or inside it).

    When several qualify, the one under which most stages are fresh (their manifest key equals
    the key the config gives) wins, i.e. the config that produced the outputs.
    """
    from soilresp.config import load_config

    run_dir = Path(run_dir).resolve()
    cands = [run_dir / n for n in ("config.toml", "soilresp.toml")] + sorted(run_dir.glob("*.toml")) + sorted(
        run_dir.parent.glob("*.toml"))
    best, best_score = (None, None), -1
    for p in dict.fromkeys(cands):
        if not p.is_file():
            continue
        try:
            cfg = load_config(p)
        except SoilrespError:
            continue
        if cfg.output_dir.resolve() != run_dir:
            continue
        score = sum(is_fresh(cfg, s) for s in STAGES.values() if s.name != "report")
        if score > best_score:
            best, best_score = (p, cfg), score
    return best


STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("field", ("field",), (), ("observations.parquet", "cascade.csv", "qc.csv"), _field,
          "field Rs records -> filtered, averaged site-year observations"),
    Stage("drivers", ("grid", "drivers"), (), ("drivers.zarr",), _drivers,
          "gridded driver files -> annual/MAM/JJA driver cube on the target grid"),
    Stage("biomes", ("grid", "biomes", "product.region_temperature", "product.region_bounds"), ("drivers",), ("biomes.zarr",), _biomes,
          "biome map and climate regions on the target grid"),
    Stage("sites", ("drivers", "biomes.site_search_cells"), ("field", "drivers", "biomes"), ("training.parquet",), _sites,
          "drivers and biome at each observation's site and year"),
    Stage("models", ("models",), ("sites",), ("selected.parquet", "skill.parquet",
                                              "selection_steps.parquet"), _models,
          "per-biome Eq 1-4 fits, Eq 5 predictor choice, 10-fold CV, best model"),
    Stage("product", ("product.intervals", "product.interval_quantiles", "product.outside_aoa",
                      "product.stability_drops", "product.stability_fraction", "product.stability_jackknife",
                      "product.stability_sample_pixels", "product.mc_min_per_stratum"),
          ("models", "drivers", "biomes", "sites"),
          ("rs.zarr", "totals.parquet", "latitude_profile.parquet"), _product,
          "Rs for every land pixel and year (model family, QRF intervals, AOA); totals; latitude profile; "
          "stability of the total"),
    Stage("uncertainty", ("product", "trends.min_years", "trends.alpha", "trends.mk_exact_max_n",
                           "grid.resolution"), ("product", "models", "sites"),
          ("mc_summary.parquet", "mc_totals.parquet", "mc_trends.parquet", "mc_trend_summary.parquet",
           "mode_diagnostics.parquet"), _uncertainty,
          "Monte Carlo totals per mode (paper, covariance, site-bootstrap, selection-bootstrap, "
          "structural): median, 95 % "
          "interval, per-realisation trends"),
    Stage("trends", ("trends",), ("product", "biomes"),
          ("trends.zarr", "series_trends.parquet", "class_shares.parquet"), _trends,
          "Mann-Kendall / Theil-Sen per pixel and for regional series; trend classes"),
    Stage("attribution", ("attribution", "trends"), ("product", "drivers", "biomes", "trends"),
          ("series_partial_corr.parquet", "pixel_partial_corr.zarr", "colocation.parquet",
           "change_shares.parquet", "change_class.zarr"), _attribution,
          "partial correlations, co-location and land-cover vs climate shares of change"),
    Stage("partition", ("partition", "field", "drivers.max_site_distance_km", "biomes.site_search_cells"),
          ("product", "drivers", "biomes"), ("summary.json",), _partition,
          "Rh / Ra partition: Rh/Rs ratio models applied to the Rs product, direct Rh/Ra runs",
          optional=("uncertainty",)),
    Stage("report", (), ("product", "models", "field"),
          ("report.html",), _report, "figures, tables and one self-contained HTML report",
          optional=("uncertainty", "trends", "attribution", "partition")),
]}
