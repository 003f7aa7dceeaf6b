"""Shared fixtures. Real data lives in ../shared/data beside the project; tests skip without it."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# --------------------------------------------------------------- xdist: long files first
# Rough seconds each long test file takes on 2 cores, setup included (from
# `pytest --durations=0`, 2026-12-06 18:45, local VM). `--dist loadfile` hands out whole files, by default those
# with the most tests first: these few-test, minutes-long files then came last, and one worker
# ran two of them while the other sat idle (~24 min in CI). Handed out first (longest
# processing time first), the short files fill the gaps. The first file of each worker builds
# one of the two shared runs (3-degree demo, tiny reference), so they are built side by side;
# the files that need the demo come later on the other worker.
LONG_FILES = {
    "test_resume.py": 410,          # builds the shared tiny runs (tiny_reference)
    "test_report.py": 280,          # builds the shared 3-degree demo (conftest._built_demo)
    "test_staleness.py": 190,
    "test_repeatability.py": 160,
    "test_models_realdata.py": 130,  # skipped without ../shared/data
    "test_api.py": 115,             # runs examples/python_api.ipynb
    "test_realdata_case.py": 110,   # skipped without ../shared/data
    "test_lock.py": 65,
    "test_models_ml.py": 50,
    "test_bad_inputs.py": 45,
}


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` with the long files (LONG_FILES) handed out first; files still go
    whole to one worker, so module and session fixtures work as with plain loadfile."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LongFilesFirst(LoadFileScheduling):
        def _assign_work_unit(self, node):
            if not getattr(self, "_long_first", False):
                order = sorted(self.workqueue.items(),    # stable: the rest keep xdist's order
                               key=lambda kv: -LONG_FILES.get(Path(kv[0]).name, 0))
                self.workqueue.clear()
                self.workqueue.update(order)
                self._long_first = True
            super()._assign_work_unit(node)

    return LongFilesFirst(config, log)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def _built_demo(tmp_path_factory, worker_id) -> Path:
    """The 3-degree demo, built once per test session and shared by the xdist workers
    (a file lock makes the other workers wait for it instead of building their own)."""
    import json
    import shutil

    from filelock import FileLock

    from soilresp.demo import run_demo

    base = tmp_path_factory.getbasetemp()
    root = base.parent if worker_id != "master" else base
    built = root / "shared_demo3"
    with FileLock(str(root / "shared_demo3.lock")):
        if not (built / "recovery.json").is_file():
            tmp = root / "shared_demo3.building"
            shutil.rmtree(tmp, ignore_errors=True)
            # two families: the end-to-end chain with an ML family tuned and reported; SVR and
            # ANN (they added 15 s and 41 s to a 60 s nls-only fit of this demo's table) are
            # tested in test_models_ml.py
            rec = run_demo(tmp / "demo", resolution=3.0, seed=7, mc_samples=60, world_kind="easy",
                           cv_folds=5, families=("nls", "rf"))
            (tmp / "recovery.json").write_text(json.dumps(rec))
            shutil.rmtree(built, ignore_errors=True)
            tmp.rename(built)
    return built


@pytest.fixture(scope="session")
def small_demo(_built_demo, tmp_path_factory):
    """A 3-degree synthetic world run through every stage (shared by the end-to-end tests);
    each worker gets its own copy (mtimes kept, so every stage is still up to date), which
    its tests may change."""
    import json
    import shutil

    out = tmp_path_factory.mktemp("demo3")
    shutil.copytree(_built_demo / "demo", out, dirs_exist_ok=True)
    rec = json.loads((_built_demo / "recovery.json").read_text())
    old = str(_built_demo / "demo")
    rec["paths"] = {k: v.replace(old, str(out)) for k, v in rec["paths"].items()}
    return out, rec


def _src_env() -> dict:
    """The environment for a `soilresp` subprocess that runs this checkout's source."""
    import os

    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="session")
def tiny_reference(tmp_path_factory, worker_id) -> tuple[Path, float]:
    """tests/_tinyworld.py's world and two uninterrupted runs of its config, ``soilresp run
    first_run.toml`` then ``soilresp run reference.toml`` (subprocesses, as a user runs it),
    made once per test session and shared by the xdist workers (file lock), like
    ``_built_demo``. The resume, repeatability, lock, staleness and evaluate tests compare
    against them or start from a copy instead of each making their own (one run costs
    ~1.5 min on 2 cores).

    Returns ``(root, t0)``: ``root`` holds ``world/``, ``first_run/``, ``reference.toml`` and
    ``reference/``; ``t0`` is the time (``time.time()``) the reference run's process started. Tests must not write
    into ``root/reference`` or ``root/world``: their own runs go to ``root/<own name>`` (one
    world, so paths inside the outputs compare) or into a copy of ``root``."""
    import json
    import shutil
    import subprocess
    import sys
    import time

    from filelock import FileLock

    from _tinyworld import make_world, write_config

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if worker_id != "master" else base
    root = shared / "shared_tiny"
    with FileLock(str(shared / "shared_tiny.lock")):
        if not (root / "reference.t0.json").is_file():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            make_world(root)
            # two runs: the first pays numba's one-off compilation (cache=True kernels, cold in a
            # fresh clone: uncertainty and attribution took 4-15x longer); the second is what a
            # resumed rerun is like, so its timeline places test_resume's kills. Both are the
            # repeatability test's two threads runs.
            for name in ("first_run", "reference"):
                cfg = write_config(root, f"{name}.toml", output_dir=name)
                t0 = time.time()
                p = subprocess.run([sys.executable, "-m", "soilresp.cli", "run", str(cfg)], cwd=root,
                                   env=_src_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   timeout=900)
                assert p.returncode == 0, p.stderr.decode()[-3000:]
            (root / "reference.t0.json").write_text(json.dumps({"t0": t0}))
    return root, json.loads((root / "reference.t0.json").read_text())["t0"]


def copy_tiny_reference(root: Path, dest: Path) -> Path:
    """A private copy of :func:`tiny_reference`'s folder (mtimes kept, so every stage of the
    copied run is still up to date) for tests that change the run; returns its config."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for d in ("world", "reference"):
        shutil.copytree(root / d, dest / d)
    shutil.copy2(root / "reference.toml", dest / "reference.toml")
    return dest / "reference.toml"


def checkable_config(tmp_path: Path, extra_files=()) -> Path:
    """A 3-degree demo config (2000-2004) whose input files exist as placeholders, for the
    config checks that never read them (test_validate, test_extras)."""
    import re

    from soilresp.demo import demo_config_text

    t = demo_config_text(3.0, 7, years=(2000, 2004), mc=5)
    names = ["world/srdb-data.csv", "world/biomes.nc", *extra_files]
    for f in names + re.findall(r'path = "(world/drivers/[^"]+)"', t):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("x")
    p = tmp_path / "c.toml"
    p.write_text(t.replace("bootstrap = 1000", "bootstrap = 20\nmin_years = 3"))
    return p
