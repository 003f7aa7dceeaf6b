"""Kill a running `soilresp run` at 20 random (seeded) moments, rerun each time, and check
that the final outputs equal an uninterrupted run and nothing partial is left (issue 9)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from _tinyworld import assert_same_outputs, leftovers, write_config
from soilresp import io
from soilresp.pipeline import STAGES

N_KILLS = 20

pytestmark = pytest.mark.slow   # > 20 s; still runs in CI


def _env():
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _start(cfg: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "soilresp.cli", "run", str(cfg)], cwd=cfg.parent,
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def _events(run: Path) -> list[dict]:
    p = run / ".soilresp" / "log.jsonl"
    out = []
    for line in p.read_text().splitlines() if p.is_file() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line torn by a kill
            pass
    return out


def _count(run: Path, stage: str, event: str) -> int:
    return sum(1 for e in _events(run) if e["event"] == event and e["stage"] == stage)


def _timeline(run: Path, t0: float) -> list[tuple[str, float]]:
    """(phase, seconds) of the reference run: start-up, then each stage (incl. the gap after)."""
    ev = [e for e in _events(run) if e["event"] == "start"]
    starts = [(e["stage"], e["time"]) for e in ev]
    end = max(e["time"] for e in _events(run))
    phases = [("startup", starts[0][1] - t0)]
    for i, (s, t) in enumerate(starts):
        nxt = starts[i + 1][1] if i + 1 < len(starts) else end
        phases.append((s, nxt - t))
    return phases


@pytest.fixture(scope="module")
def world(tiny_reference):
    """The uninterrupted reference run (shared, conftest.tiny_reference) and its timeline."""
    root, t0 = tiny_reference
    return root, _timeline(root / "reference", t0)


def test_killed_runs_resume_to_the_uninterrupted_result(world):
    root, phases = world
    cfg = write_config(root, "killed.toml", output_dir="killed")
    run = root / "killed"
    assert not run.exists()
    total = sum(d for _, d in phases)
    rng = np.random.default_rng(20260901)
    moments = np.sort(rng.uniform(0, total, N_KILLS))
    bounds = np.cumsum([0] + [d for _, d in phases])
    landed, hit = 0, []
    for m in moments:
        k = int(np.searchsorted(bounds, m, side="right") - 1)
        phase, offset = phases[k][0], float(m - bounds[k])
        unfinished = [n for n in STAGES if not (run / ".soilresp" / f"{n}.json").is_file()]
        if phase != "startup" and unfinished and list(STAGES).index(phase) < list(STAGES).index(unfinished[0]):
            phase = unfinished[0]      # a quicker rerun already finished it: the next stage
        n_before = _count(run, phase, "start")
        p = _start(cfg)
        t_start = time.time()
        if phase != "startup":   # wait for this run to reach the phase, then the offset into it
            while p.poll() is None and _count(run, phase, "start") == n_before:
                time.sleep(0.02)
            t_start = time.time()
        n_done = _count(run, phase, "done")
        # the offset into the phase, or just after it ends if this rerun is quicker
        while (p.poll() is None and time.time() - t_start < offset
               and _count(run, phase, "done") == n_done):
            time.sleep(0.01)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            landed += 1
            hit.append(phase)
        p.wait(timeout=60)
        err = p.stderr.read().decode()
        p.stderr.close()
        assert p.returncode in (0, -signal.SIGKILL), (phase, offset, p.returncode, err[-2000:])
        # whatever the moment, no output is taken as complete unless its stage finished
        for name, st in STAGES.items():
            man = run / ".soilresp" / f"{name}.json"
            if man.is_file():
                assert all(io.is_complete(run / name / o) for o in st.outputs), (phase, name)
    p = _start(cfg)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err.decode()
    assert landed >= N_KILLS - 2, (landed, hit)
    assert len(set(hit)) >= 4, hit          # the kills are spread over the run's stages
    assert leftovers(run) == []
    assert_same_outputs(root / "reference", run)
    # every kind of output carries its provenance, printed by `soilresp provenance`
    from typer.testing import CliRunner

    from soilresp.cli import app

    pngs = sorted((run / "report").glob("*.png"))
    for rel in ["drivers/drivers.zarr", "product/rs.zarr", "product/totals.parquet",
                "models/biome_01.json", "field/cascade.csv", "report/report.html",
                str(pngs[0].relative_to(run))]:
        res = CliRunner().invoke(app, ["provenance", str(run / rel)])
        assert res.exit_code == 0 and "soilresp_version" in res.output, (rel, res.output)
        prov = io.read_provenance(run / rel)
        assert prov["seed"] == 7 and prov["dependencies"]["numpy"], rel
        assert prov["stage_key"] and prov["config"]["run"]["seed"] == 7, rel
        if rel.startswith("drivers"):
            assert all(v.startswith("sha256:") for v in prov["inputs"].values()), rel
    # a further rerun skips every stage
    out = subprocess.run([sys.executable, "-m", "soilresp.cli", "run", str(cfg)], cwd=root,
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.count("skipped") >= len(STAGES), out.stdout
