"""Low-level table reading shared by the SRDB and the generic readers.

Cells are read as text with the :mod:`csv` module, so nothing is guessed: the SRDB value
``"None"`` (no manipulation) stays the string ``"None"`` (pandas' defaults would make it
missing), and every record keeps the line number where it starts in the file, which error
messages and the QC table quote as its ``row`` (the header is row 1).
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from soilresp.errors import input_error

#: text that means "no value" in a numeric column (SRDB leaves cells empty; R writes NA)
NUMERIC_NA = frozenset({"", "na", "nan", "n/a", "null", "-", "--"})
#: encodings tried in turn; latin-1 accepts any byte so it always ends the search
ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
#: pandas attrs key holding the values that could not be parsed (list of dicts)
BAD_VALUES_KEY = "soilresp_bad_values"
#: pandas attrs key holding the text encoding a CSV was decoded with
ENCODING_KEY = "soilresp_encoding"


def decode(path: Path, data: bytes) -> tuple[str, str]:
    """Decode file bytes: UTF-8 (with or without BOM), else Windows-1252, else latin-1."""
    for enc in ENCODINGS:
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise input_error(path, "cannot decode the text")  # pragma: no cover - latin-1 never fails


def read_csv_text(path: Path) -> tuple[list[str], list[list[str]], list[int], str]:
    """Read a CSV as text cells.

    Returns ``(header, rows, row_numbers, encoding)``. Line endings may be LF, CRLF or CR
    (the SRDB studies table uses CR). Blank lines are skipped. ``row_numbers`` holds the
    line where each record starts (header = 1), correct also for quoted multi-line cells.
    """
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "file not found")
    data = path.read_bytes()
    if not data.strip():
        raise input_error(path, "file is empty")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (
            len(data) > 64 and data[1:64:2].count(0) > 28 and data[0:64:2].count(0) < 4):
        raise input_error(path, "text is UTF-16 encoded; save it as UTF-8 (or Windows-1252) CSV")
    if b"\x00" in data[:4096] or data[:2] == b"\x1f\x8b" or data[:4] == b"PK\x03\x04":
        kind = {b"\x1f\x8b": " (gzip: decompress it first)", b"PK": " (zip: extract it first)"}
        raise input_error(path, "not a text CSV file (binary content)" + kind.get(data[:2], ""))
    text, encoding = decode(path, data)
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    header: list[str] | None = None
    rows: list[list[str]] = []
    starts: list[int] = []
    try:
        line = 1
        for rec in reader:
            start, line = line, reader.line_num + 1
            if not any(c.strip() for c in rec):
                continue
            if header is None:
                header = [c.strip() for c in rec]
                continue
            rows.append(rec)
            starts.append(start)
    except csv.Error as e:
        raise input_error(path, f"not a readable CSV: {e}", row=reader.line_num) from None
    if header is None:
        raise input_error(path, "file has no header line")
    if text.count('"') % 2:
        raise input_error(path, "the file ends inside a quoted cell (truncated, or an unclosed "
                          "quote)", row=starts[-1] if starts else 1)
    if rows and not text.endswith(("\n", "\r")) and len(rows[-1]) < len(header):
        raise input_error(path, f"the last record has {len(rows[-1])} of {len(header)} fields and "
                          "no line end: the file looks truncated", row=starts[-1])
    if len(header) == 1:
        for sep, what in ((";", "';' (semicolon)"), ("\t", "tab"), ("|", "'|'")):
            if sep in header[0]:
                raise input_error(path, f"not comma-separated: the header is separated by {what}; "
                                  "save the file as CSV with ','")
    return header, rows, starts, encoding


def columns_from_rows(
    path: Path, header: list[str], rows: list[list[str]], starts: list[int], *, strict: bool
) -> tuple[dict[str, list[str]], list[dict]]:
    """Arrange text rows into columns, checking the header and the field counts.

    Unnamed header cells (SRDB's header ends with ``,,,,``) are accepted when their cells
    are all empty. A record with more non-empty fields than the header is an error naming
    its row, or (``strict=False``) a bad value that excludes the record.
    """
    named = [(i, h) for i, h in enumerate(header) if h]
    seen: set[str] = set()
    for _, h in named:
        if h in seen:
            raise input_error(path, "column name appears twice in the header", column=h)
        seen.add(h)
    n_head = len(header)
    unnamed = [i for i, h in enumerate(header) if not h]
    problems: list[dict] = []
    cols: dict[str, list[str]] = {h: [] for _, h in named}
    for rec, row in zip(rows, starts):
        if len(rec) > n_head and any(c.strip() for c in rec[n_head:]):
            msg = f"record has {len(rec)} fields but the header has {n_head}"
            if strict:
                raise input_error(path, msg, row=row)
            problems.append({"row": row, "column": "", "value": "", "problem": msg})
        for i in unnamed:
            if i < len(rec) and rec[i].strip():
                msg = "value in a column with no name in the header"
                if strict:
                    raise input_error(path, msg, row=row, column=f"#{i + 1}", value=rec[i])
                problems.append({"row": row, "column": f"#{i + 1}", "value": rec[i], "problem": msg})
        for i, h in named:
            cols[h].append(rec[i].strip() if i < len(rec) else "")
    return cols, problems


_DMS = re.compile(
    r"""^\s*(?P<sign>[-+])?\s*(?P<deg>\d+(?:\.\d+)?)\s*(?:°|º|d|:|\s)\s*
    (?:(?P<min>\d+(?:\.\d+)?)\s*(?:'|′|m|:|\s)?\s*)?
    (?:(?P<sec>\d+(?:\.\d+)?)\s*(?:"|″|''|s)?\s*)?(?P<hemi>[NSEWnsew])?\s*$""",
    re.VERBOSE,
)
_DEC_HEMI = re.compile(r"^\s*(?P<num>[-+]?\d+(?:\.\d+)?)\s*°?\s*(?P<hemi>[NSEWnsew])\s*$")


def parse_coordinate(text: str) -> float:
    """Decimal degrees from decimal or degrees-minutes-seconds text; NaN if not parseable.

    SRDB's README (changelog 20180215) says ``Latitude``/``Longitude`` may be decimal or
    d-m-s. Accepted: ``-12.5``, ``12.5S``, ``12°30'S``, ``12 30 00 S``, ``12:30:00``.
    """
    try:
        x = float(text)
        return x if math.isfinite(x) else math.nan
    except ValueError:
        pass
    m = _DEC_HEMI.match(text)
    if m:
        v = float(m["num"])
        return -abs(v) if m["hemi"].upper() in "SW" else v
    m = _DMS.match(text)
    if not m:
        return math.nan
    v = float(m["deg"]) + float(m["min"] or 0) / 60 + float(m["sec"] or 0) / 3600
    if m["min"] and float(m["min"]) >= 60 or m["sec"] and float(m["sec"]) >= 60:
        return math.nan
    if m["sign"] == "-" or (m["hemi"] and m["hemi"].upper() in "SW"):
        v = -v
    return v


def to_numeric(
    path: Path,
    name: str,
    values: list[str],
    rows: list[int],
    *,
    strict: bool,
    integer: bool = False,
    coordinate: bool = False,
    problems: list[dict],
) -> pd.Series:
    """Convert text cells to float64 (or nullable Int64).

    Empty cells and :data:`NUMERIC_NA` become missing. Anything else that is not a number
    raises an :class:`~soilresp.errors.InputError` naming file, row and column when
    ``strict``; otherwise it becomes missing and is appended to ``problems``.
    """
    out = np.full(len(values), np.nan)
    for k, v in enumerate(values):
        if v.casefold() in NUMERIC_NA:
            continue
        x = parse_coordinate(v) if coordinate else _float(v)
        # integers must be exact in float64 (|x| < 2**53), else the Int64 cast overflows
        if math.isnan(x) or (integer and not (float(x).is_integer() and abs(x) < 2**53)):
            what = "an integer" if integer else "a number"
            if strict:
                raise input_error(path, f"not {what}", row=rows[k], column=name, value=v)
            problems.append(
                {"row": rows[k], "column": name, "value": v, "problem": f"not {what}"}
            )
            continue
        out[k] = x
    s = pd.Series(out, dtype="float64")
    return s.astype("Int64") if integer else s


def _float(v: str) -> float:
    try:
        x = float(v)
    except ValueError:
        return math.nan
    return x if math.isfinite(x) else math.nan


def to_text(values: list[str]) -> pd.Series:
    """Text cells as pandas ``string`` dtype; only empty cells are missing ("None" stays)."""
    s = pd.Series(values, dtype="string")
    return s.mask(s == "")
