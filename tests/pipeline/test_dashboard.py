"""The dashboard, for real: a Prefect server, real-converter builds against it, headless Chromium.

Opens the flow run page, checks the five stages (chained in pipeline order in the
run graph: each task's input is the stage before) and the build-summary artifact
are shown (screenshots copied to docs/dashboard.png and docs/dashboard-summary.png),
then a failed build, whose stages that did not run must not be drawn as successes
(docs/dashboard-failed.png).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import urllib.request

import pytest

from browser import Browser
from conftest import REPO, chromium_path, subprocess_env
from pipeline.runtime import start_server

STAGES = ("freeze", "parse", "construct", "optimize", "verify")

TINY_MODEL = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
keras.utils.set_random_seed(0)
inp = keras.Input((16, 16, 3), name="image")
x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
out = keras.layers.Dense(3, activation="softmax", name="probs")(x)
keras.Model(inp, out).save(sys.argv[1])
"""


def tiny_config(tmp_path, name="tiny", model_bytes: bytes | None = None):
    d = tmp_path / "cfg"
    d.mkdir(exist_ok=True)
    if model_bytes is None:
        subprocess.run([sys.executable, "-c", TINY_MODEL, str(d / f"{name}.keras")], check=True, timeout=300)
    else:
        (d / f"{name}.keras").write_bytes(model_bytes)
    cfg = d / f"{name}.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        name: {name}
        model:
          path: {name}.keras
        inputs:
          - name: image
            shape: [1, 16, 16, 3]
        verification:
          rtol: 1.0e-3
          atol: 1.0e-4
        output: out/{name}.engine
        tags: [dashboard-test]
        """))
    return cfg


def _assert_chain(api_url: str, flow_run_id: str) -> list[dict]:
    """The run graph's edges: each stage's task run has the stage before it as its one input (pipeline order)."""
    tasks = {t["name"].split("-")[0]: t for t in _post(api_url + "/task_runs/filter",
                                                        {"flow_runs": {"id": {"any_": [flow_run_id]}}})}
    assert not any(tasks["freeze"]["task_inputs"].values()), tasks["freeze"]["task_inputs"]
    for before, stage in zip(STAGES, STAGES[1:]):
        ids = [i["id"] for ins in tasks[stage]["task_inputs"].values() for i in ins]
        assert ids == [tasks[before]["id"]], (stage, tasks[stage]["task_inputs"])
    return list(tasks.values())


def _post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_dashboard_shows_stages_and_verification(tmp_path):
    chromium = chromium_path()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    home = tmp_path / "prefect-home"
    home.mkdir()
    server = start_server(env={"PREFECT_HOME": str(home)}, log_path=tmp_path / "server.log", timeout=180)
    try:
        cfg = tiny_config(tmp_path)
        env = subprocess_env(PREFECT_API_URL=server.api_url, PREFECT_HOME=home)
        env.pop("TF2TRT_BACKEND")  # the real converter
        res = subprocess.run([sys.executable, "-m", "pipeline", "build", str(cfg), "--artifacts",
                              str(tmp_path / "artifacts"), "--json"], env=env, cwd=str(REPO),
                             capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr[-5000:]
        build = json.loads(res.stdout.strip().splitlines()[-1])["builds"][0]
        assert build["verification"]["passed"] is True
        runs = _post(server.api_url + "/flow_runs/filter", {})
        (run,) = [r for r in runs if r["name"] == "build-tiny"]
        _assert_chain(server.api_url, run["id"])
        shot = tmp_path / "dashboard" / "dashboard.png"
        with Browser(chromium) as browser:
            browser.goto(f"{server.url}/runs/flow-run/{run['id']}")
            browser.wait_for_text([f"{s}-tiny" for s in STAGES] + ["Completed"], timeout=90)
            browser.click("#artifacts")
            text = browser.wait_for_text(["tf2trt-tiny-summary", "Build summary of tiny: OK"], timeout=60)
            browser.screenshot(shot)
            (art,) = _post(server.api_url + "/artifacts/filter",
                           {"artifacts": {"key": {"any_": ["tf2trt-tiny-summary"]}}})
            assert art["flow_run_id"] == run["id"]
            browser.goto(f"{server.url}/artifacts/artifact/{art['id']}")
            summary = browser.wait_for_text(["probs", "max_abs_err", "rtol", "reference executor", "precision"],
                                            timeout=60)
            browser.screenshot(shot.with_name("dashboard-summary.png"))

            # a failed build: freeze fails, the four stages after it did not run
            bad = tiny_config(tmp_path, name="broken", model_bytes=b"not a model")
            res = subprocess.run([sys.executable, "-m", "pipeline", "build", str(bad), "--artifacts",
                                  str(tmp_path / "artifacts"), "--json"], env=env, cwd=str(REPO),
                                 capture_output=True, text=True, timeout=900)
            assert res.returncode == 2, res.stderr[-5000:]  # a damaged model file: bad input
            runs = _post(server.api_url + "/flow_runs/filter", {})
            (failed,) = [r for r in runs if r["name"] == "build-broken"]
            tasks = _assert_chain(server.api_url, failed["id"])  # edges even after a failed stage
            states = {t["name"].split("-")[0]: t["state"] for t in tasks}
            assert states["freeze"]["type"] == "FAILED"
            for stage in STAGES[1:]:  # grey "Skipped" (CANCELLED), never a green COMPLETED
                assert states[stage]["type"] == "CANCELLED" and states[stage]["name"] == "Skipped", states
            browser.goto(f"{server.url}/runs/flow-run/{failed['id']}")
            failed_text = browser.wait_for_text(["freeze-broken", "Failed", "Skipped"], timeout=90)
            browser.screenshot(shot.with_name("dashboard-failed.png"))
        assert "tf2trt-tiny-summary" in text and "probs" in summary and "Skipped" in failed_text
        assert shot.stat().st_size > 10_000
        for name in ("dashboard.png", "dashboard-summary.png", "dashboard-failed.png"):
            shutil.copyfile(shot.with_name(name), REPO / "docs" / name)
    finally:
        server.stop()
