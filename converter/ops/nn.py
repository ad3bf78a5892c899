"""Convolution, deconvolution, pooling, normalization, activation, softmax and matrix product converters."""

from __future__ import annotations

import numpy as np

from .. import layers
from ..context import Value, channels_first_perm, identity_perm
from ..errors import ConversionError
from .helpers import (activation, channels_first, elementwise, float_only, is_shape_computable, is_static, log1p,
                      reduce, register, reshape, scalar_like, shuffle, slice_value, spatial_attr, spatial_padding,
                      tensor_of, unary, value_layout)
from .pooling_ext import check_int_max_pool, max_pool_taps

_FORMATS = ("NHWC", "NCHW", "NDHWC", "NCDHW", "NWC", "NCW")


def _check_data_format(node, graph):
    fmt = node.attr("data_format", "NHWC")
    if fmt not in _FORMATS:
        return ConversionError(node.name, node.op, f"data_format {fmt} is not supported", "use NHWC or NCHW")
    return None


def _check_filter(index: int):
    def check(node, graph):
        if len(node.inputs) > index and not is_static(graph, node.inputs[index]):
            return ConversionError(node.name, node.op, "the filter must be a constant",
                                   "freeze the model so weights are constants")
        return None

    return check


def _conv_input(ctx, node, x: Value):
    """The input in channels-first order; returns (tensor, spatial sizes, output layout)."""
    if node.attr("data_format", "NHWC").startswith("NC"):
        return ctx.tensor(x, None), list(x.shape[2:]), None
    return channels_first(ctx, x), list(x.shape[1:-1]), channels_first_perm(x.rank)


def _channels(node, x: Value) -> int:
    return x.shape[1] if node.attr("data_format", "NHWC").startswith("NC") else x.shape[-1]


def _padding(node, spatial, ksize, strides, dilations):
    """(pre, post, padding_mode) for a convolution or pooling.

    Static sizes get explicit padding; TF's SAME on a dynamic spatial size depends on the size the engine
    runs at, which is TensorRT's SAME_UPPER (the extra row/column at the end, as in TensorFlow)."""
    if node.attr("padding", "VALID") == "SAME" and any(int(d) < 0 for d in spatial):
        return None, None, "SAME_UPPER"
    pre, post = spatial_padding(node, [max(int(d), 1) for d in spatial], ksize, strides, dilations)
    return tuple(pre), tuple(post), "EXPLICIT_ROUND_DOWN"


def _convolution(ctx, node, x: Value, kernel_kcrs, groups: int, bias=None) -> Value:
    """``kernel_kcrs``: constant weights, or a filter tensor already in (K, C/groups, *k) order (input 1)."""
    tensor, spatial, out_layout = _conv_input(ctx, node, x)
    nsp = len(spatial)
    strides = spatial_attr(node, "strides", [1] * (nsp + 2), nsp + 2)
    dilations = spatial_attr(node, "dilations", [1] * (nsp + 2), nsp + 2)
    ksize = list(kernel_kcrs.shape[2:])
    pre, post, mode = _padding(node, spatial, ksize, strides, dilations)
    ins = [tensor]
    weights = {}
    if isinstance(kernel_kcrs, Value):
        ins.append(ctx.logical(kernel_kcrs))
    else:
        weights["kernel"] = np.ascontiguousarray(kernel_kcrs, dtype=np.float32)  # one copy, not two
    if bias is not None:
        weights["bias"] = np.asarray(bias, np.float32)
    params = layers.convolution.Params(int(kernel_kcrs.shape[0]), tuple(ksize), stride=tuple(strides),
                                       pre_padding=pre, post_padding=post, padding_mode=mode,
                                       dilation=tuple(dilations), num_groups=int(groups))
    layer = ctx.add(layers.convolution, ins, params, weights)
    return ctx.out(layer.get_output(0), out_layout)


def _check_filter_tensor(node, graph):
    """A filter computed in the graph becomes the layer's kernel input; its shape must be static."""
    if len(node.inputs) > 1 and not is_static(graph, node.inputs[1]):
        shape = graph.shape(node.inputs[1])
        if shape is None or any(int(d) < 0 for d in shape):
            return ConversionError(node.name, node.op, "a filter tensor of unknown shape",
                                   "give the filter a static shape (the kernel size is a layer parameter)")
    return None


def _filter_kcrs(ctx, w: Value) -> Value:
    """A [*k, in, out] filter tensor as TensorRT's (out, in, *k) kernel input."""
    nsp = w.rank - 2
    return shuffle(ctx, w, transpose=(nsp + 1, nsp) + tuple(range(nsp)), suffix="kernel_order")


_CONV_CHECKS = [_check_filter(1), _check_data_format, float_only()]


@register("Conv2D", "Conv3D", layers=("Convolution",), check=[_check_filter_tensor, _check_data_format, float_only()],
          restrictions="grouped filters become grouped convolutions; a constant filter folds a following "
                       "BiasAdd / BatchNorm / per-channel Mul/Add/Sub into its weights; a filter computed in the "
                       "graph (static shape) is the layer's kernel input")
def convert_conv(ctx, node, inputs):
    x, w = inputs[0], inputs[1]  # filter [*spatial, in/groups, out]
    nsp = w.rank - 2
    groups = _channels(node, x) // w.shape[-2]
    if not w.is_const:
        return _convolution(ctx, node, x, _filter_kcrs(ctx, w), groups, node.attr("_bias"))
    kernel = np.transpose(w.const, (nsp + 1, nsp) + tuple(range(nsp)))
    return _convolution(ctx, node, x, kernel, groups, node.attr("_bias"))


@register("DepthwiseConv2dNative", layers=("Convolution",), check=_CONV_CHECKS,
          restrictions="constant filter; a grouped convolution with groups = input channels")
def convert_depthwise(ctx, node, inputs):
    x = inputs[0]
    w = ctx.as_const(inputs[1], "the filter")  # [kh, kw, C, M]
    kh, kw, c, m = w.shape
    kernel = np.transpose(w, (2, 3, 0, 1)).reshape(c * m, 1, kh, kw)
    return _convolution(ctx, node, x, kernel, c, node.attr("_bias"))


def _known_sizes(graph, ref: str):
    """input_sizes element by element, an int where the graph fixes it (a constant, or a constant packed into a
    ``Pack`` as Keras's Conv2DTranspose does for the channels), else None; None when even its length is unknown."""
    from ..freeze import _src

    const = graph.const(ref)
    if const is not None:
        return [int(v) for v in np.asarray(const).reshape(-1)]
    node = graph.by_name.get(_src(ref))
    if node is not None and node.op == "Pack" and int(node.attr("axis", 0)) == 0:
        known = []
        for r in node.inputs:
            c = graph.const(r)
            known.append(int(np.asarray(c).reshape(-1)[0]) if c is not None and np.asarray(c).size == 1 else None)
        return known
    shape = graph.shape(ref)
    if shape is not None and len(shape) == 1 and int(shape[0]) >= 0:
        return [None] * int(shape[0])
    return None


def _filter_shape(graph, ref: str):
    w = graph.const(ref)
    return w.shape if w is not None else graph.shape(ref)


def _check_deconv_groups(node, graph):
    sizes, w_shape = _known_sizes(graph, node.inputs[0]), _filter_shape(graph, node.inputs[1])
    if sizes is None or w_shape is None or len(sizes) != len(w_shape):
        return None
    channels = sizes[1] if node.attr("data_format", "NHWC").startswith("NC") else sizes[-1]
    if channels is not None and int(channels) != int(w_shape[-2]):
        return ConversionError(node.name, node.op, "grouped transposed convolutions are not supported",
                               "the output channels of input_sizes must be the filter's (its third dimension); "
                               "split a grouped one into a transposed convolution per group")
    return None


def _check_input_sizes(node, graph):
    """A constant input_sizes keeps the static conversion; one computed from tensor shapes (Keras's
    Conv2DTranspose on ``(None, None, C)`` inputs) becomes a crop of computed size.  Refused here, before any
    layer exists: input_sizes read from data values, of unknown length or without batch and channels (TF's
    spatial-only form), or fixing a batch the input leaves open."""
    ref = node.inputs[0]
    sizes, w_shape = _known_sizes(graph, ref), _filter_shape(graph, node.inputs[1])
    if sizes is not None and w_shape is not None and len(sizes) != len(w_shape):
        return ConversionError(node.name, node.op,
                               f"input_sizes has {len(sizes)} elements, not {len(w_shape)} (batch, channels and "
                               "every spatial size)",
                               "pass the full output shape, e.g. [tf.shape(x)[0], height, width, channels]")
    if is_static(graph, ref):
        return None
    if not is_shape_computable(graph, ref):
        return ConversionError(node.name, node.op,
                               "input_sizes must be a constant or computed from tensor shapes (TensorRT shape "
                               "tensors cannot come from data values)",
                               "compute the output shape from tf.shape(...) and constants, or make it a constant")
    if sizes is None or w_shape is None:
        return ConversionError(node.name, node.op, "a computed input_sizes of unknown length",
                               "pass the full output shape, e.g. [tf.shape(x)[0], height, width, channels]")
    dy = graph.shape(node.inputs[2])
    batch = sizes[0]
    if batch is not None and dy is not None and int(dy[0]) != batch:
        return ConversionError(node.name, node.op,
                               f"input_sizes fixes the batch to {batch} while the input's batch is "
                               f"{'dynamic' if int(dy[0]) < 0 else int(dy[0])}",
                               "compute the batch from tf.shape(x)[0]")
    return None


@register("Conv2DBackpropInput", "Conv3DBackpropInputV2", layers=("Deconvolution", "Slice"),
          check=[_check_input_sizes, _check_filter_tensor, _check_data_format, float_only(), _check_deconv_groups],
          restrictions="SAME/VALID/EXPLICIT padding; a filter computed in the graph (static shape) is the layer's "
                       "kernel input; constant input_sizes: the padding crops and a Slice zero-extends outputs "
                       "larger than the deconvolution covers; input_sizes computed from tensor shapes (dynamic "
                       "spatial sizes): an unpadded deconvolution cropped by a FILL Slice of computed start and size "
                       "(batch from the input, channels from the filter)")
def convert_conv_backprop_input(ctx, node, inputs):
    sizes_v, w_v, dy = inputs
    if not sizes_v.is_const:
        return _computed_size_deconv(ctx, node, sizes_v, w_v, dy)
    out_sizes = [int(s) for s in ctx.as_const(sizes_v, "input_sizes").reshape(-1)]
    w = w_v.const if w_v.is_const else w_v  # [*k, out_channels, in_channels] (the forward conv's HWIO)
    nsp = len(w.shape) - 2
    channels_first_fmt = node.attr("data_format", "NHWC").startswith("NC")
    out_spatial = out_sizes[2:] if channels_first_fmt else out_sizes[1:-1]
    tensor, in_spatial, out_layout = _conv_input(ctx, node, dy)
    strides = spatial_attr(node, "strides", [1] * (nsp + 2), nsp + 2)
    dilations = spatial_attr(node, "dilations", [1] * (nsp + 2), nsp + 2)
    ksize = list(w.shape[:nsp])
    # padding of the forward convolution (out_sizes → dy)
    pre, _ = spatial_padding(node, out_spatial, ksize, strides, dilations)
    post, extend = [], []
    for i in range(nsp):
        full = (in_spatial[i] - 1) * strides[i] + (ksize[i] - 1) * dilations[i] + 1
        rest = full - pre[i] - out_spatial[i]
        post.append(max(rest, 0))
        extend.append(max(-rest, 0))
    params = layers.deconvolution.Params(int(w.shape[-2]), tuple(ksize), stride=tuple(strides),
                                         pre_padding=tuple(pre), post_padding=tuple(post),
                                         dilation=tuple(dilations))
    layer = _add_deconvolution(ctx, tensor, w, params)
    out = ctx.out(layer.get_output(0), out_layout)
    if any(extend):
        # rows the forward convolution never read get a zero gradient
        size = list(out.shape)
        axes = range(2, 2 + nsp) if channels_first_fmt else range(1, 1 + nsp)
        for i, a in enumerate(axes):
            size[a] += extend[i]
        out = slice_value(ctx, out, [0] * out.rank, size, mode="FILL", suffix="extend")
    return out


def _add_deconvolution(ctx, tensor, w, params):
    nsp = len(w.shape) - 2
    if isinstance(w, Value):  # (in_channels, out_channels, *k): TensorRT's deconvolution kernel order
        return ctx.add(layers.deconvolution, [tensor, ctx.logical(_filter_kcrs(ctx, w))], params)
    kernel = np.ascontiguousarray(np.transpose(w, (nsp + 1, nsp) + tuple(range(nsp))), np.float32)
    return ctx.add(layers.deconvolution, [tensor], params, {"kernel": kernel})


def _computed_size_deconv(ctx, node, sizes_v: Value, w_v: Value, dy: Value) -> Value:
    """A transposed convolution whose output size is known only when the engine runs.

    The unpadded (VALID) deconvolution gives the full extent F = (in - 1)·s + (k - 1)·d + 1 per spatial axis;
    TensorFlow's result is full[pad_before : pad_before + out], zero where that runs past F (rows the forward
    convolution never read).  pad_before is the forward convolution's: for SAME
    max((in - 1)·s + (k - 1)·d + 1 - out, 0) // 2 (TensorFlow checks ceil(out / s) == in, so this is its
    formula), the explicit one for EXPLICIT, 0 for VALID.  One FILL slice with start and size computed from
    input_sizes does the crop and the zero extension."""
    from .shapes import ShapeTensor, binary, concat_shapes, from_value, gather, shape_of

    w = w_v.const if w_v.is_const else w_v
    nsp = len(w.shape) - 2
    rank = nsp + 2
    channels_first_fmt = node.attr("data_format", "NHWC").startswith("NC")
    channel_axis = 1 if channels_first_fmt else rank - 1
    axes = list(range(2, 2 + nsp)) if channels_first_fmt else list(range(1, 1 + nsp))
    tensor, _, out_layout = _conv_input(ctx, node, dy)
    strides = spatial_attr(node, "strides", [1] * rank, rank)
    dilations = spatial_attr(node, "dilations", [1] * rank, rank)
    ksize = list(w.shape[:nsp])
    params = layers.deconvolution.Params(int(w.shape[-2]), tuple(ksize), stride=tuple(strides),
                                         pre_padding=(0,) * nsp, post_padding=(0,) * nsp, dilation=tuple(dilations))
    full = ctx.out(_add_deconvolution(ctx, tensor, w, params).get_output(0), out_layout)
    sizes, dy_shape = from_value(ctx, sizes_v), shape_of(ctx, dy)
    padding = node.attr("padding", "VALID")
    explicit = spatial_padding(node, [0] * nsp, ksize, strides, dilations)[0] if padding == "EXPLICIT" else None
    # TensorFlow requires input_sizes' batch to be the input's and its channels the filter's
    starts, extents = [ShapeTensor([0])] * rank, [None] * rank
    extents[0] = gather(ctx, dy_shape, [0])
    extents[channel_axis] = ShapeTensor([int(w.shape[-2])])
    for i, a in enumerate(axes):
        out = gather(ctx, sizes, [a])
        extents[a] = out
        if padding == "SAME":
            span = binary(ctx, binary(ctx, gather(ctx, dy_shape, [a]), 1, "SUB"), strides[i], "PROD")
            span = binary(ctx, span, (ksize[i] - 1) * dilations[i] + 1, "SUM")
            starts[a] = binary(ctx, binary(ctx, binary(ctx, span, out, "SUB"), 0, "MAX"), 2, "FLOOR_DIV")
        elif padding == "EXPLICIT":
            starts[a] = ShapeTensor([int(explicit[i])])
    return slice_value(ctx, full, concat_shapes(ctx, starts), concat_shapes(ctx, extents), mode="FILL",
                       suffix="crop")


@register("BiasAdd", "BiasAddV1", layers=("ElementWise",), folds=True,
          restrictions="folded into a preceding convolution where possible")
def convert_bias_add(ctx, node, inputs):
    x, b = inputs
    if node.attr("data_format", "NHWC").startswith("NC") and x.rank > 2:
        b = reshape(ctx, b, (b.shape[0],) + (1,) * (x.rank - 2), "bias_shape")
    return elementwise(ctx, x, b, "SUM")


# ------------------------------------------------------------------ pooling
def _pool(ctx, node, x: Value, kind: str) -> Value:
    tensor, spatial, out_layout = _conv_input(ctx, node, x)
    nsp = len(spatial)
    ksize = spatial_attr(node, "ksize", None, nsp + 2)
    strides = spatial_attr(node, "strides", None, nsp + 2)
    pre, post, mode = _padding(node, spatial, ksize, strides, [1] * nsp)
    # TF's SAME average pooling ignores padding: average_count_excludes_padding (TensorRT's default too)
    params = layers.pooling.Params(kind, tuple(ksize), stride=tuple(strides), pre_padding=pre,
                                   post_padding=post, padding_mode=mode, average_count_excludes_padding=True)
    layer = ctx.add(layers.pooling, [tensor], params)
    return ctx.out(layer.get_output(0), out_layout)


_POOL_CHECKS = [_check_data_format, float_only()]


def _check_max_pool_dtype(node, graph):
    """Float pools become a Pooling layer; int32 (which TensorRT's pooling refuses) an elementwise MAX of taps."""
    if node.attr("T", "float32") == "int32":
        return check_int_max_pool(node, graph)
    return float_only()(node, graph)


@register("MaxPool", "MaxPool3D", layers=("Pooling",), check=[_check_data_format, _check_max_pool_dtype],
          restrictions="SAME, VALID or EXPLICIT padding (padding never wins the maximum); int32 (2-D NHWC, "
                       "static spatial shape, SAME/VALID): an exact elementwise Max over strided window slices")
def convert_max_pool(ctx, node, inputs):
    if np.dtype(inputs[0].dtype) == np.int32:
        return max_pool_taps(ctx, node, inputs[0])
    return _pool(ctx, node, inputs[0], "MAX")


@register("AvgPool", "AvgPool3D", layers=("Pooling",), check=_POOL_CHECKS,
          restrictions="SAME padding averages over valid elements only, as TensorFlow does")
def convert_avg_pool(ctx, node, inputs):
    return _pool(ctx, node, inputs[0], "AVERAGE")


# ------------------------------------------------------------------ normalization
def _check_bn(node, graph):
    problems = []
    if node.attr("is_training", False):
        problems.append(ConversionError(node.name, node.op, "training-mode batch norm",
                                        "export the model for inference (training=False)"))
    bad = _check_data_format(node, graph)
    if bad:
        problems.append(bad)
    return problems


@register("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", layers=("Scale", "ElementWise", "Unary"),
          check=_check_bn,
          restrictions="inference only (is_training=False); constant statistics: a Scale layer, folded into a "
                       "preceding convolution where possible; statistics computed in the graph: elementwise "
                       "layers in TensorFlow's order, (x - mean)·(rsqrt(variance + ε)·scale) + offset")
def convert_fused_batch_norm(ctx, node, inputs):
    x = inputs[0]
    if not all(v.is_const for v in inputs[1:5]):
        return [_batch_norm_elementwise(ctx, node, x, *inputs[1:5])] + [None] * 5
    gamma, beta, mean, var = (ctx.as_const(v).astype(np.float64) for v in inputs[1:5])
    scale = gamma / np.sqrt(var + node.attr("epsilon", 1e-3))
    shift = beta - mean * scale
    tensor, _, out_layout = _conv_input(ctx, node, x)
    layer = ctx.add(layers.scale, [tensor], layers.scale.Params("CHANNEL", channel_axis=1),
                    {"shift": shift.astype(np.float32), "scale": scale.astype(np.float32)})
    out = ctx.out(layer.get_output(0), out_layout)
    return [out] + [None] * 5


def _batch_norm_elementwise(ctx, node, x: Value, gamma: Value, beta: Value, mean: Value, var: Value) -> Value:
    """Batch norm with statistics computed in the graph, in TensorFlow's CPU order: (x - mean) ·
    (rsqrt(variance + epsilon) · scale) + offset, the per-channel vectors reshaped onto the channel axis."""
    from .helpers import cast

    channel_axis = 1 if node.attr("data_format", "NHWC").startswith("NC") else x.rank - 1
    half = x.dtype == np.float16
    if half:  # TensorFlow computes half-precision batch norm in float32
        x = cast(ctx, x, np.float32, "to_float")

    def per_channel(v: Value, what: str) -> Value:
        v = cast(ctx, v, np.float32, f"{what}_to_float") if v.dtype != np.float32 else v
        return reshape(ctx, v, tuple(-1 if a == channel_axis else 1 for a in range(x.rank)), f"{what}_channels")

    eps = scalar_like(x, node.attr("epsilon", 1e-3))
    inv_std = unary(ctx, unary(ctx, elementwise(ctx, per_channel(var, "variance"), eps, "SUM", "var_eps"),
                               "SQRT", "std"), "RECIP", "inv_std")
    factor = elementwise(ctx, inv_std, per_channel(gamma, "scale"), "PROD", "factor")
    centered = elementwise(ctx, x, per_channel(mean, "mean"), "SUB", "centered")
    out = elementwise(ctx, elementwise(ctx, centered, factor, "PROD", "scaled"), per_channel(beta, "offset"), "SUM",
                      "shifted" if half else None)
    return cast(ctx, out, np.float16, None) if half else out


def _check_lrn(node, graph):
    if not 0 <= node.attr("depth_radius", 5) <= 7:
        return ConversionError(node.name, node.op, "depth_radius must be at most 7 (TensorRT windows are ≤ 15)")
    return None


@register("LRN", layers=("LRN",), check=[_check_lrn, float_only()],
          restrictions="4-D NHWC input across channels; depth_radius ≤ 7")
def convert_lrn(ctx, node, inputs):
    x = inputs[0]
    radius = int(node.attr("depth_radius", 5))
    window = 2 * radius + 1
    # TensorFlow: x / (bias + alpha * sum(x²))^beta; TensorRT divides alpha by the window size
    params = layers.lrn.Params(window, float(node.attr("alpha", 1.0)) * window, float(node.attr("beta", 0.5)),
                               float(node.attr("bias", 1.0)))
    layer = ctx.add(layers.lrn, [channels_first(ctx, x)], params)
    return ctx.out(layer.get_output(0), channels_first_perm(x.rank))


# ------------------------------------------------------------------ activations
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _is_int(x: Value) -> bool:
    return np.dtype(x.dtype).kind in "iu"


@register("Relu", layers=("Activation",), restrictions="integers: an elementwise Max with 0")
def convert_relu(ctx, node, inputs):
    x = inputs[0]
    if _is_int(x) or x.is_const:
        return elementwise(ctx, x, scalar_like(x, 0), "MAX")
    return activation(ctx, x, "RELU")


@register("Relu6", layers=("Activation",), check=float_only())
def convert_relu6(ctx, node, inputs):
    return activation(ctx, inputs[0], "CLIP", 0.0, 6.0)


@register("Elu", layers=("Activation",), check=float_only())
def convert_elu(ctx, node, inputs):
    return activation(ctx, inputs[0], "ELU", 1.0)


@register("Selu", layers=("Activation",), check=float_only(),
          restrictions="Selu(-0) is +0: TensorRT's SELU takes the exponential branch for x ≤ 0, TensorFlow's "
                       "kernel only for x < 0")
def convert_selu(ctx, node, inputs):
    return activation(ctx, inputs[0], "SELU", _SELU_ALPHA, _SELU_SCALE)


@register("Sigmoid", layers=("Activation",), check=float_only())
def convert_sigmoid(ctx, node, inputs):
    return activation(ctx, inputs[0], "SIGMOID")


@register("Tanh", layers=("Activation",), check=float_only())
def convert_tanh(ctx, node, inputs):
    return activation(ctx, inputs[0], "TANH")


@register("Softplus", layers=("Activation", "Unary", "ElementWise", "Select"), check=float_only(),
          restrictions="computed stably as relu(x) + log1p(exp(-|x|)), log1p with Goldberg's correction")
def convert_softplus(ctx, node, inputs):
    """relu(x) + log1p(exp(-|x|)): no overflow for large x, and softplus(x) ≈ exp(x) keeps its relative accuracy
    for x ≪ 0 (log(1 + exp(x)) is 0 from x ≈ -16.6 on, where TensorFlow gives exp(x))."""
    x = inputs[0]
    pos = activation(ctx, x, "RELU", suffix="relu")
    neg_abs = unary(ctx, unary(ctx, x, "ABS", "abs"), "NEG", "neg_abs")
    return elementwise(ctx, pos, log1p(ctx, unary(ctx, neg_abs, "EXP", "exp")), "SUM")


@register("Softsign", layers=("Activation",), check=float_only())
def convert_softsign(ctx, node, inputs):
    return activation(ctx, inputs[0], "SOFTSIGN")


@register("LeakyRelu", layers=("Activation",), check=float_only())
def convert_leaky_relu(ctx, node, inputs):
    return activation(ctx, inputs[0], "LEAKY_RELU", node.attr("alpha", 0.2))


# ------------------------------------------------------------------ softmax
@register("Softmax", layers=("SoftMax",), check=float_only(),
          restrictions="over the last axis, as TensorFlow defines it")
def convert_softmax(ctx, node, inputs):
    x = inputs[0]
    layer = ctx.add(layers.softmax, [tensor_of(ctx, x)], layers.softmax.Params(1 << value_layout(x).index(x.rank - 1)))
    return ctx.out(layer.get_output(0), value_layout(x))


@register("LogSoftmax", layers=("Reduce", "ElementWise", "Unary", "Reduce", "Unary", "ElementWise"),
          check=float_only(), restrictions="computed stably as (x - max) - log(sum(exp(x - max)))")
def convert_log_softmax(ctx, node, inputs):
    x = inputs[0]
    axis = x.rank - 1
    shifted = elementwise(ctx, x, reduce(ctx, x, [axis], True, "MAX", "max"), "SUB", "shifted")
    total = reduce(ctx, unary(ctx, shifted, "EXP", "exp"), [axis], True, "SUM", "sum")
    return elementwise(ctx, shifted, unary(ctx, total, "LOG", "log"), "SUB")


# ------------------------------------------------------------------ matrix products
def _matmul_operand(ctx, v: Value, rank: int, transpose: bool):
    """(tensor, transpose flag) for a MatrixMultiply operand of ``rank`` dims, using the layout when it only
    swaps the last two axes."""
    k = rank - v.rank
    if v.is_const:
        arr = v.const.reshape((1,) * k + v.const.shape)
        return ctx.constant(arr), transpose
    layout = v.layout
    r = v.rank
    swapped = identity_perm(r - 2) + (r - 1, r - 2)
    if r >= 2 and layout == swapped:
        tensor, transpose = v.tensor, not transpose
        phys_shape = tuple(int(d) for d in v.tensor.shape)
    else:
        tensor = ctx.logical(v)
        phys_shape = v.shape
    if k:
        layer = ctx.add(layers.shuffle, [tensor], layers.shuffle.Params(reshape_dims=(1,) * k + tuple(phys_shape)),
                        suffix="broadcast_rank")
        tensor = layer.get_output(0)
    return tensor, transpose


def _matmul(ctx, a: Value, b: Value, transpose_a: bool, transpose_b: bool) -> Value:
    if a.is_const and b.is_const:
        x = np.swapaxes(a.const, -1, -2) if transpose_a else a.const
        y = np.swapaxes(b.const, -1, -2) if transpose_b else b.const
        return Value(const=np.matmul(x, y).astype(a.const.dtype))
    rank = max(a.rank, b.rank)
    ta, transpose_a = _matmul_operand(ctx, a, rank, transpose_a)
    tb, transpose_b = _matmul_operand(ctx, b, rank, transpose_b)
    op = {False: "NONE", True: "TRANSPOSE"}
    layer = ctx.add(layers.matrix_multiply, [ta, tb], layers.matrix_multiply.Params(op[transpose_a], op[transpose_b]))
    return ctx.out(layer.get_output(0))


_INT_MATMUL = ("int8", "uint8", "int32", "int64")
_INT_MATMUL_NOTE = ("integers (int32, and BatchMatMulV3's int8/uint8 operands with Tout=int32): an exact "
                    "product + Reduce SUM in int32 (wrapping as TensorFlow's int32 kernel; M·K·N intermediate "
                    "elements), since TensorRT's MatrixMultiply has no integer arithmetic")


def _matmul_dtypes(node) -> tuple[str, str, str]:
    """(operand a, operand b, result) dtypes: BatchMatMulV3 names them Ta/Tb/Tout, the others T."""
    if node.op == "BatchMatMulV3":
        return node.attr("Ta", "float32"), node.attr("Tb", "float32"), node.attr("Tout", "float32")
    t = node.attr("T", "float32")
    return t, t, t


def _check_matmul(node, graph):
    ta, tb, tout = _matmul_dtypes(node)
    if ta == tb == tout and ta in ("float32", "float16"):
        return None
    if ta in _INT_MATMUL and tb in _INT_MATMUL and tout in ("int32", "int64"):
        if node.op != "BatchMatMulV3" and ta not in ("int32", "int64"):
            return ConversionError(node.name, node.op, f"T={ta} is not supported",
                                   "cast the operands to int32 or float32 in the model")
        return None
    what = f"T={ta}" if node.op != "BatchMatMulV3" else f"Ta={ta}, Tb={tb}, Tout={tout}"
    return ConversionError(node.name, node.op,
                           f"{what} is not supported (float32/float16 operands and result, or integer operands "
                           "with an int32 result)",
                           "cast the operands to float32 in the model, or to int8/int32 with Tout=int32")


def _int_matmul(ctx, a: Value, b: Value, transpose_a: bool, transpose_b: bool) -> Value:
    """a @ b for integers, exactly: a[..., M, K, 1] · b[..., 1, K, N] summed over K, in int32."""
    from .helpers import cast, expand_dims, shuffle

    def swap_last(v: Value, suffix: str) -> Value:
        perm = tuple(range(v.rank - 2)) + (v.rank - 1, v.rank - 2)
        return shuffle(ctx, v, transpose=perm, suffix=suffix)

    a = cast(ctx, a, np.int32, "a_to_int32")
    b = cast(ctx, b, np.int32, "b_to_int32")
    if a.is_const and b.is_const:
        x = np.swapaxes(a.const, -1, -2) if transpose_a else a.const
        y = np.swapaxes(b.const, -1, -2) if transpose_b else b.const
        with np.errstate(over="ignore"):
            return Value(const=np.matmul(x.astype(np.int64), y.astype(np.int64)).astype(np.int32))
    if transpose_a:
        a = swap_last(a, "a_transposed")
    if transpose_b:
        b = swap_last(b, "b_transposed")
    rows = expand_dims(ctx, a, a.rank, "a_rows")  # [..., M, K, 1]
    cols = expand_dims(ctx, b, b.rank - 2, "b_cols")  # [..., 1, K, N]
    terms = elementwise(ctx, rows, cols, "PROD", "terms")
    return reduce(ctx, terms, [terms.rank - 2], False, "SUM")


def _any_matmul(ctx, node, a: Value, b: Value, transpose_a: bool, transpose_b: bool) -> Value:
    if _matmul_dtypes(node)[2] in ("int32", "int64"):
        return _int_matmul(ctx, a, b, transpose_a, transpose_b)
    return _matmul(ctx, a, b, transpose_a, transpose_b)


@register("MatMul", layers=("MatrixMultiply", "ElementWise", "Reduce"), check=_check_matmul, folds=True,
          restrictions="float32/float16: one MatrixMultiply, transposes fold into the layer; " + _INT_MATMUL_NOTE)
def convert_matmul(ctx, node, inputs):
    return _any_matmul(ctx, node, inputs[0], inputs[1], node.attr("transpose_a", False),
                       node.attr("transpose_b", False))


@register("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", layers=("Shuffle", "MatrixMultiply", "ElementWise", "Reduce"),
          check=_check_matmul, folds=True,
          restrictions="batch dimensions broadcast as in TensorFlow (lower ranks get leading 1s); float32/float16: "
                       "one MatrixMultiply; " + _INT_MATMUL_NOTE)
def convert_batch_matmul(ctx, node, inputs):
    return _any_matmul(ctx, node, inputs[0], inputs[1], node.attr("adj_x", False), node.attr("adj_y", False))


# ------------------------------------------------------------------ einsum
def _einsum_terms(equation: str, ranks: list[int]) -> tuple[list[str], str]:
    """Explicit lower-case subscripts per input and for the output (TensorRT's einsum takes only those).

    ``...`` expands to one label per broadcast dimension (right-aligned across inputs) and every label is
    renamed to a lower-case letter in order of appearance.
    """
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    widths = [rank - len(t.replace("...", "")) for t, rank in zip(terms, ranks)]
    n_ell = max(widths + [0])

    def labels(term: str, width: int) -> list:
        head, dots, tail = term.partition("...")
        middle = [("...", n_ell - width + k) for k in range(width)] if dots else []
        return list(head) + middle + list(tail)

    inputs = [labels(t, w) for t, w in zip(terms, widths)]
    if arrow:
        output = labels(rhs, n_ell)
    else:
        counts: dict = {}
        for t in inputs:
            for lab in t:
                counts[lab] = counts.get(lab, 0) + 1
        output = [("...", k) for k in range(n_ell)] + sorted(
            lab for lab, n in counts.items() if n == 1 and not isinstance(lab, tuple))
    names: dict = {}
    for lab in [lab for t in inputs for lab in t] + output:
        names.setdefault(lab, "abcdefghijklmnopqrstuvwxyz"[len(names)])
    return ["".join(names[lab] for lab in t) for t in inputs], "".join(names[lab] for lab in output)


def _check_einsum(node, graph):
    equation = node.attr("equation", "")
    lhs = equation.replace(" ", "").split("->")[0]
    terms = lhs.split(",")
    if len(terms) > 2:
        return ConversionError(node.name, node.op, "einsum with more than two operands is not supported")
    for t in terms:
        t = t.replace("...", "")
        if len(set(t)) != len(t):
            return ConversionError(node.name, node.op, f"repeated subscripts in '{t}' (diagonals) are not supported")
    if len(set(c for c in equation if c.isalpha())) > 20:
        return ConversionError(node.name, node.op, "too many subscripts")
    return float_only()(node, graph)


@register("Einsum", layers=("Einsum",), check=_check_einsum,
          restrictions="one or two float operands; no repeated subscripts within an operand (diagonals); "
                       "ellipses are expanded; operand layouts are absorbed into the equation")
def convert_einsum(ctx, node, inputs):
    terms, rhs = _einsum_terms(node.attr("equation"), [v.rank for v in inputs])
    if all(v.is_const for v in inputs):
        return Value(const=np.einsum(",".join(terms) + "->" + rhs, *[v.const for v in inputs]))
    tensors, physical_terms = [], []
    for v, term in zip(inputs, terms):
        layout = value_layout(v)
        tensors.append(tensor_of(ctx, v))
        physical_terms.append("".join(term[a] for a in layout) if term else "")
    layer = ctx.add(layers.einsum, tensors, layers.einsum.Params(",".join(physical_terms) + "->" + rhs))
    return ctx.out(layer.get_output(0))

