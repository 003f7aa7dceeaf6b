"""Loading a model or any input never executes code from the file (issue 9, item 6).

A static audit of the package source (AST): no pickle-family loader, no ``np.load`` with
``allow_pickle=True``, no ``pd.read_pickle``, ``eval``/``exec``, ``yaml.load`` or
``torch.load``; skops is only ever called after its allow-list check. The bad-input corpus
checks the behaviour (a pickle disguised as a skops model is refused and its payload does not
run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import soilresp

SRC = Path(soilresp.__file__).resolve().parent
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "torch"}
# joblib is used for parallel fits; only its pickle-based loader is unsafe
UNSAFE_NAMES = {"joblib": {"load"}}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                yield node, f.value.id, f.attr
            elif isinstance(f, ast.Name):
                yield node, None, f.id


def test_no_code_executing_loader_in_the_package():
    problems = []
    for py in sorted(SRC.rglob("*.py")):
        tree = ast.parse(py.read_text(), filename=str(py))
        rel = py.relative_to(SRC)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name.split(".")[0] for a in node.names]
                if isinstance(node, ast.ImportFrom) and node.module:
                    names.append(node.module.split(".")[0])
                bad = sorted(set(names) & UNSAFE_MODULES)
                if bad:
                    problems.append(f"{rel}:{node.lineno} imports {bad}")
                if isinstance(node, ast.ImportFrom) and node.module in UNSAFE_NAMES:
                    hit = sorted({a.name for a in node.names} & UNSAFE_NAMES[node.module])
                    if hit:
                        problems.append(f"{rel}:{node.lineno} imports {node.module}.{hit}")
        for node, mod, name in _calls(tree):
            kw = {k.arg: k.value for k in node.keywords}
            if mod is None and name in ("eval", "exec"):
                problems.append(f"{rel}:{node.lineno} calls {name}()")
            if mod in ("np", "numpy") and name == "load":
                ap = kw.get("allow_pickle")
                if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                    problems.append(f"{rel}:{node.lineno} np.load(allow_pickle=...)")
            if mod in UNSAFE_NAMES and name in UNSAFE_NAMES[mod]:
                problems.append(f"{rel}:{node.lineno} {mod}.{name}")
            if mod in ("pd", "pandas") and name == "read_pickle":
                problems.append(f"{rel}:{node.lineno} pd.read_pickle")
            if mod == "yaml" and name in ("load", "unsafe_load", "full_load"):
                problems.append(f"{rel}:{node.lineno} yaml.{name}")
            if mod == "sio" and name in ("load", "loads") and rel != Path("models/base.py"):
                problems.append(f"{rel}:{node.lineno} skops {name} outside the allow-listed loader")
    assert problems == []


def test_skops_loader_checks_the_allow_list_first():
    src = (SRC / "models" / "base.py").read_text()
    tree = ast.parse(src)
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_skops_load")
    names = [(getattr(c.func, "attr", None), c.lineno) for c in ast.walk(fn) if isinstance(c, ast.Call)]
    first_check = min(ln for a, ln in names if a == "get_untrusted_types")
    load = min(ln for a, ln in names if a == "loads")
    assert first_check < load
    # and whatever is trusted is the filtered list, never trusted=True
    for c in ast.walk(fn):
        if isinstance(c, ast.Call) and getattr(c.func, "attr", None) == "loads":
            t = {k.arg: k.value for k in c.keywords}["trusted"]
            assert not (isinstance(t, ast.Constant) and t.value is True)


def test_np_load_numpy_default_refuses_pickles(tmp_path):
    """The one np.load reachable at run time (global_land_mask's packaged data) uses numpy's
    default allow_pickle=False, which refuses object arrays."""
    import numpy as np
    import pytest

    p = tmp_path / "x.npy"
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        np.load(p)
