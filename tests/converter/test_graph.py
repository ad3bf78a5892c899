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
