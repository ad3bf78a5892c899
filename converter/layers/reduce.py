"""REDUCE: ``IReduceLayer`` (sum, product, max, min, average over the axes of a bitmask).

Semantics: sums and products accumulate in the input's dtype (float32 stays float32); an integer ``AVG``
is the integer sum divided with truncation toward zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converter.errors import ExecutorError

from . import base
from ._numpy import axes_from_mask, int_div_trunc, is_float

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    op: str  #: ``ReduceOperation`` member name
    axes: int  #: bitmask: bit i reduces dimension i
    keep_dims: bool = False


def add(network, inputs, p: Params, weights=None, keep=None):
    return network.add_reduce(inputs[0], base.trt_enum("ReduceOperation", p.op), int(p.axes), bool(p.keep_dims))


def read(layer):
    return Params(op=base.enum_name(layer.op), axes=int(layer.axes), keep_dims=bool(layer.keep_dims)), {}


def run(rec, p: Params, prepared, ins):
    x = ins[0]
    axes = axes_from_mask(p.axes, x.ndim)
    kd = p.keep_dims
    op = p.op
    if op == "SUM":
        return np.sum(x, axis=axes, keepdims=kd, dtype=x.dtype)
    if op == "PROD":
        return np.prod(x, axis=axes, keepdims=kd, dtype=x.dtype)
    if op == "MAX":
        return np.max(x, axis=axes, keepdims=kd)
    if op == "MIN":
        return np.min(x, axis=axes, keepdims=kd)
    if op == "AVG":
        if is_float(x):
            return np.mean(x, axis=axes, keepdims=kd, dtype=x.dtype)
        total = np.sum(x, axis=axes, keepdims=kd, dtype=x.dtype)
        count = int(np.prod([x.shape[a] for a in axes]))
        return int_div_trunc(total, np.asarray(count, dtype=x.dtype))
    raise ExecutorError(f"reduce op {op} not implemented")


KIND = base.register("REDUCE", Params, add=add, read=read, run=run, roles=ROLES)
