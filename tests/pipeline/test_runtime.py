"""Where Prefect runs: database ownership between processes, heartbeats off."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from conftest import REPO
from pipeline import runtime

HOLD = ("import sys, time; sys.path.insert(0, %r); from pipeline import runtime; "
        "print(runtime.prepare_prefect(early_start=False), flush=True); time.sleep(60)")


def test_a_second_process_works_on_a_private_copy_of_the_database(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    db = sqlite3.connect(home / "prefect.db")
    db.execute("CREATE TABLE flow_run (id TEXT)")
    db.execute("INSERT INTO flow_run VALUES ('earlier run')")
    db.commit()
    db.close()
    for var in ("PREFECT_API_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(home))
    monkeypatch.setenv("TF2TRT_STATE_DIR", str(tmp_path / "state"))
    holder = subprocess.Popen([sys.executable, "-c", HOLD % (str(REPO),)], stdout=subprocess.PIPE, text=True)
    try:
        first = holder.stdout.readline().strip()
        assert first == f"ephemeral:{home / 'prefect.db'}"  # the first process owns the database
        monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", "")  # restored after the test
        monkeypatch.delenv("PREFECT_SERVER_DATABASE_CONNECTION_URL")
        mode = runtime.prepare_prefect(early_start=False)
        assert mode.endswith("(private copy)")
        url = runtime.os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
        private = url.split("sqlite+aiosqlite:///", 1)[1]
        assert private != str(home / "prefect.db")
        rows = sqlite3.connect(private).execute("SELECT id FROM flow_run").fetchall()
        assert rows == [("earlier run",)]  # a consistent copy (SQLite backup API)
    finally:
        holder.kill()
        holder.wait()
        monkeypatch.delenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", raising=False)


def test_prefect_api_url_wins(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert runtime.prepare_prefect(early_start=False) == "server:http://127.0.0.1:9/api"


def test_heartbeats_can_be_turned_off_in_process():
    from prefect.settings import get_current_settings

    with runtime.no_heartbeats():
        assert get_current_settings().flows.heartbeat_frequency is None
