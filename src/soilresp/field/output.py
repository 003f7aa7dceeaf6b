"""Write the field stage's outputs atomically, with provenance (issue 4, item 8).

``observations.parquet`` (schema in ``docs/field.md`` and
:data:`soilresp.field.select.OBSERVATION_COLUMNS`), ``cascade.csv`` (records left after each
rule), ``qc.csv`` (every QC flag) and ``records.csv`` (every input record with the rule
that excluded it). The Parquet file's provenance holds the run's ``prov`` plus the field
metadata (source file, its SHA-256, SRDB release, period, counts and the cascade).
"""

from __future__ import annotations

from pathlib import Path

from soilresp.field.select import OBSERVATION_COLUMNS, FieldResult
from soilresp.io import write_csv, write_table


def write_field_outputs(result: FieldResult, out_dir: str | Path, prov: dict) -> dict[str, Path]:
    """Write the outputs into ``out_dir``; returns ``{"observations", "cascade", "qc",
    "records"}`` -> path (``observations.parquet``, ``cascade.csv``, ``qc.csv``,
    ``records.csv``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    obs = result.observations[list(OBSERVATION_COLUMNS)].reset_index(drop=True)
    obs = obs.astype({k: (str if v == "str" else v) for k, v in OBSERVATION_COLUMNS.items()})
    full_prov = dict(prov or {})
    full_prov["field"] = {
        **result.meta,
        "cascade": result.cascade[["rule", "records_remaining", "records_removed"]].to_dict(
            orient="records"
        ),
        "units": {"rs": "g C m-2 yr-1", "lat": "degrees_north", "lon": "degrees_east"},
    }
    paths = {
        "observations": write_table(out_dir / "observations.parquet", obs, full_prov),
        "cascade": write_csv(out_dir / "cascade.csv", result.cascade),
        "qc": write_csv(out_dir / "qc.csv", result.qc),
    }
    if result.records is not None and len(result.records):
        paths["records"] = write_csv(out_dir / "records.csv", result.records)
    return paths
