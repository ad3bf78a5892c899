"""Lock waits: bounded, they say whom they wait for, and a dead holder's inherited lock is taken over."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline import locks
from pipeline.config import load_config
from pipeline.locks import HOST, FileLock, locked
from pipeline.stages import StageContext, get_stage, run_build
from pipeline.store import ArtifactStore

REPO = Path(__file__).resolve().parents[2]

HOLD = ("import sys, time; sys.path.insert(0, %r); from pipeline.locks import FileLock\n"
        "l = FileLock(%r); assert l.try_acquire(); print('held', flush=True); time.sleep(120)\n")

# a holder that leaves its locked descriptor to a forked child, then dies: the flock stays held by the child
FORK_AND_DIE = ("import os, sys, time; sys.path.insert(0, %r); from pipeline.locks import FileLock\n"
                "l = FileLock(%r); assert l.try_acquire()\n"
                "child = os.fork()\n"
                "if child == 0:\n"
                "    os.close(1); time.sleep(120); os._exit(0)\n"
                "print(child, flush=True); os._exit(0)\n")


def _hold(path: Path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD % (str(REPO), str(path))], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _guarded(fn, timeout=20.0):
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"still waiting after {timeout:.0f} s"
    return box


def test_a_wait_times_out_and_names_the_holder(tmp_path, monkeypatch, probe):
    path = tmp_path / "run-x.lock"
    holder = _hold(path)
    try:
        monkeypatch.setenv(locks.ENV_TIMEOUT, "0.5")
        start = time.monotonic()
        box = _guarded(lambda: locked(path).__enter__())
        waited = time.monotonic() - start
        err = box.get("error")
        assert isinstance(err, locks.LockTimeout), box
        assert err.exit_code == 2 and f"pid {holder.pid} on host {HOST} since " in err.message
        assert locks.ENV_TIMEOUT in err.hint
    finally:
        holder.kill()
        holder.wait()
    probe("locks", f"a lock held by a live process; {locks.ENV_TIMEOUT}=0.5",
          f"LockTimeout (exit 2) after {waited:.1f} s: `{err.message.replace(str(tmp_path), '…')}`",
          before="no default timeout: waited forever, silently")


def test_a_waiter_says_whom_it_waits_for(tmp_path, monkeypatch, caplog, probe):
    path = tmp_path / "stage.lock"
    holder = _hold(path)
    monkeypatch.setattr(locks, "NOTICE_AFTER", 0.2)
    monkeypatch.setattr(locks, "NOTICE_EVERY", 0.3)
    try:
        with caplog.at_level(logging.INFO, logger="pipeline.locks"):
            with pytest.raises(TimeoutError):
                FileLock(path).acquire(timeout=1.0)
    finally:
        holder.kill()
        holder.wait()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) >= 2 and all(f"pid {holder.pid} on host {HOST} since" in w for w in warnings), warnings
    assert any(r.levelno == logging.INFO and "waiting for lock" in r.getMessage() for r in caplog.records)
    probe("locks", "a waiter blocked by a live holder for 1 s (notice after 0.2 s, every 0.3 s)",
          f"INFO at once, then {len(warnings)} WARNING lines: `{warnings[0].split(' held by ')[0].split('/')[-1]} "
          f"held by pid … on host … since … (… s ago)`",
          before="nothing logged by the lock (the stage runner logged one INFO line, hidden without -v)")


def test_a_dead_holders_inherited_lock_is_taken_over(tmp_path, caplog, probe):
    path = tmp_path / "x.lock"
    proc = subprocess.Popen([sys.executable, "-c", FORK_AND_DIE % (str(REPO), str(path))], stdout=subprocess.PIPE,
                            text=True)
    child = int(proc.stdout.readline().strip())
    proc.wait(timeout=30)
    proc.stdout.close()
    try:
        assert not FileLock(path).try_acquire()  # the orphan child still holds the flock
        start = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="pipeline.locks"):
            box = _guarded(lambda: FileLock(path, timeout=10).acquire())
        assert "error" not in box, box
        took = time.monotonic() - start
        assert any("taking it over" in r.getMessage() for r in caplog.records)
    finally:
        os.kill(child, signal.SIGKILL)
    probe("locks", "the holder forked a child (inheriting the locked descriptor) and died; its pid is gone",
          f"taken over in {took:.2f} s with a WARNING naming the dead holder (the file is unlinked under a "
          "takeover guard and a new one locked)", before="waited forever (the kernel keeps the child's flock)")


def test_a_stage_wait_is_bounded_and_fails_the_stage(configs, artifacts, fake, monkeypatch, probe):
    cfg = configs.write()
    store = ArtifactStore(artifacts)
    ctx = StageContext(load_config(cfg), store, fake)
    key = get_stage("freeze").key(ctx, {})
    holder = _hold(store.stage_lock("freeze", key).path)
    try:
        monkeypatch.setenv(locks.ENV_STAGE_TIMEOUT, "0.5")
        box = _guarded(lambda: run_build(ctx))
    finally:
        holder.kill()
        holder.wait()
        store.close()
    summary = box["value"]
    freeze = summary["stages"][0]
    assert summary["exit_code"] == 2 and freeze["status"] == "failed", summary
    assert "timed out" in freeze["reason"] and f"pid {holder.pid}" in freeze["reason"]
    probe("locks", f"another (stuck) process holds the freeze key's lock; {locks.ENV_STAGE_TIMEOUT}=0.5",
          f"freeze failed, exit 2: `{freeze['reason'].split(', held by')[0].split('/')[-1]}, held by pid …`; later "
          "stages skipped", before="the build waited forever")


def test_own_leaked_lock_is_reported_not_waited_for(tmp_path, probe):
    path = tmp_path / "leak.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        start = locks.process_start(os.getpid())
        os.write(fd, f"pid={os.getpid()} host={HOST} since=2024-01-01T00:00:00Z start={start}\n".encode())
        box = _guarded(lambda: FileLock(path, timeout=30).acquire(), timeout=10)
    finally:
        os.close(fd)
    err = box.get("error")
    assert err is not None and "held by this very process" in str(err), box
    probe("locks", "this process holds the lock through a descriptor no FileLock owns (a leak)",
          "fails at once: `… is held by this very process … waiting would never end` (a bug report hint)",
          before="polled for its own lock forever")


def test_a_dropped_lock_object_releases_its_lock(tmp_path, probe):
    path = tmp_path / "dropped.lock"
    assert FileLock(path).try_acquire()  # the object is dropped at once, still holding
    lock = FileLock(path)
    assert lock.try_acquire()
    lock.release()
    probe("locks", "a FileLock garbage-collected while held (try_acquire without release)",
          "its descriptor is closed: the lock is free", before="held until the process exited")
