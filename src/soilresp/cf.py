"""CF-1.10 metadata shared by every grid soilresp writes (Zarr stores and exports).

One place for the unit strings, the WGS84 grid mapping and the per-variable attributes, so
that GDAL/QGIS (Zarr and netCDF drivers), CDO/NCO, Panoply and cf-xarray read the same
thing. References: CF conventions 1.10 §3 (units, standard_name), §5.6 (grid mappings,
``crs_wkt``), §7.1 (cell boundaries), §3.5 (flags); GDAL's Zarr driver (``_CRS``
attribute, geotransform from regular 1-D coordinates).

Units follow UDUNITS-2 (what cf-units, CDO and the compliance-checker parse). A carbon mass
cannot be written "g C": UDUNITS reads the C as coulomb. Carbon fluxes are therefore in
:data:`RS_UNITS` ("g m-2 yr-1") with the carbon named in ``long_name``/``comment``, as CMIP
does for its carbon fluxes ("kg m-2 s-1", "expressed as carbon").
"""

from __future__ import annotations

import re

import numpy as np
import xarray as xr

#: Units of soil respiration (grams of carbon per m2 per year); the mass is carbon.
RS_UNITS = "g m-2 yr-1"
#: The comment written beside :data:`RS_UNITS`.
CARBON_COMMENT = "mass of carbon (g C m-2 yr-1): the units count grams of carbon"
#: Name of the grid-mapping variable in every store and export (as rioxarray/GDAL write it).
GRID_MAPPING = "spatial_ref"
#: The helper variables :func:`annotate` adds (readers that want data only drop them).
HELPER_VARS = (GRID_MAPPING, "lat_bnds", "lon_bnds")

# UDUNITS cannot read these spellings; they are rewritten by :func:`cf_units`
_UNIT_FIXES = {
    "g C m-2 yr-1": RS_UNITS, "gC m-2 yr-1": RS_UNITS, "g C m-2 year-1": RS_UNITS,
    "g C m-2": "g m-2", "gC m-2": "g m-2", "kg C m-2 s-1": "kg m-2 s-1",
    "g C m-2 d-1": "g m-2 d-1", "gC m-2 d-1": "g m-2 d-1", "g C m-2 day-1": "g m-2 d-1",
    "Pg C yr-1": "Pg yr-1", "fraction": "1", "-": "1", "": "1", "none": "1",
    "dimensionless": "1", "unitless": "1", "celsius": "degC", "degrees C": "degC",
    "°C": "degC", "mm/yr": "mm yr-1", "mm/year": "mm yr-1",
}

# name -> (long_name, units or None to keep the variable's own, standard_name or None)
_KNOWN: dict[str, tuple[str, str | None, str | None]] = {
    "rs": ("annual soil respiration (carbon)", RS_UNITS, None),
    "rs_lo": ("lower quantile of annual soil respiration (carbon)", RS_UNITS, None),
    "rs_hi": ("upper quantile of annual soil respiration (carbon)", RS_UNITS, None),
    "biome": ("biome (Huang et al. 2020 classes)", "1", None),
    "region": ("climate region", "1", None),
    "model_family": ("model family used for the pixel", "1", None),
    "cell_area": ("grid cell area on the WGS84 ellipsoid", "m2", "cell_area"),
    "tas": ("annual mean air temperature", None, "air_temperature"),
    "tas_mean": ("mean annual air temperature over the run's years", None, "air_temperature"),
    "pr": ("annual precipitation", None, "lwe_precipitation_rate"),
    "gpp": ("annual gross primary productivity (carbon)", None,
            "gross_primary_productivity_of_biomass_expressed_as_carbon"),
    "ndvi": ("normalized difference vegetation index", "1", "normalized_difference_vegetation_index"),
    "evi": ("enhanced vegetation index", "1", None),
    "slope": ("Theil-Sen slope of annual soil respiration", None, None),
    "p": ("Mann-Kendall two-sided p-value", "1", None),
    "q": ("Benjamini-Hochberg adjusted p-value (q)", "1", None),
    "tau": ("Kendall tau of the Mann-Kendall test", "1", None),
    "s": ("Mann-Kendall S", "1", None),
    "z": ("Mann-Kendall z (continuity-corrected)", "1", None),
    "n": ("number of valid years", "1", None),
    "slope_lo": ("lower confidence bound of the Theil-Sen slope", None, None),
    "slope_hi": ("upper confidence bound of the Theil-Sen slope", None, None),
    "net_change": ("net change over the years (slope x span)", None, None),
    "trend_class": ("trend class (Huang et al. 2020 Fig 2B)", "1", None),
    "significant": ("significant trend", "1", None),
    "fdr_reject": ("rejected by the Benjamini-Hochberg FDR procedure", "1", None),
    "change_class": ("dominant cause of the Rs change (Huang et al. 2020 Fig 5)", "1", None),
    "aoa": ("inside the area of applicability", "1", None),
}
_PREFIX = {
    "r_": ("partial correlation of Rs with {}", "1"),
    "p_trend_": ("Mann-Kendall p-value of the trend of {}", "1"),
    "p_": ("p-value of the partial correlation of Rs with {}", "1"),
    "q_trend_": ("Benjamini-Hochberg q of the trend of {}", "1"),
    "q_": ("Benjamini-Hochberg q of the partial correlation with {}", "1"),
    "sig_trend_": ("significant trend of {} (FDR)", "1"),
    "sig_": ("significant partial correlation with {} (FDR)", "1"),
    "slope_": ("Theil-Sen slope of {}", None),
}


def cf_units(units: str | None) -> str:
    """A UDUNITS-2 spelling of ``units`` (carbon "g C" -> "g", fractions -> "1")."""
    u = "" if units is None else str(units).strip()
    if u in _UNIT_FIXES:
        return _UNIT_FIXES[u]
    return re.sub(r"(?<![A-Za-z])(k?g) ?C(?![A-Za-z])", r"\1", u)  # "g C m-2" -> "g m-2"


def per_year(units: str | None) -> str:
    """Units of a per-year rate of a quantity in ``units`` (a Theil-Sen slope)."""
    u = cf_units(units)
    if u == RS_UNITS:
        return "g m-2 yr-2"
    return "yr-1" if u == "1" else f"{u} yr-1"


#: WKT2 (2019) of EPSG:4326, WGS84 geographic lat/lon: ``pyproj.CRS.from_epsg(4326).to_wkt()``
#: with PROJ 9.5's EPSG database, kept as data so the core install needs no pyproj and the
#: stores' bytes do not follow the PROJ version (tests/test_extras.py: pyproj reads it back as
#: EPSG:4326).
WGS84_WKT2 = (
    'GEOGCRS["WGS 84",ENSEMBLE["World Geodetic System 1984 ensemble",'
    'MEMBER["World Geodetic System 1984 (Transit)"],MEMBER["World Geodetic System 1984 (G730)"],'
    'MEMBER["World Geodetic System 1984 (G873)"],MEMBER["World Geodetic System 1984 (G1150)"],'
    'MEMBER["World Geodetic System 1984 (G1674)"],MEMBER["World Geodetic System 1984 (G1762)"],'
    'MEMBER["World Geodetic System 1984 (G2139)"],MEMBER["World Geodetic System 1984 (G2296)"],'
    'ELLIPSOID["WGS 84",6378137,298.257223563,LENGTHUNIT["metre",1]],ENSEMBLEACCURACY[2.0]],'
    'PRIMEM["Greenwich",0,ANGLEUNIT["degree",0.0174532925199433]],CS[ellipsoidal,2],'
    'AXIS["geodetic latitude (Lat)",north,ORDER[1],ANGLEUNIT["degree",0.0174532925199433]],'
    'AXIS["geodetic longitude (Lon)",east,ORDER[2],ANGLEUNIT["degree",0.0174532925199433]],'
    'USAGE[SCOPE["Horizontal component of 3D system."],AREA["World."],BBOX[-90,-180,90,180]],'
    'ID["EPSG",4326]]')


def crs_wkt() -> str:
    """WKT2 (2019) of WGS84 geographic lat/lon, EPSG:4326 (:data:`WGS84_WKT2`)."""
    return WGS84_WKT2


def geo_transform(lat: np.ndarray, lon: np.ndarray) -> tuple[float, ...]:
    """GDAL geotransform (x0, dx, 0, y0, 0, dy) of cell centres ``lat``/``lon`` (edges)."""
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    dx = float(lon[1] - lon[0]) if lon.size > 1 else 1.0
    dy = float(lat[1] - lat[0]) if lat.size > 1 else 1.0
    return (float(lon[0]) - dx / 2, dx, 0.0, float(lat[0]) - dy / 2, 0.0, dy)


def grid_mapping_var(lat: np.ndarray, lon: np.ndarray) -> xr.DataArray:
    """The CF ``latitude_longitude`` grid-mapping variable with WKT2, spatial_ref and
    GeoTransform (the three spellings CF, GDAL's netCDF driver and rioxarray read)."""
    wkt = crs_wkt()
    return xr.DataArray(np.int32(0), attrs={
        "grid_mapping_name": "latitude_longitude", "semi_major_axis": 6378137.0,
        "inverse_flattening": 298.257223563, "longitude_of_prime_meridian": 0.0,
        "crs_wkt": wkt, "spatial_ref": wkt,
        "GeoTransform": " ".join(repr(v) for v in geo_transform(lat, lon))})


def _bounds(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, float)
    d = np.diff(c)
    half = np.concatenate([[d[0]], d]) / 2 if c.size > 1 else np.array([0.5])
    return np.stack([c - half, c + half], axis=1)


def flag_values(values, dtype) -> np.ndarray:
    """``flag_values`` as an array of the variable's own type (CF §3.5)."""
    return np.asarray(list(values)).astype(dtype)


def annotate(ds: xr.Dataset, *, gdal_crs: bool = True) -> xr.Dataset:
    """CF/GDAL metadata on a lat/lon grid Dataset (returns a new Dataset; data untouched).

    Adds lat/lon ``standard_name``/``units``/``axis``/``bounds`` (+ ``lat_bnds``,
    ``lon_bnds``), the :data:`GRID_MAPPING` variable and ``grid_mapping`` on every (lat,
    lon) variable, GDAL's ``_CRS`` (Zarr driver) when ``gdal_crs``, and on every variable
    UDUNITS ``units`` ("1" when dimensionless), ``long_name`` and a ``standard_name`` where
    CF has one. Datasets without lat/lon only get the variable attributes.
    """
    ds = ds.copy()
    geo = "lat" in ds.dims and "lon" in ds.dims
    if geo:
        ds["lat"].attrs.update({"standard_name": "latitude", "long_name": "latitude",
                                "units": "degrees_north", "axis": "Y", "bounds": "lat_bnds"})
        ds["lon"].attrs.update({"standard_name": "longitude", "long_name": "longitude",
                                "units": "degrees_east", "axis": "X", "bounds": "lon_bnds"})
        for c in ("lat", "lon"):
            ds[c].attrs.pop("_FillValue", None)
            ds[c].encoding.pop("_FillValue", None)
            ds[c].encoding["_FillValue"] = None
        ds["lat_bnds"] = (("lat", "bnds"), _bounds(ds["lat"].values))
        ds["lon_bnds"] = (("lon", "bnds"), _bounds(ds["lon"].values))
        for b in ("lat_bnds", "lon_bnds"):
            ds[b].encoding["_FillValue"] = None
        ds[GRID_MAPPING] = grid_mapping_var(ds["lat"].values, ds["lon"].values)
    if "year" in ds.dims:
        ds["year"].attrs.update({"long_name": "calendar year", "units": "1"})
        ds["year"].encoding["_FillValue"] = None
    for name in ds.data_vars:
        if name in HELPER_VARS:
            continue
        v = ds[name]
        _var_attrs(str(name), v)
        if geo and {"lat", "lon"} <= set(v.dims):
            v.attrs["grid_mapping"] = GRID_MAPPING
            if gdal_crs:
                v.attrs["_CRS"] = {"wkt": crs_wkt(),
                                   "url": "http://www.opengis.net/def/crs/EPSG/0/4326"}
    return ds


def _var_attrs(name: str, v: xr.DataArray) -> None:
    a = v.attrs
    known = _KNOWN.get(name)
    if known is None:
        for pre, (ln, un) in _PREFIX.items():
            if name.startswith(pre):
                known = (ln.format(name[len(pre):]), un, None)
                break
    if known is not None:
        ln, un, sn = known
        a.setdefault("long_name", ln)
        if un is not None and (name in ("rs", "rs_lo", "rs_hi") or "units" not in a
                               or un == "1"):
            a["units"] = un
        if sn:
            a["standard_name"] = sn
    if a.get("standard_name") == "soil_respiration_carbon_flux":  # not in the CF table
        del a["standard_name"]
    if v.dtype == bool or "flag_values" in a or "flag_meanings" in a:
        a["units"] = "1" if "flag_values" not in a else a.get("units", "1")
    a["units"] = cf_units(a.get("units"))
    if a["units"] == RS_UNITS or "(carbon)" in a.get("long_name", ""):
        c = str(a.get("comment", ""))
        if CARBON_COMMENT not in c:
            a["comment"] = f"{CARBON_COMMENT}. {c}" if c else CARBON_COMMENT
    a.setdefault("long_name", name.replace("_", " "))
    if "flag_values" in a:
        dt = np.int8 if v.dtype == bool else v.dtype
        a["flag_values"] = flag_values(np.ravel(a["flag_values"]), dt)
