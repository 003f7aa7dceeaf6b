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
#: Zarr format of every store: v2 with consolidated metadata, the format GDAL >= 3.4 (QGIS,
#: Debian 12's GDAL 3.6) reads; zarr-python 3 writes and reads it.
ZARR_FORMAT = 2
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
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Every temporary path soilresp creates starts with one of these prefixes, and cleanup removes
# only such paths (issue 17: a user's own ``.x.tmp`` / ``.x.old-1`` / ``.x.partial`` survive).
TMP_PREFIX = ".soilresp-tmp-"        # a file or store being written, renamed into place at the end
OLD_PREFIX = ".soilresp-old-"        # the previous store while a directory is swapped
PARTIAL_PREFIX = ".soilresp-partial-"  # a resumable Zarr write (kept across a crash)


def temp_kind(name: str) -> str | None:
    """'tmp', 'old' or 'partial' for a name soilresp's writers create, else None."""
    for kind, pre in (("tmp", TMP_PREFIX), ("old", OLD_PREFIX), ("partial", PARTIAL_PREFIX)):
        if name.startswith(pre) and len(name) > len(pre):
            return kind
    return None


def temp_dir(path: str | Path) -> Path:
    """A new private temporary folder beside ``path`` (soilresp's prefix; removed by cleanup)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent))


def _tmp_sibling(path: Path, suffix: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", suffix=suffix, dir=path.parent)
    # mkstemp makes the file private (0600); outputs get the usual permissions (0666 - umask)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    return Path(name)


_REPLACED = [0]


def replaced_count() -> int:
    """How many outputs this process has moved into place (lets a failed stage tell whether
    it changed anything)."""
    return _REPLACED[0]


def _replace(tmp: Path, path: Path) -> None:
    """Move ``tmp`` over ``path``; directories are swapped via a backup name."""
    _REPLACED[0] += 1
    if tmp.is_dir():
        old = None
        if path.exists():
            old = path.with_name(f"{OLD_PREFIX}{path.name}-{os.getpid()}")
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


_STORAGE_ENCODINGS = ("chunks", "preferred_chunks", "serializer", "compressors", "compressor",
                      "filters", "shards", "chunk_key_encoding")


def write_zarr(
    path: str | Path,
    ds: xr.Dataset,
    prov: dict[str, Any] | None = None,
    *,
    compute_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Write a Dataset to Zarr atomically and resumably.

    The store is built in ``.soilresp-partial-<name>/store.zarr`` beside ``path``: first the
    metadata and the in-memory (numpy) variables, then every dask block of every variable as
    its own task, each followed by a marker file in ``.soilresp-partial-<name>/done/``. A rerun with the same
    *resume key* (the stage key in ``prov`` plus the dataset's schema) keeps the finished
    blocks and computes only the missing ones. At the end the completion attribute is set
    and the store is renamed to ``path``. Blocks are computed lazily by the active dask
    scheduler (threads or a distributed client): no whole array is ever loaded.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from soilresp import cf

    ds = cf.annotate(ds)
    if prov is not None:
        ds.attrs[PROVENANCE_KEY] = json.dumps(prov, sort_keys=True, default=_jsonable)
    for v in ds.variables.values():  # a source file's storage encodings (chunks, Zarr v3
        for k in _STORAGE_ENCODINGS:  # codecs) can clash with the new chunks and format
            v.encoding.pop(k, None)
    work = partial_dir(path)
    store, done = work / "store.zarr", work / "done"
    key = _resume_key(ds, prov)
    keyfile = work / "key"
    try:
        if not (keyfile.is_file() and keyfile.read_text() == key and store.is_dir()):
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            # metadata + numpy-backed variables now; dask variables are left for the blocks
            ds.to_zarr(store, mode="w", consolidated=False, compute=False,
                       zarr_format=ZARR_FORMAT)
            done.mkdir()
            write_text_atomic(keyfile, key)
        _write_blocks(ds, store, done, compute_kwargs or {})
        mark_complete(store)
        _replace(store, path)
        shutil.rmtree(work, ignore_errors=True)
        for old in path.parent.glob(f"{OLD_PREFIX}{path.name}-*"):
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        # finished blocks are kept for a rerun with the same key; a key-less folder is junk
        if not keyfile.is_file():
            shutil.rmtree(work, ignore_errors=True)
        raise
    return path


def partial_dir(path: str | Path) -> Path:
    """Where :func:`write_zarr` builds ``path`` (kept after a crash so a rerun resumes)."""
    path = Path(path)
    return path.with_name(f"{PARTIAL_PREFIX}{path.name}")


def _resume_key(ds: xr.Dataset, prov: dict[str, Any] | None) -> str:
    """Same key = same data: the stage key (inputs, config, upstream, code) and the schema.

    Without a stage key the dask token of the data is used (random for non-deterministic
    graphs, which then simply do not resume).
    """
    import dask.base

    schema = {name: [list(v.dims), list(v.shape), str(v.dtype),
                     [list(c) for c in (v.chunks or ())], repr(sorted(v.attrs.items()))]
              for name, v in ds.variables.items()}
    stage_key = (prov or {}).get("stage_key") or (prov or {}).get("config_hash")
    parts = {"schema": schema, "attrs": repr(sorted(
        (k, v) for k, v in ds.attrs.items() if k != PROVENANCE_KEY)),
        "stage_key": stage_key or dask.base.tokenize(ds)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _block_slices(chunks: tuple[tuple[int, ...], ...], index: tuple[int, ...]) -> tuple[slice, ...]:
    out = []
    for c, i in zip(chunks, index):
        start = sum(c[:i])
        out.append(slice(start, start + c[i]))
    return tuple(out)


def _write_blocks(ds: xr.Dataset, store: Path, done: Path, compute_kwargs: dict[str, Any]) -> None:
    """Compute and write every dask block that has no marker yet (one task per block)."""
    import dask
    import dask.array as da
    import zarr
    from xarray.backends.zarr import encode_zarr_variable

    tasks = []
    for name, var in ds.variables.items():
        if not isinstance(var.data, da.Array):
            continue
        enc = encode_zarr_variable(var, name=name)
        target = zarr.open_array(str(store), path=str(name), mode="r")
        if np.dtype(enc.dtype) != target.dtype or tuple(enc.shape) != tuple(target.shape):
            raise StageError(f"{store}: variable '{name}' encodes as {enc.dtype}{enc.shape}, "
                             f"the store holds {target.dtype}{target.shape}")  # pragma: no cover
        arr = enc.data
        vdir = done / str(name)
        vdir.mkdir(exist_ok=True)
        finished = {p.name for p in vdir.iterdir()}
        blocks = arr.to_delayed(optimize_graph=False)
        for index in np.ndindex(*arr.numblocks):
            tag = ".".join(map(str, index)) or "0"
            if tag in finished:
                continue
            tasks.append(dask.delayed(_store_block, pure=False)(
                blocks[index], str(store), str(name), _block_slices(arr.chunks, index),
                str(vdir / tag)))
    if tasks:
        dask.compute(*tasks, **compute_kwargs)


def _store_block(block: np.ndarray, store: str, name: str, region: tuple[slice, ...],
                 marker: str) -> None:
    """Write one block into its (chunk-aligned) region, then record it as done."""
    import zarr

    arr = zarr.open_array(store, path=name, mode="r+")
    arr[region] = block
    Path(marker).touch()


def mark_complete(path: str | Path) -> None:
    """Set the completion attribute of a Zarr store (last step of every Zarr write), then
    consolidate a v2 store's metadata (``.zmetadata``, read by GDAL and xarray at once)."""
    import zarr

    zarr.open_group(str(path), mode="r+").attrs[COMPLETE_ATTR] = True
    if (Path(path) / ".zgroup").is_file():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr warns that v2 consolidation is not in the spec
            zarr.consolidate_metadata(str(path))


def annotate_store(path: str | Path) -> None:
    """Add the CF/GDAL metadata of :func:`soilresp.cf.annotate` to a store written by other
    means than :func:`write_zarr` (the driver cube's band-by-band writer): the grid-mapping
    and bounds variables, and the attributes of every variable. Data are not rewritten."""
    import zarr

    from soilresp import cf

    path = Path(path)
    ds = xr.open_zarr(path, consolidated=False)
    ann = cf.annotate(ds)
    new = [v for v in cf.HELPER_VARS if v in ann.variables and v not in ds.variables]
    if new:
        ann[new].drop_vars([c for c in ("lat", "lon", "year") if c in ann[new].variables]) \
            .to_zarr(path, mode="a", consolidated=False)
    g = zarr.open_group(str(path), mode="r+")
    for name, v in ann.variables.items():
        if name in g:
            g[name].attrs.update({k: _json_attr(a) for k, a in v.attrs.items()})


def _json_attr(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        return a.tolist()
    if isinstance(a, np.generic):
        return a.item()
    return a


def _consolidated(path: Path) -> bool:
    return (path / ".zmetadata").is_file()


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
    from soilresp import cf

    ds = xr.open_zarr(path, consolidated=_consolidated(path))
    # CF helpers (grid mapping, cell bounds) are metadata for other tools, not data
    ds = ds.drop_vars([v for v in cf.HELPER_VARS if v in ds.variables])
    # the store's listing order is the file system's: sort so every run sees the same order
    ds = ds[sorted(ds.data_vars)]
    if variables:
        missing = [v for v in variables if v not in ds]
        if missing:
            raise input_error(path, "required variable missing", column=missing[0])
    return ds


def zarr_provenance(path: str | Path) -> dict[str, Any] | None:
    ds = xr.open_zarr(path, consolidated=_consolidated(Path(path)))
    raw = ds.attrs.get(PROVENANCE_KEY)
    return json.loads(raw) if raw else None


def sidecar_path(path: str | Path) -> Path:
    """Provenance sidecar of a file that cannot hold metadata (CSV, PNG, HTML)."""
    path = Path(path)
    return path.with_name(path.name + ".prov.json")


def read_provenance(path: str | Path) -> dict[str, Any]:
    """Provenance of any soilresp output: Zarr, Parquet, JSON, or a file with a sidecar."""
    path = Path(path)
    if not path.exists():
        raise input_error(path, "no such file or folder")
    if path.suffix == ".zarr" or (path / "zarr.json").is_file() or (path / ".zattrs").is_file():
        try:
            prov = zarr_provenance(path)
        except Exception as e:  # noqa: BLE001 - any unreadable store is the user's input
            raise input_error(path, f"not a readable Zarr store ({type(e).__name__}: {e})") from None
    elif path.suffix == ".parquet":
        try:
            prov = table_provenance(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise input_error(path, f"not a readable Parquet file: {e}") from None
    elif sidecar_path(path).is_file():
        prov = read_json(sidecar_path(path))
    elif path.suffix == ".json":
        doc = read_json(path)
        prov = doc.get("provenance", doc) if isinstance(doc, dict) else None
    else:
        prov = None
    if not prov:
        raise input_error(path, "no provenance: not a soilresp output")
    return prov
