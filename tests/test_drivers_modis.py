"""MODIS HDF4-EOS reader: small tiles written with pyhdf using the real SDS attribute names
(scale_factor, add_offset, _FillValue, valid_range) and a minimal StructMetadata.0."""

import numpy as np
import pandas as pd
import pytest

pyhdf = pytest.importorskip("pyhdf")
from pyhdf.SD import SD, SDC  # noqa: E402

from soilresp.config import DriverSource  # noqa: E402
from soilresp.drivers import build_cube  # noqa: E402
from soilresp.drivers.modis import (  # noqa: E402
    open_modis,
    parse_struct_metadata,
    qa_rule,
    read_sds,
    tile_geometry,
)
from soilresp.errors import InputError  # noqa: E402
from soilresp.grid import Grid  # noqa: E402

R = 6371007.181
TILE = 1111950.5196666666
X0, Y0 = -20015109.355798, 10007554.677899
_TYPES = {np.uint16: SDC.UINT16, np.uint8: SDC.UINT8, np.int16: SDC.INT16, np.int8: SDC.INT8}


def _struct(h, v, n):
    ulx, uly = X0 + h * TILE, Y0 - v * TILE
    return (
        "GROUP=SwathStructure\nEND_GROUP=SwathStructure\nGROUP=GridStructure\n"
        "\tGROUP=GRID_1\n\t\tGridName=\"MODIS_Grid_8Day_1km_LST\"\n"
        f"\t\tXDim={n}\n\t\tYDim={n}\n"
        f"\t\tUpperLeftPointMtrs=({ulx:.6f},{uly:.6f})\n"
        f"\t\tLowerRightMtrs=({ulx + TILE:.6f},{uly - TILE:.6f})\n"
        "\t\tProjection=GCTP_SNSOID\n\t\tProjParams=(6371007.181000,0,0,0,0,0,0,0,0,0,0,0,0)\n"
        "\t\tSphereCode=-1\n\tEND_GROUP=GRID_1\nEND_GROUP=GridStructure\nEND\n"
    )


def write_tile(path, h, v, sds: dict, n):
    """sds: name -> (array, attrs)."""
    f = SD(str(path), SDC.WRITE | SDC.CREATE)
    f.attr("StructMetadata.0").set(SDC.CHAR, _struct(h, v, n))
    for name, (arr, attrs) in sds.items():
        s = f.create(name, _TYPES[arr.dtype.type], arr.shape)
        for k, val in attrs.items():
            if isinstance(val, str):
                s.attr(k).set(SDC.CHAR, val)
            elif k in ("scale_factor", "add_offset"):
                s.attr(k).set(SDC.FLOAT64, float(val))
            else:
                typ = _TYPES[arr.dtype.type]
                s.attr(k).set(typ, list(np.atleast_1d(np.asarray(val, dtype=arr.dtype)).tolist())
                              if k == "valid_range" else np.asarray(val, dtype=arr.dtype).item())
        s[:] = arr
        s.endaccess()
    f.end()
    return path


LST_ATTRS = {"long_name": "Daytime Land Surface Temperature", "units": "K", "scale_factor": 0.02,
             "add_offset": 0.0, "_FillValue": 0, "valid_range": [7500, 65535]}


def _lst(n, h, v):
    """raw value encodes the global pixel row/col: 14000 + col + 100 * row (uint16)."""
    r, c = np.meshgrid(np.arange(n) + v * n, np.arange(n) + h * n, indexing="ij")
    return (14000 + c + 100 * (r - 4 * n)).astype(np.uint16)


def test_struct_metadata_and_reader_scale_fill_qa(tmp_path):
    n = 6
    lst = _lst(n, 18, 4)
    lst[0, 0] = 0            # fill
    lst[0, 1] = 7000         # below valid_range
    qc = np.zeros((n, n), np.uint8)
    qc[1, 0] = 0b01          # other quality: kept by default, dropped when strict
    qc[1, 1] = 0b10          # not produced (cloud): always dropped
    qc[1, 2] = 0b11 | 0b1100  # not produced, other bits set
    qc[1, 3] = 0b0100        # good, with bits 2-3 set: kept
    p = write_tile(tmp_path / "MOD11A2.A2001001.h18v04.061.2021000000000.hdf", 18, 4,
                   {"LST_Day_1km": (lst, LST_ATTRS), "QC_Day": (qc, {"long_name": "QC"})}, n)
    g = tile_geometry(p, "LST_Day_1km")
    assert (g.nx, g.ny) == (n, n)
    assert g.ulx == pytest.approx(X0 + 18 * TILE, abs=1e-3) and g.dy == pytest.approx(TILE / n)
    a = read_sds(p, "LST_Day_1km")
    exp = lst * 0.02
    assert np.isnan(a[0, 0]) and np.isnan(a[0, 1])
    assert np.isnan(a[1, 1]) and np.isnan(a[1, 2])
    assert a[1, 0] == pytest.approx(exp[1, 0]) and a[1, 3] == pytest.approx(exp[1, 3])
    np.testing.assert_allclose(a[2:], exp[2:])
    s = read_sds(p, "LST_Day_1km", qa="strict")
    assert np.isnan(s[1, 0]) and s[1, 3] == pytest.approx(exp[1, 3])
    nq = read_sds(p, "LST_Day_1km", qa="none")
    assert nq[1, 1] == pytest.approx(exp[1, 1]) and np.isnan(nq[0, 0])
    w = read_sds(p, "LST_Day_1km", window=(2, 4, 1, 3))
    np.testing.assert_allclose(w, exp[2:4, 1:3])
    with pytest.raises(InputError, match="column 'LST_Night_1km': SDS not found"):
        read_sds(p, "LST_Night_1km")


def test_hdf4_offset_convention_vi_reliability_and_psn_qc(tmp_path):
    n = 4
    evi = np.full((n, n), 5000, np.int16)
    evi[0, 0] = -3000  # fill
    rel = np.array([[0, 1, 2, 3]] * n, np.int8)
    rel[3, 3] = -1
    p = write_tile(tmp_path / "MOD13A1.A2005161.h10v05.061.hdf", 10, 5, {
        "500m 16 days EVI": (evi, {"units": "EVI", "scale_factor": 0.0001, "add_offset": 0.0,
                                   "_FillValue": -3000, "valid_range": [-2000, 10000]}),
        "500m 16 days pixel reliability": (rel, {"_FillValue": -1, "valid_range": [0, 3]})}, n)
    a = read_sds(p, "500m 16 days EVI")
    assert np.isnan(a[0, 0]) and a[1, 0] == pytest.approx(0.5) and a[1, 1] == pytest.approx(0.5)
    assert np.isnan(a[:, 2]).all() and np.isnan(a[:, 3]).all()
    assert np.isnan(read_sds(p, "500m 16 days EVI", qa="strict")[:, 1]).all()
    # MOD17: SCF_QC bits 5-7 (000 main, 001 main+saturation, 010 backup); HDF4: s * (v - off)
    gpp = np.full((n, n), 1000, np.uint16)
    gpp[0, 1] = 32765  # barren special value above valid_range
    psn = np.zeros((n, n), np.uint8)
    psn[2, 0] = 0b001 << 5
    psn[2, 1] = 0b010 << 5
    psn[2, 2] = 0b001 << 5 | 1   # main+saturation, MODLAND other quality
    p2 = write_tile(tmp_path / "MOD17A2H.A2005161.h10v05.061.hdf", 10, 5, {
        "Gpp_500m": (gpp, {"units": "kg C/m^2/8d", "scale_factor": 0.0001, "add_offset": 10.0,
                           "_FillValue": 65535, "valid_range": [0, 30000]}),
        "Psn_QC_500m": (psn, {"_FillValue": 255})}, n)
    g = read_sds(p2, "Gpp_500m")
    assert g[0, 0] == pytest.approx(0.0001 * (1000 - 10.0))
    assert np.isnan(g[0, 1]) and np.isnan(g[2, 1])
    assert g[2, 0] == pytest.approx(0.099) and g[2, 2] == pytest.approx(0.099)
    gs = read_sds(p2, "Gpp_500m", qa="strict")
    assert np.isnan(gs[2, 0]) and np.isnan(gs[2, 2]) and gs[0, 0] == pytest.approx(0.099)


def test_qa_rule_table():
    assert qa_rule("MYD11A2", "LST_Night_1km").qa_sds == "QC_Night"
    assert qa_rule("MOD13A2", "1 km 16 days NDVI").qa_sds == "1 km 16 days pixel reliability"
    assert qa_rule("MOD16A2", "PET_500m").qa_sds == "ET_QC_500m"
    assert qa_rule("MOD17A2H", "Psn_QC_500m") is None


def _expected(grid, h_tiles, n):
    """Independent sinusoidal forward formula -> global pixel -> encoded value (K)."""
    lon, lat = np.meshgrid(np.deg2rad(grid.lon), np.deg2rad(grid.lat))
    x, y = R * lon * np.cos(lat), R * lat
    px = TILE / n
    gcol = np.floor((x - X0) / px).astype(int)
    grow = np.floor((Y0 - y) / px).astype(int)
    inside = (grow >= 4 * n) & (grow < 5 * n) & np.isin(gcol // n, h_tiles)
    return np.where(inside, (14000 + gcol + 100 * (grow - 4 * n)) * 0.02, np.nan)


def test_mosaic_two_tiles_without_seam(tmp_path):
    n = 12
    for h in (18, 19):
        lst, qc = _lst(n, h, 4), np.zeros((n, n), np.uint8)
        write_tile(tmp_path / f"MOD11A2.A2003009.h{h}v04.061.hdf", h, 4,
                   {"LST_Day_1km": (lst, LST_ATTRS), "QC_Day": (qc, {})}, n)
    grid = Grid(0.25, 38.0, 52.0, -2.0, 34.0, chunk=16)
    da = open_modis(sorted(tmp_path.glob("*.hdf")), "LST_Day_1km", grid)
    assert da.sizes == {"time": 1, "lat": grid.nlat, "lon": grid.nlon}
    assert pd.Timestamp(da["time"].values[0]) == pd.Timestamp("2003-01-09")
    got = da.isel(time=0).values
    exp = _expected(grid, [18, 19], n)
    np.testing.assert_allclose(got, exp, rtol=0, atol=1e-4)
    assert np.isfinite(got).sum() > 1000 and np.isnan(got).any()
    # the seam: along a row, the encoded global column never jumps by more than 1 pixel
    cols = np.round(got / 0.02 - 14000) % 100
    row = cols[grid.nlat // 2]
    d = np.diff(row[np.isfinite(row)])
    assert set(np.unique(d)).issubset({0.0, 1.0})
    assert da.attrs["units"] == "K" and da.attrs["soilresp_on_target_grid"] == 1


def test_modis_et_8day_to_annual_cube(tmp_path):
    """46 MOD16A2 composites of one tile through build_cube: QA, fill, 8-day sum rule."""
    n = 4
    dates = pd.DatetimeIndex([pd.Timestamp(2001, 1, 1) + pd.Timedelta(days=8 * k) for k in range(46)])
    for k, t in enumerate(dates):
        et = np.full((n, n), 80, np.int16)  # 8.0 mm per composite
        qc = np.zeros((n, n), np.uint8)
        if k < 20:
            qc[0, :] = 0b010 << 5  # backup algorithm on row 0 for 20 composites: < 75 % valid
        if k == 45:
            et[1, :] = 32767  # fill in the last composite on row 1
        write_tile(tmp_path / f"MOD16A2.A{t.year}{t.day_of_year:03d}.h18v04.061.hdf", 18, 4, {
            "ET_500m": (et, {"units": "kg/m^2/8day", "scale_factor": 0.1, "add_offset": 0.0,
                             "_FillValue": 32767, "valid_range": [-32767, 32700]}),
            "ET_QC_500m": (qc, {"_FillValue": 255})}, n)
    geo = tile_geometry(next(tmp_path.glob("*.hdf")), "ET_500m")
    lat_c = np.rad2deg((geo.uly - geo.dy * (np.arange(n) + 0.5)) / R)
    grid = Grid(1.0, 40.0, 50.0, 0.0, 10.0, chunk=8)
    src = DriverSource(variable="et", path="MOD16A2.*.hdf", name="ET_500m", aggregation="sum",
                       frequency="8day", seasons=False)
    cube = build_cube([src], grid, (2001, 2001), tmp_path).compute()
    et = cube["et"].isel(year=0)
    assert et.attrs["units"] == "mm yr-1"
    # which pixel row each target row reads
    prow = np.floor((geo.uly - R * np.deg2rad(grid.lat)) / geo.dy).astype(int)
    seen = set()
    for i, r in enumerate(prow):
        v = et.values[i]
        v = v[np.isfinite(v)]
        if r < 0 or r >= n:
            assert v.size == 0
            continue
        if r == 0:
            assert v.size == 0  # 26 of 46 valid < ceil(0.75 x 46)
            continue
        assert v.size > 0
        seen.add(int(r))
        if r == 1:
            # 45 valid composites of 8 mm over 360 days, scaled to 365 days
            np.testing.assert_allclose(v, 45 * 8.0 / 360 * 365, rtol=1e-5)
        else:
            # complete year: 45 x 8 mm + the last (5-day) composite's 8 mm
            np.testing.assert_allclose(v, 46 * 8.0, rtol=1e-5)
    assert seen == {1, 2, 3}
    assert lat_c.size == n


def test_parse_struct_metadata_errors():
    with pytest.raises(InputError, match="no GRID"):
        parse_struct_metadata("GROUP=SwathStructure\nEND_GROUP=SwathStructure\n")
    txt = _struct(1, 1, 3).replace("GCTP_SNSOID", "GCTP_GEO")
    with pytest.raises(InputError, match="only sinusoidal"):
        parse_struct_metadata(txt)


def test_block_prefilter_never_drops_a_tile_the_index_uses():
    """The chunk-corner test that picks a chunk's candidate tiles keeps every tile whose exact
    (pyproj) index holds a cell of the chunk, over the whole globe, equator and poles."""
    from soilresp.drivers.modis import TileGeometry, _block_may_touch, _plan_block

    geoms = {f"h{h:02d}v{v:02d}": TileGeometry(X0 + h * TILE, Y0 - v * TILE, X0 + (h + 1) * TILE,
                                              Y0 - (v + 1) * TILE, 40, 40) for h in range(36) for v in range(18)}
    grid = Grid(1.0, -90.0, 90.0, -180.0, 180.0, chunk=10)
    kept = dropped = 0
    for a in range(0, grid.nlat, 10):
        for b in range(0, grid.nlon, 40):
            lat, lon = grid.lat[a:a + 10], grid.lon[b:b + 10]
            used = {k for k, pl in _plan_block(lat, lon, geoms).items() if pl is not None}
            near = {k for k, g in geoms.items() if _block_may_touch(g, lat, lon)}
            assert used <= near
            kept, dropped = kept + len(near), dropped + len(geoms) - len(near)
    assert dropped > 50 * kept  # and it does prune
