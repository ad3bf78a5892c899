"""ELEMENTWISE: ``IElementWiseLayer`` (binary arithmetic, comparison and logic ops).

Semantics: both inputs must have the same rank (TensorRT does not prepend dims) and broadcast where a
dimension is 1.  Integer ``DIV`` truncates toward zero (C semantics), ``FLOOR_DIV`` rounds down; integer
``POW`` is computed in float64 and cast back.  Comparisons (``EQUAL``/``GREATER``/``LESS``) give booleans.
Floats follow IEEE 754 with floating-point errors silenced (x / 0 is ±inf or NaN, overflow inf, as on the GPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converter.errors import ExecutorError

from . import base
from ._numpy import int_div_trunc, is_float

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    op: str  #: ``ElementWiseOperation`` member name


def add(network, inputs, p: Params, weights=None, keep=None):
    return network.add_elementwise(inputs[0], inputs[1], base.trt_enum("ElementWiseOperation", p.op))


def read(layer):
    return Params(op=base.enum_name(layer.op)), {}


def run(rec, p: Params, prepared, ins):
    with np.errstate(all="ignore"):
        return _run(rec, p, ins)


def _run(rec, p: Params, ins):
    a, b = ins
    if a.ndim != b.ndim:
        raise ExecutorError(f"layer {rec['name']!r}: ELEMENTWISE inputs of rank {a.ndim} and {b.ndim} "
                            "(TensorRT requires equal ranks)")
    for da, db in zip(a.shape, b.shape):
        if da != db and da != 1 and db != 1:
            raise ExecutorError(f"layer {rec['name']!r}: shapes {a.shape} and {b.shape} do not broadcast")
    op = p.op
    isf = is_float(a)
    if op == "SUM":
        return a + b
    if op == "SUB":
        return a - b
    if op == "PROD":
        return a * b
    if op == "MAX":
        return np.maximum(a, b)
    if op == "MIN":
        return np.minimum(a, b)
    if op == "DIV":
        if isf:
            return a / b
        return int_div_trunc(a, b)
    if op == "FLOOR_DIV":
        if isf:
            return np.floor(a / b)
        return np.floor_divide(a, b)
    if op == "POW":
        if isf:
            return np.power(a, b)
        return np.power(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)
    if op == "AND":
        return np.logical_and(a, b)
    if op == "OR":
        return np.logical_or(a, b)
    if op == "XOR":
        return np.logical_xor(a, b)
    if op == "EQUAL":
        return a == b
    if op == "GREATER":
        return a > b
    if op == "LESS":
        return a < b
    raise ExecutorError(f"elementwise op {op} not implemented")


KIND = base.register("ELEMENTWISE", Params, add=add, read=read, run=run, roles=ROLES)
