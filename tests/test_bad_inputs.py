"""Every case of the bad-input corpus (tests/bad_inputs/corpus.py) gives ONE clear error line
naming the file and the culprit, exits with status 2, and leaves existing outputs untouched."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "bad_inputs"))
import corpus  # noqa: E402

from soilresp.cli import app  # noqa: E402

STAGES_UP_TO_MODELS = ["field", "drivers", "biomes", "sites", "models"]

pytestmark = pytest.mark.slow   # > 20 s; still runs in CI


def tree_digest(run: Path) -> dict[str, str]:
    """SHA-256 of every file below a run (the append-only run log aside)."""
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file() and p.name != "log.jsonl"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("badinputs")
    b = root / "base"
    b.mkdir()
    corpus.make_base(b)
    args = ["run", str(b / "base.toml")] + sum((["--stage", s] for s in STAGES_UP_TO_MODELS), [])
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return root, b


def test_corpus_has_at_least_130_cases_of_every_kind():
    assert len(corpus.CASES) >= 130
    assert len({c.name for c in corpus.CASES}) == len(corpus.CASES)
    kinds = {c.kind for c in corpus.CASES}
    assert {"field table", "driver raster", "config", "model file", "output folder", "network"} <= kinds, kinds


class _Hang(Exception):
    pass


def _alarm(*_):
    raise _Hang()


@pytest.mark.parametrize("case", corpus.CASES, ids=lambda c: c.name)
def test_bad_input_is_named_and_nothing_changes(case, base):
    root, b = base
    corpus.MARKER_NAME.unlink(missing_ok=True)
    cfg = corpus.write_case(case, root / "cases", b)
    run = root / "cases" / case.name / "run"
    for st in case.pre:
        pre = CliRunner().invoke(app, ["run", str(cfg), "--stage", st])
        assert pre.exit_code == 0, pre.output
    before = tree_digest(run)
    argv = [a.replace("{case}", str(cfg.parent)) for a in case.argv] or ["run", str(cfg), "--stage", case.stage]
    import signal

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(120)   # none may hang (a named pipe used to block the reader forever)
    try:
        res = CliRunner().invoke(app, argv, catch_exceptions=False)
    except _Hang:
        pytest.fail(f"case {case.name} hung for 120 s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    out = res.output.strip()
    assert res.exit_code == 2, out
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, out
    msg = lines[0]
    for s in case.expect:
        assert s in msg, f"{s!r} not in: {msg}"
    assert tree_digest(run) == before, "existing outputs changed"
    assert not corpus.MARKER_NAME.exists(), "code from a model file was executed"
