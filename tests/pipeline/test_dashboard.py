"""The dashboard, for real: a Prefect server, a real-converter build against it, headless Chromium.

Opens the flow run page, checks the five stages and the verification artifact
are shown, keeps the screenshot (tmp_path, copied to docs/dashboard.png).
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


def tiny_config(tmp_path, name="tiny"):
    d = tmp_path / "cfg"
    d.mkdir()
    subprocess.run([sys.executable, "-c", TINY_MODEL, str(d / "tiny.keras")], check=True, timeout=300)
    cfg = d / f"{name}.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        name: {name}
        model:
          path: tiny.keras
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
        shot = tmp_path / "dashboard" / "dashboard.png"
        with Browser(chromium) as browser:
            browser.goto(f"{server.url}/runs/flow-run/{run['id']}")
            browser.wait_for_text([f"{s}-tiny" for s in STAGES] + ["Completed"], timeout=90)
            browser.click("#artifacts")
            text = browser.wait_for_text(["tf2trt-tiny-verification", "tf2trt-tiny-stages", "tf2trt-tiny-engine",
                                          "Verification of tiny: passed"], timeout=60)
            browser.screenshot(shot)
            (art,) = _post(server.api_url + "/artifacts/filter",
                           {"artifacts": {"key": {"any_": ["tf2trt-tiny-verification"]}}})
            browser.goto(f"{server.url}/artifacts/artifact/{art['id']}")
            table = browser.wait_for_text(["probs", "max_abs_err", "yes"], timeout=60)
        assert "tf2trt-tiny-verification" in text and "probs" in table
        assert shot.stat().st_size > 10_000
        shutil.copyfile(shot, REPO / "docs" / "dashboard.png")
    finally:
        server.stop()
