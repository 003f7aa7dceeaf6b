"""Plausibility checks of driver and class-map inputs at the edge (issue 17).

Each check is one function that raises an :class:`~soilresp.errors.InputError` naming the
file, the variable and the offending value, and suggests the fix. They catch inputs that
read without error but would give a silently wrong product: Kelvin where degC is declared,
undeclared fill values, a time axis with duplicates or missing steps, a fill value that
lies inside the valid range or equals a real class code, a non-regular file (a FIFO would
hang the reader), a GDAL VRT (it reads other files and URLs) or a network path.
``docs/reliability.md`` lists them; ``tests/test_drivers_checks.py`` tests each.

Value checks look at a sample: up to three time steps (first, middle, last), so they cost
a few map reads whatever the length of the series.
"""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from soilresp.errors import input_error

TEMPERATURE_VARS = ("tas", "lst_day", "lst_night", "tmin", "tmax", "tmean", "ts", "tsoil")
_DEGC = ("degC", "degree_Celsius", "degrees_Celsius", "celsius", "Celsius", "C", "°C", "deg C")
_KELVIN = ("K", "kelvin", "Kelvin", "degK")
_NO_UNITS = ("", "1", None)
# plausible ranges of values in the given units: (variable prefix, units or None = any, lo, hi)
PHYSICAL_RANGES = [
    # temperatures: gross bounds (wrong units or scale), not climate records
    ("tas", _DEGC, -120.0, 80.0), ("lst_", _DEGC, -150.0, 110.0),
    ("tas", _KELVIN, 120.0, 360.0), ("lst_", _KELVIN, 100.0, 400.0),
    ("pr", None, 0.0, 2e5), ("pet", None, -50.0, 1e5), ("et", None, -50.0, 1e5),
    # indices a little beyond +-1 (noise, gap filling) are kept; a missing scale factor is not
    ("gpp", None, -1e3, 1e5), ("ndvi", None, -1.5, 1.5), ("evi", None, -1.5, 1.5),
    ("sm", ("m3 m-3", "m3/m3", "1", "fraction"), 0.0, 1.5), ("spei", None, -10.0, 10.0),
    ("tc", ("%", "percent"), 0.0, 100.5), ("sv", ("%", "percent"), 0.0, 100.5),
    ("bg", ("%", "percent"), 0.0, 100.5),
]
# values that are fill markers in common products, never physical values
FILL_SENTINELS = (-9999.0, -999.0, -32768.0, 32767.0, 65535.0, -3.4028234663852886e38, 9.969209968386869e36,
                  1e20, -1e20)
ALLOWED_GDAL_DRIVERS = ("GTiff", "COG", "netCDF", "HDF4", "HDF4Image", "HDF5", "HDF5Image", "Zarr")


# ------------------------------------------------------------------ files
def check_regular_file(path: Path | str, allow_dir: bool = False, what: str = "input file") -> None:
    """Refuse FIFOs, devices and sockets (a named pipe would block the reader forever)."""
    p = Path(path)
    try:
        st = p.stat()   # stat never opens the file: it cannot block on a FIFO
    except FileNotFoundError:
        raise input_error(p, f"{what} not found") from None
    except OSError as e:
        raise input_error(p, f"{what} cannot be read: {e.strerror or e}") from None
    if stat.S_ISREG(st.st_mode) or (allow_dir and stat.S_ISDIR(st.st_mode)):
        return
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode)
            else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a special file")
    raise input_error(p, f"{what} is {kind}, not a regular file; give a file")


def is_network_path(path: str | Path) -> bool:
    s = str(path)
    return "://" in s or s.startswith("/vsi")


def check_not_network(path: str | Path, allow_network: bool = False) -> None:
    """Network and GDAL virtual paths (``http://``, ``/vsicurl/``...) only when the config asks."""
    if is_network_path(path) and not allow_network:
        raise input_error(path, "network or GDAL virtual path refused; set allow_network = true in "
                          "this [[drivers.sources]] entry to read it", column="allow_network")


def check_not_vrt(path: Path | str, allow_vrt: bool = False) -> None:
    """A GDAL VRT (XML; also when named .tif) reads other local files and URLs: refused
    unless the config allows it."""
    p = Path(path)
    if allow_vrt or not p.is_file():
        return
    with open(p, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith((b"<vrtdataset", b"<?xml")) or p.suffix.lower() == ".vrt":
        raise input_error(p, "is a GDAL VRT (it can read other files and URLs); refused unless "
                          "allow_vrt = true in its [[drivers.sources]] entry", column="allow_vrt")


def gdal_driver(path: Path | str, allow_vrt: bool = False) -> str:
    """The GDAL driver that opens ``path``, trying only :data:`ALLOWED_GDAL_DRIVERS` (plus VRT
    when allowed) one at a time, so GDAL never picks another format by sniffing the content."""
    from soilresp.extras import require

    rasterio = require("rasterio", "geotiff", f"reading GeoTIFF {path}")
    from rasterio.errors import RasterioIOError

    with rasterio.Env() as env:
        have = env.drivers()
    allowed = [d for d in (*ALLOWED_GDAL_DRIVERS, *(["VRT"] if allow_vrt else [])) if d in have]
    for drv in allowed:
        try:
            with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(path, driver=drv):
                return drv
        except RasterioIOError:
            continue
    raise input_error(path, f"not a raster any allowed GDAL driver reads ({', '.join(allowed)})")


# ------------------------------------------------------------------ values
def sample_values(da: xr.DataArray) -> np.ndarray:
    """The finite values (float64, flat) of three time steps (first, middle, last) of ``da``,
    or of all of it without a time axis longer than 3: what the value checks look at."""
    s = da
    if "time" in da.dims and da.sizes["time"] > 3:
        n = da.sizes["time"]
        s = da.isel(time=sorted({0, n // 2, n - 1}))
    v = np.asarray(s.values, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


def _units(da: xr.DataArray) -> str | None:
    u = da.attrs.get("units")
    return None if u in _NO_UNITS else str(u).strip()


def check_undeclared_fill(values: np.ndarray, path, variable: str) -> None:
    """A common fill marker (-9999, -32768, 9.97e36, 1e20...) or |x| > 1e15 left in the decoded
    values means the file does not declare its fill value."""
    if values.size == 0:
        return
    big = np.abs(values) > 1e15
    hit = np.isin(values, np.asarray(FILL_SENTINELS)) | big
    if hit.any():
        v = float(values[np.argmax(hit)])
        raise input_error(path, f"value {v:g} occurs in {int(hit.sum())} sampled cells: an undeclared fill "
                          "value? declare it as _FillValue / missing_value (NetCDF) or nodata (GeoTIFF)",
                          column=variable, value=v)


def check_temperature_units(values: np.ndarray, units: str | None, path, variable: str) -> None:
    """Kelvin values under degC (or no) units, or Celsius values under 'K', are errors."""
    if values.size == 0 or not variable.startswith(TEMPERATURE_VARS):
        return
    med = float(np.median(values))
    if (units is None or units in _DEGC) and 150.0 <= med <= 350.0:
        said = f"units {units!r}" if units else "no units"
        raise input_error(path, f"values look like kelvin (median {med:.1f}) but the file has {said}; set "
                          "units = \"K\" in its [[drivers.sources]] entry (converted to degC) or fix the file",
                          column=variable, value=round(med, 2))
    if units in _KELVIN and med < 120.0:
        raise input_error(path, f"units 'K' but the values look like degC (median {med:.1f}); set "
                          "units = \"degC\" or fix the file", column=variable, value=round(med, 2))


def check_physical_range(values: np.ndarray, units: str | None, path, variable: str,
                         tolerance: float = 0.001) -> None:
    """More than ``tolerance`` of the sampled values outside the variable's plausible range
    (:data:`PHYSICAL_RANGES`) is an error naming the worst value."""
    if values.size == 0:
        return
    for prefix, unit_set, lo, hi in PHYSICAL_RANGES:
        if not variable.startswith(prefix) or (unit_set is not None and units not in unit_set):
            continue
        out = (values < lo) | (values > hi)
        if out.mean() > tolerance:
            v = float(values[out][np.argmax(np.abs(values[out]))])
            raise input_error(path, f"{int(out.sum())} of {values.size} sampled values outside the plausible "
                              f"range [{lo:g}, {hi:g}] {units or ''} of {prefix.rstrip('_')} (wrong units or "
                              "scale factor?)", column=variable, value=v)
        return


def check_valid_range_decoding(da: xr.DataArray, path, variable: str) -> None:
    """CF: the fill value must lie outside ``valid_range`` (else real values equal to it are
    masked), and ``valid_min <= valid_max``."""
    attrs = {**da.encoding, **da.attrs}
    vr = attrs.get("valid_range")
    lo = attrs.get("valid_min", None if vr is None else vr[0])
    hi = attrs.get("valid_max", None if vr is None else vr[1])
    if lo is not None and hi is not None and float(lo) > float(hi):
        raise input_error(path, f"valid range [{lo}, {hi}] is reversed", column=variable, value=[lo, hi])
    for key in ("_FillValue", "missing_value"):
        fill = attrs.get(key)
        if fill is None or lo is None or hi is None:
            continue
        for f in np.atleast_1d(fill):
            if float(lo) <= float(f) <= float(hi):
                raise input_error(path, f"declared {key} {f} lies inside the valid range [{lo}, {hi}]: real "
                                  "values equal to it are masked; fix the file's attributes", column=variable,
                                  value=float(f))


def check_fill_not_class(da: xr.DataArray, path, variable: str, codes) -> None:
    """A class map whose declared fill (``_FillValue`` / ``missing_value`` / nodata) equals a
    valid class code would silently turn that class into 'no data'."""
    attrs = {**da.encoding, **da.attrs}
    codes = {int(c) for c in codes}
    for key in ("_FillValue", "missing_value", "nodata"):
        fill = attrs.get(key)
        if fill is None:
            continue
        for f in np.atleast_1d(fill):
            if np.isfinite(float(f)) and float(f) == int(f) and int(f) in codes:
                raise input_error(path, f"declared {key} {int(f)} is also a valid class code "
                                  f"({min(codes)}-{max(codes)}): that class would be read as missing; "
                                  "use a fill outside the codes (e.g. 255)", column=variable, value=int(f))


# ------------------------------------------------------------------ time axis
def check_time_duplicates(times, path, variable: str) -> None:
    t = pd.DatetimeIndex(times)
    dup = t[t.duplicated()]
    if len(dup):
        raise input_error(path, f"time step {dup[0].date()} occurs {int((t == dup[0]).sum())} times "
                          f"({len(dup)} duplicated steps)", column="time", value=str(dup[0].date()))


def missing_steps(times, years, frequency: str) -> dict[int, tuple[int, int]]:
    """{year: (missing, expected)} of calendar steps absent from the time axis."""
    from soilresp.drivers.aggregate import nominal_steps

    t = pd.DatetimeIndex(times)
    out = {}
    for y in years:
        nom = nominal_steps(int(y), frequency)
        have = t[t.year == y]
        if frequency == "monthly":
            got = len(set(have.month))
        elif frequency == "8day":
            got = len(set((have.day_of_year - 1) // 8))
        elif frequency == "daily":
            got = len(set(have.day_of_year))
        else:
            got = min(1, len(have))
        if 0 < got < len(nom):   # a year absent altogether is the readers' "years not in the file"
            out[int(y)] = (len(nom) - got, len(nom))
    return out


def check_time_gaps(times, years, frequency: str, path, variable: str,
                    max_missing_fraction: float = 0.0) -> dict[int, tuple[int, int]]:
    """A run year with calendar steps absent from the file is an error unless the fraction
    missing is within ``max_missing_fraction`` (config); returns the gaps allowed, which the
    caller records in the output's attributes."""
    gaps = missing_steps(times, years, frequency)
    worst = [(y, m, n) for y, (m, n) in gaps.items() if m / n > max_missing_fraction + 1e-12]
    if worst:
        y, m, n = max(worst, key=lambda w: w[1] / w[2])
        raise input_error(path, f"year {y} lacks {m} of its {n} {frequency} time steps (a year from few steps "
                          "is biased); give the full series, or allow it with max_missing_fraction "
                          f">= {m / n:.2f} in this [[drivers.sources]] entry", column="time", value=y)
    return gaps


def check_source_values(da: xr.DataArray, path, variable: str, values: np.ndarray | None = None) -> None:
    """The value checks on a sample of a decoded driver (fill, units, range, CF decoding);
    ``values``: :func:`sample_values` of ``da`` if already computed."""
    check_valid_range_decoding(da, path, variable)
    vals = sample_values(da) if values is None else values
    units = _units(da)
    check_undeclared_fill(vals, path, variable)
    check_temperature_units(vals, units, path, variable)
    check_physical_range(vals, units, path, variable)
