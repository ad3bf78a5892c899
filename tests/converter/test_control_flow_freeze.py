"""Control flow survives freezing: the bodies of While/If stay in the library, variables read inside them become
constants, and the frozen graph computes what the model computes — on real Keras recurrent layers (Keras 3 and
tf_keras), ``tf.saved_model.save`` and ``tf.function`` loops/conditionals, with random weights and fixed seeds.

Converting those loops is tested in tests/converter/ops/test_loops.py, conditionals in
tests/converter/ops/test_conditionals.py; here a SavedModel with both converts and verifies, and the unrolled form of
the recurrent layers converts and verifies too."""

from __future__ import annotations

import numpy as np
import pytest

from converter import construct, freeze
from converter.graph import parse
from converter.verify import TensorFlowRunner, verify


def _keras3(layer_fn, shape=(12, 6), dtype="float32"):
    def build():
        import keras

        keras.utils.set_random_seed(0)
        inp = keras.Input(shape, name="seq", dtype=dtype)
        return keras.Model(inp, layer_fn(keras)(inp))

    return build


def _embedding_masked_lstm(keras):
    def apply(x):
        x = keras.layers.Embedding(20, 8, mask_zero=True, name="embed")(x)
        return keras.layers.LSTM(8, name="lstm")(x)

    return apply


MODELS = {
    "keras3-LSTM": _keras3(lambda k: k.layers.LSTM(8, name="lstm")),
    "keras3-LSTM-sequences": _keras3(lambda k: k.layers.LSTM(8, return_sequences=True, name="lstm")),
    "keras3-GRU": _keras3(lambda k: k.layers.GRU(8, name="gru")),
    "keras3-GRU-reset_before": _keras3(lambda k: k.layers.GRU(8, reset_after=False, name="gru")),
    "keras3-SimpleRNN": _keras3(lambda k: k.layers.SimpleRNN(8, name="rnn")),
    "keras3-Bidirectional-LSTM": _keras3(lambda k: k.layers.Bidirectional(k.layers.LSTM(4), name="bi")),
    "keras3-masked-LSTM": _keras3(_embedding_masked_lstm, shape=(12,), dtype="int32"),
}


def _tf_keras_lstm():
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    inp = tf_keras.Input((12, 6), name="seq")
    return tf_keras.Model(inp, tf_keras.layers.LSTM(8, name="lstm")(inp))


def _feeds(frozen, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for spec in frozen.inputs:
        shape = tuple(1 if d < 0 else d for d in spec.shape)
        if spec.dtype.startswith("int"):
            out[spec.name] = rng.integers(0, 20, shape).astype(spec.dtype)
        else:
            out[spec.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def _frozen_matches(frozen, model_fn):
    feeds = _feeds(frozen)
    runner = TensorFlowRunner(frozen)
    got = runner.run(feeds, frozen.outputs)
    runner.close()
    want = model_fn(*feeds.values())
    want = [want] if not isinstance(want, (list, tuple)) else list(want)
    for name, ref in zip(frozen.outputs, want):
        np.testing.assert_allclose(got[name], np.asarray(ref), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_recurrent_layers_freeze_exactly(name, tmp_path):
    import keras

    model = MODELS[name]()
    path = tmp_path / "model.keras"
    model.save(path)  # from the file a user has
    frozen = freeze(str(path))
    assert "While" in frozen.op_counts()
    assert not any(n.op in ("VarHandleOp", "ReadVariableOp") for n in frozen.graph_def.node)
    # the loop body is kept (and only what is referenced): its variables are now constants
    bodies = frozen.graph_def.library.function
    assert bodies and not any(nd.op == "ReadVariableOp" for f in bodies for nd in f.node_def)
    reloaded = type(frozen).from_bytes(frozen.to_bytes())
    _frozen_matches(reloaded, lambda *x: keras.models.load_model(path)(*x))


def test_tf_keras_lstm_from_h5(tmp_path):
    model = _tf_keras_lstm()
    path = tmp_path / "lstm.h5"
    model.save(path)
    frozen = freeze(str(path))
    _frozen_matches(frozen, lambda x: model(x).numpy())
    assert "StatelessWhile" in frozen.op_counts()  # tf_keras traces a stateless loop


def test_saved_model_with_a_loop_and_a_conditional_reading_variables(tmp_path):
    import tensorflow as tf

    class Module(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.random.stateless_normal((4, 4), seed=(1, 2)))
            self.b = tf.Variable(tf.random.stateless_normal((4,), seed=(3, 4)))

        @tf.function(input_signature=[tf.TensorSpec((2, 4), tf.float32, name="x")])
        def __call__(self, x):
            def body(i, h):
                return i + 1, tf.tanh(tf.matmul(h, self.w) + self.b)

            _, h = tf.while_loop(lambda i, h: i < 5, body, (tf.constant(0), x))
            return tf.cond(tf.reduce_sum(x) > 0, lambda: h * self.b, lambda: h - self.b)

    module = Module()
    tf.saved_model.save(module, str(tmp_path / "sm"))
    frozen = freeze(str(tmp_path / "sm"))
    ops = frozen.op_counts()
    assert ops.get("While", 0) + ops.get("StatelessWhile", 0) == 1
    assert ops.get("If", 0) + ops.get("StatelessIf", 0) == 1
    for seed in (0, 1):  # both branches of the conditional
        feeds = _feeds(frozen, seed)
        x = feeds[frozen.inputs[0].name] * (1 if seed == 0 else -1)
        feeds[frozen.inputs[0].name] = np.abs(x) * (1 if seed == 0 else -1)
        got = TensorFlowRunner(frozen).run(feeds, frozen.outputs)[frozen.outputs[0]]
        np.testing.assert_allclose(got, module(feeds[frozen.inputs[0].name]).numpy(), rtol=1e-5, atol=1e-6)
    # and it converts: the loop and the conditional after it, verified with each branch taken
    net = construct(parse(frozen))
    kinds = {layer["type"] for layer in net.snapshot.layers}
    assert {"TRIP_LIMIT", "CONDITION", "CONDITIONAL_OUTPUT"} <= kinds, kinds
    for taken in ((0.1, 1.0), (-1.0, -0.1)):  # reduce_sum(x) > 0, then < 0
        report = verify(frozen, net.snapshot, samples=2, intermediates=True,
                        input_ranges={frozen.inputs[0].name: taken})
        assert report.passed and report.intermediates["failed"] == 0, report.render()


@pytest.mark.parametrize("layer", ["LSTM", "GRU", "SimpleRNN"])
def test_the_unroll_hint_works(layer):
    """What the hint says: the same layer with unroll=True converts and verifies, intermediates included."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 4), name="seq")
    out = getattr(keras.layers, layer)(8, unroll=True, return_sequences=True, name="rnn")(inp)
    frozen = freeze(keras.Model(inp, out))
    assert "While" not in frozen.op_counts()
    net = construct(parse(frozen))
    report = verify(frozen, net.snapshot, intermediates=True)
    assert report.passed and report.intermediates["failed"] == 0, report.render()
