"""The annual flux a run maps (``[field] target``) and how outputs name it.

Every stage keeps the flux in the column / variable ``rs`` (the field observations, the
training table, ``product/rs.zarr``): the method is the same for any annual flux, so only
the *names* follow the target. :func:`target_info` maps the target to its symbol, long name,
CF standard name and units; :func:`relabel` rewrites Rs wording of a title or axis label
for another target; :func:`apply_attrs` sets the product variables' attributes.

Known SRDB targets (``srdb-data_fields.txt``; Bond-Lamberty & Thomson 2010):

========== ====== ============================================= ==============================
target     symbol long name                                     CF standard name
========== ====== ============================================= ==============================
Rs_annual  Rs     annual soil respiration                       soil_respiration_carbon_flux
Rh_annual  Rh     annual soil heterotrophic respiration         heterotrophic_respiration_carbon_flux
Ra_annual  Ra     annual root (autotrophic soil) respiration    (none)
========== ====== ============================================= ==============================

Any other name (a column of a user table) is mapped with its own name as symbol and
``"annual <name>"`` as long name; units are always g C m-2 yr-1, written as the UDUNITS string
:data:`soilresp.cf.RS_UNITS` with the carbon named in ``comment`` (the field stage checks the
magnitude, ``docs/field.md`` §1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_TARGET = "Rs_annual"
from soilresp.cf import CARBON_COMMENT, RS_UNITS as UNITS  # noqa: E402


@dataclass(frozen=True)
class TargetInfo:
    column: str             # the input column (SRDB name, or the user table's)
    symbol: str             # short symbol in labels: Rs, Rh, Ra
    name: str               # flux name without "annual": "soil respiration"
    standard_name: str | None
    units: str = UNITS

    @property
    def long_name(self) -> str:
        return f"annual {self.name}"


TARGETS: dict[str, TargetInfo] = {
    "Rs_annual": TargetInfo("Rs_annual", "Rs", "soil respiration", "soil_respiration_carbon_flux"),
    "Rh_annual": TargetInfo("Rh_annual", "Rh", "soil heterotrophic respiration",
                            "heterotrophic_respiration_carbon_flux"),
    "Ra_annual": TargetInfo("Ra_annual", "Ra", "root respiration", None),
}


def target_info(target: str | None) -> TargetInfo:
    """The naming of ``target`` (``None`` = the default ``Rs_annual``)."""
    t = target or DEFAULT_TARGET
    if t in TARGETS:
        return TARGETS[t]
    sym = t[:-len("_annual")] if t.endswith("_annual") else t
    return TargetInfo(t, sym, t.replace("_", " "), None)


def relabel(text: str, info: TargetInfo) -> str:
    """``text`` with the Rs wording replaced by the target's (identity for Rs)."""
    if info.symbol == "Rs":
        return text
    text = re.sub(r"\bsoil respiration\b", info.name, text)
    text = re.sub(r"\bSoil respiration\b", info.name[:1].upper() + info.name[1:], text)
    return re.sub(r"\bRs\b", info.symbol, text)


def apply_attrs(ds, info: TargetInfo):
    """Set the CF attributes of ``rs`` (and ``rs_lo``/``rs_hi``, the title) of a product
    Dataset for ``info``; returns ``ds`` (modified in place). Records the target in the
    Dataset attribute ``soilresp_target`` so readers (the report) need no config."""
    if "rs" in ds:
        a = ds["rs"].attrs
        a["long_name"] = info.long_name
        a["units"] = info.units
        a["comment"] = CARBON_COMMENT
        if info.standard_name:
            a["standard_name"] = info.standard_name
        else:
            a.pop("standard_name", None)
    for v in ("rs_lo", "rs_hi"):
        if v in ds:
            ds[v].attrs["long_name"] = relabel(ds[v].attrs.get("long_name", ""), info)
    ds.attrs["title"] = f"soilresp {info.long_name}"
    ds.attrs["soilresp_target"] = info.column
    ds.attrs["soilresp_target_symbol"] = info.symbol
    return ds


def run_target(run_dir) -> TargetInfo:
    """The target of a finished run, from ``product/rs.zarr`` (Rs when not recorded)."""
    from pathlib import Path

    import zarr

    p = Path(run_dir) / "product" / "rs.zarr"
    try:
        t = zarr.open_group(str(p), mode="r").attrs.get("soilresp_target")
    except Exception:  # noqa: BLE001 - absent or unreadable store: the default naming
        t = None
    return target_info(t)
