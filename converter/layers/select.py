"""SELECT: ``ISelectLayer`` (``condition ? then : else``, elementwise with broadcasting).

Semantics: ``np.where`` on the condition taken as booleans.
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
    return network.add_select(inputs[0], inputs[1], inputs[2])


def read(layer):
    return Params(), {}


def run(rec, p: Params, prepared, ins):
    cond, a, b = ins
    return np.where(cond.astype(bool), a, b)


KIND = base.register("SELECT", Params, add=add, read=read, run=run, roles=ROLES)
