"""Shape and data-movement converters: reshape, transpose, pad, concat, slice, split, tile, gather…"""

from __future__ import annotations

import numpy as np

from .. import layers
from ..context import Value
from ..errors import ConversionError
from ..structural import PASS_THROUGH_DOC, PASS_THROUGH_OPS
from .helpers import (all_const, cast, concat, const_int_list, const_scalar, elementwise, expand_dims, is_static,
                      normalize_axes, np_dtype_of, register, reshape, shape_inputs, shuffle, slice_value, split,
                      squeeze, static_inputs, tensor_of, unary, unit_axes, value_layout)
from .shapes import (ShapeTensor, binary, ceil_div, clamp, concat_shapes, from_value, gather, is_dynamic, product,
                     shape_of, wrap_negative)


# ------------------------------------------------------------------ pass-through and constants
@register("Const", layers=(), restrictions="becomes TensorRT weights or a Constant layer where a tensor is needed",
          folds=True)
def convert_const(ctx, node, inputs):
    return Value(const=np.asarray(node.attr("value")))


@register(*sorted(PASS_THROUGH_OPS), layers=(), folds=True, restrictions=PASS_THROUGH_DOC)
def convert_identity(ctx, node, inputs):
    return inputs[0]


@register("IdentityN", layers=(), folds=True, restrictions="no layer: every input passes through")
def convert_identity_n(ctx, node, inputs):
    return list(inputs)


# ------------------------------------------------------------------ shapes
_SHAPE_DOC = "a constant when the shape is static, else TensorRT shape layers (dynamic dimensions)"


@register("Shape", layers=("Shape",), folds=True, restrictions=_SHAPE_DOC)
def convert_shape(ctx, node, inputs):
    x = inputs[0]
    if not is_dynamic(x):
        return Value(const=np.asarray(x.shape, dtype=np.int32))
    return shape_of(ctx, x).value(ctx)


@register("ShapeN", layers=("Shape",), folds=True, restrictions=_SHAPE_DOC)
def convert_shape_n(ctx, node, inputs):
    return [shape_of(ctx, v).value(ctx) if is_dynamic(v) else Value(const=np.asarray(v.shape, dtype=np.int32))
            for v in inputs]


def _scalar(ctx, s: ShapeTensor) -> Value:
    """A length-1 shape as a 0-d value (TF's Size, Range counts…)."""
    if s.static:
        return Value(const=np.asarray(s.values[0], dtype=np.int32))
    layer = ctx.add(layers.shuffle, [s.tensor(ctx)], layers.shuffle.Params(reshape_dims=()), suffix="scalar")
    return ctx.out(layer.get_output(0))


@register("Size", "Rank", layers=("Shape", "Reduce"), folds=True,
          restrictions="Rank is always a constant; Size " + _SHAPE_DOC)
def convert_size_rank(ctx, node, inputs):
    x = inputs[0]
    if node.op == "Rank":
        return Value(const=np.asarray(x.rank, dtype=np.int32))
    return _scalar(ctx, product(ctx, shape_of(ctx, x)))


@register("ZerosLike", "OnesLike", layers=("Constant", "Slice"), folds=True,
          restrictions="a constant for static shapes, a broadcast constant for dynamic ones")
def convert_zeros_like(ctx, node, inputs):
    x = inputs[0]
    value = 0 if node.op == "ZerosLike" else 1
    if not is_dynamic(x):
        return Value(const=np.full(x.shape, value, dtype=np_dtype_of(x)))
    return _broadcast_to(ctx, Value(const=np.asarray(value, dtype=np_dtype_of(x))), shape_of(ctx, x))


def _broadcast_to(ctx, x: Value, shape, suffix=None) -> Value:
    """numpy broadcasting of ``x`` to ``shape``: leading 1-dims by a reshape, then a WRAP slice repeats size-1 axes.

    ``shape`` is a tuple or a :class:`~converter.ops.shapes.ShapeTensor` (dynamic dimensions)."""
    if isinstance(shape, ShapeTensor):
        if not shape.static:
            n = len(shape)
            if x.is_const:
                arr = np.asarray(x.const)
                x = Value(const=arr.reshape((1,) * (n - arr.ndim) + arr.shape))
            elif x.rank < n:
                x = reshape(ctx, x, (1,) * (n - x.rank) + x.shape, "rank")
            return slice_value(ctx, x, ShapeTensor([0] * n), shape, mode="WRAP", suffix=suffix)
        shape = shape.ints()
    shape = tuple(int(d) for d in shape)
    if x.is_const:
        return Value(const=np.ascontiguousarray(np.broadcast_to(x.const, shape)))
    if x.rank < len(shape):
        x = reshape(ctx, x, (1,) * (len(shape) - x.rank) + x.shape, "rank")
    if x.shape == shape:
        return x
    return slice_value(ctx, x, [0] * len(shape), shape, mode="WRAP", suffix=suffix)


@register("Fill", layers=("Constant", "Slice"), folds=True, check=shape_inputs(0, what="the dims"),
          restrictions="a constant value with static dims becomes a constant; otherwise a WRAP-mode slice "
                       "broadcasts the value (computed dims allowed)")
def convert_fill(ctx, node, inputs):
    return _broadcast_to(ctx, inputs[1], from_value(ctx, inputs[0]))


@register("BroadcastTo", layers=("Shuffle", "Slice"), folds=True, check=shape_inputs(1, what="the shape"),
          restrictions="a WRAP-mode slice repeats the size-1 axes (computed shapes allowed)")
def convert_broadcast_to(ctx, node, inputs):
    return _broadcast_to(ctx, inputs[0], from_value(ctx, inputs[1]))


@register("Range", layers=("Fill",), check=shape_inputs(0, 1, 2, what="start/limit/delta"), folds=True,
          restrictions="static start/limit/delta become a constant; computed ones (e.g. tf.range(tf.shape(x)[1])) a "
                       "LINSPACE fill whose length is computed by shape layers (int32/int64 and float)")
def convert_range(ctx, node, inputs):
    dtype = np.dtype(node.attr("Tidx", "int32"))
    if dtype == np.int64:
        dtype = np.dtype(np.int32)
    if not all_const(inputs):
        return _dynamic_range(ctx, inputs, dtype)
    start, limit, delta = (const_scalar(ctx, v, "start/limit/delta") for v in inputs)
    if dtype.kind in "iu":
        start, limit, delta = int(start), int(limit), int(delta)
        count = max(0, (abs(limit - start) + abs(delta) - 1) // abs(delta)) if (limit - start) * delta > 0 else 0
    else:
        start, limit, delta = dtype.type(start), dtype.type(limit), dtype.type(delta)
        count = int(np.ceil(np.abs((limit - start) / delta))) if (limit - start) * delta > 0 else 0
    # TensorFlow accumulates: value_i = value_{i-1} + delta
    steps = np.full(count, delta, dtype=dtype)
    if count:
        steps[0] = start
    return Value(const=np.cumsum(steps, dtype=dtype))


def _dynamic_range(ctx, inputs, dtype: np.dtype) -> Value:
    """``Range`` with a computed start, limit or delta: TensorRT's LINSPACE fill (``start + i * delta``).

    The element count is a shape tensor: ``ceil((limit - start) / delta)`` as ``-((start - limit) // delta)``
    (floor division, exact for every sign) clamped at 0 for integers, ``ceil(|(limit - start) / delta|)`` for
    floats (TensorFlow's formula).  TensorFlow accumulates (``value_i = value_{i-1} + delta``) where LINSPACE
    multiplies; integer ranges are identical, float ones agree to rounding."""
    if dtype.kind in "iu":
        s, l, d = (from_value(ctx, v) for v in inputs)
        if s.values == (0,) and d.values == (1,):
            count = binary(ctx, l, 0, "MAX")  # tf.range(n): position ids, masks
        else:
            count = binary(ctx, binary(ctx, 0, binary(ctx, binary(ctx, s, l, "SUB"), d, "FLOOR_DIV"), "SUB"), 0,
                           "MAX")
        known = (s.values[0], d.values[0])
        to_type, is64 = "INT32", True

        def as_tensors():
            return tensor_of(ctx, _scalar(ctx, s)), tensor_of(ctx, d.value(ctx))
    else:
        start, limit, delta = (cast(ctx, v, dtype, suffix=f"as_{dtype.name}") for v in inputs)
        span = elementwise(ctx, elementwise(ctx, limit, start, "SUB", "span"), delta, "DIV", "steps")
        n = cast(ctx, unary(ctx, unary(ctx, span, "ABS", "abs_steps"), "CEIL", "ceil_steps"), np.int32, "count")
        count = from_value(ctx, n)
        known = tuple(float(np.asarray(v.const).reshape(-1)[0]) if v.is_const else None for v in (start, delta))
        to_type, is64 = {np.dtype(np.float16): "HALF"}.get(dtype, "FLOAT"), False

        def as_tensors():
            alpha = reshape(ctx, start, (), "alpha") if start.rank else start
            return tensor_of(ctx, alpha), tensor_of(ctx, reshape(ctx, delta, (1,), "beta"))
    ins = [count.tensor(ctx)]
    if None in known:
        # TensorRT takes alpha (0-D) and beta (one delta per output axis: 1-D) as tensors, the two together
        ins += list(as_tensors())
        known = (0, 1)
    params = layers.fill.Params("LINSPACE", shape=None, to_type=to_type, alpha=known[0], beta=known[1],
                                alpha_beta_int64=is64)
    return ctx.out(ctx.add(layers.fill, ins, params).get_output(0))


# ------------------------------------------------------------------ reshapes
def _infer_reshape(in_shape, target) -> tuple[int, ...]:
    target = [int(d) for d in np.asarray(target).reshape(-1)]
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1])) if len(target) > 1 else 1
        total = int(np.prod(in_shape))
        target[target.index(-1)] = total // known if known else 0
    return tuple(target)


@register("Reshape", layers=("Shuffle",), folds=True, check=shape_inputs(1, what="the target shape"),
          restrictions="static or computed target shape; adding/removing size-1 axes keeps the tensor's layout")
def convert_reshape(ctx, node, inputs):
    x, shape = inputs
    if not shape.is_const:
        return reshape(ctx, x, from_value(ctx, shape))
    target = ctx.as_const(shape, "the target shape")
    if is_dynamic(x):
        # TensorRT infers the -1 (at most one, as in TensorFlow) when the engine runs
        return reshape(ctx, x, from_value(ctx, Value(const=np.asarray(target).astype(np.int32))))
    return reshape(ctx, x, _infer_reshape(x.shape, target))


@register("Squeeze", layers=("Shuffle",), folds=True, restrictions="keeps the tensor's layout")
def convert_squeeze(ctx, node, inputs):
    x = inputs[0]
    dims = node.attr("squeeze_dims", []) or []
    axes = normalize_axes(dims, x.rank) if dims else [i for i, d in enumerate(x.shape) if d == 1]
    return squeeze(ctx, x, axes)


@register("ExpandDims", layers=("Shuffle",), check=static_inputs(1, what="the axis"), folds=True,
          restrictions="static axis; keeps the tensor's layout")
def convert_expand_dims(ctx, node, inputs):
    x, axis = inputs
    return expand_dims(ctx, x, const_int_list(ctx, axis, "the axis")[0])


@register("Transpose", layers=(), check=static_inputs(1, what="the permutation"), folds=True,
          restrictions="static permutation; no layer: the tensor's layout changes instead")
def convert_transpose(ctx, node, inputs):
    x, perm = inputs
    perm = tuple(const_int_list(ctx, perm, "the permutation"))
    if x.is_const:
        return Value(const=np.transpose(x.const, perm))
    # the same physical tensor seen through another logical order:
    # logical_out[i] = logical_in[perm[i]]; physical = logical_in.transpose(L) ⇒ layout_out[j] = perm⁻¹[L[j]]
    inv = tuple(int(i) for i in np.argsort(perm))
    return ctx.out(x.tensor, tuple(inv[a] for a in x.layout))


# ------------------------------------------------------------------ padding
def _check_pad_mode(node, graph):
    if node.op == "MirrorPad" and node.attr("mode", "REFLECT") not in ("REFLECT", "SYMMETRIC"):
        return ConversionError(node.name, node.op, f"mode {node.attr('mode')} is not supported")
    return None


def _mirror_symmetric(ctx, x: Value, pads: np.ndarray) -> Value:
    """SYMMETRIC mirror padding: reversed slices (edge included) concatenated around each axis."""
    for axis in range(x.rank):
        before, after = int(pads[axis, 0]), int(pads[axis, 1])
        if not before and not after:
            continue
        n = x.shape[axis]
        pieces = []
        start, size, stride = [0] * x.rank, list(x.shape), [1] * x.rank
        if before:
            start[axis], size[axis], stride[axis] = before - 1, before, -1
            pieces.append(slice_value(ctx, x, start, size, stride, suffix=f"mirror_{axis}_before"))
        pieces.append(x)
        if after:
            start[axis], size[axis], stride[axis] = n - 1, after, -1
            pieces.append(slice_value(ctx, x, start, size, stride, suffix=f"mirror_{axis}_after"))
        x = concat(ctx, pieces, axis, suffix=f"mirror_{axis}")
    return x


@register("Pad", "PadV2", "MirrorPad", layers=("Slice", "Concatenation"),
          check=[static_inputs(1, what="the paddings"), static_inputs(2, what="the pad value"), _check_pad_mode],
          folds=True,
          restrictions="static paddings (and pad value); Pad/PadV2 are FILL-mode slices, MirrorPad REFLECT a "
                       "REFLECT-mode slice, SYMMETRIC reversed slices + concatenation; zero padding before a VALID "
                       "convolution folds into it")
def convert_pad(ctx, node, inputs):
    x = inputs[0]
    pads = np.asarray(ctx.as_const(inputs[1], "the paddings")).astype(int).reshape(-1, 2)
    if node.op == "MirrorPad" and node.attr("mode", "REFLECT") == "SYMMETRIC":
        return _mirror_symmetric(ctx, x, pads)
    start = [-int(pads[a, 0]) for a in range(x.rank)]
    size = [int(x.shape[a] + pads[a, 0] + pads[a, 1]) for a in range(x.rank)]
    if node.op == "MirrorPad":
        return slice_value(ctx, x, start, size, mode="REFLECT")
    fill = const_scalar(ctx, inputs[2], "the pad value") if node.op == "PadV2" else 0
    return slice_value(ctx, x, start, size, mode="FILL", fill=fill)


# ------------------------------------------------------------------ concatenation and stacking
@register("ConcatV2", layers=("Concatenation",), check=static_inputs(-1, what="the axis"), folds=True,
          restrictions="static axis; inputs keep the first tensor's layout")
def convert_concat(ctx, node, inputs):
    *values, axis = inputs
    return concat(ctx, _non_empty(values, const_int_list(ctx, axis, "the axis")[0]),
                  const_int_list(ctx, axis, "the axis")[0])


def _non_empty(values: list[Value], axis: int) -> list[Value]:
    """The inputs without those of extent 0 along ``axis``: they contribute nothing, and TensorRT has no empty
    constants (an empty weights array is refused).  If every input is empty they all stay (numpy folds them
    when constant)."""
    axis = axis % values[0].rank
    kept = [v for v in values if v.shape[axis] != 0]
    return kept or values


@register("Concat", layers=("Concatenation",), check=static_inputs(0, what="the axis"), folds=True,
          restrictions="static axis")
def convert_concat_v1(ctx, node, inputs):
    axis, *values = inputs
    return concat(ctx, _non_empty(values, const_int_list(ctx, axis, "the axis")[0]),
                  const_int_list(ctx, axis, "the axis")[0])


@register("Pack", layers=("Shuffle", "Concatenation"), folds=True, restrictions="keeps the inputs' layout")
def convert_pack(ctx, node, inputs):
    axis = node.attr("axis", 0) % (inputs[0].rank + 1)
    if all_const(inputs):
        return Value(const=np.stack([v.const for v in inputs], axis=axis))
    dtype = next(v.dtype for v in inputs if not v.is_const)
    expanded = [expand_dims(ctx, Value(const=v.const.astype(dtype)) if v.is_const else v, axis, f"expand_{i}")
                for i, v in enumerate(inputs)]
    return concat(ctx, expanded, axis)


@register("Unpack", layers=("Slice", "Shuffle"), folds=True, restrictions="slices, each squeezed; layouts kept")
def convert_unpack(ctx, node, inputs):
    x = inputs[0]
    axis = node.attr("axis", 0) % x.rank
    parts = split(ctx, x, axis, [1] * x.shape[axis])
    return [squeeze(ctx, part, [axis], f"squeeze_{i}") for i, part in enumerate(parts)]


@register("Split", layers=("Slice",), check=static_inputs(0, what="the axis"), folds=True,
          restrictions="static axis; one slice per output")
def convert_split(ctx, node, inputs):
    axis, x = inputs
    axis = const_int_list(ctx, axis, "the axis")[0] % x.rank
    n = int(node.attr("num_split"))
    return split(ctx, x, axis, [x.shape[axis] // n] * n)


@register("SplitV", layers=("Slice",), check=static_inputs(1, 2, what="size_splits and axis"), folds=True,
          restrictions="static sizes and axis; one slice per output")
def convert_split_v(ctx, node, inputs):
    x, sizes, axis = inputs
    axis = const_int_list(ctx, axis, "the axis")[0] % x.rank
    sizes = const_int_list(ctx, sizes, "size_splits")
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[axis] - sum(s for s in sizes if s != -1)
    return split(ctx, x, axis, sizes)


@register("Tile", layers=("Slice",), check=shape_inputs(1, what="the multiples"), folds=True,
          restrictions="static or computed multiples (e.g. tiling by the batch size); a WRAP-mode slice")
def convert_tile(ctx, node, inputs):
    x, multiples = inputs
    multiples = from_value(ctx, multiples)
    if multiples.static and not is_dynamic(x):
        m = multiples.ints()
        if x.is_const:
            return Value(const=np.tile(x.const, m))
        return slice_value(ctx, x, [0] * x.rank, [d * k for d, k in zip(x.shape, m)], mode="WRAP")
    # the output's extent is known only when the engine runs: shape(x) * multiples, computed by shape layers
    size = binary(ctx, shape_of(ctx, x), multiples, "PROD")
    return slice_value(ctx, x, [0] * x.rank, size, mode="WRAP")


# ------------------------------------------------------------------ slicing
def _strided_slice_plan(shape, begin, end, strides, node):
    """TF StridedSlice semantics → (start, size, stride, final shape) on the input's axes, all known at conversion
    time (a dynamic axis taken whole has size -1); None when a dynamic axis needs a computed start or extent."""
    begin_mask = node.attr("begin_mask", 0)
    end_mask = node.attr("end_mask", 0)
    ellipsis_mask = node.attr("ellipsis_mask", 0)
    new_axis_mask = node.attr("new_axis_mask", 0)
    shrink_mask = node.attr("shrink_axis_mask", 0)
    rank = len(shape)
    n = len(begin)
    if not ellipsis_mask:
        # an implicit ellipsis at the end
        ellipsis_mask = 1 << n
        begin, end, strides = list(begin) + [0], list(end) + [0], list(strides) + [1]
        n += 1
    starts, sizes, steps = [0] * rank, list(shape), [1] * rank
    final = []
    axis = 0
    seen_ellipsis = False
    for i in range(n):
        if ellipsis_mask & (1 << i) and not seen_ellipsis:
            seen_ellipsis = True
            remaining = sum(1 for j in range(i + 1, n) if not (new_axis_mask & (1 << j)))
            while axis < rank - remaining:
                final.append(shape[axis])
                axis += 1
            continue
        if new_axis_mask & (1 << i):
            final.append(1)
            continue
        dim = shape[axis]
        s = int(strides[i])
        if dim < 0:  # a dynamic dimension: an index, or the whole axis
            whole = s == 1 and (begin_mask & (1 << i) or int(begin[i]) == 0) and (
                end_mask & (1 << i) or int(end[i]) >= 2**31 - 1)
            if shrink_mask & (1 << i) and int(begin[i]) >= 0:
                starts[axis], sizes[axis], steps[axis] = int(begin[i]), 1, 1
            elif whole and not shrink_mask & (1 << i):
                starts[axis], sizes[axis], steps[axis] = 0, -1, 1
                final.append(-1)
            else:
                return None  # a computed start or extent: _computed_strided_slice
            axis += 1
            continue
        if shrink_mask & (1 << i):
            b = int(begin[i])
            b = b + dim if b < 0 else b
            starts[axis], sizes[axis], steps[axis] = b, 1, 1
            axis += 1
            continue
        if s > 0:
            b = 0 if begin_mask & (1 << i) else int(begin[i])
            e = dim if end_mask & (1 << i) else int(end[i])
            b = min(max(b + dim if b < 0 else b, 0), dim)
            e = min(max(e + dim if e < 0 else e, 0), dim)
            size = max(0, -(-(e - b) // s))
        else:
            b = dim - 1 if begin_mask & (1 << i) else int(begin[i])
            e = -1 if end_mask & (1 << i) else int(end[i])
            b = min(max(b + dim if b < 0 else b, -1), dim - 1)
            if not (end_mask & (1 << i)):
                e = min(max(e + dim if e < 0 else e, -1), dim - 1)
            size = max(0, -(-(b - e) // -s))
        starts[axis], sizes[axis], steps[axis] = b, size, s
        final.append(size)
        axis += 1
    return starts, sizes, steps, tuple(final)


def _check_strided_slice(node, graph):
    problems = [static_inputs(3, what="the strides")(node, graph),
                shape_inputs(1, 2, what="begin/end")(node, graph)]
    if not problems[1] and any(not is_static(graph, node.inputs[i]) for i in (1, 2)):
        shape = graph.shape(node.inputs[1])
        if shape is None or len(shape) != 1 or int(shape[0]) < 0:
            problems.append(ConversionError(node.name, node.op, "computed begin/end of unknown length",
                                            "slice with a fixed number of indices (x[:, a:b], not a vector of "
                                            "unknown size)"))
    return [p for p in problems if p]


@register("StridedSlice", layers=("Slice", "Shuffle"), check=_check_strided_slice, folds=True,
          restrictions="static strides; every mask (begin/end/ellipsis/new_axis/shrink_axis); negative strides "
                       "and indices; begin/end static or computed from tensor shapes (x[:, :tf.shape(y)[1]]); "
                       "partial slices of dynamic axes (x[:, 1:], x[:, :-1]) clamp to the run-time extent as "
                       "TensorFlow does")
def convert_strided_slice(ctx, node, inputs):
    x = inputs[0]
    strides = const_int_list(ctx, inputs[3], "the strides")
    plan = None
    if inputs[1].is_const and inputs[2].is_const:
        begin, end = (const_int_list(ctx, v, "begin/end") for v in inputs[1:3])
        plan = _strided_slice_plan(x.shape, begin, end, strides, node)
    if plan is None:
        return _computed_strided_slice(ctx, x, from_value(ctx, inputs[1]), from_value(ctx, inputs[2]), strides,
                                       node)
    starts, sizes, steps, final = plan
    out = x
    whole = [d if d >= 0 else -1 for d in x.shape]
    if (starts, sizes, steps) != ([0] * x.rank, whole, [1] * x.rank):
        out = slice_value(ctx, x, starts, sizes, steps)
    return reshape(ctx, out, final, "reshape")


def _computed_strided_slice(ctx, x: Value, begin: ShapeTensor, end: ShapeTensor, strides: list[int], node) -> Value:
    """StridedSlice whose start or extent is known only when the engine runs: a dynamic axis sliced in part, or
    begin/end computed from shapes.  TensorFlow's rules, in shape arithmetic that folds whatever is known: a
    negative index counts from the end, bounds clamp to the axis ([0, dim] for positive strides, [-1, dim - 1]
    for negative ones), the extent is ``ceil((end - begin) / stride)`` (at least 0); then shrunk axes are
    squeezed and new axes inserted."""
    begin_mask, end_mask = node.attr("begin_mask", 0), node.attr("end_mask", 0)
    ellipsis_mask, new_axis_mask = node.attr("ellipsis_mask", 0), node.attr("new_axis_mask", 0)
    shrink_mask = node.attr("shrink_axis_mask", 0)
    rank, n = x.rank, len(strides)
    if not ellipsis_mask:
        ellipsis_mask = 1 << n  # an implicit ellipsis at the end
        n += 1
    dims = shape_of(ctx, x)
    starts = [ShapeTensor([0])] * rank
    sizes = [gather(ctx, dims, [a]) for a in range(rank)]
    steps = [1] * rank
    shrunk, final = [], []  # final: per output axis, the input axis it comes from (None: a new axis)
    axis, seen_ellipsis = 0, False
    for i in range(n):
        if ellipsis_mask & (1 << i) and not seen_ellipsis:
            seen_ellipsis = True
            remaining = sum(1 for j in range(i + 1, n) if not (new_axis_mask & (1 << j)))
            while axis < rank - remaining:
                final.append(axis)
                axis += 1
            continue
        if new_axis_mask & (1 << i):
            final.append(None)
            continue
        dim, b, e, s = sizes[axis], gather(ctx, begin, [i]), gather(ctx, end, [i]), int(strides[i])
        if shrink_mask & (1 << i):
            starts[axis], sizes[axis] = wrap_negative(ctx, b, dim), ShapeTensor([1])
            shrunk.append(axis)
        elif s > 0:
            b = ShapeTensor([0]) if begin_mask & (1 << i) else clamp(ctx, wrap_negative(ctx, b, dim), 0, dim)
            e = dim if end_mask & (1 << i) else clamp(ctx, wrap_negative(ctx, e, dim), 0, dim)
            starts[axis] = b
            sizes[axis] = binary(ctx, ceil_div(ctx, binary(ctx, e, b, "SUB"), s), 0, "MAX")
            final.append(axis)
        else:
            last = binary(ctx, dim, 1, "SUB")
            b = last if begin_mask & (1 << i) else clamp(ctx, wrap_negative(ctx, b, dim), -1, last)
            e = ShapeTensor([-1]) if end_mask & (1 << i) else clamp(ctx, wrap_negative(ctx, e, dim), -1, last)
            starts[axis] = b
            sizes[axis] = binary(ctx, ceil_div(ctx, binary(ctx, b, e, "SUB"), -s), 0, "MAX")
            final.append(axis)
        steps[axis] = s if not shrink_mask & (1 << i) else 1
        axis += 1
    out = slice_value(ctx, x, concat_shapes(ctx, starts), concat_shapes(ctx, sizes), steps)
    if shrunk:
        out = squeeze(ctx, out, shrunk, "shrink")
    new = [j for j, a in enumerate(final) if a is None]
    if new:
        out = unit_axes(ctx, out, new, layers.unsqueeze, suffix="new_axis")
    return out


@register("Slice", layers=("Slice",), folds=True, check=shape_inputs(1, 2, what="begin/size"),
          restrictions="static or computed begin/size; a computed size must not hold -1 (a constant -1 is fine)")
def convert_slice(ctx, node, inputs):
    x = inputs[0]
    begin, size = from_value(ctx, inputs[1]), from_value(ctx, inputs[2])
    if begin.static and size.static and not is_dynamic(x):
        b, n = begin.ints(), size.ints()
        return slice_value(ctx, x, b, [x.shape[i] - b[i] if s == -1 else s for i, s in enumerate(n)])
    if size.static and -1 in size.values:
        dims = shape_of(ctx, x)
        size = concat_shapes(ctx, [binary(ctx, gather(ctx, dims, [i]), gather(ctx, begin, [i]), "SUB")
                                   if s == -1 else ShapeTensor([s]) for i, s in enumerate(size.values)])
    return slice_value(ctx, x, begin, size)


@register("ReverseV2", layers=("Slice",), check=static_inputs(1, what="the axes"), folds=True,
          restrictions="static axes; a slice with stride -1 on each reversed axis")
def convert_reverse(ctx, node, inputs):
    x, axes = inputs
    axes = normalize_axes(const_int_list(ctx, axes, "the axes"), x.rank)
    if not axes:
        return x
    start = [x.shape[a] - 1 if a in axes else 0 for a in range(x.rank)]
    stride = [-1 if a in axes else 1 for a in range(x.rank)]
    return slice_value(ctx, x, start, list(x.shape), stride)


# ------------------------------------------------------------------ gather
def _gather_batch_dims(node, params_rank: int, indices_rank: int, axis: int) -> tuple[int, int]:
    """(batch_dims, axis) normalised as TensorFlow does: negative batch_dims count from the indices' rank."""
    batch = int(node.attr("batch_dims", 0))
    if batch < 0:
        batch += indices_rank
    return batch, axis % params_rank if params_rank else axis


def _check_gather(node, graph):
    problems = [static_inputs(2, what="the axis")(node, graph)]
    batch = int(node.attr("batch_dims", 0))
    if batch and not problems[0]:
        params, indices = graph.shape(node.inputs[0]), graph.shape(node.inputs[1])
        axis = graph.const(node.inputs[2])
        if params is None or indices is None or axis is None:
            problems.append(ConversionError(node.name, node.op, "batch_dims != 0 needs inputs of known rank",
                                            "give the model static input shapes"))
        else:
            b, a = _gather_batch_dims(node, len(params), len(indices), int(np.asarray(axis).reshape(-1)[0]))
            if not 0 <= b <= min(len(indices), a):
                problems.append(ConversionError(node.name, node.op, f"batch_dims={batch} with axis {a}",
                                                "TensorFlow needs 0 <= batch_dims <= axis and batch_dims <= the "
                                                "indices' rank"))
    return [p for p in problems if p]


def _numpy_batched_gather(params: np.ndarray, indices: np.ndarray, axis: int, batch: int) -> np.ndarray:
    lead = params.shape[:batch]
    n = int(np.prod(lead)) if batch else 1
    p = params.reshape((n,) + params.shape[batch:])
    i = indices.reshape((n,) + indices.shape[batch:])
    out = np.stack([np.take(p[j], i[j], axis=axis - batch) for j in range(n)]) if n else \
        np.zeros((0,) + params.shape[batch:axis] + indices.shape[batch:] + params.shape[axis + 1:], params.dtype)
    return out.reshape(params.shape[:axis] + indices.shape[batch:] + params.shape[axis + 1:])


def _batched_gather(ctx, params: Value, indices: Value, axis: int, batch: int) -> Value:
    """TF's batch_dims gather: TensorRT's DEFAULT gather with one elementwise (batch) dimension, several batch
    dimensions merged into one first and split again after (by computed reshapes when a dimension is dynamic:
    TensorRT's gather has at most one elementwise dimension)."""
    out_shape = params.shape[:axis] + indices.shape[batch:] + params.shape[axis + 1:]
    if batch > 1 and (is_dynamic(params) or is_dynamic(indices)):
        p_dims, i_dims = shape_of(ctx, params), shape_of(ctx, indices)
        n = product(ctx, gather(ctx, p_dims, range(batch)))
        out_shape = concat_shapes(ctx, [gather(ctx, p_dims, range(axis)),
                                        gather(ctx, i_dims, range(batch, indices.rank)),
                                        gather(ctx, p_dims, range(axis + 1, params.rank))])
        params = reshape(ctx, params, concat_shapes(ctx, [n, gather(ctx, p_dims, range(batch, params.rank))]),
                         "merge_batch")
        indices = reshape(ctx, indices, concat_shapes(ctx, [n, gather(ctx, i_dims, range(batch, indices.rank))]),
                          "merge_batch_indices")
    elif batch > 1:
        n = int(np.prod(params.shape[:batch]))
        params = reshape(ctx, params, (n,) + params.shape[batch:], "merge_batch")
        indices = reshape(ctx, indices, (n,) + indices.shape[batch:], "merge_batch_indices")
    idx = Value(const=indices.const.astype(np.int32)) if indices.is_const else indices
    layer = ctx.add(layers.gather, [tensor_of(ctx, params) if params.is_const else ctx.logical(params),
                                    tensor_of(ctx, idx) if idx.is_const else ctx.logical(idx)],
                    layers.gather.Params(axis=axis - batch + 1, num_elementwise_dims=1))
    out = ctx.out(layer.get_output(0))
    return reshape(ctx, out, out_shape, "split_batch") if batch > 1 else out


@register("GatherV2", layers=("Gather",), check=_check_gather, folds=True,
          restrictions="static axis; indices must be in range (TensorFlow's CPU kernel errors otherwise); the "
                       "params' layout is kept; batch_dims (negative too): batch_dims=1 is TensorRT's gather with "
                       "one elementwise dimension, batch_dims > 1 merges the batch dimensions first (computed "
                       "reshapes for dynamic shapes)")
def convert_gather(ctx, node, inputs):
    params, indices, axis = inputs
    batch, axis = _gather_batch_dims(node, params.rank, indices.rank,
                                     const_int_list(ctx, axis, "the axis")[0])
    if batch:
        if params.is_const and indices.is_const:
            return Value(const=_numpy_batched_gather(params.const, indices.const, axis, batch))
        return _batched_gather(ctx, params, indices, axis, batch)
    if params.is_const and indices.is_const:
        return Value(const=np.take(params.const, indices.const, axis=axis))
    q = indices.rank
    layout = value_layout(params)
    j = layout.index(axis)
    idx = indices if not indices.is_const else Value(const=indices.const.astype(np.int32))
    layer = ctx.add(layers.gather, [tensor_of(ctx, params), tensor_of(ctx, idx) if idx.is_const else ctx.logical(idx)],
                    layers.gather.Params(axis=j))

    def moved(a):
        return a if a < axis else a + q - 1

    out_layout = [moved(a) for a in layout[:j]] + [axis + k for k in range(q)] + [moved(a) for a in layout[j + 1:]]
    return ctx.out(layer.get_output(0), tuple(out_layout))


def _check_gather_nd(node, graph):
    if node.attr("batch_dims", 0):
        return ConversionError(node.name, node.op, "batch_dims != 0 is not supported")
    return None


@register("GatherNd", layers=("Gather",), check=_check_gather_nd, folds=True,
          restrictions="batch_dims = 0; indices must be in range")
def convert_gather_nd(ctx, node, inputs):
    params, indices = inputs
    if params.is_const and indices.is_const:
        idx = indices.const
        return Value(const=params.const[tuple(np.moveaxis(idx, -1, 0))])
    idx = Value(const=indices.const.astype(np.int32)) if indices.is_const else indices
    layer = ctx.add(layers.gather, [tensor_of(ctx, params) if params.is_const else ctx.logical(params),
                                    tensor_of(ctx, idx) if idx.is_const else ctx.logical(idx)],
                    layers.gather.Params(mode="ND", num_elementwise_dims=0))
    return ctx.out(layer.get_output(0))


# ------------------------------------------------------------------ top-k
def _check_topk(node, graph):
    problems = [static_inputs(1, what="k")(node, graph)]
    k = graph.const(node.inputs[1])
    if k is not None and int(np.asarray(k).reshape(-1)[0]) > 3840:
        problems.append(ConversionError(node.name, node.op, "k > 3840 (TensorRT's TopK limit)"))
    if not node.attr("sorted", True):
        problems.append(ConversionError(node.name, node.op, "sorted=False (TensorFlow's unsorted order is not "
                                        "reproduced)", "use sorted=True; TensorRT always returns sorted results"))
    return [p for p in problems if p]


@register("TopKV2", layers=("TopK",), check=_check_topk,
          restrictions="static k ≤ 3840 over the last axis; sorted=True only; ties pick the lower index")
def convert_topk(ctx, node, inputs):
    x, k = inputs
    k = const_int_list(ctx, k, "k")[0]
    if x.rank == 1:
        # TensorRT's TopK needs at least two dimensions: a leading 1 goes on and comes off again
        x = reshape(ctx, x, (1, x.shape[0]), "rows")
        values, indices = _topk_last_axis(ctx, x, k, "topk")
        return [reshape(ctx, values, (k,), "values"), reshape(ctx, indices, (k,), None)]
    return _topk_last_axis(ctx, x, k, None)


def _topk_last_axis(ctx, x: Value, k: int, suffix) -> list[Value]:
    layout = value_layout(x)
    layer = ctx.add(layers.topk, [tensor_of(ctx, x)], layers.topk.Params("MAX", int(k), 1 << layout.index(x.rank - 1)),
                    suffix=suffix)
    return [ctx.out(layer.get_output(0), layout), ctx.out(layer.get_output(1), layout)]


# ------------------------------------------------------------------ block rearrangements
def _space_depth_order(node, x: Value) -> tuple[tuple[int, ...], bool]:
    """(working order as a logical→physical perm, channels_first?) — the input's own layout where possible."""
    fmt = node.attr("data_format", "NHWC")
    if fmt == "NHWC":
        return ((0, 3, 1, 2), True) if not x.is_const and x.layout == (0, 3, 1, 2) else ((0, 1, 2, 3), False)
    return ((0, 2, 3, 1), False) if not x.is_const and x.layout == (0, 2, 3, 1) else ((0, 1, 2, 3), True)


def _two_shuffles(ctx, x: Value, order, dims6, perm6, dims4) -> Value:
    tensor = ctx.tensor(x, order)
    first = ctx.add(layers.shuffle, [tensor],
                    layers.shuffle.Params(reshape_dims=tuple(dims6), second_transpose=tuple(perm6)), suffix="blocks")
    second = ctx.add(layers.shuffle, [first.get_output(0)], layers.shuffle.Params(reshape_dims=tuple(dims4)))
    return ctx.out(second.get_output(0), order)


def _check_block_format(node, graph):
    if node.attr("data_format", "NHWC") not in ("NHWC", "NCHW"):
        return ConversionError(node.name, node.op, f"data_format {node.attr('data_format')} is not supported")
    return None


@register("DepthToSpace", layers=("Shuffle", "Shuffle"), check=_check_block_format,
          restrictions="NHWC or NCHW (DCR order, as TensorFlow); works in the input's physical layout")
def convert_depth_to_space(ctx, node, inputs):
    x = inputs[0]
    b = int(node.attr("block_size"))
    order, cf = _space_depth_order(node, x)
    phys = [x.shape[a] for a in order]
    if cf:
        n, c, h, w = phys
        return _two_shuffles(ctx, x, order, (n, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2),
                             (n, c // (b * b), h * b, w * b))
    n, h, w, c = phys
    return _two_shuffles(ctx, x, order, (n, h, w, b, b, c // (b * b)), (0, 1, 3, 2, 4, 5),
                         (n, h * b, w * b, c // (b * b)))


@register("SpaceToDepth", layers=("Shuffle", "Shuffle"), check=_check_block_format,
          restrictions="NHWC or NCHW; works in the input's physical layout")
def convert_space_to_depth(ctx, node, inputs):
    x = inputs[0]
    b = int(node.attr("block_size"))
    order, cf = _space_depth_order(node, x)
    phys = [x.shape[a] for a in order]
    if cf:
        n, c, h, w = phys
        return _two_shuffles(ctx, x, order, (n, c, h // b, b, w // b, b), (0, 3, 5, 1, 2, 4),
                             (n, b * b * c, h // b, w // b))
    n, h, w, c = phys
    return _two_shuffles(ctx, x, order, (n, h // b, b, w // b, b, c), (0, 1, 3, 2, 4, 5),
                         (n, h // b, w // b, b * b * c))


def _check_batch_space(node, graph):
    problems = [static_inputs(1, 2, what="block_shape and paddings/crops")(node, graph)]
    shape = graph.shape(node.inputs[0])
    block = graph.const(node.inputs[1])
    if shape is not None and block is not None and len(shape) + np.asarray(block).size > 8:
        problems.append(ConversionError(node.name, node.op, "more than 8 dimensions while rearranging blocks"))
    return [p for p in problems if p]


@register("SpaceToBatchND", layers=("Slice", "Shuffle", "Shuffle"), check=_check_batch_space,
          restrictions="static block_shape and paddings; at most 8 dimensions while rearranging")
def convert_space_to_batch(ctx, node, inputs):
    x, block, pads = inputs
    block = const_int_list(ctx, block, "block_shape")
    pads = np.asarray(ctx.as_const(pads, "paddings")).astype(int).reshape(-1, 2)
    m = len(block)
    if pads.any():
        start = [0] + [-int(p) for p in pads[:, 0]] + [0] * (x.rank - 1 - m)
        size = list(x.shape)
        for i in range(m):
            size[1 + i] += int(pads[i].sum())
        x = slice_value(ctx, x, start, size, mode="FILL", suffix="pad")
    shape = x.shape
    rest = list(shape[1 + m:])
    dims = [shape[0]]
    for i in range(m):
        dims += [shape[1 + i] // block[i], block[i]]
    dims += rest
    perm = [2 + 2 * i for i in range(m)] + [0] + [1 + 2 * i for i in range(m)]
    perm += [1 + 2 * m + j for j in range(len(rest))]
    moved = shuffle(ctx, x, reshape=dims, second=perm, suffix="blocks")
    final = [shape[0] * int(np.prod(block))] + [shape[1 + i] // block[i] for i in range(m)] + rest
    return shuffle(ctx, moved, reshape=final)


@register("BatchToSpaceND", layers=("Shuffle", "Shuffle", "Slice"), check=_check_batch_space,
          restrictions="static block_shape and crops; at most 8 dimensions while rearranging")
def convert_batch_to_space(ctx, node, inputs):
    x, block, crops = inputs
    block = const_int_list(ctx, block, "block_shape")
    crops = np.asarray(ctx.as_const(crops, "crops")).astype(int).reshape(-1, 2)
    m = len(block)
    shape = x.shape
    batch = shape[0] // int(np.prod(block))
    rest = list(shape[1 + m:])
    dims = list(block) + [batch] + list(shape[1:1 + m]) + rest
    perm = [m]
    for i in range(m):
        perm += [m + 1 + i, i]
    perm += [2 * m + 1 + j for j in range(len(rest))]
    moved = shuffle(ctx, x, reshape=dims, second=perm, suffix="blocks")
    full = [batch] + [shape[1 + i] * block[i] for i in range(m)] + rest
    out = shuffle(ctx, moved, reshape=full, suffix="merge" if crops.any() else None)
    if crops.any():
        start = [0] + [int(c) for c in crops[:, 0]] + [0] * len(rest)
        size = [batch] + [full[1 + i] - int(crops[i].sum()) for i in range(m)] + rest
        out = slice_value(ctx, out, start, size)
    return out


# ------------------------------------------------------------------ data-format helpers
def _format_indices(node, x: Value) -> list[int]:
    src, dst = node.attr("src_format", "NHWC"), node.attr("dst_format", "NCHW")
    if x.shape[0] == 2:  # only the spatial dimensions
        src = "".join(c for c in src if c not in "NC")
        dst = "".join(c for c in dst if c not in "NC")
    return [src.index(c) for c in dst]


@register("DataFormatVecPermute", layers=("Gather",), folds=True,
          restrictions="a gather with the permutation of src_format → dst_format")
def convert_data_format_vec_permute(ctx, node, inputs):
    x = inputs[0]
    indices = np.asarray(_format_indices(node, x), np.int32)
    if x.is_const:
        return Value(const=np.take(x.const, indices, axis=0))
    layer = ctx.add(layers.gather, [ctx.logical(x), ctx.constant(indices, "indices")], layers.gather.Params(axis=0))
    return ctx.out(layer.get_output(0))

