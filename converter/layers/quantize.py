"""QUANTIZE: ``IQuantizeLayer`` (``round(x / scale) + zero_point``, saturated to the integer output type).

Parameters and scale handling are shared with DEQUANTIZE (:mod:`converter.layers._qdq`).  Semantics, as
TensorRT documents ``IQuantizeLayer``: ``clamp(round(input / scale) + zeroPt)``, round to nearest with ties
to even, clamped to the output type (int8: [-128, 127]); the scale is a build-time constant (scalar: per
tensor, 1-D: along ``axis``) of strictly positive values and the zero point, if given, must be zero.  Only
integer output types are executed (not FP8/FP4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converter.errors import UnsupportedLayerError

from . import _qdq, base
from ._numpy import np_dtype

ROLES = ()


@dataclass(frozen=True)
class Params(_qdq.Params):
    pass


def add(network, inputs, p: Params, weights=None, keep=None):
    return _qdq.add(network, inputs, p, dequantize=False)


def read(layer):
    return Params(**_qdq.read_fields(layer)), {}


def run(rec, p: Params, prepared, ins):
    x, scale = ins[0], ins[1]
    zero = ins[2] if len(ins) > 2 else None
    scale, zero = _qdq.scale_and_zero(rec, p, x, scale, zero)
    to = np_dtype(rec["outputs"][0]["dtype"])
    if not np.issubdtype(to, np.integer):
        raise UnsupportedLayerError(rec["name"], rec["type"], f"quantization to {to}")
    q = np.round(x / scale.astype(x.dtype))  # round half to even
    if zero is not None:
        q = q + zero.astype(x.dtype)
    info = np.iinfo(to)
    return np.clip(q, info.min, info.max).astype(to)


KIND = base.register("QUANTIZE", Params, add=add, read=read, run=run, roles=ROLES)
