"""The content-addressed artifact store.

Layout under the store root (``./artifacts``, ``--artifacts DIR`` or
``$TF2TRT_ARTIFACTS``)::

    blobs/ab/<blake3>        read-only artifact bytes (frozen graph, snapshot, engine, ...)
    blobs/ab/<blake3>.json   the blob's manifest: kind, size, which stage and key made it
    keys/<stage>/ab/<key>.json   stage manifests: the key's components and output digests (authoritative)
    index/                   diskcache of stage key -> manifest, JSON values only (a local accelerator)
    runs/<config-id>.json    each config's last run per stage (``tf2trt status``, rebuild reasons)
    examples/<spec>.keras    generated keras.applications example models, named by their spec hash
    timing/<slot>.json       the latest timing cache digest per TensorRT flavor/version/target
    locks/  leases/  tmp/    flock files, running builds' claims, partial writes

Writes are atomic (temp file in ``tmp/``, fsync, rename, fsync of the
directory) so a killed writer leaves at most a temp file that is never served
and is swept by the next store open or ``gc``.  Reads re-hash blobs: a blob
whose bytes no longer match its name is moved to ``corrupt/`` and reported,
never served.

Files follow the umask (:mod:`converter._io`): created ``0o666 & ~umask``;
blobs then lose their write bits (immutable: ``mode & ~0o222``).  A full disk
or exhausted quota anywhere in the store raises :class:`StoreFull` (an
:class:`~converter.errors.EnvironmentProblem`, exit 2) naming the file and the
bytes it needed, after removing the temp file and releasing every lock taken.
Blobs are copied out (:meth:`ArtifactStore.place_blob`) through a temp file
beside the destination, so the destination may be on another filesystem.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import blake3
import diskcache

from converter._io import (DiskFull, create_new, fsync_dir, is_disk_full, make_read_only, temp_name_beside,
                           write_all)

from .hashing import DIGEST_LEN, canonical_json, hash_bytes, hash_file
from .locks import HOST, FileLock, Lease, default_timeout, live_lease_claims, locked, pid_alive

log = logging.getLogger(__name__)

ENV_ARTIFACTS = "TF2TRT_ARTIFACTS"
ENV_INDEX = "TF2TRT_INDEX_DIR"
_HEX = re.compile(r"^[0-9a-f]{%d}$" % DIGEST_LEN)
_TMP_NAME = re.compile(r"^(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]+\.tmp$")
#: temp files beside a placed engine: ``.<name>.tf2trt-<host>-<pid>-<hex>.tmp``
_BESIDE_TMP = re.compile(r"^\.(?P<name>.+)\.tf2trt-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{12}\.tmp$")
_COPY_CHUNK = 8 << 20
STORE_FULL_HINT = ("free space on the store's filesystem (`tf2trt gc` removes blobs no build uses) or point the "
                   "store at a larger one with --artifacts / $TF2TRT_ARTIFACTS")


class StoreFull(DiskFull):
    """The store's filesystem is full (ENOSPC) or its quota exhausted (EDQUOT): exit 2, path and size named."""

    def __init__(self, path, needed: int | None = None, cause: OSError | None = None):
        super().__init__(path, needed, cause, hint=STORE_FULL_HINT)


@contextlib.contextmanager
def disk_errors(path: Path, needed: int | None = None) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT raised in the block into :class:`StoreFull` naming ``path``."""
    try:
        yield
    except DiskFull:
        raise
    except OSError as exc:
        if is_disk_full(exc):
            raise StoreFull(path, needed, exc) from exc
        raise


def beside_tmp(dest: Path) -> Path:
    """A temp name beside ``dest`` that says which process wrote it (so a dead writer's can be swept)."""
    return temp_name_beside(Path(dest), f"tf2trt-{HOST}-{os.getpid()}-")


def sweep_beside(dest: Path) -> int:
    """Remove temp files beside ``dest`` left by dead placements on this host (a build killed mid-copy)."""
    removed = 0
    dest = Path(dest)
    with contextlib.suppress(OSError):
        for path in dest.parent.glob(f".{glob_escape(dest.name)}.tf2trt-*.tmp"):
            m = _BESIDE_TMP.match(path.name)
            if m and m.group("host") == HOST and not pid_alive(int(m.group("pid"))):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


class CorruptBlob(Exception):
    """A blob's bytes no longer hash to its name."""

    def __init__(self, digest: str, actual: str | None):
        self.digest, self.actual = digest, actual
        super().__init__(f"blob {digest[:16]} failed its hash check"
                         + (f" (now hashes to {actual[:16]})" if actual else " (missing)"))


class JSONOnlyDisk(diskcache.Disk):
    """A diskcache Disk that stores only JSON text and never unpickles.

    diskcache's default Disk pickles values; a writable cache directory full of
    pickles executes whatever someone writes into it.  Keys are plain strings
    and values JSON text; any row in another mode is refused.
    """

    def put(self, key):
        if not isinstance(key, str):
            raise TypeError("index keys are strings")
        return key, True

    def get(self, key, raw):
        if not raw or not isinstance(key, str):
            raise ValueError("refusing a non-string index key")
        return key

    def store(self, value, read, key=diskcache.core.UNKNOWN):
        if read:
            raise ValueError("the index stores JSON values only")
        return super().store(canonical_json(value).decode("utf-8"), False, key=key)

    def fetch(self, mode, filename, value, read):
        if read or mode not in (diskcache.core.MODE_RAW, diskcache.core.MODE_TEXT):
            raise ValueError(f"refusing an index row in mode {mode} (only JSON text is stored)")
        text = super().fetch(mode, filename, value, read)
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_root() -> Path:
    return Path(os.environ.get(ENV_ARTIFACTS) or "artifacts")


#: what marks a project's top directory (the repository of the configs)
PROJECT_MARKERS = (".git", "pyproject.toml")


def project_root(directory: Path) -> Path:
    """The nearest ancestor of ``directory`` (itself included) holding ``.git`` or ``pyproject.toml``;
    ``directory`` itself when there is none."""
    directory = Path(directory).resolve()
    for d in (directory, *directory.parents):
        if any((d / m).exists() for m in PROJECT_MARKERS):
            return d
    return directory


def new_store_warning(root: Path, config_paths: list[Path]) -> str | None:
    """A warning when ``root`` does not exist yet and lies outside the project of every config, else None.

    The default store is ``./artifacts`` of the *current directory*: run from elsewhere, a build would
    silently start an empty store and rebuild everything.  The warning says so, and names the project's
    own store when it has one.
    """
    root = Path(root).resolve()
    if root.exists() or not config_paths:
        return None
    projects = list(dict.fromkeys(project_root(Path(p).resolve().parent) for p in config_paths))
    if any(root.is_relative_to(p) for p in projects):
        return None
    text = (f"creating a new, empty artifact store {root} outside the project {projects[0]}: nothing built "
            f"before is reused there (every stage runs)")
    existing = next((p / "artifacts" for p in projects if (p / "artifacts" / "blobs").is_dir()), None)
    if existing is not None:
        return text + f"; to reuse the project's store, run from {existing.parent} or pass --artifacts {existing}"
    return text + f"; pass --artifacts DIR or set ${ENV_ARTIFACTS} to choose where the store lives"


_fsync_dir = fsync_dir


class ArtifactStore:
    def __init__(self, root: str | os.PathLike | None = None, index_dir: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.root = self.root.resolve()
        for sub in ("blobs", "keys", "runs", "examples", "timing", "locks", "leases", "tmp"):
            with disk_errors(self.root / sub, 0):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.index_dir = Path(index_dir or os.environ.get(ENV_INDEX) or (self.root / "index"))
        self._index: diskcache.Cache | None = None
        self._index_lock = threading.Lock()
        self._verified: dict[str, tuple] = {}

    # ------------------------------------------------------------------ paths
    def blob_path(self, digest: str) -> Path:
        if not _HEX.match(digest):
            raise ValueError(f"not a blob digest: {digest!r}")
        return self.root / "blobs" / digest[:2] / digest

    def blob_manifest_path(self, digest: str) -> Path:
        return self.blob_path(digest).with_name(digest + ".json")

    def key_path(self, stage: str, key: str) -> Path:
        return self.root / "keys" / stage / key[:2] / f"{key}.json"

    def lock_path(self, name: str) -> Path:
        return self.root / "locks" / f"{name}.lock"

    @property
    def index(self) -> diskcache.Cache:
        with self._index_lock:
            if self._index is None:
                self._index = diskcache.Cache(
                    str(self.index_dir), disk=JSONOnlyDisk, disk_min_file_size=1 << 20,
                    eviction_policy="none", statistics=0, timeout=60)
            return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    # ------------------------------------------------------------ atomic I/O
    def _tmp(self) -> Path:
        return self.root / "tmp" / f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp"

    def atomic_write(self, dest: Path, data: bytes, read_only: bool = False) -> None:
        """Write ``data`` to ``dest`` atomically (temp, fsync, rename, fsync dir); the umask rule of ``_io``.

        The temp file is in the store's ``tmp/`` (swept by name if the writer dies) when ``dest`` is in
        the store, else beside ``dest``: a rename never crosses a filesystem.  ``read_only`` drops the
        write bits (blobs).  A full disk raises :class:`StoreFull`; nothing half-written stays.
        """
        dest = Path(dest)
        inside = dest.is_relative_to(self.root)
        tmp = self._tmp() if inside else beside_tmp(dest)
        with disk_errors(dest, len(data)):
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd = create_new(tmp)
            try:
                try:
                    write_all(fd, data)
                    os.fsync(fd)
                    if read_only:
                        make_read_only(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, dest)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                raise
        _fsync_dir(dest.parent)

    def write_json(self, dest: Path, value: Any) -> None:
        self.atomic_write(dest, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())

    @staticmethod
    def read_json(path: Path) -> Any | None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", path, exc)
            return None

    # ------------------------------------------------------------------ blobs
    def put_blob(self, data: bytes, kind: str, lease: Lease | None = None,
                 producer: dict | None = None) -> dict:
        """Store bytes under their blake3 digest.  Returns ``{"digest", "bytes"}``."""
        digest = hash_bytes(data)
        if lease is not None:
            lease.claim(digest)
        dest = self.blob_path(digest)
        with self.gc_guard():
            if not self.verify_blob(digest, quiet=True):
                self.atomic_write(dest, data, read_only=True)
                self._verified.pop(digest, None)
            meta_path = self.blob_manifest_path(digest)
            if not meta_path.exists():
                self.write_json(meta_path, {"digest": digest, "bytes": len(data), "kind": kind,
                                            "created": now_iso(), "producer": producer or {}})
        return {"digest": digest, "bytes": len(data)}

    def put_file(self, path: Path, kind: str, lease: Lease | None = None, producer: dict | None = None) -> dict:
        return self.put_blob(Path(path).read_bytes(), kind, lease=lease, producer=producer)

    def verify_blob(self, digest: str, quiet: bool = False) -> bool:
        """Whether the blob exists and hashes to its name (a corrupt one is quarantined)."""
        path = self.blob_path(digest)
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if self._verified.get(digest) == stamp:
            return True
        actual = hash_file(path)
        if actual != digest:
            self._quarantine(digest, actual, quiet)
            return False
        self._verified[digest] = stamp
        return True

    def _quarantine(self, digest: str, actual: str, quiet: bool) -> None:
        path = self.blob_path(digest)
        dest = self.root / "corrupt" / f"{digest}.{uuid.uuid4().hex[:8]}"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
        except FileNotFoundError:
            pass
        except OSError as exc:  # e.g. a full disk cannot grow corrupt/: never keep serving the bad bytes
            log.warning("could not move the corrupt blob %s to %s (%s); removing it", digest[:16], dest, exc)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._verified.pop(digest, None)
        (log.info if quiet else log.warning)(
            "blob %s failed its hash check (hashes to %s); moved to %s", digest[:16], actual[:16], dest)

    def read_blob(self, digest: str) -> bytes:
        """The blob's bytes, verified; raises :class:`CorruptBlob` if missing or altered."""
        path = self.blob_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CorruptBlob(digest, None) from None
        actual = hash_bytes(data)
        if actual != digest:
            self._quarantine(digest, actual, quiet=False)
            raise CorruptBlob(digest, actual)
        return data

    def export_blob(self, digest: str, dest: Path) -> None:
        """Copy a verified blob to ``dest`` atomically (a writable copy); see :meth:`place_blob`."""
        self.place_blob(digest, Path(dest))

    def place_blob(self, digest: str, dest: Path) -> int:
        """Copy a blob to ``dest`` on any filesystem; returns its size.

        Copies into a temp file beside ``dest`` (``.<name>.tf2trt-<host>-<pid>-….tmp``), hashing the
        bytes on the way, fsyncs, checks the digest, then renames: the rename never crosses a
        filesystem (no "Invalid cross-device link" when the store is on NFS and the output local), no
        second copy is made inside the store, and ``dest`` either keeps its old content or has the
        whole verified blob.  The copy follows the umask (writable: it is the user's file).  Raises
        :class:`CorruptBlob` (blob quarantined) or :class:`~converter._io.DiskFull` naming ``dest``.
        """
        src = self.blob_path(digest)
        dest = Path(dest)
        try:
            fd_in = os.open(src, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise CorruptBlob(digest, None) from None
        tmp = beside_tmp(dest)
        try:
            size = os.fstat(fd_in).st_size
            hasher = blake3.blake3()
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                fd_out = create_new(tmp)
                try:
                    while chunk := os.read(fd_in, _COPY_CHUNK):
                        hasher.update(chunk)
                        write_all(fd_out, chunk)
                    os.fsync(fd_out)
                finally:
                    os.close(fd_out)
                actual = hasher.hexdigest()
                if actual != digest:
                    self._quarantine(digest, actual, quiet=False)
                    raise CorruptBlob(digest, actual)
                os.replace(tmp, dest)
            except BaseException as exc:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                if is_disk_full(exc):
                    raise DiskFull(dest, size, exc,  # type: ignore[arg-type]
                                   hint="free space on the output's filesystem, or set `output:` elsewhere") from exc
                raise
        finally:
            os.close(fd_in)
        _fsync_dir(dest.parent)
        return size

    # ----------------------------------------------------------- stage index
    def get_manifest(self, stage: str, key: str) -> dict | None:
        ikey = f"{stage}/{key}"
        try:
            value = self.index.get(ikey)
        except Exception as exc:  # noqa: BLE001 - the index is only an accelerator
            log.warning("index read failed (%s); using manifest files", exc)
            value = None
        if value is not None:
            return value
        value = self.read_json(self.key_path(stage, key))
        if value is not None:
            with contextlib.suppress(Exception):
                self.index.set(ikey, value)
        return value

    def put_manifest(self, manifest: dict) -> None:
        stage, key = manifest["stage"], manifest["key"]
        with self.gc_guard():
            self.write_json(self.key_path(stage, key), manifest)
            try:
                self.index.set(f"{stage}/{key}", manifest)
            except Exception as exc:  # noqa: BLE001
                log.warning("index write failed (%s); the manifest file is authoritative", exc)

    def drop_manifest(self, stage: str, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.key_path(stage, key).unlink()
        with contextlib.suppress(Exception):
            self.index.delete(f"{stage}/{key}")

    def iter_manifests(self) -> Iterator[dict]:
        for path in sorted((self.root / "keys").glob("*/*/*.json")):
            m = self.read_json(path)
            if isinstance(m, dict):
                yield m

    # ------------------------------------------------------------- run records
    def run_record_path(self, config_id: str) -> Path:
        return self.root / "runs" / f"{config_id}.json"

    def update_run(self, config_id: str, fn) -> dict:
        """Read-modify-write a config's run record under its lock (released whatever fails inside)."""
        with locked(self.lock_path(f"run-{config_id}")):
            path = self.run_record_path(config_id)
            record = self.read_json(path) or {}
            record = fn(record) or record
            self.write_json(path, record)
            return record

    def load_run(self, config_id: str) -> dict | None:
        return self.read_json(self.run_record_path(config_id))

    def iter_runs(self) -> Iterator[tuple[str, dict]]:
        for path in sorted((self.root / "runs").glob("*.json")):
            rec = self.read_json(path)
            if isinstance(rec, dict):
                yield path.stem, rec

    # ------------------------------------------------------------ timing cache
    def timing_slot_path(self, slot: str) -> Path:
        return self.root / "timing" / f"{hash_bytes(slot.encode())[:24]}.json"

    def get_timing_cache(self, slot: str) -> str | None:
        rec = self.read_json(self.timing_slot_path(slot))
        if rec and self.verify_blob(rec["digest"]):
            return rec["digest"]
        return None

    def set_timing_cache(self, slot: str, digest: str) -> None:
        self.write_json(self.timing_slot_path(slot), {"slot": slot, "digest": digest, "updated": now_iso()})

    # ------------------------------------------------------------ concurrency
    def lease(self, label: str = "build") -> Lease:
        return Lease(self.root / "leases", label)

    @contextlib.contextmanager
    def gc_guard(self) -> Iterator[None]:
        """Held (shared) while a blob or manifest is written; gc takes it exclusively."""
        with locked(self.lock_path("gc"), shared=True):
            yield

    def stage_lock(self, stage: str, key: str) -> FileLock:
        """The lock a stage key is built under; waits up to ``$TF2TRT_STAGE_LOCK_TIMEOUT`` (a build is long)."""
        return FileLock(self.lock_path(f"{stage}-{key[:40]}"), timeout=default_timeout(stage=True))

    def sweep_tmp(self, max_age: float = 24 * 3600) -> int:
        """Remove temp files whose writer is dead (this host) or that are very old."""
        removed = 0
        if not (self.root / "tmp").is_dir():
            return removed
        for path in (self.root / "tmp").iterdir():
            m = _TMP_NAME.match(path.name)
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue
            dead = m is not None and m.group("host") == HOST and not pid_alive(int(m.group("pid")))
            if dead or age > max_age:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink()
                    removed += 1
        return removed

    # ------------------------------------------------------------------- gc
    def referenced_digests(self) -> set[str]:
        refs: set[str] = set()
        for m in self.iter_manifests():
            for out in (m.get("outputs") or {}).values():
                if isinstance(out, dict) and out.get("digest"):
                    refs.add(out["digest"])
        for path in (self.root / "timing").glob("*.json"):
            rec = self.read_json(path)
            if rec and rec.get("digest"):
                refs.add(rec["digest"])
        return refs

    def gc(self, dry_run: bool = False, prune_manifests: bool = True, grace: float = 600.0) -> dict:
        """Remove blobs no manifest references and no running build claims.

        With ``prune_manifests``, stage manifests that no config's last run
        uses are dropped first (runs of config files that no longer exist are
        forgotten), so superseded builds become collectable.  Manifests younger
        than ``grace`` seconds are kept: a running build records its run just
        after writing its manifest.
        """
        report = {"removed_blobs": 0, "freed_bytes": 0, "kept_blobs": 0, "pruned_manifests": 0,
                  "claimed_by_running_builds": 0, "live_builds": 0, "stale_leases": 0, "temp_files": 0,
                  "lock_files": 0, "dry_run": dry_run}
        with locked(self.lock_path("gc")):
            if prune_manifests:
                live_keys: set[tuple[str, str]] = set()
                for cid, rec in list(self.iter_runs()):
                    cfg = rec.get("config")
                    if cfg and not Path(cfg).exists():
                        if not dry_run:
                            with contextlib.suppress(FileNotFoundError):
                                self.run_record_path(cid).unlink()
                        continue
                    for name, st in (rec.get("stages") or {}).items():
                        if st.get("key"):
                            live_keys.add((name, st["key"]))
                now = time.time()
                for m in list(self.iter_manifests()):
                    try:
                        age = now - self.key_path(m["stage"], m["key"]).stat().st_mtime
                    except (KeyError, OSError):
                        continue
                    if (m.get("stage"), m.get("key")) not in live_keys and age >= grace:
                        report["pruned_manifests"] += 1
                        if not dry_run:
                            self.drop_manifest(m["stage"], m["key"])
            claims, live, stale = live_lease_claims(self.root / "leases")
            report["live_builds"], report["stale_leases"] = live, stale
            refs = self.referenced_digests()
            for meta in sorted((self.root / "blobs").glob("*/*")):
                name = meta.name
                digest = name[:-5] if name.endswith(".json") else name
                if not _HEX.match(digest) or name.endswith(".json"):
                    continue
                if digest in refs:
                    report["kept_blobs"] += 1
                    continue
                if digest in claims:
                    report["claimed_by_running_builds"] += 1
                    continue
                size = meta.stat().st_size
                report["removed_blobs"] += 1
                report["freed_bytes"] += size
                if not dry_run:
                    with contextlib.suppress(FileNotFoundError):
                        meta.unlink()
                    with contextlib.suppress(FileNotFoundError):
                        self.blob_manifest_path(digest).unlink()
                    self._verified.pop(digest, None)
            # blob manifests whose blob is gone
            if not dry_run:
                for meta in (self.root / "blobs").glob("*/*.json"):
                    if not meta.with_name(meta.name[:-5]).exists():
                        meta.unlink()
                report["temp_files"] = self.sweep_tmp()
                report["lock_files"] = self._sweep_locks()
        if not dry_run:
            with contextlib.suppress(Exception):
                self.index.expire()
        return report

    def _sweep_locks(self) -> int:
        removed = 0
        for path in (self.root / "locks").glob("*.lock"):
            if path.name == "gc.lock":
                continue
            probe = FileLock(path)
            if probe.try_acquire():
                try:
                    path.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
                finally:
                    probe.release()
        return removed

    def disk_usage(self) -> dict:
        blobs = [p for p in (self.root / "blobs").glob("*/*") if not p.name.endswith(".json")]
        return {"blobs": len(blobs), "bytes": sum(p.stat().st_size for p in blobs)}
