"""DEQUANTIZE: ``IDequantizeLayer`` (``(x - zero_point) * scale`` in the output type).

Parameters and scale handling are shared with QUANTIZE (:mod:`converter.layers._qdq`).  An int8 input
converts to float exactly, so with a float32 output the result is the single float32 product ``q * scale``
(TensorFlow's fake-quant output is the same product: :mod:`converter.ops.quant`); the zero point is zero in
every network TensorRT accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _qdq, base
from ._numpy import np_dtype

ROLES = ()


@dataclass(frozen=True)
class Params(_qdq.Params):
    pass


def add(network, inputs, p: Params, weights=None, keep=None):
    return _qdq.add(network, inputs, p, dequantize=True)


def read(layer):
    return Params(**_qdq.read_fields(layer)), {}


def run(rec, p: Params, prepared, ins):
    x, scale = ins[0], ins[1]
    zero = ins[2] if len(ins) > 2 else None
    scale, zero = _qdq.scale_and_zero(rec, p, x, scale, zero)
    to = np_dtype(rec["outputs"][0]["dtype"])
    v = x.astype(to)
    if zero is not None:
        v = v - zero.astype(to)
    return v * scale.astype(to)


KIND = base.register("DEQUANTIZE", Params, add=add, read=read, run=run, roles=ROLES)
