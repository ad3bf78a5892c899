"""Image resizing with TensorFlow's coordinate conventions (align_corners, half_pixel_centers), and the resizes that
are constant linear maps (ResizeArea, ScaleAndTranslate) as two matrix products."""

from __future__ import annotations

import numpy as np

from .. import layers
from ..context import Value, channels_first_perm
from ..errors import ConversionError
from .helpers import cast, const_int_list, register, static_inputs


def _check_resize(node, graph):
    problems = [static_inputs(1, what="the size")(node, graph)]
    if node.attr("align_corners", False) and node.attr("half_pixel_centers", False):
        problems.append(ConversionError(node.name, node.op, "align_corners and half_pixel_centers together",
                                        "TensorFlow rejects this combination too"))
    return [p for p in problems if p]


def _resize(ctx, node, x, size, mode: str):
    """A Resize layer on the channels-first tensor; TF's coordinate mapping and nearest rounding."""
    out_h, out_w = const_int_list(ctx, size, "the size")
    dtype = np.dtype(x.dtype)
    if dtype.kind != "f":
        x = cast(ctx, x, np.float32, "to_float")
    perm = channels_first_perm(4)
    n, h, w, c = x.shape
    align, half = node.attr("align_corners", False), node.attr("half_pixel_centers", False)
    transform = "ALIGN_CORNERS" if align else "HALF_PIXEL" if half else "ASYMMETRIC"
    # TF's nearest: floor(x * scale) legacy, round-half-up with align_corners, floor((x + 0.5) * scale) for
    # half pixels (the rounding mode only matters for NEAREST)
    rounding = "HALF_UP" if mode == "NEAREST" and (align or half) else "FLOOR"
    params = layers.resize.Params(mode, transform, "FORMULA", rounding, shape=(n, c, out_h, out_w))
    layer = ctx.add(layers.resize, [ctx.tensor(x, perm)], params,
                    suffix="resize" if mode == "NEAREST" and dtype.kind != "f" else None)
    out = ctx.out(layer.get_output(0), perm)
    if mode == "NEAREST" and dtype.kind != "f":
        out = cast(ctx, out, dtype, None)
    return out


@register("ResizeBilinear", layers=("Resize",), check=_check_resize,
          restrictions="static size; align_corners / half_pixel_centers / legacy coordinates; integer images are "
                       "cast to float32 (TF's output type)")
def convert_resize_bilinear(ctx, node, inputs):
    return _resize(ctx, node, inputs[0], inputs[1], "LINEAR")


@register("ResizeNearestNeighbor", layers=("Resize",), check=_check_resize,
          restrictions="static size; align_corners / half_pixel_centers / legacy coordinates with TF's rounding")
def convert_resize_nearest(ctx, node, inputs):
    return _resize(ctx, node, inputs[0], inputs[1], "NEAREST")


# ------------------------------------------------------------------ separable linear resizes (constant weights)
def _separable(ctx, x: Value, rows: np.ndarray, cols: np.ndarray) -> Value:
    """``rows @ image @ cols.T`` per batch element and channel: two MatrixMultiply layers with constant
    [out, in] weight matrices on the channels-first image; the result is float32, as TensorFlow's."""
    if np.dtype(x.dtype) != np.float32:
        x = cast(ctx, x, np.float32, "to_float")
    perm = channels_first_perm(4)
    tensor = ctx.tensor(x, perm)
    left = ctx.constant(np.ascontiguousarray(rows.astype(np.float32)[None, None]), "row_weights")
    right = ctx.constant(np.ascontiguousarray(cols.astype(np.float32).T[None, None]), "column_weights")
    params = layers.matrix_multiply.Params("NONE", "NONE")
    mixed = ctx.add(layers.matrix_multiply, [left, tensor], params, suffix="rows").get_output(0)
    layer = ctx.add(layers.matrix_multiply, [mixed, right], params)
    return ctx.out(layer.get_output(0), perm)


def _static_image(node, graph):
    shape = graph.shape(node.inputs[0])
    if shape is None or len(shape) != 4 or any(int(d) < 0 for d in shape[1:3]):
        return ConversionError(node.name, node.op, "the image needs a static height and width",
                               "give the model static image shapes (the resampling weights are constants)")
    return None


_LINEAR_RESIZE_DTYPES = ("float32", "float16", "int32", "int64", "uint8", "int8")


def _check_linear_resize_dtype(node, graph):
    dtype = node.attr("T", "float32")
    if dtype not in _LINEAR_RESIZE_DTYPES:
        return ConversionError(node.name, node.op, f"T={dtype} images are not supported",
                               "cast the image to float32 in the model")
    return None


def area_weights(in_size: int, out_size: int, align_corners: bool) -> tuple[np.ndarray, np.float32]:
    """TensorFlow's ResizeArea as an [out, in] matrix — each output cell's overlap with every input cell (float32
    arithmetic as its kernel; indices past the edge clamp onto the last cell) — and the scale (input cells per
    output cell)."""
    f = np.float32
    scale = f(in_size - 1) / f(out_size - 1) if align_corners and out_size > 1 else f(in_size) / f(out_size)
    weights = np.zeros((out_size, in_size), np.float32)
    for y in range(out_size):
        lo, hi = f(y) * scale, f(y + 1) * scale
        for i in range(int(np.floor(lo)), int(np.ceil(hi))):
            if i < lo:
                part = scale if f(i + 1) > hi else f(i + 1) - lo
            else:
                part = hi - f(i) if f(i + 1) > hi else f(1.0)
            weights[y, min(max(i, 0), in_size - 1)] += part
    return weights, scale


def _check_area(node, graph):
    return [p for p in (static_inputs(1, what="the size")(node, graph), _static_image(node, graph),
                        _check_linear_resize_dtype(node, graph)) if p]


@register("ResizeArea", layers=("MatrixMultiply",), check=_check_area,
          restrictions="static size and image height/width; align_corners either way; TensorFlow's area weights "
                       "(float32, as its kernel computes them) as two constant matrix products, so sums run in "
                       "another order than TensorFlow's (rounding-level differences)")
def convert_resize_area(ctx, node, inputs):
    x, size = inputs
    out_h, out_w = const_int_list(ctx, size, "the size")
    align = bool(node.attr("align_corners", False))
    rows, row_scale = area_weights(x.shape[1], out_h, align)
    cols, col_scale = area_weights(x.shape[2], out_w, align)
    # TF multiplies each sum by 1 / (height_scale * width_scale), computed in float32; fold it into the rows
    inverse = np.float32(1.0 / (row_scale * col_scale))
    return _separable(ctx, x, rows * inverse, cols)


def _lanczos(radius: float):
    def kernel(x):
        x = np.abs(x).astype(np.float32)
        pi = np.float32(3.14159265359)
        with np.errstate(all="ignore"):
            value = (np.float32(radius) * np.sin(pi * x) * np.sin(pi * x / np.float32(radius))
                     / (pi * pi * x * x)).astype(np.float32)
        return np.where(x > radius, np.float32(0), np.where(x <= np.float32(1e-3), np.float32(1), value))
    return kernel, float(radius)


def _gaussian(x):
    x = np.abs(x).astype(np.float32)
    sigma = np.float32(1.5) / np.float32(3.0)
    value = np.exp(-x.astype(np.float64) * x / (2.0 * np.float64(sigma) * np.float64(sigma))).astype(np.float32)
    return np.where(x >= np.float32(1.5), np.float32(0), value)


def _box(x):
    x = np.abs(x).astype(np.float32)
    return np.where(x < np.float32(0.5), np.float32(1), np.where(x == np.float32(0.5), np.float32(0.5),
                                                                 np.float32(0)))


def _triangle(x):
    x = np.abs(x).astype(np.float32)
    return np.where(x < np.float32(1), np.float32(1) - x, np.float32(0))


def _cubic(near, far):
    def kernel(x):
        x = np.abs(x).astype(np.float32)
        return np.where(x >= np.float32(2), np.float32(0), np.where(x >= np.float32(1), far(x), near(x)))
    return kernel


_f32 = np.float32
#: TensorFlow's sampling kernels (sampling_kernels.h): name → (function of |x| in float32, radius)
SAMPLING_KERNELS = {
    "lanczos1": _lanczos(1.0), "lanczos3": _lanczos(3.0), "lanczos5": _lanczos(5.0),
    "gaussian": (_gaussian, 1.5), "box": (_box, 1.0), "triangle": (_triangle, 1.0),
    "keyscubic": (_cubic(lambda x: ((_f32(1.5) * x - _f32(2.5)) * x) * x + _f32(1),
                         lambda x: ((_f32(-0.5) * x + _f32(2.5)) * x - _f32(4)) * x + _f32(2)), 2.0),
    "mitchellcubic": (_cubic(lambda x: ((_f32(7.0 / 6.0) * x - _f32(2)) * x) * x + _f32(8.0 / 9.0),
                             lambda x: ((_f32(-7.0 / 18.0) * x + _f32(2)) * x - _f32(10.0 / 3.0)) * x
                             + _f32(16.0 / 9.0)), 2.0),
}


def span_weights(kernel_type: str, out_size: int, in_size: int, scale: float, translate: float,
                 antialias: bool) -> np.ndarray:
    """TensorFlow's ScaleAndTranslate spans (ComputeSpansCore) as an [out, in] matrix, in float32: samples
    outside the image and spans whose weights sum to ~0 stay zero; others are normalised to sum to one."""
    kernel, radius = SAMPLING_KERNELS[kernel_type]
    inv_scale = _f32(1.0 / _f32(scale))
    inv_translate = _f32(-inv_scale * _f32(translate))
    kernel_scale = max(inv_scale, _f32(1)) if antialias else _f32(1)
    one_over = _f32(1) / kernel_scale
    reach = _f32(_f32(radius) * kernel_scale)
    weights = np.zeros((out_size, in_size), np.float32)
    for x in range(out_size):
        sample = _f32(_f32(x + 0.5) * inv_scale + inv_translate)
        if sample < 0 or sample > in_size:
            continue
        start = min(max(int(np.ceil(_f32(sample - reach - _f32(0.5)))), 0), in_size - 1)
        end = min(max(int(np.floor(_f32(sample + reach - _f32(0.5)))), 0), in_size - 1) + 1
        pos = (np.arange(start, end).astype(np.float32) + _f32(0.5) - sample).astype(np.float32)
        w = kernel(np.abs(pos * one_over)).astype(np.float32)
        total = _f32(0)
        for v in w:
            total = _f32(total + v)
        if abs(total) >= 1000.0 * np.finfo(np.float32).tiny:
            weights[x, start:end] = w * (_f32(1) / total)
    return weights


def _check_scale_and_translate(node, graph):
    problems = [static_inputs(1, 2, 3, what="the size, scale and translation")(node, graph),
                _static_image(node, graph), _check_linear_resize_dtype(node, graph)]
    if node.attr("kernel_type", "lanczos3") not in SAMPLING_KERNELS:
        problems.append(ConversionError(node.name, node.op, f"kernel_type {node.attr('kernel_type')} is unknown",
                                        f"use one of {sorted(SAMPLING_KERNELS)}"))
    return [p for p in problems if p]


@register("ScaleAndTranslate", layers=("MatrixMultiply",), check=_check_scale_and_translate,
          restrictions="static size, scale, translation and image height/width (tf.image.resize with "
                       "antialias=True); every kernel_type, antialias either way; TensorFlow's span weights "
                       "(float32) as two constant matrix products")
def convert_scale_and_translate(ctx, node, inputs):
    x, size, scale, translation = inputs
    out_h, out_w = const_int_list(ctx, size, "the size")
    sy, sx = (float(v) for v in np.asarray(ctx.as_const(scale, "the scale"), np.float32).reshape(-1))
    ty, tx = (float(v) for v in np.asarray(ctx.as_const(translation, "the translation"), np.float32).reshape(-1))
    kernel_type, antialias = node.attr("kernel_type", "lanczos3"), bool(node.attr("antialias", True))
    rows = span_weights(kernel_type, out_h, x.shape[1], sy, ty, antialias)
    cols = span_weights(kernel_type, out_w, x.shape[2], sx, tx, antialias)
    return _separable(ctx, x, rows, cols)
