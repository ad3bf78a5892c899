"""Fusion of Conv → BiasAdd / FusedBatchNorm / Mul / Add… chains (converter/fuse.py), table-driven.

Each row is a raw GraphDef (``tf.compat.v1`` placeholders, as a frozen ``.pb`` has them) whose graph outputs are
the nodes the row's function returns *themselves* — not an Identity added after them — so a chain can end in a
graph output.  A row states which nodes must fold into which convolution; the converted network runs on the
reference executor and every output is compared with TensorFlow (NCHW rows: with the NHWC twin, as TF's CPU
kernels are NHWC-only), and for NHWC rows every intermediate TF tensor the network maps (``tensor_map``, what
``--check-intermediates`` and bisecting use) is compared too.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from converter.construct import construct
from converter.freeze import FrozenGraph, TensorSpec, add_shapes, freeze
from converter.graph import parse
from converter.reference import ReferenceExecutor
from converter.verify import compare, compare_intermediates

from .ops.harness import BUILD_ENGINES, case, f32, feeds_for, tf_outputs

_RNG = np.random.default_rng(7)
C = 4  # output channels of every convolution below


def _w(*shape):
    return _RNG.standard_normal(shape).astype(np.float32)


K = _w(3, 3, 3, C)                      # Conv2D HWIO
DW = _w(3, 3, 3, 2)                     # depthwise HWIM: 6 output channels
BIAS = _w(C)
GAMMA, BETA, MEAN = _w(C), _w(C), _w(C)
VAR = _RNG.uniform(0.5, 2.0, C).astype(np.float32)
SCALE = _w(C)


def chan(v, fmt):
    """A per-channel constant shaped to broadcast along the channel axis of a 4-D ``fmt`` tensor."""
    return v if fmt == "NHWC" else v.reshape(-1, 1, 1)


def conv(x, fmt="NHWC", name="conv"):
    return tf.nn.conv2d(x, K, 1, "SAME", data_format=fmt, name=name)


def bias(x, fmt="NHWC", name="bias", b=BIAS):
    return tf.nn.bias_add(x, b, data_format=fmt, name=name)


def bn(x, fmt="NHWC", name="bn"):
    return tf.raw_ops.FusedBatchNormV3(x=x, scale=GAMMA, offset=BETA, mean=MEAN, variance=VAR, epsilon=1e-3,
                                       data_format=fmt, is_training=False, name=name)[0]


def mul(x, fmt="NHWC", name="mul"):
    return tf.multiply(x, chan(SCALE, fmt), name=name)


def add(x, fmt="NHWC", name="add"):
    return tf.add(chan(BIAS * 0.5, fmt), x, name=name)  # the chain value as the second operand


def to_nchw(x):
    return np.transpose(x, (0, 3, 1, 2))


def to_nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


# one row: the case (fn returns the graph outputs), and {convolution: nodes folded into it}
NHWC_ROWS = [
    # ------------------------------------------------------------ a graph output at the end of the chain
    (case("end/bias", lambda x: bias(conv(x)), [f32(1, 5, 5, 3)], ("Conv2D", "BiasAdd")), {"conv": ["bias"]}),
    (case("end/fused_batch_norm", lambda x: bn(conv(x)), [f32(1, 5, 5, 3)], ("Conv2D", "FusedBatchNormV3")),
     {"conv": ["bn"]}),
    (case("end/mul", lambda x: mul(bias(conv(x))), [f32(1, 5, 5, 3)], ("Conv2D", "BiasAdd", "Mul")),
     {"conv": ["bias", "mul"]}),
    (case("end/add", lambda x: add(mul(conv(x))), [f32(1, 5, 5, 3)], ("Conv2D", "Mul", "AddV2")),
     {"conv": ["mul", "add"]}),
    (case("end/whole_chain", lambda x: add(mul(bn(bias(conv(x))))), [f32(2, 6, 5, 3)],
          ("Conv2D", "BiasAdd", "FusedBatchNormV3", "Mul", "AddV2")), {"conv": ["bias", "bn", "mul", "add"]}),
    (case("end/sub_realdiv", lambda x: tf.math.truediv(tf.subtract(conv(x), BIAS, name="sub"), SCALE + 3.0,
                                                       name="div"), [f32(1, 5, 5, 3)], ("Conv2D", "Sub", "RealDiv")),
     {"conv": ["sub", "div"]}),
    (case("end/depthwise_bias", lambda x: tf.nn.bias_add(tf.nn.depthwise_conv2d(x, DW, [1, 1, 1, 1], "SAME",
                                                                                name="dw"), _w(6), name="bias"),
          [f32(1, 5, 5, 3)], ("DepthwiseConv2dNative", "BiasAdd")), {"dw": ["bias"]}),
    (case("end/two_chains_two_outputs", lambda x: (bias(conv(x, name="c1"), name="b1"),
                                                  bn(conv(x, name="c2"), name="bn2")),
          [f32(1, 5, 5, 3)], ("Conv2D", "BiasAdd", "FusedBatchNormV3")), {"c1": ["b1"], "c2": ["bn2"]}),
    (case("end/output_then_conv", lambda x: (lambda b: (b, tf.nn.conv2d(b, _w(3, 3, C, 2), 1, "SAME", name="c2")))(
        bias(conv(x))), [f32(1, 5, 5, 3)], ("Conv2D", "BiasAdd")), {"conv": ["bias"], "c2": None}),
    # ------------------------------------------------------------ an intermediate asked for, or read twice
    (case("output_mid_chain", lambda x: (lambda b: (b, mul(b)))(bias(conv(x))), [f32(1, 5, 5, 3)],
          ("Conv2D", "BiasAdd", "Mul")), {"conv": ["bias"]}),
    (case("mid/several_consumers", lambda x: (lambda b: (tf.nn.relu(b, name="relu"), mul(b)))(bias(conv(x))),
          [f32(1, 5, 5, 3)], ("Conv2D", "BiasAdd", "Relu", "Mul")), {"conv": ["bias"]}),
    (case("mid/conv_read_twice", lambda x: (lambda c: (bias(c), tf.nn.relu(c, name="relu")))(conv(x)),
          [f32(1, 5, 5, 3)], ("Conv2D", "BiasAdd", "Relu")), {"conv": None}),
    (case("mid/square", lambda x: (lambda b: tf.multiply(b, b, name="sq"))(bias(conv(x))), [f32(1, 5, 5, 3)],
          ("Conv2D", "BiasAdd", "Mul")), {"conv": ["bias"]}),
    (case("mid/add_tensor", lambda x: tf.add(bias(conv(x)), tf.nn.relu(conv(x, name="c2"), name="relu"),
                                             name="sum"), [f32(1, 5, 5, 3)], ("Conv2D", "BiasAdd", "AddV2")),
     {"conv": ["bias"], "c2": None}),
    (case("mid/batch_norm_mean_read", lambda x: (lambda o: (o[0], tf.identity(o[1], name="mean_out")))(
        tf.raw_ops.FusedBatchNormV3(x=conv(x), scale=GAMMA, offset=BETA, mean=MEAN, variance=VAR,
                                    is_training=False, name="bn")), [f32(1, 5, 5, 3)],
        ("Conv2D", "FusedBatchNormV3")), None),  # converting BN output 1 is unsupported: checked below
    # ------------------------------------------------------------ constants that are not per-channel
    (case("not_per_channel/along_h", lambda x: tf.multiply(bias(conv(x)), SCALE.reshape(C, 1, 1),
                                                           name="mul"), [f32(1, C, C, 3)], ("Conv2D", "Mul")),
     {"conv": ["bias"]}),
    (case("not_per_channel/broadcasts_up", lambda x: tf.add(conv(x), tf.ones((2, 1, 1, C)), name="add"),
          [f32(1, 5, 5, 3)], ("Conv2D", "AddV2")), {"conv": None}),
    (case("not_per_channel/tensor_first_sub", lambda x: tf.subtract(BIAS, conv(x), name="sub"), [f32(1, 5, 5, 3)],
          ("Conv2D", "Sub")), {"conv": None}),
]


def nchw(id, body, shape_nhwc, ops, folds):
    """A channels-first row; TF's reference runs the NHWC twin ``body(x, "NHWC")``."""
    shape = (shape_nhwc[0], shape_nhwc[-1]) + tuple(shape_nhwc[1:-1])

    def ref(x):
        out = body(tf.constant(to_nhwc(x)), "NHWC")
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        return [to_nchw(np.asarray(o)) for o in outs]

    return case(id, lambda x: body(x, "NCHW"), [f32(*shape)], ops, ref=ref, atol=1e-4), folds


NCHW_ROWS = [
    nchw("nchw/end/bias", lambda x, f: bias(conv(x, f), f), (1, 5, 5, 3), ("Conv2D", "BiasAdd"), {"conv": ["bias"]}),
    nchw("nchw/end/fused_batch_norm", lambda x, f: bn(conv(x, f), f), (1, 5, 5, 3), ("Conv2D", "FusedBatchNormV3"),
         {"conv": ["bn"]}),
    nchw("nchw/end/whole_chain", lambda x, f: add(mul(bn(bias(conv(x, f), f), f), f), f), (2, 6, 5, 3),
         ("Conv2D", "BiasAdd", "FusedBatchNormV3", "Mul", "AddV2"), {"conv": ["bias", "bn", "mul", "add"]}),
    nchw("nchw/mid/several_consumers",
         lambda x, f: (lambda b: (tf.nn.relu(b, name="relu"), mul(b, f)))(bias(conv(x, f), f)), (1, 5, 5, 3),
         ("Conv2D", "BiasAdd", "Relu", "Mul"), {"conv": ["bias"]}),
    nchw("nchw/output_mid_chain", lambda x, f: (lambda b: (b, mul(b, f)))(bn(conv(x, f), f)), (1, 5, 5, 3),
         ("Conv2D", "FusedBatchNormV3", "Mul"), {"conv": ["bn"]}),
]


def _nchw_only(id, fn, shape, ops, folds, ref):
    return case(id, fn, [f32(*shape)], ops, ref=ref, atol=1e-4), folds


def _conv_nchw_ref(x):
    return to_nchw(np.asarray(conv(tf.constant(to_nhwc(x)))))


B6 = _w(6)
NCHW_ROWS += [
    # a (C,) constant broadcasts along W of an NCHW tensor (W == C here, so the shapes alone do not tell)
    _nchw_only("nchw/not_per_channel/along_w", lambda x: tf.multiply(conv(x, "NCHW"), SCALE, name="mul"),
               (1, 3, 5, C), ("Conv2D", "Mul"), {"conv": None}, lambda x: [_conv_nchw_ref(x) * np.asarray(SCALE)]),
    # an NHWC BiasAdd after an NCHW convolution adds along W: a different op, never folded
    _nchw_only("nchw/not_per_channel/nhwc_bias_add", lambda x: bias(conv(x, "NCHW"), "NHWC", b=B6),
               (1, 3, 5, 6), ("Conv2D", "BiasAdd"), {"conv": None}, lambda x: [_conv_nchw_ref(x) + np.asarray(B6)]),
]

ROWS = NHWC_ROWS + NCHW_ROWS


# ------------------------------------------------------------------ building and running
def freeze_chain(c) -> FrozenGraph:
    """A raw GraphDef whose outputs are the nodes ``c.fn`` returns (no Identity after them)."""
    graph = tf.Graph()
    with graph.as_default():
        placeholders = [tf.compat.v1.placeholder(tf.dtypes.as_dtype(s.dtype), s.shape, name=f"x{i}")
                        for i, s in enumerate(c.inputs)]
        result = c.fn(*placeholders)
        results = list(result) if isinstance(result, (list, tuple)) else [result]
    assert all(t.name.endswith(":0") for t in results), [t.name for t in results]
    specs = [TensorSpec(f"x{i}", tuple(s.shape), s.dtype) for i, s in enumerate(c.inputs)]
    return FrozenGraph(add_shapes(graph.as_graph_def()), specs, [t.op.name for t in results])


def check_network(c, frozen, net, intermediates: bool = True):
    """Every output of ``net`` matches TensorFlow; for NHWC graphs every mapped intermediate does too."""
    feeds = feeds_for(c)
    got = ReferenceExecutor(net.snapshot).run(feeds)
    expected = tf_outputs(c, frozen, None, feeds)
    assert [net.network.get_output(i).name for i in range(net.network.num_outputs)] == list(frozen.outputs)
    for name, ref in zip(frozen.outputs, expected):
        cmp = compare(name, got[name], ref, c.rtol, c.atol)
        assert cmp.passed, f"{c.id}: {name}: max_abs_err={cmp.max_abs_err:.3g} {cmp.message}"
    if intermediates and c.ref is None:
        for node, op, cmp in compare_intermediates(frozen, net.snapshot, feeds, c.rtol, c.atol):
            assert cmp.passed, f"{c.id}: intermediate {node} ({op}) differs: max_abs_err={cmp.max_abs_err:.3g}"
    if BUILD_ENGINES:
        from converter.engine import optimize_network

        assert optimize_network(net), f"{c.id}: TensorRT built no engine"


@pytest.mark.parametrize("row", [pytest.param(r, id=r[0].id) for r in ROWS if r[1] is not None])
def test_chain(row):
    c, folds = row
    frozen = freeze_chain(c)
    missing = set(c.ops) - {n.op for n in frozen.graph_def.node}
    assert not missing, f"{c.id} declares ops its graph lacks: {sorted(missing)}"
    graph = parse(frozen)
    for conv_name, fused in folds.items():
        node = graph.by_name[conv_name]
        assert node.attrs.get("_fused") == fused, f"{conv_name} fused {node.attrs.get('_fused')}, expected {fused}"
        for name in fused or []:
            # folded away: gone from the IR, or (a graph output) only an Identity of the convolution
            kept = graph.by_name.get(name)
            assert kept is None or (kept.op == "Identity" and kept.inputs == [f"{conv_name}:0"]), (name, kept)
            assert (kept is not None) == (name in frozen.outputs)
    assert all(name in graph.by_name for name in frozen.outputs)
    net = construct(graph)
    check_network(c, frozen, net)


def test_a_folded_chain_leaves_only_the_convolution():
    c = NHWC_ROWS[4][0]  # end/whole_chain
    net = construct(parse(freeze_chain(c)))
    types = [net.network.get_layer(i).type.name for i in range(net.network.num_layers)]
    assert types.count("CONVOLUTION") == 1 and "SCALE" not in types and "ELEMENTWISE" not in types, types
    # the chain end maps to the convolution's tensor; the values folded away have no counterpart
    conv_tensor = net.network.get_layer(types.index("CONVOLUTION")).get_output(0).name
    assert net.tensor_map["add:0"][0] == conv_tensor
    assert not {"conv:0", "bias:0", "bn:0", "mul:0"} & set(net.tensor_map)


def test_batch_norm_whose_other_outputs_are_read_is_not_folded():
    c = next(r[0] for r in ROWS if r[0].id == "mid/batch_norm_mean_read")
    graph = parse(freeze_chain(c))
    assert "_fused" not in graph.by_name["conv"].attrs and graph.by_name["bn"].op == "FusedBatchNormV3"


# ------------------------------------------------------------------ the same through a frozen .pb file
def _chain_pb(tmp_path, c):
    frozen = freeze_chain(c)
    path = tmp_path / "chain.pb"
    path.write_bytes(frozen.graph_def.SerializeToString())
    return frozen, path


PB_ROWS = [r for r in NHWC_ROWS if r[0].id in ("end/bias", "end/fused_batch_norm", "end/mul", "end/add",
                                                "end/whole_chain", "output_mid_chain")]


@pytest.mark.parametrize("row", [pytest.param(r, id=r[0].id) for r in PB_ROWS])
def test_chain_end_output_of_a_pb(tmp_path, row):
    c, folds = row
    raw, path = _chain_pb(tmp_path, c)
    frozen = freeze(path, outputs=list(raw.outputs))
    assert frozen.outputs == raw.outputs
    graph = parse(frozen)
    assert graph.by_name["conv"].attrs["_fused"] == folds["conv"]
    check_network(c, frozen, construct(graph))


def test_chain_end_output_through_the_api(tmp_path):
    from converter.api import from_tensorflow_graph_def

    c = NHWC_ROWS[1][0]  # end/fused_batch_norm
    raw = freeze_chain(c)
    net = from_tensorflow_graph_def(raw.graph_def, outputs=["bn"])
    check_network(c, raw, net, intermediates=False)


def test_tf2trt_convert_keeps_a_chain_end_output(tmp_path):
    """The reported failure: `tf2trt convert model.pb --output <BiasAdd>` exited 2, "output was not produced"."""
    c = NHWC_ROWS[0][0]  # end/bias
    _, path = _chain_pb(tmp_path, c)
    engine = tmp_path / "chain.plan"
    proc = subprocess.run([sys.executable, "-m", "converter", "convert", str(path), "--output", "bias",
                           "--engine", str(engine), "--verify", "--json"], capture_output=True, text=True, timeout=600)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, (out.get("error"), proc.stderr[-2000:])
    assert out["verification"]["passed"] is True
    assert [o["name"] for o in out["verification"]["outputs"]] == ["bias"]
