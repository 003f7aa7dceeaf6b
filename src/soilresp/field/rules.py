"""Normalisation helpers behind the selection rules (Huang et al. 2020, Methods: field data).

Each helper is small and pure so that it can be tested on its own:

* :func:`normalize_method` - SRDB ``Meas_method`` spelling variants ("IGRA",
  "Gas Chromatography", "GC") to one label;
* :func:`parse_quality_flags` - SRDB ``Quality_flag`` cells holding one or several codes
  ("Q01, Q03", "Q1,Q10") to integer codes (``expanded_field_notes.txt``: Q0-Q16);
* :func:`calendar_year` - SRDB ``Study_midyear`` to a calendar year (X.5 = middle of X);
* :func:`vegetation_label` - SRDB ``Ecosystem_type`` + ``Leaf_habit`` to one label.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

_IRGA = "IRGA"
_GC = "Gas chromatography"
#: method spellings (lower case, letters and digits only) -> canonical label
METHOD_ALIASES: dict[str, str] = {
    "irga": _IRGA,
    "igra": _IRGA,  # 25 SRDB v20200220 records carry this transposition
    "infraredgasanalyzer": _IRGA,
    "infraredgasanalyser": _IRGA,
    "infraredgasanalysis": _IRGA,
    "gaschromatography": _GC,
    "gaschromatograph": _GC,
    "gaschromotography": _GC,
    "gc": _GC,
    "sodalime": "Soda lime",
    "alkaliabsorption": "Alkali absorption",
    "alkalitrap": "Alkali absorption",
}
_TOKEN_SPLIT = re.compile(r"\s*(?:[,;/+&]|\band\b)\s*", re.IGNORECASE)


def _key(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.casefold())


def normalize_method(text: str | None) -> str | None:
    """Canonical label of one measurement method, or the stripped text when unknown.

    ``"IRGA"``, ``"IGRA"``, ``"infrared gas analyzer"`` -> ``"IRGA"``;
    ``"Gas Chromatography"``, ``"GC"`` -> ``"Gas chromatography"``. Missing -> ``None``.
    """
    if text is None or (isinstance(text, float) and math.isnan(text)) or text is pd.NA:
        return None
    text = str(text).strip()
    if not text:
        return None
    return METHOD_ALIASES.get(_key(text), text)


def method_accepted(text: str | None, accepted: set[str]) -> bool:
    """Whether a ``Meas_method`` cell is accepted.

    A cell may name several methods ("IRGA, static, gradient"); it is accepted only when
    every part normalises to an accepted method, because the annual value then cannot be
    attributed to the accepted one alone.
    """
    if text is None or text is pd.NA or (isinstance(text, float) and math.isnan(text)):
        return False
    parts = [p for p in _TOKEN_SPLIT.split(str(text).strip()) if p]
    if not parts:
        return False
    return all(normalize_method(p) in accepted for p in parts)


_FLAG = re.compile(r"^[Qq]\s*0*(\d+)$")


def parse_flag_code(code: str) -> int:
    """``"Q10"`` -> 10, ``"Q01"`` and ``"Q1"`` -> 1, ``"Q0"`` -> 0; ValueError otherwise."""
    m = _FLAG.match(code.strip())
    if not m:
        raise ValueError(f"not a quality flag code: {code!r}")
    return int(m[1])


def parse_quality_flags(text: str | None) -> tuple[set[int], list[str]]:
    """Split an SRDB ``Quality_flag`` cell into codes.

    Codes may be separated by commas, semicolons or spaces ("Q01, Q03", "Q03,Q10,Q16").
    Returns ``(codes, unrecognised_tokens)``; a missing cell gives ``(set(), [])``.
    """
    if text is None or text is pd.NA or (isinstance(text, float) and math.isnan(text)):
        return set(), []
    codes: set[int] = set()
    bad: list[str] = []
    # "Q 10" is one code; split on separators and on a space before a new 'Q'
    for tok in re.split(r"[,;|]+|\s+(?=[Qq])", str(text)):
        tok = tok.strip()
        if not tok:
            continue
        try:
            codes.add(parse_flag_code(tok))
        except ValueError:
            bad.append(tok)
    return codes, bad


def calendar_year(midyear: pd.Series) -> pd.Series:
    """Calendar year of an SRDB ``Study_midyear`` (float) as nullable ``Int64``.

    SRDB ``expanded_field_notes.txt``: a study running 1 Jan - 31 Dec 2015 is entered as
    2015.5, and 1 Jul 2014 - 30 Jun 2015 as 2015.0; so X.5 is calendar year X and the
    floor is taken for every value (X.0, X.25, X.75 -> X). Integer years of other tables
    are unchanged. Values that cannot be a year (|y| >= 100000, inf) become missing, so the
    study-period rule drops the record instead of the integer cast overflowing.
    """
    y = pd.to_numeric(midyear, errors="coerce").astype("float64")
    y = y.where(y.abs() < 1e5)
    return pd.Series(np.floor(y), index=midyear.index).astype("Int64")


_LEAF = (("decid", "Deciduous"), ("decis", "Deciduous"), ("everg", "Evergreen"), ("mix", "Mixed"))


def normalize_leaf_habit(text: str | None) -> str | None:
    """SRDB ``Leaf_habit`` to ``Deciduous``/``Evergreen``/``Mixed`` or None.

    Handles the variants of SRDB v20200220: "Decidious", "Mixed of evergreen and
    deciduous", "Evergreen broadleaf". Values that are not a leaf habit ("Natural") -> None.
    """
    if text is None or text is pd.NA or (isinstance(text, float) and math.isnan(text)):
        return None
    k = str(text).strip().casefold()
    for prefix, label in _LEAF:
        if k.startswith(prefix):
            return label
    return None


def vegetation_label(ecosystem: str | None, leaf_habit: str | None) -> str:
    """Vegetation type of a record: ``Ecosystem_type`` and, when known, ``/Leaf_habit``.

    E.g. ``"Forest/Deciduous"``, ``"Grassland"``; a missing ecosystem type is
    ``"Unknown"``. The text is title-cased so "forest" and "Forest" group together.
    """
    if ecosystem is None or ecosystem is pd.NA or (
        isinstance(ecosystem, float) and math.isnan(ecosystem)
    ) or not str(ecosystem).strip():
        eco = "Unknown"
    else:
        eco = " ".join(str(ecosystem).split())
        eco = eco[:1].upper() + eco[1:].lower()
    leaf = normalize_leaf_habit(leaf_habit)
    return f"{eco}/{leaf}" if leaf else eco


_TRUE = {"1", "true", "t", "yes", "y", "x", "duplicate", "dup"}
_FALSE = {"", "0", "false", "f", "no", "n", "none", "nan", "na"}


def is_duplicate(value) -> bool:
    """Whether a duplicate marker is set.

    SRDB ``Duplicate_record`` holds the study number the record duplicates (empty when not
    a duplicate); other tables may use booleans or yes/no.
    """
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return False
    k = str(value).strip().casefold()
    if k in _FALSE:
        return False
    return True if k in _TRUE else bool(k)


def site_slug(name: str | None, max_len: int = 40) -> str:
    """Lower-case ASCII slug of a site name ('BOREAS NSA-D1998' -> 'boreas-nsa-d1998')."""
    if name is None or name is pd.NA or (isinstance(name, float) and math.isnan(name)):
        return ""
    import unicodedata

    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^0-9a-z]+", "-", text.casefold()).strip("-")
    return slug[:max_len].rstrip("-")


def make_site_id(lat: float, lon: float, name: str | None, decimals: int = 2) -> str:
    """Stable site id ``'<lat>_<lon>_<slug>'`` from rounded coordinates and the site name.

    E.g. ``make_site_id(56.634, -99.94, "BOREAS NSA-D1998")`` ->
    ``'56.63_-99.94_boreas-nsa-d1998'``; without a name just ``'56.63_-99.94'``. The same
    place, name and precision always give the same id, whatever the input order.
    """
    la = round(float(lat), decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    lo = round(float(lon), decimals) + 0.0
    base = f"{la:.{decimals}f}_{lo:.{decimals}f}"
    slug = site_slug(name)
    return f"{base}_{slug}" if slug else base
