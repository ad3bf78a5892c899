"""REVERSE_SEQUENCE: ``IReverseSequenceLayer`` (per batch element, the first ``lens[b]`` steps reversed).

Input 1 holds the sequence lengths, one per element along ``batch_axis``; the steps past a length are
left in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    batch_axis: int = 1  #: TensorRT's default
    sequence_axis: int = 0  #: TensorRT's default


def add(network, inputs, p: Params, weights=None, keep=None):
    layer = network.add_reverse_sequence(inputs[0], inputs[1])
    layer.batch_axis = int(p.batch_axis)
    layer.sequence_axis = int(p.sequence_axis)
    return layer


def read(layer):
    return Params(batch_axis=int(layer.batch_axis), sequence_axis=int(layer.sequence_axis)), {}


def run(rec, p: Params, prepared, ins):
    x, lens = ins
    out = x.copy()
    ba, sa = p.batch_axis, p.sequence_axis
    for b in range(x.shape[ba]):
        n = int(lens[b])
        src = np.take(x, b, axis=ba)
        seq_axis = sa if sa < ba else sa - 1
        rev = np.flip(np.take(src, np.arange(n), axis=seq_axis), axis=seq_axis)
        dst = [slice(None)] * x.ndim
        dst[ba] = b
        dst[sa] = slice(0, n)
        out[tuple(dst)] = rev
    return out


KIND = base.register("REVERSE_SEQUENCE", Params, add=add, read=read, run=run, roles=ROLES)
