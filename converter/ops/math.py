"""Elementwise arithmetic, comparisons, unary math, selection, reductions, casts and scans."""

from __future__ import annotations

import numpy as np

from .. import layers
from ..context import Value
from .helpers import (NUMPY_UNARY, activation, cast, const_int_list, elementwise, float_only, reduce, register,
                      reshape, scalar_constant, scalar_like, select, squeeze, static_inputs, tensor_of,
                      unary, value_layout)

# ------------------------------------------------------------------ binary elementwise
_BINARY = {
    "Add": "SUM", "AddV2": "SUM", "Sub": "SUB", "Mul": "PROD", "RealDiv": "DIV", "TruncateDiv": "DIV",
    "Maximum": "MAX", "Minimum": "MIN", "Pow": "POW", "FloorDiv": "FLOOR_DIV",
    "LogicalAnd": "AND", "LogicalOr": "OR",
    "Equal": "EQUAL", "Greater": "GREATER", "Less": "LESS",
}


def _binary_converter(trt_op: str):
    def convert(ctx, node, inputs):
        return elementwise(ctx, inputs[0], inputs[1], trt_op)

    convert.__name__ = f"convert_{trt_op.lower()}"
    return convert


for _tf, _trt in _BINARY.items():
    register(_tf, layers=("ElementWise",), folds=True,
             restrictions="broadcasting as in TensorFlow" + ("; integers divide truncating" if _tf == "TruncateDiv"
                                                             else ""))(_binary_converter(_trt))


@register("Div", layers=("ElementWise",), folds=True,
          restrictions="integer division truncates toward zero, as TensorFlow's Div kernel does")
def convert_div(ctx, node, inputs):
    return elementwise(ctx, inputs[0], inputs[1], "DIV")


@register("FloorMod", layers=("ElementWise",) * 3, folds=True, restrictions="computed as x - floor(x / y) * y")
def convert_floor_mod(ctx, node, inputs):
    x, y = inputs
    quotient = elementwise(ctx, x, y, "FLOOR_DIV", "floordiv")
    return elementwise(ctx, x, elementwise(ctx, quotient, y, "PROD", "times"), "SUB")


@register("DivNoNan", layers=("ElementWise", "Select"), folds=True, restrictions="0 where the divisor is 0")
def convert_div_no_nan(ctx, node, inputs):
    x, y = inputs
    zero = scalar_like(y, 0)
    is_zero = elementwise(ctx, y, zero, "EQUAL", "is_zero")
    quotient = elementwise(ctx, x, y, "DIV", "div")
    return select(ctx, is_zero, scalar_like(quotient, 0), quotient)


@register("SquaredDifference", layers=("ElementWise", "ElementWise"), folds=True)
def convert_squared_difference(ctx, node, inputs):
    diff = elementwise(ctx, inputs[0], inputs[1], "SUB", "diff")
    return elementwise(ctx, diff, diff, "PROD")


@register("Square", layers=("ElementWise",), folds=True)
def convert_square(ctx, node, inputs):
    return elementwise(ctx, inputs[0], inputs[0], "PROD")


@register("NotEqual", layers=("ElementWise", "Unary"), folds=True)
def convert_not_equal(ctx, node, inputs):
    return unary(ctx, elementwise(ctx, inputs[0], inputs[1], "EQUAL", "equal"), "NOT")


@register("GreaterEqual", layers=("ElementWise", "Unary"), folds=True)
def convert_greater_equal(ctx, node, inputs):
    return unary(ctx, elementwise(ctx, inputs[0], inputs[1], "LESS", "less"), "NOT")


@register("LessEqual", layers=("ElementWise", "Unary"), folds=True)
def convert_less_equal(ctx, node, inputs):
    return unary(ctx, elementwise(ctx, inputs[0], inputs[1], "GREATER", "greater"), "NOT")


@register("AddN", layers=("ElementWise",), folds=True, restrictions="a chain of additions")
def convert_add_n(ctx, node, inputs):
    acc = inputs[0]
    for i, other in enumerate(inputs[1:]):
        acc = elementwise(ctx, acc, other, "SUM", None if i == len(inputs) - 2 else f"sum_{i}")
    return acc


# ------------------------------------------------------------------ unary
_UNARY = {
    "Abs": "ABS", "Neg": "NEG", "Exp": "EXP", "Log": "LOG", "Sqrt": "SQRT", "Reciprocal": "RECIP",
    "Inv": "RECIP", "Erf": "ERF", "Sin": "SIN", "Cos": "COS", "Tan": "TAN", "Sinh": "SINH", "Cosh": "COSH",
    "Asin": "ASIN", "Acos": "ACOS", "Atan": "ATAN", "Asinh": "ASINH", "Acosh": "ACOSH", "Atanh": "ATANH",
    "Ceil": "CEIL", "Floor": "FLOOR", "Round": "ROUND", "Rint": "ROUND", "Sign": "SIGN", "LogicalNot": "NOT",
    "IsInf": "ISINF", "IsNan": "ISNAN",
}
def _unary_converter(trt_op: str):
    def convert(ctx, node, inputs):
        return unary(ctx, inputs[0], trt_op)

    convert.__name__ = f"convert_{trt_op.lower()}"
    return convert


for _tf, _trt in _UNARY.items():
    _note = {"Round": "float only (TensorFlow's integer Round kernel returns zeros); rounds half to even",
             "Rint": "rounds half to even",
             "Reciprocal": "float only", "Inv": "float only"}.get(_tf, "")
    register(_tf, layers=("Unary",), folds=_trt in NUMPY_UNARY, restrictions=_note,
             check=float_only() if _tf in ("Reciprocal", "Inv", "Round") else None)(_unary_converter(_trt))


@register("Rsqrt", layers=("Unary", "Unary"), folds=True, restrictions="computed as 1 / sqrt(x)")
def convert_rsqrt(ctx, node, inputs):
    return unary(ctx, unary(ctx, inputs[0], "SQRT", "sqrt"), "RECIP")


@register("Erfc", layers=("Unary", "ElementWise"), restrictions="computed as 1 - erf(x)")
def convert_erfc(ctx, node, inputs):
    erf = unary(ctx, inputs[0], "ERF", "erf")
    return elementwise(ctx, scalar_like(inputs[0], 1), erf, "SUB")


@register("ClipByValue", layers=("Activation",), folds=True,
          restrictions="a CLIP activation for float scalar bounds, else Max + Min elementwise layers")
def convert_clip(ctx, node, inputs):
    x, lo, hi = inputs
    scalar_bounds = lo.is_const and hi.is_const and lo.const.size == 1 and hi.const.size == 1
    if scalar_bounds and not x.is_const and x.dtype == np.float32 and float(lo.const) <= float(hi.const):
        return activation(ctx, x, "CLIP", float(lo.const), float(hi.const))
    # TensorFlow clamps with min(x, hi) first, then max(…, lo)
    return elementwise(ctx, elementwise(ctx, x, hi, "MIN", "min"), lo, "MAX")


# ------------------------------------------------------------------ selection
@register("Select", layers=("Select",), folds=True,
          restrictions="a vector condition selects rows of higher-rank operands, as in TensorFlow")
def convert_select(ctx, node, inputs):
    cond, a, b = inputs
    rank = max(a.rank, b.rank)
    if cond.rank == 1 and rank > 1:
        # Select's vector condition picks along the first axis
        cond = reshape(ctx, cond, (cond.shape[0],) + (1,) * (rank - 1), "cond_rows")
    return select(ctx, cond, a, b)


@register("SelectV2", layers=("Select",), folds=True, restrictions="numpy broadcasting of all three operands")
def convert_select_v2(ctx, node, inputs):
    return select(ctx, *inputs)


# ------------------------------------------------------------------ casts
@register("Cast", layers=("Cast",), folds=True,
          restrictions="between float32/float16/int32/int8/uint8/bool; int64 is computed as int32; "
                       "float → int truncates toward zero")
def convert_cast(ctx, node, inputs):
    return cast(ctx, inputs[0], np.dtype(node.attr("DstT")), suffix=None)


# ------------------------------------------------------------------ reductions
_REDUCE = {"Mean": "AVG", "Sum": "SUM", "Max": "MAX", "Min": "MIN", "Prod": "PROD"}


def _reduce_converter(trt_op: str):
    def convert(ctx, node, inputs):
        axes = const_int_list(ctx, inputs[1], "the reduction axes")
        return reduce(ctx, inputs[0], axes, node.attr("keep_dims", False), trt_op)

    convert.__name__ = f"convert_reduce_{trt_op.lower()}"
    return convert


_AXES_STATIC = static_inputs(1, what="the reduction axes")

for _tf, _trt in _REDUCE.items():
    register(_tf, layers=("Reduce",), check=_AXES_STATIC, folds=True,
             restrictions="constant axes" + ("; integer means truncate" if _tf == "Mean" else ""))(
        _reduce_converter(_trt))


@register("All", "Any", layers=("Cast", "Reduce", "Cast"), check=_AXES_STATIC, folds=True,
          restrictions="constant axes; computed as Min/Max over int32")
def convert_all_any(ctx, node, inputs):
    axes = const_int_list(ctx, inputs[1], "the reduction axes")
    as_int = cast(ctx, inputs[0], np.int32, "to_int")
    reduced = reduce(ctx, as_int, axes, node.attr("keep_dims", False), "MIN" if node.op == "All" else "MAX", "reduce")
    return cast(ctx, reduced, np.bool_, None)


def _check_arg(node, graph):
    return static_inputs(1, what="the axis")(node, graph)


@register("ArgMax", "ArgMin", layers=("TopK", "Shuffle"), check=_check_arg, folds=True,
          restrictions="constant axis; TopK with k=1 (ties pick the first index); int64 results are int32")
def convert_arg_max(ctx, node, inputs):
    x, axis = inputs
    axis = const_int_list(ctx, axis, "the axis")[0] % x.rank
    if x.is_const:
        fn = np.argmax if node.op == "ArgMax" else np.argmin
        return Value(const=fn(x.const, axis=axis).astype(np.int32))
    if x.dtype == np.bool_:
        x = cast(ctx, x, np.int32, "to_int")
    layout = x.layout
    op = "MAX" if node.op == "ArgMax" else "MIN"
    layer = ctx.add(layers.topk, [ctx.tensor(x, layout)], layers.topk.Params(op, 1, 1 << layout.index(axis)),
                    suffix="topk")
    indices = ctx.out(layer.get_output(1), layout)
    return squeeze(ctx, indices, [axis])


# ------------------------------------------------------------------ scans
@register("Cumsum", layers=("Cumulative",), check=static_inputs(1, what="the axis"),
          restrictions="constant axis; exclusive and reverse supported")
def convert_cumsum(ctx, node, inputs):
    x, axis = inputs
    axis = const_int_list(ctx, axis, "the axis")[0] % x.rank
    layout = value_layout(x)
    axis_t = scalar_constant(ctx, layout.index(axis), np.int32, "axis")
    params = layers.cumulative.Params("SUM", bool(node.attr("exclusive", False)), bool(node.attr("reverse", False)))
    layer = ctx.add(layers.cumulative, [tensor_of(ctx, x), axis_t], params)
    return ctx.out(layer.get_output(0), layout)

