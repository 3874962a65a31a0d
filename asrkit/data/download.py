"""Download and unpack corpora: resumable, checksummed, atomic, and safe against hostile archives."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import posixpath
import re
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from asrkit.errors import InputError, WorkError

TIMEOUT_S = 30.0  # seconds to wait for a connection or for the next block of data
CHUNK = 1 << 16
_OFFLINE_HINT = "you are probably offline — download it by hand and point data.root (or $ASRKIT_DATA) at it"
_NETWORK_ERRORS = (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, http.client.HTTPException)


def sha256_of(path: str | Path) -> str:
    """Return the hex sha256 digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _part_path(dest: Path) -> Path:
    """Return the `.part` file a download of `dest` is written to."""
    return dest.with_name(dest.name + ".part")


def _reason(exc: BaseException) -> str:
    """Return a one-line reason for a network failure."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    reason = getattr(exc, "reason", None) if isinstance(exc, urllib.error.URLError) else None
    text = str(reason if reason is not None else exc) or type(exc).__name__
    return " ".join(text.split())


def _progress(total: int | None, done: int, label: str, quiet: bool):
    """Return (progress, task) for a rich download bar, or (None, None) when quiet."""
    if quiet:
        return None, None

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    task = progress.add_task(label, total=total, completed=done)
    return progress, task


def _copy_local(url: str, part: Path, quiet: bool) -> None:
    """Copy the file behind a file:// URL to `part`."""
    parsed = urllib.parse.urlparse(url)
    src = Path(urllib.request.url2pathname(parsed.path))
    if not src.is_file():
        raise InputError(f"could not read {url}: no such file {src}")
    with open(src, "rb") as fin:
        _copy_stream(fin, part, "wb", src.stat().st_size, 0, src.name, quiet)


def _copy_stream(src, part: Path, mode: str, total: int | None, have: int, label: str, quiet: bool) -> None:
    """Copy a readable binary stream into `part` block by block with a progress bar, then fsync."""
    progress, task = _progress(total, have, label, quiet)
    try:
        if progress is not None:
            progress.start()
        with open(part, mode) as fout:
            for block in iter(lambda: src.read(CHUNK), b""):
                fout.write(block)
                if progress is not None:
                    progress.advance(task, len(block))
            fout.flush()
            os.fsync(fout.fileno())
    finally:
        if progress is not None:
            progress.stop()


def _download_http(url: str, part: Path, quiet: bool) -> None:
    """Download `url` into `part`, resuming from its current size with a Range request when possible."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "asrkit"}
    if have > 0:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have > 0:
            # Range not satisfiable: the .part is complete if the server's size equals ours, else stale.
            m = re.match(r"bytes \*/(\d+)", e.headers.get("Content-Range", "") or "")
            e.close()
            if m and int(m.group(1)) == have:
                return
            part.unlink()
            return _download_http(url, part, quiet)
        raise
    with resp:
        status = getattr(resp, "status", None) or resp.getcode()
        mode = "wb"
        if have > 0 and status == 206:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", "") or "")
            if m and int(m.group(1)) == have:
                mode = "ab"
        if mode == "wb":
            have = 0  # the server sent the whole file (no Range support): start over
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        label = posixpath.basename(urllib.parse.urlparse(url).path) or url
        _copy_stream(resp, part, mode, total, have, label, quiet)
        if total is not None and part.stat().st_size != total:
            raise ConnectionError(f"connection closed after {part.stat().st_size} of {total} bytes")


def fetch(url: str, dest: str | Path, sha256: str | None = None, quiet: bool = False) -> Path:
    """Download `url` to `dest` (resumable via `dest.part`, sha256-checked, atomic rename); skip if already there."""
    dest = Path(dest)
    want = sha256.lower() if sha256 else None
    if dest.is_file() and (want is None or sha256_of(dest) == want):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest)
    scheme = urllib.parse.urlparse(url).scheme.lower()
    try:
        if scheme == "file":
            _copy_local(url, part, quiet)
        elif scheme in ("http", "https", "ftp"):
            _download_http(url, part, quiet)
        else:
            raise InputError(f"cannot download {url}: unsupported URL scheme {scheme or '(none)'!r}")
    except urllib.error.HTTPError as e:
        raise WorkError(
            f"could not download {url}: {_reason(e)}; download it by hand and point data.root (or $ASRKIT_DATA) at it"
        ) from None
    except _NETWORK_ERRORS as e:
        raise WorkError(f"could not download {url}: {_reason(e)}; {_OFFLINE_HINT}") from None
    if want is not None:
        got = sha256_of(part)
        if got != want:
            part.unlink()
            raise WorkError(
                f"checksum mismatch for {url}: expected sha256 {want}, got {got}; the partial file was deleted"
            )
    os.replace(part, dest)
    return dest


def _unsafe(name: str) -> bool:
    """True when an archive member name is absolute or climbs out with `..`."""
    if not name:
        return True
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute():
        return True
    win = PureWindowsPath(name)
    if win.drive or win.is_absolute():
        return True
    return ".." in re.split(r"[\\/]+", name)


def _check_zip(zf: zipfile.ZipFile, archive: Path) -> None:
    """Raise InputError if any zip member would land outside the extraction folder."""
    for info in zf.infolist():
        if _unsafe(info.filename):
            raise InputError(f"refusing to extract {archive}: unsafe member path {info.filename!r}")


def _check_tar(tf: tarfile.TarFile, archive: Path) -> None:
    """Raise InputError if any tar member (or link target) would land outside the extraction folder."""
    for m in tf.getmembers():
        if _unsafe(m.name):
            raise InputError(f"refusing to extract {archive}: unsafe member path {m.name!r}")
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise InputError(f"refusing to extract {archive}: special file {m.name!r}")
        if m.issym() or m.islnk():
            target = m.linkname.replace("\\", "/")
            # a symlink resolves relative to its own folder, a hard link relative to the archive root
            base = posixpath.dirname(m.name) if m.issym() else ""
            resolved = posixpath.normpath(posixpath.join(base, target))
            absolute = target.startswith("/") or bool(PureWindowsPath(target).drive)
            if not target or absolute or resolved == ".." or resolved.startswith("../"):
                raise InputError(f"refusing to extract {archive}: link {m.name!r} points outside ({m.linkname!r})")


def _kind(archive: Path) -> str:
    """Return 'zip' or 'tar' from the archive's file name."""
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "tar"
    raise InputError(f"cannot extract {archive}: unsupported archive type (expected .zip, .tar.gz or .tgz)")


def extract(archive: str | Path, dest_dir: str | Path) -> Path:
    """Safely extract a .zip/.tar.gz/.tgz into `dest_dir` via a temp folder renamed into place; return `dest_dir`."""
    archive = Path(archive)
    dest_dir = Path(dest_dir)
    kind = _kind(archive)
    if not archive.is_file():
        raise InputError(f"cannot extract {archive}: no such file")
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".extract-"))
    try:
        try:
            if kind == "zip":
                with zipfile.ZipFile(archive) as zf:
                    _check_zip(zf, archive)
                    zf.extractall(tmp)
            else:
                with tarfile.open(archive, "r:*") as tf:
                    _check_tar(tf, archive)
                    if hasattr(tarfile, "data_filter"):
                        tf.extractall(tmp, filter="data")
                    else:  # pragma: no cover - Python < 3.11.4; members were checked above
                        tf.extractall(tmp)
        except (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as e:
            raise InputError(f"cannot extract {archive}: {' '.join(str(e).split()) or type(e).__name__}") from None
        for entry in sorted(tmp.iterdir()):
            target = dest_dir / entry.name
            if target.is_dir() and not target.is_symlink():
                old = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".old-"))
                os.replace(target, old / entry.name)
                os.replace(entry, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(entry, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest_dir


CMUDICT_URL = "https://raw.githubusercontent.com/cmusphinx/cmudict/master/cmudict.dict"


def download_cmudict(dest: str | Path, quiet: bool = False, url: str = CMUDICT_URL) -> Path:
    """Fetch cmudict.dict (BSD-style data; not the GPL `cmudict` wrapper package) into the folder `dest`."""
    # the file on master changes with every dictionary fix: there is no fixed checksum to hold it to
    return fetch(url, Path(dest) / "cmudict.dict", quiet=quiet)
