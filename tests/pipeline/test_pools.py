"""Beyond one machine: optimize on a process work pool (a worker per GPU host), optimize without TensorFlow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import REPO, run_cli, subprocess_env
from fakes import fake_log
from pipeline.runtime import start_server


@pytest.mark.slow
def test_optimize_runs_on_a_work_pool_worker(tmp_path, configs, artifacts):
    home = tmp_path / "prefect-home"
    home.mkdir()
    server = start_server(env={"PREFECT_HOME": str(home)}, log_path=tmp_path / "server.log", timeout=180)
    worker = None
    try:
        log = tmp_path / "calls.log"
        env = subprocess_env(PREFECT_API_URL=server.api_url, PREFECT_HOME=home, TF2TRT_FAKE_LOG=log)
        res = run_cli(["deploy-optimize", "gpu-pool", "--name", "gpu"], env=env)
        assert res.returncode == 0, res.stderr
        assert "optimize_only/gpu" in res.stdout
        wlog = open(tmp_path / "worker.log", "w")
        worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", "gpu-pool",
                                   "--type", "process"], env=env, cwd=str(REPO), stdout=wlog,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        cfg = configs.write(name="pooled")
        build_env = {**env, "TF2TRT_OPTIMIZE_DEPLOYMENT": "optimize_only/gpu"}
        res = run_cli(["build", str(cfg), "--artifacts", str(artifacts), "--json"], env=build_env, timeout=600)
        assert res.returncode == 0, res.stderr[-4000:] + (tmp_path / "worker.log").read_text()[-4000:]
        stages = {s["name"]: s for s in json.loads(res.stdout.strip().splitlines()[-1])["builds"][0]["stages"]}
        assert stages["optimize"]["status"] == "cached"  # built on the pool, reused here
        pids = {}
        for line in log.read_text().splitlines():
            pid, stage = line.split()
            pids.setdefault(stage, set()).add(pid)
        assert pids["optimize"].isdisjoint(pids["freeze"]), pids  # another process (the worker's run) built it
        assert fake_log(log).count("optimize") == 1
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        server.stop()


OPTIMIZE_WITHOUT_TF = r"""
import sys, json, importlib.abc
class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow.") or name == "keras" or name.startswith("keras."):
            raise ImportError("TensorFlow is not installed on this GPU host")
sys.meta_path.insert(0, NoTensorFlow())
sys.path.insert(0, sys.argv[1])
from pipeline.flows import get_store
from pipeline.backend import ConverterBackend
from pipeline.config import load_config
from pipeline.stages import StageContext, StageResult, run_stage
store = get_store(sys.argv[2])
ctx = StageContext(load_config(sys.argv[3]), store, ConverterBackend())
upstream = {k: StageResult.from_dict(v) for k, v in json.loads(sys.argv[4]).items()}
res = run_stage("optimize", ctx, upstream)
print(json.dumps(res.to_dict()))
"""


@pytest.mark.slow
def test_optimize_needs_tensorrt_but_not_tensorflow(tmp_path):
    pytest.importorskip("converter")
    from test_dashboard import tiny_config

    from pipeline.backend import ConverterBackend
    from pipeline.config import load_config
    from pipeline.stages import StageContext, run_stage
    from pipeline.store import ArtifactStore

    cfg = tiny_config(tmp_path)
    store_dir = tmp_path / "artifacts"
    ctx = StageContext(load_config(cfg), ArtifactStore(store_dir), ConverterBackend())
    results = {}
    for stage in ("freeze", "parse", "construct"):
        results[stage] = run_stage(stage, ctx, dict(results))
        assert results[stage].ok, results[stage].reason
    upstream = json.dumps({k: v.to_dict() for k, v in results.items()})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", OPTIMIZE_WITHOUT_TF, str(REPO), str(store_dir), str(cfg), upstream],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["status"] == "built", out
    assert out["outputs"]["engine"]["bytes"] > 0
