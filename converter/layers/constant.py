"""CONSTANT: ``IConstantLayer`` (a tensor held as weights).

Weights: ``weights``, stored with the layer's ``shape`` (0-d for a scalar constant).  A converter passes
``constant.Params(shape=arr.shape), {"weights": arr}``; the array is kept alive in ``keep`` because
TensorRT keeps a raw pointer to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converter import trt as trtshim
from converter.errors import SnapshotError

from . import base

ROLES = ("weights",)


@dataclass(frozen=True)
class Params(base.LayerParams):
    shape: tuple[int, ...]


def add(network, inputs, p: Params, weights=None, keep=None):
    weights = weights or {}
    keep = keep if keep is not None else []
    arr = np.require(weights["weights"], requirements="C")  # unlike ascontiguousarray, keeps 0-d arrays 0-d
    keep.append(arr)
    return network.add_constant(tuple(p.shape), trtshim.weights(arr))


def read(layer):
    shape = base.dims(layer.shape)
    arr = np.asarray(layer.weights)
    if arr.dtype == object:
        raise SnapshotError(f"layer {layer.name!r} (CONSTANT): weights of a data type TensorRT's Python API does "
                            f"not read back ({layer.weights.dtype})", hint=base.BF16_READ_HINT)
    arr = np.array(arr, copy=True).reshape(shape)
    return Params(shape=shape), {"weights": arr}


def run(rec, p: Params, prepared, ins):
    return prepared["weights"].reshape(p.shape)


KIND = base.register("CONSTANT", Params, add=add, read=read, run=run, roles=ROLES)
