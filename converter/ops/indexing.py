"""Indexing, scatter and segment converters: Roll, OneHot, MatrixBandPart, ReverseSequence, Cumprod,
TensorScatter*, UnsortedSegment*, DenseBincount.

Several TF ops here have no TensorRT layer of their own, or one whose semantics differ from TF's:

* TensorRT's scatter layer (``IScatterLayer``) has no reduction in TensorRT-RTX (``ScatterMode`` is only
  ELEMENT/ND, no ``reduction`` attribute), so TensorScatterAdd/Sub/Max/Min first combine the updates that
  hit the same position (an ``[N, N]`` equality mask of the linearised indices, then a reduction), read the
  old values with an ND gather, and write ``old ∘ combined`` with an ND scatter: duplicate positions then
  all write the same value, so the scatter's unspecified write order does not matter.
* UnsortedSegmentSum/Max/Min and DenseBincount are an equality mask against ``range(num_segments)``
  followed by a reduction over the data axis; empty segments get the reduction's identity, which is what
  TensorFlow writes (0, the dtype's lowest, the dtype's highest).
* OneHot is ``indices == range(depth)`` and a select: TensorRT's one-hot layer wraps negative indices
  (ONNX semantics) where TensorFlow gives all-``off`` rows.
* Cumprod: ``CumulativeOperation`` has only SUM, so a Hillis–Steele scan (log2(n) shifted products).
"""

from __future__ import annotations

import numpy as np

from .. import layers
from ..context import Value
from ..errors import ConversionError
from .helpers import (all_const, cast, const_int_list, const_scalar, elementwise, expand_dims, reduce,
                      register, reshape, select, slice_value, static_inputs, tensor_of, value_layout)


# ------------------------------------------------------------------ shared checks and helpers
def _static_dims(*indices: int, what: str, dims=None):
    """A check: the inputs at ``indices`` have static shapes (only the dims selected by ``dims(shape, node)``)."""

    def check(node, graph):
        for i in indices:
            if i >= len(node.inputs):
                continue
            shape = graph.shape(node.inputs[i])
            if shape is None:
                bad = True
            else:
                picked = list(shape) if dims is None else dims(list(shape), node, graph)
                bad = any(int(d) < 0 for d in picked)
            if bad:
                return ConversionError(node.name, node.op, f"{what} must have a static shape",
                                       "give the model static input shapes (--input name:shape) or a profile "
                                       "that fixes these dimensions")
        return None

    return check


def _lowest(dtype) -> np.generic:
    dtype = np.dtype(dtype)
    return np.finfo(dtype).min if dtype.kind == "f" else np.iinfo(dtype).min


def _highest(dtype) -> np.generic:
    dtype = np.dtype(dtype)
    return np.finfo(dtype).max if dtype.kind == "f" else np.iinfo(dtype).max


#: reduction → (TensorRT reduce op, identity of the reduction for a dtype)
_REDUCTIONS = {
    "SUM": ("SUM", lambda dt: np.zeros((), dt)),
    "MAX": ("MAX", lambda dt: np.asarray(_lowest(dt), dt)),
    "MIN": ("MIN", lambda dt: np.asarray(_highest(dt), dt)),
}


def _masked_reduce(ctx, mask: Value, data: Value, axis: int, op: str, suffix: str) -> Value:
    """``reduce_op(where(mask, data, identity), axis)`` with broadcasting (the identity fills the holes)."""
    dtype = np.dtype(data.dtype)
    if dtype == np.bool_:
        ctx.fail("bool data cannot be reduced", "cast it to int32 in the model")
    trt_op, identity = _REDUCTIONS[op]
    picked = select(ctx, mask, data, Value(const=identity(dtype)), suffix=f"{suffix}_select")
    return reduce(ctx, picked, [axis], False, trt_op, suffix=suffix)


#: the most elements an equality-mask intermediate may hold (512 MiB of float32): beyond it the conversion
#: would build a network TensorRT cannot run in reasonable memory, so the support check refuses it
MASK_LIMIT = 1 << 27


def _mask_too_big(node, elements: int, what: str):
    if elements <= MASK_LIMIT:
        return None
    return ConversionError(node.name, node.op, f"the {what} would hold {elements:,} elements (more than "
                           f"{MASK_LIMIT:,})", "split the operation into smaller ones in the model")


def _as_int32(ctx, x: Value, suffix: str) -> Value:
    return x if np.dtype(x.dtype) == np.int32 else cast(ctx, x, np.int32, suffix=suffix)


def _prod(dims) -> int:
    return int(np.prod([int(d) for d in dims], dtype=np.int64)) if len(dims) else 1


# ------------------------------------------------------------------ Roll
def _roll_shifts(node, graph, rank: int) -> dict[int, int] | None:
    shift, axis = graph.const(node.inputs[1]), graph.const(node.inputs[2])
    if shift is None or axis is None:
        return None
    shifts = np.asarray(shift).reshape(-1).astype(int).tolist()
    axes = np.asarray(axis).reshape(-1).astype(int).tolist()
    if len(shifts) == 1 and len(axes) > 1:
        shifts = shifts * len(axes)
    total: dict[int, int] = {}
    for s, a in zip(shifts, axes):
        total[a % rank] = total.get(a % rank, 0) + s  # TensorFlow adds the shifts of a repeated axis
    return total


def _check_roll(node, graph):
    problems = [static_inputs(1, 2, what="shift and axis")(node, graph)]
    shape = graph.shape(node.inputs[0])
    if not problems[0] and shape is not None and len(shape):
        total = _roll_shifts(node, graph, len(shape)) or {}
        dynamic = [a for a, s in total.items() if s and int(shape[a]) < 0]
        if dynamic:
            problems.append(ConversionError(node.name, node.op, f"rolling dynamic dimension(s) {dynamic}",
                                            "give the rolled dimensions a static size (--input or a profile)"))
    return [p for p in problems if p]


@register("Roll", layers=("Slice",), check=_check_roll, folds=True,
          restrictions="constant shift and axis (scalars or vectors, negative values, repeated axes add up); the "
                       "rolled dimensions static; one WRAP-mode slice, the tensor's layout kept")
def convert_roll(ctx, node, inputs):
    x = inputs[0]
    if x.rank == 0:
        return x
    shifts = const_int_list(ctx, inputs[1], "the shift")
    axes = const_int_list(ctx, inputs[2], "the axis")
    if len(shifts) == 1 and len(axes) > 1:
        shifts = shifts * len(axes)
    total = [0] * x.rank
    for s, a in zip(shifts, axes):
        total[a % x.rank] += s
    if x.is_const:
        return Value(const=np.roll(x.const, total, axis=tuple(range(x.rank))))
    # out[i] = x[(i - shift) mod n]: a WRAP slice starting at (-shift) mod n
    start = [(-t) % int(n) if t and int(n) > 0 else 0 for t, n in zip(total, x.shape)]
    if not any(start):
        return x
    size = [int(d) if int(d) >= 0 else -1 for d in x.shape]
    return slice_value(ctx, x, start, size, mode="WRAP")


# ------------------------------------------------------------------ OneHot
def _check_one_hot(node, graph):
    return [p for p in (static_inputs(1, what="the depth")(node, graph),) if p]


@register("OneHot", layers=("ElementWise", "Select"), check=_check_one_hot, folds=True,
          restrictions="constant depth; any axis (-1 default); on/off values may be tensors; negative or "
                       "out-of-range indices give all-off rows, as in TensorFlow (an equality against "
                       "range(depth) and a select)")
def convert_one_hot(ctx, node, inputs):
    indices, depth, on, off = inputs
    depth = int(const_scalar(ctx, depth, "the depth"))
    rank = indices.rank + 1
    axis = int(node.attr("axis", -1))
    axis = axis % rank
    if not indices.is_const:
        indices = _as_int32(ctx, indices, "indices_int32")
    else:
        indices = Value(const=indices.const.astype(np.int32))
    positions = np.arange(depth, dtype=np.int32).reshape([depth if i == axis else 1 for i in range(rank)])
    hot = elementwise(ctx, expand_dims(ctx, indices, axis, "expand"), Value(const=positions), "EQUAL", "hot")
    return select(ctx, hot, on, off)


# ------------------------------------------------------------------ MatrixBandPart
@register("MatrixBandPart", layers=("Select",),
          check=[static_inputs(1, 2, what="num_lower and num_upper"),
                 _static_dims(0, what="the last two dimensions of the input", dims=lambda s, n, g: s[-2:])],
          folds=True,
          restrictions="constant num_lower/num_upper (-1: the whole triangle); static last two dimensions; a "
                       "constant band mask and a select (causal masks)")
def convert_matrix_band_part(ctx, node, inputs):
    x, lower, upper = inputs
    lower = int(const_scalar(ctx, lower, "num_lower"))
    upper = int(const_scalar(ctx, upper, "num_upper"))
    m, n = (int(d) for d in x.shape[-2:])
    rows = np.arange(m).reshape(-1, 1)
    cols = np.arange(n).reshape(1, -1)
    band = ((lower < 0) | (rows - cols <= lower)) & ((upper < 0) | (cols - rows <= upper))
    zero = Value(const=np.zeros((), np.dtype(x.dtype)))
    if x.is_const:
        return Value(const=np.where(band, x.const, zero.const))
    if band.all():
        return x
    return select(ctx, Value(const=band), x, zero)


# ------------------------------------------------------------------ ReverseSequence
def _check_reverse_sequence(node, graph):
    shape = graph.shape(node.inputs[0])
    if shape is None:
        return None
    rank = len(shape)
    seq, batch = int(node.attr("seq_dim")), int(node.attr("batch_dim", 0))
    if seq % max(rank, 1) == batch % max(rank, 1):
        return ConversionError(node.name, node.op, "seq_dim and batch_dim are the same axis")
    return None


@register("ReverseSequence", layers=("ReverseSequence",), check=_check_reverse_sequence, folds=True,
          restrictions="any seq_dim/batch_dim; the lengths may be tensors (int64 computed as "
                       "int32) and must not exceed the sequence dimension (TensorFlow's kernel checks this); "
                       "the tensor's layout kept")
def convert_reverse_sequence(ctx, node, inputs):
    x, lengths = inputs
    seq = int(node.attr("seq_dim")) % x.rank
    batch = int(node.attr("batch_dim", 0)) % x.rank
    if x.is_const and lengths.is_const:
        out = x.const.copy()
        for b in range(x.shape[batch]):
            n = int(lengths.const[b])
            index = [slice(None)] * x.rank
            index[batch] = b
            index[seq] = slice(0, n)
            out[tuple(index)] = np.flip(x.const[tuple(index)], axis=seq - (1 if batch < seq else 0))
        return Value(const=out)
    layout = value_layout(x)
    lens = tensor_of(ctx, lengths) if lengths.is_const else ctx.logical(_as_int32(ctx, lengths, "lengths_int32"))
    params = layers.reverse_sequence.Params(batch_axis=layout.index(batch), sequence_axis=layout.index(seq))
    layer = ctx.add(layers.reverse_sequence, [tensor_of(ctx, x), lens], params)
    return ctx.out(layer.get_output(0), layout)


# ------------------------------------------------------------------ Cumprod
def _check_cumprod(node, graph):
    problems = [static_inputs(1, what="the axis")(node, graph)]
    shape, axis = graph.shape(node.inputs[0]), graph.const(node.inputs[1])
    if shape is not None and axis is not None and len(shape):
        a = int(np.asarray(axis).reshape(-1)[0]) % len(shape)
        if int(shape[a]) < 0:
            problems.append(ConversionError(node.name, node.op, "the scanned dimension is dynamic",
                                            "give it a static size (--input or a profile that fixes it)"))
    return [p for p in problems if p]


@register("Cumprod", layers=("Slice", "ElementWise"), check=_check_cumprod, folds=True,
          restrictions="constant axis over a static dimension; exclusive and reverse as in TensorFlow; a "
                       "Hillis–Steele scan (⌈log2 n⌉ shifted products: TensorRT's cumulative layer only sums), "
                       "so float products are rounded in another order than TensorFlow's")
def convert_cumprod(ctx, node, inputs):
    x, axis = inputs
    axis = const_int_list(ctx, axis, "the axis")[0] % x.rank
    exclusive, reverse = bool(node.attr("exclusive", False)), bool(node.attr("reverse", False))
    n = int(x.shape[axis])
    if x.is_const:
        arr = np.flip(x.const, axis) if reverse else x.const
        if exclusive:
            pad = [(0, 0)] * x.rank
            pad[axis] = (1, 0)
            arr = np.take(np.pad(arr, pad, constant_values=1), np.arange(n), axis=axis)
        out = np.cumprod(arr, axis=axis, dtype=arr.dtype)
        return Value(const=np.flip(out, axis) if reverse else out)
    size = [int(d) if int(d) >= 0 else -1 for d in x.shape]

    def shifted(y: Value, k: int, suffix: str) -> Value:
        """``y`` moved ``k`` steps along the scan direction, the vacated steps filled with 1."""
        start = [0] * x.rank
        start[axis] = k if reverse else -k
        return slice_value(ctx, y, start, size, mode="FILL", fill=1, suffix=suffix)

    y = shifted(x, 1, "exclusive") if exclusive and n else x
    k = 1
    while k < n:
        y = elementwise(ctx, y, shifted(y, k, f"shift_{k}"), "PROD", f"scan_{k}")
        k *= 2
    if y is x:
        layer = ctx.add(layers.identity, [ctx.tensor(x, x.layout)], layers.identity.Params())
        return ctx.out(layer.get_output(0), x.layout)
    return y


# ------------------------------------------------------------------ TensorScatter*
#: the accumulating scatters: (how duplicate updates combine, how the result meets the old value)
_SCATTER_OPS = {"TensorScatterAdd": ("SUM", "SUM"), "TensorScatterSub": ("SUM", "SUB"),
                "TensorScatterMax": ("MAX", "MAX"), "TensorScatterMin": ("MIN", "MIN")}


def _check_scatter(node, graph):
    problems = []
    indices = graph.shape(node.inputs[1])
    depth_known = indices is not None and len(indices) and int(indices[-1]) >= 1
    if not depth_known:
        problems.append(ConversionError(node.name, node.op, "the index depth (last indices dimension) must be "
                                        "static and at least 1", "give the indices a static last dimension"))
    if node.op != "TensorScatterUpdate":
        static = _static_dims(0, 1, 2, what="the tensor, indices and updates")(node, graph)
        problems.append(static)
        tensor = graph.shape(node.inputs[0])
        if not static and depth_known:
            q = int(indices[-1])
            n, positions, width = _prod(indices[:-1]), _prod(tensor[:q]), _prod(tensor[q:])
            problems.append(_mask_too_big(node, min(n, positions) * n * width, "mask combining duplicate indices"))
            if positions >= 2**31:
                problems.append(ConversionError(node.name, node.op, f"{positions:,} scatter positions (int32 "
                                                "linear indices)", "scatter into a smaller tensor"))
    if node.attr("T") == "bool" and node.op != "TensorScatterUpdate":
        problems.append(ConversionError(node.name, node.op, "bool tensors cannot be accumulated",
                                        "cast to int32 in the model"))
    return [p for p in problems if p]


def _scatter_nd(ctx, data: Value, indices: Value, updates: Value, suffix=None) -> Value:
    ins = [tensor_of(ctx, v) if v.is_const else ctx.logical(v) for v in (data, indices, updates)]
    layer = ctx.add(layers.scatter, ins, layers.scatter.Params(mode="ND"), suffix=suffix)
    return ctx.out(layer.get_output(0))


def _gather_nd(ctx, data: Value, indices: Value, suffix=None) -> Value:
    ins = [tensor_of(ctx, v) if v.is_const else ctx.logical(v) for v in (data, indices)]
    layer = ctx.add(layers.gather, ins, layers.gather.Params(mode="ND", num_elementwise_dims=0), suffix=suffix)
    return ctx.out(layer.get_output(0))


def _numpy_scatter(op: str, tensor, indices, updates):
    out = tensor.copy()
    q = indices.shape[-1]
    flat = indices.reshape(-1, q)
    upd = updates.reshape((flat.shape[0],) + tensor.shape[q:])
    for j in range(flat.shape[0]):
        key = tuple(int(v) for v in flat[j])
        if op == "TensorScatterUpdate":
            out[key] = upd[j]
        elif op == "TensorScatterAdd":
            out[key] = out[key] + upd[j]
        elif op == "TensorScatterSub":
            out[key] = out[key] - upd[j]
        elif op == "TensorScatterMax":
            out[key] = np.maximum(out[key], upd[j])
        else:
            out[key] = np.minimum(out[key], upd[j])
    return out


def _scatter_inputs(ctx, inputs):
    tensor, indices, updates = inputs
    indices = Value(const=indices.const.astype(np.int32)) if indices.is_const else _as_int32(ctx, indices, "idx")
    if updates.is_const and not tensor.is_const:
        updates = Value(const=updates.const.astype(np.dtype(tensor.dtype)))
    return tensor, indices, updates


@register("TensorScatterUpdate", layers=("Scatter",), check=_check_scatter, folds=True,
          restrictions="an ND scatter; indices unique (TensorFlow leaves duplicates undefined) and in range; "
                       "dynamic shapes allowed")
def convert_tensor_scatter_update(ctx, node, inputs):
    if all_const(inputs):
        return Value(const=_numpy_scatter(node.op, *(v.const for v in inputs)))
    return _scatter_nd(ctx, *_scatter_inputs(ctx, inputs))


@register(*_SCATTER_OPS,
          layers=("ElementWise", "Select", "Reduce", "Gather", "Scatter"), check=_check_scatter, folds=True,
          restrictions="TensorRT-RTX's scatter has no reduction, so: static shapes; the N updates are reduced per "
                       "position (duplicate indices accumulate, as in TensorFlow) through an equality mask — [N, N] "
                       "then gather, combine and scatter, or [P, N] against the P positions when P ≤ N — of at "
                       "most 2^27 elements; indices in range")
def convert_tensor_scatter(ctx, node, inputs):
    if all_const(inputs):
        return Value(const=_numpy_scatter(node.op, *(v.const for v in inputs)))
    tensor, indices, updates = _scatter_inputs(ctx, inputs)
    combine, apply = _SCATTER_OPS[node.op]
    q = int(indices.shape[-1])
    n = _prod(indices.shape[:-1])
    rest = tuple(int(d) for d in tensor.shape[q:])
    width = _prod(rest)
    positions = _prod(tensor.shape[:q])
    idx2 = reshape(ctx, indices, (n, q), "indices_2d")
    upd2 = reshape(ctx, updates, (n, width), "updates_2d")
    if n > 1:
        # the linear position of each index tuple; equal positions are duplicates whose updates combine
        strides = np.asarray([_prod(tensor.shape[i + 1:q]) for i in range(q)], np.int32)
        linear = reduce(ctx, elementwise(ctx, idx2, Value(const=strides), "PROD", "strided"), [1], False, "SUM",
                        "linear")
        if positions <= n:
            # fewer positions than updates: reduce the updates of every position, then combine with the whole
            # tensor (positions no index hits get the identity, which leaves them unchanged)
            hits = elementwise(ctx, reshape(ctx, linear, (1, n, 1), "linear_cols"),
                               Value(const=np.arange(positions, dtype=np.int32).reshape(positions, 1, 1)),
                               "EQUAL", "hits")
            dense = _masked_reduce(ctx, hits, reshape(ctx, upd2, (1, n, width), "updates_3d"), 1, combine,
                                   "combined")
            out = elementwise(ctx, reshape(ctx, tensor, (positions, width), "tensor_2d"), dense, apply, "new")
            return reshape(ctx, out, tensor.shape, "output")
        same = elementwise(ctx, reshape(ctx, linear, (n, 1, 1), "linear_rows"),
                           reshape(ctx, linear, (1, n, 1), "linear_cols"), "EQUAL", "same")
        upd2 = _masked_reduce(ctx, same, reshape(ctx, upd2, (1, n, width), "updates_3d"), 1, combine, "combined")
    old = reshape(ctx, _gather_nd(ctx, tensor, idx2, "old"), (n, width), "old_2d")
    new = elementwise(ctx, old, upd2, apply, "new")
    return _scatter_nd(ctx, tensor, idx2, reshape(ctx, new, (n,) + rest, "new_values"))


# ------------------------------------------------------------------ UnsortedSegment*
_SEGMENT_OPS = {"UnsortedSegmentSum": "SUM", "UnsortedSegmentMax": "MAX", "UnsortedSegmentMin": "MIN"}


def _check_segment_mask(node, graph):
    count, data, ids = graph.const(node.inputs[2]), graph.shape(node.inputs[0]), graph.shape(node.inputs[1])
    if count is None or data is None or ids is None or any(int(d) < 0 for d in list(data) + list(ids)):
        return None  # reported by the other checks
    return _mask_too_big(node, int(np.asarray(count).reshape(-1)[0]) * _prod(data), "segment mask")


@register(*_SEGMENT_OPS, layers=("ElementWise", "Select", "Reduce"),
          check=[static_inputs(2, what="num_segments"), _static_dims(0, 1, what="the data and segment ids"),
                 lambda node, graph: _check_segment_mask(node, graph)],
          folds=True,
          restrictions="constant num_segments, static shapes; negative ids are dropped and empty segments get 0 / "
                       "the dtype's lowest / highest, as in TensorFlow; a [num_segments, N] equality mask of the N "
                       "ids, then a reduction (num_segments × data size elements, at most 2^27)")
def convert_unsorted_segment(ctx, node, inputs):
    data, ids, count = inputs
    k = int(const_scalar(ctx, count, "num_segments"))
    m = ids.rank
    n = _prod(ids.shape)
    rest = tuple(int(d) for d in data.shape[m:])
    width = _prod(rest)
    op = _SEGMENT_OPS[node.op]
    if all_const([data, ids]) or n == 0:  # no ids: every segment is empty
        dtype = data.const.dtype if data.is_const else np.dtype(data.dtype)
        out = np.full((k,) + rest, _REDUCTIONS[op][1](dtype), dtype)
        if n == 0:
            return Value(const=out)
        flat_ids, flat = ids.const.reshape(-1), data.const.reshape((n,) + rest)
        fn = {"SUM": np.add, "MAX": np.maximum, "MIN": np.minimum}[op]
        for j, s in enumerate(flat_ids):
            if 0 <= s < k:
                out[s] = fn(out[s], flat[j])
        return Value(const=out)
    ids = Value(const=ids.const.astype(np.int32)) if ids.is_const else _as_int32(ctx, ids, "ids_int32")
    segments = Value(const=np.arange(k, dtype=np.int32).reshape(k, 1, 1))
    mask = elementwise(ctx, reshape(ctx, ids, (1, n, 1), "ids_row"), segments, "EQUAL", "mask")
    out = _masked_reduce(ctx, mask, reshape(ctx, data, (1, n, width), "data_3d"), 1, op, "segments")
    return reshape(ctx, out, (k,) + rest)


# ------------------------------------------------------------------ DenseBincount
def _pinned_size(graph, ref: str) -> int | None:
    """A bincount size known at conversion time: a constant, or ``min(maxlength, max(minlength, …))`` with
    ``minlength >= maxlength`` — what Keras' CategoryEncoding builds around ``max(x) + 1`` (the result is
    always ``maxlength`` = num_tokens, whatever the data)."""
    from ..freeze import _src

    value = graph.const(ref)
    if value is not None:
        return int(np.asarray(value).reshape(-1)[0])
    node = graph.by_name.get(_src(ref))
    if node is None or node.op != "Minimum" or len(node.inputs) != 2:
        return None
    for i in (0, 1):
        cap, inner = graph.const(node.inputs[i]), graph.by_name.get(_src(node.inputs[1 - i]))
        if cap is None or inner is None or inner.op != "Maximum" or len(inner.inputs) != 2:
            continue
        for ref_floor in inner.inputs:
            floor = graph.const(ref_floor)
            if floor is not None and int(np.asarray(floor).reshape(-1)[0]) >= int(np.asarray(cap).reshape(-1)[0]):
                return int(np.asarray(cap).reshape(-1)[0])
    return None


def _check_bincount(node, graph):
    problems = [_static_dims(0, what="the input", dims=lambda s, n, g: s[-1:])(node, graph)]
    if _pinned_size(graph, node.inputs[1]) is None:
        problems.append(ConversionError(node.name, node.op, "the size must be a constant (or Keras' "
                                        "min(num_tokens, max(num_tokens, …)))",
                                        "give tf.math.bincount a constant minlength = maxlength, or use "
                                        "keras.layers.CategoryEncoding with num_tokens"))
    shape = graph.shape(node.inputs[0])
    if shape is not None and len(shape) not in (1, 2):
        problems.append(ConversionError(node.name, node.op,
                                        f"rank-{len(shape)} input (TensorFlow takes rank 1 or 2)"))
    return [p for p in problems if p]


@register("DenseBincount", layers=("ElementWise", "Select", "Reduce", "Cast"), check=_check_bincount, folds=True,
          restrictions="constant size (or Keras' min(num_tokens, max(num_tokens, …))); rank 1 or 2 input "
                       "(Keras CategoryEncoding count/multi_hot), weighted or not, binary_output both ways; values "
                       "≥ size are ignored as in TensorFlow (negative values are an error there); an equality mask "
                       "against range(size) reduced over the values")
def convert_dense_bincount(ctx, node, inputs):
    x, size, weights = inputs
    size = int(const_scalar(ctx, size, "the size")) if size.is_const else _pinned_size(ctx.graph, node.inputs[1])
    dtype = np.dtype(node.attr("T", "float32"))
    if dtype == np.int64:
        dtype = np.dtype(np.int32)
    binary = bool(node.attr("binary_output", False))
    weighted = not (weights.is_const and weights.const.size == 0) and not binary
    if x.is_const and (not weighted or weights.is_const):
        arr = x.const
        hot = arr[..., None] == np.arange(size)
        if binary:
            out = hot.any(axis=-2).astype(dtype)
        elif weighted:
            out = np.where(hot, weights.const[..., None], 0).sum(axis=-2).astype(dtype)
        else:
            out = hot.sum(axis=-2).astype(dtype)
        return Value(const=out)
    x = Value(const=x.const.astype(np.int32)) if x.is_const else _as_int32(ctx, x, "input_int32")
    bins = Value(const=np.arange(size, dtype=np.int32))
    hot = elementwise(ctx, expand_dims(ctx, x, x.rank, "values"), bins, "EQUAL", "hot")
    axis = x.rank - 1  # the values' axis: the bins come after it
    if weighted:
        w = Value(const=weights.const.astype(dtype)) if weights.is_const else weights
        w = expand_dims(ctx, w, x.rank, "weights")
        return _masked_reduce(ctx, hot, w, axis, "SUM", "count")
    ones = cast(ctx, hot, dtype, suffix="ones")
    return reduce(ctx, ones, [axis], False, "MAX" if binary else "SUM")


