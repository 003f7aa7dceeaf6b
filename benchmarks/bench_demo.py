"""Time and peak memory of `soilresp demo`, per stage, at one or more resolutions
(issue 2: under 5 minutes on 2 cores and under 4 GB at 1 degree; issue 19: wall time no worse
than linear in pixels, 1 -> 0.5 degree <= 4.6x, and flat peak memory).

Run: python benchmarks/bench_demo.py [--resolution 1.0 0.5 0.25] [--mc-samples 500]

Each resolution runs in its own child process (a fresh interpreter, so one run's heap does
not inflate the next). In the child a thread samples every 50 ms the resident memory of the
process and of all its children (the models stage fits biomes in worker processes), and the
demo's ``on_stage`` callback marks where each stage starts and ends. Printed per stage: wall
time, RSS at its start and its peak; then total time, peak RSS, the ratios between
resolutions and the machine load (``os.getloadavg``) at the start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _rss_tree(proc) -> int:
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def child(resolution: float, out: Path, mc: int, result: Path, nls_only: bool = False) -> None:
    import psutil

    from soilresp.demo import run_demo

    # nls_only: the demo deploys nls anyway (select_from); skip tuning the ML families
    families = ("nls",) if nls_only else ("nls", "rf", "svr", "ann")

    proc = psutil.Process()
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append((time.perf_counter(), _rss_tree(proc)))
            stop.wait(0.05)

    marks: list[tuple[str, str, float]] = []

    def on_stage(name, what):
        marks.append((name, what, time.perf_counter()))

    th = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    th.start()
    rec = run_demo(out, resolution=resolution, mc_samples=mc, on_stage=on_stage, families=families)
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    stages, opened = [], {}
    for name, what, t in marks:
        if what == "start":
            opened[name] = t
        elif name in opened:
            t1 = opened.pop(name)
            win = [r for s, r in samples if t1 <= s <= t] or [0]
            before = [r for s, r in samples if s <= t1] or [0]
            stages.append({"stage": name, "seconds": t - t1, "rss_start_gb": before[-1] / 1e9,
                           "peak_rss_gb": max(win) / 1e9})
    result.write_text(json.dumps({
        "resolution": resolution, "wall_s": wall, "peak_rss_gb": max(r for _, r in samples) / 1e9,
        "stages": stages, "checks": rec["checks"],
        "global_max_abs_rel_error": rec["totals"]["global"]["max_abs_relative_error"]}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=float, nargs="+", default=[1.0])
    ap.add_argument("--mc-samples", type=int, default=500)
    ap.add_argument("--out", type=Path, default=None, help="parent folder of the demo folders")
    ap.add_argument("--nls-only", action="store_true",
                    help="models stage fits the nls family only (the demo deploys nls either way: "
                         "the grid stages see the same models, the models stage takes seconds)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(float(args.child[0]), Path(args.child[1]), args.mc_samples, Path(args.child[2]), args.nls_only)
        return
    base = args.out or Path(tempfile.mkdtemp(prefix="soilresp-bench-"))
    res = []
    for r in args.resolution:
        out = base / f"demo_{r:g}"
        rj = base / f"bench_{r:g}.json"
        load0 = os.getloadavg()[0]
        subprocess.run([sys.executable, __file__, "--mc-samples", str(args.mc_samples),
                        *(["--nls-only"] if args.nls_only else []),
                        "--child", str(r), str(out), str(rj)], check=True)
        d = json.loads(rj.read_text())
        d["load"] = (load0, os.getloadavg()[0])
        res.append(d)
        print(f"\nsoilresp demo at {r:g} deg (SYNTHETIC world, --mc-samples {args.mc_samples}"
              f"{', nls only' if args.nls_only else ''}) in {out}")
        print(f"  {'stage':<16} {'s':>8} {'RSS start GB':>13} {'peak RSS GB':>12}")
        for s in d["stages"]:
            print(f"  {s['stage']:<16} {s['seconds']:8.1f} {s['rss_start_gb']:13.2f} {s['peak_rss_gb']:12.2f}")
        print(f"  total wall time {d['wall_s']:.1f} s, peak RSS {d['peak_rss_gb']:.2f} GB "
              f"(process + children), load average {d['load'][0]:.1f} -> {d['load'][1]:.1f}")
        print(f"  max |relative error| of the global total {d['global_max_abs_rel_error']:.4f}; "
              f"checks failed: {[k for k, v in d['checks'].items() if not v]}")
    for a, b in zip(res, res[1:]):
        px = (a["resolution"] / b["resolution"]) ** 2
        print(f"{a['resolution']:g} -> {b['resolution']:g} deg: {px:.0f}x the pixels, "
              f"{b['wall_s'] / a['wall_s']:.2f}x the time (target <= {1.15 * px:.1f}x), "
              f"peak RSS {a['peak_rss_gb']:.2f} -> {b['peak_rss_gb']:.2f} GB")


if __name__ == "__main__":
    main()
