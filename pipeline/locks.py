"""File locks and leases built on ``fcntl.flock``.

The kernel drops a ``flock`` when its holder dies (even on SIGKILL), so a lock
is never "stale": the lock *file* may remain, but it blocks nobody.  The PID
and host of the holder are written into the file only so that a waiter can say
whom it is waiting for.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger(__name__)

HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FileLock:
    """An exclusive (or shared) flock on ``path``; re-entrant per instance only."""

    def __init__(self, path: Path, shared: bool = False):
        self.path = Path(path)
        self.shared = shared
        self.fd: int | None = None

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        # The file may have been unlinked (by gc) between open and flock: then
        # this lock guards nothing and another process may lock a new file.
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            return self.try_acquire()
        self.fd = fd
        if not self.shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid={os.getpid()} host={HOST}\n".encode(), 0)
        return True

    def acquire(self, timeout: float | None = None, on_wait: Callable[[str], None] | None = None,
                poll: float = 0.05) -> None:
        """Block until acquired (polling, so a waiter can log and time out)."""
        start = time.monotonic()
        told = False
        while not self.try_acquire():
            if not told and on_wait is not None:
                on_wait(self.holder())
                told = True
            if timeout is not None and time.monotonic() - start > timeout:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {self.path} ({self.holder()})")
            time.sleep(poll)
            poll = min(poll * 1.5, 0.5)

    def release(self) -> None:
        if self.fd is not None:
            try:
                if not self.shared:
                    os.ftruncate(self.fd, 0)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


class Lease:
    """A running build's claim on blobs: a flock-held file listing digests.

    ``gc`` treats a lease whose flock it can take as dead (its process is gone)
    and ignores and removes it; a live lease protects every digest it lists.
    """

    def __init__(self, directory: Path, label: str = "build"):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}.lease"
        self.label = label
        self._lock = FileLock(self.path)
        if not self._lock.try_acquire():  # pragma: no cover - fresh unique name
            raise RuntimeError(f"cannot lock new lease {self.path}")
        self._write({"pid": os.getpid(), "host": HOST, "label": label, "started": time.time()})

    def _write(self, record: dict) -> None:
        assert self._lock.fd is not None
        data = (json.dumps(record, sort_keys=True) + "\n").encode()
        os.lseek(self._lock.fd, 0, os.SEEK_END)
        os.write(self._lock.fd, data)

    def claim(self, digest: str) -> None:
        self._write({"claim": digest})

    def close(self) -> None:
        path = self.path
        self._lock.release()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def live_lease_claims(directory: Path) -> tuple[set[str], int, int]:
    """Digests claimed by live leases; removes dead leases.  Returns (claims, live, removed)."""
    claims: set[str] = set()
    live = removed = 0
    if not directory.is_dir():
        return claims, live, removed
    for path in sorted(directory.glob("*.lease")):
        probe = FileLock(path)
        # Leases write their records after locking; taking the lock ourselves means the holder is gone.
        if probe.try_acquire():
            try:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                removed += 1
            finally:
                probe.release()
            continue
        live += 1
        try:
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    rec = json.loads(line)
                    if "claim" in rec:
                        claims.add(rec["claim"])
        except OSError:
            continue
    return claims, live, removed


@contextlib.contextmanager
def locked(path: Path, shared: bool = False, timeout: float | None = None,
           on_wait: Callable[[str], None] | None = None) -> Iterator[FileLock]:
    lock = FileLock(path, shared=shared)
    lock.acquire(timeout=timeout, on_wait=on_wait)
    try:
        yield lock
    finally:
        lock.release()
