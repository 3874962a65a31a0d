"""Atomic file writes (a killed process never leaves a half-written output), disk-full errors, run locks."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from asrkit.errors import InputError, WorkError

# below this much free space, a failed write is taken for a full disk (torch.save reports ENOSPC as a RuntimeError)
_NEARLY_FULL = 1 << 20


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `path`, fsync it, then rename it over `path`.

    A full disk or an unwritable place becomes one clear error naming `path`; the temporary file is removed.
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    except OSError as e:
        raise _write_error(e, p) from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs should get the usual permissions
    try:
        write(tmp)
        _test_hold(p, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException as e:
        full = isinstance(e, Exception) and disk_full(e, p.parent)
        if os.path.exists(tmp):
            os.unlink(tmp)
        if full:
            raise no_space(p) from None
        if isinstance(e, OSError) and e.errno in _UNWRITABLE:
            raise _write_error(e, p) from None
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    def _w(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    atomic_write(path, _w)


def atomic_save_png(fig, path: str | Path, dpi: int = 100) -> None:
    """Save a matplotlib figure as PNG with `atomic_write`."""

    def _w(tmp: str) -> None:
        with open(tmp, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi)

    atomic_write(path, _w)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def disk_full(e: BaseException, where: str | Path) -> bool:
    """Whether `e`, raised while writing under `where`, means the disk (or quota) is full."""
    if isinstance(e, OSError) and e.errno is not None:
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    # torch's writer ("PytorchStreamWriter failed writing") and numpy's ("20736 requested and 14272 written") say
    # it without an errno
    if not isinstance(e, (RuntimeError, OSError)):
        return False
    try:
        return shutil.disk_usage(where).free < _NEARLY_FULL
    except OSError:
        return False


def check_writable(path: str | Path, name: str | None = None) -> None:
    """Refuse, before any work, an output path that cannot be written: a directory, one under a file, no permission.

    The error names the path, after `name` (e.g. the option that gave it) or after "cannot write".
    """
    p = Path(path)
    subject = f"{name} {p}" if name else f"cannot write {p}"
    if p.is_dir():
        raise InputError(f"{subject}: it is a directory; give a file path")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{subject}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise InputError(f"{subject}: permission denied")


def no_space(path: str | Path) -> WorkError:
    """The one-line error for a write that found the disk full."""
    return WorkError(f"no space left on device while writing {path}; free some space and run the command again")


_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR)


def _write_error(e: OSError, path: Path) -> Exception:
    """An OSError met while writing `path` as an AsrkitError naming it, where it is one the user can fix."""
    if disk_full(e, path.parent):
        return no_space(path)
    if e.errno in _UNWRITABLE:
        return InputError(f"cannot write {path}: {e.strerror.lower()}; choose another path or fix its permissions")
    if e.errno == errno.EEXIST:  # mkdir met a file where a folder of the path should be
        return InputError(f"cannot write {path}: {e.filename} is not a directory; choose another path")
    return e


TRAIN_LOCK = "train.lock"  # held by `asrkit train` in its experiment dir for as long as it runs


def is_locked(path: str | Path) -> bool:
    """Whether a live process holds a `RunLock` on `path` (False where the file is absent or flock is unsupported)."""
    import fcntl  # lazy: POSIX-only, and only the run locks need it

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        return e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)  # closing drops the shared lock, if it was taken
    return False


class RunLock:
    """An exclusive flock on `path` (holding this process's PID) for as long as the process lives or until `release()`.

    The kernel drops the lock when its holder dies, so a killed run never leaves a stale lock behind.
    """

    def __init__(self, path: str | Path, what: str):
        import fcntl  # lazy: POSIX-only, and only the run locks need it

        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise _write_error(e, self.path) from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._fd)
            self._fd = None
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise InputError(
                    f"{what} {self.path.parent} is in use by another run (PID {self._holder()}, lock {self.path}); "
                    "wait for it to finish or stop it, or use another directory"
                ) from None
            return  # a file system without flock (some network mounts): run unlocked rather than not at all
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def _holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        """Give the lock up (closing the file drops the flock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _test_hold(path: Path, tmp: str) -> None:
    """Fault injection for the robustness tests: ASRKIT_TEST_HOLD_WRITE=NAME@N:DIR stops inside the N-th write of a file NAME.

    The temporary file is cut to half its size (a write in progress) and DIR/ready names it; the writer then waits
    (up to 120 s) for the test to kill it, and otherwise completes the file.
    """
    spec = os.environ.get("ASRKIT_TEST_HOLD_WRITE")
    if not spec:
        return
    target, _, folder = spec.partition(":")
    name, _, nth = target.partition("@")
    if path.name != name:
        return
    _HOLD_COUNT[name] = _HOLD_COUNT.get(name, 0) + 1
    if _HOLD_COUNT[name] != int(nth or 1):
        return
    data = Path(tmp).read_bytes()
    os.truncate(tmp, len(data) // 2)
    Path(folder, "ready.tmp").write_text(tmp)
    os.replace(Path(folder, "ready.tmp"), Path(folder, "ready"))  # the test sees the file only once it is whole
    time.sleep(120)
    Path(tmp).write_bytes(data)


_HOLD_COUNT: dict[str, int] = {}
