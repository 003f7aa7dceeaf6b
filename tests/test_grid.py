import numpy as np
import pytest
from pyproj import Geod

from soilresp.config import GridConfig
from soilresp.grid import Grid, band_area, grid_of


def test_total_area_is_wgs84_surface():
    g = Grid(1.0, -90, 90, -180, 180)
    total = g.cell_area().sum().item() * g.nlon
    # WGS84 ellipsoid surface area, m2
    assert total == pytest.approx(5.10065621724e14, rel=1e-9)


@pytest.mark.parametrize("lat0, res", [(-89.5, 0.5), (0.0, 1.0), (45.0, 0.05), (60.0, 2.0)])
def test_cell_area_matches_pyproj_geodesic(lat0, res):
    geod = Geod(ellps="WGS84")
    # a cell bounded by parallels: densify the parallels so the geodesic polygon follows them
    lons = np.linspace(0, res, 200)
    lats = np.r_[np.full(200, lat0), np.full(200, lat0 + res)]
    area, _ = geod.polygon_area_perimeter(np.r_[lons, lons[::-1]], lats)
    ours = band_area(lat0, lat0 + res, res)
    assert ours == pytest.approx(abs(area), rel=1e-4)


def test_coords_and_nearest_index():
    g = Grid.from_config(GridConfig(resolution=2.0, lat_min=-60, lat_max=84))
    assert g.shape == (72, 180)
    assert g.lat[0] == -59.0 and g.lon[-1] == 179.0
    i, j = g.nearest_index(np.array([-59.9, 83.9, 0.0, 95.0]), np.array([-179.9, 359.0, 0.0, 0.0]))
    assert i.tolist() == [0, 71, 30, -1]
    assert j.tolist() == [0, 89, 90, -1]  # 359 E = -1 E
    assert grid_of(__import__("xarray").Dataset(coords=g.coords())) == Grid(2.0, -60, 84, -180, 180)


def test_one_cell_rule_at_edges_for_sites_drivers_and_biomes():
    """The cell of a point on an edge is the one north / east of it, for the grid (drivers at
    a site), for a descending or 0-360 map axis (biome of a site) alike."""
    import pandas as pd
    import xarray as xr

    from soilresp.field.biomes import assign_biomes
    from soilresp.grid import axis_cell

    g = Grid(0.5, -60.0, 84.0, -180.0, 180.0)
    lat = np.array([10.0, 10.0 - 1e-12, 10.25, -60.0, 84.0, 84.01, 0.1 + 0.2])
    lon = np.array([20.0, 20.0, 20.0, -180.0, 179.99, 0.0, 180.0])
    i, j = g.nearest_index(lat, lon)
    assert g.lat[i[0]] == 10.25 and g.lon[j[0]] == 20.25          # edge -> north / east cell
    assert i[1] == i[0]                                            # float noise at the edge: same cell
    assert g.lat[i[2]] == 10.25                                    # a centre
    assert (i[3], j[3]) == (0, 0) and i[4] == g.nlat - 1           # outer edges: south/west in, top closed
    assert i[5] == -1                                              # beyond the grid
    assert g.lat[i[6]] == 0.25 and g.lon[j[6]] == -179.75          # 0.30000000000000004 -> (0, 0.5]; 180 wraps
    # descending axis gives the same cell
    desc = g.lat[::-1]
    k, ok = axis_cell(desc, lat[:3])
    assert ok.all() and list(desc[k]) == [10.25, 10.25, 10.25]
    # biome of a site = the cell the drivers come from, also on a 0-360 map
    codes = np.arange(g.nlat * g.nlon).reshape(g.shape) % 97 + 1
    lon360 = np.mod(g.lon, 360.0)
    order = np.argsort(lon360)
    m = xr.DataArray(codes[::-1][:, order], dims=("lat", "lon"), coords={"lat": desc, "lon": lon360[order]})
    obs = pd.DataFrame({"site_id": list("abc"), "lat": lat[:3], "lon": lon[:3]})
    got = assign_biomes(obs, m)["biome"].to_numpy()
    ii, jj = g.nearest_index(obs["lat"].to_numpy(), obs["lon"].to_numpy())
    assert list(got) == list(codes[ii, jj])
