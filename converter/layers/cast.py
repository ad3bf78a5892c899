"""CAST: ``ICastLayer`` (a data type conversion).

Semantics: to ``BOOL`` is ``x != 0``; float to integer truncates toward zero; everything else is numpy's
``astype``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base
from ._numpy import is_float, np_dtype

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    to_type: str  #: ``DataType`` member name


def add(network, inputs, p: Params, weights=None, keep=None):
    return network.add_cast(inputs[0], base.trt_dtype(p.to_type))


def read(layer):
    return Params(to_type=base.enum_name(layer.to_type)), {}


def run(rec, p: Params, prepared, ins):
    x = ins[0]
    to = np_dtype(p.to_type)
    if to == np.bool_:
        return x != 0
    if np.issubdtype(to, np.integer) and is_float(x):
        return np.trunc(x).astype(to)
    with np.errstate(over="ignore"):  # float32 beyond fp16's range becomes inf, as in TensorRT
        return x.astype(to)


KIND = base.register("CAST", Params, add=add, read=read, run=run, roles=ROLES)
