"""Verifying channels-first (NCHW) graphs (issue 8).

TensorFlow's stock CPU kernels for Conv2D, pooling, BiasAdd, FusedBatchNorm,
depthwise and transposed convolutions are NHWC-only; oneDNN builds accept
some NCHW ops, and none accept NCHW DepthToSpace/SpaceToDepth/MaxPoolV2.  So
an NCHW graph could not be verified (an internal error, exit 3).  Verification
now runs TensorFlow's reference on a copy of the frozen graph whose NCHW nodes
are NHWC nodes between transposes.  The last test runs ``tf2trt convert
--verify`` with oneDNN off, as TensorFlow runs on machines without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from converter.construct import construct
from converter.freeze import freeze
from converter.graph import parse
from converter.verify import TensorFlowRunner, nhwc_reference_graph, verify

from .ops.harness import case, f32, freeze_case

_RNG = np.random.default_rng(11)


def _w(*shape):
    return _RNG.standard_normal(shape).astype(np.float32)


K = _w(3, 3, 4, 6)      # HWIO
DW = _w(3, 3, 4, 2)     # HWIM
DECONV = _w(3, 3, 5, 4)  # [kh, kw, out, in]
K3D = _w(2, 3, 3, 4, 3)
B4 = _w(4)
GAMMA, BETA, MEAN = _w(4), _w(4), _w(4)
VAR = _RNG.uniform(0.5, 2.0, 4).astype(np.float32)
X = (1, 4, 7, 6)  # NCHW: 4 channels, 7x6


def _bn(x):
    return tf.raw_ops.FusedBatchNormV3(x=x, scale=GAMMA, offset=BETA, mean=MEAN, variance=VAR, epsilon=1e-3,
                                       data_format="NCHW", is_training=False)[0]


CASES = [
    case("Conv2D/s2", lambda x: tf.nn.conv2d(x, K, [1, 1, 2, 2], "SAME", data_format="NCHW"), [f32(*X)], "Conv2D"),
    case("Conv2D/explicit_dilated", lambda x: tf.nn.conv2d(x, K, [1, 1, 1, 2], [[0, 0], [0, 0], [1, 0], [2, 1]],
                                                           data_format="NCHW", dilations=[1, 1, 2, 1]),
         [f32(*X)], "Conv2D"),
    case("MaxPool", lambda x: tf.nn.max_pool2d(x, [2, 3], [2, 1], "VALID", data_format="NCHW"), [f32(*X)], "MaxPool"),
    case("AvgPool", lambda x: tf.nn.avg_pool2d(x, 3, 2, "SAME", data_format="NCHW"), [f32(*X)], "AvgPool"),
    case("BiasAdd", lambda x: tf.nn.bias_add(x, B4, data_format="NCHW"), [f32(*X)], "BiasAdd"),
    case("BiasAdd/rank3", lambda x: tf.nn.bias_add(x, B4, data_format="NCHW"), [f32(2, 4, 5)], "BiasAdd"),
    case("FusedBatchNormV3", _bn, [f32(*X)], "FusedBatchNormV3"),
    case("DepthwiseConv2dNative", lambda x: tf.nn.depthwise_conv2d(x, DW, [1, 1, 2, 2], "SAME", data_format="NCHW"),
         [f32(*X)], "DepthwiseConv2dNative"),
    case("Conv2DBackpropInput", lambda x: tf.nn.conv2d_transpose(x, DECONV, [1, 5, 14, 12], [1, 1, 2, 2], "SAME",
                                                                 data_format="NCHW"),
         [f32(*X)], "Conv2DBackpropInput"),
    case("DepthToSpace", lambda x: tf.nn.depth_to_space(x, 2, data_format="NCHW"), [f32(*X)], "DepthToSpace"),
    case("SpaceToDepth", lambda x: tf.nn.space_to_depth(x, 2, data_format="NCHW"), [f32(1, 4, 6, 4)],
         "SpaceToDepth"),
    case("Conv3D", lambda x: tf.nn.conv3d(x, K3D, [1, 1, 1, 2, 1], "SAME", data_format="NCDHW"),
         [f32(1, 4, 3, 6, 5)], "Conv3D"),
    case("chain", lambda x: tf.nn.max_pool2d(tf.nn.relu(_bn(tf.nn.bias_add(
        tf.nn.conv2d(x, _w(3, 3, 4, 4), 1, "SAME", data_format="NCHW"), B4, data_format="NCHW"))), 2, 2, "VALID",
        data_format="NCHW"), [f32(*X)], ("Conv2D", "BiasAdd", "FusedBatchNormV3", "MaxPool")),
]
RAW = [case(c.id + "/raw", c.fn, c.inputs, c.ops, raw=True) for c in CASES]


@pytest.mark.parametrize("c", [c.param() for c in CASES + RAW])
def test_nchw_graph_verifies(c):
    frozen, _ = freeze_case(c)
    nchw = [n.name for n in frozen.graph_def.node
            if n.attr["data_format"].s in (b"NCHW", b"NCDHW") and n.op in c.ops]
    assert nchw, "the case must hold channels-first nodes"
    net = construct(parse(frozen))
    report = verify(frozen, net.snapshot, samples=2, intermediates=True)
    assert report.passed, report.render()
    ref = report.to_dict()["reference"]
    assert ref["executor"] == "tensorflow" and ref["nhwc_rewrites"] >= len(nchw)
    assert "run as NHWC" in report.render()
    # the graph TensorFlow ran has no channels-first node left; the converter's graph is untouched
    graph_def, _, rewritten = nhwc_reference_graph(frozen.graph_def)
    assert set(nchw) <= set(rewritten)
    assert not [n.name for n in graph_def.node if n.attr["data_format"].s in (b"NCHW", b"NCDHW")]
    assert [n.name for n in frozen.graph_def.node if n.attr["data_format"].s in (b"NCHW", b"NCDHW")]


def test_reference_graph_keeps_names_and_extra_outputs():
    """Consumers and fetches of ``n:0`` get the transpose back; consumers of ``n:1…`` the NHWC node's outputs."""
    def fn(x):
        y, mean, var = tf.raw_ops.FusedBatchNormV3(x=x, scale=GAMMA, offset=BETA, mean=MEAN, variance=VAR,
                                                   data_format="NCHW", is_training=False, name="bn")[:3]
        return y + tf.reshape(mean * 10.0 + var, [1, 4, 1, 1])

    frozen, _ = freeze_case(case("bn_outputs", fn, [f32(*X)], "FusedBatchNormV3", raw=True))
    graph_def, aliases, rewritten = nhwc_reference_graph(frozen.graph_def)
    assert rewritten == ["bn"] and aliases["bn:1"] == "bn/_tf2trt_nhwc:1"
    assert {n.name: n.op for n in graph_def.node}["bn"] == "Transpose"
    x = _RNG.standard_normal(X).astype(np.float32)
    runner = TensorFlowRunner(frozen)
    try:
        got = runner.run({"x0": x}, ["bn", frozen.outputs[0]])
    finally:
        runner.close()
    nhwc = tf.raw_ops.FusedBatchNormV3(x=np.transpose(x, (0, 2, 3, 1)), scale=GAMMA, offset=BETA, mean=MEAN,
                                       variance=VAR, is_training=False)[0].numpy()
    expected = np.transpose(nhwc, (0, 3, 1, 2))
    np.testing.assert_allclose(got["bn"], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[frozen.outputs[0]], expected + (MEAN * 10 + VAR).reshape(1, 4, 1, 1),
                               rtol=1e-5, atol=1e-5)


def _channels_first_model():
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((3, 12, 10), batch_size=1, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", data_format="channels_first", name="conv")(inp)
    x = keras.layers.BatchNormalization(axis=1, name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.MaxPooling2D(2, data_format="channels_first", name="pool")(x)
    x = keras.layers.DepthwiseConv2D(3, data_format="channels_first", name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D(data_format="channels_first", name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(4, name="logits")(x), name="channels_first")


@pytest.fixture(scope="module")
def channels_first_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cf") / "channels_first.keras"
    _channels_first_model().save(path)
    return path


def test_keras_channels_first_model_verifies(channels_first_file):
    frozen = freeze(channels_first_file)
    assert {n.op for n in frozen.graph_def.node if n.attr["data_format"].s == b"NCHW"} >= {"Conv2D"}
    report = verify(frozen, construct(parse(frozen)).snapshot, intermediates=True)
    assert report.passed and report.reference["nhwc_rewrites"] >= 1, report.render()


@pytest.mark.slow
def test_convert_verifies_nchw_without_onednn(channels_first_file, tmp_path):
    """Stock TensorFlow kernels (oneDNN off, as on machines without it): before, exit 3 'internal error'."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, X, name="x")
        y = CASES[-1].fn(x)
        y = tf.nn.conv2d_transpose(tf.nn.depthwise_conv2d(y, DW, [1, 1, 1, 1], "SAME", data_format="NCHW"),
                                   _w(3, 3, 4, 8), [1, 4, 6, 6], [1, 1, 2, 2], "SAME", data_format="NCHW")
        tf.identity(tf.nn.avg_pool2d(y, 2, 2, "VALID", data_format="NCHW"), name="y")
    pb = tmp_path / "nchw.pb"
    pb.write_bytes(graph.as_graph_def().SerializeToString())
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="3")
    for model in (pb, channels_first_file):
        engine = tmp_path / (model.stem + ".plan")
        proc = subprocess.run([sys.executable, "-m", "converter", "convert", str(model), "--engine", str(engine),
                               "--verify", "--check-intermediates", "--json"],
                              capture_output=True, text=True, env=env, timeout=600)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert proc.returncode == 0, (model.name, out["error"], proc.stderr[-2000:])
        v = out["verification"]
        assert v["passed"] is True and v["reference"]["nhwc_rewrites"] >= 1
        assert engine.is_file()
