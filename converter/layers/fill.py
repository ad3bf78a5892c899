"""FILL: ``IFillLayer`` (a tensor generated from a shape: ``LINSPACE`` or random fills).

``alpha``/``beta`` are ints when ``alpha_beta_int64`` (TensorRT holds them as int64 then, for exact
integer ranges) and floats otherwise.  Inputs 0–2, when present, override the shape, alpha and beta (a
converter gives alpha and beta together; ``read`` then records TensorRT's defaults for them).
Semantics: only ``LINSPACE`` is executed — ``alpha + sum_d index_d * beta[d]``, computed in float64 (or
int64) and cast to the output dtype; random fills are nondeterministic and refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converter.errors import UnsupportedLayerError

from . import base
from ._numpy import dynamic_dims, np_dtype

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    operation: str  #: ``FillOperation`` member name
    shape: tuple[int, ...] | None = None  #: None: the shape comes from input 0
    to_type: str = "FLOAT"  #: ``DataType`` member name of the output
    alpha: float | int = 0.0  #: TensorRT's defaults: start 0 ...
    beta: float | int = 1.0  #: ... and delta 1 (LINSPACE)
    alpha_beta_int64: bool = False

    def __post_init__(self):
        # alpha/beta are ints exactly when TensorRT holds them as int64, so the JSON form is unambiguous
        conv = int if self.alpha_beta_int64 else float
        object.__setattr__(self, "alpha", conv(self.alpha))
        object.__setattr__(self, "beta", conv(self.beta))


def add(network, inputs, p: Params, weights=None, keep=None):
    layer = network.add_fill(tuple(p.shape or ()), base.trt_enum("FillOperation", p.operation),
                             base.trt_dtype(p.to_type))
    if p.alpha_beta_int64:
        layer.alpha, layer.beta = int(p.alpha), int(p.beta)
    else:
        layer.alpha, layer.beta = float(p.alpha), float(p.beta)
    base.set_optional_inputs(layer, inputs, 0)
    return layer


def read(layer):
    is64 = layer.is_alpha_beta_int64()
    conv = int if is64 else float

    def given(index: int) -> bool:
        # a parameter given by an input tensor has no static value (TensorRT warns if asked for one)
        return layer.num_inputs > index and layer.get_input(index) is not None

    shape = None if given(0) else base.dims(layer.shape)
    alpha, beta = (conv(0), conv(1)) if given(1) else (conv(layer.alpha), conv(layer.beta))
    return Params(operation=base.enum_name(layer.operation), shape=shape, to_type=base.enum_name(layer.to_type),
                  alpha=alpha, beta=beta, alpha_beta_int64=bool(is64)), {}


def run(rec, p: Params, prepared, ins):
    op = p.operation
    if op != "LINSPACE":
        raise UnsupportedLayerError(rec["name"], rec["type"], f"{op} fills are random (nondeterministic)")
    shape = dynamic_dims(ins, 0) or p.shape
    dtype = np_dtype(rec["outputs"][0]["dtype"])
    if len(ins) > 1 and ins[1] is not None:
        alpha = np.asarray(ins[1]).reshape(-1)[0]
    else:
        alpha = p.alpha
    if len(ins) > 2 and ins[2] is not None:
        beta = np.asarray(ins[2]).reshape(-1)
    else:
        beta = np.full(len(shape), p.beta)
    work = np.float64 if np.issubdtype(dtype, np.floating) else np.int64
    y = np.full(shape, alpha, dtype=work)
    for d in range(len(shape)):
        sh = [1] * len(shape)
        sh[d] = -1
        y = y + np.arange(shape[d], dtype=work).reshape(sh) * work(beta[d])
    return y.astype(dtype)


KIND = base.register("FILL", Params, add=add, read=read, run=run, roles=ROLES)
