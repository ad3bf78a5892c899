"""ITERATOR: ``IIteratorLayer`` (one slice of a tensor per loop iteration).

In iteration ``i`` the output is ``take(x, i, axis)``: the input (defined outside the loop) with
``axis`` removed.  With ``reverse`` it is ``take(x, M - 1 - i, axis)`` where ``M`` is the loop's
``COUNT`` trip limit (TensorRT's ``ILoop::addIterator`` documentation); without one the executor
takes ``M`` as the length of ``axis``.  Iterating beyond the tensor is invalid (an executor error).
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
    loop: str = ""  #: name of the ``ILoop`` that iterates
    axis: int = 0  #: axis of the input that is iterated over (removed from the output)
    reverse: bool = False  #: last slice first


def add(network, inputs, p: Params, weights=None, keep=None):
    return loop_named(network, keep, p.loop).add_iterator(inputs[0], p.axis, p.reverse)


def read(layer):
    return Params(loop=layer.loop.name, axis=int(layer.axis), reverse=bool(layer.reverse)), {}


def subscript(p: Params, x: np.ndarray, iteration: int, count: int | None) -> np.ndarray:
    """The iterator's output in ``iteration`` (``count``: the loop's COUNT trip limit, if any)."""
    axis = p.axis + x.ndim if p.axis < 0 else p.axis
    length = x.shape[axis]
    index = iteration
    if p.reverse:
        index = (length if count is None else count) - 1 - iteration
    if not 0 <= index < length:
        raise ExecutorError(f"loop {p.loop!r}: iteration {iteration} reads slice {index} of an axis of length "
                            f"{length} (iterating beyond the tensor is invalid)")
    return np.take(x, index, axis=axis)


KIND = base.register("ITERATOR", Params, add=add, read=read, run=_regions.boundary_run, roles=ROLES,
                     region="loop")
