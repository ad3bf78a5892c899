"""Models beyond keras.applications, built by the tests themselves, convert and verify.

Legacy Keras (tf_keras: BatchNormalization freezes to FusedBatchNormV3),
SavedModels with named signatures, TF1 graphs saved as frozen .pb, several
inputs and outputs, sequence models (Conv1D), attention blocks
(MultiHeadAttention, LayerNormalization, GELU) and encoder–decoder image
models (Conv2DTranspose, UpSampling2D nearest/bilinear, Concatenate).
"""

from __future__ import annotations

import numpy as np
import pytest

from converter.construct import construct
from converter.freeze import freeze
from converter.graph import parse
from converter.verify import verify


def _randomize_norm_stats(model, seed=0):
    """Non-trivial BatchNormalization statistics so folding mistakes can't hide."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if "BatchNormalization" in type(layer).__name__:
            weights = layer.get_weights()
            new = [rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if i in (0, 3)
                   else rng.normal(0, 0.2, w.shape).astype(np.float32) for i, w in enumerate(weights)]
            layer.set_weights(new)


def _check(model_or_path, **freeze_kwargs):
    frozen = freeze(model_or_path, **freeze_kwargs)
    net = construct(parse(frozen))
    report = verify(frozen, net.snapshot, intermediates=True)
    assert report.passed, report.render()
    return frozen, net, report


def test_legacy_tf_keras_fused_batch_norm(tmp_path):
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    inp = tf_keras.Input((16, 16, 3), name="img")
    x = tf_keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = tf_keras.layers.BatchNormalization()(x)
    x = tf_keras.layers.Activation("relu")(x)
    y = tf_keras.layers.BatchNormalization()(tf_keras.layers.MaxPooling2D()(x))  # not after a conv: a Scale layer
    model = tf_keras.Model(inp, tf_keras.layers.GlobalAveragePooling2D()(y))
    _randomize_norm_stats(model)
    model.save(tmp_path / "legacy.h5")
    frozen, net, _ = _check(tmp_path / "legacy.h5")
    assert frozen.op_counts().get("FusedBatchNormV3") == 2


def test_legacy_tf_keras_application():
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3))
    _check(model)


def test_saved_model_with_named_signatures(tmp_path):
    import tensorflow as tf

    class Scorer(tf.Module):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.w = tf.Variable(rng.standard_normal((6, 4)).astype(np.float32))
            self.b = tf.Variable(rng.standard_normal((4,)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="features")])
        def score(self, features):
            logits = tf.matmul(features, self.w) + self.b
            return {"probabilities": tf.nn.softmax(logits), "logits": logits}

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="features")])
        def embed(self, features):
            return {"embedding": tf.math.l2_normalize(features, axis=-1)}

    module = Scorer()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"score": module.score, "embed": module.embed})
    frozen, _, report = _check(tmp_path / "sm", signature="score")
    assert sorted(o.name for o in report.outputs) == ["logits", "probabilities"]
    _check(tmp_path / "sm", signature="embed", inputs={"features": (3, 6)})


def test_tf1_graph_frozen_pb(tmp_path):
    import tensorflow as tf

    g = tf.Graph()
    rng = np.random.default_rng(0)
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 12, 12, 2], name="input")
        w = tf.constant(rng.standard_normal((3, 3, 2, 4)).astype(np.float32))
        y = tf.nn.relu(tf.nn.conv2d(x, w, strides=1, padding="SAME"))
        y = tf.nn.avg_pool2d(y, 2, 2, "VALID")
        tf.identity(tf.reduce_mean(y, axis=[1, 2]), name="output")
    path = tmp_path / "tf1.pb"
    path.write_bytes(g.as_graph_def().SerializeToString())
    frozen, _, _ = _check(path, inputs={"input": (2, 12, 12, 2)}, outputs=["output"])
    assert frozen.inputs[0].shape == (2, 12, 12, 2)


def test_several_inputs_and_outputs():
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 3), name="image")
    meta = keras.Input((5,), name="meta")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(image)
    x = keras.layers.GlobalAveragePooling2D()(x)
    joined = keras.layers.Concatenate()([x, meta])
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(joined)
    reg = keras.layers.Dense(1, name="reg")(joined)
    model = keras.Model([image, meta], [cls, reg])
    frozen, net, report = _check(model)
    assert [s.name for s in frozen.inputs] == ["image", "meta"]
    assert [o.name for o in report.outputs] == ["cls", "reg"]


def test_sequence_model_conv1d():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 6), name="signal")
    x = keras.layers.Conv1D(8, 5, padding="causal", dilation_rate=2, activation="relu")(inp)
    x = keras.layers.Conv1D(8, 3, strides=2, padding="same")(x)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    _check(keras.Model(inp, keras.layers.Dense(2)(x)))


def test_attention_block():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((10, 16), name="tokens")
    attn = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8)(inp, inp)
    x = keras.layers.LayerNormalization(epsilon=1e-6)(inp + attn)
    ff = keras.layers.Dense(32, activation="gelu")(x)
    ff = keras.layers.Dense(16, activation=keras.activations.gelu)(ff)
    x = keras.layers.LayerNormalization()(x + ff)
    tanh_gelu = keras.layers.Lambda(lambda t: keras.activations.gelu(t, approximate=True))(x)
    _check(keras.Model(inp, tanh_gelu))


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_encoder_decoder(interpolation):
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3), name="image")
    e1 = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    e2 = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(e1)
    d1 = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same")(e2)
    u1 = keras.layers.UpSampling2D(2, interpolation=interpolation)(e2)
    u1 = keras.layers.Conv2D(8, 1)(u1)
    x = keras.layers.Concatenate()([e1, d1, u1])
    out = keras.layers.Conv2D(2, 1, activation="sigmoid", name="mask")(x)
    _check(keras.Model(inp, out))
