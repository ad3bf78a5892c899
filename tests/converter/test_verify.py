"""Step 5: comparison semantics, the report, bisecting, and inputs."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from converter.construct import construct
from converter.freeze import FrozenGraph, TensorSpec, freeze
from converter.graph import parse
from converter.snapshot import Snapshot
from converter.verify import VerificationError, VerificationReport, compare, make_inputs, verify

from .models import small_cnn


def test_compare_semantics():
    ref = np.array([1.0, -2.0, 1e-7, 0.0], np.float32)
    ok = compare("y", ref + np.float32(5e-6), ref, rtol=1e-4, atol=1e-5)
    assert ok.passed and ok.max_abs_err == pytest.approx(5e-6, rel=1e-2)  # float32 steps near 2.0 are 2.4e-7
    # max_rel_err is taken only over |ref| > atol (the 1e-7 and 0 entries are excluded)
    assert ok.max_rel_err == pytest.approx(5e-6, rel=1e-2)
    bad = compare("y", ref * np.float32(1.01), ref, rtol=1e-4, atol=1e-5)
    assert not bad.passed and bad.out_of_tolerance == pytest.approx(0.5)
    nan = compare("y", np.array([np.nan, 1.0]), np.array([1.0, 1.0]), rtol=1e-4, atol=1e-5)
    assert not nan.passed and math.isnan(nan.max_abs_err) and nan.to_dict()["max_abs_err"] is None
    shape = compare("y", np.zeros(3), np.zeros(4), 1e-4, 1e-5)
    assert not shape.passed and "shape" in shape.message
    tiny = compare("y", np.array([3e-6]), np.array([1e-6]), 1e-4, 1e-5)
    assert tiny.passed and tiny.max_rel_err == 0.0  # no element with |ref| > atol
    boolean = compare("b", np.array([True, False]), np.array([True, True]), 0, 0)
    assert not boolean.passed and boolean.out_of_tolerance == 0.5


@pytest.fixture(scope="module")
def converted():
    frozen = freeze(small_cnn())
    return frozen, construct(parse(frozen)).snapshot


def test_report_passes_and_renders(converted):
    frozen, snap = converted
    report = verify(frozen, snap, samples=2, intermediates=True)
    assert report.passed and report.checked == "reference-executor" and report.samples == 2
    text = report.render()
    assert "PASSED | probs" in text and "1/1 outputs passed" in text and "intermediates" in text
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["outputs"][0]["name"] == "probs" and d["intermediates"]["failed"] == 0


def test_report_says_what_ran(converted, tmp_path):
    import tensorflow as tf

    frozen, snap = converted
    report = verify(frozen, snap, samples=2, seed=4, tolerances={"probs": (1e-3, 1e-4)})
    d = report.to_dict()
    assert d["checked"] == "reference-executor" and d["samples"] == 2 and d["seed"] == 4
    assert d["reference"]["executor"] == "tensorflow" and d["reference"]["version"] == tf.__version__
    assert d["reference"]["device"] in ("CPU", "GPU") and d["reference"]["nhwc_rewrites"] == 0
    assert (d["rtol"], d["atol"]) == (1e-4, 1e-5)
    out = d["outputs"][0]
    assert (out["rtol"], out["atol"], out["shape"], out["vacuous"]) == (1e-3, 1e-4, [1, 5], False)
    assert [(i["name"], i["kind"], i["source"], i["shape"]) for i in d["inputs"]] == \
        [("image", "normal", "default", [1, 16, 16, 3])]
    text = report.render()
    assert f"with TensorFlow {tf.__version__} on" in text and "2 sample(s), seed 4" in text
    assert "input image float32 (1, 16, 16, 3): standard normal floats" in text and "rtol=0.001, atol=0.0001" in text
    np.savez(tmp_path / "in.npz", image=make_inputs(frozen)[0]["image"])
    d = verify(frozen, snap, inputs_npz=str(tmp_path / "in.npz")).to_dict()
    assert d["seed"] is None and d["inputs"][0]["kind"] == "npz" and "in.npz" in d["inputs"][0]["description"]


def test_nonfinite_values_compare_by_position():
    nan, inf = np.nan, np.inf
    ref = np.array([nan, inf, -inf, 1.0, 2.0], np.float32)
    same = compare("y", ref.copy(), ref, rtol=1e-4, atol=1e-5)
    assert same.passed and same.max_abs_err == 0.0 and same.out_of_tolerance == 0.0
    assert (same.nonfinite_matched, same.nonfinite_mismatched) == (3, 0)
    close = compare("y", ref + np.float32([0, 0, 0, 5e-6, 0]), ref, rtol=1e-4, atol=1e-5)
    assert close.passed and close.max_abs_err == pytest.approx(5e-6, rel=1e-2)  # over the finite elements
    far = compare("y", ref + np.float32([0, 0, 0, 1.0, 0]), ref, rtol=1e-4, atol=1e-5)
    assert not far.passed and far.max_abs_err == pytest.approx(1.0) and far.out_of_tolerance == pytest.approx(0.2)
    for out, worst in (([1.0, inf, -inf, 1, 2], "nan"),   # a NaN TensorFlow has is missing
                       ([nan, -inf, -inf, 1, 2], "inf"),  # the inf has the wrong sign
                       ([nan, inf, -inf, nan, 2], "nan"),  # a NaN where TensorFlow is finite
                       ([nan, 5.0, -inf, 1, 2], "inf")):  # finite where TensorFlow has inf
        cmp = compare("y", np.array(out, np.float32), ref, rtol=1e-4, atol=1e-5)
        assert not cmp.passed and cmp.nonfinite_mismatched == 1 and cmp.out_of_tolerance == pytest.approx(0.2)
        assert (math.isnan(cmp.max_abs_err) if worst == "nan" else math.isinf(cmp.max_abs_err))
        json.dumps(cmp.to_dict(), allow_nan=False)
    assert compare("y", np.full(3, nan), np.full(3, nan), 0, 0).passed


def test_render_survives_non_finite_errors():
    """Before: formatting a first divergence whose max_abs_err is None (a NaN in strict JSON) crashed: exit 3."""
    report = VerificationReport("reference-executor", [compare("y", np.array([np.nan]), np.array([1.0]), 1e-4, 1e-5)],
                                first_divergence={"node": "log", "op": "Log", "tensor": "log:0", "max_abs_err": None})
    text = report.render()
    assert "FAILED | y (1,): max_abs_err=nan" in text and "first divergence at TF node 'log' (Log): max_abs_err=n/a" \
        in text and "1 NaN/inf element(s) where TensorFlow differs" in text
    json.dumps(report.to_dict(), allow_nan=False)


def test_model_with_nan_outputs_verifies():
    """log of a Dense layer's output: NaN wherever it is negative, in TensorFlow and TensorRT alike."""
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((16,), batch_size=1, name="x")
    model = keras.Model(x, keras.ops.log(keras.layers.Dense(16, name="h")(x)))
    frozen = freeze(model)
    report = verify(frozen, construct(parse(frozen)).snapshot, samples=2)
    out = report.outputs[0]
    assert report.passed and out.nonfinite_matched > 0 and out.nonfinite_mismatched == 0, report.render()
    assert math.isfinite(out.max_abs_err) and "NaN/inf element(s) at TensorFlow's positions" in report.render()


@pytest.fixture(scope="module")
def mobilenet():
    """Random-init MobileNetV3Small's logits are all below 1e-9: an output-only check cannot fail on them."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), classifier_activation=None)
    frozen = freeze(model)
    return frozen, construct(parse(frozen)).snapshot


def test_vacuous_outputs_are_flagged(mobilenet):
    frozen, snap = mobilenet
    report = verify(frozen, snap)
    out = report.outputs[0]
    assert report.passed and out.vacuous, report.render()
    d = report.to_dict()
    assert d["outputs"][0]["vacuous"] is True and d["vacuous_outputs"] == [out.name]
    assert "this comparison cannot fail" in d["outputs"][0]["note"]
    text = report.render()
    assert f"PASSED (vacuous) | {out.name}" in text and "--check-intermediates" in text and "(1 vacuously)" in text
    # indeed: a network with a wrong first convolution passes the output check; the intermediates catch it
    broken = Snapshot(copy.deepcopy(snap.topology), {k: v.copy() for k, v in snap.weights.items()})
    broken.meta = copy.deepcopy(snap.meta)
    first = next(layer for layer in broken.layers if layer["type"] == "CONVOLUTION")
    for key in first["weights"].values():
        broken.weights[key] = broken.weights[key] * np.float32(1.5)
    assert verify(frozen, broken, bisect_on_failure=False).passed
    assert not verify(frozen, broken, intermediates=True, bisect_on_failure=False).passed


def test_vacuity_needs_every_sample():
    tiny = compare("y", np.zeros(3), np.full(3, 1e-6), 1e-4, 1e-5)
    assert tiny.passed and tiny.vacuous
    assert not compare("y", np.ones(3), np.ones(3), 1e-4, 1e-5).vacuous
    assert not compare("i", np.zeros(3, np.int32), np.zeros(3, np.int32), 0, 0).vacuous  # exact integers
    assert not compare("b", np.zeros(3, bool), np.zeros(3, bool), 0, 0).vacuous


def test_outputs_that_need_no_input():
    """An input no output needs is pruned from the graph: verify feeds only what each side has."""
    import tensorflow as tf

    table = tf.constant(np.arange(6, dtype=np.float32).reshape(2, 3))
    specs = [tf.TensorSpec((2, 3), tf.float32, name="a"), tf.TensorSpec((2, 3), tf.float32, name="b")]
    fn = tf.function(lambda a, b: {"y": a * 2.0, "c": tf.reduce_sum(table, axis=0) + 1.0}, input_signature=specs,
                     autograph=False)
    frozen = freeze(fn)
    assert "b" not in {n.name for n in frozen.graph_def.node}
    if "b" not in [s.name for s in frozen.inputs]:
        # a frozen graph stored by an earlier freeze (a pipeline cache) still lists it
        frozen = FrozenGraph(frozen.graph_def, [*frozen.inputs, TensorSpec("b", (2, 3), "float32")],
                             frozen.outputs, frozen.meta, frozen.constants)
    report = verify(frozen, construct(parse(frozen)).snapshot, intermediates=True)
    assert report.passed, report.render()
    b = next(i for i in report.to_dict()["inputs"] if i["name"] == "b")
    assert b["in_graph"] is False and "does not read it" in b["description"]


def test_bisect_names_the_first_diverging_node(converted):
    frozen, snap = converted
    broken = Snapshot(copy.deepcopy(snap.topology), {k: v.copy() for k, v in snap.weights.items()})
    broken.meta = copy.deepcopy(snap.meta)
    dw = next(layer for layer in broken.layers if layer["type"] == "CONVOLUTION" and "dw" in layer["name"])
    for key in dw["weights"].values():
        broken.weights[key] = broken.weights[key] * np.float32(1.5)
    report = verify(frozen, broken)
    assert not report.passed
    assert "FAILED | probs" in report.render()
    assert "/dw_1/" in report.first_divergence["node"]


def test_per_output_tolerances(converted):
    frozen, snap = converted
    report = verify(frozen, snap, tolerances={"probs": (0.0, 0.0)}, bisect_on_failure=False)
    cmp = report.outputs[0]
    assert (cmp.rtol, cmp.atol) == (0.0, 0.0)
    assert cmp.passed == (cmp.max_abs_err == 0.0)


def test_inputs_from_npz(converted, tmp_path):
    frozen, snap = converted
    x = np.random.default_rng(5).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    np.savez(tmp_path / "in.npz", image=x)
    feeds = make_inputs(frozen, npz=str(tmp_path / "in.npz"))
    np.testing.assert_array_equal(feeds[0]["image"], x)
    assert verify(frozen, snap, inputs_npz=str(tmp_path / "in.npz")).passed
    np.savez(tmp_path / "stacked.npz", image=np.stack([x, -x]))
    assert len(make_inputs(frozen, npz=str(tmp_path / "stacked.npz"))) == 2
    np.savez(tmp_path / "wrong.npz", other=x)
    with pytest.raises(VerificationError, match="lacks arrays for inputs"):
        make_inputs(frozen, npz=str(tmp_path / "wrong.npz"))
    np.savez(tmp_path / "shape.npz", image=x[:, :8])
    with pytest.raises(VerificationError, match="has shape"):
        make_inputs(frozen, npz=str(tmp_path / "shape.npz"))


def test_seeded_inputs_are_reproducible(converted):
    frozen, _ = converted
    a, b, c = make_inputs(frozen, seed=1), make_inputs(frozen, seed=1), make_inputs(frozen, seed=2)
    np.testing.assert_array_equal(a[0]["image"], b[0]["image"])
    assert not np.array_equal(a[0]["image"], c[0]["image"])


def test_snapshot_blob_round_trip(converted):
    _, snap = converted
    again = Snapshot.from_bytes(snap.to_bytes())
    assert again == snap and again.meta == snap.meta and again.digest() == snap.digest()


def test_snapshot_blob_is_deterministic(converted):
    _, snap = converted
    import time

    first = snap.to_bytes()
    time.sleep(1.1)  # zip containers would stamp a new time here
    assert Snapshot.from_bytes(first).to_bytes() == first == snap.to_bytes()
