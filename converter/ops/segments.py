"""Sorted and sparse segment reductions, Bincount, ScatterNd and InvertPermutation.

TensorRT has no segment reduction and its ScatterND leaves duplicate indices undefined (TensorFlow adds
them).  With the ids / indices constant the grouping is known at conversion time, so:

* ``Segment*``, ``SparseSegment*`` (rows gathered first) and ``Bincount`` are a constant [segments, N]
  membership mask: ``select(mask, data, identity)`` reduced over N.  No multiplication by the mask, so
  inf/NaN data stay where they belong.
* ``ScatterNd`` sums duplicate updates the same way (only the positions that are hit more than once), then a
  Gather with a constant position → update map builds the output, zeros where nothing is written.
* ``InvertPermutation`` of a tensor is a Scatter (ELEMENT) of 0..n-1 to the given positions.
"""

from __future__ import annotations

import numpy as np

from .. import layers
from ..context import Value
from ..errors import ConversionError
from .helpers import (all_const, concat, const_int_list, elementwise, reduce, register, reshape, select,
                      static_inputs, tensor_of)

#: a mask-and-reduce materialises segments × N × row-size elements; past this it is refused
_MAX_MASK_ELEMENTS = 1 << 27

_SEGMENT_OPS = {"SegmentSum": "SUM", "SegmentProd": "PROD", "SegmentMax": "MAX", "SegmentMin": "MIN",
                "SegmentMean": "SUM"}


def _identity(op: str, dtype: np.dtype):
    if op == "SUM":
        return 0
    if op == "PROD":
        return 1
    if dtype.kind == "f":
        return -np.inf if op == "MAX" else np.inf
    info = np.iinfo(dtype)
    return info.min if op == "MAX" else info.max


def _static_shape(index: int, what: str):
    def check(node, graph):
        shape = graph.shape(node.inputs[index])
        if shape is None or any(int(d) < 0 for d in shape):
            return ConversionError(node.name, node.op, f"{what} must have a static shape",
                                   "give the model static shapes")
        return None

    return check


def _prod(shape) -> int:
    return int(np.prod([int(d) for d in shape])) if len(shape) else 1


def _masked_reduce(ctx, mask: np.ndarray, data: Value, op: str, suffix: str) -> Value:
    """``reduce_op(where(mask[g, j], data[j, :], identity), over j)`` for a constant [G, N] mask and [N, W]
    data: the [G, W] result."""
    groups, n = mask.shape
    width = int(data.shape[1])
    fill = Value(const=np.asarray(_identity(op, np.dtype(data.dtype)), np.dtype(data.dtype)))
    picked = select(ctx, Value(const=mask.reshape(groups, n, 1)), reshape(ctx, data, (1, n, width), "rows_3d"),
                    fill, f"{suffix}_masked")
    return reduce(ctx, picked, [1], False, op, suffix)


# ------------------------------------------------------------------ Segment*
def _check_segments(node, graph):
    ids = graph.const(node.inputs[1])
    data = graph.shape(node.inputs[0])
    if ids is None or data is None:
        return None  # reported by the other checks
    ids = np.asarray(ids).reshape(-1)
    if not len(data) or ids.size != int(data[0]):
        return ConversionError(node.name, node.op, "segment_ids must be a vector as long as the data's first axis")
    if ids.size and (ids[0] < 0 or np.any(np.diff(ids) < 0)):
        return ConversionError(node.name, node.op, "segment_ids must be sorted and non-negative (TensorFlow's "
                               "kernel fails otherwise)")
    if ids.size and (int(ids[-1]) + 1) * _prod(data) > _MAX_MASK_ELEMENTS:
        return ConversionError(node.name, node.op, "segments × data size exceeds 2^27 elements (the membership "
                               "mask would be too large)", "reduce the data or the number of segments")
    return None


@register(*_SEGMENT_OPS, layers=("Shuffle", "Select", "Reduce", "ElementWise"),
          check=[static_inputs(1, what="segment_ids"), _static_shape(0, "the data"), _check_segments], folds=True,
          restrictions="constant sorted segment_ids, static data shape; a constant [segments, N] membership mask, "
                       "then a reduction (segments × data size ≤ 2^27); empty segments give 0 (1 for SegmentProd), "
                       "as TensorFlow; SegmentMean divides by the count (integers truncating, as TensorFlow); a NaN in "
                       "a SegmentMax/Min segment gives NaN (TensorFlow's vectorised reducers may skip it)")
def convert_segment(ctx, node, inputs):
    data, ids = inputs
    ids = np.asarray(ctx.as_const(ids, "segment_ids")).reshape(-1).astype(np.int64)
    n = ids.size
    rest = tuple(int(d) for d in data.shape[1:])
    k = int(ids[-1]) + 1 if n else 0
    dtype = np.dtype(data.dtype)
    op = _SEGMENT_OPS[node.op]
    if data.is_const or n == 0:
        counts = np.bincount(ids, minlength=k)[:k] if n else np.zeros(0, np.int64)
        arr = data.const.reshape((n,) + rest) if data.is_const else np.zeros((0,) + rest, dtype)
        out = np.zeros((k,) + rest, dtype)
        fn = {"SUM": np.sum, "PROD": np.prod, "MAX": np.max, "MIN": np.min}[op]
        for s in range(k):
            if counts[s]:
                out[s] = fn(arr[ids == s], axis=0)
        if node.op == "SegmentMean":
            if dtype.kind in "iu":
                safe = np.maximum(counts, 1).reshape((k,) + (1,) * len(rest))
                out = (np.sign(out) * (np.abs(out) // safe)).astype(dtype)
            else:
                out = (out / np.maximum(counts, 1).reshape((k,) + (1,) * len(rest))).astype(dtype)
        return Value(const=out)
    out = _segment_reduce(ctx, reshape(ctx, data, (n, _prod(rest)), "rows"), ids, k,
                          "MEAN" if node.op == "SegmentMean" else op)
    return reshape(ctx, out, (k,) + rest)


def _segment_reduce(ctx, rows: Value, ids: np.ndarray, k: int, op: str) -> Value:
    """The [k, W] reductions of the [n, W] ``rows`` grouped by the constant ``ids`` (empty groups 0, or 1 for
    PROD, as TensorFlow).  ``op``: SUM, PROD, MAX, MIN, MEAN (sum / count) or SQRTN (sum / √count)."""
    n = ids.size
    dtype = np.dtype(rows.dtype)
    counts = np.bincount(ids, minlength=k)[:k]
    mask = ids.reshape(1, n) == np.arange(k).reshape(k, 1)
    out = _masked_reduce(ctx, mask, rows, op if op in _IDENTITY_OPS else "SUM", "segments")
    empty = counts == 0
    if op == "MEAN":
        divisor = Value(const=np.maximum(counts, 1).astype(dtype).reshape(k, 1))
        out = elementwise(ctx, out, divisor, "DIV", "mean")  # integer DIV truncates, as TensorFlow's mean
    elif op == "SQRTN":
        divisor = Value(const=np.sqrt(np.maximum(counts, 1)).astype(dtype).reshape(k, 1))
        out = elementwise(ctx, out, divisor, "DIV", "sqrt_n")
    elif op in ("MAX", "MIN") and empty.any():
        out = select(ctx, Value(const=empty.reshape(k, 1)), Value(const=np.zeros((), dtype)), out, "empty")
    return out


_IDENTITY_OPS = ("SUM", "PROD", "MAX", "MIN")


# ------------------------------------------------------------------ SparseSegment*
_SPARSE_SEGMENT_OPS = {"SparseSegmentSum": "SUM", "SparseSegmentMean": "MEAN", "SparseSegmentSqrtN": "SQRTN",
                       "SparseSegmentSumWithNumSegments": "SUM", "SparseSegmentMeanWithNumSegments": "MEAN",
                       "SparseSegmentSqrtNWithNumSegments": "SQRTN"}


def _check_sparse_segments(node, graph):
    ids, data = graph.const(node.inputs[2]), graph.shape(node.inputs[0])
    indices = graph.shape(node.inputs[1])
    if ids is None or data is None or indices is None:
        return None
    ids = np.asarray(ids).reshape(-1)
    if len(indices) != 1 or int(indices[0]) != ids.size:
        return ConversionError(node.name, node.op, "indices and segment_ids must be vectors of one length")
    if ids.size and ids.min() < 0:
        return ConversionError(node.name, node.op, "negative segment_ids (TensorFlow's kernel fails on them)")
    k = int(ids.max()) + 1 if ids.size else 0
    if len(node.inputs) > 3:
        count = graph.const(node.inputs[3])
        if count is not None:
            k = int(np.asarray(count).reshape(-1)[0])
            if ids.size and ids.max() >= k:
                return ConversionError(node.name, node.op, "segment_ids ≥ num_segments (TensorFlow's kernel fails)")
    if k * ids.size * _prod(data[1:]) > _MAX_MASK_ELEMENTS:
        return ConversionError(node.name, node.op, "segments × rows exceeds 2^27 elements (the membership mask "
                               "would be too large)", "reduce the data or the number of segments")
    return None


@register(*_SPARSE_SEGMENT_OPS, layers=("Gather", "Shuffle", "Select", "Reduce", "ElementWise"),
          check=[static_inputs(2, 3, what="segment_ids and num_segments"), _static_shape(0, "the data"),
                 _static_shape(1, "the indices"), _check_sparse_segments],
          restrictions="constant segment_ids (and num_segments), static shapes; indices may be a tensor (a Gather "
                       "of the rows, which must be in range as TensorFlow requires); the rows are grouped by a "
                       "constant membership mask and reduced; empty segments give 0; Mean divides by the count, "
                       "SqrtN by its square root")
def convert_sparse_segment(ctx, node, inputs):
    data, indices, ids = inputs[:3]
    ids = np.asarray(ctx.as_const(ids, "segment_ids")).reshape(-1).astype(np.int64)
    k = int(ids.max()) + 1 if ids.size else 0
    if len(inputs) > 3:
        k = int(const_int_list(ctx, inputs[3], "num_segments")[0])
    rest = tuple(int(d) for d in data.shape[1:])
    width = _prod(rest)
    dtype = np.dtype(data.dtype)
    op = _SPARSE_SEGMENT_OPS[node.op]
    if ids.size == 0 or k == 0 or width == 0:
        return Value(const=np.zeros((k,) + rest, dtype))
    if data.is_const and indices.is_const:
        rows = data.const.reshape(-1, width)[indices.const.reshape(-1)]
        out = np.zeros((k, width), dtype)
        np.add.at(out, ids, rows)
        counts = np.bincount(ids, minlength=k)[:k].reshape(k, 1)
        if op == "MEAN":
            out = out / np.maximum(counts, 1)
        elif op == "SQRTN":
            out = out / np.sqrt(np.maximum(counts, 1))
        return Value(const=out.astype(dtype).reshape((k,) + rest))
    table = reshape(ctx, data, (int(data.shape[0]), width), "table")
    idx = Value(const=indices.const.astype(np.int32).reshape(-1)) if indices.is_const else indices
    layer = ctx.add(layers.gather, [tensor_of(ctx, table) if table.is_const else ctx.logical(table),
                                    tensor_of(ctx, idx) if idx.is_const else ctx.logical(idx)],
                    layers.gather.Params(axis=0), suffix="rows")
    out = _segment_reduce(ctx, ctx.out(layer.get_output(0)), ids, k, op)
    return reshape(ctx, out, (k,) + rest)


# ------------------------------------------------------------------ Bincount
def _check_bincount(node, graph):
    size, arr = graph.const(node.inputs[1]), graph.shape(node.inputs[0])
    weights = graph.shape(node.inputs[2])
    if size is None or arr is None:
        return None
    if weights is not None and _prod(weights) not in (0, _prod(arr)):
        return ConversionError(node.name, node.op, "weights must be empty or have arr's shape")
    if int(np.asarray(size).reshape(-1)[0]) * _prod(arr) > _MAX_MASK_ELEMENTS:
        return ConversionError(node.name, node.op, "size × len(arr) exceeds 2^27 elements (the count mask would "
                               "be too large)")
    return None


@register("Bincount", layers=("Shuffle", "ElementWise", "Select", "Reduce"),
          check=[static_inputs(1, what="size"), _static_shape(0, "arr"), _static_shape(2, "the weights"),
                 _check_bincount],
          restrictions="constant size, static shapes; an equality mask [size, N] against 0..size-1, summed (with "
                       "the weights, or ones when the weights are empty); values ≥ size are not counted, as in "
                       "TensorFlow (whose kernel fails on negative values)")
def convert_bincount(ctx, node, inputs):
    arr, size, weights = inputs
    size = const_int_list(ctx, size, "size")[0]
    n = _prod(arr.shape)
    dtype = np.dtype(node.attr("T", "float32"))
    if weights.is_const and weights.const.size == 0:
        weights = Value(const=np.ones((), dtype))
    if n == 0 or size == 0 or all_const([arr, weights]):
        out = np.zeros(size, dtype)
        if n and size:
            values = np.asarray(arr.const).reshape(-1)
            w = np.broadcast_to(weights.const, arr.const.shape).reshape(-1)
            for v, wv in zip(values, w):
                if 0 <= v < size:
                    out[v] += wv
        return Value(const=out)
    flat = reshape(ctx, arr, (1, n), "values_row") if not arr.is_const else Value(const=arr.const.reshape(1, n))
    mask = elementwise(ctx, flat, Value(const=np.arange(size, dtype=np.int32).reshape(size, 1)), "EQUAL", "mask")
    w = weights if weights.rank == 0 else reshape(ctx, weights, (1, n), "weights_row")
    picked = select(ctx, mask, w, Value(const=np.zeros((), dtype)), "picked")
    return reduce(ctx, picked, [1], False, "SUM")


# ------------------------------------------------------------------ ScatterNd
def _check_scatter_nd(node, graph):
    indices, shape = graph.const(node.inputs[0]), graph.const(node.inputs[2])
    if indices is None or shape is None:
        return None
    indices, shape = np.asarray(indices), np.asarray(shape).reshape(-1)
    q = indices.shape[-1] if indices.ndim else 0
    if q > shape.size:
        return ConversionError(node.name, node.op, f"index depth {q} exceeds the output rank {shape.size}")
    flat = indices.reshape(-1, q)
    if flat.size and (np.any(flat < 0) or np.any(flat >= shape[:q])):
        return ConversionError(node.name, node.op, "indices out of range (TensorFlow's CPU kernel fails on them)")
    return None


@register("ScatterNd", layers=("Shuffle", "Select", "Reduce", "Concatenation", "Gather"),
          check=[static_inputs(0, 2, what="indices and shape"), _static_shape(1, "the updates"), _check_scatter_nd],
          folds=True,
          restrictions="constant indices and shape, static updates shape; duplicate indices add (summed by a "
                       "constant mask and a reduction, as TensorFlow adds them); positions never written are 0")
def convert_scatter_nd(ctx, node, inputs):
    indices, updates, shape = inputs
    indices = np.asarray(ctx.as_const(indices, "indices")).astype(np.int64)
    shape = tuple(const_int_list(ctx, shape, "shape"))
    q = indices.shape[-1]
    outer = shape[:q]
    positions = _prod(outer)
    width = _prod(shape[q:])
    flat_idx = np.ravel_multi_index(tuple(indices.reshape(-1, q).T), outer) if q else np.zeros(
        _prod(indices.shape[:-1]), np.int64)
    n = flat_idx.size
    dtype = np.dtype(updates.dtype)
    if updates.is_const or n == 0 or width == 0:
        out = np.zeros((positions, width), dtype)
        if n and width:
            np.add.at(out, flat_idx, updates.const.reshape(n, width))
        return Value(const=out.reshape(shape))
    rows = reshape(ctx, updates, (n, width), "rows")
    unique, group = np.unique(flat_idx, return_inverse=True)
    if unique.size == n:
        summed = rows  # no duplicates: every update is its own group
        source = np.full(positions, n, np.int64)
        source[flat_idx] = np.arange(n)
    else:
        mask = group.reshape(1, n) == np.arange(unique.size).reshape(-1, 1)
        summed = _masked_reduce(ctx, mask, rows, "SUM", "duplicates")
        source = np.full(positions, unique.size, np.int64)
        source[unique] = np.arange(unique.size)
    groups = int(summed.shape[0])
    if (source == groups).any():
        summed = concat(ctx, [summed, Value(const=np.zeros((1, width), dtype))], 0, "with_zero_row")
    layer = ctx.add(layers.gather, [ctx.logical(summed), tensor_of(ctx, Value(const=source.astype(np.int32)))],
                    layers.gather.Params(axis=0), suffix="placed")
    return reshape(ctx, ctx.out(layer.get_output(0)), shape)


# ------------------------------------------------------------------ InvertPermutation
@register("InvertPermutation", layers=("Scatter",), check=_static_shape(0, "the permutation"), folds=True,
          restrictions="static length; constants fold; a tensor is a Scatter (ELEMENT) of 0..n-1 to its positions "
                       "(TensorFlow's kernel fails on a non-permutation)")
def convert_invert_permutation(ctx, node, inputs):
    x = inputs[0]
    n = int(x.shape[0])
    if x.is_const:
        out = np.empty(n, x.const.dtype)
        out[x.const] = np.arange(n, dtype=x.const.dtype)
        return Value(const=out)
    dtype = np.dtype(x.dtype)
    params = layers.scatter.Params(mode="ELEMENT", axis=0)
    layer = ctx.add(layers.scatter, [ctx.constant(np.zeros(n, dtype), "zeros"), ctx.logical(x),
                                     ctx.constant(np.arange(n, dtype=dtype), "iota")], params)
    return ctx.out(layer.get_output(0))
