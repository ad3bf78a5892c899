"""GATHER: ``IGatherLayer`` (``add_gather_v2``): elements of input 0 picked by the indices in input 1.

Modes: ``DEFAULT`` (``np.take`` along ``axis``, optionally per batch element with
``num_elementwise_dims`` = 1), ``ELEMENT`` (``take_along_axis``; negative indices wrap) and ``ND``
(index tuples in the last indices dimension, after ``num_elementwise_dims`` batch dimensions).
A converter's ``add_gather(data, indices, axis)`` is ``Params(axis=axis)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converter.errors import ExecutorError

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    axis: int = 0  #: TensorRT's default
    mode: str = "DEFAULT"  #: ``GatherMode`` member name
    num_elementwise_dims: int = 0  #: TensorRT's default


def add(network, inputs, p: Params, weights=None, keep=None):
    layer = network.add_gather_v2(inputs[0], inputs[1], base.trt_enum("GatherMode", p.mode))
    layer.axis = int(p.axis)
    layer.num_elementwise_dims = int(p.num_elementwise_dims)
    return layer


def read(layer):
    return Params(axis=int(layer.axis), mode=base.enum_name(layer.mode),
                  num_elementwise_dims=int(layer.num_elementwise_dims)), {}


def run(rec, p: Params, prepared, ins):
    data, idx = ins
    mode, axis, nbe = p.mode, p.axis, p.num_elementwise_dims
    idx = idx.astype(np.int64)
    if mode == "DEFAULT":
        if axis < 0:
            axis += data.ndim
        if nbe == 0:
            return np.take(data, idx, axis=axis)
        return np.stack([np.take(data[b], idx[b], axis=axis - 1) for b in range(data.shape[0])])
    if mode == "ELEMENT":
        idx = np.where(idx < 0, idx + data.shape[axis], idx)
        return np.take_along_axis(data, idx, axis=axis)
    if mode == "ND":
        b = nbe
        batch_shape = data.shape[:b]
        q = idx.shape[-1]
        nb = int(np.prod(batch_shape)) if b else 1
        d2 = data.reshape((nb,) + data.shape[b:])
        i2 = idx.reshape((nb, -1, q))
        outs = []
        for j in range(nb):
            sel = tuple(i2[j, :, t] for t in range(q))
            outs.append(d2[j][sel])
        out = np.stack(outs)
        return out.reshape(idx.shape[:-1] + data.shape[b + q:])
    raise ExecutorError(f"gather mode {mode} not implemented")


KIND = base.register("GATHER", Params, add=add, read=read, run=run, roles=ROLES)
