"""Shared building blocks so each converter stays a few lines long.

Conventions every converter follows:

* ``register`` (not ``tf_op`` directly) adds the checks all ops share (no
  float64 anywhere: TensorRT has none) and narrows int64 to int32 on the way
  in (TensorRT computes indices and shapes in int32; values must fit).
* When every input is a constant the converter computes the result in numpy
  (shape arithmetic after ``Shape`` never reaches TensorRT); ops that do this
  say ``folds=True`` so the support check knows their outputs are static.
* Tensors keep their layout (``Value.perm``) wherever the op does not care
  about axis order; axis arguments are mapped to physical axes instead.
"""

from __future__ import annotations

import numpy as np

from .. import layers
from ..context import ConversionContext, Value, channels_first_perm, identity_perm, inverse_perm
from ..errors import ConversionError
from ..registry import tf_op
from ..structural import PASS_THROUGH_OPS

FLOAT_DTYPES = ("float32", "float16")
#: ops whose converter computes the output in numpy when all inputs are constants
FOLDABLE_OPS: set[str] = {"Const"}
#: ops whose output depends only on their input's shape: static when that shape is (Rank always)
SHAPE_OPS = {"Shape", "ShapeN", "Size", "Rank", "ZerosLike", "OnesLike"}
_TYPE_ATTRS = ("T", "dtype", "SrcT", "DstT", "Tparams", "Tidx", "out_type", "output_type", "Tpaddings",
               "Tmultiples", "Tshape", "Tindices", "Taxis", "Tlen", "Tsplits", "index_type", "Index", "Tperm")


# ------------------------------------------------------------------ registration and checks
def node_dtypes(node) -> list[str]:
    """Every dtype named by the node's type attributes."""
    found = []
    for key in _TYPE_ATTRS:
        value = node.attrs.get(key)
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list):
            found.extend(v for v in value if isinstance(v, str))
    return found


def reject_float64(node, graph):
    if any(d in ("float64", "double", "complex64", "complex128") for d in node_dtypes(node)):
        return ConversionError(node.name, node.op,
                               "float64/complex tensors are not supported (TensorRT has no float64)",
                               "build the model in float32 (keras.config.set_floatx('float32'), "
                               "tf.cast(..., tf.float32) or dtype=tf.float32 constants)")
    return None


def float_only(attr: str = "T"):
    """A check: the op's ``attr`` dtype must be float32/float16."""

    def check(node, graph):
        dtype = node.attr(attr, "float32")
        if dtype not in FLOAT_DTYPES:
            return ConversionError(node.name, node.op, f"{attr}={dtype} is not supported (float32/float16 only)",
                                   "cast the operands to float32 in the model")
        return None

    return check


def is_static(graph, ref: str) -> bool:
    """Whether ``ref`` is known at conversion time (a constant or shape arithmetic on static shapes)."""
    from ..freeze import _src

    cache = graph.__dict__.setdefault("_tf2trt_static", {})
    name = _src(ref)
    if name in cache:
        return cache[name]
    node = graph.by_name.get(name)
    if node is None:
        result = False
    elif node.op == "Const" or node.op == "Rank":
        result = True
    elif node.op in SHAPE_OPS:
        shapes = [graph.shape(r) for r in node.inputs]
        result = all(s is not None and all(int(d) >= 0 for d in s) for s in shapes)
    elif node.op in FOLDABLE_OPS or node.op in PASS_THROUGH_OPS or node.op == "IdentityN":
        cache[name] = False  # guards against cycles (none in a valid graph)
        result = bool(node.inputs) and all(is_static(graph, r) for r in node.inputs)
    else:
        result = False
    cache[name] = result
    return result


def is_shape_computable(graph, ref: str) -> bool:
    """Whether ``ref`` is a constant or computed from tensor shapes only (a TensorRT shape tensor): what a
    reshape's, fill's or slice's computed shape may be.  Values read from data are not."""
    from ..freeze import _src

    cache = graph.__dict__.setdefault("_tf2trt_shape_computable", {})
    name = _src(ref)
    if name in cache:
        return cache[name]
    node = graph.by_name.get(name)
    if node is None:
        result = False
    elif node.op == "Const" or node.op in SHAPE_OPS:
        result = True
    elif node.op in FOLDABLE_OPS or node.op in PASS_THROUGH_OPS or node.op == "IdentityN":
        cache[name] = False  # guards against cycles (none in a valid graph)
        # the data input of a slice/gather/reshape of a shape vector is what matters, not its parameters
        result = bool(node.inputs) and all(is_shape_computable(graph, r) for r in node.inputs)
    else:
        result = False
    cache[name] = result
    return result


def shape_inputs(*indices: int, what: str = "this input"):
    """A check: the inputs at ``indices`` must be constants or computed from tensor shapes."""

    def check(node, graph):
        for i in indices:
            if -len(node.inputs) <= i < len(node.inputs) and not is_shape_computable(graph, node.inputs[i]):
                return ConversionError(node.name, node.op,
                                       f"{what} must be a constant or computed from tensor shapes (TensorRT "
                                       "shape tensors cannot come from data values)",
                                       _loop_hint(graph) + "compute it from tf.shape(...) and constants, or make "
                                       "it a constant")
        return None

    return check


def _loop_hint(graph) -> str:
    """The start of a hint for a loop body, where the offending value is typically x[i] with the loop counter i."""
    if not getattr(graph, "is_loop_body", False):
        return ""
    return ("inside a loop, read element i of a sequence through a tensor list (tf.TensorArray(...).unstack(x) "
            "then .read(i)) or iterate with tf.map_fn / tf.scan; ")


def static_inputs(*indices: int, what: str = "this input"):
    """A check: the inputs at ``indices`` must be static (negative indices count from the end)."""

    def check(node, graph):
        for i in indices:
            if -len(node.inputs) <= i < len(node.inputs) and not is_static(graph, node.inputs[i]):
                hint = _loop_hint(graph) + "give the model static shapes and constant parameters"
                return ConversionError(node.name, node.op, f"{what} must be a constant or computed from static shapes",
                                       hint)
        return None

    return check


def _narrow_input(ctx: ConversionContext, value: Value | None) -> Value | None:
    if value is None:
        return None
    if value.is_const:
        if value.const.dtype == np.int64:
            return Value(const=value.const.astype(np.int32))
        return value
    if value.dtype == np.int64:
        return cast(ctx, value, np.int32, suffix="narrow")
    return value


def register(*ops: str, layers=(), restrictions: str = "", check=None, folds: bool = False):
    """``tf_op`` plus the shared checks and the int64 → int32 narrowing of inputs."""
    checks = [reject_float64] + (list(check) if isinstance(check, (list, tuple)) else [check] if check else [])

    def combined(node, graph):
        problems = []
        for fn in checks:
            result = fn(node, graph)
            if result:
                problems.extend(result if isinstance(result, list) else [result])
        return problems

    def decorate(fn):
        def convert(ctx, node, inputs):
            return fn(ctx, node, [_narrow_input(ctx, v) for v in inputs])

        convert.__name__ = fn.__name__
        convert.__qualname__ = fn.__qualname__
        convert.__module__ = fn.__module__
        convert.__doc__ = fn.__doc__
        convert.__wrapped__ = fn
        tf_op(*ops, layers=layers, restrictions=restrictions, check=combined)(convert)
        if folds:
            FOLDABLE_OPS.update(ops)
        return fn

    return decorate


# ------------------------------------------------------------------ small value helpers
def all_const(values) -> bool:
    return all(v is not None and v.is_const for v in values)


def const_int_list(ctx: ConversionContext, value: Value, what: str) -> list[int]:
    return [int(v) for v in np.asarray(ctx.as_const(value, what)).reshape(-1)]


def const_scalar(ctx: ConversionContext, value: Value, what: str):
    return np.asarray(ctx.as_const(value, what)).reshape(-1)[0]


def scalar_constant(ctx: ConversionContext, number, dtype, suffix: str = "const"):
    """A 0-d constant tensor (``ctx.constant`` turns 0-d arrays into shape (1,) through ``np.ascontiguousarray``)."""
    arr = np.array([number], dtype=dtype)
    return ctx.add(layers.constant, [], layers.constant.Params(()), {"weights": arr}, suffix=suffix).get_output(0)


def const_tensor(ctx: ConversionContext, array: np.ndarray, suffix: str = "const"):
    """``ctx.constant`` that keeps 0-d arrays 0-d."""
    array = np.asarray(array)
    if array.ndim == 0:
        dtype = np.int32 if array.dtype == np.int64 else np.float32 if array.dtype == np.float64 else array.dtype
        return scalar_constant(ctx, array.item(), dtype, suffix)
    return ctx.constant(array, suffix)


def tensor_of(ctx: ConversionContext, value: Value):
    """The TensorRT tensor of ``value`` in its own layout (constants in logical order)."""
    if value.is_const:
        return const_tensor(ctx, value.const)
    return ctx.tensor(value, value.layout)


def value_layout(value: Value) -> tuple[int, ...]:
    return identity_perm(value.rank) if value.is_const else value.layout


def np_dtype_of(value: Value) -> np.dtype:
    return np.dtype(value.dtype)


# ------------------------------------------------------------------ elementwise
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
            tensors.append(const_tensor(ctx, np.transpose(arr, layout) if rank > 1 else arr))
        elif v.rank == rank:
            tensors.append(ctx.tensor(v, layout))
        else:
            # leading 1-dims: new logical axes 0..k-1; the tensor's own axes shift by k and keep their order
            k = rank - v.rank
            if sum(d < 0 for d in v.shape) > 1:  # a reshape infers one -1 at most: insert the 1-dims instead
                expanded = unit_axes(ctx, v, range(k), layers.unsqueeze, suffix="broadcast_rank")
                tensors.append(ctx.tensor(expanded, layout))
                continue
            shifted = tuple(a + k for a in v.layout)
            if tuple(a for a in layout if a >= k) == shifted:
                have = layout  # the 1-dims can sit where the target layout wants them: a pure reshape
            else:
                have = tuple(range(k)) + shifted
            logical_shape = (1,) * k + tuple(v.shape)
            params = layers.shuffle.Params(reshape_dims=tuple(logical_shape[a] for a in have))
            layer = ctx.add(layers.shuffle, [ctx.tensor(v, v.layout)], params, suffix="broadcast_rank")
            expanded = ctx.out(layer.get_output(0), have)
            tensors.append(ctx.tensor(expanded, layout))
    return tensors, layout


def _match_dtypes(ctx, a: Value, b: Value):
    """Constants take the dtype of the tensor operand (TF already type-checked the graph)."""
    if a.is_const and not b.is_const and a.const.dtype != b.dtype:
        a = Value(const=a.const.astype(b.dtype))
    if b.is_const and not a.is_const and b.const.dtype != a.dtype:
        b = Value(const=b.const.astype(a.dtype))
    return a, b


def _int_div_trunc(a, b):
    q = np.floor_divide(a, b)
    r = a - q * b
    fix = (r != 0) & ((a < 0) != (b < 0))
    return q + fix.astype(q.dtype)


_NUMPY_BINARY = {
    "SUM": np.add, "SUB": np.subtract, "PROD": np.multiply, "MAX": np.maximum, "MIN": np.minimum,
    "POW": np.power, "AND": np.logical_and, "OR": np.logical_or, "XOR": np.logical_xor,
    "EQUAL": np.equal, "GREATER": np.greater, "LESS": np.less,
}


def numpy_elementwise(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TensorRT's elementwise semantics in numpy (integer DIV truncates, FLOOR_DIV floors)."""
    with np.errstate(all="ignore"):
        if op == "DIV":
            if a.dtype.kind in "iu":
                return _int_div_trunc(a, b).astype(a.dtype)
            return np.asarray(a / b).astype(a.dtype)
        if op == "FLOOR_DIV":
            if a.dtype.kind in "iu":
                return np.floor_divide(a, b).astype(a.dtype)
            return np.floor(a / b).astype(a.dtype)
        out = np.asarray(_NUMPY_BINARY[op](a, b))
        if out.dtype != np.bool_ and out.dtype != a.dtype and a.dtype == b.dtype:
            out = out.astype(a.dtype)
        return out


def elementwise(ctx: ConversionContext, a: Value, b: Value, op: str, suffix: str | None = None) -> Value:
    """A broadcasting elementwise op; constant operands fold in numpy when both are constant."""
    if a.is_const and b.is_const:
        return Value(const=numpy_elementwise(op, a.const, b.const))
    a, b = _match_dtypes(ctx, a, b)
    (ta, tb), layout = _unify(ctx, [a, b])
    layer = ctx.add(layers.elementwise, [ta, tb], layers.elementwise.Params(op), suffix=suffix)
    return ctx.out(layer.get_output(0), layout)


def scalar_like(value: Value, number) -> Value:
    """A scalar constant of ``value``'s dtype."""
    return Value(const=np.asarray(number, dtype=np_dtype_of(value)))


def select(ctx: ConversionContext, cond: Value, a: Value, b: Value, suffix: str | None = None) -> Value:
    """``where(cond, a, b)`` with numpy broadcasting."""
    if all_const([cond, a, b]):
        return Value(const=np.where(cond.const, a.const, b.const))
    a, b = _match_dtypes(ctx, a, b)
    if cond.is_const:
        cond = Value(const=cond.const.astype(np.bool_))
    (tc, ta, tb), layout = _unify(ctx, [cond, a, b])
    layer = ctx.add(layers.select, [tc, ta, tb], layers.select.Params(), suffix=suffix)
    return ctx.out(layer.get_output(0), layout)


# ------------------------------------------------------------------ unary / activation
NUMPY_UNARY = {
    "ABS": np.abs, "NEG": np.negative, "SIGN": np.sign, "NOT": np.logical_not, "EXP": np.exp, "LOG": np.log,
    "SQRT": np.sqrt, "CEIL": np.ceil, "FLOOR": np.floor, "ROUND": np.round, "RECIP": lambda x: 1 / x,
    "ISINF": np.isinf, "ISNAN": np.isnan,
}


def unary(ctx: ConversionContext, x: Value, op: str, suffix: str | None = None) -> Value:
    if x.is_const and op in NUMPY_UNARY:
        with np.errstate(all="ignore"):
            out = np.asarray(NUMPY_UNARY[op](x.const))
        if out.dtype != np.bool_ and out.dtype != x.const.dtype:
            out = out.astype(x.const.dtype)
        return Value(const=out)
    layer = ctx.add(layers.unary, [tensor_of(ctx, x)], layers.unary.Params(op), suffix=suffix)
    return ctx.out(layer.get_output(0), value_layout(x))


def log1p(ctx: ConversionContext, u: Value, suffix: str = "log1p") -> Value:
    """log(1 + u) accurate to a few ulps for float ``u`` in [-0.5, 1] (TensorRT has no LOG1P).

    log(fl(1 + u)) alone loses u's low bits in the rounding of 1 + u (log(1 + 1e-8) = 0).  Goldberg's
    correction: with w = fl(1 + u), w - 1 is exact (Sterbenz), and log(w)·u / (w - 1) cancels w's rounding
    error to first order; where w = 1, log1p(u) = u to fp32 precision.
    """
    w = elementwise(ctx, u, scalar_like(u, 1), "SUM", f"{suffix}_w")
    ratio = elementwise(ctx, u, elementwise(ctx, w, scalar_like(u, 1), "SUB", f"{suffix}_w_minus_1"), "DIV",
                        f"{suffix}_ratio")
    corrected = elementwise(ctx, unary(ctx, w, "LOG", f"{suffix}_log"), ratio, "PROD", f"{suffix}_corrected")
    return select(ctx, elementwise(ctx, w, scalar_like(u, 1), "EQUAL", f"{suffix}_w_is_1"), u, corrected, suffix)


def activation(ctx: ConversionContext, x: Value, kind: str, alpha: float | None = None,
               beta: float | None = None, suffix: str | None = None) -> Value:
    params = layers.activation.Params(kind, None if alpha is None else float(alpha),
                                      None if beta is None else float(beta))
    layer = ctx.add(layers.activation, [tensor_of(ctx, x)], params, suffix=suffix)
    return ctx.out(layer.get_output(0), value_layout(x))


def cast(ctx: ConversionContext, x: Value, np_dtype, suffix: str | None = "cast") -> Value:
    """Cast to ``np_dtype``; int64 results are computed as int32 (TensorRT's index type)."""
    from .. import trt as trtshim

    target = np.dtype(np_dtype)
    if target == np.int64:
        target = np.dtype(np.int32)
    if x.is_const:
        arr = x.const
        if target == np.bool_:
            return Value(const=arr != 0)
        if target.kind in "iu" and arr.dtype.kind == "f":
            return Value(const=np.trunc(arr).astype(target))
        return Value(const=arr.astype(target))
    if target == x.dtype:
        return x
    params = layers.cast.Params(trtshim.trt_dtype(target).name)
    layer = ctx.add(layers.cast, [ctx.tensor(x, x.layout)], params, suffix=suffix)
    return ctx.out(layer.get_output(0), x.layout)


# ------------------------------------------------------------------ reductions
def normalize_axes(axes, rank: int) -> list[int]:
    axes = np.atleast_1d(np.asarray(axes)).astype(int).tolist()
    return sorted({a % rank for a in axes}) if rank else []


def _reduced_layout(layout, axes) -> tuple[int, ...]:
    kept = [a for a in layout if a not in axes]
    order = sorted(kept)
    return tuple(order.index(a) for a in kept)


_NUMPY_REDUCE = {"SUM": np.sum, "PROD": np.prod, "MAX": np.max, "MIN": np.min}


def reduce(ctx: ConversionContext, x: Value, axes, keep_dims: bool, op: str, suffix: str | None = None) -> Value:
    rank = x.rank
    axes = normalize_axes(axes, rank)
    if x.is_const:
        arr = x.const
        if not axes:
            return Value(const=arr)
        if op == "AVG":
            if arr.dtype.kind in "iu":
                total = np.sum(arr, axis=tuple(axes), keepdims=keep_dims, dtype=arr.dtype)
                count = int(np.prod([arr.shape[a] for a in axes]))
                return Value(const=np.asarray(_int_div_trunc(total, np.asarray(count, arr.dtype))))
            return Value(const=np.asarray(np.mean(arr, axis=tuple(axes), keepdims=keep_dims, dtype=arr.dtype)))
        return Value(const=np.asarray(_NUMPY_REDUCE[op](arr, axis=tuple(axes), keepdims=keep_dims)).astype(arr.dtype))
    if not axes:
        layer = ctx.add(layers.identity, [ctx.tensor(x, x.layout)], layers.identity.Params(), suffix=suffix)
        return ctx.out(layer.get_output(0), x.layout)
    layout = x.layout
    mask = 0
    for a in axes:
        mask |= 1 << layout.index(a)
    layer = ctx.add(layers.reduce, [ctx.tensor(x, layout)], layers.reduce.Params(op, mask, bool(keep_dims)),
                    suffix=suffix)
    if keep_dims:
        return ctx.out(layer.get_output(0), layout)
    return ctx.out(layer.get_output(0), _reduced_layout(layout, axes))


# ------------------------------------------------------------------ layout-keeping shape helpers
def channels_first(ctx: ConversionContext, x: Value):
    """The tensor in NC(D)HW order, for layers that need channels-first."""
    return ctx.tensor(x, channels_first_perm(x.rank))


def shuffle(ctx: ConversionContext, x: Value, reshape=None, transpose=None, second=None, suffix=None) -> Value:
    """Transpose (in logical order), reshape, then ``second`` transpose; one shuffle layer.

    Any pending layout change of ``x`` is absorbed into the first transpose.
    The result is in logical order.
    """
    if x.is_const:
        arr = x.const
        if transpose is not None:
            arr = np.transpose(arr, transpose)
        if reshape is not None:
            arr = arr.reshape(tuple(int(d) for d in reshape))
        if second is not None:
            arr = np.transpose(arr, second)
        return Value(const=arr)
    first = inverse_perm(x.layout)
    if transpose is not None:
        first = tuple(first[t] for t in transpose)
    dims = None if reshape is None else tuple(int(d) for d in reshape)
    params = layers.shuffle.Params(first_transpose=None if first == identity_perm(len(first)) else first,
                                   reshape_dims=dims, second_transpose=None if second is None else tuple(second),
                                   # a 0 in a TF shape is an empty axis, not TensorRT's "copy this dimension"
                                   zero_is_placeholder=not (dims and 0 in dims))
    layer = ctx.add(layers.shuffle, [ctx.tensor(x, x.layout)], params, suffix=suffix)
    return ctx.out(layer.get_output(0))


def reshape(ctx: ConversionContext, x: Value, shape, suffix=None) -> Value:
    """Reshape to ``shape`` (logical); keeps the layout when only size-1 axes come or go.

    ``shape`` is a tuple (``-1``: inferred, as in TensorFlow) or a
    :class:`~converter.ops.shapes.ShapeTensor` computed at run time.  A tuple
    derived from a dynamic ``x.shape`` may hold several ``-1``: that works when
    only size-1 axes come or go (squeeze + unsqueeze), the other cases need a
    ShapeTensor.
    """
    from .shapes import ShapeTensor

    if isinstance(shape, ShapeTensor):
        if shape.static:
            shape = tuple(shape.ints())
        else:
            if x.is_const:
                x = Value(tensor=const_tensor(ctx, x.const))
            params = layers.shuffle.Params(zero_is_placeholder=False)
            layer = ctx.add(layers.shuffle, [ctx.logical(x), shape.tensor(ctx)], params, suffix=suffix)
            return ctx.out(layer.get_output(0))
    shape = tuple(int(d) for d in shape)
    if x.is_const:
        return Value(const=x.const.reshape(shape))
    if tuple(x.shape) == shape:
        return x
    if sum(d < 0 for d in shape) > 1:
        return _reshape_unit_axes(ctx, x, shape, suffix)
    old = [d for d in x.shape if d != 1]
    new = [d for d in shape if d != 1]
    if old == new and x.layout != identity_perm(x.rank):
        # the non-1 axes keep their relative order: keep their physical order too
        src = [a for a in range(x.rank) if x.shape[a] != 1]
        dst = [a for a in range(len(shape)) if shape[a] != 1]
        mapping = dict(zip(src, dst))
        phys_nonunit = [mapping[a] for a in x.layout if a in mapping]
        ones = [a for a in range(len(shape)) if shape[a] == 1]
        layout = tuple(phys_nonunit + ones)
        params = layers.shuffle.Params(reshape_dims=tuple(shape[a] for a in layout), zero_is_placeholder=0 not in shape)
        layer = ctx.add(layers.shuffle, [ctx.tensor(x, x.layout)], params, suffix=suffix)
        return ctx.out(layer.get_output(0), layout)
    return shuffle(ctx, x, reshape=shape, suffix=suffix)


def _reshape_unit_axes(ctx: ConversionContext, x: Value, shape, suffix=None) -> Value:
    """A reshape with several dynamic dimensions that only removes and inserts size-1 axes."""
    old = [d for d in x.shape if d != 1]
    new = [d for d in shape if d != 1]
    if old != new:
        ctx.fail(f"reshape of {x.shape} to {shape} with several dynamic dimensions",
                 "give the model static shapes for these dimensions, or a profile that fixes them")
    out = x
    ones = [a for a, d in enumerate(x.shape) if d == 1]
    if ones:
        out = unit_axes(ctx, out, ones, layers.squeeze, suffix="squeeze")
    inserted = [a for a, d in enumerate(shape) if d == 1]
    if inserted:
        out = unit_axes(ctx, out, inserted, layers.unsqueeze, suffix=suffix)
    return out


def unit_axes(ctx: ConversionContext, x: Value, axes, kind, suffix=None) -> Value:
    """``kind`` (``layers.squeeze`` or ``layers.unsqueeze``) of logical ``axes``, for dynamic shapes."""
    axes_tensor = ctx.constant(np.asarray(sorted(axes), np.int32), "axes")
    layer = ctx.add(kind, [ctx.logical(x), axes_tensor], kind.Params(), suffix=suffix)
    return ctx.out(layer.get_output(0))


def expand_dims(ctx: ConversionContext, x: Value, axis: int, suffix=None) -> Value:
    axis = axis % (x.rank + 1)
    target = x.shape[:axis] + (1,) + x.shape[axis:]
    return reshape(ctx, x, target, suffix)


def squeeze(ctx: ConversionContext, x: Value, axes, suffix=None) -> Value:
    axes = normalize_axes(axes, x.rank)
    target = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    if x.is_const:
        return Value(const=x.const.reshape(target))
    if sum(d < 0 for d in target) > 1:
        return unit_axes(ctx, x, axes, layers.squeeze, suffix=suffix)
    layout = x.layout
    kept = [a for a in layout if a not in axes]
    params = layers.shuffle.Params(reshape_dims=tuple(x.shape[a] for a in kept))
    layer = ctx.add(layers.shuffle, [ctx.tensor(x, layout)], params, suffix=suffix)
    return ctx.out(layer.get_output(0), _reduced_layout(layout, axes))


def slice_value(ctx: ConversionContext, x: Value, start, size, stride=None, mode: str | None = None,
                fill=None, suffix=None) -> Value:
    """A TensorRT slice given in logical axis order (keeps the layout); numpy for constants in bounds."""
    from .shapes import ShapeTensor, concat_shapes, gather, shape_of

    rank = x.rank
    stride = [1] * rank if stride is None else [int(s) for s in stride]
    if not isinstance(size, ShapeTensor) and any(int(s) < 0 for s in size):
        # a negative size is a dynamic axis taken whole: its extent comes from the input's shape
        dims = shape_of(ctx, x)
        size = concat_shapes(ctx, [gather(ctx, dims, [a]) if int(s) < 0 else ShapeTensor([int(s)])
                                   for a, s in enumerate(size)])
    if isinstance(start, ShapeTensor) and start.static:
        start = start.ints()
    if isinstance(size, ShapeTensor) and size.static:
        size = size.ints()
    if isinstance(start, ShapeTensor) or isinstance(size, ShapeTensor):
        return _dynamic_slice(ctx, x, start, size, stride, mode, fill, suffix)
    start = [int(s) for s in start]
    size = [int(s) for s in size]
    if x.is_const and mode in (None, "WRAP", "FILL", "REFLECT", "CLAMP"):
        arr = x.const
        index = []
        for d in range(rank):
            coords = start[d] + np.arange(size[d]) * stride[d]
            n = arr.shape[d]
            if mode == "WRAP":
                coords = np.mod(coords, n)
            elif mode == "CLAMP":
                coords = np.clip(coords, 0, n - 1)
            elif mode == "REFLECT":
                period = max(2 * n - 2, 1)
                c = np.mod(np.abs(coords), period)
                coords = np.where(c >= n, period - c, c)
            index.append(coords)
        if mode == "FILL":
            valid = np.ones(tuple(size), bool)
            clipped = []
            for d, coords in enumerate(index):
                ok = (coords >= 0) & (coords < arr.shape[d])
                shape = [1] * rank
                shape[d] = -1
                valid = valid & ok.reshape(shape)
                clipped.append(np.clip(coords, 0, max(arr.shape[d] - 1, 0)))
            out = arr[np.ix_(*clipped)] if rank else arr
            fill_value = np.asarray(0 if fill is None else fill).astype(arr.dtype)
            return Value(const=np.where(valid, out, fill_value))
        return Value(const=arr[np.ix_(*index)] if rank else arr)
    layout = value_layout(x)
    ins = [tensor_of(ctx, x)]
    if fill is not None and mode == "FILL" and np.asarray(fill).reshape(-1)[0] != 0:
        ins += [None, None, None,
                scalar_constant(ctx, np.asarray(fill).reshape(-1)[0], np_dtype_of(x), "fill_value")]
    params = layers.slice.Params(start=tuple(start[a] for a in layout), shape=tuple(size[a] for a in layout),
                                 stride=tuple(stride[a] for a in layout), mode=mode or "STRICT_BOUNDS")
    layer = ctx.add(layers.slice, ins, params, suffix=suffix)
    return ctx.out(layer.get_output(0), layout)


def _dynamic_slice(ctx, x: Value, start, size, stride, mode, fill, suffix) -> Value:
    """A slice whose start or size is computed at run time (shape tensors in logical order).  The slice runs
    in the tensor's physical layout (start/size/stride permuted), so a channels-first tensor stays so."""
    from .shapes import ShapeTensor, gather

    start = start if isinstance(start, ShapeTensor) else ShapeTensor(start)
    size = size if isinstance(size, ShapeTensor) else ShapeTensor(size)
    if x.is_const:
        x = Value(tensor=const_tensor(ctx, x.const))
    perm = list(x.layout)
    start, size = gather(ctx, start, perm), gather(ctx, size, perm)
    stride = [stride[a] for a in perm]
    ins = [x.tensor, None if start.static else start.tensor(ctx), size.tensor(ctx), None]
    if fill is not None and mode == "FILL" and np.asarray(fill).reshape(-1)[0] != 0:
        ins.append(scalar_constant(ctx, np.asarray(fill).reshape(-1)[0], np_dtype_of(x), "fill_value"))
    params = layers.slice.Params(start=tuple(start.ints()) if start.static else None, shape=None,
                                 stride=tuple(stride), mode=mode or "STRICT_BOUNDS")
    layer = ctx.add(layers.slice, ins, params, suffix=suffix)
    return ctx.out(layer.get_output(0), tuple(perm))


def concat(ctx: ConversionContext, values: list[Value], axis: int, suffix=None) -> Value:
    """Concatenate along logical ``axis`` in the layout of the first tensor operand."""
    axis = axis % values[0].rank
    if all_const(values):
        return Value(const=np.concatenate([v.const for v in values], axis=axis))
    first = next(v for v in values if not v.is_const)
    layout, dtype = first.layout, first.dtype
    tensors = [ctx.tensor(Value(const=v.const.astype(dtype)) if v.is_const else v, layout) for v in values]
    if len(tensors) == 1:
        layer = ctx.add(layers.identity, tensors, layers.identity.Params(), suffix=suffix)
    else:
        layer = ctx.add(layers.concatenation, tensors, layers.concatenation.Params(layout.index(axis)), suffix=suffix)
    return ctx.out(layer.get_output(0), layout)


def split(ctx: ConversionContext, x: Value, axis: int, sizes: list[int]) -> list[Value]:
    """Slices of ``x`` along logical ``axis`` with the given sizes (layouts kept)."""
    axis = axis % x.rank
    outs, offset = [], 0
    for i, n in enumerate(sizes):
        start = [0] * x.rank
        start[axis] = offset
        size = list(x.shape)
        size[axis] = n
        outs.append(slice_value(ctx, x, start, size, suffix=f"split_{i}" if len(sizes) > 1 else None))
        offset += n
    return outs


# ------------------------------------------------------------------ convolution helpers
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
        spatial_pairs = pairs[2:] if node.attr("data_format", "NHWC").startswith("NC") else pairs[1:-1]
        return [p[0] for p in spatial_pairs], [p[1] for p in spatial_pairs]
    raise ValueError(f"unknown padding {mode}")


def spatial_attr(node, key: str, default, rank: int = 4) -> list[int]:
    """Spatial part of a per-dimension attribute (strides/dilations/ksize) in the node's data format."""
    values = node.attr(key, default)
    if values is None:
        values = default
    fmt = node.attr("data_format", "NHWC")
    if len(values) != rank:
        return list(values)
    if fmt.startswith("NC"):
        return list(values[2:])
    return list(values[1:-1])
