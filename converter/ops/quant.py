"""Simulated quantization (fake quant, quantize-and-dequantize) in float32, exactly as TensorFlow computes it.

TensorFlow's kernels (``fake_quant_ops_functor.h``, ``quantize_and_dequantize_op.h``)
derive a few float32 scalars from the range (nudged min/max, scale, inverse
scale, zero point) and then run a clamp / scale / round / rescale chain.  The
scalars are computed here in numpy float32 with the same operation order; the
chain becomes one TensorRT elementwise or unary layer per step, in TF's order.
"""

from __future__ import annotations

import numpy as np

from ..context import Value
from ..errors import ConversionError
from .helpers import (const_int_list, elementwise, float_only, register, static_inputs, unary)

F32 = np.float32


def _std_round(x: np.ndarray) -> np.ndarray:
    """C's round(): half away from zero."""
    return (np.sign(x) * np.floor(np.abs(x) + F32(0.5))).astype(F32)


def _nudge(mn, mx, quant_min: int, quant_max: int):
    """TF's Nudge() in float32, elementwise over per-channel arrays."""
    mn, mx = np.asarray(mn, F32), np.asarray(mx, F32)
    qmin, qmax = F32(quant_min), F32(quant_max)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = ((mx - mn) / (qmax - qmin)).astype(F32)
        inv_scale = ((qmax - qmin) / (mx - mn)).astype(F32)
        zero_point_from_min = (qmin - (mn / scale).astype(F32)).astype(F32)
    zp = np.where(zero_point_from_min < qmin, qmin,
                  np.where(zero_point_from_min > qmax, qmax, _std_round(zero_point_from_min))).astype(F32)
    zp = np.nan_to_num(zp, nan=0.0, posinf=0.0, neginf=0.0).astype(np.uint16).astype(F32)  # NaN: min == max
    nudged_min = ((qmin - zp) * scale).astype(F32)
    nudged_max = ((qmax - zp) * scale).astype(F32)
    return nudged_min, nudged_max, scale, inv_scale


def _c(array) -> Value:
    return Value(const=np.asarray(array, F32))


def _fake_quant(ctx, x: Value, mn, mx, num_bits: int, narrow: bool, divide: bool) -> Value:
    """``divide``: FakeQuantWithMinMaxVars divides by the scale where the others multiply by its inverse."""
    quant_min, quant_max = (1 if narrow else 0), (1 << num_bits) - 1
    nudged_min, nudged_max, scale, inv_scale = _nudge(mn, mx, quant_min, quant_max)
    zero = (np.asarray(mn, F32) == 0) & (np.asarray(mx, F32) == 0)
    if zero.any():
        # TF outputs zeros where min == max == 0
        nudged_min, nudged_max, scale, inv_scale = (np.where(zero, F32(0), a).astype(F32)
                                                    for a in (nudged_min, nudged_max, scale, inv_scale))
    quant_zero = np.floor((-nudged_min * inv_scale).astype(F32) + F32(0.5)).astype(F32)
    clamped = elementwise(ctx, elementwise(ctx, x, _c(nudged_max), "MIN", "min"), _c(nudged_min), "MAX", "max")
    shifted = elementwise(ctx, clamped, _c(nudged_min), "SUB", "shift")
    scaled = elementwise(ctx, shifted, _c(scale), "DIV", "scale") if divide else \
        elementwise(ctx, shifted, _c(inv_scale), "PROD", "scale")
    centered = elementwise(ctx, elementwise(ctx, scaled, _c(quant_zero), "SUB", "zero_point"), _c(0.5), "SUM", "half")
    return elementwise(ctx, unary(ctx, centered, "FLOOR", "floor"), _c(scale), "PROD")


def _check_bits(node, graph):
    bits = node.attr("num_bits", 8)
    if not 2 <= bits <= 16:
        return ConversionError(node.name, node.op, f"num_bits={bits} (TensorFlow allows 2..16)")
    return None


_FQ_LAYERS = ("ElementWise", "Unary")


@register("FakeQuantWithMinMaxArgs", layers=_FQ_LAYERS, check=[_check_bits],
          restrictions="float32; TensorFlow's nudged clamp/scale/floor formula, one layer per step")
def convert_fake_quant_args(ctx, node, inputs):
    return _fake_quant(ctx, inputs[0], node.attr("min", -6.0), node.attr("max", 6.0), node.attr("num_bits", 8),
                       node.attr("narrow_range", False), divide=False)


@register("FakeQuantWithMinMaxVars", layers=_FQ_LAYERS, check=[_check_bits, static_inputs(1, 2, what="min/max")],
          restrictions="float32; constant min/max; TensorFlow's nudged clamp/scale/floor formula")
def convert_fake_quant_vars(ctx, node, inputs):
    x, mn, mx = inputs
    mn, mx = (float(np.asarray(ctx.as_const(v, "min/max")).reshape(-1)[0]) for v in (mn, mx))
    if mn == 0.0 and mx == 0.0:
        return Value(const=np.zeros(x.shape, F32))
    return _fake_quant(ctx, x, mn, mx, node.attr("num_bits", 8), node.attr("narrow_range", False), divide=True)


@register("FakeQuantWithMinMaxVarsPerChannel", layers=_FQ_LAYERS,
          check=[_check_bits, static_inputs(1, 2, what="min/max")],
          restrictions="float32; constant per-channel (last axis) min/max")
def convert_fake_quant_per_channel(ctx, node, inputs):
    x, mn, mx = inputs
    mn, mx = (np.asarray(ctx.as_const(v, "min/max"), F32) for v in (mn, mx))
    return _fake_quant(ctx, x, mn, mx, node.attr("num_bits", 8), node.attr("narrow_range", False), divide=False)


# ------------------------------------------------------------------ quantize and dequantize
def _quantization_range(min_range, max_range, signed: bool, num_bits: int, narrow: bool):
    """TF's ComputeQuantizationRange in float32 → (min_range, max_range, scale, inverse_scale)."""
    if signed:
        min_q = -(1 << (num_bits - 1)) + (1 if narrow else 0)
        max_q = (1 << (num_bits - 1)) - 1
    else:
        min_q, max_q = 0, (1 << num_bits) - 1
    min_qf, max_qf = F32(min_q), F32(max_q)
    min_range = np.asarray(min_range, F32)
    max_range = np.asarray(max_range, F32)
    big = np.finfo(F32).max
    with np.errstate(divide="ignore", invalid="ignore"):
        from_min = np.where((min_qf * min_range) > 0, (min_qf / min_range).astype(F32), big).astype(F32)
        from_max = np.where((max_qf * max_range) > 0, (max_qf / max_range).astype(F32), big).astype(F32)
        use_min = from_min < from_max
        scale = np.where(use_min, from_min, from_max).astype(F32)
        inverse = np.where(use_min, (min_range / min_qf).astype(F32), (max_range / max_qf).astype(F32)).astype(F32)
    new_max = np.where(use_min, (max_qf * inverse).astype(F32), max_range).astype(F32)
    new_min = np.where(use_min, min_range, (min_qf * inverse).astype(F32)).astype(F32)
    return new_min, new_max, scale, inverse


def _check_qdq(node, graph):
    problems = []
    range_given = node.attr("range_given", node.op == "QuantizeAndDequantizeV3")
    if range_given:
        bad = static_inputs(1, 2, what="input_min/input_max")(node, graph)
        if bad:
            problems.append(bad)
    if node.op == "QuantizeAndDequantizeV3":
        bad = static_inputs(3, what="num_bits")(node, graph)
        if bad:
            problems.append(bad)
    bad = float_only()(node, graph)
    if bad:
        problems.append(bad)
    return problems


def _quantized_bounds(node, num_bits: int) -> tuple[np.float32, np.float32]:
    signed, narrow = node.attr("signed_input", True), node.attr("narrow_range", False)
    if signed:
        return F32(-(1 << (num_bits - 1)) + (1 if narrow else 0)), F32((1 << (num_bits - 1)) - 1)
    return F32(0), F32((1 << num_bits) - 1)


def _data_range_scale(ctx, x: Value, axis: int | None, min_q, max_q):
    """TF's ComputeQuantizationRange on the data's own min/max, as layers → (scale, inverse_scale) tensors."""
    from .helpers import reduce, select

    axes = [a for a in range(x.rank) if a != axis]
    min_r = reduce(ctx, x, axes, True, "MIN", "data_min")
    max_r = reduce(ctx, x, axes, True, "MAX", "data_max")
    big = _c(np.finfo(F32).max)

    def side(r, q, name):
        positive = elementwise(ctx, elementwise(ctx, r, _c(q), "PROD", f"{name}_sign"), _c(0.0), "GREATER",
                               f"{name}_positive")
        return select(ctx, positive, elementwise(ctx, _c(q), r, "DIV", f"{name}_ratio"), big, f"{name}_scale")

    from_min, from_max = side(min_r, min_q, "min"), side(max_r, max_q, "max")
    use_min = elementwise(ctx, from_min, from_max, "LESS", "use_min")
    scale = select(ctx, use_min, from_min, from_max, "scale")
    inverse = select(ctx, use_min, elementwise(ctx, min_r, _c(min_q), "DIV", "min_inverse"),
                     elementwise(ctx, max_r, _c(max_q), "DIV", "max_inverse"), "inverse_scale")
    return scale, inverse


@register("QuantizeAndDequantizeV2", "QuantizeAndDequantizeV3", "QuantizeAndDequantizeV4",
          layers=("ElementWise", "Unary", "Reduce", "Select"), check=_check_qdq,
          restrictions="float32; per tensor or per axis; range_given: constant input_min/input_max, clamp then "
                       "scale; otherwise the data's min/max (Reduce layers) pick the scale as TensorFlow does; "
                       "HALF_TO_EVEN or HALF_UP rounding; every step in TensorFlow's float32 order")
def convert_quantize_dequantize(ctx, node, inputs):
    x = inputs[0]
    num_bits = const_int_list(ctx, inputs[3], "num_bits")[0] if node.op == "QuantizeAndDequantizeV3" \
        else node.attr("num_bits", 8)
    axis = node.attr("axis", -1)
    axis = None if axis == -1 else axis % x.rank
    if node.attr("range_given", node.op == "QuantizeAndDequantizeV3"):
        mn = np.asarray(ctx.as_const(inputs[1], "input_min"), F32)
        mx = np.asarray(ctx.as_const(inputs[2], "input_max"), F32)
        min_r, max_r, scale, inverse = _quantization_range(mn, mx, node.attr("signed_input", True), num_bits,
                                                           node.attr("narrow_range", False))
        if axis is not None and min_r.ndim == 1:
            shape = (-1,) + (1,) * (x.rank - 1 - axis)
            min_r, max_r, scale, inverse = (a.reshape(shape) for a in (min_r, max_r, scale, inverse))
        x = elementwise(ctx, elementwise(ctx, x, _c(max_r), "MIN", "min"), _c(min_r), "MAX", "max")
        scale, inverse = _c(scale), _c(inverse)
    else:
        scale, inverse = _data_range_scale(ctx, x, axis, *_quantized_bounds(node, num_bits))
    scaled = elementwise(ctx, x, scale, "PROD", "scaled")
    if node.attr("round_mode", "HALF_TO_EVEN") == "HALF_UP":
        rounded = unary(ctx, elementwise(ctx, scaled, _c(0.5), "SUM", "half"), "FLOOR", "round")
    else:
        rounded = unary(ctx, scaled, "ROUND", "round")
    return elementwise(ctx, rounded, inverse, "PROD")
