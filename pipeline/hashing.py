"""Content hashing: canonical JSON, blake3 digests of bytes, files and trees.

Cache keys are the blake3 digest of the canonical JSON of a flat dict of key
components (as DVC's run cache does), so two keys are equal exactly when every
component is equal, and a changed key can be explained component by component.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import blake3

#: Hex digest length of blake3 (256 bit).
DIGEST_LEN = 64


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    return blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest()


def hash_file(path: str | os.PathLike) -> str:
    """blake3 of a file's bytes (memory-mapped, multi-threaded)."""
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    if os.path.getsize(path) == 0:
        return hasher.hexdigest()
    hasher.update_mmap(os.fspath(path))
    return hasher.hexdigest()


def _tree_files(root: Path, suffixes: Iterable[str] | None = None) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for name in sorted(filenames):
            if suffixes is not None and not any(name.endswith(s) for s in suffixes):
                continue
            files.append(Path(dirpath) / name)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def hash_tree(root: str | os.PathLike, suffixes: Iterable[str] | None = None) -> str:
    """Digest of a directory: relative POSIX paths and the bytes of every file.

    Paths inside the tree matter (a SavedModel's ``variables/`` layout is part of
    the model); the tree's own location does not.
    """
    root = Path(root)
    listing = {p.relative_to(root).as_posix(): hash_file(p) for p in _tree_files(root, suffixes)}
    return hash_bytes(canonical_json({"tree": listing}))


def hash_path(path: str | os.PathLike) -> str:
    path = Path(path)
    return hash_tree(path) if path.is_dir() else hash_file(path)


def hash_listing(root: str | os.PathLike, entries: Iterable[str],
                 suffixes: Iterable[str] | None = (".py",)) -> dict[str, str]:
    """``{relative path: blake3}`` of the files ``entries`` name under ``root``.

    An entry ending in ``/`` names a directory: every file in it (with one of
    ``suffixes``) is listed on its own, so a changed key can say which file
    changed.  A missing entry raises: a renamed module must not silently drop
    out of the keys that list it.
    """
    root = Path(root)
    listing: dict[str, str] = {}
    for entry in entries:
        path = root / entry.rstrip("/")
        if entry.endswith("/"):
            if not path.is_dir():
                raise FileNotFoundError(f"{path} (listed as {entry!r}) is not a directory")
            for f in _tree_files(path, suffixes):
                listing[f.relative_to(root).as_posix()] = hash_file(f)
        else:
            if not path.is_file():
                raise FileNotFoundError(f"{path} (listed as {entry!r}) does not exist")
            listing[Path(entry).as_posix()] = hash_file(path)
    return dict(sorted(listing.items()))


def key_of(components: dict[str, Any]) -> str:
    return hash_bytes(canonical_json(components))


def json_safe(value: Any) -> Any:
    """Make a value canonical-JSON safe (tuples to lists, non-finite floats to strings)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Path):
        return value.as_posix()
    return value


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts into dotted keys (lists stay values)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted names whose values differ between two component dicts."""
    a, b = flatten(old), flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, _MISSING) != b.get(k, _MISSING))


_MISSING = object()
