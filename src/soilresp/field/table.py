"""The canonical record table that the selection rules work on, and the generic reader.

Both readers end in the same form: :func:`srdb_to_canonical` turns the typed SRDB table
into it, :func:`read_mapped_table` builds it from any CSV/Parquet with a column mapping
(``[field] columns`` in the run configuration). One record per row, index ``row`` (file
line, header = 1; Parquet: record number from 1), columns :data:`CANONICAL_COLUMNS`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
from soilresp.field.rules import vegetation_label

#: canonical record columns -> dtype. Units: lat/lon decimal degrees (WGS84, north/east
#: positive); year = study year as given (SRDB Study_midyear; the rules take the floor);
#: rs = annual soil respiration, g C m-2 yr-1.
CANONICAL_COLUMNS: dict[str, str] = {
    "record_number": "string",
    "site_id": "string",
    "site_name": "string",
    "lat": "float64",
    "lon": "float64",
    "country": "string",
    "year": "float64",
    "rs": "float64",
    "vegetation": "string",
    "method": "string",
    "manipulation": "string",
    "quality_flag": "string",
    "duplicate": "string",
}
#: canonical columns a mapped table must provide
REQUIRED_MAPPED: tuple[str, ...] = ("lat", "lon", "year", "rs")
_NUMERIC = ("lat", "lon", "year", "rs")


def is_canonical(df: pd.DataFrame) -> bool:
    return all(c in df.columns for c in CANONICAL_COLUMNS)


def is_srdb(df: pd.DataFrame) -> bool:
    return "Rs_annual" in df.columns and "Latitude" in df.columns


def _text(s: pd.Series) -> pd.Series:
    return s.astype("string").str.strip().replace("", pd.NA)


def srdb_to_canonical(df: pd.DataFrame, target: str = "Rs_annual") -> pd.DataFrame:
    """Canonical records from a :func:`~soilresp.field.read_srdb` table.

    ``rs`` holds the ``target`` column (``[field] target``: ``Rs_annual``, ``Rh_annual``,
    ``Ra_annual``; g C m-2 yr-1), see :mod:`soilresp.targets`.

    ``vegetation`` = ``Ecosystem_type`` + ``/Leaf_habit`` (see
    :func:`~soilresp.field.rules.vegetation_label`); ``duplicate`` = ``Duplicate_record``
    (the study number a record duplicates, as text); ``record_number`` = ``Record_number``.
    """
    n = len(df)
    idx = df.index if df.index.name == "row" else pd.RangeIndex(2, n + 2, name="row")
    rn = df["Record_number"].astype("string").str.strip() if "Record_number" in df else None
    if rn is None:
        rn = pd.Series([f"row{r}" for r in idx], dtype="string", index=df.index)
    else:
        rn = rn.where(rn.notna(), pd.Series([f"row{r}" for r in idx], index=df.index, dtype="string"))

    def col(name):
        return df[name] if name in df else pd.Series([pd.NA] * n, index=df.index, dtype="string")

    veg = [
        vegetation_label(e, h)
        for e, h in zip(col("Ecosystem_type").tolist(), col("Leaf_habit").tolist())
    ]
    out = pd.DataFrame(
        {
            "record_number": rn.to_numpy(),
            "site_id": pd.array([pd.NA] * n, dtype="string"),
            "site_name": _text(col("Site_name")).to_numpy(),
            "lat": pd.to_numeric(df["Latitude"], errors="coerce").astype("float64").to_numpy(),
            "lon": pd.to_numeric(df["Longitude"], errors="coerce").astype("float64").to_numpy(),
            "country": _text(col("Country")).to_numpy(),
            "year": pd.to_numeric(df["Study_midyear"], errors="coerce").astype("float64").to_numpy(),
            "rs": pd.to_numeric(df[target], errors="coerce").astype("float64").to_numpy(),
            "vegetation": pd.array(veg, dtype="string"),
            "method": _text(col("Meas_method")).to_numpy(),
            "manipulation": _text(col("Manipulation")).to_numpy(),
            "quality_flag": _text(col("Quality_flag")).to_numpy(),
            "duplicate": col("Duplicate_record").astype("string").to_numpy(),
        },
        index=pd.Index(np.asarray(idx), name="row"),
    )
    out = out.astype(CANONICAL_COLUMNS)
    out.attrs = dict(df.attrs)
    return out


def _resolve_mapping(path: Path, available: list[str], columns: dict[str, str]) -> dict[str, str]:
    """canonical name -> file column, checking that every mapped column exists."""
    unknown = sorted(set(columns) - set(CANONICAL_COLUMNS))
    if unknown:
        raise input_error(path, f"unknown canonical name in the column mapping: {unknown[0]!r} "
                          f"(known: {', '.join(CANONICAL_COLUMNS)})")
    mapping: dict[str, str] = {}
    for name in CANONICAL_COLUMNS:
        if name in columns:
            if columns[name] not in available:
                raise input_error(path, f"mapped column for '{name}' not found in the file",
                                  column=columns[name])
            mapping[name] = columns[name]
        elif name in available:
            mapping[name] = name
    for name in REQUIRED_MAPPED:
        if name not in mapping:
            raise input_error(
                path,
                f"required column missing (map it with [field] columns.{name} = \"...\")",
                column=name,
            )
    return mapping


def _read_parquet_text(path: Path) -> tuple[list[str], dict[str, list[str]], list[int], dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise input_error(path, f"not a readable Parquet file: {e}") from None
    df = table.to_pandas()
    rows = list(range(1, len(df) + 1))
    numeric = {c: df[c] for c in df.columns if pd.api.types.is_numeric_dtype(df[c])}
    cols = {
        c: ["" if (v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))) else str(v)
            for v in df[c].tolist()]
        for c in df.columns
    }
    return [str(c) for c in df.columns], cols, rows, numeric


def read_mapped_table(
    path: str | Path, columns: dict[str, str], *, strict: bool = True
) -> pd.DataFrame:
    """Read any CSV or Parquet table of annual Rs records into the canonical form.

    ``columns`` maps canonical names (:data:`CANONICAL_COLUMNS`) to the file's column
    names; a canonical name that is not mapped is taken from a file column of the same name
    when there is one. ``lat``, ``lon``, ``year`` and ``rs`` (g C m-2 yr-1) are required;
    a rule whose column is absent is skipped and says so in the cascade. Without
    ``record_number`` records are numbered by their row. CSV text may be UTF-8,
    Windows-1252 or latin-1 with any line endings; ``"None"`` stays text.

    Raises :class:`~soilresp.errors.InputError` naming the file, row and column for a
    missing column or (``strict``) a non-numeric lat/lon/year/rs; with ``strict=False``
    such records are kept for the ``values_parseable`` rule to drop and the QC table to list.
    """
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "file not found")
    problems: list[dict] = []
    numeric_native: dict[str, pd.Series] = {}
    encoding = None
    if path.suffix.lower() in (".parquet", ".pq"):
        header, cols, rows, numeric_native = _read_parquet_text(path)
    else:
        header, text_rows, rows, encoding = read_csv_text(path)
        cols, problems = columns_from_rows(path, header, text_rows, rows, strict=strict)
        header = list(cols)
    mapping = _resolve_mapping(path, header, columns)
    n = len(rows)
    data: dict[str, object] = {}
    for name, dtype in CANONICAL_COLUMNS.items():
        src = mapping.get(name)
        if src is None:
            data[name] = pd.array([pd.NA] * n, dtype=dtype if dtype == "string" else "Float64")
            continue
        if name in _NUMERIC:
            if src in numeric_native:
                data[name] = numeric_native[src].astype("float64").to_numpy()
            else:
                data[name] = to_numeric(
                    path, src, cols[src], rows, strict=strict,
                    coordinate=name in ("lat", "lon"), problems=problems,
                ).to_numpy()
        else:
            data[name] = to_text(cols[src]).to_numpy()
    df = pd.DataFrame(data, index=pd.Index(rows, name="row", dtype="int64"))
    if "record_number" not in mapping:
        df["record_number"] = [str(r) for r in rows]
    rn = df["record_number"].astype("string")
    df["record_number"] = rn.where(rn.notna(), pd.Series([f"row{r}" for r in rows], index=df.index))
    if "vegetation" in mapping:
        df["vegetation"] = [
            "Unknown" if v is pd.NA or v is None else " ".join(str(v).split())
            for v in df["vegetation"].tolist()
        ]
    else:
        df["vegetation"] = "Unknown"
    df = df.astype(CANONICAL_COLUMNS)
    core_src = {mapping[c] for c in _NUMERIC}
    for p in problems:
        p["core"] = p["column"] in core_src or p["column"] == "" or p["column"].startswith("#")
    df.attrs[BAD_VALUES_KEY] = problems
    df.attrs["soilresp_mapping"] = mapping
    if encoding:
        df.attrs[ENCODING_KEY] = encoding
    return df
