"""Diagonals: MatrixDiag*, MatrixDiagPart*, MatrixSetDiag* (V1, V2, V3), Diag and DiagPart.

Which element of which diagonal lands where depends only on the static matrix sizes, k and the alignment, so
each op is a Gather with a constant index map (computed here in numpy from TensorFlow's definition) plus a
Select against a constant band mask for the padding / kept elements.  Values are moved, never computed: the
results are exact for every dtype (NaN, ±inf and signed zeros included).
"""

from __future__ import annotations

import numpy as np

from .. import layers
from ..context import Value
from ..errors import ConversionError
from .helpers import const_scalar, register, reshape, select, static_inputs, tensor_of

_ALIGNS = ("LEFT_LEFT", "LEFT_RIGHT", "RIGHT_LEFT", "RIGHT_RIGHT")


# ------------------------------------------------------------------ TensorFlow's index arithmetic
def _diag_len(rows: int, cols: int, d: int) -> int:
    return min(cols - max(d, 0), rows + min(d, 0))


def _band_map(rows: int, cols: int, k0: int, k1: int, align: str):
    """For every matrix element (m, n): the flat index ``diag_index·max_len + index_in_diag`` of the packed
    diagonals it belongs to, and whether it is in the band k0 ≤ n - m ≤ k1 (TensorFlow's MatrixDiagV3 docs).
    ``align`` is "<superdiagonals>_<subdiagonals>": a RIGHT-aligned diagonal shorter than the longest one is
    padded at its start."""
    max_len = min(rows + min(k1, 0), cols - max(k0, 0))
    sup, sub = align.split("_")
    m, n = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    d = n - m
    in_band = (d >= k0) & (d <= k1)
    lengths = np.minimum(cols - np.maximum(d, 0), rows + np.minimum(d, 0))
    right = ((d >= 0) & (sup == "RIGHT")) | ((d <= 0) & (sub == "RIGHT"))
    offset = np.where(right, max_len - lengths, 0)
    pos = n - np.maximum(d, 0) + offset
    flat = (k1 - d) * max_len + pos
    return np.where(in_band, flat, 0).astype(np.int32), in_band, max_len


def _part_map(rows: int, cols: int, k0: int, k1: int, align: str):
    """For every packed-diagonal slot (diag_index, p): the flat matrix index ``m·cols + n`` it reads, and
    whether the slot is on the matrix (the others are padding)."""
    max_len = min(rows + min(k1, 0), cols - max(k0, 0))
    sup, sub = align.split("_")
    num = k1 - k0 + 1
    flat = np.zeros((num, max_len), np.int64)
    valid = np.zeros((num, max_len), bool)
    for i in range(num):
        d = k1 - i
        length = _diag_len(rows, cols, d)
        right = (d >= 0 and sup == "RIGHT") or (d <= 0 and sub == "RIGHT")
        offset = max_len - length if right else 0
        for p in range(max_len):
            t = p - offset
            if 0 <= t < length:
                m, n = (t, t + d) if d >= 0 else (t - d, t)
                flat[i, p] = m * cols + n
                valid[i, p] = True
    return flat.astype(np.int32), valid


# ------------------------------------------------------------------ attributes and checks
def _k_range(k) -> tuple[int, int]:
    ks = [int(v) for v in np.asarray(k).reshape(-1)]
    return (ks[0], ks[0]) if len(ks) == 1 else (ks[0], ks[1])


def _align(node) -> str:
    if node.op.endswith("V3"):
        return node.attr("align", "RIGHT_LEFT")
    return "LEFT_LEFT"  # V1 (one diagonal: alignment does not matter) and V2 pack left-aligned


def _static_dims(index: int, last: int, what: str):
    def check(node, graph):
        shape = graph.shape(node.inputs[index])
        if shape is None or len(shape) < last or any(int(d) < 0 for d in list(shape)[len(shape) - last:]):
            return ConversionError(node.name, node.op, f"{what} must have static sizes",
                                   "give the model static shapes")
        return None

    return check


def _check_align(node, graph):
    if node.op.endswith("V3") and node.attr("align", "RIGHT_LEFT") not in _ALIGNS:
        return ConversionError(node.name, node.op, f"align={node.attr('align')} is not one of {_ALIGNS}")
    return None


def _check_k(node, graph):
    k = graph.const(node.inputs[1]) if len(node.inputs) > 1 else None
    if k is None:
        return None  # static_inputs reports a computed k
    ks = np.asarray(k).reshape(-1)
    if ks.size not in (1, 2) or (ks.size == 2 and ks[0] > ks[1]):
        return ConversionError(node.name, node.op, f"k={ks.tolist()} is not a diagonal or a range k[0] ≤ k[1]")
    return None


def _gather_last(ctx, data: Value, index: np.ndarray, suffix) -> Value:
    """``data[..., index]``: a Gather on the last logical axis with a constant (possibly 2-D) index."""
    idx = Value(const=np.ascontiguousarray(index, np.int32))
    layer = ctx.add(layers.gather, [tensor_of(ctx, data) if data.is_const else ctx.logical(data),
                                    tensor_of(ctx, idx)], layers.gather.Params(axis=data.rank - 1), suffix=suffix)
    return ctx.out(layer.get_output(0))


def _flatten_last(ctx, x: Value, count: int, suffix) -> Value:
    """Merge the last ``count`` axes of ``x`` into one."""
    if count == 1:
        return x
    batch = tuple(x.shape[:x.rank - count])
    return reshape(ctx, x, batch + (int(np.prod(x.shape[x.rank - count:])),), suffix)


# ------------------------------------------------------------------ MatrixDiag
def _diag_sizes(ctx, node, inputs, k0, k1):
    """TensorFlow's num_rows / num_cols (-1: the smallest that holds the diagonals, square if both are -1)."""
    diag = inputs[0]
    max_len = int(diag.shape[-1])
    rows = cols = -1
    if node.op != "MatrixDiag":
        rows = int(const_scalar(ctx, inputs[2], "num_rows"))
        cols = int(const_scalar(ctx, inputs[3], "num_cols"))
    min_rows, min_cols = max_len - min(k1, 0), max_len + max(k0, 0)
    if rows == -1 and cols == -1:
        rows = cols = max(min_rows, min_cols)
    elif rows == -1:
        rows = min_rows
    elif cols == -1:
        cols = min_cols
    return rows, cols


@register("MatrixDiag", "MatrixDiagV2", "MatrixDiagV3", layers=("Shuffle", "Gather", "Select"),
          check=[static_inputs(1, 2, 3, 4, what="k, num_rows, num_cols and padding_value"), _check_k, _check_align,
                 _static_dims(0, 1, "the diagonals")],
          restrictions="constant k (one diagonal or a range), num_rows, num_cols and padding_value; static "
                       "diagonal sizes; every align; a Gather with a constant index map, exact for every dtype")
def convert_matrix_diag(ctx, node, inputs):
    diag = inputs[0]
    k0, k1 = (0, 0) if node.op == "MatrixDiag" else _k_range(ctx.as_const(inputs[1], "k"))
    rows, cols = _diag_sizes(ctx, node, inputs, k0, k1)
    padding = inputs[4] if node.op != "MatrixDiag" else Value(const=np.zeros((), np.dtype(diag.dtype)))
    index, in_band, _ = _band_map(rows, cols, k0, k1, _align(node))
    flat = _flatten_last(ctx, diag, 1 if k0 == k1 else 2, "packed")
    gathered = _gather_last(ctx, flat, index, "gather")
    if in_band.all():
        return gathered
    return select(ctx, Value(const=in_band), gathered, padding)


# ------------------------------------------------------------------ MatrixDiagPart
@register("MatrixDiagPart", "MatrixDiagPartV2", "MatrixDiagPartV3", layers=("Shuffle", "Gather", "Select"),
          check=[static_inputs(1, 2, what="k and padding_value"), _check_k, _check_align,
                 _static_dims(0, 2, "the matrices")],
          restrictions="constant k (one diagonal or a range) and padding_value; static matrix sizes; every align; "
                       "a Gather with a constant index map, exact for every dtype")
def convert_matrix_diag_part(ctx, node, inputs):
    x = inputs[0]
    rows, cols = int(x.shape[-2]), int(x.shape[-1])
    k0, k1 = (0, 0) if node.op == "MatrixDiagPart" else _k_range(ctx.as_const(inputs[1], "k"))
    index, valid = _part_map(rows, cols, k0, k1, _align(node))
    if k0 == k1:
        index, valid = index[0], valid[0]
    flat = _flatten_last(ctx, x, 2, "flat")
    gathered = _gather_last(ctx, flat, index, "gather")
    if valid.all():
        return gathered
    padding = inputs[2]
    return select(ctx, Value(const=valid), gathered, padding)


# ------------------------------------------------------------------ MatrixSetDiag
@register("MatrixSetDiag", "MatrixSetDiagV2", "MatrixSetDiagV3", layers=("Shuffle", "Gather", "Select"),
          check=[static_inputs(2, what="k"), _check_k, _check_align, _static_dims(0, 2, "the matrices")],
          restrictions="constant k (one diagonal or a range); static matrix sizes; every align; the diagonals "
                       "gathered by a constant index map and selected into the band, exact for every dtype")
def convert_matrix_set_diag(ctx, node, inputs):
    x, diag = inputs[0], inputs[1]
    rows, cols = int(x.shape[-2]), int(x.shape[-1])
    k0, k1 = (0, 0) if node.op == "MatrixSetDiag" else _k_range(ctx.as_const(inputs[2], "k"))
    index, in_band, _ = _band_map(rows, cols, k0, k1, _align(node))
    flat = _flatten_last(ctx, diag, 1 if k0 == k1 else 2, "packed")
    gathered = _gather_last(ctx, flat, index, "gather")
    return select(ctx, Value(const=in_band), gathered, x)


# ------------------------------------------------------------------ Diag / DiagPart
def _static_shape(what: str):
    def check(node, graph):
        shape = graph.shape(node.inputs[0])
        if shape is None or any(int(d) < 0 for d in shape):
            return ConversionError(node.name, node.op, f"{what} must have a static shape",
                                   "give the model static shapes")
        return None

    return check


@register("Diag", layers=("Shuffle", "Select"), check=_static_shape("the input"), folds=True,
          restrictions="static shape; x broadcast against a constant identity mask (exact for every dtype)")
def convert_diag(ctx, node, inputs):
    x = inputs[0]
    shape = tuple(int(d) for d in x.shape)
    size = int(np.prod(shape))
    if x.is_const:
        return Value(const=np.diag(x.const.reshape(-1)).reshape(shape + shape))
    row = reshape(ctx, x, (1, size), "row")
    zero = Value(const=np.zeros((), np.dtype(x.dtype)))
    out = select(ctx, Value(const=np.eye(size, dtype=bool)), row, zero, "diag")
    return reshape(ctx, out, shape + shape)


def _check_diag_part(node, graph):
    problem = _static_shape("the input")(node, graph)
    if problem:
        return problem
    shape = [int(d) for d in graph.shape(node.inputs[0])]
    half = len(shape) // 2
    if len(shape) % 2 or shape[:half] != shape[half:]:
        return ConversionError(node.name, node.op, f"input shape {shape} is not of the form s + s")
    return None


@register("DiagPart", layers=("Shuffle", "Gather"), check=_check_diag_part, folds=True,
          restrictions="static shape s + s; a Gather of the flat diagonal positions (exact)")
def convert_diag_part(ctx, node, inputs):
    x = inputs[0]
    shape = tuple(int(d) for d in x.shape[:x.rank // 2])
    size = int(np.prod(shape))
    if x.is_const:
        return Value(const=np.diagonal(x.const.reshape(size, size)).reshape(shape))
    flat = reshape(ctx, x, (size * size,), "flat")
    picked = _gather_last(ctx, flat, np.arange(size) * (size + 1), "gather")
    return reshape(ctx, picked, shape)
