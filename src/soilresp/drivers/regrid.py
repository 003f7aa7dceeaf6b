"""Resampling of lat/lon sources onto the target grid (:class:`soilresp.grid.Grid`).

* ``nearest`` (Huang et al. 2020: "resampled to the same spatial resolution by the nearest
  neighbour method"): each target cell takes the source cell whose centre is nearest;
  NaN farther than half a source cell from any source centre (outside the source).
* ``bilinear``: linear in lat and lon between the four surrounding source centres
  (longitude wraps for a global source); NaN if any of the four is NaN.
* ``area``: area-weighted mean of the source cells overlapping the target cell (weights are
  exact WGS84 band areas times the longitude overlap), over the valid source cells only;
  for coarsening a finer source.
* ``mode``: the most frequent class among the source cells whose centres fall in the target
  cell (categorical maps such as land cover; ties take the smaller code); ``ignore`` codes
  (e.g. fill) do not vote.

All work on ``(..., lat, lon)`` arrays lazily: each target chunk reads only the source
window it needs (no whole-globe array in memory).
"""

from __future__ import annotations

from typing import Callable

import dask
import dask.array as dsa
import numpy as np
import xarray as xr

from soilresp.grid import Grid, band_area

METHODS = ("nearest", "bilinear", "area", "mode")


def regrid(da: xr.DataArray, grid: Grid, method: str = "nearest") -> xr.DataArray:
    """Resample ``da`` (dims ``..., lat, lon``) onto ``grid`` with ``method``."""
    if da.attrs.get("soilresp_on_target_grid"):
        return da
    fn = {"nearest": regrid_nearest, "bilinear": regrid_bilinear, "area": regrid_area,
          "mode": regrid_mode}.get(method)
    if fn is None:
        raise ValueError(f"unknown regrid method {method!r}; choose from {METHODS}")
    return fn(da, grid)


def _res(v: np.ndarray) -> float:
    return float(np.abs(np.diff(v)).mean()) if v.size > 1 else 360.0


def regrid_nearest(da: xr.DataArray, grid: Grid) -> xr.DataArray:
    """Nearest-neighbour onto the target grid (the paper's choice); NaN outside the source."""
    res = [_res(da[c].values) for c in ("lat", "lon")]
    tgt = grid.coords()
    out = da.reindex(lat=tgt["lat"].values, method="nearest", tolerance=res[0] / 2 + 1e-9)
    out = out.reindex(lon=tgt["lon"].values, method="nearest", tolerance=res[1] / 2 + 1e-9)
    out = out.assign_coords(lat=tgt["lat"], lon=tgt["lon"])
    out.attrs = da.attrs
    return out


def _wrap_lon(da: xr.DataArray) -> xr.DataArray:
    """Pad a global source with one column on each side across the dateline."""
    lon = da["lon"].values
    res = _res(lon)
    if lon.size < 2 or abs(lon[-1] - lon[0] + res - 360.0) > 1e-6 * 360:
        return da
    left = da.isel(lon=[-1]).assign_coords(lon=[lon[-1] - 360.0])
    right = da.isel(lon=[0]).assign_coords(lon=[lon[0] + 360.0])
    return xr.concat([left, da, right], dim="lon")


def regrid_bilinear(da: xr.DataArray, grid: Grid) -> xr.DataArray:
    """Bilinear interpolation between source cell centres (lon wraps for global sources)."""
    src = _wrap_lon(da)
    slat, slon = src["lat"].values, src["lon"].values
    tlat, tlon = grid.lat, grid.lon
    ia = np.clip(np.searchsorted(slat, tlat) - 1, 0, max(slat.size - 2, 0))
    ja = np.clip(np.searchsorted(slon, tlon) - 1, 0, max(slon.size - 2, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        fa = (tlat - slat[ia]) / (slat[np.minimum(ia + 1, slat.size - 1)] - slat[ia])
        fo = (tlon - slon[ja]) / (slon[np.minimum(ja + 1, slon.size - 1)] - slon[ja])
    inside_a = (tlat >= slat[0]) & (tlat <= slat[-1])
    inside_o = (tlon >= slon[0]) & (tlon <= slon[-1])

    def block(x, ti, tj):
        i, j = ia[ti], ja[tj]
        i0, i1, j0, j1 = i.min(), i.max() + 2, j.min(), j.max() + 2
        w = np.asarray(x[..., i0:i1, j0:j1], dtype=np.float64)
        a, o = fa[ti][:, None], fo[tj][None, :]
        ii, jj = (i - i0)[:, None], (j - j0)[None, :]
        v = ((1 - a) * (1 - o) * w[..., ii, jj] + a * (1 - o) * w[..., ii + 1, jj]
             + (1 - a) * o * w[..., ii, jj + 1] + a * o * w[..., ii + 1, jj + 1])
        ok = inside_a[ti][:, None] & inside_o[tj][None, :]
        return np.where(ok, v, np.nan).astype(np.float32)

    windows = lambda ti, tj: (ia[ti].min(), ia[ti].max() + 2, ja[tj].min(), ja[tj].max() + 2)  # noqa: E731
    return _blockwise(src, grid, windows, block, np.float32)


def _overlap(src_edges: np.ndarray, tgt_edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Overlap lengths (tgt x src) as sparse triplets (row, col, length) for 1-D cell edges."""
    rows, cols, lens = [], [], []
    for t in range(tgt_edges.size - 1):
        a, b = tgt_edges[t], tgt_edges[t + 1]
        s0 = max(np.searchsorted(src_edges, a, side="right") - 1, 0)
        s1 = min(np.searchsorted(src_edges, b, side="left"), src_edges.size - 1)
        for s in range(s0, s1):
            lo, hi = max(a, src_edges[s]), min(b, src_edges[s + 1])
            if hi > lo:
                rows.append(t), cols.append(s), lens.append((lo, hi))
    return np.array(rows, int), np.array(cols, int), np.array(lens, float).reshape(-1, 2)


def _edges(c: np.ndarray) -> np.ndarray:
    r = _res(c)
    return np.concatenate([[c[0] - r / 2], (c[1:] + c[:-1]) / 2, [c[-1] + r / 2]])


def regrid_area(da: xr.DataArray, grid: Grid) -> xr.DataArray:
    """Area-weighted mean of overlapping source cells (exact WGS84 band areas)."""
    slat, slon = da["lat"].values, da["lon"].values
    half = grid.resolution / 2
    tle = np.concatenate([grid.lat - half, [grid.lat[-1] + half]])
    toe = np.concatenate([grid.lon - half, [grid.lon[-1] + half]])
    r, c, ll = _overlap(np.clip(_edges(slat), -90, 90), tle)
    wlat = np.zeros((grid.nlat, slat.size))
    wlat[r, c] = band_area(ll[:, 0], ll[:, 1], 1.0)
    r, c, ll = _overlap(_edges(slon), toe)
    wlon = np.zeros((grid.nlon, slon.size))
    wlon[r, c] = ll[:, 1] - ll[:, 0]

    def span(w):
        nz = w != 0
        first = np.where(nz.any(1), nz.argmax(1), 0)
        last = np.where(nz.any(1), w.shape[1] - np.fliplr(nz).argmax(1), 0)
        return first, last

    fa, la = span(wlat)
    fo, lo = span(wlon)

    def windows(ti, tj):
        i0, i1 = fa[ti].min(), max(la[ti].max(), fa[ti].min() + 1)
        j0, j1 = fo[tj].min(), max(lo[tj].max(), fo[tj].min() + 1)
        return i0, i1, j0, j1

    def block(x, ti, tj):
        i0, i1, j0, j1 = windows(ti, tj)
        x = np.asarray(x[..., i0:i1, j0:j1], dtype=np.float64)
        A, B = wlat[ti][:, i0:i1], wlon[tj][:, j0:j1]
        valid = np.isfinite(x)
        num = A @ np.where(valid, x, 0.0) @ B.T
        den = A @ valid.astype(np.float64) @ B.T
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / den, np.nan).astype(np.float32)

    return _blockwise(da, grid, windows, block, np.float32)


def regrid_mode(da: xr.DataArray, grid: Grid, ignore: tuple[int, ...] = ()) -> xr.DataArray:
    """Majority class of the source cells whose centres fall in each target cell; -1 where
    none (outside the source, or only ``ignore`` codes). Returns int16."""
    slat, slon = da["lat"].values, da["lon"].values
    ti_of = np.floor((slat - grid.lat_min) / grid.resolution).astype(int)
    tj_of = np.floor((slon - grid.lon_min) / grid.resolution).astype(int)

    def rng(owner, t):
        hit = np.nonzero((owner >= t.min()) & (owner <= t.max()))[0]
        return (hit.min(), hit.max() + 1) if hit.size else (0, 0)

    def windows(ti, tj):
        return (*rng(ti_of, ti), *rng(tj_of, tj))

    def block(x, ti, tj):
        i0, i1, j0, j1 = windows(ti, tj)
        out = np.full(x.shape[:-2] + (ti.size, tj.size), -1, dtype=np.int16)
        if i1 == i0 or j1 == j0:
            return out
        x = np.asarray(x[..., i0:i1, j0:j1])
        ri = ti_of[i0:i1] - ti.min()
        rj = tj_of[j0:j1] - tj.min()
        ok = np.isfinite(x) & ((ri >= 0) & (ri < ti.size))[:, None] & ((rj >= 0) & (rj < tj.size))[None, :]
        for code in ignore:
            ok &= x != code
        codes = np.where(ok, x, 0).astype(np.int64)
        classes = np.unique(codes[ok])
        if classes.size == 0:
            return out
        cell = (ri[:, None] * tj.size + rj[None, :])
        lead = x.shape[:-2]
        flat_out = out.reshape((-1, ti.size * tj.size))
        for n, sub in enumerate(np.reshape(codes, (-1,) + codes.shape[-2:])):
            okn = np.reshape(ok, (-1,) + ok.shape[-2:])[n]
            idx = np.searchsorted(classes, sub[okn])
            counts = np.zeros((classes.size, ti.size * tj.size), dtype=np.int64)
            np.add.at(counts, (idx, np.broadcast_to(cell, sub.shape)[okn]), 1)
            best = classes[counts.argmax(0)]
            flat_out[n] = np.where(counts.max(0) > 0, best, -1)
        return flat_out.reshape(lead + (ti.size, tj.size))

    return _blockwise(da, grid, windows, block, np.int16)


def _blockwise(da: xr.DataArray, grid: Grid, windows: Callable, block: Callable,
               dtype) -> xr.DataArray:
    """Assemble the target array from one delayed task per target chunk; each task gets
    only the source window it needs."""
    lead_dims = da.dims[:-2]
    lead_shape = da.shape[:-2]
    data = da.data if isinstance(da.data, dsa.Array) else dsa.from_array(np.asarray(da.data))
    ch = grid.chunks()
    rows = []
    for a in range(0, grid.nlat, ch["lat"]):
        ti = np.arange(a, min(a + ch["lat"], grid.nlat))
        row = []
        for b in range(0, grid.nlon, ch["lon"]):
            tj = np.arange(b, min(b + ch["lon"], grid.nlon))
            i0, i1, j0, j1 = windows(ti, tj)
            i1, j1 = max(i1, i0 + 1), max(j1, j0 + 1)
            sub = data[..., i0:i1, j0:j1]

            def run(x, _ti=ti, _tj=tj, _o=(i0, j0)):
                # the block functions index the full source; shift a window-sized array in
                pad = _Shifted(x, _o)
                return block(pad, _ti, _tj)

            d = dask.delayed(run, pure=True)(sub)
            row.append(dsa.from_delayed(d, shape=lead_shape + (ti.size, tj.size), dtype=dtype))
        rows.append(row)
    arr = dsa.block(rows) if lead_shape == () else dsa.concatenate(
        [dsa.concatenate(r, axis=-1) for r in rows], axis=-2)
    coords = {d: da[d] for d in lead_dims if d in da.coords}
    out = xr.DataArray(arr, dims=lead_dims + ("lat", "lon"), coords={**coords, **grid.coords()},
                       name=da.name, attrs=dict(da.attrs))
    return out


class _Shifted:
    """A source window that answers ``x[..., i0:i1, j0:j1]`` in full-source indices."""

    def __init__(self, arr: np.ndarray, origin: tuple[int, int]):
        self.arr, self.o = np.asarray(arr), origin
        self.shape = self.arr.shape

    def __getitem__(self, key):
        *lead, si, sj = key
        si = slice(si.start - self.o[0], si.stop - self.o[0])
        sj = slice(sj.start - self.o[1], sj.stop - self.o[1])
        return self.arr[(*lead, si, sj)]
