"""Shared building blocks so each converter stays a few lines long."""

from __future__ import annotations

import numpy as np

from ..context import ConversionContext, Value, channels_first_perm, identity_perm


def trt_enum(ctx: ConversionContext, enum_name: str, member: str):
    return getattr(getattr(ctx.trt, enum_name), member)


def _unify(ctx: ConversionContext, values: list[Value]) -> tuple[list, tuple[int, ...]]:
    """TensorRT tensors of equal rank and one physical layout for elementwise ops.

    TF broadcasting aligns shapes on the right; TensorRT needs equal ranks, so
    lower-rank operands get leading 1-dims (constants in numpy, tensors by a
    reshape).  The layout of the highest-rank tensor operand wins.
    """
    rank = max(v.rank for v in values)
    layout = None
    for v in values:
        if not v.is_const and v.rank == rank:
            layout = v.layout
            break
    if layout is None:
        layout = identity_perm(rank)
    tensors = []
    for v in values:
        if v.is_const:
            arr = v.const.reshape((1,) * (rank - v.const.ndim) + v.const.shape)
            tensors.append(ctx.constant(np.transpose(arr, layout) if rank > 1 else arr))
        elif v.rank == rank:
            tensors.append(ctx.tensor(v, layout))
        else:
            t = ctx.logical(v)
            shuffle = ctx.network.add_shuffle(t)
            logical_shape = (1,) * (rank - v.rank) + v.shape
            shuffle.reshape_dims = tuple(logical_shape[a] for a in layout)
            ctx.name_layer(shuffle, "broadcast_rank")
            tensors.append(shuffle.get_output(0))
    return tensors, layout


def elementwise(ctx: ConversionContext, a: Value, b: Value, op: str, dtype=None) -> Value:
    """A broadcasting elementwise op; constant operands fold in numpy when both are constant."""
    if a.is_const and b.is_const:
        return Value(const=_numpy_elementwise(op, a.const, b.const))
    a, b = _match_dtypes(ctx, a, b)
    (ta, tb), layout = _unify(ctx, [a, b])
    layer = ctx.network.add_elementwise(ta, tb, trt_enum(ctx, "ElementWiseOperation", op))
    ctx.name_layer(layer)
    return ctx.out(layer.get_output(0), layout)


def _match_dtypes(ctx, a: Value, b: Value):
    """Constants take the dtype of the tensor operand (TF already type-checked the graph)."""
    if a.is_const and not b.is_const and a.const.dtype != b.dtype:
        a = Value(const=a.const.astype(b.dtype))
    if b.is_const and not a.is_const and b.const.dtype != a.dtype:
        b = Value(const=b.const.astype(a.dtype))
    return a, b


_NUMPY_BINARY = {
    "SUM": np.add, "SUB": np.subtract, "PROD": np.multiply, "MAX": np.maximum, "MIN": np.minimum,
    "POW": np.power, "AND": np.logical_and, "OR": np.logical_or, "XOR": np.logical_xor,
    "EQUAL": np.equal, "GREATER": np.greater, "LESS": np.less, "FLOOR_DIV": np.floor_divide,
}


def _numpy_elementwise(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if op == "DIV":
        if a.dtype.kind in "iu":
            return np.trunc(a / b).astype(a.dtype)
        return (a / b).astype(a.dtype)
    return np.asarray(_NUMPY_BINARY[op](a, b))


def unary(ctx: ConversionContext, x: Value, op: str, suffix: str | None = None) -> Value:
    layer = ctx.network.add_unary(ctx.tensor(x, x.layout) if not x.is_const else ctx.tensor(x),
                                  trt_enum(ctx, "UnaryOperation", op))
    ctx.name_layer(layer, suffix)
    return ctx.out(layer.get_output(0), None if x.is_const else x.layout)


def activation(ctx: ConversionContext, x: Value, kind: str, alpha: float | None = None,
               beta: float | None = None, suffix: str | None = None) -> Value:
    layer = ctx.network.add_activation(ctx.tensor(x, x.layout) if not x.is_const else ctx.tensor(x),
                                       trt_enum(ctx, "ActivationType", kind))
    if alpha is not None:
        layer.alpha = float(alpha)
    if beta is not None:
        layer.beta = float(beta)
    ctx.name_layer(layer, suffix)
    return ctx.out(layer.get_output(0), None if x.is_const else x.layout)


def normalize_axes(axes, rank: int) -> list[int]:
    axes = np.atleast_1d(np.asarray(axes)).astype(int).tolist()
    return sorted({a % rank for a in axes}) if rank else []


def reduce(ctx: ConversionContext, x: Value, axes, keep_dims: bool, op: str) -> Value:
    rank = x.rank
    axes = normalize_axes(axes, rank)
    if not axes:
        layer = ctx.network.add_identity(ctx.tensor(x, x.layout))
        ctx.name_layer(layer)
        return ctx.out(layer.get_output(0), x.layout)
    layout = x.layout
    mask = 0
    for a in axes:
        mask |= 1 << layout.index(a)
    layer = ctx.network.add_reduce(ctx.tensor(x, layout), trt_enum(ctx, "ReduceOperation", op), mask, keep_dims)
    ctx.name_layer(layer)
    if keep_dims:
        return ctx.out(layer.get_output(0), layout)
    kept = [a for a in layout if a not in axes]
    # renumber the surviving logical axes 0..k-1 in physical order
    order = sorted(kept)
    new_layout = tuple(order.index(a) for a in kept)
    return ctx.out(layer.get_output(0), new_layout)


def channels_first(ctx: ConversionContext, x: Value):
    """The tensor in NC(D)HW order, for layers that need channels-first."""
    return ctx.tensor(x, channels_first_perm(x.rank))


def shuffle(ctx: ConversionContext, x: Value, reshape=None, transpose=None, suffix=None) -> Value:
    """Reshape/transpose in logical order (one shuffle layer absorbs any pending layout change)."""
    layer = ctx.network.add_shuffle(ctx.tensor(x, x.layout) if not x.is_const else ctx.tensor(x))
    from ..context import inverse_perm

    first = inverse_perm(x.layout) if not x.is_const else identity_perm(x.rank)
    if transpose is not None:
        first = tuple(first[t] for t in transpose)
    if first != identity_perm(len(first)):
        layer.first_transpose = ctx.trt.Permutation(list(first))
    if reshape is not None:
        layer.reshape_dims = tuple(int(d) for d in reshape)
    ctx.name_layer(layer, suffix)
    return ctx.out(layer.get_output(0))


def cast(ctx: ConversionContext, x: Value, np_dtype, suffix="cast") -> Value:
    from .. import trt as trtshim

    if x.is_const:
        return Value(const=x.const.astype(np_dtype))
    if np.dtype(np_dtype) == x.dtype:
        return x
    layer = ctx.network.add_cast(ctx.tensor(x, x.layout), trtshim.trt_dtype(np_dtype))
    ctx.name_layer(layer, suffix)
    return ctx.out(layer.get_output(0), x.layout)


def tf_same_padding(in_size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (the extra pixel goes at the end)."""
    eff = (kernel - 1) * dilation + 1
    out = -(-in_size // stride)
    total = max((out - 1) * stride + eff - in_size, 0)
    return total // 2, total - total // 2


def spatial_padding(node, in_spatial, kernel, strides, dilations):
    """(pre, post) spatial padding lists for a TF node's ``padding`` attribute (NHWC or NCHW)."""
    mode = node.attr("padding", "VALID")
    n = len(in_spatial)
    if mode == "VALID":
        return [0] * n, [0] * n
    if mode == "SAME":
        pads = [tf_same_padding(in_spatial[i], kernel[i], strides[i], dilations[i]) for i in range(n)]
        return [p[0] for p in pads], [p[1] for p in pads]
    if mode == "EXPLICIT":
        flat = node.attr("explicit_paddings")
        pairs = [flat[2 * i:2 * i + 2] for i in range(len(flat) // 2)]
        fmt = node.attr("data_format", "NHWC")
        spatial_pairs = pairs[1:-1] if fmt.startswith("NH") or fmt.startswith("ND") or fmt == "NWC" else pairs[2:]
        return [p[0] for p in spatial_pairs], [p[1] for p in spatial_pairs]
    raise ValueError(f"unknown padding {mode}")


def spatial_attr(node, key: str, default, rank: int = 4) -> list[int]:
    """Spatial part of a per-dimension attribute (strides/dilations/ksize) in the node's data format."""
    values = node.attr(key, default)
    fmt = node.attr("data_format", "NHWC")
    if len(values) != rank:
        return list(values)
    if fmt.startswith("NC"):
        return list(values[2:])
    return list(values[1:-1])
