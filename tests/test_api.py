"""The Python API (soilresp.Run), the dask client it respects, the package layout (no import
cycle), and the example notebook executed end to end."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import soilresp
from soilresp.errors import StageError

from _tinyworld import make_world, write_config

SRC = Path(soilresp.__file__).parent
ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path, module: str) -> set[str]:
    """soilresp modules imported anywhere in ``path`` (top level or inside functions; not
    in a module ``__getattr__``, which runs only when that attribute is asked for)."""
    out = set()
    pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    tree.body = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name == "__getattr__")]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("soilresp"):
                out.add(base)
                out |= {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("soilresp")}
    return out


def _module_graph() -> dict[str, set[str]]:
    mods = {}
    for p in SRC.rglob("*.py"):
        rel = p.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        mods[name] = p
    graph = {m: {i for i in _imports(p, m) if i in mods and i != m} for m, p in mods.items()}
    return graph


def _reaches(graph, a, b) -> bool:
    seen, todo = set(), [a]
    while todo:
        m = todo.pop()
        if m == b:
            return True
        if m not in seen:
            seen.add(m)
            todo += graph.get(m, ())
    return False


def test_pipeline_and_report_do_not_import_each_other():
    g = _module_graph()
    report = [m for m in g if m.startswith("soilresp.report")]
    assert _reaches(g, "soilresp.pipeline", "soilresp.report")
    for m in report:
        assert not _reaches(g, m, "soilresp.pipeline"), m


def test_real_data_joiner_lives_with_the_field_data():
    from soilresp.field.covariates import srdb_training_table  # noqa: F401

    assert not (SRC / "models" / "srdb_covariates.py").exists()


def test_import_soilresp_is_light():
    import subprocess
    import sys

    code = ("import sys, soilresp; heavy = [m for m in ('sklearn', 'matplotlib', 'distributed', "
            "'numba', 'global_land_mask', 'xarray') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(SRC.parent)}).stdout.strip()
    assert out == "[]"


def test_run_api_stage_by_stage(tmp_path):
    make_world(tmp_path)
    run = soilresp.Run(write_config(tmp_path))
    assert run.stages()[:3] == ["field", "drivers", "biomes"]
    with pytest.raises(StageError, match="field"):
        run.stage("sites")  # upstream missing: the error names it
    assert run.stage("field") == "ran"
    assert run.stage("field") == "skipped"
    assert run.describe("field")["fresh"] is True
    obs = run.open("field")
    assert len(obs) > 0 and "rs" in obs
    assert run.run(["drivers"]) == {"drivers": "ran"}
    cube = run.open("drivers", "drivers.zarr")
    assert "tas" in cube and cube["tas"].attrs["units"] == "degC"
    assert set(run.outputs("drivers")) == {"drivers.zarr"}
    with pytest.raises(StageError, match="unknown stage"):
        run.open("nope")


def test_a_started_dask_client_is_respected():
    distributed = pytest.importorskip("distributed")
    import dask
    import dask.array as da

    from soilresp.pipeline import compute_context

    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1,
                            dashboard_address=None) as client:
        with compute_context("threads") as used:  # the config's default scheduler
            assert used is client
            assert dask.config.get("scheduler") is client
            assert int(da.ones(10, chunks=5).sum().compute()) == 10
        with compute_context("synchronous") as used:  # asked for explicitly: local
            assert used is None and dask.config.get("scheduler") == "synchronous"
    with compute_context("threads") as used:  # no client: local threads
        assert used is None


@pytest.mark.slow
def test_example_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(ROOT / "examples" / "python_api.ipynb", as_version=4)
    env_src = str(SRC.parent)
    os.environ["PYTHONPATH"] = env_src + os.pathsep + os.environ.get("PYTHONPATH", "")
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "Pg C/yr" in outputs and "ran" in outputs
