"""PARAMETRIC_RELU: ``IParametricReLULayer`` (leaky ReLU whose slope is input 1, broadcast against input 0).

No parameters and no weights.  Semantics: ``x`` where ``x >= 0``, else ``x * slope``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    pass


def add(network, inputs, p: Params, weights=None, keep=None):
    return network.add_parametric_relu(inputs[0], inputs[1])


def read(layer):
    return Params(), {}


def run(rec, p: Params, prepared, ins):
    x, slope = ins
    return np.where(x >= 0, x, x * slope)


KIND = base.register("PARAMETRIC_RELU", Params, add=add, read=read, run=run, roles=ROLES)
