"""Per-pixel trend and partial-correlation statistics (method steps 6-7).

Pure array kernels (numba, parallel over pixels) on arrays shaped ``(..., year)`` and
xarray wrappers. Validated against pyMannKendall, ``scipy.stats.theilslopes``,
``pingouin.partial_corr`` and ``statsmodels``' ``multipletests``; see
``docs/statistics.md``.
"""

from soilresp.stats.bootstrap import bootstrap_trend_ci, default_block_length
from soilresp.stats.fdr import fdr_bh
from soilresp.stats.partial import PCResult, complete_years, critical_r, partial_corr, t_pvalue
from soilresp.stats.trend import (
    EXACT_MAX_N,
    TREND_CLASS_LABELS,
    TREND_CLASS_NODATA,
    MKResult,
    ModifiedMKResult,
    SenResult,
    mann_kendall,
    mann_kendall_hamed_rao,
    mann_kendall_yue_wang,
    mk_exact_p,
    net_change,
    sens_slope,
    trend_class,
    trend_test,
)
from soilresp.stats.xr import xr_fdr_bh, xr_partial_corr, xr_trend

__all__ = [
    "EXACT_MAX_N",
    "MKResult",
    "ModifiedMKResult",
    "PCResult",
    "SenResult",
    "TREND_CLASS_LABELS",
    "TREND_CLASS_NODATA",
    "bootstrap_trend_ci",
    "complete_years",
    "critical_r",
    "default_block_length",
    "fdr_bh",
    "mann_kendall",
    "mann_kendall_hamed_rao",
    "mann_kendall_yue_wang",
    "mk_exact_p",
    "net_change",
    "partial_corr",
    "sens_slope",
    "t_pvalue",
    "trend_class",
    "trend_test",
    "xr_fdr_bh",
    "xr_partial_corr",
    "xr_trend",
]
