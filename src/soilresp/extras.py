"""Optional dependencies (pip extras) and the one-line error when one is missing.

The core install runs the pipeline with the nonlinear family on NetCDF / CSV inputs. Each
extra adds what one kind of input, model or output needs (``pyproject.toml``):

========  ==================================================  ================================
extra     modules                                             needed for
========  ==================================================  ================================
geotiff   rioxarray, rasterio, pyproj                         GeoTIFF / COG inputs, COG export
ml        skops, quantile_forest                              rf / svr / ann / qrf families
report    matplotlib                                          the report stage
cluster   distributed                                         local-cluster / tcp:// schedulers
modis     pyhdf, pyproj (earthaccess for ``soilresp fetch``)  MODIS HDF4-EOS tiles
========  ==================================================  ================================

:func:`require` imports a module of an extra or raises :class:`~soilresp.errors.SoilrespError`
``<what> needs <module>: pip install 'soilresp[<extra>]'`` (the CLI prints it as one line).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from soilresp.errors import SoilrespError

#: extra -> the modules it provides (import names), as in pyproject.toml
EXTRAS: dict[str, tuple[str, ...]] = {
    "geotiff": ("rioxarray", "rasterio", "pyproj"),
    "ml": ("skops", "quantile_forest"),
    "report": ("matplotlib",),
    "cluster": ("distributed",),
    "modis": ("pyhdf", "pyproj", "earthaccess"),
}


def missing_error(module: str, extra: str, what: str) -> SoilrespError:
    return SoilrespError(f"{what} needs {module}: pip install 'soilresp[{extra}]'")


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` (of the pip extra ``extra``) for ``what`` (e.g. "reading GeoTIFF
    x.tif"); a missing or broken install raises the one-line error naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing_error(module, extra, what) from None


def has(module: str) -> bool:
    """True when ``module`` can be found (not imported: cheap)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def installed() -> dict[str, list[str]]:
    """extra -> its missing modules (empty list: the extra is installed)."""
    return {e: [m for m in mods if not has(m)] for e, mods in EXTRAS.items()}
