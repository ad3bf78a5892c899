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
