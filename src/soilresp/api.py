"""The Python API: a run of the pipeline from a configuration, stage by stage.

>>> import soilresp
>>> run = soilresp.Run("myrun.toml")          # a TOML path, a dict or a Config
>>> run.stage("field")                         # one stage (upstream must have run)
'ran'
>>> run.run()                                  # every stage not yet up to date
{'field': 'skipped', 'drivers': 'ran', ...}
>>> rs = run.open("product", "rs.zarr")        # an output: xarray (Zarr), pandas (Parquet/CSV), dict (JSON)

This is what ``soilresp run`` does (same stages, same files, same rerun-only-what-changed
rules; docs/architecture.md), minus the progress bars. Dask work runs where the config's
``[run] scheduler`` says, except that a ``distributed.Client`` passed as ``client`` -- or
already started in the session while the scheduler is the default ``"threads"`` -- is used
instead of local threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

__all__ = ["Run"]


class Run:
    """A soilresp run: a validated configuration and its output folder.

    Parameters
    ----------
    config : path of a TOML file, a dict of the same content (relative paths then resolve
        against ``base_dir``), or a :class:`soilresp.config.Config`.
    client : optional ``dask.distributed.Client`` to compute on.
    progress : optional ``progress(name, done, total)`` callback.
    base_dir : for a dict ``config``: the folder relative paths resolve against (default ".").
    """

    def __init__(self, config: str | Path | dict | Any, *, client=None,
                 progress: Callable[[str, int, int], None] | None = None,
                 base_dir: str | Path = ".") -> None:
        from soilresp.config import Config, config_from_dict, load_config
        from soilresp.pipeline import Context

        if isinstance(config, Config):
            cfg = config
        elif isinstance(config, dict):
            cfg = config_from_dict(config, base_dir=base_dir, source="Run(config=dict)")
        else:
            cfg = load_config(config)
        self.config = cfg
        self.client = client
        self._ctx = Context(cfg, progress or (lambda *_: None))

    # ---------------------------------------------------------------- what there is
    @property
    def output_dir(self) -> Path:
        """The run's output folder (``[run] output_dir``)."""
        return self.config.output_dir

    @staticmethod
    def stages() -> list[str]:
        """Stage names in run order."""
        from soilresp.pipeline import STAGES

        return list(STAGES)

    def describe(self, stage: str) -> dict[str, Any]:
        """What ``stage`` does, what it reads and writes, and whether it is up to date."""
        from soilresp.pipeline import is_fresh

        st = self._stage(stage)
        return {"stage": st.name, "doc": st.doc, "upstream": list(st.upstream),
                "config_sections": list(st.sections),
                "outputs": [str(self.output_dir / st.name / o) for o in st.outputs],
                "fresh": is_fresh(self.config, st)}

    def outputs(self, stage: str) -> dict[str, Path]:
        """The declared output files of ``stage`` (name -> path), whether written yet or not."""
        st = self._stage(stage)
        return {o: self.output_dir / st.name / o for o in st.outputs}

    @property
    def notes(self) -> list[str]:
        """One-line messages of the stages run so far (e.g. tallied fitting warnings)."""
        return list(self._ctx.notes)

    # ---------------------------------------------------------------- running
    def stage(self, name: str, *, force: bool = False) -> str:
        """Run one stage; returns "ran" or "skipped" (up to date). Its upstream stages must
        have run (a :class:`soilresp.errors.StageError` says which did not)."""
        return self.run([name], force=force)[name]

    def run(self, stages: list[str] | None = None, *, force: bool = False) -> dict[str, str]:
        """Run ``stages`` (default: all, in order); returns {stage: "ran" | "skipped"}."""
        from soilresp.pipeline import compute_context, run_all

        run_cfg = self.config.run
        with compute_context(run_cfg.scheduler, run_cfg.workers, client=self.client):
            return run_all(self._ctx, list(stages) if stages else None, force=force)

    # ---------------------------------------------------------------- reading
    def open(self, stage: str, output: str | None = None):
        """Open an output of ``stage``: Zarr -> lazy ``xarray.Dataset``, Parquet/CSV ->
        ``pandas.DataFrame``, JSON -> dict. ``output`` defaults to the stage's first one."""
        import pandas as pd

        from soilresp import io

        st = self._stage(stage)
        name = output or st.outputs[0]
        path = self.output_dir / st.name / name
        if path.suffix == ".zarr":
            return io.open_zarr(path)
        if path.suffix == ".parquet":
            return io.read_table(path)
        if path.suffix == ".csv":
            return pd.read_csv(path)
        if path.suffix == ".json":
            return io.read_json(path)
        return path

    def _stage(self, name: str):
        from soilresp.errors import StageError
        from soilresp.pipeline import STAGES

        if name not in STAGES:
            raise StageError(f"unknown stage {name!r}; stages are {list(STAGES)}")
        return STAGES[name]

    def __repr__(self) -> str:
        return f"Run(output_dir={str(self.output_dir)!r}, stages={self.stages()})"
