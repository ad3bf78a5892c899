"""SHUFFLE: ``IShuffleLayer`` (first transpose, then reshape, then second transpose).

The reshape dimensions come from ``reshape_dims`` or, when present, from input 1 (a shape tensor); with
``zero_is_placeholder`` a 0 copies the input's dimension at that position.  TensorRT reads permutations
back with all 8 entries (``Dims.MAX_DIMS``); the executor uses the first ``rank`` of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base
from ._numpy import dynamic_dims

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    first_transpose: tuple[int, ...] | None = None  #: None: TensorRT's default (the identity)
    reshape_dims: tuple[int, ...] | None = None  #: None: no reshape (or the shape comes from input 1)
    second_transpose: tuple[int, ...] | None = None  #: None: TensorRT's default (the identity)
    zero_is_placeholder: bool = True  #: TensorRT's default


def add(network, inputs, p: Params, weights=None, keep=None):
    layer = network.add_shuffle(inputs[0])
    if p.first_transpose is not None:
        layer.first_transpose = tuple(p.first_transpose)
    layer.zero_is_placeholder = bool(p.zero_is_placeholder)
    if p.reshape_dims is not None and (len(inputs) < 2 or inputs[1] is None):
        layer.reshape_dims = tuple(p.reshape_dims)
    if p.second_transpose is not None:
        layer.second_transpose = tuple(p.second_transpose)
    base.set_optional_inputs(layer, inputs, 1)
    return layer


def read(layer):
    # with a shape tensor at input 1 there are no static reshape dimensions to read (TensorRT warns if asked)
    dynamic = layer.num_inputs > 1 and layer.get_input(1) is not None
    return Params(first_transpose=base.dims(layer.first_transpose),
                  reshape_dims=None if dynamic else base.dims(layer.reshape_dims),
                  second_transpose=base.dims(layer.second_transpose),
                  zero_is_placeholder=bool(layer.zero_is_placeholder)), {}


def _reshape_dims(src_shape, dims, zero_is_placeholder):
    dims = [int(d) for d in dims]
    out = []
    for i, d in enumerate(dims):
        if d == 0 and zero_is_placeholder:
            out.append(src_shape[i])
        else:
            out.append(d)
    return out


def run(rec, p: Params, prepared, ins):
    x = ins[0]
    first = p.first_transpose[: x.ndim] if p.first_transpose is not None else None
    if first is not None and list(first) != list(range(x.ndim)):
        x = np.transpose(x, first)
    dims = dynamic_dims(ins, 1)
    if dims is None and p.reshape_dims is not None:
        dims = p.reshape_dims
    if dims is not None:
        new = _reshape_dims(x.shape, dims, p.zero_is_placeholder)
        x = x.reshape(new)
    second = p.second_transpose[: x.ndim] if p.second_transpose is not None else None
    if second is not None and list(second) != list(range(x.ndim)):
        x = np.transpose(x, second)
    return x


KIND = base.register("SHUFFLE", Params, add=add, read=read, run=run, roles=ROLES)
