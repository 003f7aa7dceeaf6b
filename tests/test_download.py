"""Downloads against a local HTTP server (Range requests, interruption and resume,
checksums, manifest, offline errors); MODIS through a stand-in earthaccess module."""

import hashlib
import json
import socket
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from soilresp.download import CATALOGUE, fetch_catalogue, fetch_modis, fetch_url
from soilresp.errors import InputError

DATA = bytes(range(256)) * 4000  # 1 024 000 bytes


class _Handler(BaseHTTPRequestHandler):
    files: dict = {}
    log: list = []
    cut_first: dict = {}     # name -> bytes to send before dropping the first response
    no_range: set = set()

    def log_message(self, *a):
        pass

    def do_GET(self):
        name = self.path.lstrip("/")
        rng = self.headers.get("Range")
        self.log.append((name, rng))
        if name not in self.files:
            self.send_error(404)
            return
        data = self.files[name]
        start = 0
        if rng and name not in self.no_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.cut_first.pop(name, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    _Handler.files = {"a.bin": DATA, "b.txt": b"hello\n"}
    _Handler.log, _Handler.cut_first, _Handler.no_range = [], {}, set()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", _Handler
    srv.shutdown()
    srv.server_close()


def test_download_checksum_and_manifest(server, tmp_path):
    url, h = server
    sha = hashlib.sha256(DATA).hexdigest()
    p = fetch_url(f"{url}/a.bin", tmp_path, sha256=sha)
    assert p.read_bytes() == DATA and not (tmp_path / "a.bin.part").exists()
    man = json.loads((tmp_path / "manifest.json").read_text())["files"]["a.bin"]
    assert man["sha256"] == sha and man["size"] == len(DATA) and man["pinned"] is True
    assert man["url"] == f"{url}/a.bin" and man["fetched"].endswith("+00:00")
    n = len(h.log)
    fetch_url(f"{url}/a.bin", tmp_path, sha256=sha)  # present with the right checksum: no request
    assert len(h.log) == n
    with pytest.raises(InputError, match="checksum mismatch"):
        fetch_url(f"{url}/b.txt", tmp_path, sha256="0" * 64)
    assert not (tmp_path / "b.txt").exists() and not (tmp_path / "b.txt.part").exists()
    with pytest.raises(InputError, match="HTTP 404"):
        fetch_url(f"{url}/missing.nc", tmp_path)


def test_interrupted_download_resumes_with_range(server, tmp_path):
    url, h = server
    h.cut_first["a.bin"] = 300_000
    p = fetch_url(f"{url}/a.bin", tmp_path, sha256=hashlib.sha256(DATA).hexdigest(), retries=2)
    assert p.read_bytes() == DATA
    # the bytes received before the cut (whole 64 KiB blocks) are kept and resumed from
    assert h.log[0] == ("a.bin", None) and h.log[1][1].startswith("bytes=")
    first = int(h.log[1][1][6:-1])
    assert 0 < first <= 300_000
    # no retries: the partial file stays, and the next call resumes from it
    h.cut_first["a.bin"] = 200_000
    with pytest.raises(InputError, match=r"interrupted at \d+ bytes; rerun to resume"):
        fetch_url(f"{url}/a.bin", tmp_path / "two", retries=0)
    kept = (tmp_path / "two" / "a.bin.part").stat().st_size
    assert 0 < kept <= 200_000
    p2 = fetch_url(f"{url}/a.bin", tmp_path / "two", retries=0)
    assert p2.read_bytes() == DATA and h.log[-1] == ("a.bin", f"bytes={kept}-")
    man = json.loads((tmp_path / "two" / "manifest.json").read_text())["files"]["a.bin"]
    assert man["resumed_from"] == kept and man["pinned"] is False


def test_server_without_range_support_restarts(server, tmp_path):
    url, h = server
    h.no_range.add("a.bin")
    (tmp_path / "a.bin.part").write_bytes(DATA[:1000])
    assert fetch_url(f"{url}/a.bin", tmp_path).read_bytes() == DATA


def test_offline_error_names_url(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    with pytest.raises(InputError, match=rf"127.0.0.1:{port}/x.nc: cannot connect \(offline"):
        fetch_url(f"http://127.0.0.1:{port}/x.nc", tmp_path, retries=1, timeout=2)


def test_catalogue_entries_and_fetch(server, tmp_path, monkeypatch):
    for name, e in CATALOGUE.items():
        assert e["url"].startswith("https://") and e["licence"]
        assert e["sha256"] is None or len(e["sha256"]) == 64
    url, h = server
    h.files["c.csv"] = b"Latitude,Longitude,v\n0.25,0.25,1\n"
    monkeypatch.setitem(CATALOGUE, "test-file", {"url": f"{url}/c.csv", "sha256": None,
                                                 "licence": "test", "description": "t"})
    p = fetch_catalogue(["test-file"], tmp_path)[0]
    doc = json.loads((tmp_path / "manifest.json").read_text())["files"]["c.csv"]
    assert p.name == "c.csv" and doc["catalogue"] == "test-file" and doc["licence"] == "test"
    with pytest.raises(InputError, match="unknown name 'nope'"):
        fetch_catalogue(["nope"], tmp_path)


class _Granule:
    def __init__(self, name):
        self.name = name

    def data_links(self):
        return [f"https://data.lpdaac.earthdatacloud.nasa.gov/lp-prod-protected/MOD11A2.061/{self.name}"]


def test_fetch_modis_with_stand_in_earthaccess(tmp_path, monkeypatch):
    calls = {}
    fake = types.ModuleType("earthaccess")

    def login(strategy):
        calls.setdefault("login", []).append(strategy)
        return types.SimpleNamespace(authenticated=strategy == "netrc")

    def search_data(**kw):
        calls["search"] = kw
        return [_Granule("MOD11A2.A2001001.h18v04.061.2021.hdf"), _Granule("MOD11A2.A2001001.h19v04.061.2021.hdf")]

    def download(granules, local_path):
        out = []
        for g in granules:
            p = tmp_path / "modis" / g.name
            p.write_bytes(g.name.encode())
            out.append(str(p))
        return out

    fake.login, fake.search_data, fake.download = login, search_data, download
    monkeypatch.setitem(sys.modules, "earthaccess", fake)
    files = fetch_modis("MOD11A2", (2001, 2002), tmp_path / "modis", bbox=(0, 40, 10, 50), tiles=["h18v04"])
    assert [f.name for f in files] == ["MOD11A2.A2001001.h18v04.061.2021.hdf"]
    assert calls["login"] == ["environment", "netrc"]
    assert calls["search"]["temporal"] == ("2001-01-01", "2002-12-31") and calls["search"]["version"] == "061"
    man = json.loads((tmp_path / "modis" / "manifest.json").read_text())["files"]
    e = man["MOD11A2.A2001001.h18v04.061.2021.hdf"]
    assert e["sha256"] == hashlib.sha256(b"MOD11A2.A2001001.h18v04.061.2021.hdf").hexdigest()
    assert e["url"].endswith("h18v04.061.2021.hdf")
    fake.login = lambda strategy: None
    with pytest.raises(InputError, match="no NASA Earthdata login"):
        fetch_modis("MOD11A2", (2001, 2002), tmp_path / "m2")
    monkeypatch.setitem(sys.modules, "earthaccess", None)  # not installed
    with pytest.raises(InputError, match=r"pip install 'soilresp\[modis\]'"):
        fetch_modis("MOD11A2", (2001, 2002), tmp_path / "m3")


def test_cli_fetch_url_and_offline_exit_code(server, tmp_path):
    from typer.testing import CliRunner

    from soilresp.cli import app

    url, _ = server
    r = CliRunner().invoke(app, ["fetch", "url", f"{url}/b.txt", "--dest", str(tmp_path),
                                 "--sha256", hashlib.sha256(b"hello\n").hexdigest()])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "b.txt").read_bytes() == b"hello\n"
    r = CliRunner().invoke(app, ["fetch", "url", f"{url}/b.txt", "--dest", str(tmp_path / "x"),
                                 "--sha256", "1" * 64])
    assert r.exit_code == 2 and "checksum mismatch" in r.output


# ------------------------------------------------------------------ issue 17: one downloader, its rules
@pytest.mark.parametrize("bad, msg", [
    ("ftp://example.org/a.nc", "only http"), ("file:///etc/passwd", "only http"),
    ("http://example.org/data/../../etc/passwd", "'..'"), ("http://example.org/a/%2e%2e/b.nc", "'..'"),
    ("example.org/a.nc", "only http"), ("http:///a.nc", "only http"),
])
def test_bad_urls_are_one_line_errors(bad, msg, tmp_path):
    with pytest.raises(InputError, match=msg) as e:
        fetch_url(bad, tmp_path, retries=0, timeout=1)
    assert "\n" not in str(e.value) and bad in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_unsafe_name_refused(tmp_path):
    with pytest.raises(InputError, match="unsafe file name"):
        fetch_url("http://example.org/a.nc", tmp_path, name="../escape.nc")


def test_stale_partial_without_state_is_not_mixed_in(server, tmp_path):
    """Issue 17: a stale .part (no checksum, e.g. from another file) was resumed and mixed in."""
    url, h = server
    (tmp_path / "a.bin.part").write_bytes(b"X" * 5000)   # foreign bytes, no state file
    p = fetch_url(f"{url}/a.bin", tmp_path)
    assert p.read_bytes() == DATA and h.log[-1] == ("a.bin", None)   # started over, no Range


def test_partial_changed_after_interruption_starts_over(server, tmp_path):
    url, h = server
    h.cut_first["a.bin"] = 200_000
    with pytest.raises(InputError, match="rerun to resume"):
        fetch_url(f"{url}/a.bin", tmp_path, retries=0)
    part = tmp_path / "a.bin.part"
    assert (tmp_path / "a.bin.part.json").is_file()
    data = bytearray(part.read_bytes())
    data[10] ^= 0xFF                                   # same size, different bytes
    part.write_bytes(bytes(data))
    p = fetch_url(f"{url}/a.bin", tmp_path, retries=0)
    assert p.read_bytes() == DATA and h.log[-1] == ("a.bin", None)
    assert not (tmp_path / "a.bin.part.json").exists()


def test_partial_of_another_url_starts_over(server, tmp_path):
    url, h = server
    h.files["c.bin"] = DATA[::-1]
    h.cut_first["a.bin"] = 200_000
    with pytest.raises(InputError):
        fetch_url(f"{url}/a.bin", tmp_path, retries=0)
    (tmp_path / "a.bin.part").rename(tmp_path / "c.bin.part")
    (tmp_path / "a.bin.part.json").rename(tmp_path / "c.bin.part.json")
    assert fetch_url(f"{url}/c.bin", tmp_path, retries=0).read_bytes() == DATA[::-1]


def test_size_cap(server, tmp_path):
    url, _ = server
    with pytest.raises(InputError, match="size cap"):
        fetch_url(f"{url}/a.bin", tmp_path, max_bytes=1000)
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()


def test_disk_full_is_one_line(server, tmp_path, monkeypatch):
    import errno

    url, _ = server
    import builtins

    real_open = builtins.open

    def full(file, mode="r", *a, **k):
        if str(file).endswith(".part") and "w" in mode or "a" in mode and str(file).endswith(".part"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", full)
    with pytest.raises(InputError, match=r"cannot write the download.*No space left"):
        fetch_url(f"{url}/a.bin", tmp_path)
    f = tmp_path / "afile"
    monkeypatch.undo()
    f.write_text("x")
    with pytest.raises(InputError, match=r"afile.*cannot write"):
        fetch_url(f"{url}/a.bin", f / "sub")


def test_srdb_fetch_uses_the_one_downloader():
    import inspect

    from soilresp.field import fetch as srdb_fetch

    src = inspect.getsource(srdb_fetch)
    assert "fetch_url" in src and "pooch" not in src and "requests" not in src
