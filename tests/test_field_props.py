"""Property tests (hypothesis) for the field reader: no input of the right shape crashes it
with anything but a documented error (:class:`soilresp.errors.SoilrespError`)."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from soilresp.config import config_from_dict
from soilresp.errors import SoilrespError
from soilresp.field import select_observations
from soilresp.field._read import parse_coordinate
from soilresp.field.srdb import SRDB_REQUIRED, read_srdb
from soilresp.field.table import read_mapped_table

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FIELD_CFG = config_from_dict({"field": {"country_check": False}}).field

cell = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "NA", "None", "nan", "inf", "-inf", "1e400", "12°30'S", "0", "-0",
                     "IRGA", "Gas chromatography", "Q10", "Q01, Q03", "Forest", '"', "a,b",
                     "line\nbreak", "\x00", "\ufeff"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**6, 10**6).map(str),
)


def _csv(header, rows) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8", "surrogatepass")


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_any_bytes_read_or_documented_error(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("b") / "srdb.csv"
    p.write_bytes(data)
    try:
        df = read_srdb(p)
    except SoilrespError as e:
        assert str(p) in str(e)
        return
    assert set(SRDB_REQUIRED) <= set(df.columns)


@SETTINGS
@example(rows=[[""] * 8 + ["9.223372036854776e+18"]], strict=False)   # found: Int64 overflow
@given(rows=st.lists(st.lists(cell, min_size=0, max_size=len(SRDB_REQUIRED) + 2), max_size=15),
       strict=st.booleans())
def test_srdb_shaped_text_reads_or_documented_error(tmp_path_factory, rows, strict):
    p = tmp_path_factory.mktemp("s") / "srdb.csv"
    try:
        p.write_bytes(_csv(list(SRDB_REQUIRED), rows))
    except UnicodeEncodeError:
        return
    try:
        df = read_srdb(p, strict=strict)
        res = select_observations(df, FIELD_CFG, (2000, 2014), source=p)
    except SoilrespError as e:
        assert str(p) in str(e) or "years" in str(e)
        return
    obs = res.observations
    assert obs["year"].between(2000, 2014).all()
    assert np.isfinite(obs["rs"]).all() and (obs["rs"] > 0).all()
    assert obs["lat"].between(-90, 90).all() and obs["lon"].between(-180, 180).all()


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                    st.integers(-10**5, 10**5))


@SETTINGS
@example(n=1, seed=0, lat=0.0, rs=0.0, year=9.223372036854776e18, fmt="csv")  # found: overflow
@given(n=st.integers(0, 25), seed=st.integers(0, 2**31 - 1),
       lat=numbers, rs=numbers, year=numbers, fmt=st.sampled_from(["csv", "parquet"]))
def test_tidy_table_reads_or_documented_error(tmp_path_factory, n, seed, lat, rs, year, fmt):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "latitude": rng.uniform(-95, 95, n), "longitude": rng.uniform(-185, 185, n),
        "yr": rng.integers(1990, 2020, n).astype(float), "flux": rng.uniform(-100, 6000, n),
        "method": rng.choice(["IRGA", "Gas chromatography", "Other"], n),
    })
    if n:  # one extreme value of each kind
        df.loc[0, "latitude"], df.loc[n - 1, "flux"], df.loc[n // 2, "yr"] = lat, rs, year
    d = tmp_path_factory.mktemp("t")
    p = d / f"obs.{fmt}"
    df.to_csv(p, index=False) if fmt == "csv" else df.to_parquet(p)
    cols = {"lat": "latitude", "lon": "longitude", "year": "yr", "rs": "flux"}
    try:
        tab = read_mapped_table(p, cols)
        res = select_observations(tab, FIELD_CFG, (2000, 2014), source=p)
    except SoilrespError as e:
        assert str(p) in str(e)
        return
    assert len(res.observations) > 0
    assert np.isfinite(res.observations["rs"]).all()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_parse_coordinate_never_raises(text):
    x = parse_coordinate(text)
    assert isinstance(x, float)
    assert math.isnan(x) or math.isfinite(x)


def _fmt(x: float, style: int) -> str:
    return (repr(x), f"{x:e}", f"{x:.6E}", f"{x:g}")[style]


@SETTINGS
@given(recs=st.lists(st.tuples(
    st.floats(1.0, 5000.0), st.integers(0, 3), st.floats(-60, 80), st.floats(-179, 179),
    st.lists(st.integers(1, 20000), max_size=3), st.sampled_from([",", ", ", ";", " "]),
    st.sampled_from(["", " ", "  ", "\t"]), st.integers(0, 3)), min_size=1, max_size=8))
def test_real_release_formats_read_exactly(tmp_path_factory, recs):
    """Formats real SRDB releases contain: exponent notation, stray whitespace around values,
    list-valued Duplicate_record ("8,618"), empty trailing columns. Values come back exact."""
    header = list(SRDB_REQUIRED) + ["", ""]
    rows = []
    for k, (rs, style, lat, lon, dups, sep, pad, extra) in enumerate(recs):
        r = {"Record_number": str(k + 1), "Study_midyear": pad + "2005.5" + pad,
             "Latitude": pad + _fmt(lat, style), "Longitude": _fmt(lon, style) + pad,
             "Rs_annual": pad + _fmt(rs, style) + pad, "Meas_method": "IRGA", "Manipulation": "None",
             "Quality_flag": "", "Duplicate_record": sep.join(map(str, dups)), "Ecosystem_type": "Forest"}
        rows.append([r[h] for h in SRDB_REQUIRED] + [""] * (2 + extra))
    p = tmp_path_factory.mktemp("r") / "srdb.csv"
    p.write_bytes(_csv(header, rows))
    df = read_srdb(p)
    for k, (rs, style, lat, lon, dups, *_) in enumerate(recs):
        assert df["Rs_annual"].iloc[k] == float(_fmt(rs, style))
        assert df["Latitude"].iloc[k] == float(_fmt(lat, style))
        got = df["Duplicate_record"].iloc[k]
        assert (got if got is not pd.NA else "") == ",".join(map(str, dups))


@SETTINGS
@given(bad=st.sampled_from(["8,x", "dup of 8", "8..6", "1e3,4"]), col=st.sampled_from(["Duplicate_record", "Rs_annual"]))
def test_bad_value_still_names_row_and_column(tmp_path_factory, bad, col):
    import pytest

    r = {"Record_number": "1", "Study_midyear": "2005.5", "Latitude": "45", "Longitude": "10",
         "Rs_annual": "800", "Meas_method": "IRGA", "Manipulation": "None", "Quality_flag": "",
         "Duplicate_record": "", "Ecosystem_type": "Forest"}
    r[col] = bad if col == "Duplicate_record" else bad.replace(",", "x")
    p = tmp_path_factory.mktemp("b") / "srdb.csv"
    p.write_bytes(_csv(list(SRDB_REQUIRED), [[r[h] for h in SRDB_REQUIRED]]))
    with pytest.raises(SoilrespError, match=rf"row 2.*{col}|{col}.*row 2"):
        read_srdb(p)
