"""Offline country outlines for the "far from its stated country" QC check.

Outlines: Natural Earth 1:110m admin-0 countries (public domain), 177 countries, stored in
``data/countries_ne110m.csv`` (rebuilt by ``data/make_countries.py``). No network and no GIS
library are needed: point-in-polygon (even-odd rule) and point-to-edge distances are computed
with numpy on a local equirectangular projection, accurate to a few km at the tolerances
used (tens to hundreds of km). The 1:110m outlines are generalised (errors up to ~10-20 km)
and leave out small countries (e.g. Singapore, Micronesia): records naming those are
flagged ``country_unchecked`` and never dropped.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_FILE = Path(__file__).with_name("data") / "countries_ne110m.csv"
KM_PER_DEG = 111.195  # mean Earth radius 6371.0 km

#: Country names found in SRDB (and common variants) -> ISO 3166 alpha-3 code(s) present in
#: the Natural Earth table. Several codes = any of them is accepted.
ALIASES: dict[str, tuple[str, ...]] = {
    "usa": ("USA",), "us": ("USA",), "unitedstates": ("USA",), "america": ("USA",),
    "alaska": ("USA",), "hawaii": ("USA",),
    "uk": ("GBR",), "greatbritain": ("GBR",), "britain": ("GBR",), "england": ("GBR",),
    "scotland": ("GBR",), "wales": ("GBR",), "northernireland": ("GBR",),
    "russia": ("RUS",), "russianfederation": ("RUS",), "ussr": ("RUS",), "siberia": ("RUS",),
    "korea": ("KOR", "PRK"), "southkorea": ("KOR",), "republicofkorea": ("KOR",),
    "northkorea": ("PRK",),
    "czechrepublic": ("CZE",), "czechia": ("CZE",), "czechoslovakia": ("CZE", "SVK"),
    "congo": ("COG", "COD"), "republicofcongo": ("COG",), "congobrazzaville": ("COG",),
    "drc": ("COD",), "democraticrepublicofcongo": ("COD",), "democraticrepublicofthecongo": ("COD",),
    "zaire": ("COD",),
    "republicofniger": ("NER",), "isreal": ("ISR",), "tuscany": ("ITA",),
    "frenchguiana": ("FRA",), "corsica": ("FRA",), "sardinia": ("ITA",), "sicily": ("ITA",),
    "tibet": ("CHN",), "hongkong": ("CHN",), "innermongolia": ("CHN",), "macau": ("CHN",),
    "borneo": ("IDN", "MYS", "BRN"), "sabah": ("MYS",), "sarawak": ("MYS",),
    "puertorico": ("PRI",), "ivorycoast": ("CIV",), "cotedivoire": ("CIV",),
    "swaziland": ("SWZ",), "eswatini": ("SWZ",), "burma": ("MMR",), "myanmar": ("MMR",),
    "holland": ("NLD",), "thenetherlands": ("NLD",), "macedonia": ("MKD",),
    "bosnia": ("BIH",), "bosniaandherzegovina": ("BIH",), "easttimor": ("TLS",),
    "laos": ("LAO",), "laopdr": ("LAO",), "vietnam": ("VNM",), "vietnamese": ("VNM",),
    "iran": ("IRN",), "syria": ("SYR",), "tanzania": ("TZA",), "bolivia": ("BOL",),
    "venezuela": ("VEN",), "moldova": ("MDA",), "southsudan": ("SSD",),
    "centralafricanrepublic": ("CAF",), "dominicanrepublic": ("DOM",),
    "equatorialguinea": ("GNQ",), "solomonislands": ("SLB",), "falklandislands": ("FLK",),
    "westernsahara": ("ESH",), "greenland": ("GRL",), "svalbard": ("NOR",),
    # a country also stands for its territories that Natural Earth draws separately
    "denmark": ("DNK", "GRL"), "kingdomofdenmark": ("DNK", "GRL"),
    "france": ("FRA", "NCL", "ATF"), "newcaledonia": ("NCL",),
    "unitedkingdom": ("GBR", "FLK"),
    # areas Natural Earth draws apart from the country that lists them
    "cyprus": ("CYP", "CYN"), "somalia": ("SOM", "SOL"), "morocco": ("MAR", "ESH"),
    "serbia": ("SRB", "XKX"),
}
for _k in ("usa", "us", "unitedstates", "unitedstatesofamerica", "america"):
    ALIASES[_k] = ("USA", "PRI")
for _k in ("uk", "greatbritain", "britain"):
    ALIASES[_k] = ("GBR", "FLK")


@dataclass(frozen=True)
class Country:
    iso3: str
    name: str
    edges: np.ndarray  # (n, 4): lon1, lat1, lon2, lat2 of every ring edge
    bbox: tuple[float, float, float, float]  # lon_min, lat_min, lon_max, lat_max


def _key(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.casefold())


@functools.lru_cache(maxsize=1)
def load_countries() -> dict[str, Country]:
    """ISO3 -> :class:`Country` from the bundled Natural Earth 1:110m outlines."""
    rings: dict[str, list[np.ndarray]] = {}
    names: dict[str, str] = {}
    with open(DATA_FILE, encoding="utf-8", newline="") as f:
        for rec in csv.DictReader(f):
            pts = np.array(
                [[float(v) for v in p.split()] for p in rec["coords"].split(";")], dtype=float
            )
            rings.setdefault(rec["iso3"], []).append(pts)
            names[rec["iso3"]] = rec["name"]
    out = {}
    for iso, rs in rings.items():
        edges = np.concatenate(
            [np.column_stack([r, np.roll(r, -1, axis=0)]) for r in rs], axis=0
        )
        allp = np.concatenate(rs)
        bbox = (allp[:, 0].min(), allp[:, 1].min(), allp[:, 0].max(), allp[:, 1].max())
        out[iso] = Country(iso, names[iso], edges, bbox)
    return out


@functools.lru_cache(maxsize=1)
def _name_index() -> dict[str, tuple[str, ...]]:
    idx: dict[str, tuple[str, ...]] = {}
    for iso, c in load_countries().items():
        idx[_key(c.name)] = (iso,)
        idx[_key(iso)] = (iso,)
    idx.update(ALIASES)
    return idx


def country_codes(name: str | None) -> tuple[str, ...]:
    """ISO3 codes for a country name as written in SRDB ('USA', 'England', 'Isreal' ...).

    Empty tuple when the name is unknown or the country is not in the 1:110m table.
    """
    if name is None or not isinstance(name, str) or not name.strip():
        return ()
    codes = _name_index().get(_key(name), ())
    table = load_countries()
    return tuple(c for c in codes if c in table)


def inside(country: Country, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon over all rings of ``country`` (holes included)."""
    lat = np.asarray(lat, float)[:, None]
    lon = np.asarray(lon, float)[:, None]
    x1, y1, x2, y2 = (country.edges[:, k][None, :] for k in range(4))
    straddle = (y1 > lat) != (y2 > lat)
    with np.errstate(divide="ignore", invalid="ignore"):
        xint = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
    crossings = np.sum(straddle & (lon < xint), axis=1)
    return (crossings % 2) == 1


def distance_km(country: Country, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Distance (km) from each point to the country (0 inside), equirectangular about the point."""
    lat = np.asarray(lat, float)
    lon = np.asarray(lon, float)
    out = np.zeros(lat.shape)
    ins = inside(country, lat, lon)
    todo = ~ins
    if not todo.any():
        return out
    plat, plon = lat[todo][:, None], lon[todo][:, None]
    coslat = np.cos(np.radians(plat))
    x1, y1, x2, y2 = (country.edges[:, k][None, :] for k in range(4))

    def wrap(d):
        return (d + 180.0) % 360.0 - 180.0

    # wrap the first end only: edges are short (Natural Earth splits at the antimeridian),
    # so wrapping both ends independently could join two far sides of the globe
    ax0 = wrap(x1 - plon)
    ax, ay = ax0 * coslat, y1 - plat
    bx, by = (ax0 + (x2 - x1)) * coslat, y2 - plat
    dx, dy = bx - ax, by - ay
    den = dx * dx + dy * dy
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(den > 0, -(ax * dx + ay * dy) / den, 0.0)
    t = np.clip(t, 0.0, 1.0)
    cx, cy = ax + t * dx, ay + t * dy
    d = np.sqrt(cx * cx + cy * cy).min(axis=1) * KM_PER_DEG
    out[todo] = d
    return out


def locate(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """ISO3 of the 1:110m outline containing each point, '' where none does (sea, or a small
    island the 1:110m outlines leave out)."""
    lat = np.asarray(lat, float)
    lon = np.asarray(lon, float)
    out = np.full(lat.shape, "", dtype=object)
    for iso, c in load_countries().items():
        x0, y0, x1, y1 = c.bbox
        cand = (out == "") & (lat >= y0) & (lat <= y1) & (lon >= x0) & (lon <= x1)
        if cand.any():
            hit = inside(c, lat[cand], lon[cand])
            idx = np.flatnonzero(cand)[hit]
            out[idx] = iso
    return out


def distance_to_any(codes: tuple[str, ...], lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Smallest distance (km) from each point to any of the countries ``codes``."""
    table = load_countries()
    d = np.full(np.shape(lat), np.inf)
    for c in codes:
        d = np.minimum(d, distance_km(table[c], lat, lon))
    return d
