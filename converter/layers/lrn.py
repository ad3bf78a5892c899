"""LRN: ``ILRNLayer`` (local response normalization across channels, the third dimension from the end).

No weights.  Semantics: ``x / (k + alpha / window * sum of x² over the window) ** beta``; the window is
centered (``(window - 1) // 2`` channels before), summed with a running sum in the input dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    window_size: int  #: channels in the window (odd)
    alpha: float
    beta: float
    k: float


def add(network, inputs, p: Params, weights=None, keep=None):
    return network.add_lrn(inputs[0], int(p.window_size), float(p.alpha), float(p.beta), float(p.k))


def read(layer):
    return Params(window_size=int(layer.window_size), alpha=float(layer.alpha), beta=float(layer.beta),
                  k=float(layer.k)), {}


def run(rec, p: Params, prepared, ins):
    x = ins[0]
    win = p.window_size
    alpha, beta, k = (x.dtype.type(v) for v in (p.alpha, p.beta, p.k))
    axis = x.ndim - 3
    half = (win - 1) // 2
    sq = x * x
    c = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (half, win - 1 - half)
    sqp = np.pad(sq, pad)
    csum = np.cumsum(sqp, axis=axis, dtype=x.dtype)
    zero_shape = list(csum.shape)
    zero_shape[axis] = 1
    csum = np.concatenate([np.zeros(zero_shape, x.dtype), csum], axis=axis)
    hi = np.take(csum, np.arange(win, win + c), axis=axis)
    lo = np.take(csum, np.arange(0, c), axis=axis)
    s = hi - lo
    return x / np.power(k + alpha / x.dtype.type(win) * s, beta)


KIND = base.register("LRN", Params, add=add, read=read, run=run, roles=ROLES)
