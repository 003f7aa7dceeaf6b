"""Shared fixtures. Real data lives in ../shared/data beside the project; tests skip without it."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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
            rec = run_demo(tmp / "demo", resolution=3.0, seed=7, mc_samples=60, world_kind="easy",
                           cv_folds=5)
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
