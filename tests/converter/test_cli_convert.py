"""`tf2trt convert`: exit codes, strict JSON, no engine on bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from .models import small_cnn


def run_cli(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "converter", "convert", *args, "--json"],
                          capture_output=True, text=True, cwd=cwd, timeout=600)
    last = proc.stdout.strip().splitlines()[-1]
    payload = json.loads(last, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    return proc, payload


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "cnn.keras"
    small_cnn().save(path)
    return path


def test_convert_and_verify(model_file, tmp_path):
    engine = tmp_path / "cnn.plan"
    proc, out = run_cli(str(model_file), "--engine", str(engine), "--verify")
    assert proc.returncode == 0, proc.stderr
    assert out["error"] is None
    assert out["engine"] == {"path": str(engine), "bytes": engine.stat().st_size}
    assert isinstance(out["layers"], int) and out["layers"] > 0
    assert set(out["timings"]) == {"freeze", "parse", "construct", "optimize", "verify"}
    assert all(isinstance(v, float) and v >= 0 for v in out["timings"].values())
    v = out["verification"]
    assert v["checked"] == "reference-executor" and v["passed"] is True
    assert [o["name"] for o in v["outputs"]] == ["probs"]
    assert set(v["outputs"][0]) == {"name", "max_abs_err", "max_rel_err", "passed"}
    meta = json.loads((tmp_path / "cnn.plan.json").read_text())
    assert meta["verification"]["passed"] is True and meta["layers"] == out["layers"]


def test_verification_failure_keeps_engine_and_exits_1(model_file, tmp_path):
    engine = tmp_path / "cnn.plan"
    # an impossible tolerance: any rounding difference fails (ReLU6/Softmax outputs differ in the last bits)
    proc, out = run_cli(str(model_file), "--engine", str(engine), "--verify", "--rtol", "0", "--atol", "0",
                        "--seed", "3")
    # precondition (deterministic for this seed and model): the two sides differ in the last bits
    assert out["verification"]["outputs"][0]["max_abs_err"] > 0, "choose a --seed where the outputs are not bit-equal"
    assert proc.returncode == 1
    assert engine.is_file()
    assert out["verification"]["passed"] is False and "probs" in out["error"]
    for o in out["verification"]["outputs"]:
        assert o["max_abs_err"] is None or math.isfinite(o["max_abs_err"])


@pytest.mark.parametrize("case", ["missing", "not_a_model", "corrupt_pb", "bad_input_name", "bad_output_name",
                                  "unsupported_ops", "bad_shape_syntax"])
def test_bad_input_exits_2_without_engine(case, tmp_path, model_file):
    engine = tmp_path / "out.plan"
    extra = []
    if case == "missing":
        model = tmp_path / "missing.keras"
    elif case == "not_a_model":
        model = tmp_path / "notes.keras"
        model.write_text("just text")
    elif case == "corrupt_pb":
        model = tmp_path / "g.pb"
        model.write_bytes(b"\xff\xfe\x00garbage" * 7)
    elif case == "bad_input_name":
        model, extra = model_file, ["--input", "nope:1x16x16x3"]
    elif case == "bad_output_name":
        model, extra = model_file, ["--output", "nope"]
    elif case == "bad_shape_syntax":
        model, extra = model_file, ["--input", "image:1xAx3"]
    else:
        model = tmp_path / "unsupported.pb"
        _write_unsupported_pb(model)
    proc, out = run_cli(str(model), "--engine", str(engine), *extra)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert out["error"] and out["engine"] is None
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "hint" in (proc.stdout + proc.stderr).lower()
    assert not engine.exists()
    if case == "unsupported_ops":
        assert "MatrixDeterminant" in out["error"] and "BesselI0" in out["error"]


def _write_unsupported_pb(path):
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [3, 3], name="x")
        tf.identity(tf.linalg.det(x) + tf.reduce_sum(tf.math.bessel_i0(x)), name="y")
    path.write_bytes(g.as_graph_def().SerializeToString())
