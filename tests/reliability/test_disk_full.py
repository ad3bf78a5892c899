"""A full disk (ENOSPC) or quota (EDQUOT): a clear exit 2 naming the file, nothing half-written, nothing locked."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from faults import Faults, open_fds, under

from pipeline.config import load_config
from pipeline.hashing import hash_file
from pipeline.locks import FileLock
from pipeline.stages import StageContext, run_build
from pipeline.store import ArtifactStore

HERE = Path(__file__).resolve().parent


def build(cfg, artifacts, fake, timeout: float = 30.0, **kwargs) -> dict:
    """run_build in a thread, so a hang fails the test instead of the session."""
    box: dict = {}

    def target():
        store = ArtifactStore(artifacts)
        try:
            box["summary"] = run_build(StageContext(load_config(cfg), store, fake), **kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc
        finally:
            store.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the build hung for {timeout:.0f} s"
    if "error" in box:
        raise box["error"]
    return box["summary"]


def assert_clean(artifacts: Path, out_dir: Path) -> None:
    """Nothing half-written, nothing locked: the invariants every fault must leave."""
    assert list((artifacts / "tmp").iterdir()) == []
    assert [p.name for p in out_dir.glob(".*.tmp")] == [] if out_dir.exists() else True
    for path in (artifacts / "locks").glob("*.lock"):
        lock = FileLock(path)
        assert lock.try_acquire(), f"{path.name} is still locked by this process"
        lock.release()
    for blob in (artifacts / "blobs").glob("*/*"):
        if not blob.name.endswith(".json"):
            assert hash_file(blob) == blob.name, f"half-written blob {blob}"
    from pipeline.store_check import check_store

    report = check_store(artifacts)
    assert report["damage"] == 0, report["findings"]


@pytest.mark.parametrize("call", ["pwrite", "ftruncate"])
def test_a_lock_holder_note_that_cannot_be_written_leaves_no_leaked_lock(tmp_path, monkeypatch, call, probe):
    path = tmp_path / "locks" / "run-x.lock"
    before = open_fds()
    faults = Faults((call,), lambda p: p.endswith(".lock")).install(monkeypatch)
    lock = FileLock(path)
    assert lock.try_acquire()  # the holder note is advisory: the lock itself is fine
    lock.release()
    other = FileLock(path)
    assert other.try_acquire(), "the failed write leaked a locked descriptor"
    other.release()
    assert faults.hits and not open_fds() - before
    probe("locks", f"ENOSPC from os.{call} while a lock notes its holder (a full disk)",
          "the lock is taken and released normally (the holder note is advisory), no descriptor leaks",
          before="OSError escaped try_acquire with the flock still held on a leaked descriptor; the same process "
                 "then polled for its own lock forever")


def test_a_failure_inside_try_acquire_unlocks_and_closes(tmp_path, monkeypatch, probe):
    path = tmp_path / "x.lock"
    before = open_fds()
    real = os.fstat
    monkeypatch.setattr(os, "fstat", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError):
        FileLock(path).try_acquire()
    monkeypatch.setattr(os, "fstat", real)
    lock = FileLock(path)
    assert lock.try_acquire()
    lock.release()
    assert not open_fds() - before  # nothing new stays open (others may close)
    probe("locks", "EIO from os.fstat inside FileLock.try_acquire (after the flock)",
          "the error propagates; the descriptor is unlocked and closed, the next try_acquire succeeds",
          before="descriptor leaked with the flock held")


@pytest.mark.parametrize("point", ["blob data", "blob fsync", "blob rename", "lease", "stage manifest",
                                   "run record", "engine placement", "engine sidecar"])
def test_enospc_at_each_write_point(configs, artifacts, fake, monkeypatch, point, probe):
    cfg = configs.write()
    out_dir = cfg.parent / "out"
    store_tmp = str(artifacts / "tmp") + os.sep
    spec = {
        "blob data": (("write",), lambda p: p.startswith(store_tmp)),
        "blob fsync": (("fsync",), lambda p: p.startswith(store_tmp)),
        "blob rename": (("replace",), lambda p: "/blobs/" in p and not p.endswith(".json")),
        "lease": (("write",), lambda p: p.endswith(".lease")),
        "stage manifest": (("replace",), lambda p: "/keys/" in p),
        "run record": (("replace",), lambda p: "/runs/" in p),
        "engine placement": (("write",), lambda p: "/out/" in p and ".tf2trt-" in p and ".engine." in p
                             and ".json." not in p),
        "engine sidecar": (("replace",), lambda p: p.endswith(".engine.json")),
    }[point]
    ArtifactStore(artifacts).close()
    before = open_fds()
    faults = Faults(*spec).install(monkeypatch)
    summary = build(cfg, artifacts, fake)
    assert faults.hits, "the fault never fired"
    faults.enabled = False
    statuses = {s["name"]: s["status"] for s in summary["stages"]}
    failed = [s for s in summary["stages"] if s["status"] == "failed"]
    if point == "run record":  # bookkeeping: a warning, the build itself succeeds
        assert summary["exit_code"] == 0 and summary["engine"]
        text = "exit 0; each stage warns `could not record the run … no space left writing …/runs/<id>.json`"
    else:
        assert summary["exit_code"] == 2, summary
        message = failed[0]["reason"] if failed else summary["error"]
        assert "no space left" in message and str(artifacts if "engine" not in point else out_dir) in message, message
        assert "needed" in message and "hint" in message
        where = f"stage {failed[0]['name']} failed" if failed else "placement failed"
        text = f"exit 2, {where}: `{message.split(' (hint')[0].replace(str(configs.root.parent), '…')}`"
    assert_clean(artifacts, out_dir)
    assert not open_fds() - before  # nothing new stays open (others may close)
    again = build(cfg, artifacts, fake)  # space freed: the next build completes
    assert again["exit_code"] == 0 and again["engine"], again
    probe("disk full", f"ENOSPC at the {point} ({'/'.join('os.' + c for c in spec[0])})",
          text + "; no temp file, no half blob, no lock held, store check clean; the next build succeeds",
          before={"run record": "exit 3: placement's own run-record update raised, run_build suppressed it: all "
                                "stages built, `engine: null`, no error"}.get(
              point, "OSError(28) reported as a generic error, or (placement) suppressed: `engine: null`, no error"))
    assert statuses


def test_edquot_is_reported_as_a_quota_problem(configs, artifacts, fake, monkeypatch, probe):
    cfg = configs.write()
    store_tmp = str(artifacts / "tmp") + os.sep
    ArtifactStore(artifacts).close()
    Faults(("write",), lambda p: p.startswith(store_tmp), errno.EDQUOT).install(monkeypatch)
    summary = build(cfg, artifacts, fake)
    failed = [s for s in summary["stages"] if s["status"] == "failed"]
    assert summary["exit_code"] == 2 and failed and "disk quota exceeded" in failed[0]["reason"]
    assert "tf2trt gc" in failed[0]["reason"]  # the hint
    probe("disk full", "EDQUOT writing the first blob", f"exit 2: `{failed[0]['reason'].split(' (hint')[0][:60]}…` "
          "with the hint to free space (`tf2trt gc`) or move the store", before="generic OSError message")


def _script(cfg, artifacts, env_extra: dict, timeout=60) -> dict:
    from conftest import subprocess_env

    res = subprocess.run([sys.executable, str(HERE / "buildscript.py"), str(cfg), str(artifacts)],
                         env=subprocess_env(**env_extra), capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_a_cached_build_on_a_full_disk_finishes_and_later_builds_do_not_hang(configs, artifacts, fake, probe):
    """The issue's scenario: every stage cached, the disk full, recording the run fails."""
    cfg = configs.write()
    assert build(cfg, artifacts, fake)["exit_code"] == 0
    full = f"calls=write,pwrite,fsync,replace;under={artifacts},{cfg.parent}"
    first = _script(cfg, artifacts, {"RELIABILITY_FAULT": full, "RELIABILITY_REBUILD": "1"})
    assert first["exit_code"] == 0 and set(first["stages"].values()) == {"cached"}, first
    assert first["locks_held"] == [] and first["tmp"] == [], first
    assert first["rebuild"]["exit_code"] == 0, first  # the same process builds again: nothing of its own blocks it
    (cfg.parent / "out" / "m.engine").unlink()  # now placing the engine needs space too
    second = _script(cfg, artifacts, {"RELIABILITY_FAULT": full})
    assert second["exit_code"] == 2 and second["engine"] is None, second
    assert "no space left writing" in second["error"] and "m.engine" in second["error"], second
    assert second["locks_held"] == [] and second["tmp"] == []
    assert not list((cfg.parent / "out").glob(".*.tmp"))
    probe("disk full", "all stages cached; every write under the store and the output fails (ENOSPC), "
          "in a subprocess, then a second build in the same process",
          f"exit 0 in {first['seconds']:.2f} s (nothing needed writing; run records warn), the second build too; with "
          f"the engine missing: exit 2, `{second['error'].split(';')[0].split(str(cfg.parent))[-1]}…` naming the "
          "bytes needed; no lock held, no temp file",
          before="hung forever: the run lock leaked by the failed holder note, then polled by the same process")


def _can_mount_tmpfs() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        return False
    res = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt && umount /mnt"],
                         capture_output=True)
    return res.returncode == 0


TMPFS_SCRIPT = r"""
import json, os, sys
sys.path[:0] = {paths!r}
from fakes import FakeBackend
from conftest_free import write_config
from pipeline.config import load_config
from pipeline.locks import FileLock
from pipeline.stages import StageContext, run_build
from pipeline.store import ArtifactStore
mnt = {mnt!r}
cfg = write_config(mnt + "/cfg")
store = ArtifactStore(mnt + "/artifacts")
# fill the filesystem, then free a little: room for the frozen graph, not for the rest
fd = os.open(mnt + "/filler", os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, b"\0" * 4096)
except OSError:
    pass
os.close(fd)
os.truncate(mnt + "/filler", os.path.getsize(mnt + "/filler") - 24 * 1024)
full = run_build(StageContext(load_config(cfg), store, FakeBackend()))
held = []
for path in (store.root / "locks").glob("*.lock"):
    lock = FileLock(path)
    if lock.try_acquire():
        lock.release()
    else:
        held.append(path.name)
tmp = os.listdir(store.root / "tmp")
os.unlink(mnt + "/filler")
again = run_build(StageContext(load_config(cfg), store, FakeBackend()))
print(json.dumps({{"full": full, "held": held, "tmp": tmp, "again": again}}))
"""


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs root and unshare to mount a private tmpfs")
def test_a_real_small_tmpfs_fills_up(tmp_path, probe):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    helper = tmp_path / "conftest_free.py"
    helper.write_text(
        "from pathlib import Path\n"
        "def write_config(d):\n"
        "    d = Path(d); d.mkdir(parents=True)\n"
        "    (d / 'model.keras').write_bytes(b'model-v1')\n"
        "    (d / 'm.yaml').write_text('name: m\\nmodel: {path: model.keras}\\ninputs: [{name: x, shape: [1, 8]}]\\n'\n"
        "                             'output: out/m.engine\\n')\n"
        "    return d / 'm.yaml'\n")
    repo = HERE.parents[1]
    code = TMPFS_SCRIPT.format(paths=[str(tmp_path), str(repo / "tests" / "pipeline"), str(repo)], mnt=str(mnt))
    script = tmp_path / "tmpfs_build.py"
    script.write_text(code)
    res = subprocess.run(["unshare", "-m", "sh", "-c",
                          f"mount -t tmpfs -o size=1m tmpfs {mnt} && exec {sys.executable} {script}"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    full, again = out["full"], out["again"]
    failed = [s for s in full["stages"] if s["status"] == "failed"]
    assert full["exit_code"] == 2 and failed, full
    assert "no space left" in failed[0]["reason"] and str(mnt) in failed[0]["reason"], failed
    assert out["held"] == [] and out["tmp"] == []
    assert again["exit_code"] == 0 and again["engine"], again
    stage = failed[0]["name"]
    probe("disk full", "a real 1 MiB tmpfs (private mount namespace) filled up, 24 KiB freed again (which the "
          "store's index database takes), then a build",
          f"exit 2, stage {stage} failed: `{failed[0]['reason'].split(' (hint')[0].replace(str(mnt), '<tmpfs>')}`; "
          "no lock held, no temp file; after freeing space the next build succeeds",
          before="the same ENOSPC, but as an unclassified OSError")
