"""Engine placement: across filesystems, never over someone else's file or an input, inside allowed trees."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from faults import cross_directory_exdev

from pipeline.config import ConfigError, load_config
from pipeline.hashing import hash_path
from pipeline.stages import StageContext, run_build
from pipeline.store import ArtifactStore


def build(cfg: Path, artifacts: Path, fake, **kwargs) -> dict:
    store = ArtifactStore(artifacts)
    try:
        return run_build(StageContext(load_config(cfg), store, fake), **kwargs)
    finally:
        store.close()


def store_files(artifacts: Path) -> set[str]:
    return {str(p.relative_to(artifacts)) for p in (artifacts / "blobs").rglob("*") if p.is_file()}


def test_placement_works_when_renames_cannot_cross_directories(configs, artifacts, fake, monkeypatch, probe):
    cfg = configs.write()
    build(cfg, artifacts, fake)
    out = cfg.parent / "out" / "m.engine"
    out.unlink()
    (cfg.parent / "out" / "m.engine.json").unlink()
    blobs = store_files(artifacts)
    refused = cross_directory_exdev(monkeypatch)
    summary = build(cfg, artifacts, fake)
    assert summary["ok"] and summary["exit_code"] == 0, summary
    assert hash_path(out) == summary["engine_digest"]
    assert json.loads((cfg.parent / "out" / "m.engine.json").read_text())["placed_by"] == "tf2trt build"
    assert store_files(artifacts) == blobs and list((artifacts / "tmp").iterdir()) == []  # no second copy
    probe("placement", "os.rename/os.replace/os.link raise EXDEV for any move between two directories "
          "(the store and the output on different filesystems, simulated)",
          f"engine placed (copied to a temp file beside the output, fsynced, renamed); no extra file in the store"
          f"{'; the store itself made ' + str(len(refused)) + ' cross-directory attempt(s)' if refused else ''}",
          before="`Invalid cross-device link` from the rename out of the store's tmp/, suppressed: all stages "
                 "built, `engine: null`, no error, exit 3")


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm")
def test_placement_onto_a_real_second_filesystem(tmp_path, artifacts, fake, probe):
    from conftest import ConfigFactory

    shm = Path("/dev/shm") / f"tf2trt-test-{uuid.uuid4().hex[:8]}"
    try:
        shm.mkdir()
        if os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same filesystem as the test's temp dir")
        cfg = ConfigFactory(shm).write()
        summary = build(cfg, artifacts, fake)
        assert summary["ok"], summary
        assert hash_path(shm / "out" / "m.engine") == summary["engine_digest"]
        fs = f"{os.stat(artifacts).st_dev:#x} → {os.stat(shm).st_dev:#x}"
    finally:
        shutil.rmtree(shm, ignore_errors=True)
    probe("placement", "store on the root disk, config and output on /dev/shm (tmpfs): a real cross-device "
          "placement", f"engine placed, digest verified (devices {fs})",
          before="`[Errno 18] Invalid cross-device link`, suppressed: `engine: null`")


def test_a_foreign_file_at_the_output_is_an_error_not_overwritten(configs, artifacts, fake, probe):
    cfg = configs.write()
    out = cfg.parent / "out" / "m.engine"
    out.parent.mkdir(parents=True)
    out.write_bytes(b"someone's own engine")
    summary = build(cfg, artifacts, fake)
    assert not summary["ok"] and summary["engine"] is None and summary["exit_code"] == 2, summary
    assert all(s["status"] == "built" for s in summary["stages"])
    assert str(out) in summary["error"] and "--force" in summary["error"]
    assert out.read_bytes() == b"someone's own engine" and not (out.parent / "m.engine.json").exists()
    probe("placement", "a file tf2trt did not place (no `placed_by: tf2trt build` sidecar) exists at the output",
          f"exit 2, `engine: null`, error `{summary['error'].split(str(cfg.parent))[-1].split(' (hint')[0]}…` "
          "with the hint `--force`; the file is untouched", before="silently overwritten")


def test_force_overwrites_a_foreign_file(configs, artifacts, fake, probe):
    cfg = configs.write()
    out = cfg.parent / "out" / "m.engine"
    out.parent.mkdir(parents=True)
    out.write_bytes(b"someone's own engine")
    (out.parent / "m.engine.json").write_text('{"mine": true}')
    summary = build(cfg, artifacts, fake, force=True)
    assert summary["ok"] and hash_path(out) == summary["engine_digest"]
    # and through the config's flag, which travels to Prefect tasks with to_json
    loaded = load_config(cfg)
    loaded.force_output = True
    from pipeline.config import LoadedConfig

    assert LoadedConfig.from_json(loaded.to_json()).force_output
    probe("placement", "the same foreign engine and sidecar, built with force (`run_build(force=True)` / "
          "`LoadedConfig.force_output`, the `--force` flag)", "replaced by the built engine and its manifest",
          before="(no --force: always overwritten)")


@pytest.mark.parametrize("target", ["model.keras", "m.yaml"])
def test_never_over_an_input_of_the_build_even_with_force(configs, artifacts, fake, target, probe):
    cfg = configs.write(extra="")
    text = cfg.read_text().replace("output: out/m.engine", f"output: {target}")
    cfg.write_text(text)
    before = (cfg.parent / target).read_bytes()
    summary = build(cfg, artifacts, fake, force=True)
    assert summary["exit_code"] == 2 and summary["engine"] is None
    assert "an input of this build" in summary["error"]
    assert (cfg.parent / target).read_bytes() == before
    what = "the model" if target == "model.keras" else "the config file"
    probe("placement", f"`output: {target}` ({what}) with --force",
          f"exit 2: `output … would overwrite {what} (…), an input of this build`; {target} untouched",
          before=f"{what} overwritten by the engine")


def test_an_engine_tf2trt_placed_is_replaced_by_the_next_build(configs, artifacts, fake, probe):
    cfg = configs.write()
    first = build(cfg, artifacts, fake)
    cfg.write_text(cfg.read_text().replace("opt_level: 3", "opt_level: 2"))
    second = build(cfg, artifacts, fake)
    assert second["ok"] and second["engine_digest"] != first["engine_digest"]
    assert hash_path(cfg.parent / "out" / "m.engine") == second["engine_digest"]
    probe("placement", "a rebuild with another opt_level places a new engine over the one the previous build placed",
          "replaced without --force (its sidecar says tf2trt placed it)", before="passed too (replaced)")


def test_output_outside_the_config_tree_needs_an_explicit_root(configs, artifacts, fake, monkeypatch, probe):
    cfg = configs.write()
    cfg.write_text(cfg.read_text().replace("output: out/m.engine", "output: ../elsewhere/m.engine"))
    refused = build(cfg, artifacts, fake)
    assert refused["exit_code"] == 2 and "outside the directory trees" in refused["error"]
    assert not (cfg.parent.parent / "elsewhere").exists()
    cfg.write_text(cfg.read_text() + "output_root: ..\n")
    allowed = build(cfg, artifacts, fake)
    assert allowed["ok"] and (cfg.parent.parent / "elsewhere" / "m.engine").exists()
    # an operator's root from the environment
    cfg.write_text(cfg.read_text().replace("output_root: ..\n", "").replace("../elsewhere", "../shared"))
    monkeypatch.setenv("TF2TRT_OUTPUT_ROOTS", str(cfg.parent.parent / "shared"))
    assert build(cfg, artifacts, fake)["ok"]
    # a symlink inside the tree that leads out of it is outside
    monkeypatch.delenv("TF2TRT_OUTPUT_ROOTS")
    (cfg.parent.parent / "far").mkdir()
    (cfg.parent / "link").symlink_to(cfg.parent.parent / "far")
    cfg.write_text(cfg.read_text().replace("../shared/m.engine", "link/m.engine"))
    linked = build(cfg, artifacts, fake)
    assert linked["exit_code"] == 2 and "outside" in linked["error"]
    probe("placement", "`output: ../elsewhere/m.engine` (outside the config's directory), then with `output_root: ..`, "
          "then via $TF2TRT_OUTPUT_ROOTS, then through a symlink leading out of the tree",
          "refused (exit 2, nothing created), placed, placed, refused", before="placed anywhere")


def test_output_expands_home_and_variables_and_refuses_unset_ones(configs, artifacts, fake, monkeypatch, probe):
    cfg = configs.write()
    cfg.write_text(cfg.read_text().replace("output: out/m.engine", "output: ${ENGINE_DIR}/m.engine"))
    monkeypatch.delenv("ENGINE_DIR", raising=False)
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert "ENGINE_DIR not set" in str(info.value)
    monkeypatch.setenv("ENGINE_DIR", str(cfg.parent / "engines"))
    assert build(cfg, artifacts, fake)["ok"] and (cfg.parent / "engines" / "m.engine").exists()
    monkeypatch.setenv("HOME", str(cfg.parent))
    cfg.write_text(cfg.read_text().replace("${ENGINE_DIR}/m.engine", "~/home-engines/m.engine"))
    assert build(cfg, artifacts, fake)["ok"] and (cfg.parent / "home-engines" / "m.engine").exists()
    probe("config", "`output: ${ENGINE_DIR}/m.engine` with ENGINE_DIR unset, then set; `output: ~/…`",
          "config error `output: environment variable(s) ENGINE_DIR not set`; placed under $ENGINE_DIR; ~ expanded",
          before="unset: a directory literally named `${ENGINE_DIR}` was created")


def test_a_build_killed_mid_placement_leaves_the_old_engine_and_its_temp_is_swept(configs, artifacts, fake,
                                                                                  tmp_path, probe):
    import signal
    import subprocess
    import sys
    import time

    from conftest import subprocess_env
    from fakes import fake_log

    cfg = configs.write()
    first = build(cfg, artifacts, fake)
    out = cfg.parent / "out" / "m.engine"
    cfg.write_text(cfg.read_text().replace("opt_level: 3", "opt_level: 1"))
    log = tmp_path / "calls.log"
    here = Path(__file__).resolve().parent
    proc = subprocess.Popen([sys.executable, str(here / "buildscript.py"), str(cfg), str(artifacts)],
                            env=subprocess_env(TF2TRT_FAKE_LOG=log, RELIABILITY_SLOW_PLACE=30),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while "place" not in fake_log(log):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    leftovers = [p.name for p in out.parent.glob(".m.engine.tf2trt-*.tmp")]
    assert len(leftovers) == 1 and hash_path(out) == first["engine_digest"]  # the old engine is intact
    second = build(cfg, artifacts, fake)
    assert second["ok"] and hash_path(out) == second["engine_digest"]
    assert not list(out.parent.glob(".*.tmp"))
    probe("placement", "kill -9 while the new engine is being copied beside the output",
          "the old engine stays intact (a temp file beside it remains); the next build places the new one and "
          "removes the dead writer's temp file", before="(the copy went through the store's tmp/, swept by gc)")


@pytest.mark.slow
def test_the_cli_reports_a_placement_failure_with_a_non_zero_exit(configs, artifacts, fake, probe):
    """`tf2trt build --json` through Prefect (the fast path declines a build whose engine cannot be placed)."""
    from conftest import run_cli

    cfg = configs.write()
    out = cfg.parent / "out" / "m.engine"
    out.parent.mkdir(parents=True)
    out.write_bytes(b"someone's own engine")
    res = run_cli(["build", str(cfg), "--artifacts", str(artifacts), "--json"])
    b = json.loads(res.stdout.strip().splitlines()[-1])["builds"][0]
    assert res.returncode == 2, res.stderr[-2000:]
    assert b["engine"] is None and all(s["status"] == "built" for s in b["stages"])
    assert "not an engine tf2trt build placed there" in res.stderr and "--force" in res.stderr
    assert out.read_bytes() == b"someone's own engine"
    in_json = "error" in b
    probe("placement", "`tf2trt build --json` (Prefect) with a foreign file at the output",
          "exit 2; every stage built, `engine: null`; the table ends `m: FAILED — … not an engine tf2trt build "
          "placed there … --force`" + ("; `error` in the JSON" if in_json else
                                       " (the JSON gets `error` once pipeline/cli.py passes it through)"),
          before="exit 3 (Prefect path) or 0-with-overwrite; the foreign file was overwritten")
