"""Shape and data-movement converters: reshape, transpose, pad, concat, slice…"""

from __future__ import annotations

import numpy as np

from ..context import Value, identity_perm
from ..errors import ConversionError
from ..registry import tf_op
from .helpers import normalize_axes, shuffle


def _check_const_input(index: int, what: str):
    def check(node, graph):
        if len(node.inputs) > index and not graph.is_const(node.inputs[index]):
            return ConversionError(node.name, node.op, f"{what} must be a constant",
                                   "give the model static shapes (e.g. --input NAME:SHAPE)")
        return None

    return check


def _infer_reshape(in_shape, target) -> tuple[int, ...]:
    target = [int(d) for d in np.asarray(target).reshape(-1)]
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1])) if len(target) > 1 else 1
        total = int(np.prod(in_shape))
        target[target.index(-1)] = total // known if known else 0
    return tuple(target)


@tf_op("Reshape", layers=("Shuffle",), check=_check_const_input(1, "the target shape"))
def convert_reshape(ctx, node, inputs):
    x, shape = inputs
    target = _infer_reshape(x.shape, ctx.as_const(shape, "the target shape"))
    if x.is_const:
        return Value(const=x.const.reshape(target))
    return shuffle(ctx, x, reshape=target)


@tf_op("Squeeze", layers=("Shuffle",))
def convert_squeeze(ctx, node, inputs):
    x = inputs[0]
    dims = node.attr("squeeze_dims", []) or []
    shape = x.shape
    axes = normalize_axes(dims, x.rank) if dims else [i for i, d in enumerate(shape) if d == 1]
    target = tuple(d for i, d in enumerate(shape) if i not in axes)
    if x.is_const:
        return Value(const=x.const.reshape(target))
    # squeezing size-1 axes keeps the physical order of the others: no transpose needed
    layout = x.layout
    kept = [a for a in layout if a not in axes]
    order = sorted(kept)
    new_layout = tuple(order.index(a) for a in kept)
    layer = ctx.network.add_shuffle(ctx.tensor(x, layout))
    layer.reshape_dims = tuple(shape[a] for a in kept)
    ctx.name_layer(layer)
    return ctx.out(layer.get_output(0), new_layout)


@tf_op("ExpandDims", layers=("Shuffle",), check=_check_const_input(1, "the axis"))
def convert_expand_dims(ctx, node, inputs):
    x, axis = inputs
    axis = int(np.asarray(ctx.as_const(axis, "the axis")).reshape(-1)[0])
    if axis < 0:
        axis += x.rank + 1
    target = x.shape[:axis] + (1,) + x.shape[axis:]
    if x.is_const:
        return Value(const=x.const.reshape(target))
    return shuffle(ctx, x, reshape=target)


@tf_op("Transpose", layers=("Shuffle",), check=_check_const_input(1, "the permutation"))
def convert_transpose(ctx, node, inputs):
    x, perm = inputs
    perm = tuple(int(p) for p in ctx.as_const(perm, "the permutation"))
    if x.is_const:
        return Value(const=np.transpose(x.const, perm))
    # no layer at all: the result is the same physical tensor seen through another logical order
    # logical_out[i] = logical_in[perm[i]]; physical = logical_in.transpose(L) ⇒ layout_out[j] = perm⁻¹[L[j]]
    inv = tuple(int(i) for i in np.argsort(perm))
    layout = tuple(inv[a] for a in x.layout)
    return ctx.out(x.tensor, layout)


def _pad_value(ctx, node, inputs) -> float:
    if node.op == "PadV2":
        return float(np.asarray(ctx.as_const(inputs[2], "the pad value")).reshape(-1)[0])
    return 0.0


@tf_op("Pad", "PadV2", "MirrorPad", layers=("Slice",), check=_check_const_input(1, "the paddings"),
       restrictions="MirrorPad: REFLECT mode only; zero padding before a VALID convolution folds into it")
def convert_pad(ctx, node, inputs):
    x = inputs[0]
    pads = np.asarray(ctx.as_const(inputs[1], "the paddings")).astype(int).reshape(-1, 2)
    trt = ctx.trt
    layout = x.layout
    tensor = ctx.tensor(x, layout)
    start = tuple(-int(pads[a, 0]) for a in layout)
    size = tuple(int(x.shape[a] + pads[a, 0] + pads[a, 1]) for a in layout)
    layer = ctx.network.add_slice(tensor, start, size, (1,) * x.rank)
    if node.op == "MirrorPad":
        if node.attr("mode", "REFLECT") != "REFLECT":
            ctx.fail("MirrorPad SYMMETRIC is not supported", "use REFLECT padding")
        layer.mode = trt.SampleMode.REFLECT
    else:
        layer.mode = trt.SampleMode.FILL
        value = _pad_value(ctx, node, inputs)
        if value != 0.0:
            fill = ctx.constant(np.array([value], dtype=x.dtype).reshape(()), "pad_value")
            layer.set_input(4, fill)
    ctx.name_layer(layer)
    return ctx.out(layer.get_output(0), layout)


def _check_mirror(node, graph):
    if node.op == "MirrorPad" and node.attr("mode") != "REFLECT":
        return ConversionError(node.name, node.op, "SYMMETRIC mode is not supported", "use REFLECT")
    return None


@tf_op("ConcatV2", layers=("Concatenation",), check=_check_const_input(-1, "the axis"))
def convert_concat(ctx, node, inputs):
    *values, axis = inputs
    axis = int(ctx.as_const(axis, "the axis")) % values[0].rank
    if all(v.is_const for v in values):
        return Value(const=np.concatenate([v.const for v in values], axis=axis))
    layout = next(v.layout for v in values if not v.is_const)
    dtype = next(v.dtype for v in values if not v.is_const)
    tensors = [ctx.tensor(v if not v.is_const else Value(const=v.const.astype(dtype)), layout) for v in values]
    layer = ctx.network.add_concatenation(tensors)
    layer.axis = layout.index(axis)
    ctx.name_layer(layer)
    return ctx.out(layer.get_output(0), layout)


@tf_op("Shape", layers=(), restrictions="static shapes only (becomes a constant)")
def convert_shape(ctx, node, inputs):
    dtype = np.dtype(node.attr("out_type", "int32"))
    return Value(const=np.asarray(inputs[0].shape, dtype=dtype))


@tf_op("Pack", layers=("Shuffle", "Concatenation"))
def convert_pack(ctx, node, inputs):
    axis = node.attr("axis", 0)
    rank = inputs[0].rank + 1
    axis %= rank
    if all(v.is_const for v in inputs):
        return Value(const=np.stack([v.const for v in inputs], axis=axis))
    dtype = next(v.dtype for v in inputs if not v.is_const)
    expanded = []
    for v in inputs:
        target = v.shape[:axis] + (1,) + v.shape[axis:]
        if v.is_const:
            expanded.append(Value(const=v.const.astype(dtype).reshape(target)))
        else:
            expanded.append(shuffle(ctx, v, reshape=target, suffix="expand"))
    layer = ctx.network.add_concatenation([ctx.tensor(v) for v in expanded])
    layer.axis = axis
    ctx.name_layer(layer)
    return ctx.out(layer.get_output(0))


@tf_op("Fill", layers=("Constant",), restrictions="constant dims and value")
def convert_fill(ctx, node, inputs):
    dims = ctx.as_const(inputs[0], "the dims")
    value = ctx.as_const(inputs[1], "the value")
    return Value(const=np.full(tuple(int(d) for d in dims), value, dtype=value.dtype))


@tf_op("ZerosLike", "OnesLike", layers=("Constant",))
def convert_zeros_like(ctx, node, inputs):
    x = inputs[0]
    fill = 0 if node.op == "ZerosLike" else 1
    return Value(const=np.full(x.shape, fill, dtype=x.dtype))


def _strided_slice_plan(shape, begin, end, strides, node):
    """TF StridedSlice semantics → (start, size, stride, final shape) on the input's axes."""
    begin_mask = node.attr("begin_mask", 0)
    end_mask = node.attr("end_mask", 0)
    ellipsis_mask = node.attr("ellipsis_mask", 0)
    new_axis_mask = node.attr("new_axis_mask", 0)
    shrink_mask = node.attr("shrink_axis_mask", 0)
    rank = len(shape)
    n = len(begin)
    starts, sizes, steps = [0] * rank, list(shape), [1] * rank
    final = []
    axis = 0
    for i in range(n):
        if ellipsis_mask & (1 << i):
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
    while axis < rank:
        final.append(shape[axis])
        axis += 1
    return starts, sizes, steps, tuple(final)


@tf_op("StridedSlice", layers=("Slice", "Shuffle"), check=_check_const_input(1, "begin/end/strides"),
       restrictions="constant begin/end/strides; all masks supported")
def convert_strided_slice(ctx, node, inputs):
    x = inputs[0]
    begin, end, strides = (np.asarray(ctx.as_const(v, "begin/end/strides")).reshape(-1) for v in inputs[1:4])
    starts, sizes, steps, final = _strided_slice_plan(x.shape, begin, end, strides, node)
    if x.is_const:
        index = tuple(slice(s, s + z * st if s + z * st >= 0 else None, st) for s, z, st in zip(starts, sizes, steps))
        return Value(const=np.asarray(x.const[index]).reshape(final))
    layout = x.layout
    layer = ctx.network.add_slice(ctx.tensor(x, layout), tuple(starts[a] for a in layout),
                                  tuple(sizes[a] for a in layout), tuple(steps[a] for a in layout))
    ctx.name_layer(layer)
    out = ctx.out(layer.get_output(0), layout)
    if tuple(sizes) != final:
        return shuffle(ctx, out, reshape=final, suffix="reshape")
    return out


@tf_op("Slice", layers=("Slice",), check=_check_const_input(1, "begin/size"))
def convert_slice(ctx, node, inputs):
    x = inputs[0]
    begin = [int(b) for b in np.asarray(ctx.as_const(inputs[1], "begin")).reshape(-1)]
    size = [int(s) for s in np.asarray(ctx.as_const(inputs[2], "size")).reshape(-1)]
    size = [x.shape[i] - begin[i] if s == -1 else s for i, s in enumerate(size)]
    if x.is_const:
        return Value(const=x.const[tuple(slice(b, b + s) for b, s in zip(begin, size))])
    layout = x.layout
    layer = ctx.network.add_slice(ctx.tensor(x, layout), tuple(begin[a] for a in layout),
                                  tuple(size[a] for a in layout), (1,) * x.rank)
    ctx.name_layer(layer)
    return ctx.out(layer.get_output(0), layout)
