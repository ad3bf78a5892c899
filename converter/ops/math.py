"""Elementwise arithmetic, comparisons, unary math and reductions."""

from __future__ import annotations

import numpy as np

from ..context import Value
from ..registry import tf_op
from .helpers import activation, cast, elementwise, reduce, unary

_BINARY = {
    "Add": "SUM", "AddV2": "SUM", "Sub": "SUB", "Mul": "PROD", "RealDiv": "DIV",
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
    tf_op(_tf, layers=("ElementWise",), restrictions="broadcasting as in TensorFlow")(_binary_converter(_trt))


@tf_op("Div", layers=("ElementWise",), restrictions="integer division floors, as TensorFlow's Div does")
def convert_div(ctx, node, inputs):
    a, b = inputs
    integer = (a.dtype.kind in "iu") if not a.is_const else (b.dtype.kind in "iu" if not b.is_const else a.const.dtype.kind in "iu")
    return elementwise(ctx, a, b, "FLOOR_DIV" if integer else "DIV")


@tf_op("SquaredDifference", layers=("ElementWise", "ElementWise"))
def convert_squared_difference(ctx, node, inputs):
    diff = elementwise(ctx, inputs[0], inputs[1], "SUB")
    return elementwise(ctx, diff, diff, "PROD")


@tf_op("Square", layers=("ElementWise",))
def convert_square(ctx, node, inputs):
    return elementwise(ctx, inputs[0], inputs[0], "PROD")


@tf_op("NotEqual", layers=("ElementWise", "Unary"))
def convert_not_equal(ctx, node, inputs):
    return unary(ctx, elementwise(ctx, inputs[0], inputs[1], "EQUAL"), "NOT")


@tf_op("GreaterEqual", layers=("ElementWise", "Unary"))
def convert_greater_equal(ctx, node, inputs):
    return unary(ctx, elementwise(ctx, inputs[0], inputs[1], "LESS"), "NOT")


@tf_op("LessEqual", layers=("ElementWise", "Unary"))
def convert_less_equal(ctx, node, inputs):
    return unary(ctx, elementwise(ctx, inputs[0], inputs[1], "GREATER"), "NOT")


_UNARY = {
    "Abs": "ABS", "Neg": "NEG", "Exp": "EXP", "Log": "LOG", "Sqrt": "SQRT", "Reciprocal": "RECIP",
    "Inv": "RECIP", "Erf": "ERF", "Sin": "SIN", "Cos": "COS", "Tan": "TAN", "Sinh": "SINH", "Cosh": "COSH",
    "Asin": "ASIN", "Acos": "ACOS", "Atan": "ATAN", "Asinh": "ASINH", "Acosh": "ACOSH", "Atanh": "ATANH",
    "Ceil": "CEIL", "Floor": "FLOOR", "Round": "ROUND", "Sign": "SIGN", "LogicalNot": "NOT",
    "IsInf": "ISINF", "IsNan": "ISNAN",
}


def _unary_converter(trt_op: str):
    def convert(ctx, node, inputs):
        return unary(ctx, inputs[0], trt_op)

    convert.__name__ = f"convert_{trt_op.lower()}"
    return convert


for _tf, _trt in _UNARY.items():
    tf_op(_tf, layers=("Unary",))(_unary_converter(_trt))


@tf_op("Rsqrt", layers=("Unary", "Unary"))
def convert_rsqrt(ctx, node, inputs):
    return unary(ctx, unary(ctx, inputs[0], "SQRT", "sqrt"), "RECIP")


@tf_op("Erfc", layers=("Unary", "Constant", "ElementWise"), restrictions="computed as 1 - erf(x)")
def convert_erfc(ctx, node, inputs):
    erf = unary(ctx, inputs[0], "ERF", "erf")
    one = Value(const=np.ones((), dtype=inputs[0].dtype))
    return elementwise(ctx, one, erf, "SUB")


@tf_op("ClipByValue", layers=("ElementWise", "ElementWise"))
def convert_clip(ctx, node, inputs):
    x, lo, hi = inputs
    if lo.is_const and hi.is_const and lo.const.size == 1 and hi.const.size == 1 and x.dtype == np.float32:
        return activation(ctx, x, "CLIP", float(lo.const), float(hi.const))
    return elementwise(ctx, elementwise(ctx, x, lo, "MAX"), hi, "MIN")


@tf_op("AddN", layers=("ElementWise",))
def convert_add_n(ctx, node, inputs):
    acc = inputs[0]
    for other in inputs[1:]:
        acc = elementwise(ctx, acc, other, "SUM")
    return acc


_REDUCE = {"Mean": "AVG", "Sum": "SUM", "Max": "MAX", "Min": "MIN", "Prod": "PROD"}


def _reduce_converter(trt_op: str):
    def convert(ctx, node, inputs):
        axes = ctx.as_const(inputs[1], "the reduction axes")
        return reduce(ctx, inputs[0], axes, node.attr("keep_dims", False), trt_op)

    convert.__name__ = f"convert_reduce_{trt_op.lower()}"
    return convert


def _check_axes_const(node, graph):
    from ..errors import ConversionError

    if not graph.is_const(node.inputs[1]):
        return ConversionError(node.name, node.op, "reduction axes must be constant")
    return None


for _tf, _trt in _REDUCE.items():
    tf_op(_tf, layers=("Reduce",), check=_check_axes_const)(_reduce_converter(_trt))


@tf_op("Cast", layers=("Cast",), restrictions="between float32/float16/int32/int64/int8/uint8/bool")
def convert_cast(ctx, node, inputs):
    return cast(ctx, inputs[0], np.dtype(node.attr("DstT")), suffix=None)
