"""File locks and leases built on ``fcntl.flock``.

The kernel drops a ``flock`` when the last descriptor of its open file goes
away (even on SIGKILL), so a lock whose holder died is normally free at once.
The holder's pid, host and start time are written into the file so that a
waiter can say whom it waits for, and so that the one case the kernel cannot
resolve is recognised: a holder that is dead while its lock is still held —
a descriptor inherited by a forked child that outlived it.  A waiter takes
such a lock over (the file is unlinked under a takeover guard and a new one
locked), but only for a holder on this host whose pid is gone or now belongs
to a younger process; other hosts' pids cannot be checked.

Every wait has a timeout (:data:`ENV_TIMEOUT`, :data:`ENV_STAGE_TIMEOUT`) and
says whom it waits for while it waits (a log record at INFO at once, at
WARNING after :data:`NOTICE_AFTER` seconds and every :data:`NOTICE_EVERY`
seconds after that).  A timeout raises :class:`LockTimeout`, an
:class:`~converter.errors.EnvironmentProblem` (exit 2), never a hang.

Every failure path of :meth:`FileLock.try_acquire` unlocks and closes its
descriptor: a descriptor leaked while it holds a flock would make this very
process wait for its own lock forever.  A lock this process holds through a
descriptor no :class:`FileLock` owns is therefore reported at once instead of
waited for.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from converter._io import CREATE_MODE, DiskFull, is_disk_full
from converter.errors import EnvironmentProblem

log = logging.getLogger(__name__)

HOST = socket.gethostname()

#: seconds to wait for a store bookkeeping lock (run records, the gc guard, examples): held briefly
ENV_TIMEOUT = "TF2TRT_LOCK_TIMEOUT"
DEFAULT_TIMEOUT = 600.0
#: seconds to wait for a stage key's lock: its holder is building that stage (an optimize can take long)
ENV_STAGE_TIMEOUT = "TF2TRT_STAGE_LOCK_TIMEOUT"
DEFAULT_STAGE_TIMEOUT = 6 * 3600.0
#: a wait longer than this is logged at WARNING (visible without -v), then every NOTICE_EVERY seconds
NOTICE_AFTER = 5.0
NOTICE_EVERY = 60.0

_FIELD = re.compile(r"(\w+)=(\S+)")


class LockTimeout(EnvironmentProblem, TimeoutError):
    """A lock stayed held longer than the wait allows; names the lock file and its holder."""


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        log.warning("ignoring %s=%r (not a number of seconds); using %g", name, raw, default)
        return default
    return value if value > 0 else default


def default_timeout(stage: bool = False) -> float:
    """The configured wait limit: ``$TF2TRT_STAGE_LOCK_TIMEOUT`` for stage keys, else ``$TF2TRT_LOCK_TIMEOUT``."""
    return _env_seconds(ENV_STAGE_TIMEOUT, DEFAULT_STAGE_TIMEOUT) if stage else _env_seconds(ENV_TIMEOUT,
                                                                                           DEFAULT_TIMEOUT)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process on this host.

    A zombie counts as dead: it has closed its files and released its locks and ports, and
    in a container whose init never reaps orphans it stays a zombie for good.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read()
        return text[text.rindex(b")") + 2:][:1] not in (b"Z", b"X")
    except (OSError, ValueError):
        return True


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux ``/proc``), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    try:
        return int(text[text.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def holder_gone(info: dict) -> bool:
    """Whether the holder a lock file names is certainly dead: same host, and its pid gone or reused."""
    if info.get("host") != HOST:
        return False
    try:
        pid = int(info.get("pid", ""))
    except ValueError:
        return False
    if not pid_alive(pid):
        return True
    started = info.get("start")
    now = process_start(pid)
    return started is not None and now is not None and str(now) != started


def describe(info: dict, raw: str = "") -> str:
    """``pid 123 on host h since 12:00:01 UTC (45 s ago)`` for a parsed holder line."""
    if not info.get("pid"):
        return raw.strip() or "an unknown holder (a shared lock, or a holder that wrote nothing)"
    text = f"pid {info['pid']} on host {info.get('host', '?')}"
    since = info.get("since")
    if since:
        with contextlib.suppress(ValueError):
            when = datetime.fromisoformat(since.replace("Z", "+00:00"))
            ago = (datetime.now(timezone.utc) - when).total_seconds()
            text += f" since {when:%Y-%m-%d %H:%M:%S} UTC ({ago:.0f} s ago)"
    return text


def _secs(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


# (st_dev, st_ino) of every lock file a FileLock of this process holds, with a count (threads may share one)
_held: dict[tuple[int, int], int] = {}
_held_lock = threading.Lock()


class FileLock:
    """An exclusive (or shared) flock on ``path``; re-entrant per instance only.

    ``timeout`` is the default wait of :meth:`acquire` (None: :func:`default_timeout`).
    """

    def __init__(self, path: Path, shared: bool = False, timeout: float | None = None):
        self.path = Path(path)
        self.shared = shared
        self.timeout = timeout
        self.fd: int | None = None
        self._ident: tuple[int, int] | None = None

    # ----------------------------------------------------------- holder info
    def holder(self) -> str:
        """The raw holder line (``pid=… host=… since=…``) or "unknown"."""
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def holder_info(self) -> dict:
        try:
            raw = self.path.read_text()
        except OSError:
            return {}
        return dict(_FIELD.findall(raw.splitlines()[0] if raw.strip() else ""))

    def describe_holder(self) -> str:
        return describe(self.holder_info(), self.holder())

    # --------------------------------------------------------------- locking
    def try_acquire(self) -> bool:
        """Take the lock if it is free; never blocks.  On any error nothing stays open or locked."""
        if self.fd is not None:
            return True
        for _ in range(100):  # the file may be replaced (gc, a takeover) between open and flock
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), CREATE_MODE)
            except OSError as exc:
                if is_disk_full(exc):
                    raise DiskFull(self.path, 0, exc, hint=_FULL_HINT) from exc
                raise
            locked = False
            try:
                try:
                    fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                locked = True
                st = os.fstat(fd)
                try:
                    same = st.st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    continue  # unlocked and closed below; try the new file
                # registered before the holder line names this process (see _check_not_own_leak)
                self.fd, fd = fd, -1
                self._ident = (st.st_dev, st.st_ino)
                with _held_lock:
                    _held[self._ident] = _held.get(self._ident, 0) + 1
                if not self.shared:
                    self._write_holder(self.fd)
                return True
            finally:
                if fd >= 0:  # not handed over to self.fd: release whatever was taken
                    if locked:
                        with contextlib.suppress(OSError):
                            fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
        raise EnvironmentProblem(f"lock file {self.path} keeps being replaced while it is locked",
                                 "another process removes it in a loop; stop it (is a gc or cleanup script running?)")

    def _write_holder(self, fd: int) -> None:
        """Note who holds the lock, for waiters' messages and stale-holder checks.

        The note is advisory: on a full disk it cannot be written, and the lock is still held and
        correct, so a failed write is logged, not raised (raising here is what used to leak the lock).
        """
        start = process_start(os.getpid())
        line = (f"pid={os.getpid()} host={HOST} since={datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
                + (f" start={start}" if start is not None else "") + "\n").encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, line, 0)
        except OSError as exc:
            log.debug("could not note the holder in %s: %s", self.path, exc)

    def acquire(self, timeout: float | None = None, on_wait: Callable[[str], None] | None = None,
                poll: float = 0.05) -> None:
        """Block until acquired, at most ``timeout`` seconds (None: the lock's default); raises :class:`LockTimeout`.

        Polls (so the waiter can log, time out and take over a dead holder's lock) and logs whom it
        waits for: once at INFO, and at WARNING after :data:`NOTICE_AFTER` s and every
        :data:`NOTICE_EVERY` s while the wait goes on.
        """
        if timeout is None:
            timeout = self.timeout if self.timeout is not None else default_timeout()
        start = time.monotonic()
        told = False
        next_notice = start + NOTICE_AFTER
        while not self.try_acquire():
            now = time.monotonic()
            if not told:
                told = True
                if on_wait is not None:
                    on_wait(self.holder())
                self._check_not_own_leak()
                log.info("waiting for lock %s, held by %s", self.path, self.describe_holder())
            if self._take_over_if_stale():
                continue
            if now - start > timeout:
                raise LockTimeout(
                    f"timed out after {_secs(timeout)} waiting for lock {self.path}, held by {self.describe_holder()}",
                    f"if that process is stuck, stop it; a longer wait: set {ENV_TIMEOUT} (store locks) or "
                    f"{ENV_STAGE_TIMEOUT} (stage locks) in seconds")
            if now >= next_notice:
                log.warning("still waiting for lock %s after %s (timeout %s): held by %s", self.path,
                            _secs(now - start), _secs(timeout), self.describe_holder())
                next_notice = now + NOTICE_EVERY
            time.sleep(min(poll, max(0.0, timeout - (now - start)) + 0.01))
            poll = min(poll * 1.5, 0.5)

    def _check_not_own_leak(self) -> None:
        """Fail at once if this process holds the lock through a descriptor no FileLock owns (a leak)."""
        info = self.holder_info()
        if info.get("host") != HOST or info.get("pid") != str(os.getpid()):
            return
        mine = process_start(os.getpid())
        if info.get("start") is not None and mine is not None and info["start"] != str(mine):
            return  # an earlier process with this pid: a stale holder, taken over below
        try:
            st = os.stat(self.path)
        except OSError:
            return
        with _held_lock:
            ours = _held.get((st.st_dev, st.st_ino), 0) > 0
        if not ours:
            raise EnvironmentProblem(
                f"lock {self.path} is held by this very process ({os.getpid()}) through a descriptor no lock "
                "owns; waiting would never end", "this is a bug in tf2trt: please report it (run with -v)")

    def _take_over_if_stale(self) -> bool:
        """Unlink a lock file whose holder is dead while its flock is still held; True if done."""
        if self.shared:
            return False
        info = self.holder_info()
        if not holder_gone(info):
            return False
        try:
            seen = os.stat(self.path)
        except FileNotFoundError:
            return True
        guard_path = self.path.with_name(self.path.name + ".takeover")
        guard = FileLock(guard_path, timeout=10)
        if not guard.try_acquire():
            return False  # another waiter is taking it over; poll again
        try:
            # the same file, still naming the same dead holder: nobody took it over meanwhile
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                return True
            if (now.st_ino, now.st_dev) != (seen.st_ino, seen.st_dev) or self.holder_info() != info:
                return True
            log.warning("lock %s is held by %s, which is no longer running (a descriptor it left to a child "
                        "process?); taking it over", self.path, describe(info))
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return True
        finally:
            # a waiter that opened this guard file meanwhile finds it unlinked and opens a new one
            with contextlib.suppress(FileNotFoundError):
                guard_path.unlink()
            guard.release()

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        ident, self._ident = self._ident, None
        try:
            if not self.shared:  # the holder line goes before the registration does (see try_acquire)
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
            with _held_lock:
                if ident in _held:
                    _held[ident] -= 1
                    if _held[ident] <= 0:
                        del _held[ident]

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def __del__(self):
        # a lock object nobody references can never be released by anyone: let its descriptor go
        if getattr(self, "fd", None) is not None:
            with contextlib.suppress(Exception):
                log.debug("lock %s dropped while held; releasing it", self.path)
                self.release()


_FULL_HINT = "free disk space on the store's filesystem (tf2trt gc removes unreferenced blobs)"


class Lease:
    """A running build's claim on blobs: a flock-held file listing digests.

    ``gc`` treats a lease whose flock it can take as dead (its process is gone)
    and ignores and removes it; a live lease protects every digest it lists.
    A lease that cannot be written (a full disk) is removed and unlocked before
    the error is raised, so it never outlives the failure.
    """

    def __init__(self, directory: Path, label: str = "build"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFull(directory, None, exc, hint=_FULL_HINT) from exc
            raise
        self.path = directory / f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}.lease"
        self.label = label
        self._lock = FileLock(self.path)
        if not self._lock.try_acquire():  # pragma: no cover - fresh unique name
            raise RuntimeError(f"cannot lock new lease {self.path}")
        try:
            self._write({"pid": os.getpid(), "host": HOST, "label": label, "started": time.time()})
        except BaseException:
            self.close()
            raise

    def _write(self, record: dict) -> None:
        assert self._lock.fd is not None
        data = (json.dumps(record, sort_keys=True) + "\n").encode()
        try:
            end = os.lseek(self._lock.fd, 0, os.SEEK_END)
            n = os.write(self._lock.fd, data)
            if n != len(data):  # a short write on a nearly full disk: never leave half a record
                os.ftruncate(self._lock.fd, end)
                raise OSError(28, "No space left on device (short write)")
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFull(self.path, len(data), exc, hint=_FULL_HINT) from exc
            raise

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
    """Hold ``path``'s lock for the block; waits at most ``timeout`` (None: :func:`default_timeout`)."""
    lock = FileLock(path, shared=shared)
    lock.acquire(timeout=timeout, on_wait=on_wait)
    try:
        yield lock
    finally:
        lock.release()
