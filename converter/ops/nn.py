"""Convolution, pooling, normalization, activation, softmax and matrix product converters."""

from __future__ import annotations

import numpy as np

from ..context import Value, channels_first_perm
from ..errors import ConversionError
from ..registry import tf_op
from .helpers import activation, channels_first, elementwise, spatial_attr, spatial_padding, trt_enum


def _check_data_format(node, graph):
    fmt = node.attr("data_format", "NHWC")
    if fmt not in ("NHWC", "NCHW", "NDHWC", "NCDHW", "NWC", "NCW"):
        return ConversionError(node.name, node.op, f"data_format {fmt} is not supported")
    return None


def _check_const_filter(node, graph):
    problems = []
    if len(node.inputs) > 1 and not graph.is_const(node.inputs[1]):
        problems.append(ConversionError(node.name, node.op, "the filter must be a constant",
                                        "freeze the model so weights are constants"))
    bad = _check_data_format(node, graph)
    if bad:
        problems.append(bad)
    return problems


def _conv_input(ctx, node, x: Value):
    """The input in channels-first order; returns (tensor, spatial sizes, output layout)."""
    rank = x.rank
    if node.attr("data_format", "NHWC").startswith("NC"):
        tensor = ctx.tensor(x, None)
        return tensor, list(x.shape[2:]), None
    tensor = channels_first(ctx, x)
    return tensor, list(x.shape[1:-1]), channels_first_perm(rank)


def _convolution(ctx, node, x: Value, kernel_kcrs: np.ndarray, groups: int, bias=None) -> Value:
    tensor, spatial, out_layout = _conv_input(ctx, node, x)
    nsp = len(spatial)
    strides = spatial_attr(node, "strides", [1] * (nsp + 2), nsp + 2)
    dilations = spatial_attr(node, "dilations", [1] * (nsp + 2), nsp + 2)
    ksize = list(kernel_kcrs.shape[2:])
    pre, post = spatial_padding(node, spatial, ksize, strides, dilations)
    kernel = ctx.weights(kernel_kcrs.astype(np.float32))
    bias_w = ctx.weights(np.asarray(bias, np.float32)) if bias is not None else None
    trt = ctx.trt
    layer = ctx.network.add_convolution_nd(tensor, int(kernel.shape[0]), tuple(ksize), trt.Weights(kernel),
                                           trt.Weights(bias_w) if bias_w is not None else trt.Weights())
    layer.stride_nd = tuple(strides)
    layer.dilation_nd = tuple(dilations)
    layer.pre_padding = tuple(pre)
    layer.post_padding = tuple(post)
    layer.num_groups = int(groups)
    ctx.name_layer(layer)
    return ctx.out(layer.get_output(0), out_layout)


@tf_op("Conv2D", "Conv3D", layers=("Convolution",), check=_check_const_filter,
       restrictions="constant filter; folds a following BiasAdd / BatchNorm / per-channel Mul/Add/Sub into its weights")
def convert_conv(ctx, node, inputs):
    x = inputs[0]
    w = ctx.as_const(inputs[1], "the filter")  # [*spatial, in/groups, out]
    nsp = w.ndim - 2
    in_channels = x.shape[1] if node.attr("data_format", "NHWC").startswith("NC") else x.shape[-1]
    groups = in_channels // w.shape[-2]
    kernel = np.transpose(w, (nsp + 1, nsp) + tuple(range(nsp)))
    return _convolution(ctx, node, x, kernel, groups, node.attr("_bias"))


@tf_op("DepthwiseConv2dNative", layers=("Convolution",), check=_check_const_filter,
       restrictions="constant filter; becomes a grouped convolution with groups = input channels")
def convert_depthwise(ctx, node, inputs):
    x = inputs[0]
    w = ctx.as_const(inputs[1], "the filter")  # [kh, kw, C, M]
    kh, kw, c, m = w.shape
    kernel = np.transpose(w, (2, 3, 0, 1)).reshape(c * m, 1, kh, kw)
    return _convolution(ctx, node, x, kernel, c, node.attr("_bias"))


@tf_op("BiasAdd", "BiasAddV1", layers=("Constant", "ElementWise"))
def convert_bias_add(ctx, node, inputs):
    x, b = inputs
    if node.attr("data_format", "NHWC").startswith("NC") and b.is_const:
        b = Value(const=b.const.reshape((-1,) + (1,) * (x.rank - 2)))
    return elementwise(ctx, x, b, "SUM")


def _pool(ctx, node, x: Value, kind: str) -> Value:
    tensor, spatial, out_layout = _conv_input(ctx, node, x)
    nsp = len(spatial)
    ksize = spatial_attr(node, "ksize", None, nsp + 2)
    strides = spatial_attr(node, "strides", None, nsp + 2)
    pre, post = spatial_padding(node, spatial, ksize, strides, [1] * nsp)
    layer = ctx.network.add_pooling_nd(tensor, trt_enum(ctx, "PoolingType", kind), tuple(ksize))
    layer.stride_nd = tuple(strides)
    layer.pre_padding = tuple(pre)
    layer.post_padding = tuple(post)
    if kind == "AVERAGE":
        layer.average_count_excludes_padding = True  # TF's SAME average pooling ignores padding
    ctx.name_layer(layer)
    return ctx.out(layer.get_output(0), out_layout)


def _check_pool(node, graph):
    problems = []
    if len(node.inputs) > 1:
        problems.append(ConversionError(node.name, node.op, "ksize/strides given as tensors are not supported"))
    bad = _check_data_format(node, graph)
    if bad:
        problems.append(bad)
    return problems


@tf_op("MaxPool", "MaxPool3D", layers=("Pooling",), check=_check_pool)
def convert_max_pool(ctx, node, inputs):
    return _pool(ctx, node, inputs[0], "MAX")


@tf_op("AvgPool", "AvgPool3D", layers=("Pooling",), check=_check_pool,
       restrictions="SAME padding averages over valid elements only, as TensorFlow does")
def convert_avg_pool(ctx, node, inputs):
    return _pool(ctx, node, inputs[0], "AVERAGE")


def _check_bn(node, graph):
    problems = []
    if node.attr("is_training", False):
        problems.append(ConversionError(node.name, node.op, "training-mode batch norm",
                                        "export the model for inference (training=False)"))
    if any(not graph.is_const(r) for r in node.inputs[1:5]):
        problems.append(ConversionError(node.name, node.op, "scale/offset/mean/variance must be constants"))
    return problems


@tf_op("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", layers=("Scale",), check=_check_bn,
       restrictions="inference only; folded into a preceding convolution where possible")
def convert_fused_batch_norm(ctx, node, inputs):
    x = inputs[0]
    gamma, beta, mean, var = (ctx.as_const(v).astype(np.float64) for v in inputs[1:5])
    scale = gamma / np.sqrt(var + node.attr("epsilon", 1e-3))
    shift = beta - mean * scale
    tensor, _, out_layout = _conv_input(ctx, node, x)
    trt = ctx.trt
    s = ctx.weights(scale.astype(np.float32))
    sh = ctx.weights(shift.astype(np.float32))
    layer = ctx.network.add_scale_nd(tensor, trt.ScaleMode.CHANNEL, trt.Weights(sh), trt.Weights(s), trt.Weights(), 1)
    ctx.name_layer(layer)
    out = ctx.out(layer.get_output(0), out_layout)
    return [out] + [None] * 5


# ------------------------------------------------------------------ activations
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@tf_op("Relu", layers=("Activation",))
def convert_relu(ctx, node, inputs):
    return activation(ctx, inputs[0], "RELU")


@tf_op("Relu6", layers=("Activation",))
def convert_relu6(ctx, node, inputs):
    return activation(ctx, inputs[0], "CLIP", 0.0, 6.0)


@tf_op("Elu", layers=("Activation",))
def convert_elu(ctx, node, inputs):
    return activation(ctx, inputs[0], "ELU", 1.0)


@tf_op("Selu", layers=("Activation",))
def convert_selu(ctx, node, inputs):
    return activation(ctx, inputs[0], "SELU", _SELU_ALPHA, _SELU_SCALE)


@tf_op("Sigmoid", layers=("Activation",))
def convert_sigmoid(ctx, node, inputs):
    return activation(ctx, inputs[0], "SIGMOID")


@tf_op("Tanh", layers=("Activation",))
def convert_tanh(ctx, node, inputs):
    return activation(ctx, inputs[0], "TANH")


@tf_op("Softplus", layers=("Activation",))
def convert_softplus(ctx, node, inputs):
    return activation(ctx, inputs[0], "SOFTPLUS", 1.0, 1.0)


@tf_op("Softsign", layers=("Activation",))
def convert_softsign(ctx, node, inputs):
    return activation(ctx, inputs[0], "SOFTSIGN")


@tf_op("LeakyRelu", layers=("Activation",))
def convert_leaky_relu(ctx, node, inputs):
    return activation(ctx, inputs[0], "LEAKY_RELU", node.attr("alpha", 0.2))


# ------------------------------------------------------------------ softmax
@tf_op("Softmax", layers=("SoftMax",), restrictions="over the last axis, as TensorFlow defines it")
def convert_softmax(ctx, node, inputs):
    x = inputs[0]
    layer = ctx.network.add_softmax(ctx.tensor(x, x.layout))
    layer.axes = 1 << x.physical_axis(-1)
    ctx.name_layer(layer)
    return ctx.out(layer.get_output(0), x.layout)


@tf_op("LogSoftmax", layers=("SoftMax", "Unary"))
def convert_log_softmax(ctx, node, inputs):
    x = inputs[0]
    layer = ctx.network.add_softmax(ctx.tensor(x, x.layout))
    layer.axes = 1 << x.physical_axis(-1)
    ctx.name_layer(layer, "softmax")
    log = ctx.network.add_unary(layer.get_output(0), ctx.trt.UnaryOperation.LOG)
    ctx.name_layer(log)
    return ctx.out(log.get_output(0), x.layout)


# ------------------------------------------------------------------ matrix products
def _matmul(ctx, a: Value, b: Value, transpose_a: bool, transpose_b: bool) -> Value:
    trt = ctx.trt
    rank = max(a.rank, b.rank)
    ta, tb = ctx.logical(a) if not a.is_const else None, ctx.logical(b) if not b.is_const else None
    if a.is_const:
        ta = ctx.constant(a.const.reshape((1,) * (rank - a.rank) + a.const.shape))
    if b.is_const:
        tb = ctx.constant(b.const.reshape((1,) * (rank - b.rank) + b.const.shape))
    layer = ctx.network.add_matrix_multiply(
        ta, trt.MatrixOperation.TRANSPOSE if transpose_a else trt.MatrixOperation.NONE,
        tb, trt.MatrixOperation.TRANSPOSE if transpose_b else trt.MatrixOperation.NONE)
    ctx.name_layer(layer)
    return ctx.out(layer.get_output(0))


@tf_op("MatMul", layers=("MatrixMultiply",))
def convert_matmul(ctx, node, inputs):
    return _matmul(ctx, inputs[0], inputs[1], node.attr("transpose_a", False), node.attr("transpose_b", False))


@tf_op("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", layers=("MatrixMultiply",),
       restrictions="batch dimensions broadcast as in TensorFlow")
def convert_batch_matmul(ctx, node, inputs):
    return _matmul(ctx, inputs[0], inputs[1], node.attr("adj_x", False), node.attr("adj_y", False))
