"""SOFTMAX: ``ISoftMaxLayer`` over the axes of a bitmask (TensorRT accepts exactly one axis).

Semantics: the maximum is subtracted before ``exp`` for stability; the sum accumulates in the input dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base
from ._numpy import axes_from_mask

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    axes: int  #: bitmask: bit i normalizes over dimension i


def add(network, inputs, p: Params, weights=None, keep=None):
    layer = network.add_softmax(inputs[0])
    layer.axes = int(p.axes)
    return layer


def read(layer):
    return Params(axes=int(layer.axes)), {}


def run(rec, p: Params, prepared, ins):
    x = ins[0]
    axes = axes_from_mask(p.axes, x.ndim)
    m = np.max(x, axis=axes, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axes, keepdims=True, dtype=x.dtype)


KIND = base.register("SOFTMAX", Params, add=add, read=read, run=run, roles=ROLES)
