"""Reader for the Soil Respiration Database (SRDB) ``srdb-data.csv``.

SRDB: Bond-Lamberty & Thomson (2010), Biogeosciences 7:1321-1344, github.com/bpbond/srdb
(MIT licence). Column names, units and types follow ``srdb-data_fields.txt``; the traps
handled here are documented in ``expanded_field_notes.txt`` and ``docs/field.md``:

* ``Manipulation == "None"`` is text meaning "no manipulation" and is kept as text;
* ``Study_midyear`` X.5 is the middle of calendar year X (converted later, see
  :func:`soilresp.field.rules.calendar_year`);
* ``Quality_flag`` cells may hold several codes ("Q01, Q03"), parsed by the rules;
* ``Latitude``/``Longitude`` may be decimal or degrees-minutes-seconds;
* files may be UTF-8, Windows-1252 or latin-1, with LF, CRLF or CR line endings
  (``srdb-studies.csv`` is latin-1 with CR line endings).

Used by Huang et al. 2020, Methods: field data ("annual Rs from the global SRDB").
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from soilresp.errors import input_error
from soilresp.field._read import (
    BAD_VALUES_KEY,
    ENCODING_KEY,
    columns_from_rows,
    read_csv_text,
    to_numeric,
    to_text,
)

_I, _F, _S = "Int64", "float64", "string"

#: The 85 columns of ``srdb-data.csv`` in file order, with their pandas dtype
#: (``srdb-data_fields.txt``; units there, e.g. Rs_annual in g C m-2 yr-1).
#: ``Record_number`` is text: v20200220 has records "3905.1" and "3905.2".
#: ``Duplicate_record`` is text: a list of the record numbers duplicated ("8,618" in real
#: releases), checked by :func:`record_list`.
SRDB_COLUMNS: dict[str, str] = {
    # record metadata
    "Record_number": _S, "Entry_date": _S, "Study_number": _I, "Author": _S,
    "Duplicate_record": _S, "Quality_flag": _S, "Contributor": _S,
    # site data
    "Country": _S, "Region": _S, "Site_name": _S, "Site_ID": _S, "Study_midyear": _F,
    "YearsOfData": _F, "Latitude": _F, "Longitude": _F, "Elevation": _F,
    "Manipulation": _S, "Manipulation_level": _S, "Age_ecosystem": _F,
    "Age_disturbance": _F, "Species": _S, "Biome": _S, "Ecosystem_type": _S,
    "Ecosystem_state": _S, "Leaf_habit": _S, "Stage": _S, "Soil_type": _S,
    "Soil_drainage": _S, "Soil_BD": _F, "Soil_CN": _F, "Soil_sand": _F, "Soil_silt": _F,
    "Soil_clay": _F, "MAT": _F, "MAP": _F, "PET": _F, "Study_temp": _F, "Study_precip": _F,
    # measurement data
    "Meas_method": _S, "Collar_height": _F, "Collar_depth": _F, "Chamber_area": _F,
    "Time_of_day": _S, "Meas_interval": _F, "Annual_coverage": _F, "Partition_method": _S,
    # annual and seasonal fluxes
    "Rs_annual": _F, "Rs_annual_err": _F, "Rs_interann_err": _F, "Rlitter_annual": _F,
    "Ra_annual": _F, "Rh_annual": _F, "RC_annual": _F, "Rs_spring": _F, "Rs_summer": _F,
    "Rs_autumn": _F, "Rs_winter": _F, "Rs_growingseason": _F, "Rs_wet": _F, "Rs_dry": _F,
    "RC_seasonal": _F, "RC_season": _S,
    # ancillary pools and fluxes
    "GPP": _F, "ER": _F, "NEP": _F, "NPP": _F, "ANPP": _F, "BNPP": _F, "NPP_FR": _F,
    "TBCA": _F, "Litter_flux": _F, "Rootlitter_flux": _F, "TotDet_flux": _F, "Ndep": _F,
    "LAI": _F, "BA": _F, "C_veg_total": _F, "C_AG": _F, "C_BG": _F, "C_CR": _F, "C_FR": _F,
    "C_litter": _F, "C_soilmineral": _F, "C_soildepth": _F, "Notes": _S,
}
assert len(SRDB_COLUMNS) == 85

#: Columns the selection rules need; a file without one of them is rejected.
SRDB_REQUIRED: tuple[str, ...] = (
    "Record_number", "Study_midyear", "Latitude", "Longitude", "Rs_annual", "Meas_method",
    "Manipulation", "Quality_flag", "Duplicate_record", "Ecosystem_type",
)
#: Numeric columns the rules use: a non-numeric value there is an error (or, with
#: ``strict=False``, excludes the record). Elsewhere it only becomes missing.
SRDB_CORE_NUMERIC: tuple[str, ...] = (
    "Study_midyear", "Latitude", "Longitude", "Rs_annual",
)
_RECORD_SEP = re.compile(r"[,;\s]+")


def record_list(path: Path, name: str, values: list[str], rows: list[int], *, strict: bool,
                problems: list[dict]) -> pd.Series:
    """``Duplicate_record`` cells as text: empty, or record numbers (integers, or SRDB's
    "3905.1"-style numbers) separated by commas, semicolons or spaces, written back as
    "8,618". Anything else is an error naming the row and column (or, ``strict=False``, a
    bad value that excludes the record)."""
    out = []
    for k, v in enumerate(values):
        t = v.strip().strip('"').strip()
        if t.casefold() in ("", "na", "nan"):
            out.append("")
            continue
        parts = [p for p in _RECORD_SEP.split(t) if p]
        ok = all(re.fullmatch(r"\d+(?:\.\d+)?", p) for p in parts)
        if not ok:
            msg = "not a record number or a list of them"
            if strict:
                raise input_error(path, msg, row=rows[k], column=name, value=v)
            problems.append({"row": rows[k], "column": name, "value": v, "problem": msg})
            out.append("")
            continue
        out.append(",".join(parts))
    return to_text(out)


def read_srdb(path: str | Path, *, strict: bool = True) -> pd.DataFrame:
    """Read SRDB ``srdb-data.csv`` with every one of the 85 columns typed (:data:`SRDB_COLUMNS`).

    Returns one row per record, index ``row`` = the file line where the record starts
    (header = 1). Text stays text (``"None"`` is not missing); numeric cells that are empty
    or ``NA`` are missing. Columns of :data:`SRDB_COLUMNS` absent from the file are added
    empty (older and newer releases differ a little); extra columns are kept as text.

    Raises :class:`~soilresp.errors.InputError` (one line naming the file, row and column)
    for a missing required column, a malformed record or a non-numeric value in a column
    the rules use (:data:`SRDB_CORE_NUMERIC`). Non-numeric values in other numeric columns
    (real SRDB v20200220 has ``Rh_annual = "293. 67"``) become missing and, like core
    values when ``strict=False``, are listed in ``df.attrs["soilresp_bad_values"]`` so the
    QC table reports them.
    """
    path = Path(path)
    header, rows, starts, encoding = read_csv_text(path)
    problems: list[dict] = []
    cols, problems = columns_from_rows(path, header, rows, starts, strict=strict)
    missing = [c for c in SRDB_REQUIRED if c not in cols]
    if missing:
        import difflib

        near = difflib.get_close_matches(missing[0], [h for h in cols if h not in SRDB_COLUMNS],
                                         n=1, cutoff=0.7)
        hint = f"; the file has {near[0]!r} (renamed?)" if near else ""
        raise input_error(
            path,
            f"required SRDB column missing{hint} (is this srdb-data.csv? for another table use "
            "format = 'table' with a column mapping)",
            column=missing[0],
        )
    out: dict[str, pd.Series] = {}
    n = len(starts)
    for name, dtype in SRDB_COLUMNS.items():
        values = cols.get(name, [""] * n)
        if name == "Duplicate_record":
            out[name] = record_list(path, name, values, starts, strict=strict, problems=problems)
            continue
        if dtype == _S:
            out[name] = to_text(values)
            continue
        core = name in SRDB_CORE_NUMERIC
        out[name] = to_numeric(
            path, name, values, starts,
            strict=strict and core,
            integer=dtype == _I,
            coordinate=name in ("Latitude", "Longitude"),
            problems=problems,
        )
    for name, values in cols.items():
        if name not in SRDB_COLUMNS:
            out[name] = to_text(values)
    df = pd.DataFrame(out)
    df.index = pd.Index(starts, name="row", dtype="int64")
    for p in problems:
        col = p["column"]
        p["core"] = col in SRDB_CORE_NUMERIC or col in ("", "Duplicate_record") or col.startswith("#")
    df.attrs[BAD_VALUES_KEY] = problems
    df.attrs[ENCODING_KEY] = encoding
    return df


def read_srdb_studies(path: str | Path) -> pd.DataFrame:
    """Read SRDB ``srdb-studies.csv`` (all columns as text; index ``row``).

    The released file is latin-1/Mac text with CR line endings; both are handled.
    ``Study_number`` is converted to ``Int64`` when present, to join with ``srdb-data``.
    """
    path = Path(path)
    header, rows, starts, encoding = read_csv_text(path)
    cols, _ = columns_from_rows(path, header, rows, starts, strict=False)
    df = pd.DataFrame({k: to_text(v) for k, v in cols.items()})
    df.index = pd.Index(starts, name="row", dtype="int64")
    if "Study_number" in df:
        df["Study_number"] = to_numeric(
            path, "Study_number", cols["Study_number"], starts, strict=True, integer=True,
            problems=[],
        ).array
    df.attrs[ENCODING_KEY] = encoding
    return df
