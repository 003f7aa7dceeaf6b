"""Field soil respiration records: reading, the paper's selection rules, QC and outputs.

Huang et al. 2020 (Sci. Adv. 6:eabb8508), Methods: field data - annual Rs observations
from the Soil Respiration Database (SRDB, Bond-Lamberty & Thomson 2010,
github.com/bpbond/srdb, MIT) or any table with a column mapping. See ``docs/field.md``.

Typical use::

    from soilresp.field import build_observations, write_field_outputs
    result = build_observations(cfg.field, cfg.run.years, base_dir=cfg.base_dir)
    print(result.summary())
    write_field_outputs(result, out_dir, prov)
"""

from soilresp.field.biomes import assign_biomes
from soilresp.field.fetch import (
    DEFAULT_SRDB_VERSION,
    SRDB_RELEASES,
    fetch_srdb,
    identify_release,
)
from soilresp.field.output import write_field_outputs
from soilresp.field.select import (
    OBSERVATION_COLUMNS,
    RULES,
    FieldResult,
    build_observations,
    format_cascade,
    select_observations,
)
from soilresp.field.srdb import SRDB_COLUMNS, read_srdb, read_srdb_studies
from soilresp.field.table import CANONICAL_COLUMNS, read_mapped_table

__all__ = [
    "CANONICAL_COLUMNS",
    "DEFAULT_SRDB_VERSION",
    "OBSERVATION_COLUMNS",
    "RULES",
    "SRDB_COLUMNS",
    "SRDB_RELEASES",
    "FieldResult",
    "assign_biomes",
    "build_observations",
    "fetch_srdb",
    "format_cascade",
    "identify_release",
    "read_mapped_table",
    "read_srdb",
    "read_srdb_studies",
    "select_observations",
    "write_field_outputs",
]
