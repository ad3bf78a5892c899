"""Helpers and case tables for the reduced-precision conformance tests.

A :class:`PrecisionCase` is an :class:`~tests.converter.onnx_cases.OnnxCase` whose tensors are
fp16 (or that casts to bf16 inside the graph), with the largest difference from onnxruntime it may
show, in units in the last place (ulp) of the result's type, and why that bound holds.  It is parsed
by TensorRT's ONNX parser into a *strongly typed* network (each layer computes in its inputs' type,
as :mod:`converter.precision` builds them), snapshotted and run by the reference executor.

Why most bounds are 0 ulp: the executor computes a fp16/bf16 layer in float32 from exactly widened
inputs and rounds once (round to nearest even).  For +, -, *, / and sqrt of values of a p-bit format,
computing in a q-bit format and rounding to p bits is the correctly rounded result when q >= 2p + 2
(Figueroa, "When is double rounding innocuous?", 1995): float32 has q = 24, fp16 p = 11 (24 >= 24)
and bf16 p = 8.  onnxruntime's CPU provider also runs fp16 nodes in float32 (it casts around them;
observed: the intermediate of a fp16 Add → Sub chain is not rounded, see the test module), so on a
single op both sides give the correctly rounded fp16 value.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import ml_dtypes
import numpy as np
from onnx import TensorProto, helper

from converter import trt as trtshim
from converter.snapshot import Snapshot
from tests.converter.onnx_cases import OnnxCase, case, rng

f16 = np.float16
f32 = np.float32
bf16 = ml_dtypes.bfloat16

#: precision (significand bits including the implicit one) and the smallest normal exponent per type
FORMATS = {"HALF": (11, -14), "BF16": (8, -126)}
NP_OF = {"HALF": np.dtype(f16), "BF16": np.dtype(bf16)}


def ulp(expected, type_name: str) -> np.ndarray:
    """The spacing of ``type_name`` values at each ``|expected|`` (the subnormal spacing below the normals)."""
    p, emin = FORMATS[type_name]
    mag = np.abs(np.asarray(expected, np.float64))
    with np.errstate(divide="ignore"):
        exp = np.floor(np.log2(np.where(mag > 0, mag, 1.0)))
    exp = np.maximum(np.where(mag > 0, exp, emin), emin)
    return np.ldexp(1.0, (exp - (p - 1)).astype(np.int64))


def ulp_diff(actual, expected, type_name: str) -> np.ndarray:
    """``|actual - expected|`` in ulps of ``expected`` in ``type_name``; equal infinities/NaNs count 0."""
    a = np.asarray(actual).astype(np.float64)
    e = np.asarray(expected).astype(np.float64)
    same = (a == e) | (np.isnan(a) & np.isnan(e))
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(a - e) / ulp(np.where(np.isfinite(e), e, 0.0), type_name))
    return np.where(np.isnan(diff), np.inf, diff)


def bits(values, dtype) -> np.ndarray:
    """Array of ``dtype`` (float16 or bfloat16) from uint16 bit patterns (expected values written as bits
    so the tests do not take numpy's or ml_dtypes' rounding as their own oracle)."""
    return np.asarray(values, np.uint16).view(np.dtype(dtype))


# ------------------------------------------------------------------------------ TensorRT

def parse_strongly_typed(model):
    """``(builder, network, parser)`` of a strongly typed network for an ONNX model (raises on errors)."""
    trt = trtshim.module()
    builder, network = trtshim.create_network(strongly_typed=True)
    parser = trt.OnnxParser(network, trtshim.logger())
    if not parser.parse(model.SerializeToString()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT ONNX parser rejected the model: {errors}")
    return builder, network, parser


def layer_types(snapshot: Snapshot) -> set[str]:
    """The floating-point types of the snapshot's inputs and layer outputs (what precision it computes in)."""
    types = {t["dtype"] for t in snapshot.inputs} | {o["dtype"] for rec in snapshot.layers for o in rec["outputs"]}
    return types & {"FLOAT", "HALF", "BF16"}


# ------------------------------------------------------------------------------ case tables

@dataclasses.dataclass
class PrecisionCase:
    case: OnnxCase
    type_name: str  #: "HALF" or "BF16": the type the network computes in
    max_ulp: float  #: largest allowed |executor - onnxruntime| in ulps of the result's type
    why: str  #: the reason the bound holds
    #: feeds -> the magnitudes at which ulps are counted (default: onnxruntime's result)
    ulp_at: Callable[[dict], np.ndarray] | None = None
    #: feeds -> the exact result in float64 (rounded once to the type, it is the correctly rounded value)
    exact: Callable[[dict], np.ndarray] | None = None
    exact_ulp: float = 0  #: largest allowed |executor - correctly rounded| in ulps

    @property
    def id(self) -> str:
        return self.case.id


EXACT = "correctly rounded on both sides (float32 arithmetic on fp16 values, one rounding; q >= 2p + 2)"
MOVES = "moves values, no arithmetic: bit-exact"
LIBM = ("transcendental: both sides evaluate it in float32 with different libraries (a few float32 ulps "
        "apart); rounding to fp16 can turn that into 1 ulp where the float32 value lies next to a midpoint")
SUM_ORDER = ("a float32 accumulation on both sides (onnxruntime's MLAS converts fp16 to float32); the "
             "summation orders differ, which moves the float32 value by ~n·2^-24·Σ|x|, far below half an fp16 "
             "ulp except next to a midpoint: at most 1 ulp")
SIGMOID_TAIL = ("onnxruntime's float32 logistic (MLAS) is accurate in absolute, not relative, terms: for "
                "x < -9 (results below 1.2e-4) it is 2 fp16 ulps from the correctly rounded value (measured at "
                "x = -9.11, -10.37, -10.45, -10.99, -11.25), the executor 1; elsewhere " + LIBM)
GEMM_TWICE = ("TensorRT's parser splits Gemm into a MATRIX_MULTIPLY and an ELEMENTWISE SUM, each rounded to "
              "fp16: the product P is rounded before the bias is added, onnxruntime rounds P + C once; "
              "|RN(RN(P) + C) - RN(P + C)| <= ulp(P)/2 + ulp(y), so at most 1.5 ulps of max(|P|, |y|) (in ulps "
              "of y alone it is unbounded under cancellation: 14 measured)")


def _h(*shape, seed=0, scale=1.0):
    return (rng(seed).standard_normal(shape) * scale).astype(f16)


def _h_pos(*shape, seed=0, low=0.5, high=2.0):
    return rng(seed).uniform(low, high, shape).astype(f16)


def _all_fp16(lo, hi, step=1):
    """Every ``step``-th fp16 value in [lo, hi] (a sweep of the whole type, not a sample)."""
    lo_bits, hi_bits = np.array([lo, hi], f16).view(np.uint16).astype(np.int64)
    if lo < 0:  # negative values: bits grow with the magnitude
        neg = np.arange(0x8000, lo_bits + 1, step, dtype=np.int64)
        pos = np.arange(0, hi_bits + 1, step, dtype=np.int64)
        codes = np.concatenate([neg, pos])
    else:
        codes = np.arange(lo_bits, hi_bits + 1, step, dtype=np.int64)
    return codes.astype(np.uint16).view(f16)


def _fp16(id, op, feeds, consts=None, attrs=None, max_ulp=0, why=EXACT, opset=17, out_dtype=f16, ulp_at=None,
          exact=None, exact_ulp=0, **kw):
    return PrecisionCase(case(id, op, feeds, consts, attrs, opset=opset, out_dtypes=[out_dtype], **kw), "HALF",
                         max_ulp, why, ulp_at, exact, exact_ulp)


def _f64(fn, *names):
    """``feeds -> fn(*feeds[names] as float64)``: the exact value of an op (float64 rounds once to fp16 as
    correctly as the exact value does, 53 >= 2·11 + 2)."""
    return lambda feeds: fn(*(feeds[n].astype(np.float64) for n in names))


_ARITH = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}


def _gemm_scale(feeds, b, c):
    """max(|A·Bᵀ|, |A·Bᵀ + C|) in float32: where the Gemm case counts its ulps (see GEMM_TWICE)."""
    p = feeds["a"].astype(f32) @ b.astype(f32).T
    return np.maximum(np.abs(p), np.abs(p + c.astype(f32)))


def _fp16_cases() -> list[PrecisionCase]:
    a = _h(2, 3, 4, 5, seed=1)
    b = _h(2, 3, 4, 5, seed=2)
    pos = _h_pos(2, 3, 4, 5, seed=3)
    x = _h(2, 3, 4, 5, seed=4, scale=2.0)
    gemm_a, gemm_b, gemm_c = _h(4, 64, seed=16), _h(8, 64, seed=17), _h(8, seed=18)
    ln_g, ln_b, mm_b = _h(5, seed=10), _h(5, seed=11), _h(512, 16, seed=15)
    cv_w, cv_b = _h(6, 8, 3, 3, seed=23), _h(6, seed=24)
    out = [_fp16(f"fp16_{op.lower()}", op, {"a": a, "b": pos if op == "Div" else b}, exact=_f64(fn, "a", "b"))
           for op, fn in _ARITH.items()]
    out += [
        _fp16("fp16_add_bcast", "Add", {"a": a, "b": _h(1, 3, 1, 5, seed=5)}),
        _fp16("fp16_mul_const", "Mul", {"a": a}, {"c": _h(5, seed=6)}),
        _fp16("fp16_add_many", "Add", {"a": _h(64, 64, seed=26), "b": _h(64, 64, seed=27, scale=8.0)},
              exact=_f64(np.add, "a", "b")),
        _fp16("fp16_mul_many", "Mul", {"a": _h(64, 64, seed=30, scale=30), "b": _h(64, 64, seed=31, scale=0.01)},
              exact=_f64(np.multiply, "a", "b")),
        _fp16("fp16_div_many", "Div", {"a": _h(64, 64, seed=28), "b": _h_pos(64, 64, seed=29, low=0.01, high=50)},
              exact=_f64(np.divide, "a", "b")),
        _fp16("fp16_relu_all", "Relu", {"x": _all_fp16(-65504, 65504, step=7)}),
        _fp16("fp16_sigmoid_all", "Sigmoid", {"x": _all_fp16(-12.0, 12.0)}, max_ulp=2, why=SIGMOID_TAIL,
              exact=_f64(lambda x: 1 / (1 + np.exp(-x)), "x"), exact_ulp=1),
        _fp16("fp16_tanh_all", "Tanh", {"x": _all_fp16(-5.0, 5.0)}, max_ulp=1, why=LIBM, exact=_f64(np.tanh, "x"),
              exact_ulp=1),
        _fp16("fp16_exp_all", "Exp", {"x": _all_fp16(-17.0, 11.0)}, max_ulp=1, why=LIBM, exact=_f64(np.exp, "x"),
              exact_ulp=1),
        _fp16("fp16_pow", "Pow", {"a": pos, "b": _h(2, 3, 4, 5, seed=7)}, max_ulp=1, why=LIBM,
              exact=_f64(np.power, "a", "b"), exact_ulp=1),
        _fp16("fp16_softmax", "Softmax", {"x": x}, attrs=dict(axis=-1), max_ulp=1,
              why="exp (see libm) and a float32 sum, one rounding at the end on both sides",
              exact=_f64(lambda v: _softmax64(v, -1), "x"), exact_ulp=1),
        _fp16("fp16_softmax_axis1", "Softmax", {"x": _h(4, 64, seed=8, scale=3.0)}, attrs=dict(axis=1), max_ulp=1,
              why="exp (see libm) and a float32 sum, one rounding at the end on both sides",
              exact=_f64(lambda v: _softmax64(v, 1), "x"), exact_ulp=1),
        _fp16("fp16_reducesum", "ReduceSum", {"x": x}, {"axes": np.array([1, 3], np.int64)},
              attrs=dict(keepdims=0), max_ulp=1, why=SUM_ORDER, exact=_f64(lambda v: v.sum(axis=(1, 3)), "x"),
              exact_ulp=1),
        _fp16("fp16_reducesum_long", "ReduceSum", {"x": _h(3, 200, seed=9)}, {"axes": np.array([1], np.int64)},
              attrs=dict(keepdims=1), max_ulp=1, why=SUM_ORDER,
              exact=_f64(lambda v: v.sum(axis=1, keepdims=True), "x"), exact_ulp=1),
        _fp16("fp16_reducemean", "ReduceMean", {"x": x}, attrs=dict(axes=[-1], keepdims=1), max_ulp=1,
              why=SUM_ORDER, exact=_f64(lambda v: v.mean(axis=-1, keepdims=True), "x"), exact_ulp=1),
        _fp16("fp16_reducemean_opset18", "ReduceMean", {"x": x}, {"axes": np.array([0, 2], np.int64)},
              attrs=dict(keepdims=0), opset=18, max_ulp=1, why=SUM_ORDER,
              exact=_f64(lambda v: v.mean(axis=(0, 2)), "x"), exact_ulp=1),
        _fp16("fp16_layernorm", "LayerNormalization", {"x": x}, {"g": ln_g, "bb": ln_b},
              attrs=dict(axis=-1), max_ulp=1,
              why="statistics in float32 on both sides (onnxruntime's fp16 kernel widens), one rounding; the "
                  "mean/variance order differs (see the reductions)",
              exact=lambda f: _layernorm64(f["x"].astype(np.float64), ln_g.astype(np.float64),
                                           ln_b.astype(np.float64)), exact_ulp=1),
        _fp16("fp16_matmul", "MatMul", {"a": _h(4, 64, seed=12), "b": _h(64, 8, seed=13)}, max_ulp=1,
              why=SUM_ORDER, exact=_f64(np.matmul, "a", "b"), exact_ulp=1),
        _fp16("fp16_matmul_k512", "MatMul", {"a": _h(2, 4, 512, seed=14)}, {"b": mm_b}, max_ulp=1, why=SUM_ORDER,
              exact=lambda f: f["a"].astype(np.float64) @ mm_b.astype(np.float64), exact_ulp=1),
        _fp16("fp16_gemm_bias", "Gemm", {"a": gemm_a}, {"b": gemm_b, "c": gemm_c}, attrs=dict(transB=1),
              max_ulp=1.5, why=GEMM_TWICE, ulp_at=lambda f: _gemm_scale(f, gemm_b, gemm_c)),
        PrecisionCase(OnnxCase("fp16_matmul_then_add", [helper.make_node("MatMul", ["a", "bt"], ["p"]),
                                                        helper.make_node("Add", ["p", "c"], ["y"])],
                               {"a": gemm_a}, {"bt": np.ascontiguousarray(gemm_b.T), "c": gemm_c}, [("y", f16)]),
                      "HALF", 1.5, "TensorRT rounds the MATRIX_MULTIPLY to fp16 before the SUM; onnxruntime's CPU "
                      "provider runs the MatMul → Add chain in float32 and rounds once (it removes the casts "
                      "between consecutive fp16 nodes): the same bound as " + GEMM_TWICE,
                      ulp_at=lambda f: _gemm_scale(f, gemm_b, gemm_c)),
        _fp16("fp16_gemm_nobias", "Gemm", {"a": _h(4, 64, seed=16)}, {"b": _h(64, 8, seed=19)}, max_ulp=1,
              why=SUM_ORDER),
        _fp16("fp16_conv", "Conv", {"x": _h(1, 3, 8, 8, seed=20)}, {"w": _h(4, 3, 3, 3, seed=21)},
              attrs=dict(pads=[1, 1, 1, 1]), max_ulp=1, why=SUM_ORDER),
        _fp16("fp16_conv_bias_stride", "Conv", {"x": _h(1, 8, 9, 9, seed=22)}, {"w": cv_w, "b": cv_b},
              attrs=dict(strides=[2, 2]), max_ulp=1,
              why="the bias is added inside the convolution's float32 accumulation on both sides; " + SUM_ORDER,
              exact=lambda f: _conv64(*(v.astype(np.float64) for v in (f["x"], cv_w, cv_b)))[:, :, ::2, ::2],
              exact_ulp=1),
        _fp16("fp16_cast_to_fp32", "Cast", {"x": x}, attrs=dict(to=TensorProto.FLOAT), out_dtype=f32,
              why="widening is exact"),
        _fp16("fp16_cast_from_fp32", "Cast", {"x": rng(25).standard_normal((3, 40)).astype(f32) * 100},
              attrs=dict(to=TensorProto.FLOAT16), why="one round to nearest even on both sides"),
        _fp16("fp16_concat", "Concat", {"a": a, "b": b}, attrs=dict(axis=1), why=MOVES),
        _fp16("fp16_reshape", "Reshape", {"x": x}, {"s": np.array([6, -1], np.int64)}, why=MOVES),
        _fp16("fp16_transpose", "Transpose", {"x": x}, attrs=dict(perm=[0, 2, 3, 1]), why=MOVES),
    ]
    return out


def _bf16_graph(id, op, feeds, consts=None, attrs=None, why=MOVES, exact=None, max_ulp=0, exact_ulp=0,
                ulp_at=None):
    """A graph of float32 inputs cast to BFLOAT16, one ``op`` on them (every feed, then ``consts``), and a cast
    of its result back to float32: bf16 inside, float32 at the edges (see :func:`_bf16_cases` for why)."""
    names = list(feeds)
    nodes = [helper.make_node("Cast", [n], [f"{n}_bf16"], to=TensorProto.BFLOAT16) for n in names]
    if op is not None:
        nodes.append(helper.make_node(op, [f"{n}_bf16" for n in names] + list(consts or {}), ["y_bf16"],
                                      **(attrs or {})))
    else:
        nodes[-1].output[0] = "y_bf16"
    nodes.append(helper.make_node("Cast", ["y_bf16"], ["y"], to=TensorProto.FLOAT))
    return PrecisionCase(OnnxCase(id, nodes, dict(feeds), dict(consts or {}), [("y", f32)]), "BF16", max_ulp, why,
                         ulp_at, exact, exact_ulp)


def _bf16_cases() -> list[PrecisionCase]:
    """bf16 through onnxruntime: its CPU provider runs Cast and the data-movement ops (Concat, Reshape,
    Transpose, Identity) in bfloat16 and no arithmetic at all (Add, Mul, MatMul, Relu, Exp, Softmax,
    ReduceSum… raise NOT_IMPLEMENTED in onnxruntime 1.32), and its Python API does not take ml_dtypes
    arrays as feeds.  So these graphs take float32 inputs, cast them to BFLOAT16, move them, and cast back;
    the bf16 arithmetic is in :data:`BF16_COMPUTE_CASES` (against float64) and the hand-built cases."""
    x = rng(30).standard_normal((3, 40)).astype(f32) * 10
    ties = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 1 + 2 ** -8 + 2 ** -20, 3.4e38, -3.4e38,
                     1e-39, 2 ** -133 * 3, 256 + 1, 0.0, -0.0], f32)
    return [
        _bf16_graph("bf16_cast_roundtrip", None, {"x": x}, why="one round to nearest even on both sides",
                    exact=lambda f: f["x"]),
        _bf16_graph("bf16_cast_ties", None, {"x": ties}, why="ties to even, overflow to inf, subnormals: one "
                                                               "round to nearest even on both sides",
                    exact=lambda f: f["x"]),
        _bf16_graph("bf16_concat", "Concat", {"a": x, "b": x[::-1].copy()}, attrs=dict(axis=0)),
        _bf16_graph("bf16_reshape", "Reshape", {"x": x}, {"s": np.array([-1, 8], np.int64)}),
        _bf16_graph("bf16_transpose", "Transpose", {"x": x}, attrs=dict(perm=[1, 0])),
    ]


# ------------------------------------------------------------------------------ bf16 arithmetic vs float64

def _b(*shape, seed=0, scale=1.0, low=None, high=None):
    """float32 values that are bf16 values (so the graph's input casts are exact)."""
    r = rng(seed)
    v = r.uniform(low, high, shape) if low is not None else r.standard_normal(shape) * scale
    return v.astype(f32).astype(bf16).astype(f32)


def _softmax64(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _layernorm64(x, g, b, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * g + b


def _conv64(x, w, b):
    """NCHW convolution, stride 1, no padding, in float64."""
    kh, kw = w.shape[2:]
    patches = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))  # n c oh ow kh kw
    return np.einsum("ncyxij,ocij->noyx", patches, w) + b[None, :, None, None]


def _e64(fn, *names):
    return lambda feeds: fn(*(feeds[n].astype(np.float64) for n in names))


BF16_EXACT = "one rounding of a float32 result on bf16 values: the correctly rounded value (24 >= 2·8 + 2)"
BF16_LIBM = "float32 libm, then one rounding: at most 1 ulp from the correctly rounded value"
BF16_SUM = ("float32 accumulation (error ~n·2^-24·Σ|x|, far below half a bf16 ulp) then one rounding: at most "
            "1 ulp from the correctly rounded value (where the float32 value lies next to a midpoint)")


def _bf16_compute_cases() -> list[PrecisionCase]:
    """bf16 arithmetic through TensorRT's ONNX parser, against the exact value rounded once to bf16.

    No onnxruntime here (it has no bf16 arithmetic on CPU): ``max_ulp`` is unused and ``exact`` is the oracle.
    Weights are graph inputs cast to bf16 like the data: TensorRT cannot hand bf16 constants back to a
    snapshot (see the test module)."""
    a, b = _b(4, 8, 16, seed=40), _b(4, 8, 16, seed=41)
    pos = _b(4, 8, 16, seed=42, low=0.05, high=20.0)
    x = _b(4, 8, 16, seed=43, scale=3.0)
    mm_a, mm_b, mm_c = _b(6, 96, seed=44), _b(96, 10, seed=45), _b(10, seed=46)
    ln_x, ln_g, ln_b = _b(4, 32, seed=47, scale=2.0), _b(32, seed=48), _b(32, seed=49)
    cv_x, cv_w, cv_b = _b(1, 4, 7, 7, seed=50), _b(5, 4, 3, 3, seed=51), _b(5, seed=52)
    out = [_bf16_graph(f"bf16_{op.lower()}_vs_exact", op, {"a": a, "b": pos if op == "Div" else b}, why=BF16_EXACT,
                       exact=_e64(fn, "a", "b")) for op, fn in _ARITH.items()]
    out += [
        _bf16_graph("bf16_relu_vs_exact", "Relu", {"x": x}, why=MOVES, exact=_e64(lambda v: np.maximum(v, 0), "x")),
        _bf16_graph("bf16_sigmoid_vs_exact", "Sigmoid", {"x": x}, why=BF16_LIBM, exact_ulp=1,
                    exact=_e64(lambda v: 1 / (1 + np.exp(-v)), "x")),
        _bf16_graph("bf16_tanh_vs_exact", "Tanh", {"x": x}, why=BF16_LIBM, exact_ulp=1, exact=_e64(np.tanh, "x")),
        _bf16_graph("bf16_exp_vs_exact", "Exp", {"x": x}, why=BF16_LIBM, exact_ulp=1, exact=_e64(np.exp, "x")),
        _bf16_graph("bf16_pow_vs_exact", "Pow", {"a": pos, "b": _b(4, 8, 16, seed=53)}, why=BF16_LIBM, exact_ulp=1,
                    exact=_e64(np.power, "a", "b")),
        _bf16_graph("bf16_softmax_vs_exact", "Softmax", {"x": x}, attrs=dict(axis=-1), why=BF16_SUM, exact_ulp=1,
                    exact=_e64(lambda v: _softmax64(v, -1), "x")),
        _bf16_graph("bf16_reducesum_vs_exact", "ReduceSum", {"x": x}, {"axes": np.array([1, 2], np.int64)},
                    attrs=dict(keepdims=0), why=BF16_SUM, exact_ulp=1,
                    exact=_e64(lambda v: v.sum(axis=(1, 2)), "x")),
        _bf16_graph("bf16_reducemean_vs_exact", "ReduceMean", {"x": x}, attrs=dict(axes=[-1], keepdims=1),
                    why=BF16_SUM, exact_ulp=1, exact=_e64(lambda v: v.mean(axis=-1, keepdims=True), "x")),
        _bf16_graph("bf16_matmul_vs_exact", "MatMul", {"a": mm_a, "b": mm_b}, why=BF16_SUM, exact_ulp=1,
                    exact=_e64(np.matmul, "a", "b")),
        _bf16_graph("bf16_layernorm_vs_exact", "LayerNormalization", {"x": ln_x, "g": ln_g, "bb": ln_b},
                    attrs=dict(axis=-1), why=BF16_SUM, exact_ulp=1, exact=_e64(_layernorm64, "x", "g", "bb")),
        _bf16_graph("bf16_conv_vs_exact", "Conv", {"x": cv_x, "w": cv_w, "b": cv_b}, why=BF16_SUM, exact_ulp=1,
                    exact=_e64(_conv64, "x", "w", "b")),
    ]
    return out


FP16_CASES = _fp16_cases()
BF16_CASES = _bf16_cases()
BF16_COMPUTE_CASES = _bf16_compute_cases()
