"""Temporal aggregation of daily, 8-day and monthly series to annual, spring (MAM) and
summer (JJA) values per calendar year (Huang et al. 2020, Methods: annual, spring and
summer drivers).

Rules, per pixel and period (a year, or its MAM / JJA months):

* ``mean`` variables (temperature, LST, soil moisture, EVI, NDVI, SPEI...): the mean of the
  valid time steps, each step weighted equally (as the products' own annual composites).
* ``sum`` variables (precipitation, ET, PET, GPP; each step holds the amount over that step,
  e.g. mm month-1 or g C m-2 8day-1): ``sum(valid values) / sum(valid step days) x period
  days`` - the exact sum when every step is valid, and a gap is filled with the mean daily
  rate of the valid steps (so a missing February weighs less than a missing July). Step days:
  a month's days; 8-day composites start on day-of-year 1, 9, ..., 361 and the last one
  covers the 5 (6 in leap years) days left; daily = 1. Period days are the nominal days of
  the period's steps.
* ``min_valid_fraction``: a period with fewer than ``ceil(f x expected steps)`` valid steps
  is missing (NaN). Expected steps: 12 months / 46 composites / 365-366 days a year; 3 months,
  the composites starting in those months, or the days of MAM / JJA for a season.
* ``annual`` inputs are taken as they are; ``static`` maps (no time axis, e.g. a
  climatology) are repeated for every run year and have no seasons.
* Temperatures (``tas``, ``lst_day``, ``lst_night``) in kelvin are converted to degC.
* Units of sums: per-step amounts become ``... yr-1`` for the year (``mm month-1`` ->
  ``mm yr-1``) and the plain amount for a season (``mm``: the MAM or JJA total).

Each year is one dask chunk along time; the kernel :func:`aggregate_block` is pure numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from soilresp.config import DriverSource
from soilresp.errors import input_error

SEASONS = {"mam": (3, 4, 5), "jja": (6, 7, 8)}
STEPS_PER_YEAR = {"monthly": 12, "8day": 46, "daily": 365, "annual": 1}
TEMPERATURE_VARS = {"tas", "lst_day", "lst_night", "lst_diff"}
_KELVIN = ("K", "kelvin", "Kelvin", "degK")
_SUM_UNITS = {"mm month-1": "mm yr-1", "mm day-1": "mm yr-1", "mm": "mm yr-1",
              "mm 8day-1": "mm yr-1", "kg m-2 8day-1": "mm yr-1", "kg/m^2/8day": "mm yr-1",
              "g C m-2 month-1": "g C m-2 yr-1", "g C m-2 8day-1": "g C m-2 yr-1",
              "g C m-2 day-1": "g C m-2 yr-1", "kg C m-2 8day-1": "kg C m-2 yr-1",
              "kg C/m^2/8day": "kg C m-2 yr-1"}


def step_days(times: pd.DatetimeIndex, frequency: str) -> np.ndarray:
    """Days each time step covers (see module docstring)."""
    t = pd.DatetimeIndex(times)
    ylen = np.where(t.is_leap_year, 366, 365)
    if frequency == "monthly":
        return t.days_in_month.to_numpy().astype(float)
    if frequency == "daily":
        return np.ones(len(t))
    if frequency == "8day":
        start = 1 + 8 * ((t.day_of_year.to_numpy() - 1) // 8)
        return np.minimum(8, ylen - start + 1).astype(float)
    return ylen.astype(float)  # annual


def nominal_steps(year: int, frequency: str) -> pd.DatetimeIndex:
    """The complete calendar of steps of one year for a frequency."""
    if frequency == "monthly":
        return pd.date_range(f"{year}-01-01", periods=12, freq="MS")
    if frequency == "daily":
        return pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
    if frequency == "8day":
        return pd.DatetimeIndex([pd.Timestamp(year, 1, 1) + pd.Timedelta(days=8 * k) for k in range(46)])
    return pd.DatetimeIndex([pd.Timestamp(year, 1, 1)])


def aggregate_block(x: np.ndarray, days: np.ndarray, use: np.ndarray, expected: float,
                    period_days: float, how: str, min_frac: float) -> np.ndarray:
    """One period from its steps: ``x`` (time, ...) -> (1, ...), float32 (see module rules)."""
    x = np.asarray(x, dtype=np.float64)[use]
    d = days[use]
    valid = np.isfinite(x)
    cnt = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if how == "sum":
            vd = (valid * d.reshape((-1,) + (1,) * (x.ndim - 1))).sum(axis=0)
            val = np.where(valid, x, 0.0).sum(axis=0) / vd * period_days
        else:
            val = np.where(valid, x, 0.0).sum(axis=0) / cnt
    need = max(1, math.ceil(min_frac * expected - 1e-9))
    val = np.where(cnt >= need, val, np.nan)
    return val[None].astype(np.float32)


def aggregate(da: xr.DataArray, src: DriverSource, years: tuple[int, int], min_frac: float,
              path_for_errors: str) -> dict[str, xr.DataArray]:
    """Annual (and seasonal) values per year for one driver; keys ``var``, ``var_mam``,
    ``var_jja``; dims ``(year, lat, lon)``; lazy when ``da`` is."""
    y0, y1 = years
    yrs = np.arange(y0, y1 + 1)
    units = da.attrs.get("units", "1")
    gaps: dict = {}
    long_name = da.attrs.get("long_name", src.variable)
    if src.frequency == "static" or "time" not in da.dims:
        rep = da.astype(np.float32).expand_dims(year=yrs).transpose("year", "lat", "lon")
        if "lat" in da.chunksizes:
            rep = rep.chunk({"year": 1})
        out = {src.variable: rep}
    else:
        from soilresp.drivers import checks

        t_all = pd.DatetimeIndex(da["time"].values)
        checks.check_time_duplicates(t_all, path_for_errors, src.variable)
        gaps = checks.check_time_gaps(t_all[(t_all.year >= y0) & (t_all.year <= y1)], yrs, src.frequency,
                                      path_for_errors, src.variable, getattr(src, "max_missing_fraction", 0.0))
        out = _aggregate_series(da, src, yrs, min_frac, path_for_errors)
        if src.aggregation == "sum" and src.frequency != "annual":
            units = _SUM_UNITS.get(units, f"{units} (summed per period)")
    for k, v in list(out.items()):
        v = v.assign_coords(year=yrs)
        v["year"].attrs = {"long_name": "calendar year", "units": "1"}
        attrs = {"units": units, "long_name": long_name}
        if gaps:   # allowed by max_missing_fraction: recorded with the data
            attrs["soilresp_missing_steps"] = "; ".join(f"{y}: {m} of {n}" for y, (m, n) in sorted(gaps.items()))
        if src.variable in TEMPERATURE_VARS and units in _KELVIN:
            v = v - np.float32(273.15)
            attrs["units"] = "degC"
        v.attrs = attrs
        if k != src.variable:
            season = k.rsplit("_", 1)[1].upper()
            if src.aggregation == "sum" and attrs["units"].endswith(" yr-1"):
                v.attrs["units"] = attrs["units"][: -len(" yr-1")]  # the season's total
                v.attrs["long_name"] = f"{long_name} ({season} total)"
            else:
                v.attrs["long_name"] = f"{long_name} ({season} mean)"
        out[k] = v.rename(k)
    return out


def _aggregate_series(da, src, yrs, min_frac, path_for_errors):
    da = da.sortby("time")
    t = pd.DatetimeIndex(da["time"].values)
    keep = (t.year >= yrs[0]) & (t.year <= yrs[-1])
    da, t = da.isel(time=np.nonzero(keep)[0]), t[keep]
    have = set(np.unique(t.year).tolist())
    missing = sorted(set(yrs.tolist()) - have)
    if missing:
        raise input_error(path_for_errors, f"years {missing} are not in the file", column="time")
    counts = tuple(int((t.year == y).sum()) for y in yrs)
    da = da.chunk({"time": counts})
    days = step_days(t, src.frequency)
    freq = src.frequency
    how = src.aggregation if freq != "annual" else "mean"
    periods = {src.variable: None}
    if src.seasons and freq != "annual":
        periods |= {f"{src.variable}_{s}": m for s, m in SEASONS.items()}
    starts = np.concatenate([[0], np.cumsum(counts)])
    names = list(periods)
    plan = []  # per period: step mask, expected steps and period days per year
    for months in periods.values():
        use_all = np.ones(len(t), bool) if months is None else np.isin(t.month, months)
        exp, pdays = [], []
        for y in yrs:
            nom = nominal_steps(int(y), freq)
            sel = np.ones(len(nom), bool) if months is None else np.isin(nom.month, months)
            exp.append(float(sel.sum()))
            pdays.append(float(step_days(nom, freq)[sel].sum()))
        plan.append((use_all, exp, pdays))

    def kernel(block, block_info=None):
        # all periods of one year from one read of its steps (one task: bounded memory)
        k = int(np.searchsorted(starts, block_info[0]["array-location"][0][0], side="right") - 1)
        s0, s1 = starts[k], starts[k + 1]
        return np.stack([aggregate_block(block, days[s0:s1], u[s0:s1], e[k], p[k], how, min_frac)
                         for u, e, p in plan])

    arr = da.data.map_blocks(kernel, new_axis=0,
                             chunks=((len(names),), (1,) * len(yrs)) + da.data.chunks[1:],
                             dtype=np.float32, meta=np.array((), dtype=np.float32))
    out = {}
    for n, name in enumerate(names):
        out[name] = xr.DataArray(arr[n], dims=("year",) + da.dims[1:],
                                 coords={"year": yrs, **{d: da[d] for d in da.dims[1:]}})
    return out
