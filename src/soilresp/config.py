"""Run configuration: one TOML file describes a whole run.

Every section is a pydantic model with ``extra="forbid"`` so a misspelt key is an error
that names it. Relative paths are resolved against the folder of the config file.
``soilresp config --example`` prints :data:`EXAMPLE_TOML`, which is validated in the tests.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from soilresp.errors import ConfigError

# The paper's ten biomes (Huang et al. 2020, Table S1); codes are stable and stored in maps.
BIOMES: dict[int, str] = {
    1: "temperate_deciduous_broadleaf_forest",
    2: "temperate_evergreen_broadleaf_forest",
    3: "temperate_deciduous_needleleaf_forest",
    4: "temperate_evergreen_needleleaf_forest",
    5: "temperate_mixed_forest",
    6: "boreal_forest",
    7: "tropical_forest",
    8: "grassland",
    9: "cropland",
    10: "shrubland",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunConfig(_Section):
    name: str = "soilresp-run"
    output_dir: Path = Path("soilresp-out")
    seed: int = Field(42, ge=0)
    years: tuple[int, int] = (2000, 2014)
    scheduler: str = Field(
        "threads",
        description="'threads' (local threaded scheduler), 'local-cluster' (a "
        "dask.distributed LocalCluster) or the address of an existing scheduler, "
        "e.g. 'tcp://10.0.0.5:8786'.",
    )
    workers: int = Field(2, ge=1, description="workers for 'local-cluster'")

    @field_validator("years")
    @classmethod
    def _years_ordered(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[1] < v[0]:
            raise ValueError(f"years must be [first, last] with first <= last, got {list(v)}")
        if v[1] - v[0] + 1 < 3:
            raise ValueError("at least 3 years are needed for trends")
        return v


class GridConfig(_Section):
    """Target regular lat/lon grid (cell-centre coordinates, degrees, WGS84)."""

    resolution: float = Field(1.0, gt=0, le=5, description="cell size in degrees")
    lat_min: float = Field(-60.0, ge=-90, lt=90)
    lat_max: float = Field(84.0, gt=-90, le=90)
    lon_min: float = Field(-180.0, ge=-180, lt=180)
    lon_max: float = Field(180.0, gt=-180, le=180)
    chunk: int = Field(256, ge=8, description="lat/lon chunk size of grids on disk and in dask")

    @model_validator(mode="after")
    def _check(self) -> "GridConfig":
        if self.lat_max <= self.lat_min or self.lon_max <= self.lon_min:
            raise ValueError("grid bounds must satisfy lat_min < lat_max and lon_min < lon_max")
        for name, span in (("lat", self.lat_max - self.lat_min), ("lon", self.lon_max - self.lon_min)):
            n = span / self.resolution
            if abs(n - round(n)) > 1e-6:
                raise ValueError(f"{name} span {span} is not a multiple of resolution {self.resolution}")
        return self


class FieldConfig(_Section):
    """Field Rs database and the paper's selection rules (method step 1).

    Huang et al. 2020, Methods: field data. See ``docs/field.md`` and :mod:`soilresp.field`
    for every rule, its default and the SRDB documentation it follows.
    """

    path: Path | None = Field(None, description="SRDB srdb-data.csv, or a tidy CSV/Parquet")
    format: Literal["srdb", "table"] = "srdb"
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="for format='table': our name -> your column, for site_id, lat, lon, "
        "year, rs (g C m-2 yr-1), vegetation, method, manipulation, quality_flag, "
        "record_number, site_name, country, duplicate; unmapped names default to a column "
        "of that name when the file has one",
    )
    target: str = Field(
        "Rs_annual", min_length=1,
        description="the annual flux to map: an SRDB column (Rs_annual, Rh_annual, "
        "Ra_annual; g C m-2 yr-1) or, for format='table', a column of your table (used "
        "as 'rs' unless columns.rs is mapped); names and long names of every output "
        "follow it (soilresp.targets, docs/partition.md)",
    )
    methods: list[str] = Field(
        default_factory=lambda: ["IRGA", "Gas chromatography"],
        description="accepted Meas_method values (spelling variants such as 'IGRA', "
        "'Gas Chromatography', 'GC' match); empty list = no method rule",
    )
    unmanipulated: list[str] = Field(
        default_factory=lambda: ["None"],
        description="Manipulation values meaning 'no experimental manipulation' "
        "(case-insensitive); empty list = no manipulation rule",
    )
    exclude_quality_flags: list[str] = Field(
        default_factory=lambda: ["Q10", "Q11", "Q12", "Q13", "Q14", "Q15", "Q16"],
        description="SRDB Quality_flag codes to drop (see SRDB expanded_field_notes.txt)",
    )
    exclude_ecosystems: list[str] = Field(
        default_factory=list,
        description="ecosystem types to drop (SRDB Ecosystem_type, the part of 'vegetation' "
        "before '/'; case-insensitive), e.g. ['Wetland', 'Desert', 'Tundra', 'Urban', 'Bare'] "
        "for the paper's ten biomes only; empty = keep all",
    )
    coordinate_qc: Literal["drop", "keep"] = "drop"
    land_tolerance_deg: float = Field(
        0.1, ge=0, le=2, description="a site within this distance of land counts as on land"
    )
    country_check: bool = Field(True, description="flag sites far from their stated country")
    country_tolerance_km: float = Field(
        100.0, gt=0, description="distance beyond which a site is 'far from its country'"
    )
    fix_swapped_coordinates: bool = Field(
        False,
        description="swap lat/lon (or fix a sign) when only the corrected point lies in the "
        "stated country; the fix is listed in the QC table",
    )
    rs_range: tuple[float, float] = Field(
        (20.0, 5000.0), description="plausible annual Rs, g C m-2 yr-1; outside is flagged"
    )
    drop_implausible_rs: bool = True
    bad_values: Literal["error", "drop"] = Field(
        "error",
        description="a non-numeric value in a column the rules use: 'error' stops with the "
        "file, row and column; 'drop' excludes that record and lists it in the QC table",
    )
    site_decimals: int = Field(2, ge=0, le=5, description="lat/lon decimals in site_id")

    @field_validator("exclude_quality_flags")
    @classmethod
    def _flag_codes(cls, v: list[str]) -> list[str]:
        import re

        bad = [c for c in v if not re.fullmatch(r"\s*[Qq]\s*\d{1,3}\s*", c)]
        if bad:
            raise ValueError(f"quality flag codes look like 'Q10', got {bad}")
        return v

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, v: dict[str, str]) -> dict[str, str]:
        known = {
            "site_id", "lat", "lon", "year", "rs", "vegetation", "method", "manipulation",
            "quality_flag", "record_number", "site_name", "country", "duplicate",
        }
        unknown = sorted(set(v) - known)
        if unknown:
            raise ValueError(f"unknown column key(s) {unknown}; known: {sorted(known)}")
        return v

    @field_validator("rs_range")
    @classmethod
    def _rs_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] < v[1]:
            raise ValueError(f"rs_range must be [low, high] with low < high, got {list(v)}")
        return v


class DriverSource(_Section):
    """One gridded input file (or glob) holding one variable."""

    variable: str = Field(description="canonical name, e.g. 'tas', 'pr', 'lst_day', 'gpp'")
    path: str = Field(description="file path or glob, relative to the config file")
    name: str | None = Field(None, description="variable name inside the file (default: variable)")
    frequency: Literal["monthly", "8day", "daily", "annual", "static"] = Field(
        "monthly", description="time step of the file; 'static' = a map without time, used "
        "for every run year (e.g. a climatology)")
    aggregation: Literal["mean", "sum"] = "mean"
    seasons: bool = Field(True, description="also build spring (MAM) and summer (JJA) values")
    format: Literal["auto", "netcdf", "geotiff", "modis", "csv"] = Field(
        "auto", description="file format; 'auto' from the suffix (.nc, .tif, .hdf, .csv)")
    regrid: Literal["nearest", "bilinear", "area"] | None = Field(
        None, description="resampling onto the target grid (default: [drivers] regrid)")
    units: str | None = Field(None, description="units when the file does not say (e.g. CSV)")
    product: str | None = Field(
        None, description="MODIS short name for the QA rule, e.g. 'MOD11A2' (default: from the "
        "file name)")
    qa: Literal["default", "strict", "none"] = Field(
        "default", description="MODIS QA masking: 'default' keeps good and other-quality "
        "retrievals, 'strict' good only, 'none' no QA mask (fill and valid range still apply)")
    max_missing_fraction: float = Field(
        0.0, ge=0, lt=1, description="fraction of a year's time steps that may be absent from the "
        "file (0: a year with a missing month is an error); allowed gaps are recorded in the "
        "driver cube's attribute soilresp_missing_steps")
    allow_vrt: bool = Field(False, description="read GDAL VRT files (they can read other files and URLs)")
    allow_network: bool = Field(False, description="read network / GDAL virtual paths (http://, /vsicurl/...)")


class DriversConfig(_Section):
    sources: list[DriverSource] = Field(default_factory=list)
    min_valid_fraction: float = Field(0.75, gt=0, le=1)
    max_site_distance_km: float = Field(100.0, gt=0)
    regrid: Literal["nearest", "bilinear", "area"] = Field(
        "nearest", description="resampling onto the target grid (Huang et al. 2020: nearest)")

    @field_validator("sources")
    @classmethod
    def _unique(cls, v: list[DriverSource]) -> list[DriverSource]:
        names = [s.variable for s in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"driver variable(s) listed twice: {sorted(dup)}")
        return v


class BiomesConfig(_Section):
    path: Path | None = Field(
        None, description="NetCDF/Zarr with an integer 'biome' map (codes 1-10, 0 = excluded)"
    )
    variable: str = "biome"
    climate_zones: Path | None = Field(
        None, description="instead of path: IPCC climate-zone map (codes 1-12; NetCDF or GeoTIFF)")
    climate_zones_variable: str = "ipcc_climate_zone"
    land_cover: str | None = Field(
        None, description="with climate_zones: MODIS IGBP land cover (LC_Type1, codes 1-17) file "
        "or glob of yearly files (year in the file name)")
    land_cover_variable: str = "LC_Type1"
    land_cover_year: int | None = Field(
        None, description="land-cover year for the biome map (default: first run year; a "
        "missing year is taken from the nearest later year, e.g. 2000 from 2001)")
    mapping: Path | None = Field(
        None, description="CSV overriding the packaged climate zone x IGBP -> biome table")
    site_search_cells: int = Field(
        0, ge=0, le=10, description="a site on an excluded (0) cell takes the most common biome "
        "within this many cells (e.g. a coastal site on a water cell); 0 = off, the site is "
        "not used for fitting")

    @model_validator(mode="after")
    def _one_source(self) -> "BiomesConfig":
        if self.path is not None and (self.climate_zones or self.land_cover):
            raise ValueError("give either path (a biome map) or climate_zones + land_cover")
        if (self.climate_zones is None) != (self.land_cover is None):
            raise ValueError("climate_zones and land_cover go together")
        return self


class ModelsConfig(_Section):
    """Per-biome models (method step 4); see ``docs/models.md``."""

    families: list[Literal["nls", "rf", "svr", "ann", "qrf"]] = Field(
        default_factory=lambda: ["nls", "rf", "svr", "ann"],
        description="candidate families: Eq 1-4 nonlinear least squares ('nls'), random forest "
        "('rf'), support vector regression ('svr'), neural network ('ann'), quantile regression "
        "forest ('qrf', gives per-pixel intervals)")
    temperature: list[str] = Field(default_factory=lambda: ["tas", "lst_day", "lst_night"])
    moisture: list[str] = Field(default_factory=lambda: ["pr", "sm", "et_pet"])
    productivity: list[str] = Field(default_factory=lambda: ["gpp", "evi", "ndvi"])
    cv_folds: int = Field(10, ge=2, description="outer k of both k-fold and site-grouped k-fold CV")
    inner_folds: int = Field(3, ge=2, description="k of the grid search's CV inside each training fold")
    select_by: Literal["random", "site", "location", "block"] = Field(
        "location", description="CV whose R2 (ties: RMSE) picks the best model per biome: "
        "'location'-grouped k-fold (default: sites within location_km share a fold), 'random' "
        "k-fold (the paper), 'site'-grouped or spatial 'block' k-fold")
    location_km: float | None = Field(
        None, ge=0, description="sites closer than this (km, single linkage) share a location CV "
        "fold; default one grid cell (resolution x 111.32 km); equal coordinates always do")
    block_deg: float = Field(5.0, gt=0, description="side of the spatial CV blocks, degrees")
    t_response: Literal["concave", "monotone", "free"] = Field(
        "concave", description="Eq 1-4 temperature/moisture shape: 'concave' (c, e <= 0, Q10 at the "
        "median T within q10_range), 'monotone' (also d ln Rs/dT >= 0 over the training T), 'free'")
    q10_range: tuple[float, float] = Field((1.0, 6.0), description="plausible Q10 of the Eq 1-4 fits")
    predictor_range: Literal["clamp", "allow"] = Field(
        "clamp", description="'clamp': every predictor is clamped to its training range (widened by "
        "predictor_margin) before prediction (all families); 'allow': extrapolate")
    predictor_margin: float = Field(0.1, ge=0, le=1, description="'clamp' widens each training range by "
                                    "this fraction of its span on both sides: the bounded Eq 1-4 "
                                    "responses follow a warming edge a little way instead of flattening")
    min_cv_r2: float = Field(0.0, description="a biome model whose CV R2 (select_by) is <= this is "
                             "not deployed: the pooled model, or the biome mean, takes its place")
    scaled_fallback: bool = Field(True, description="between the pooled model and the biome mean, try the "
                                  "pooled model's response scaled to the biome's mean Rs (one fitted "
                                  "number, like the mean): deployed when its select_by CV R2 on the "
                                  "biome's rows beats the biome mean's, so the biome keeps a climate "
                                  "response (docs/models.md §6)")
    select_from: list[Literal["nls", "rf", "svr", "ann", "qrf"]] | None = Field(
        None, description="families eligible as a biome's model (default: all of families); e.g. "
        "['nls'] keeps the paper's parameter Monte Carlo while the other families are still scored")
    min_observations: int = Field(15, ge=5, description="below this a biome gets the pooled model")
    n_jobs: int = Field(1, ge=1, description="processes fitting biomes in parallel (joblib); results "
                        "do not depend on it")

    @field_validator("families")
    @classmethod
    def _families(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one model family")
        if len(set(v)) != len(v):
            raise ValueError(f"family listed twice: {v}")
        return v

    @model_validator(mode="after")
    def _select_from(self) -> "ModelsConfig":
        extra = sorted(set(self.select_from or []) - set(self.families))
        if extra:
            raise ValueError(f"select_from lists {extra}, which are not in families {self.families}")
        if self.select_from == []:
            raise ValueError("select_from must name at least one family (or be left out)")
        if not 0 < self.q10_range[0] < self.q10_range[1]:
            raise ValueError(f"q10_range must satisfy 0 < low < high, got {list(self.q10_range)}")
        return self


class ProductConfig(_Section):
    """Global product and its Monte Carlo uncertainty (method step 5; docs/product.md)."""

    intervals: bool = Field(True, description="write rs_lo / rs_hi where a biome's model gives "
                            "prediction intervals (quantile forest)")
    interval_quantiles: tuple[float, float] = Field((0.025, 0.975), description="quantiles of rs_lo, rs_hi")
    mc_samples: int = Field(500, ge=0, description="Monte Carlo realisations (0 = none)")
    mc_mode: str | list[str] = Field(
        "site-bootstrap", description="one mode or a list (each gets its own rows): 'paper' (alias "
        "'parameters': the paper's 10 % Normal parameter draws and Eq 5 predictor draws; ML families "
        "bootstrap-refitted), 'covariance' (multivariate normal from the fit covariance), "
        "'site-bootstrap' (resample location groups, refit), 'selection-bootstrap' (the same, with the "
        "model re-selected among the biome's candidates by out-of-bag error in each realisation), "
        "'structural' (spread across the models "
        "within mc_structural_tolerance of the best CV), 'bootstrap' (resample site ids or rows, "
        "mc_bootstrap_unit); docs/product.md")
    param_cv: float = Field(0.10, ge=0, le=1, description="coefficient of variation of model parameters")
    mc_qualitative: Literal["eq5", "uniform", "none"] = Field(
        "eq5", description="predictor draws from the Eq 5 candidates: weighted by eps, uniform, or none")
    mc_eps_tolerance: float = Field(0.10, ge=0, le=1, description="'eq5' draws among candidates whose "
                                    "Eq 5 score is within this fraction of the step's best")
    mc_bootstrap_unit: Literal["site", "row"] = Field("site", description="resample sites or rows")
    mc_sample_pixels: int = Field(0, ge=0, description="0: every pixel in every realisation; N: "
                                  "totals from a stratified random sample of about N pixels")
    mc_min_per_stratum: int = Field(30, ge=1, description="minimum sample per biome x region stratum")
    mc_batch: int = Field(50, ge=1, description="realisations per dask task (memory / parallelism)")
    outside_aoa: Literal["keep", "mask", "fallback"] = Field(
        "keep", description="pixels outside their model's area of applicability (Meyer & Pebesma "
        "2021): 'keep' the prediction (flagged by aoa), 'mask' it (NaN), or 'fallback' to the "
        "biome's mean observed Rs")
    stability_drops: int = Field(20, ge=0, description="random drops of stability_fraction of the location "
                                 "groups, each refitting the deployed models (product/stability.parquet; 0 = none)")
    stability_fraction: float = Field(0.1, gt=0, lt=1, description="share of location groups per drop")
    stability_jackknife: int = Field(10, ge=0, description="blocks of the grouped jackknife of the total (0 = none)")
    stability_sample_pixels: int = Field(40000, ge=0, description="stability refits: totals from a stratified "
                                         "sample of about N pixels (mc_min_per_stratum per stratum; sampling error "
                                         "reported); 0 = every pixel per refit")
    mc_group_km: float | None = Field(None, ge=0, description="site-bootstrap location groups: sites "
                                      "within this distance (km, single linkage) are one unit; unset = "
                                      "one grid cell (resolution x 111.32 km)")
    mc_structural_tolerance: float = Field(0.02, ge=0, description="structural mode: models whose CV "
                                           "score is within this of the biome's best")
    mc_structural_score: str | None = Field(None, description="structural mode: the column of "
                                            "models/skill.parquet that ranks the models (higher is "
                                            "better); unset = the R2 of [models] select_by (loc_cv_r2)")
    region_temperature: str = "tas"
    region_bounds: tuple[float, float] = Field(
        (2.0, 17.0), description="boreal < low <= temperate <= high < tropical, degC"
    )

    @field_validator("mc_mode")
    @classmethod
    def _modes(cls, v):
        from soilresp.product.uncertainty import normalise_modes

        modes = normalise_modes(v)
        return modes[0] if len(modes) == 1 else modes

    @field_validator("interval_quantiles")
    @classmethod
    def _quantiles(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] < v[1] < 1:
            raise ValueError(f"interval_quantiles must satisfy 0 < lo < hi < 1, got {list(v)}")
        return v


class TrendsConfig(_Section):
    alpha: float = Field(0.05, gt=0, lt=1)
    slight_alpha: float = Field(0.5, gt=0, lt=1, description="p below this but >= alpha: 'slight'")
    min_years: int = Field(8, ge=3)
    bootstrap: int = Field(1000, ge=0)
    fdr: bool = False
    mk_exact_max_n: int = Field(20, ge=0, le=60, description="series of at most this many years get the "
                                "exact Mann-Kendall p (Kendall 1975) instead of the normal "
                                "approximation; 0 = never")


class AttributionConfig(_Section):
    drivers: list[str] = Field(default_factory=lambda: ["tas", "pr", "spei", "tc", "sv", "bg"])
    cover_threshold: float = Field(0.25, ge=0, le=1)
    cover_controls: Literal["climate", "all"] = Field(
        "climate", description="with tc, sv and bg all among the drivers (fractions that sum to "
        "100 %, so any one is the others' complement): 'climate' = a cover's partial "
        "correlation controls for the climate drivers only, a climate driver's for the other "
        "climate drivers and two of the covers (the same span as all three); 'all' = every "
        "driver controls for all others (only for cover data that are not compositional)")


class PartitionConfig(_Section):
    """Rh / Ra partition of an Rs run (soilresp.partition; docs/partition.md)."""

    enabled: bool = Field(True, description="run the partition stage (it reports 'not "
                          "available' when the run's target is not Rs or no paired records exist)")
    rh_target: str = Field("Rh_annual", description="field column of heterotrophic respiration")
    ra_target: str = Field("Ra_annual", description="field column of root respiration")
    temperature: str = Field("tas", description="driver of the ratio regression, degC")
    precipitation: str = Field("pr", description="driver of the ratio regression, mm yr-1")
    min_observations: int = Field(15, ge=3, description="paired observations for a biome's "
                                  "own ratio model; fewer: the pooled model")
    ratio_clip: tuple[float, float] = Field((0.05, 0.95), description="observed Rh/Rs clipped "
                                            "to this range before the logit")
    bootstrap: int = Field(200, ge=0, description="site-bootstrap refits of the ratio models")
    rh_run: Path | None = Field(None, description="output_dir of a run with [field] target = "
                                "'Rh_annual' on the same grid and years (direct route)")
    ra_run: Path | None = Field(None, description="output_dir of a run with target 'Ra_annual'")


class Config(_Section):
    run: RunConfig = Field(default_factory=RunConfig)
    grid: GridConfig = Field(default_factory=GridConfig)
    field: FieldConfig = Field(default_factory=FieldConfig)
    drivers: DriversConfig = Field(default_factory=DriversConfig)
    biomes: BiomesConfig = Field(default_factory=BiomesConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    product: ProductConfig = Field(default_factory=ProductConfig)
    trends: TrendsConfig = Field(default_factory=TrendsConfig)
    attribution: AttributionConfig = Field(default_factory=AttributionConfig)
    partition: PartitionConfig = Field(default_factory=PartitionConfig)

    # where the TOML lives; relative paths are resolved against it
    base_dir: Annotated[Path, Field(exclude=True)] = Path(".")

    def resolve(self, p: str | Path) -> Path:
        p = Path(p).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def output_dir(self) -> Path:
        return self.resolve(self.run.output_dir)

    def section_hash(self, *names: str) -> str:
        """SHA-256 of the named sections or ``section.key`` entries (decides stage reruns)."""
        def value(name: str):
            obj = self
            for part in name.split("."):
                obj = getattr(obj, part)
            return obj.model_dump(mode="json") if isinstance(obj, BaseModel) else json.loads(
                json.dumps(obj, default=str))

        blob = json.dumps({n: value(n) for n in names}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{loc}'")
        else:
            lines.append(f"{source}: '{loc}': {e['msg']} (got {e.get('input')!r})")
    return "; ".join(lines)


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML run configuration; errors name the file and key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text: {e}") from None
    return config_from_dict(data, base_dir=path.resolve().parent, source=str(path))


def config_from_dict(data: dict, base_dir: Path | str = ".", source: str = "config") -> Config:
    try:
        cfg = Config.model_validate({**data, "base_dir": Path(base_dir)})
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, source)) from None
    return cfg


def dump_config(cfg: Config) -> dict:
    """The config as plain JSON-able data (for provenance)."""
    return cfg.model_dump(mode="json", exclude={"base_dir"})


EXAMPLE_TOML = """\
# soilresp run configuration. Paths are relative to this file.
# Every key is optional; unknown keys are an error.

[run]
name = "my-run"
output_dir = "soilresp-out"      # all stage outputs go below this folder
seed = 42                        # makes fits, Monte Carlo and bootstraps repeatable
years = [2000, 2014]             # first and last year, inclusive
scheduler = "threads"            # "threads", "local-cluster" or "tcp://host:8786"

[grid]                           # target grid, cell centres, WGS84 degrees
resolution = 0.5
lat_min = -60.0
lat_max = 84.0
lon_min = -180.0
lon_max = 180.0
chunk = 256                      # lat/lon chunk size for Zarr and dask

[field]                          # method step 1: field Rs observations
path = "data/srdb-data.csv"
format = "srdb"                  # "srdb" or "table" (then map columns below)
methods = ["IRGA", "Gas chromatography"]
exclude_quality_flags = ["Q10", "Q11", "Q12", "Q13", "Q14", "Q15", "Q16"]
unmanipulated = ["None"]          # SRDB Manipulation values that mean "no treatment"
exclude_ecosystems = []          # e.g. ["Wetland", "Desert", "Tundra"] to keep the 10 biomes only
coordinate_qc = "drop"           # "drop" or "keep" records whose coordinates fail QC
land_tolerance_deg = 0.1         # a coastal site this close to land counts as on land
country_check = true             # flag sites inside another country's outline
country_tolerance_km = 100.0
fix_swapped_coordinates = false  # swap lat/lon back when that puts the site in its country
rs_range = [20.0, 5000.0]        # g C m-2 yr-1; outside is flagged
drop_implausible_rs = true
bad_values = "error"             # "error": stop at a non-numeric cell; "drop": drop that record

[drivers]                        # method step 2: one entry per gridded variable
min_valid_fraction = 0.75        # of time steps in a year / season
max_site_distance_km = 100.0
regrid = "nearest"               # "nearest" (the paper), "bilinear" or "area"; per source too

[[drivers.sources]]
variable = "tas"                 # canonical name used by the models
path = "data/tas_monthly.nc"
name = "tas"                     # variable inside the file
frequency = "monthly"            # "monthly", "8day", "daily" or "annual"
aggregation = "mean"             # "mean" or "sum" over the year / season

[[drivers.sources]]
variable = "pr"
path = "data/pr_monthly.nc"
frequency = "monthly"
aggregation = "sum"

# More source kinds (see docs/drivers.md):
# [[drivers.sources]]            # MODIS 8-day HDF4 tiles, QA bits applied, mosaicked
# variable = "lst_day"
# path = "data/modis/MOD11A2.A*.hdf"
# name = "LST_Day_1km"            # the SDS
# frequency = "8day"
# qa = "default"                  # "default", "strict" or "none"
# [[drivers.sources]]            # a static climatology (no time axis), used for every year
# variable = "tas"
# path = "data/udel_MAT_MAP_0.5deg_climatology.csv"
# name = "MAT_Del"
# frequency = "static"
# units = "degC"

[biomes]                         # method step 3
path = "data/biomes.nc"          # integer map, codes 1-10, 0 = excluded
variable = "biome"
# or build it from IPCC climate zones x MODIS IGBP land cover (instead of path):
# climate_zones = "data/ipcc_climate_zones.nc"
# land_cover = "data/MCD12Q1_LC_Type1_*.tif"   # year in each file name
# land_cover_year = 2001
site_search_cells = 0            # a site on an excluded cell takes the nearby majority biome

[models]                         # method step 4 (docs/models.md)
families = ["nls", "rf", "svr", "ann"]   # also "qrf": quantile forest with per-pixel intervals
temperature = ["tas"]            # candidates for T in Eq 2 (stepwise Eq 5 choice; _mam/_jja too)
moisture = ["pr"]                # candidates for M in Eq 3
productivity = []                # candidates for P in Eq 4
cv_folds = 10                    # 10-fold and site-grouped 10-fold CV
inner_folds = 3                  # grid-search CV inside each training fold (nested CV)
select_by = "random"             # best model per biome by "random" (the paper) or "site" CV R2
# select_from = ["nls"]          # families eligible as the biome's model (default: all families)
min_observations = 15            # fewer: the biome gets the pooled model of all biomes
n_jobs = 1                       # processes fitting biomes in parallel (same results)

[product]                        # method step 5 (docs/product.md)
intervals = true                 # rs_lo / rs_hi where a model gives intervals (quantile forest)
interval_quantiles = [0.025, 0.975]
region_temperature = "tas"       # tropical > 17 degC, temperate 2-17, boreal < 2 (run-years mean)
region_bounds = [2.0, 17.0]
# Monte Carlo (stage `uncertainty`, `soilresp uncertainty CONFIG`)
mc_samples = 500                 # realisations (0 = none)
mc_mode = "site-bootstrap"       # or "paper", "covariance", "selection-bootstrap", "structural",
                                 # "bootstrap", or a list
param_cv = 0.10                  # coefficient of variation of nonlinear-model parameters
mc_qualitative = "eq5"           # predictor draws from the Eq 5 candidates: "eq5", "uniform", "none"
mc_eps_tolerance = 0.10          # "eq5": candidates scoring within 10 % of the step's best
mc_bootstrap_unit = "site"       # bootstrap resamples "site"s or "row"s of the training table
mc_sample_pixels = 0             # 0: every pixel; N: stratified sample of ~N pixels per realisation
mc_min_per_stratum = 30
mc_batch = 50                    # realisations per dask task
# mc_group_km = 55.66            # site-bootstrap location groups (unset: one grid cell)
mc_structural_tolerance = 0.02   # structural: models within 0.02 of the best CV score
# mc_structural_score = "loc_cv_r2"  # unset: the R2 column of [models] select_by

[trends]                         # method step 6
alpha = 0.05
slight_alpha = 0.5
min_years = 8
bootstrap = 1000
fdr = false                      # Benjamini-Hochberg over maps
mk_exact_max_n = 20             # exact Mann-Kendall p for series of <= 20 years (0 = never)

[attribution]                    # method step 7
# every driver here must be a [[drivers.sources]] variable above; the paper's six are
# ["tas", "pr", "spei", "tc", "sv", "bg"] once those sources are configured
drivers = ["tas", "pr"]
cover_threshold = 0.25
cover_controls = "climate"       # tc + sv + bg = 100 %: covers control for climate only
"""
