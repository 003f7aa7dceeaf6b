"""Downloads of public driver data (``soilresp fetch ...``), with a manifest.

* :func:`fetch_url` - one file over HTTP(S): streamed to ``<name>.part``, **resumed** with an
  HTTP ``Range`` request after an interruption (automatically up to ``retries`` times, or
  on the next call), SHA-256 **verified** when a checksum is known (a mismatch deletes the
  file and is an error), then renamed into place. A file already present with the expected
  checksum is not downloaded again. The one place soilresp downloads (``fetch srdb`` uses it
  too), so its rules hold everywhere (issue 17):

  * only ``http``/``https`` URLs without ``..`` segments, and a plain file name;
  * a partial file is resumed only if its sidecar ``<name>.part.json`` (written when a
    download is interrupted) matches it: same URL, same size and same SHA-256 of the bytes
    so far, same total size announced by the server; anything else (a stale or foreign
    ``.part``, a killed download) starts over;
  * a size cap (``max_bytes``, default :data:`MAX_BYTES`), checked on the announced size and
    while streaming;
  * a full disk or an unwritable folder is a one-line error naming the folder.
* :data:`CATALOGUE` - named public files (URL, pinned SHA-256 where one is known, licence).
* :func:`fetch_modis` - MODIS granules through NASA's ``earthaccess`` (the user's Earthdata
  login: ``EARTHDATA_USERNAME`` / ``EARTHDATA_PASSWORD`` or ``~/.netrc``).

Every fetch records what it got in ``<dest>/manifest.json``: for each file its url, size
(bytes), sha256, UTC time, and whether the checksum was pinned or resumed. Offline, or
with an unreachable server, the error says so and names the URL.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from soilresp.errors import input_error
from soilresp.io import file_sha256, write_json

MANIFEST = "manifest.json"
MAX_BYTES = 20 * 1024 ** 3   # 20 GiB: larger than any file the catalogue names
Progress = Callable[[str, int, int], None]

_GH = "https://raw.githubusercontent.com"
#: Named public files: ``soilresp fetch climate NAME``. ``sha256`` None = not pinned (the
#: provider updates the file in place); the checksum actually fetched is recorded anyway.
CATALOGUE: dict[str, dict[str, str | None]] = {
    "udel-air": {
        "url": "https://downloads.psl.noaa.gov/Datasets/udel.airt.precip/air.mon.mean.v501.nc",
        "sha256": None,
        "description": "University of Delaware air temperature v5.01, monthly 0.5 deg, 1900-2017 (degC)",
        "licence": "NOAA PSL: free use with acknowledgement (Willmott & Matsuura)",
    },
    "udel-precip": {
        "url": "https://downloads.psl.noaa.gov/Datasets/udel.airt.precip/precip.mon.total.v501.nc",
        "sha256": None,
        "description": "University of Delaware precipitation v5.01, monthly totals 0.5 deg (cm)",
        "licence": "NOAA PSL: free use with acknowledgement (Willmott & Matsuura)",
    },
    "ipcc-climate-zones": {
        "url": f"{_GH}/colinahill/ipcc_climate_zones/8344cd5911/data/ipcc_climate_zones.nc",
        "sha256": "38a8362332d7b0b3012f2733320940b3e8c4129698ad7e5671af1907ded2c5f2",
        "description": "IPCC 2019 climate zones, 0.5 deg (codes 1-12), for [biomes] climate_zones",
        "licence": "MIT (colinahill/ipcc_climate_zones)",
    },
    "modis-lc-2010": {
        "url": f"{_GH}/jinshijian/ESSD/e2e1184550/data/MODIS_LC_2010.tif",
        "sha256": "068fed60917175274600012f306a85d28334c4d002605b1be1328a0f84aea738",
        "description": "MODIS IGBP land cover 2010 at 0.1 deg (for [biomes] land_cover)",
        "licence": "MODIS data: public domain (NASA LP DAAC)",
    },
    "fractional-land": {
        "url": f"{_GH}/bpbond/srdb/8760ae5f53/R/fractional_land.0.5-deg.nc",
        "sha256": "dc5c80a47ff1ea396036e34b4e26c72b428b7e2e3ef4c0df451a39373196e6ac",
        "description": "land fraction 0-1 per 0.5 deg cell (lon 0-360)",
        "licence": "MIT (bpbond/srdb)",
    },
    "udel-climatology": {
        "url": f"{_GH}/jinshijian/ESSD/e2e1184550/data/summarized_climate.csv",
        "sha256": "860c9246f5f55309866d68d00d3bced07c0b1742d57887dcabeedcfe9c4c86bc",
        "description": "UDel mean annual temperature / precipitation per 0.5 deg land cell (CSV)",
        "licence": "University of Delaware data (acknowledge Willmott & Matsuura)",
        "name": "udel_MAT_MAP_0.5deg_climatology.csv",
    },
    "jian2020-rc": {
        "url": f"{_GH}/jinshijian/SoilRespirationPartitioning/c0072c04de/outputs/"
        "global_Rt_contribution_to_Rs2.nc",
        "sha256": "c67dafc42e6f77bd5574f058d84842698930bfe509228442bcec954bea18267c",
        "description": "Jian et al. 2020 static 0.5 deg grids (MAT, MAP, biomass, soil, EVI stored "
        "x 1e-4, root contribution to Rs); dims (lon, lat), see docs/realdata.md",
        "licence": "MIT (jinshijian/SoilRespirationPartitioning)",
    },
}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _session():
    import requests

    s = requests.Session()
    s.headers["User-Agent"] = "soilresp (https://github.com/soilresp)"
    return s


def record(dest: Path, name: str, entry: dict) -> Path:
    """Add or replace ``name`` in ``dest/manifest.json`` (atomic rewrite)."""
    man = Path(dest) / MANIFEST
    doc = {"files": {}}
    if man.is_file():
        try:
            doc = json.loads(man.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = {"files": {}}
    doc.setdefault("files", {})[name] = entry
    return write_json(man, doc)


def check_url(url: str, name: str | None = None) -> str:
    """The file name a download of ``url`` gets; one-line errors for what is refused."""
    from urllib.parse import unquote

    try:
        u = urlparse(str(url))
    except ValueError as e:
        raise input_error(url, f"not a URL ({e})") from None
    if u.scheme not in ("http", "https") or not u.netloc:
        raise input_error(url, f"only http:// and https:// URLs are fetched (scheme {u.scheme or 'none'!r})")
    if any(seg in ("..", ".") for seg in unquote(u.path).replace("\\", "/").split("/")):
        raise input_error(url, "URL path holds '..' or '.' segments; give the file's plain URL")
    name = name or Path(unquote(u.path)).name or "download"
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith(".") or "\0" in name:
        raise input_error(url, "unsafe file name for the download", value=name)
    return name


def _part_state(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _save_part_state(part: Path, url: str, total: int | None) -> None:
    if part.is_file():
        write_json(_part_state(part), {"url": url, "size": part.stat().st_size,
                                       "sha256": file_sha256(part), "total": total})


def _valid_partial(part: Path, url: str) -> bool:
    """A partial file may be resumed only if its recorded state matches it byte for byte."""
    if not part.is_file():
        return False
    try:
        st = json.loads(_part_state(part).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(st, dict) and st.get("url") == url and st.get("size") == part.stat().st_size
            and st.get("sha256") == file_sha256(part))


def fetch_url(url: str, dest: str | Path, *, sha256: str | None = None, name: str | None = None,
              retries: int = 3, timeout: float = 60.0, chunk: int = 1 << 16,
              progress: Progress | None = None, session=None, max_bytes: int = MAX_BYTES,
              manifest: bool = True) -> Path:
    """Download ``url`` into ``dest`` (resumable, verified, size-capped); returns the file's path."""
    dest = Path(dest)
    name = check_url(url, name)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        return _fetch(url, dest, name, sha256, retries, timeout, chunk, progress, session, max_bytes, manifest)
    except OSError as e:   # disk full, read-only or missing folder, permissions
        raise input_error(dest, f"cannot write the download of {url}: {e.strerror or e}") from None


def _fetch(url, dest, name, sha256, retries, timeout, chunk, progress, session, max_bytes, manifest) -> Path:
    import requests

    target, part = dest / name, dest / f"{name}.part"
    want = sha256.lower().removeprefix("sha256:") if sha256 else None
    if target.is_file() and (want is None or file_sha256(target) == want):
        sha = file_sha256(target)
        if manifest:
            record(dest, name, {"url": url, "size": target.stat().st_size, "sha256": sha,
                                "pinned": want is not None, "fetched": _now(), "source": "already present"})
        return target
    known_total = None
    if part.exists() and not _valid_partial(part, url):
        part.unlink(missing_ok=True)   # stale or foreign partial file: never mixed into the download
    elif part.exists():
        known_total = json.loads(_part_state(part).read_text()).get("total")
    _part_state(part).unlink(missing_ok=True)
    sess = session or _session()
    resumed_from = part.stat().st_size if part.is_file() else 0
    attempt = 0
    box = {"total": known_total}
    while True:
        try:
            done = _get(sess, url, part, timeout, chunk, progress, name, max_bytes, box)
            if done:
                break
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as e:
            if attempt >= retries:
                have = part.stat().st_size if part.is_file() else 0
                _save_part_state(part, url, box["total"])
                offline = isinstance(e, requests.ConnectionError) and have == 0
                raise input_error(url, ("cannot connect (offline or server unreachable): " if offline
                                        else f"download interrupted at {have} bytes; rerun to resume: ")
                                  + f"{type(e).__name__}") from None
            attempt += 1
        except requests.exceptions.InvalidURL as e:
            raise input_error(url, f"invalid URL ({e})") from None
    sha = file_sha256(part)
    if want is not None and sha != want:
        part.unlink(missing_ok=True)
        raise input_error(url, f"checksum mismatch: expected sha256 {want}, got {sha}; the "
                          "partial file was deleted")
    os.replace(part, target)
    if manifest:
        record(dest, name, {"url": url, "size": target.stat().st_size, "sha256": sha,
                            "pinned": want is not None, "fetched": _now(), "source": "download",
                            "resumed_from": resumed_from})
    return target


def _too_big(part: Path, url: str, n: int, max_bytes: int):
    part.unlink(missing_ok=True)
    return input_error(url, f"download is larger than the size cap ({n} > {max_bytes} bytes); refused")


def _get(sess, url, part: Path, timeout, chunk, progress, name, max_bytes: int = MAX_BYTES,
         box: dict | None = None) -> bool:
    """One GET (a Range request when a partial file exists). True when the file is whole."""
    box = box if box is not None else {"total": None}
    have = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with sess.get(url, headers=headers, stream=True, timeout=timeout) as r:
        if r.status_code == 416 and have:  # nothing left to send: the partial file is whole
            return True
        if r.status_code >= 400:
            raise input_error(url, f"HTTP {r.status_code} {r.reason}")
        if have and r.status_code == 206:
            m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", r.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                raise input_error(url, f"server resumed at the wrong offset ({r.headers.get('Content-Range')})")
            if m.group(2) != "*" and box["total"] is not None and int(m.group(2)) != box["total"]:
                part.unlink(missing_ok=True)   # the file changed on the server: the partial bytes are stale
                raise input_error(url, f"file size on the server changed ({box['total']} -> {m.group(2)} "
                                  "bytes) since the partial download; rerun to start over")
            mode, total_base = "ab", have
        else:  # 200: the server ignores Range; start over
            mode, total_base, have = "wb", 0, 0
        length = r.headers.get("Content-Length")
        total = total_base + int(length) if length is not None else 0
        if total:
            box["total"] = total
            if total > max_bytes:
                raise _too_big(part, url, total, max_bytes)
        got = have
        with open(part, mode) as f:
            for block in r.iter_content(chunk_size=chunk):
                f.write(block)
                got += len(block)
                if got > max_bytes:
                    f.close()
                    raise _too_big(part, url, got, max_bytes)
                if progress and total:
                    progress(f"fetch {name}", got, total)
        if length is not None and got < total:
            import requests

            raise requests.exceptions.ChunkedEncodingError(f"short read: {got} of {total} bytes")
    return True


def fetch_catalogue(names: list[str], dest: str | Path, progress: Progress | None = None) -> list[Path]:
    """Fetch named files of :data:`CATALOGUE` into ``dest``."""
    unknown = [n for n in names if n not in CATALOGUE]
    if unknown:
        raise input_error("soilresp fetch climate", f"unknown name {unknown[0]!r}; known: "
                          + ", ".join(sorted(CATALOGUE)))
    out = []
    for n in names:
        e = CATALOGUE[n]
        p = fetch_url(e["url"], dest, sha256=e["sha256"], name=e.get("name"), progress=progress)
        man = Path(dest) / MANIFEST
        doc = json.loads(man.read_text())
        doc["files"][p.name].update({"catalogue": n, "licence": e["licence"]})
        write_json(man, doc)
        out.append(p)
    return out


# ----------------------------------------------------------------------------- MODIS
_TILE = re.compile(r"\.h(\d{2})v(\d{2})\.")


def fetch_modis(product: str, years: tuple[int, int], dest: str | Path, *, version: str = "061",
                bbox: tuple[float, float, float, float] | None = None,
                tiles: list[str] | None = None, progress: Progress | None = None) -> list[Path]:
    """MODIS granules (HDF4-EOS tiles) of ``product`` for ``years`` from NASA Earthdata.

    Needs ``earthaccess`` (``pip install 'soilresp[modis]'``) and an Earthdata login in the
    environment (``EARTHDATA_USERNAME`` / ``EARTHDATA_PASSWORD``) or ``~/.netrc``.
    ``bbox`` = (west, south, east, north) degrees; ``tiles`` keeps only names such as
    ``h18v04``. Each file is checksummed into ``dest/manifest.json``.
    """
    try:
        import earthaccess
    except ImportError:
        raise input_error("soilresp fetch modis", "needs earthaccess: pip install 'soilresp[modis]'") from None
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    auth = None
    for strategy in ("environment", "netrc"):
        try:
            auth = earthaccess.login(strategy=strategy)
        except Exception:  # earthaccess raises assorted errors for a missing strategy
            auth = None
        if auth is not None and getattr(auth, "authenticated", True):
            break
        auth = None
    if auth is None:
        raise input_error("soilresp fetch modis", "no NASA Earthdata login: set EARTHDATA_USERNAME "
                          "and EARTHDATA_PASSWORD, or add urs.earthdata.nasa.gov to ~/.netrc "
                          "(register at https://urs.earthdata.nasa.gov)")
    kw = {"short_name": product, "version": version,
          "temporal": (f"{years[0]}-01-01", f"{years[1]}-12-31")}
    if bbox is not None:
        kw["bounding_box"] = tuple(bbox)
    try:
        granules = earthaccess.search_data(**kw)
    except Exception as e:
        raise input_error("soilresp fetch modis", f"search failed (offline?): {type(e).__name__}: {e}") from None
    if tiles:
        want = {t.lower() for t in tiles}
        granules = [g for g in granules if _granule_tile(g) in want]
    if not granules:
        raise input_error("soilresp fetch modis", f"no {product} v{version} granules for {years} "
                          f"{'in ' + str(bbox) if bbox else ''}{' tiles ' + ','.join(tiles) if tiles else ''}")
    try:
        files = earthaccess.download(granules, local_path=str(dest))
    except Exception as e:
        raise input_error("soilresp fetch modis", f"download failed: {type(e).__name__}: {e}") from None
    out = []
    links = {}
    for g in granules:
        for link in _data_links(g):
            links[Path(urlparse(link).path).name] = link
    for n, f in enumerate(files):
        p = Path(f)
        if not p.is_file():
            continue
        record(dest, p.name, {"url": links.get(p.name), "size": p.stat().st_size,
                              "sha256": file_sha256(p), "pinned": False, "fetched": _now(),
                              "source": f"earthaccess {product} v{version}"})
        out.append(p)
        if progress:
            progress(f"fetch {product}", n + 1, len(files))
    return out


def _data_links(g) -> list[str]:
    try:
        return list(g.data_links())
    except Exception:
        return []


def _granule_tile(g) -> str | None:
    for link in _data_links(g):
        m = _TILE.search(Path(urlparse(link).path).name)
        if m:
            return f"h{m.group(1)}v{m.group(2)}"
    return None
