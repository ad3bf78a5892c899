"""tf.function and concrete functions freeze like any other model.

Issue 8: ``freeze(concrete_function)`` took a concrete function for a Keras
model (it too has ``inputs``, ``outputs`` and is callable) and failed with a
raw TypeError (calling it with ``training=False``).
"""

from __future__ import annotations

import numpy as np
import pytest

from converter.errors import FreezeError
from converter.freeze import freeze

from ._check import as_numpy, check_end_to_end


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((3,)).astype(np.float32)


def test_concrete_function_with_variables(tmp_path):
    import tensorflow as tf

    w, b = (tf.Variable(v) for v in _weights())

    @tf.function
    def dense(x):
        return tf.nn.relu(tf.matmul(x, w) + b)

    concrete = dense.get_concrete_function(tf.TensorSpec([2, 4], tf.float32, name="x"))
    frozen = freeze(concrete)
    assert [(s.name, s.shape) for s in frozen.inputs] == [("x", (2, 4))]
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    check_end_to_end(frozen, {"output_0": as_numpy(concrete(x))}, {"x": x}, tmp_path)


def test_concrete_function_with_unknown_batch_and_dict_output(tmp_path):
    import tensorflow as tf

    w, _ = _weights(2)

    @tf.function
    def heads(x, y):
        h = tf.matmul(x, w)
        return {"sum": h + y, "gate": tf.sigmoid(h)}

    concrete = heads.get_concrete_function(tf.TensorSpec([None, 4], tf.float32, name="x"),
                                           tf.TensorSpec([None, 3], tf.float32, name="y"))
    frozen = freeze(concrete, inputs={"x": (3, 4), "y": (3, 3)})
    assert {s.name: s.shape for s in frozen.inputs} == {"x": (3, 4), "y": (3, 3)}
    rng = np.random.default_rng(3)
    feeds = {"x": rng.standard_normal((3, 4)).astype(np.float32), "y": rng.standard_normal((3, 3)).astype(np.float32)}
    reference = {k: as_numpy(v) for k, v in concrete(**feeds).items()}
    check_end_to_end(frozen, reference, feeds, tmp_path)
    # without shapes the unknown batch becomes 1
    assert [s.shape for s in freeze(concrete).inputs] == [(1, 4), (1, 3)]


def test_tf_function_with_input_signature(tmp_path):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="signal")])
    def smooth(signal):
        return tf.nn.avg_pool1d(signal[..., None], 3, 1, "SAME")[..., 0] * 2.0

    frozen = freeze(smooth, inputs={"signal": (2, 8)})
    x = np.random.default_rng(4).standard_normal((2, 8)).astype(np.float32)
    check_end_to_end(frozen, {"output_0": as_numpy(smooth(x))}, {"signal": x}, tmp_path)


def test_tf_function_without_signature_says_how():
    import tensorflow as tf

    @tf.function
    def f(x):
        return x + 1.0

    with pytest.raises(FreezeError, match="no input_signature") as info:
        freeze(f)
    assert "get_concrete_function" in info.value.hint
