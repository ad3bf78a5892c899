"""``tf2trt store check [--repair]``: verify every blob, manifest and index entry of the artifact store.

A build trusts the store: a cached stage is served from its manifest, and a
blob is re-hashed only when it is read.  After a crash, a full disk, a bad NFS
day or someone editing files by hand, ``store check`` says what is damaged
before a build trips over it, and ``--repair`` makes the store consistent
again — by forgetting, never by inventing: a manifest whose blob is gone is
dropped, so the next build rebuilds that stage.

================================================  ========  =====================================================
finding                                           damage?   what ``--repair`` does
================================================  ========  =====================================================
blob whose bytes do not hash to its name          yes       moves it to ``corrupt/``; manifests using it dropped
stage manifest unreadable, or not its stage/key   yes       moves it to ``corrupt/`` (and its index entry goes)
stage manifest naming a missing or corrupt blob   yes       drops it: the next build rebuilds that stage
index entry that disagrees with its manifest      yes       deletes the entry (the index is only an accelerator;
file, has none, or is a row the index refuses               the manifest files are authoritative)
index database unreadable                         yes       moves the index directory aside (rebuilt on use)
timing-cache slot unreadable                      yes       removes it
blob manifest (``.json`` beside a blob) missing   no        rewrites it from the blob (kind ``unknown``)
or unreadable; one whose blob is gone                       / removes it
timing slot naming a missing blob; unreadable     no        removes it
run record; stray file in ``blobs/``
temp file of a dead writer (``tmp/``, or older    no        removes it
than a day); lease of a dead build; lock file
still locked by a dead holder's inherited
descriptor
================================================  ========  =====================================================

Exit codes: 0 when no damage remains (leftovers are listed, and removed with
``--repair``), 2 when damage remains.  ``--repair`` holds the store's gc lock
exclusively while it works, so running builds pause their writes instead of
racing it; a plain check takes no lock and re-checks a blob a manifest names
before calling it missing (a build may have just written both).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from .hashing import hash_file
from .locks import HOST, FileLock, holder_gone, locked, pid_alive
from .store import _HEX, _TMP_NAME, ArtifactStore, default_root, now_iso

log = logging.getLogger(__name__)

EXIT_CLEAN, EXIT_DAMAGED = 0, 2
TMP_MAX_AGE = 24 * 3600.0


def _read_json(path: Path):
    """The JSON in ``path``, or None if it is missing or unreadable (the check reports it; no warning here)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class Finding:
    """One thing wrong in the store: what, where, whether it is damage, and what repair did."""

    kind: str
    path: str
    detail: str
    damage: bool = True
    repaired: bool = False
    action: str | None = None


class _Check:
    def __init__(self, store: ArtifactStore, repair: bool):
        self.store, self.repair = store, repair
        self.findings: list[Finding] = []
        self.good: set[str] = set()
        self.bad: set[str] = set()
        self.counts = {"blobs": 0, "stage_manifests": 0, "index_entries": 0, "timing_slots": 0, "runs": 0}

    def add(self, kind: str, path: Path | str, detail: str, damage: bool = True, fix=None,
            action: str | None = None) -> Finding:
        """Record a finding; with --repair run ``fix`` (a callable) and note whether it worked."""
        finding = Finding(kind, str(path), detail, damage)
        if self.repair and fix is not None:
            try:
                fix()
                finding.repaired, finding.action = True, action
            except Exception as exc:  # noqa: BLE001 - report what could not be repaired
                finding.action = f"repair failed: {type(exc).__name__}: {exc}"
        self.findings.append(finding)
        return finding

    def set_aside(self, path: Path) -> None:
        """Move a damaged file into ``corrupt/`` (kept for inspection, never served)."""
        dest = self.store.root / "corrupt" / f"{path.parent.name}-{path.name}.{uuid.uuid4().hex[:8]}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        path.replace(dest)

    # ---------------------------------------------------------------- blobs
    def blobs(self) -> None:
        root = self.store.root / "blobs"
        metas: list[Path] = []
        for path in sorted(root.glob("*/*")):
            name = path.name
            if path.is_dir():
                continue
            if name.endswith(".json"):
                metas.append(path)
                continue
            if not (_HEX.match(name) and path.parent.name == name[:2]):
                self.add("stray file", path, "not a blob name (blobs/<ab>/<blake3>): never served", damage=False,
                         fix=lambda p=path: self.set_aside(p), action="moved to corrupt/")
                continue
            self.counts["blobs"] += 1
            try:
                actual = hash_file(path)
            except OSError as exc:
                actual = f"unreadable ({exc})"
            if actual == name:
                self.good.add(name)
                continue
            self.bad.add(name)
            self.add("corrupt blob", path, f"hashes to {actual[:16]}, not its name {name[:16]}",
                     fix=lambda d=name, a=actual: self.store._quarantine(d, a, quiet=True),
                     action="moved to corrupt/")
        for meta in metas:
            digest = meta.name[:-5]
            blob = meta.with_name(digest)
            if not blob.exists():
                self.add("orphan blob manifest", meta, "its blob is gone", damage=False,
                         fix=meta.unlink, action="removed")
                continue
            value = _read_json(meta) if _HEX.match(digest) else None
            if not (isinstance(value, dict) and value.get("digest") == digest):
                self.add("unreadable blob manifest", meta, "not the JSON manifest of this blob", damage=False,
                         fix=lambda d=digest, b=blob: self._rewrite_blob_manifest(d, b), action="rewritten")
        for digest in sorted(self.good):
            if not self.store.blob_manifest_path(digest).exists():
                self.add("missing blob manifest", self.store.blob_manifest_path(digest), "the blob has no manifest",
                         damage=False, fix=lambda d=digest: self._rewrite_blob_manifest(d, self.store.blob_path(d)),
                         action="rewritten")

    def _rewrite_blob_manifest(self, digest: str, blob: Path) -> None:
        self.store.write_json(self.store.blob_manifest_path(digest), {
            "digest": digest, "bytes": blob.stat().st_size, "kind": "unknown", "created": now_iso(),
            "producer": {}, "repaired": "tf2trt store check --repair"})

    def blob_ok(self, digest: str) -> bool:
        """Whether a digest names a good blob (re-checked on disk if it appeared after the scan)."""
        if digest in self.good:
            return True
        if digest in self.bad or not isinstance(digest, str) or not _HEX.match(digest):
            return False
        path = self.store.blob_path(digest)
        with contextlib.suppress(OSError):
            if hash_file(path) == digest:
                self.good.add(digest)
                return True
        return False

    # ------------------------------------------------------ stage manifests
    def manifests(self) -> None:
        for path in sorted((self.store.root / "keys").glob("*/*/*.json")):
            self.counts["stage_manifests"] += 1
            stage, key = path.parts[-3], path.stem
            value = _read_json(path)
            if not isinstance(value, dict):
                self.add("unreadable stage manifest", path, f"{stage} key {key[:12]}: not a JSON object",
                         fix=lambda p=path, s=stage, k=key: self._set_aside_manifest(p, s, k),
                         action="moved to corrupt/ (the stage rebuilds)")
                continue
            if value.get("stage") != stage or value.get("key") != key:
                self.add("misplaced stage manifest", path,
                         f"says stage {value.get('stage')!r} key {str(value.get('key'))[:12]!r}",
                         fix=lambda p=path, s=stage, k=key: self._set_aside_manifest(p, s, k),
                         action="moved to corrupt/ (the stage rebuilds)")
                continue
            outputs = value.get("outputs")
            broken = []
            if not isinstance(outputs, dict):
                broken.append("outputs is not a mapping")
            else:
                for role, out in outputs.items():
                    digest = out.get("digest") if isinstance(out, dict) else None
                    if not self.blob_ok(digest):
                        state = ("corrupt" if digest in self.bad else "missing") if isinstance(digest, str) else "no digest"
                        broken.append(f"{role} blob {str(digest)[:12]} is {state}")
            if broken:
                self.add("manifest with a bad blob", path, f"{stage} key {key[:12]}: " + "; ".join(broken),
                         fix=lambda s=stage, k=key: self.store.drop_manifest(s, k),
                         action="dropped (the next build rebuilds this stage)")

    def _set_aside_manifest(self, path: Path, stage: str, key: str) -> None:
        self.set_aside(path)
        with contextlib.suppress(Exception):
            self.store.index.delete(f"{stage}/{key}")

    # ---------------------------------------------------------------- index
    def index(self) -> None:
        try:
            cache = self.store.index
            keys = list(cache.iterkeys())
        except Exception as exc:  # noqa: BLE001 - sqlite3.DatabaseError and friends
            self.add("unreadable index", self.store.index_dir, f"{type(exc).__name__}: {exc}",
                     fix=self._set_aside_index, action="moved aside (rebuilt from the manifest files on use)")
            return
        for ikey in keys:
            self.counts["index_entries"] += 1
            where = f"{self.store.index_dir} [{ikey}]"
            stage, _, key = str(ikey).partition("/")
            try:
                value = cache.get(ikey)
            except Exception as exc:  # noqa: BLE001 - JSONOnlyDisk refuses pickles and other modes
                self.add("refused index row", where, f"{exc}", fix=lambda k=ikey: cache.delete(k), action="deleted")
                continue
            on_disk = _read_json(self.store.key_path(stage, key)) if stage and _HEX.match(key) else None
            if on_disk is None:
                self.add("index entry without manifest", where, "no manifest file backs it",
                         fix=lambda k=ikey: cache.delete(k), action="deleted")
            elif value != on_disk:
                self.add("stale index entry", where, "differs from its manifest file",
                         fix=lambda k=ikey: cache.delete(k), action="deleted (refilled from the file on use)")

    def _set_aside_index(self) -> None:
        self.store.close()
        dest = self.store.root / "corrupt" / f"index-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.store.index_dir), str(dest))

    # ------------------------------------------------------- small records
    def records(self) -> None:
        for path in sorted((self.store.root / "timing").glob("*.json")):
            self.counts["timing_slots"] += 1
            rec = _read_json(path)
            if not isinstance(rec, dict) or not isinstance(rec.get("digest"), str):
                self.add("unreadable timing slot", path, "not a timing-cache record", fix=path.unlink,
                         action="removed")
            elif not self.blob_ok(rec["digest"]):
                self.add("timing slot without blob", path, f"timing cache {rec['digest'][:12]} is missing or corrupt",
                         damage=False, fix=path.unlink, action="removed (the next build starts a new cache)")
        for path in sorted((self.store.root / "runs").glob("*.json")):
            self.counts["runs"] += 1
            if not isinstance(_read_json(path), dict):
                self.add("unreadable run record", path, "not a JSON object", damage=False, fix=path.unlink,
                         action="removed (status forgets this config's last run)")

    # ------------------------------------------------------------ leftovers
    def leftovers(self) -> None:
        tmp = self.store.root / "tmp"
        for path in sorted(tmp.iterdir()) if tmp.is_dir() else []:
            m = _TMP_NAME.match(path.name)
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue
            dead = m is not None and m.group("host") == HOST and not pid_alive(int(m.group("pid")))
            if dead or age > TMP_MAX_AGE:
                why = "its writer is dead" if dead else f"{age / 3600:.0f} h old"
                self.add("orphan temp file", path, why, damage=False,
                         fix=lambda p=path: shutil.rmtree(p) if p.is_dir() else p.unlink(), action="removed")
        for path in sorted((self.store.root / "leases").glob("*.lease")):
            probe = FileLock(path, shared=True)  # shared: probing writes nothing into the lease
            if probe.try_acquire():
                probe.release()
                self.add("stale lease", path, "its build is gone", damage=False, fix=path.unlink, action="removed")
        for path in sorted((self.store.root / "locks").glob("*.lock")):
            probe = FileLock(path, shared=True)
            if probe.try_acquire():
                probe.release()
                continue
            if holder_gone(probe.holder_info()):
                self.add("lock held by a dead holder", path,
                         f"{probe.describe_holder()} is gone; a child process inherited the locked descriptor",
                         damage=False, fix=path.unlink, action="removed (the next waiter locks a new file)")


def check_store(root: str | Path | None = None, repair: bool = False) -> dict:
    """Check (and with ``repair``, repair) the store at ``root``; returns the report ``--json`` prints.

    ``{"store", "repair", "counts", "findings": [{kind, path, detail, damage, repaired, action}],
    "damage": n found, "damage_remaining": n, "leftovers_remaining": n, "quarantined": files in
    corrupt/, "ok": no damage remains, "exit_code": 0 or 2}``.
    """
    store = ArtifactStore(Path(root) if root is not None else default_root())
    check = _Check(store, repair)
    guard = locked(store.lock_path("gc")) if repair else contextlib.nullcontext()
    try:
        with guard:
            check.blobs()
            check.manifests()
            check.index()
            check.records()
            check.leftovers()
    finally:
        store.close()
    findings = check.findings
    damage_left = sum(1 for f in findings if f.damage and not f.repaired)
    corrupt = store.root / "corrupt"
    return {
        "store": str(store.root), "repair": repair, "counts": check.counts,
        "findings": [asdict(f) for f in findings],
        "damage": sum(1 for f in findings if f.damage),
        "damage_remaining": damage_left,
        "leftovers_remaining": sum(1 for f in findings if not f.damage and not f.repaired),
        "quarantined": len(list(corrupt.iterdir())) if corrupt.is_dir() else 0,
        "ok": damage_left == 0, "exit_code": EXIT_CLEAN if damage_left == 0 else EXIT_DAMAGED,
    }


# ----------------------------------------------------------------------- CLI


def add_store_parser(subparsers, parents=()) -> argparse.ArgumentParser:
    """``tf2trt store check [--repair] [--artifacts DIR] [--json]`` (``pipeline/cli.py`` adds it)."""
    from converter.cli_convert import HelpFormatter

    epilog = "exit codes:\n  0  no damage (or all of it repaired)\n  2  damage remains"
    p = subparsers.add_parser("store", help="check and repair the artifact store", parents=list(parents),
                              formatter_class=HelpFormatter, description="Maintain the artifact store.")
    actions = p.add_subparsers(dest="store_command", metavar="ACTION")
    actions.required = True
    c = actions.add_parser("check", help="verify every blob (hash), manifest and index entry; --repair fixes them",
                           parents=list(parents), formatter_class=HelpFormatter, description=__doc__, epilog=epilog)
    c.add_argument("--repair", action="store_true",
                   help="drop manifests whose blobs are gone or corrupt (the next build rebuilds them), quarantine "
                        "corrupt blobs, delete stale index entries, remove dead writers' temp files")
    c.add_argument("--artifacts", metavar="DIR", default=None,
                   help="artifact store directory (default: $TF2TRT_ARTIFACTS or ./artifacts)")
    c.add_argument("--json", action="store_true", help="print the report as one JSON object")
    c.set_defaults(func=cmd_store_check)
    return p


def cmd_store_check(args) -> int:
    """Run the check and show it: one line per finding, then a verdict; the exit code of the report."""
    from rich.console import Console
    from rich.markup import escape

    root = Path(args.artifacts) if args.artifacts else default_root()
    if not root.is_dir():
        Console(stderr=True).print(f"[bold red]no artifact store at {escape(str(root))}[/]")
        return EXIT_DAMAGED
    report = check_store(root, repair=args.repair)
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
        return report["exit_code"]
    out = Console()
    c = report["counts"]
    out.print(f"store {escape(report['store'])}: {c['blobs']} blob(s), {c['stage_manifests']} stage manifest(s), "
              f"{c['index_entries']} index entr(ies), {c['timing_slots']} timing slot(s), {c['runs']} run record(s)",
              soft_wrap=True)
    for f in report["findings"]:
        tag = "[bold red]damage[/]" if f["damage"] else "[yellow]leftover[/]"
        done = f" → [green]{escape(f['action'])}[/]" if f["repaired"] else (
            f" → [red]{escape(f['action'])}[/]" if f["action"] else "")
        out.print(f"{tag} {escape(f['kind'])}: {escape(f['path'])} ({escape(f['detail'])}){done}", soft_wrap=True)
    if report["ok"]:
        extra = (f"; {report['leftovers_remaining']} leftover(s): --repair removes them"
                 if report["leftovers_remaining"] else "")
        out.print(f"[green]OK[/]: no damage{' remains' if report['damage'] else ''}{extra}")
    else:
        hint = "" if args.repair else "; run `tf2trt store check --repair`"
        out.print(f"[bold red]DAMAGED[/]: {report['damage_remaining']} problem(s) remain{hint}")
    return report["exit_code"]
