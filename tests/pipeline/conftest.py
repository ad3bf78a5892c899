"""Fixtures for the pipeline tests.

Prefect reads its settings at import, so the environment is set here, before
any test module imports Prefect: a private PREFECT_HOME, no analytics, quiet
console.  Tests that run flows in-process use the session ``prefect_api``
fixture: one Prefect API server for the whole session (started the way
``tf2trt build`` starts its ephemeral one), with flow heartbeats off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="tf2trt-test-prefect-"))
os.environ["PREFECT_HOME"] = str(_SESSION_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ["TF2TRT_STATE_DIR"] = str(_SESSION_HOME / "tf2trt-state")
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("TF2TRT_ARTIFACTS", None)
os.environ.pop("TF2TRT_BACKEND", None)

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fakes import FakeBackend  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: starts servers, browsers or the real converter (minutes)")


def subprocess_env(**extra) -> dict:
    """Environment for `python -m pipeline` subprocesses running on the fake converter."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["TF2TRT_BACKEND"] = "fakes:FakeBackend"
    # a fully cached build replays itself through Prefect for the dashboard: before exiting, not detached,
    # so no recorder outlives a test's temporary store
    env.setdefault("TF2TRT_RECORD_CACHED", "inline")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(args: list[str], env: dict | None = None, cwd: Path | None = None, timeout: float = 300,
            fake: bool = True) -> subprocess.CompletedProcess:
    env = env if env is not None else (subprocess_env() if fake else {
        **os.environ, "PYTHONPATH": str(REPO), "TF2TRT_RECORD_CACHED": os.environ.get("TF2TRT_RECORD_CACHED", "inline")})
    return subprocess.run([sys.executable, "-m", "pipeline", *args], env=env, cwd=str(cwd or REPO),
                          capture_output=True, text=True, timeout=timeout)


CONFIG_TEMPLATE = """\
name: {name}
model:
  path: {model}
inputs:
  - name: x
    shape: [1, 8]
    dtype: float32
builder:
  workspace: {workspace}
  opt_level: 3
  targets: {targets}
verification:
  rtol: 1.0e-3
  atol: {atol}
  samples: 1
  seed: 0
output: out/{name}.engine
tags: [test]
"""


class ConfigFactory:
    def __init__(self, root: Path):
        self.root = root

    def write(self, name: str = "m", model: str = "model.keras", model_bytes: bytes | None = b"model-v1",
              workspace: int = 1 << 20, targets: str = "null", atol: float = 1e-5, extra: str = "",
              subdir: str = "") -> Path:
        d = self.root / subdir if subdir else self.root
        d.mkdir(parents=True, exist_ok=True)
        if model_bytes is not None:
            (d / model).write_bytes(model_bytes)
        path = d / f"{name}.yaml"
        path.write_text(CONFIG_TEMPLATE.format(name=name, model=model, workspace=workspace, targets=targets,
                                               atol=atol) + textwrap.dedent(extra))
        return path


@pytest.fixture
def configs(tmp_path) -> ConfigFactory:
    return ConfigFactory(tmp_path / "cfg")


@pytest.fixture
def artifacts(tmp_path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend()


@pytest.fixture(scope="session")
def prefect_api():
    """One Prefect API server for the session's in-process flow runs."""
    from pipeline import runtime

    saved = os.environ.get("PREFECT_API_URL")
    # its own database: CLI subprocesses of the same session use PREFECT_HOME's
    runtime._start_ephemeral(database=_SESSION_HOME / "in-process-tests.db")
    url = os.environ["PREFECT_API_URL"]
    if saved is None:
        os.environ.pop("PREFECT_API_URL", None)
    runtime.wait_ready()
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield url
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()
    for server in runtime._ephemeral:
        server.stop()
    runtime._ephemeral.clear()


@pytest.fixture
def use_fake(fake):
    from pipeline import flows

    flows.set_backend(fake)
    yield fake
    flows.set_backend(None)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


def chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or ""):
        if candidate and os.path.exists(candidate):
            return candidate
    return None
