"""The bad-input corpus (issue 9): each case writes one broken input next to a VALID tiny
synthetic world and says which stage must reject it and what the one-line error must name.

Run ``python tests/bad_inputs/corpus.py OUT`` to write every case below ``OUT/<case>/`` for
inspection (it builds the valid world in ``OUT/base`` first). ``tests/test_bad_inputs.py``
runs each case through ``soilresp run CASE.toml --stage STAGE`` and checks: exit status 2,
one line naming the file and the culprit (column, value or key), and the outputs of an
earlier complete run left byte for byte as they were.

A case is ``Case(name, stage, make, expect)``: ``make(case_dir, base) -> dict`` writes the
broken file(s) into ``case_dir`` and returns config edits (``{"field.path": ...}``; a value
``None`` deletes the key; ``"raw"`` replaces the whole TOML text).
"""

from __future__ import annotations

import gzip
import pickle
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

RES, LAT = 3.0, (-60.0, 84.0)
YEARS = (2000, 2004)


@dataclass(frozen=True)
class Case:
    name: str
    stage: str
    make: Callable[[Path, Path], dict]
    expect: tuple[str, ...]           # substrings the error line must contain
    pre: tuple[str, ...] = ()         # stages run first (they must succeed)
    argv: tuple[str, ...] = ()        # another command instead of `run` ("{case}" = the case folder)
    kind: str = ""                    # input kind (field table, driver raster, config, ...)


# ------------------------------------------------------------------ the valid base
def make_base(base: Path) -> None:
    """A valid tiny world (5 degrees, 2000-2004) and its config ``base/base.toml``."""
    from soilresp.synthetic import write_world

    if not (base / "world" / "truth.json").is_file():
        write_world(base / "world", resolution=RES, years=YEARS, seed=7, lat_bounds=LAT)
    (base / "base.toml").write_text(base_config(base))


def base_config(base: Path, output_dir: Path | None = None) -> str:
    from soilresp.demo import demo_config_text

    # nls only: the demo deploys nls (select_from); the model-file cases plant their own
    # sklearn files, so tuning RF/SVR/ANN for the base run bought nothing
    t = demo_config_text(RES, 7, years=YEARS, mc=5, families=("nls",))
    t = t.replace("lat_max = 84.0", f"lat_max = {LAT[1]}")
    t = t.replace('"world/', f'"{base}/world/')
    t = t.replace('output_dir = "run"', f'output_dir = "{output_dir or base / "run"}"')
    t = re.sub(r"temperature = \[.*\]", 'temperature = ["tas"]', t)
    t = re.sub(r"moisture = \[.*\]", 'moisture = ["pr"]', t)
    t = re.sub(r"productivity = \[.*\]", 'productivity = ["gpp"]', t)
    t = t.replace("cv_folds = 10", "cv_folds = 3")
    t = t.replace('format = "srdb"\n', 'format = "srdb"\ncountry_check = false\n')
    return t.replace("bootstrap = 1000", "bootstrap = 20\nmin_years = 3")


def edit_config(text: str, edits: dict) -> str:
    """Apply ``{"section.key": value}`` edits to a TOML text (simple, line based)."""
    import json

    if "raw" in edits:
        return edits["raw"]
    for key, value in edits.items():
        section, name = key.rsplit(".", 1)
        lines = text.splitlines()
        start = next(i for i, ln in enumerate(lines) if ln.strip() == f"[{section}]")
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
        idx = next((i for i in range(start + 1, end) if re.match(rf"{re.escape(name)}\s*=", lines[i])), None)
        new = None if value is None else f"{name} = {_toml(value)}"
        if idx is not None:
            if new is None:
                del lines[idx]
            else:
                lines[idx] = new
        elif new is not None:
            lines.insert(start + 1, new)
        text = "\n".join(lines) + "\n"
    return text


def _toml(v) -> str:
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))


def driver_path_key(base_text: str, variable: str) -> int:
    """Index of a driver source in the base config (drivers.sources are an array)."""
    names = re.findall(r'^variable = "(\w+)"', base_text, re.M)
    return names.index(variable)


def replace_driver(text: str, variable: str, path: Path | str, extra: str = "") -> str:
    """Point driver ``variable`` at ``path`` (and add lines ``extra`` to its entry)."""
    pat = re.compile(rf'(variable = "{variable}"\npath = )"[^"]*"')
    assert pat.search(text), variable
    return pat.sub(lambda m: m.group(1) + f'"{path}"' + (("\n" + extra) if extra else ""), text)


# ------------------------------------------------------------------ helpers for files
def srdb_text(base: Path) -> str:
    return (base / "world" / "srdb-data.csv").read_text()


def srdb_rows(base: Path) -> tuple[list[str], list[list[str]]]:
    import csv
    import io

    rows = list(csv.reader(io.StringIO(srdb_text(base))))
    return rows[0], rows[1:]


def write_rows(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",",
               encoding: str = "utf-8") -> Path:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def set_column(base: Path, out: Path, column: str, fn, rows_sel=None) -> Path:
    header, rows = srdb_rows(base)
    j = header.index(column)
    for k, r in enumerate(rows):
        if rows_sel is None or k in rows_sel:
            r[j] = fn(r[j], k)
    return write_rows(out, header, rows)


def field_case(fn) -> Callable[[Path, Path], dict]:
    """A case that writes ``srdb.csv`` with ``fn(case_dir, base, path)``."""
    def make(case: Path, base: Path) -> dict:
        p = case / "srdb.csv"
        fn(case, base, p)
        return {"field.path": str(p)}
    return make


def first_data_row(base: Path) -> int:
    """Line number (header = 1) of the first record (no multi-line cells in the world)."""
    return 2


def tas_dataset(base: Path):
    import xarray as xr

    return xr.open_dataset(base / "world" / "drivers" / "tas.nc").load()


def driver_case(variable: str, fn, extra: str = "") -> Callable[[Path, Path], dict]:
    def make(case: Path, base: Path) -> dict:
        p = fn(case, base)
        return {"raw": replace_driver(base_config(base), variable, p, extra)}
    return make


def _nc(case: Path, name: str, ds) -> Path:
    p = case / name
    ds.to_netcdf(p)
    return p


def _geotiff(case: Path, name: str, data: np.ndarray, lat_desc: bool = True) -> Path:
    import rioxarray  # noqa: F401
    import xarray as xr

    ny, nx = data.shape
    lat = np.linspace(LAT[1] - RES / 2, LAT[0] + RES / 2, ny)
    lon = np.linspace(-180 + RES / 2, 180 - RES / 2, nx)
    da = xr.DataArray(data.astype("float32"), dims=("y", "x"), coords={"y": lat, "x": lon})
    da = da.rio.write_crs("EPSG:4326")
    p = case / name
    da.rio.to_raster(p)
    return p


# ------------------------------------------------------------------ the cases
def _truncate_mid_quote(case, base, p):
    t = srdb_text(base)
    cut = t[: len(t) // 2]
    p.write_text(cut + ',"unterminated note\n')


def _swap_latlon(case, base, p):
    header, rows = srdb_rows(base)
    i, j = header.index("Latitude"), header.index("Longitude")
    header[i], header[j] = header[j], header[i]
    write_rows(p, header, rows)


def _rs_umol(case, base, p):
    # g C m-2 yr-1 -> umol CO2 m-2 s-1: divide by 12.011e-6 * 86400 * 365.25 ~ 379
    set_column(base, p, "Rs_annual", lambda v, k: f"{float(v) / 379.0:.3f}" if v else v)


def _rs_kg(case, base, p):
    set_column(base, p, "Rs_annual", lambda v, k: f"{float(v) / 1000.0:.4f}" if v else v)


def _years_before(case, base, p):
    set_column(base, p, "Study_midyear", lambda v, k: f"{float(v) - 30:.1f}" if v else v)


def _empty_rs(case, base, p):
    set_column(base, p, "Rs_annual", lambda v, k: "")


def _drop_col(col):
    def f(case, base, p):
        header, rows = srdb_rows(base)
        j = header.index(col)
        write_rows(p, header[:j] + header[j + 1:], [r[:j] + r[j + 1:] for r in rows])
    return f


def _rename_col(col, new):
    def f(case, base, p):
        header, rows = srdb_rows(base)
        header[header.index(col)] = new
        write_rows(p, header, rows)
    return f


def _text_in(col, value, k=3):
    def f(case, base, p):
        set_column(base, p, col, lambda v, i: value, rows_sel={k})
    return f


def _delim(d):
    def f(case, base, p):
        header, rows = srdb_rows(base)
        write_rows(p, header, rows, delimiter=d)
    return f


def _encoding(enc):
    def f(case, base, p):
        header, rows = srdb_rows(base)
        write_rows(p, header, rows, encoding=enc)
    return f


def _extra_fields(case, base, p):
    header, rows = srdb_rows(base)
    rows[4] = rows[4] + ["x", "y"]
    write_rows(p, header, rows)


def _dup_header(case, base, p):
    header, rows = srdb_rows(base)
    header[header.index("Elevation")] = "Latitude"
    write_rows(p, header, rows)


def _header_only(case, base, p):
    p.write_text(srdb_text(base).splitlines()[0] + "\n")


def _gzip_csv(case, base, p):
    p.write_bytes(gzip.compress(srdb_text(base).encode()))


def _nc_corrupt(case, base):
    p = case / "tas.nc"
    p.write_bytes(b"CDF\x01" + np.random.default_rng(1).bytes(4000))
    return p


def _nc_truncated(case, base):
    data = (base / "world" / "drivers" / "tas.nc").read_bytes()
    p = case / "tas.nc"
    p.write_bytes(data[: len(data) // 3])
    return p


def _nc_nan(case, base):
    ds = tas_dataset(base)
    ds["tas"][:] = np.nan
    return _nc(case, "tas.nc", ds)


def _nc_years(case, base):
    ds = tas_dataset(base)
    ds = ds.assign_coords(time=ds.time.to_index() - np.timedelta64(365 * 20, "D"))
    return _nc(case, "tas.nc", ds)


def _nc_swapped_coords(case, base):
    ds = tas_dataset(base)
    ds = ds.rename({"lat": "lon_", "lon": "lat_"}).rename({"lon_": "lon", "lat_": "lat"})
    ds = ds.transpose("time", "lat", "lon")
    return _nc(case, "tas.nc", ds)


def _nc_lat_not_monotonic(case, base):
    ds = tas_dataset(base)
    lat = ds.lat.values.copy()
    lat[[3, 10]] = lat[[10, 3]]
    return _nc(case, "tas.nc", ds.assign_coords(lat=lat))


def _nc_no_lat(case, base):
    ds = tas_dataset(base).rename({"lat": "row"})
    return _nc(case, "tas.nc", ds)


def _nc_bad_time(case, base):
    import xarray as xr

    ds = tas_dataset(base)
    ds = ds.assign_coords(time=np.arange(ds.sizes["time"], dtype="float64"))
    ds["time"].attrs["units"] = "fortnights since the big bang"
    p = case / "tas.nc"
    ds.to_netcdf(p)
    return p


def _nc_wrong_var(case, base):
    return _nc(case, "tas.nc", tas_dataset(base).rename({"tas": "temperature"}))


def _nc_mismatched_files(case, base):
    """Two yearly files of one variable on different grids (a glob source)."""
    ds = tas_dataset(base)
    a = ds.sel(time=slice("2000", "2002"))
    b = ds.sel(time=slice("2003", "2004")).coarsen(lat=2, lon=2).mean()
    d = case / "tas_parts"
    d.mkdir()
    a.to_netcdf(d / "tas_2000_2002.nc")
    b.to_netcdf(d / "tas_2003_2004.nc")
    return d / "tas_*.nc"


def _tif_corrupt(case, base):
    p = case / "tc.tif"
    p.write_bytes(b"II*\x00" + np.random.default_rng(2).bytes(3000))
    return p


def _tif_truncated(case, base):
    ny, nx = int((LAT[1] - LAT[0]) / RES), int(360 / RES)
    p = _geotiff(case, "tc_full.tif", np.random.default_rng(3).random((ny, nx)))
    data = p.read_bytes()
    q = case / "tc.tif"
    q.write_bytes(data[: len(data) // 2])
    return q


def _tif_no_crs(case, base):
    import rioxarray  # noqa: F401
    import xarray as xr

    ny, nx = int((LAT[1] - LAT[0]) / RES), int(360 / RES)
    da = xr.DataArray(np.ones((ny, nx), "float32"), dims=("y", "x"),
                      coords={"y": np.arange(ny, 0, -1.0), "x": np.arange(nx, dtype=float)})
    p = case / "tc.tif"
    da.rio.to_raster(p)
    return p


def _biome_codes(case, base):
    import xarray as xr

    ds = xr.open_dataset(base / "world" / "biomes.nc").load()
    ds["biome"].values[5, 5] = 42
    p = case / "biomes.nc"
    ds.to_netcdf(p)
    return {"biomes.path": str(p)}


def _biome_var(case, base):
    import xarray as xr

    ds = xr.open_dataset(base / "world" / "biomes.nc").load().rename({"biome": "landclass"})
    p = case / "biomes.nc"
    ds.to_netcdf(p)
    return {"biomes.path": str(p)}


def _biome_missing(case, base):
    return {"biomes.path": str(case / "no_such_biomes.nc")}


def _biome_empty_biome(case, base):
    """Biome 4 (temperate needleleaf) only where no site is: moved to the far south ocean row."""
    import xarray as xr

    ds = xr.open_dataset(base / "world" / "biomes.nc").load()
    b = ds["biome"].values
    b[b == 4] = 5
    b[0, :3] = 4     # three cells at the southern edge, no observations there
    p = case / "biomes.nc"
    ds.to_netcdf(p)
    return {"biomes.path": str(p)}


def _untrusted_skops(case, base):
    """A skops file holding os.system (an untrusted type), checksum recorded correctly."""
    import os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    _plant_estimator(case, 1, "rf", sio.dumps(FunctionTransformer(func=os.system)))
    return {}


def _plant_estimator(case, biome: int, family: str, blob: bytes) -> None:
    """Make biome's model an sklearn-family file pair whose estimator file is ``blob``
    (with a matching checksum, so only the content check can refuse it)."""
    import hashlib
    import json

    m = case / "run" / "models"
    (m / f"biome_{biome:02d}.skops").write_bytes(blob)
    doc = json.loads((m / f"biome_{biome:02d}.json").read_text())
    doc.update({"family": family, "estimator_file": f"biome_{biome:02d}.skops",
                "estimator_sha256": hashlib.sha256(blob).hexdigest()})
    (m / f"biome_{biome:02d}.json").write_text(json.dumps(doc))


class _Evil:
    def __reduce__(self):
        return (exec, (f"open({str(MARKER_NAME)!r}, 'w').write('pwned')",))


MARKER_NAME = Path("/tmp/soilresp-bad-input-pickle-ran")


def _pickle_as_skops(case, base):
    _plant_estimator(case, 2, "svr", pickle.dumps(_Evil()))
    return {}


def _tampered_skops(case, base):
    import json

    import skops.io as sio
    from sklearn.ensemble import RandomForestRegressor

    m = case / "run" / "models"
    blob = sio.dumps(RandomForestRegressor(n_estimators=2))
    (m / "biome_03.skops").write_bytes(blob)
    doc = json.loads((m / "biome_03.json").read_text())
    doc.update({"family": "rf", "estimator_file": "biome_03.skops", "estimator_sha256": "0" * 64})
    (m / "biome_03.json").write_text(json.dumps(doc))
    return {}


def _model_json_broken(case, base):
    (case / "run" / "models" / "biome_05.json").write_text('{"biome": 5, "family": ')
    return {}


def _model_family(case, base):
    import json

    p = case / "run" / "models" / "biome_06.json"
    doc = json.loads(p.read_text())
    doc["family"] = "pickle"
    p.write_text(json.dumps(doc))
    return {}


def _edit_params(edit):
    """Case: biome 7's JSON model with ``params`` replaced by ``edit(params)``."""
    def make(case, base):
        import json

        p = case / "run" / "models" / "biome_07.json"
        doc = json.loads(p.read_text())
        doc["params"] = edit(doc["params"])
        p.write_text(json.dumps(doc))
        return {}

    return make


_model_params = _edit_params(lambda old: [2.0])
_model_params_text = _edit_params(lambda old: ["two"] * len(old))


def _cfg(edits):
    return lambda case, base: edits


def _raw(fn):
    return lambda case, base: {"raw": fn(base_config(base))}


def _unwritable_under_file(case, base):
    f = case / "a_file"
    f.write_text("I am a file, not a folder")
    return {"run.output_dir": str(f / "out")}


def _out(case):
    return case / "run"


CASES: list[Case] = [
    # --- field table: structure
    Case("csv_truncated_mid_quote", "field", field_case(_truncate_mid_quote), ("srdb.csv", "row", "quoted")),
    Case("csv_truncated_mid_line", "field",
         field_case(lambda c, b, p: p.write_text(srdb_text(b)[: len(srdb_text(b)) // 2].rstrip("\n"))),
         ("srdb.csv", "row", "truncated")),
    Case("csv_empty", "field", field_case(lambda c, b, p: p.write_text("")), ("srdb.csv", "empty")),
    Case("csv_header_only", "field", field_case(_header_only), ("srdb.csv", "no records")),
    Case("csv_gzip_bytes", "field", field_case(_gzip_csv), ("srdb.csv", "binary")),
    Case("csv_semicolon_delimiter", "field", field_case(_delim(";")), ("srdb.csv", "';'")),
    Case("csv_tab_delimiter", "field", field_case(_delim("\t")), ("srdb.csv", "tab")),
    Case("csv_utf16_encoding", "field", field_case(_encoding("utf-16")), ("srdb.csv", "UTF-16")),
    Case("csv_extra_fields", "field", field_case(_extra_fields), ("srdb.csv", "row 6", "fields")),
    Case("csv_duplicate_header", "field", field_case(_dup_header), ("srdb.csv", "'Latitude'", "twice")),
    Case("csv_missing_file", "field", lambda c, b: {"field.path": str(c / "nope.csv")},
         ("nope.csv", "not found")),
    # --- field table: columns
    Case("col_missing_rs", "field", field_case(_drop_col("Rs_annual")), ("srdb.csv", "'Rs_annual'", "missing")),
    Case("col_missing_latitude", "field", field_case(_drop_col("Latitude")), ("srdb.csv", "'Latitude'")),
    Case("col_renamed_rs", "field", field_case(_rename_col("Rs_annual", "rs_annual")),
         ("srdb.csv", "'Rs_annual'", "rs_annual")),
    Case("col_renamed_midyear", "field", field_case(_rename_col("Study_midyear", "Study_mid_year")),
         ("srdb.csv", "'Study_midyear'", "Study_mid_year")),
    Case("text_in_rs", "field", field_case(_text_in("Rs_annual", "about 800")),
         ("srdb.csv", "row 5", "'Rs_annual'", "about 800")),
    Case("text_in_latitude", "field", field_case(_text_in("Latitude", "north")),
         ("srdb.csv", "row 5", "'Latitude'", "north")),
    Case("text_in_midyear", "field", field_case(_text_in("Study_midyear", "2001/02")),
         ("srdb.csv", "'Study_midyear'", "2001/02")),
    Case("text_in_duplicate_flag", "field", field_case(_text_in("Duplicate_record", "yes")),
         ("srdb.csv", "'Duplicate_record'", "yes")),
    # --- field table: values
    Case("latlon_swapped", "field", field_case(_swap_latlon), ("srdb.csv", "'Latitude'", "swapped")),
    Case("rs_in_umol_m2_s1", "field", field_case(_rs_umol), ("srdb.csv", "'Rs_annual'", "look like umol m-2 s-1")),
    Case("rs_in_kg", "field", field_case(_rs_kg), ("srdb.csv", "'Rs_annual'", "look like kg C m-2 yr-1")),
    Case("years_outside_run", "field", field_case(_years_before), ("srdb.csv", "'Study_midyear'", "2000")),
    Case("rs_all_missing", "field", field_case(_empty_rs), ("srdb.csv", "'Rs_annual'")),
    # --- tidy table reader
    Case("table_mapping_missing_column", "field",
         lambda c, b: {"field.format": "table", "field.path": str(b / "world" / "srdb-data.csv")},
         ("srdb-data.csv",)),
    Case("table_parquet_corrupt", "field",
         lambda c, b: ((c / "obs.parquet").write_bytes(b"PAR1garbage"),
                       {"field.format": "table", "field.path": str(c / "obs.parquet")})[1],
         ("obs.parquet",)),
    # --- drivers: NetCDF
    Case("nc_corrupt", "drivers", driver_case("tas", _nc_corrupt), ("tas.nc", "NetCDF")),
    Case("nc_truncated", "drivers", driver_case("tas", _nc_truncated), ("tas.nc",)),
    Case("nc_missing_file", "drivers", driver_case("tas", lambda c, b: c / "gone.nc"), ("gone.nc", "not found")),
    Case("nc_wrong_variable", "drivers", driver_case("tas", _nc_wrong_var), ("tas.nc", "'tas'", "temperature")),
    Case("nc_all_nan", "drivers", driver_case("tas", _nc_nan), ("tas.nc", "'tas'", "no valid")),
    Case("nc_years_outside", "drivers", driver_case("tas", _nc_years), ("tas.nc", "2000")),
    Case("nc_swapped_lat_lon_coords", "drivers", driver_case("tas", _nc_swapped_coords), ("tas.nc", "'lat'", "swapped")),
    Case("nc_lat_not_monotonic", "drivers", driver_case("tas", _nc_lat_not_monotonic), ("tas.nc", "'lat'", "monotonic")),
    Case("nc_no_lat_dimension", "drivers", driver_case("tas", _nc_no_lat), ("tas.nc", "lat")),
    Case("nc_undecodable_time", "drivers", driver_case("tas", _nc_bad_time), ("tas.nc", "time units", "fortnights")),
    Case("nc_mismatched_grids", "drivers", driver_case("tas", _nc_mismatched_files),
         ("tas_2003_2004.nc", "grid differs", "tas_2000_2002.nc")),
    # --- drivers: GeoTIFF
    Case("tif_corrupt", "drivers", driver_case("tc", _tif_corrupt, 'format = "geotiff"'), ("tc.tif", "GeoTIFF")),
    Case("tif_truncated", "drivers", driver_case("tc", _tif_truncated, 'format = "geotiff"'), ("tc.tif",)),
    Case("tif_no_crs", "drivers", driver_case("tc", _tif_no_crs, 'format = "geotiff"'), ("tc.tif", "CRS")),
    Case("driver_unknown_suffix", "drivers",
         driver_case("tas", lambda c, b: (c / "tas.dat").write_bytes(b"x") and c / "tas.dat"),
         ("tas.dat", "'format'")),
    # --- biomes
    Case("biome_code_out_of_range", "biomes", _biome_codes, ("biomes.nc", "'biome'", "42")),
    Case("biome_variable_missing", "biomes", _biome_var, ("biomes.nc", "'biome'", "landclass")),
    Case("biome_map_missing", "biomes", _biome_missing, ("no_such_biomes.nc", "not found")),
    Case("biome_without_observations", "sites", _biome_empty_biome, ("biomes.nc", "'biome'", "biome 4", "no field observation"),
         pre=("biomes",)),
    # --- model files (on a copy of a finished run)
    Case("model_untrusted_skops_type", "product", _untrusted_skops, ("biome_01.skops", "allow-list", "system")),
    Case("model_pickle_disguised", "product", _pickle_as_skops, ("biome_02.skops", "skops")),
    Case("model_checksum_mismatch", "product", _tampered_skops, ("biome_03.skops", "checksum")),
    Case("model_json_truncated", "product", _model_json_broken, ("biome_05.json", "JSON")),
    Case("model_family_unknown", "product", _model_family, ("biome_06.json", "'family'", "pickle")),
    Case("model_params_count", "product", _model_params, ("biome_07.json", "'params'", "finite parameters")),
    Case("model_params_text", "product", _model_params_text, ("biome_07.json", "'params'", "two")),
    # --- configuration
    Case("config_unknown_key", "field", _cfg({"run.sed": 3}), ("case.toml", "'run.sed'", "unknown")),
    Case("config_unknown_section", "field", _raw(lambda t: t + "\n[plots]\ndpi = 300\n"),
         ("case.toml", "'plots'")),
    Case("config_wrong_type", "field", _cfg({"run.seed": "forty-two"}), ("case.toml", "'run.seed'", "forty-two")),
    Case("config_years_reversed", "field", _cfg({"run.years": [2004, 2000]}), ("case.toml", "years", "2004")),
    Case("config_bad_toml", "field", _raw(lambda t: t.replace("[grid]", "[grid")), ("case.toml", "TOML")),
    Case("config_resolution_type", "field", _cfg({"grid.resolution": "fine"}), ("case.toml", "'grid.resolution'", "fine")),
    Case("config_driver_unknown_key", "drivers",
         _raw(lambda t: t.replace('frequency = "monthly"', 'frequency = "monthly"\nscale = 2', 1)),
         ("case.toml", "scale")),
    # --- output folder
    Case("output_under_a_file", "field", _unwritable_under_file, ("a_file", "'run.output_dir'")),
    Case("output_in_proc", "field", _cfg({"run.output_dir": "/proc/soilresp-out"}),
         ("/proc/soilresp-out", "not writable")),
]



# ================================================================== issue 17: hardening cases
def _s(v: str) -> dict:
    import json

    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "content": json.dumps(v),
            "is_json": True}


def _tuple(*items) -> dict:
    return {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": list(items)}


def _reduce(module: str, name: str, *args) -> dict:
    return {"__class__": name, "__module__": module, "__loader__": "ConstructorFromReduceNode",
            "content": _tuple(*args)}


def _fn(module: str, name: str) -> dict:
    return {"__class__": name, "__module__": module, "__loader__": "FunctionNode"}


_TOUCH = f"open({str(MARKER_NAME)!r}, 'w').write('ran')"
_SHELL = f"touch {MARKER_NAME}"
PAYLOADS = {
    "reduce_exec": _reduce("builtins", "exec", _s(_TOUCH)),
    "reduce_eval": _reduce("builtins", "eval", _s(f"__import__('os').system({_SHELL!r})")),
    "reduce_os_system": _reduce("os", "system", _s(_SHELL)),
    "reduce_posix_system": _reduce("posix", "system", _s(_SHELL)),
    "reduce_subprocess": _reduce("subprocess", "getoutput", _s(_SHELL)),
    "reduce_numpy_prefix": _reduce("numpy.testing._private.utils", "runstring", _s(_TOUCH), _s("{}")),
    "function_exec": _fn("builtins", "exec"),
    "type_exec": {"__class__": "exec", "__module__": "builtins", "__loader__": "TypeNode"},
    "partial_exec": {"__class__": "partial", "__module__": "functools", "__loader__": "PartialNode",
                     "content": {"func": _fn("builtins", "exec"), "args": _tuple(_s(_TOUCH)),
                                 "kwds": {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
                                          "content": {}}, "namespace": _s("")}},
    "methodcaller": {"__class__": "methodcaller", "__module__": "operator", "__loader__": "OperatorFuncNode",
                     "attrs": _tuple(_s("system"), _s(_SHELL))},
    "object_array": {"__class__": "ndarray", "__module__": "numpy", "__loader__": "NdArrayNode", "type": "json",
                     "content": [_reduce("builtins", "exec", _s(_TOUCH))],
                     "shape": _tuple({"__class__": "int", "__module__": "builtins", "__loader__": "JsonNode",
                                      "content": "1", "is_json": True})},
    "ndarray_as_eval": {"__class__": "eval", "__module__": "builtins", "__loader__": "NdArrayNode",
                        "type": "numpy", "file": "0.npy"},
    "method_node": {"__class__": "Popen", "__module__": "subprocess", "__loader__": "MethodNode",
                    "content": {"obj": {"__class__": "Popen", "__module__": "subprocess", "__loader__": "ObjectNode"},
                                "func": "communicate"}},
    "defaultdict_factory": {"__class__": "defaultdict", "__module__": "collections", "__loader__": "DefaultDictNode",
                            "content": {"main": {"__class__": "dict", "__module__": "builtins",
                                                 "__loader__": "DictNode", "content": {}},
                                        "default_factory": _fn("os", "system")}},
}


def _rf_blob(scale: float = 1.0) -> bytes:
    import skops.io as sio
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 25, (40, 1))
    return sio.dumps(RandomForestRegressor(n_estimators=2, random_state=0).fit(X, (300 + 10 * X[:, 0]) * scale))


def _payload_blob(node: dict | None, extra: dict | None = None) -> bytes:
    """A legitimate RF file whose n_estimators attribute is ``node`` (plus archive members);
    ``node=None`` keeps the attribute (only ``extra`` is planted)."""
    from test_models_trust import _plant  # one planting helper for the trust tests and the corpus

    return _plant(_rf_blob(), node, extra)


def _model_payload(route: str):
    def make(case, base):
        _plant_estimator(case, 1, "rf", _payload_blob(PAYLOADS[route]))
        return {}
    return make


def _model_blob(blob_fn, biome=1):
    def make(case, base):
        _plant_estimator(case, biome, "rf", blob_fn())
        return {}
    return make


def _model_rf_predictors(case, base):
    """A real RF predicting Rs of ~3e6 (a file trained on g C m-2 day-1 x 1e4...)."""
    import json

    _plant_estimator(case, 1, "rf", _rf_blob(1e4))
    p = case / "run" / "models" / "biome_01.json"
    doc = json.loads(p.read_text())
    doc["predictors"] = ["tas"]
    p.write_text(json.dumps(doc))
    return {}


def _extra_member():
    import pickle

    return _payload_blob(None, extra={"payload.pkl": pickle.dumps(print)})


_model_params_huge = _edit_params(lambda old: [1e300] + list(old[1:]))
_model_params_b = _edit_params(lambda old: [old[0], 50.0] + list(old[2:]))
_model_params_neg_a = _edit_params(lambda old: [-abs(old[0])] + list(old[1:]))


# --- driver rasters
def _ds(base: Path, var: str):
    import xarray as xr

    return xr.open_dataset(base / "world" / "drivers" / f"{var}.nc").load()


def _driver_edit(var: str, fn, name: str | None = None, extra: str = "", encoding=None):
    """Case: driver ``var`` replaced by ``fn(dataset)`` written to ``case/<name>``."""
    def make(case, base):
        ds = fn(_ds(base, var))
        p = case / (name or f"{var}.nc")
        ds.to_netcdf(p, encoding=encoding)
        return {"raw": replace_driver(base_config(base), var, p, extra)}
    return make


def _kelvin_no_units(ds):
    ds["tas"] = ds["tas"] + 273.15
    ds["tas"].attrs = {}
    return ds


def _kelvin_degc(ds):
    ds["tas"] = ds["tas"] + 273.15
    ds["tas"].attrs = {"units": "degC"}
    return ds


def _celsius_as_k(ds):
    ds["lst_day"] = ds["lst_day"] - 273.15      # degC values ...
    ds["lst_day"].attrs = {"units": "K"}         # ... labelled kelvin
    return ds


def _gap_months(ds):
    t = ds.time.to_index()
    keep = ~((t.year == 2002) & (t.month >= 3) & (t.month <= 11))   # 9 months missing
    return ds.isel(time=np.nonzero(keep)[0])


def _dup_step(ds):
    t = ds.time.values.copy()
    t[7] = t[6]
    return ds.assign_coords(time=t)


def _undeclared(var, value):
    def f(ds):
        v = ds[var].values
        v[0, 10:14, 10:30] = value
        ds[var].encoding.pop("_FillValue", None)
        return ds
    return f


def _negative(var):
    def f(ds):
        ds[var] = -ds[var] - 50.0
        return ds
    return f


def _fill_in_range(ds):
    ds["tas"].attrs["valid_range"] = np.array([-80.0, 60.0], np.float32)
    return ds


def _shifted_years(ds):
    t = ds.time.to_index()
    return ds.assign_coords(time=t + pd_offset_years(1))


def pd_offset_years(n):
    import pandas as pd

    return pd.DateOffset(years=n)


def _vrt_as_tif(case, base):
    p = case / "tc.tif"
    p.write_text('<VRTDataset rasterXSize="120" rasterYSize="48"><SRS>EPSG:4326</SRS>'
                 '<VRTRasterBand dataType="Float32" band="1"><SimpleSource>'
                 '<SourceFilename>/vsicurl/http://127.0.0.1:9/secret.tif</SourceFilename>'
                 '</SimpleSource></VRTRasterBand></VRTDataset>')
    return {"raw": replace_driver(base_config(base), "tc", p, 'format = "geotiff"')}


def _fifo_driver(case, base):
    import os

    p = case / "tas.nc"
    os.mkfifo(p)
    return {"raw": replace_driver(base_config(base), "tas", p)}


def _dir_driver(case, base):
    p = case / "tas.nc"
    p.mkdir()
    (p / "x").write_text("x")
    return {"raw": replace_driver(base_config(base), "tas", p)}


def _dev_driver(case, base):
    return {"raw": replace_driver(base_config(base), "tas", "/dev/zero")}


def _url_driver(url):
    return lambda case, base: {"raw": replace_driver(base_config(base), "tas", url)}


# --- biome maps
def _biome_fill_is_class(case, base):
    import xarray as xr

    ds = xr.open_dataset(base / "world" / "biomes.nc").load()
    p = case / "biomes.nc"
    ds.to_netcdf(p, encoding={"biome": {"_FillValue": 4}})
    return {"biomes.path": str(p)}


def _biome_fifo(case, base):
    import os

    p = case / "biomes.nc"
    os.mkfifo(p)
    return {"biomes.path": str(p)}


def _biome_dir(case, base):
    p = case / "biomes.nc"
    p.mkdir()
    return {"biomes.path": str(p)}


# --- field tables
def _field_special(kind):
    def make(case, base):
        import os

        p = case / "srdb.csv"
        if kind == "fifo":
            os.mkfifo(p)
        elif kind == "dir":
            p.mkdir()
        else:
            return {"field.path": kind}
        return {"field.path": str(p)}
    return make


def _cell(col, value, k=3):
    return field_case(lambda c, b, p: set_column(b, p, col, lambda v, i: value, rows_sel={k}))


def _decimal_comma(col, k=3):
    return field_case(lambda c, b, p: set_column(b, p, col, lambda v, i: (v or "1.5").replace(".", ",")
                                                 if "." in (v or "1.5") else v + ",5", rows_sel={k}))


def _table_decimal_comma(case, base):
    """A tidy table (format = 'table') with a decimal comma in the Rs column."""
    header, rows = srdb_rows(base)
    cols = {"Latitude": "lat", "Longitude": "lon", "Study_midyear": "year", "Rs_annual": "rs"}
    idx = [header.index(c) for c in cols]
    body = [[r[i] for i in idx] for r in rows if all(r[i] for i in idx)]
    body[4][3] = body[4][3].replace(".", ",") if "." in body[4][3] else body[4][3] + ",5"
    p = case / "obs.csv"
    write_rows(p, list(cols.values()), body)
    return {"field.format": "table", "field.path": str(p)}


# --- output folder
_HELD: list = []


def _locked_output(case, base):
    """Another live soilresp process holds the output folder (here: this test process)."""
    import json
    import os
    import socket
    import time

    from filelock import FileLock

    meta = case / "run" / ".soilresp"
    meta.mkdir(parents=True, exist_ok=True)
    lk = FileLock(str(meta / "run.lock"), timeout=0)
    lk.acquire()
    _HELD.append(lk)
    (meta / "run.lock.json").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                    "started": time.time(), "command": "run"}))
    return {}


def _output_is_file(case, base):
    f = case / "out_file"
    f.write_text("not a folder")
    return {"run.output_dir": str(f)}


def _driver_glob_none(case, base):
    return {"raw": replace_driver(base_config(base), "tas", case / "nothing_*.nc")}


def _raw_replace(old, new):
    return _raw(lambda t: (t.replace(old, new, 1) if old in t else (_ for _ in ()).throw(AssertionError(old))))


CASES += [
    # --- model files: every skops route to code, refused before anything is built
    *[Case(f"model_payload_{r}", "product", _model_payload(r), ("biome_01.skops", "allow-list"), kind="model file")
      for r in PAYLOADS],
    Case("model_skops_extra_member", "product", _model_blob(_extra_member), ("biome_01.skops", "payload.pkl"),
         kind="model file"),
    Case("model_skops_empty", "product", _model_blob(lambda: b""), ("biome_01.skops", "skops"), kind="model file"),
    Case("model_skops_random_bytes", "product", _model_blob(lambda: np.random.default_rng(5).bytes(2000)),
         ("biome_01.skops", "skops"), kind="model file"),
    Case("model_params_1e300", "product", _model_params_huge, ("biome_07.json", "'params'", "1e+300"),
         kind="model file"),
    Case("model_params_q10_absurd", "product", _model_params_b, ("biome_07.json", "'params'", "parameter b"),
         kind="model file"),
    Case("model_params_negative_a", "product", _model_params_neg_a, ("biome_07.json", "'params'", "parameter a"),
         kind="model file"),
    Case("model_predicts_absurd_rs", "product", _model_rf_predictors, ("biome_01.skops", "trained on Rs"),
         kind="model file"),
    # --- driver rasters: plausible-looking but wrong
    Case("drv_kelvin_without_units", "drivers", _driver_edit("tas", _kelvin_no_units),
         ("tas.nc", "'tas'", "kelvin", 'units = "K"'), kind="driver raster"),
    Case("drv_kelvin_under_degC", "drivers", _driver_edit("tas", _kelvin_degc), ("tas.nc", "'tas'", "'degC'"),
         kind="driver raster"),
    Case("drv_celsius_under_K", "drivers", _driver_edit("lst_day", _celsius_as_k),
         ("lst_day.nc", "'lst_day'", "units 'K'"), kind="driver raster"),
    Case("drv_nine_month_gap", "drivers", _driver_edit("tas", _gap_months), ("tas.nc", "'time'", "year 2002",
                                                                             "lacks 9 of its 12"),
         kind="driver raster"),
    Case("drv_gap_in_pr", "drivers", _driver_edit("pr", _gap_months), ("pr.nc", "'time'", "year 2002"),
         kind="driver raster"),
    Case("drv_duplicated_step", "drivers", _driver_edit("tas", _dup_step), ("tas.nc", "'time'", "occurs 2 times"),
         kind="driver raster"),
    Case("drv_undeclared_fill_9999", "drivers", _driver_edit("gpp", _undeclared("gpp", -9999.0)),
         ("gpp.nc", "'gpp'", "-9999", "undeclared fill"), kind="driver raster"),
    Case("drv_undeclared_fill_1e20", "drivers", _driver_edit("tas", _undeclared("tas", 1e20)),
         ("tas.nc", "'tas'", "undeclared fill"), kind="driver raster"),
    Case("drv_undeclared_fill_netcdf_default", "drivers",
         _driver_edit("sm", _undeclared("sm", 9.969209968386869e36)), ("sm.nc", "'sm'", "undeclared fill"),
         kind="driver raster"),
    Case("drv_negative_precipitation", "drivers", _driver_edit("pr", _negative("pr")),
         ("pr.nc", "'pr'", "plausible range"), kind="driver raster"),
    Case("drv_fill_inside_valid_range", "drivers",
         _driver_edit("tas", _fill_in_range, encoding={"tas": {"_FillValue": np.float32(0.0)}}),
         ("tas.nc", "'tas'", "_FillValue 0.0", "inside the valid range"), kind="driver raster"),
    Case("drv_vrt_disguised_as_tif", "drivers", _vrt_as_tif, ("tc.tif", "GDAL VRT", "allow_vrt"),
         kind="driver raster"),
    Case("drv_named_pipe", "drivers", _fifo_driver, ("tas.nc", "named pipe"), kind="driver raster"),
    Case("drv_folder_not_file", "drivers", _dir_driver, ("tas.nc", "folder"), kind="driver raster"),
    Case("drv_device", "drivers", _dev_driver, ("/dev/zero", "device"), kind="driver raster"),
    Case("drv_glob_matches_nothing", "drivers", _driver_glob_none, ("nothing_*.nc", "no file matches"),
         kind="driver raster"),
    # --- network paths as inputs
    Case("net_http_driver", "drivers", _url_driver("https://example.org/tas.nc"),
         ("https://example.org/tas.nc", "allow_network"), kind="network"),
    Case("net_vsicurl_driver", "drivers", _url_driver("/vsicurl/http://example.org/tas.tif"),
         ("/vsicurl/http://example.org/tas.tif", "allow_network"), kind="network"),
    Case("net_fetch_ftp_scheme", "", _cfg({}), ("ftp://example.org/a.nc", "only http"), kind="network",
         argv=("fetch", "url", "ftp://example.org/a.nc", "--dest", "{case}/dl")),
    Case("net_fetch_file_scheme", "", _cfg({}), ("file:///etc/passwd", "only http"), kind="network",
         argv=("fetch", "url", "file:///etc/passwd", "--dest", "{case}/dl")),
    Case("net_fetch_dotdot", "", _cfg({}), ("http://127.0.0.1:9/a/../../etc/passwd", "'..'"), kind="network",
         argv=("fetch", "url", "http://127.0.0.1:9/a/../../etc/passwd", "--dest", "{case}/dl")),
    Case("net_fetch_encoded_dotdot", "", _cfg({}), ("%2e%2e", "'..'"), kind="network",
         argv=("fetch", "url", "http://127.0.0.1:9/a/%2e%2e/b.nc", "--dest", "{case}/dl")),
    Case("net_fetch_no_host", "", _cfg({}), ("http:///a.nc", "only http"), kind="network",
         argv=("fetch", "url", "http:///a.nc", "--dest", "{case}/dl")),
    Case("net_fetch_offline", "", _cfg({}), ("http://127.0.0.1:9/a.nc", "cannot connect"), kind="network",
         argv=("fetch", "url", "http://127.0.0.1:9/a.nc", "--dest", "{case}/dl")),
    Case("net_fetch_dest_is_file", "", lambda c, b: ((c / "dl").write_text("x"), {})[1], ("dl", "cannot write"),
         kind="network", argv=("fetch", "url", "http://127.0.0.1:9/a.nc", "--dest", "{case}/dl/sub")),
    # --- biome and land-cover maps
    Case("biome_fill_equals_class", "biomes", _biome_fill_is_class, ("biomes.nc", "'biome'", "_FillValue 4"),
         kind="class map"),
    Case("biome_map_named_pipe", "biomes", _biome_fifo, ("'biomes.path'", "biomes.nc", "named pipe"),
         kind="class map"),
    Case("biome_map_is_folder", "biomes", _biome_dir, ("biomes.nc",), kind="class map"),
    # --- field tables
    Case("csv_decimal_comma_rs", "field", _decimal_comma("Rs_annual"), ("srdb.csv", "'Rs_annual'", ","),
         kind="field table"),
    Case("csv_decimal_comma_latitude", "field", _decimal_comma("Latitude"), ("srdb.csv", "'Latitude'", ","),
         kind="field table"),
    Case("table_decimal_comma_rs", "field", _table_decimal_comma, ("obs.csv", "'rs'", ","), kind="field table"),
    Case("csv_rs_thousands_separator", "field", _cell("Rs_annual", "1,234.5"), ("srdb.csv", "'Rs_annual'", "1,234.5"),
         kind="field table"),
    Case("csv_rs_with_unit", "field", _cell("Rs_annual", "812 gC"), ("srdb.csv", "'Rs_annual'", "812 gC"),
         kind="field table"),
    Case("csv_rs_infinite", "field", _cell("Rs_annual", "1e400"), ("srdb.csv", "'Rs_annual'", "1e400"),
         kind="field table"),
    Case("csv_rs_inf_text", "field", _cell("Rs_annual", "inf"), ("srdb.csv", "'Rs_annual'", "inf"),
         kind="field table"),
    Case("csv_latitude_text_hemisphere", "field", _cell("Latitude", "45 N N"), ("srdb.csv", "'Latitude'", "45 N N"),
         kind="field table"),
    Case("csv_midyear_text", "field", _cell("Study_midyear", "two thousand"),
         ("srdb.csv", "'Study_midyear'", "two thousand"), kind="field table"),
    Case("field_named_pipe", "field", _field_special("fifo"), ("'field.path'", "srdb.csv", "named pipe"),
         kind="field table"),
    Case("field_is_folder", "field", _field_special("dir"), ("'field.path'", "srdb.csv", "folder"),
         kind="field table"),
    Case("field_is_device", "field", _field_special("/dev/zero"), ("'field.path'", "/dev/zero", "device"),
         kind="field table"),
    # --- config: cross-section consistency (checked before any stage starts)
    Case("config_min_years_above_run", "trends", _cfg({"trends.min_years": 8}), ("'trends.min_years'", "8", "5 years"),
         kind="config"),
    Case("config_region_bounds_reversed", "biomes", _raw_replace("[product]", "[product]\nregion_bounds = [17.0, 2.0]"),
         ("'product.region_bounds'",), kind="config"),
    Case("config_region_bounds_equal", "product", _raw_replace("[product]", "[product]\nregion_bounds = [5.0, 5.0]"),
         ("'product.region_bounds'",), kind="config"),
    Case("config_region_temperature_absent", "biomes",
         _raw_replace("[product]", '[product]\nregion_temperature = "t2m"'), ("'product.region_temperature'", "t2m"),
         kind="config"),
    Case("config_slight_alpha_below_alpha", "trends", _cfg({"trends.slight_alpha": 0.01}),
         ("'trends.slight_alpha'",), kind="config"),
    Case("config_attribution_driver_absent", "attribution",
         _raw_replace("[trends]", '[attribution]\ndrivers = ["tas", "vpd"]\n\n[trends]'),
         ("'attribution.drivers'", "vpd"), kind="config"),
    Case("config_no_temperature_driver", "models", _raw(lambda t: re.sub(r"temperature = \[.*\]",
                                                                        'temperature = ["t2m"]', t)),
         ("'models.temperature'", "t2m"), kind="config"),
    Case("config_driver_path_missing", "drivers", _raw(lambda t: replace_driver(t, "pr", "/no/such/pr.nc")),
         ("drivers.sources[1].path", "/no/such/pr.nc", "not found"), kind="config"),
    Case("config_max_missing_fraction_range", "field",
         _raw(lambda t: t.replace('frequency = "monthly"', 'frequency = "monthly"\nmax_missing_fraction = 1.5', 1)),
         ("case.toml", "max_missing_fraction"), kind="config"),
    Case("config_allow_vrt_type", "field",
         _raw(lambda t: t.replace('frequency = "monthly"', 'frequency = "monthly"\nallow_vrt = "maybe"', 1)),
         ("case.toml", "allow_vrt", "maybe"), kind="config"),
    Case("config_field_path_unset", "field", _cfg({"field.path": None}), ("'field.path'", "not set"), kind="config"),
    # --- output folder
    Case("output_locked_by_live_run", "field", _locked_output, ("in use by soilresp pid", "started"),
         kind="output folder"),
    Case("output_dir_is_a_file", "field", _output_is_file, ("out_file", "'run.output_dir'"), kind="output folder"),
]
for _c in list(CASES):
    if not _c.kind:
        CASES[CASES.index(_c)] = Case(_c.name, _c.stage, _c.make, _c.expect, _c.pre, _c.argv,
                                      {"field": "field table", "drivers": "driver raster", "biomes": "class map",
                                       "sites": "class map", "product": "model file"}.get(_c.stage, "config")
                                      if not _c.name.startswith(("config", "output")) else
                                      ("config" if _c.name.startswith("config") else "output folder"))


def write_case(case: Case, out: Path, base: Path) -> Path:
    """Write case ``case`` below ``out/<name>/``; returns its config path."""
    d = out / case.name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    run = d / "run"             # a copy of the finished base run: its files must not change
    shutil.copytree(base / "run", run, symlinks=True)
    text = base_config(base, run)
    edits = case.make(d, base)
    text = edit_config(text, {k: v for k, v in edits.items() if k != "raw"}) if "raw" not in edits else \
        edits["raw"].replace(f'output_dir = "{base / "run"}"', f'output_dir = "{run}"')
    cfg = d / "case.toml"
    cfg.write_text(text)
    return cfg


if __name__ == "__main__":  # pragma: no cover - manual inspection
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bad-inputs")
    make_base(out / "base")
    for c in CASES:
        print(c.name, write_case(c, out, out / "base"))
