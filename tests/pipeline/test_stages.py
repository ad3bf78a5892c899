"""The cache matrix of the issue, item 3, on a fake converter (no Prefect: pure stage logic)."""

from __future__ import annotations

import os
import shutil
import time

from fakes import FakeBackend
from pipeline.config import load_config
from pipeline.stages import STAGES, StageContext, components, run_build
from pipeline.store import ArtifactStore


def build(path, artifacts, backend):
    backend.calls.clear()
    ctx = StageContext(load_config(path), ArtifactStore(artifacts), backend)
    summary = run_build(ctx)
    return summary, {s["name"]: s for s in summary["stages"]}


def statuses(stages):
    return [stages[s]["status"] for s in STAGES]


def rebuilt(stages):
    return [s for s in STAGES if stages[s]["status"] == "built"]


def test_first_build_then_unchanged_rerun_does_no_stage_work(configs, artifacts, fake):
    path = configs.write()
    summary, stages = build(path, artifacts, fake)
    assert summary["ok"] and statuses(stages) == ["built"] * 5
    assert all("no manifest for key" in stages[s]["reason"] for s in STAGES)
    engine = path.parent / "out" / "m.engine"
    assert engine.read_bytes().startswith(b"ENGINE")
    assert (path.parent / "out" / "m.engine.json").exists()

    summary, stages = build(path, artifacts, fake)
    assert statuses(stages) == ["cached"] * 5 and fake.calls == []
    assert all(stages[s]["reason"].startswith("reused: manifest for key") for s in STAGES)
    assert sum(stages[s]["seconds"] for s in STAGES) < 1.0


def test_changing_tolerances_reruns_only_verify(configs, artifacts, fake):
    path = configs.write(atol=1e-5)
    build(path, artifacts, fake)
    path = configs.write(atol=1e-4, model_bytes=None)
    _, stages = build(path, artifacts, fake)
    assert rebuilt(stages) == ["verify"] and fake.calls == ["verify"]
    assert stages["verify"]["reason"] == "rebuilt: key changed in verification.atol"


def test_changing_builder_settings_reruns_optimize_and_verify(configs, artifacts, fake):
    path = configs.write(workspace=1 << 20)
    build(path, artifacts, fake)
    configs.write(workspace=2 << 20, model_bytes=None)
    _, stages = build(path, artifacts, fake)
    assert rebuilt(stages) == ["optimize", "verify"] and fake.calls == ["optimize", "verify"]
    assert stages["optimize"]["reason"] == "rebuilt: key changed in builder.workspace"
    assert "inputs.engine" in stages["verify"]["reason"] or "optimize_key" in stages["verify"]["reason"]


def test_changing_the_target_reruns_optimize_and_verify(configs, artifacts, fake):
    path = configs.write()
    build(path, artifacts, fake)
    configs.write(targets="[SM86]", model_bytes=None)
    _, stages = build(path, artifacts, fake)
    assert rebuilt(stages) == ["optimize", "verify"]
    assert "builder.targets" in stages["optimize"]["reason"] and "target" in stages["optimize"]["reason"]


def test_touching_the_model_with_the_same_bytes_rebuilds_nothing(configs, artifacts, fake):
    path = configs.write()
    build(path, artifacts, fake)
    model = path.parent / "model.keras"
    later = time.time() + 100
    os.utime(model, (later, later))
    model.write_bytes(model.read_bytes())  # rewritten, same bytes
    _, stages = build(path, artifacts, fake)
    assert statuses(stages) == ["cached"] * 5 and fake.calls == []


def test_editing_the_model_rebuilds_everything(configs, artifacts, fake):
    path = configs.write(model_bytes=b"model-v1")
    build(path, artifacts, fake)
    configs.write(model_bytes=b"model-v2")
    _, stages = build(path, artifacts, fake)
    assert statuses(stages) == ["built"] * 5
    assert stages["freeze"]["reason"] == "rebuilt: key changed in inputs.model.digest"


def test_a_converter_change_reruns_construct_and_what_follows(configs, artifacts):
    """A change of the construction code that changes the network (the fake's ``source``)."""
    path = configs.write()
    build(path, artifacts, FakeBackend(source="converter-v1"))
    _, stages = build(path, artifacts, FakeBackend(source="converter-v2"))
    assert rebuilt(stages) == ["construct", "optimize", "verify"]
    assert stages["construct"]["reason"] == "rebuilt: key changed in code.construct.py"


def test_a_tensorrt_upgrade_keeps_the_frozen_graph(configs, artifacts):
    path = configs.write()
    tc = FakeBackend().toolchain()
    build(path, artifacts, FakeBackend(toolchain=tc))
    _, stages = build(path, artifacts, FakeBackend(toolchain={**tc, "tensorrt": "2.0"}))
    assert rebuilt(stages) == ["construct", "optimize", "verify"]
    assert "toolchain.tensorrt" in stages["optimize"]["reason"]
    # a TensorFlow upgrade that freezes and parses to the same graph: construct (no TensorFlow) stays cached
    _, stages = build(path, artifacts, FakeBackend(toolchain={**tc, "tensorrt": "2.0", "tensorflow": "9"}))
    assert rebuilt(stages) == ["freeze", "parse", "verify"]
    assert stages["construct"]["status"] == "cached"


def test_a_parse_manifest_from_before_the_graph_output_is_rebuilt_not_served(configs, artifacts, fake):
    """An older pipeline's parse stored a report under the key (no graph): construct must not read it."""
    path = configs.write()
    build(path, artifacts, fake)
    store = ArtifactStore(artifacts)
    run = store.load_run(StageContext(load_config(path), store, fake).config_id)
    key = run["stages"]["parse"]["key"]
    old = dict(store.get_manifest("parse", key))
    report = store.put_blob(b'{"nodes":6,"op_counts":{"Conv2D":3,"Relu":3}}', "parse-report")
    store.put_manifest({**old, "outputs": {"report": report}})
    summary, stages = build(path, artifacts, fake)
    assert summary["ok"] and rebuilt(stages) == ["parse"] and fake.calls == ["parse"]
    assert stages["parse"]["reason"] == "rebuilt: cached manifest has no graph output (written by an older tf2trt)"
    assert stages["construct"]["status"] == "cached"  # the same graph as before: nothing downstream re-runs
    assert "graph" in store.get_manifest("parse", key)["outputs"]


def test_keys_hold_content_not_paths(configs, artifacts, fake, tmp_path):
    path = configs.write()
    build(path, artifacts, fake)
    moved = tmp_path / "elsewhere"
    shutil.copytree(path.parent, moved)
    _, stages = build(moved / path.name, artifacts, fake)
    assert statuses(stages) == ["cached"] * 5
    ctx = StageContext(load_config(moved / path.name), ArtifactStore(artifacts), fake)
    assert str(tmp_path) not in repr(components("freeze", ctx, {}))


def test_only_the_keys_a_stage_reads_are_in_its_key(configs, artifacts, fake):
    path = configs.write(extra="schedule:\n  interval: 60\n")
    build(path, artifacts, fake)
    text = path.read_text().replace("tags: [test]", "tags: [test, renamed]").replace("interval: 60", "interval: 90")
    path.write_text(text.replace("out/m.engine", "out2/m.engine"))
    summary, stages = build(path, artifacts, fake)
    assert statuses(stages) == ["cached"] * 5
    assert (path.parent / "out2" / "m.engine").exists()  # placed at the new output all the same


def test_corrupt_cached_engine_is_rebuilt_not_served(configs, artifacts, fake):
    path = configs.write()
    summary, _ = build(path, artifacts, fake)
    store = ArtifactStore(artifacts)
    digest = summary["engine_digest"]
    blob = store.blob_path(digest)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"ENGINE-but-corrupted")
    out = path.parent / "out" / "m.engine"
    out.write_bytes(b"stale")
    summary, stages = build(path, artifacts, fake)
    assert stages["optimize"]["status"] == "built"
    assert "failed its hash check" in stages["optimize"]["reason"]
    assert summary["engine_digest"] == digest  # deterministic rebuild: same content
    from pipeline.hashing import hash_path

    assert hash_path(out) == digest


def test_example_model_is_keyed_by_its_spec_not_its_bytes(tmp_path, artifacts, fake):
    cfg = tmp_path / "ex.yaml"
    cfg.write_text("model:\n  keras_application: MobileNetV2\n  seed: 3\ninputs:\n  - name: input_layer\n"
                   "    shape: [1, 96, 96, 3]\noutput: ex.engine\n")
    _, stages = build(cfg, artifacts, fake)
    assert fake.calls[:2] == ["generate", "freeze"]
    examples = list((artifacts / "examples").glob("*.keras"))
    assert len(examples) == 1 and "MobileNetV2" in examples[0].name
    for p in examples:
        p.unlink()  # a regenerated file would differ in bytes (save date); the key does not care
    _, stages = build(cfg, artifacts, fake)
    assert statuses(stages) == ["cached"] * 5 and fake.calls == []
    cfg.write_text(cfg.read_text().replace("seed: 3", "seed: 4"))
    _, stages = build(cfg, artifacts, fake)
    assert stages["freeze"]["reason"] == "rebuilt: key changed in inputs.model.seed"


def test_failed_verification_fails_the_build_and_is_not_cached(configs, artifacts, fake, monkeypatch):
    path = configs.write(atol=1e-5)
    monkeypatch.setenv("TF2TRT_FAKE_ERROR", "0.5")
    summary, stages = build(path, artifacts, fake)
    assert not summary["ok"] and stages["verify"]["status"] == "failed"
    assert "verification failed: out max_abs_err=0.5" in stages["verify"]["reason"]
    assert summary["engine"] is None and not (path.parent / "out" / "m.engine").exists()
    assert summary["verification"]["passed"] is False
    assert summary["exit_code"] == 1
    monkeypatch.setenv("TF2TRT_FAKE_ERROR", "1e-6")
    summary, stages = build(path, artifacts, fake)
    assert summary["ok"] and rebuilt(stages) == ["verify"]


def test_a_failed_stage_skips_the_rest(configs, artifacts, fake):
    path = configs.write(model_bytes=b"BROKEN model")
    summary, stages = build(path, artifacts, fake)
    assert statuses(stages) == ["failed", "skipped", "skipped", "skipped", "skipped"]
    assert "cannot freeze a broken model" in stages["freeze"]["reason"]
    assert not summary["ok"] and summary["exit_code"] == 2


def test_a_bug_in_a_stage_is_an_internal_error(configs, artifacts, fake, monkeypatch):
    """An exception outside the error tree is tf2trt's bug: exit 3 and a reason that says to report it."""
    def broken_construct(*args, **kwargs):
        raise KeyError("dangling tensor")

    monkeypatch.setattr(fake, "construct", broken_construct)
    summary, stages = build(configs.write(), artifacts, fake)
    assert statuses(stages) == ["built", "built", "failed", "skipped", "skipped"]
    assert summary["exit_code"] == 3 and "internal error: please report it" in stages["construct"]["reason"]


def test_verification_can_be_disabled(configs, artifacts, fake):
    path = configs.write(extra="")
    path.write_text(path.read_text().replace("verification:\n", "verification:\n  enabled: false\n"))
    summary, stages = build(path, artifacts, fake)
    assert stages["verify"]["status"] == "skipped" and summary["ok"] and summary["engine"]


def test_status_reads_the_last_run_from_the_store(configs, artifacts, fake):
    from pipeline.status import collect_status

    path = configs.write()
    build(path, artifacts, fake)
    build(path, artifacts, fake)
    (row,) = collect_status([str(path)], str(artifacts))
    assert [s["status"] for s in row["stages"]] == ["cached"] * 5
    assert row["verification"]["passed"] is True and len(row["engine"]["digest"]) == 64
    assert collect_status(None, str(artifacts))[0]["name"] == "m"


def test_a_dashboard_replay_never_builds(configs, artifacts, fake, monkeypatch):
    """The replay that records an answered no-op build skips what is no longer cached instead of building it."""
    path = configs.write(atol=1e-5)
    summary, _ = build(path, artifacts, fake)
    assert summary["ok"]
    path.write_text(path.read_text().replace("atol: 1.0e-05", "atol: 2.0e-05").replace("atol: 1e-05", "atol: 2e-05"))
    monkeypatch.setenv("TF2TRT_CACHED_ONLY", "1")
    summary, stages = build(path, artifacts, fake)
    assert statuses(stages)[:4] == ["cached"] * 4
    assert stages["verify"]["status"] == "skipped" and "not cached any more" in stages["verify"]["reason"]
    assert "verify" not in fake.calls


def test_trusting_model_code_is_a_freeze_setting(configs, artifacts, fake):
    """model.trust_code reaches the converter's freeze and its key (only when set: other keys stay valid)."""
    path = configs.write()
    _, stages = build(path, artifacts, fake)
    path.write_text(path.read_text().replace("  path: model.keras\n", "  path: model.keras\n  trust_code: true\n"))
    _, stages = build(path, artifacts, fake)
    assert stages["freeze"]["status"] == "built" and "model.trust_code" in stages["freeze"]["reason"]


def test_the_converter_backend_refuses_lambda_code_unless_the_config_trusts_it(tmp_path):
    import tf_keras as k

    from converter.errors import FreezeError
    from pipeline.backend import ConverterBackend

    inp = k.Input((4,), name="x")
    k.Model(inp, k.layers.Lambda(lambda t: t + 1.0, name="plus_one")(inp)).save(str(tmp_path / "m.h5"))
    backend = ConverterBackend()
    spec = [{"name": "x", "shape": [1, 4], "dtype": "float32"}]
    try:
        backend.freeze(tmp_path / "m.h5", spec, None, "serving_default")
    except FreezeError as exc:
        assert exc.exit_code == 2 and "Lambda" in exc.message
    else:
        raise AssertionError("a Lambda .h5 was loaded without trust")
    frozen, meta = backend.freeze(tmp_path / "m.h5", spec, None, "serving_default", trust_model_code=True)
    assert frozen and meta["inputs"][0]["name"] == "x"
