"""Download a pinned SRDB release, or take a local copy offline (``soilresp fetch srdb``).

SRDB: github.com/bpbond/srdb (MIT licence; Bond-Lamberty & Thomson 2010). Its README asks
analyses to record the release (tag/commit), download date and URL: the JSON manifest
written next to the file (:data:`MANIFEST_NAME`) holds exactly that, and
:func:`identify_release` puts it into the provenance of the field outputs.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
from pathlib import Path

from soilresp.errors import input_error
from soilresp.io import file_sha256, write_json

log = logging.getLogger("soilresp.field")

SRDB_REPOSITORY = "https://github.com/bpbond/srdb"
_RAW = "https://raw.githubusercontent.com/bpbond/srdb/{ref}/srdb-data.csv"

#: Pinned releases: name -> url, sha256 of ``srdb-data.csv``, git ref and a note.
SRDB_RELEASES: dict[str, dict[str, str]] = {
    "v20200220": {
        "url": _RAW.format(ref="697e404db2"),
        "sha256": "bf30222463a8b2441801b366c6b052863ab66f6bc082cc56098ec5f109086846",
        "ref": "697e404db2",
        "note": "srdb-data.csv as of 2020-02-20 (7318 records), the release contemporary "
        "with Huang et al. 2020",
    },
}
DEFAULT_SRDB_VERSION = "v20200220"
MANIFEST_NAME = "srdb-manifest.json"
FILE_NAME = "srdb-data.csv"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _looks_like_srdb(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(4096)
    first = head.replace(b"\r", b"\n").split(b"\n", 1)[0]
    if b"Rs_annual" not in first or b"Latitude" not in first:
        raise input_error(path, "not an SRDB srdb-data.csv (header lacks Rs_annual/Latitude)",
                          row=1)


def fetch_srdb(
    dest_dir: str | Path,
    version: str = DEFAULT_SRDB_VERSION,
    from_path: str | Path | None = None,
    *,
    allow_unpinned: bool = False,
) -> Path:
    """Put SRDB ``srdb-data.csv`` into ``dest_dir`` and record what it is.

    * ``from_path`` given: copy that local file (offline). Its SHA-256 is compared with the
      pinned releases; a match is recorded as that release, anything else as a local,
      unpinned copy (the checksum is recorded either way).
    * otherwise: download ``version`` from :data:`SRDB_RELEASES` with
      :func:`soilresp.download.fetch_url` (the one downloader: URL rules, verified resume,
      size cap), checking its SHA-256 (a mismatch is an error and no file is kept). A tag or commit not
      in the table is downloaded only with ``allow_unpinned=True`` and recorded as unpinned.

    Writes ``dest_dir/srdb-manifest.json`` (release, url, sha256, date, source) and returns
    the path of ``dest_dir/srdb-data.csv``.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / FILE_NAME
    if from_path is not None:
        src = Path(from_path).expanduser()
        if not src.is_file():
            raise input_error(src, "file not found")
        _looks_like_srdb(src)
        sha = file_sha256(src)
        match = next((k for k, v in SRDB_RELEASES.items() if v["sha256"] == sha), None)
        if src.resolve() != target.resolve():
            from soilresp import io

            tmp = io._tmp_sibling(target)
            try:
                shutil.copyfile(src, tmp)
                tmp.replace(target)
            finally:
                tmp.unlink(missing_ok=True)
        manifest = {
            "release": match or "unpinned",
            "url": SRDB_RELEASES[match]["url"] if match else None,
            "sha256": sha,
            "pinned": match is not None,
            "source": f"local copy of {src}",
            "fetched": _now(),
            "file": FILE_NAME,
            "licence": "MIT, " + SRDB_REPOSITORY,
        }
        if match is None:
            log.warning("%s matches no pinned SRDB release; recorded as unpinned (sha256 %s)",
                        src, sha)
    else:
        from soilresp.download import fetch_url
        from soilresp.errors import InputError

        if version in SRDB_RELEASES:
            url, known = SRDB_RELEASES[version]["url"], SRDB_RELEASES[version]["sha256"]
        elif allow_unpinned:
            url, known = _RAW.format(ref=version), None
        else:
            raise input_error(
                "soilresp fetch srdb",
                f"unknown SRDB release {version!r}; pinned: {', '.join(SRDB_RELEASES)} "
                "(or pass --from PATH with a local copy)",
            )
        try:
            got = fetch_url(url, dest_dir, sha256=known, name=FILE_NAME, manifest=False)
        except InputError as e:
            if "checksum" in str(e):
                raise
            raise input_error(url, f"download failed ({str(e).removeprefix(url + ': ')}); "
                              "retry, or use --from PATH with a local copy") from None
        target = Path(got)
        sha = file_sha256(target)
        manifest = {
            "release": version,
            "url": url,
            "sha256": sha,
            "pinned": known is not None,
            "source": "download",
            "fetched": _now(),
            "file": FILE_NAME,
            "licence": "MIT, " + SRDB_REPOSITORY,
        }
    write_json(dest_dir / MANIFEST_NAME, manifest)
    return target


def identify_release(path: str | Path, sha256: str | None = None) -> dict | None:
    """Which SRDB release a file is: its manifest (same folder, same checksum) or the pinned
    table (by checksum). ``None`` when unknown."""
    path = Path(path)
    sha = sha256 or file_sha256(path)
    man = path.with_name(MANIFEST_NAME)
    if man.is_file():
        try:
            doc = json.loads(man.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = None
        if isinstance(doc, dict) and doc.get("sha256") == sha and doc.get("file") == path.name:
            return doc
    for name, rel in SRDB_RELEASES.items():
        if rel["sha256"] == sha:
            return {"release": name, "url": rel["url"], "sha256": sha, "pinned": True}
    return None
