"""`tf2trt convert --precision`: the lowered engine, its verification at the precision's tolerances, the fallback."""

from __future__ import annotations

import json

import pytest

from .test_cli_convert import model_file, run_cli  # noqa: F401 - model_file is a fixture


def test_fp16_convert_and_verify(model_file, tmp_path):
    engine = tmp_path / "cnn16.plan"
    proc, out = run_cli(str(model_file), "--engine", str(engine), "--precision", "FP16", "--verify")
    assert proc.returncode == 0, proc.stderr
    p = out["precision"]
    assert (p["precision"], p["io_types"], p["fallback_enabled"], p["fallback"], p["trials"]) == \
        ("fp16", "fp32", True, [], [])
    assert p["counts"]["fp16"] > 0 and p["kept_fp32"]["small_cnn_1/probs_1/Softmax"] == "softmax"
    assert "layers" not in p  # per-layer detail stays out of the JSON line; counts and kept_fp32 say it
    v = out["verification"]
    assert v["passed"] is True
    # the precision's default tolerances, and the section comparing with the fp32 network
    assert {(o["rtol"], o["atol"]) for o in v["outputs"]} == {(1e-2, 1e-2)}
    assert v["precision"]["precision"] == "fp16" and set(v["precision"]["against_fp32_network"]) == {"probs"}
    assert v["precision"]["top_layers"]
    meta = json.loads((tmp_path / "cnn16.plan.json").read_text())
    assert meta["precision"] == p and meta["verification"]["precision"]["precision"] == "fp16"
    assert engine.stat().st_size == out["engine"]["bytes"]


@pytest.mark.slow  # a tf2trt convert child process each (quick-loop budget)
def test_the_fallback_keeps_failing_layers_in_fp32_and_no_fallback_fails(model_file, tmp_path):
    """At tolerances only fp32 meets (fp32 matches TensorFlow to 1.5e-8 here), the fallback searches; without
    it verification fails (exit 1) and the engine is kept."""
    tight = ["--rtol", "1e-6", "--atol", "1e-7", "--batch-range", "1,1,1"]
    proc, out = run_cli(str(model_file), "--engine", str(tmp_path / "a.plan"), "--precision", "fp16", "--verify",
                        *tight)
    assert proc.returncode == 0, proc.stderr
    p = out["precision"]
    assert p["fallback"] and {"kept": len(p["fallback"]), "passed": True} in p["trials"]
    assert all(p["kept_fp32"][name] == "fallback" for name in p["fallback"])
    assert out["verification"]["passed"] is True and out["verification"]["precision"]["fallback"] == p["fallback"]

    proc, out = run_cli(str(model_file), "--engine", str(tmp_path / "b.plan"), "--precision", "fp16", "--verify",
                        "--no-fallback", *tight)
    assert proc.returncode == 1, proc.stderr
    assert out["precision"]["fallback"] == [] and out["precision"]["fallback_enabled"] is False
    assert out["verification"]["passed"] is False and (tmp_path / "b.plan").exists()


@pytest.mark.slow  # a tf2trt convert child process each (quick-loop budget)
def test_bf16_keep_fp32_without_verify(model_file, tmp_path):
    proc, out = run_cli(str(model_file), "--engine", str(tmp_path / "c.plan"), "--precision", "bf16",
                        "--keep-fp32", "*/conv_1/*", "--keep-fp32", "*/dw_1/*")
    assert proc.returncode == 0, proc.stderr
    p = out["precision"]
    assert p["precision"] == "bf16" and p["keep_fp32"] == ["*/conv_1/*", "*/dw_1/*"] and "trials" not in p
    assert p["kept_fp32"]["small_cnn_1/conv_1/convolution"] == "keep_fp32: */conv_1/*"
    assert p["kept_fp32"]["small_cnn_1/dw_1/depthwise"] == "keep_fp32: */dw_1/*"
    assert out["verification"] is None


@pytest.mark.parametrize("args, message, hint", [
    (["--precision", "fp64"], "unknown precision 'fp64'", "use one of fp32, fp16, bf16, int8"),
    (["--keep-fp32", "*/conv*"], "--keep-fp32 and --io-types only apply to --precision fp16 or bf16",
     "add --precision fp16"),
    (["--precision", "fp16", "--keep-fp32", "*/atention/*"], "keep_fp32 pattern(s) ['*/atention/*'] match no layer",
     "patterns are fnmatch globs over the layers' names"),
])
def test_bad_precision_options_exit_2_without_an_engine(model_file, tmp_path, args, message, hint):
    engine = tmp_path / "x.plan"
    proc, out = run_cli(str(model_file), "--engine", str(engine), *args)
    assert proc.returncode == 2, proc.stderr
    assert message in out["error"] and f"(hint: {hint}" in out["error"]
    assert not engine.exists()


@pytest.mark.slow  # a tf2trt convert child process each (quick-loop budget)
def test_fp32_is_unchanged(model_file, tmp_path):
    proc, out = run_cli(str(model_file), "--engine", str(tmp_path / "d.plan"), "--verify")
    assert proc.returncode == 0, proc.stderr
    assert out["precision"] is None and "precision" not in out["verification"]
    assert {(o["rtol"], o["atol"]) for o in out["verification"]["outputs"]} == {(1e-4, 1e-5)}
    meta = json.loads((tmp_path / "d.plan.json").read_text())
    assert meta["precision"] == {"precision": "fp32", "io_types": "fp32"}


def test_int8_of_a_model_without_quantization_ops_is_a_user_error(model_file, tmp_path):
    """An int8 engine of a model with no quantization ranges would silently be the fp32 network: exit 2."""
    engine = tmp_path / "q.plan"
    proc, out = run_cli(str(model_file), "--engine", str(engine), "--precision", "int8")
    assert proc.returncode == 2, proc.stderr
    assert "needs a quantization-aware model" in out["error"] and "tensorflow-model-optimization" in out["error"]
    assert not engine.exists()


@pytest.mark.slow  # a tf2trt convert child process each (quick-loop budget)
def test_int8_of_a_qat_model(tmp_path):
    """A tfmot QAT CNN: Q/DQ layers, verified against TensorFlow's fake-quant output, an engine with its manifest."""
    from .models import qat_cnn_savedmodel

    path, _ = qat_cnn_savedmodel(tmp_path / "qat")
    engine = tmp_path / "q.plan"
    proc, out = run_cli(str(path), "--engine", str(engine), "--precision", "int8", "--verify")
    assert proc.returncode == 0, proc.stderr
    assert out["verification"]["passed"] is True
    assert {(o["rtol"], o["atol"]) for o in out["verification"]["outputs"]} == {(1e-4, 1e-5)}
    meta = json.loads((tmp_path / "q.plan.json").read_text())
    assert meta["precision"]["precision"] == "int8"
    assert engine.stat().st_size == out["engine"]["bytes"]