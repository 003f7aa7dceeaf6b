"""One writer per output folder: an advisory lock on ``<output_dir>/.soilresp/run.lock``.

Two runs writing into one folder corrupt each other (issue 17: a drivers cube with 6 of 42
variables marked complete; ``GroupNotFoundError`` tracebacks). Every writing command holds
this lock for its whole run; a second writer fails at once with a message naming the holder
(pid, host, start time). Read-only commands (``report`` of an existing run, ``provenance``,
``evaluate``) do not take it.

The lock is ``filelock.FileLock`` (an OS ``flock`` on the lock file): the kernel releases it
when the holding process dies, so the lock of a run killed with ``kill -9`` is free at once
and simply taken over. The holder's identity is written to ``run.lock.json`` after the lock
is acquired; a stale identity file left by a killed run is overwritten. Where ``flock`` does
not work (some network file systems) the lock falls back to
``filelock.SoftFileLock`` (the file's existence), and a lock whose recorded holder is a
dead process on this host is taken over after checking it is still the same stale record.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from soilresp.errors import SoilrespError

LOCK_NAME = "run.lock"


class LockedError(SoilrespError):
    """Another soilresp process is writing into the same output folder."""


def _holder_text(info: dict | None) -> str:
    if not info:
        return "another process (holder unknown)"
    t = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(float(info.get("started", 0))))
    return f"soilresp pid {info.get('pid')} on host {info.get('host')} (started {t}, command {info.get('command')!r})"


def read_holder(folder: Path) -> dict | None:
    """The recorded holder of ``folder``'s lock, or None."""
    try:
        return json.loads((Path(folder) / ".soilresp" / f"{LOCK_NAME}.json").read_text())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(info: dict | None) -> bool:
    """A recorded holder that is a dead process on this host."""
    return bool(info) and info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", -1)))


@contextlib.contextmanager
def output_lock(folder: Path, command: str = "run"):
    """Hold the writer lock of ``folder`` (created if needed) for the ``with`` body.

    Raises :class:`LockedError` at once (no waiting) if another live process holds it.
    """
    from filelock import FileLock, SoftFileLock, Timeout

    from soilresp.pipeline import check_writable

    folder = Path(folder)
    check_writable(folder)
    meta = folder / ".soilresp"
    lockfile, infofile = meta / LOCK_NAME, meta / f"{LOCK_NAME}.json"
    lock = FileLock(str(lockfile), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise LockedError(f"{folder}: output folder is in use by {_holder_text(read_holder(folder))}; "
                          f"wait for it to finish, or use another run.output_dir (lock {lockfile})") from None
    except NotImplementedError:  # no flock here: existence-based lock with stale-holder takeover
        lock = SoftFileLock(str(lockfile) + ".soft", timeout=0)
        try:
            lock.acquire()
        except Timeout:
            info = read_holder(folder)
            if not _is_stale(info):
                raise LockedError(f"{folder}: output folder is in use by {_holder_text(info)}; wait for it to "
                                  f"finish, or use another run.output_dir (lock {lockfile}.soft)") from None
            if read_holder(folder) == info:      # still the same dead holder: take over
                Path(str(lockfile) + ".soft").unlink(missing_ok=True)
            lock.acquire()
    try:
        from soilresp import io

        io.write_json(infofile, {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                                 "command": command})
        yield
    finally:
        with contextlib.suppress(OSError):
            infofile.unlink()
        lock.release()
