"""UNARY: ``IUnaryLayer`` (one-input math and logic functions).

Semantics: numpy's functions with floating-point errors silenced (out-of-domain inputs give NaN/inf as on
the GPU); ``ROUND`` rounds half to even, ``ERF`` uses :func:`~converter.layers._numpy.erf` with the sign of
its input (erf is odd, and CUDA's ``erff`` keeps erf(-0) = -0 where the series sum would give +0), integer
``RECIP`` is numpy's ``1 / x``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converter.errors import ExecutorError

from . import base
from ._numpy import erf, is_float

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    op: str  #: ``UnaryOperation`` member name


_UNARY = {
    "EXP": np.exp, "LOG": np.log, "SQRT": np.sqrt, "ABS": np.abs, "NEG": np.negative,
    "SIN": np.sin, "COS": np.cos, "TAN": np.tan, "SINH": np.sinh, "COSH": np.cosh, "ASIN": np.arcsin,
    "ACOS": np.arccos, "ATAN": np.arctan, "ASINH": np.arcsinh, "ACOSH": np.arccosh, "ATANH": np.arctanh,
    "CEIL": np.ceil, "FLOOR": np.floor, "ERF": lambda x: np.copysign(erf(x), x), "NOT": np.logical_not,
    "SIGN": np.sign,
    "ROUND": np.round,  # half to even
    "ISINF": np.isinf, "ISNAN": np.isnan,
}


def add(network, inputs, p: Params, weights=None, keep=None):
    return network.add_unary(inputs[0], base.trt_enum("UnaryOperation", p.op))


def read(layer):
    return Params(op=base.enum_name(layer.op)), {}


def run(rec, p: Params, prepared, ins):
    x = ins[0]
    op = p.op
    with np.errstate(all="ignore"):
        if op == "RECIP":
            return x.dtype.type(1) / x if is_float(x) else 1 / x
        fn = _UNARY.get(op)
        if fn is None:
            raise ExecutorError(f"unary op {op} not implemented")
        return fn(x)


KIND = base.register("UNARY", Params, add=add, read=read, run=run, roles=ROLES)
