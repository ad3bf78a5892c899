"""numpy building blocks shared by several layer kinds' reference semantics.

TensorRT data types as numpy dtypes, the padding formulas of ``PaddingMode``,
window views for convolution and pooling, an erf accurate to ~1e-12 (numpy has
none), the sample modes of slice/gather, and the executor's matrix product.

Threading: numpy's OpenBLAS spin-waits in its worker threads, and on a busy
2-core machine a multi-threaded GEMM stalls behind the slowest core (measured:
4x slower than single-threaded).  The executor therefore runs BLAS
single-threaded (:func:`single_threaded_blas`) and :func:`gemm` splits big
matrix products by rows over a small thread pool whose threads block instead of
spinning (numpy releases the GIL inside matmul).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import os
import threading

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from converter.errors import ExecutorError


_NP_DTYPES = {
    "FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64, "INT8": np.int8,
    "UINT8": np.uint8, "BOOL": np.bool_,
}
try:  # bfloat16 comes from ml_dtypes (a TensorFlow dependency)
    import ml_dtypes

    _NP_DTYPES["BF16"] = ml_dtypes.bfloat16
except ImportError:  # pragma: no cover
    pass

def np_dtype(name: str) -> np.dtype:
    try:
        return np.dtype(_NP_DTYPES[name])
    except KeyError:
        raise ExecutorError(f"data type {name} is not supported by the reference executor") from None

def axes_from_mask(mask: int, rank: int) -> tuple[int, ...]:
    return tuple(i for i in range(rank) if mask >> i & 1)

def is_float(arr) -> bool:
    return np.issubdtype(arr.dtype, np.floating)

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

def erf(x: np.ndarray) -> np.ndarray:
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
    return out.astype(x.dtype, copy=False) if is_float(np.asarray(x)) else out

def spatial_padding(in_sizes, kernel, stride, dilation, pre, post, mode, what="convolution"):
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

def pad_spatial(x, pads, value=0.0):
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

def windows(xp, kernel, stride, dilation, out):
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

def single_threaded_blas():
    """BLAS limited to one thread while the executor runs (the pool does the parallel work)."""
    if not _pool() or os.environ.get("TF2TRT_EXECUTOR_BLAS_THREADS") == "native":
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a declared dependency
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")

def gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
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

def int_div_trunc(a, b):
    q = np.floor_divide(a, b)
    r = a - q * b
    fix = (r != 0) & ((a < 0) != (b < 0))
    return q + fix.astype(q.dtype)

def sample_indices(coords, size, mode):
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

def dynamic_dims(ins, i):
    if len(ins) > i and ins[i] is not None:
        return [int(v) for v in np.asarray(ins[i]).reshape(-1)]
    return None
