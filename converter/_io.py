"""Atomic file writes: a reader never sees a half-written file.

One permission rule for every file tf2trt writes (engines from ``tf2trt convert`` and ``tf2trt build``,
their ``.json`` sidecars, the artifact store's blobs and manifests): a new file is created with mode
``0o666 & ~umask`` — what ``open()`` gives any other tool — so a group-shared directory used with
``umask 002`` gets group-writable files and ``umask 077`` keeps them private.  Files the store wants
immutable (its blobs) then lose their write bits (``mode & ~0o222``); nothing is forced to a fixed
``0444``/``0644``.  The mode is set by the kernel when the temp file is created (``os.open(...,
0o666)``), so the umask is never read or changed (``os.umask`` is process-wide and racy in threads).

A disk that is full (``ENOSPC``) or a quota that is exhausted (``EDQUOT``) while writing becomes
:class:`~converter.errors.EnvironmentProblem` naming the file and how many bytes it needed; the temp
file is removed, so nothing half-written is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from pathlib import Path

from .errors import EnvironmentProblem

#: the mode new files are created with; the kernel applies the umask
CREATE_MODE = 0o666
#: errno values meaning "no room left": the disk, or the user's quota
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(EnvironmentProblem):
    """No space (or quota) left where a file had to be written; names the path and the bytes needed."""

    def __init__(self, path: str | os.PathLike, needed: int | None = None, cause: OSError | None = None,
                 hint: str | None = None):
        self.path = Path(path)
        self.needed = needed
        self.free = free_bytes(self.path)
        what = "no space left" if cause is None or cause.errno == errno.ENOSPC else "disk quota exceeded"
        need = f"; needed {_size(needed)}" if needed is not None else ""
        free = f", {_size(self.free)} free" if self.free is not None else ""
        super().__init__(f"{what} writing {self.path}{need}{free}",
                         hint or "free disk space (or raise the quota) on that filesystem, or write elsewhere")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit} ({n} bytes)"
    return f"{n} bytes"


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes available to this user on the filesystem holding ``path`` (or its nearest existing parent)."""
    p = Path(path)
    for candidate in (p, *p.parents):
        try:
            st = os.statvfs(candidate)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize
    return None


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def create_new(path: str | os.PathLike) -> int:
    """Create ``path`` exclusively for writing with mode ``0o666 & ~umask`` (the one rule above)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), CREATE_MODE)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """``os.write`` until every byte is written (a write may be short)."""
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]


def make_read_only(fd: int) -> None:
    """Drop the write bits of an open file, keeping what the umask allowed (blobs are immutable)."""
    os.fchmod(fd, os.fstat(fd).st_mode & 0o7777 & ~0o222)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename in ``path`` durable (best effort: some filesystems refuse to fsync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def temp_name_beside(path: Path, tag: str = "") -> Path:
    """A hidden temp name in ``path``'s directory: the rename into place never crosses a filesystem."""
    return path.with_name(f".{path.name}.{tag}{uuid.uuid4().hex[:12]}.tmp")


def atomic_write_bytes(path: str | os.PathLike, data: bytes, read_only: bool = False,
                       tmp: str | os.PathLike | None = None) -> None:
    """Write ``data`` to ``path`` atomically: temp file, fsync, rename, fsync of the directory.

    The temp file is ``tmp`` when given (it must be on ``path``'s filesystem), else a hidden name
    beside ``path``.  ``read_only`` drops the write bits after writing.  On any failure the temp file
    is removed and ``path`` is untouched; a full disk raises :class:`DiskFull`.
    """
    path = Path(path)
    tmp_path = Path(tmp) if tmp is not None else temp_name_beside(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = create_new(tmp_path)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull(path, len(data), exc) from exc
        raise
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
            if read_only:
                make_read_only(fd)
        finally:
            os.close(fd)
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        if is_disk_full(exc):
            raise DiskFull(path, len(data), exc) from exc  # type: ignore[arg-type]
        raise
    fsync_dir(path.parent)
