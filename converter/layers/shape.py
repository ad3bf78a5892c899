"""SHAPE: ``IShapeLayer`` (the input's dimensions as a 1-D tensor, of the output's recorded dtype)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base
from ._numpy import np_dtype

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    pass


def add(network, inputs, p: Params, weights=None, keep=None):
    return network.add_shape(inputs[0])


def read(layer):
    return Params(), {}


def run(rec, p: Params, prepared, ins):
    return np.asarray(ins[0].shape, dtype=np_dtype(rec["outputs"][0]["dtype"]))


KIND = base.register("SHAPE", Params, add=add, read=read, run=run, roles=ROLES)
