"""More elementwise math: IsFinite, Expm1, Log1p, Xlogy, Xdivy, Xlog1py, Atan2, MulNoNan, ApproximateEqual,
Bucketize, Cross; the small reductions L2Loss and EuclideanNorm; NthElement; LinSpace.

TensorRT has none of these as a layer; each is a short formula chosen so that fp32 keeps the accuracy of
TensorFlow's kernels (no exp(x) - 1 or log(1 + x) cancellation, signed zeros and infinities as in C's atan2).
"""

from __future__ import annotations

import math

import numpy as np

from ..context import Value
from .. import layers
from ..errors import ConversionError
from .helpers import (cast, const_int_list, const_scalar, elementwise, float_only, reduce, register, reshape,
                      scalar_like, select, slice_value, static_inputs, tensor_of, unary, value_layout)


def _f32(ctx, x: Value):
    if x.dtype == np.float16:
        return cast(ctx, x, np.float32, "to_float"), True
    return x, False


def _back(ctx, out: Value, half: bool) -> Value:
    return cast(ctx, out, np.float16, None) if half else out


@register("IsFinite", layers=("Unary", "ElementWise"), folds=True, check=float_only(),
          restrictions="not (isinf(x) or isnan(x))")
def convert_is_finite(ctx, node, inputs):
    x = inputs[0]
    if x.is_const:
        return Value(const=np.isfinite(x.const))
    bad = elementwise(ctx, unary(ctx, x, "ISINF", "isinf"), unary(ctx, x, "ISNAN", "isnan"), "OR", "inf_or_nan")
    return unary(ctx, bad, "NOT")


def _log1p_any(ctx, u: Value, suffix) -> Value:
    """log(1 + u) for any u: Goldberg's log(w)·u/(w - 1) with w = fl(1 + u) (see ``helpers.log1p``), which stays
    within a few ulps for every u > -1 (for |u| ≥ 1, w - 1 is exact up to one rounding and u/(w - 1) ≈ 1);
    u = inf gives inf, u = -1 gives -inf, u < -1 NaN."""
    one = scalar_like(u, 1)
    w = elementwise(ctx, u, one, "SUM", "w")
    ratio = elementwise(ctx, u, elementwise(ctx, w, one, "SUB", "w_minus_1"), "DIV", "ratio")
    corrected = elementwise(ctx, unary(ctx, w, "LOG", "log_w"), ratio, "PROD", "corrected")
    # w = 1: log1p(u) = u to fp32 precision; u = +inf: inf/inf in the ratio
    exact = elementwise(ctx, elementwise(ctx, w, one, "EQUAL", "w_is_1"),
                        elementwise(ctx, u, scalar_like(u, np.inf), "EQUAL", "u_inf"), "OR", "use_u")
    return select(ctx, exact, u, corrected, suffix)


@register("Log1p", layers=("ElementWise", "Unary", "Select"), check=float_only(),
          restrictions="log(w)·x/(w - 1) with w = 1 + x (Goldberg), x where w = 1; float16 is computed in float32")
def convert_log1p(ctx, node, inputs):
    x, half = _f32(ctx, inputs[0])
    return _back(ctx, _log1p_any(ctx, x, "log1p" if half else None), half)


@register("Expm1", layers=("Unary", "ElementWise", "Select"), check=float_only(),
          restrictions="(u - 1)·x/log(u) with u = exp(x) (Kahan), x where u = 1, u - 1 for x < -1, inf where u = "
                       "inf; "
                       "float16 is computed in float32")
def convert_expm1(ctx, node, inputs):
    x, half = _f32(ctx, inputs[0])
    one = scalar_like(x, 1)
    u = unary(ctx, x, "EXP", "exp")
    um1 = elementwise(ctx, u, one, "SUB", "u_minus_1")
    # log(u) = x + the rounding of u: (u - 1)/log(u) cancels it to first order
    kahan = elementwise(ctx, um1, elementwise(ctx, x, unary(ctx, u, "LOG", "log_u"), "DIV", "x_over_log"), "PROD",
                        "kahan")
    out = select(ctx, elementwise(ctx, u, one, "EQUAL", "u_is_1"), x, kahan, "tiny")
    # x < -1: u - 1 has no cancellation (and u may be subnormal, where log(u) is too coarse for Kahan's
    # correction); u = inf: inf (inf/inf); NaN passes through kahan
    out = select(ctx, elementwise(ctx, x, scalar_like(x, -1), "LESS", "x_below_minus_1"), um1, out, "low")
    out = select(ctx, unary(ctx, u, "ISINF", "u_inf"), u, out, "expm1" if half else None)
    return _back(ctx, out, half)


def _x_op_y(ctx, node, inputs, make):
    """TensorFlow's Xlogy/Xdivy/Xlog1py: x itself where x == 0 (so -0 stays -0), whatever y is (inf and NaN
    included)."""
    x, y = inputs
    half = x.dtype == np.float16
    if half:
        x, y = cast(ctx, x, np.float32, "x_to_float"), cast(ctx, y, np.float32, "y_to_float")
    value = make(x, y)
    out = select(ctx, elementwise(ctx, x, scalar_like(x, 0), "EQUAL", "x_is_0"), x, value, "xy" if half else None)
    return _back(ctx, out, half)


@register("Xlogy", layers=("Unary", "ElementWise", "Select"), check=float_only(),
          restrictions="x·log(y), x (a signed zero) where x = 0; broadcasting; float16 in float32")
def convert_xlogy(ctx, node, inputs):
    return _x_op_y(ctx, node, inputs, lambda x, y: elementwise(ctx, x, unary(ctx, y, "LOG", "log_y"), "PROD", "prod"))


@register("Xdivy", layers=("ElementWise", "Select"), check=float_only(),
          restrictions="x / y, x (a signed zero) where x = 0; broadcasting; float16 in float32")
def convert_xdivy(ctx, node, inputs):
    return _x_op_y(ctx, node, inputs, lambda x, y: elementwise(ctx, x, y, "DIV", "quotient"))


@register("Xlog1py", layers=("ElementWise", "Unary", "Select"), check=float_only(),
          restrictions="x·log1p(y) (log1p as in Log1p), x (a signed zero) where x = 0; float16 in float32")
def convert_xlog1py(ctx, node, inputs):
    return _x_op_y(ctx, node, inputs,
                   lambda x, y: elementwise(ctx, x, _log1p_any(ctx, y, "log1p_y"), "PROD", "prod"))


@register("Atan2", layers=("ElementWise", "Unary", "Select"), check=float_only(),
          restrictions="atan(min(|x|,|y|)/max(|x|,|y|)) put in its octant, with C's signed zeros and infinities "
                       "(atan2(±0, -0) = ±π, atan2(±inf, ±inf) = ±π/4 or ±3π/4); NaN in, NaN out; broadcasting; "
                       "float16 is computed in float32")
def convert_atan2(ctx, node, inputs):
    y, x = inputs
    half = y.dtype == np.float16
    if half:
        y, x = cast(ctx, y, np.float32, "y_to_float"), cast(ctx, x, np.float32, "x_to_float")

    def c(n):
        return scalar_like(y, n)

    def ew(a, b, op, s):
        return elementwise(ctx, a, b, op, s)

    ax, ay = unary(ctx, x, "ABS", "abs_x"), unary(ctx, y, "ABS", "abs_y")
    lo, hi = ew(ax, ay, "MIN", "lo"), ew(ax, ay, "MAX", "hi")
    t = ew(lo, hi, "DIV", "ratio")
    t = select(ctx, ew(hi, c(0), "EQUAL", "both_zero"), c(0), t, "ratio_zero")  # 0/0
    both_inf = ew(unary(ctx, ax, "ISINF", "x_inf"), unary(ctx, ay, "ISINF", "y_inf"), "AND", "both_inf")
    t = select(ctx, both_inf, c(1), t, "ratio_inf")  # inf/inf
    r = unary(ctx, t, "ATAN", "atan")
    r = select(ctx, ew(ay, ax, "GREATER", "steep"), ew(c(math.pi / 2), r, "SUB", "complement"), r, "octant")
    # x < 0, or x = -0 (1/x = -inf): the left half-plane
    left = ew(ew(x, c(0), "LESS", "x_negative"), ew(unary(ctx, x, "RECIP", "recip_x"), c(0), "LESS", "x_neg_zero"),
              "OR", "left")
    r = select(ctx, left, ew(c(math.pi), r, "SUB", "mirrored"), r, "half_plane")
    down = ew(ew(y, c(0), "LESS", "y_negative"), ew(unary(ctx, y, "RECIP", "recip_y"), c(0), "LESS", "y_neg_zero"),
              "OR", "down")
    r = select(ctx, down, unary(ctx, r, "NEG", "negated"), r, "signed")
    nan = ew(unary(ctx, x, "ISNAN", "x_nan"), unary(ctx, y, "ISNAN", "y_nan"), "OR", "any_nan")
    out = select(ctx, nan, ew(x, y, "SUM", "nan"), r, "atan2" if half else None)
    return _back(ctx, out, half)


@register("MulNoNan", layers=("ElementWise", "Select"), check=float_only(), folds=True,
          restrictions="x·y, 0 where y = 0 even if x is inf or NaN; broadcasting")
def convert_mul_no_nan(ctx, node, inputs):
    x, y = inputs
    product = elementwise(ctx, x, y, "PROD", "product")
    return select(ctx, elementwise(ctx, y, scalar_like(y, 0), "EQUAL", "y_is_0"), scalar_like(product, 0), product)


def _check_approximate_equal(node, graph):
    a, b = graph.shape(node.inputs[0]), graph.shape(node.inputs[1])
    if a is not None and b is not None and list(a) != list(b):
        return ConversionError(node.name, node.op, f"x and y shapes {list(a)} and {list(b)} differ (TensorFlow "
                               "does not broadcast ApproximateEqual)")
    return None


@register("ApproximateEqual", layers=("ElementWise", "Unary"), check=[float_only(), _check_approximate_equal],
          folds=True, restrictions="|x - y| < tolerance computed in the input dtype (TensorFlow's CPU kernel is "
                                   "float-only); NaN compares false")
def convert_approximate_equal(ctx, node, inputs):
    x, y = inputs
    tol = np.asarray(node.attr("tolerance", 1e-5)).astype(np.dtype(x.dtype))
    diff = unary(ctx, elementwise(ctx, x, y, "SUB", "diff"), "ABS", "abs_diff")
    return elementwise(ctx, diff, Value(const=tol), "LESS")


def _check_bucketize(node, graph):
    bounds = list(node.attr("boundaries", []) or [])
    if any(b > a for a, b in zip(bounds[1:], bounds[:-1])):
        return ConversionError(node.name, node.op, "boundaries are not sorted (TensorFlow's kernel fails)")
    if node.attr("T", "float32") not in ("float32", "float16", "int32", "int64"):
        return ConversionError(node.name, node.op, f"T={node.attr('T')} is not supported (float32/float16/int32)")
    return None


@register("Bucketize", layers=("Shuffle", "ElementWise", "Unary", "Cast", "Reduce"), check=_check_bucketize,
          folds=True,
          restrictions="the number of boundaries ≤ x (TensorFlow's upper_bound), as x against every boundary "
                       "(size × boundaries elements); integers compare exactly against ceil(boundary); NaN is "
                       "past every boundary, as in TensorFlow")
def convert_bucketize(ctx, node, inputs):
    x = inputs[0]
    bounds = np.asarray(node.attr("boundaries", []) or [], np.float32)
    if x.dtype == np.float16:  # TensorFlow compares the half value with the float boundary
        x = Value(const=x.const.astype(np.float32)) if x.is_const else cast(ctx, x, np.float32, "to_float")
    integer = np.dtype(x.dtype).kind in "iu"
    if integer:
        # x ≥ b ⟺ x ≥ ceil(b) for integer x: compared exactly in int32 (thresholds clipped into its range)
        lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
        thresholds = np.clip(np.ceil(bounds.astype(np.float64)), lo, float(hi) + 1)
        below_all = thresholds <= lo  # every int32 is ≥ such a boundary
        above_all = thresholds > hi  # none is
        bounds_c = np.clip(thresholds, lo, hi).astype(np.int32)
    if x.is_const:
        if integer:
            counts = np.sum((x.const[..., None] >= bounds_c) & ~above_all | below_all, axis=-1)
        else:
            counts = np.sum(~(x.const[..., None] < bounds.astype(x.const.dtype)), axis=-1)
        return Value(const=np.asarray(counts, np.int32))
    if bounds.size == 0 or (integer and not (~above_all & ~below_all).any()):
        # no comparison left: x < x is false everywhere (NaN included), 0 as int32, plus the boundaries below all
        zero = cast(ctx, elementwise(ctx, x, x, "LESS", "false"), np.int32, "zeros" if integer and below_all.any()
                    else None)
        if integer and below_all.any():
            return elementwise(ctx, zero, Value(const=np.asarray(int(below_all.sum()), np.int32)), "SUM")
        return zero
    column = reshape(ctx, x, tuple(x.shape) + (1,), "column")
    if integer:
        keep = ~above_all & ~below_all
        passed = unary(ctx, elementwise(ctx, column, Value(const=bounds_c[keep]), "LESS", "below"), "NOT", "passed")
        fixed = int(below_all.sum())
    else:
        passed = unary(ctx, elementwise(ctx, column, Value(const=bounds.astype(np.dtype(x.dtype))), "LESS",
                                        "below"), "NOT", "passed")
        fixed = 0
    count = reduce(ctx, cast(ctx, passed, np.int32, "as_int"), [x.rank], False, "SUM",
                   "count" if fixed else None)
    if fixed:
        return elementwise(ctx, count, Value(const=np.asarray(fixed, np.int32)), "SUM")
    return count


@register("L2Loss", layers=("ElementWise", "Reduce"), check=float_only(), folds=True,
          restrictions="Σ(x²)/2 over every element, a scalar; float16 is summed in float32")
def convert_l2_loss(ctx, node, inputs):
    x = inputs[0]
    half = x.dtype == np.float16
    if half:
        x = cast(ctx, x, np.float32, "to_float")
    if x.rank == 0:
        total = elementwise(ctx, x, x, "PROD", "square")
    else:
        total = reduce(ctx, elementwise(ctx, x, x, "PROD", "square"), list(range(x.rank)), False, "SUM", "sum")
    out = elementwise(ctx, total, scalar_like(total, 0.5), "PROD", "half" if half else None)
    return cast(ctx, out, np.float16, None) if half else out


@register("EuclideanNorm", layers=("ElementWise", "Reduce", "Unary"),
          check=[float_only(), static_inputs(1, what="the axes")], folds=True,
          restrictions="√(Σ x²) over constant axes, keep_dims as TensorFlow; float16 is summed in float32")
def convert_euclidean_norm(ctx, node, inputs):
    x, axes = inputs
    axes = const_int_list(ctx, axes, "the axes")
    half = x.dtype == np.float16
    if half:
        x = cast(ctx, x, np.float32, "to_float")
    total = reduce(ctx, elementwise(ctx, x, x, "PROD", "square"), axes, node.attr("keep_dims", False), "SUM", "sum")
    out = unary(ctx, total, "SQRT", "sqrt" if half else None)
    return cast(ctx, out, np.float16, None) if half else out


def _check_linspace(node, graph):
    num = graph.const(node.inputs[2])
    if num is not None and int(np.asarray(num).reshape(-1)[0]) < 1:
        return ConversionError(node.name, node.op, "num must be at least 1 (TensorFlow's kernel fails)")
    return None


@register("LinSpace", layers=("ElementWise", "Select"), check=[float_only(), static_inputs(2, what="num"),
                                                             _check_linspace], folds=True,
          restrictions="constant num; TensorFlow's formula start + i·((stop - start)/(num - 1)) in the input dtype, "
                       "the last value stop itself; constant start/stop fold")
def convert_linspace(ctx, node, inputs):
    start, stop, num = inputs
    num = int(const_scalar(ctx, num, "num"))
    dtype = np.dtype(start.dtype)
    if num == 1:
        return reshape(ctx, start, (1,)) if not start.is_const else Value(const=start.const.reshape(1))
    iota = Value(const=np.arange(num, dtype=dtype))
    last = Value(const=np.arange(num) == num - 1)
    if start.is_const and stop.is_const:
        with np.errstate(all="ignore"):
            step = (stop.const - start.const) / dtype.type(num - 1)
            values = (start.const + step * iota.const).astype(dtype)
        return Value(const=np.where(last.const, stop.const, values).astype(dtype))
    step = elementwise(ctx, elementwise(ctx, stop, start, "SUB", "span"), Value(const=np.asarray(num - 1, dtype)),
                       "DIV", "step")
    values = elementwise(ctx, start, elementwise(ctx, step, iota, "PROD", "offsets"), "SUM", "values")
    return select(ctx, last, stop, values)


def _check_cross(node, graph):
    for ref in node.inputs[:2]:
        shape = graph.shape(ref)
        if shape is not None and len(shape) and int(shape[-1]) != 3:
            return ConversionError(node.name, node.op, f"the last dimension is {shape[-1]}, not 3")
    return None


@register("Cross", layers=("Gather", "ElementWise"), check=_check_cross, folds=True,
          restrictions="a × b over the last axis (size 3) as TensorFlow computes it: a[(1, 2, 0)]·b[(2, 0, 1)] - "
                       "a[(2, 0, 1)]·b[(1, 2, 0)], the rotations gathered; same shapes")
def convert_cross(ctx, node, inputs):
    a, b = inputs
    if a.is_const and b.is_const:
        return Value(const=np.cross(a.const, b.const).astype(a.const.dtype))

    def rotated(v, order, suffix):
        if v.is_const:
            return Value(const=np.take(v.const, order, axis=-1))
        layout = v.layout
        idx = ctx.constant(np.asarray(order, np.int32), "order")
        layer = ctx.add(layers.gather, [ctx.tensor(v, layout), idx],
                        layers.gather.Params(axis=layout.index(v.rank - 1)), suffix=suffix)
        return ctx.out(layer.get_output(0), layout)

    first = elementwise(ctx, rotated(a, (1, 2, 0), "a_120"), rotated(b, (2, 0, 1), "b_201"), "PROD", "first")
    second = elementwise(ctx, rotated(a, (2, 0, 1), "a_201"), rotated(b, (1, 2, 0), "b_120"), "PROD", "second")
    return elementwise(ctx, first, second, "SUB")


def _check_nth(node, graph):
    n, shape = graph.const(node.inputs[1]), graph.shape(node.inputs[0])
    if n is None or shape is None or not len(shape) or int(shape[-1]) < 0:
        return None  # a computed n is reported by static_inputs
    n = int(np.asarray(n).reshape(-1)[0])
    if not 0 <= n < int(shape[-1]):
        return ConversionError(node.name, node.op, f"n={n} is outside [0, {int(shape[-1])}) (TensorFlow fails)")
    if n >= 3840:
        return ConversionError(node.name, node.op, f"n={n} ≥ 3840 (TensorRT's TopK limit)")
    return None


@register("NthElement", layers=("TopK", "Slice", "Shuffle"), check=[static_inputs(1, what="n"), _check_nth],
          restrictions="constant n < 3840, static last axis; the (n+1)-th smallest (largest with reverse) by a "
                       "TopK of n + 1 values, then its last; NaN ordering is undefined in TensorFlow and here")
def convert_nth_element(ctx, node, inputs):
    x, n = inputs
    n = const_int_list(ctx, n, "n")[0]
    if x.is_const:
        sorted_x = np.sort(x.const, axis=-1)
        return Value(const=sorted_x[..., -1 - n] if node.attr("reverse", False) else sorted_x[..., n])
    rank = x.rank
    src = x if rank > 1 else reshape(ctx, x, (1, x.shape[0]), "rows")  # TopK needs two dimensions
    layout = value_layout(src)
    op = "MAX" if node.attr("reverse", False) else "MIN"
    layer = ctx.add(layers.topk, [tensor_of(ctx, src)],
                    layers.topk.Params(op, n + 1, 1 << layout.index(src.rank - 1)), suffix="topk")
    values = ctx.out(layer.get_output(0), layout)
    start = [0] * src.rank
    start[-1] = n
    size = list(values.shape)
    size[-1] = 1
    last = slice_value(ctx, values, start, size, suffix="nth")
    return reshape(ctx, last, tuple(x.shape[:-1]))
