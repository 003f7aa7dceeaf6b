"""Shared helpers of the driver readers: file globbing, coordinate standardisation, dates
from file names, CF valid ranges."""

from __future__ import annotations

import datetime as _dt
import glob as _glob
import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from soilresp.errors import input_error

LAT_NAMES = ("lat", "latitude", "y", "nav_lat")
LON_NAMES = ("lon", "longitude", "x", "nav_lon")


def expand(path: Path) -> list[Path]:
    """Files matching a path or glob, sorted; an error naming the pattern when none match."""
    from soilresp.drivers.checks import check_regular_file

    hits = sorted(Path(p) for p in _glob.glob(str(path)))
    if not hits:
        raise input_error(path, "no such driver file")
    for h in hits:   # a FIFO or device would block or stream forever
        check_regular_file(h, allow_dir=h.suffix.lower() == ".zarr", what="driver file")
    return hits


def standardise_coords(da: xr.DataArray, path: Path | str) -> xr.DataArray:
    """Rename lat/lon dims, check them, put lon in [-180, 180) and sort both ascending."""
    ren = {}
    for names, std in ((LAT_NAMES, "lat"), (LON_NAMES, "lon")):
        found = [d for d in da.dims if str(d).lower() in names]
        if not found:
            raise input_error(path, f"no {std} dimension (looked for {names})", column=da.name)
        if found[0] != std:
            ren[found[0]] = std
    da = da.rename(ren)
    lat = np.asarray(da["lat"].values, dtype=float)
    if lat.size > 1 and not (np.all(np.diff(lat) > 0) or np.all(np.diff(lat) < 0)):
        raise input_error(path, "latitude is not monotonic", column="lat")
    if np.nanmax(np.abs(lat)) > 90:
        raise input_error(path, "latitude outside [-90, 90] (swapped lat/lon?)", column="lat",
                          value=float(np.nanmax(np.abs(lat))))
    lon = np.asarray(da["lon"].values, dtype=float)
    if np.nanmax(lon) >= 180 or np.nanmin(lon) < -180:
        da = da.assign_coords(lon=((lon + 180.0) % 360.0) - 180.0)
    da = da.assign_coords(lat=da["lat"].astype(np.float64), lon=da["lon"].astype(np.float64))
    return da.sortby("lat").sortby("lon")


def apply_valid_range(da: xr.DataArray) -> xr.DataArray:
    """Mask values outside the CF ``valid_range`` / ``valid_min`` / ``valid_max``.

    xarray applies ``_FillValue``, ``scale_factor`` and ``add_offset`` but not the valid
    range. CF: a valid range of the packed type is in packed units, so it is unpacked here
    with the same scale and offset before comparing.
    """
    attrs = {**da.encoding, **da.attrs}
    vr = attrs.get("valid_range")
    lo = attrs.get("valid_min", vr[0] if vr is not None else None)
    hi = attrs.get("valid_max", vr[1] if vr is not None else None)
    if lo is None and hi is None:
        return da
    scale = float(da.encoding.get("scale_factor", 1.0))
    offset = float(da.encoding.get("add_offset", 0.0))
    packed = da.encoding.get("dtype")
    ref = vr if vr is not None else (lo if lo is not None else hi)
    if packed is not None and np.asarray(ref).dtype.kind in "iu" and (scale != 1.0 or offset != 0.0):
        lo = None if lo is None else float(lo) * scale + offset
        hi = None if hi is None else float(hi) * scale + offset
    keep = xr.ones_like(da, dtype=bool)
    if lo is not None:
        keep &= da >= float(lo)
    if hi is not None:
        keep &= da <= float(hi)
    out = da.where(keep)
    out.encoding = dict(da.encoding)   # the declared fill stays visible to the plausibility checks
    out.attrs = {k: v for k, v in da.attrs.items() if k not in ("valid_range", "valid_min", "valid_max")}
    return out


_DATE_PATTERNS = (
    (re.compile(r"A(\d{4})(\d{3})(?!\d)"), "doy"),         # MODIS: A2001001
    (re.compile(r"(?<!\d)(\d{4})[-_.]?(\d{2})[-_.]?(\d{2})(?!\d)"), "ymd"),
    (re.compile(r"(?<!\d)(\d{4})[-_.](\d{2})(?!\d)"), "ym"),
    (re.compile(r"(?<!\d)(19\d{2}|20\d{2}|21\d{2})(?!\d)"), "y"),
)


def date_from_name(path: Path | str) -> pd.Timestamp | None:
    """Date encoded in a file name: MODIS ``AYYYYDDD``, ``YYYYMMDD``, ``YYYY-MM`` or ``YYYY``
    (a year alone means 1 January). ``None`` when the name holds no date."""
    name = Path(path).name
    for pat, kind in _DATE_PATTERNS:
        m = pat.search(name)
        if not m:
            continue
        g = [int(x) for x in m.groups()]
        try:
            if kind == "doy":
                return pd.Timestamp(_dt.date(g[0], 1, 1) + _dt.timedelta(days=g[1] - 1))
            if kind == "ymd":
                return pd.Timestamp(g[0], g[1], g[2])
            if kind == "ym":
                return pd.Timestamp(g[0], g[1], 1)
            return pd.Timestamp(g[0], 1, 1)
        except ValueError:
            continue
    return None


def decode_time(da: xr.DataArray, path: Path | str) -> xr.DataArray:
    if da["time"].dtype.kind != "M":
        try:
            da = da.assign_coords(time=da.indexes["time"].to_datetimeindex(time_unit="ns"))
        except TypeError:
            da = da.assign_coords(time=da.indexes["time"].to_datetimeindex())
        except Exception:
            raise input_error(path, "time coordinate is not decodable as dates", column="time") from None
    return da
