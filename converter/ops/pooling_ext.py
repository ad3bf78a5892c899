"""Window ops built from one strided slice per window tap: ExtractImagePatches, MaxPoolWithArgmax, and the
integer MaxPool that TensorRT's pooling layer does not take.

A window of ``kh × kw`` taps over an NHWC image is ``kh * kw`` strided slices (``FILL`` mode supplies the
padding); combining them elementwise keeps every result exact — there is no arithmetic, only selection —
and works for any dtype TensorRT slices.  Taps are visited in row-major order, the order TensorFlow's CPU
kernels scan a window, so "first maximum wins" ties come out as TensorFlow's.
"""

from __future__ import annotations

import numpy as np

from ..context import Value
from ..errors import ConversionError
from .helpers import concat, elementwise, register, select, slice_value, tf_same_padding


def _attr4(node, key: str) -> list[int]:
    """The spatial (H, W) part of a 4-element NHWC attribute."""
    values = list(node.attr(key, [1, 1, 1, 1]))
    return [int(values[1]), int(values[2])]


def _window_plan(in_hw, ksize, strides, rates, padding: str):
    """(out sizes, pre-padding) per spatial dim with TensorFlow's SAME/VALID rules (dilated kernel extents)."""
    outs, pads = [], []
    for size, k, s, r in zip(in_hw, ksize, strides, rates):
        eff = (k - 1) * r + 1
        if padding == "SAME":
            outs.append(-(-size // s))
            pads.append(tf_same_padding(size, k, s, r)[0])
        else:
            outs.append(max(-(-(size - eff + 1) // s), 0))
            pads.append(0)
    return outs, pads


def _taps(ctx, x: Value, ksize, strides, rates, outs, pads, fill):
    """Per window tap (row-major): ``(i, j, slice)`` of the NHWC input ``x``; out-of-image cells get ``fill``."""
    n, _, _, c = x.shape
    for i in range(ksize[0]):
        for j in range(ksize[1]):
            start = [0, i * rates[0] - pads[0], j * rates[1] - pads[1], 0]
            size = [n, outs[0], outs[1], c]
            inside = (start[1] >= 0 and start[2] >= 0
                      and start[1] + (outs[0] - 1) * strides[0] < x.shape[1]
                      and start[2] + (outs[1] - 1) * strides[1] < x.shape[2])
            yield i, j, slice_value(ctx, x, start, size, [1, strides[0], strides[1], 1],
                                    mode=None if inside else "FILL", fill=None if inside else fill,
                                    suffix=f"tap_{i}_{j}")


def _lowest(dtype: np.dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _static_nhwc(node, graph, what: str = "the input"):
    shape = graph.shape(node.inputs[0])
    if shape is None or len(shape) != 4 or any(int(d) < 0 for d in shape[1:]):
        return ConversionError(node.name, node.op, f"{what} needs a static height, width and depth",
                               "give the model static image shapes (the window taps are built per position)")
    return None


# ------------------------------------------------------------------ ExtractImagePatches
def _check_patches(node, graph):
    problems = [_static_nhwc(node, graph)]
    if node.attr("padding", "VALID") not in ("SAME", "VALID"):
        problems.append(ConversionError(node.name, node.op, f"padding {node.attr('padding')} is not supported",
                                        "use SAME or VALID"))
    ks = _attr4(node, "ksizes")
    if ks[0] * ks[1] > 256:
        problems.append(ConversionError(node.name, node.op, f"a {ks[0]}x{ks[1]} patch is too large (one slice "
                                        "per tap; at most 256 taps)", "use smaller patches"))
    return [p for p in problems if p]


@register("ExtractImagePatches", layers=("Slice", "Concatenation"), check=_check_patches,
          restrictions="static height/width/depth; SAME or VALID; one strided slice per patch tap (zero-filled "
                       "outside the image), concatenated in TensorFlow's (row, column, depth) order; any dtype")
def convert_extract_image_patches(ctx, node, inputs):
    x = inputs[0]
    ks, strides, rates = _attr4(node, "ksizes"), _attr4(node, "strides"), _attr4(node, "rates")
    outs, pads = _window_plan(x.shape[1:3], ks, strides, rates, node.attr("padding", "VALID"))
    taps = [t for _, _, t in _taps(ctx, x, ks, strides, rates, outs, pads, 0)]
    return concat(ctx, taps, 3)


# ------------------------------------------------------------------ max pooling by taps
def max_pool_taps(ctx, node, x: Value) -> Value:
    """MaxPool of an NHWC tensor as an elementwise MAX over its window taps (padding is the dtype's minimum,
    which never beats a real element: every TensorFlow window holds at least one)."""
    ks, strides = _attr4(node, "ksize"), _attr4(node, "strides")
    outs, pads = _window_plan(x.shape[1:3], ks, strides, [1, 1], node.attr("padding", "VALID"))
    out = None
    for i, j, tap in _taps(ctx, x, ks, strides, [1, 1], outs, pads, _lowest(np.dtype(x.dtype))):
        out = tap if out is None else elementwise(ctx, out, tap, "MAX", f"max_{i}_{j}")
    return out


def check_int_max_pool(node, graph):
    """The support check of an integer MaxPool (built from taps): NHWC, 2-D, static spatial shape."""
    problems = []
    if node.op != "MaxPool" or node.attr("data_format", "NHWC") != "NHWC":
        problems.append(ConversionError(node.name, node.op, f"integer {node.op} in {node.attr('data_format')}",
                                        "integer max pooling is supported for 2-D NHWC MaxPool; cast to "
                                        "float32 in the model otherwise"))
    if node.attr("padding", "VALID") not in ("SAME", "VALID"):
        problems.append(ConversionError(node.name, node.op, "integer max pooling with explicit padding",
                                        "use SAME or VALID padding, or cast to float32"))
    bad = _static_nhwc(node, graph)
    if bad:
        problems.append(bad)
    return problems


# ------------------------------------------------------------------ MaxPoolWithArgmax
def _check_argmax_pool(node, graph):
    problems = [_static_nhwc(node, graph)]
    if node.attr("padding", "VALID") not in ("SAME", "VALID"):
        problems.append(ConversionError(node.name, node.op, f"padding {node.attr('padding')} is not supported",
                                        "use SAME or VALID"))
    dtype = node.attr("T", "float32")
    if dtype not in ("float32", "float16", "int32"):
        problems.append(ConversionError(node.name, node.op, f"T={dtype} is not supported",
                                        "use float32, float16 or int32 images"))
    shape = graph.shape(node.inputs[0])
    if node.attr("include_batch_in_index", False) and (shape is None or int(shape[0]) < 0):
        problems.append(ConversionError(node.name, node.op, "include_batch_in_index with a dynamic batch",
                                        "give the model a static batch size"))
    if shape is not None and all(int(d) >= 0 for d in shape) and int(np.prod(shape)) >= 2**31:
        problems.append(ConversionError(node.name, node.op, "indices beyond int32",
                                        "TensorRT computes indices in int32; use a smaller input"))
    return [p for p in problems if p]


@register("MaxPoolWithArgmax", layers=("Slice", "ElementWise", "Select"), check=_check_argmax_pool,
          restrictions="NHWC with a static height/width/depth; SAME or VALID; the maximum and its flat index "
                       "((b*H + y)*W + x)*C + c (b only with include_batch_in_index), the first maximum in "
                       "row-major window order on ties as TensorFlow's CPU kernel; int64 indices are int32")
def convert_max_pool_with_argmax(ctx, node, inputs):
    """A running (value, index) over the taps: a tap replaces the current pick when it is strictly greater or
    when it is the window's first in-image element (padding never wins, as TensorFlow never visits it)."""
    x = inputs[0]
    n, h, w, c = x.shape
    ks, strides = _attr4(node, "ksize"), _attr4(node, "strides")
    outs, pads = _window_plan((h, w), ks, strides, [1, 1], node.attr("padding", "VALID"))
    oy = np.arange(outs[0]) * strides[0] - pads[0]
    ox = np.arange(outs[1]) * strides[1] - pads[1]
    with_batch = bool(node.attr("include_batch_in_index", False))
    seen = np.zeros((outs[0], outs[1]), bool)
    value = index = None
    for i, j, tap in _taps(ctx, x, ks, strides, [1, 1], outs, pads, _lowest(np.dtype(x.dtype))):
        y, xx = oy + i, ox + j
        valid = ((y >= 0) & (y < h))[:, None] & ((xx >= 0) & (xx < w))[None, :]
        flat = ((y[:, None] * w + xx[None, :])[:, :, None] * c + np.arange(c)[None, None, :]).astype(np.int32)
        tap_index = Value(const=flat[None])  # [1, oh, ow, C]
        if with_batch:
            tap_index = Value(const=(flat[None] + (np.arange(n) * (h * w * c))[:, None, None, None])
                              .astype(np.int32))
        if value is None:
            value, index = tap, tap_index
        else:
            first = valid & ~seen
            later = valid & seen
            greater = elementwise(ctx, tap, value, "GREATER", f"greater_{i}_{j}")
            take = greater if later.all() else elementwise(
                ctx, greater, Value(const=later[None, :, :, None]), "AND", f"in_image_{i}_{j}")
            if first.any():
                take = elementwise(ctx, take, Value(const=first[None, :, :, None]), "OR", f"first_{i}_{j}")
            value = select(ctx, take, tap, value, f"value_{i}_{j}")
            index = select(ctx, take, tap_index, index, f"index_{i}_{j}")
        seen |= valid
    if index.is_const:  # a 1x1 window: the index does not depend on the data, but is still an output tensor
        index = Value(tensor=ctx.constant(np.broadcast_to(index.const, (n, outs[0], outs[1], c)).copy(), "index"))
    return [value, index]
