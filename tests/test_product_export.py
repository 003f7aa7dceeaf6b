"""soilresp export: CF NetCDF and Cloud-Optimized GeoTIFF of a product grid; CLI commands."""

from __future__ import annotations

import numpy as np
import rasterio
import xarray as xr
from typer.testing import CliRunner

from soilresp import io
from soilresp.cli import app
from soilresp.product import predict_dataset

from test_product import _models, _world

runner = CliRunner()


def _rs_zarr(tmp_path):
    cube, bio, tr = _world(ny=3)
    ds = predict_dataset(cube, bio["biome"], _models(tr))
    return io.write_zarr(tmp_path / "rs.zarr", ds, {"stage": "product"}), ds.compute()


def test_export_netcdf_and_cog(tmp_path):
    path, ds = _rs_zarr(tmp_path)
    res = runner.invoke(app, ["export", str(path), "--format", "netcdf", "--out", str(tmp_path / "rs.nc")])
    assert res.exit_code == 0, res.output
    nc = xr.open_dataset(tmp_path / "rs.nc")
    np.testing.assert_array_equal(nc["rs"].values, ds["rs"].values)
    # CF: a UDUNITS unit (carbon named in the comment), a WKT2 grid mapping, a time axis
    assert nc["rs"].attrs["units"] == "g m-2 yr-1" and "carbon" in nc["rs"].attrs["comment"]
    assert nc["rs"].attrs["grid_mapping"] == "spatial_ref"
    assert nc.attrs["Conventions"] == "CF-1.10"
    assert nc["spatial_ref"].attrs["crs_wkt"].startswith("GEOGCRS[")
    assert list(nc["time"].dt.year.values) == [2000, 2001, 2002] and nc["rs"].dims[0] == "time"
    assert nc["model_family"].attrs["flag_values"].dtype == np.int8
    assert nc["model_family"].attrs["flag_meanings"].startswith("none nls")
    res = runner.invoke(app, ["export", str(path), "--format", "cog", "--out", str(tmp_path / "cog"),
                              "--variable", "rs", "--variable", "biome"])
    assert res.exit_code == 0, res.output
    files = sorted(p.name for p in (tmp_path / "cog").glob("*.tif"))
    assert files == ["biome.tif", "rs_2000.tif", "rs_2001.tif", "rs_2002.tif"]
    with rasterio.open(tmp_path / "cog" / "rs_2001.tif") as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.crs.to_epsg() == 4326 and src.transform.e < 0  # north up
        a = src.read(1)
        np.testing.assert_array_equal(a, ds["rs"].sel(year=2001).values[::-1])
        left, top = src.transform.c, src.transform.f
        assert left == -40.0 and top == 30.0
    bad = runner.invoke(app, ["export", str(path), "--format", "png"])
    assert bad.exit_code != 0


def test_cli_lists_product_commands():
    out = runner.invoke(app, ["--help"]).output
    for cmd in ("predict", "uncertainty", "trends", "attribute", "export"):
        assert cmd in out
    assert "--scheduler" in runner.invoke(app, ["uncertainty", "--help"]).output
