"""Real-data check of the model suite: SRDB observations with published site covariates.

The covariate table of Bond-Lamberty et al. 2018 (Nature 560:80, github.com/bpbond/rh-changes,
``reproducibility/srdb_filtered.csv``, MIT) gives, for SRDB records, climate at the site and
study year from CRU TS 3.24 (columns named ``*_hadcrut4``), MODIS MOD17 GPP and ESA-CCI soil
moisture. :func:`srdb_training_table` joins them, by SRDB record number, to the observations
that :mod:`soilresp.field` selects from an SRDB release with the paper's rules, assigns the
ten biomes from a climate-zone x land-cover map (:mod:`soilresp.biomes`), and returns a table
that :func:`soilresp.models.fit_biomes` fits like the pipeline's ``sites/training.parquet``.

Covariate columns produced (per observation: the mean over its matched records):

==========  ============================  ==================  ========================
column      source column                 units               role (candidate)
==========  ============================  ==================  ========================
``tas``     ``tmp_hadcrut4`` (study yr)   degC                T
``tas_clim`` ``mat_hadcrut4`` (normal)    degC                T
``pr``      ``pre_hadcrut4`` (study yr)   mm yr-1             M
``pr_pet``  ``pre_hadcrut4 / pet``        1                   M
``sm``      ``sm`` (ESA-CCI v02.2)        m3 m-3              M
``gpp``     ``gpp_modis`` (MOD17)         g C m-2 yr-1        P
==========  ============================  ==================  ========================

A record joins only when its record number is in the covariate table **and** its Rs_annual
equals the covariate table's (the two files come from different SRDB snapshots; a record
number that now names another record is dropped).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from soilresp.errors import input_error

COVARIATES = {"tas": "tmp_hadcrut4", "tas_clim": "mat_hadcrut4", "pr": "pre_hadcrut4", "pet": "pet",
              "sm": "sm", "gpp": "gpp_modis"}
UNITS = {"tas": "degC", "tas_clim": "degC", "pr": "mm yr-1", "pet": "mm yr-1", "pr_pet": "1", "sm": "m3 m-3",
         "gpp": "g C m-2 yr-1"}
#: candidates for the Eq 5 choice on this table
CANDIDATES = {"temperature": ["tas", "tas_clim"], "moisture": ["pr", "pr_pet", "sm"], "productivity": ["gpp"]}
#: ecosystem types outside the ten biomes (docs/field.md, section 8)
NON_BIOME_ECOSYSTEMS = ["Wetland", "Desert", "Tundra", "Urban", "Bare"]


def read_covariates(path: Path | str) -> pd.DataFrame:
    """The rh-changes covariate table (latin-1), one row per SRDB record number."""
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "covariate table not found")
    df = pd.read_csv(path, encoding="latin-1", low_memory=False)
    need = ["Record_number", "Rs_annual", *COVARIATES.values()]
    missing = [c for c in need if c not in df]
    if missing:
        raise input_error(path, "required column missing", column=missing[0])
    # FLUXNET matching repeats a record once per flux year; its covariates are identical
    df = df.drop_duplicates("Record_number")
    out = pd.DataFrame({"record": pd.to_numeric(df["Record_number"], errors="coerce").round(6),
                        "rs_cov": pd.to_numeric(df["Rs_annual"], errors="coerce")})
    for ours, theirs in COVARIATES.items():
        out[ours] = pd.to_numeric(df[theirs], errors="coerce").to_numpy()
    return out.dropna(subset=["record"]).set_index("record")


def join_covariates(records: pd.DataFrame, obs: pd.DataFrame, cov: pd.DataFrame) -> pd.DataFrame:
    """Observation table with the covariates of its records (mean over matched records).

    ``records``: :attr:`FieldResult.records` (record_number, rs, site_id, year, vegetation of
    every kept record); ``obs``: the observations; ``cov``: :func:`read_covariates`.
    """
    kept = records[records["excluded_by"].fillna("").isin(["", "nan", "<NA>"])].copy()
    kept = kept.dropna(subset=["year"]).astype({"year": "int64"})
    kept["record"] = pd.to_numeric(kept["record_number"], errors="coerce").round(6)
    kept = kept.join(cov, on="record", how="inner")
    kept = kept[np.isclose(kept["rs"].to_numpy(float), kept["rs_cov"].to_numpy(float), rtol=1e-6)]
    cols = list(COVARIATES)
    agg = kept.groupby(["site_id", "year", "vegetation"])[cols].mean()
    agg["n_matched"] = kept.groupby(["site_id", "year", "vegetation"]).size()
    out = obs.join(agg, on=["site_id", "year", "vegetation"], how="inner")
    with np.errstate(divide="ignore", invalid="ignore"):
        out["pr_pet"] = np.where(out["pet"] > 0, out["pr"] / out["pet"], np.nan)
    return out.reset_index(drop=True)


def srdb_training_table(srdb: Path | str, covariates: Path | str, *, climate_zones: Path | str,
                        land_cover: Path | str, years: tuple[int, int] = (2000, 2014),
                        resolution: float = 0.1, land_cover_year: int | None = None) -> pd.DataFrame:
    """SRDB observations (paper's rules, ten-biome ecosystem types) with site covariates and biome.

    ``climate_zones``: IPCC climate-zone map; ``land_cover``: MODIS IGBP map; the biome map is
    built on a ``resolution``-degree global grid (:func:`soilresp.biomes.biome_map_from_config`)
    and each site takes its cell's code (:func:`soilresp.field.assign_biomes`); sites on
    excluded cells (0) are dropped. Returns one row per observation with ``rs``
    (g C m-2 yr-1), ``site_id``, ``biome`` and the covariate columns (module docstring).
    """
    from soilresp.biomes import biome_map_from_config
    from soilresp.config import BiomesConfig, FieldConfig, GridConfig
    from soilresp.field import assign_biomes, build_observations
    from soilresp.grid import Grid

    res = build_observations(FieldConfig(path=Path(srdb), exclude_ecosystems=NON_BIOME_ECOSYSTEMS), years)
    tab = join_covariates(res.records, res.observations, read_covariates(covariates))
    grid = Grid.from_config(GridConfig(resolution=resolution, lat_min=-90.0, lat_max=90.0))
    bcfg = BiomesConfig(climate_zones=Path(climate_zones), land_cover=str(land_cover),
                        land_cover_year=land_cover_year)
    biome = biome_map_from_config(bcfg, Path("."), grid, years)
    tab = assign_biomes(tab, biome)
    return tab[tab["biome"] > 0].reset_index(drop=True)


def models_config(**overrides):
    """The ``[models]`` settings of the real-data check (candidates of this table; all families)."""
    from soilresp.config import ModelsConfig

    return ModelsConfig(**{"families": ["nls", "rf", "svr", "ann"], **CANDIDATES, **overrides})


def skill_markdown(res) -> str:
    """Per-biome table of the selected model and the best of each family (random / site CV)."""
    lines = ["| biome | n | sites | selected | predictors | CV R2 | CV RMSE | site CV R2 | site CV RMSE |"
             " best nls R2 / site | rf | svr | ann |",
             "|---|---:|---:|---|---|---:|---:|---:|---:|---|---|---|---|"]
    for _, r in res.selected.iterrows():
        sk = res.skill[res.skill["biome"] == r["biome"]]
        fam = {}
        for f, g in sk.groupby("family"):
            b = g.loc[g["cv_r2"].idxmax()] if g["cv_r2"].notna().any() else None
            fam[f] = "-" if b is None else f"{b['cv_r2']:.2f} / {b['site_cv_r2']:.2f}"
        name = f"{r['family']} {r['form']}".strip() + (" (pooled)" if r["fallback"] else "")
        lines.append(f"| {r['biome']} {r['biome_name']} | {r['n']} | {r['n_sites']} | {name} | {r['predictors']} | "
                     f"{r['cv_r2']:.2f} | {r['cv_rmse']:.0f} | {r['site_cv_r2']:.2f} | {r['site_cv_rmse']:.0f} | "
                     f"{fam.get('nls', '-')} | {fam.get('rf', '-')} | {fam.get('svr', '-')} | {fam.get('ann', '-')} |")
    return "\n".join(lines)


def main(data_dir: Path | str, seed: int = 42, n_jobs: int = 1):
    """Build the table from ``data_dir`` (the shared data layout), fit all families, print."""
    from soilresp.models.fit import fit_biomes

    d = Path(data_dir)
    tab = srdb_training_table(d / "srdb" / "srdb-data_v20200220.csv",
                              d / "srdb_site_covariates" / "rh-changes_srdb_filtered.csv",
                              climate_zones=d / "grids_static" / "ipcc_climate_zones.nc",
                              land_cover=d / "grids_static" / "MODIS_LC_2010.tif", land_cover_year=2010)
    res = fit_biomes(tab, models_config(n_jobs=n_jobs), seed=seed, units=UNITS)
    print(f"{len(tab)} observations at {tab['site_id'].nunique()} sites")
    print(skill_markdown(res))
    if len(res.pooled_skill):
        print("pooled model on all its rows:")
        print(res.pooled_skill.drop(columns=["biome_name", "fallback"]).round(3).to_string(index=False))
    return tab, res


if __name__ == "__main__":  # python -m soilresp.field.covariates DATA_DIR [N_JOBS]
    import sys

    main(sys.argv[1], n_jobs=int(sys.argv[2]) if len(sys.argv) > 2 else 1)
