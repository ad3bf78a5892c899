"""Numerics sweep: every pointwise op (elementwise, unary, activation, select) over its whole domain.

One row per op × value set, generated from :data:`OPS`.  Each row converts a one-op TF graph whose input holds
fixed values — ±0, ±1, subnormals, the fp32 extremes, ±inf, NaN, values at and just past the ends of the
op's domain, near its poles and where it overflows — runs it on the reference executor and compares with
TensorFlow element by element:

* where TensorFlow gives NaN, TensorRT must give NaN; where it gives ±inf, the same-signed inf; where it gives
  a finite number, a finite number within the harness's fp32 tolerances (rtol 1e-4, atol 1e-5);
* where both give exactly zero, the signs of zero must agree (a -0 that becomes +0 turns a later 1/x from
  -inf into +inf).

Binary ops see the cross product of :data:`BINARY_VALUES` with itself (a (n, 1) by (1, n) broadcast).
Where TensorRT's documented semantics differ from TensorFlow at an edge, the converter says so in its
``restrictions`` (docs/ops.md) and the row drops exactly that edge, with a comment.

Subnormal inputs get their own rows, compared with TensorFlow's float64 kernel rounded to float32:
TensorFlow runs its CPU kernels with flush-to-zero and denormals-are-zero set, so its float32 kernels see
1e-40 as 0 (sign(1e-40) = 0, 1/1.1e-38 = inf, and log(1e-40) = -103.97 from a bit-level trick), while
float32 subnormals are ordinary numbers to a float64 kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
import tensorflow as tf

from converter.verify import compare

from .harness import ATOL, RTOL, BUILD_ENGINES, Case, In, case, check_layer_names, convert_case, feeds_for, params, \
    tf_outputs

NAN = math.nan
INF = math.inf
FMAX = float(np.finfo(np.float32).max)
FMIN = float(np.finfo(np.float32).tiny)  #: smallest normal float32
ONE_UP = float(np.nextafter(np.float32(1), np.float32(2)))  #: 1 + 2^-23
ONE_DOWN = float(np.nextafter(np.float32(1), np.float32(0)))  #: 1 - 2^-24
HALF_PI = float(np.float32(math.pi / 2))

#: values every float unary op sees
SPECIAL = (0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, FMIN, -FMIN, 1e30, -1e30, FMAX, -FMAX,
           INF, -INF, NAN)
SUBNORMAL = (1e-40, -1e-40, 1.4e-45, -1.4e-45, 1.1e-38, -1.1e-38)
LARGE = (1e3, -1e3, 1e5, -1e5, 1e10, -1e10, 1e20, -1e20, 1e38, -1e38)
#: typical values, 0.25 apart
GRID = tuple(float(v) for v in np.linspace(-10, 10, 81))
#: both operands of every float binary op range over these (cross product)
BINARY_VALUES = (0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 3.0, -3.0, 0.75, 1e30, -1e30, INF, -INF, NAN)
#: binary subnormal rows (cross product, float64 reference)
BINARY_SUBNORMAL = (1e-40, -1e-40, 1.4e-45, 1.1e-38, 1e-20, -1e-20, 1.0, -2.0, 0.0)
#: int32 operands (no zero: TensorFlow rejects integer division by zero)
INT_VALUES = (1, -1, 2, -2, 3, -3, 7, -7, 100, -100, 46340, -46340)


@dataclass
class Op:
    """A pointwise op under test: ``fn`` over TF tensors, and its rows ``{set name: values}``."""

    name: str
    fn: Callable
    sets: dict
    arity: int = 1
    dtype: str = "float32"
    ops: tuple = ()  #: TF ops the graph must contain (default: ``name``)
    extra: dict = field(default_factory=dict)  #: more rows (binary: explicit (a, b) pairs)
    #: how a binary row pairs its values: "cross" a (n, 1) with b (1, n); "bias" a (n, n) matrix whose row i holds
    #: value i with a (n,) vector (BiasAdd); "full" two (n, n) matrices (ops that do not broadcast)
    layout: str = "cross"
    subnormal_ref: Callable | None = None  #: the subnormal row's reference (default: TF's float64 kernel)


def unary_sets(domain=(), special=SPECIAL, subnormal=SUBNORMAL, large=LARGE, grid=GRID):
    sets = {"special": special, "large": large, "grid": grid, "subnormal": subnormal}
    if domain:
        sets["domain"] = tuple(domain)
    return {k: v for k, v in sets.items() if v}


def _quiet(fn):
    """``fn()`` with numpy's floating-point warnings off (x / 0, float64 → float32 overflow to inf)."""
    with np.errstate(all="ignore"):
        return fn()


def _raw(op, **fixed):
    return lambda x, op=op: op(x=x, **fixed)


def _bin(op):
    return lambda a, b, op=op: op(x=a, y=b)


# ------------------------------------------------------------------ the table
OPS: list[Op] = [
    Op("Abs", tf.abs, unary_sets()),
    Op("Neg", tf.negative, unary_sets()),
    Op("Sign", tf.sign, unary_sets()),
    Op("Square", tf.square, unary_sets(domain=(1.8e19, -1.9e19, 1e-19, 1e-23))),
    Op("Exp", tf.exp, unary_sets(domain=(-104.0, -103.0, -88.0, -87.3, 88.0, 88.7, 88.8, 89.0, 1e-8, -1e-8))),
    Op("Log", tf.math.log, unary_sets(domain=(ONE_UP, ONE_DOWN, 1.2e-38, 1e-20, 1e-5, 1e38))),
    Op("Sqrt", tf.sqrt, unary_sets(domain=(1.2e-38, 1e-20, 1e-5, 1e38, 4.0, 9.0))),
    Op("Rsqrt", tf.math.rsqrt, unary_sets(domain=(1.2e-38, 1e-20, 1e-5, 1e38, 4.0, 9.0))),
    Op("Reciprocal", tf.math.reciprocal, unary_sets(domain=(1.2e-38, -1.2e-38, 1e38, 3e38, -3e38))),
    Op("Inv", _raw(tf.raw_ops.Inv), unary_sets(domain=(1.2e-38, -1.2e-38, 1e38, -3e38))),
    Op("Sin", tf.sin, unary_sets(domain=(math.pi, -math.pi, 100.0, 1e4, 1e-20))),
    Op("Cos", tf.cos, unary_sets(domain=(HALF_PI, -HALF_PI, 100.0, 1e4, 1e-20))),
    Op("Tan", tf.tan, unary_sets(domain=(HALF_PI, -HALF_PI, float(np.nextafter(np.float32(HALF_PI), 0)),
                                         1.5707, -1.5707, 4.712389, 100.0, 1e-20))),
    Op("Asin", tf.asin, unary_sets(domain=(ONE_DOWN, -ONE_DOWN, ONE_UP, -ONE_UP, 0.9999, 1e-20))),
    Op("Acos", tf.acos, unary_sets(domain=(ONE_DOWN, -ONE_DOWN, ONE_UP, -ONE_UP, 0.9999, 1e-20))),
    Op("Atan", tf.atan, unary_sets(domain=(1e-20, 1e8, -1e8))),
    Op("Sinh", tf.sinh, unary_sets(domain=(88.0, -88.0, 89.0, -89.0, 89.5, -89.5, 1e-8, -1e-8, 1e-20))),
    Op("Cosh", tf.cosh, unary_sets(domain=(88.0, -88.0, 89.0, -89.0, 89.5, -89.5, 1e-8))),
    Op("Asinh", tf.asinh, unary_sets(domain=(1e-8, -1e-8, 1e19, -1e19, 1e-20))),
    Op("Acosh", tf.acosh, unary_sets(domain=(ONE_UP, ONE_DOWN, 1.001, 1e19))),
    Op("Atanh", tf.atanh, unary_sets(domain=(ONE_DOWN, -ONE_DOWN, ONE_UP, -ONE_UP, 0.9999, 1e-8, 1e-20))),
    Op("Erf", tf.math.erf, unary_sets(domain=(1e-8, -1e-8, 1e-20, 3.9, 4.0, 5.0, -5.0))),
    Op("Erfc", tf.math.erfc, unary_sets(grid=tuple(float(v) for v in np.linspace(-10, 10.5, 83)),
                                        domain=(1e-8, 0.4999, 0.5, 0.5001, 3.9, 5.0, 8.0, 9.0, 9.19, 9.2, 10.0))),
    # erfc's tail through a reciprocal and a log: 1 - erf(x) was 0 from x ≈ 3.9 (1/erfc = inf, log = -inf) and
    # off by up to 3e-8 absolute for all x > 0; these compare relative errors down to fp32 underflow
    Op("Erfc", lambda x: tf.math.reciprocal(tf.math.erfc(x)), {"reciprocal": tuple(
        float(v) for v in np.linspace(0.5, 9.15, 47))}, ops=("Erfc", "Reciprocal")),
    Op("Erfc", lambda x: tf.math.log(tf.math.erfc(x)), {"log": tuple(float(v) for v in np.linspace(-3, 9.15, 62))},
       ops=("Erfc", "Log")),
    # TensorFlow's exact GELU is 0.5·x·erfc(-x/√2): its tail for x < 0 is erfc's tail (log(-gelu) compares it
    # relatively; 1 - erf made gelu 0 from x ≈ -5.5).  It stops at -12.75: at -13, erfc(9.19) is at fp32's
    # smallest normal and TensorFlow's kernel flushes it to 0 (log -inf) where the converter gives -85.4
    Op("Erfc", lambda x: tf.nn.gelu(x, approximate=False), {"gelu": GRID}, ops=("Erfc", "Mul")),
    Op("Erfc", lambda x: tf.math.log(-tf.nn.gelu(x, approximate=False)),
       {"gelu_tail_log": tuple(float(v) for v in np.linspace(-12.75, -0.25, 51))}, ops=("Erfc", "Log")),
    Op("Erfc", tf.math.erfc, {"f16": (0.0, -0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 3.5, 4.0, -1.0, -4.0, INF, -INF, NAN)},
       dtype="float16"),
    Op("Ceil", tf.math.ceil, unary_sets(domain=(-0.25, -0.75, 0.25, 8388607.5, -8388607.5, 16777217.0))),
    Op("Floor", tf.math.floor, unary_sets(domain=(-0.25, 0.25, 0.75, 8388607.5, -8388607.5, 16777217.0))),
    Op("Round", tf.round, unary_sets(domain=(0.5, 1.5, 2.5, -0.5, -1.5, -2.5, -0.25, 8388607.5, -8388607.5))),
    Op("Rint", tf.math.rint, unary_sets(domain=(0.5, 1.5, 2.5, -0.5, -1.5, -2.5, -0.25, 8388607.5, -8388607.5))),
    Op("IsInf", tf.math.is_inf, unary_sets()),
    Op("IsNan", tf.math.is_nan, unary_sets()),
    # activations
    Op("Relu", tf.nn.relu, unary_sets()),
    Op("Relu6", tf.nn.relu6, unary_sets(domain=(6.0, 5.999, 6.001, 1e-20, -1e-20))),
    Op("Elu", tf.nn.elu, unary_sets(domain=(-88.0, -104.0, -1e-8, 1e-8, -20.0))),
    # TensorRT's SELU is beta·x for x > 0, else beta·alpha·(exp(x) - 1): +0 at x = -0, where TensorFlow's
    # kernel (x < 0 selects the exponential) keeps -0 (documented on the converter)
    Op("Selu", tf.nn.selu, unary_sets(domain=(-88.0, -104.0, -1e-8, 1e-8, -20.0),
                                      special=tuple(v for v in SPECIAL if not (v == 0 and math.copysign(1, v) < 0)))),
    Op("LeakyRelu", lambda x: tf.nn.leaky_relu(x, 0.1), unary_sets(domain=(-1e-20, 1e-20))),
    Op("Sigmoid", tf.sigmoid, unary_sets(domain=(-88.0, -88.8, -89.0, -104.0, 88.0, 89.0, 20.0, -20.0, 1e-8))),
    Op("Tanh", tf.tanh, unary_sets(domain=(1e-8, -1e-8, 1e-20, 9.0, 10.0, 20.0, -20.0, 44.0, 89.0, -89.0))),
    Op("Softplus", tf.nn.softplus, unary_sets(domain=(-20.0, 20.0, -88.0, 88.0, 89.0, -104.0, 1e-8))),
    # softplus(x) ≈ exp(x) for x ≪ 0: log(1 + exp(x)) was 0 from x ≈ -16.6 (log -inf here)
    Op("Softplus", lambda x: tf.math.log(tf.nn.softplus(x)),
       {"log": tuple(float(v) for v in np.linspace(-87, 20, 108))}, ops=("Softplus", "Log")),
    Op("Softsign", tf.nn.softsign, unary_sets(domain=(1e-20, -1e-20))),
    Op("ClipByValue", lambda x: tf.raw_ops.ClipByValue(t=x, clip_value_min=-0.5, clip_value_max=2.0),
       unary_sets(domain=(-0.5, 2.0, -0.49, 1.99))),
    # binary
    # FloorDiv is floor(x / y) of the float32 quotient: 1.4e-45 / -2 rounds to -0 (and floors to -0), where
    # the float64 quotient -7e-46 floors to -1
    Op("FloorDiv", _bin(tf.raw_ops.FloorDiv), {"cross": BINARY_VALUES, "subnormal": BINARY_SUBNORMAL}, arity=2,
       subnormal_ref=lambda a, b: _quiet(lambda: np.floor((a.astype(np.float64) / b).astype(np.float32)))),
    *[Op(name, _bin(fn), {"cross": BINARY_VALUES, "subnormal": BINARY_SUBNORMAL}, arity=2) for name, fn in [
        ("Add", tf.raw_ops.Add), ("AddV2", tf.raw_ops.AddV2), ("Sub", tf.raw_ops.Sub), ("Mul", tf.raw_ops.Mul),
        ("RealDiv", tf.raw_ops.RealDiv), ("Div", tf.raw_ops.Div),
        ("FloorMod", tf.raw_ops.FloorMod), ("Pow", tf.raw_ops.Pow), ("Maximum", tf.raw_ops.Maximum),
        ("Minimum", tf.raw_ops.Minimum), ("SquaredDifference", tf.raw_ops.SquaredDifference),
        ("DivNoNan", tf.raw_ops.DivNoNan),
        ("Equal", tf.raw_ops.Equal), ("NotEqual", tf.raw_ops.NotEqual), ("Greater", tf.raw_ops.Greater),
        ("GreaterEqual", tf.raw_ops.GreaterEqual), ("Less", tf.raw_ops.Less), ("LessEqual", tf.raw_ops.LessEqual),
    ]],
    Op("FloorMod", _bin(tf.raw_ops.FloorMod), {}, arity=2, extra={
        # x / y rounds up onto an integer: fmod is ≈ y (or -y), not a tiny number of the wrong sign
        "rounded_quotient": [(0.7, 0.1), (-0.7, 0.1), (0.7, -0.1), (-0.7, -0.1), (1.0, 0.1), (0.3, 0.1),
                             (5.0, 0.625), (2.0, 2.0 / 3.0), (1e-8, -1.0), (-1e-8, 1.0)],
        # quotients up to 2^23: x - fl(n·y) was off by up to |x|·2^-24 (0.002 at 123456.7 mod 1.1), the exact
        # product makes it TensorFlow's exact fmod.  Past 2^24 the converter gives 0 (see its restrictions):
        # 1e10 mod 3 is 1 in TensorFlow, so no such row here
        "large_quotient": [(1000.0, 0.3), (-1000.0, 0.3), (123456.7, 1.1), (8e6, 3.0), (-8e6, 7.0)]}),
    Op("FloorMod", _bin(tf.raw_ops.FloorMod), {"f16": (0.0, -0.0, 0.7, -0.7, 0.1, 3.0, -2.5, 1000.0, INF, NAN)},
       arity=2, dtype="float16"),
    Op("AddN", lambda a, b: tf.math.add_n([a, b, a]), {"cross": BINARY_VALUES}, arity=2, layout="full"),
    Op("BiasAdd", lambda a, b: tf.nn.bias_add(a, b), {"cross": BINARY_VALUES}, arity=2, layout="bias"),
    Op("BiasAddV1", lambda a, b: tf.raw_ops.BiasAddV1(value=a, bias=b), {"cross": BINARY_VALUES}, arity=2,
       layout="bias"),
    Op("Select", lambda a, b: tf.raw_ops.Select(condition=a > b, x=a, y=b), {"cross": BINARY_VALUES}, arity=2,
       ops=("Select", "Greater"), layout="full"),
    Op("SelectV2", lambda a, b: tf.where(a < b, a, b), {"cross": BINARY_VALUES}, arity=2, ops=("SelectV2", "Less")),
    # integers
    *[Op(name, _bin(fn), {"i32": INT_VALUES}, arity=2, dtype="int32") for name, fn in [
        ("Add", tf.raw_ops.Add), ("Sub", tf.raw_ops.Sub), ("Mul", tf.raw_ops.Mul), ("Div", tf.raw_ops.Div),
        ("TruncateDiv", tf.raw_ops.TruncateDiv), ("FloorDiv", tf.raw_ops.FloorDiv),
        ("FloorMod", tf.raw_ops.FloorMod), ("Maximum", tf.raw_ops.Maximum), ("Minimum", tf.raw_ops.Minimum),
        ("SquaredDifference", tf.raw_ops.SquaredDifference),
    ]],
    *[Op(name, fn, {"i32": INT_VALUES + (0, 2147483647, -2147483647)}, dtype="int32") for name, fn in [
        ("Abs", tf.abs), ("Neg", tf.negative), ("Sign", tf.sign), ("Relu", tf.nn.relu),
    ]],
    # TensorFlow rejects negative integer exponents
    Op("Pow", _bin(tf.raw_ops.Pow), {}, arity=2, dtype="int32",
       extra={"i32": [(a, b) for a in (0, 1, -1, 2, -2, 3, -3, 10) for b in (0, 1, 2, 3, 5, 9)]}),
    # booleans
    *[Op(name, _bin(fn), {"bool": (False, True)}, arity=2, dtype="bool") for name, fn in [
        ("LogicalAnd", tf.raw_ops.LogicalAnd), ("LogicalOr", tf.raw_ops.LogicalOr),
    ]],
    Op("LogicalNot", tf.logical_not, {"bool": (False, True)}, dtype="bool"),
    # special functions and the x·log(y) family (converter/ops/special.py, math_ext.py)
    *[Op(name, fn, unary_sets()) for name, fn in [
        ("Lgamma", tf.math.lgamma), ("Digamma", tf.math.digamma), ("Erfinv", tf.math.erfinv),
        ("Ndtri", tf.math.ndtri), ("IsFinite", tf.math.is_finite), ("Log1p", tf.math.log1p),
        ("Expm1", tf.math.expm1), ("BesselI0", tf.math.bessel_i0), ("BesselI1", tf.math.bessel_i1),
        ("BesselI0e", tf.math.bessel_i0e), ("BesselI1e", tf.math.bessel_i1e),
    ]],
    # at the smallest normal float TF's CPU kernel flushes x/2 to zero (inf/NaN); documented in the restrictions
    *[Op(name, fn, unary_sets(special=tuple(v for v in SPECIAL if abs(v) != FMIN))) for name, fn in [
        ("BesselK0", tf.math.special.bessel_k0), ("BesselK1", tf.math.special.bessel_k1),
        ("BesselK0e", tf.math.special.bessel_k0e), ("BesselK1e", tf.math.special.bessel_k1e),
    ]],
    *[Op(name, _bin(fn), {"cross": BINARY_VALUES, "subnormal": BINARY_SUBNORMAL}, arity=2) for name, fn in [
        ("Xlogy", tf.raw_ops.Xlogy), ("Xdivy", tf.raw_ops.Xdivy), ("Xlog1py", tf.raw_ops.Xlog1py),
        ("Atan2", tf.raw_ops.Atan2), ("TruncateMod", tf.raw_ops.TruncateMod), ("Mod", tf.raw_ops.Mod),
        ("MulNoNan", tf.raw_ops.MulNoNan),
    ]],
    Op("Zeta", lambda a, b: tf.raw_ops.Zeta(x=a, q=b), {"cross": BINARY_VALUES, "subnormal": BINARY_SUBNORMAL},
       arity=2),
    Op("Polygamma", lambda a, b: tf.raw_ops.Polygamma(a=a, x=b),
       {"cross": BINARY_VALUES, "subnormal": BINARY_SUBNORMAL}, arity=2),
    Op("ApproximateEqual", _bin(tf.raw_ops.ApproximateEqual), {"cross": BINARY_VALUES}, arity=2, layout="full"),
]


def float64_reference(fn):
    """TensorFlow's float64 kernel of ``fn``, its float results rounded to float32 (subnormal rows)."""

    def ref(*arrays):
        result = fn(*[tf.constant(a.astype(np.float64)) for a in arrays]).numpy()
        return _quiet(lambda: result.astype(np.float32)) if result.dtype == np.float64 else result

    return ref


def _rows(op: Op) -> list[Case]:
    rows = []
    ops = op.ops or (op.name,)
    for set_name, values in op.sets.items():
        rid = f"{op.name}/{set_name}"
        n = len(values)
        if op.arity == 1:
            inputs = [In((n,), op.dtype, values=tuple(values))]
        elif op.layout == "bias":
            inputs = [In((n, n), op.dtype, values=tuple(v for v in values for _ in values)),
                      In((n,), op.dtype, values=tuple(values))]
        elif op.layout == "full":
            inputs = [In((n, n), op.dtype, values=tuple(v for v in values for _ in values)),
                      In((n, n), op.dtype, values=tuple(values) * n)]
        else:
            # every pair: a (n, 1) against b (1, n)
            inputs = [In((n, 1), op.dtype, values=tuple(values)), In((1, n), op.dtype, values=tuple(values))]
        ref = (op.subnormal_ref or float64_reference(op.fn)) if set_name == "subnormal" else None
        rows.append(case(rid, op.fn, inputs, ops, ref=ref))
    for set_name, pairs in op.extra.items():
        a, b = zip(*pairs)
        rows.append(case(f"{op.name}/{set_name}", op.fn, [In((len(a),), op.dtype, values=a),
                                                           In((len(b),), op.dtype, values=b)], ops))
    return rows


TABLE = [row for op in OPS for row in _rows(op)]


# ------------------------------------------------------------------ comparison
def nonfinite_problems(out: np.ndarray, ref: np.ndarray, inputs: list[np.ndarray]) -> list[str]:
    """Position-wise: NaN where TF has NaN, the same inf where TF has inf, finite where TF is finite, the sign of
    exact zeros; each problem names the input values at that position."""
    out = np.asarray(out)
    ref = np.asarray(ref)
    if out.shape != ref.shape or ref.dtype.kind != "f":
        return []
    problems = []
    with np.errstate(invalid="ignore"):
        wrong = (np.isnan(ref) != np.isnan(out)) | (np.isinf(ref) & (out != ref)) | \
            (np.isfinite(ref) & ~np.isfinite(out)) | \
            ((ref == 0) & (out == 0) & (np.signbit(ref) != np.signbit(out)))
    ins = [np.broadcast_to(x, ref.shape) for x in inputs]
    for idx in zip(*np.nonzero(wrong)):
        at = ", ".join(repr(x[idx].item()) for x in ins)
        problems.append(f"f({at}) = {out[idx]!r}, TensorFlow {ref[idx]!r}")
    return problems


def run_sweep_case(c: Case) -> None:
    """``harness.run_case`` with the position-wise non-finite and signed-zero comparison above."""
    from converter.reference import ReferenceExecutor

    frozen, func, graph, network = convert_case(c)
    frozen_ops = {n.op for n in frozen.graph_def.node}
    missing = set(c.ops) - frozen_ops
    assert not missing, f"case {c.id} declares ops {sorted(missing)} its graph lacks (it has {sorted(frozen_ops)})"
    feeds = feeds_for(c)
    got = ReferenceExecutor(network.snapshot).run(feeds)
    ref = tf_outputs(c, frozen, func, feeds)
    inputs = [feeds[f"x{i}"] for i in range(len(c.inputs))]
    problems = []
    for name, expected in zip(frozen.outputs, ref):
        out = np.asarray(got[name])
        assert out.dtype == expected.dtype, f"{name}: TF gives {expected.dtype}, TensorRT {out.dtype}"
        bad = nonfinite_problems(out, expected, inputs)
        problems += [f"{name}: {p}" for p in bad]
        exact = expected.dtype.kind in "biu"
        finite = np.isfinite(expected) & np.isfinite(out) if not exact else np.ones(expected.shape, bool)
        rtol, atol = (0.0, 0.0) if exact else (RTOL, ATOL)
        cmp = compare(name, out[finite], expected[finite], rtol, atol)
        if not cmp.passed:
            with np.errstate(invalid="ignore"):
                far = finite & ~(np.abs(out.astype(np.float64) - expected) <= atol + rtol * np.abs(expected.astype(
                    np.float64))) if not exact else out != expected
            ins = [np.broadcast_to(x, expected.shape) for x in inputs]
            for idx in list(zip(*np.nonzero(far)))[:20]:
                at = ", ".join(repr(x[idx].item()) for x in ins)
                problems.append(f"{name}: f({at}) = {out[idx]!r}, TensorFlow {expected[idx]!r}")
            problems.append(f"{name}: max_abs_err={cmp.max_abs_err:.3g} max_rel_err={cmp.max_rel_err:.3g}")
    assert not problems, f"case {c.id}:\n  " + "\n  ".join(problems)
    check_layer_names(c, frozen, graph, network)
    if BUILD_ENGINES:
        from converter.engine import optimize_network

        assert optimize_network(network), f"case {c.id}: TensorRT built no engine"


@pytest.mark.slow  # ~340 rows of edge values: the full (CI) run keeps them, the quick loop's op tables cover each op
@pytest.mark.parametrize("c", params(TABLE))
def test_numerics(c):
    run_sweep_case(c)


#: pointwise registered ops the sweep leaves to their own tables, and why
NOT_SWEPT = {
    "LinSpace": "a generator, not a function of input values: tests/converter/ops/test_math_ops2.py",
    "OneHot": "an index comparison over a constant range, exact: tests/converter/ops/test_indexing_ops.py",
    "MatrixBandPart": "a constant mask and a select, exact: tests/converter/ops/test_indexing_ops.py",
}
POINTWISE_LAYERS = {"ElementWise", "Unary", "Activation", "Select"}


def test_sweep_covers_every_pointwise_op():
    """Every registered op built from pointwise layers (and casts, e.g. float16 computed in float32) has sweep
    rows, or a reason in NOT_SWEPT."""
    import converter.ops  # noqa: F401 - registers every converter
    from converter.registry import REGISTRY

    pointwise = {op for op, entry in REGISTRY.items()
                 if set(entry.layers) - {"Cast"} and set(entry.layers) - {"Cast"} <= POINTWISE_LAYERS}
    swept = {op for c in TABLE for op in c.ops}
    missing = sorted(pointwise - swept - set(NOT_SWEPT))
    assert not missing, f"pointwise ops without numerics sweep rows: {missing}"
    assert set(NOT_SWEPT) <= pointwise, "NOT_SWEPT names ops that are not (or no longer) pointwise"
