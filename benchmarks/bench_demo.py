"""Time and peak memory of `soilresp demo` at default settings (issue 2 acceptance:
under 5 minutes on 2 cores and under 4 GB). Run: python benchmarks/bench_demo.py [--resolution 1.0]

Prints wall time per stage (from the stage manifests), total time, and the peak resident
memory of this process (the demo runs in-process, threads scheduler).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from soilresp.demo import run_demo

    out = args.out or Path(tempfile.mkdtemp(prefix="soilresp-bench-"))
    t0 = time.perf_counter()
    rec = run_demo(out, resolution=args.resolution)
    wall = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"soilresp demo at {args.resolution} deg (SYNTHETIC world) in {out}")
    for m in sorted((out / "run" / ".soilresp").glob("*.json"), key=lambda p: p.stat().st_mtime):
        d = json.loads(m.read_text())
        print(f"  stage {d['stage']:<12} {d['seconds']:8.1f} s")
    print(f"total wall time      {wall:8.1f} s   (target < 300 s)")
    print(f"peak resident memory {peak_gb:8.2f} GB  (target < 4 GB)")
    g = rec["totals"]["global"]["max_abs_relative_error"]
    print(f"max |relative error| of the global total: {g:.4f} (target <= 0.05)")
    print("checks:", json.dumps(rec["checks"]))


if __name__ == "__main__":
    main()
