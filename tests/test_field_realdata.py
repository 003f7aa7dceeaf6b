"""soilresp.field on the real SRDB release contemporary with Huang et al. 2020 (v20200220).

Reads ``../shared/data/srdb`` next to the project; every test skips when it is absent.
The numbers pinned here are reported in docs/field.md next to the paper's 1292 / 701.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from soilresp.config import FieldConfig
from soilresp.field import (
    RULES,
    SRDB_COLUMNS,
    fetch_srdb,
    identify_release,
    read_srdb,
    read_srdb_studies,
    select_observations,
    write_field_outputs,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "srdb"
SRDB = DATA / "srdb-data_v20200220.csv"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not SRDB.is_file(), reason=f"real SRDB not found at {SRDB}"),
]

#: records left after each rule, 2000-2014, default [field] settings
EXPECTED_CASCADE = {
    "input": 7318,
    "values_parseable": 7318,
    "rs_annual_present": 4501,
    "measurement_method": 3811,
    "no_manipulation": 2689,
    "quality_flags": 2449,
    "not_duplicate": 2440,
    "study_period": 1882,
    "ecosystem_type": 1882,
    "coordinates_valid": 1821,
    "coordinates_on_land": 1815,
    "coordinates_in_country": 1798,
    "rs_plausible": 1794,
    "average_site_year_vegetation": 1356,  # observations
}


@pytest.fixture(scope="module")
def srdb():
    return read_srdb(SRDB)


@pytest.fixture(scope="module")
def result(srdb):
    return select_observations(srdb, FieldConfig(), (2000, 2014), source=SRDB)


def test_columns_match_srdb_fields_file():
    fields = DATA / "srdb-data_fields.txt"
    if not fields.is_file():
        pytest.skip("srdb-data_fields.txt absent")
    with open(fields, encoding="utf-8", errors="replace", newline="") as f:
        names = [r[1] for r in csv.reader(f) if r and r[0].strip().isdigit()]
    assert names == list(SRDB_COLUMNS)


def test_reads_every_record_typed(srdb):
    assert srdb.shape == (7318, 85)
    assert (srdb["Manipulation"] == "None").sum() == 4789  # not swallowed as missing
    assert srdb["Manipulation"].isna().sum() == 0
    assert srdb["Quality_flag"].str.contains(",").sum() > 100  # multi-code cells exist
    (bad,) = srdb.attrs["soilresp_bad_values"]  # the one malformed number in the release
    assert bad["column"] == "Rh_annual" and bad["value"] == "293. 67"


def test_cascade_2000_2014(result, capsys):
    with capsys.disabled():
        print("\n" + result.summary())
    got = dict(zip(result.cascade["rule"], result.cascade["records_remaining"]))
    assert list(got) == list(RULES)
    assert got == EXPECTED_CASCADE
    assert result.meta["n_observations"] == 1356
    assert result.meta["n_sites"] == 835
    assert result.meta["n_locations"] == 648
    assert result.meta["srdb_release"] == "v20200220"


def test_ten_biome_ecosystems_only(srdb):
    """Dropping ecosystem types outside the paper's ten biomes (docs/field.md, 'differences')."""
    cfg = FieldConfig(exclude_ecosystems=["Wetland", "Desert", "Tundra", "Urban", "Bare"])
    res = select_observations(srdb, cfg, (2000, 2014), source=SRDB)
    assert (res.meta["n_observations"], res.meta["n_sites"], res.meta["n_locations"]) == (
        1305, 794, 619)


def test_observations_are_sane(result):
    obs = result.observations
    assert obs["year"].between(2000, 2014).all()
    assert obs["rs"].between(20, 5000).all()
    assert not obs.duplicated(["site_id", "year", "vegetation"]).any()
    assert obs["n_records"].sum() == EXPECTED_CASCADE["rs_plausible"]
    n = obs["record_numbers"].str.split(";").str.len()
    assert (n == obs["n_records"]).all()
    assert obs["vegetation"].str.startswith("Forest").mean() > 0.6


def test_known_traps_are_reported(result):
    qc = result.qc
    swap = qc[qc["flag"] == "coordinates_suspect"]
    assert swap["detail"].str.contains("lat/lon swapped .* in Switzerland").any()
    assert (qc.loc[qc["flag"] == "on_water", "action"] == "dropped").sum() == 6
    assert (qc.loc[qc["flag"] == "far_from_country", "action"] == "dropped").sum() == 17


def test_outputs_and_release_in_metadata(result, tmp_path):
    from soilresp.io import table_provenance

    paths = write_field_outputs(result, tmp_path, {"stage": "field"})
    prov = table_provenance(paths["observations"])
    assert prov["field"]["srdb_release"] == "v20200220"
    assert prov["field"]["source_sha256"].startswith("bf30222463a8b244")


def test_fetch_offline_from_the_real_file(tmp_path):
    got = fetch_srdb(tmp_path, from_path=SRDB)
    rel = identify_release(got)
    assert rel["release"] == "v20200220" and rel["pinned"]


def test_studies_table_latin1_cr():
    studies = DATA / "srdb-studies.csv"
    if not studies.is_file():
        pytest.skip("srdb-studies.csv absent")
    st = read_srdb_studies(studies)
    assert st.attrs["soilresp_encoding"] in ("cp1252", "latin-1")
    assert len(st) > 10000 and st["Study_number"].notna().all()
    assert st["Study_number"].is_unique
