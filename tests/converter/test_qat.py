"""int8 from quantization-aware models: construct(quantization="int8") against TensorFlow's fake-quant output.

A real tensorflow-model-optimization QAT model (quantize_model on a tf_keras Conv2D/BatchNorm/ReLU/Dense model,
random weights, calibrated by a few training-mode passes) converts in both modes; an MNIST-like graph with
data-range QuantizeAndDequantizeV2 reproduces the "2 of 1280 outputs mismatch" report.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from converter.construct import construct  # noqa: E402
from converter.engine import optimize_network  # noqa: E402
from converter.errors import ConversionError  # noqa: E402
from converter.freeze import fold_constants, freeze  # noqa: E402
from converter.graph import parse  # noqa: E402
from converter.reference import ReferenceExecutor  # noqa: E402
from converter.verify import verify  # noqa: E402

# tfmot sets TF_USE_LEGACY_KERAS=1 for the whole process when imported (its compat module), which would turn
# every later first use of tf.keras in this test session into tf_keras: resolve tf.keras (Keras 3) first and
# put the variable back afterwards. tfmot itself then uses tf_keras, as it does under Keras 3.
_ = tf.keras.__name__
_legacy = os.environ.get("TF_USE_LEGACY_KERAS")
try:
    tfmot = pytest.importorskip("tensorflow_model_optimization")
finally:
    if _legacy is None:
        os.environ.pop("TF_USE_LEGACY_KERAS", None)
    else:
        os.environ["TF_USE_LEGACY_KERAS"] = _legacy
keras = pytest.importorskip("tf_keras")

#: measured (docs/converter.md): TensorRT's round(v / step) and TF's float chain pick different levels for
#: 0-13 elements per million (ties and last-bit differences); each such element is off by exactly one step
FLIP_RATE_BOUND = 5e-5


def _layer_types(snapshot) -> list[str]:
    return [layer["type"] for layer in snapshot.layers]


@pytest.fixture(scope="module")
def qat_model(tmp_path_factory):
    """A tfmot QAT CNN saved as a SavedModel, and a batch of inputs."""
    from .models import qat_cnn_savedmodel

    return qat_cnn_savedmodel(tmp_path_factory.mktemp("qat") / "saved_model")


@pytest.fixture(scope="module")
def qat_frozen(qat_model):
    return freeze(qat_model[0], inputs={"image": (4, 12, 12, 3)})


def test_freeze_keeps_quantized_weights(qat_frozen):
    counts = qat_frozen.op_counts()
    assert counts.get("FakeQuantWithMinMaxVarsPerChannel") == 1  # the conv kernel's per-channel quantizer
    assert counts.get("FakeQuantWithMinMaxVars") == 4  # input, ReLU output, Dense kernel, Dense output


def test_qat_int8_verifies_and_builds(qat_frozen):
    net = construct(parse(qat_frozen), quantization="int8")
    snap = net.snapshot
    types = _layer_types(snap)
    assert types.count("QUANTIZE") == 3 and types.count("DEQUANTIZE") >= 5, types
    quant = [layer for layer in snap.layers if layer["type"] in ("QUANTIZE", "DEQUANTIZE")]
    assert {layer["params"]["to_type"] for layer in quant if layer["type"] == "QUANTIZE"} == {"INT8"}
    int8_weights = [layer for layer in snap.layers if layer["type"] == "CONSTANT"
                    and layer["outputs"][0]["dtype"] == "INT8"]
    assert len(int8_weights) == 2  # the conv and Dense kernels
    per_channel = [layer for layer in quant if layer["type"] == "DEQUANTIZE" and layer["params"]["axis"] == 3]
    assert per_channel, "the conv kernel's scale is per output channel"
    report = verify(qat_frozen, snapshot=snap, samples=2)
    assert report.passed, report.to_dict()
    for strongly_typed in (False, True):
        assert optimize_network(construct(parse(qat_frozen), quantization="int8", strongly_typed=strongly_typed))


def test_qat_emulate_verifies_without_qdq(qat_frozen):
    snap = construct(parse(qat_frozen), quantization="emulate").snapshot
    assert not {"QUANTIZE", "DEQUANTIZE"} & set(_layer_types(snap))
    report = verify(qat_frozen, snapshot=snap, samples=2)
    assert report.passed, report.to_dict()


def test_emulate_snapshot_is_what_folding_gave(qat_frozen):
    """Freeze's exception changes nothing in "emulate": the network equals the one from TF folding the weights."""
    from converter.freeze import FrozenGraph

    constants = dict(qat_frozen.constants)
    folded_gd = fold_constants(qat_frozen.graph_def, {s.name for s in qat_frozen.inputs}, constants,
                               keep_quantized=False)
    folded = FrozenGraph(folded_gd, qat_frozen.inputs, qat_frozen.outputs, meta=qat_frozen.meta, constants=constants)
    assert "FakeQuantWithMinMaxVarsPerChannel" not in folded.op_counts()
    old = construct(parse(folded)).snapshot
    new = construct(parse(qat_frozen), quantization="emulate").snapshot
    assert new.digest() == old.digest()


def test_constant_fake_quant_folds_bit_equal_to_tensorflow():
    """The numpy fold of quantized weights is TensorFlow's kernel bit for bit (per channel, narrow, symmetric)."""
    from converter import ops  # noqa: F401 - registers the converters
    from converter.context import ConversionContext, Value
    from converter.graph import Node
    from converter.registry import REGISTRY

    rng = np.random.default_rng(5)
    w = rng.standard_normal((3, 3, 16, 64)).astype(np.float32)
    amax = np.abs(w).max(axis=(0, 1, 2))
    cases = [("FakeQuantWithMinMaxVarsPerChannel", dict(narrow_range=True), -amax, amax),
             ("FakeQuantWithMinMaxVarsPerChannel", dict(narrow_range=False), w.min(axis=(0, 1, 2)),
              w.max(axis=(0, 1, 2))),
             ("FakeQuantWithMinMaxVars", dict(narrow_range=True), -np.float32(2.5), np.float32(2.5))]
    for op, attrs, mn, mx in cases:
        expected = getattr(tf.raw_ops, op)(inputs=w, min=mn, max=mx, num_bits=8, **attrs).numpy()
        node = Node("fq", op, ["w:0", "mn:0", "mx:0"], {"num_bits": 8, **attrs})
        ctx = ConversionContext(None, None)  # constant inputs: the converter folds in numpy, adds no layer
        ctx.node = node
        got = REGISTRY[op].convert(ctx, node, [Value(const=w), Value(const=np.asarray(mn, np.float32)),
                                                Value(const=np.asarray(mx, np.float32))]).const
        np.testing.assert_array_equal(got, expected, err_msg=op)
    for attrs in (dict(range_given=True), dict(range_given=False), dict(range_given=True, narrow_range=True)):
        expected = tf.raw_ops.QuantizeAndDequantizeV2(input=w, input_min=-2.0, input_max=2.0, **attrs).numpy()
        node = Node("qdq", "QuantizeAndDequantizeV2", ["w:0", "mn:0", "mx:0"], attrs)
        ctx = ConversionContext(None, None)
        ctx.node = node
        got = REGISTRY[node.op].convert(ctx, node, [Value(const=w), Value(const=np.asarray(-2.0, np.float32)),
                                                    Value(const=np.asarray(2.0, np.float32))]).const
        np.testing.assert_array_equal(got, expected, err_msg=str(attrs))


# ------------------------------------------------------------------ data-range QuantizeAndDequantizeV2
def _mnist_qdq(range_given: bool, quantized_logits: bool = False):
    rng = np.random.default_rng(11)
    w1 = tf.constant(rng.standard_normal((784, 64)).astype(np.float32) * 0.05)
    w2 = tf.constant(rng.standard_normal((64, 10)).astype(np.float32) * 0.2)

    def qdq(t, lo=-1.0, hi=1.0):
        if not range_given:
            lo = hi = 0.0
        return tf.quantization.quantize_and_dequantize_v2(t, lo, hi, range_given=range_given)

    def parts(x):
        h = tf.nn.relu(tf.matmul(qdq(tf.reshape(x, (-1, 784)), 0.0, 1.0), qdq(w1)))
        logits = tf.matmul(qdq(h, 0.0, 4.0), qdq(w2))
        return h, logits, qdq(logits, -4.0, 4.0) if quantized_logits else logits

    func = tf.function(lambda x: parts(x)[2], input_signature=[tf.TensorSpec((128, 28, 28), tf.float32, name="x")],
                       autograph=False)
    return func, parts


def _tie_distance(v: np.ndarray) -> np.ndarray:
    """How far each value's ``v * scale`` (a data-range quantizer's, as TensorFlow computes it) is from a tie."""
    from converter.ops.quant import _quantization_range

    scale = _quantization_range(v.min(), v.max(), True, 8, False)[2]
    t = (v * scale).astype(np.float32)
    return np.abs(t - np.floor(t) - np.float32(0.5))


@pytest.mark.parametrize("seed, mismatches", [(1, 0), (13, 2)])
def test_mnist_data_range_qdq_reproduces_2_of_1280(seed, mismatches):
    """The reported "2 of 1280 outputs mismatch": data-range QDQ on input, weights, hidden layer and logits.

    128 samples x 10 logits.  The quantizers are exact (each alone is bit-equal); the MatMuls sum in another
    order than TensorFlow's (last-bit differences), and a value that close to a rounding tie of the next
    quantizer takes the other level — one output step.  With seed 13 two logits differ: one sample holds a
    hidden value exactly at a tie, the other one 1e-5 from it (each then moves a logit across a level); the
    other seeds of 30 tried give 0-3.  Every mismatch is checked to be one step and to have such a near tie.
    """
    func, parts = _mnist_qdq(range_given=False, quantized_logits=True)
    frozen = freeze(func)
    x = np.random.default_rng(seed).random((128, 28, 28)).astype(np.float32)
    hidden, logits, expected = (t.numpy() for t in parts(tf.constant(x)))
    assert expected.size == 1280
    step = np.float32(max(-logits.min() / 128, logits.max() / 127))
    hidden_tie = _tie_distance(hidden).min(axis=1) < 1e-4
    logit_tie = _tie_distance(logits) < 1e-4
    results = []
    for mode in ("emulate", "int8"):  # data ranges stay emulated in int8 (the weights' become int8 constants)
        snap = construct(parse(frozen), quantization=mode).snapshot
        got = ReferenceExecutor(snap).run({"x": x})[frozen.outputs[0]]
        bad = ~np.isclose(got, expected, rtol=1e-4, atol=1e-5)
        assert bad.sum() == mismatches, (mode, np.argwhere(bad))
        np.testing.assert_allclose(np.abs(got - expected)[bad], step, rtol=1e-3)
        rows, cols = np.nonzero(bad)
        assert all(hidden_tie[i] or logit_tie[i, j] for i, j in zip(rows, cols))
        results.append(got)
    np.testing.assert_array_equal(results[0], results[1])


def test_range_given_qdq_mismatches_are_upstream_rounding_at_a_tie():
    """The "2 of 1280" class: a quantizer after a MatMul amplifies the MatMul's last-bit differences.

    The quantization ops themselves are exact here ("emulate" is bit-equal on each QDQ alone); the 784-term
    MatMul sums in another order than TensorFlow's (last-bit differences, about 1e-6), and a hidden value that
    close to a rounding tie of the next quantizer lands on the other level: one step (4/127) off, which
    then changes all 10 outputs of that sample.  Measured with these seeds: 2 of 8192 hidden values, so 2 of
    128 samples (20 of 1280 outputs), in both modes; every mismatching sample has such a near-tie value.
    """
    func, _ = _mnist_qdq(range_given=True)
    frozen = freeze(func)
    x = np.random.default_rng(2).random((128, 28, 28)).astype(np.float32)
    expected = func(x).numpy()
    rng = np.random.default_rng(11)
    w1 = rng.standard_normal((784, 64)).astype(np.float32) * 0.05
    qdq = tf.quantization.quantize_and_dequantize_v2
    hidden = tf.nn.relu(tf.matmul(qdq(x.reshape(128, 784), 0.0, 1.0, range_given=True),
                                  qdq(w1, -1.0, 1.0, range_given=True))).numpy()
    t = hidden * np.float32(127 / 4.0)  # the hidden quantizer's x * scale
    near_tie = (np.abs(t - np.floor(t) - 0.5) < 1e-4).any(axis=1)
    for mode in ("emulate", "int8"):
        snap = construct(parse(frozen), quantization=mode).snapshot
        got = ReferenceExecutor(snap).run({"x": x})[frozen.outputs[0]]
        bad_rows = ~np.isclose(got, expected, rtol=1e-4, atol=1e-5).all(axis=1)
        assert bad_rows.sum() <= 2, (mode, np.nonzero(bad_rows))
        assert not (bad_rows & ~near_tie).any(), (mode, np.nonzero(bad_rows & ~near_tie))
    snap = construct(parse(frozen), quantization="int8").snapshot
    assert _layer_types(snap).count("QUANTIZE") == 2  # the two activations; the weights are int8 constants
    assert optimize_network(snap)


def test_qdq_alone_is_exact_in_emulate_mode():
    func = tf.function(lambda t: tf.quantization.quantize_and_dequantize_v2(t, 0.0, 4.0, range_given=True),
                       input_signature=[tf.TensorSpec((128, 64), tf.float32, name="x")], autograph=False)
    x = np.random.default_rng(3).uniform(-1, 5, (128, 64)).astype(np.float32)
    frozen = freeze(func)
    got = ReferenceExecutor(construct(parse(frozen)).snapshot).run({"x": x})[frozen.outputs[0]]
    np.testing.assert_array_equal(got, func(x).numpy())


# ------------------------------------------------------------------ fallbacks and refusals
def test_data_range_qdq_falls_back_with_a_logged_reason(caplog):
    func = tf.function(lambda x: tf.quantization.quantize_and_dequantize_v2(x, 0.0, 0.0, range_given=False),
                       input_signature=[tf.TensorSpec((4, 8), tf.float32, name="x")], autograph=False)
    with caplog.at_level(logging.INFO, logger="converter.ops.quant"):
        snap = construct(parse(freeze(func)), quantization="int8").snapshot
    assert not {"QUANTIZE", "DEQUANTIZE"} & set(_layer_types(snap))
    assert "range comes from the data" in caplog.text


def test_wide_fake_quant_falls_back_with_a_logged_reason(caplog):
    func = tf.function(lambda x: tf.quantization.fake_quant_with_min_max_args(x, -1.0, 1.0, num_bits=10),
                       input_signature=[tf.TensorSpec((4, 8), tf.float32, name="x")], autograph=False)
    with caplog.at_level(logging.INFO, logger="converter.ops.quant"):
        snap = construct(parse(freeze(func)), quantization="int8").snapshot
    assert not {"QUANTIZE", "DEQUANTIZE"} & set(_layer_types(snap))
    assert "1024 levels do not fit int8" in caplog.text


def test_unknown_quantization_mode_is_refused():
    func = tf.function(lambda x: x + 1.0, input_signature=[tf.TensorSpec((2,), tf.float32, name="x")],
                       autograph=False)
    with pytest.raises(ConversionError, match="unknown quantization mode 'fp8'") as info:
        construct(parse(freeze(func)), quantization="fp8")
    assert "emulate, int8" in info.value.hint


def test_flip_rate_on_a_million_values_is_within_the_measured_bound():
    """Where int8 differs from TensorFlow it is by exactly one step, at a rate below FLIP_RATE_BOUND."""
    func = tf.function(lambda x: tf.quantization.fake_quant_with_min_max_vars(x, -1.3, 2.7),
                       input_signature=[tf.TensorSpec((1000, 1000), tf.float32, name="x")], autograph=False)
    x = np.random.default_rng(4).uniform(-3, 4, (1000, 1000)).astype(np.float32)
    expected = func(x).numpy()
    frozen = freeze(func)
    got = ReferenceExecutor(construct(parse(frozen), quantization="int8").snapshot).run({"x": x})[frozen.outputs[0]]
    step = np.float32(4.0 / 255)
    diff = np.abs(got.astype(np.float64) - expected)
    flipped = diff > 0
    assert flipped.mean() <= FLIP_RATE_BOUND, flipped.sum()
    np.testing.assert_allclose(diff[flipped], step, rtol=1e-4)


def test_quantized_depthwise_filter_folds_as_before():
    """A consumer that needs a constant filter (depthwise) keeps freeze's folding: emulate converts it; int8 refuses
    a graph left without any quantization op (its engine would silently be the fp32 network)."""
    rng = np.random.default_rng(8)
    k = tf.constant(rng.standard_normal((3, 3, 4, 1)).astype(np.float32))
    amax = tf.reduce_max(tf.abs(k), axis=[0, 1, 3])

    def fn(x):
        w = tf.quantization.fake_quant_with_min_max_vars_per_channel(
            tf.transpose(k, (0, 1, 3, 2)), -amax, amax, narrow_range=True)
        return tf.nn.depthwise_conv2d(x, tf.transpose(w, (0, 1, 3, 2)), [1, 1, 1, 1], "SAME")

    func = tf.function(fn, input_signature=[tf.TensorSpec((1, 6, 6, 4), tf.float32, name="x")], autograph=False)
    frozen = freeze(func)
    assert "FakeQuantWithMinMaxVarsPerChannel" not in frozen.op_counts()
    x = np.random.default_rng(9).standard_normal((1, 6, 6, 4)).astype(np.float32)
    got = ReferenceExecutor(construct(parse(frozen), quantization="emulate").snapshot).run({"x": x})
    np.testing.assert_allclose(got[frozen.outputs[0]], func(x).numpy(), rtol=1e-4, atol=1e-5)
    from converter.errors import ModelError

    with pytest.raises(ModelError, match="needs a quantization-aware model"):
        construct(parse(frozen), quantization="int8")


def test_emulate_leaves_the_callers_graph_for_int8(qat_frozen):
    """construct folds the quantized weights in a copy: the same parsed graph then converts to int8."""
    graph = parse(qat_frozen)
    before = [(n.name, n.op, list(n.inputs), sorted(n.attrs)) for n in graph.nodes]
    emulated = construct(graph, quantization="emulate").snapshot
    assert [(n.name, n.op, list(n.inputs), sorted(n.attrs)) for n in graph.nodes] == before
    int8 = construct(graph, quantization="int8").snapshot
    assert "DEQUANTIZE" in _layer_types(int8) and "DEQUANTIZE" not in _layer_types(emulated)
    assert construct(graph, quantization="emulate").snapshot.digest() == emulated.digest()
