"""File contracts between stages: atomic writes, provenance, and readers that check.

Tables are Parquet (provenance JSON in the schema metadata under ``soilresp``), grids are
xarray Datasets in Zarr (provenance in the ``soilresp_provenance`` attribute), small
documents are JSON. Every writer writes to a temporary name in the same folder and renames,
so a reader never sees a half-written output; a Zarr store only counts as complete when its
root attribute ``soilresp_complete`` is true (set after the last chunk is written).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xarray as xr

from soilresp import __version__
from soilresp.errors import StageError, input_error

COMPLETE_ATTR = "soilresp_complete"
PROVENANCE_KEY = "soilresp_provenance"
_DEPENDENCIES = (
    "numpy", "scipy", "pandas", "xarray", "dask", "zarr", "numba", "scikit-learn", "pyarrow",
)


# --------------------------------------------------------------------------- provenance
def dependency_versions() -> dict[str, str]:
    out = {}
    for name in _DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - all are dependencies
            out[name] = "absent"
    return out


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, or of a directory tree (names and contents, sorted)."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(path)).encode())
                h.update(file_sha256(p).encode())
        return h.hexdigest()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def provenance(
    stage: str,
    *,
    config_hash: str | None = None,
    inputs: dict[str, str] | None = None,
    seed: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Provenance record stored with every output (issue 9: versions, config, inputs, seed)."""
    rec = {
        "stage": stage,
        "soilresp_version": __version__,
        "dependencies": dependency_versions(),
        "config_hash": config_hash,
        "inputs": inputs or {},
        "seed": seed,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if extra:
        rec.update(extra)
    return rec


# --------------------------------------------------------------------------- atomic writes
def _tmp_sibling(path: Path, suffix: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    return Path(name)


def _replace(tmp: Path, path: Path) -> None:
    """Move ``tmp`` over ``path``; directories are swapped via a backup name."""
    if tmp.is_dir():
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    tmp = _tmp_sibling(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise StageError(f"missing file: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise input_error(path, f"not valid JSON: {e}") from None


def write_table(path: str | Path, df: pd.DataFrame, prov: dict[str, Any] | None = None) -> Path:
    """Write a DataFrame as Parquet with provenance in the schema metadata, atomically."""
    path = Path(path)
    table = pa.Table.from_pandas(df, preserve_index=False)
    if prov is not None:
        meta = dict(table.schema.metadata or {})
        meta[PROVENANCE_KEY.encode()] = json.dumps(prov, sort_keys=True, default=_jsonable).encode()
        table = table.replace_schema_metadata(meta)
    tmp = _tmp_sibling(path)
    try:
        pq.write_table(table, tmp)
        _replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise StageError(f"missing table: {path} (run the stage that writes it first)")
    try:
        df = pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as e:
        raise input_error(path, f"not a readable Parquet file: {e}") from None
    if columns:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise input_error(path, "required column missing", column=missing[0])
    return df


def table_provenance(path: str | Path) -> dict[str, Any] | None:
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(PROVENANCE_KEY.encode())
    return json.loads(raw) if raw else None


def write_csv(path: str | Path, df: pd.DataFrame) -> Path:
    return write_text_atomic(path, df.to_csv(index=False))


def write_zarr(
    path: str | Path,
    ds: xr.Dataset,
    prov: dict[str, Any] | None = None,
    *,
    compute_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Write a Dataset to Zarr atomically: temp store, completion marker, rename.

    Dask-backed variables are computed chunk by chunk by ``to_zarr`` (no whole-array load).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    ds = ds.copy()
    if prov is not None:
        ds.attrs[PROVENANCE_KEY] = json.dumps(prov, sort_keys=True, default=_jsonable)
    for v in ds.variables.values():  # encodings from a source file can clash with new chunks
        v.encoding.pop("chunks", None)
        v.encoding.pop("preferred_chunks", None)
    try:
        delayed = ds.to_zarr(tmp, mode="w", consolidated=False, compute=False)
        delayed.compute(**(compute_kwargs or {}))
        mark_complete(tmp)
        _replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def mark_complete(path: str | Path) -> None:
    """Set the completion attribute of a Zarr store (last step of every Zarr write)."""
    import zarr

    zarr.open_group(str(path), mode="r+").attrs[COMPLETE_ATTR] = True


def is_complete(path: str | Path) -> bool:
    """True if ``path`` exists and, for a Zarr store, carries the completion attribute."""
    path = Path(path)
    if path.suffix == ".zarr":
        for meta in ("zarr.json", ".zattrs"):
            f = path / meta
            if f.is_file():
                try:
                    doc = json.loads(f.read_text())
                except (OSError, json.JSONDecodeError):
                    return False
                attrs = doc.get("attributes", doc) if meta == "zarr.json" else doc
                return bool(attrs.get(COMPLETE_ATTR))
        return False
    return path.exists()


def open_zarr(path: str | Path, variables: list[str] | None = None) -> xr.Dataset:
    """Open a complete soilresp Zarr store lazily (dask), checking the contract."""
    path = Path(path)
    if not is_complete(path):
        raise StageError(f"missing or incomplete grid: {path} (run the stage that writes it first)")
    ds = xr.open_zarr(path, consolidated=False)
    if variables:
        missing = [v for v in variables if v not in ds]
        if missing:
            raise input_error(path, "required variable missing", column=missing[0])
    return ds


def zarr_provenance(path: str | Path) -> dict[str, Any] | None:
    ds = xr.open_zarr(path, consolidated=False)
    raw = ds.attrs.get(PROVENANCE_KEY)
    return json.loads(raw) if raw else None


def read_provenance(path: str | Path) -> dict[str, Any] | None:
    """Provenance of any soilresp output: Zarr, Parquet, or a JSON document/sidecar."""
    path = Path(path)
    if path.suffix == ".zarr":
        return zarr_provenance(path)
    if path.suffix == ".parquet":
        return table_provenance(path)
    if path.suffix == ".json":
        doc = read_json(path)
        return doc.get("provenance", doc) if isinstance(doc, dict) else None
    side = path.with_suffix(path.suffix + ".json")
    if side.is_file():
        return read_provenance(side)
    raise input_error(path, "no provenance: not a soilresp output")
