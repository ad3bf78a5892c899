"""The `tf2trt` CLI as a user runs it (subprocesses, fake converter unless marked slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cli, subprocess_env

STATUSES = {"built", "cached", "failed", "skipped"}


def _json_last_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.slow  # child processes (quick-loop budget); the full tier runs it
def test_build_json_then_cached_rerun(configs, artifacts):
    cfg = configs.write(name="cli")
    first = run_cli(["build", str(cfg), "--artifacts", str(artifacts), "--json"])
    assert first.returncode == 0, first.stderr
    out = _json_last_line(first.stdout)
    (b,) = out["builds"]
    assert b["config"] == str(cfg)  # as given
    assert [s["name"] for s in b["stages"]] == ["freeze", "parse", "construct", "optimize", "verify"]
    assert all(set(s) == {"name", "status", "seconds", "reason"} and s["status"] in STATUSES for s in b["stages"])
    assert b["engine"]["path"] == str(cfg.parent / "out" / "cli.engine")
    assert b["engine"]["bytes"] == Path(b["engine"]["path"]).stat().st_size
    assert set(b["verification"]) == {"checked", "passed", "outputs"}
    assert set(b["verification"]["outputs"][0]) == {"name", "max_abs_err", "max_rel_err", "passed"}
    assert json.loads((cfg.parent / "out" / "cli.engine.json").read_text())["digest"]
    assert "freeze" in first.stderr  # the table goes to stderr with --json
    # not a terminal: the first line comes before Prefect starts, then one plain timestamped line per stage event
    lines = first.stderr.splitlines()
    assert lines[0].startswith("tf2trt build: 1 config(s) (cli); store ") and str(artifacts) in lines[0]
    events = [line for line in lines if line.startswith("[") and " s] cli: " in line]
    for stage in ("freeze", "parse", "construct", "optimize", "verify"):
        assert any(line.endswith(f"cli: {stage} started") for line in events), (stage, lines)
        assert any(f"cli: {stage} built in " in line for line in events), (stage, lines)
    assert "\x1b[" not in first.stderr, "no terminal control sequences when stderr is not a terminal"
    assert "wall time since the process started" in first.stderr

    second = run_cli(["build", str(cfg), "--artifacts", str(artifacts), "--json"])
    assert second.returncode == 0, second.stderr
    b = _json_last_line(second.stdout)["builds"][0]
    assert [s["status"] for s in b["stages"]] == ["cached"] * 5
    assert sum(s["seconds"] for s in b["stages"]) <= 1.0
    # everything cached: answered without starting Prefect, then replayed through it for the dashboard
    assert "no Prefect start: every stage was cached" in second.stderr
    assert "this run is recorded on the dashboard" in second.stderr
    forced = run_cli(["build", str(cfg), "--artifacts", str(artifacts), "--json", "--full"])
    assert forced.returncode == 0, forced.stderr
    assert "prefect: " in forced.stderr and "no Prefect start" not in forced.stderr
    assert [s["status"] for s in _json_last_line(forced.stdout)["builds"][0]["stages"]] == ["cached"] * 5

    status = run_cli(["status", str(cfg), "--artifacts", str(artifacts), "--json"])
    assert status.returncode == 0, status.stderr
    (row,) = json.loads(status.stdout)["configs"]
    assert [s["status"] for s in row["stages"]] == ["cached"] * 5 and row["engine"]["digest"]
    table = run_cli(["status", "--artifacts", str(artifacts)])
    assert "cli" in table.stdout and "verification: passed" in table.stdout


def test_failing_build_exits_with_the_error_trees_code(configs, artifacts):
    """A damaged model file is the user's problem: exit 2 (bad input), never 1 or 3, with the hint in the reason."""
    good = configs.write(name="good", model="g.keras", model_bytes=b"fine")
    bad = configs.write(name="bad", model="b.keras", model_bytes=b"BROKEN")
    res = run_cli(["build", str(good), str(bad), "--artifacts", str(artifacts), "--json"])
    assert res.returncode == 2, res.stderr
    builds = {b["config"]: b for b in _json_last_line(res.stdout)["builds"]}
    assert builds[str(good)]["engine"] and not builds[str(bad)]["engine"]
    assert [s["status"] for s in builds[str(bad)]["stages"]] == ["failed"] + ["skipped"] * 4
    reason = builds[str(bad)]["stages"][0]["reason"]
    assert "cannot freeze a broken model" in reason and "hint: re-save it" in reason
    assert "internal error" not in reason


def test_config_errors_exit_2_before_any_work(configs, artifacts):
    cfg = configs.write()
    cfg.write_text(cfg.read_text().replace("builder:", "buidler:"))
    res = run_cli(["build", str(cfg), "--artifacts", str(artifacts)])
    assert res.returncode == 2
    assert "buidler" in res.stderr and "did you mean 'builder'" in res.stderr and str(cfg) in res.stderr


def test_status_and_gc_do_not_start_prefect(configs, artifacts):
    cfg = configs.write()
    code = ("import sys; from pipeline.cli import main; "
            "rc = main(['status', %r, '--artifacts', %r]); rc2 = main(['gc', '--artifacts', %r]); "
            "assert not any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules), 'prefect imported'; "
            "assert not any(m.startswith('tensorflow') for m in sys.modules); sys.exit(rc or rc2)") % (
        str(cfg), str(artifacts), str(artifacts))
    res = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), cwd=str(REPO),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "never" in res.stdout and "removed 0 blob(s)" in res.stdout
    assert f"store {artifacts}" in res.stderr  # status names the store it read
    assert f"store {artifacts}: removed 0 blob(s)" in res.stdout


def test_a_fully_cached_build_needs_neither_prefect_nor_tensorflow(configs, artifacts):
    cfg = configs.write(name="noop")
    first = run_cli(["build", str(cfg), "--artifacts", str(artifacts)])
    assert first.returncode == 0, first.stderr
    code = ("import sys; from pipeline.cli import main; "
            "rc = main(['build', %r, '--artifacts', %r, '--json']); "
            "assert not any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules), 'prefect imported'; "
            "assert not any(m.startswith('tensorflow') for m in sys.modules), 'tensorflow imported'; "
            "sys.exit(rc)") % (str(cfg), str(artifacts))
    res = subprocess.run([sys.executable, "-c", code], env=subprocess_env(TF2TRT_RECORD_CACHED="off"), cwd=str(REPO),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert [s["status"] for s in _json_last_line(res.stdout)["builds"][0]["stages"]] == ["cached"] * 5
    assert "not recorded (TF2TRT_RECORD_CACHED=off)" in res.stderr


@pytest.mark.slow  # child processes (quick-loop budget); the full tier runs it
def test_gc_cli(configs, artifacts):
    cfg = configs.write()
    res = run_cli(["build", str(cfg), "--artifacts", str(artifacts)])
    assert res.returncode == 0, res.stderr
    from pipeline.store import ArtifactStore

    orphan = ArtifactStore(artifacts).put_blob(b"orphan bytes", "engine")
    res = run_cli(["gc", "--artifacts", str(artifacts), "--json"])
    report = json.loads(res.stdout)
    assert report["removed_blobs"] == 1 and report["kept_blobs"] >= 5
    assert not ArtifactStore(artifacts).blob_path(orphan["digest"]).exists()
    again = run_cli(["build", str(cfg), "--artifacts", str(artifacts), "--json"])
    assert [s["status"] for s in _json_last_line(again.stdout)["builds"][0]["stages"]] == ["cached"] * 5


def test_artifacts_env_var(configs, tmp_path):
    cfg = configs.write()
    env = subprocess_env(TF2TRT_ARTIFACTS=tmp_path / "from-env")
    res = run_cli(["status", str(cfg)], env=env)
    assert res.returncode == 0
    assert (tmp_path / "from-env" / "blobs").is_dir()


def test_help_lists_subcommands():
    res = run_cli(["--help"])
    for cmd in ("build", "status", "serve", "dashboard", "gc"):
        assert cmd in res.stdout
    assert "convert" in res.stdout


@pytest.mark.slow  # child processes (quick-loop budget); the full tier runs it
def test_a_failed_stage_is_one_message_with_settings_nulls_and_a_store_warning(tmp_path):
    """A bad model prints its message once (no Prefect state dump, no ``NoneType: None``) and exits 2; skipped
    stages have null seconds; the effective settings are echoed and in the JSON; a build run from outside the
    project, on the implicit ./artifacts, warns before it creates that new store."""
    from conftest import ConfigFactory

    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    cfg = ConfigFactory(proj / "configs").write(name="bad", model_bytes=b"BROKEN")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = subprocess_env(COLUMNS="400")
    env.pop("TF2TRT_ARTIFACTS", None)
    res = run_cli(["build", str(cfg), "--json"], env=env, cwd=elsewhere)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("cannot freeze a broken model") == 1, res.stderr  # the table's reason, nothing else
    for noise in ("NoneType: None", "Task run failed with", "Finished in state", "Failed(", "type=FAILED"):
        assert noise not in res.stderr, (noise, res.stderr)
    lines = res.stderr.splitlines()
    assert lines[0].startswith("tf2trt build: 1 config(s) (bad); store ")
    warning = f"warning: creating a new, empty artifact store {elsewhere / 'artifacts'} outside the project {proj}"
    assert lines[1].startswith(warning), lines[:3]
    assert "settings: inputs x 1x8 float32; static shapes; precision fp32; workspace 1 MiB; opt_level 3; " \
           "targets default; verify rtol 0.001 atol 1e-05, 1 sample(s)" in res.stderr
    (b,) = _json_last_line(res.stdout)["builds"]
    assert [(s["status"], s["seconds"]) for s in b["stages"][1:]] == [("skipped", None)] * 4
    assert isinstance(b["stages"][0]["seconds"], float)
    assert b["settings"]["inputs"] == [{"name": "x", "shape": [1, 8], "dtype": "float32", "from": "config"}]
    assert b["settings"]["precision"] == "fp32" and b["settings"]["profiles"] is None
    assert b["settings"]["builder"] == {"workspace": 1 << 20, "opt_level": 3, "targets": None, "timing_cache": True}
    status = run_cli(["status", str(cfg), "--json"], env=env, cwd=elsewhere)
    (row,) = json.loads(status.stdout)["configs"]
    assert [s["seconds"] for s in row["stages"][1:]] == [None] * 4  # the store's record agrees
    again = run_cli(["build", str(cfg)], env=env, cwd=elsewhere)
    assert again.returncode == 2 and "warning: creating" not in again.stderr  # the store exists now


@pytest.mark.slow  # child processes (quick-loop budget); the full tier runs it
def test_a_build_while_another_process_owns_the_database_says_where_it_is_recorded(configs, artifacts, tmp_path):
    import sqlite3

    home, state = tmp_path / "prefect-home", tmp_path / "state"
    home.mkdir()
    env = subprocess_env(PREFECT_HOME=home, TF2TRT_STATE_DIR=state, TF2TRT_PREFECT_DB_WAIT="0.5", COLUMNS="400")
    hold = ("import sys, time; sys.path.insert(0, %r); from pipeline import runtime; "
            "print(runtime.prepare_prefect(early_start=False), flush=True); time.sleep(120)") % str(REPO)
    holder = subprocess.Popen([sys.executable, "-c", hold], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == f"ephemeral:{home / 'prefect.db'}"
        res = run_cli(["build", str(configs.write(name="busy")), "--artifacts", str(artifacts)], env=env)
    finally:
        holder.kill()
        holder.wait()
    assert res.returncode == 0, res.stderr
    fallback = state / "prefect-fallback-1.db"
    said = [line for line in res.stderr.splitlines() if "is still in use by" in line]
    assert len(said) == 1 and str(home / "prefect.db") in said[0] and f"recorded in {fallback} instead" in said[0]
    assert f"PREFECT_SERVER_DATABASE_CONNECTION_URL=sqlite+aiosqlite:///{fallback}" in said[0]
    # the run is really there, in a database that outlives the build
    names = [r[0] for r in sqlite3.connect(fallback).execute("SELECT name FROM flow_run")]
    assert "build-busy" in names
