"""SQUEEZE: ``ISqueezeLayer`` (size-1 axes removed; the axes are input 1, negative ones count from the end)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    pass


def add(network, inputs, p: Params, weights=None, keep=None):
    return network.add_squeeze(inputs[0], inputs[1])


def read(layer):
    return Params(), {}


def run(rec, p: Params, prepared, ins):
    x, axes = ins[0], ins[1]
    axes = tuple(int(a) + x.ndim if a < 0 else int(a) for a in np.asarray(axes).reshape(-1))
    return np.squeeze(x, axis=axes)


KIND = base.register("SQUEEZE", Params, add=add, read=read, run=run, roles=ROLES)
