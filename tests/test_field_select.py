"""Selection rules, cascade, QC, averaging, outputs, biome assignment and fetch of soilresp.field."""

from __future__ import annotations

import csv
import functools
import http.server
import io
import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import xarray as xr

from soilresp.config import FieldConfig
from soilresp.errors import ConfigError, InputError
from soilresp.field import (
    OBSERVATION_COLUMNS,
    RULES,
    SRDB_COLUMNS,
    FieldResult,
    assign_biomes,
    build_observations,
    fetch_srdb,
    identify_release,
    read_mapped_table,
    read_srdb,
    select_observations,
    write_field_outputs,
)
from soilresp.field import fetch as fetch_mod
from soilresp.io import file_sha256, table_provenance

HEADER = list(SRDB_COLUMNS)
BASE = dict(
    Study_number="10", Site_name="Harvard Forest", Latitude="42.54", Longitude="-72.17",
    Country="USA", Biome="Temperate", Ecosystem_type="Forest", Leaf_habit="Deciduous",
    Study_midyear="2005.5", YearsOfData="1", Manipulation="None", Meas_method="IRGA",
    Rs_annual="800", Quality_flag="", Duplicate_record="",
)
HYYTIALA = dict(Site_name="Hyytiala", Latitude="61.85", Longitude="24.29", Country="Finland",
                Leaf_habit="Evergreen")
YEARS = (2000, 2014)


def write_srdb(path: Path, records) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for k, r in enumerate(records, start=1):
        row = {**BASE, "Record_number": str(k), **r}
        w.writerow([row.get(h, "") for h in HEADER])
    path.write_text(buf.getvalue())
    return path


def run(tmp_path, records, cfg=None, years=YEARS, strict=True) -> FieldResult:
    p = write_srdb(tmp_path / "srdb-data.csv", records)
    return select_observations(read_srdb(p, strict=strict), cfg or FieldConfig(), years, source=p)


def kept_records(res: FieldResult) -> list[str]:
    r = res.records
    return r.loc[r["excluded_by"] == "", "record_number"].tolist()


def excluded(res: FieldResult) -> dict[str, str]:
    r = res.records
    return dict(zip(r["record_number"], r["excluded_by"]))


# ------------------------------------------------------------------ one test per rule
def test_rs_annual_present_and_positive(tmp_path):
    res = run(tmp_path, [{}, {"Rs_annual": ""}, {"Rs_annual": "0"}, {"Rs_annual": "-200"}])
    assert excluded(res) == {"1": "", "2": "rs_annual_present", "3": "rs_annual_present",
                             "4": "rs_annual_present"}
    assert set(res.qc.loc[res.qc.flag == "rs_not_positive", "record_number"]) == {"3", "4"}


def test_measurement_method_with_spelling_variants(tmp_path):
    methods = ["IRGA", "IGRA", "Gas chromatography", "Gas Chromatography", "GC", "Soda lime",
               "Alkali absorption", "", "IRGA, static, gradient", "None"]
    res = run(tmp_path, [{"Meas_method": m} for m in methods])
    ex = excluded(res)
    assert [ex[str(k)] == "" for k in range(1, 11)] == [True] * 5 + [False] * 5
    assert set(ex.values()) == {"", "measurement_method"}


def test_method_list_is_configurable(tmp_path):
    res = run(tmp_path, [{"Meas_method": "Soda lime"}, {}], FieldConfig(methods=["soda lime"]))
    assert kept_records(res) == ["1"]
    res = run(tmp_path, [{"Meas_method": "Soda lime"}, {}], FieldConfig(methods=[]))
    assert kept_records(res) == ["1", "2"]
    assert "skipped" in res.cascade.set_index("rule").loc["measurement_method", "description"]


def test_no_manipulation_reads_the_string_none(tmp_path):
    res = run(tmp_path, [{"Manipulation": "None"}, {"Manipulation": "none "},
                         {"Manipulation": "Fertilized"}, {"Manipulation": ""},
                         {"Manipulation": "Vegetation control"}])
    assert kept_records(res) == ["1", "2"]
    assert set(excluded(res).values()) == {"", "no_manipulation"}


def test_quality_flags_multi_code_cells(tmp_path):
    flags = ["", "Q01", "Q01, Q03", "Q01,Q10", "Q1,Q10", "Q13", "Q03;Q16", "Q2", "Q 12", "Q15"]
    res = run(tmp_path, [{"Quality_flag": f} for f in flags])
    ex = excluded(res)
    assert [ex[str(k)] for k in range(1, 11)] == [
        "", "", "", "quality_flags", "quality_flags", "quality_flags", "quality_flags", "",
        "quality_flags", "quality_flags"]


def test_quality_flag_list_is_configurable(tmp_path):
    res = run(tmp_path, [{"Quality_flag": "Q01"}, {"Quality_flag": "Q10"}],
              FieldConfig(exclude_quality_flags=["Q1"]))
    assert kept_records(res) == ["2"]


def test_bad_quality_flag_config_is_rejected():
    with pytest.raises(Exception, match="Q10"):
        FieldConfig(exclude_quality_flags=["ten"])


def test_unrecognised_quality_token_is_flagged_not_dropped(tmp_path):
    res = run(tmp_path, [{"Quality_flag": "Q01, check"}])
    assert kept_records(res) == ["1"]
    row = res.qc.loc[res.qc.flag == "quality_flag_unrecognised"].iloc[0]
    assert "check" in row.detail and row.action == "kept"


def test_not_duplicate(tmp_path):
    res = run(tmp_path, [{}, {"Duplicate_record": "3904"}])
    assert excluded(res)["2"] == "not_duplicate"


def test_study_period_uses_calendar_year_of_midyear(tmp_path):
    mids = ["1999.5", "2000", "2000.5", "2014.5", "2014.75", "2015", "2015.5", ""]
    res = run(tmp_path, [{"Study_midyear": m} for m in mids])
    assert kept_records(res) == ["2", "3", "4", "5"]
    assert sorted(res.observations["year"].unique().tolist()) == [2000, 2014]


def test_ecosystem_type_exclusion(tmp_path):
    recs = [{}, {"Ecosystem_type": "Wetland"}, {"Ecosystem_type": "desert", "Leaf_habit": ""}]
    assert kept_records(run(tmp_path, recs)) == ["1", "2", "3"]
    res = run(tmp_path, recs, FieldConfig(exclude_ecosystems=["Wetland", "Desert"]))
    assert excluded(res) == {"1": "", "2": "ecosystem_type", "3": "ecosystem_type"}


def test_coordinates_missing_and_out_of_range(tmp_path):
    res = run(tmp_path, [{}, {"Latitude": ""}, {"Latitude": "95", "Longitude": "10"},
                         {"Longitude": "-190"}])
    ex = excluded(res)
    assert ex == {"1": "", "2": "coordinates_valid", "3": "coordinates_valid",
                  "4": "coordinates_valid"}
    flags = res.qc.set_index("record_number")["flag"]
    assert flags["2"] == "coordinates_missing"
    assert flags["3"] == "coordinates_out_of_range" and flags["4"] == "coordinates_out_of_range"


def test_swapped_coordinates_are_flagged_and_optionally_fixed(tmp_path):
    recs = [{}, {"Site_name": "Beijing", "Country": "China", "Latitude": "116.3",
                 "Longitude": "40.0"}]
    res = run(tmp_path, recs)
    assert excluded(res)["2"] == "coordinates_valid"
    hint = res.qc[(res.qc.record_number == "2") & (res.qc.flag == "coordinates_suspect")]
    assert "lat/lon swapped" in hint.detail.iloc[0]
    res = run(tmp_path, recs, FieldConfig(fix_swapped_coordinates=True))
    assert kept_records(res) == ["1", "2"]
    fixed = res.qc[res.qc.flag == "coordinates_fixed"].iloc[0]
    assert fixed.action == "fixed" and "(116.3, 40) -> (40, 116.3)" in fixed.detail
    obs = res.observations.set_index("site_id")
    assert obs.loc["40.00_116.30_beijing", "lat"] == pytest.approx(40.0)


def test_sign_flipped_longitude_is_far_from_country(tmp_path):
    res = run(tmp_path, [{}, {"Longitude": "72.17"}])  # Harvard Forest east of Greenwich
    assert excluded(res)["2"] == "coordinates_in_country"
    q = res.qc[res.qc.record_number == "2"].set_index("flag")
    assert q.loc["far_from_country", "action"] == "dropped"
    assert "longitude sign flipped" in q.loc["coordinates_suspect", "detail"]


def test_on_water_dropped_or_kept_by_config(tmp_path):
    recs = [{}, {"Site_name": "mid Atlantic", "Latitude": "30.0", "Longitude": "-40.0"},
            {"Site_name": "Hyytiala shore", "Latitude": "61.85", "Longitude": "24.29",
             "Country": "Finland"}]
    res = run(tmp_path, recs)
    assert excluded(res)["2"] == "coordinates_on_land"
    assert excluded(res)["3"] == ""
    row = res.qc[res.qc.flag == "on_water"].iloc[0]
    assert row.record_number == "2" and row.action == "dropped"
    res = run(tmp_path, recs, FieldConfig(coordinate_qc="keep"))
    assert kept_records(res) == ["1", "2", "3"]
    assert res.qc.loc[res.qc.flag == "on_water", "action"].tolist() == ["kept"]


def test_coastal_site_within_tolerance_is_on_land(tmp_path):
    # Cape Cod Bay, ~5 km off the coast: water at the point, land within 0.1 deg
    from soilresp.landmask import is_land  # = global_land_mask's answer (test_landmask.py)

    assert not is_land(41.85, -70.45)
    res = run(tmp_path, [{"Latitude": "41.85", "Longitude": "-70.45"}])
    assert kept_records(res) == ["1"]
    res = run(tmp_path, [{"Latitude": "41.85", "Longitude": "-70.45"}],
              FieldConfig(land_tolerance_deg=0.0, coordinate_qc="keep"))
    assert res.qc.flag.tolist() == ["on_water"]


def test_far_from_stated_country(tmp_path):
    recs = [{}, {"Site_name": "Paris", "Latitude": "48.85", "Longitude": "2.35",
                 "Country": "Spain"}]
    res = run(tmp_path, recs)
    assert excluded(res)["2"] == "coordinates_in_country"
    det = res.qc.loc[res.qc.flag == "far_from_country", "detail"].iloc[0]
    assert "lies in France" in det and "from Spain" in det
    assert kept_records(run(tmp_path, recs, FieldConfig(country_check=False))) == ["1", "2"]
    assert kept_records(run(tmp_path, recs, FieldConfig(country_tolerance_km=2000))) == ["1", "2"]


def test_country_aliases_and_unknown_countries(tmp_path):
    recs = [{"Country": "England", "Latitude": "51.77", "Longitude": "-1.34"},
            {"Country": "Isreal", "Latitude": "31.36", "Longitude": "35.05"},
            {"Country": "Atlantis"},
            {"Country": "Spain", "Latitude": "28.29", "Longitude": "-16.63"},  # Tenerife
            {"Country": ""}]
    res = run(tmp_path, recs)
    assert kept_records(res) == ["1", "2", "3", "4", "5"]
    unchecked = res.qc[res.qc.flag == "country_unchecked"]
    assert unchecked.record_number.tolist() == ["3", "4"]
    assert "small island" in unchecked.detail.iloc[1]


def test_rs_plausible_range(tmp_path):
    recs = [{}, {"Rs_annual": "15"}, {"Rs_annual": "23046"}]
    res = run(tmp_path, recs)
    assert kept_records(res) == ["1"]
    assert res.qc.loc[res.qc.flag == "rs_implausible", "action"].tolist() == ["dropped"] * 2
    res = run(tmp_path, recs, FieldConfig(drop_implausible_rs=False))
    assert kept_records(res) == ["1", "2", "3"]
    res = run(tmp_path, recs, FieldConfig(rs_range=(10, 30000)))
    assert kept_records(res) == ["1", "2", "3"]


def test_bad_values_drop_mode(tmp_path):
    recs = [{}, {"Rs_annual": "7OO"}, {"Rh_annual": "293. 67"}]
    with pytest.raises(InputError, match="row 3, column 'Rs_annual'"):
        run(tmp_path, recs)
    res = run(tmp_path, recs, FieldConfig(bad_values="drop"), strict=False)
    assert excluded(res) == {"1": "", "2": "values_parseable", "3": ""}
    qc = res.qc[res.qc.flag == "bad_value"].set_index("record_number")
    assert qc.loc["2", "action"] == "dropped" and qc.loc["3", "action"] == "kept"
    assert "value ignored" in qc.loc["3", "detail"]


# ------------------------------------------------------------------ cascade and averaging
def test_cascade_counts_every_rule_in_order(tmp_path):
    recs = [{}, {"Rs_annual": ""}, {"Meas_method": "Soda lime"}, {"Manipulation": "CO2"},
            {"Quality_flag": "Q11"}, {"Duplicate_record": "5"}, {"Study_midyear": "1990.5"},
            {"Ecosystem_type": "Wetland"},
            {"Latitude": ""}, {"Latitude": "30", "Longitude": "-40"},
            {"Latitude": "48.85", "Longitude": "2.35"}, {"Rs_annual": "9999"}, HYYTIALA]
    res = run(tmp_path, recs, FieldConfig(exclude_ecosystems=["wetland"]))
    c = res.cascade
    assert c["rule"].tolist() == list(RULES)
    assert c["step"].tolist() == list(range(len(RULES)))
    assert c["records_remaining"].tolist()[:-1] == [13, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2]
    assert c["records_removed"].tolist()[1:-1] == [0] + [1] * 11
    assert c["records_remaining"].iloc[-1] == 2 and "2 observations" in c["description"].iloc[-1]
    removed = c["records_removed"].iloc[1:-1].sum()
    assert c["records_remaining"].iloc[0] - removed == c["records_remaining"].iloc[-2]
    text = res.summary()
    assert "coordinates_on_land" in text and "average_site_year_vegetation" in text


def test_average_site_year_vegetation(tmp_path):
    recs = [{"Rs_annual": "800"}, {"Rs_annual": "1000"},            # same site-year-veg -> mean
            {"Rs_annual": "500", "Ecosystem_type": "Grassland", "Leaf_habit": ""},  # other veg
            {"Rs_annual": "700", "Study_midyear": "2006.5"},         # other year
            {**HYYTIALA, "Rs_annual": "600"}]
    res = run(tmp_path, recs)
    obs = res.observations
    assert list(obs.columns) == list(OBSERVATION_COLUMNS)
    assert len(obs) == 4 and res.n_sites == 2
    hf = obs[obs.site_id == "42.54_-72.17_harvard-forest"]
    assert hf[["year", "vegetation", "rs", "n_records", "record_numbers"]].values.tolist() == [
        [2005, "Forest/Deciduous", 900.0, 2, "1;2"],
        [2005, "Grassland", 500.0, 1, "3"],
        [2006, "Forest/Deciduous", 700.0, 1, "4"],
    ]
    assert (obs["biome"] == 0).all()
    for col, dtype in OBSERVATION_COLUMNS.items():
        if dtype == "str":
            assert all(isinstance(v, str) for v in obs[col]), col
        else:
            assert str(obs[col].dtype) == dtype, col


def test_observations_sorted_and_independent_of_input_order(tmp_path):
    recs = [HYYTIALA, {}, {"Study_midyear": "2003.5"}, {**HYYTIALA, "Study_midyear": "2001.5"},
            {"Ecosystem_type": "Agriculture"}]
    a = run(tmp_path, recs).observations
    (tmp_path / "b").mkdir()
    b = run(tmp_path / "b", recs[::-1]).observations
    keys = ["site_id", "year", "vegetation"]
    assert a[keys].equals(a.sort_values(keys).reset_index(drop=True)[keys])
    pd.testing.assert_frame_equal(a.drop(columns="record_numbers"),
                                  b.drop(columns="record_numbers"))


def test_same_place_different_site_names_are_different_sites(tmp_path):
    res = run(tmp_path, [{}, {"Site_name": "Harvard Forest EMS tower"}])
    assert res.n_sites == 2 and len(res.observations) == 2


def test_empty_result_is_a_clear_error(tmp_path):
    with pytest.raises(InputError) as e:
        run(tmp_path, [{"Study_midyear": "1995.5"}, {"Meas_method": "Soda lime"}])
    msg = str(e.value)
    assert "srdb-data.csv" in msg and "no field records remain after rule 'study_period'" in msg
    assert "\n" not in msg
    with pytest.raises(InputError, match="after rule 'measurement_method'"):
        run(tmp_path, [{"Meas_method": "Soda lime"}])


def test_qc_table_columns_and_actions(tmp_path):
    res = run(tmp_path, [{"Meas_method": "Soda lime", "Latitude": "30", "Longitude": "-40"}, {}])
    assert list(res.qc.columns) == ["record_number", "row", "flag", "detail", "action"]
    row = res.qc[res.qc.flag == "on_water"].iloc[0]
    assert row.action == "excluded_by:measurement_method" and row.row == 2


def test_select_accepts_canonical_records(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("site,lat,lon,yr,flux,veg,method,manipulation\n"
                 "A,61.85,24.29,2005,700,Forest,IRGA,None\n"
                 "A,61.85,24.29,2005,500,Forest,GC,None\n"
                 "B,42.54,-72.17,2006,650,Grassland,Soda lime,None\n"
                 "C,42.54,-72.17,2006,650,Grassland,IRGA,Warming\n")
    df = read_mapped_table(p, {"site_id": "site", "year": "yr", "rs": "flux", "vegetation": "veg"})
    res = select_observations(df, FieldConfig(format="table"), YEARS, source=p)
    assert res.observations[["site_id", "rs", "n_records", "record_numbers"]].values.tolist() == [
        ["A", 600.0, 2, "2;3"]]
    c = res.cascade.set_index("rule")
    assert "skipped" in c.loc["quality_flags", "description"]
    assert "skipped" in c.loc["not_duplicate", "description"]


def test_select_rejects_unknown_frames(tmp_path):
    with pytest.raises(InputError, match="column 'record_number'"):
        select_observations(pd.DataFrame({"a": [1]}), FieldConfig(), YEARS, source="x.csv")


# ------------------------------------------------------------------ build + outputs
def test_build_observations_srdb_and_table(tmp_path):
    write_srdb(tmp_path / "srdb-data.csv", [{}, HYYTIALA])
    cfg = FieldConfig(path=Path("srdb-data.csv"))
    res = build_observations(cfg, YEARS, base_dir=tmp_path)
    assert len(res.observations) == 2 and res.meta["format"] == "srdb"
    assert res.meta["source_sha256"] == file_sha256(tmp_path / "srdb-data.csv")
    (tmp_path / "t.csv").write_text("lat,lon,year,rs\n61.85,24.29,2005,700\n")
    res = build_observations(FieldConfig(path=Path("t.csv"), format="table"), YEARS,
                             base_dir=tmp_path)
    assert res.observations["site_id"].tolist() == ["61.85_24.29"]
    with pytest.raises(ConfigError, match="path is not set"):
        build_observations(FieldConfig(), YEARS)
    with pytest.raises(InputError, match="file not found"):
        build_observations(FieldConfig(path=Path("nope.csv")), YEARS, base_dir=tmp_path)


def test_build_observations_bad_values_config(tmp_path):
    write_srdb(tmp_path / "srdb-data.csv", [{}, {"Latitude": "n/k"}])
    with pytest.raises(InputError, match="row 3, column 'Latitude'"):
        build_observations(FieldConfig(path=Path("srdb-data.csv")), YEARS, base_dir=tmp_path)
    res = build_observations(FieldConfig(path=Path("srdb-data.csv"), bad_values="drop"), YEARS,
                             base_dir=tmp_path)
    assert excluded(res)["2"] == "values_parseable"


def test_write_field_outputs(tmp_path):
    src = write_srdb(tmp_path / "srdb-data.csv", [{}, {}, HYYTIALA, {"Latitude": "30",
                                                                     "Longitude": "-40"}])
    (tmp_path / fetch_mod.MANIFEST_NAME).write_text(json.dumps(
        {"release": "vTEST", "url": "https://example.invalid/srdb-data.csv",
         "sha256": file_sha256(src), "file": "srdb-data.csv"}))
    res = select_observations(read_srdb(src), FieldConfig(), YEARS, source=src)
    assert res.meta["srdb_release"] == "vTEST"
    paths = write_field_outputs(res, tmp_path / "out", {"stage": "field", "seed": 1})
    assert {k: p.name for k, p in paths.items()} == {
        "observations": "observations.parquet", "cascade": "cascade.csv", "qc": "qc.csv",
        "records": "records.csv"}
    schema = pq.read_schema(paths["observations"])
    assert schema.names == list(OBSERVATION_COLUMNS)
    types = {f.name: str(f.type) for f in schema}
    strings = {types.pop(c) for c in ("site_id", "vegetation", "record_numbers")}
    assert strings <= {"string", "large_string"}
    assert types == {"lat": "double", "lon": "double", "year": "int64", "rs": "double",
                     "n_records": "int64", "biome": "int16"}
    prov = table_provenance(paths["observations"])
    assert prov["stage"] == "field" and prov["field"]["srdb_release"] == "vTEST"
    assert prov["field"]["cascade"][0] == {"rule": "input", "records_remaining": 4,
                                           "records_removed": 0}
    cascade = pd.read_csv(paths["cascade"])
    assert cascade["rule"].tolist() == list(RULES)
    qc = pd.read_csv(paths["qc"], dtype=str)
    assert qc["flag"].tolist() == ["on_water"]
    back = pd.read_parquet(paths["observations"])
    assert back["record_numbers"].tolist() == res.observations["record_numbers"].tolist()


# ------------------------------------------------------------------ biomes
def _biome_map(lat_desc=False, lon360=False):
    lat = np.arange(-89.5, 90, 1.0)
    lon = np.arange(0.5, 360, 1.0) if lon360 else np.arange(-179.5, 180, 1.0)
    codes = np.zeros((lat.size, lon.size), np.int8)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    lo180 = (lo + 180) % 360 - 180
    codes[(la > 40) & (la < 45) & (lo180 > -75) & (lo180 < -70)] = 1   # New England box
    codes[(la > 60) & (la < 65) & (lo180 > 20) & (lo180 < 30)] = 6     # Finland box
    da = xr.DataArray(codes, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name="biome")
    return da.isel(lat=slice(None, None, -1)) if lat_desc else da


@pytest.mark.parametrize("lat_desc,lon360", [(False, False), (True, False), (False, True)])
def test_assign_biomes_nearest_cell(lat_desc, lon360):
    obs = pd.DataFrame({"site_id": ["hf", "hy", "sea"], "lat": [42.54, 61.85, 0.0],
                        "lon": [-72.17, 24.29, -30.0], "biome": np.zeros(3, np.int16),
                        "vegetation": ["Forest/Deciduous", "Forest/Evergreen", "Unknown"]})
    out = assign_biomes(obs, _biome_map(lat_desc, lon360))
    assert out["biome"].tolist() == [1, 6, 0]
    assert str(out["biome"].dtype) == "int16"
    assert out["vegetation"].tolist() == obs["vegetation"].tolist()
    assert out.attrs["soilresp_biome_unassigned"] == ["sea"]
    assert obs["biome"].tolist() == [0, 0, 0]  # input untouched


def test_assign_biomes_outside_map_and_search_radius():
    da = _biome_map().sel(lat=slice(30, 70))
    obs = pd.DataFrame({"site_id": ["far", "edge"], "lat": [-45.0, 45.3], "lon": [170.0, -72.0]})
    out = assign_biomes(obs, da)
    assert out["biome"].tolist() == [0, 0]
    out = assign_biomes(obs, da, max_cells=1)
    assert out["biome"].tolist() == [0, 1]


# ------------------------------------------------------------------ fetch
def test_fetch_from_local_copy_records_release(tmp_path, monkeypatch):
    src = write_srdb(tmp_path / "mine.csv", [{}])
    sha = file_sha256(src)
    dest = fetch_srdb(tmp_path / "data", from_path=src)
    man = json.loads((tmp_path / "data" / "srdb-manifest.json").read_text())
    assert dest.name == "srdb-data.csv" and dest.read_bytes() == src.read_bytes()
    assert man["release"] == "unpinned" and man["sha256"] == sha and not man["pinned"]
    monkeypatch.setitem(fetch_mod.SRDB_RELEASES, "vLOCAL",
                        {"url": "https://example.invalid/x.csv", "sha256": sha, "ref": "x"})
    fetch_srdb(tmp_path / "data2", from_path=src)
    man = json.loads((tmp_path / "data2" / "srdb-manifest.json").read_text())
    assert man["release"] == "vLOCAL" and man["pinned"]
    assert identify_release(tmp_path / "data2" / "srdb-data.csv")["release"] == "vLOCAL"


def test_fetch_rejects_non_srdb_and_unknown_versions(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not an SRDB"):
        fetch_srdb(tmp_path / "d", from_path=tmp_path / "x.csv")
    with pytest.raises(InputError, match="unknown SRDB release 'v1999'"):
        fetch_srdb(tmp_path / "d", version="v1999")
    with pytest.raises(InputError, match="file not found"):
        fetch_srdb(tmp_path / "d", from_path=tmp_path / "nope.csv")


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def test_fetch_download_checks_the_checksum(tmp_path, http_dir, monkeypatch):
    root, base = http_dir
    src = write_srdb(root / "srdb-data.csv", [{}])
    sha = file_sha256(src)
    monkeypatch.setitem(fetch_mod.SRDB_RELEASES, "vGOOD",
                        {"url": f"{base}/srdb-data.csv", "sha256": sha, "ref": "x"})
    monkeypatch.setitem(fetch_mod.SRDB_RELEASES, "vBAD",
                        {"url": f"{base}/srdb-data.csv", "sha256": "0" * 64, "ref": "x"})
    got = fetch_srdb(tmp_path / "dl", version="vGOOD")
    assert file_sha256(got) == sha
    man = json.loads((tmp_path / "dl" / "srdb-manifest.json").read_text())
    assert man["release"] == "vGOOD" and man["url"].startswith(base) and man["pinned"]
    res = select_observations(read_srdb(got), FieldConfig(), YEARS, source=got)
    assert res.meta["srdb_release"] == "vGOOD"
    with pytest.raises(InputError, match="checksum"):
        fetch_srdb(tmp_path / "dl2", version="vBAD")
    assert not (tmp_path / "dl2" / "srdb-data.csv").exists()
    with pytest.raises(InputError, match="download failed"):
        monkeypatch.setitem(fetch_mod.SRDB_RELEASES, "vMISSING",
                            {"url": f"{base}/nope.csv", "sha256": sha, "ref": "x"})
        fetch_srdb(tmp_path / "dl3", version="vMISSING")


def test_pinned_default_release():
    rel = fetch_mod.SRDB_RELEASES[fetch_mod.DEFAULT_SRDB_VERSION]
    assert len(rel["sha256"]) == 64 and rel["url"].endswith("/srdb-data.csv")
    assert "bpbond/srdb" in rel["url"]
