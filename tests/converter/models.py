"""Small models the tests build themselves (nothing is downloaded or read from outside the repo)."""

from __future__ import annotations


def small_cnn(seed: int = 0, batch=None, with_bn: bool = True):
    """Conv → BN → ReLU → depthwise → pooling → dense, in Keras 3, with non-trivial BN statistics."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(seed)
    inp = keras.Input((16, 16, 3), batch_size=batch, name="image")
    x = keras.layers.ZeroPadding2D(1, name="pad")(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, name="conv")(x)
    if with_bn:
        x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.ReLU(6.0, name="relu6")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(5, activation="softmax", name="probs")(x)
    model = keras.Model(inp, out, name="small_cnn")
    rng = np.random.default_rng(seed)
    if with_bn:
        bn = model.get_layer("bn")
        gamma, beta, mean, var = bn.get_weights()
        bn.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                        rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    return model


def two_io_model(seed: int = 0):
    """Two inputs, two outputs."""
    import keras

    keras.utils.set_random_seed(seed)
    a = keras.Input((8,), name="a")
    b = keras.Input((8,), name="b")
    h = keras.layers.Dense(4, activation="tanh", name="h")(keras.layers.Concatenate(name="cat")([a, b]))
    s = keras.layers.Add(name="sum")([a, b])
    return keras.Model([a, b], [h, s], name="two_io")


def qat_cnn_savedmodel(path, seed: int = 0):
    """A tensorflow-model-optimization QAT CNN (Conv2D/BatchNorm/ReLU/Dense, random weights) saved as a SavedModel.

    A few training-mode passes give the moving-average quantization ranges and BatchNorm statistics
    non-trivial values.  Returns ``(path, data)`` with the calibration batch.  tfmot sets
    ``TF_USE_LEGACY_KERAS=1`` for the process when imported, which would turn a later first use of
    ``tf.keras`` into tf_keras: ``tf.keras`` is resolved first and the variable put back.
    """
    import os

    import numpy as np
    import tensorflow as tf

    _ = tf.keras.__name__
    legacy = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        import tensorflow_model_optimization as tfmot
    finally:
        if legacy is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = legacy
    import tf_keras as keras

    tf.random.set_seed(seed)
    keras.utils.set_random_seed(seed)
    inp = keras.Input((12, 12, 3), name="image")  # named: Keras numbers unnamed inputs per session
    x = keras.layers.Conv2D(8, 3, padding="same")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(10)(x)
    model = tfmot.quantization.keras.quantize_model(keras.Model(inp, out))
    data = np.random.default_rng(seed).standard_normal((16, 12, 12, 3)).astype(np.float32)
    for _ in range(3):
        model(data, training=True)
    model.save(str(path), save_format="tf")
    return path, data
