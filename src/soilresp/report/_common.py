"""Shared pieces of the report: reading run outputs defensively, offline maps, saving.

Maps are plate carree (longitude/latitude axes at equal scale). Coastlines and the land
background are drawn from a packaged 0.1-degree land mask derived from the ``global-land-mask``
package (:func:`land_mask`), so no figure needs network access. Large grids are reduced to at most ``MAX_MAP_CELLS`` cells before
they are loaded (block means for continuous fields, nearest sampling for classes), so a 1 km
product is drawn without loading the whole globe into memory.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from soilresp import io  # noqa: E402

#: (lat, lon) cells a map is reduced to at most (0.25 degree globally).
MAX_MAP_CELLS = (720, 1440)
#: Paper's driver abbreviations (Huang et al. 2020, Fig 3 and 6) for the default driver names.
DRIVER_LABELS = {"tas": "TEM", "pr": "PRE", "spei": "SPEI", "tc": "TC", "sv": "SV", "bg": "BG"}
DRIVER_NAMES = {"tas": "air temperature", "pr": "precipitation", "spei": "drought index (SPEI)",
                "tc": "tree cover", "sv": "short vegetation", "bg": "bare ground"}
REGION_ORDER = ("global", "tropical", "temperate", "boreal")
REGION_COLOURS = {"global": "0.15", "tropical": "#d95f02", "temperate": "#1b9e77", "boreal": "#7570b3"}
RS_UNITS = "g C m$^{-2}$ yr$^{-1}$"


class MissingOutput(Exception):
    """A run output a figure or table needs is absent (its stage did not run or was skipped)."""


def need(run_dir: Path, rel: str) -> Path:
    """Path of ``run_dir/rel``, or :class:`MissingOutput` naming the stage that writes it."""
    p = Path(run_dir) / rel
    if not io.is_complete(p):
        stage = rel.split("/")[0]
        raise MissingOutput(f"{rel} is absent (stage '{stage}' has not written it)")
    return p


def table(run_dir: Path, rel: str, columns: list[str] | None = None) -> pd.DataFrame:
    p = need(run_dir, rel)
    return pd.read_csv(p) if p.suffix == ".csv" else io.read_table(p, columns)


def grid(run_dir: Path, rel: str, variables: list[str] | None = None) -> xr.Dataset:
    return io.open_zarr(need(run_dir, rel), variables)


def driver_label(name: str) -> str:
    return DRIVER_LABELS.get(name, name.upper())


def region_order(names) -> list[str]:
    names = list(dict.fromkeys(names))
    return [r for r in REGION_ORDER if r in names] + [r for r in names if r not in REGION_ORDER]


def significance_stars(p: float, alpha: float = 0.05) -> str:
    if not np.isfinite(p) or p >= alpha:
        return ""
    return "***" if p < alpha / 50 else "**" if p < alpha / 5 else "*"


# ------------------------------------------------------------------ maps
def display(da: xr.DataArray, categorical: bool = False, max_cells=MAX_MAP_CELLS) -> xr.DataArray:
    """``da`` (lat, lon) reduced to at most ``max_cells`` and loaded (lazy until then)."""
    f = max(1, math.ceil(da.sizes["lat"] / max_cells[0]), math.ceil(da.sizes["lon"] / max_cells[1]))
    if f > 1:
        if categorical:
            da = da.isel(lat=slice(f // 2, None, f), lon=slice(f // 2, None, f))
        else:
            da = da.coarsen(lat=f, lon=f, boundary="trim").mean()
    return da.load()


from soilresp.landmask import LAND_MASK_FILE  # noqa: E402,F401  (re-exported)
from soilresp.landmask import land_grid as _land_base  # noqa: E402


@functools.lru_cache(maxsize=16)
def land_mask(extent: tuple[float, float, float, float], res: float = 0.2):
    """(lon, lat, land) on cells of about ``res`` degrees covering ``extent`` (x0, x1, y0, y1);
    longitudes may run past 180 (0-360 grids)."""
    base = _land_base()
    f = max(1, int(round(res / 0.1)))
    if f > 1:  # block majority
        ny, nx = base.shape[0] // f, base.shape[1] // f
        base = base[: ny * f, : nx * f].reshape(ny, f, nx, f).mean(axis=(1, 3)) >= 0.5
    r = 0.1 * f
    lat = np.arange(max(extent[2], -90.0) + r / 2, min(extent[3], 90.0), r)
    lon = np.arange(extent[0] + r / 2, extent[1], r)
    iy = np.clip(((lat + 90) / r).astype(int), 0, base.shape[0] - 1)
    ix = np.clip((((lon + 180) % 360) / r).astype(int), 0, base.shape[1] - 1)
    return lon, lat, base[np.ix_(iy, ix)].astype(np.float32)


def _extent(da: xr.DataArray) -> tuple[float, float, float, float]:
    def edges(c):
        v = np.asarray(c, float)
        h = abs(v[1] - v[0]) / 2 if v.size > 1 else 0.5
        return float(v.min() - h), float(v.max() + h)

    (x0, x1), (y0, y1) = edges(da["lon"]), edges(da["lat"])
    return x0, x1, y0, y1


def draw_map(ax, da: xr.DataArray, *, land_background: bool = True, coast_res: float | None = None, **kw):
    """Plate carree map of ``da`` (lat, lon) with offline coastlines; returns the mesh.

    ``coast_res`` (degrees) sets the detail of the coastline; default about 1/1500 of the
    map's width, 0.1-0.5 degree.
    """
    ext = _extent(da)
    res = coast_res or min(0.5, max((ext[1] - ext[0]) / 1500, 0.1))
    lon, lat, land = land_mask(tuple(round(e, 6) for e in ext), res)
    if land_background:  # land without data in light grey, sea white
        _raster(ax, lon, lat, np.where(land > 0, 1.0, np.nan), cmap="Greys", vmin=0, vmax=5, zorder=0)
    im = _raster(ax, da["lon"].values, da["lat"].values, np.asarray(da.values, float), zorder=1, **kw)
    ax.contour(lon, lat, land, levels=[0.5], colors="0.25", linewidths=0.4, zorder=2)
    ax.set_xlim(ext[0], ext[1])
    ax.set_ylim(ext[2], ext[3])
    ax.set_aspect("equal")
    _degree_ticks(ax, ext)
    return im


def _uniform(v: np.ndarray) -> bool:
    d = np.diff(v)
    return v.size > 1 and bool(np.allclose(d, d[0], rtol=1e-4, atol=0))


def _raster(ax, lon, lat, values, **kw):
    """imshow for regular grids (fast), pcolormesh otherwise; rasterized in vector output."""
    if _uniform(lon) and _uniform(lat):
        hx, hy = abs(lon[1] - lon[0]) / 2, abs(lat[1] - lat[0]) / 2
        if lat[0] > lat[-1]:
            lat, values = lat[::-1], values[::-1]
        if lon[0] > lon[-1]:
            lon, values = lon[::-1], values[:, ::-1]
        return ax.imshow(values, origin="lower", interpolation="nearest", aspect="auto", rasterized=True,
                         extent=(lon[0] - hx, lon[-1] + hx, lat[0] - hy, lat[-1] + hy), **kw)
    return ax.pcolormesh(lon, lat, values, shading="auto", rasterized=True, **kw)


def _degree_ticks(ax, ext) -> None:
    def fmt_lon(v, _=None):
        v = (v + 180) % 360 - 180 if abs(v) > 180 else v
        return f"{abs(v):.0f}°{'E' if v > 0 else 'W' if v < 0 else ''}"

    def fmt_lat(v, _=None):
        return f"{abs(v):.0f}°{'N' if v > 0 else 'S' if v < 0 else ''}"

    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=7, steps=[1, 2, 3, 5, 6, 10]))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 3, 5, 6, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(fmt_lon))
    ax.yaxis.set_major_formatter(FuncFormatter(fmt_lat))
    ax.tick_params(labelsize=8)


def stipple(ax, mask: xr.DataArray, step: int = 1, **kw) -> None:
    """Dots on the cells where ``mask`` is true (significance on maps)."""
    m = mask.isel(lat=slice(None, None, step), lon=slice(None, None, step))
    la, lo = np.meshgrid(m["lat"].values, m["lon"].values, indexing="ij")
    sel = np.asarray(m.values, bool)
    ax.scatter(lo[sel], la[sel], s=kw.pop("s", 1.2), c=kw.pop("c", "k"), marker=".", linewidths=0,
               rasterized=True, zorder=3, **kw)


# ------------------------------------------------------------------ saving
def panel(ax, label: str):
    """Tag an axes as a figure panel (tests count these) and return it."""
    ax.set_label(f"panel:{label}")
    return ax


def panels(fig) -> list[str]:
    return [a.get_label()[6:] for a in fig.axes if a.get_label().startswith("panel:")]


def save_figure(fig, out_dir: Path, name: str, formats=("png", "svg"), dpi: int = 130) -> dict[str, Path]:
    """Write ``fig`` as ``out_dir/name.<fmt>`` for each format (atomically); closes it."""
    import io as _bio

    out = {}
    try:
        for fmt in formats:
            buf = _bio.BytesIO()
            meta = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt)  # repeatable files
            fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata=meta)
            out[fmt] = io.write_bytes_atomic(Path(out_dir) / f"{name}.{fmt}", buf.getvalue())
    finally:
        plt.close(fig)
    return out
