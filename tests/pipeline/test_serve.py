"""Schedules: serve a config with a short interval against a real Prefect server; a scheduled run completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import REPO, subprocess_env
from pipeline.runtime import start_server


def _post(url: str, body: dict):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def prefect_server(tmp_path):
    home = tmp_path / "prefect-home"
    home.mkdir()
    server = start_server(env={"PREFECT_HOME": str(home)}, log_path=tmp_path / "server.log", timeout=180)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_a_served_schedule_runs_a_build(prefect_server, configs, artifacts, tmp_path):
    cfg = configs.write(name="sched", extra="schedule:\n  interval: 3\n")
    env = subprocess_env(PREFECT_API_URL=prefect_server.api_url, PREFECT_HOME=tmp_path / "client-home")
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", str(cfg.parent), "--artifacts",
                             str(artifacts)], env=env, cwd=str(REPO), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.time() + 240
        done = []
        while time.time() < deadline and not done:
            time.sleep(2)
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            runs = _post(prefect_server.api_url + "/flow_runs/filter",
                         {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}})
            done = [r for r in runs if r.get("deployment_id")]
        assert done, "no scheduled run completed; serve log:\n" + (tmp_path / "serve.log").read_text()
        deps = _post(prefect_server.api_url + "/deployments/filter", {})
        assert any(d["name"] == "sched" and d.get("schedules") for d in deps)
        assert (cfg.parent / "out" / "sched.engine").exists()
        assert (cfg.parent / "out" / "sched.engine.json").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.mark.slow
def test_dashboard_command_starts_a_server_that_builds_report_to(tmp_path, configs, artifacts):
    from pipeline.runtime import free_port, healthy

    port = free_port()
    env = subprocess_env(PREFECT_HOME=tmp_path / "home", TF2TRT_STATE_DIR=tmp_path / "state")
    (tmp_path / "home").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "dashboard", "--port", str(port)], env=env,
                            cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 240
        seen = ""
        while url not in seen:
            line = proc.stdout.readline()
            assert line and time.time() < deadline, seen
            seen += line
        assert healthy(url + "/api")
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200 and b"<div id=\"app\"" in resp.read()
        record = json.loads((tmp_path / "state" / "server.json").read_text())
        assert record["api_url"] == url + "/api"
        cfg = configs.write(name="dash")
        res = subprocess.run([sys.executable, "-m", "pipeline", "build", str(cfg), "--artifacts", str(artifacts)],
                             env=env, cwd=str(REPO), capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        assert f"prefect: server:{url}/api" in res.stderr  # the build found the dashboard's server
        runs = _post(url + "/api/flow_runs/filter", {})
        assert any(r["name"] == "build-dash" for r in runs)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    assert not healthy(f"http://127.0.0.1:{port}/api", timeout=1)
    assert not (tmp_path / "state" / "server.json").exists()
