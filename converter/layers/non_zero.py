"""NON_ZERO: ``INonZeroLayer`` (the indices of the non-zero elements, as a ``(rank, count)`` tensor)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    indices_type: str | None = None  #: None: TensorRT's default (INT32); only newer TensorRT has it


def add(network, inputs, p: Params, weights=None, keep=None):
    if p.indices_type is not None and p.indices_type != "INT32":
        return network.add_non_zero(inputs[0], base.trt_dtype(p.indices_type))
    return network.add_non_zero(inputs[0])


def read(layer):
    return Params(indices_type=base.enum_name(layer.indices_type) if hasattr(layer, "indices_type") else None), {}


def run(rec, p: Params, prepared, ins):
    return np.array(np.nonzero(ins[0]), dtype=np.int64).reshape(ins[0].ndim, -1)


KIND = base.register("NON_ZERO", Params, add=add, read=read, run=run, roles=ROLES)
