"""Where Prefect runs: database ownership between processes, heartbeats off."""

from __future__ import annotations

import contextlib
import subprocess
import sys

from conftest import REPO
from pipeline import runtime

HOLD = ("import sys, time; sys.path.insert(0, %r); from pipeline import runtime; "
        "print(runtime.prepare_prefect(early_start=False), flush=True); time.sleep(%r)")


def _isolated(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    for var in ("PREFECT_API_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(home))
    monkeypatch.setenv("TF2TRT_STATE_DIR", str(tmp_path / "state"))
    return home


def _holder(seconds: float):
    proc = subprocess.Popen([sys.executable, "-c", HOLD % (str(REPO), seconds)], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def _release_held():
    while runtime._held:
        runtime._held.pop().release()


@contextlib.contextmanager
def _busy_database(tmp_path, monkeypatch, wait: str, hold: float):
    """An isolated Prefect home whose default database another process owns for ``hold`` seconds.

    Yields ``(home, holder, told)``: ``told`` collects what prepare_prefect says through ``notify``."""
    home = _isolated(tmp_path, monkeypatch)
    monkeypatch.setenv(runtime.DB_WAIT_ENV, wait)
    holder, first = _holder(hold)
    try:
        assert first == f"ephemeral:{home / 'prefect.db'}"  # the first process owns the database
        yield home, holder, []
    finally:
        holder.kill()
        holder.wait()
        _release_held()


def test_a_busy_database_falls_back_to_a_named_per_user_database_and_says_so(tmp_path, monkeypatch):
    with _busy_database(tmp_path, monkeypatch, "0.5", 60) as (home, holder, told):
        # setenv first, so that monkeypatch restores the variable prepare_prefect sets
        monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", "")
        monkeypatch.delenv("PREFECT_SERVER_DATABASE_CONNECTION_URL")
        mode = runtime.prepare_prefect(early_start=False, notify=told.append)
        fallback = tmp_path / "state" / "prefect-fallback-1.db"
        assert mode == f"ephemeral:{fallback} (fallback database)"
        assert runtime.os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == f"sqlite+aiosqlite:///{fallback}"
        # one line for the wait, one naming both databases, who holds the default one, and how to see the run
        assert len(told) == 2 and "waiting up to 0.5 s" in told[0]
        assert str(home / "prefect.db") in told[1] and str(fallback) in told[1]
        assert f"pid {holder.pid}" in told[1].lower() or str(holder.pid) in told[1]
        assert runtime.view_command(fallback) in told[1]
        # a second concurrent build takes the next fallback (the first one is locked by this process)
        code = ("import sys; sys.path.insert(0, %r); from pipeline import runtime; "
                "print(runtime.prepare_prefect(early_start=False))") % str(REPO)
        env = {**runtime.os.environ, runtime.DB_WAIT_ENV: "0"}
        env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL")
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert res.stdout.strip() == f"ephemeral:{fallback.with_name('prefect-fallback-2.db')} (fallback database)"
        assert "recorded in" in res.stderr  # said even without a notify callback (a WARNING log line)


def test_a_build_waits_for_the_database_when_it_is_released_in_time(tmp_path, monkeypatch):
    with _busy_database(tmp_path, monkeypatch, "60", 1.0) as (home, _holder_proc, told):
        mode = runtime.prepare_prefect(early_start=False, notify=told.append)
        assert mode == f"ephemeral:{home / 'prefect.db'}"  # the run goes where the dashboard looks
        assert len(told) == 1 and "waiting up to 60 s" in told[0] and str(home / "prefect.db") in told[0]
        assert "PREFECT_SERVER_DATABASE_CONNECTION_URL" not in runtime.os.environ


def test_prefect_api_url_wins(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert runtime.prepare_prefect(early_start=False) == "server:http://127.0.0.1:9/api"


def test_heartbeats_can_be_turned_off_in_process():
    from prefect.settings import get_current_settings

    with runtime.no_heartbeats():
        assert get_current_settings().flows.heartbeat_frequency is None
