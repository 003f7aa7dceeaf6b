"""``soilresp quickstart``: what is installed, which inputs are on disk, what to type next.

Reads nothing but the installed packages (:mod:`soilresp.extras`) and the existence of a
few files; writes nothing; never fails (exit code 0).
"""

from __future__ import annotations

import sys
from pathlib import Path

from soilresp.extras import EXTRAS, installed

#: What each extra adds (one line each).
EXTRA_USE = {
    "geotiff": "GeoTIFF / COG inputs (e.g. MODIS land cover .tif), `soilresp export --format cog`",
    "ml": "random forest / SVR / neural net / quantile forest families (the demo and the example config use them)",
    "report": "the report stage: figures and report.html",
    "cluster": "dask.distributed schedulers ([run] scheduler = \"local-cluster\" or tcp://...)",
    "modis": "MODIS HDF4 tiles and `soilresp fetch modis`",
}

#: Catalogue files of the worked real-data example (docs/realdata.md), in ``<data>/drivers``.
REALDATA_CATALOGUE = ("udel-climatology", "ipcc-climate-zones", "modis-lc-2010", "fractional-land")


def _catalogue_file(name: str) -> str:
    from soilresp.download import CATALOGUE

    e = CATALOGUE[name]
    return e.get("name") or str(e["url"]).rsplit("/", 1)[-1]


def realdata_files(data: Path) -> dict[str, bool]:
    """The inputs of ``examples/realdata_0.5deg.toml`` after ``soilresp fetch`` (path -> exists)."""
    files = [data / "srdb" / "srdb-data.csv"] + [data / "drivers" / _catalogue_file(n) for n in REALDATA_CATALOGUE]
    return {str(p): p.is_file() for p in files}


def report(data: Path = Path("data"), cwd: Path | None = None) -> list[str]:
    """The quickstart text, one plain string per line (no markup)."""
    from soilresp import __version__

    cwd = cwd or Path.cwd()
    miss = installed()
    out = [f"soilresp {__version__} (Python {sys.version.split()[0]}): core installed "
           "(the pipeline with the nonlinear models on NetCDF / CSV inputs).", "", "Extras:"]
    for extra in EXTRAS:
        m = miss[extra]
        state = "installed" if not m else f"MISSING ({', '.join(m)})"
        out.append(f"  [{extra}] {state}: {EXTRA_USE[extra]}")
    if any(miss.values()):
        out.append("  install them all: pip install 'soilresp[all]'")
    out += ["", "Data:"]
    files = realdata_files(data)
    n = sum(files.values())
    out.append(f"  real data of the worked example (docs/realdata.md) in {data}/: {n} of {len(files)} files"
               + ("" if n == len(files) else "; get them with `soilresp fetch srdb` and `soilresp fetch "
                  "climate " + " ".join(REALDATA_CATALOGUE) + "`"))
    out += [f"    absent: {p}" for p, ok in files.items() if not ok]
    if (cwd / "tests" / "conftest.py").is_file():   # a clone of the project: the tests' real data
        shared = cwd.parent / "shared" / "data"
        out.append(f"  test data {shared}: " + ("present" if shared.is_dir() else
                                                 "absent (the tests that need it skip)"))
    out += ["", "Next:"]
    steps = [("soilresp demo --out soilresp-demo",
              "a synthetic world with known truth, every stage, how well it was recovered"),
             ("soilresp config --example > my.toml", "a commented config: edit the paths to your data"),
             ("soilresp config --check my.toml", "checks the whole config (paths, keys, extras) before any compute"),
             ("soilresp run my.toml", "every stage; a rerun redoes only what changed"),
             ("soilresp report my.toml", "figures, tables and report.html of the run")]
    width = max(len(c) for c, _ in steps)
    out += [f"  {k}. {cmd:<{width}}  # {what}" for k, (cmd, what) in enumerate(steps, 1)]
    need = [e for e in ("ml", "report") if miss[e]]
    if need:
        out.append("  The demo and the example config need " + " and ".join(f"[{e}]" for e in need)
                   + ": pip install 'soilresp[all]' (or, in your config, [models] families = [\"nls\"]).")
    out.append("  More: README.md and docs/architecture.md; `soilresp stages` lists the stages.")
    return out
