"""Simulated quantization (fake quant, quantize-and-dequantize): TensorFlow's float32 formula, or int8 Q/DQ.

TensorFlow's kernels (``fake_quant_ops_functor.h``, ``quantize_and_dequantize_op.h``)
derive a few float32 scalars from the range (nudged min/max, scale, inverse
scale, zero point) and then run a clamp / scale / round / rescale chain.  The
scalars are computed here in numpy float32 with the same operation order.

``ctx.quantization == "emulate"`` (the default): the chain becomes one TensorRT
elementwise or unary layer per step, in TF's order — exact.

``ctx.quantization == "int8"``: TF's output is ``k * scale`` with an integer level
``k`` in a window ``[lo, hi]`` (``[-zero_point, qmax - qmin - zero_point]`` for fake
quant, ``[min_q, max_q]`` for quantize-and-dequantize).  TensorRT's int8 Q/DQ is
symmetric (``round_half_even(x / s)`` saturated to [-128, 127], ``q * s``), so:

* a window inside int8: ``DQ(Q(x))`` with TF's scale, plus TF's clamp only where
  saturation does not already give the window's end (narrow range, < 8 bits);
* any other window of at most 256 levels is moved by a whole number of levels ``m``:
  ``Q(clamp(x) - m*s)``, then ``(DQ(q, 1) + m) * s`` — exact levels, TF's one product;
* a constant input (quantization-aware weights, left unfolded by freeze) gets TF's
  exact levels as an int8 constant + DEQUANTIZE;
* kept emulated, with the reason logged: data-dependent ranges (int8 scales are
  build-time constants), more than 256 levels, a zero scale on a non-constant input.

The int8 level differs from TF's where TF's chain rounds a tie half up or the two
float formulas differ in the last bit: measured 2-13 elements per million on uniform
data, each exactly one step (docs/converter.md, "int8 from quantization-aware models").
:func:`fold_constant_quantization` gives "emulate" the network freeze's folding gave.
"""

from __future__ import annotations

import logging

import numpy as np

from .. import layers
from ..context import Value
from ..errors import ConversionError
from .helpers import (const_int_list, elementwise, float_only, register, static_inputs, unary)

F32 = np.float32
log = logging.getLogger(__name__)


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


def _fake_quant_levels(x: Value, mn, mx, num_bits: int, narrow: bool, divide: bool, ctx=None):
    """TensorFlow's chain up to the integer level → (levels k, nudged_min, nudged_max, scale, zero point).

    TF's output is exactly ``k * scale`` (one float32 product).  ``k`` is a Value: layers, or numpy when ``x``
    is constant (every helper folds constant operands in numpy with the same float32 operations).
    """
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
    levels = unary(ctx, centered, "FLOOR", "floor")
    return levels, nudged_min, nudged_max, scale, quant_zero


def _fake_quant(ctx, x: Value, mn, mx, num_bits: int, narrow: bool, divide: bool, axis: int | None = None) -> Value:
    """``divide``: FakeQuantWithMinMaxVars divides by the scale where the others multiply by its inverse."""
    if getattr(ctx, "quantization", "emulate") == "int8":
        q_lo, q_hi, scale, nudged_min, nudged_max = _fake_quant_window(mn, mx, num_bits, narrow)
        if x.is_const:
            levels = _fake_quant_levels(x, mn, mx, num_bits, narrow, divide)[0].const
            # a channel with min == max == 0 is all zeros in TF (level 0): any positive scale gives that
            dead = (np.asarray(mn, F32) == 0) & (np.asarray(mx, F32) == 0)
            scale, q_lo, q_hi = (np.where(dead, F32(fill), a).astype(F32)
                                 for a, fill in ((scale, 1.0), (q_lo, 0.0), (q_hi, 0.0)))
            done = _int8_constant(ctx, levels, scale, q_lo, q_hi, axis)
        else:
            done = _int8_tensor(ctx, x, scale, q_lo, q_hi, nudged_min, nudged_max, axis)
        if done is not None:
            return done
    levels, _, _, scale, _ = _fake_quant_levels(x, mn, mx, num_bits, narrow, divide, ctx)
    return elementwise(ctx, levels, _c(scale), "PROD")


def _fake_quant_window(mn, mx, num_bits: int, narrow: bool):
    """→ (lowest level, highest level, scale, nudged_min, nudged_max), per channel.

    TF's level is ``floor(t - quant_zero + 0.5)`` with ``t`` in ``[0, quant_max - quant_min]``, so it spans
    ``[-quant_zero, quant_max - quant_min - quant_zero]``.
    """
    quant_min, quant_max = (1 if narrow else 0), (1 << num_bits) - 1
    nudged_min, nudged_max, scale, inv_scale = _nudge(mn, mx, quant_min, quant_max)
    with np.errstate(invalid="ignore", over="ignore"):
        quant_zero = np.floor((-nudged_min * inv_scale).astype(F32) + F32(0.5)).astype(F32)
    return -quant_zero, F32(quant_max - quant_min) - quant_zero, scale, nudged_min, nudged_max


# ------------------------------------------------------------------ int8: TensorRT Q/DQ layers
INT8_MIN, INT8_MAX = -128, 127


def _fallback(ctx, reason: str) -> None:
    node = ctx.node
    log.info("%s '%s': %s; emulated in float32 instead of int8 Q/DQ", node.op if node else "?",
             node.name if node else "?", reason)
    return None


def _int8_shift(ctx, q_lo, q_hi, step):
    """The per-channel integer shift ``m`` with ``[q_lo - m, q_hi - m]`` inside int8, or None (a logged reason).

    TensorRT's int8 Q/DQ is symmetric (zero point 0): a window TF places elsewhere (an asymmetric range,
    ``signed_input=False``) is moved by a whole number of steps, which changes no level.
    """
    q_lo, q_hi, step = (np.asarray(a, F32) for a in (q_lo, q_hi, step))
    if not (np.all(np.isfinite(step)) and np.all(step > 0)):
        return _fallback(ctx, "a zero or non-finite scale (min == max)")
    if np.any(q_hi - q_lo > INT8_MAX - INT8_MIN):
        return _fallback(ctx, f"{int(np.max(q_hi - q_lo)) + 1} levels do not fit int8's 256")
    inside = (q_lo >= INT8_MIN) & (q_hi <= INT8_MAX)
    return np.where(inside, F32(0), q_lo - F32(INT8_MIN)).astype(F32)


def _along(array, rank: int, axis: int | None):
    """A per-channel vector shaped to broadcast along logical ``axis`` (scalars stay scalars)."""
    array = np.asarray(array, F32)
    if array.size == 1 or axis is None:
        return array.reshape(()) if array.size == 1 else array
    return array.reshape((-1,) + (1,) * (rank - 1 - axis))


def _qdq_layers(ctx, v: Value, step, shift, axis: int | None) -> Value:
    """QUANTIZE (int8, scale ``step``) then DEQUANTIZE; a non-zero ``shift`` is added back in whole levels."""
    per_axis = np.asarray(step).size > 1
    phys_axis = v.physical_axis(axis) if per_axis else None
    step_c = np.asarray(step, F32).reshape(-1) if per_axis else np.asarray(step, F32).reshape(())
    tensor = v.tensor if not v.is_const else ctx.logical(v)
    layout = v.layout if not v.is_const else None
    scale_t = ctx.constant(step_c, suffix="scale")
    q = ctx.add(layers.quantize, [tensor, scale_t], layers.quantize.Params("INT8", axis=phys_axis), suffix="quantize")
    q = q.get_output(0)
    if not np.any(shift):
        dq = ctx.add(layers.dequantize, [q, scale_t], layers.dequantize.Params("FLOAT", axis=phys_axis))
        return ctx.out(dq.get_output(0), layout)
    # levels back as exact floats, the whole shift added, then TF's single product by the step: exact
    one = ctx.constant(np.asarray(1.0, F32), suffix="unit_scale")
    dq = ctx.add(layers.dequantize, [q, one], layers.dequantize.Params("FLOAT"), suffix="levels")
    levels = ctx.out(dq.get_output(0), layout)
    rank = levels.rank
    levels = elementwise(ctx, levels, _c(_along(shift, rank, axis)), "SUM", "unshift")
    return elementwise(ctx, levels, _c(_along(step, rank, axis)), "PROD")


def _int8_tensor(ctx, x: Value, step, q_lo, q_hi, lo_x, hi_x, axis: int | None) -> Value | None:
    """TF's ``k * step`` (k = the level, clamped to ``[q_lo, q_hi]``) as Q/DQ layers; None: not expressible.

    ``lo_x``/``hi_x``: TF's clamp bounds (``q_lo * step``, ``q_hi * step``), applied only where int8
    saturation does not already give the same level.  The level itself is TensorRT's ``round(v / step)``
    (half to even) where TF rounds its own float chain: see the module docstring for how often they differ.
    """
    shift = _int8_shift(ctx, q_lo, q_hi, step)
    if shift is None:
        return None
    rank = x.rank
    lo, hi = np.asarray(q_lo, F32) - shift, np.asarray(q_hi, F32) - shift
    v = x
    if hi_x is not None and np.any(hi < INT8_MAX):
        v = elementwise(ctx, v, _c(_along(hi_x, rank, axis)), "MIN", "min")
    if lo_x is not None and np.any(lo > INT8_MIN):
        v = elementwise(ctx, v, _c(_along(lo_x, rank, axis)), "MAX", "max")
    if np.any(shift):
        v = elementwise(ctx, v, _c(_along((shift * np.asarray(step, F32)).astype(F32), rank, axis)), "SUB",
                        "level_shift")
    return _qdq_layers(ctx, v, step, shift, axis)


def _int8_constant(ctx, levels: np.ndarray, step, q_lo, q_hi, axis: int | None) -> Value | None:
    """Constant input (weights): TF's exact levels as an int8 constant, then DEQUANTIZE."""
    shift = _int8_shift(ctx, q_lo, q_hi, step)
    if shift is None:
        return None
    q = (np.asarray(levels, F32) - _along(shift, levels.ndim, axis)).astype(np.int8)
    per_axis = np.asarray(step).size > 1
    tensor = ctx.constant(q, suffix="int8_weights")
    step_c = np.asarray(step, F32).reshape(-1) if per_axis else np.asarray(step, F32).reshape(())
    scale_t = ctx.constant(step_c, suffix="scale")
    if not np.any(shift):
        dq = ctx.add(layers.dequantize, [tensor, scale_t],
                     layers.dequantize.Params("FLOAT", axis=axis if per_axis else None))
        return ctx.out(dq.get_output(0))
    one = ctx.constant(np.asarray(1.0, F32), suffix="unit_scale")
    dq = ctx.add(layers.dequantize, [tensor, one], layers.dequantize.Params("FLOAT"), suffix="levels")
    levels_v = elementwise(ctx, ctx.out(dq.get_output(0)), _c(_along(shift, levels.ndim, axis)), "SUM", "unshift")
    return elementwise(ctx, levels_v, _c(_along(step, levels.ndim, axis)), "PROD")


def _check_bits(node, graph):
    bits = node.attr("num_bits", 8)
    if not 2 <= bits <= 16:
        return ConversionError(node.name, node.op, f"num_bits={bits} (TensorFlow allows 2..16)")
    return None


_FQ_LAYERS = ("ElementWise", "Unary", "Quantize", "Dequantize")


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
    return _fake_quant(ctx, x, mn, mx, node.attr("num_bits", 8), node.attr("narrow_range", False), divide=False,
                       axis=x.rank - 1)


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
          layers=("ElementWise", "Unary", "Reduce", "Select", "Quantize", "Dequantize"), check=_check_qdq,
          restrictions="float32; per tensor or per axis; range_given: constant input_min/input_max, clamp then "
                       "scale; otherwise the data's min/max (Reduce layers) pick the scale as TensorFlow does; "
                       "HALF_TO_EVEN or HALF_UP rounding; every step in TensorFlow's float32 order")
def convert_quantize_dequantize(ctx, node, inputs):
    x = inputs[0]
    num_bits = const_int_list(ctx, inputs[3], "num_bits")[0] if node.op == "QuantizeAndDequantizeV3" \
        else node.attr("num_bits", 8)
    axis = node.attr("axis", -1)
    axis = None if axis == -1 else axis % x.rank
    min_q, max_q = _quantized_bounds(node, num_bits)
    int8 = getattr(ctx, "quantization", "emulate") == "int8"
    if node.attr("range_given", node.op == "QuantizeAndDequantizeV3"):
        mn = np.asarray(ctx.as_const(inputs[1], "input_min"), F32)
        mx = np.asarray(ctx.as_const(inputs[2], "input_max"), F32)
        min_r, max_r, scale, inverse = _quantization_range(mn, mx, node.attr("signed_input", True), num_bits,
                                                           node.attr("narrow_range", False))
        if int8 and not x.is_const:
            done = _int8_tensor(ctx, x, inverse, min_q, max_q, min_r, max_r, axis)
            if done is not None:
                return done
        if axis is not None and min_r.ndim == 1:
            shape = (-1,) + (1,) * (x.rank - 1 - axis)
            min_r, max_r, scale, inverse = (a.reshape(shape) for a in (min_r, max_r, scale, inverse))
        x = elementwise(ctx, elementwise(ctx, x, _c(max_r), "MIN", "min"), _c(min_r), "MAX", "max")
        scale, inverse = _c(scale), _c(inverse)
    else:
        if int8 and not x.is_const:
            _fallback(ctx, "the range comes from the data (range_given=False): int8 Q/DQ scales are build-time "
                           "constants")
        scale, inverse = _data_range_scale(ctx, x, axis, min_q, max_q)
    scaled = elementwise(ctx, x, scale, "PROD", "scaled")
    if node.attr("round_mode", "HALF_TO_EVEN") == "HALF_UP":
        rounded = unary(ctx, elementwise(ctx, scaled, _c(0.5), "SUM", "half"), "FLOOR", "round")
    else:
        rounded = unary(ctx, scaled, "ROUND", "round")
    if int8 and rounded.is_const and inverse.is_const:  # constant input (weights): exact int8 levels
        step = np.asarray(inverse.const, F32).reshape(-1)
        done = _int8_constant(ctx, rounded.const, step, min_q, max_q, axis)
        if done is not None:
            return done
    return elementwise(ctx, rounded, inverse, "PROD")


# ------------------------------------------------------------------ quantized constants (weights)
#: the ops freeze leaves unfolded on constant inputs (quantized weights): in "int8" mode they become int8
#: constants + DEQUANTIZE; in "emulate" mode :func:`fold_constant_quantization` folds them as freeze did
QUANT_OPS = ("FakeQuantWithMinMaxArgs", "FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel",
             "QuantizeAndDequantizeV2", "QuantizeAndDequantizeV3", "QuantizeAndDequantizeV4")


def fold_constant_quantization(graph):
    """``graph`` with every quantization op on constants replaced by the Const TensorFlow's folding gave.

    Freeze keeps these ops (:data:`QUANT_OPS`) so the int8 path sees the weights' scales; for "emulate" the
    value is computed here in numpy by the converter's own float32 chain (TensorFlow's formula and order,
    tested bit-equal to TensorFlow) and the graph's fusions re-run, so conv + BatchNorm folds as before and
    the snapshot is the one folding in freeze produced.  Returns ``graph`` itself when there is nothing to
    fold, else a copy (the caller's graph is not changed).
    """
    import copy
    import dataclasses

    from ..context import ConversionContext
    from ..fuse import fuse
    from ..graph import Node
    from ..registry import REGISTRY

    todo = [n for n in graph.nodes if n.op in QUANT_OPS and n.inputs and all(graph.is_const(r) for r in n.inputs)]
    if not todo:
        return graph
    # a copy the fusions may edit: they reassign node inputs/attrs and graph fields, never arrays in place, so
    # the weights are shared rather than copied
    graph = copy.copy(graph)
    for key in [k for k in graph.__dict__ if k.startswith("_tf2trt")]:  # caches of the uncopied graph
        del graph.__dict__[key]
    graph.nodes = [dataclasses.replace(n, inputs=list(n.inputs), attrs=dict(n.attrs)) for n in graph.nodes]
    graph.aliases = dict(getattr(graph, "aliases", {}))
    ctx = ConversionContext(None, graph)
    names = {n.name for n in todo}
    for i, node in enumerate(graph.nodes):
        if node.name not in names:
            continue
        ctx.node = node
        value = REGISTRY[node.op].convert(ctx, node, [Value(const=graph.const(r)) for r in node.inputs])
        arr = np.asarray(value.const, F32)
        graph.nodes[i] = Node(node.name, "Const", [], {"dtype": arr.dtype.name, "value": arr}, [tuple(arr.shape)])
    graph.refresh()
    fuse(graph)
    return graph
