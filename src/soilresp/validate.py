"""Whole-config consistency, checked before any stage starts (issue 17).

Pydantic validates each section on its own (``soilresp.config``); :func:`validate_run`
checks what only the whole config can tell: keys of one section that must agree with
another, and input paths. ``soilresp run`` calls it before the first stage and
``soilresp config --check`` calls it with every stage, so a config that passes ``--check``
cannot fail later for a reason the config alone could reveal. Every error is a
:class:`~soilresp.errors.ConfigError` naming the config key.

Each check is one function ``_check_*(cfg) -> list[str]`` (listed in :data:`CHECKS` with the
stages that need it); ``docs/reliability.md`` lists them.
"""

from __future__ import annotations

import glob
import stat
from pathlib import Path

from soilresp.config import Config
from soilresp.errors import ConfigError

SUFFIXES = ("", "_mam", "_jja")


def cube_variables(cfg: Config) -> set[str]:
    """Variables the drivers stage will write for this config (sources, seasons, derived)."""
    names: set[str] = set()
    for s in cfg.drivers.sources:
        names |= {s.variable + sfx for sfx in (SUFFIXES if s.seasons and s.frequency != "static" else ("",))}
    for sfx in SUFFIXES:
        if f"lst_day{sfx}" in names and f"lst_night{sfx}" in names:
            names.add(f"lst_diff{sfx}")
        if f"et{sfx}" in names and f"pet{sfx}" in names:
            names.add(f"et_pet{sfx}")
    return names


def _years(cfg: Config) -> int:
    return cfg.run.years[1] - cfg.run.years[0] + 1


def _check_min_years(cfg: Config) -> list[str]:
    n = _years(cfg)
    if cfg.trends.min_years > n:
        return [f"'trends.min_years' = {cfg.trends.min_years} exceeds the run's {n} years "
                f"('run.years' = {list(cfg.run.years)}): every trend would be NaN; lower it to <= {n}"]
    return []


def _check_alphas(cfg: Config) -> list[str]:
    if cfg.trends.slight_alpha < cfg.trends.alpha:
        return [f"'trends.slight_alpha' = {cfg.trends.slight_alpha} is below 'trends.alpha' = {cfg.trends.alpha}"]
    return []


def _check_region_bounds(cfg: Config) -> list[str]:
    lo, hi = cfg.product.region_bounds
    if not lo < hi:
        return [f"'product.region_bounds' must be [low, high] with low < high (degC), got {[lo, hi]}"]
    return []


# The three checks below compare with drivers.sources; with no sources at all the drivers
# stage is what is missing (_check_sources, or "run it first" for a later stage).
def _check_region_temperature(cfg: Config) -> list[str]:
    v = cfg.product.region_temperature
    if cfg.drivers.sources and v not in cube_variables(cfg):
        return [f"'product.region_temperature' = {v!r} is not a driver in 'drivers.sources' "
                f"(variables: {sorted(s.variable for s in cfg.drivers.sources)})"]
    return []


def _check_model_drivers(cfg: Config) -> list[str]:
    have = cube_variables(cfg)
    if have and not any(t + sfx in have for t in cfg.models.temperature for sfx in SUFFIXES):
        return [f"'models.temperature': none of {cfg.models.temperature} is a driver in 'drivers.sources' "
                f"(variables: {sorted(s.variable for s in cfg.drivers.sources)}); the models need one"]
    return []


def _check_attribution_drivers(cfg: Config) -> list[str]:
    have = cube_variables(cfg)
    missing = [d for d in cfg.attribution.drivers if d not in have] if have else []
    if missing:
        return [f"'attribution.drivers' lists {missing}, not in 'drivers.sources' "
                f"(variables: {sorted(s.variable for s in cfg.drivers.sources)})"]
    return []


def _check_sources(cfg: Config) -> list[str]:
    if not cfg.drivers.sources:
        return ["'drivers.sources' is empty: give at least one [[drivers.sources]] entry"]
    return []


def _file_problem(p: Path, allow_dir: bool = False) -> str | None:
    """None if ``p`` is a readable regular file (or, with ``allow_dir``, a folder such as a Zarr store)."""
    try:
        st = p.stat()
    except FileNotFoundError:
        return "not found"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if stat.S_ISDIR(st.st_mode):
        return None if allow_dir else "is a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        kind = "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else (
            "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a special file")
        return f"is {kind}, not a regular file"
    return None


def _path_errors(cfg: Config, key: str, value, allow_dir: bool = False, is_glob: bool = False) -> list[str]:
    if value is None:
        return []
    raw = str(value)
    if "://" in raw or raw.startswith("/vsi"):
        return []   # network / GDAL virtual paths are checked by the readers (files and network rules)
    p = cfg.resolve(raw)
    hits = [Path(h) for h in sorted(glob.glob(str(p)))] if is_glob and glob.has_magic(str(p)) else [p]
    if not hits:
        return [f"'{key}' = {raw!r}: no file matches ({p})"]
    out = []
    for h in hits:
        prob = _file_problem(h, allow_dir)
        if prob:
            out.append(f"'{key}' = {raw!r}: {h} {prob}")
    return out


def _check_field_path(cfg: Config) -> list[str]:
    if cfg.field.path is None:
        return ["'field.path' is not set: give the SRDB srdb-data.csv or a tidy table"]
    return _path_errors(cfg, "field.path", cfg.field.path)


def _check_driver_paths(cfg: Config) -> list[str]:
    out = []
    for i, s in enumerate(cfg.drivers.sources):
        out += _path_errors(cfg, f"drivers.sources[{i}].path ({s.variable})", s.path, allow_dir=True, is_glob=True)
    return out


def _check_biome_paths(cfg: Config) -> list[str]:
    b = cfg.biomes
    if b.path is None and b.climate_zones is None:
        return ["'biomes.path' (or 'biomes.climate_zones' + 'biomes.land_cover') is not set"]
    return (_path_errors(cfg, "biomes.path", b.path, allow_dir=True)
            + _path_errors(cfg, "biomes.climate_zones", b.climate_zones)
            + _path_errors(cfg, "biomes.land_cover", b.land_cover, is_glob=True)
            + _path_errors(cfg, "biomes.mapping", b.mapping))


def _check_output_dir(cfg: Config) -> list[str]:
    p = cfg.output_dir
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                return [f"'run.output_dir' = {str(cfg.run.output_dir)!r}: {q} is a file, not a folder"]
            break
    return []


def _extra_problem(key: str, module: str, extra: str) -> list[str]:
    from soilresp.extras import has

    return [] if has(module) else [f"{key} needs {module}: pip install 'soilresp[{extra}]'"]


def _source_format(fmt: str, path) -> str:
    if fmt != "auto":
        return fmt
    from soilresp.drivers.readers import _SUFFIX_FORMAT

    return _SUFFIX_FORMAT.get(Path(str(path)).suffix.lower(), "")


def _check_driver_extras(cfg: Config) -> list[str]:
    out = []
    for i, s in enumerate(cfg.drivers.sources):
        key = f"'drivers.sources[{i}]' ({s.variable}, {s.path})"
        fmt = _source_format(getattr(s, "format", "auto"), s.path)
        if fmt == "geotiff":
            out += _extra_problem(key, "rioxarray", "geotiff") or _extra_problem(key, "rasterio", "geotiff")
        elif fmt == "modis":
            out += _extra_problem(key, "pyhdf", "modis") or _extra_problem(key, "pyproj", "modis")
    return out


def _check_biome_extras(cfg: Config) -> list[str]:
    b, out = cfg.biomes, []
    for key, value in (("biomes.path", b.path), ("biomes.land_cover", b.land_cover),
                       ("biomes.climate_zones", b.climate_zones)):
        if value is not None and _source_format("auto", value) == "geotiff":
            k = f"'{key}' = {str(value)!r} (GeoTIFF)"
            out += _extra_problem(k, "rioxarray", "geotiff") or _extra_problem(k, "rasterio", "geotiff")
    return out


def _check_model_extras(cfg: Config) -> list[str]:
    ml = [f for f in cfg.models.families if f != "nls"]
    key = f"'models.families' = {list(cfg.models.families)}"
    out = _extra_problem(key, "skops", "ml") if ml else []
    if "qrf" in ml:
        out += _extra_problem(key, "quantile_forest", "ml")
    return [p + ' (or families = ["nls"])' for p in out]


def _check_scheduler_extra(cfg: Config) -> list[str]:
    if cfg.run.scheduler in ("threads", "synchronous"):
        return []
    return _extra_problem(f"'run.scheduler' = {cfg.run.scheduler!r}", "distributed", "cluster")


def _check_report_extra(cfg: Config) -> list[str]:
    return [p + " (or run the other stages: --stage NAME, repeatable)"
            for p in _extra_problem("the report stage", "matplotlib", "report")]


# (check, stages that need it); None = every run
CHECKS = [
    (_check_output_dir, None),
    (_check_min_years, ("trends", "attribution")),
    (_check_alphas, ("trends", "attribution")),
    (_check_region_bounds, ("biomes", "product")),
    (_check_sources, ("drivers",)),
    (_check_region_temperature, ("biomes",)),
    (_check_model_drivers, ("models",)),
    (_check_attribution_drivers, ("attribution",)),
    (_check_field_path, ("field",)),
    (_check_driver_paths, ("drivers",)),
    (_check_biome_paths, ("biomes",)),
    # optional dependencies (soilresp.extras): a missing extra fails here, not hours later
    (_check_driver_extras, ("drivers",)),
    (_check_biome_extras, ("biomes",)),
    (_check_model_extras, ("models",)),
    (_check_scheduler_extra, None),
    (_check_report_extra, ("report",)),
]


def validate_run(cfg: Config, stages=None, source: str | None = None) -> None:
    """Raise one :class:`ConfigError` listing every cross-section problem of ``cfg`` for the
    given stages (None: all stages, as ``soilresp config --check`` does)."""
    todo = set(stages) if stages else None
    problems: list[str] = []
    for check, need in CHECKS:
        if todo is None or need is None or todo & set(need):
            problems += check(cfg)
    if problems:
        where = source or "config"
        raise ConfigError(f"{where}: " + "; ".join(problems))
