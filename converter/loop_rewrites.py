"""Rewrites of loop bodies that keep TensorRT's builder on its feet.

Measured with TensorRT-RTX 1.7.1 (``bench``-free: a 20-layer network built directly through its Python API):
inside an ``ILoop``, a tensor that depends on a recurrence and is cut into two or more slices (``ISliceLayer`` or
a constant-index ``IGatherLayer``) whose pieces meet again makes ``build_serialized_network`` run for ever,
its memory growing by gigabytes per minute, at every builder optimization level.  That is exactly the cell of
a Keras GRU (and of many hand-written RNN cells): one matrix product for all gates, then ``split`` /
``x[:, :units]``.  The same cell with one product per gate builds in a tenth of a second.

So in a loop body, a column slice of a *linear expression over constant columns* — ``MatMul(a, W)`` with a
static ``W``, plus or minus static biases (``BiasAdd``/``AddV2``/``Add``/``Sub``) — becomes the same expression
over the sliced constants: ``(a @ W + b)[:, i:j]`` → ``a @ W[:, i:j] + b[i:j]``.  Each output element is the
same dot product plus the same bias, so the values are those TensorFlow computes (up to the order in which
the matrix kernel sums a row, as for any product).  The sliced constants are new ``StridedSlice`` nodes over
the static operands, folded at conversion time like every static value; nodes left without consumers are
dropped.  Rewritten nodes are named after the slice they replace (``<slice>/cols_<i>_<j>/…``), so errors and
layer names still point at the TensorFlow node.
"""

from __future__ import annotations

import logging

import numpy as np

from .freeze import _src
from .graph import Graph, Node

log = logging.getLogger(__name__)

__all__ = ["split_sliced_products"]

#: binary ops of a linear expression: the tensor side recurses, a static side is sliced with it
_LINEAR_BINARY = {"BiasAdd", "AddV2", "Add", "Sub"}
#: unary ops a column slice commutes with (a Squeeze of leading unit axes: Keras' LSTM cell squeezes h @ U)
_KEEPS_LAST_AXIS = {"Squeeze", "Identity"}


def split_sliced_products(body: Graph) -> int:
    """Rewrite every column slice of a linear expression in ``body`` (see the module doc); returns how many."""
    from .ops.helpers import is_static

    candidates = []
    for node in body.nodes:
        pieces = _column_pieces(body, node)
        if pieces and _linear(body, node.inputs[_sliced_input(node)], is_static):
            candidates.append((node, pieces))
    if not candidates:
        return 0
    by_source: dict[str, int] = {}
    for node, pieces in candidates:
        src = _src(node.inputs[_sliced_input(node)])
        by_source[src] = by_source.get(src, 0) + len(pieces)
    rewritten = 0
    for node, pieces in candidates:
        source = node.inputs[_sliced_input(node)]
        if by_source[_src(source)] < 2:  # one slice of a product is harmless: leave it as TensorFlow wrote it
            continue
        for index, (start, stop) in enumerate(pieces):
            new_ref = _sliced(body, source, start, stop, f"{node.name}/cols_{start}_{stop}", is_static)
            _redirect(body, f"{node.name}:{index}", new_ref)
        rewritten += 1
    if rewritten:
        _drop_dead(body)
        body.__dict__.pop("_tf2trt_static", None)
        body.refresh()
        log.debug("loop body: %d column slice(s) of matrix products split into per-slice products", rewritten)
    return rewritten


# ------------------------------------------------------------------ which slices
def _sliced_input(node: Node) -> int:
    return 1 if node.op == "Split" else 0


def _last_dim(body: Graph, ref: str) -> tuple[int, int] | None:
    """(rank, static last extent) of ``ref``, or None."""
    shape = body.shape(ref)
    if shape is None or len(shape) < 1 or int(shape[-1]) < 0:
        return None
    return len(shape), int(shape[-1])


def _column_pieces(body: Graph, node: Node) -> list[tuple[int, int]] | None:
    """The [start, stop) column ranges of ``node``'s outputs if it slices only the last axis of its input."""
    if node.op not in ("Split", "SplitV", "StridedSlice", "Slice"):
        return None
    ref = node.inputs[_sliced_input(node)]
    dims = _last_dim(body, ref)
    if dims is None:
        return None
    rank, n = dims
    consts = [body.const(r) for r in node.inputs]
    if node.op == "Split":
        axis, k = consts[0], node.attr("num_split", 1)
        if axis is None or int(axis) % rank != rank - 1 or n % k:
            return None
        width = n // k
        return [(i * width, (i + 1) * width) for i in range(k)]
    if node.op == "SplitV":
        sizes, axis = consts[1], consts[2]
        if sizes is None or axis is None or int(axis) % rank != rank - 1 or (sizes < 0).any():
            return None
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])] if bounds[-1] == n else None
    if node.op == "Slice":
        begin, size = consts[1], consts[2]
        if begin is None or size is None or (begin[:-1] != 0).any() or (size[:-1] != -1).any():
            return None
        stop = n if size[-1] == -1 else int(begin[-1] + size[-1])
        return [(int(begin[-1]), stop)]
    begin, end, strides = consts[1:4]
    full = (1 << (rank - 1)) - 1  # every axis but the last: begin and end masked, i.e. taken whole
    if begin is None or end is None or strides is None or len(begin) != rank or (strides != 1).any():
        return None
    if any(node.attr(m, 0) for m in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask")):
        return None
    begin_mask, end_mask = node.attr("begin_mask", 0), node.attr("end_mask", 0)
    if begin_mask & full != full or end_mask & full != full:
        return None
    last = 1 << (rank - 1)
    start = 0 if begin_mask & last else int(begin[-1])
    stop = n if end_mask & last else int(end[-1])
    start, stop = (start + n if start < 0 else start), (stop + n if stop < 0 else stop)
    start, stop = max(0, min(start, n)), max(0, min(stop, n))
    return [(start, stop)] if stop > start else None


# ------------------------------------------------------------------ which expressions
def _linear(body: Graph, ref: str, is_static) -> bool:
    """Whether ``ref`` is a product with static columns plus/minus static terms (at least one product)."""
    node = body.by_name.get(_src(ref))
    if node is None or not ref.endswith(":0"):
        return False
    if node.op == "MatMul":
        return (is_static(body, node.inputs[1]) and not is_static(body, node.inputs[0])
                and not node.attr("transpose_b", False))
    if node.op in _KEEPS_LAST_AXIS:
        shape, src = body.shape(ref), body.shape(node.inputs[0])
        return (shape is not None and src is not None and len(shape) >= 1 and len(src) >= 1
                and int(shape[-1]) == int(src[-1]) >= 0 and _keeps_last_axis(node, src)
                and _linear(body, node.inputs[0], is_static))
    if node.op in _LINEAR_BINARY:
        a, b = node.inputs[:2]
        static_a, static_b = is_static(body, a), is_static(body, b)
        if static_a and static_b:
            return False
        if node.op == "BiasAdd" and node.attr("data_format", "NHWC") != "NHWC":
            return False
        return all(_linear(body, r, is_static) or (is_static(body, r) and _broadcasts_on_columns(body, r, ref))
                   for r in (a, b))
    return False


def _keeps_last_axis(node: Node, src_shape) -> bool:
    """Whether a Squeeze/Identity keeps the last axis (so a column slice commutes with it); a Squeeze without
    dims drops every unit axis, so the last one stays if its extent is not 1."""
    if node.op != "Squeeze":
        return True
    rank = len(src_shape)
    dims = node.attr("squeeze_dims", []) or []
    if not dims:
        return int(src_shape[-1]) != 1
    return all(int(d) % rank != rank - 1 for d in dims)


def _broadcasts_on_columns(body: Graph, ref: str, result: str) -> bool:
    shape, out = body.shape(ref), body.shape(result)
    return shape is not None and out is not None and len(shape) <= len(out) and (
        len(shape) == 0 or int(shape[-1]) in (1, int(out[-1])))


# ------------------------------------------------------------------ the rewrite
def _sliced(body: Graph, ref: str, start: int, stop: int, prefix: str, is_static) -> str:
    """A ref holding columns [start, stop) of the linear expression ``ref``, built from new nodes."""
    node = body.by_name[_src(ref)]
    if is_static(body, ref):
        shape = body.shape(ref)
        if len(shape) == 0 or int(shape[-1]) == 1:
            return ref  # broadcasts over the columns as it is
        return _column_slice(body, ref, start, stop, f"{prefix}/{node.name.rpartition('/')[2]}")
    name = f"{prefix}/{node.name.rpartition('/')[2]}"
    out_shape = tuple(body.shape(ref)[:-1]) + (stop - start,)
    if node.op == "MatMul":
        weights = _column_slice(body, node.inputs[1], start, stop, f"{name}/weights")
        inputs = [node.inputs[0], weights]
    elif node.op in _KEEPS_LAST_AXIS:
        inputs = [_sliced(body, node.inputs[0], start, stop, prefix, is_static)]
    else:
        inputs = [_sliced(body, r, start, stop, prefix, is_static) for r in node.inputs[:2]]
    _insert(body, Node(name, node.op, inputs, dict(node.attrs), [out_shape]))
    return f"{name}:0"


def _column_slice(body: Graph, ref: str, start: int, stop: int, name: str) -> str:
    """A StridedSlice node taking columns [start, stop) of ``ref`` (static: it folds at conversion)."""
    shape = body.shape(ref)
    rank = len(shape)
    full = (1 << (rank - 1)) - 1
    consts = []
    for what, values in (("begin", [0] * (rank - 1) + [start]), ("end", [0] * (rank - 1) + [stop]),
                         ("strides", [1] * rank)):
        value = np.asarray(values, np.int32)
        _insert(body, Node(f"{name}/{what}", "Const", [], {"dtype": "int32", "value": value}, [value.shape]))
        consts.append(f"{name}/{what}:0")
    attrs = {"T": body.by_name[_src(ref)].attr("T", "float32"), "Index": "int32", "begin_mask": full,
             "end_mask": full, "ellipsis_mask": 0, "new_axis_mask": 0, "shrink_axis_mask": 0}
    _insert(body, Node(name, "StridedSlice", [ref] + consts, attrs, [tuple(shape[:-1]) + (stop - start,)]))
    return f"{name}:0"


def _insert(body: Graph, node: Node) -> None:
    """Add ``node`` right after the last node it reads (the node list stays topologically ordered)."""
    position = 0
    for i, existing in enumerate(body.nodes):
        if existing.name in {_src(r) for r in node.inputs}:
            position = i + 1
    body.nodes.insert(position, node)
    body.by_name[node.name] = node


def _redirect(body: Graph, old: str, new: str) -> None:
    for node in body.nodes:
        node.inputs = [new if r == old else r for r in node.inputs]
    body.outputs = [new if r == old else r for r in body.outputs]


def _drop_dead(body: Graph) -> None:
    """Remove nodes nothing reads any more (arguments stay: their positions are the loop variables)."""
    while True:
        used = {_src(r) for n in body.nodes for r in n.inputs} | {_src(r) for r in body.outputs}
        dead = [n for n in body.nodes if n.name not in used and n.op != "Placeholder"]
        if not dead:
            return
        names = {n.name for n in dead}
        body.nodes = [n for n in body.nodes if n.name not in names]
