"""One writer per output folder (issue 17: two runs into one folder corrupted each other)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from soilresp import lock as L
from soilresp.lock import LockedError, output_lock


def test_second_writer_fails_at_once_naming_the_holder(tmp_path):
    with output_lock(tmp_path / "run", "run field"):
        t0 = time.perf_counter()
        with pytest.raises(LockedError) as e:
            with output_lock(tmp_path / "run", "run drivers"):
                pass
        assert time.perf_counter() - t0 < 2
    msg = str(e.value)
    assert f"pid {os.getpid()}" in msg and socket.gethostname() in msg and "started 2" in msg, msg
    assert "run field" in msg and str(tmp_path / "run") in msg
    with output_lock(tmp_path / "run"):   # released: free again
        pass


def test_stale_holder_record_of_a_killed_run_is_taken_over(tmp_path):
    run = tmp_path / "run"
    (run / ".soilresp").mkdir(parents=True)
    (run / ".soilresp" / "run.lock").write_text("")
    (run / ".soilresp" / "run.lock.json").write_text(json.dumps(
        {"pid": 2 ** 22 + 17, "host": socket.gethostname(), "started": 1.0, "command": "run"}))
    with output_lock(run):
        assert L.read_holder(run)["pid"] == os.getpid()
    assert L.read_holder(run) is None


def _no_flock(monkeypatch):
    import filelock

    def refuse(self, *a, **k):
        raise NotImplementedError("no flock")

    monkeypatch.setattr(filelock.FileLock, "acquire", refuse)


def test_soft_lock_fallback_takes_over_only_a_dead_holder(tmp_path, monkeypatch):
    """Where flock is unavailable (some network file systems) a dead holder on this host is
    taken over, a live one is refused."""
    _no_flock(monkeypatch)
    run = tmp_path / "run"
    (run / ".soilresp").mkdir(parents=True)
    soft = run / ".soilresp" / "run.lock.soft"
    info = run / ".soilresp" / "run.lock.json"
    soft.write_text("")
    info.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": 1.0,
                                "command": "run"}))
    with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
        with output_lock(run):
            pass
    info.write_text(json.dumps({"pid": 2 ** 22 + 17, "host": socket.gethostname(), "started": 1.0,
                                "command": "run"}))
    with output_lock(run):
        assert L.read_holder(run)["pid"] == os.getpid()
    assert not soft.exists()


def _env():
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(cfg: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "soilresp.cli", "run", str(cfg)], cwd=cfg.parent, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


@pytest.mark.slow
def test_two_concurrent_runs_one_refuses_other_equals_lone_run(tiny_reference):
    """The lone run is the shared reference run (conftest.tiny_reference: `soilresp run` of
    the same config, alone in its folder)."""
    from _tinyworld import assert_same_outputs, leftovers, write_config

    root = tiny_reference[0]
    cfg = write_config(root, "lock_shared.toml", output_dir="lock_shared")
    shared = root / "lock_shared"
    shared.mkdir()
    for n in (".notes.tmp", ".x.old-1", ".y.partial"):   # a user's files in the folder survive
        (shared / n).write_text("user")
    a = _run(cfg)
    t0 = time.time()
    while L.read_holder(shared) is None:
        assert a.poll() is None and time.time() - t0 < 120, "first run never took the lock"
        time.sleep(0.05)
    t1 = time.time()
    b = _run(cfg)
    _, berr = b.communicate(timeout=120)
    took = time.time() - t1
    assert a.poll() is None, "the first run should still be running"
    msg = berr.decode().strip()
    assert b.returncode == 2 and "Traceback" not in msg, msg
    assert "in use by soilresp pid" in msg and f"pid {a.pid}" in msg and socket.gethostname() in msg, msg
    assert took < 60, took   # at once: python start-up only, no waiting for the lock
    _, aerr = a.communicate(timeout=900)
    assert a.returncode == 0, aerr.decode()
    assert sorted(leftovers(shared)) == sorted([".notes.tmp", ".x.old-1", ".y.partial"])  # nothing of ours
    for n in (".notes.tmp", ".x.old-1", ".y.partial"):   # the user's files survived untouched
        assert (shared / n).read_text() == "user"
        (shared / n).unlink()
    assert_same_outputs(root / "reference", shared)
