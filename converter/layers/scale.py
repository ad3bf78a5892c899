"""SCALE: ``IScaleLayer`` (``(x * scale + shift) ** power`` with per-tensor, per-channel or per-element
coefficients).

Weights: any of ``shift``, ``scale``, ``power``, each flat (one value for ``UNIFORM``, one per channel of
``channel_axis`` for ``CHANNEL``, one per element of the dims from ``channel_axis`` on for
``ELEMENTWISE``); an absent role is TensorRT's identity (shift 0, scale 1, power 1).
Semantics: the coefficients are cast to the input dtype; scale, then shift, then power.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base

ROLES = ("shift", "scale", "power")


@dataclass(frozen=True)
class Params(base.LayerParams):
    mode: str  #: ``ScaleMode`` member name (``UNIFORM`` / ``CHANNEL`` / ``ELEMENTWISE``)
    channel_axis: int


def add(network, inputs, p: Params, weights=None, keep=None):
    weights = weights or {}
    keep = keep if keep is not None else []
    dtype = base.weights_dtype_name(weights)
    args = [base.as_trt_weights(weights.get(r), keep, dtype) for r in ROLES]
    layer = network.add_scale_nd(inputs[0], base.trt_enum("ScaleMode", p.mode), *args, int(p.channel_axis))
    layer.channel_axis = int(p.channel_axis)
    return layer


def read(layer):
    weights = {}
    for role in ROLES:
        arr = base.weights_array(getattr(layer, role), layer.name)
        if arr is not None:
            weights[role] = arr.reshape(-1)
    return Params(mode=base.enum_name(layer.mode), channel_axis=int(layer.channel_axis)), weights


def run(rec, p: Params, w, ins):
    x = ins[0]
    mode, axis = p.mode, p.channel_axis
    if axis < 0:
        axis += x.ndim

    def shaped(arr):
        if mode == "UNIFORM":
            return arr.reshape(())
        if mode == "CHANNEL":
            shape = [1] * x.ndim
            shape[axis] = -1
            return arr.reshape(shape)
        return arr.reshape((1,) * axis + tuple(x.shape[axis:]))

    y = x
    if "scale" in w:
        y = y * shaped(w["scale"]).astype(x.dtype)
    if "shift" in w:
        y = y + shaped(w["shift"]).astype(x.dtype)
    if "power" in w:
        y = np.power(y, shaped(w["power"]).astype(x.dtype))
    return y


KIND = base.register("SCALE", Params, add=add, read=read, run=run, roles=ROLES)
