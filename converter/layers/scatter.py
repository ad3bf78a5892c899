"""SCATTER: ``IScatterLayer`` (a copy of input 0 with input 2's updates written at input 1's indices).

Modes: ``ELEMENT`` (``put_along_axis`` along ``axis``) and ``ND`` (index tuples in the last indices
dimension).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    mode: str  #: ``ScatterMode`` member name
    axis: int = 0  #: TensorRT's default (ELEMENT mode only)


def add(network, inputs, p: Params, weights=None, keep=None):
    layer = network.add_scatter(inputs[0], inputs[1], inputs[2], base.trt_enum("ScatterMode", p.mode))
    layer.axis = int(p.axis)
    return layer


def read(layer):
    return Params(mode=base.enum_name(layer.mode), axis=int(layer.axis)), {}


def run(rec, p: Params, prepared, ins):
    data, idx, updates = ins
    out = data.copy()
    idx = idx.astype(np.int64)
    if p.mode == "ELEMENT":
        np.put_along_axis(out, idx, updates, axis=p.axis)
        return out
    q = idx.shape[-1]
    flat_idx = idx.reshape(-1, q)
    flat_upd = updates.reshape((flat_idx.shape[0],) + data.shape[q:])
    for j in range(flat_idx.shape[0]):
        out[tuple(flat_idx[j])] = flat_upd[j]
    return out


KIND = base.register("SCATTER", Params, add=add, read=read, run=run, roles=ROLES)
