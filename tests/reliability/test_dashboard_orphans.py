"""A dashboard killed with kill -9 takes its Prefect server along, and a new one starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import runtime
from pipeline.locks import pid_alive


def process_start(pid):
    from pipeline.locks import process_start as start

    return start(pid)

REPO = Path(__file__).resolve().parents[2]

# a parent that starts a child the way start_server does (own session + parent-death signal), then waits
PARENT = ("import os, subprocess, sys, time; sys.path.insert(0, %r); from pipeline.runtime import _die_with\n"
          "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True,\n"
          "                     preexec_fn=_die_with(os.getpid()))\n"
          "print(p.pid, flush=True); time.sleep(120)\n")


def _wait_dead(pid: int, timeout: float) -> float:
    start = time.monotonic()
    while pid_alive(pid):
        assert time.monotonic() - start < timeout, f"pid {pid} still alive after {timeout:.0f} s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_a_server_child_dies_with_its_parent_on_kill_9(probe):
    parent = subprocess.Popen([sys.executable, "-c", PARENT % str(REPO)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert pid_alive(child) and os.getpgid(child) == child  # its own process group
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    took = _wait_dead(child, 10)
    probe("dashboard", "kill -9 of a process whose child was started like the Prefect server "
          "(own session, PR_SET_PDEATHSIG through ctypes in preexec_fn)",
          f"the child got SIGTERM and was gone {took:.2f} s later", before="the server kept running, orphaned")


def _fake_server(tmp_path: Path) -> subprocess.Popen:
    # a stand-in whose command line reads like `prefect server start`
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "prefect", "server", "start"],
                            start_new_session=True)


def _record(server: subprocess.Popen, owner: int, owner_start, port=4299):
    path = runtime.state_dir() / "server.json"
    path.write_text(json.dumps({"pid": server.pid, "port": port, "url": f"http://127.0.0.1:{port}",
                                "api_url": f"http://127.0.0.1:{port}/api", "owner": owner, "host": runtime.HOST,
                                "owner_start": owner_start, "server_start": process_start(server.pid)}))
    return path


def test_the_next_start_stops_a_server_whose_dashboard_died(tmp_path, monkeypatch, probe):
    monkeypatch.setenv("TF2TRT_STATE_DIR", str(tmp_path / "state"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    server = _fake_server(tmp_path)
    try:
        # a live owner: nothing is touched
        path = _record(server, os.getpid(), process_start(os.getpid()))
        assert runtime.reap_orphaned_server() is None and pid_alive(server.pid) and path.exists()
        # a record whose server pid was reused by another process (other start time): never signalled
        rec = json.loads(path.read_text())
        path.write_text(json.dumps(dict(rec, owner=dead.pid, server_start=(rec["server_start"] or 0) + 1)))
        assert "forgot" in runtime.reap_orphaned_server() and pid_alive(server.pid) and not path.exists()
        # the owner died (kill -9 of an older dashboard): the orphan is stopped and the record dropped
        path = _record(server, dead.pid, None)
        done = runtime.reap_orphaned_server(timeout=5)
        server.wait(timeout=10)
        assert "stopped the orphaned Prefect server" in done and not path.exists()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    probe("dashboard", "server.json names a live server whose dashboard pid is dead (a server left by an older "
          "tf2trt, or where the death signal is unavailable); also one whose pid now belongs to another process",
          "the next `dashboard`/`serve` start stops the orphan (its process group) and drops the record; a reused "
          "pid is never signalled, only the record dropped", before="`a dashboard is already running` / "
          "`port already serves a Prefect API`: the new dashboard refused to start")


@pytest.mark.slow
def test_kill_9_of_a_real_dashboard_then_a_new_one_starts(tmp_path, probe):
    from conftest import subprocess_env

    port = runtime.free_port()
    env = subprocess_env(PREFECT_HOME=tmp_path / "home", TF2TRT_STATE_DIR=tmp_path / "state")
    (tmp_path / "home").mkdir()

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "pipeline", "dashboard", "--port", str(port)], env=env,
                                cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

    def wait_url(proc) -> float:
        t0, seen = time.monotonic(), ""
        while f"http://127.0.0.1:{port}" not in seen:
            line = proc.stdout.readline()
            assert line and time.monotonic() - t0 < 240, seen
            seen += line
        return time.monotonic() - t0

    first = start()
    second = None
    try:
        wait_url(first)
        server_pid = json.loads((tmp_path / "state" / "server.json").read_text())["pid"]
        assert pid_alive(server_pid)
        first.send_signal(signal.SIGKILL)
        first.wait()
        gone = _wait_dead(server_pid, 30)
        assert not runtime.healthy(f"http://127.0.0.1:{port}/api", timeout=1)
        second = start()
        started = wait_url(second)
        assert runtime.healthy(f"http://127.0.0.1:{port}/api")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    probe("dashboard", "`tf2trt dashboard` started, then kill -9 of the dashboard process, then a new dashboard "
          "on the same port", f"the server died {gone:.1f} s after its dashboard; the new dashboard served its URL "
          f"{started:.1f} s after it started", before="the server stayed up, orphaned and still in server.json; "
          "the new dashboard refused (`port … already serves a Prefect API`)")
