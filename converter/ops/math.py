"""Elementwise arithmetic, comparisons, unary math, selection, reductions, casts and scans."""

from __future__ import annotations

import numpy as np

from .. import layers
from ..context import Value
from ..errors import ConversionError
from .helpers import (NUMPY_UNARY, activation, cast, const_int_list, elementwise, float_only, is_static, reduce,
                      register, reshape, scalar_constant, scalar_like, select, squeeze, static_inputs, tensor_of,
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


def _is_float(v: Value) -> bool:
    return np.dtype(v.dtype).kind == "f"


@register("FloorMod", layers=("ElementWise", "Unary", "Select", "Cast"), folds=True,
          restrictions="integers: x - floor_div(x, y)·y; floats: TensorFlow's result to the bit on the reference "
                       "executor (zeros keep x's sign, y = ±inf gives x or y) while |x / y| ≤ 2^24; beyond, the "
                       "fp32 quotient has no fractional bits left and the result is a zero with x's sign "
                       "(TensorFlow's exact fmod is in [0, |y|)); float16 is computed in float32")
def convert_floor_mod(ctx, node, inputs):
    """x - floor(x / y)·y, with the product's rounding error put back (see the comments)."""
    x, y = inputs
    if not _is_float(x):
        quotient = elementwise(ctx, x, y, "FLOOR_DIV", "floordiv")
        return elementwise(ctx, x, elementwise(ctx, quotient, y, "PROD", "times"), "SUB")
    if x.dtype == np.float16:
        # the splits below are sized for fp32's 24-bit significand (fp16's exact fmod is exact in fp32 too)
        out = _floor_mod_f32(ctx, cast(ctx, x, np.float32, "x_to_float"), cast(ctx, y, np.float32, "y_to_float"),
                             "floormod")
        return cast(ctx, out, np.float16, None)
    return _floor_mod_f32(ctx, x, y)


def _floor_mod_f32(ctx, x: Value, y: Value, suffix: str | None = None, truncate: bool = False) -> Value:
    """``truncate``: C's fmod (TruncateMod/Mod), the remainder of the truncated quotient, with x's sign."""

    def const(number):
        return scalar_like(x, number)

    def ew(a, b, op, suffix):
        return elementwise(ctx, a, b, op, suffix)

    # TensorFlow computes t = fmod(x, y) exactly, then t + y where t ≠ 0 and the signs of t and y differ: the
    # value x - n·y in [0, y) (or (y, 0]) for the integer n = floor(x / y) of the exact quotient.  In fp32,
    # x - fl(n·y) loses the product's rounding error, which is as large as the result when x is close to a
    # multiple of y (0.7 mod 0.1: fl(7·0.1) = 0.7 → 0 where TensorFlow gives 0.09999998); with |x| ~ 1e3 a
    # third of all results are off, by up to 1.5·|y|.  So:
    q = ew(x, y, "DIV", "quotient")
    if truncate:
        # trunc(q) = floor(|q|)·sign: never too small in magnitude, one too large when |q| rounds up onto an integer
        n = select(ctx, ew(q, const(0), "LESS", "q_negative"), unary(ctx, q, "CEIL", "ceil"),
                   unary(ctx, q, "FLOOR", "floor"), "trunc")
    else:
        n = unary(ctx, q, "FLOOR", "floor")  # never too small; one too large when q rounds up onto an integer
    prod = ew(n, y, "PROD", "times")
    # Dekker's exact product: n·y = prod + err exactly when both factors are split into halves of ≤ 12
    # significant bits (so every partial product is exact in fp32).  y by Veltkamp's split (c = 4097·y;
    # yh = c - (c - y)), n, an integer with |n| ≤ 2^24, at a multiple of 4096.
    c = ew(y, const(4097), "PROD", "veltkamp")
    y_hi = ew(c, ew(c, y, "SUB", "veltkamp_diff"), "SUB", "y_hi")
    y_lo = ew(y, y_hi, "SUB", "y_lo")
    n_hi = ew(unary(ctx, ew(n, const(2.0 ** -12), "PROD", "n_scaled"), "ROUND", "n_scaled_round"), const(2.0 ** 12),
              "PROD", "n_hi")
    n_lo = ew(n, n_hi, "SUB", "n_lo")
    err = ew(ew(ew(ew(ew(n_hi, y_hi, "PROD", "hh"), prod, "SUB", "hh_minus_prod"), ew(n_hi, y_lo, "PROD", "hl"),
                   "SUM", "err_hl"), ew(n_lo, y_hi, "PROD", "lh"), "SUM", "err_lh"), ew(n_lo, y_lo, "PROD", "ll"),
             "SUM", "err")
    # |y| > FLT_MAX / 4097 overflows c; the uncorrected product is all that is left there
    err = select(ctx, unary(ctx, err, "ISNAN", "err_nan"), const(0), err, "err_finite")
    # x - prod is exact (Sterbenz: prod ≈ x) except for n = -1 with |x| ≪ |y|, where it rounds -|x| + |y| just as
    # TensorFlow's t + y does; n = 0 keeps x itself, which also keeps 0·inf out for y = ±inf.
    # (Should a fused GPU kernel contract x - n·y into an FMA, err is subtracted twice: off by ≤ ulp(x)/2, no
    # sign flip — the uncorrected formula's error, without its wrong-side results.)
    rem = select(ctx, ew(n, const(0), "EQUAL", "n_zero"), x,
                 ew(ew(x, prod, "SUB", "x_minus_prod"), err, "SUB", "x_minus_ny"), "rem")
    if truncate:
        # one too large an |n| leaves rem with the sign opposite to x's (a zero rem is replaced below)
        x_negative = ew(x, const(0), "LESS", "x_negative")
        wrong_side = ew(x_negative, ew(rem, const(0), "LESS", "rem_negative"), "XOR", "wrong_side")
        abs_y = unary(ctx, y, "ABS", "abs_y")
        adjusted = select(ctx, wrong_side, select(ctx, x_negative, ew(rem, abs_y, "SUB", "minus_abs_y"),
                                                  ew(rem, abs_y, "SUM", "plus_abs_y"), "back"), rem, "adjusted")
    else:
        # one too large an n leaves rem on the wrong side of 0; y = ±inf with x of the other sign gives y
        wrong_side = ew(ew(y, const(0), "LESS", "y_negative"), ew(rem, const(0), "LESS", "rem_negative"), "XOR",
                        "wrong_side")
        adjusted = select(ctx, wrong_side, ew(rem, y, "SUM", "plus_y"), rem, "adjusted")
    # an exact multiple's zero has x's sign (x·0: x is finite here); past 2^24 n is not the quotient's integer
    # (but y = 0 must stay NaN: there n = ±inf and rem is already NaN)
    huge = ew(ew(unary(ctx, q, "ABS", "abs_quotient"), const(2.0 ** 24), "GREATER", "quotient_huge"),
              unary(ctx, ew(y, const(0), "EQUAL", "y_zero"), "NOT", "y_nonzero"), "AND", "huge")
    zero = ew(ew(rem, const(0), "EQUAL", "rem_zero"), huge, "OR", "zero")
    return select(ctx, zero, ew(x, const(0), "PROD", "signed_zero"), adjusted, suffix)


def _check_truncate_mod(node, graph):
    if node.attr("T", "float32") not in ("float32", "int32", "int64"):
        return ConversionError(node.name, node.op, f"T={node.attr('T')} is not supported (float32/int32; "
                               "TensorFlow's CPU kernel has no float16 either)", "compute it in float32")
    return None


@register("TruncateMod", "Mod", layers=("ElementWise", "Unary", "Select"), check=_check_truncate_mod, folds=True,
          restrictions="C's % and fmod: integers x - trunc_div(x, y)·y; float32 x - trunc(x / y)·y with the "
                       "product's rounding error put back (as FloorMod): TensorFlow's result to the bit while "
                       "|x / y| ≤ 2^24 (zeros keep x's sign, fmod(x, ±inf) = x, fmod(±inf, y) and fmod(x, 0) NaN); "
                       "beyond, a zero with x's sign (TensorFlow's exact fmod has x's sign and |r| < |y|)")
def convert_truncate_mod(ctx, node, inputs):
    x, y = inputs
    if not _is_float(x):
        quotient = elementwise(ctx, x, y, "DIV", "truncdiv")  # integer DIV truncates toward zero
        return elementwise(ctx, x, elementwise(ctx, quotient, y, "PROD", "times"), "SUB")
    if x.is_const and y.is_const:
        with np.errstate(all="ignore"):
            return Value(const=np.fmod(x.const, y.const).astype(x.const.dtype))
    return _floor_mod_f32(ctx, x, y, truncate=True)


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


# x >= y is not "not (x < y)" for floats: both comparisons are false when either side is NaN.
_OR_EQUAL_NOTE = "floats: (x {op} y) or (x == y), false where either is NaN; integers and booleans: not (x {neg} y)"


def _or_equal(ctx, x, y, strict: str, negated: str):
    if _is_float(x) or _is_float(y):
        return elementwise(ctx, elementwise(ctx, x, y, strict, strict.lower()),
                           elementwise(ctx, x, y, "EQUAL", "equal"), "OR")
    return unary(ctx, elementwise(ctx, x, y, negated, negated.lower()), "NOT")


@register("GreaterEqual", layers=("ElementWise", "Unary"), folds=True,
          restrictions=_OR_EQUAL_NOTE.format(op=">", neg="<"))
def convert_greater_equal(ctx, node, inputs):
    return _or_equal(ctx, inputs[0], inputs[1], "GREATER", "LESS")


@register("LessEqual", layers=("ElementWise", "Unary"), folds=True,
          restrictions=_OR_EQUAL_NOTE.format(op="<", neg=">"))
def convert_less_equal(ctx, node, inputs):
    return _or_equal(ctx, inputs[0], inputs[1], "LESS", "GREATER")


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


# Erfc.  ``1 - erf(x)`` cancels catastrophically for positive x: erf(x) rounds to a multiple of 2^-24 near 1,
# so the result has an absolute error of up to 3e-8 whatever its size (relative 5e-6 at x = 2, 1e-3 at x = 3,
# 4e-2 at x = 3.5, and 0 from x ≈ 3.92, where erfc is still 3e-8; erfc(5) = 1.5e-12 becomes 0 and 1/erfc(x)
# inf).  It is kept only for x ≤ 0.5, where erfc(x) ≥ 0.47 and the cancellation costs at most one bit (for
# x < 0, erfc = 1 + erf(|x|) ∈ (1, 2]: no cancellation at all).  For x > 0.5
#
#     erfc(x) = exp(-x²) · erfcx(x),   erfcx(x) = P(t) / (x + 2),   t = (x - 2) / (x + 2) ∈ [-0.6, 1)
#
# (the Shepherd–Laframboise variable: it maps [0.5, ∞) onto a finite interval on which (x + 2)·erfcx(x), which
# tends to 1/√π, is smooth).  P is a degree-9 near-minimax fit of the relative error (Lawson-reweighted
# Chebyshev least squares against scipy's float64 erfcx, then expanded in powers of t): 1.4e-8 relative error.
# exp(-x²) is the other half of the accuracy: x² rounded to fp32 is off by up to x²·2^-24 (4.8e-6 at x = 9),
# and exp turns that absolute error of its argument into a relative error of the result.  So x is split as
# x = hi + lo with hi = round(256·x) / 256: m = round(256·x) ≤ 2688 has 12 bits, so -hi² = m·(-m/65536) is
# exact in fp32, lo = x - hi is exact (Sterbenz), and x² = hi² + lo·(x + hi) where the second term is ≤ 0.042
# and carries only its own rounding (≤ 2.5e-9 absolute).  erfc = (erfcx · exp(-lo·(x + hi))) · exp(-hi²), in
# that order so nothing underflows before the last product.  The erfcx branch sees x clipped to [0.5, 10.5]
# (10.5: erfc is below fp32's smallest subnormal from x ≈ 10.05, so the clip changes nothing but keeps
# inf - inf out of lo), and a SELECT on x > 0.5 picks the branch.  NaN compares false, so it takes the
# 1 - erf branch and stays NaN (a clip may turn NaN into a bound: CUDA's fmaxf returns the non-NaN operand).
_ERFC_SPLIT = 0.5
_ERFC_CLIP = 10.5
_ERFC_P = (1.0215826938559456, -0.6871605682922656, 0.27947302308570654, -0.03644635681945076,
           -0.021521418527855357, 0.006520707276861143, 0.0031203932166960742, -0.0009972849740569603,
           -0.0006332991078764835, 0.00025168611923934717)  # P(t) = Σ _ERFC_P[k]·t^k


def _erfc_large(ctx, x: Value) -> Value:
    """erfc(x) for float32 x ≥ 0.5 (any x: it is clipped to [0.5, 10.5]); see the comment above."""
    def const(number):
        return scalar_like(x, number)

    xc = activation(ctx, x, "CLIP", _ERFC_SPLIT, _ERFC_CLIP, suffix="clip")
    den = elementwise(ctx, xc, const(2), "SUM", "x_plus_2")
    t = elementwise(ctx, elementwise(ctx, xc, const(2), "SUB", "x_minus_2"), den, "DIV", "t")
    poly = const(_ERFC_P[-1])
    for k in range(len(_ERFC_P) - 2, -1, -1):  # Horner
        poly = elementwise(ctx, elementwise(ctx, poly, t, "PROD", f"horner_mul_{k}"), const(_ERFC_P[k]), "SUM",
                           f"horner_add_{k}")
    erfcx = elementwise(ctx, poly, den, "DIV", "erfcx")
    m = unary(ctx, elementwise(ctx, xc, const(256), "PROD", "scaled"), "ROUND", "m")
    neg_hi2 = elementwise(ctx, m, elementwise(ctx, m, const(-1 / 65536), "PROD", "neg_m_scaled"), "PROD", "neg_hi2")
    hi = elementwise(ctx, m, const(1 / 256), "PROD", "hi")
    neg_lo = elementwise(ctx, hi, xc, "SUB", "neg_lo")
    neg_tail = elementwise(ctx, neg_lo, elementwise(ctx, xc, hi, "SUM", "x_plus_hi"), "PROD", "neg_tail")
    scaled = elementwise(ctx, erfcx, unary(ctx, neg_tail, "EXP", "exp_tail"), "PROD", "erfcx_tail")
    return elementwise(ctx, scaled, unary(ctx, neg_hi2, "EXP", "exp_hi2"), "PROD", "large")


@register("Erfc", layers=("Unary", "ElementWise", "Activation", "Select", "Cast"), check=float_only(),
          restrictions="1 - erf(x) for x ≤ 0.5, else exp(-x²)·erfcx(x) with a polynomial erfcx and x² split so "
                       "that exp's argument is exact: relative error < 5e-7 down to fp32 underflow (x ≈ 9.19); "
                       "float16 is computed in float32; subnormal results for 9.19 < x < 10.05, where "
                       "TensorFlow's CPU kernel flushes them to 0")
def convert_erfc(ctx, node, inputs):
    x = inputs[0]
    half = x.dtype == np.float16
    if half:
        x = cast(ctx, x, np.float32, "to_float")
    small = elementwise(ctx, scalar_like(x, 1), unary(ctx, x, "ERF", "erf"), "SUB", "one_minus_erf")
    use_large = elementwise(ctx, x, scalar_like(x, _ERFC_SPLIT), "GREATER", "above_split")
    out = select(ctx, use_large, _erfc_large(ctx, x), small, suffix=None if not half else "select")
    return cast(ctx, out, np.float16, None) if half else out


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
_CAST_DTYPES = ("float32", "float16", "int32", "int64", "int8", "uint8", "bool")


def _check_cast(node, graph):
    """TensorRT has no uint16/uint32/uint64/int16/bfloat16… tensors: a cast to or from one is reported here,
    not as a converter failure.  Constants of such types still fold (numpy computes them)."""
    for attr in ("SrcT", "DstT"):
        dtype = node.attr(attr, "float32")
        if dtype not in _CAST_DTYPES and not is_static(graph, node.inputs[0]):
            return ConversionError(node.name, node.op,
                                   f"{attr}={dtype}: TensorRT has no {dtype} tensors (only "
                                   f"{'/'.join(_CAST_DTYPES)}; int64 is computed as int32)",
                                   f"cast to int32 (values below 2^31) or float32 instead of {dtype}")
    if node.attr("DstT") == "uint8" and not is_static(graph, node.inputs[0]) and not _only_outputs(graph, node):
        # measured: TensorRT refuses the engine ("has datatype UInt8 but is not network-level IO")
        return ConversionError(node.name, node.op,
                               "a uint8 tensor inside the network: TensorRT allows uint8 tensors only as network "
                               "inputs and outputs",
                               "keep the computation in int32 and cast to uint8 only for a model output")
    return None


def _only_outputs(graph, node) -> bool:
    """Whether ``node``'s value reaches nothing but graph outputs (through Identity nodes)."""
    from ..freeze import _src

    outputs = {_src(ref) for ref in graph.outputs}
    todo, seen = [node], set()
    while todo:
        current = todo.pop()
        if current.name in seen:
            continue
        seen.add(current.name)
        for user in graph.consumers.get(current.name, []):
            if user.op not in ("Identity", "Snapshot", "StopGradient"):
                return False
            todo.append(user)
    return node.name in outputs or bool(seen & outputs)


@register("Cast", layers=("Cast",), folds=True, check=_check_cast,
          restrictions="between float32/float16/int32/int8/uint8/bool (uint8 only for a model output: TensorRT "
                       "has uint8 tensors only at the network's inputs and outputs); int64 is computed as int32; "
                       "float → int truncates toward zero; other types (uint32, int16, bfloat16…) only between "
                       "constants")
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

