"""Reference executor: runs a :class:`~converter.snapshot.Snapshot` layer by layer in numpy.

Each layer follows TensorRT's *documented* operator semantics (the TensorRT
operator reference and the ``I*Layer`` API documentation), independent of any
converter.  It is meant as an oracle to compare converted networks against the
source framework without a GPU, and to bisect divergences
(``run(..., keep_intermediates=True)`` returns every tensor by name).

Floating point work stays in float32 (no float64 upcasts on the hot paths);
convolutions use im2col views (``sliding_window_view``) and one batched matmul,
with fast paths for 1x1 and depthwise convolutions.  Weights are reshaped once
in ``__init__``.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import concurrent.futures
import contextlib
import os
import threading

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from converter import layers as layer_kinds
from converter.snapshot import Snapshot, decode_float

log = logging.getLogger(__name__)

__all__ = ["ExecutorError", "UnsupportedLayerError", "ReferenceExecutor", "SUPPORTED_LAYER_TYPES"]


from converter.errors import ExecutorError, FeedError, UnsupportedLayerError  # noqa: E402 - re-exported


_NP_DTYPES = {
    "FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64, "INT8": np.int8,
    "UINT8": np.uint8, "BOOL": np.bool_,
}


def _np_dtype(name: str) -> np.dtype:
    try:
        return np.dtype(_NP_DTYPES[name])
    except KeyError:
        raise ExecutorError(f"data type {name} is not supported by the reference executor") from None


def _axes_from_mask(mask: int, rank: int) -> tuple[int, ...]:
    return tuple(i for i in range(rank) if mask >> i & 1)


def _is_float(arr) -> bool:
    return np.issubdtype(arr.dtype, np.floating)


# ----------------------------------------------------------------------------- erf

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to ~1e-12 (float64 math on a float64 copy; numpy has no erf)."""
    x64 = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x64)
    a = np.abs(x64)
    small = a <= 3.0
    xs = x64[small]
    x2 = xs * xs
    term = xs.copy()
    total = xs.copy()
    for n in range(1, 80):
        term *= -x2 / n
        total += term / (2 * n + 1)
    out[small] = total * _TWO_OVER_SQRT_PI
    big = ~small
    if big.any():
        xb = a[big]
        inv = 1.0 / (xb * xb)
        series = 1.0 + inv * (-0.5 + inv * (0.75 + inv * (-1.875 + inv * 6.5625)))
        erfc = np.exp(-xb * xb) / (xb * math.sqrt(math.pi)) * series
        out[big] = np.sign(x64[big]) * (1.0 - erfc)
    return out.astype(x.dtype, copy=False) if _is_float(np.asarray(x)) else out


# ----------------------------------------------------------------------------- spatial helpers

def _spatial_padding(in_sizes, kernel, stride, dilation, pre, post, mode, what="convolution"):
    """Per spatial dim: (pre, post, extra_end, out) following TensorRT's PaddingMode formulas."""
    res = []
    for i, size in enumerate(in_sizes):
        dk = 1 + dilation[i] * (kernel[i] - 1)
        s = stride[i]
        if mode in ("SAME_UPPER", "SAME_LOWER"):
            out = -(-size // s)
            total = max(0, (out - 1) * s + dk - size)
            small = total // 2
            b, a = (small, total - small) if mode == "SAME_UPPER" else (total - small, small)
            res.append((b, a, 0, out))
            continue
        b, a = pre[i], post[i]
        m = size + b + a
        if mode == "EXPLICIT_ROUND_UP":
            out = -(-(m - dk) // s) + 1
        else:
            out = (m - dk) // s + 1
        extra = max(0, (out - 1) * s + dk - m)
        res.append((b, a, extra, out))
    return res


def _pad_spatial(x, pads, value=0.0):
    """Pad (negative = crop) the trailing len(pads) dims; pads = [(before, after), ...]."""
    nd = len(pads)
    lead = x.ndim - nd
    if all(b == 0 and a == 0 for b, a in pads):
        return x
    crop = []
    for b, a in pads:
        crop.append(slice(max(0, -b), None if a >= 0 else a))
    if any(b < 0 or a < 0 for b, a in pads):
        x = x[(slice(None),) * lead + tuple(crop)]
    width = [(0, 0)] * lead + [(max(0, b), max(0, a)) for b, a in pads]
    if any(w != (0, 0) for w in width):
        x = np.pad(x, width, mode="constant", constant_values=value)
    return x


def _windows(xp, kernel, stride, dilation, out):
    """View (N, C, *out, *kernel) of the windows of padded xp (trailing len(kernel) dims)."""
    nd = len(kernel)
    dk = [1 + dilation[i] * (kernel[i] - 1) for i in range(nd)]
    axes = tuple(range(xp.ndim - nd, xp.ndim))
    win = sliding_window_view(xp, dk, axis=axes)
    lead = xp.ndim - nd
    index = (slice(None),) * lead
    index += tuple(slice(0, (out[i] - 1) * stride[i] + 1, stride[i]) for i in range(nd))
    index += tuple(slice(None, None, dilation[i]) for i in range(nd))
    return win[index]


# ----------------------------------------------------------------------------- executor

_IMPLS: dict[str, Callable] = {}
_PREPARE: dict[str, Callable] = {}


def _registrar(table: dict[str, Callable]):
    """A decorator factory that files a function under one or more layer-type names in ``table``."""
    def register(*names):
        def deco(fn):
            for n in names:
                table[n] = fn
            return fn
        return deco
    return register


_impl = _registrar(_IMPLS)
_prepare = _registrar(_PREPARE)


SUPPORTED_LAYER_TYPES: frozenset  # filled at the end of the module


class ReferenceExecutor:
    """Evaluate a snapshot with numpy.

    ``run(feeds, outputs=None, keep_intermediates=False)`` returns the network
    outputs (or the requested tensors) by name; only layers needed for them are
    evaluated.  Unsupported layer types raise :class:`UnsupportedLayerError`
    when they are needed.
    """

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self._layers = snapshot.layers
        self._inputs = {t["name"]: t for t in snapshot.inputs}
        self._producer: dict[str, int] = {}
        for i, rec in enumerate(self._layers):
            for out in rec["outputs"]:
                self._producer[out["name"]] = i
        self._prepared: list = []
        self._params: list = []
        for rec in self._layers:
            prep = _PREPARE.get(rec["type"])
            weights = snapshot.layer_weights(rec)
            layer_kind = layer_kinds.kind(rec["type"])
            if layer_kind is not None:
                params = layer_kind.params.from_json(rec["params"])
                self._params.append(params)
                self._prepared.append(layer_kind.prepared(params, weights))
                continue
            self._params.append(rec["params"])
            if prep is not None:
                self._prepared.append(prep(rec, rec["params"], weights))
            else:
                self._prepared.append(weights)

    def unsupported_layers(self) -> list[tuple[str, str]]:
        return [(r["name"], r["type"]) for r in self._layers if r["type"] not in _IMPLS and (
            layer_kinds.kind(r["type"]) is None or layer_kinds.kind(r["type"]).run is None)]

    # -------------------------------------------------------------- feeds
    def _check_feeds(self, feeds):
        if not isinstance(feeds, dict):
            raise FeedError("feeds must be a dict of input name -> numpy array")
        unknown = sorted(set(feeds) - set(self._inputs))
        missing = sorted(set(self._inputs) - set(feeds))
        if unknown:
            raise FeedError(f"unknown feed name(s) {unknown}; network inputs are {sorted(self._inputs)}")
        if missing:
            raise FeedError(f"missing feed(s) {missing}; network inputs are {sorted(self._inputs)}")
        values = {}
        for name, rec in self._inputs.items():
            arr = np.asarray(feeds[name])
            want = _np_dtype(rec["dtype"])
            if arr.dtype != want:
                raise FeedError(f"feed {name!r} has dtype {arr.dtype}, the network input is {want} "
                                    f"({rec['dtype']})")
            shape = rec["shape"]
            if arr.ndim != len(shape) or any(d >= 0 and d != s for d, s in zip(shape, arr.shape)):
                raise FeedError(f"feed {name!r} has shape {arr.shape}, the network input is {tuple(shape)}")
            values[name] = arr
        return values

    # -------------------------------------------------------------- run
    def run(self, feeds: dict, outputs: list[str] | None = None, keep_intermediates: bool = False) -> dict:
        with _single_threaded_blas():
            return self._run(feeds, outputs, keep_intermediates)

    def _run(self, feeds: dict, outputs, keep_intermediates: bool) -> dict:
        values = self._check_feeds(feeds)
        wanted = list(self.snapshot.outputs if outputs is None else outputs)
        for name in wanted:
            if name not in self._producer and name not in self._inputs:
                raise FeedError(f"requested tensor {name!r} is not in the network")
        # layers needed (or all of them for keep_intermediates)
        if keep_intermediates:
            needed = set(range(len(self._layers)))
        else:
            needed = set()
            stack = [self._producer[n] for n in wanted if n in self._producer]
            while stack:
                i = stack.pop()
                if i in needed:
                    continue
                needed.add(i)
                for name in self._layers[i]["inputs"]:
                    if name is not None and name in self._producer:
                        stack.append(self._producer[name])
        # last use of each tensor so memory can be released
        last_use: dict[str, int] = {}
        for i in sorted(needed):
            for name in self._layers[i]["inputs"]:
                if name is not None:
                    last_use[name] = i
        keep = set(wanted)
        for i in sorted(needed):
            rec = self._layers[i]
            layer_kind = layer_kinds.kind(rec["type"])
            impl = layer_kind.run if layer_kind is not None else _IMPLS.get(rec["type"])
            if impl is None:
                raise UnsupportedLayerError(rec["name"], rec["type"])
            try:
                ins = [None if n is None else values[n] for n in rec["inputs"]]
            except KeyError as exc:  # pragma: no cover - topologically sorted by TensorRT
                raise ExecutorError(f"layer {rec['name']!r}: input {exc} not computed") from None
            try:
                results = impl(rec, self._params[i], self._prepared[i], ins)
            except ExecutorError:
                raise
            except Exception as exc:
                raise ExecutorError(f"layer {rec['name']!r} ({rec['type']}) failed: {type(exc).__name__}: "
                                    f"{exc}") from exc
            if not isinstance(results, (list, tuple)):
                results = [results]
            for out_rec, value in zip(rec["outputs"], results):
                value = np.asarray(value)
                dtype = _np_dtype(out_rec["dtype"])
                if value.dtype != dtype:
                    value = value.astype(dtype)
                shape = out_rec["shape"]
                if shape is not None and (len(shape) != value.ndim or any(
                        d >= 0 and d != s for d, s in zip(shape, value.shape))):
                    raise ExecutorError(f"layer {rec['name']!r} ({rec['type']}) produced shape {value.shape} for "
                                        f"{out_rec['name']!r}; TensorRT inferred {tuple(shape)}")
                values[out_rec["name"]] = value
            if not keep_intermediates:
                for name in rec["inputs"]:
                    if name is not None and last_use.get(name) == i and name not in keep \
                            and name not in self._inputs:
                        values.pop(name, None)
        if keep_intermediates:
            return values
        return {name: values[name] for name in wanted}


# ============================================================================= layers

# ----------------------------------------------------------------------------- convolution



# --------------------------------------------------------------------------- threading
#
# numpy's OpenBLAS spin-waits in its worker threads: on a busy 2-core machine a
# multi-threaded GEMM stalls behind the slowest core (measured: 4x slower than
# single-threaded).  The executor therefore runs BLAS single-threaded and splits
# big matrix products by rows over its own small thread pool, whose threads
# block instead of spinning (numpy releases the GIL inside matmul).

_POOL = None
_POOL_LOCK = threading.Lock()
_SPLIT_MIN_FLOPS = 4e6


def _pool():
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            workers = max(1, min(os.cpu_count() or 1, 8))
            _POOL = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="tf2trt-ref") if workers > 1 else False
    return _POOL


def _single_threaded_blas():
    """BLAS limited to one thread while the executor runs (the pool does the parallel work)."""
    if not _pool() or os.environ.get("TF2TRT_EXECUTOR_BLAS_THREADS") == "native":
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a declared dependency
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 2-D float arrays, split by rows of ``a`` across the pool when it is big enough."""
    pool = _pool()
    m = a.shape[0]
    if not pool or m < 16 or 2.0 * m * a.shape[1] * b.shape[1] < _SPLIT_MIN_FLOPS:
        return np.matmul(a, b)
    parts = pool._max_workers
    out = np.empty((m, b.shape[1]), dtype=np.result_type(a, b))
    bounds = [m * i // parts for i in range(parts + 1)]
    futures = [pool.submit(np.matmul, a[lo:hi], b, out=out[lo:hi]) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]
    for f in futures:
        f.result()
    return out






@_impl("DECONVOLUTION")
def _deconv(rec, p, w, ins):
    x = ins[0]
    kernel = ins[1] if len(ins) > 1 and ins[1] is not None else w["kernel"]
    bias = ins[2] if len(ins) > 2 and ins[2] is not None else w.get("bias")
    nd = len(p["kernel_size"])
    ks, stride, dil = p["kernel_size"], p["stride"], p["dilation"]
    g, k = p["num_groups"], p["num_output_maps"]
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    cpg, kpg = c // g, k // g
    kernel = kernel.reshape((c, kpg) + tuple(ks))
    taps = int(np.prod(ks))
    # cols[n, g, kpg*taps, P] = W_g^T @ x_g
    wt = kernel.reshape(g, cpg, kpg * taps).transpose(0, 2, 1)
    cols = np.matmul(wt, x.reshape(n, g, cpg, -1))
    cols = cols.reshape((n, k) + tuple(ks) + tuple(spatial))
    full = [(spatial[i] - 1) * stride[i] + 1 + dil[i] * (ks[i] - 1) for i in range(nd)]
    y = np.zeros((n, k) + tuple(full), dtype=x.dtype)
    for tap in np.ndindex(*ks):
        idx = (slice(None), slice(None)) + tuple(
            slice(tap[i] * dil[i], tap[i] * dil[i] + (spatial[i] - 1) * stride[i] + 1, stride[i]) for i in range(nd))
        y[idx] += cols[(slice(None), slice(None)) + tap]
    crops = []
    for i in range(nd):
        if p["padding_mode"] in ("SAME_UPPER", "SAME_LOWER"):
            total = full[i] - spatial[i] * stride[i]
            small = total // 2
            b = small if p["padding_mode"] == "SAME_UPPER" else total - small
            crops.append((b, total - b))
        else:
            crops.append((p["pre_padding"][i], p["post_padding"][i]))
    y = _pad_spatial(y, [(-b, -a) for b, a in crops])
    if bias is not None:
        y += np.asarray(bias).reshape((1, k) + (1,) * nd)
    return y


# ----------------------------------------------------------------------------- activation

def _act(kind, x, alpha, beta):
    one = x.dtype.type(1)
    alpha = x.dtype.type(alpha)
    beta = x.dtype.type(beta)
    if kind == "RELU":
        return np.maximum(x, 0)
    if kind == "SIGMOID":
        return one / (one + np.exp(-x))
    if kind == "TANH":
        return np.tanh(x)
    if kind == "LEAKY_RELU":
        return np.where(x >= 0, x, alpha * x)
    if kind == "ELU":
        return np.where(x >= 0, x, alpha * (np.exp(x) - one))
    if kind == "SELU":
        return np.where(x > 0, beta * x, beta * (alpha * np.exp(x) - alpha))
    if kind == "SOFTSIGN":
        return x / (one + np.abs(x))
    if kind == "SOFTPLUS":
        return alpha * np.logaddexp(0, beta * x).astype(x.dtype)
    if kind == "CLIP":
        return np.minimum(np.maximum(x, alpha), beta)
    if kind == "HARD_SIGMOID":
        return np.maximum(0, np.minimum(one, alpha * x + beta))
    if kind == "SCALED_TANH":
        return alpha * np.tanh(beta * x)
    if kind == "THRESHOLDED_RELU":
        return np.where(x > alpha, x, 0).astype(x.dtype)
    if kind == "GELU_ERF":
        return (x.dtype.type(0.5) * x * (one + _erf(x / x.dtype.type(math.sqrt(2.0))))).astype(x.dtype)
    if kind == "GELU_TANH":
        c = x.dtype.type(math.sqrt(2.0 / math.pi))
        return x.dtype.type(0.5) * x * (one + np.tanh(c * (x + x.dtype.type(0.044715) * x * x * x)))
    raise ExecutorError(f"activation {kind} not implemented")


@_impl("ACTIVATION")
def _activation(rec, p, w, ins):
    x = ins[0]
    if not _is_float(x):
        x = x.astype(np.float32)
    return _act(p["activation"], x, decode_float(p["alpha"]), decode_float(p["beta"]))


@_impl("PARAMETRIC_RELU")
def _prelu(rec, p, w, ins):
    x, slope = ins
    return np.where(x >= 0, x, x * slope)


# ----------------------------------------------------------------------------- elementwise / unary

def _int_div_trunc(a, b):
    q = np.floor_divide(a, b)
    r = a - q * b
    fix = (r != 0) & ((a < 0) != (b < 0))
    return q + fix.astype(q.dtype)


@_impl("ELEMENTWISE")
def _elementwise(rec, p, w, ins):
    a, b = ins
    if a.ndim != b.ndim:
        raise ExecutorError(f"layer {rec['name']!r}: ELEMENTWISE inputs of rank {a.ndim} and {b.ndim} "
                            "(TensorRT requires equal ranks)")
    for da, db in zip(a.shape, b.shape):
        if da != db and da != 1 and db != 1:
            raise ExecutorError(f"layer {rec['name']!r}: shapes {a.shape} and {b.shape} do not broadcast")
    op = p["op"]
    isf = _is_float(a)
    if op == "SUM":
        return a + b
    if op == "SUB":
        return a - b
    if op == "PROD":
        return a * b
    if op == "MAX":
        return np.maximum(a, b)
    if op == "MIN":
        return np.minimum(a, b)
    if op == "DIV":
        if isf:
            return a / b
        return _int_div_trunc(a, b)
    if op == "FLOOR_DIV":
        if isf:
            return np.floor(a / b)
        return np.floor_divide(a, b)
    if op == "POW":
        if isf:
            return np.power(a, b)
        return np.power(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)
    if op == "AND":
        return np.logical_and(a, b)
    if op == "OR":
        return np.logical_or(a, b)
    if op == "XOR":
        return np.logical_xor(a, b)
    if op == "EQUAL":
        return a == b
    if op == "GREATER":
        return a > b
    if op == "LESS":
        return a < b
    raise ExecutorError(f"elementwise op {op} not implemented")


_UNARY = {
    "EXP": np.exp, "LOG": np.log, "SQRT": np.sqrt, "ABS": np.abs, "NEG": np.negative,
    "SIN": np.sin, "COS": np.cos, "TAN": np.tan, "SINH": np.sinh, "COSH": np.cosh, "ASIN": np.arcsin,
    "ACOS": np.arccos, "ATAN": np.arctan, "ASINH": np.arcsinh, "ACOSH": np.arccosh, "ATANH": np.arctanh,
    "CEIL": np.ceil, "FLOOR": np.floor, "ERF": _erf, "NOT": np.logical_not, "SIGN": np.sign,
    "ROUND": np.round,  # half to even
    "ISINF": np.isinf, "ISNAN": np.isnan,
}


@_impl("UNARY")
def _unary(rec, p, w, ins):
    x = ins[0]
    op = p["op"]
    if op == "RECIP":
        return x.dtype.type(1) / x if _is_float(x) else 1 / x
    fn = _UNARY.get(op)
    if fn is None:
        raise ExecutorError(f"unary op {op} not implemented")
    with np.errstate(all="ignore"):
        return fn(x)


# ----------------------------------------------------------------------------- pooling

@_impl("POOLING")
def _pooling(rec, p, w, ins):
    x = ins[0]
    ks, stride = p["window_size"], p["stride"]
    nd = len(ks)
    dil = [1] * nd
    pads = _spatial_padding(x.shape[-nd:], ks, stride, dil, p["pre_padding"], p["post_padding"], p["padding_mode"])
    out = [q[3] for q in pads]
    kind = p["pooling"]
    lead = (slice(None),) * (x.ndim - nd)

    def over_taps(xp, combine):
        # one strided slice per window tap (fast), combined elementwise in place
        acc = None
        for tap in np.ndindex(*ks):
            idx = lead + tuple(slice(tap[i], tap[i] + (out[i] - 1) * stride[i] + 1, stride[i]) for i in range(nd))
            if acc is None:
                acc = xp[idx].copy()
            else:
                combine(acc, xp[idx], out=acc)
        return acc

    res_max = res_avg = None
    if kind in ("MAX", "MAX_AVERAGE_BLEND"):
        low = -np.inf if _is_float(x) else np.iinfo(x.dtype).min
        xp = _pad_spatial(x, [(b, a + e) for b, a, e, _ in pads], value=low)
        res_max = over_taps(xp, np.maximum)
    if kind in ("AVERAGE", "MAX_AVERAGE_BLEND"):
        xp = _pad_spatial(x, [(b, a + e) for b, a, e, _ in pads], value=0)
        sums = over_taps(xp, np.add)
        # denominator: window overlap with the (padded or unpadded) input
        counts = None
        for i in range(nd):
            b, a, e, o = pads[i]
            size = x.shape[x.ndim - nd + i]
            ind = np.zeros(size + b + a + e, dtype=np.float32)
            if p["average_count_excludes_padding"]:
                ind[b:b + size] = 1
            else:
                ind[:b + size + a] = 1
            cnt = sliding_window_view(ind, ks[i])[: (o - 1) * stride[i] + 1: stride[i]].sum(axis=-1)
            shape = [1] * nd
            shape[i] = o
            cnt = cnt.reshape(shape)
            counts = cnt if counts is None else counts * cnt
        res_avg = sums / counts.astype(x.dtype)
    if kind == "MAX":
        return res_max
    if kind == "AVERAGE":
        return res_avg
    blend = x.dtype.type(decode_float(p["blend_factor"]))
    return (1 - blend) * res_max + blend * res_avg


# ----------------------------------------------------------------------------- reduce / softmax / topk

@_impl("REDUCE")
def _reduce(rec, p, w, ins):
    x = ins[0]
    axes = _axes_from_mask(p["axes"], x.ndim)
    kd = p["keep_dims"]
    op = p["op"]
    if op == "SUM":
        return np.sum(x, axis=axes, keepdims=kd, dtype=x.dtype)
    if op == "PROD":
        return np.prod(x, axis=axes, keepdims=kd, dtype=x.dtype)
    if op == "MAX":
        return np.max(x, axis=axes, keepdims=kd)
    if op == "MIN":
        return np.min(x, axis=axes, keepdims=kd)
    if op == "AVG":
        if _is_float(x):
            return np.mean(x, axis=axes, keepdims=kd, dtype=x.dtype)
        total = np.sum(x, axis=axes, keepdims=kd, dtype=x.dtype)
        count = int(np.prod([x.shape[a] for a in axes]))
        return _int_div_trunc(total, np.asarray(count, dtype=x.dtype))
    raise ExecutorError(f"reduce op {op} not implemented")


@_impl("SOFTMAX")
def _softmax(rec, p, w, ins):
    x = ins[0]
    axes = _axes_from_mask(p["axes"], x.ndim)
    m = np.max(x, axis=axes, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axes, keepdims=True, dtype=x.dtype)


@_impl("TOPK")
def _topk(rec, p, w, ins):
    x = ins[0]
    k = p["k"]
    if len(ins) > 1 and ins[1] is not None:
        k = int(np.asarray(ins[1]).reshape(-1)[0])
    axes = _axes_from_mask(p["axes"], x.ndim)
    if len(axes) != 1:
        raise ExecutorError(f"layer {rec['name']!r}: TopK over {len(axes)} axes")
    axis = axes[0]
    key = -x if p["op"] == "MAX" else x
    if x.dtype == np.bool_:
        key = ~x if p["op"] == "MAX" else x
    idx = np.argsort(key, axis=axis, kind="stable")
    idx = np.take(idx, np.arange(k), axis=axis)
    vals = np.take_along_axis(x, idx, axis=axis)
    return [vals, idx]


# ----------------------------------------------------------------------------- shape manipulation

def _reshape_dims(src_shape, dims, zero_is_placeholder):
    dims = [int(d) for d in dims]
    out = []
    for i, d in enumerate(dims):
        if d == 0 and zero_is_placeholder:
            out.append(src_shape[i])
        else:
            out.append(d)
    return out


@_impl("SHUFFLE")
def _shuffle(rec, p, w, ins):
    x = ins[0]
    first = p["first_transpose"][: x.ndim] if p["first_transpose"] is not None else None
    if first is not None and list(first) != list(range(x.ndim)):
        x = np.transpose(x, first)
    dims = None
    if len(ins) > 1 and ins[1] is not None:
        dims = [int(v) for v in np.asarray(ins[1]).reshape(-1)]
    elif p["reshape_dims"] is not None:
        dims = p["reshape_dims"]
    if dims is not None:
        new = _reshape_dims(x.shape, dims, p["zero_is_placeholder"])
        x = x.reshape(new)
    second = p["second_transpose"][: x.ndim] if p["second_transpose"] is not None else None
    if second is not None and list(second) != list(range(x.ndim)):
        x = np.transpose(x, second)
    return x


@_impl("CONCATENATION")
def _concat(rec, p, w, ins):
    axis = p["axis"]
    if axis < 0:
        axis += ins[0].ndim
    return np.concatenate(ins, axis=axis)


@_impl("CONSTANT")
def _constant(rec, p, w, ins):
    return w["weights"].reshape(p["shape"])


@_impl("IDENTITY")
def _identity(rec, p, w, ins):
    return ins[0]


@_impl("CAST")
def _cast(rec, p, w, ins):
    x = ins[0]
    to = _np_dtype(p["to_type"])
    if to == np.bool_:
        return x != 0
    if np.issubdtype(to, np.integer) and _is_float(x):
        return np.trunc(x).astype(to)
    return x.astype(to)


@_impl("SHAPE")
def _shape(rec, p, w, ins):
    return np.asarray(ins[0].shape, dtype=_np_dtype(rec["outputs"][0]["dtype"]))


@_impl("SELECT")
def _select(rec, p, w, ins):
    cond, a, b = ins
    return np.where(cond.astype(bool), a, b)


@_impl("SQUEEZE")
def _squeeze(rec, p, w, ins):
    x, axes = ins[0], ins[1]
    axes = tuple(int(a) + x.ndim if a < 0 else int(a) for a in np.asarray(axes).reshape(-1))
    return np.squeeze(x, axis=axes)


@_impl("UNSQUEEZE")
def _unsqueeze(rec, p, w, ins):
    x, axes = ins[0], ins[1]
    rank = x.ndim + np.asarray(axes).size
    axes = tuple(sorted(int(a) + rank if a < 0 else int(a) for a in np.asarray(axes).reshape(-1)))
    return np.expand_dims(x, axis=axes)


@_impl("PADDING")
def _padding(rec, p, w, ins):
    pads = list(zip(p["pre_padding"], p["post_padding"]))
    return _pad_spatial(ins[0], pads, value=0)


# ----------------------------------------------------------------------------- slice

def _sample_indices(coords, size, mode):
    """Map raw coordinates to valid ones per SampleMode; returns (indices, valid mask or None)."""
    if mode == "STRICT_BOUNDS":
        if coords.size and (coords.min() < 0 or coords.max() >= size):
            raise ExecutorError(f"slice coordinates {coords.min()}..{coords.max()} out of bounds for size {size}")
        return coords, None
    if mode == "WRAP":
        return np.mod(coords, size), None
    if mode == "CLAMP":
        return np.clip(coords, 0, size - 1), None
    if mode == "FILL":
        valid = (coords >= 0) & (coords < size)
        return np.clip(coords, 0, max(size - 1, 0)), valid
    if mode == "REFLECT":
        if size == 1:
            return np.zeros_like(coords), None
        period = 2 * size - 2
        c = np.mod(np.abs(coords), period)
        return np.where(c >= size, period - c, c), None
    raise ExecutorError(f"slice mode {mode} not implemented")


def _dyn(ins, i):
    if len(ins) > i and ins[i] is not None:
        return [int(v) for v in np.asarray(ins[i]).reshape(-1)]
    return None


@_impl("SLICE")
def _slice(rec, p, w, ins):
    x = ins[0]
    start = _dyn(ins, 1) or p["start"]
    size = _dyn(ins, 2) or p["shape"]
    stride = _dyn(ins, 3) or p["stride"]
    axes = _dyn(ins, 5) or p.get("axes")
    mode = p["mode"]
    fill = None
    if len(ins) > 4 and ins[4] is not None:
        fill = np.asarray(ins[4]).reshape(-1)[0]
    full_start, full_size, full_stride = [0] * x.ndim, list(x.shape), [1] * x.ndim
    if axes is not None:
        for j, a in enumerate(axes):
            a = a + x.ndim if a < 0 else a
            full_start[a], full_size[a], full_stride[a] = start[j], size[j], stride[j]
    else:
        full_start, full_size, full_stride = list(start), list(size), list(stride)
    index, masks, simple = [], [], True
    for d in range(x.ndim):
        coords = full_start[d] + np.arange(full_size[d], dtype=np.int64) * full_stride[d]
        idx, valid = _sample_indices(coords, x.shape[d], mode)
        index.append(idx)
        masks.append(valid)
    y = x[np.ix_(*index)] if x.ndim else x
    if any(m is not None for m in masks):
        valid = None
        for d, m in enumerate(masks):
            if m is None:
                continue
            shape = [1] * x.ndim
            shape[d] = -1
            m = m.reshape(shape)
            valid = m if valid is None else (valid & m)
        fill_value = x.dtype.type(0) if fill is None else fill
        y = np.where(valid, y, np.asarray(fill_value).astype(x.dtype))
    return y


# ----------------------------------------------------------------------------- resize

def _resize_coords(out_size, in_size, scale_inv, transform, selector):
    o = np.arange(out_size, dtype=np.float64)
    if out_size == 1 and selector == "UPPER":
        return np.zeros(1)
    if transform == "ALIGN_CORNERS":
        if out_size == 1:
            return np.zeros(1)
        return o * (in_size - 1) / (out_size - 1)
    if transform == "ASYMMETRIC":
        return o * scale_inv
    if transform == "HALF_PIXEL":
        return (o + 0.5) * scale_inv - 0.5
    raise ExecutorError(f"resize coordinate transformation {transform} not implemented")


def _cubic_weights(t, a):
    # distances to taps at -1, 0, 1, 2
    def w(d):
        d = np.abs(d)
        return np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                        np.where(d < 2, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0))
    return np.stack([w(t + 1), w(t), w(1 - t), w(2 - t)], axis=-1)


@_impl("RESIZE")
def _resize(rec, p, w, ins):
    x = ins[0]
    out_shape = None
    scales = None
    if len(ins) > 1 and ins[1] is not None:
        v = np.asarray(ins[1])
        if _is_float(v):
            scales = [float(s) for s in v.reshape(-1)]
        else:
            out_shape = [int(s) for s in v.reshape(-1)]
    elif p["shape"] is not None:
        out_shape = p["shape"]
    else:
        scales = [decode_float(s) for s in p["scales"]]
    if out_shape is None:
        out_shape = [int(math.floor(d * s)) for d, s in zip(x.shape, scales)]
    mode = p["resize_mode"]
    transform = p["coordinate_transformation"]
    y = x
    for axis in range(x.ndim):
        n_in, n_out = x.shape[axis], out_shape[axis]
        scale = scales[axis] if scales is not None else None
        if n_in == n_out and (scale is None or scale == 1.0):
            continue
        scale_inv = (1.0 / scale) if scale is not None else n_in / n_out
        coords = _resize_coords(n_out, n_in, scale_inv, transform, p["selector_for_single_pixel"])
        if mode == "NEAREST":
            rounding = p["nearest_rounding"]
            if rounding == "FLOOR":
                idx = np.floor(coords)
            elif rounding == "CEIL":
                idx = np.ceil(coords)
            elif rounding == "HALF_UP":
                idx = np.floor(coords + 0.5)
            else:  # HALF_DOWN
                idx = np.ceil(coords - 0.5)
            idx = np.clip(idx, 0, n_in - 1).astype(np.int64)
            y = np.take(y, idx, axis=axis)
        elif mode == "LINEAR":
            c = np.clip(coords, 0, n_in - 1)
            i0 = np.floor(c).astype(np.int64)
            i1 = np.minimum(i0 + 1, n_in - 1)
            t = (c - i0).astype(x.dtype)
            shape = [1] * y.ndim
            shape[axis] = -1
            t = t.reshape(shape)
            y = np.take(y, i0, axis=axis) * (1 - t) + np.take(y, i1, axis=axis) * t
        elif mode == "CUBIC":
            a = decode_float(p["cubic_coeff"])
            base = np.floor(coords)
            t = coords - base
            wts = _cubic_weights(t, a)  # (n_out, 4)
            taps = base[:, None].astype(np.int64) + np.arange(-1, 3)[None, :]
            if p["exclude_outside"]:
                inside = (taps >= 0) & (taps < n_in)
                wts = wts * inside
                wts = wts / wts.sum(axis=1, keepdims=True)
            taps = np.clip(taps, 0, n_in - 1)
            acc = None
            for j in range(4):
                shape = [1] * y.ndim
                shape[axis] = -1
                term = np.take(y, taps[:, j], axis=axis) * wts[:, j].astype(x.dtype).reshape(shape)
                acc = term if acc is None else acc + term
            y = acc
        else:
            raise ExecutorError(f"resize mode {mode} not implemented")
    return y.astype(x.dtype, copy=False)


# ----------------------------------------------------------------------------- gather / scatter

@_impl("GATHER")
def _gather(rec, p, w, ins):
    data, idx = ins
    mode, axis, nbe = p["mode"], p["axis"], p["num_elementwise_dims"]
    idx = idx.astype(np.int64)
    if mode == "DEFAULT":
        if axis < 0:
            axis += data.ndim
        if nbe == 0:
            return np.take(data, idx, axis=axis)
        return np.stack([np.take(data[b], idx[b], axis=axis - 1) for b in range(data.shape[0])])
    if mode == "ELEMENT":
        idx = np.where(idx < 0, idx + data.shape[axis], idx)
        return np.take_along_axis(data, idx, axis=axis)
    if mode == "ND":
        b = nbe
        batch_shape = data.shape[:b]
        q = idx.shape[-1]
        nb = int(np.prod(batch_shape)) if b else 1
        d2 = data.reshape((nb,) + data.shape[b:])
        i2 = idx.reshape((nb, -1, q))
        outs = []
        for j in range(nb):
            sel = tuple(i2[j, :, t] for t in range(q))
            outs.append(d2[j][sel])
        out = np.stack(outs)
        return out.reshape(idx.shape[:-1] + data.shape[b + q:])
    raise ExecutorError(f"gather mode {mode} not implemented")


@_impl("SCATTER")
def _scatter(rec, p, w, ins):
    data, idx, updates = ins
    out = data.copy()
    idx = idx.astype(np.int64)
    if p["mode"] == "ELEMENT":
        np.put_along_axis(out, idx, updates, axis=p["axis"])
        return out
    q = idx.shape[-1]
    flat_idx = idx.reshape(-1, q)
    flat_upd = updates.reshape((flat_idx.shape[0],) + data.shape[q:])
    for j in range(flat_idx.shape[0]):
        out[tuple(flat_idx[j])] = flat_upd[j]
    return out


@_impl("NON_ZERO")
def _non_zero(rec, p, w, ins):
    return np.array(np.nonzero(ins[0]), dtype=np.int64).reshape(ins[0].ndim, -1)


@_impl("ONE_HOT")
def _one_hot(rec, p, w, ins):
    indices, values, depth = ins
    depth = int(np.asarray(depth).reshape(-1)[0])
    idx = indices.astype(np.int64)
    idx = np.where(idx < 0, idx + depth, idx)
    axis = p["axis"]
    rank = idx.ndim + 1
    if axis < 0:
        axis += rank
    hot = np.expand_dims(idx, axis) == np.arange(depth).reshape([-1 if i == axis else 1 for i in range(rank)])
    values = values.reshape(-1)
    return np.where(hot, values[1], values[0])


@_impl("REVERSE_SEQUENCE")
def _reverse_sequence(rec, p, w, ins):
    x, lens = ins
    out = x.copy()
    ba, sa = p["batch_axis"], p["sequence_axis"]
    for b in range(x.shape[ba]):
        n = int(lens[b])
        src = np.take(x, b, axis=ba)
        seq_axis = sa if sa < ba else sa - 1
        rev = np.flip(np.take(src, np.arange(n), axis=seq_axis), axis=seq_axis)
        dst = [slice(None)] * x.ndim
        dst[ba] = b
        dst[sa] = slice(0, n)
        out[tuple(dst)] = rev
    return out


# ----------------------------------------------------------------------------- matmul / einsum

@_impl("MATRIX_MULTIPLY")
def _matmul(rec, p, w, ins):
    a, b = ins
    op0, op1 = p["op0"], p["op1"]
    if op0 == "TRANSPOSE":
        a = np.swapaxes(a, -1, -2)
    elif op0 == "VECTOR":
        a = a[..., None, :]
    if op1 == "TRANSPOSE":
        b = np.swapaxes(b, -1, -2)
    elif op1 == "VECTOR":
        b = b[..., :, None]
    y = np.matmul(a, b)
    if op1 == "VECTOR":
        y = y[..., 0]
    if op0 == "VECTOR":
        y = y[..., 0, :] if op1 != "VECTOR" else y[..., 0]
    return y


@_impl("EINSUM")
def _einsum(rec, p, w, ins):
    return np.einsum(p["equation"], *ins, optimize=True)


# ----------------------------------------------------------------------------- scale / norm / lrn

@_impl("SCALE")
def _scale(rec, p, w, ins):
    x = ins[0]
    mode, axis = p["mode"], p["channel_axis"]
    if axis < 0:
        axis += x.ndim

    def shaped(arr):
        if mode == "UNIFORM":
            return arr.reshape(())
        if mode == "CHANNEL":
            shape = [1] * x.ndim
            shape[axis] = -1
            return arr.reshape(shape)
        return arr.reshape((1,) * axis + tuple(x.shape[axis:]))

    y = x
    if "scale" in w:
        y = y * shaped(w["scale"]).astype(x.dtype)
    if "shift" in w:
        y = y + shaped(w["shift"]).astype(x.dtype)
    if "power" in w:
        y = np.power(y, shaped(w["power"]).astype(x.dtype))
    return y


@_impl("NORMALIZATION")
def _normalization(rec, p, w, ins):
    x, scale, bias = ins
    eps = x.dtype.type(decode_float(p["epsilon"]))
    axes = _axes_from_mask(p["axes"], x.ndim)
    groups = p["num_groups"]
    if groups > 1:
        # channels (axis 1) split into groups; statistics per (sample, group) over the group's
        # channels and the requested (spatial) axes
        n, c = x.shape[:2]
        xg = x.reshape((n, groups, c // groups) + x.shape[2:])
        g_axes = tuple(sorted({2} | {a + 1 for a in axes if a >= 2}))
        mean = np.mean(xg, axis=g_axes, keepdims=True, dtype=x.dtype)
        d = xg - mean
        var = np.mean(d * d, axis=g_axes, keepdims=True, dtype=x.dtype)
        yg = d / np.sqrt(var + eps)
        if scale.ndim == x.ndim and scale.shape[1] == groups and groups != c:
            # per-group scale/bias of shape [1, G, 1, ...]
            sg = scale.reshape((1, groups, 1) + scale.shape[2:])
            bg = bias.reshape((1, groups, 1) + bias.shape[2:])
            return (yg * sg + bg).reshape(x.shape)
        y = yg.reshape(x.shape)
    else:
        mean = np.mean(x, axis=axes, keepdims=True, dtype=x.dtype)
        d = x - mean
        var = np.mean(d * d, axis=axes, keepdims=True, dtype=x.dtype)
        y = d / np.sqrt(var + eps)
    return y * scale + bias


@_impl("LRN")
def _lrn(rec, p, w, ins):
    x = ins[0]
    win = p["window_size"]
    alpha, beta, k = (x.dtype.type(decode_float(p[n])) for n in ("alpha", "beta", "k"))
    axis = x.ndim - 3
    half = (win - 1) // 2
    sq = x * x
    c = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (half, win - 1 - half)
    sqp = np.pad(sq, pad)
    csum = np.cumsum(sqp, axis=axis, dtype=x.dtype)
    zero_shape = list(csum.shape)
    zero_shape[axis] = 1
    csum = np.concatenate([np.zeros(zero_shape, x.dtype), csum], axis=axis)
    hi = np.take(csum, np.arange(win, win + c), axis=axis)
    lo = np.take(csum, np.arange(0, c), axis=axis)
    s = hi - lo
    return x / np.power(k + alpha / x.dtype.type(win) * s, beta)


# ----------------------------------------------------------------------------- fill / cumulative

@_impl("FILL")
def _fill(rec, p, w, ins):
    op = p["operation"]
    if op != "LINSPACE":
        raise UnsupportedLayerError(rec["name"], rec["type"], f"{op} fills are random (nondeterministic)")
    shape = _dyn(ins, 0) or p["shape"]
    dtype = _np_dtype(rec["outputs"][0]["dtype"])
    if len(ins) > 1 and ins[1] is not None:
        alpha = np.asarray(ins[1]).reshape(-1)[0]
    else:
        alpha = p["alpha"] if p["alpha_beta_int64"] else decode_float(p["alpha"])
    if len(ins) > 2 and ins[2] is not None:
        beta = np.asarray(ins[2]).reshape(-1)
    else:
        b = p["beta"] if p["alpha_beta_int64"] else decode_float(p["beta"])
        beta = np.full(len(shape), b)
    work = np.float64 if np.issubdtype(dtype, np.floating) else np.int64
    y = np.full(shape, alpha, dtype=work)
    for d in range(len(shape)):
        sh = [1] * len(shape)
        sh[d] = -1
        y = y + np.arange(shape[d], dtype=work).reshape(sh) * work(beta[d])
    return y.astype(dtype)


@_impl("CUMULATIVE")
def _cumulative(rec, p, w, ins):
    x, axis = ins
    axis = int(np.asarray(axis).reshape(-1)[0])
    if axis < 0:
        axis += x.ndim
    if p["op"] != "SUM":
        raise ExecutorError(f"cumulative op {p['op']} not implemented")
    if p["reverse"]:
        x = np.flip(x, axis)
    y = np.cumsum(x, axis=axis, dtype=x.dtype)
    if p["exclusive"]:
        zero_shape = list(x.shape)
        zero_shape[axis] = 1
        y = np.concatenate([np.zeros(zero_shape, x.dtype), np.take(y, np.arange(x.shape[axis] - 1), axis=axis)],
                           axis=axis)
    if p["reverse"]:
        y = np.flip(y, axis)
    return y


# ----------------------------------------------------------------------------- quantize / dequantize

def _qdq_params(rec, p, x, scale, zero):
    if p.get("block_shape"):
        raise UnsupportedLayerError(rec["name"], rec["type"], "block quantization")
    axis = p["axis"]
    if axis < 0:
        axis += x.ndim
    shape = [1] * x.ndim
    if scale.size > 1:
        shape[axis] = -1
    scale = scale.reshape(shape)
    zero = None if zero is None else zero.reshape(shape)
    return scale, zero


@_impl("QUANTIZE")
def _quantize(rec, p, w, ins):
    x, scale = ins[0], ins[1]
    zero = ins[2] if len(ins) > 2 else None
    scale, zero = _qdq_params(rec, p, x, scale, zero)
    to = _np_dtype(rec["outputs"][0]["dtype"])
    if not np.issubdtype(to, np.integer):
        raise UnsupportedLayerError(rec["name"], rec["type"], f"quantization to {to}")
    q = np.round(x / scale.astype(x.dtype))  # round half to even
    if zero is not None:
        q = q + zero.astype(x.dtype)
    info = np.iinfo(to)
    return np.clip(q, info.min, info.max).astype(to)


@_impl("DEQUANTIZE")
def _dequantize(rec, p, w, ins):
    x, scale = ins[0], ins[1]
    zero = ins[2] if len(ins) > 2 else None
    scale, zero = _qdq_params(rec, p, x, scale, zero)
    to = _np_dtype(rec["outputs"][0]["dtype"])
    v = x.astype(to)
    if zero is not None:
        v = v - zero.astype(to)
    return v * scale.astype(to)


SUPPORTED_LAYER_TYPES = frozenset(_IMPLS) | frozenset(k for k, v in layer_kinds.KINDS.items() if v.run)
