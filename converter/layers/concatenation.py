"""CONCATENATION: ``IConcatenationLayer`` (the inputs joined along one axis)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    axis: int  #: may be negative in the executor (counted from the end)


def add(network, inputs, p: Params, weights=None, keep=None):
    layer = network.add_concatenation(list(inputs))
    layer.axis = int(p.axis)
    return layer


def read(layer):
    return Params(axis=int(layer.axis)), {}


def run(rec, p: Params, prepared, ins):
    axis = p.axis
    if axis < 0:
        axis += ins[0].ndim
    return np.concatenate(ins, axis=axis)


KIND = base.register("CONCATENATION", Params, add=add, read=read, run=run, roles=ROLES)
