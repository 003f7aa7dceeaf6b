"""The target grid: a regular lat/lon grid of cell centres on the WGS84 ellipsoid.

Contract: ``lat`` ascending (south to north), ``lon`` ascending in [-180, 180), both cell
centres in degrees with CF attributes. Cell areas are exact on the ellipsoid (not cos(lat)
on a sphere): the area between two parallels is a closed-form function of the authalic
latitude (Snyder 1987, "Map projections: a working manual", eq. 3-12).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from soilresp.config import GridConfig

WGS84_A = 6378137.0  # semi-major axis, m
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)  # first eccentricity squared
KM_PER_DEG = 111.32          # one degree of latitude / of longitude at the equator, km


def cell_half_diagonal_km(resolution: float) -> float:
    """Half the diagonal of an equatorial cell of ``resolution`` degrees, km (the farthest a
    point inside a cell can be from its centre, approximately)."""
    return float(resolution) * KM_PER_DEG * np.sqrt(2.0) / 2.0


def _q(phi: np.ndarray) -> np.ndarray:
    """Snyder's q(phi) (eq. 3-12), dimensionless; phi in radians."""
    e = np.sqrt(WGS84_E2)
    s = np.sin(phi)
    return (1 - WGS84_E2) * (
        s / (1 - WGS84_E2 * s**2) - (1 / (2 * e)) * np.log((1 - e * s) / (1 + e * s))
    )


def band_area(lat_south: np.ndarray, lat_north: np.ndarray, dlon_deg: float) -> np.ndarray:
    """Area (m2) of cells between two parallels (degrees) spanning ``dlon_deg`` of longitude."""
    q1 = _q(np.deg2rad(np.asarray(lat_south, dtype=np.float64)))
    q2 = _q(np.deg2rad(np.asarray(lat_north, dtype=np.float64)))
    return 0.5 * WGS84_A**2 * np.deg2rad(dlon_deg) * (q2 - q1)


@dataclass(frozen=True)
class Grid:
    """Regular lat/lon grid; build it with :meth:`from_config`."""

    resolution: float
    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float
    chunk: int = 256

    @classmethod
    def from_config(cls, cfg: GridConfig) -> "Grid":
        return cls(cfg.resolution, cfg.lat_min, cfg.lat_max, cfg.lon_min, cfg.lon_max, cfg.chunk)

    @property
    def nlat(self) -> int:
        return int(round((self.lat_max - self.lat_min) / self.resolution))

    @property
    def nlon(self) -> int:
        return int(round((self.lon_max - self.lon_min) / self.resolution))

    @property
    def lat(self) -> np.ndarray:
        return self.lat_min + self.resolution * (np.arange(self.nlat) + 0.5)

    @property
    def lon(self) -> np.ndarray:
        return self.lon_min + self.resolution * (np.arange(self.nlon) + 0.5)

    @property
    def shape(self) -> tuple[int, int]:
        return self.nlat, self.nlon

    def coords(self) -> dict[str, xr.DataArray]:
        lat = xr.DataArray(
            self.lat, dims="lat",
            attrs={"standard_name": "latitude", "units": "degrees_north", "axis": "Y"},
        )
        lon = xr.DataArray(
            self.lon, dims="lon",
            attrs={"standard_name": "longitude", "units": "degrees_east", "axis": "X"},
        )
        return {"lat": lat, "lon": lon}

    def cell_area(self) -> xr.DataArray:
        """Cell area (m2) per latitude row on the WGS84 ellipsoid, dims ``lat``."""
        half = self.resolution / 2
        area = band_area(self.lat - half, self.lat + half, self.resolution)
        return xr.DataArray(
            area, dims="lat", coords={"lat": self.coords()["lat"]}, name="cell_area",
            attrs={"units": "m2", "long_name": "grid cell area on the WGS84 ellipsoid"},
        )

    def chunks(self) -> dict[str, int]:
        return {"lat": min(self.chunk, self.nlat), "lon": min(self.chunk, self.nlon)}

    def nearest_index(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row/column of the cell containing each point (:func:`axis_cell`, the one cell rule);
        -1 where outside the grid. Longitudes are wrapped to [-180, 180)."""
        lat = np.asarray(lat, dtype=float)
        lon = ((np.asarray(lon, dtype=float) + 180.0) % 360.0) - 180.0
        i, oki = axis_cell(self.lat, lat)
        j, okj = axis_cell(self.lon, lon)
        bad = ~(oki & okj)
        i, j = i.copy(), j.copy()
        i[bad] = -1
        j[bad] = -1
        return i, j


def axis_cell(centres: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one point-to-grid rule of soilresp: index of the cell of a regular axis (cell
    ``centres``, ascending or descending) that contains each value, and whether it is on the
    axis.

    A cell is the half-open interval [lower edge, upper edge): a value exactly on an edge
    between two cells belongs to the cell above it (north / east), and the outermost upper
    edge is closed. Edges are compared after rounding to 1e-9 cells, so a decimal edge such as
    0.1 degree is not split by floating-point noise. Used for the biome of a site, the drivers
    at a site and the cell of an observation.
    """
    c = np.asarray(centres, dtype=float)
    v = np.asarray(values, dtype=float)
    n = c.size
    if n == 0:
        return np.zeros(v.shape, np.int64), np.zeros(v.shape, bool)
    if n == 1:
        return np.zeros(v.shape, np.int64), np.isfinite(v)
    step = abs(float(c[-1] - c[0])) / (n - 1)
    lo = float(min(c[0], c[-1])) - step / 2
    with np.errstate(invalid="ignore"):
        x = np.round((v - lo) / step, 9)
        k = np.floor(np.where(np.isfinite(x), x, -1)).astype(np.int64)
        k = np.where(x == n, n - 1, k)        # the outermost upper edge is closed
    inside = np.isfinite(v) & (k >= 0) & (k < n)
    k = np.clip(k, 0, n - 1)
    idx = k if c[-1] >= c[0] else n - 1 - k
    return idx, inside


def grid_of(ds: xr.Dataset | xr.DataArray) -> Grid:
    """Recover the :class:`Grid` of a soilresp grid (checks regular ascending coordinates)."""
    lat, lon = np.asarray(ds["lat"]), np.asarray(ds["lon"])
    res = float(np.round(lat[1] - lat[0], 10))
    if not (np.allclose(np.diff(lat), res) and np.allclose(np.diff(lon), res)):
        raise ValueError("grid is not regular and ascending in lat/lon")
    return Grid(res, float(lat[0] - res / 2), float(lat[-1] + res / 2),
                float(lon[0] - res / 2), float(lon[-1] + res / 2))
