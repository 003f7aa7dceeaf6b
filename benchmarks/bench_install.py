"""Install size and start-up memory of soilresp in one or more virtual environments.

    python -m venv /tmp/core && /tmp/core/bin/pip install .          # core
    python -m venv /tmp/all && /tmp/all/bin/pip install ".[all]"     # everything
    python benchmarks/bench_install.py /tmp/core /tmp/all

Prints, per environment: the size on disk (MB, the whole venv), the peak resident memory
(MB) of ``python -c "import soilresp"`` and of ``soilresp --help``, and of loading the land
mask the field QC uses (``soilresp.landmask``), beside ``global_land_mask`` when installed.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path


def _du_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.lstat(p).st_size
    return total / 1e6


def _peak_mb(cmd: list[str]) -> float | None:
    """Peak RSS (MB) of ``cmd`` run alone in a fresh child (via /usr/bin/time -f %M)."""
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True,
                       cwd="/", env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    if r.returncode != 0:
        return None
    return int(r.stderr.strip().splitlines()[-1]) / 1024


def main(venvs: list[str]) -> None:
    print(f"{'environment':40s} {'disk MB':>8s} {'import':>8s} {'--help':>8s} "
          f"{'landmask':>9s} {'global_land_mask':>17s}   (peak RSS, MB)")
    for v in venvs:
        v = Path(v)
        py, cli = str(v / "bin" / "python"), str(v / "bin" / "soilresp")
        imp = _peak_mb([py, "-c", "import soilresp"])
        hlp = _peak_mb([cli, "--help"])
        lm = _peak_mb([py, "-c", "from soilresp.landmask import is_land; is_land(0.0, 0.0)"])
        glm = _peak_mb([py, "-c", "from global_land_mask import globe; globe.is_land(0.0, 0.0)"])
        f = lambda x: "n/a" if x is None else f"{x:.0f}"  # noqa: E731
        print(f"{str(v):40s} {_du_mb(v):8.0f} {f(imp):>8s} {f(hlp):>8s} {f(lm):>9s} {f(glm):>17s}")
    print(f"(this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
