"""Concurrency and crash safety: file locks, waiting builds, killed builds."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import subprocess_env
from fakes import fake_log
from pipeline.locks import FileLock, live_lease_claims
from pipeline.store import ArtifactStore

HERE = Path(__file__).resolve().parent


def _start(cfg, artifacts, env):
    return subprocess.Popen([sys.executable, str(HERE / "buildproc.py"), str(cfg), str(artifacts)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_flock_is_released_when_the_holder_dies(tmp_path):
    path = tmp_path / "x.lock"
    code = ("import sys, time; sys.path.insert(0, %r); from pipeline.locks import FileLock; "
            "l = FileLock(%r); l.acquire(); print('held', flush=True); time.sleep(60)") % (
        str(HERE.parents[1]), str(path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    lock = FileLock(path)
    assert not lock.try_acquire()
    assert f"pid={proc.pid}" in lock.holder()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    lock.acquire(timeout=5)  # the kernel dropped the dead holder's lock: nothing is stale
    lock.release()


def test_two_builds_of_one_config_build_each_stage_once(configs, artifacts, tmp_path):
    cfg = configs.write()
    log = tmp_path / "calls.log"
    env = subprocess_env(TF2TRT_FAKE_LOG=log, TF2TRT_FAKE_SLEEP="freeze=0.6,optimize=0.6")
    a, b = _start(cfg, artifacts, env), _start(cfg, artifacts, env)
    outs = [p.communicate(timeout=120) for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    calls = fake_log(log)
    assert sorted(calls) == sorted(["freeze", "parse", "construct", "optimize", "verify"]), calls
    results = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    for stage in ("freeze", "optimize"):
        assert sorted(r[stage] for r in results) == ["built", "cached"], results


def test_a_build_killed_mid_stage_leaves_nothing_that_blocks_the_next(configs, artifacts, tmp_path):
    cfg = configs.write()
    log = tmp_path / "calls.log"
    env = subprocess_env(TF2TRT_FAKE_LOG=log, TF2TRT_FAKE_SLEEP="optimize=30")
    proc = _start(cfg, artifacts, env)
    deadline = time.time() + 60
    while "optimize" not in fake_log(log):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    store = ArtifactStore(artifacts)
    assert live_lease_claims(artifacts / "leases")[1] == 1  # the running build holds a lease
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    blobs_before = {p.name for p in (artifacts / "blobs").glob("*/*")}
    assert not any(b.startswith("ENGINE") for b in blobs_before)
    # no engine blob, no manifest for optimize, and the next build is not blocked by the dead one's lock
    assert not list((artifacts / "keys").glob("optimize/*/*.json"))
    env2 = subprocess_env(TF2TRT_FAKE_LOG=log)
    start = time.time()
    out = subprocess.run([sys.executable, str(HERE / "buildproc.py"), str(cfg), str(artifacts)], env=env2,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert time.time() - start < 20
    statuses = json.loads(out.stdout.strip().splitlines()[-1])
    assert statuses == {"freeze": "cached", "parse": "cached", "construct": "cached", "optimize": "built",
                        "verify": "built"}
    report = store.gc(prune_manifests=False)
    assert report["stale_leases"] == 1 and report["live_builds"] == 0


def test_a_write_killed_midway_leaves_no_partial_blob(artifacts):
    """Kill a writer while it streams a big blob: only a temp file remains, swept later."""
    code = ("import sys, os; sys.path.insert(0, %r)\n"
            "from pipeline import store as st\n"
            "s = st.ArtifactStore(%r)\n"
            "real_fsync = os.fsync\n"
            "def slow(fd):\n"
            "    print('writing', flush=True); import time; time.sleep(60)\n"
            "os.fsync = slow\n"
            "s.put_blob(b'x' * (8 << 20), 'engine')\n") % (str(HERE.parents[1]), str(artifacts))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not [p for p in (artifacts / "blobs").glob("*/*")]
    assert len(list((artifacts / "tmp").iterdir())) == 1
    assert ArtifactStore(artifacts).sweep_tmp() == 1


@pytest.mark.slow
def test_two_cli_builds_at_once(configs, artifacts, tmp_path):
    """Two real `tf2trt build` processes (each with Prefect) on one config: each stage built once."""
    cfg = configs.write()
    log = tmp_path / "calls.log"
    env = subprocess_env(TF2TRT_FAKE_LOG=log, TF2TRT_FAKE_SLEEP="freeze=1,optimize=1")
    args = [sys.executable, "-m", "pipeline", "build", str(cfg), "--artifacts", str(artifacts), "--json"]
    procs = [subprocess.Popen(args, env=env, cwd=str(HERE.parents[1]), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "database is locked" not in err
    assert sorted(fake_log(log)) == sorted(["freeze", "parse", "construct", "optimize", "verify"])
    builds = [json.loads(o[0].strip().splitlines()[-1])["builds"][0] for o in outs]
    for i, stage in enumerate(("freeze", "parse", "construct", "optimize", "verify")):
        got = sorted(b["stages"][i]["status"] for b in builds)
        assert got == ["built", "cached"], (stage, builds)
