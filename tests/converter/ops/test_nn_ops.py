"""Convolutions, transposed convolutions, pooling, normalization, softmax, matrix products and einsum."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from .harness import case, f32, params, run_case

_RNG = np.random.default_rng(42)


def W(*shape):
    return tf.constant(_RNG.standard_normal(shape).astype(np.float32))


def to_nchw(x):
    return np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else np.transpose(x, (0, 4, 1, 2, 3))


def to_nhwc(x):
    return np.transpose(x, (0, 2, 3, 1)) if x.ndim == 4 else np.transpose(x, (0, 2, 3, 4, 1))


def nchw_case(id, nhwc_fn, nchw_fn, shape_nhwc, ops, **kw):
    """A channels-first graph whose TF reference runs the NHWC twin (TF's CPU kernels are NHWC-only)."""
    shape = (shape_nhwc[0], shape_nhwc[-1]) + tuple(shape_nhwc[1:-1])
    ref = lambda x: to_nchw(np.asarray(nhwc_fn(tf.constant(to_nhwc(x)))))  # noqa: E731
    return case(id, nchw_fn, [f32(*shape)], ops, ref=ref, **kw)


K33 = W(3, 3, 3, 4)
K33G = W(3, 3, 2, 6)  # groups = 2 for 4 input channels... (4 / 2 = 2 per group)
K55 = W(5, 5, 3, 2)
K1 = W(1, 1, 3, 5)
K3D = W(2, 3, 3, 3, 4)
DW = W(3, 3, 3, 2)
DECONV = W(3, 3, 4, 3)  # [kh, kw, out_channels, in_channels]
DECONV3D = W(2, 3, 3, 2, 3)


def conv(k, strides=1, padding="SAME", dilations=1, fmt="NHWC"):
    return lambda x: tf.nn.conv2d(x, k, strides, padding, data_format=fmt, dilations=dilations)


def dilate_filter(k, rate: int) -> np.ndarray:
    """``k`` ([kh, kw, ...]) with ``rate - 1`` zero taps between neighbours: a dilated filter as a dense one."""
    k = np.asarray(k)
    kh, kw = k.shape[:2]
    dense = np.zeros(((kh - 1) * rate + 1, (kw - 1) * rate + 1) + k.shape[2:], k.dtype)
    dense[::rate, ::rate] = k
    return dense


def dilated_deconv_ref(k, output_shape, padding, rate):
    """TensorFlow's transposed convolution with the dilated filter spelled out densely.

    TF's CPU ``Conv2DBackpropInput`` kernel refuses dilation rates > 1 on some CPUs (AMD EPYC among them), so the
    reference runs the same op at dilation 1 on the equivalent zero-stuffed filter; SAME/VALID padding depends only
    on the effective filter size, which is the same for both.
    """
    dense = tf.constant(dilate_filter(k, rate))
    return lambda x: tf.nn.conv2d_transpose(tf.constant(x), dense, output_shape, 1, padding).numpy()


def explicit(pads):
    return [[0, 0], list(pads[0]), list(pads[1]), [0, 0]]


TABLE = [
    case("Conv2D/same_s1", conv(K33), [f32(1, 6, 6, 3)], "Conv2D"),
    case("Conv2D/valid_s2", conv(K33, 2, "VALID"), [f32(2, 7, 7, 3)], "Conv2D"),
    case("Conv2D/same_s2_odd", conv(K55, 2), [f32(1, 7, 8, 3)], "Conv2D"),
    case("Conv2D/strides_hw", conv(K33, [1, 2, 1, 1], "SAME"), [f32(1, 7, 6, 3)], "Conv2D"),
    case("Conv2D/dilated", conv(K33, 1, "SAME", 2), [f32(1, 8, 8, 3)], "Conv2D"),
    case("Conv2D/dilated_valid", conv(K33, 1, "VALID", [1, 2, 1, 1]), [f32(1, 8, 8, 3)], "Conv2D"),
    case("Conv2D/explicit", conv(K33, 1, explicit([(1, 2), (0, 1)])), [f32(1, 6, 6, 3)], "Conv2D"),
    case("Conv2D/pointwise", conv(K1), [f32(1, 4, 4, 3)], "Conv2D"),
    case("Conv2D/grouped", conv(K33G), [f32(1, 6, 6, 4)], "Conv2D"),
    nchw_case("Conv2D/nchw_same_s2", conv(K33, 2), conv(K33, [1, 1, 2, 2], "SAME", fmt="NCHW"), (1, 7, 7, 3),
              "Conv2D"),
    nchw_case("Conv2D/nchw_explicit_dilated",
              conv(K33, 1, explicit([(1, 0), (2, 1)]), 2),
              lambda x: tf.nn.conv2d(x, K33, 1, [[0, 0], [0, 0], [1, 0], [2, 1]], data_format="NCHW",
                                     dilations=[1, 1, 2, 2]), (1, 7, 7, 3), "Conv2D"),
    case("Conv2D/then_bias_relu", lambda x: tf.nn.relu(tf.nn.bias_add(conv(K33)(x), tf.constant([1.0, -1, 0.5, 2]))),
         [f32(1, 5, 5, 3)], ("Conv2D", "BiasAdd", "Relu")),
    case("Conv3D/same", lambda x: tf.nn.conv3d(x, K3D, [1, 1, 1, 1, 1], "SAME"), [f32(1, 4, 5, 5, 3)], "Conv3D"),
    case("Conv3D/valid_s2", lambda x: tf.nn.conv3d(x, K3D, [1, 2, 2, 2, 1], "VALID"), [f32(1, 5, 6, 6, 3)], "Conv3D"),
    nchw_case("Conv3D/ncdhw", lambda x: tf.nn.conv3d(x, K3D, [1, 1, 2, 1, 1], "SAME"),
              lambda x: tf.nn.conv3d(x, K3D, [1, 1, 1, 2, 1], "SAME", data_format="NCDHW"), (1, 4, 5, 5, 3), "Conv3D"),
    case("DepthwiseConv2dNative/same", lambda x: tf.nn.depthwise_conv2d(x, DW, [1, 1, 1, 1], "SAME"),
         [f32(1, 6, 6, 3)], "DepthwiseConv2dNative"),
    case("DepthwiseConv2dNative/valid_s2", lambda x: tf.nn.depthwise_conv2d(x, DW, [1, 2, 2, 1], "VALID"),
         [f32(1, 7, 7, 3)], "DepthwiseConv2dNative"),
    case("DepthwiseConv2dNative/dilated", lambda x: tf.nn.depthwise_conv2d(x, DW, [1, 1, 1, 1], "SAME",
                                                                         dilations=[2, 2]),
         [f32(1, 7, 7, 3)], "DepthwiseConv2dNative"),
    case("DepthwiseConv2dNative/explicit",
         lambda x: tf.raw_ops.DepthwiseConv2dNative(input=x, filter=DW, strides=[1, 1, 1, 1], padding="EXPLICIT",
                                                    explicit_paddings=[0, 0, 1, 1, 2, 0, 0, 0]),
         [f32(1, 5, 5, 3)], "DepthwiseConv2dNative"),
    nchw_case("DepthwiseConv2dNative/nchw", lambda x: tf.nn.depthwise_conv2d(x, DW, [1, 2, 2, 1], "SAME"),
              lambda x: tf.nn.depthwise_conv2d(x, DW, [1, 1, 2, 2], "SAME", data_format="NCHW"), (1, 6, 6, 3),
              "DepthwiseConv2dNative"),
    case("Conv2DBackpropInput/same_s2",
         lambda x: tf.nn.conv2d_transpose(x, DECONV, [1, 10, 10, 4], 2, "SAME"), [f32(1, 5, 5, 3)],
         "Conv2DBackpropInput"),
    case("Conv2DBackpropInput/same_s2_odd_output",
         lambda x: tf.nn.conv2d_transpose(x, DECONV, [1, 9, 9, 4], 2, "SAME"), [f32(1, 5, 5, 3)],
         "Conv2DBackpropInput"),
    case("Conv2DBackpropInput/valid_s2",
         lambda x: tf.nn.conv2d_transpose(x, DECONV, [2, 11, 11, 4], 2, "VALID"), [f32(2, 5, 5, 3)],
         "Conv2DBackpropInput"),
    case("Conv2DBackpropInput/valid_s2_extra_rows",
         lambda x: tf.nn.conv2d_transpose(x, DECONV, [1, 12, 12, 4], 2, "VALID"), [f32(1, 5, 5, 3)],
         "Conv2DBackpropInput"),
    case("Conv2DBackpropInput/valid_s1",
         lambda x: tf.nn.conv2d_transpose(x, DECONV, [1, 6, 7, 4], 1, "VALID"), [f32(1, 4, 5, 3)],
         "Conv2DBackpropInput"),
    case("Conv2DBackpropInput/explicit",
         lambda x: tf.raw_ops.Conv2DBackpropInput(input_sizes=[1, 8, 8, 4], filter=DECONV, out_backprop=x,
                                                  strides=[1, 2, 2, 1], padding="EXPLICIT",
                                                  explicit_paddings=[0, 0, 1, 1, 0, 1, 0, 0]),
         [f32(1, 4, 4, 3)], "Conv2DBackpropInput"),
    case("Conv2DBackpropInput/dilated_valid",
         lambda x: tf.nn.conv2d_transpose(x, DECONV, [1, 9, 9, 4], 1, "VALID", dilations=2), [f32(1, 5, 5, 3)],
         "Conv2DBackpropInput", ref=dilated_deconv_ref(DECONV, [1, 9, 9, 4], "VALID", 2)),
    case("Conv2DBackpropInput/dilated_same",
         lambda x: tf.nn.conv2d_transpose(x, DECONV, [1, 5, 6, 4], 1, "SAME", dilations=2), [f32(1, 5, 6, 3)],
         "Conv2DBackpropInput", ref=dilated_deconv_ref(DECONV, [1, 5, 6, 4], "SAME", 2)),
    nchw_case("Conv2DBackpropInput/nchw",
              lambda x: tf.nn.conv2d_transpose(x, DECONV, [1, 10, 10, 4], 2, "SAME"),
              lambda x: tf.nn.conv2d_transpose(x, DECONV, [1, 4, 10, 10], [1, 1, 2, 2], "SAME", data_format="NCHW"),
              (1, 5, 5, 3), "Conv2DBackpropInput"),
    case("Conv3DBackpropInputV2/same_s2",
         lambda x: tf.nn.conv3d_transpose(x, DECONV3D, [1, 6, 8, 8, 2], [1, 2, 2, 2, 1], "SAME"),
         [f32(1, 3, 4, 4, 3)], "Conv3DBackpropInputV2"),
    case("Conv3DBackpropInputV2/valid",
         lambda x: tf.nn.conv3d_transpose(x, DECONV3D, [1, 4, 6, 6, 2], [1, 1, 1, 1, 1], "VALID"),
         [f32(1, 3, 4, 4, 3)], "Conv3DBackpropInputV2"),
]


def pool(kind, k, s, padding, fmt="NHWC"):
    fn = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
    return lambda x: fn(x, k, s, padding, data_format=fmt)


def pool3d(kind, k, s, padding):
    fn = tf.nn.max_pool3d if kind == "max" else tf.nn.avg_pool3d
    return lambda x: fn(x, k, s, padding)


for kind, op in (("max", "MaxPool"), ("avg", "AvgPool")):
    TABLE += [
        case(f"{op}/valid_2x2", pool(kind, 2, 2, "VALID"), [f32(1, 6, 6, 3)], op),
        case(f"{op}/same_3x3_s2", pool(kind, 3, 2, "SAME"), [f32(2, 7, 7, 3)], op),
        case(f"{op}/same_3x3_s1", pool(kind, 3, 1, "SAME"), [f32(1, 5, 5, 2)], op),
        case(f"{op}/rect_window", pool(kind, [2, 3], [1, 2], "VALID"), [f32(1, 6, 7, 2)], op),
        nchw_case(f"{op}/nchw_same", pool(kind, 3, 2, "SAME"), pool(kind, 3, 2, "SAME", "NCHW"), (1, 7, 7, 3), op),
        case(f"{op}3D/same", pool3d(kind, 2, 2, "SAME"), [f32(1, 5, 5, 5, 2)], f"{op}3D"),
        case(f"{op}3D/valid", pool3d(kind, [1, 2, 2], [1, 2, 1], "VALID"), [f32(1, 3, 4, 4, 2)], f"{op}3D"),
    ]

TABLE += [
    case("MaxPool/explicit", lambda x: tf.raw_ops.MaxPool(
        input=x, ksize=[1, 3, 2, 1], strides=[1, 2, 1, 1], padding="EXPLICIT",
        explicit_paddings=[0, 0, 1, 1, 0, 1, 0, 0]),
         [f32(1, 5, 5, 2)], "MaxPool"),
]

_GAMMA, _BETA = _RNG.uniform(0.5, 1.5, 3).astype(np.float32), _RNG.normal(0, 0.2, 3).astype(np.float32)
_MEAN, _VAR = _RNG.normal(0, 0.2, 3).astype(np.float32), _RNG.uniform(0.5, 1.5, 3).astype(np.float32)


def bn(op, fmt="NHWC"):
    fn = {"FusedBatchNorm": tf.raw_ops.FusedBatchNorm, "FusedBatchNormV2": tf.raw_ops.FusedBatchNormV2,
          "FusedBatchNormV3": tf.raw_ops.FusedBatchNormV3}[op]
    return lambda x: fn(x=x, scale=_GAMMA, offset=_BETA, mean=_MEAN, variance=_VAR, epsilon=0.001,
                        data_format=fmt, is_training=False)[0]


for op in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"):
    TABLE += [case(f"{op}/nhwc", bn(op), [f32(2, 4, 4, 3)], op)]
TABLE += [
    nchw_case("FusedBatchNormV3/nchw", bn("FusedBatchNormV3"), bn("FusedBatchNormV3", "NCHW"), (1, 4, 4, 3),
              "FusedBatchNormV3"),
    case("FusedBatchNormV3/after_conv_folded", lambda x: bn("FusedBatchNormV3")(conv(W(3, 3, 3, 3))(x)),
         [f32(1, 5, 5, 3)], ("Conv2D", "FusedBatchNormV3")),
    case("LRN/default", lambda x: tf.nn.local_response_normalization(x), [f32(1, 3, 3, 12)], "LRN"),
    case("LRN/radius2", lambda x: tf.nn.local_response_normalization(x, 2, bias=2.0, alpha=1e-2, beta=0.75),
         [f32(2, 4, 4, 6)], "LRN"),
    case("LRN/radius0", lambda x: tf.nn.local_response_normalization(x, 0, bias=1.0, alpha=0.5, beta=0.5),
         [f32(1, 2, 2, 4)], "LRN"),
    case("Softmax/last_axis", tf.nn.softmax, [f32(2, 5)], "Softmax"),
    case("Softmax/rank3_large", lambda x: tf.nn.softmax(x * 30.0), [f32(2, 3, 5)], "Softmax"),
    case("Softmax/axis1_transposes", lambda x: tf.nn.softmax(x, axis=1), [f32(2, 4, 3)], ("Softmax", "Transpose")),
    case("Softmax/after_conv_layout", lambda x: tf.nn.softmax(conv(K33)(x)), [f32(1, 4, 4, 3)], "Softmax"),
    case("LogSoftmax/last_axis", tf.nn.log_softmax, [f32(2, 5)], "LogSoftmax"),
    case("LogSoftmax/extreme_logits", lambda x: tf.nn.log_softmax(x * 100.0), [f32(3, 6)], "LogSoftmax"),
]

# ------------------------------------------------------------------ matrix products
TABLE += [
    case("MatMul/plain", tf.matmul, [f32(3, 4), f32(4, 5)], "MatMul"),
    case("MatMul/transpose_a", lambda a, b: tf.matmul(a, b, transpose_a=True), [f32(4, 3), f32(4, 5)], "MatMul"),
    case("MatMul/transpose_b", lambda a, b: tf.matmul(a, b, transpose_b=True), [f32(3, 4), f32(5, 4)], "MatMul"),
    case("MatMul/both_transposed", lambda a, b: tf.matmul(a, b, transpose_a=True, transpose_b=True),
         [f32(4, 3), f32(5, 4)], "MatMul"),
    case("MatMul/const_weights", lambda a: tf.matmul(a, W(4, 6)), [f32(2, 4)], "MatMul"),
    case("MatMul/const_lhs", lambda b: tf.matmul(W(2, 4), b), [f32(4, 3)], "MatMul"),
    case("MatMul/transposed_input_layout", lambda a, b: tf.matmul(tf.transpose(a), b), [f32(4, 3), f32(4, 5)],
         ("MatMul", "Transpose")),
    case("BatchMatMulV2/same_batch", tf.matmul, [f32(2, 3, 4), f32(2, 4, 5)], "BatchMatMulV2"),
    case("BatchMatMulV2/broadcast_batch", tf.matmul, [f32(2, 1, 3, 4), f32(3, 4, 5)], "BatchMatMulV2"),
    case("BatchMatMulV2/rank3_by_rank2_tensor", tf.matmul, [f32(2, 3, 4), f32(4, 5)], "BatchMatMulV2"),
    case("BatchMatMulV2/rank2_by_rank3_tensor", tf.matmul, [f32(3, 4), f32(2, 4, 5)], "BatchMatMulV2"),
    case("BatchMatMulV2/rank3_by_const_rank2", lambda a: tf.matmul(a, W(4, 2)), [f32(2, 3, 4)], "BatchMatMulV2"),
    case("BatchMatMulV2/adjoints", lambda a, b: tf.matmul(a, b, adjoint_a=True, adjoint_b=True),
         [f32(2, 4, 3), f32(2, 5, 4)], "BatchMatMulV2"),
    case("BatchMatMulV2/transposed_layout",
         lambda a, b: tf.matmul(tf.transpose(a, [0, 2, 1]), b), [f32(2, 4, 3), f32(2, 4, 5)],
         ("BatchMatMulV2", "Transpose")),
    case("BatchMatMul/v1", lambda a, b: tf.raw_ops.BatchMatMul(x=a, y=b, adj_y=True), [f32(2, 3, 4), f32(2, 5, 4)],
         "BatchMatMul"),
    case("BatchMatMulV3/f32", lambda a, b: tf.raw_ops.BatchMatMulV3(x=a, y=b, Tout=tf.float32),
         [f32(2, 3, 4), f32(2, 4, 5)], "BatchMatMulV3"),
    case("Einsum/matmul", lambda a, b: tf.einsum("ij,jk->ik", a, b), [f32(3, 4), f32(4, 5)], "Einsum"),
    case("Einsum/mha_projection", lambda a: tf.einsum("abc,cde->abde", a, W(8, 2, 4)), [f32(1, 5, 8)], "Einsum"),
    case("Einsum/mha_scores", lambda q, k: tf.einsum("aecd,abcd->acbe", k, q), [f32(1, 5, 2, 4), f32(1, 6, 2, 4)],
         "Einsum"),
    case("Einsum/transpose_only", lambda a: tf.einsum("abc->cab", a), [f32(2, 3, 4)], "Einsum"),
    case("Einsum/reduce", lambda a: tf.einsum("abc->ac", a), [f32(2, 3, 4)], "Einsum"),
    case("Einsum/ellipsis", lambda a, b: tf.einsum("...ij,...jk->...ik", a, b), [f32(2, 3, 4), f32(2, 4, 5)],
         "Einsum"),
    case("Einsum/outer", lambda a, b: tf.einsum("i,j->ij", a, b), [f32(3), f32(4)], "Einsum"),
    case("Einsum/after_conv_layout", lambda x: tf.einsum("nhwc,cd->nhwd", conv(K33)(x), W(4, 2)),
         [f32(1, 4, 4, 3)], ("Einsum", "Conv2D")),
]


@pytest.mark.parametrize("c", params(TABLE))
def test_nn_op(c):
    run_case(c)
