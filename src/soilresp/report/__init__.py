"""Figures, tables and one self-contained HTML report of a run (method step 8).

* :mod:`soilresp.report.figures`: the paper's Figs 1-6 and S2, each a function of the run
  folder (``FIGURES``).
* :mod:`soilresp.report.tables`: tables S2-S4 and the field filter cascade (``TABLES``).
* :func:`write_report`: every figure as PNG + SVG, every table as CSV, and ``report.html``.

See ``docs/report.md``.
"""

from soilresp.report._common import MissingOutput, panels, save_figure
from soilresp.report.document import write_report
from soilresp.report.figures import FIGURES, FigureSpec
from soilresp.report.tables import TABLES, TableSpec

__all__ = ["FIGURES", "TABLES", "FigureSpec", "MissingOutput", "TableSpec", "panels",
           "save_figure", "write_report"]
