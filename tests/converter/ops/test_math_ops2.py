"""Special functions and more elementwise math (converter/ops/special.py, converter/ops/math_ext.py).

Inputs are fixed grids over wide ranges that include the poles, zeros and edge values (±0, ±inf, NaN,
values near the negative integers, subnormal-free extremes), compared with TensorFlow's CPU kernels at the
harness tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from .harness import In, case, f32, i32, params, run_case

_EDGES = [0.0, -0.0, np.inf, -np.inf, np.nan]


def _vals(*parts) -> In:
    x = np.concatenate([np.asarray(p, np.float64).ravel() for p in parts]).astype(np.float32)
    return In((x.size,), "float32", values=tuple(x.tolist()))


_INTS = np.arange(-12, 13, dtype=np.float64)
_GAMMA_GRID = _vals(-np.logspace(-6, 6, 200), np.logspace(-30, 30, 200), np.linspace(-12, 12, 481),
                    _INTS, _INTS + 1e-4, _INTS - 1e-4, _INTS + 0.5, _EDGES,
                    [1, 2, -2.4570247, -2.7476826, 1.4616321, -0.5040830, 1e30, 3e36, -1e38, -3.4e38, -8388609])
_UNIT = np.concatenate([np.linspace(-1, 1, 801), 1 - np.logspace(-7, -0.5, 200), -1 + np.logspace(-7.5, -0.5, 200),
                        np.logspace(-30, 0, 100)])
_ERFINV_GRID = _vals(_UNIT, [0, -0.0, 1, -1, 1.5, -2, np.nan, np.inf, -np.inf, 1 - 2 ** -24, -1 + 2 ** -24])
_NDTRI_GRID = _vals(_UNIT * 0.5 + 0.5, np.logspace(-37, -1, 200), [0, 1, -0.5, 1.5, np.nan, np.inf, 0.5])
_WIDE = np.concatenate([np.linspace(-50, 50, 801), np.logspace(-30, 30, 200), -np.logspace(-30, 30, 200)])
_LOG1P_GRID = _vals(np.linspace(-1, 3, 801), np.logspace(-30, 30, 200), -np.logspace(-30, 0, 200), _EDGES,
                    [-1, -2, 1e-7, -1e-7, 1e38])
_EXPM1_GRID = _vals(_WIDE, _EDGES, [88.7, 89, -104, 1e-7, -1e-7, 1e-30])

_rng = np.random.default_rng(0)
_PAIR_VALUES = np.array(_EDGES + [1, -1, 1e-30, -1e-30, 1e30, -1e30, 0.5, -3] + list(_rng.standard_normal(12) * 10),
                        np.float32)
_PX, _PY = (a.ravel() for a in np.meshgrid(_PAIR_VALUES, _PAIR_VALUES))
_PAIR_X, _PAIR_Y = _vals(_PX), _vals(_PY)
_PAIR_Y_POS = _vals(np.abs(_PY))

_MOD_VALUES = np.array(_EDGES + [1, -1, 0.1, -0.1, 3, -3, 7.5, -7.5, 1e-30, 1e30, 2.5e7, -1e10, 0.7, 1e-3]
                       + list(_rng.standard_normal(8) * 100), np.float32)
_MX, _MY = (a.ravel() for a in np.meshgrid(_MOD_VALUES, _MOD_VALUES))
# past |x / y| = 2^24 the fp32 quotient has no fractional bits: the documented limit of TruncateMod (and FloorMod)
with np.errstate(all="ignore"):
    _KEEP = ~(np.abs(_MX.astype(np.float64) / _MY) > 2.0 ** 24) | ~np.isfinite(_MX) | ~np.isfinite(_MY)
_MX, _MY = _MX[_KEEP], _MY[_KEEP]
_MOD_X, _MOD_Y = _vals(_MX), _vals(_MY)
# x close to a multiple of y: where a naive x - trunc(x / y)·y is off by up to |y|
_NY = np.repeat(np.array([0.1, -0.1, 0.3, 1.7, -2.9, 0.01, 1e-3], np.float32), 120)
_NK = np.tile(np.arange(-60, 60), 7).astype(np.float32)
_NEAR_X, _NEAR_Y = _vals(_NK * _NY, np.nextafter(_NK * _NY, np.float32(np.inf))), _vals(_NY, _NY)
_INT_Y = In((6,), "int32", values=(3, -3, 7, -1, 50, -8))
_BESSEL_GRID = _vals(np.linspace(-20, 20, 801), np.logspace(-30, 2, 100), -np.logspace(-30, 2, 100),
                     [8, -8, 7.999999, 8.000001, 2, 1.9999999, 2.0000002, np.sqrt(2)],
                     [80, -88, 88, 89, -100, 1e5, 1e30], _EDGES)

_ZX, _ZQ = (a.ravel() for a in np.meshgrid(
    [1, 1.0001, 1.01, 1.5, 2, 3, 4, 4.5, 7, 10, 16, 30, 50, 0.5, -2, np.inf, np.nan],
    [-30.5, -5, -3, -2.5, -2, -1.5, -1, -0.5, 0, 1e-3, 0.1, 0.5, 1, 2, 3.7, 8.9, 9.5, 25, 100, 1e4, 1e10, np.inf,
     np.nan]))
_ZETA_X, _ZETA_Q = _vals(_ZX), _vals(_ZQ)
_PN, _PX = (a.ravel() for a in np.meshgrid(
    [0, 1, 2, 3, 4, 6, 10, -1, 0.5, 1.5, np.nan],
    [-10.5, -3, -2.5, -1.5, -0.3, 0, 1e-4, 0.1, 0.5, 1, 1.4616, 2, 3.3, 8, 12, 50, 1e3, 1e6, np.inf, np.nan]))
_POLY_N, _POLY_X = _vals(_PN), _vals(_PX)


def _raw2(op):
    return lambda x, y: getattr(tf.raw_ops, op)(x=x, y=y)


TABLE = [
    case("Lgamma/grid", tf.math.lgamma, [_GAMMA_GRID], "Lgamma"),
    case("Lgamma/rank5_random", tf.math.lgamma, [f32(1, 2, 3, 2, 2, low=-20, high=20)], "Lgamma"),
    case("Digamma/grid", tf.math.digamma, [_GAMMA_GRID], "Digamma"),
    case("Digamma/rank2_random", tf.math.digamma, [f32(3, 4, low=-10, high=30)], "Digamma"),
    case("Erfinv/grid", tf.math.erfinv, [_ERFINV_GRID], "Erfinv"),
    case("Erfinv/rank3_random", tf.math.erfinv, [f32(2, 3, 4, low=-1, high=1)], "Erfinv"),
    case("Ndtri/grid", tf.math.ndtri, [_NDTRI_GRID], "Ndtri"),
    case("IsFinite/f32", tf.math.is_finite, [_vals(_EDGES, [1, -1, 3e38])], "IsFinite"),
    case("IsFinite/rank4_computed", lambda x: tf.math.is_finite(tf.math.log(x)), [f32(1, 2, 3, 2)], "IsFinite"),
    case("Log1p/grid", tf.math.log1p, [_LOG1P_GRID], "Log1p"),
    case("Expm1/grid", tf.math.expm1, [_EXPM1_GRID], "Expm1"),
    case("Xlogy/pairs", tf.math.xlogy, [_PAIR_X, _PAIR_Y_POS], "Xlogy"),
    case("Xlogy/broadcast", tf.math.xlogy, [f32(2, 3, 4), f32(4, low=0, high=3)], "Xlogy"),
    case("Xdivy/pairs", tf.math.xdivy, [_PAIR_X, _PAIR_Y], "Xdivy"),
    case("Xlog1py/pairs", tf.math.xlog1py, [_PAIR_X, _PAIR_Y_POS], "Xlog1py"),
    case("Atan2/pairs", tf.math.atan2, [_PAIR_Y, _PAIR_X], "Atan2"),
    case("Atan2/broadcast_rank5", tf.math.atan2, [f32(1, 2, 1, 3, 2), f32(3, 1)], "Atan2"),
    # ---- C remainders (TruncateMod / Mod): float pairs incl. near-multiples, signs, zeros and infinities
    *[case(f"{op}/{name}", _raw2(op), ins, op)
      for op in ("TruncateMod", "Mod")
      for name, ins in [("pairs", [_MOD_X, _MOD_Y]), ("near_multiples", [_NEAR_X, _NEAR_Y]),
                        ("int", [i32(4, 6, low=-50, high=50), _INT_Y]),
                        ("int_broadcast_rank5", [i32(1, 2, 3, 1, 4, low=-99, high=99), In((4,), "int32",
                                                                                          values=(7, -3, 2, -13))]),
                        ("broadcast_f32", [f32(2, 3, 4, low=-100, high=100), f32(4, low=-5, high=5)])]],
    case("MulNoNan/pairs", lambda x, y: tf.raw_ops.MulNoNan(x=x, y=y), [_PAIR_X, _PAIR_Y], "MulNoNan"),
    case("MulNoNan/broadcast", lambda x, y: tf.raw_ops.MulNoNan(x=x, y=y),
         [f32(2, 3), In((3,), "float32", values=(0.0, 2.0, -0.0))], "MulNoNan"),
    case("ApproximateEqual/f32", lambda x, y: tf.raw_ops.ApproximateEqual(x=x, y=y, tolerance=0.3),
         [f32(4, 5), f32(4, 5)], "ApproximateEqual"),
    case("ApproximateEqual/special", lambda x, y: tf.raw_ops.ApproximateEqual(x=x, y=y), [_PAIR_X, _PAIR_Y],
         "ApproximateEqual"),
    case("Bucketize/f32", lambda x: tf.raw_ops.Bucketize(input=x, boundaries=[-1.0, 0.0, 0.5, 0.5, 2.0]),
         [_vals(np.linspace(-3, 3, 61), _EDGES, [0.5, -1, 2])], "Bucketize"),
    case("Bucketize/rank3", lambda x: tf.raw_ops.Bucketize(input=x, boundaries=[-0.5, 0.25, 1.0]),
         [f32(2, 3, 4)], "Bucketize"),
    case("Bucketize/int", lambda x: tf.raw_ops.Bucketize(input=x, boundaries=[-2.5, -1.0, 0.0, 1.5, 3.0, 1e10]),
         [i32(3, 7, low=-6, high=6)], "Bucketize"),
    case("L2Loss/rank1", lambda x: tf.raw_ops.L2Loss(t=x), [f32(17)], "L2Loss"),
    case("L2Loss/rank4", tf.nn.l2_loss, [f32(2, 3, 4, 5)], "L2Loss"),
    case("EuclideanNorm/axis", lambda x: tf.raw_ops.EuclideanNorm(input=x, axis=tf.constant([-1])),
         [f32(3, 4, 5)], "EuclideanNorm"),
    case("EuclideanNorm/keep_dims_two_axes",
         lambda x: tf.raw_ops.EuclideanNorm(input=x, axis=tf.constant([0, 2]), keep_dims=True),
         [f32(2, 3, 4, 1, 2)], "EuclideanNorm"),
    case("LinSpace/tensor_ends", lambda a, b: tf.raw_ops.LinSpace(start=a, stop=b, num=tf.constant(11)),
         [In((), "float32", values=(-2.5,)), In((), "float32", values=(7.25,))], "LinSpace"),
    case("LinSpace/tensor_reversed", lambda a, b: tf.raw_ops.LinSpace(start=a, stop=b, num=tf.constant(7)),
         [In((), "float32", values=(3.0,)), In((), "float32", values=(-1e-3,))], "LinSpace"),
    case("LinSpace/const_folds", lambda x: x * tf.raw_ops.LinSpace(start=0.0, stop=1.0, num=9), [f32(9)],
         "LinSpace", raw=True, layers=False),
    case("LinSpace/num_one", lambda a, b: tf.raw_ops.LinSpace(start=a, stop=b, num=tf.constant(1)),
         [In((), "float32", values=(3.0,)), In((), "float32", values=(5.0,))], "LinSpace", layers=False),
    case("Cross/rank2", tf.linalg.cross, [f32(5, 3), f32(5, 3)], "Cross"),
    case("Cross/rank1_special", tf.linalg.cross, [In((3,), "float32", values=(np.inf, 1.0, -0.0)),
                                                  In((3,), "float32", values=(2.0, np.nan, 3.0))], "Cross"),
    case("Cross/rank4_int", tf.linalg.cross, [i32(2, 1, 2, 3), i32(2, 1, 2, 3)], "Cross"),
    case("NthElement/rank1", lambda x: tf.raw_ops.NthElement(input=x, n=3), [f32(7)], "NthElement"),
    case("NthElement/rank3_reverse", lambda x: tf.raw_ops.NthElement(input=x, n=1, reverse=True), [f32(2, 3, 5)],
         "NthElement"),
    case("NthElement/int_ties", lambda x: tf.raw_ops.NthElement(input=x, n=4), [i32(3, 9, low=0, high=3)],
         "NthElement"),
    case("NthElement/first_and_inf", lambda x: tf.raw_ops.NthElement(input=x, n=0),
         [In((2, 3), "float32", values=(np.inf, -np.inf, 0.0, 1.0, -0.0, 5.0))], "NthElement"),
    case("Zeta/grid", tf.math.zeta, [_ZETA_X, _ZETA_Q], "Zeta"),
    case("Zeta/broadcast_random", tf.math.zeta, [f32(3, 1, low=1.1, high=12), f32(4, low=0.01, high=20)], "Zeta"),
    case("Polygamma/grid", tf.math.polygamma, [_POLY_N, _POLY_X], "Polygamma"),
    # ---- Bessel functions (Eigen's float Chebyshev expansions)
    *[case(f"{op}/grid", getattr(tf.math.special, name), [_BESSEL_GRID], op)
      for op, name in [("BesselI0e", "bessel_i0e"), ("BesselI1e", "bessel_i1e"), ("BesselI0", "bessel_i0"),
                       ("BesselI1", "bessel_i1"), ("BesselK0e", "bessel_k0e"), ("BesselK1e", "bessel_k1e"),
                       ("BesselK0", "bessel_k0"), ("BesselK1", "bessel_k1")]],
    case("BesselK0/rank2_random", tf.math.special.bessel_k0, [f32(3, 4, low=0.01, high=10)], "BesselK0"),
    case("BesselI1e/rank3_random", tf.math.special.bessel_i1e, [f32(2, 3, 4, low=-20, high=20)], "BesselI1e"),
]


@pytest.mark.parametrize("c", params(TABLE))
def test_math_op2(c):
    run_case(c)
