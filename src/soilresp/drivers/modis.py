"""MODIS HDF4-EOS tiles: scale, fill, valid range, product QA bits, mosaicking and sampling
onto the target lat/lon grid (needs ``pyhdf``: ``pip install soilresp[modis]``).

Reading one Scientific Data Set (SDS) of a tile (:func:`read_sds`):

* HDF4 calibration: ``value = scale_factor * (stored - add_offset)`` - the HDF4 / MODIS
  convention, *not* CF's ``stored * scale + offset``. (MOD13 VI, MOD11 LST, MOD17 GPP and
  MOD16 ET all have ``add_offset = 0``, so the two agree for them.)
* ``_FillValue`` and values outside ``valid_range`` (in stored units) are masked: this also
  removes MOD17 / MOD16 special codes 32761-32767 (water, barren, urban, snow...).
* ``units`` and ``long_name`` come from the SDS attributes.

Tile geometry (:func:`tile_geometry`) comes from the ``StructMetadata.0`` global attribute
(``UpperLeftPointMtrs``, ``LowerRightMtrs``, ``XDim``, ``YDim`` of the grid, sinusoidal
projection on the MODIS sphere R = 6371007.181 m); pixel ``(row, col)`` covers
``x in [ulx + col dx, ulx + (col + 1) dx)``, ``y in (uly - (row + 1) dy, uly - row dy]``.

QA (:data:`QA_RULES`; ``qa = "default" | "strict" | "none"``):

=================  ======================================  ================================
product            SDS -> QA SDS                            kept (default / strict)
=================  ======================================  ================================
MOD11A2 / MYD11A2  ``LST_Day_1km`` -> ``QC_Day``,           bits 0-1 (mandatory QA) 00 or
                   ``LST_Night_1km`` -> ``QC_Night``        01 (produced) / 00 (good)
MOD13A1/A2/Q1, MYD ``... 16 days EVI|NDVI`` ->              pixel reliability 0 or 1
                   ``... 16 days pixel reliability``        (good, marginal) / 0 (good)
MOD17A2H / MYD     ``Gpp_500m``, ``PsnNet_500m`` ->         bits 5-7 (SCF_QC) 000 or 001
                   ``Psn_QC_500m``                          (main algorithm) / and bit 0 = 0
MOD16A2 / MYD      ``ET_500m``, ``PET_500m``, ``LE_500m``,  as MOD17 (same FPAR-derived QC
                   ``PLE_500m`` -> ``ET_QC_500m``           layout)
=================  ======================================  ================================

Mosaic and reprojection (:func:`open_modis`): for every target cell centre the sinusoidal
x / y is computed with pyproj and the value of the source pixel containing that point is
taken from whichever tile holds it (nearest neighbour, Huang et al. 2020). There is no
seam: neighbouring target cells on either side of a tile edge read adjacent pixels of
different tiles. File names give the date (``AYYYYDDD``, the composite's first day) and the
tile (``hHHvVV``). The target-to-source index is computed once per target chunk by one dask
task (:func:`_plan_block`: one pyproj transform of the chunk's cell centres, then a flat
pixel index per tile, :class:`_TilePlan`) that every composite of the chunk reuses: no search
per composite, and the index is in memory only while its band of chunks is written (held in
the graph it would take ~1 MB per chunk, 11 GB for the globe at 1 km). Which tiles a chunk
needs is decided when the graph is built from the chunk's corners alone
(:func:`_block_may_touch`). One dask task per tile and date reads and inflates the SDS and its QA layer once
(stored values, not converted); one task per date and target chunk gathers the pixels it
samples from the tiles it needs and calibrates only those.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as dsa
import numpy as np
import pandas as pd
import xarray as xr

from soilresp.drivers._common import date_from_name
from soilresp.errors import input_error
from soilresp.grid import Grid

MODIS_SPHERE = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"


def _need_pyhdf():
    try:
        from pyhdf.SD import SD, SDC
    except ImportError:  # pragma: no cover - the modis extra is installed in CI
        raise input_error("MODIS HDF4", "reading HDF4 needs pyhdf: pip install 'soilresp[modis]'") from None
    return SD, SDC


# ----------------------------------------------------------------------------- QA rules
def _bits(q: np.ndarray, lo: int, n: int) -> np.ndarray:
    return (q.astype(np.int64) >> lo) & ((1 << n) - 1)


def _qa_lst(q, level):
    mand = _bits(q, 0, 2)
    return mand == 0 if level == "strict" else mand <= 1


def _qa_reliability(q, level):
    q = q.astype(np.int64)
    return q == 0 if level == "strict" else (q == 0) | (q == 1)


def _qa_psn(q, level):
    scf = _bits(q, 5, 3)
    ok = scf <= 1
    if level == "strict":
        ok &= (_bits(q, 0, 1) == 0) & (scf == 0)
    return ok


@dataclass(frozen=True)
class QARule:
    qa_sds: str
    keep: object  # (qa array, level) -> bool array


def qa_rule(product: str | None, sds: str) -> QARule | None:
    """The QA SDS and rule for ``sds`` of ``product`` (``None``: no QA rule known)."""
    p = (product or "").upper()
    if p[3:8] in ("11A2", "11A1") and sds in ("LST_Day_1km", "LST_Night_1km"):
        return QARule("QC_Day" if "Day" in sds else "QC_Night", _qa_lst)
    if p[3:5] == "13" and re.search(r"16 days (EVI|NDVI)$", sds):
        return QARule(re.sub(r"(EVI|NDVI)$", "pixel reliability", sds), _qa_reliability)
    if p[3:6] == "17A" and sds in ("Gpp_500m", "PsnNet_500m"):
        return QARule("Psn_QC_500m", _qa_psn)
    if p[3:6] == "16A" and sds in ("ET_500m", "PET_500m", "LE_500m", "PLE_500m"):
        return QARule("ET_QC_500m", _qa_psn)
    return None


QA_RULES = {"MOD11A2": ("LST_Day_1km", "LST_Night_1km"),
            "MOD13A1": ("500m 16 days EVI", "500m 16 days NDVI"),
            "MOD17A2H": ("Gpp_500m", "PsnNet_500m"),
            "MOD16A2": ("ET_500m", "PET_500m", "LE_500m", "PLE_500m")}


# ----------------------------------------------------------------------------- one tile
_META_NUM = r"\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*\)"


@dataclass(frozen=True)
class TileGeometry:
    ulx: float
    uly: float
    lrx: float
    lry: float
    nx: int
    ny: int

    @property
    def dx(self) -> float:
        return (self.lrx - self.ulx) / self.nx

    @property
    def dy(self) -> float:
        return (self.uly - self.lry) / self.ny

    def pixel(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row, column of the pixel containing each point, and whether it is in the tile."""
        col = np.floor((x - self.ulx) / self.dx).astype(np.int64)
        row = np.floor((self.uly - y) / self.dy).astype(np.int64)
        ok = (col >= 0) & (col < self.nx) & (row >= 0) & (row < self.ny) & np.isfinite(x + y)
        return row, col, ok


def parse_struct_metadata(text: str, path: Path | str = "StructMetadata.0") -> list[TileGeometry]:
    """The grids of an HDF-EOS ``StructMetadata.0`` text (one TileGeometry per GRID)."""
    grids = []
    for block in re.findall(r"GROUP=GRID_\d+(.*?)END_GROUP=GRID_\d+", text, flags=re.S):
        try:
            nx = int(re.search(r"XDim=(\d+)", block).group(1))
            ny = int(re.search(r"YDim=(\d+)", block).group(1))
            ul = re.search(r"UpperLeftPointMtrs=" + _META_NUM, block)
            lr = re.search(r"LowerRightMtrs=" + _META_NUM, block)
            proj = re.search(r"Projection=(\w+)", block)
        except AttributeError:
            raise input_error(path, "StructMetadata.0 lacks XDim/YDim") from None
        if ul is None or lr is None:
            raise input_error(path, "StructMetadata.0 lacks UpperLeftPointMtrs/LowerRightMtrs")
        if proj is not None and proj.group(1) not in ("GCTP_SNSOID", "HE5_GCTP_SNSOID"):
            raise input_error(path, f"only sinusoidal MODIS tiles are supported, not {proj.group(1)}")
        grids.append(TileGeometry(float(ul.group(1)), float(ul.group(2)), float(lr.group(1)),
                                  float(lr.group(2)), nx, ny))
    if not grids:
        raise input_error(path, "no GRID in StructMetadata.0 (not an HDF-EOS grid file?)")
    return grids


def tile_geometry(path: Path, sds: str) -> TileGeometry:
    """The grid geometry of ``sds`` in an HDF4-EOS file (the GRID of the SDS's shape)."""
    SD, SDC = _need_pyhdf()
    try:
        f = SD(str(path), SDC.READ)
    except Exception as e:  # pyhdf raises HDF4Error
        raise input_error(path, f"cannot open as HDF4: {e}") from None
    try:
        attrs = f.attributes()
        meta = attrs.get("StructMetadata.0")
        if meta is None:
            raise input_error(path, "no StructMetadata.0 attribute (not HDF-EOS)")
        if sds not in f.datasets():
            raise input_error(path, f"SDS not found; the file has {sorted(f.datasets())}", column=sds)
        shape = f.datasets()[sds][1]
    finally:
        f.end()
    grids = parse_struct_metadata(meta, path)
    for g in grids:
        if (g.ny, g.nx) == tuple(shape[-2:]):
            return g
    raise input_error(path, f"no GRID of shape {tuple(shape)} in StructMetadata.0", column=sds)


def read_sds(path: Path, sds: str, window: tuple[int, int, int, int] | None = None,
             product: str | None = None, qa: str = "default") -> np.ndarray:
    """One SDS (or its ``(row0, row1, col0, col1)`` window) in physical units, float64, NaN
    where fill, outside the valid range or rejected by the product's QA rule."""
    return _calibrate(*_read_raw(path, sds, window, product, qa), qa)


def _read_raw(path: Path, sds: str, window, product, qa):
    """The stored values of one SDS (window), its attributes, and the QA layer and rule (or
    None) of the product; nothing converted yet."""
    SD, SDC = _need_pyhdf()
    try:
        f = SD(str(path), SDC.READ)
    except Exception as e:
        raise input_error(path, f"cannot open as HDF4: {e}") from None
    try:
        if sds not in f.datasets():
            raise input_error(path, f"SDS not found; the file has {sorted(f.datasets())}", column=sds)
        s = f.select(sds)
        raw = _window(s, window)
        a = s.attributes()
        s.endaccess()
        rule = qa_rule(product or _product_from_name(path), sds) if qa != "none" else None
        qv = None
        if rule is not None:
            if rule.qa_sds not in f.datasets():
                raise input_error(path, f"QA SDS {rule.qa_sds!r} not found for {sds}", column=rule.qa_sds)
            q = f.select(rule.qa_sds)
            qv = _window(q, window)
            q.endaccess()
        return raw, a, qv, rule
    finally:
        f.end()


def _calibrate(raw, a, qv, rule, qa) -> np.ndarray:
    """Physical values (float64) of stored values ``raw``; NaN for fill, out of the valid range
    or rejected by the QA rule (``qv``: the QA values of the same pixels)."""
    out = raw.astype(np.float64)
    bad = np.zeros(raw.shape, bool)
    if "_FillValue" in a:
        bad |= raw == a["_FillValue"]
    vr = a.get("valid_range")
    if vr is not None:
        lo, hi = (vr[0], vr[1]) if len(vr) == 2 else (vr, vr)
        bad |= (raw < lo) | (raw > hi)
    scale, offset = float(a.get("scale_factor", 1.0)), float(a.get("add_offset", 0.0))
    out = scale * (out - offset)
    if rule is not None:
        bad |= ~rule.keep(qv, qa)  # a QC fill (255, -1) fails every rule
    out[bad] = np.nan
    return out


def sds_attributes(path: Path, sds: str) -> dict:
    SD, SDC = _need_pyhdf()
    f = SD(str(path), SDC.READ)
    try:
        s = f.select(sds)
        a = dict(s.attributes())
        s.endaccess()
        return a
    finally:
        f.end()


def _window(s, window):
    if window is None:
        return np.asarray(s.get())
    r0, r1, c0, c1 = window
    return np.asarray(s[r0:r1, c0:c1])


_TILE = re.compile(r"h(\d{2})v(\d{2})")


def _tile_key(p: Path) -> str:
    m = _TILE.search(p.name)
    return m.group(0) if m else p.name


def _product_from_name(path: Path | str) -> str | None:
    m = re.match(r"(M[OY]D\w+?)\.", Path(path).name)
    return m.group(1) if m else None


# ----------------------------------------------------------------------------- mosaic
def _target_xy(grid: Grid, ti: np.ndarray, tj: np.ndarray, crs=MODIS_SPHERE):
    return _lonlat_xy(grid.lat[ti], grid.lon[tj], crs)


_TRANSFORMERS = threading.local()  # one pyproj Transformer per thread and CRS (~50 ms to build)


def _lonlat_xy(lat: np.ndarray, lon: np.ndarray, crs=MODIS_SPHERE):
    cache = _TRANSFORMERS.__dict__.setdefault("by_crs", {})
    tr = cache.get(crs)
    if tr is None:
        from soilresp.extras import require

        Transformer = require("pyproj", "modis", "reprojecting MODIS sinusoidal tiles").Transformer
        tr = cache[crs] = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    lo, la = np.meshgrid(lon, lat)
    x, y = tr.transform(lo, la)
    return np.asarray(x), np.asarray(y)


@dataclass(frozen=True)
class _TilePlan:
    """Where one tile feeds one target block: the flat target cells ``cells`` and the flat
    (row-major) index ``flat`` of their source pixels in the tile's SDS. Computed once per
    (block, tile), reused by every composite."""

    cells: np.ndarray
    flat: np.ndarray


def _plan_tile(g: TileGeometry, x: np.ndarray, y: np.ndarray) -> _TilePlan | None:
    row, col, ok = g.pixel(x.ravel(), y.ravel())
    if not ok.any():
        return None
    cells = np.flatnonzero(ok)
    return _TilePlan(cells.astype(np.intp), row[cells].astype(np.intp) * g.nx + col[cells])


def _plan_block(lat: np.ndarray, lon: np.ndarray, geoms: dict[str, TileGeometry]) -> dict[str, _TilePlan | None]:
    """The target-to-source index of one target block for each candidate tile: one pyproj
    transform of the block's cell centres, then a floor division per tile (a task, so the
    index lives in memory only while the block's composites are sampled)."""
    x, y = _lonlat_xy(lat, lon)
    return {k: _plan_tile(g, x, y) for k, g in geoms.items()}


_R_SPHERE = 6371007.181


def _block_may_touch(g: TileGeometry, lat: np.ndarray, lon: np.ndarray) -> bool:
    """Whether a tile can hold any of the block's cell centres (sinusoidal on the MODIS sphere:
    y = R lat, x = R lon cos(lat); conservative by 1 m), without projecting every cell."""
    la = np.radians([lat.min(), lat.max()])
    lo = np.radians([lon.min(), lon.max()])
    cos = np.cos(la).tolist() + ([1.0] if la[0] <= 0 <= la[1] else [])
    xs = [_R_SPHERE * a * c for a in lo for c in cos]
    y0, y1 = _R_SPHERE * la[0], _R_SPHERE * la[1]
    m = 1.0
    return (min(xs) - m < g.lrx and max(xs) + m >= g.ulx and y0 - m <= g.uly and y1 + m > g.lry)


def _read_tile(path: Path, sds: str, product, qa):
    """One task per tile and composite: the whole SDS and QA layer, read and decompressed once
    (MODIS SDS are deflated whole, so a window read would inflate the tile again per chunk)."""
    return _read_raw(path, sds, None, product, qa)


def _sample_tiles(tiles: list, plans: list[_TilePlan | None], shape, qa):
    out = np.full(int(np.prod(shape)), np.nan, dtype=np.float32)
    for (raw, a, qv, rule), pl in zip(tiles, plans):
        if pl is None:
            continue
        out[pl.cells] = _calibrate(raw.ravel().take(pl.flat), a, None if qv is None else qv.ravel().take(pl.flat),
                                   rule, qa)
    return out.reshape(shape)


def open_modis(paths: list[Path], sds: str, grid: Grid, product: str | None = None,
               qa: str = "default") -> xr.DataArray:
    """A time series of MODIS tiles, mosaicked and sampled onto ``grid`` (time, lat, lon)."""
    dates: dict[pd.Timestamp, list[Path]] = {}
    tiles: dict[str, TileGeometry] = {}
    for p in paths:
        t = date_from_name(p)
        if t is None or not re.search(r"A\d{7}", p.name):
            raise input_error(p, "MODIS file name holds no acquisition date AYYYYDDD")
        dates.setdefault(t, []).append(p)
        key = _tile_key(p)
        if key not in tiles:
            tiles[key] = tile_geometry(p, sds)
    product = product or _product_from_name(paths[0])
    attrs = sds_attributes(paths[0], sds)
    ch = grid.chunks()
    times = sorted(dates)
    reads = {p: dask.delayed(_read_tile, pure=True)(p, sds, product, qa) for ps in dates.values() for p in ps}
    blocks = []
    for a in range(0, grid.nlat, ch["lat"]):
        lat = grid.lat[a:a + ch["lat"]]
        row = []
        for b in range(0, grid.nlon, ch["lon"]):
            lon = grid.lon[b:b + ch["lon"]]
            near = {k: g for k, g in tiles.items() if _block_may_touch(g, lat, lon)}
            # one index task per block, shared by every date (no search per composite)
            plan = dask.delayed(_plan_block, pure=True)(lat, lon, near) if near else None
            steps = []
            for t in times:
                fl = [p for p in dates[t] if _tile_key(p) in near]
                if not fl:
                    steps.append(dsa.full((1, lat.size, lon.size), np.nan, dtype=np.float32,
                                          chunks=(1, lat.size, lon.size)))
                    continue
                d = dask.delayed(_sample_block, pure=True)([reads[p] for p in fl], plan,
                                                           [_tile_key(p) for p in fl], (lat.size, lon.size), qa)
                steps.append(dsa.from_delayed(d, shape=(1, lat.size, lon.size), dtype=np.float32))
            row.append(dsa.concatenate(steps, axis=0))
        blocks.append(dsa.concatenate(row, axis=2))
    arr = dsa.concatenate(blocks, axis=1)
    da = xr.DataArray(arr, dims=("time", "lat", "lon"),
                      coords={"time": pd.DatetimeIndex(times), **grid.coords()}, name=sds)
    da.attrs = {"units": _units(attrs.get("units", "1")), "long_name": attrs.get("long_name", sds),
                "soilresp_on_target_grid": 1, "source_product": product or "unknown",
                "qa": qa}
    return da


def _sample_block(tiles, plan, keys, shape, qa):
    return _sample_tiles(tiles, [plan[k] for k in keys], shape, qa)[None]


def _units(u: str) -> str:
    return {"Kelvin": "K", "kelvin": "K", "kg C/m^2/8d": "kg C m-2 8day-1",
            "kgC/m^2/8d": "kg C m-2 8day-1", "kg/m^2/8day": "kg m-2 8day-1"}.get(str(u).strip(), str(u))


# ----------------------------------------------------------------------------- projected GeoTIFF
def sample_projected_raster(da: xr.DataArray, crs, grid: Grid, path: Path) -> xr.DataArray:
    """Nearest-neighbour sampling of a projected raster (dims ``y, x``, regular pixel-centre
    coordinates) onto ``grid``: target centres are projected into the raster's CRS."""
    xs, ys = da["x"].values, da["y"].values
    dx, dy = float(xs[1] - xs[0]), float(ys[1] - ys[0])
    geom = TileGeometry(xs[0] - dx / 2, ys[0] - dy / 2, xs[-1] + dx / 2, ys[-1] + dy / 2,
                        xs.size, ys.size) if dy < 0 else None
    if geom is None:
        raise input_error(path, "projected raster must be north-up (y decreasing)")
    data = da.data if isinstance(da.data, dsa.Array) else dsa.from_array(np.asarray(da.data))
    ch = grid.chunks()
    rows = []
    for a in range(0, grid.nlat, ch["lat"]):
        ti = np.arange(a, min(a + ch["lat"], grid.nlat))
        row = []
        for b in range(0, grid.nlon, ch["lon"]):
            tj = np.arange(b, min(b + ch["lon"], grid.nlon))
            x, y = _target_xy(grid, ti, tj, crs=crs.to_wkt())
            r, c, ok = geom.pixel(x, y)
            if not ok.any():
                row.append(dsa.full((ti.size, tj.size), np.nan, dtype=np.float32))
                continue
            r0, r1, c0, c1 = r[ok].min(), r[ok].max() + 1, c[ok].min(), c[ok].max() + 1
            sub = data[r0:r1, c0:c1]

            def pick(w, _r=r - r0, _c=c - c0, _ok=ok):
                out = np.full(_ok.shape, np.nan, dtype=np.float32)
                out[_ok] = np.asarray(w)[_r[_ok], _c[_ok]]
                return out

            row.append(dsa.from_delayed(dask.delayed(pick, pure=True)(sub), shape=(ti.size, tj.size),
                                        dtype=np.float32))
        rows.append(dsa.concatenate(row, axis=1))
    out = xr.DataArray(dsa.concatenate(rows, axis=0), dims=("lat", "lon"), coords=grid.coords(),
                       name=da.name)
    out.attrs = {**{k: v for k, v in da.attrs.items() if k in ("units", "long_name")},
                 "soilresp_on_target_grid": 1}
    return out
