"""Placeholders in frozen graphs: PlaceholderWithDefault is optional, an unread placeholder is not an input.

Issue 8: a ``PlaceholderWithDefault`` could not be declared as an input
(``unknown input name``), and a placeholder that nothing the outputs need
reads — TensorFlow's own freezing keeps every function argument — was
demanded as an input (with its unknown dimensions).
"""

from __future__ import annotations

import numpy as np

from converter.freeze import freeze

from ._check import check_end_to_end


def _tf1_graph_with_default(path):
    """A TF1-style graph (tf.compat.v1 variables) frozen by TensorFlow's convert_variables_to_constants."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    weights = rng.standard_normal((4, 3)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        scale = tf.compat.v1.placeholder_with_default(np.full((4,), 2.0, np.float32), [4], name="scale")
        w = tf.compat.v1.get_variable("w", initializer=weights)
        tf.identity(tf.nn.relu(tf.matmul(x * scale, w)), name="y")
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            gd = tf.compat.v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), ["y"])
    path.write_bytes(gd.SerializeToString())
    return weights


def test_placeholder_with_default_takes_its_default(tmp_path):
    weights = _tf1_graph_with_default(tmp_path / "g.pb")
    frozen = freeze(tmp_path / "g.pb", inputs={"x": (2, 4)})
    assert [s.name for s in frozen.inputs] == ["x"]
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    check_end_to_end(frozen, {"y": np.maximum((x * 2.0) @ weights, 0)}, {"x": x}, tmp_path)


def test_placeholder_with_default_fed_when_declared(tmp_path):
    weights = _tf1_graph_with_default(tmp_path / "g.pb")
    frozen = freeze(tmp_path / "g.pb", inputs={"x": (2, 4), "scale": (4,)})
    assert {s.name: s.shape for s in frozen.inputs} == {"x": (2, 4), "scale": (4,)}
    node = {n.name: n for n in frozen.graph_def.node}["scale"]
    assert node.op == "Placeholder" and not node.input
    rng = np.random.default_rng(2)
    feeds = {"x": rng.standard_normal((2, 4)).astype(np.float32), "scale": rng.uniform(-1, 1, 4).astype(np.float32)}
    check_end_to_end(frozen, {"y": np.maximum((feeds["x"] * feeds["scale"]) @ weights, 0)}, feeds, tmp_path)


def test_declared_default_must_fit_its_shape(tmp_path):
    import pytest

    from converter.errors import FreezeError

    _tf1_graph_with_default(tmp_path / "g.pb")
    with pytest.raises(FreezeError, match=r"PlaceholderWithDefault 'scale': the model's shape is 4 \(rank 1\)"):
        freeze(tmp_path / "g.pb", inputs={"scale": (1, 4)})


def test_unread_placeholder_left_by_tensorflow_freezing_is_not_an_input(tmp_path):
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    w = tf.Variable(np.random.default_rng(3).standard_normal((4, 2)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x"),
                                  tf.TensorSpec([None, None], tf.float32, name="mask")])
    def f(x, mask):  # mask is accepted for API compatibility and never read
        return tf.tanh(tf.matmul(x, w))

    graph_def = convert_variables_to_constants_v2(f.get_concrete_function()).graph.as_graph_def()
    assert "mask" in {n.name for n in graph_def.node if n.op == "Placeholder"}  # TensorFlow kept it
    (tmp_path / "f.pb").write_bytes(graph_def.SerializeToString())
    frozen = freeze(tmp_path / "f.pb")
    assert [(s.name, s.shape) for s in frozen.inputs] == [("x", (1, 4))]
    x = np.random.default_rng(4).standard_normal((1, 4)).astype(np.float32)
    out = frozen.outputs[0]
    check_end_to_end(frozen, {out: np.tanh(x @ w.numpy())}, {"x": x}, tmp_path)
