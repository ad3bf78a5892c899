"""Conformance of the reference executor's reduced-precision emulation (fp16, bf16).

The executor runs a fp16/bf16 layer by widening its inputs and weights to float32 exactly, running the
float32 semantics and rounding each output to its recorded type, to nearest even
(:mod:`converter.reference`).  These tables check that:

* ``FP16_CASES`` / ``BF16_CASES`` (:mod:`tests.converter.onnx_fp16_cases`): ONNX models in fp16 (bf16
  through casts: onnxruntime's CPU provider runs only Cast and data movement in bf16) parsed by TensorRT's
  ONNX parser into a strongly typed network, snapshotted, run by the executor and compared with
  onnxruntime in ulps of the result's type, each against a bound with its reason.  Most cases are also
  compared with the correctly rounded value (float64, rounded once).
* ``BF16_COMPUTE_CASES``: bf16 arithmetic (Add…Div, activations, Exp, Pow, Softmax, reductions, MatMul,
  LayerNormalization, Conv) parsed the same way, against the correctly rounded value only.
* ``API_CASES``: strongly typed networks built with TensorRT's API, with hand-derived expected values
  written as bit patterns: ties to even, overflow to infinity, subnormals, sums whose exact value is not
  representable, and matrix products whose float32-accumulated value differs from a fp16/bf16-accumulated
  one.  The executor's stated assumption is that TensorRT accumulates products and reductions of
  fp16/bf16 tensors in float32 and rounds once; those cases pin that assumption down.
* every network also builds an engine ahead of time (no GPU needed; ~0.05 s each at opt_level 0), and
  so does a bf16 network with bf16 constant weights (handed to TensorRT by pointer, trtshim.weights).

Measured (onnxruntime 1.32, TensorRT-RTX 1.7.1): every single-op fp16 case agrees with onnxruntime to
0 ulps except Sigmoid (2 ulps in the tail, where onnxruntime's logistic is 2 ulps from the correctly
rounded value and the executor 1) and Gemm with a bias (TensorRT rounds the product before the bias:
14 ulps of the result under cancellation, 1 ulp of max(|product|, |result|)).  onnxruntime's CPU
provider runs fp16 chains in float32 without rounding between nodes (its cast insertion removes the
casts between consecutive nodes), so multi-node ONNX graphs are not a per-layer fp16 oracle; the
tables keep to single ops.  The bf16 arithmetic cases are all 0 ulps from the correctly rounded value.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pytest

from converter import trt as trtshim
from converter.engine import BuilderSettings, optimize_network
from converter.reference import ReferenceExecutor
from converter.snapshot import Snapshot
from tests.converter.onnx_cases import run_onnxruntime
from tests.converter.onnx_fp16_cases import (
    BF16_CASES,
    BF16_COMPUTE_CASES,
    FP16_CASES,
    NP_OF,
    bf16,
    bits,
    f16,
    f32,
    layer_types,
    parse_strongly_typed,
    ulp,
    ulp_diff,
)


def _trt():
    return trtshim.module()


# ============================================================================ (a) ONNX vs onnxruntime

def _run_both(pc):
    _, network, _ = parse_strongly_typed(pc.case.model())
    snap = Snapshot.from_network(network)
    assert snap.topology["strongly_typed"]
    assert pc.type_name in layer_types(snap), f"{pc.id}: the parsed network does not compute in {pc.type_name}"
    ours = ReferenceExecutor(snap).run(pc.case.feeds)
    theirs = run_onnxruntime(pc.case)
    return snap, ours, theirs


def _ulps(pc, actual, expected) -> np.ndarray:
    if pc.ulp_at is None:
        return ulp_diff(actual, expected, pc.type_name)
    diff = np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))
    return diff / ulp(pc.ulp_at(pc.case.feeds), pc.type_name)


def _check_against_onnxruntime(pc):
    snap, ours, theirs = _run_both(pc)
    for name, dtype in pc.case.outputs:
        a, e = ours[name], theirs[name]
        assert a.dtype == np.dtype(dtype) and a.shape == e.shape, f"{pc.id}/{name}: {a.dtype}{a.shape}"
        if dtype == f32 and pc.type_name == "HALF":  # a cast out of fp16: widening is exact
            assert np.array_equal(a, e, equal_nan=True), f"{pc.id}/{name}"
            continue
        worst = float(_ulps(pc, a, e).max())
        assert worst <= pc.max_ulp, (f"{pc.id}/{name}: {worst} ulps from onnxruntime, bound {pc.max_ulp} "
                                     f"({pc.why})")
        if pc.exact is not None:  # the correctly rounded value: float64, rounded once
            exact = pc.exact(pc.case.feeds).astype(NP_OF[pc.type_name])
            off = float(ulp_diff(a, exact, pc.type_name).max())
            assert off <= pc.exact_ulp, f"{pc.id}/{name}: {off} ulps from the correctly rounded value"


@pytest.mark.parametrize("pc", FP16_CASES, ids=[c.id for c in FP16_CASES])
def test_fp16_onnx_conformance(pc):
    _check_against_onnxruntime(pc)


@pytest.mark.parametrize("pc", BF16_CASES, ids=[c.id for c in BF16_CASES])
def test_bf16_onnx_conformance(pc):
    _check_against_onnxruntime(pc)


@pytest.mark.parametrize("pc", BF16_COMPUTE_CASES, ids=[c.id for c in BF16_COMPUTE_CASES])
def test_bf16_onnx_against_exact(pc):
    """bf16 arithmetic parsed from ONNX (onnxruntime cannot run it): the executor within ``exact_ulp`` of the
    correctly rounded value."""
    _, network, _ = parse_strongly_typed(pc.case.model())
    snap = Snapshot.from_network(network)
    assert "BF16" in layer_types(snap)
    computing = [r["type"] for r in snap.layers if r["type"] != "CAST" and r["outputs"][0]["dtype"] == "BF16"]
    assert computing, f"{pc.id}: no layer computes in bf16"
    y = ReferenceExecutor(snap).run(pc.case.feeds)["y"]
    exact = pc.exact(pc.case.feeds).astype(bf16)
    off = float(ulp_diff(y, exact, "BF16").max())
    assert off <= pc.exact_ulp, f"{pc.id}: {off} ulps from the correctly rounded value ({pc.why})"


def test_onnxruntime_fp16_chains_are_not_rounded_per_node():
    """Why the ONNX tables hold single ops: onnxruntime's CPU provider computes Add then Sub of fp16
    tensors in float32 and rounds only the graph's outputs, where TensorRT's strongly typed network
    rounds each layer's output (1 + 2^-11 → 1 in fp16, then 1 - 2^-11)."""
    from onnx import helper

    from tests.converter.onnx_cases import OnnxCase

    c = OnnxCase("chain", [helper.make_node("Add", ["a", "b"], ["t"]), helper.make_node("Sub", ["t", "b"], ["y"])],
                 {"a": np.array([1.0], f16), "b": np.array([2.0 ** -11], f16)}, {}, [("y", f16)])
    _, network, _ = parse_strongly_typed(c.model())
    ours = ReferenceExecutor(Snapshot.from_network(network)).run(c.feeds)["y"]
    assert ours.view(np.uint16).tolist() == [0x3BFF]  # 1 - 2^-11: the sum was rounded to 1.0 first
    assert run_onnxruntime(c)["y"].view(np.uint16).tolist() == [0x3C00]  # 1.0: no rounding in between


def test_tables_cover_the_ops():
    ops = {n.op_type for pc in FP16_CASES for n in pc.case.nodes}
    want = {"Conv", "MatMul", "Gemm", "Add", "Mul", "Sub", "Div", "Relu", "Sigmoid", "Tanh", "Softmax", "ReduceSum",
            "ReduceMean", "LayerNormalization", "Cast", "Concat", "Reshape", "Transpose", "Pow", "Exp"}
    assert want <= ops, sorted(want - ops)
    bf16_ops = {n.op_type for pc in BF16_COMPUTE_CASES for n in pc.case.nodes}
    assert want - {"Gemm", "Concat", "Reshape", "Transpose"} <= bf16_ops, sorted(want - bf16_ops)  # moves: BF16_CASES
    ids = [c.id for c in FP16_CASES + BF16_CASES + BF16_COMPUTE_CASES + API_CASES]
    assert len(ids) == len(set(ids))


# ============================================================================ (b) hand-built, known rounding

@dataclasses.dataclass
class ApiCase:
    id: str
    type_name: str  #: the type the network computes in
    build: Callable  # (network, trt, feeds, keep) -> output ITensor
    feeds: dict
    expected: np.ndarray  #: bit patterns (uint16) of the expected output, in ``out_dtype``
    out_dtype: object
    note: str = ""


def _input(net, feeds, name):
    a = feeds[name]
    return net.add_input(name, trtshim.trt_dtype(a.dtype), a.shape)


def _cast(to):
    def build(net, trt, feeds, keep):
        return net.add_cast(_input(net, feeds, "x"), getattr(trt.DataType, to)).get_output(0)
    return build


def _elementwise(op):
    def build(net, trt, feeds, keep):
        a, b = _input(net, feeds, "a"), _input(net, feeds, "b")
        return net.add_elementwise(a, b, getattr(trt.ElementWiseOperation, op)).get_output(0)
    return build


def _unary(op):
    def build(net, trt, feeds, keep):
        return net.add_unary(_input(net, feeds, "x"), getattr(trt.UnaryOperation, op)).get_output(0)
    return build


def _matmul(net, trt, feeds, keep):
    a, b = _input(net, feeds, "a"), _input(net, feeds, "b")
    none = trt.MatrixOperation.NONE
    return net.add_matrix_multiply(a, none, b, none).get_output(0)


def _matmul_const_bf16(net, trt, feeds, keep):
    """A bf16 matrix product with a bf16 constant (the weights go to TensorRT through trtshim.weights)."""
    b = np.ones((5, 1), bf16)
    keep.append(b)
    const = net.add_constant(b.shape, trtshim.weights(b)).get_output(0)
    none = trt.MatrixOperation.NONE
    return net.add_matrix_multiply(_input(net, feeds, "a"), none, const, none).get_output(0)


def _reduce_sum(net, trt, feeds, keep):
    return net.add_reduce(_input(net, feeds, "a"), trt.ReduceOperation.SUM, 1 << 1, True).get_output(0)


def _conv_1x1_ones(net, trt, feeds, keep):
    """1x1 convolution summing 5 channels with a fp16 kernel of ones (fp16 weights read back by the snapshot)."""
    w = np.ones((1, 5, 1, 1), f16)
    keep.append(w)
    layer = net.add_convolution_nd(_input(net, feeds, "x"), 1, (1, 1), trt.Weights(w))
    return layer.get_output(0)


def _sequential(values, dtype):
    """Left-to-right sum rounding after every addition (what a fp16/bf16 accumulator would give)."""
    total = np.zeros(values.shape[:-1], dtype)
    for k in range(values.shape[-1]):
        total = (total.astype(f32) + values[..., k].astype(f32)).astype(dtype)
    return total


_E11, _E8 = 2.0 ** -11, 2.0 ** -8
_F16_CAST_IN = np.array([1.0, 1 + _E11, 1 + 3 * _E11, 1 + _E11 + 2.0 ** -20, -(1 + _E11), 65504.0,
                         65520.0 - 2.0 ** -8, 65520.0, 1e5, -1e5, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -25,
                         2.0 ** -25 + 2.0 ** -35, 2.0 ** -14, 2.0 ** -14 - 2.0 ** -25, -(2.0 ** -26), np.inf, np.nan],
                        f32)
_F16_CAST_OUT = [0x3C00, 0x3C00, 0x3C02, 0x3C01, 0xBC00, 0x7BFF,
                 0x7BFF, 0x7C00, 0x7C00, 0xFC00, 0x0001, 0x0000, 0x0002,
                 0x0001, 0x0400, 0x0400, 0x8000, 0x7C00, 0x7E00]
_BF16_MAX_TIE = (2 - 2.0 ** -8) * 2.0 ** 127
_BF16_CAST_IN = np.array([1.0, 1 + _E8, 1 + 3 * _E8, 1 + _E8 + 2.0 ** -20, -(1 + _E8), 257.0, 259.0,
                          _BF16_MAX_TIE, _BF16_MAX_TIE * (1 - 2.0 ** -20), -np.float32(3.4028235e38),
                          2.0 ** -133, 2.0 ** -134, 3 * 2.0 ** -134, 2.0 ** -126, np.inf, np.nan], f32)
_BF16_CAST_OUT = [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xBF80, 0x4380, 0x4382,
                  0x7F80, 0x7F7F, 0xFF80,
                  0x0001, 0x0000, 0x0002, 0x0080, 0x7F80, 0x7FC0]
# fp16 values → bf16: 1+2^-10 (below the bf16 tie), 1+2^-8+2^-10 (above it), 1+2^-8 (a tie: to even),
# 65504 (nearer 65536 than 65280), 2^-24 (exact), 2^-14
_F16_TO_BF16_IN = bits([0x3C01, 0x3C05, 0x3C04, 0x7BFF, 0x0001, 0x0400], f16)
_F16_TO_BF16_OUT = [0x3F80, 0x3F81, 0x3F80, 0x4780, 0x3380, 0x3880]
# bf16 values → fp16: 99840 (inf), 1+2^-7 (exact), 2^-30 (below half the smallest subnormal: 0),
# 1.5·2^-25 (0.75 of the smallest subnormal: rounds up to it), 2^-25 (a tie: to even, 0)
_BF16_TO_F16_IN = bits([0x47C3, 0x3F81, 0x3080, 0x3340, 0x3300], bf16)
_BF16_TO_F16_OUT = [0x7C00, 0x3C08, 0x0000, 0x0001, 0x0000]

# fp16 SUM: ties to even (1 + 2^-11, (1+2^-10) + 2^-11, 2048 + 1, 2048 + 3), just above a tie, overflow at
# the tie 65520, just below it, -65520, subnormal + subnormal, x + (-x) = +0
_F16_SUM_A = np.array([1, 1 + 2 ** -10, 1, 2048, 2048, 65504, 65504, -65504, 2 ** -24, 1], f16)
_F16_SUM_B = np.array([_E11, _E11, _E11 * (1 + 2 ** -10), 1, 3, 16, 8, -16, 2 ** -24, -1], f16)
_F16_SUM_OUT = [0x3C00, 0x3C02, 0x3C01, 0x6800, 0x6802, 0x7C00, 0x7BFF, 0xFC00, 0x0002, 0x0000]
# fp16 PROD: (1+2^-10)^2 = 1 + 2^-9 + 2^-20, 2^-14·2^-10 = 2^-24, 2^-14·2^-11 (a tie with 0), 256·256 = inf
_F16_PROD_A = np.array([1 + 2 ** -10, 2 ** -14, 2 ** -14, 256, -3], f16)
_F16_PROD_B = np.array([1 + 2 ** -10, 2 ** -10, 2 ** -11, 256, 2 ** -24], f16)
_F16_PROD_OUT = [0x3C02, 0x0001, 0x0000, 0x7C00, 0x8003]
# fp16 DIV: 1/3 = 0x3555, 2/3 = 0x3955, 1/0 = inf, 1/65504 (subnormal: 2^-16 (1 + 2^-11 + …) → 0x0100)
_F16_DIV_A = np.array([1, 2, 1, 1], f16)
_F16_DIV_B = np.array([3, 3, 0, 65504], f16)
_F16_DIV_OUT = [0x3555, 0x3955, 0x7C00, 0x0100]
# bf16 SUM: 1 + 2^-8 (tie), (1+2^-7) + 2^-8 (tie), 1 + 2^-8(1+2^-7) (above), 256 + 1 (tie), 256 + 3 (tie)
_BF16_SUM_A = np.array([1, 1 + 2 ** -7, 1, 256, 256], bf16)
_BF16_SUM_B = np.array([_E8, _E8, _E8 * (1 + 2 ** -7), 1, 3], bf16)
_BF16_SUM_OUT = [0x3F80, 0x3F82, 0x3F81, 0x4380, 0x4382]
_BF16_PROD_OUT = [0x3F82]  # (1+2^-7)^2 = 1 + 2^-6 + 2^-14
# matrix products whose float32 accumulation differs from a fp16 one: 1 + 4·2^-11 (a fp16 accumulator
# rounds each 1 + 2^-11 back to 1), 2048 + 1 - 2048 (a fp16 accumulator loses the 1), and 1 + 2^-11
# (a tie either way)
_MM_A16 = np.array([[1, _E11, _E11, _E11, _E11], [2048, 1, -2048, 0, 0], [1, _E11, 0, 0, 0]], f16)
_MM_OUT16 = [[0x3C02], [0x3C00], [0x3C00]]
_MM_A_BF = np.array([[1, _E8, _E8, _E8, _E8], [256, 1, -256, 0, 0], [1, _E8, 0, 0, 0]], bf16)
_MM_OUT_BF = [[0x3F82], [0x3F80], [0x3F80]]
FP32_ACCUMULATION = ("the emulation's stated assumption: TensorRT accumulates fp16/bf16 products and sums in "
                     "float32 and rounds once")

API_CASES = [
    ApiCase("cast_f32_to_f16_rounding", "HALF", _cast("HALF"), {"x": _F16_CAST_IN}, _F16_CAST_OUT, f16,
            "ties to even, 65520 → inf, subnormals"),
    ApiCase("cast_f32_to_bf16_rounding", "BF16", _cast("BF16"), {"x": _BF16_CAST_IN}, _BF16_CAST_OUT, bf16,
            "ties to even, the tie above the largest bf16 → inf, subnormals"),
    ApiCase("cast_f16_to_bf16", "BF16", _cast("BF16"), {"x": _F16_TO_BF16_IN}, _F16_TO_BF16_OUT, bf16),
    ApiCase("cast_bf16_to_f16", "HALF", _cast("HALF"), {"x": _BF16_TO_F16_IN}, _BF16_TO_F16_OUT, f16),
    ApiCase("cast_f16_to_f32_exact", "FLOAT", _cast("FLOAT"), {"x": bits([0x0001, 0x7BFF, 0x3555], f16)},
            np.array([2.0 ** -24, 65504, 0.333251953125], f32).view(np.uint32), f32),
    ApiCase("f16_sum_rounds_once", "HALF", _elementwise("SUM"), {"a": _F16_SUM_A, "b": _F16_SUM_B},
            _F16_SUM_OUT, f16),
    ApiCase("f16_prod_rounds_once", "HALF", _elementwise("PROD"), {"a": _F16_PROD_A, "b": _F16_PROD_B},
            _F16_PROD_OUT, f16),
    ApiCase("f16_div_rounds_once", "HALF", _elementwise("DIV"), {"a": _F16_DIV_A, "b": _F16_DIV_B},
            _F16_DIV_OUT, f16),
    ApiCase("f16_exp_overflow_underflow", "HALF", _unary("EXP"), {"x": np.array([0, 12, -18], f16)},
            [0x3C00, 0x7C00, 0x0000], f16, "e^12 > 65520 → inf, e^-18 < 2^-25 → 0"),
    ApiCase("bf16_sum_rounds_once", "BF16", _elementwise("SUM"), {"a": _BF16_SUM_A, "b": _BF16_SUM_B},
            _BF16_SUM_OUT, bf16),
    ApiCase("bf16_prod_rounds_once", "BF16", _elementwise("PROD"),
            {"a": np.array([1 + 2 ** -7], bf16), "b": np.array([1 + 2 ** -7], bf16)}, _BF16_PROD_OUT, bf16),
    ApiCase("f16_matmul_fp32_accumulation", "HALF", _matmul, {"a": _MM_A16, "b": np.ones((5, 1), f16)},
            _MM_OUT16, f16, FP32_ACCUMULATION),
    ApiCase("f16_reduce_sum_fp32_accumulation", "HALF", _reduce_sum, {"a": _MM_A16}, _MM_OUT16, f16,
            FP32_ACCUMULATION),
    ApiCase("f16_conv_fp32_accumulation", "HALF", _conv_1x1_ones,
            {"x": np.ascontiguousarray(_MM_A16.T.reshape(1, 5, 1, 3))}, np.array(_MM_OUT16).reshape(1, 1, 1, 3),
            f16, FP32_ACCUMULATION),
    ApiCase("bf16_matmul_fp32_accumulation", "BF16", _matmul, {"a": _MM_A_BF, "b": np.ones((5, 1), bf16)},
            _MM_OUT_BF, bf16, FP32_ACCUMULATION),
    ApiCase("bf16_reduce_sum_fp32_accumulation", "BF16", _reduce_sum, {"a": _MM_A_BF}, _MM_OUT_BF, bf16,
            FP32_ACCUMULATION),
]


def _api_network(c: ApiCase):
    trt = _trt()
    builder, network = trtshim.create_network(strongly_typed=True)
    keep: list = []
    out = c.build(network, trt, c.feeds, keep)
    out.name = "y"
    network.mark_output(out)
    return builder, network, keep


# overflow to infinity is what these cases check; numpy warns when its casts produce one
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("c", API_CASES, ids=[c.id for c in API_CASES])
def test_known_rounding(c):
    _, network, keep = _api_network(c)
    snap = Snapshot.from_network(network)
    assert snap.topology["strongly_typed"]
    y = ReferenceExecutor(snap).run(c.feeds)["y"]
    want = np.asarray(c.expected, np.uint32 if np.dtype(c.out_dtype) == np.dtype(f32) else np.uint16)
    assert y.dtype == np.dtype(c.out_dtype) and y.shape == want.shape
    got = y.view(want.dtype if want.dtype == np.uint32 else np.uint16)
    nan = np.isnan(y.astype(f32))
    assert np.array_equal(np.isnan(want.view(y.dtype).astype(f32)), nan), c.id
    assert np.array_equal(got[~nan], want[~nan].astype(got.dtype)), (
        f"{c.id}: got bits {[hex(v) for v in got.ravel()]}, want {[hex(v) for v in want.ravel()]}")


@pytest.mark.parametrize("dtype,rows", [(f16, _MM_A16), (bf16, _MM_A_BF)], ids=["fp16", "bf16"])
def test_fp32_accumulation_cases_differ_from_narrow_accumulation(dtype, rows):
    """The matrix-product cases above really tell the two accumulations apart: a left-to-right sum rounded
    after every addition gives 1.0 on the first two rows where float32 accumulation gives 1 + 4u and 1."""
    narrow = _sequential(rows, dtype).astype(f32)
    wide = rows.astype(f32).sum(axis=-1).astype(dtype).astype(f32)
    assert narrow[0] == 1.0 and wide[0] > 1.0
    assert narrow[1] == 0.0 and wide[1] == 1.0


def test_bf16_constant_weights_are_not_read_back():
    """TensorRT's Python API cannot hand bf16 weights back (Weights.numpy() has no bf16 type), so a network
    with a bf16 constant does not snapshot; lowered snapshots carry their bf16 weights themselves
    (:mod:`converter.precision`) and the ONNX tables feed bf16 through casts of inputs."""
    from converter.errors import SnapshotError

    c = ApiCase("bf16_const", "BF16", _matmul_const_bf16, {"a": _MM_A_BF}, _MM_OUT_BF, bf16)
    _, network, keep = _api_network(c)
    with pytest.raises(SnapshotError, match="does not read back"):
        Snapshot.from_network(network)


# ============================================================================ (c) engines, ahead of time

def _build(builder, network) -> bytes:
    engine = optimize_network((builder, network), BuilderSettings(opt_level=0))
    assert engine is not None and len(engine) > 1000
    return engine


def test_engine_builds_bf16_with_bf16_weights():
    """bf16 constants go to TensorRT through trtshim.weights (by pointer): the engine builds."""
    c = ApiCase("bf16_const", "BF16", _matmul_const_bf16, {"a": _MM_A_BF}, _MM_OUT_BF, bf16)
    builder, network, keep = _api_network(c)
    _build(builder, network)


_ALL_ONNX = FP16_CASES + BF16_CASES + BF16_COMPUTE_CASES


@pytest.mark.parametrize("pc", _ALL_ONNX, ids=[c.id for c in _ALL_ONNX])
def test_engine_builds_onnx(pc):
    builder, network, _ = parse_strongly_typed(pc.case.model())
    _build(builder, network)


@pytest.mark.parametrize("c", API_CASES, ids=[c.id for c in API_CASES])
def test_engine_builds_api(c):
    builder, network, keep = _api_network(c)
    _build(builder, network)
