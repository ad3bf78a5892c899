"""Elementwise, unary, comparison, selection, reduction, cast and scan ops."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from .harness import In, boolean, case, f32, i32, params, run_case

# ------------------------------------------------------------------ binary elementwise
BINARY = [
    ("Add", tf.raw_ops.Add), ("AddV2", tf.raw_ops.AddV2), ("Sub", tf.raw_ops.Sub), ("Mul", tf.raw_ops.Mul),
    ("Maximum", tf.raw_ops.Maximum), ("Minimum", tf.raw_ops.Minimum),
    ("SquaredDifference", tf.raw_ops.SquaredDifference),
]
CMP = [("Equal", tf.raw_ops.Equal), ("NotEqual", tf.raw_ops.NotEqual), ("Greater", tf.raw_ops.Greater),
       ("GreaterEqual", tf.raw_ops.GreaterEqual), ("Less", tf.raw_ops.Less), ("LessEqual", tf.raw_ops.LessEqual)]


def _binary(op):
    return lambda a, b: op(x=a, y=b)


TABLE = []
for name, op in BINARY:
    TABLE += [
        case(f"{name}/f32_same", _binary(op), [f32(2, 3), f32(2, 3)], name),
        case(f"{name}/f32_broadcast_rank", _binary(op), [f32(2, 3, 4), f32(4)], name),
        case(f"{name}/f32_broadcast_both", _binary(op), [f32(2, 1, 4), f32(3, 1)], name),
        case(f"{name}/i32", _binary(op), [i32(2, 3), i32(2, 3)], name),
        case(f"{name}/const_lhs", lambda b, op=op: op(x=tf.constant([[1.5, -2.0, 0.25]]), y=b), [f32(2, 3)], name),
    ]
for name, op in CMP:
    TABLE += [
        case(f"{name}/f32", _binary(op), [f32(2, 3), f32(1, 3)], name),
        case(f"{name}/i32", _binary(op), [i32(3, 4, low=0, high=3), i32(4, low=0, high=3)], name),
        case(f"{name}/const", lambda a, op=op: op(x=a, y=tf.constant(0.0)), [f32(2, 3)], name),
    ]
TABLE += [
    case("Equal/bool", _binary(tf.raw_ops.Equal), [boolean(2, 3), boolean(2, 3)], "Equal"),
    case("NotEqual/bool", _binary(tf.raw_ops.NotEqual), [boolean(2, 3), boolean(3)], "NotEqual"),
    case("RealDiv/f32", _binary(tf.raw_ops.RealDiv), [f32(2, 3), f32(2, 3, low=0.5, high=2)], "RealDiv"),
    case("RealDiv/broadcast", _binary(tf.raw_ops.RealDiv), [f32(2, 3, 4), f32(1, 4, low=0.5, high=2)], "RealDiv"),
    case("Div/f32", _binary(tf.raw_ops.Div), [f32(2, 3), f32(2, 3, low=0.5, high=2)], "Div"),
    case("Div/i32_truncates", _binary(tf.raw_ops.Div),
         [i32(3, 4, low=-20, high=20), i32(3, 4, low=1, high=5)], "Div"),
    case("Div/i32_negative_divisor", _binary(tf.raw_ops.Div),
         [i32(3, 4, low=-20, high=20), i32(4, low=-5, high=-1)], "Div"),
    case("TruncateDiv/i32", _binary(tf.raw_ops.TruncateDiv),
         [i32(3, 4, low=-20, high=20), i32(3, 4, low=-5, high=-1)], "TruncateDiv"),
    case("FloorDiv/f32", _binary(tf.raw_ops.FloorDiv), [f32(2, 3, low=-5, high=5), f32(2, 3, low=0.5, high=2)],
         "FloorDiv"),
    case("FloorDiv/i32", _binary(tf.raw_ops.FloorDiv), [i32(3, 4, low=-20, high=20), i32(4, low=1, high=5)],
         "FloorDiv"),
    case("FloorDiv/i32_negative", _binary(tf.raw_ops.FloorDiv), [i32(3, 4, low=-20, high=20), i32(4, low=-5, high=-1)],
         "FloorDiv"),
    case("FloorMod/i32", _binary(tf.raw_ops.FloorMod), [i32(3, 4, low=-20, high=20), i32(4, low=1, high=5)],
         "FloorMod"),
    case("FloorMod/i32_negative", _binary(tf.raw_ops.FloorMod),
         [i32(3, 4, low=-20, high=20), i32(3, 4, low=-5, high=-1)],
         "FloorMod"),
    case("FloorMod/f32", _binary(tf.raw_ops.FloorMod), [f32(2, 3, low=-5, high=5), f32(3, low=0.5, high=2)],
         "FloorMod"),
    case("DivNoNan/f32", lambda a, b: tf.raw_ops.DivNoNan(x=a, y=b * tf.constant([1.0, 0.0, 1.0])),
         [f32(2, 3), f32(2, 3, low=0.5, high=2)], "DivNoNan"),
    case("Pow/f32", _binary(tf.raw_ops.Pow), [f32(2, 3, low=0.1, high=3), f32(2, 3, low=-2, high=2)], "Pow"),
    case("Pow/const_exponent", lambda a: tf.pow(a, 3.0), [f32(2, 3)], "Pow"),
    case("Pow/i32", _binary(tf.raw_ops.Pow), [i32(2, 3, low=-3, high=4), i32(2, 3, low=0, high=4)], "Pow"),
    case("LogicalAnd/bool", _binary(tf.raw_ops.LogicalAnd), [boolean(2, 3), boolean(2, 3)], "LogicalAnd"),
    case("LogicalOr/broadcast", _binary(tf.raw_ops.LogicalOr), [boolean(2, 3), boolean(3)], "LogicalOr"),
    case("LogicalNot/bool", lambda a: tf.logical_not(a), [boolean(2, 3)], "LogicalNot"),
    case("Mul/scalar_tensors", lambda x: x[0, 0] * 2.0 + x[1, 1], [f32(2, 2)], ("Mul", "AddV2", "StridedSlice")),
    case("Maximum/scalar_and_matrix", lambda x: tf.maximum(x[0, 0], x), [i32(2, 2)], "Maximum"),
    case("AddN/three", lambda a, b, c: tf.math.add_n([a, b, c]), [f32(2, 3), f32(2, 3), f32(2, 3)], "AddN"),
    case("AddN/with_const", lambda a, b: tf.math.add_n([a, b, tf.ones((2, 3))]), [f32(2, 3), f32(2, 3)], "AddN"),
    case("AddN/i32", lambda a, b: tf.math.add_n([a, b]), [i32(2, 3), i32(2, 3)], "AddN"),
    case("Square/f32", tf.square, [f32(2, 3)], "Square"),
    case("Square/i32", tf.square, [i32(2, 3)], "Square"),
    case("BiasAdd/nhwc", lambda x: tf.nn.bias_add(x, tf.constant([0.5, -1.0, 2.0])), [f32(1, 2, 2, 3)], "BiasAdd"),
    case("BiasAdd/nchw", lambda x: tf.nn.bias_add(x, tf.constant([0.5, -1.0, 2.0]), data_format="NCHW"),
         [f32(1, 3, 2, 2)], "BiasAdd"),
    case("BiasAdd/2d", lambda x, b: tf.nn.bias_add(x, b), [f32(4, 3), f32(3)], "BiasAdd"),
    case("BiasAddV1/nhwc", lambda x: tf.raw_ops.BiasAddV1(value=x, bias=tf.constant([0.5, -1.0, 2.0])),
         [f32(1, 2, 2, 3)], "BiasAddV1"),
]

# ------------------------------------------------------------------ unary
UNARY = [
    ("Abs", tf.abs, f32(2, 3)), ("Neg", tf.negative, f32(2, 3)), ("Exp", tf.exp, f32(2, 3)),
    ("Log", tf.math.log, f32(2, 3, low=0.1, high=5)), ("Sqrt", tf.sqrt, f32(2, 3, low=0.1, high=5)),
    ("Rsqrt", tf.math.rsqrt, f32(2, 3, low=0.1, high=5)),
    ("Reciprocal", tf.math.reciprocal, f32(2, 3, low=0.5, high=3)),
    ("Inv", lambda x: tf.raw_ops.Inv(x=x), f32(2, 3, low=0.5, high=3)),
    ("Erf", tf.math.erf, f32(2, 3)), ("Erfc", tf.math.erfc, f32(2, 3)),
    ("Sin", tf.sin, f32(2, 3)), ("Cos", tf.cos, f32(2, 3)), ("Tan", tf.tan, f32(2, 3, low=-1.2, high=1.2)),
    ("Sinh", tf.sinh, f32(2, 3)), ("Cosh", tf.cosh, f32(2, 3)),
    ("Asin", tf.asin, f32(2, 3, low=-0.95, high=0.95)), ("Acos", tf.acos, f32(2, 3, low=-0.95, high=0.95)),
    ("Atan", tf.atan, f32(2, 3)), ("Asinh", tf.asinh, f32(2, 3)), ("Acosh", tf.acosh, f32(2, 3, low=1.05, high=5)),
    ("Atanh", tf.atanh, f32(2, 3, low=-0.95, high=0.95)),
    ("Ceil", tf.math.ceil, f32(2, 3, low=-3, high=3)), ("Floor", tf.math.floor, f32(2, 3, low=-3, high=3)),
    ("Sign", tf.sign, f32(2, 3)),
    ("Tanh", tf.tanh, f32(2, 3)), ("Sigmoid", tf.sigmoid, f32(2, 3)),
    ("Relu", tf.nn.relu, f32(2, 3)), ("Relu6", tf.nn.relu6, f32(2, 3, low=-8, high=8)),
    ("Elu", tf.nn.elu, f32(2, 3)), ("Selu", tf.nn.selu, f32(2, 3)), ("Softsign", tf.nn.softsign, f32(2, 3)),
    ("Softplus", tf.nn.softplus, f32(2, 3)), ("LeakyRelu", lambda x: tf.nn.leaky_relu(x, 0.1), f32(2, 3)),
    ("IsInf", lambda x: tf.math.is_inf(x / tf.constant([1.0, 0.0, 1.0])), f32(2, 3)),
    ("IsNan", lambda x: tf.math.is_nan(tf.sqrt(x)), f32(2, 3)),
]
TABLE += [case(f"{name}/f32", fn, [spec], name) for name, fn, spec in UNARY]
TABLE += [
    case("Abs/i32", tf.abs, [i32(2, 3)], "Abs"),
    case("Neg/i32", tf.negative, [i32(2, 3)], "Neg"),
    case("Sign/i32", tf.sign, [i32(2, 3)], "Sign"),
    case("Relu/i32", tf.nn.relu, [i32(2, 3)], "Relu"),
    case("Round/half_to_even", tf.round, [In((8,), values=(0.5, 1.5, 2.5, -0.5, -1.5, 0.4, -2.6, 3.0))], "Round"),
    case("Round/random", tf.round, [f32(3, 4, low=-5, high=5)], "Round"),
    case("Rint/f32", tf.math.rint, [In((6,), values=(0.5, 1.5, 2.5, -0.5, -1.7, 2.2))], "Rint"),
    case("Erfc/large", tf.math.erfc, [f32(3, 4, low=-6, high=6)], "Erfc"),
    case("Softplus/large_magnitude", tf.nn.softplus, [f32(3, 5, low=-40, high=40)], "Softplus"),
    case("Sigmoid/large", tf.sigmoid, [f32(3, 5, low=-30, high=30)], "Sigmoid"),
    case("Elu/rank4", tf.nn.elu, [f32(1, 2, 3, 4)], "Elu"),
    case("LeakyRelu/default_alpha", tf.nn.leaky_relu, [f32(2, 3)], "LeakyRelu"),
    case("ClipByValue/scalars", lambda x: tf.raw_ops.ClipByValue(t=x, clip_value_min=-0.5, clip_value_max=0.7),
         [f32(3, 4)], "ClipByValue"),
    case("ClipByValue/tensors", lambda x, lo: tf.raw_ops.ClipByValue(t=x, clip_value_min=lo, clip_value_max=lo + 1.0),
         [f32(3, 4), f32(3, 4)], "ClipByValue"),
    case("ClipByValue/i32", lambda x: tf.raw_ops.ClipByValue(t=x, clip_value_min=-2, clip_value_max=3), [i32(3, 4)],
         "ClipByValue"),
    case("ClipByValue/inverted_bounds", lambda x: tf.raw_ops.ClipByValue(t=x, clip_value_min=0.5, clip_value_max=-0.5),
         [f32(3, 4)], "ClipByValue"),
]


# ------------------------------------------------------------------ selection, casts
TABLE += [
    case("Select/same_shape", lambda c, a, b: tf.raw_ops.Select(condition=c, x=a, y=b),
         [boolean(2, 3), f32(2, 3), f32(2, 3)], "Select"),
    case("Select/vector_condition", lambda c, a, b: tf.raw_ops.Select(condition=c, x=a, y=b),
         [boolean(2), f32(2, 3), f32(2, 3)], "Select"),
    case("Select/i32", lambda c, a, b: tf.raw_ops.Select(condition=c, x=a, y=b),
         [boolean(2, 3), i32(2, 3), i32(2, 3)], "Select"),
    case("SelectV2/broadcast", lambda c, a, b: tf.where(c, a, b), [boolean(2, 1), f32(2, 3), f32(3)], "SelectV2"),
    case("SelectV2/const_branch", lambda c, a: tf.where(c, a, 0.0), [boolean(2, 3), f32(2, 3)], "SelectV2"),
    case("SelectV2/bool_values", lambda c, a, b: tf.where(c, a, b), [boolean(2, 3), boolean(2, 3), boolean(3)],
         "SelectV2"),
    case("SelectV2/computed_condition", lambda a, b: tf.where(a > b, a * 2.0, b), [f32(2, 3), f32(2, 3)],
         ("SelectV2", "Greater")),
    case("Cast/f32_to_i32_truncates", lambda x: tf.cast(x, tf.int32), [f32(3, 4, low=-5, high=5)], "Cast"),
    case("Cast/i32_to_f32", lambda x: tf.cast(x, tf.float32), [i32(3, 4)], "Cast"),
    case("Cast/f32_to_bool", lambda x: tf.cast(tf.round(x), tf.bool), [f32(3, 4, low=-1, high=1)], "Cast"),
    case("Cast/bool_to_f32", lambda x: tf.cast(x, tf.float32), [boolean(3, 4)], "Cast"),
    case("Cast/bool_to_i32", lambda x: tf.cast(x, tf.int32), [boolean(3, 4)], "Cast"),
    case("Cast/i32_to_i64_to_i32", lambda x: tf.cast(tf.cast(x, tf.int64) * 3, tf.int32), [i32(3, 4)], "Cast",
         layers=False),  # int64 is computed as int32: both casts vanish
    case("Cast/f32_to_i64", lambda x: tf.cast(x, tf.int64), [f32(3, 4, low=-9, high=9)], "Cast"),
    case("Cast/f16_input", lambda x: tf.nn.relu(tf.cast(x, tf.float32)), [In((2, 3), "float16")], "Cast"),
    case("AddV2/i64_input_narrowed", lambda x: x * 3 + tf.constant(7, tf.int64), [In((2, 3), "int64", -50, 50)],
         ("AddV2", "Mul")),
    case("Cast/f32_to_f16_to_f32", lambda x: tf.cast(tf.cast(x, tf.float16), tf.float32),
         [In((4,), values=(0.5, 1.0, -2.25, 1024.0))], "Cast"),
]


# ------------------------------------------------------------------ reductions
def _red(fn, axis, keepdims=False):
    return lambda x: fn(x, axis=axis, keepdims=keepdims)


for name, fn in [("Sum", tf.reduce_sum), ("Mean", tf.reduce_mean), ("Max", tf.reduce_max), ("Min", tf.reduce_min),
                 ("Prod", tf.reduce_prod)]:
    TABLE += [
        case(f"{name}/axis1", _red(fn, 1), [f32(2, 3, 4)], name),
        case(f"{name}/keepdims_multi", _red(fn, [1, 2], True), [f32(2, 3, 4)], name),
        case(f"{name}/negative_axis", _red(fn, -1), [f32(2, 3, 4)], name),
        case(f"{name}/all_axes", _red(fn, [0, 1, 2]), [f32(2, 3, 4)], name),
        case(f"{name}/i32", _red(fn, 0), [i32(3, 4, low=-3, high=4)], name),
    ]
TABLE += [
    case("Mean/i32_truncates", _red(tf.reduce_mean, 1), [i32(3, 4, low=-9, high=9)], "Mean"),
    case("Mean/spatial_nhwc_layout", lambda x: tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(
        x, tf.constant(np.random.default_rng(1).standard_normal((3, 3, 2, 4)), tf.float32), 1, "SAME")), [1, 2]),
        [f32(1, 5, 5, 2)], "Mean"),
    case("All/axis", lambda x: tf.reduce_all(x, axis=1), [boolean(3, 4)], "All"),
    case("Any/keepdims", lambda x: tf.reduce_any(x, axis=[0], keepdims=True), [boolean(3, 4)], "Any"),
    case("ArgMax/last_axis", lambda x: tf.argmax(x, axis=-1), [f32(3, 5)], "ArgMax"),
    case("ArgMax/axis0_int32", lambda x: tf.argmax(x, axis=0, output_type=tf.int32), [f32(4, 3, 2)], "ArgMax"),
    case("ArgMax/i32_ties_first", lambda x: tf.argmax(x, axis=1), [i32(4, 6, low=0, high=3)], "ArgMax"),
    case("ArgMin/axis1", lambda x: tf.argmin(x, axis=1), [f32(2, 5, 3)], "ArgMin"),
    case("ArgMin/i32_ties_first", lambda x: tf.argmin(x, axis=1), [i32(4, 6, low=0, high=3)], "ArgMin"),
    case("Cumsum/axis0", lambda x: tf.cumsum(x, axis=0), [f32(4, 3)], "Cumsum"),
    case("Cumsum/exclusive_reverse", lambda x: tf.cumsum(x, axis=1, exclusive=True, reverse=True), [f32(2, 5)],
         "Cumsum"),
    case("Cumsum/i32_negative_axis", lambda x: tf.cumsum(x, axis=-1), [i32(2, 5)], "Cumsum"),
]


@pytest.mark.parametrize("c", params(TABLE))
def test_math_op(c):
    run_case(c)
