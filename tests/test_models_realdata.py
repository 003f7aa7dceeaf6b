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

N_PER_BIOME = {1: 97, 2: 23, 4: 90, 5: 332, 6: 31, 7: 53, 8: 289, 9: 102, 10: 15}  # one cell rule (grid.axis_cell)

#: (biome, family, form): (n, cv_r2, cv_rmse, site_cv_r2, site_cv_rmse), seed 42; bounded
#: Eq 1-4, Eq 5 nested in every CV fold (issue 15); Q10 held at 1 and a T^2 term on its box
#: limit dropped (2026-12-06: biome 4, 6, 7 Eq 4 folds changed, e.g. boreal Eq 4 -1.27 -> 0.01)
PINNED = {
    (1, "nls", "eq1"): (97, 0.1650, 285.14, 0.0741, 300.25),
    (1, "nls", "eq2"): (97, 0.1530, 287.18, 0.0131, 309.99),
    (1, "nls", "eq3"): (97, 0.0641, 301.87, -0.1243, 330.86),
    (1, "nls", "eq4"): (92, 0.0744, 304.33, -0.0876, 329.89),
    (1, "svr", ""): (92, 0.0491, 308.46, -0.1477, 338.88),
    (2, "nls", "eq1"): (23, -0.0587, 306.29, -0.2789, 336.63),
    (2, "nls", "eq2"): (23, 0.1105, 280.74, -0.4163, 354.26),
    (2, "nls", "eq3"): (23, -0.0736, 313.44, -0.8930, 423.04),
    (2, "nls", "eq4"): (23, -0.1019, 317.55, -0.6868, 399.33),
    (2, "svr", ""): (23, 0.4308, 228.23, 0.0360, 301.88),
    (4, "nls", "eq1"): (90, -0.0361, 376.86, -0.0740, 383.69),
    (4, "nls", "eq2"): (90, 0.0159, 367.28, -0.0476, 378.95),
    (4, "nls", "eq3"): (90, 0.1208, 347.16, 0.0541, 360.08),
    (4, "nls", "eq4"): (89, 0.1399, 344.39, 0.1403, 344.32),
    (4, "svr", ""): (89, 0.3027, 310.11, 0.1060, 351.13),
    (5, "nls", "eq1"): (331, 0.1448, 335.08, 0.1029, 343.20),
    (5, "nls", "eq2"): (331, 0.1384, 336.33, 0.0910, 345.46),
    (5, "nls", "eq3"): (325, 0.1685, 332.10, 0.1324, 339.23),
    (5, "nls", "eq4"): (307, 0.2642, 312.88, 0.2283, 320.44),
    (5, "svr", ""): (307, 0.3164, 301.59, 0.2859, 308.25),
    (6, "nls", "eq1"): (31, -0.2459, 167.06, -0.2459, 167.06),
    (6, "nls", "eq2"): (31, -0.2459, 167.06, -0.2459, 167.06),
    (6, "nls", "eq3"): (31, -0.0157, 150.84, -0.0157, 150.84),
    (6, "nls", "eq4"): (31, 0.0100, 148.92, 0.0100, 148.92),
    (6, "svr", ""): (31, 0.0474, 146.07, 0.0474, 146.07),
    (7, "nls", "eq1"): (52, 0.0238, 632.22, -0.0874, 667.25),
    (7, "nls", "eq2"): (52, -0.0825, 665.74, -0.1674, 691.36),
    (7, "nls", "eq3"): (40, -0.2799, 689.16, -0.3198, 699.82),
    (7, "nls", "eq4"): (37, 0.2131, 542.07, -0.0425, 623.94),
    (7, "svr", ""): (37, 0.2640, 524.26, 0.2272, 537.19),
    (8, "nls", "eq1"): (285, 0.1862, 453.49, 0.1500, 463.49),
    (8, "nls", "eq2"): (285, 0.1785, 455.63, 0.1374, 466.89),
    (8, "nls", "eq3"): (285, 0.2453, 436.71, 0.2125, 446.12),
    (8, "nls", "eq4"): (273, 0.2427, 442.57, 0.2014, 454.48),
    (8, "svr", ""): (273, 0.3177, 420.08, 0.2500, 440.44),
    (9, "nls", "eq1"): (102, 0.5938, 415.33, 0.2013, 582.39),
    (9, "nls", "eq2"): (102, 0.5938, 415.33, 0.2013, 582.39),
    (9, "nls", "eq3"): (102, 0.5931, 415.67, 0.2640, 559.07),
    (9, "nls", "eq4"): (100, 0.5039, 462.64, 0.2883, 554.11),
    (9, "svr", ""): (100, 0.6686, 378.12, 0.0640, 635.48),
    (10, "nls", "eq1"): (15, -0.1266, 136.69, -0.2249, 142.53),
    (10, "nls", "eq2"): (15, -0.1325, 137.05, -0.2387, 143.33),
    (10, "nls", "eq3"): (15, -0.1938, 140.71, -0.6721, 166.53),
    (10, "nls", "eq4"): (15, -0.3903, 151.85, -0.1011, 135.14),
    (10, "svr", ""): (15, -0.0444, 131.61, -1.6306, 208.88),
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
    assert len(table) == 1032 and table["site_id"].nunique() == 621
    assert table.groupby("biome").size().to_dict() == N_PER_BIOME
    assert {"rs", "site_id", "biome", "tas", "tas_clim", "pr", "pr_pet", "sm", "gpp"} <= set(table.columns)
    assert table["tas"].dropna().between(-20, 35).all() and table["gpp"].dropna().between(0, 4000).all()
    assert table["n_matched"].ge(1).all()


def test_skill_table_reproduced(table):
    from soilresp.models import fit_biomes
    from soilresp.field.covariates import UNITS, models_config

    res = fit_biomes(table, models_config(families=["nls", "svr"]), seed=42, units=UNITS)
    # a biome's own candidates (fallback "", or the biome mean's reason when the mean was
    # deployed among them); a pooled-fallback biome also lists the pooled ones
    own_rows = ~res.skill["fallback"].str.startswith("pooled")
    sk = res.skill[own_rows].set_index(["biome", "family", "form"])
    for key, (n, r2, rmse, sr2, srmse) in PINNED.items():
        row = sk.loc[key]
        assert row["n"] == n, key
        np.testing.assert_allclose([row["cv_r2"], row["site_cv_r2"]], [r2, sr2], atol=0.02, err_msg=str(key))
        np.testing.assert_allclose([row["cv_rmse"], row["site_cv_rmse"]], [rmse, srmse], rtol=0.02,
                                   err_msg=str(key))
    sel = res.selected.set_index("biome")
    # biome 3 (no observations) takes the pooled model; biome 10 (15 rows, its best candidate
    # has location CV R2 <= 0) the biome mean: the pooled model (an Eq 4 since shape-bound fits
    # are eligible) predicts its rows worse than their mean
    assert sel.loc[3, "fallback"].startswith("pooled") and sel.loc[10, "fallback"].startswith("biome mean")
    assert (sel.drop(index=[3, 10])["fallback"] == "").all()
    assert (sel.drop(index=[3, 10])["loc_cv_r2"] > 0).all()
    # site-grouped CV is never much kinder than random CV (repeated years at a site help random CV)
    own = res.skill[res.skill["fallback"] == ""]
    assert (own["site_cv_r2"] <= own["cv_r2"] + 0.05).mean() > 0.9
