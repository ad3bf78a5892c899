"""End to end on the real converter: the README's main job and part of the cache matrix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, run_cli

STAGES = ["freeze", "parse", "construct", "optimize", "verify"]


def _build(args, timeout=1500):
    res = run_cli(["build", *args, "--json"], fake=False, timeout=timeout)
    assert res.returncode == 0, res.stderr[-6000:]
    (b,) = json.loads(res.stdout.strip().splitlines()[-1])["builds"]
    return b, {s["name"]: s for s in b["stages"]}


@pytest.mark.slow
def test_resnet50_main_job_then_cached_rerun(tmp_path):
    pytest.importorskip("converter")
    store = str(tmp_path / "artifacts")
    cold, stages = _build(["configs/resnet50.yaml", "--artifacts", store])
    assert cold["config"] == "configs/resnet50.yaml"
    assert [stages[s]["status"] for s in STAGES] == ["built"] * 5
    assert cold["verification"]["passed"] is True
    assert cold["verification"]["outputs"][0]["name"] == "predictions"
    engine = Path(cold["engine"]["path"])
    assert engine == REPO / "build" / "engines" / "resnet50.engine"
    assert engine.stat().st_size == cold["engine"]["bytes"]
    meta = json.loads(engine.with_name(engine.name + ".json").read_text())
    assert meta["layers"] > 50 and meta["tensorrt_flavor"] and len(meta["digest"]) == 64

    warm, stages = _build(["configs/resnet50.yaml", "--artifacts", store])
    assert [stages[s]["status"] for s in STAGES] == ["cached"] * 5
    total = sum(s["seconds"] for s in warm["stages"])
    assert total <= 1.0, warm["stages"]
    (tmp_path / "timings.json").write_text(json.dumps({"cold": cold["stages"], "warm": warm["stages"]}))

    # the same model, new tolerances: only verify re-runs (on the cached network snapshot)
    cfg_dir = tmp_path / "configs"
    cfg_dir.mkdir()
    cfg = cfg_dir / "resnet50.yaml"
    text = (REPO / "configs" / "resnet50.yaml").read_text()
    cfg.write_text(text)
    assert "atol: 1.0e-5" in text and "workspace: 1GiB" in text  # the edits below must change something
    _, stages = _build([str(cfg), "--artifacts", store])  # another file, same content: all cached
    assert [stages[s]["status"] for s in STAGES] == ["cached"] * 5
    cfg.write_text(text.replace("atol: 1.0e-5", "atol: 2.0e-5"))
    _, stages = _build([str(cfg), "--artifacts", store])
    assert [stages[s]["status"] for s in STAGES] == ["cached"] * 4 + ["built"]
    assert stages["verify"]["reason"] == "rebuilt: key changed in verification.atol"
    # builder settings: optimize and verify
    cfg.write_text(text.replace("atol: 1.0e-5", "atol: 2.0e-5").replace("workspace: 1GiB", "workspace: 512MiB"))
    _, stages = _build([str(cfg), "--artifacts", store])
    assert [stages[s]["status"] for s in STAGES] == ["cached"] * 3 + ["built"] * 2
    assert stages["optimize"]["reason"] == "rebuilt: key changed in builder.workspace"


@pytest.mark.slow
def test_every_shipped_config_builds_in_one_invocation(tmp_path):
    """`tf2trt build configs/` fans out over all examples (build_all); each example model is
    generated in a fresh interpreter, so input names are the same as when built alone."""
    pytest.importorskip("converter")
    res = run_cli(["build", "configs/", "--artifacts", str(tmp_path / "artifacts"), "--json"], fake=False,
                  timeout=1500)
    assert res.returncode == 0, res.stderr[-6000:]
    builds = json.loads(res.stdout.strip().splitlines()[-1])["builds"]
    assert {Path(b["config"]).name for b in builds} == {p.name for p in (REPO / "configs").glob("*.yaml")}
    for b in builds:
        assert [s["status"] for s in b["stages"]] == ["built"] * 5, b
        assert b["verification"]["passed"] is True and b["engine"]["bytes"] > 0
