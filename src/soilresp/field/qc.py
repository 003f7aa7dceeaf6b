"""Coordinate and value QC of field records (issue 4, item 4).

Checks, all offline:

* coordinates present and inside +-90 / +-180 degrees;
* on land: the 1 km GLOBE mask of ``global-land-mask``, packaged compactly
  (:mod:`soilresp.landmask`; lakes count as land); a site
  counts as on land when the point itself or any point at ``tolerance`` or half of it in
  the 8 compass directions is land, so coastal sites with coarse coordinates pass;
* near the stated country: distance to the Natural Earth 1:110m outline of the country
  named in the record (:mod:`soilresp.field.countries`) at most ``country_tolerance_km``;
  names not in the table are reported as ``country_unchecked``;
* swapped or sign-flipped coordinates: for records out of range or far from their
  country, the candidates (lon, lat), (lat, -lon), (-lat, lon), (-lat, -lon) are tried;
  one that lies in the stated country is reported, and applied when configured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from soilresp.field import countries as _c

#: candidate corrections tried in this order: (name, function of (lat, lon))
CANDIDATE_FIXES = (
    ("lat/lon swapped", lambda la, lo: (lo, la)),
    ("longitude sign flipped", lambda la, lo: (la, -lo)),
    ("latitude sign flipped", lambda la, lo: (-la, lo)),
    ("both signs flipped", lambda la, lo: (-la, -lo)),
)


def in_range(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    lat = np.asarray(lat, float)
    lon = np.asarray(lon, float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)


def on_land(lat: np.ndarray, lon: np.ndarray, tolerance_deg: float = 0.1) -> np.ndarray:
    """True where the point, or a point within ``tolerance_deg`` (8 directions, 2 radii), is land.

    Uses the packaged 1 km GLOBE mask (:func:`soilresp.landmask.is_land`: the answers of
    ``global_land_mask.globe.is_land`` without its ~940 MB). Points out of range give False.
    """
    from soilresp.landmask import is_land

    lat = np.asarray(lat, float)
    lon = np.asarray(lon, float)
    ok = in_range(lat, lon)
    out = np.zeros(lat.shape, bool)
    if not ok.any():
        return out
    la, lo = lat[ok], lon[ok]
    offsets = [(0.0, 0.0)]
    if tolerance_deg > 0:
        for r in (tolerance_deg / 2, tolerance_deg):
            for ang in np.arange(8) * np.pi / 4:
                offsets.append((r * np.sin(ang), r * np.cos(ang)))
    land = np.zeros(la.shape, bool)
    for dlat, dlon in offsets:
        qa = np.clip(la + dlat, -90.0, 90.0)
        qo = (lo + dlon + 180.0) % 360.0 - 180.0
        land |= np.asarray(is_land(qa, qo), bool)
        if land.all():
            break
    out[ok] = land
    return out


def country_distance(
    lat: np.ndarray, lon: np.ndarray, country: pd.Series
) -> tuple[np.ndarray, np.ndarray]:
    """Distance (km) of each point to its stated country, and whether the name was known.

    Unknown names and out-of-range points give NaN distance.
    """
    lat = np.asarray(lat, float)
    lon = np.asarray(lon, float)
    dist = np.full(lat.shape, np.nan)
    known = np.zeros(lat.shape, bool)
    ok = in_range(lat, lon)
    names = country.astype("string").fillna("").to_numpy()
    for name in pd.unique(names):
        codes = _c.country_codes(name)
        sel = names == name
        if not codes:
            continue
        known[sel] = True
        sel &= ok
        if sel.any():
            dist[sel] = _c.distance_to_any(codes, lat[sel], lon[sel])
    return dist, known


def find_fix(
    lat: float, lon: float, country: str, tolerance_km: float, land_tolerance_deg: float = 0.1
) -> tuple[str, float, float] | None:
    """First :data:`CANDIDATE_FIXES` entry that puts the point on land (see :func:`on_land`)
    and within ``tolerance_km`` of ``country``; None when no candidate does."""
    codes = _c.country_codes(country)
    if not codes or not (np.isfinite(lat) and np.isfinite(lon)):
        return None
    for name, f in CANDIDATE_FIXES:
        la, lo = f(lat, lon)
        if not in_range(np.array([la]), np.array([lo]))[0]:
            continue
        d = _c.distance_to_any(codes, np.array([la]), np.array([lo]))[0]
        if d <= tolerance_km and on_land(np.array([la]), np.array([lo]), land_tolerance_deg)[0]:
            return name, float(la), float(lo)
    return None
