"""Network snapshots: a built ``INetworkDefinition`` read back into plain data.

A :class:`Snapshot` is a JSON topology (layers, their parameters, tensor names,
dtypes and shapes, network inputs/outputs) plus one weights archive.  It is
read *through the TensorRT API* (``network.get_layer(i)`` and each concrete
layer's attributes), so it records what TensorRT actually holds, not what a
converter meant to build.  A snapshot can be saved, loaded, compared, hashed,
executed in numpy (:mod:`converter.reference`) and rebuilt into an identical
network without TensorFlow (:meth:`Snapshot.to_network`).

Layer record::

    {"name": str, "type": "CONVOLUTION", "inputs": [tensor name | None, ...],
     "outputs": [{"name", "dtype", "shape"}], "params": {...},
     "weights": {role: key in the weights archive}}

Weights are stored with their logical shapes (a convolution kernel as
``(K, C/groups, *kernel)``, a deconvolution kernel as ``(C, K/groups, *kernel)``).

Lifetime: TensorRT keeps raw pointers to the weights given to
``add_convolution_nd``/``add_constant``/...; :meth:`Snapshot.to_network`
therefore keeps every array it hands to TensorRT in ``self._keepalive`` (one list
per built network).  Keep the Snapshot alive as long as the network (or any
engine built from it before serialization) is in use.
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import tempfile
from typing import Any

import numpy as np

from converter import layers as layer_kinds
from converter import trt as trtshim

FORMAT = "tf2trt-snapshot/2"
#: formats this version reads; older ones are upgraded on load (see :func:`upgrade_topology`)
READABLE_FORMATS = ("tf2trt-snapshot/1", FORMAT)
JSON_NAME = "network.json"
WEIGHTS_NAME = "weights.npz"

__all__ = ["FORMAT", "Snapshot", "SnapshotError", "canonical_json"]


from converter.errors import DamagedSnapshotError, SnapshotError  # noqa: E402 - re-exported


# --------------------------------------------------------------------------- helpers

def _encode_float(value: float):
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def decode_float(value) -> float:
    """Inverse of the snapshot's float encoding ("inf"/"-inf"/"nan" strings)."""
    if isinstance(value, str):
        return float(value)
    return float(value)


def _dims(value):
    if value is None:
        return None
    try:
        return [int(v) for v in value]
    except TypeError:
        return None


def _enum(value):
    return value.name


def canonical_json(obj) -> str:
    """Sorted-keys strict JSON (NaN/inf refused: encode them first)."""
    return json.dumps(obj, sort_keys=True, allow_nan=False, separators=(",", ":"))


def _dtype_name(trt_dtype) -> str:
    return trt_dtype.name


def _trt_enum(enum_name: str, member: str):
    trt = trtshim.module()
    return getattr(getattr(trt, enum_name), member)


def _trt_dtype(name: str):
    return getattr(trtshim.module().DataType, name)


def _weights_array(weights, what: str) -> np.ndarray | None:
    """A numpy copy of TensorRT weights read back, or None when empty."""
    if weights is None:
        return None
    arr = np.asarray(weights)
    if arr.size == 0:
        return None
    if arr.dtype == object:
        raise SnapshotError(f"{what}: weights of an unsupported data type")
    return np.array(arr, copy=True)


def _as_trt_weights(arr: np.ndarray | None, keep: list, dtype_name: str = "FLOAT"):
    trt = trtshim.module()
    if arr is None:
        return trt.Weights(_trt_dtype(dtype_name))
    arr = np.ascontiguousarray(arr)
    keep.append(arr)
    return trt.Weights(arr)


# ------------------------------------------------------------- per-type read / build

# Each spec: read(layer) -> (params, weights{role: array}); build(net, ins, params,
# weights, keep) -> layer.  `ins` holds ITensor or None per recorded input.

_SPECS: dict[str, tuple] = {}


def _spec(*type_names):
    def deco(pair):
        for t in type_names:
            _SPECS[t] = pair
        return pair
    return deco


def _set_optional_inputs(layer, ins, first):
    for i in range(first, len(ins)):
        if ins[i] is not None:
            layer.set_input(i, ins[i])


# -- convolution / deconvolution

def _read_conv(layer, deconv=False):
    params = {
        "num_output_maps": int(layer.num_output_maps),
        "kernel_size": _dims(layer.kernel_size_nd),
        "stride": _dims(layer.stride_nd),
        "pre_padding": _dims(layer.pre_padding),
        "post_padding": _dims(layer.post_padding),
        "padding_mode": _enum(layer.padding_mode),
        "dilation": _dims(layer.dilation_nd),
        "num_groups": int(layer.num_groups),
    }
    weights = {}
    kernel = _weights_array(layer.kernel, layer.name)
    k, g, ks = params["num_output_maps"], params["num_groups"], params["kernel_size"]
    taps = int(np.prod(ks))
    if kernel is not None:
        if deconv:
            per = k // g
            cin = kernel.size // (per * taps)
            kernel = kernel.reshape((cin, per, *ks))
        else:
            cpg = kernel.size // (k * taps)
            kernel = kernel.reshape((k, cpg, *ks))
        weights["kernel"] = kernel
    bias = _weights_array(layer.bias, layer.name)
    if bias is not None:
        weights["bias"] = bias.reshape(-1)
    return params, weights


def _build_conv(net, ins, params, weights, keep, deconv=False):
    dtype = "FLOAT"
    for arr in weights.values():
        dtype = trtshim.trt_dtype(arr.dtype).name
    kernel = _as_trt_weights(weights.get("kernel"), keep, dtype)
    bias = _as_trt_weights(weights.get("bias"), keep, dtype)
    add = net.add_deconvolution_nd if deconv else net.add_convolution_nd
    layer = add(ins[0], params["num_output_maps"], tuple(params["kernel_size"]), kernel, bias)
    layer.stride_nd = tuple(params["stride"])
    layer.dilation_nd = tuple(params["dilation"])
    layer.num_groups = params["num_groups"]
    layer.pre_padding = tuple(params["pre_padding"])
    layer.post_padding = tuple(params["post_padding"])
    layer.padding_mode = _trt_enum("PaddingMode", params["padding_mode"])
    _set_optional_inputs(layer, ins, 1)
    return layer


_spec("DECONVOLUTION")((lambda layer: _read_conv(layer, deconv=True), lambda *a: _build_conv(*a, deconv=True)))


# -- activation

def _read_activation(layer):
    return {"activation": _enum(layer.type), "alpha": _encode_float(layer.alpha),
            "beta": _encode_float(layer.beta)}, {}


def _build_activation(net, ins, p, w, keep):
    layer = net.add_activation(ins[0], _trt_enum("ActivationType", p["activation"]))
    layer.alpha = decode_float(p["alpha"])
    layer.beta = decode_float(p["beta"])
    return layer


_spec("ACTIVATION")((_read_activation, _build_activation))


# -- pooling

def _read_pooling(layer):
    return {
        "pooling": _enum(layer.type),
        "window_size": _dims(layer.window_size_nd),
        "stride": _dims(layer.stride_nd),
        "pre_padding": _dims(layer.pre_padding),
        "post_padding": _dims(layer.post_padding),
        "padding_mode": _enum(layer.padding_mode),
        "average_count_excludes_padding": bool(layer.average_count_excludes_padding),
        "blend_factor": _encode_float(layer.blend_factor),
    }, {}


def _build_pooling(net, ins, p, w, keep):
    layer = net.add_pooling_nd(ins[0], _trt_enum("PoolingType", p["pooling"]), tuple(p["window_size"]))
    layer.stride_nd = tuple(p["stride"])
    layer.pre_padding = tuple(p["pre_padding"])
    layer.post_padding = tuple(p["post_padding"])
    layer.padding_mode = _trt_enum("PaddingMode", p["padding_mode"])
    layer.average_count_excludes_padding = p["average_count_excludes_padding"]
    layer.blend_factor = decode_float(p["blend_factor"])
    return layer


_spec("POOLING")((_read_pooling, _build_pooling))


# -- LRN

def _read_lrn(layer):
    return {"window_size": int(layer.window_size), "alpha": _encode_float(layer.alpha),
            "beta": _encode_float(layer.beta), "k": _encode_float(layer.k)}, {}


def _build_lrn(net, ins, p, w, keep):
    return net.add_lrn(ins[0], p["window_size"], decode_float(p["alpha"]), decode_float(p["beta"]),
                       decode_float(p["k"]))


_spec("LRN")((_read_lrn, _build_lrn))


# -- scale

def _read_scale(layer):
    weights = {}
    for role in ("shift", "scale", "power"):
        arr = _weights_array(getattr(layer, role), layer.name)
        if arr is not None:
            weights[role] = arr.reshape(-1)
    return {"mode": _enum(layer.mode), "channel_axis": int(layer.channel_axis)}, weights


def _build_scale(net, ins, p, w, keep):
    dtype = "FLOAT"
    for arr in w.values():
        dtype = trtshim.trt_dtype(arr.dtype).name
    args = [_as_trt_weights(w.get(r), keep, dtype) for r in ("shift", "scale", "power")]
    layer = net.add_scale_nd(ins[0], _trt_enum("ScaleMode", p["mode"]), *args, p["channel_axis"])
    layer.channel_axis = p["channel_axis"]
    return layer


_spec("SCALE")((_read_scale, _build_scale))


# -- softmax / concatenation / elementwise / unary

def _read_softmax(layer):
    return {"axes": int(layer.axes)}, {}


def _build_softmax(net, ins, p, w, keep):
    layer = net.add_softmax(ins[0])
    layer.axes = p["axes"]
    return layer


_spec("SOFTMAX")((_read_softmax, _build_softmax))


def _build_concat(net, ins, p, w, keep):
    layer = net.add_concatenation(list(ins))
    layer.axis = p["axis"]
    return layer


_spec("CONCATENATION")((lambda l: ({"axis": int(l.axis)}, {}), _build_concat))
_spec("ELEMENTWISE")((
    lambda l: ({"op": _enum(l.op)}, {}),
    lambda net, ins, p, w, keep: net.add_elementwise(ins[0], ins[1], _trt_enum("ElementWiseOperation", p["op"])),
))
_spec("UNARY")((
    lambda l: ({"op": _enum(l.op)}, {}),
    lambda net, ins, p, w, keep: net.add_unary(ins[0], _trt_enum("UnaryOperation", p["op"])),
))


# -- padding

_spec("PADDING")((
    lambda l: ({"pre_padding": _dims(l.pre_padding_nd), "post_padding": _dims(l.post_padding_nd)}, {}),
    lambda net, ins, p, w, keep: net.add_padding_nd(ins[0], tuple(p["pre_padding"]), tuple(p["post_padding"])),
))


# -- shuffle

def _read_shuffle(layer):
    return {
        "first_transpose": _dims(layer.first_transpose),
        "reshape_dims": _dims(layer.reshape_dims),
        "second_transpose": _dims(layer.second_transpose),
        "zero_is_placeholder": bool(layer.zero_is_placeholder),
    }, {}


def _build_shuffle(net, ins, p, w, keep):
    layer = net.add_shuffle(ins[0])
    layer.first_transpose = tuple(p["first_transpose"])
    layer.zero_is_placeholder = p["zero_is_placeholder"]
    if p["reshape_dims"] is not None and (len(ins) < 2 or ins[1] is None):
        layer.reshape_dims = tuple(p["reshape_dims"])
    layer.second_transpose = tuple(p["second_transpose"])
    _set_optional_inputs(layer, ins, 1)
    return layer


_spec("SHUFFLE")((_read_shuffle, _build_shuffle))


# -- reduce / topk

_spec("REDUCE")((
    lambda l: ({"op": _enum(l.op), "axes": int(l.axes), "keep_dims": bool(l.keep_dims)}, {}),
    lambda net, ins, p, w, keep: net.add_reduce(ins[0], _trt_enum("ReduceOperation", p["op"]), p["axes"],
                                                 p["keep_dims"]),
))


def _read_topk(layer):
    params = {"op": _enum(layer.op), "k": int(layer.k), "axes": int(layer.axes)}
    if hasattr(layer, "indices_type"):
        params["indices_type"] = _enum(layer.indices_type)
    return params, {}


def _build_topk(net, ins, p, w, keep):
    op = _trt_enum("TopKOperation", p["op"])
    dynamic_k = len(ins) > 1 and ins[1] is not None
    k = 1 if dynamic_k else p["k"]  # a K tensor overrides the static K (read back as -1)
    if "indices_type" in p and p["indices_type"] != "INT32":
        layer = net.add_topk(ins[0], op, k, p["axes"], _trt_dtype(p["indices_type"]))
    else:
        layer = net.add_topk(ins[0], op, k, p["axes"])
    _set_optional_inputs(layer, ins, 1)
    return layer


_spec("TOPK")((_read_topk, _build_topk))


# -- gather

def _read_gather(layer):
    return {"axis": int(layer.axis), "mode": _enum(layer.mode),
            "num_elementwise_dims": int(layer.num_elementwise_dims)}, {}


def _build_gather(net, ins, p, w, keep):
    layer = net.add_gather_v2(ins[0], ins[1], _trt_enum("GatherMode", p["mode"]))
    layer.axis = p["axis"]
    layer.num_elementwise_dims = p["num_elementwise_dims"]
    return layer


_spec("GATHER")((_read_gather, _build_gather))


# -- matrix multiply

_spec("MATRIX_MULTIPLY")((
    lambda l: ({"op0": _enum(l.op0), "op1": _enum(l.op1)}, {}),
    lambda net, ins, p, w, keep: net.add_matrix_multiply(ins[0], _trt_enum("MatrixOperation", p["op0"]), ins[1],
                                                          _trt_enum("MatrixOperation", p["op1"])),
))


# -- constant

def _read_constant(layer):
    shape = _dims(layer.shape)
    arr = np.asarray(layer.weights)
    if arr.dtype == object:
        raise SnapshotError(f"layer {layer.name!r} (CONSTANT): weights of an unsupported data type")
    arr = np.array(arr, copy=True).reshape(shape)
    return {"shape": shape}, {"weights": arr}


def _build_constant(net, ins, p, w, keep):
    arr = np.ascontiguousarray(w["weights"])
    keep.append(arr)
    return net.add_constant(tuple(p["shape"]), trtshim.module().Weights(arr))


_spec("CONSTANT")((_read_constant, _build_constant))


# -- identity / cast / shape / select / prelu

_spec("IDENTITY")((lambda l: ({}, {}), lambda net, ins, p, w, keep: net.add_identity(ins[0])))
_spec("CAST")((
    lambda l: ({"to_type": _enum(l.to_type)}, {}),
    lambda net, ins, p, w, keep: net.add_cast(ins[0], _trt_dtype(p["to_type"])),
))
_spec("SHAPE")((lambda l: ({}, {}), lambda net, ins, p, w, keep: net.add_shape(ins[0])))
_spec("SELECT")((lambda l: ({}, {}), lambda net, ins, p, w, keep: net.add_select(ins[0], ins[1], ins[2])))
_spec("PARAMETRIC_RELU")((lambda l: ({}, {}),
                          lambda net, ins, p, w, keep: net.add_parametric_relu(ins[0], ins[1])))


# -- slice

def _read_slice(layer):
    params = {"start": _dims(layer.start), "shape": _dims(layer.shape), "stride": _dims(layer.stride),
              "mode": _enum(layer.mode)}
    axes = getattr(layer, "axes", None)
    params["axes"] = _dims(axes) if axes is not None else None
    return params, {}


def _build_slice(net, ins, p, w, keep):
    zeros = tuple(0 for _ in (p["start"] or []))
    layer = net.add_slice(ins[0], tuple(p["start"] or zeros), tuple(p["shape"] or zeros),
                          tuple(p["stride"] or zeros))
    layer.mode = _trt_enum("SampleMode", p["mode"])
    if p.get("axes") is not None:
        layer.axes = tuple(p["axes"])
    _set_optional_inputs(layer, ins, 1)
    return layer


_spec("SLICE")((_read_slice, _build_slice))


# -- resize

def _read_resize(layer):
    params = {
        "resize_mode": _enum(layer.resize_mode),
        "coordinate_transformation": _enum(layer.coordinate_transformation),
        "selector_for_single_pixel": _enum(layer.selector_for_single_pixel),
        "nearest_rounding": _enum(layer.nearest_rounding),
        "cubic_coeff": _encode_float(layer.cubic_coeff),
        "exclude_outside": bool(layer.exclude_outside),
        "shape": None,
        "scales": None,
    }
    if layer.num_inputs < 2 or layer.get_input(1) is None:
        shape = _dims(layer.shape)
        if shape is not None and all(d >= 0 for d in shape) and len(shape) > 0:
            params["shape"] = shape
        else:
            params["scales"] = [_encode_float(s) for s in layer.scales]
    return params, {}


def _build_resize(net, ins, p, w, keep):
    layer = net.add_resize(ins[0])
    layer.resize_mode = _trt_enum("InterpolationMode", p["resize_mode"])
    layer.coordinate_transformation = _trt_enum("ResizeCoordinateTransformation", p["coordinate_transformation"])
    layer.selector_for_single_pixel = _trt_enum("ResizeSelector", p["selector_for_single_pixel"])
    layer.nearest_rounding = _trt_enum("ResizeRoundMode", p["nearest_rounding"])
    layer.cubic_coeff = decode_float(p["cubic_coeff"])
    layer.exclude_outside = p["exclude_outside"]
    if p["shape"] is not None:
        layer.shape = tuple(p["shape"])
    elif p["scales"]:
        layer.scales = [decode_float(s) for s in p["scales"]]
    _set_optional_inputs(layer, ins, 1)
    return layer


_spec("RESIZE")((_read_resize, _build_resize))


# -- fill

def _read_fill(layer):
    is64 = layer.is_alpha_beta_int64()
    conv = int if is64 else _encode_float
    return {"operation": _enum(layer.operation), "shape": _dims(layer.shape), "to_type": _enum(layer.to_type),
            "alpha": conv(layer.alpha), "beta": conv(layer.beta), "alpha_beta_int64": bool(is64)}, {}


def _build_fill(net, ins, p, w, keep):
    layer = net.add_fill(tuple(p["shape"] or ()), _trt_enum("FillOperation", p["operation"]),
                         _trt_dtype(p["to_type"]))
    if p["alpha_beta_int64"]:
        layer.alpha, layer.beta = int(p["alpha"]), int(p["beta"])
    else:
        layer.alpha, layer.beta = decode_float(p["alpha"]), decode_float(p["beta"])
    _set_optional_inputs(layer, ins, 0)
    return layer


_spec("FILL")((_read_fill, _build_fill))


# -- normalization

def _read_norm(layer):
    params = {"axes": int(layer.axes), "epsilon": _encode_float(layer.epsilon), "num_groups": int(layer.num_groups)}
    is_v2 = getattr(layer, "is_v2", False)
    params["v2"] = bool(is_v2() if callable(is_v2) else is_v2)
    return params, {}


def _build_norm(net, ins, p, w, keep):
    add = net.add_normalization_v2 if p.get("v2") else net.add_normalization
    layer = add(ins[0], ins[1], ins[2], p["axes"])
    layer.epsilon = decode_float(p["epsilon"])
    layer.num_groups = p["num_groups"]
    return layer


_spec("NORMALIZATION")((_read_norm, _build_norm))


# -- einsum / one hot / cumulative / squeeze / unsqueeze

_spec("EINSUM")((lambda l: ({"equation": str(l.equation)}, {}),
                 lambda net, ins, p, w, keep: net.add_einsum(list(ins), p["equation"])))
_spec("ONE_HOT")((lambda l: ({"axis": int(l.axis)}, {}),
                  lambda net, ins, p, w, keep: net.add_one_hot(ins[0], ins[1], ins[2], p["axis"])))
_spec("CUMULATIVE")((
    lambda l: ({"op": _enum(l.op), "exclusive": bool(l.exclusive), "reverse": bool(l.reverse)}, {}),
    lambda net, ins, p, w, keep: net.add_cumulative(ins[0], ins[1], _trt_enum("CumulativeOperation", p["op"]),
                                                     p["exclusive"], p["reverse"]),
))
_spec("SQUEEZE")((lambda l: ({}, {}), lambda net, ins, p, w, keep: net.add_squeeze(ins[0], ins[1])))
_spec("UNSQUEEZE")((lambda l: ({}, {}), lambda net, ins, p, w, keep: net.add_unsqueeze(ins[0], ins[1])))


# -- non zero / scatter / reverse sequence / grid sample

def _read_nonzero(layer):
    if hasattr(layer, "indices_type"):
        return {"indices_type": _enum(layer.indices_type)}, {}
    return {}, {}


def _build_nonzero(net, ins, p, w, keep):
    if p.get("indices_type", "INT32") != "INT32":
        return net.add_non_zero(ins[0], _trt_dtype(p["indices_type"]))
    return net.add_non_zero(ins[0])


_spec("NON_ZERO")((_read_nonzero, _build_nonzero))


def _build_scatter(net, ins, p, w, keep):
    layer = net.add_scatter(ins[0], ins[1], ins[2], _trt_enum("ScatterMode", p["mode"]))
    layer.axis = p["axis"]
    return layer


_spec("SCATTER")((lambda l: ({"mode": _enum(l.mode), "axis": int(l.axis)}, {}), _build_scatter))


def _build_reverse_sequence(net, ins, p, w, keep):
    layer = net.add_reverse_sequence(ins[0], ins[1])
    layer.batch_axis = p["batch_axis"]
    layer.sequence_axis = p["sequence_axis"]
    return layer


_spec("REVERSE_SEQUENCE")((
    lambda l: ({"batch_axis": int(l.batch_axis), "sequence_axis": int(l.sequence_axis)}, {}),
    _build_reverse_sequence,
))


def _build_grid_sample(net, ins, p, w, keep):
    layer = net.add_grid_sample(ins[0], ins[1])
    layer.interpolation_mode = _trt_enum("InterpolationMode", p["interpolation_mode"])
    layer.align_corners = p["align_corners"]
    layer.sample_mode = _trt_enum("SampleMode", p["sample_mode"])
    return layer


_spec("GRID_SAMPLE")((
    lambda l: ({"interpolation_mode": _enum(l.interpolation_mode), "align_corners": bool(l.align_corners),
                "sample_mode": _enum(l.sample_mode)}, {}),
    _build_grid_sample,
))


# -- non-max suppression (snapshot only; the reference executor does not run it)

def _read_nms(layer):
    params = {"bounding_box_format": _enum(layer.bounding_box_format), "topk_box_limit": int(layer.topk_box_limit)}
    if hasattr(layer, "indices_type"):
        params["indices_type"] = _enum(layer.indices_type)
    return params, {}


def _build_nms(net, ins, p, w, keep):
    layer = net.add_nms(ins[0], ins[1], ins[2])
    layer.bounding_box_format = _trt_enum("BoundingBoxFormat", p["bounding_box_format"])
    layer.topk_box_limit = p["topk_box_limit"]
    if "indices_type" in p:
        layer.indices_type = _trt_dtype(p["indices_type"])
    _set_optional_inputs(layer, ins, 3)
    return layer


_spec("NMS")((_read_nms, _build_nms))


# -- quantize / dequantize

def _read_qdq(layer):
    params = {"axis": int(layer.axis), "to_type": _enum(layer.to_type)}
    try:  # raises when no block shape is set (per-tensor / per-axis quantization)
        block = layer.block_shape
    except (AttributeError, RuntimeError):
        block = None
    params["block_shape"] = _dims(block) if block is not None and len(_dims(block) or []) else None
    return params, {}


def _build_qdq(net, ins, p, w, keep, dequantize=False):
    add = net.add_dequantize if dequantize else net.add_quantize
    layer = add(ins[0], ins[1], _trt_dtype(p["to_type"]))
    layer.axis = p["axis"]
    if p.get("block_shape") is not None:
        layer.block_shape = tuple(p["block_shape"])
    _set_optional_inputs(layer, ins, 2)
    return layer


_spec("QUANTIZE")((_read_qdq, _build_qdq))
_spec("DEQUANTIZE")((_read_qdq, lambda *a: _build_qdq(*a, dequantize=True)))


SUPPORTED_LAYER_TYPES = frozenset(_SPECS) | layer_kinds.SUPPORTED_LAYER_TYPES


# --------------------------------------------------------------------------- snapshot

def _topological_order(network) -> list[int]:
    """Layer indices in a dependency order, keeping TensorRT's order where it already is one.

    TensorRT's ONNX parser sometimes rewires an earlier layer's input to a tensor produced later
    (``set_input``), so index order is not always topological; snapshots store layers in this
    order so a rebuilt network can add each layer after its inputs exist.
    """
    import heapq

    count = network.num_layers
    available = {network.get_input(i).name for i in range(network.num_inputs)}
    producer: dict[str, int] = {}
    needs: list[set[str]] = []
    for index in range(count):
        layer = network.get_layer(index)
        for j in range(layer.num_outputs):
            producer[layer.get_output(j).name] = index
        names = set()
        for j in range(layer.num_inputs):
            tensor = layer.get_input(j)
            if tensor is not None:
                names.add(tensor.name)
        needs.append(names)
    waiting: dict[int, int] = {}
    consumers: dict[int, list[int]] = {}
    ready: list[int] = []
    for index, names in enumerate(needs):
        deps = set()
        for name in names:
            if name in available:
                continue
            if name not in producer:
                raise SnapshotError(f"layer {network.get_layer(index).name!r} reads tensor {name!r}, which no layer "
                                    "produces and which is not a network input")
            deps.add(producer[name])
        waiting[index] = len(deps)
        for d in deps:
            consumers.setdefault(d, []).append(index)
        if not deps:
            heapq.heappush(ready, index)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for c in consumers.get(index, ()):
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, c)
    if len(order) != count:
        raise SnapshotError("the network has a dependency cycle (loops/conditionals are not supported)")
    return order


def upgrade_topology(topology: dict) -> dict:
    """A topology of any readable format in the current one.

    Format 1 (tf2trt ≤ 0.x, before the per-kind layer modules) wrote some parameters only when the
    TensorRT version had them (``indices_type``, slice ``axes``, ``v2`` of normalization…); format 2 writes
    every field of the kind's typed record.  Upgrading parses each layer's parameters with its kind's
    record (unknown keys are an error, missing ones take the field's default) and writes them back whole,
    so a format-1 snapshot rebuilds, runs and hashes like the format-2 snapshot of the same network.
    """
    if topology.get("format") == FORMAT:
        return topology
    layers = []
    for rec in topology.get("layers", []):
        layer_kind = layer_kinds.kind(rec.get("type"))
        if layer_kind is not None:
            rec = dict(rec, params=layer_kind.params.from_json(rec.get("params") or {}).to_json())
        layers.append(rec)
    return dict(topology, format=FORMAT, layers=layers)


def _tensor_record(tensor) -> dict:
    return {"name": tensor.name, "dtype": _dtype_name(tensor.dtype), "shape": _dims(tensor.shape)}


class Snapshot:
    """A TensorRT network as JSON-able topology + named numpy weights.

    ``meta`` holds free-form JSON-able annotations (for example which TensorFlow
    tensor each TensorRT tensor stands for).  It is saved with the snapshot but is
    not part of the network's identity: ``==`` and :meth:`digest` ignore it.
    """

    def __init__(self, topology: dict, weights: dict[str, np.ndarray]):
        if topology.get("format") not in READABLE_FORMATS:
            raise DamagedSnapshotError(f"not a tf2trt network snapshot this version reads "
                                       f"(format={topology.get('format')!r}; reads {', '.join(READABLE_FORMATS)})",
                                       hint="rebuild it with this tf2trt (the pipeline does so when its cache "
                                            "key changes)")
        topology = upgrade_topology(dict(topology))
        self.meta: dict = dict(topology.pop("meta", None) or {})
        self.topology = topology
        self.weights = {k: np.asarray(v) for k, v in weights.items()}
        self._keepalive: list[list[np.ndarray]] = []

    # ------------------------------------------------------------ read a network
    @classmethod
    def from_network(cls, network) -> "Snapshot":
        layers = []
        weights: dict[str, np.ndarray] = {}
        producers: dict[str, str] = {}
        inputs = []
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            inputs.append(_tensor_record(tensor))
            producers[tensor.name] = "<network input>"
        for index in _topological_order(network):
            layer = network.get_layer(index)
            type_name = layer.type.name
            position = len(layers)
            layer_kind = layer_kinds.kind(type_name)
            spec = _SPECS.get(type_name)
            if spec is None and layer_kind is None:
                raise SnapshotError(
                    f"layer {index} {layer.name!r} has type {type_name}, which snapshots do not support "
                    f"(supported: {', '.join(sorted(SUPPORTED_LAYER_TYPES | layer_kinds.SUPPORTED_LAYER_TYPES))})")
            trtshim.concrete_layer(layer)
            try:
                if layer_kind is not None:
                    typed, layer_weights = layer_kind.read(layer)
                    params = typed.to_json()
                else:
                    params, layer_weights = spec[0](layer)
            except SnapshotError:
                raise
            except Exception as exc:  # pragma: no cover - API drift
                raise SnapshotError(f"layer {layer.name!r} ({type_name}): cannot read parameters: {exc}") from exc
            in_names = []
            for j in range(layer.num_inputs):
                tensor = layer.get_input(j)
                in_names.append(None if tensor is None else tensor.name)
            outs = []
            for j in range(layer.num_outputs):
                tensor = layer.get_output(j)
                if tensor.name in producers:
                    raise SnapshotError(
                        f"layer {layer.name!r}: output tensor name {tensor.name!r} is not unique in the network")
                producers[tensor.name] = layer.name
                outs.append(_tensor_record(tensor))
            record = {"name": layer.name, "type": type_name, "inputs": in_names, "outputs": outs,
                      "params": params, "weights": {}}
            if getattr(layer, "precision_is_set", False):
                record["precision"] = _enum(layer.precision)
            out_types = {}
            for j in range(layer.num_outputs):
                is_set = getattr(layer, "output_type_is_set", None)
                if is_set is not None and is_set(j):
                    out_types[str(j)] = _enum(layer.get_output_type(j))
            if out_types:
                record["output_types"] = out_types
            for role, arr in sorted(layer_weights.items()):
                key = f"{position:05d}/{role}"
                weights[key] = arr
                record["weights"][role] = key
            layers.append(record)
        outputs = [network.get_output(i).name for i in range(network.num_outputs)]
        strongly = False
        flag = getattr(trtshim.module().NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if flag is not None:
            strongly = bool(network.get_flag(flag))
        topology = {"format": FORMAT, "inputs": inputs, "outputs": outputs, "layers": layers,
                    "strongly_typed": strongly}
        canonical_json(topology)  # fail early on anything not strict JSON
        return cls(topology, weights)

    # ------------------------------------------------------------ accessors
    @property
    def layers(self) -> list[dict]:
        return self.topology["layers"]

    @property
    def inputs(self) -> list[dict]:
        return self.topology["inputs"]

    @property
    def outputs(self) -> list[str]:
        return self.topology["outputs"]

    @property
    def layer_count(self) -> int:
        return len(self.layers)

    def layer_types(self) -> collections.Counter:
        return collections.Counter(layer["type"] for layer in self.layers)

    def layer_weights(self, layer: dict) -> dict[str, np.ndarray]:
        return {role: self.weights[key] for role, key in layer["weights"].items()}

    def tensor_records(self) -> dict[str, dict]:
        """Every tensor (network inputs and layer outputs) by name."""
        out = {t["name"]: t for t in self.inputs}
        for layer in self.layers:
            for t in layer["outputs"]:
                out[t["name"]] = t
        return out

    # ------------------------------------------------------------ rebuild
    def to_network(self, builder=None):
        """Rebuild the network (no TensorFlow needed).  Returns ``(builder, network)``.

        The numpy arrays handed to TensorRT are kept alive in ``self._keepalive``.
        """
        trt = trtshim.module()
        builder, network = trtshim.create_network(builder, strongly_typed=self.topology.get("strongly_typed", False))
        keep: list[np.ndarray] = []
        self._keepalive.append(keep)
        tensors: dict[str, Any] = {}
        for rec in self.inputs:
            tensors[rec["name"]] = network.add_input(rec["name"], _trt_dtype(rec["dtype"]), tuple(rec["shape"]))
        for rec in self.layers:
            layer_kind = layer_kinds.kind(rec["type"])
            spec = _SPECS.get(rec["type"])
            if spec is None and layer_kind is None:
                raise SnapshotError(f"layer {rec['name']!r}: unsupported type {rec['type']}")
            try:
                ins = [None if n is None else tensors[n] for n in rec["inputs"]]
            except KeyError as exc:
                raise SnapshotError(f"layer {rec['name']!r}: input tensor {exc} is not produced earlier") from None
            if layer_kind is not None:
                layer = layer_kind.add(network, ins, layer_kind.params.from_json(rec["params"]),
                                       self.layer_weights(rec), keep)
            else:
                layer = spec[1](network, ins, rec["params"], self.layer_weights(rec), keep)
            if layer is None:
                raise SnapshotError(f"layer {rec['name']!r} ({rec['type']}): TensorRT refused to add it")
            layer.name = rec["name"]
            if "precision" in rec:
                layer.precision = _trt_dtype(rec["precision"])
            for j, dtype_name in rec.get("output_types", {}).items():
                layer.set_output_type(int(j), _trt_dtype(dtype_name))
            if layer.num_outputs != len(rec["outputs"]):
                raise SnapshotError(f"layer {rec['name']!r}: {layer.num_outputs} outputs, expected "
                                    f"{len(rec['outputs'])}")
            for j, out in enumerate(rec["outputs"]):
                tensor = layer.get_output(j)
                tensor.name = out["name"]
                tensors[out["name"]] = tensor
        for name in self.outputs:
            tensor = tensors[name]
            network.mark_output(tensor)
        if not self.topology.get("strongly_typed", False):
            for layer in self.layers:
                for out in layer["outputs"]:
                    if out["name"] in self.outputs:
                        tensors[out["name"]].dtype = _trt_dtype(out["dtype"])
        return builder, network

    # ------------------------------------------------------------ persistence
    def canonical_json(self) -> str:
        return canonical_json(self.topology)

    def save(self, directory) -> None:
        """Write ``network.json`` (canonical; ``meta`` included) and ``weights.npz``, each atomically."""
        os.makedirs(directory, exist_ok=True)
        text = canonical_json(dict(self.topology, meta=self.meta)) if self.meta else self.canonical_json()
        buf = io.BytesIO()
        np.savez(buf, **{k: self.weights[k] for k in sorted(self.weights)})
        for name, data in ((WEIGHTS_NAME, buf.getvalue()), (JSON_NAME, text.encode("utf-8"))):
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, os.path.join(directory, name))
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise

    @classmethod
    def load(cls, directory) -> "Snapshot":
        with open(os.path.join(directory, JSON_NAME), encoding="utf-8") as fh:
            topology = json.load(fh)
        with np.load(os.path.join(directory, WEIGHTS_NAME), allow_pickle=False) as data:
            weights = {k: np.array(data[k]) for k in data.files}
        return cls(topology, weights)

    _BYTES_HEADER = b"TF2TRTSNAP2\n"

    def to_bytes(self) -> bytes:
        """One deterministic blob (for content-addressed stores).

        Header, JSON length, JSON (with meta), the weight names as a JSON line,
        then each weight as an ``.npy`` stream.  No zip container: ``np.savez``
        stamps the current time into its entries, which would give an identical
        network a new digest on every build.
        """
        text = canonical_json(dict(self.topology, meta=self.meta)).encode("utf-8")
        buf = io.BytesIO()
        buf.write(self._BYTES_HEADER + str(len(text)).encode() + b"\n" + text)
        names = sorted(self.weights)
        buf.write((json.dumps(names) + "\n").encode())
        for name in names:
            np.save(buf, np.ascontiguousarray(self.weights[name]), allow_pickle=False)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Snapshot":
        if not data.startswith(cls._BYTES_HEADER):
            raise DamagedSnapshotError("not a tf2trt network snapshot blob (or one from an older format)")
        buf = io.BytesIO(data)
        buf.seek(len(cls._BYTES_HEADER))
        try:
            size = int(buf.readline())
            topology = json.loads(buf.read(size))
            names = json.loads(buf.readline())
            weights = {name: np.load(buf, allow_pickle=False) for name in names}
        except Exception as exc:  # noqa: BLE001 - any decoding failure means a damaged blob
            raise DamagedSnapshotError(f"damaged network snapshot: {exc}") from exc
        return cls(topology, weights)

    def digest(self) -> str:
        try:
            import blake3
            hasher = blake3.blake3()
        except ImportError:  # pragma: no cover - blake3 is a dependency
            import hashlib
            hasher = hashlib.sha256()
        hasher.update(self.canonical_json().encode("utf-8"))
        for key in sorted(self.weights):
            arr = np.ascontiguousarray(self.weights[key])
            hasher.update(key.encode("utf-8"))
            hasher.update(str(arr.dtype.str).encode("ascii"))
            hasher.update(repr(arr.shape).encode("ascii"))
            hasher.update(arr.tobytes())
        return hasher.hexdigest()

    def __eq__(self, other) -> bool:
        if not isinstance(other, Snapshot):
            return NotImplemented
        if self.canonical_json() != other.canonical_json():
            return False
        if sorted(self.weights) != sorted(other.weights):
            return False
        for key, arr in self.weights.items():
            b = other.weights[key]
            if arr.dtype != b.dtype or arr.shape != b.shape or arr.tobytes() != b.tobytes():
                return False
        return True

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"<Snapshot {self.layer_count} layers, {len(self.weights)} weights>"
