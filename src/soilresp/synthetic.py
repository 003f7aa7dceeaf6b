"""A synthetic world whose true soil respiration, trends and drivers are known.

The world is defined analytically on the sphere (sums of random plane waves in 3-D
Cartesian coordinates), so it is the same world at any resolution and any block of it can
be evaluated alone: nothing whole-globe is ever held in memory. Everything is deterministic
from one seed.

What it writes (``write_world``), as real data arrive:

* ``srdb-data.csv`` - field observations in the SRDB v5 column layout (Bond-Lamberty &
  Thomson 2010): 700 sites with 1-3 years each (about 1400 site-years, like the paper's
  1292 observations at 701 sites), spatially biased toward the temperate zone, with
  lognormal measurement noise (``obs_noise_sd``, 5 % by default; see docs/product.md for
  why) and a few records that the paper's filters must remove;
* ``drivers/<var>.nc`` - one CF-NetCDF file per driver: monthly ``tas`` (degC), ``pr``
  (mm month-1), ``pet``/``et`` (mm month-1), ``sm`` (m3 m-3), ``gpp`` (g C m-2 month-1),
  ``evi``/``ndvi`` (1), ``spei`` (1), ``lst_day``/``lst_night`` (K), and annual ``tc``, ``sv``,
  ``bg`` (% cover); latitude runs north to south and ocean is a -9999 fill value;
* ``biomes.nc`` - the 10-biome map (codes of :data:`soilresp.config.BIOMES`);
* ``truth.zarr`` and ``truth.json`` - true Rs per pixel and year, true totals per year for
  the globe and the tropical / temperate / boreal regions, true trends, the per-biome true
  model (the paper's Eq 4 form) and the two attribution test boxes.

True model per biome (Huang et al. 2020, Eq 4 form)::

    Rs = a * exp(b*T + c*T**2) * exp(d*M + e*M**2) + f*P      [g C m-2 yr-1]

with T an annual temperature (degC), M an annual moisture variable and P an annual
productivity variable, chosen per biome among the drivers. Rs responds to land cover
through P (GPP and EVI depend on tree and short-vegetation cover). GPP also carries a smooth
"fertility" factor that climate does not explain (``FERTILITY_SD``), so that the productivity
term is identifiable from a spatial field sample (docs/product.md, synthetic acceptance).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr

from soilresp import io
from soilresp.biomes import REGION_NAMES, classify_region
from soilresp.config import BIOMES
from soilresp.grid import Grid

# Regions of special behaviour, (lat_min, lat_max, lon_min, lon_max), degrees.
CLIMATE_ONLY_BOX = (45.0, 60.0, 60.0, 100.0)    # strong warming and wetting, land cover fixed
LANDCOVER_ONLY_BOX = (-15.0, 0.0, -65.0, -45.0)  # deforestation, climate without trend

MONTHLY_VARS = {  # name: (aggregation, units in file)
    "tas": ("mean", "degC"),
    "pr": ("sum", "mm month-1"),
    "pet": ("sum", "mm month-1"),
    "et": ("sum", "mm month-1"),
    "sm": ("mean", "m3 m-3"),
    "gpp": ("sum", "g C m-2 month-1"),
    "evi": ("mean", "1"),
    "ndvi": ("mean", "1"),
    "spei": ("mean", "1"),
    "lst_day": ("mean", "K"),
    "lst_night": ("mean", "K"),
}
ANNUAL_VARS = {"tc": "%", "sv": "%", "bg": "%"}
LONG_NAMES = {
    "tas": "near-surface air temperature", "pr": "precipitation",
    "pet": "potential evapotranspiration", "et": "evapotranspiration",
    "sm": "root-zone soil moisture", "gpp": "gross primary productivity",
    "evi": "enhanced vegetation index", "ndvi": "normalised difference vegetation index",
    "spei": "standardised precipitation-evapotranspiration index (SPEI-like)",
    "lst_day": "daytime land surface temperature", "lst_night": "night-time land surface temperature",
    "tc": "tree canopy cover", "sv": "short vegetation cover", "bg": "bare ground cover",
}

# Log-sd of the fertility factor of GPP (0 = GPP a function of climate and cover only).
FERTILITY_SD = 0.35

# True per-biome model: predictor names and Eq 4 parameters (a, b, c, d, e, f).
TRUE_MODELS: dict[int, dict] = {
    1: {"T": "tas", "M": "sm", "P": "gpp", "params": [210.0, 0.075, -0.0012, 2.2, -2.6, 0.14]},
    2: {"T": "tas", "M": "sm", "P": "gpp", "params": [260.0, 0.060, -0.0010, 1.8, -2.0, 0.12]},
    3: {"T": "lst_night", "M": "sm", "P": "gpp", "params": [180.0, 0.085, -0.0015, 2.5, -3.0, 0.10]},
    4: {"T": "lst_night", "M": "sm", "P": "gpp", "params": [190.0, 0.070, -0.0011, 2.0, -2.4, 0.12]},
    5: {"T": "tas", "M": "et_pet", "P": "gpp", "params": [200.0, 0.065, -0.0009, 1.2, -0.8, 0.13]},
    6: {"T": "tas", "M": "sm", "P": "gpp", "params": [230.0, 0.080, -0.0010, 1.5, -2.0, 0.08]},
    7: {"T": "tas", "M": "sm", "P": "gpp", "params": [120.0, 0.070, -0.0009, 2.0, -2.5, 0.16]},
    8: {"T": "tas", "M": "et_pet", "P": "evi", "params": [150.0, 0.060, -0.0008, 1.6, -1.0, 450.0]},
    9: {"T": "lst_night", "M": "et_pet", "P": "gpp", "params": [170.0, 0.060, -0.0010, 1.0, -0.6, 0.14]},
    10: {"T": "tas", "M": "et_pet", "P": "evi", "params": [120.0, 0.055, -0.0007, 1.4, -0.9, 380.0]},
}

# ---------------------------------------------------------------- the hard world
#: A box where climate AND land cover change (hard world only): warming and wetting with
#: deforestation.
BOTH_CHANGE_BOX = (25.0, 40.0, 100.0, 120.0)

#: True per-biome response of the hard world (``kind="hard"``), not one of the fitted forms:
#: Rs = LT(T; e0) * (rref * fM(M; km) + k * P) * exp(RESID_SD * r - RESID_SD**2 / 2),
#: LT the Lloyd & Taylor (1994) temperature response (T0 = 227.13 K, reference 10 degC),
#: fM = (1 + km) m / (km + m) a saturating (Michaelis-Menten) moisture response of the
#: moisture driver scaled to [0, 1] (sm / 0.46, or et/pet), the productivity term scaled by
#: the temperature response (an interaction Eq 4 cannot represent: its f*P is additive), and
#: r a smooth, spatially correlated residual field that no driver explains.
HARD_MODELS: dict[int, dict] = {
    1: {"T": "tas", "M": "sm", "P": "gpp", "rref": 330.0, "e0": 190.0, "km": 0.25, "k": 0.11},
    2: {"T": "tas", "M": "sm", "P": "gpp", "rref": 380.0, "e0": 170.0, "km": 0.20, "k": 0.09},
    3: {"T": "lst_night", "M": "sm", "P": "gpp", "rref": 300.0, "e0": 210.0, "km": 0.30, "k": 0.10},
    4: {"T": "lst_night", "M": "sm", "P": "gpp", "rref": 310.0, "e0": 200.0, "km": 0.25, "k": 0.10},
    5: {"T": "tas", "M": "et_pet", "P": "gpp", "rref": 320.0, "e0": 180.0, "km": 0.35, "k": 0.10},
    6: {"T": "tas", "M": "sm", "P": "gpp", "rref": 360.0, "e0": 150.0, "km": 0.20, "k": 0.08},
    7: {"T": "tas", "M": "sm", "P": "gpp", "rref": 300.0, "e0": 160.0, "km": 0.30, "k": 0.12},
    8: {"T": "tas", "M": "et_pet", "P": "evi", "rref": 260.0, "e0": 190.0, "km": 0.40, "k": 380.0},
    9: {"T": "lst_night", "M": "et_pet", "P": "gpp", "rref": 280.0, "e0": 200.0, "km": 0.45, "k": 0.10},
    10: {"T": "tas", "M": "et_pet", "P": "evi", "rref": 220.0, "e0": 180.0, "km": 0.50, "k": 300.0},
}
RESID_SD = 0.12          # log-sd of the spatially correlated residual field
SITE_EFFECT_SD = 0.15    # log-sd of the site random effects (mean-one lognormal)
OBS_NOISE = (15.0, 0.07)  # heteroscedastic measurement error sd = a + b * Rs, g C m-2 yr-1


def lloyd_taylor(T, e0, t_ref=10.0, t0=227.13):
    """Lloyd & Taylor (1994, Funct. Ecol. 8:315) response, 1 at ``t_ref`` degC; T in degC."""
    tk = np.maximum(np.asarray(T, dtype=np.float64), -40.0) + 273.15
    return np.exp(e0 * (1.0 / (t_ref + 273.15 - t0) - 1.0 / (tk - t0)))


def hard_rs(T, M, P, m: dict, moisture: str, resid=0.0):
    """The hard world's true Rs, g C m-2 yr-1 (see :data:`HARD_MODELS`)."""
    mm = np.clip(M / 0.46 if moisture == "sm" else M, 1e-3, 1.0)
    fM = (1.0 + m["km"]) * mm / (m["km"] + mm)
    return lloyd_taylor(T, m["e0"]) * (m["rref"] * fM + m["k"] * P) * np.exp(RESID_SD * resid - RESID_SD ** 2 / 2)


def eq4(T, M, P, a, b, c, d, e, f):
    """Huang et al. 2020 Eq 4 form used for the truth, g C m-2 yr-1."""
    return a * np.exp(b * T + c * T * T) * np.exp(d * M + e * M * M) + f * P


# ---------------------------------------------------------------- smooth random fields
@dataclass(frozen=True)
class _Waves:
    """A smooth random field on the unit sphere: sum of K plane waves, unit variance."""

    k: np.ndarray      # (K, 3) wave vectors
    phase: np.ndarray  # (K,)

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int = 24, scale: float = 4.0) -> "_Waves":
        v = rng.normal(size=(n, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        mag = rng.uniform(0.5, 1.5, size=(n, 1)) * scale
        return cls(v * mag, rng.uniform(0, 2 * np.pi, size=n))

    def __call__(self, xyz: np.ndarray) -> np.ndarray:
        # xyz: (3, ny, nx); result (ny, nx), unit variance on average
        arg = np.tensordot(self.k, xyz, axes=(1, 0)) + self.phase[:, None, None]
        return np.sqrt(2.0 / len(self.phase)) * np.sin(arg).sum(axis=0)


def _xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _in_box(lat2, lon2, box):
    return (lat2 >= box[0]) & (lat2 < box[1]) & (lon2 >= box[2]) & (lon2 < box[3])


@dataclass
class SyntheticWorld:
    """Deterministic synthetic world on ``grid`` for ``years`` (first, last inclusive)."""

    grid: Grid
    years: tuple[int, int] = (2000, 2014)
    seed: int = 42
    kind: str = "easy"
    _w: dict = field(init=False, repr=False)

    def __post_init__(self):
        rng = np.random.default_rng(self.seed)
        names = ["T", "P", "tree", "leaf", "crop", "warm", "ptrend", "lcnoise"]
        self._w = {n: _Waves.draw(rng) for n in names}
        ny = self.n_years
        # interannual anomaly fields and a common (ENSO-like) global signal
        self._anom = {
            v: [_Waves.draw(rng, n=16, scale=3.0) for _ in range(ny)] for v in ("T", "P", "N")
        }
        self._global_anom = rng.normal(0.0, 1.0, size=ny)
        self._noise_seed = int(rng.integers(0, 2**31 - 1))
        # site fertility (nutrients, soils, management): spatial productivity contrast that
        # climate does not explain; drawn last so the other fields keep their values
        self._w["fert"] = _Waves.draw(rng)
        if self.kind not in ("easy", "hard"):
            raise ValueError(f"world kind must be 'easy' or 'hard', got {self.kind!r}")
        # hard-world fields, drawn after the easy world's so that it keeps its values
        self._w["resid"] = _Waves.draw(rng, n=32, scale=6.0)
        self._anom["R"] = [_Waves.draw(rng, n=16, scale=3.0) for _ in range(ny)]

    @property
    def year_values(self) -> np.ndarray:
        return np.arange(self.years[0], self.years[1] + 1)

    @property
    def n_years(self) -> int:
        return self.years[1] - self.years[0] + 1

    # -------------------------------------------------------------- one block of the world
    def land(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        from soilresp.landmask import is_land  # packaged 1 km GLOBE mask, same answers

        la, lo = np.meshgrid(lat, lon, indexing="ij")
        return is_land(la, lo)

    def block(self, lat: np.ndarray, lon: np.ndarray) -> dict[str, np.ndarray]:
        """All annual fields on a block of cell centres (1-D ``lat``, ``lon`` in degrees).

        Returns arrays (year, lat, lon) for time-varying fields and (lat, lon) for static ones
        (``land``, ``biome``, ``tas_mean``); ocean cells are NaN / 0.
        """
        w = self._w
        xyz = _xyz(lat, lon)
        lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
        land = self.land(lat, lon)
        ny = self.n_years
        tc_ = np.arange(ny, dtype=np.float64)[:, None, None] - (ny - 1) / 2.0  # centred time

        coslat2 = np.cos(np.deg2rad(lat2)) ** 2
        T0 = -16.0 + 44.0 * coslat2 + 3.0 * w["T"](xyz)
        P0 = (2200.0 * np.exp(-((lat2 / 14.0) ** 2)) + 900.0 * np.exp(-(((np.abs(lat2) - 45) / 12) ** 2))
              + 250.0) * np.exp(0.45 * w["P"](xyz))
        tc0 = 80.0 * _sig((P0 - 700.0) / 200.0) * _sig((T0 + 8.0) / 3.0) * (0.6 + 0.4 * _sig(2 * w["tree"](xyz)))
        bg0 = 90.0 * _sig((250.0 - P0) / 80.0) + 60.0 * _sig((-12.0 - T0) / 2.0)
        bg0 = np.minimum(bg0, 100.0 - tc0)
        sv0 = 100.0 - tc0 - bg0

        clim_box = _in_box(lat2, lon2, CLIMATE_ONLY_BOX)
        lc_box = _in_box(lat2, lon2, LANDCOVER_ONLY_BOX)
        hard = self.kind == "hard"
        both_box = _in_box(lat2, lon2, BOTH_CHANGE_BOX) if hard else np.zeros_like(clim_box)

        # --- climate: warming and precipitation trends that differ by region
        warm = 0.02 + 0.03 * np.abs(lat2) / 90.0 + 0.012 * w["warm"](xyz)  # degC / yr
        ptr = 0.004 * w["ptrend"](xyz)  # fraction / yr
        warm = np.where(clim_box, 0.09, np.where(lc_box, 0.0, warm))
        ptr = np.where(clim_box, 0.02, np.where(lc_box, 0.0, ptr))
        warm = np.where(both_box, 0.08, warm)
        ptr = np.where(both_box, 0.015, ptr)
        aT = np.stack([a(xyz) for a in self._anom["T"]]) * 0.35 + 0.15 * self._global_anom[:, None, None]
        aP = np.stack([a(xyz) for a in self._anom["P"]]) * 0.07
        tas = T0[None] + warm[None] * tc_ + aT
        pr = P0[None] * np.exp(ptr[None] * tc_ + aP)

        # --- land cover: general slight greening, deforestation box, fixed in the climate box
        rng = np.random.default_rng([self._noise_seed, int(round((lat[0] + 90) * 1e4)),
                                     int(round((lon[0] + 180) * 1e4)), lat.size, lon.size])
        dtc = np.where(lc_box | both_box, -2.5, np.where(clim_box, 0.0, 0.08 * (tc0 > 10)))
        tc = tc0[None] + dtc[None] * (tc_ + (ny - 1) / 2.0) + rng.normal(0, 0.4, size=(ny,) + T0.shape)
        tc = np.clip(tc, 0.0, 100.0)
        bg = np.clip(bg0[None] + rng.normal(0, 0.3, size=tc.shape), 0.0, None)
        bg = np.minimum(bg, 100.0 - tc)
        sv = 100.0 - tc - bg
        cover = (tc + 0.6 * sv) / 100.0

        # --- water and energy
        pet = np.maximum(300.0, 900.0 + 45.0 * tas)
        et = pet * (1.0 - np.exp(-pr / pet)) * (0.6 + 0.4 * cover)
        et_pet = et / pet
        sm = 0.04 + 0.42 * (1.0 - np.exp(-pr / 900.0)) * (0.85 + 0.15 * cover)
        wb = pr - pet
        if hard:
            # SPEI-like index from a water balance with its own anomalies: an independent
            # PET estimate (radiation anomalies), the balance carried over between years
            # (storage memory 0.6), then standardised per pixel (Vicente-Serrano et al. 2010)
            aR = np.stack([a(xyz) for a in self._anom["R"]])
            d = pr - pet * np.exp(0.12 * aR)
            acc = np.empty_like(d)
            acc[0] = d[0]
            for k in range(1, ny):
                acc[k] = d[k] + 0.6 * acc[k - 1]
            wb = acc
        spei = (wb - wb.mean(axis=0)) / np.maximum(wb.std(axis=0), 1e-6)
        nN = np.stack([a(xyz) for a in self._anom["N"]])
        lst_day = tas + 4.0 + 8.0 * (1.0 - sm / 0.46) - 3.0 * tc / 100.0 + 0.5 * nN
        lst_night = tas - 3.0 - 1.5 * (1.0 - tc / 100.0) + rng.normal(0, 0.4, size=tas.shape)

        # --- productivity: depends on climate and land cover
        fT = _sig((tas - 5.0) / 6.0)
        fM = 1.0 - np.exp(-pr / 800.0)
        fert = np.exp(FERTILITY_SD * w["fert"](xyz))
        gpp = 50.0 + 3200.0 * fT * fM * cover * fert * (1.0 + 0.004 * (tc_ + (ny - 1) / 2.0))
        evi = 0.05 + 0.55 * (1.0 - np.exp(-gpp / 2000.0))
        ndvi = 0.1 + 0.8 * (1.0 - np.exp(-gpp / 1200.0))

        # --- biome map from base climate x base land cover (fixed in time)
        biome = np.zeros(T0.shape, dtype=np.int8)
        ok = land & (bg0 < 50.0)
        forest = ok & (tc0 >= 35.0)
        biome[forest & (T0 >= 20.0)] = 7
        biome[forest & (T0 < 0.0)] = 6
        temp_forest = forest & (T0 >= 0.0) & (T0 < 20.0)
        leaf = w["leaf"](xyz)
        edges = [-0.85, -0.25, 0.25, 0.85]
        biome[temp_forest] = (1 + np.digitize(leaf, edges))[temp_forest]
        rest = ok & ~forest
        crop = rest & (w["crop"](xyz) > 0.6) & (T0 > 0.0) & (P0 > 400.0)
        biome[crop] = 9
        grass = rest & ~crop & (sv0 >= 50.0) & (P0 > 350.0)
        biome[grass] = 8
        biome[rest & ~crop & ~grass] = 10

        drivers = dict(tas=tas, pr=pr, pet=pet, et=et, et_pet=et_pet, sm=sm, spei=spei,
                       lst_day=lst_day, lst_night=lst_night, gpp=gpp, evi=evi, ndvi=ndvi,
                       tc=tc, sv=sv, bg=bg)
        rs = np.full(tas.shape, np.nan)
        resid = w["resid"](xyz)
        for code, m in (HARD_MODELS if hard else TRUE_MODELS).items():
            sel = biome == code
            if sel.any():
                T, M, P = (drivers[m[k]][:, sel] for k in ("T", "M", "P"))
                rs[:, sel] = hard_rs(T, M, P, m, m["M"], resid[sel][None]) if hard else eq4(T, M, P, *m["params"])
        out = {k: np.where(land[None], v, np.nan).astype(np.float32) for k, v in drivers.items()}
        out["rs_true"] = rs.astype(np.float32)
        out["land"] = land
        out["biome"] = biome
        out["tas_mean"] = np.where(land, tas.mean(axis=0), np.nan).astype(np.float32)
        return out


# ---------------------------------------------------------------- writing the world
def _blocks(grid: Grid):
    c = grid.chunk
    for i0 in range(0, grid.nlat, c):
        for j0 in range(0, grid.nlon, c):
            yield slice(i0, min(i0 + c, grid.nlat)), slice(j0, min(j0 + c, grid.nlon))


def _monthly_from_annual(var: str, annual: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Expand annual values (year, lat, lon) to months (year*12, lat, lon) so that the
    annual mean (or sum) of the months equals the annual value exactly."""
    ny = annual.shape[0]
    k = np.arange(12)
    hemi = np.sign(lat)[None, :, None]
    cyc = np.cos(2 * np.pi * (k - 6.5) / 12.0)[:, None, None] * np.where(hemi == 0, 1, hemi)  # (12, lat, 1)
    agg, _ = MONTHLY_VARS[var]
    a = annual[:, None]  # (year, 1, lat, lon)
    if var in ("tas", "lst_day", "lst_night"):
        amp = 0.3 * np.abs(lat)[None, :, None]
        m = a + (amp * cyc)[None]
    elif agg == "sum":
        alpha = {"pr": 0.3, "pet": 0.5, "et": 0.5, "gpp": 0.6}[var]
        m = a / 12.0 * (1.0 + alpha * cyc[None])
    elif var == "sm":
        m = a - 0.02 * cyc[None]
    elif var == "evi":
        m = a + 0.3 * (a - 0.05) * cyc[None]
    elif var == "ndvi":
        m = a + 0.2 * (a - 0.1) * cyc[None]
    else:  # spei
        m = np.broadcast_to(a, (ny, 12) + annual.shape[1:])
    if var.startswith("lst"):
        m = m + 273.15
    return np.asarray(m, dtype=np.float32).reshape((ny * 12,) + annual.shape[1:])


def write_world(
    out: str | Path,
    *,
    resolution: float = 1.0,
    years: tuple[int, int] = (2000, 2014),
    seed: int = 42,
    n_sites: int = 700,
    max_years_per_site: int = 3,
    obs_noise_sd: float = 0.05,
    lat_bounds: tuple[float, float] = (-60.0, 84.0),
    chunk: int = 256,
    progress: Callable[[str, int, int], None] | None = None,
    kind: str = "easy",
) -> dict[str, Path]:
    """Write the synthetic world below ``out``; returns the paths written.

    ``kind="easy"``: the truth has the paper's Eq 4 form, sites scattered with a temperate
    bias, 5 % lognormal noise (fast unit tests). ``kind="hard"`` (``soilresp demo``): a true
    response outside the fitted forms (:data:`HARD_MODELS`), a spatially correlated residual
    field, site random effects, heteroscedastic measurement error, sites clustered like the
    real SRDB (``data/srdb_site_density_5deg.csv``), a water-balance SPEI, and a box where
    climate and land cover both change (:data:`BOTH_CHANGE_BOX`); ``obs_noise_sd`` is unused.

    Drivers are written one variable at a time and one latitude band at a time, so memory
    is bounded by one block of ``chunk`` x ``chunk`` cells times the number of months.
    """
    out = Path(out)
    grid = Grid(resolution, lat_bounds[0], lat_bounds[1], -180.0, 180.0, chunk)
    world = SyntheticWorld(grid, years, seed, kind)
    ny = world.n_years
    say = progress or (lambda *a: None)

    # 1. annual state -> truth.zarr, block by block
    truth_path = out / "truth.zarr"
    state_vars = list(world.block(np.array([0.5]), np.array([0.5])).keys())
    annual_names = [v for v in state_vars if v not in ("land", "biome", "tas_mean")]
    blocks = list(_blocks(grid))
    tmp = out / ".truth.zarr.tmp"
    coords = {"year": world.year_values, **grid.coords()}
    # lazy placeholders (only the metadata is written): numpy templates chunked by xarray were
    # hashed page by page, i.e. held as whole-grid arrays (0.8 GB at 0.25 degree) for the whole run
    import dask.array as dsa

    c3 = (ny, grid.chunk, grid.chunk)
    template = xr.Dataset(
        {v: (("year", "lat", "lon"), dsa.empty((ny,) + grid.shape, chunks=c3, dtype=np.float32))
         for v in annual_names}
        | {"land": (("lat", "lon"), dsa.empty(grid.shape, chunks=c3[1:], dtype=bool)),
           "biome": (("lat", "lon"), dsa.empty(grid.shape, chunks=c3[1:], dtype=np.int8)),
           "tas_mean": (("lat", "lon"), dsa.empty(grid.shape, chunks=c3[1:], dtype=np.float32))},
        coords=coords,
    )
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    template.to_zarr(tmp, mode="w", compute=False, consolidated=False)
    for n, (si, sj) in enumerate(blocks):
        say("world blocks", n, len(blocks))
        b = world.block(grid.lat[si], grid.lon[sj])
        ds = xr.Dataset(
            {v: (("year", "lat", "lon"), b[v]) for v in annual_names}
            | {v: (("lat", "lon"), b[v]) for v in ("land", "biome", "tas_mean")}
        )
        ds.to_zarr(tmp, region={"year": slice(None), "lat": si, "lon": sj}, consolidated=False)
    say("world blocks", len(blocks), len(blocks))
    io.mark_complete(tmp)
    io._replace(tmp, truth_path)
    truth = xr.open_zarr(truth_path, consolidated=False)
    _annotate_truth(truth_path, truth)

    # 2. drivers as NetCDF, one per variable, north-to-south like many products
    ddir = out / "drivers"
    ddir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    all_vars = list(MONTHLY_VARS) + list(ANNUAL_VARS)
    for n, var in enumerate(all_vars):
        say("driver files", n, len(all_vars))
        paths[var] = _write_driver_file(ddir / f"{var}.nc", var, truth, world)
    say("driver files", len(all_vars), len(all_vars))

    # 3. biome map
    bio = truth["biome"].load().isel(lat=slice(None, None, -1))
    bio_ds = xr.Dataset({"biome": bio.astype(np.int8)})
    bio_ds["biome"].attrs = {
        "long_name": "biome (Huang et al. 2020 classes)", "units": "1",
        "flag_values": list(BIOMES), "flag_meanings": " ".join(BIOMES.values()),
        "comment": "0 = excluded (bare ground, water, ice)",
    }
    paths["biomes"] = _to_netcdf(bio_ds, out / "biomes.nc")

    # 4. field observations in SRDB format
    paths["srdb"] = _write_observations(out / "srdb-data.csv", world, truth, grid, n_sites, seed,
                                        max_years_per_site, obs_noise_sd, kind)

    # 5. true totals and trends
    paths["truth_json"] = _write_truth_json(out / "truth.json", truth, grid, world)
    from soilresp.synthetic_partition import add_partition

    add_partition(out, seed=seed)  # true Rh/Ra split, Rh/Ra columns in the CSV (docs/partition.md)
    paths["truth"] = truth_path
    return paths


def _annotate_truth(path: Path, truth: xr.Dataset) -> None:
    import zarr

    g = zarr.open_group(str(path), mode="r+")
    g["rs_true"].attrs.update({"units": "g C m-2 yr-1", "long_name": "true annual soil respiration"})
    g.attrs.update({"title": "soilresp synthetic world (NOT real data)", "Conventions": "CF-1.10"})


def _to_netcdf(ds: xr.Dataset, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    ds.attrs.update({"title": "soilresp synthetic world (NOT real data)", "Conventions": "CF-1.10"})
    ds.to_netcdf(tmp, encoding={v: {"zlib": True, "complevel": 1} for v in ds.data_vars})
    io._replace(tmp, path)
    return path


def _write_driver_file(path: Path, var: str, truth: xr.Dataset, world: SyntheticWorld) -> Path:
    """One driver as CF-NetCDF, north to south, chunk by chunk. The file's chunks are the grid's
    (12 months or all years x chunk x chunk cells, counted from the file's first row) and each
    dask block fills whole file chunks, so nothing is read back and recompressed: the library's
    default chunking (misaligned with the blocks, e.g. 45 x 144 x 360 at 0.25 degree) made every
    block write evict and rewrite half-filled compressed chunks (time growing faster than the
    grid) and gave the annual files one whole-grid chunk (decompressed whole by every reader task)."""
    lat_n = truth["lat"].values[::-1]  # north to south, as in the file
    ny = world.n_years
    annual = truth[var].isel(lat=slice(None, None, -1))
    c_lat, c_lon = annual.data.chunksize[1], annual.data.chunksize[2]
    annual = annual.chunk({"lat": c_lat})  # regular chunks from the file's first (northern) row
    if var in ANNUAL_VARS:
        time = pd.to_datetime([f"{y}-07-01" for y in world.year_values])
        da = xr.DataArray(annual.data, dims=("time", "lat", "lon"),
                          coords={"time": time, "lat": lat_n, "lon": truth["lon"].values})
        units, t_chunk = ANNUAL_VARS[var], ny
    else:
        monthly = annual.data.map_blocks(
            lambda blk, block_info=None: _monthly_from_annual(
                var, blk, lat_n[block_info[0]["array-location"][1][0]:block_info[0]["array-location"][1][1]]),
            chunks=((12 * ny,),) + annual.data.chunks[1:], dtype=np.float32,
        )
        time = pd.date_range(f"{world.years[0]}-01-01", periods=12 * ny, freq="MS") + pd.Timedelta(days=14)
        da = xr.DataArray(monthly, dims=("time", "lat", "lon"),
                          coords={"time": time, "lat": lat_n, "lon": truth["lon"].values})
        units, t_chunk = MONTHLY_VARS[var][1], 12
    da.attrs = {"units": units, "long_name": LONG_NAMES[var]}
    da["lat"].attrs = {"standard_name": "latitude", "units": "degrees_north"}
    da["lon"].attrs = {"standard_name": "longitude", "units": "degrees_east"}
    ds = xr.Dataset({var: da})
    tmp = path.with_name(f".{path.name}.tmp")
    ds.attrs.update({"title": "soilresp synthetic world (NOT real data)", "Conventions": "CF-1.10"})
    enc = {var: {"zlib": True, "complevel": 1, "dtype": "float32", "_FillValue": -9999.0,
                 "chunksizes": (t_chunk, min(c_lat, da.sizes["lat"]), min(c_lon, da.sizes["lon"]))}}
    ds.to_netcdf(tmp, encoding=enc)
    io._replace(tmp, path)
    return path


# SRDB v5 header (srdb-data.csv), in order.
SRDB_HEADER = (
    "Record_number,Entry_date,Study_number,Author,Duplicate_record,Quality_flag,Contributor,"
    "Country,Region,Site_name,Site_ID,Study_midyear,YearsOfData,Latitude,Longitude,Elevation,"
    "Manipulation,Manipulation_level,Age_ecosystem,Age_disturbance,Species,Biome,Ecosystem_type,"
    "Ecosystem_state,Leaf_habit,Stage,Soil_type,Soil_drainage,Soil_BD,Soil_CN,Soil_sand,Soil_silt,"
    "Soil_clay,MAT,MAP,PET,Study_temp,Study_precip,Meas_method,Collar_height,Collar_depth,"
    "Chamber_area,Time_of_day,Meas_interval,Annual_coverage,Partition_method,Rs_annual,"
    "Rs_annual_err,Rs_interann_err,Rlitter_annual,Ra_annual,Rh_annual,RC_annual,Rs_spring,"
    "Rs_summer,Rs_autumn,Rs_winter,Rs_growingseason,Rs_wet,Rs_dry,RC_seasonal,RC_season,GPP,ER,"
    "NEP,NPP,ANPP,BNPP,NPP_FR,TBCA,Litter_flux,Rootlitter_flux,TotDet_flux,Ndep,LAI,BA,"
    "C_veg_total,C_AG,C_BG,C_CR,C_FR,C_litter,C_soilmineral,C_soildepth,Notes"
).split(",")

_ECOSYSTEM = {1: ("Forest", "Deciduous"), 2: ("Forest", "Evergreen"), 3: ("Forest", "Deciduous"),
              4: ("Forest", "Evergreen"), 5: ("Forest", "Mixed"), 6: ("Forest", "Evergreen"),
              7: ("Forest", "Evergreen"), 8: ("Grassland", "Deciduous"), 9: ("Agriculture", "Deciduous"),
              10: ("Shrubland", "Evergreen")}


def srdb_site_density() -> pd.DataFrame:
    """Distinct SRDB site locations per 5-degree cell (``lat``, ``lon`` cell centres,
    ``sites``), packaged in ``soilresp/data`` (how it was made:
    ``data/make_srdb_site_density.py``)."""
    return pd.read_csv(Path(__file__).parent / "data" / "srdb_site_density_5deg.csv")


def _clustered_sites(rng, ii, jj, b, grid: Grid, n_sites: int, min_per_biome: int = 4) -> np.ndarray:
    """Pixel indices (into ``ii, jj``) of ``n_sites`` sites clustered like the real SRDB:
    cluster centres drawn with the density of real site locations in their 5-degree cell
    (plus a small floor), 1-8 sites per cluster within about one cell of the centre, and at
    least ``min_per_biome`` sites in every biome (so each has a model; many stay under 20)."""
    dens = srdb_site_density()
    key = {(round(a, 1), round(o, 1)): n for a, o, n in dens[["lat", "lon", "sites"]].itertuples(index=False)}
    clat = np.floor((grid.lat[ii] + 90) / 5.0) * 5 - 90 + 2.5
    clon = np.floor((grid.lon[jj] + 180) / 5.0) * 5 - 180 + 2.5
    w = np.array([key.get((round(a, 1), round(o, 1)), 0) for a, o in zip(clat, clon)], dtype=float)
    cells_per_5deg = max(1.0, (5.0 / grid.resolution) ** 2)
    w = w / cells_per_5deg + 0.02
    chosen: list[int] = []
    pos = {(int(i), int(j)): k for k, (i, j) in enumerate(zip(ii, jj))}
    while len(chosen) < n_sites:
        c = int(rng.choice(ii.size, p=w / w.sum()))
        for _ in range(min(int(rng.geometric(0.35)), 8, n_sites - len(chosen))):
            di, dj = rng.integers(-1, 2, size=2) if rng.random() < 0.5 else (0, 0)
            k = pos.get((int(ii[c] + di), int(jj[c] + dj)), c)
            chosen.append(k)
    for code in np.unique(b):
        have = sum(1 for k in chosen if b[k] == code)
        idx = np.nonzero(b == code)[0]
        if have < min_per_biome and idx.size:
            chosen.extend(rng.choice(idx, size=min(min_per_biome - have, idx.size), replace=False))
    return np.array(sorted(chosen))


def _write_observations(path: Path, world: SyntheticWorld, truth: xr.Dataset, grid: Grid,
                        n_sites: int, seed: int, max_years_per_site: int = 3,
                        obs_noise_sd: float = 0.05, kind: str = "easy") -> Path:
    """Sample sites and years. Easy world: biased to the temperate zone, every biome
    represented, lognormal noise. Hard world: SRDB-like clusters (:func:`_clustered_sites`),
    site random effects and heteroscedastic measurement error (:data:`SITE_EFFECT_SD`,
    :data:`OBS_NOISE`); several sites may share a pixel."""
    rng = np.random.default_rng([seed, 7])
    biome = truth["biome"].values  # static map: small (lat, lon) int8
    tmean = truth["tas_mean"].values
    ii, jj = np.nonzero(biome > 0)
    b = biome[ii, jj]
    t = tmean[ii, jj]
    weight = np.where((t >= 2) & (t <= 17), 5.0, 1.0)  # databases favour temperate sites
    if kind == "hard":
        return _write_rows(path, world, truth, grid, rng, ii, jj, b, t,
                           _clustered_sites(rng, ii, jj, b, grid, n_sites), max_years_per_site, kind, 0.0)
    chosen: list[int] = []
    per_biome_min = max(6, n_sites // 25)
    for code in TRUE_MODELS:  # every biome gets a minimum number of sites
        idx = np.nonzero(b == code)[0]
        if idx.size:
            k = min(per_biome_min, idx.size)
            chosen.extend(rng.choice(idx, size=k, replace=False, p=weight[idx] / weight[idx].sum()))
    rest = np.setdiff1d(np.arange(b.size), chosen)
    k = max(0, min(n_sites - len(chosen), rest.size))
    chosen.extend(rng.choice(rest, size=k, replace=False, p=weight[rest] / weight[rest].sum()))
    chosen = np.array(sorted(chosen))
    return _write_rows(path, world, truth, grid, rng, ii, jj, b, t, chosen, max_years_per_site, kind,
                       obs_noise_sd)


def _write_rows(path, world, truth, grid, rng, ii, jj, b, t, chosen, max_years_per_site, kind,
                obs_noise_sd) -> Path:
    years = world.year_values
    rows = []
    rec = 0
    rs_true = truth["rs_true"]
    for s, idx in enumerate(chosen):
        i, j = ii[idx], jj[idx]
        n_y = int(rng.integers(1, max_years_per_site + 1))
        ys = np.sort(rng.choice(years, size=min(n_y, years.size), replace=False))
        lat = grid.lat[i] + rng.uniform(-0.4, 0.4) * grid.resolution
        lon = grid.lon[j] + rng.uniform(-0.4, 0.4) * grid.resolution
        if not world.land(np.array([lat]), np.array([lon]))[0, 0]:  # a site jittered into the sea
            lat, lon = grid.lat[i], grid.lon[j]
        eco, leaf = _ECOSYSTEM[int(b[idx])]
        series = rs_true[:, i, j].values
        u = rng.normal(0.0, SITE_EFFECT_SD) - SITE_EFFECT_SD ** 2 / 2 if kind == "hard" else 0.0
        for y in ys:
            reps = 2 if rng.random() < 0.1 else 1  # some site-years measured twice
            for _ in range(reps):
                rec += 1
                if kind == "hard":
                    mu = float(series[y - years[0]]) * float(np.exp(u))
                    val = max(5.0, mu + rng.normal(0.0, OBS_NOISE[0] + OBS_NOISE[1] * mu))
                else:
                    val = float(series[y - years[0]]) * float(np.exp(rng.normal(0, obs_noise_sd)))
                rows.append(dict(
                    Record_number=rec, Study_number=1000 + s, Site_name=f"Synthetic site {s:04d}",
                    Latitude=round(lat, 4), Longitude=round(lon, 4), Country="",
                    Biome=REGION_NAMES[int(classify_region(np.array([t[idx]]))[0]) or 2].capitalize(),
                    Ecosystem_type=eco, Leaf_habit=leaf, Study_midyear=y + 0.5, YearsOfData=1,
                    Manipulation="None", Meas_method="IRGA" if rng.random() < 0.85 else "Gas chromatography",
                    Rs_annual=round(val, 1), Quality_flag="", Duplicate_record="",
                ))
    # records the paper's filters must remove
    bad = [dict(Meas_method="Soda lime"), dict(Manipulation="Fertilized"), dict(Quality_flag="Q13"),
           dict(Study_midyear=1995.5), dict(Rs_annual="")]
    for n in range(40):
        src = dict(rows[int(rng.integers(0, len(rows)))])
        rec += 1
        src.update(bad[n % len(bad)], Record_number=rec)
        rows.append(src)
    df = pd.DataFrame(rows).reindex(columns=SRDB_HEADER)
    io.write_csv(path, df)
    return path


def _series_trend(y: np.ndarray, x: np.ndarray) -> dict[str, float]:
    from scipy import stats

    res = stats.theilslopes(y, x)
    return {"sen_slope": float(res.slope), "ols_slope": float(np.polyfit(x, y, 1)[0])}


def _write_truth_json(path: Path, truth: xr.Dataset, grid: Grid, world: SyntheticWorld) -> Path:
    from soilresp.product import regional_totals

    region = xr.DataArray(classify_region(truth["tas_mean"].values), dims=("lat", "lon"),
                          coords={"lat": truth["lat"], "lon": truth["lon"]})
    rs = truth["rs_true"].where(truth["biome"] > 0)
    totals = regional_totals(rs, region, grid.cell_area()).compute()
    years = world.year_values
    doc = {
        "synthetic": True,
        "note": "Synthetic world made by soilresp.synthetic; not real data.",
        "seed": world.seed, "resolution": grid.resolution, "years": list(world.years),
        "totals_pg_per_yr": {r: [float(v) for v in totals.sel(region=r).values]
                             for r in totals["region"].values},
        "trends_pg_per_yr2": {r: _series_trend(totals.sel(region=r).values, years)
                              for r in totals["region"].values},
        "kind": world.kind,
        "true_models": {BIOMES[k]: (dict(v, form="hard: Lloyd-Taylor x (rref fM + k P) x residual field")
                                    if world.kind == "hard" else dict(v, form="eq4"))
                        for k, v in (HARD_MODELS if world.kind == "hard" else TRUE_MODELS).items()},
        "boxes": {"climate_only": CLIMATE_ONLY_BOX, "landcover_only": LANDCOVER_ONLY_BOX,
                  **({"both_change": BOTH_CHANGE_BOX} if world.kind == "hard" else {})},
    }
    io.write_json(path, doc)
    return path
