"""Op patterns Keras layers and keras.applications models produce, converted end to end."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import tensorflow as tf

from .harness import case, f32, i32, params, run_case


def keras_layer(make, seed=0):
    """``fn(x)`` calling a Keras 3 layer/model built once (lazily, so collection stays fast)."""
    import keras

    @functools.cache
    def built():
        keras.utils.set_random_seed(seed)
        return make(keras)

    def fn(*xs):
        layer = built()
        return layer(*xs, training=False) if not isinstance(layer, tuple) else layer[0](*xs)

    return fn


def mha(keras):
    layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)

    class Wrapper:
        def __call__(self, q, v, training=False):
            return layer(q, v, training=training)

    return Wrapper()


def _perturbed(make, seed=0):
    """Layers with normalization statistics/weights moved off their trivial initial values."""

    def build(keras):
        layer = make(keras)
        return layer

    return build


def gelu(approximate):
    return lambda x: tf.nn.gelu(x, approximate=approximate)


TABLE = [
    case("Gelu/erf_based", lambda x: 0.5 * x * (1.0 + tf.math.erf(x / np.sqrt(2.0).astype(np.float32))),
         [f32(2, 8)], ("Erf", "Mul", "AddV2")),
    case("Gelu/tf_nn_gelu", gelu(False), [f32(2, 8)], ("Erfc", "Mul")),
    case("Gelu/keras_erfc_based", keras_layer(lambda k: k.layers.Activation("gelu")), [f32(2, 8)],
         ("Erfc", "Mul", "Neg")),
    case("Gelu/tanh_based", gelu(True), [f32(2, 8)], ("Tanh", "Pow", "Mul", "AddV2")),
    case("Gelu/keras_tanh_based", keras_layer(lambda k: k.layers.Lambda(lambda x: k.ops.gelu(x, approximate=True))),
         [f32(2, 8)], ("Tanh", "Pow")),
    case("LayerNormalization/keras", keras_layer(lambda k: k.layers.LayerNormalization(epsilon=1e-3)),
         [f32(2, 5, 8)], ("Mean", "SquaredDifference", "Rsqrt")),
    case("LayerNormalization/moments", lambda x: tf.nn.batch_normalization(
        x, *tf.nn.moments(x, axes=[-1], keepdims=True), offset=0.1, scale=1.5, variance_epsilon=1e-3),
        [f32(2, 3, 6)], ("Mean", "SquaredDifference", "Rsqrt")),
    case("RMSNormalization/keras", keras_layer(lambda k: k.layers.RMSNormalization()),
         [f32(2, 5, 8)], ("Mean", "Square", "Rsqrt")),
    case("GroupNormalization/keras", keras_layer(lambda k: k.layers.GroupNormalization(2)), [f32(1, 4, 4, 4)],
         ("Reshape", "Mean", "SquaredDifference")),
    case("Conv1D/expand_conv_squeeze", keras_layer(lambda k: k.layers.Conv1D(4, 3, padding="same")),
         [f32(1, 10, 3)], ("ExpandDims", "Conv2D", "Squeeze")),
    case("Conv1D/causal_dilated", keras_layer(lambda k: k.layers.Conv1D(4, 3, dilation_rate=2, padding="causal")),
         [f32(1, 10, 3)], ("SpaceToBatchND", "BatchToSpaceND", "Conv2D")),
    case("Conv2DTranspose/keras", keras_layer(lambda k: k.layers.Conv2DTranspose(4, 3, strides=2, padding="same")),
         [f32(1, 5, 5, 3)], "Conv2DBackpropInput"),
    case("Conv3DTranspose/keras", keras_layer(lambda k: k.layers.Conv3DTranspose(2, 3, strides=2)),
         [f32(1, 3, 3, 3, 2)], "Conv3DBackpropInputV2"),
    case("SeparableConv2D/keras", keras_layer(lambda k: k.layers.SeparableConv2D(4, 3, padding="same")),
         [f32(1, 6, 6, 3)], ("DepthwiseConv2dNative", "Conv2D")),
    case("MultiHeadAttention/keras", keras_layer(mha), [f32(1, 5, 8), f32(1, 6, 8)],
         ("Einsum", "Softmax", "BatchMatMulV2")),
    case("UpSampling2D/nearest_tile", keras_layer(lambda k: k.layers.UpSampling2D(2)), [f32(1, 3, 4, 2)],
         ("Tile", "ExpandDims", "Reshape")),
    case("UpSampling2D/bilinear", keras_layer(lambda k: k.layers.UpSampling2D(2, interpolation="bilinear")),
         [f32(1, 3, 4, 2)], "ResizeBilinear"),
    case("Resizing/keras", keras_layer(lambda k: k.layers.Resizing(7, 9)), [f32(1, 5, 5, 3)], "ResizeBilinear"),
    case("Dense/rank3_input", keras_layer(lambda k: k.layers.Dense(4, activation="gelu")), [f32(1, 5, 8)],
         ("Reshape", "MatMul", "BiasAdd")),
    case("Embedding/keras", keras_layer(lambda k: k.layers.Embedding(10, 4)), [i32(2, 5, low=0, high=10)],
         ("GatherV2", "SelectV2")),
    case("Swish/keras", keras_layer(lambda k: k.layers.Activation("swish")), [f32(2, 8)], ("Sigmoid", "Mul")),
    case("HardSwish/keras", keras_layer(lambda k: k.layers.Activation("hard_swish")), [f32(2, 8, low=-5, high=5)],
         ("Relu6", "RealDiv")),
    case("Softmax/keras_axis1", keras_layer(lambda k: k.layers.Softmax(axis=1)), [f32(1, 4, 3, 2)],
         ("Softmax", "Transpose")),
    case("Cropping2D/keras", keras_layer(lambda k: k.layers.Cropping2D(((1, 0), (0, 2)))), [f32(1, 5, 5, 2)],
         "StridedSlice"),
    case("ZeroPadding2D/keras", keras_layer(lambda k: k.layers.ZeroPadding2D(((1, 0), (2, 1)))),
         [f32(1, 3, 3, 2)], "Pad"),
    case("GlobalMaxPooling2D/keras", keras_layer(lambda k: k.layers.GlobalMaxPooling2D()), [f32(1, 4, 4, 3)],
         "Max"),
    case("PReLU/keras", keras_layer(lambda k: k.layers.PReLU(alpha_initializer="random_normal")), [f32(2, 6)],
         ("Relu", "Neg")),
    case("UnitNormalization/keras", keras_layer(lambda k: k.layers.UnitNormalization()), [f32(2, 6)],
         ("Square", "Sum", "Rsqrt")),
]


def _mobilenet_v3(keras):
    return keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), minimalistic=False)


def _resnet_block(keras):
    inp = keras.Input((8, 8, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    y = keras.layers.Conv2D(8, 3, padding="same")(x)
    y = keras.layers.BatchNormalization()(y)
    x = keras.layers.Add()([x, y])
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))


TABLE += [
    case("Model/residual_block", keras_layer(_resnet_block), [f32(1, 8, 8, 3)],
         ("Conv2D", "AddV2", "MaxPool", "Mean", "MatMul", "Softmax")),
    case("Model/MobileNetV3Small_32px", keras_layer(_mobilenet_v3), [f32(1, 32, 32, 3, low=0, high=255)],
         ("Conv2D", "DepthwiseConv2dNative", "Relu6", "Mean", "Softmax"), marks=(pytest.mark.slow,)),
]


@pytest.mark.parametrize("c", params(TABLE))
def test_pattern(c):
    run_case(c)


_ = np
