"""The model suite on real data: SRDB v20200220 (paper's rules) x published site covariates.

Reproduces the numbers of docs/models.md, section 9 (the Eq 1-4 and SVR rows; the RF and ANN
rows of that table come from the same function with all four families, which takes minutes).
Skips when ../shared/data is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not (SHARED_DATA / "srdb_site_covariates").is_dir(),
                                 reason="../shared/data is absent")]

N_PER_BIOME = {1: 112, 2: 22, 4: 93, 5: 322, 6: 31, 7: 43, 8: 307, 9: 100, 10: 10}

#: (biome, family, form): (n, cv_r2, cv_rmse, site_cv_r2, site_cv_rmse), seed 42
PINNED = {
    (1, "nls", "eq1"): (112, 0.2361, 276.48, 0.2187, 279.62),
    (1, "nls", "eq2"): (112, 0.2440, 275.05, 0.1683, 288.50),
    (1, "nls", "eq3"): (112, 0.2457, 274.75, 0.1503, 291.59),
    (1, "nls", "eq4"): (107, 0.2432, 278.12, 0.2144, 283.37),
    (1, "svr", ""): (107, 0.4499, 237.13, 0.4018, 247.28),
    (2, "nls", "eq1"): (22, 0.0488, 310.16, -0.1593, 342.40),
    (2, "nls", "eq2"): (22, 0.1001, 301.68, -0.6298, 405.99),
    (2, "nls", "eq3"): (22, 0.1414, 294.68, -1.2177, 473.59),
    (2, "nls", "eq4"): (22, 0.0358, 312.26, -1.2495, 476.97),
    (2, "svr", ""): (22, 0.2927, 267.45, -0.2064, 349.29),
    (4, "nls", "eq1"): (93, -0.0172, 375.68, -0.0195, 376.10),
    (4, "nls", "eq2"): (93, 0.0202, 368.71, -0.0188, 375.98),
    (4, "nls", "eq3"): (93, 0.1071, 351.98, 0.0648, 360.21),
    (4, "nls", "eq4"): (92, 0.1618, 342.12, 0.1115, 352.24),
    (4, "svr", ""): (92, 0.0761, 359.18, 0.1172, 351.10),
    (5, "nls", "eq1"): (321, 0.1614, 327.09, 0.1305, 333.07),
    (5, "nls", "eq2"): (321, 0.1543, 328.47, 0.1135, 336.32),
    (5, "nls", "eq3"): (315, 0.1906, 323.11, 0.1483, 331.44),
    (5, "nls", "eq4"): (297, 0.3072, 299.11, 0.2573, 309.71),
    (5, "svr", ""): (297, 0.3923, 280.15, 0.2332, 314.69),
    (6, "nls", "eq1"): (31, -0.1082, 157.55, -0.1082, 157.55),
    (6, "nls", "eq2"): (31, -0.4755, 181.80, -0.4755, 181.80),
    (6, "nls", "eq3"): (31, -0.2426, 166.83, -0.2426, 166.83),
    (6, "nls", "eq4"): (31, -0.1081, 157.55, -0.1081, 157.55),
    (6, "svr", ""): (31, -0.0649, 154.45, -0.0649, 154.45),
    (7, "nls", "eq1"): (42, -0.0715, 684.33, -0.1038, 694.56),
    (7, "nls", "eq2"): (42, -0.0841, 688.36, -0.1742, 716.37),
    (7, "nls", "eq3"): (31, 0.3396, 510.76, 0.2345, 549.92),
    (7, "nls", "eq4"): (29, 0.0091, 617.80, -0.0121, 624.38),
    (7, "svr", ""): (29, 0.1708, 565.16, 0.0639, 600.48),
    (8, "nls", "eq1"): (303, 0.2023, 455.45, 0.1931, 458.08),
    (8, "nls", "eq2"): (303, 0.1976, 456.79, 0.1816, 461.32),
    (8, "nls", "eq3"): (303, 0.2727, 434.90, 0.2478, 442.26),
    (8, "nls", "eq4"): (290, 0.2767, 439.45, 0.2265, 454.46),
    (8, "svr", ""): (290, 0.3691, 410.44, 0.2589, 444.84),
    (9, "nls", "eq1"): (100, 0.5893, 420.42, 0.1922, 589.61),
    (9, "nls", "eq2"): (100, 0.6457, 390.45, 0.2925, 551.80),
    (9, "nls", "eq3"): (100, 0.6613, 381.77, 0.3863, 513.92),
    (9, "nls", "eq4"): (100, 0.1665, 598.90, 0.4560, 483.87),
    (9, "svr", ""): (100, 0.7953, 296.78, 0.0992, 622.64),
}


@pytest.fixture(scope="module")
def table():
    from soilresp.field.covariates import srdb_training_table

    d = SHARED_DATA
    return srdb_training_table(d / "srdb" / "srdb-data_v20200220.csv",
                               d / "srdb_site_covariates" / "rh-changes_srdb_filtered.csv",
                               climate_zones=d / "grids_static" / "ipcc_climate_zones.nc",
                               land_cover=d / "grids_static" / "MODIS_LC_2010.tif", land_cover_year=2010)


def test_training_table(table):
    assert len(table) == 1040 and table["site_id"].nunique() == 626
    assert table.groupby("biome").size().to_dict() == N_PER_BIOME
    assert {"rs", "site_id", "biome", "tas", "tas_clim", "pr", "pr_pet", "sm", "gpp"} <= set(table.columns)
    assert table["tas"].dropna().between(-20, 35).all() and table["gpp"].dropna().between(0, 4000).all()
    assert table["n_matched"].ge(1).all()


def test_skill_table_reproduced(table):
    from soilresp.models import fit_biomes
    from soilresp.field.covariates import UNITS, models_config

    res = fit_biomes(table, models_config(families=["nls", "svr"]), seed=42, units=UNITS)
    sk = res.skill.set_index(["biome", "family", "form"])
    for key, (n, r2, rmse, sr2, srmse) in PINNED.items():
        row = sk.loc[key]
        assert row["n"] == n, key
        np.testing.assert_allclose([row["cv_r2"], row["site_cv_r2"]], [r2, sr2], atol=0.02, err_msg=str(key))
        np.testing.assert_allclose([row["cv_rmse"], row["site_cv_rmse"]], [rmse, srmse], rtol=0.02,
                                   err_msg=str(key))
    sel = res.selected.set_index("biome")
    # biomes 3 (no observations) and 10 (10 < 15) take the pooled model
    assert sel.loc[3, "fallback"].startswith("pooled") and sel.loc[10, "fallback"].startswith("pooled")
    assert (sel.drop(index=[3, 10])["fallback"] == "").all()
    # site-grouped CV is never much kinder than random CV (repeated years at a site help random CV)
    own = res.skill[res.skill["fallback"] == ""]
    assert (own["site_cv_r2"] <= own["cv_r2"] + 0.05).mean() > 0.9
