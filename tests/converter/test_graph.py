"""Step 2: the IR and the up-front support check."""

from __future__ import annotations

import numpy as np
import pytest

from converter.errors import UnsupportedOpsError
from converter.freeze import freeze
from converter.graph import parse


def _graph_with_unsupported_ops():
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([4, 4], tf.float32, name="x")])
    def f(x):
        a = tf.linalg.det(x)                       # MatrixDeterminant
        b = tf.math.bessel_i0(x)                   # BesselI0 (two nodes below)
        c = tf.math.bessel_i0(x * 2.0)
        d = tf.linalg.inv(x)                       # MatrixInverse
        return tf.nn.relu(x) + a + b + c + tf.reduce_sum(d)

    return freeze(f)


def test_every_unsupported_op_is_listed_before_any_layer(monkeypatch):
    from converter import trt as trtshim

    built = []
    monkeypatch.setattr(trtshim, "create_network", lambda *a, **k: built.append(1))
    frozen = _graph_with_unsupported_ops()
    with pytest.raises(UnsupportedOpsError) as info:
        parse(frozen)
    err = info.value
    assert err.counts["BesselI0"] == 2
    assert err.counts["MatrixDeterminant"] == 1 and err.counts["MatrixInverse"] == 1
    text = str(err)
    assert "Unsupported ops" in text and "BesselI0 ×2" in text
    assert err.hint and "docs/ops.md" in err.hint
    assert not built


def test_ir_decodes_attributes_and_constants():
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32, name="x")])
    def f(x):
        w = tf.constant(np.ones((3, 3, 3, 4), np.float32))
        return tf.nn.conv2d(x, w, strides=[1, 2, 2, 1], padding="SAME")

    graph = parse(freeze(f))
    conv = next(n for n in graph.nodes if n.op == "Conv2D")
    assert conv.attrs["strides"] == [1, 2, 2, 1] and conv.attrs["padding"] == "SAME"
    assert conv.attrs["T"] == "float32"
    assert graph.const(conv.inputs[1]).shape == (3, 3, 3, 4)
    assert conv.output_shapes == [(1, 4, 4, 4)]
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    assert all(order[i.split(":")[0]] < order[n.name] for n in graph.nodes for i in n.inputs)


def test_batchnorm_chain_folds_into_convolution():
    from tests.converter.models import small_cnn

    graph = parse(freeze(small_cnn()))
    ops = graph.op_counts()
    assert "Mul" not in ops and "AddV2" not in ops and "BiasAdd" in ops  # only the Dense bias remains
    conv = next(n for n in graph.nodes if n.op == "Conv2D")
    assert conv.attrs["padding"] == "EXPLICIT"  # ZeroPadding2D folded into the convolution
    assert len(conv.attrs["_fused"]) >= 3  # BiasAdd + BN mul + BN add


# ---------------------------------------------------------------- structural ops (converter/structural.py)
def _raw_frozen(build, inputs):
    """A raw GraphDef (nothing pruned or stripped) built by ``build(*placeholders)``, outputs named by it."""
    import tensorflow as tf

    from converter.freeze import FrozenGraph, TensorSpec

    graph = tf.Graph()
    with graph.as_default():
        placeholders = [tf.compat.v1.placeholder(tf.float32, shape, name=name) for name, shape in inputs.items()]
        outputs = build(*placeholders)
    return FrozenGraph(graph.as_graph_def(), [TensorSpec(n, tuple(s)) for n, s in inputs.items()],
                       [t.op.name for t in outputs])


@pytest.fixture
def no_network(monkeypatch):
    from converter import trt as trtshim

    built = []
    monkeypatch.setattr(trtshim, "create_network", lambda *a, **k: built.append(1))
    return built


def test_structural_ops_are_known_in_one_place():
    import importlib

    import converter.ops  # noqa: F401 - registers every converter
    from converter.registry import REGISTRY
    from converter.structural import CONTROL_ONLY_OPS, PASS_THROUGH_OPS, SOURCE_OPS, STRUCTURAL_OPS, kind

    assert STRUCTURAL_OPS == PASS_THROUGH_OPS | CONTROL_ONLY_OPS | SOURCE_OPS
    assert not (PASS_THROUGH_OPS & CONTROL_ONLY_OPS or PASS_THROUGH_OPS & SOURCE_OPS or CONTROL_ONLY_OPS & SOURCE_OPS)
    assert {"Identity", "Snapshot", "StopGradient"} <= PASS_THROUGH_OPS and "NoOp" in CONTROL_ONLY_OPS
    assert {"Const", "Placeholder"} == SOURCE_OPS
    assert all(kind(op) for op in STRUCTURAL_OPS) and kind("Conv2D") is None
    freeze_mod, graph_mod = importlib.import_module("converter.freeze"), importlib.import_module("converter.graph")
    assert freeze_mod._PASSTHROUGH_OPS is PASS_THROUGH_OPS and graph_mod.STRUCTURAL_OPS is STRUCTURAL_OPS
    # the docs list every pass-through op (from the same set) with the same converter
    entries = {op: REGISTRY[op] for op in PASS_THROUGH_OPS}
    assert len({e.convert for e in entries.values()}) == 1


def test_undeclared_placeholder_is_reported_by_the_support_check(no_network):
    from converter.errors import EXIT_BAD_INPUT, ConversionErrors

    frozen = _raw_frozen(lambda x, y: [x * 2.0 + y], {"x": (2, 3), "y": (2, 3)})
    frozen.inputs = frozen.inputs[:1]  # "y" is a placeholder, not a declared input
    with pytest.raises(UnsupportedOpsError) as info:
        parse(frozen)
    err = info.value
    assert isinstance(err, ConversionErrors) and err.exit_code == EXIT_BAD_INPUT
    assert err.counts == {"Placeholder (not a declared input)": 1}
    assert err.examples["Placeholder (not a declared input)"] == ["y"]
    (problem,) = err.errors
    assert problem.node == "y" and "not a declared input" in problem.message
    assert "declare it as an input" in err.hint and "default" in err.hint
    assert "y" in str(err)
    assert not no_network


def test_structural_problems_are_collected_with_every_other_problem_in_one_pass(no_network):
    import tensorflow as tf

    def build(x, y, z):
        with tf.control_dependencies([tf.no_op(name="ctrl")]):
            a = tf.identity(x, name="a")
        return [tf.linalg.det(a) + tf.reduce_sum(y) + tf.reduce_sum(z)]

    frozen = _raw_frozen(build, {"x": (3, 3), "y": (2,), "z": (2,)})
    frozen.inputs = frozen.inputs[:1]  # y and z are undeclared
    # a data edge from the NoOp: TensorFlow refuses to build one, a hand-edited GraphDef can hold it
    bad = frozen.graph_def.node.add()
    bad.CopyFrom(next(n for n in frozen.graph_def.node if n.name == "a"))
    bad.name = "reads_noop"
    del bad.input[:]
    bad.input.append("ctrl")
    frozen.outputs.append("reads_noop")
    with pytest.raises(UnsupportedOpsError) as info:
        parse(frozen)
    err = info.value
    assert err.counts["Placeholder (not a declared input)"] == 2
    assert sorted(err.examples["Placeholder (not a declared input)"]) == ["y", "z"]
    assert err.counts["NoOp (read as data)"] == 1 and err.counts["MatrixDeterminant"] == 1
    noop = next(e for e in err.errors if e.op == "NoOp")
    assert "reads_noop" in noop.message and "control" in noop.hint
    assert not no_network


def test_a_noop_control_dependency_is_not_a_problem():
    import tensorflow as tf

    from converter.graph import check_support, from_frozen

    def build(x):
        with tf.control_dependencies([tf.no_op(name="ctrl")]):
            return [tf.identity(x * 2.0, name="y")]

    graph = from_frozen(_raw_frozen(build, {"x": (2, 3)}))
    assert "NoOp" in graph.op_counts()
    check_support(graph)  # no exception
