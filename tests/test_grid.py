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
