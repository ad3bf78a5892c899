"""TOPK: ``ITopKLayer`` (the K largest or smallest values along one axis, and their indices).

Input 1, when present, is a dynamic K that overrides the static one (TensorRT then reads ``k`` back as -1).
Semantics: a stable sort, so equal values keep their index order (lower index first); outputs are
``[values, indices]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converter.errors import ExecutorError

from . import base
from ._numpy import axes_from_mask

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    op: str  #: ``TopKOperation`` member name (``MAX`` / ``MIN``)
    k: int
    axes: int  #: bitmask with exactly one bit set
    indices_type: str | None = None  #: None: TensorRT's default (INT32); only newer TensorRT has it


def add(network, inputs, p: Params, weights=None, keep=None):
    op = base.trt_enum("TopKOperation", p.op)
    dynamic_k = len(inputs) > 1 and inputs[1] is not None
    k = 1 if dynamic_k else int(p.k)  # a K tensor overrides the static K (read back as -1)
    if p.indices_type is not None and p.indices_type != "INT32":
        layer = network.add_topk(inputs[0], op, k, int(p.axes), base.trt_dtype(p.indices_type))
    else:
        layer = network.add_topk(inputs[0], op, k, int(p.axes))
    base.set_optional_inputs(layer, inputs, 1)
    return layer


def read(layer):
    indices_type = base.enum_name(layer.indices_type) if hasattr(layer, "indices_type") else None
    return Params(op=base.enum_name(layer.op), k=int(layer.k), axes=int(layer.axes), indices_type=indices_type), {}


def run(rec, p: Params, prepared, ins):
    x = ins[0]
    k = p.k
    if len(ins) > 1 and ins[1] is not None:
        k = int(np.asarray(ins[1]).reshape(-1)[0])
    axes = axes_from_mask(p.axes, x.ndim)
    if len(axes) != 1:
        raise ExecutorError(f"layer {rec['name']!r}: TopK over {len(axes)} axes")
    axis = axes[0]
    key = -x if p.op == "MAX" else x
    if x.dtype == np.bool_:
        key = ~x if p.op == "MAX" else x
    idx = np.argsort(key, axis=axis, kind="stable")
    idx = np.take(idx, np.arange(k), axis=axis)
    vals = np.take_along_axis(x, idx, axis=axis)
    return [vals, idx]


KIND = base.register("TOPK", Params, add=add, read=read, run=run, roles=ROLES)
