"""LOOP_OUTPUT: ``ILoopOutputLayer`` (the only way a value leaves a loop).

``LAST_VALUE``: one input, the output of a recurrence of the same loop (TensorRT's
``ILoopOutputLayer`` documentation); the result is the recurrence's value *after* the last
iteration, i.e. its next value from the last iteration, or its initial value when the loop ran no
iteration.  (This is what TensorRT's own ONNX importer relies on: an ONNX Loop's final carried
values and an RNN's ``Y_h`` are ``LAST_VALUE`` outputs of recurrence outputs.)  If the input is some
other body tensor, the executor gives that tensor's value in the last iteration.

``CONCATENATE`` / ``REVERSE``: input 1 is a 0-D shape tensor defined before the loop, the length
``a`` of the output's new axis, inserted at ``axis``: for an input of shape ``[b, c]`` and
``axis=1`` the output is ``[b, a, c]``.  Slice ``i`` holds the input's value in iteration ``i``
(``REVERSE``: slice ``a - 1 - i``).  If the loop stops after fewer than ``a`` iterations (a WHILE
limit) TensorRT leaves the remaining slices unspecified; the executor fills them with zeros.  More
iterations than ``a`` is an executor error.  ``add`` takes ``[value]`` or ``[value, length]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converter.errors import ExecutorError

from . import _regions, base
from ._loops import loop_named

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    loop: str = ""  #: name of the ``ILoop`` the value leaves
    kind: str = "LAST_VALUE"  #: ``LoopOutput`` member name: "LAST_VALUE", "CONCATENATE" or "REVERSE"
    axis: int = 0  #: where the new axis goes (CONCATENATE/REVERSE; TensorRT ignores it for LAST_VALUE)


def add(network, inputs, p: Params, weights=None, keep=None):
    layer = loop_named(network, keep, p.loop).add_loop_output(inputs[0], base.trt_enum("LoopOutput", p.kind),
                                                              p.axis)
    base.set_optional_inputs(layer, inputs, 1)
    return layer


def read(layer):
    return Params(loop=layer.loop.name, kind=base.enum_name(layer.kind), axis=int(layer.axis)), {}


def stack(p: Params, slices: list[np.ndarray], length: int, template: tuple | None) -> np.ndarray:
    """A CONCATENATE/REVERSE output from the per-iteration values (``template``: one slice's shape,
    used when the loop ran no iteration; the executor casts to the recorded dtype)."""
    if len(slices) > length:
        raise ExecutorError(f"loop {p.loop!r}: {len(slices)} iterations, but the {p.kind} output has room for "
                            f"{length}")
    dtype = np.float32
    if slices:
        shape = slices[0].shape
        dtype = slices[0].dtype
    elif template is not None:
        shape = tuple(template)
    else:
        raise ExecutorError(f"loop {p.loop!r}: a {p.kind} output of a loop that ran no iteration has no known "
                            "slice shape")
    out = np.zeros((length,) + tuple(shape), dtype=dtype)
    for i, value in enumerate(slices):
        out[length - 1 - i if p.kind == "REVERSE" else i] = value
    axis = p.axis + len(shape) + 1 if p.axis < 0 else p.axis
    return np.moveaxis(out, 0, axis)


KIND = base.register("LOOP_OUTPUT", Params, add=add, read=read, run=_regions.boundary_run, roles=ROLES,
                     region="loop")
