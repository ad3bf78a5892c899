"""Fault injection: make chosen file operations fail with an errno, at chosen files.

``Faults`` patches ``os.write``, ``os.pwrite``, ``os.fsync``, ``os.ftruncate``
(descriptor calls: the file is found through ``/proc/self/fd``) and
``os.replace``, ``os.rename``, ``os.link`` (path calls) so that a call whose file
matches a predicate raises ``OSError(errno)``.  Used in-process (with pytest's
monkeypatch) and in subprocess build scripts (``install``).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from typing import Callable

FD_CALLS = ("write", "pwrite", "fsync", "ftruncate")
PATH_CALLS = ("replace", "rename", "link")


def fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


@dataclass
class Faults:
    """Which calls fail, on which files (``match(path) -> bool``; for renames the destination), with which errno."""

    calls: tuple[str, ...]
    match: Callable[[str], bool]
    err: int = errno.ENOSPC
    hits: list[str] = field(default_factory=list)
    enabled: bool = True

    def _raise(self, call: str, path: str):
        self.hits.append(f"{call} {path}")
        raise OSError(self.err, os.strerror(self.err), path)

    def wrap(self, name: str, real):
        if name in FD_CALLS:
            def fd_call(fd, *args, **kwargs):
                if self.enabled:
                    path = fd_path(fd)
                    if path and self.match(path):
                        self._raise(name, path)
                return real(fd, *args, **kwargs)
            return fd_call

        def path_call(src, dst, *args, **kwargs):
            if self.enabled and self.match(os.fspath(dst)):
                self._raise(name, os.fspath(dst))
            return real(src, dst, *args, **kwargs)
        return path_call

    def install(self, monkeypatch=None) -> "Faults":
        for name in self.calls:
            real = getattr(os, name)
            if monkeypatch is not None:
                monkeypatch.setattr(os, name, self.wrap(name, real))
            else:
                setattr(os, name, self.wrap(name, real))
        return self


def under(*roots) -> Callable[[str], bool]:
    """A predicate: the path is inside one of ``roots``."""
    prefixes = [os.path.realpath(os.fspath(r)) + os.sep for r in roots]
    return lambda path: any(os.path.realpath(path).startswith(p) for p in prefixes)


def cross_directory_exdev(monkeypatch) -> list[str]:
    """Make renames and links between different directories fail with EXDEV, as across filesystems."""
    refused: list[str] = []
    for name in PATH_CALLS:
        real = getattr(os, name)

        def call(src, dst, *args, _real=real, _name=name, **kwargs):
            a = os.path.dirname(os.path.realpath(os.fspath(src)))
            b = os.path.dirname(os.path.realpath(os.fspath(dst)))
            if a != b:
                refused.append(f"{_name} {src} -> {dst}")
                raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), os.fspath(src), None, os.fspath(dst))
            return _real(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, name, call)
    return refused


def open_fds() -> set[str]:
    """This process's open descriptors, as the files they name (sockets and pipes included)."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        out.add(fd_path(int(fd)))
    out.discard("")
    return out
