"""UNSQUEEZE: ``IUnsqueezeLayer`` (size-1 axes inserted; the axes are input 1, in the output's rank)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    pass


def add(network, inputs, p: Params, weights=None, keep=None):
    return network.add_unsqueeze(inputs[0], inputs[1])


def read(layer):
    return Params(), {}


def run(rec, p: Params, prepared, ins):
    x, axes = ins[0], ins[1]
    rank = x.ndim + np.asarray(axes).size
    axes = tuple(sorted(int(a) + rank if a < 0 else int(a) for a in np.asarray(axes).reshape(-1)))
    return np.expand_dims(x, axis=axes)


KIND = base.register("UNSQUEEZE", Params, add=add, read=read, run=run, roles=ROLES)
