"""Write requirements-lock.txt: the exact versions, in the current environment, of every
package soilresp[test] (which includes [all]) depends on, directly or not.

Run it in the environment the test suite passed in:  python .ci/make_lock.py
CI and the README's test command install with ``pip install -c requirements-lock.txt``.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _root_requirements(extras: set[str]) -> list[str]:
    """soilresp's own requirements, read from pyproject.toml (not from the installed
    metadata, which may be an older checkout's)."""
    import tomllib

    proj = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    reqs, todo, seen = list(proj["dependencies"]), list(extras), set()
    while todo:
        e = todo.pop()
        if e in seen:
            continue
        seen.add(e)
        for line in proj["optional-dependencies"].get(e, []):
            r = Requirement(line)
            if _norm(r.name) == "soilresp":
                todo += list(r.extras)
            else:
                reqs.append(line)
    return reqs


def closure(extras: set[str]) -> dict[str, str]:
    env = default_environment()
    seen: dict[str, str] = {}
    todo = [(Requirement(r).name, frozenset(Requirement(r).extras)) for r in _root_requirements(extras)]
    done = set()
    while todo:
        name, ex = todo.pop()
        if (name, ex) in done:
            continue
        done.add((name, ex))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a marker-excluded or optional dependency that is not installed
        seen[_norm(dist.metadata["Name"])] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None:
                ok = any(req.marker.evaluate({**env, "extra": e}) for e in (ex or {""}))
                if not ok:
                    continue
            todo.append((req.name, frozenset(req.extras)))
    return seen


if __name__ == "__main__":
    pins = closure({"test"})
    out = Path(__file__).resolve().parents[1] / "requirements-lock.txt"
    head = ("# Exact versions the test suite passed with (python "
            f"{sys.version_info.major}.{sys.version_info.minor}); made by .ci/make_lock.py.\n"
            "# Install: pip install -c requirements-lock.txt -e \".[test]\"\n")
    out.write_text(head + "".join(f"{k}=={v}\n" for k, v in sorted(pins.items())))
    print(f"{len(pins)} pins -> {out}")
