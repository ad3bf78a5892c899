"""CUMULATIVE: ``ICumulativeLayer`` (a running reduction along an axis given as input 1).

Semantics: only ``SUM`` is executed; ``exclusive`` shifts the running sum by one (the first element is
0), ``reverse`` accumulates from the end.  The sum accumulates in the input dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converter.errors import ExecutorError

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    op: str  #: ``CumulativeOperation`` member name
    exclusive: bool = False
    reverse: bool = False


def add(network, inputs, p: Params, weights=None, keep=None):
    return network.add_cumulative(inputs[0], inputs[1], base.trt_enum("CumulativeOperation", p.op),
                                  bool(p.exclusive), bool(p.reverse))


def read(layer):
    return Params(op=base.enum_name(layer.op), exclusive=bool(layer.exclusive), reverse=bool(layer.reverse)), {}


def run(rec, p: Params, prepared, ins):
    x, axis = ins
    axis = int(np.asarray(axis).reshape(-1)[0])
    if axis < 0:
        axis += x.ndim
    if p.op != "SUM":
        raise ExecutorError(f"cumulative op {p.op} not implemented")
    if p.reverse:
        x = np.flip(x, axis)
    y = np.cumsum(x, axis=axis, dtype=x.dtype)
    if p.exclusive:
        zero_shape = list(x.shape)
        zero_shape[axis] = 1
        y = np.concatenate([np.zeros(zero_shape, x.dtype), np.take(y, np.arange(x.shape[axis] - 1), axis=axis)],
                           axis=axis)
    if p.reverse:
        y = np.flip(y, axis)
    return y


KIND = base.register("CUMULATIVE", Params, add=add, read=read, run=run, roles=ROLES)
