"""Readers of soilresp.field: SRDB traps, encodings, malformed input, the generic mapped table."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soilresp.errors import InputError
from soilresp.field import (
    SRDB_COLUMNS,
    read_mapped_table,
    read_srdb,
    read_srdb_studies,
)
from soilresp.field.rules import (
    calendar_year,
    make_site_id,
    method_accepted,
    normalize_leaf_habit,
    normalize_method,
    parse_quality_flags,
    vegetation_label,
)

HEADER = list(SRDB_COLUMNS)
#: the columns the synthetic world fills (issue 4 acceptance)
BASE = dict(
    Record_number="1", Study_number="10", Site_name="Harvard Forest", Latitude="42.54",
    Longitude="-72.17", Country="USA", Biome="Temperate", Ecosystem_type="Forest",
    Leaf_habit="Deciduous", Study_midyear="2005.5", YearsOfData="1", Manipulation="None",
    Meas_method="IRGA", Rs_annual="800", Quality_flag="", Duplicate_record="",
)


def srdb_text(records, header=HEADER, trailing=",,,,", newline="\n") -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=newline)
    w.writerow(list(header) + ([""] * trailing.count(",") if trailing else []))
    for k, r in enumerate(records, start=1):
        row = {**BASE, "Record_number": str(k), **r}
        w.writerow([row.get(h, "") for h in header] + ([""] * trailing.count(",") if trailing else []))
    return buf.getvalue()


def write_srdb(path: Path, records, encoding="utf-8", **kw) -> Path:
    path.write_bytes(srdb_text(records, **kw).encode(encoding))
    return path


# ------------------------------------------------------------------ SRDB reader
def test_srdb_columns_are_the_85_documented_fields():
    assert len(SRDB_COLUMNS) == 85
    assert HEADER[0] == "Record_number" and HEADER[-1] == "Notes"
    assert SRDB_COLUMNS["Rs_annual"] == "float64"
    assert SRDB_COLUMNS["Manipulation"] == "string"
    assert SRDB_COLUMNS["Study_number"] == "Int64"


def test_read_srdb_types_every_column(tmp_path):
    df = read_srdb(write_srdb(tmp_path / "srdb-data.csv", [{}, {"Rs_annual": "650.5"}]))
    assert list(df.columns) == HEADER
    for name, dtype in SRDB_COLUMNS.items():
        assert str(df[name].dtype) == dtype, name
    assert df.index.name == "row" and list(df.index) == [2, 3]
    assert df["Rs_annual"].tolist() == [800.0, 650.5]


def test_none_manipulation_is_text_not_missing(tmp_path):
    df = read_srdb(write_srdb(tmp_path / "s.csv", [{"Manipulation": "None"}, {"Manipulation": ""}]))
    assert df["Manipulation"].iloc[0] == "None"
    assert df["Manipulation"].isna().tolist() == [False, True]
    # pandas' defaults would have turned it into NaN - the trap this reader avoids
    assert pd.read_csv(tmp_path / "s.csv")["Manipulation"].isna().all()


def test_other_na_like_text_stays_text(tmp_path):
    df = read_srdb(write_srdb(tmp_path / "s.csv", [{"Site_name": "NA"}, {"Notes": "null"}]))
    assert df["Site_name"].iloc[0] == "NA" and df["Notes"].iloc[1] == "null"


def test_record_number_is_text_because_srdb_has_3905_1(tmp_path):
    df = read_srdb(write_srdb(tmp_path / "s.csv", [{"Record_number": "3905"},
                                                      {"Record_number": "3905.1"}]))
    assert df["Record_number"].tolist() == ["3905", "3905.1"]


def test_trailing_unnamed_header_columns_are_ignored(tmp_path):
    df = read_srdb(write_srdb(tmp_path / "s.csv", [{}], trailing=",,,,"))
    assert df.shape == (1, 85)


def test_latin1_and_cr_line_endings(tmp_path):
    name = "Peñalara, Sierra de Guadarrama"  # comma inside a quoted cell too
    p = write_srdb(tmp_path / "s.csv", [{"Site_name": name}, {"Site_name": "Zürich"}],
                   encoding="latin-1", newline="\r")
    df = read_srdb(p)
    assert df["Site_name"].tolist() == [name, "Zürich"]
    assert list(df.index) == [2, 3]
    assert df.attrs["soilresp_encoding"] in ("cp1252", "latin-1")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_encodings_and_line_endings(tmp_path, encoding, newline):
    p = write_srdb(tmp_path / "s.csv", [{"Site_name": "Hyytiälä"}, {}], encoding=encoding,
                   newline=newline)
    df = read_srdb(p)
    assert df["Site_name"].iloc[0] == "Hyytiälä"
    assert df["Record_number"].tolist() == ["1", "2"]


def test_row_numbers_follow_multiline_cells_and_blank_lines(tmp_path):
    text = srdb_text([{"Notes": "line one\nline two"}, {}])
    lines = text.split("\n")
    text = "\n".join(lines[:1] + [""] + lines[1:])  # a blank line after the header
    (tmp_path / "s.csv").write_text(text)
    df = read_srdb(tmp_path / "s.csv")
    assert list(df.index) == [3, 5]
    assert df["Notes"].iloc[0] == "line one\nline two"


def test_non_numeric_rs_names_file_row_column(tmp_path):
    p = write_srdb(tmp_path / "bad.csv", [{}, {"Rs_annual": "about 700"}])
    with pytest.raises(InputError) as e:
        read_srdb(p)
    msg = str(e.value)
    assert str(p) in msg and "row 3" in msg and "column 'Rs_annual'" in msg
    assert "'about 700'" in msg and "\n" not in msg
    assert e.value.row == 3 and e.value.column == "Rs_annual"


def test_non_numeric_latitude_is_an_error(tmp_path):
    p = write_srdb(tmp_path / "bad.csv", [{"Latitude": "north"}])
    with pytest.raises(InputError, match=r"row 2, column 'Latitude'"):
        read_srdb(p)


def test_non_numeric_rs_lenient_is_recorded(tmp_path):
    df = read_srdb(write_srdb(tmp_path / "s.csv", [{"Rs_annual": "n.d.x"}]), strict=False)
    assert math.isnan(df["Rs_annual"].iloc[0])
    (bad,) = df.attrs["soilresp_bad_values"]
    assert bad["row"] == 2 and bad["column"] == "Rs_annual" and bad["core"]


def test_bad_value_in_unused_column_only_becomes_missing(tmp_path):
    # real SRDB v20200220 has Rh_annual = "293. 67"
    df = read_srdb(write_srdb(tmp_path / "s.csv", [{"Rh_annual": "293. 67"}]))
    assert df["Rh_annual"].isna().all()
    (bad,) = df.attrs["soilresp_bad_values"]
    assert bad["column"] == "Rh_annual" and not bad["core"]


def test_na_text_in_numeric_column_is_missing(tmp_path):
    df = read_srdb(write_srdb(tmp_path / "s.csv", [{"Rs_annual": "NA"}, {"Latitude": "nan"}]))
    assert df["Rs_annual"].isna().tolist() == [True, False]
    assert df["Latitude"].isna().tolist() == [False, True]


def test_missing_required_column_is_named(tmp_path):
    header = [h for h in HEADER if h != "Manipulation"]
    p = write_srdb(tmp_path / "s.csv", [{}], header=header)
    with pytest.raises(InputError, match=r"column 'Manipulation'"):
        read_srdb(p)


def test_missing_optional_columns_are_added_empty(tmp_path):
    header = [h for h in HEADER if h not in ("Notes", "Soil_BD", "Species")]
    df = read_srdb(write_srdb(tmp_path / "s.csv", [{}], header=header, trailing=""))
    assert list(df.columns) == HEADER
    assert df["Notes"].isna().all() and str(df["Soil_BD"].dtype) == "float64"


def test_unknown_extra_columns_are_kept_as_text(tmp_path):
    df = read_srdb(write_srdb(tmp_path / "s.csv", [{"Extra": "7"}], header=HEADER + ["Extra"],
                              trailing=""))
    assert df["Extra"].tolist() == ["7"]


def test_record_with_too_many_fields_names_the_row(tmp_path):
    text = srdb_text([{}, {}], trailing="")
    lines = text.splitlines()
    lines[2] += ",surplus"
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"row 3: record has 86 fields"):
        read_srdb(tmp_path / "s.csv")


def test_duplicate_header_name_is_an_error(tmp_path):
    p = write_srdb(tmp_path / "s.csv", [{}], header=HEADER + ["Notes"], trailing="")
    with pytest.raises(InputError, match="column 'Notes'"):
        read_srdb(p)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        read_srdb(tmp_path / "empty.csv")
    with pytest.raises(InputError, match="file not found"):
        read_srdb(tmp_path / "nope.csv")
    (tmp_path / "bin.csv").write_bytes(b"PAR1\x00\x01\x02")
    with pytest.raises(InputError, match="binary"):
        read_srdb(tmp_path / "bin.csv")


def test_dms_coordinates(tmp_path):
    df = read_srdb(write_srdb(tmp_path / "s.csv", [
        {"Latitude": "42°32'N", "Longitude": "72°10'W"},
        {"Latitude": "42 32 24 S", "Longitude": "-72:10:00"},
        {"Latitude": "12.5S", "Longitude": "130.1E"},
    ]))
    np.testing.assert_allclose(df["Latitude"], [42 + 32 / 60, -(42 + 32 / 60 + 24 / 3600), -12.5])
    np.testing.assert_allclose(df["Longitude"], [-(72 + 10 / 60), -(72 + 10 / 60), 130.1])


def test_synthetic_world_layout_reads(tmp_path):
    """The demo's srdb-data.csv: real header, only the 16 columns the lead fills."""
    df = read_srdb(write_srdb(tmp_path / "srdb-data.csv", [{}, {"Leaf_habit": "Evergreen"}],
                              trailing=""))
    filled = [c for c in HEADER if df[c].notna().any()]
    assert set(filled) == set(BASE) - {"Quality_flag", "Duplicate_record"}
    assert df["Study_number"].tolist() == [10, 10]


def test_studies_table_latin1_cr(tmp_path):
    text = "Study_number,Authors,Title\r1,\"Müller, J\",Bodenatmung\r2,Smith,Soil CO2\r"
    (tmp_path / "srdb-studies.csv").write_bytes(text.encode("latin-1"))
    st_ = read_srdb_studies(tmp_path / "srdb-studies.csv")
    assert st_["Authors"].tolist() == ["Müller, J", "Smith"]
    assert st_["Study_number"].tolist() == [1, 2]


# ------------------------------------------------------------------ mapped table
def _table(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_mapped_table_with_mapping(tmp_path):
    p = _table(tmp_path, "id,y,x,yr,flux,veg,how\nA,61.85,24.29,2005,700,Forest,IRGA\n"
                         "B,42.54,-72.17,2006.5,None,Grassland,GC\n".replace("None", "650"))
    df = read_mapped_table(p, {"site_id": "id", "lat": "y", "lon": "x", "year": "yr",
                               "rs": "flux", "vegetation": "veg", "method": "how"})
    assert df["site_id"].tolist() == ["A", "B"]
    assert df["rs"].tolist() == [700.0, 650.0]
    assert df["year"].tolist() == [2005.0, 2006.5]
    assert df["record_number"].tolist() == ["2", "3"]  # numbered by row
    assert df["manipulation"].isna().all()


def test_mapped_table_identity_names(tmp_path):
    p = _table(tmp_path, "lat,lon,year,rs,manipulation\n61.85,24.29,2005,700,None\n")
    df = read_mapped_table(p, {})
    assert df["manipulation"].tolist() == ["None"]
    assert df["vegetation"].tolist() == ["Unknown"]


def test_mapped_table_missing_columns(tmp_path):
    p = _table(tmp_path, "lat,lon,year\n1,2,2005\n")
    with pytest.raises(InputError, match=r"column 'rs'"):
        read_mapped_table(p, {})
    with pytest.raises(InputError, match=r"column 'flux'"):
        read_mapped_table(p, {"rs": "flux"})


def test_mapped_table_bad_value_names_the_file_column(tmp_path):
    p = _table(tmp_path, "lat,lon,year,flux\n1,2,2005,700\n1,2,20o6,700\n")
    with pytest.raises(InputError, match=r"row 3, column 'year'"):
        read_mapped_table(p, {"rs": "flux"})
    df = read_mapped_table(p, {"rs": "flux"}, strict=False)
    assert df.attrs["soilresp_bad_values"][0]["core"]


def test_mapped_table_parquet(tmp_path):
    src = pd.DataFrame({"lat": [61.85, 42.54], "lon": [24.29, -72.17], "year": [2005, 2006],
                        "rs": [700.0, np.nan], "site_name": ["Hyytiälä", None]})
    src.to_parquet(tmp_path / "t.parquet")
    df = read_mapped_table(tmp_path / "t.parquet", {})
    assert df["lat"].tolist() == [61.85, 42.54]
    assert df["rs"].isna().tolist() == [False, True]
    assert df["site_name"].tolist()[0] == "Hyytiälä" and pd.isna(df["site_name"].iloc[1])
    assert list(df.index) == [1, 2]


def test_mapped_table_latin1(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes("site_name,lat,lon,year,rs\nPeñalara,40.8,-3.95,2005,500\n".encode("latin-1"))
    assert read_mapped_table(p, {})["site_name"].tolist() == ["Peñalara"]


# ------------------------------------------------------------------ normalisers
def test_method_variants():
    assert normalize_method("IGRA") == "IRGA"
    assert normalize_method(" Gas Chromatography ") == "Gas chromatography"
    assert normalize_method("GC") == "Gas chromatography"
    assert normalize_method("Soda Lime") == "Soda lime"
    acc = {"IRGA", "Gas chromatography"}
    assert method_accepted("IRGA", acc) and method_accepted("irga", acc)
    assert method_accepted("IRGA, GC", acc)
    assert not method_accepted("IRGA, static, gradient", acc)
    assert not method_accepted(None, acc) and not method_accepted("", acc)


@pytest.mark.parametrize("cell,codes,bad", [
    ("Q01, Q03", {1, 3}, []), ("Q03,Q10,Q16", {3, 10, 16}, []), ("Q1,Q10", {1, 10}, []),
    ("Q2", {2}, []), ("Q 13", {13}, []), ("Q01 Q11", {1, 11}, []), ("Q03; Q12", {3, 12}, []),
    (None, set(), []), ("Q01, see notes", {1}, ["see notes"]),
])
def test_quality_flag_cells(cell, codes, bad):
    assert parse_quality_flags(cell) == (codes, bad)


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, 16), min_size=1, max_size=5),
       st.sampled_from([",", ", ", ";", " ", " ,"]), st.booleans())
def test_quality_flags_roundtrip(codes, sep, pad):
    cell = sep.join(f"Q{c:02d}" if pad else f"Q{c}" for c in sorted(codes))
    assert parse_quality_flags(cell) == (codes, [])


def test_calendar_year_from_midyear():
    s = pd.Series([2014.5, 2015.0, 1999.5, 2000.75, np.nan, 2003])
    assert calendar_year(s).tolist() == [2014, 2015, 1999, 2000, pd.NA, 2003]


@settings(max_examples=60, deadline=None)
@given(st.integers(1900, 2100), st.sampled_from([0.0, 0.25, 0.5, 0.75]))
def test_calendar_year_is_floor(year, frac):
    assert calendar_year(pd.Series([year + frac])).iloc[0] == year


def test_vegetation_labels():
    assert vegetation_label("Forest", "Decidious") == "Forest/Deciduous"
    assert vegetation_label("forest", "Mixed of evergreen and deciduous") == "Forest/Mixed"
    assert vegetation_label("Grassland", None) == "Grassland"
    assert vegetation_label(None, "Evergreen") == "Unknown/Evergreen"
    assert normalize_leaf_habit("Natural") is None


def test_site_id_is_stable_and_documented_form():
    assert make_site_id(56.634, -99.94, "BOREAS NSA-D1998") == "56.63_-99.94_boreas-nsa-d1998"
    assert make_site_id(-0.001, 0.001, None) == "0.00_0.00"
    assert make_site_id(61.8474, 24.2948, "Hyytiälä") == "61.85_24.29_hyytiala"
    assert make_site_id(1.23456, 2.0, "x", decimals=3) == "1.235_2.000_x"
