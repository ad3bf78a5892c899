"""Step 3: the TensorRT network, its names, layout handling and shape checks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from converter.construct import construct
from converter.errors import ConversionError
from converter.freeze import freeze
from converter.graph import parse
from converter.reference import ReferenceExecutor
from converter.verify import TensorFlowRunner, compare

from .models import small_cnn, two_io_model


def _layers(net):
    return [net.network.get_layer(i) for i in range(net.layer_count)]


def test_layers_are_named_after_tf_nodes():
    frozen = freeze(small_cnn())
    graph = parse(frozen)
    net = construct(graph)
    names = {n.name for n in graph.nodes}
    for layer in _layers(net):
        base = layer.name.rsplit("/", 1)[0] if layer.name not in names else layer.name
        assert layer.name in names or base in names, layer.name


def test_nhwc_goes_channels_first_once():
    net = construct(parse(freeze(small_cnn())))
    types = Counter(layer.type.name for layer in _layers(net))
    # one transpose at the input; conv → relu → depthwise → relu6 → pool → mean stay channels-first
    assert types["SHUFFLE"] == 1
    assert types["CONVOLUTION"] == 2 and types["SCALE"] == 0
    assert net.network.get_output(0).name == "probs"


def test_multiple_inputs_and_outputs_match_tensorflow():
    frozen = freeze(two_io_model())
    net = construct(parse(frozen))
    rng = np.random.default_rng(1)
    feeds = {"a": rng.standard_normal((1, 8)).astype(np.float32), "b": rng.standard_normal((1, 8)).astype(np.float32)}
    got = ReferenceExecutor(net.snapshot).run(feeds)
    ref = TensorFlowRunner(frozen).run(feeds, frozen.outputs)
    assert sorted(got) == sorted(frozen.outputs)
    for name in frozen.outputs:
        assert compare(name, got[name], ref[name], 1e-4, 1e-5).passed


def test_shape_disagreement_names_the_tf_node(monkeypatch):
    """A converter that produces a wrong shape is caught at its node."""
    from converter.registry import REGISTRY

    frozen = freeze(small_cnn())
    graph = parse(frozen)
    entry = REGISTRY["Relu6"]
    original = entry.convert

    def broken(ctx, node, inputs):
        value = original(ctx, node, inputs)
        layer = ctx.network.add_slice(ctx.tensor(value, value.layout), (0, 0, 0, 0), (1, 8, 2, 2), (1, 1, 1, 1))
        ctx.name_layer(layer, "broken")
        return ctx.out(layer.get_output(0), value.layout)

    monkeypatch.setattr(entry, "convert", broken)
    with pytest.raises(ConversionError) as info:
        construct(graph)
    assert info.value.node.endswith("Relu6") and "TensorFlow says" in str(info.value)


def test_output_that_is_an_input_gets_an_identity():
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([2, 3], tf.float32, name="x")])
    def f(x):
        return x, tf.nn.relu(x)

    frozen = freeze(f)
    net = construct(parse(frozen))
    assert net.network.num_outputs == 2
    x = np.array([[-1, 0, 1], [2, -2, 3]], np.float32)
    got = ReferenceExecutor(net.snapshot).run({"x": x})
    np.testing.assert_array_equal(got[frozen.outputs[0]], x)
    np.testing.assert_array_equal(got[frozen.outputs[1]], np.maximum(x, 0))


def _raw_frozen(build, inputs):
    import tensorflow as tf

    from converter.freeze import FrozenGraph, TensorSpec, add_shapes

    graph = tf.Graph()
    with graph.as_default():
        placeholders = [tf.compat.v1.placeholder(tf.float32, shape, name=name) for name, shape in inputs.items()]
        outputs = build(*placeholders)
    return FrozenGraph(add_shapes(graph.as_graph_def()), [TensorSpec(n, tuple(s)) for n, s in inputs.items()],
                       [t.op.name for t in outputs])


def _run(frozen, feeds):
    net = construct(parse(frozen))
    got = ReferenceExecutor(net.snapshot).run(feeds)
    runner = TensorFlowRunner(frozen)
    try:
        expected = runner.run(feeds, list(frozen.outputs))
    finally:
        runner.close()
    for name in frozen.outputs:
        assert compare(name, got[name], np.asarray(expected[name]), 1e-5, 1e-6).passed, name
    return net


def test_graph_with_noop_control_dependencies_converts():
    """A raw GraphDef keeps its NoOp nodes (freezing strips them): the check accepts them and construct drops them."""
    import tensorflow as tf

    def build(x):
        init = tf.no_op(name="init")
        with tf.control_dependencies([init]):
            y = tf.nn.relu(x, name="relu")
        with tf.control_dependencies([tf.group(y, name="group")]):  # a NoOp that depends on data
            z = tf.identity(y * 2.0, name="z")
        return [z]

    frozen = _raw_frozen(build, {"x": (2, 3)})
    assert sum(n.op == "NoOp" for n in frozen.graph_def.node) == 2
    net = _run(frozen, {"x": np.array([[-1, 0, 1], [2, -2, 3]], np.float32)})
    assert all("init" not in layer.name and "group" not in layer.name for layer in _layers(net))


def test_placeholder_with_default_passes_its_default_through(tmp_path):
    import tensorflow as tf

    def build(x):
        scale = tf.compat.v1.placeholder_with_default(np.array([1.0, -2.0, 0.5], np.float32), [3], name="scale")
        return [tf.multiply(x, scale, name="y")]

    frozen = _raw_frozen(build, {"x": (2, 3)})
    feeds = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    _run(frozen, feeds)
    # through a .pb, freezing bypasses it (and folds its default into the Mul's constant)
    path = tmp_path / "g.pb"
    path.write_bytes(frozen.graph_def.SerializeToString())
    pb = freeze(path, outputs=["y"])
    assert [s.name for s in pb.inputs] == ["x"]
    assert "PlaceholderWithDefault" not in {n.op for n in pb.graph_def.node}
    _run(pb, feeds)


def test_construct_raises_for_an_undeclared_placeholder_when_the_check_is_skipped():
    from converter.graph import from_frozen

    frozen = _raw_frozen(lambda x, y: [x + y], {"x": (2,), "y": (2,)})
    frozen.inputs = frozen.inputs[:1]
    with pytest.raises(ConversionError) as info:
        construct(from_frozen(frozen))
    assert info.value.node == "y" and "declare it as an input" in info.value.hint
