"""kill -9 of a build at each stage, then a clean rebuild; four concurrent builds of one config."""

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

from pipeline.hashing import hash_path
from pipeline.store import ArtifactStore


def check_store(*args, **kwargs):
    from pipeline.store_check import check_store as check

    return check(*args, **kwargs)

HERE = Path(__file__).resolve().parent
STAGES = ["freeze", "parse", "construct", "optimize", "verify"]


def _start(cfg, artifacts, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "buildscript.py"), str(cfg), str(artifacts)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen, timeout=120) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("stage", STAGES)
def test_kill_9_at_each_stage_then_a_clean_rebuild(configs, artifacts, tmp_path, stage, probe):
    cfg = configs.write()
    log = tmp_path / "calls.log"
    proc = _start(cfg, artifacts, subprocess_env(TF2TRT_FAKE_LOG=log, TF2TRT_FAKE_SLEEP=f"{stage}=30"))
    deadline = time.time() + 60
    while stage not in fake_log(log):
        assert time.time() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not (cfg.parent / "out" / "m.engine").exists()
    start = time.monotonic()
    again = _result(_start(cfg, artifacts, subprocess_env(TF2TRT_FAKE_LOG=log)))
    took = time.monotonic() - start
    i = STAGES.index(stage)
    assert again["exit_code"] == 0 and again["engine"], again
    assert [again["stages"][s] for s in STAGES] == ["cached"] * i + ["built"] * (len(STAGES) - i), again
    assert again["locks_held"] == []
    assert all(f"-{proc.pid}-" in name for name in again["tmp"]), again["tmp"]  # only the killed writer's temp files
    report = check_store(artifacts)
    assert report["damage"] == 0, report["findings"]
    leftovers = sorted({f["kind"] for f in report["findings"]})
    assert set(leftovers) <= {"stale lease", "orphan temp file"}, leftovers  # the killed build's: gc/--repair remove
    assert check_store(artifacts, repair=True)["findings"] and check_store(artifacts)["findings"] == []
    probe("crashes", f"kill -9 of a build while its {stage} stage runs, then the same build again",
          f"the rebuild exits 0 in {took:.1f} s (process start included): {i} stage(s) cached, the rest built; "
          f"nothing locked; store check: no damage{', leftovers: ' + ', '.join(leftovers) if leftovers else ''}",
          before="the same (flocks die with their holder)")


def test_four_concurrent_builds_of_one_config(configs, artifacts, tmp_path, probe):
    cfg = configs.write()
    log = tmp_path / "calls.log"
    env = subprocess_env(TF2TRT_FAKE_LOG=log, TF2TRT_FAKE_SLEEP="freeze=0.5,construct=0.3,optimize=0.5")
    start = time.monotonic()
    procs = [_start(cfg, artifacts, env) for _ in range(4)]
    results = [_result(p) for p in procs]
    took = time.monotonic() - start
    assert all(r["exit_code"] == 0 and r["engine"] for r in results), results
    assert sorted(fake_log(log)) == sorted(STAGES), fake_log(log)  # each stage's work done once
    for stage in STAGES:
        assert sorted(r["stages"][stage] for r in results) == ["built"] + ["cached"] * 3, (stage, results)
    store = ArtifactStore(artifacts)
    referenced = store.referenced_digests()
    blobs = {p.name for p in (artifacts / "blobs").glob("*/*") if not p.name.endswith(".json")}
    assert blobs == referenced, (blobs, referenced)  # one set of blobs, all in use
    paths = {r["engine"]["path"] for r in results}
    assert len(paths) == 1 and hash_path(cfg.parent / "out" / "m.engine") in blobs
    assert not list((cfg.parent / "out").glob(".*.tmp")) and list((artifacts / "tmp").iterdir()) == []
    assert check_store(artifacts)["findings"] == []
    store.close()
    probe("concurrency", "4 build processes of one config at once (stages slowed to overlap)",
          f"all 4 exit 0 in {took:.1f} s; each stage built by exactly one, cached for the other three; "
          f"{len(blobs)} blobs, every one referenced; one engine placed; store check clean",
          before="the same, except that concurrent placements could race on the output")


def test_four_concurrent_placements_of_a_cached_build(configs, artifacts, tmp_path, probe):
    cfg = configs.write()
    first = _result(_start(cfg, artifacts, subprocess_env()))
    out = cfg.parent / "out" / "m.engine"
    out.unlink()
    out.with_name("m.engine.json").unlink()
    procs = [_start(cfg, artifacts, subprocess_env(RELIABILITY_SLOW_PLACE="0.3")) for _ in range(4)]
    results = [_result(p) for p in procs]
    assert all(r["exit_code"] == 0 and set(r["stages"].values()) == {"cached"} for r in results), results
    assert first["engine"] and json.loads(out.with_name("m.engine.json").read_text())["digest"] == hash_path(out)
    assert not list(out.parent.glob(".*.tmp"))
    probe("concurrency", "4 fully cached builds placing the same missing engine at once (copy slowed 0.3 s)",
          "all exit 0; one copy (the others wait on the placement lock, then find it in place); no temp file",
          before="passed too: placement then overwrote whatever was at the output, so no ownership check could race")
