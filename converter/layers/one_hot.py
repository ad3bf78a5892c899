"""ONE_HOT: ``IOneHotLayer`` (inputs: indices, values ``[off, on]``, depth; the new axis is ``axis``).

Negative indices count from ``depth``; indices out of range give ``off`` everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    axis: int  #: position of the new axis in the output (negative: from the end)


def add(network, inputs, p: Params, weights=None, keep=None):
    return network.add_one_hot(inputs[0], inputs[1], inputs[2], int(p.axis))


def read(layer):
    return Params(axis=int(layer.axis)), {}


def run(rec, p: Params, prepared, ins):
    indices, values, depth = ins
    depth = int(np.asarray(depth).reshape(-1)[0])
    idx = indices.astype(np.int64)
    idx = np.where(idx < 0, idx + depth, idx)
    axis = p.axis
    rank = idx.ndim + 1
    if axis < 0:
        axis += rank
    hot = np.expand_dims(idx, axis) == np.arange(depth).reshape([-1 if i == axis else 1 for i in range(rank)])
    values = values.reshape(-1)
    return np.where(hot, values[1], values[0])


KIND = base.register("ONE_HOT", Params, add=add, read=read, run=run, roles=ROLES)
