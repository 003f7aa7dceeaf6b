"""The paper's selection of field observations, with a filter cascade and a QC table.

Huang et al. 2020 (Sci. Adv. 6:eabb8508), Methods: field data. Annual soil respiration
(Rs) records of the SRDB are kept when annual Rs is reported, the flux was measured with
an infrared gas analyser (IRGA) or gas chromatography, there was no experimental
manipulation, the record carries no problem quality flag and is no known duplicate, the
study year lies in the analysis period, and the coordinates are valid. Records of one
site, year and vegetation type are averaged into one observation (the paper: 1292
observations at 701 sites for 2000-2014). Every rule is named, counted in the cascade and
configurable in ``[field]`` (:class:`soilresp.config.FieldConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from soilresp.errors import ConfigError, input_error
from soilresp.field import countries as _c
from soilresp.field import qc as _qc
from soilresp.field._read import BAD_VALUES_KEY
from soilresp.field.rules import (
    calendar_year,
    is_duplicate,
    make_site_id,
    method_accepted,
    normalize_method,
    parse_flag_code,
    parse_quality_flags,
)
from soilresp.field.table import (
    CANONICAL_COLUMNS,
    is_canonical,
    is_srdb,
    srdb_to_canonical,
)

#: rule name -> what it keeps, in cascade order (step 0 = input, last = averaging)
RULES: dict[str, str] = {
    "input": "all records read",
    "values_parseable": "numeric cells used by the rules hold numbers (bad_values = 'drop')",
    "rs_annual_present": "annual Rs reported and > 0 (SRDB Rs_annual, g C m-2 yr-1)",
    "measurement_method": "Rs measured by IRGA or gas chromatography (SRDB Meas_method)",
    "no_manipulation": "no experimental manipulation (SRDB Manipulation = 'None')",
    "quality_flags": "no excluded SRDB Quality_flag code (expanded_field_notes.txt)",
    "not_duplicate": "not marked as a duplicate (SRDB Duplicate_record empty)",
    "study_period": "calendar year of Study_midyear inside the analysis period",
    "ecosystem_type": "ecosystem type not in the excluded list (SRDB Ecosystem_type)",
    "coordinates_valid": "latitude/longitude present and within +-90/+-180 degrees",
    "coordinates_on_land": "site on land (1 km GLOBE land mask, coastal tolerance)",
    "coordinates_in_country": "site not inside another country far from its stated one",
    "rs_plausible": "annual Rs inside the plausible range",
    "average_site_year_vegetation": "records of one site, year and vegetation averaged",
}
_ORDER = {name: k for k, name in enumerate(RULES)}

#: observation table columns -> dtype (the contract with the rest of the pipeline)
OBSERVATION_COLUMNS: dict[str, str] = {
    "site_id": "str",
    "lat": "float64",
    "lon": "float64",
    "year": "int64",
    "vegetation": "str",
    "rs": "float64",
    "n_records": "int64",
    "record_numbers": "str",
    "biome": "int16",
}
QC_COLUMNS = ("record_number", "row", "flag", "detail", "action")
CASCADE_COLUMNS = ("step", "rule", "records_remaining", "records_removed", "description")


@dataclass
class FieldResult:
    """Selected observations and the evidence of how they were selected.

    ``observations``: one row per site, year and vegetation type (:data:`OBSERVATION_COLUMNS`);
    ``cascade``: records left after each rule (:data:`CASCADE_COLUMNS`);
    ``qc``: every QC flag raised (:data:`QC_COLUMNS`); ``records``: every input record with
    the rule that excluded it (empty = kept) and its site id; ``meta``: source, checksum,
    SRDB release, period and counts, stored in the outputs' provenance.
    """

    observations: pd.DataFrame
    cascade: pd.DataFrame
    qc: pd.DataFrame
    records: pd.DataFrame = field(default_factory=pd.DataFrame)
    meta: dict = field(default_factory=dict)

    @property
    def n_sites(self) -> int:
        return int(self.observations["site_id"].nunique())

    def summary(self) -> str:
        """The filter cascade as printable text (what ``soilresp field`` prints)."""
        return format_cascade(self.cascade, self.meta)


def format_cascade(cascade: pd.DataFrame, meta: dict | None = None) -> str:
    meta = meta or {}
    lines = []
    src = meta.get("source")
    if src:
        rel = f" (release: {meta['srdb_release'] or 'unpinned'})" if "srdb_release" in meta else ""
        lines.append(f"field records: {src}{rel}")
    years = meta.get("years")
    if years:
        lines.append(f"period: {years[0]}-{years[1]}")
    w = max(len(r) for r in cascade["rule"])
    lines.append(f"{'step':>4}  {'rule':<{w}}  {'remaining':>9}  {'removed':>7}")
    for r in cascade.itertuples(index=False):
        lines.append(
            f"{r.step:>4}  {r.rule:<{w}}  {r.records_remaining:>9}  {r.records_removed:>7}"
        )
    last = cascade.iloc[-1]
    lines.append(str(last["description"]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- helpers
def _canonical(df: pd.DataFrame, source, target: str = "Rs_annual") -> pd.DataFrame:
    if is_srdb(df):
        if target not in df.columns:
            raise input_error(source, f"the target column ([field] target = {target!r}) is "
                              "not in the SRDB file", column=target)
        return srdb_to_canonical(df, target)
    if is_canonical(df):
        out = df.copy()
        if out.index.name != "row":
            out.index = pd.Index(np.arange(2, len(out) + 2), name="row")
        return out
    missing = [c for c in CANONICAL_COLUMNS if c not in df.columns]
    raise input_error(source, "records lack a required column (neither SRDB nor canonical form)",
                      column=missing[0])


_SRDB_NAMES = {"rs": "Rs_annual", "lat": "Latitude", "lon": "Longitude", "year": "Study_midyear"}


def _source_column(df: pd.DataFrame, cfg, name: str) -> str:
    """The input file's name of canonical column ``name`` (for error messages)."""
    if is_srdb(df):
        if name == "rs":
            return getattr(cfg, "target", "Rs_annual")
        return _SRDB_NAMES.get(name, name)
    return dict(getattr(cfg, "columns", {}) or {}).get(name, name)


def _check_units_and_axes(df, rec, cfg, source) -> None:
    """Whole-file mistakes that per-record QC would turn into a silently wrong map:
    Rs in another unit and swapped latitude/longitude columns (one error naming the column)."""
    rs = rec["rs"].to_numpy(dtype=float, na_value=np.nan)
    pos = rs[np.isfinite(rs) & (rs > 0)]
    lo_rs = float(cfg.rs_range[0])
    if pos.size >= 10 and np.median(pos) < lo_rs:
        med = float(np.median(pos))
        # order the two usual mistakes by how close the converted median is to ~700 g C
        units = sorted([(abs(np.log(med * 1000 / 700)), "kg C m-2 yr-1 (x 1000 = g C m-2 yr-1)"),
                        (abs(np.log(med * 379 / 700)), "umol m-2 s-1 of CO2 (x 379 = g C m-2 yr-1)")])
        unit = f"{units[0][1]}, or else {units[1][1]}"
        raise input_error(source, f"annual Rs must be in g C m-2 yr-1, but the median of "
                          f"{pos.size} values is {med:.3g}: the values look like {unit}",
                          column=_source_column(df, cfg, "rs"))
    lat = rec["lat"].to_numpy(dtype=float, na_value=np.nan)
    lon = rec["lon"].to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(lat) & np.isfinite(lon)
    with np.errstate(invalid="ignore"):
        swapped = ok & (np.abs(lat) > 90) & (np.abs(lon) <= 90)
    if ok.sum() >= 10 and swapped.sum() >= 0.25 * ok.sum():
        k = int(np.flatnonzero(swapped)[0])
        raise input_error(source, f"{int(swapped.sum())} of {int(ok.sum())} records have "
                          f"|latitude| > 90 with |longitude| <= 90: latitude and longitude "
                          f"columns look swapped", column=_source_column(df, cfg, "lat"),
                          value=float(lat[k]))


def _absent(s: pd.Series) -> bool:
    return bool(s.isna().all())


def _fmt(x: float) -> str:
    return f"{x:.6g}"


# --------------------------------------------------------------------------- selection
def select_observations(
    df: pd.DataFrame, cfg, years: tuple[int, int], *, source: str | Path
) -> FieldResult:
    """Apply the paper's selection rules, QC and averaging to SRDB or canonical records.

    ``df``: output of :func:`~soilresp.field.read_srdb` or
    :func:`~soilresp.field.read_mapped_table`; ``cfg``: :class:`soilresp.config.FieldConfig`;
    ``years``: first and last calendar year, inclusive; ``source``: the file (named in
    errors and recorded in ``meta``).

    Rules, in order (:data:`RULES`), each counted in ``FieldResult.cascade``. Records of one
    ``site_id``, year and vegetation type are averaged (mean Rs, g C m-2 yr-1, with the count
    and the source record numbers); different vegetation types at one site stay separate.
    Observations are sorted by site_id, year, vegetation; ``biome`` is 0 until
    :func:`~soilresp.field.assign_biomes`.

    Raises :class:`~soilresp.errors.InputError` when no record survives, naming the source
    and the rule that removed the last ones.
    """
    y0, y1 = (int(years[0]), int(years[1]))
    if y1 < y0:
        raise ConfigError(f"years must be [first, last] with first <= last, got {[y0, y1]}")
    bad_values = list(df.attrs.get(BAD_VALUES_KEY, []))
    rec = _canonical(df, source, getattr(cfg, "target", "Rs_annual"))
    _check_units_and_axes(df, rec, cfg, source)
    n = len(rec)
    rows = rec.index.to_numpy()
    row_pos = {r: k for k, r in enumerate(rows)}
    flags: list[tuple[int, str, str, str | None]] = []  # (position, flag, detail, rule)
    fails: dict[str, np.ndarray] = {}
    notes: dict[str, str] = {}

    # values_parseable --------------------------------------------------------------
    bad = np.zeros(n, bool)
    for p in bad_values:
        k = row_pos.get(p["row"])
        if k is None:
            continue
        where = f"column '{p['column']}': " if p["column"] else ""
        detail = f"{where}{p['problem']}" + (f" ({p['value']!r})" if p["value"] else "")
        if p.get("core"):
            bad[k] = True
            flags.append((k, "bad_value", detail, "values_parseable"))
        else:
            flags.append((k, "bad_value", detail + "; value ignored", None))
    fails["values_parseable"] = bad

    # rs_annual_present -----------------------------------------------------------------
    rs = rec["rs"].to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        fails["rs_annual_present"] = ~(np.isfinite(rs) & (rs > 0))
        for k in np.flatnonzero(np.isfinite(rs) & (rs <= 0)):
            flags.append((k, "rs_not_positive", f"Rs {_fmt(rs[k])} g C m-2 yr-1 <= 0",
                          "rs_annual_present"))

    # measurement_method ----------------------------------------------------------------
    accepted = {normalize_method(m) for m in cfg.methods} - {None}
    if not accepted:
        fails["measurement_method"] = np.zeros(n, bool)
        notes["measurement_method"] = "skipped: no methods configured"
    elif _absent(rec["method"]):
        fails["measurement_method"] = np.zeros(n, bool)
        notes["measurement_method"] = "skipped: no method column"
    else:
        ok = np.array([method_accepted(m, accepted) for m in rec["method"].tolist()], bool)
        fails["measurement_method"] = ~ok
        notes["measurement_method"] = "accepted: " + ", ".join(sorted(accepted))

    # no_manipulation ---------------------------------------------------------------------
    unmanip = {str(v).strip().casefold() for v in cfg.unmanipulated}
    if not unmanip:
        fails["no_manipulation"] = np.zeros(n, bool)
        notes["no_manipulation"] = "skipped: no 'unmanipulated' values configured"
    elif _absent(rec["manipulation"]):
        fails["no_manipulation"] = np.zeros(n, bool)
        notes["no_manipulation"] = "skipped: no manipulation column"
    else:
        man = rec["manipulation"].astype("string").str.strip().str.casefold()
        fails["no_manipulation"] = ~man.isin(unmanip).fillna(False).to_numpy(bool)
        notes["no_manipulation"] = "kept: Manipulation in " + ", ".join(
            repr(v) for v in cfg.unmanipulated
        )

    # quality_flags -------------------------------------------------------------------------
    excluded_codes = {parse_flag_code(c) for c in cfg.exclude_quality_flags}
    qf_fail = np.zeros(n, bool)
    for k, cell in enumerate(rec["quality_flag"].tolist()):
        codes, unknown = parse_quality_flags(cell)
        if unknown:
            flags.append((k, "quality_flag_unrecognised",
                          f"Quality_flag {cell!r}: token(s) {unknown} not a Q code", None))
        hit = codes & excluded_codes
        if hit:
            qf_fail[k] = True
    fails["quality_flags"] = qf_fail
    notes["quality_flags"] = (
        "excluded: " + ", ".join(f"Q{c:02d}" for c in sorted(excluded_codes))
        if excluded_codes else "skipped: no codes configured"
    )
    if _absent(rec["quality_flag"]) and excluded_codes:
        notes["quality_flags"] = "skipped: no quality flag column"

    # not_duplicate -------------------------------------------------------------------------
    fails["not_duplicate"] = np.array([is_duplicate(v) for v in rec["duplicate"].tolist()], bool)
    if _absent(rec["duplicate"]):
        notes["not_duplicate"] = "skipped: no duplicate column"

    # study_period ----------------------------------------------------------------------------
    year = calendar_year(rec["year"])
    yv = year.to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        fails["study_period"] = ~((yv >= y0) & (yv <= y1))
    notes["study_period"] = f"kept: floor(Study_midyear) in {y0}-{y1}"

    # ecosystem_type --------------------------------------------------------------------------
    drop_eco = {" ".join(str(e).split()).casefold() for e in cfg.exclude_ecosystems}
    eco = rec["vegetation"].astype("string").fillna("Unknown").str.split("/").str[0]
    fails["ecosystem_type"] = eco.str.strip().str.casefold().isin(drop_eco).to_numpy(bool)
    notes["ecosystem_type"] = (
        "excluded: " + ", ".join(cfg.exclude_ecosystems) if drop_eco else "skipped: none excluded"
    )

    # coordinates -----------------------------------------------------------------------------
    lat = rec["lat"].to_numpy(dtype=float, na_value=np.nan).copy()
    lon = rec["lon"].to_numpy(dtype=float, na_value=np.nan).copy()
    country = rec["country"]
    missing = ~(np.isfinite(lat) & np.isfinite(lon))
    rng = _qc.in_range(lat, lon)
    tol = float(cfg.country_tolerance_km)
    use_country = bool(cfg.country_check or cfg.fix_swapped_coordinates)
    if use_country:
        dist, known = _qc.country_distance(lat, lon, country)
    else:
        dist, known = np.full(n, np.nan), np.zeros(n, bool)
    with np.errstate(invalid="ignore"):
        remote = rng & known & (dist > tol)
    located = np.full(n, "", dtype=object)
    if remote.any():
        located[remote] = _c.locate(lat[remote], lon[remote])
    # far = inside another country's outline; outside every outline = cannot tell
    far = remote & (located != "")
    fixed = np.zeros(n, bool)
    names = country.astype("string").fillna("").tolist()
    for k in np.flatnonzero((~missing & ~rng) | remote):
        fix = (_qc.find_fix(lat[k], lon[k], names[k], tol, float(cfg.land_tolerance_deg))
               if known[k] else None)
        if fix is None:
            continue
        how, la, lo = fix
        if cfg.fix_swapped_coordinates:
            flags.append((k, "coordinates_fixed",
                          f"{how}: ({_fmt(lat[k])}, {_fmt(lon[k])}) -> ({_fmt(la)}, {_fmt(lo)}) "
                          f"lies in {names[k]}", "fixed"))
            lat[k], lon[k] = la, lo
            fixed[k] = True
        else:
            flags.append((k, "coordinates_suspect",
                          f"{how} would place ({_fmt(lat[k])}, {_fmt(lon[k])}) in {names[k]} "
                          "(set fix_swapped_coordinates = true to apply)", None))
    if fixed.any():
        rng = _qc.in_range(lat, lon)
        d2, _ = _qc.country_distance(lat[fixed], lon[fixed], country[fixed])
        dist[fixed] = d2
        with np.errstate(invalid="ignore"):
            remote = rng & known & (dist > tol)
        located[:] = ""
        if remote.any():
            located[remote] = _c.locate(lat[remote], lon[remote])
        far = remote & (located != "")
    for k in np.flatnonzero(missing):
        flags.append((k, "coordinates_missing", "latitude or longitude missing",
                      "coordinates_valid"))
    for k in np.flatnonzero(~missing & ~rng):
        flags.append((k, "coordinates_out_of_range",
                      f"lat {_fmt(lat[k])}, lon {_fmt(lon[k])} outside +-90/+-180",
                      "coordinates_valid"))
    fails["coordinates_valid"] = ~rng

    land = _qc.on_land(lat, lon, float(cfg.land_tolerance_deg))
    water = rng & ~land
    drop_coords = cfg.coordinate_qc == "drop"
    for k in np.flatnonzero(water):
        flags.append((k, "on_water",
                      f"({_fmt(lat[k])}, {_fmt(lon[k])}): no land within "
                      f"{cfg.land_tolerance_deg} deg", "coordinates_on_land" if drop_coords else None))
    fails["coordinates_on_land"] = water if drop_coords else np.zeros(n, bool)
    notes["coordinates_on_land"] = (
        f"{'dropped' if drop_coords else 'flagged only'}; {int(water.sum())} of all input "
        f"records on water (tolerance {cfg.land_tolerance_deg} deg)"
    )

    if cfg.country_check:
        table = _c.load_countries()
        for k in np.flatnonzero(far):
            flags.append((k, "far_from_country",
                          f"({_fmt(lat[k])}, {_fmt(lon[k])}) lies in {table[located[k]].name}, "
                          f"{dist[k]:.0f} km from {names[k]} (tolerance {tol:g} km)",
                          "coordinates_in_country" if drop_coords else None))
        island = remote & ~far & land  # on water: already flagged on_water
        for k in np.flatnonzero(island):
            flags.append((k, "country_unchecked",
                          f"({_fmt(lat[k])}, {_fmt(lon[k])}) is {dist[k]:.0f} km from {names[k]} "
                          "but inside no Natural Earth 1:110m outline (a small island they omit)",
                          None))
        named = np.array([bool(x.strip()) for x in names], bool)
        for k in np.flatnonzero(~known & rng & named):
            flags.append((k, "country_unchecked",
                          f"country {names[k]!r} not in the Natural Earth 1:110m outlines",
                          None))
        fails["coordinates_in_country"] = far if drop_coords else np.zeros(n, bool)
        notes["coordinates_in_country"] = (
            f"{'dropped' if drop_coords else 'flagged only'}; of all input records "
            f"{int(far.sum())} inside another country and farther than {tol:g} km from their own, "
            f"{int(island.sum() + (~known & rng & named).sum())} unchecked; "
            f"{int((~named & rng).sum())} without a country"
        )
    else:
        fails["coordinates_in_country"] = np.zeros(n, bool)
        notes["coordinates_in_country"] = "skipped: country_check = false"
    if fixed.any():
        notes["coordinates_valid"] = f"{int(fixed.sum())} swapped/sign-flipped coordinates fixed"

    # rs_plausible -----------------------------------------------------------------------------
    lo_rs, hi_rs = (float(v) for v in cfg.rs_range)
    with np.errstate(invalid="ignore"):
        implausible = np.isfinite(rs) & (rs > 0) & ((rs < lo_rs) | (rs > hi_rs))
    for k in np.flatnonzero(implausible):
        flags.append((k, "rs_implausible",
                      f"Rs {_fmt(rs[k])} g C m-2 yr-1 outside [{lo_rs:g}, {hi_rs:g}]",
                      "rs_plausible" if cfg.drop_implausible_rs else None))
    fails["rs_plausible"] = implausible if cfg.drop_implausible_rs else np.zeros(n, bool)
    notes["rs_plausible"] = (
        f"{'dropped' if cfg.drop_implausible_rs else 'flagged only'}: outside "
        f"[{lo_rs:g}, {hi_rs:g}] g C m-2 yr-1"
    )

    # cascade ----------------------------------------------------------------------------------
    alive = np.ones(n, bool)
    excluded_by = np.full(n, "", dtype=object)
    steps = [(0, "input", n, 0, RULES["input"])]
    first_empty = None
    for step, name in enumerate(list(RULES)[1:-1], start=1):
        removed = alive & fails[name]
        excluded_by[removed] = name
        alive &= ~fails[name]
        desc = RULES[name] + (f" [{notes[name]}]" if name in notes else "")
        steps.append((step, name, int(alive.sum()), int(removed.sum()), desc))
        if first_empty is None and not alive.any():
            first_empty = name

    # site ids and averaging ---------------------------------------------------------------------
    site_ids = rec["site_id"].astype("string").tolist()
    site_names = rec["site_name"].tolist()
    sid = np.full(n, None, dtype=object)
    for k in range(n):
        if not rng[k]:
            continue
        given = site_ids[k]
        if given is not None and given is not pd.NA and str(given).strip():
            sid[k] = str(given).strip()
        else:
            nm = site_names[k]
            sid[k] = make_site_id(lat[k], lon[k], None if nm is pd.NA else nm, cfg.site_decimals)

    veg = rec["vegetation"].astype("string").fillna("Unknown").tolist()
    records = pd.DataFrame(
        {
            "record_number": rec["record_number"].astype(str).to_numpy(),
            "row": rows,
            "excluded_by": excluded_by.astype(str),
            "site_id": pd.array(sid, dtype="string"),
            "year": year.array,
            "vegetation": veg,
            "lat": lat,
            "lon": lon,
            "rs": rs,
        }
    )

    if first_empty is not None:
        chain = " -> ".join(f"{s[1]} {s[2]}" for s in steps if s[3] or s[0] == 0)
        col = {"rs_annual_present": "rs", "study_period": "year", "rs_plausible": "rs",
               "coordinates_valid": "lat"}.get(first_empty)
        span = ""
        if first_empty == "study_period" and np.isfinite(yv).any():
            span = f"; the file's years span {int(np.nanmin(yv))}-{int(np.nanmax(yv))}"
        if n == 0:
            raise input_error(source, "the file has a header but no records")
        raise input_error(
            source,
            f"no field records remain after rule '{first_empty}' for {y0}-{y1} ({chain}{span}); "
            "check the [field] rules and the period",
            column=_source_column(df, cfg, col) if col else None,
        )

    kept = records[alive].copy()
    kept["year"] = kept["year"].astype("int64")
    site_xy = kept.groupby("site_id", sort=True)[["lat", "lon"]].mean()
    grouped = kept.groupby(["site_id", "year", "vegetation"], sort=True)
    obs = grouped.agg(
        rs=("rs", "mean"),
        n_records=("rs", "size"),
        record_numbers=("record_number", lambda s: ";".join(s)),
    ).reset_index()
    obs["lat"] = obs["site_id"].map(site_xy["lat"]).astype("float64")
    obs["lon"] = obs["site_id"].map(site_xy["lon"]).astype("float64")
    obs["biome"] = 0
    obs = obs[list(OBSERVATION_COLUMNS)]
    obs = obs.astype({k: (str if v == "str" else v) for k, v in OBSERVATION_COLUMNS.items()})
    obs = obs.sort_values(["site_id", "year", "vegetation"], kind="mergesort").reset_index(drop=True)

    n_sites = int(obs["site_id"].nunique())
    n_loc = int(
        obs[["lat", "lon"]].round(cfg.site_decimals).drop_duplicates().shape[0]
    )
    steps.append((
        len(RULES) - 1, "average_site_year_vegetation", len(obs), int(alive.sum()) - len(obs),
        f"{len(obs)} observations (site x year x vegetation) at {n_sites} sites "
        f"({n_loc} distinct locations at {cfg.site_decimals} decimals) from "
        f"{int(alive.sum())} records",
    ))
    cascade = pd.DataFrame(steps, columns=list(CASCADE_COLUMNS))

    # qc table -------------------------------------------------------------------------------------
    qc_rows = []
    rn = records["record_number"].to_numpy()
    for k, flag, detail, rule in flags:
        ex = excluded_by[k]
        if rule == "fixed":
            action = "fixed" if not ex else f"fixed; excluded_by:{ex}"
        elif rule is not None and ex == rule:
            action = "dropped"
        elif ex:
            action = f"excluded_by:{ex}"
        else:
            action = "kept"
        qc_rows.append((rn[k], int(rows[k]), flag, detail, action))
    qc = pd.DataFrame(qc_rows, columns=list(QC_COLUMNS))
    qc = qc.sort_values(["row", "flag"], kind="mergesort").reset_index(drop=True)
    qc = qc.astype({"record_number": str, "row": "int64", "flag": str, "detail": str,
                    "action": str})

    meta = {
        "source": str(source),
        "years": [y0, y1],
        "n_records": n,
        "n_kept_records": int(alive.sum()),
        "n_observations": len(obs),
        "n_sites": n_sites,
        "n_locations": n_loc,
        "encoding": df.attrs.get("soilresp_encoding"),
        "target": getattr(cfg, "target", "Rs_annual"),  # the flux in column 'rs'
    }
    meta.update(_source_meta(source))
    return FieldResult(observations=obs, cascade=cascade, qc=qc, records=records, meta=meta)


def _source_meta(source) -> dict:
    """Checksum of the source file and the SRDB release it matches (pinned table/manifest)."""
    from soilresp.field.fetch import identify_release

    p = Path(source)
    if not p.is_file():
        return {}
    from soilresp.io import file_sha256

    sha = file_sha256(p)
    out = {"source_sha256": sha}
    rel = identify_release(p, sha) or {}
    out["srdb_release"] = rel.get("release")  # None: not a known SRDB release
    out["srdb_url"] = rel.get("url")
    return out


def build_observations(cfg, years: tuple[int, int], *, base_dir: Path = Path(".")) -> FieldResult:
    """Read ``cfg.path`` (``cfg.format``: 'srdb' or 'table') and select observations.

    Relative paths are resolved against ``base_dir`` (the config file's folder). With
    ``bad_values = 'drop'`` a non-numeric value in a used column excludes its record
    instead of stopping with an error.
    """
    from soilresp.field.srdb import read_srdb
    from soilresp.field.table import read_mapped_table

    if cfg.path is None:
        raise ConfigError("[field] path is not set: point it at srdb-data.csv or your table "
                          "(`soilresp fetch srdb` downloads SRDB)")
    path = Path(cfg.path).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path
    strict = cfg.bad_values == "error"
    if cfg.format == "srdb":
        df = read_srdb(path, strict=strict)
    else:
        cols = dict(cfg.columns)
        if "rs" not in cols and getattr(cfg, "target", "Rs_annual") != "Rs_annual":
            cols["rs"] = cfg.target  # [field] target names the table's flux column
        df = read_mapped_table(path, cols, strict=strict)
    result = select_observations(df, cfg, years, source=path)
    result.meta["format"] = cfg.format
    return result
