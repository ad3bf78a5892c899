"""NORMALIZATION: ``INormalizationLayer`` (instance, layer and group normalization; scale and bias are
inputs 1 and 2, not weights).

``axes`` is a bitmask of the dimensions the statistics reduce over; ``num_groups > 1`` splits the channels
(axis 1) into groups.  ``v2`` records whether the layer was added with ``add_normalization_v2`` (newer
TensorRT), whose scale/bias are per channel also for group normalization.
Semantics: ``(x - mean) / sqrt(var + epsilon) * scale + bias`` with the biased variance, accumulated in
the input dtype; for groups, a scale/bias of shape ``[1, G, 1, ...]`` (``G != C``) applies per group,
otherwise it broadcasts against the input as given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base
from ._numpy import axes_from_mask

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    axes: int  #: bitmask: bit i reduces over dimension i
    epsilon: float | None = None  #: None: TensorRT's default (1e-5)
    num_groups: int = 1
    v2: bool = False  #: added with ``add_normalization_v2``


def add(network, inputs, p: Params, weights=None, keep=None):
    add_layer = network.add_normalization_v2 if p.v2 else network.add_normalization
    layer = add_layer(inputs[0], inputs[1], inputs[2], int(p.axes))
    if p.epsilon is not None:
        layer.epsilon = float(p.epsilon)
    layer.num_groups = int(p.num_groups)
    return layer


def read(layer):
    is_v2 = getattr(layer, "is_v2", False)
    return Params(axes=int(layer.axes), epsilon=float(layer.epsilon), num_groups=int(layer.num_groups),
                  v2=bool(is_v2() if callable(is_v2) else is_v2)), {}


def run(rec, p: Params, prepared, ins):
    x, scale, bias = ins
    eps = x.dtype.type(p.epsilon)
    axes = axes_from_mask(p.axes, x.ndim)
    groups = p.num_groups
    if groups > 1:
        # channels (axis 1) split into groups; statistics per (sample, group) over the group's
        # channels and the requested (spatial) axes
        n, c = x.shape[:2]
        xg = x.reshape((n, groups, c // groups) + x.shape[2:])
        g_axes = tuple(sorted({2} | {a + 1 for a in axes if a >= 2}))
        mean = np.mean(xg, axis=g_axes, keepdims=True, dtype=x.dtype)
        d = xg - mean
        var = np.mean(d * d, axis=g_axes, keepdims=True, dtype=x.dtype)
        yg = d / np.sqrt(var + eps)
        if scale.ndim == x.ndim and scale.shape[1] == groups and groups != c:
            # per-group scale/bias of shape [1, G, 1, ...]
            sg = scale.reshape((1, groups, 1) + scale.shape[2:])
            bg = bias.reshape((1, groups, 1) + bias.shape[2:])
            return (yg * sg + bg).reshape(x.shape)
        y = yg.reshape(x.shape)
    else:
        mean = np.mean(x, axis=axes, keepdims=True, dtype=x.dtype)
        d = x - mean
        var = np.mean(d * d, axis=axes, keepdims=True, dtype=x.dtype)
        y = d / np.sqrt(var + eps)
    return y * scale + bias


KIND = base.register("NORMALIZATION", Params, add=add, read=read, run=run, roles=ROLES)
