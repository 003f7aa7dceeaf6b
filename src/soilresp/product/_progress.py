"""Task-level progress of dask computations reported through ``ctx.progress``."""

from __future__ import annotations

import contextlib
import time

from dask.callbacks import Callback


class _TaskProgress(Callback):
    def __init__(self, name: str, progress, every: float = 0.25):
        super().__init__()
        self.name, self.progress, self.every, self._last = name, progress, every, 0.0

    def _state(self, state):
        done = len(state["finished"])
        return done, done + sum(len(state[k]) for k in ("ready", "waiting", "running"))

    def _start_state(self, dsk, state):
        self.progress(self.name, *self._state(state))

    def _posttask(self, key, result, dsk, state, worker_id):
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.progress(self.name, *self._state(state))

    def _finish(self, dsk, state, errored):
        if not errored:
            d, t = self._state(state)
            self.progress(self.name, t, t)


@contextlib.contextmanager
def task_progress(progress, name: str):
    """Report (name, tasks done, tasks total) while dask computes on the local schedulers
    (threads, synchronous); on a distributed cluster the dashboard shows the tasks and only
    the start and end are reported."""
    progress(name, 0, 1)
    with _TaskProgress(name, progress):
        yield
    progress(name, 1, 1)
