"""Shape arithmetic for dynamic dimensions: static where it can be, TensorRT shape tensors where it must be.

Like onnx-tensorrt's ``ShapeTensor``: a :class:`ShapeTensor` is a 1-D int32
vector whose elements are known at conversion time (``values[i]`` an int) or
only when the engine runs (``values[i]`` None, computed by a TensorRT shape
calculation).  Every operation folds what is known, so a network whose
dimensions are all static contains no shape layer at all, and a dynamic one
computes only the unknown parts.
"""

from __future__ import annotations

import numpy as np

from .. import layers
from ..context import Value, identity_perm

__all__ = ["ShapeTensor", "shape_of", "from_value", "concat_shapes", "binary", "gather", "product",
           "is_dynamic", "clamp", "wrap_negative", "ceil_div"]


class ShapeTensor:
    """A 1-D int32 vector: ``values`` (an int or None per element) and, when needed, its TensorRT tensor.

    Each unknown element also remembers where it was read from (a tensor and an index in it), so gathers and
    concatenations of shapes read the original shape tensors directly: reordering a channels-first shape or
    picking the batch out of it costs one gather, not a chain of them."""

    def __init__(self, values, tensor=None, origins=None):
        self.values = tuple(None if v is None else int(v) for v in values)
        self._tensor = tensor
        self._origins = origins  # per element: (tensor, index, length of that tensor) or None
        if tensor is None and origins is None and not self.static:
            raise ValueError("a shape with unknown elements needs its tensor")

    @property
    def static(self) -> bool:
        return all(v is not None for v in self.values)

    def __len__(self) -> int:
        return len(self.values)

    def ints(self) -> list[int]:
        if not self.static:
            raise ValueError(f"shape {self.values} is not static")
        return [int(v) for v in self.values]

    def elements(self, ctx) -> list:
        """Per element: its int when known, else ``(tensor, index, length)`` where it can be read."""
        out = []
        for i, v in enumerate(self.values):
            if v is not None:
                out.append(v)
            elif self._origins is not None and self._origins[i] is not None:
                out.append(self._origins[i])
            else:
                out.append((self.tensor(ctx), i, len(self)))
        return out

    def tensor(self, ctx):
        """The int32 TensorRT tensor (a constant when every element is known)."""
        if self._tensor is None:
            if self.static:
                self._tensor = ctx.constant(np.asarray(self.values, np.int32), "shape")
            else:
                self._tensor = _assemble_tensor(ctx, self.elements(ctx))
        return self._tensor

    def value(self, ctx=None) -> Value:
        """As a converter's :class:`~converter.context.Value` (a constant when static)."""
        if self.static:
            return Value(const=np.asarray(self.values, np.int32))
        return Value(tensor=self.tensor(ctx))

    def __repr__(self) -> str:
        return f"ShapeTensor({['?' if v is None else v for v in self.values]})"


def _assemble_tensor(ctx, elements: list):
    """One int32 tensor holding ``elements`` (ints, or ``(tensor, index, length)``): runs of known values
    become constants, runs read from one tensor a gather (or the tensor itself, read whole and in order)."""
    pieces, i = [], 0
    while i < len(elements):
        e = elements[i]
        j = i + 1
        if isinstance(e, tuple):
            while j < len(elements) and isinstance(elements[j], tuple) and elements[j][0] is e[0]:
                j += 1
            index = [el[1] for el in elements[i:j]]
            if index == list(range(e[2])):
                pieces.append(e[0])
            else:
                pieces.append(ctx.add(layers.gather, [e[0], ctx.constant(np.asarray(index, np.int32), "indices")],
                                      layers.gather.Params(axis=0), suffix="shape_gather").get_output(0))
        else:
            while j < len(elements) and not isinstance(elements[j], tuple):
                j += 1
            pieces.append(ctx.constant(np.asarray(elements[i:j], np.int32), "shape"))
        i = j
    if len(pieces) == 1:
        return pieces[0]
    return ctx.add(layers.concatenation, pieces, layers.concatenation.Params(0),
                   suffix="shape_concat").get_output(0)


def _from_elements(values, elements) -> ShapeTensor:
    if all(v is not None for v in values):
        return ShapeTensor(values)
    return ShapeTensor(values, origins=[e if isinstance(e, tuple) else None for e in elements])


def is_dynamic(x: Value) -> bool:
    return not x.is_const and any(d < 0 for d in x.shape)


def _cast_int32(ctx, tensor, suffix):
    from ..context import trtshim

    if trtshim.np_dtype(tensor.dtype) == np.int32:
        return tensor
    return ctx.add(layers.cast, [tensor], layers.cast.Params("INT32"), suffix=suffix).get_output(0)


def shape_of(ctx, x: Value) -> ShapeTensor:
    """The logical (TF order) shape of ``x``; computed by a shape layer only when a dimension is dynamic."""
    dims = tuple(x.shape)
    if all(d >= 0 for d in dims):
        return ShapeTensor(dims)
    cache = ctx.__dict__.setdefault("_shape_of", {})
    key = (id(x.tensor), x.layout)
    if key in cache:
        return cache[key]
    phys = ctx.add(layers.shape, [x.tensor], layers.shape.Params(), suffix="shape").get_output(0)
    phys = _cast_int32(ctx, phys, "shape_int32")
    layout = x.layout
    rank = len(layout)
    # logical axis a sits at physical axis layout.index(a): read there, no reordering layer until one is needed
    origins = [None if d >= 0 else (phys, layout.index(a), rank) for a, d in enumerate(dims)]
    out = ShapeTensor([d if d >= 0 else None for d in dims], origins=origins)
    cache[key] = out
    return out


def from_value(ctx, v: Value) -> ShapeTensor:
    """An int tensor used as a shape (TF's ``shape``/``size``/``begin`` inputs), 0-D or 1-D."""
    if v.is_const:
        return ShapeTensor(np.asarray(v.const).reshape(-1).tolist())
    tensor = ctx.logical(v)
    if v.rank == 0:
        tensor = ctx.add(layers.shuffle, [tensor], layers.shuffle.Params(reshape_dims=(1,)),
                         suffix="as_vector").get_output(0)
    tensor = _cast_int32(ctx, tensor, "as_int32")
    n = 1 if v.rank == 0 else v.shape[0]
    if n < 0:
        raise ValueError("a shape vector of unknown length")
    return ShapeTensor([None] * n, tensor)


def concat_shapes(ctx, parts: list[ShapeTensor]) -> ShapeTensor:
    values = [v for p in parts for v in p.values]
    if all(p.static for p in parts):
        return ShapeTensor(values)
    return _from_elements(values, [e for p in parts for e in p.elements(ctx)])


def gather(ctx, s: ShapeTensor, indices) -> ShapeTensor:
    """Elements ``indices`` of ``s`` (ints, negative counts from the end)."""
    indices = [int(i) % len(s) for i in indices]
    values = [s.values[i] for i in indices]
    if all(v is not None for v in values):
        return ShapeTensor(values)
    if indices == list(range(len(s))):
        return s
    elements = s.elements(ctx)
    return _from_elements(values, [elements[i] for i in indices])


_FOLD = {
    "SUM": lambda a, b: a + b,
    "SUB": lambda a, b: a - b,
    "PROD": lambda a, b: a * b,
    "FLOOR_DIV": lambda a, b: a // b,
    "MIN": min,
    "MAX": max,
}


def binary(ctx, a: ShapeTensor | int, b: ShapeTensor | int, op: str) -> ShapeTensor:
    """Elementwise ``op`` (SUM, SUB, PROD, FLOOR_DIV, MIN, MAX) with length-1 broadcasting."""
    a = a if isinstance(a, ShapeTensor) else ShapeTensor([a])
    b = b if isinstance(b, ShapeTensor) else ShapeTensor([b])
    n = max(len(a), len(b))
    av = a.values * n if len(a) == 1 else a.values
    bv = b.values * n if len(b) == 1 else b.values
    values = [None if x is None or y is None else _FOLD[op](x, y) for x, y in zip(av, bv)]
    if all(v is not None for v in values):
        return ShapeTensor(values)
    out = ctx.add(layers.elementwise, [a.tensor(ctx), b.tensor(ctx)], layers.elementwise.Params(op),
                  suffix=f"shape_{op.lower()}")
    return ShapeTensor(values, out.get_output(0))


def product(ctx, s: ShapeTensor) -> ShapeTensor:
    """The product of all elements, as a length-1 shape."""
    if s.static:
        return ShapeTensor([int(np.prod(s.values, dtype=np.int64))])
    out = ctx.add(layers.reduce, [s.tensor(ctx)], layers.reduce.Params("PROD", 1, True), suffix="shape_prod")
    return ShapeTensor([None], out.get_output(0))


def clamp(ctx, v: ShapeTensor, low, high) -> ShapeTensor:
    """``min(max(v, low), high)`` elementwise (TensorFlow's clamping of slice bounds to the dimension)."""
    return binary(ctx, binary(ctx, v, low, "MAX"), high, "MIN")


def wrap_negative(ctx, v: ShapeTensor, dim: ShapeTensor) -> ShapeTensor:
    """``v + dim`` where ``v < 0`` (a Python-style index from the end), ``v`` elsewhere.

    A known ``v`` picks its branch at conversion time; a computed one adds ``dim * min(max(-v, 0), 1)``
    (1 exactly when the integer ``v`` is negative), so only elementwise shape arithmetic is needed."""
    if v.static:
        return concat_shapes(ctx, [binary(ctx, x, gather(ctx, dim, [i if len(dim) > 1 else 0]), "SUM") if x < 0
                                   else ShapeTensor([x]) for i, x in enumerate(v.values)])
    negative = binary(ctx, binary(ctx, binary(ctx, 0, v, "SUB"), 0, "MAX"), 1, "MIN")
    return binary(ctx, v, binary(ctx, dim, negative, "PROD"), "SUM")


def ceil_div(ctx, a: ShapeTensor, step: int) -> ShapeTensor:
    """``ceil(a / step)`` for a known positive ``step``: ``-((-a) // step)`` (floor division, any sign of ``a``)."""
    if step == 1:
        return a
    return binary(ctx, 0, binary(ctx, binary(ctx, 0, a, "SUB"), step, "FLOOR_DIV"), "SUB")
