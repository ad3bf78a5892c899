"""POOLING: ``IPoolingLayer`` (N-d max, average or max/average blend pooling over the trailing dims).

No weights.  Semantics: one strided slice per window tap, combined elementwise; the output size follows
TensorRT's ``PaddingMode`` formulas (:func:`~converter.layers._numpy.spatial_padding`).  Max pooling pads
with -inf (the dtype's minimum for integers); the average divides by the window's overlap with the
unpadded input (``average_count_excludes_padding``) or with the explicitly padded one — never counting
the extra end padding ``EXPLICIT_ROUND_UP`` adds.  ``MAX_AVERAGE_BLEND`` is
``(1 - blend_factor) * max + blend_factor * average``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import base
from ._numpy import is_float, pad_spatial, spatial_padding

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    pooling: str  #: ``PoolingType`` member name
    window_size: tuple[int, ...]
    stride: tuple[int, ...] | None = None  #: None: TensorRT's default (1 per spatial dim)
    pre_padding: tuple[int, ...] | None = None
    post_padding: tuple[int, ...] | None = None
    padding_mode: str = "EXPLICIT_ROUND_DOWN"
    average_count_excludes_padding: bool = True
    blend_factor: float = 0.0  #: MAX_AVERAGE_BLEND only


def add(network, inputs, p: Params, weights=None, keep=None):
    layer = network.add_pooling_nd(inputs[0], base.trt_enum("PoolingType", p.pooling), tuple(p.window_size))
    if p.stride is not None:
        layer.stride_nd = tuple(p.stride)
    if p.pre_padding is not None:
        layer.pre_padding = tuple(p.pre_padding)
    if p.post_padding is not None:
        layer.post_padding = tuple(p.post_padding)
    layer.padding_mode = base.trt_enum("PaddingMode", p.padding_mode)
    layer.average_count_excludes_padding = bool(p.average_count_excludes_padding)
    layer.blend_factor = float(p.blend_factor)
    return layer


def read(layer):
    return Params(pooling=base.enum_name(layer.type), window_size=base.dims(layer.window_size_nd),
                  stride=base.dims(layer.stride_nd), pre_padding=base.dims(layer.pre_padding),
                  post_padding=base.dims(layer.post_padding), padding_mode=base.enum_name(layer.padding_mode),
                  average_count_excludes_padding=bool(layer.average_count_excludes_padding),
                  blend_factor=float(layer.blend_factor)), {}


def run(rec, p: Params, prepared, ins):
    x = ins[0]
    ks, stride = p.window_size, p.stride
    nd = len(ks)
    dil = [1] * nd
    pads = spatial_padding(x.shape[-nd:], ks, stride, dil, p.pre_padding, p.post_padding, p.padding_mode)
    out = [q[3] for q in pads]
    kind = p.pooling
    lead = (slice(None),) * (x.ndim - nd)

    def over_taps(xp, combine):
        # one strided slice per window tap (fast), combined elementwise in place
        acc = None
        for tap in np.ndindex(*ks):
            idx = lead + tuple(slice(tap[i], tap[i] + (out[i] - 1) * stride[i] + 1, stride[i]) for i in range(nd))
            if acc is None:
                acc = xp[idx].copy()
            else:
                combine(acc, xp[idx], out=acc)
        return acc

    res_max = res_avg = None
    if kind in ("MAX", "MAX_AVERAGE_BLEND"):
        low = -np.inf if is_float(x) else np.iinfo(x.dtype).min
        xp = pad_spatial(x, [(b, a + e) for b, a, e, _ in pads], value=low)
        res_max = over_taps(xp, np.maximum)
    if kind in ("AVERAGE", "MAX_AVERAGE_BLEND"):
        xp = pad_spatial(x, [(b, a + e) for b, a, e, _ in pads], value=0)
        sums = over_taps(xp, np.add)
        # denominator: window overlap with the (padded or unpadded) input
        counts = None
        for i in range(nd):
            b, a, e, o = pads[i]
            size = x.shape[x.ndim - nd + i]
            ind = np.zeros(size + b + a + e, dtype=np.float32)
            if p.average_count_excludes_padding:
                ind[b:b + size] = 1
            else:
                ind[:b + size + a] = 1
            cnt = sliding_window_view(ind, ks[i])[: (o - 1) * stride[i] + 1: stride[i]].sum(axis=-1)
            shape = [1] * nd
            shape[i] = o
            cnt = cnt.reshape(shape)
            counts = cnt if counts is None else counts * cnt
        res_avg = sums / counts.astype(x.dtype)
    if kind == "MAX":
        return res_max
    if kind == "AVERAGE":
        return res_avg
    blend = x.dtype.type(p.blend_factor)
    return (1 - blend) * res_max + blend * res_avg


KIND = base.register("POOLING", Params, add=add, read=read, run=run, roles=ROLES)
