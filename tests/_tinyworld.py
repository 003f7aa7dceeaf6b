"""A tiny synthetic world and a fast config for the resume and repeatability tests.

3-degree grid, 5 years, chunk 16 (so every grid has many blocks to resume), one candidate
per predictor group, the nonlinear family only, 3-fold CV, 10 Monte Carlo samples, 50
bootstrap samples, 2 + 2 stability refits, 20 ratio bootstraps.
"""

from __future__ import annotations

import re
from pathlib import Path

YEARS = (2000, 2004)


def make_world(root: Path, seed: int = 7) -> Path:
    from soilresp.synthetic import write_world

    world = root / "world"
    if not (world / "truth.json").is_file():
        write_world(world, resolution=3.0, years=YEARS, seed=seed, chunk=16)
    return world


def config_text(seed: int = 7, output_dir: str = "run", scheduler: str = "threads") -> str:
    from soilresp.demo import demo_config_text

    t = demo_config_text(3.0, seed, years=YEARS, mc=10, scheduler=scheduler)
    t = t.replace('output_dir = "run"', f'output_dir = "{output_dir}"')
    t = t.replace("lat_max = 84.0\n", "lat_max = 84.0\nchunk = 16\n")
    t = re.sub(r"temperature = \[.*\]", 'temperature = ["tas"]', t)
    t = re.sub(r"moisture = \[.*\]", 'moisture = ["pr"]', t)
    t = re.sub(r"productivity = \[.*\]", 'productivity = ["gpp"]', t)
    t = t.replace("cv_folds = 10", "cv_folds = 3")
    # the nonlinear family only (the ML families' repeatability is tested in test_models_ml.py)
    t = re.sub(r"families = \[.*\]", 'families = ["nls"]', t)
    t = t.replace("n_jobs = 2", "n_jobs = 1")
    t = t.replace('format = "srdb"\n', 'format = "srdb"\ncountry_check = false\n')
    t = t.replace("bootstrap = 1000", "bootstrap = 50\nmin_years = 3")
    # a few stability refits and ratio bootstraps: the code runs, its cost stays small
    t = t.replace("mc_samples = 10\n", "mc_samples = 10\nstability_drops = 2\nstability_jackknife = 2\n")
    t += "\n[partition]\nbootstrap = 20\n"
    return t


def write_config(root: Path, name: str = "soilresp.toml", **kw) -> Path:
    p = root / name
    p.write_text(config_text(**kw))
    return p


def output_files(run: Path) -> dict[str, Path]:
    """Every output file below ``run`` (relative name -> path), stage manifests and log aside."""
    return {str(p.relative_to(run)): p for p in sorted(run.rglob("*"))
            if p.is_file() and ".soilresp" not in p.relative_to(run).parts}


def leftovers(run: Path) -> list[str]:
    """Temporary or partial files/stores a killed writer could leave behind."""
    return [str(p.relative_to(run)) for p in run.rglob("*")
            if p.name.startswith(".") and p.name != ".soilresp"
            and (".tmp" in p.name or ".partial" in p.name or ".old-" in p.name
                 or p.name.startswith((".soilresp-tmp-", ".soilresp-old-", ".soilresp-partial-")))]


# produced_by: stage keys, which include output content hashes (provenance times differ per run)
_RUN_SPECIFIC = {"provenance", "created", "file_sha256", "seconds", "output_dir", "scheduler", "produced_by"}


def _normalised_json(text: str):
    """A JSON document without what legitimately differs between two runs of one config
    in two folders: provenance records, times, the output folder and the scheduler named."""
    import json

    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k not in _RUN_SPECIFIC}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o

    return strip(json.loads(text))


def assert_same_outputs(a: Path, b: Path) -> None:
    """Equal data in every output of two runs (provenance timestamps excepted)."""
    import json

    import numpy as np
    import pyarrow.parquet as pq
    import xarray as xr

    fa, fb = output_files(a), output_files(b)
    names_a = {n for n in fa if ".zarr" not in n}
    names_b = {n for n in fb if ".zarr" not in n}
    assert names_a == names_b, names_a ^ names_b
    for n in sorted(names_a):
        pa_, pb_ = fa[n], fb[n]
        if n.endswith(".parquet"):
            ta, tb = pq.read_table(pa_), pq.read_table(pb_)
            assert ta.schema.remove_metadata() == tb.schema.remove_metadata(), n
            assert ta.replace_schema_metadata(None).equals(tb.replace_schema_metadata(None)), n
        elif n.endswith(".prov.json") and not n.endswith((".csv.prov.json", ".png.prov.json")):
            continue   # HTML embeds the provenance time; SVG/PDF embed dates and random ids
        elif n.endswith(".prov.json"):   # sidecar: the file it describes must be the same
            assert (json.loads(pa_.read_text())["file_sha256"]
                    == json.loads(pb_.read_text())["file_sha256"]), n
        elif n.endswith(".json"):
            da_ = _normalised_json(pa_.read_text().replace(str(a), "<RUN>"))
            db_ = _normalised_json(pb_.read_text().replace(str(b), "<RUN>"))
            assert da_ == db_, n
        elif n.endswith((".csv", ".png")):
            assert pa_.read_bytes() == pb_.read_bytes(), n
    stores = sorted({p.split(".zarr")[0] + ".zarr" for p in fa if ".zarr" in p})
    stores_b = sorted({p.split(".zarr")[0] + ".zarr" for p in fb if ".zarr" in p})
    assert stores == stores_b
    for s in stores:
        xa = xr.open_zarr(a / s, consolidated=False)
        xb = xr.open_zarr(b / s, consolidated=False)
        assert set(xa.variables) == set(xb.variables), s
        for v in xa.variables:
            va, vb = xa[v].values, xb[v].values
            assert va.dtype == vb.dtype, (s, v)
            assert va.tobytes() == vb.tobytes() or np.array_equal(va, vb, equal_nan=True), (s, v)
            assert xa[v].attrs == xb[v].attrs, (s, v)
