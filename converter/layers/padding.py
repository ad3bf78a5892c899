"""PADDING: ``IPaddingLayer`` (zero padding of the trailing spatial dims; negative amounts crop).

No weights.  Semantics: :func:`~converter.layers._numpy.pad_spatial` with the value 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import base
from ._numpy import pad_spatial

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    pre_padding: tuple[int, ...]  #: per trailing dim, before (negative: crop)
    post_padding: tuple[int, ...]  #: per trailing dim, after (negative: crop)


def add(network, inputs, p: Params, weights=None, keep=None):
    return network.add_padding_nd(inputs[0], tuple(p.pre_padding), tuple(p.post_padding))


def read(layer):
    return Params(pre_padding=base.dims(layer.pre_padding_nd), post_padding=base.dims(layer.post_padding_nd)), {}


def run(rec, p: Params, prepared, ins):
    pads = list(zip(p.pre_padding, p.post_padding))
    return pad_spatial(ins[0], pads, value=0)


KIND = base.register("PADDING", Params, add=add, read=read, run=run, roles=ROLES)
