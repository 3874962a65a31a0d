"""asrkit.data.download against local fixtures only: file:// URLs and a 127.0.0.1 HTTP server with Range support."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from asrkit.data.download import extract, fetch
from asrkit.errors import InputError, WorkError

pytestmark = pytest.mark.timeout(60)

FILES = {"corpus/a.txt": b"alpha\n", "corpus/sub/b.txt": b"beta\n" * 1000}


def _make_zip(path: Path, files: dict[str, bytes] = FILES) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _make_tgz(path: Path, files: dict[str, bytes] = FILES) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".part"))


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves bytes from `server.files` (path -> bytes), honouring `Range: bytes=N-` unless `server.ranges` is False."""

    timeout = 10

    def do_GET(self) -> None:  # noqa: N802
        srv = self.server
        data = srv.files.get(self.path)
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng and srv.ranges and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes=") : -1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if srv.ranges else "none")
        self.end_headers()
        srv.sent += len(body)  # counted before the write: the client may check it as soon as the last byte is out
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    srv.daemon_threads = True
    srv.files, srv.requests, srv.sent, srv.ranges = {}, [], 0, True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def _url(srv, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


@pytest.mark.parametrize("maker,name", [(_make_zip, "c.zip"), (_make_tgz, "c.tar.gz"), (_make_tgz, "c.tgz")])
def test_fetch_file_url_then_extract(tmp_path, maker, name):
    src = maker(tmp_path / name)
    dest = fetch(src.as_uri(), tmp_path / "dl" / name, quiet=True)
    assert dest == tmp_path / "dl" / name and dest.read_bytes() == src.read_bytes()
    out = extract(dest, tmp_path / "out")
    assert out == tmp_path / "out"
    for rel, data in FILES.items():
        assert (out / rel).read_bytes() == data
    assert _leftovers(tmp_path / "dl") == [] and _leftovers(out) == []


def test_extract_twice_replaces_cleanly(tmp_path):
    out = tmp_path / "out"
    extract(_make_zip(tmp_path / "v1.zip", {"corpus/old.txt": b"old"}), out)
    extract(_make_zip(tmp_path / "v2.zip"), out)
    assert not (out / "corpus" / "old.txt").exists()
    assert (out / "corpus" / "a.txt").read_bytes() == FILES["corpus/a.txt"]
    assert _leftovers(out) == []


def test_sha256_good(tmp_path):
    src = _make_zip(tmp_path / "c.zip")
    dest = fetch(src.as_uri(), tmp_path / "dl" / "c.zip", sha256=_sha(src).upper(), quiet=True)
    assert _sha(dest) == _sha(src)


def test_sha256_bad_deletes_part_and_raises(tmp_path):
    src = _make_zip(tmp_path / "c.zip")
    dest = tmp_path / "dl" / "c.zip"
    with pytest.raises(WorkError, match="checksum mismatch"):
        fetch(src.as_uri(), dest, sha256="0" * 64, quiet=True)
    assert not dest.exists()
    assert not dest.with_name("c.zip.part").exists()


def test_existing_file_is_not_downloaded_again(tmp_path, server):
    dest = tmp_path / "c.zip"
    dest.write_bytes(b"already here")
    server.files["/c.zip"] = b"new content"
    assert fetch(_url(server, "/c.zip"), dest, quiet=True) == dest
    assert fetch(_url(server, "/c.zip"), dest, sha256=_sha(dest), quiet=True) == dest
    assert server.requests == [] and dest.read_bytes() == b"already here"


def test_existing_file_with_wrong_sha_is_replaced(tmp_path, server):
    dest = tmp_path / "c.zip"
    dest.write_bytes(b"stale")
    data = b"fresh bytes"
    server.files["/c.zip"] = data
    fetch(_url(server, "/c.zip"), dest, sha256=hashlib.sha256(data).hexdigest(), quiet=True)
    assert dest.read_bytes() == data


def test_http_download_with_progress_bar(tmp_path, server, capsys):
    data = os.urandom(300_000)
    server.files["/big.bin"] = data
    dest = fetch(_url(server, "/big.bin"), tmp_path / "big.bin", sha256=hashlib.sha256(data).hexdigest())
    assert dest.read_bytes() == data
    assert server.requests == [("/big.bin", None)]
    assert capsys.readouterr().out == ""  # the bar goes to stderr


def test_resume_partial_part_with_range(tmp_path, server):
    data = os.urandom(200_000)
    server.files["/c.zip"] = data
    dest = tmp_path / "c.zip"
    dest.with_name("c.zip.part").write_bytes(data[:123_456])
    fetch(_url(server, "/c.zip"), dest, sha256=hashlib.sha256(data).hexdigest(), quiet=True)
    assert dest.read_bytes() == data
    assert server.requests == [("/c.zip", "bytes=123456-")]
    assert server.sent == len(data) - 123_456
    assert not dest.with_name("c.zip.part").exists()


def test_resume_complete_part_gets_416_and_keeps_it(tmp_path, server):
    data = os.urandom(5000)
    server.files["/c.zip"] = data
    dest = tmp_path / "c.zip"
    dest.with_name("c.zip.part").write_bytes(data)
    fetch(_url(server, "/c.zip"), dest, quiet=True)
    assert dest.read_bytes() == data and server.sent == 0


def test_resume_falls_back_when_server_ignores_range(tmp_path, server):
    server.ranges = False
    data = os.urandom(50_000)
    server.files["/c.zip"] = data
    dest = tmp_path / "c.zip"
    dest.with_name("c.zip.part").write_bytes(data[:1000])
    fetch(_url(server, "/c.zip"), dest, quiet=True)
    assert dest.read_bytes() == data and server.sent == len(data)


def test_http_404_is_work_error(tmp_path, server):
    with pytest.raises(WorkError, match="HTTP 404"):
        fetch(_url(server, "/missing.zip"), tmp_path / "m.zip", quiet=True)


def test_unreachable_url_gives_offline_message(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.zip"
    with pytest.raises(WorkError) as info:
        fetch(url, tmp_path / "x.zip", quiet=True)
    msg = str(info.value)
    assert msg.startswith(f"could not download {url}: ")
    assert "you are probably offline" in msg and "$ASRKIT_DATA" in msg and "\n" not in msg
    assert not (tmp_path / "x.zip").exists()


def test_missing_local_file_is_input_error(tmp_path):
    with pytest.raises(InputError):
        fetch((tmp_path / "nope.zip").as_uri(), tmp_path / "dl.zip", quiet=True)


@pytest.mark.parametrize(
    "bad", ["../evil.txt", "/abs/evil.txt", "corpus/../../evil.txt", "..\\evil.txt", "C:/evil.txt"]
)
@pytest.mark.parametrize("maker,name", [(_make_zip, "bad.zip"), (_make_tgz, "bad.tar.gz")])
def test_path_traversal_is_refused(tmp_path, bad, maker, name):
    archive = maker(tmp_path / name, {"corpus/ok.txt": b"ok", bad: b"pwned"})
    out = tmp_path / "deep" / "out"
    with pytest.raises(InputError, match="unsafe member path"):
        extract(archive, out)
    assert list(out.iterdir()) == []  # nothing extracted, no temp folder left
    assert not (tmp_path / "deep" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_tar_symlink_escaping_is_refused(tmp_path):
    archive = tmp_path / "link.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("corpus/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc"
        tf.addfile(info)
    out = tmp_path / "out"
    with pytest.raises(InputError, match="points outside"):
        extract(archive, out)
    assert list(out.iterdir()) == []


def test_unsupported_and_corrupt_archives(tmp_path):
    with pytest.raises(InputError, match="unsupported archive type"):
        extract(tmp_path / "x.rar", tmp_path / "out")
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(InputError, match="cannot extract"):
        extract(bad, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
