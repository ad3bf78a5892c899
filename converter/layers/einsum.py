"""EINSUM: ``IEinsumLayer`` (an Einstein-summation equation over any number of inputs).

Semantics: ``np.einsum`` with the stored equation (TensorRT's equations use explicit ``->`` output terms).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    equation: str


def add(network, inputs, p: Params, weights=None, keep=None):
    return network.add_einsum(list(inputs), p.equation)


def read(layer):
    return Params(equation=str(layer.equation)), {}


def run(rec, p: Params, prepared, ins):
    return np.einsum(p.equation, *ins, optimize=True)


KIND = base.register("EINSUM", Params, add=add, read=read, run=run, roles=ROLES)
