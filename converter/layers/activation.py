"""ACTIVATION: ``IActivationLayer`` (a pointwise activation function with up to two parameters).

``alpha``/``beta`` mean what TensorRT's ``ActivationType`` documentation says per type (slope, clip bounds,
scale…); None in a converter's record leaves TensorRT's per-type default (for example LEAKY_RELU's 0.01,
SELU's constants, CLIP's ±FLT_MAX).
Semantics: non-float inputs are computed in float32; GELU_ERF uses :func:`~converter.layers._numpy.erf`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from converter.errors import ExecutorError

from . import base
from ._numpy import erf, is_float

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    activation: str  #: ``ActivationType`` member name
    alpha: float | None = None  #: None: TensorRT's default for the activation type
    beta: float | None = None  #: None: TensorRT's default for the activation type


def add(network, inputs, p: Params, weights=None, keep=None):
    layer = network.add_activation(inputs[0], base.trt_enum("ActivationType", p.activation))
    if p.alpha is not None:
        layer.alpha = float(p.alpha)
    if p.beta is not None:
        layer.beta = float(p.beta)
    return layer


def read(layer):
    return Params(activation=base.enum_name(layer.type), alpha=float(layer.alpha), beta=float(layer.beta)), {}


def _act(kind, x, alpha, beta):
    one = x.dtype.type(1)
    alpha = x.dtype.type(alpha)
    beta = x.dtype.type(beta)
    if kind == "RELU":
        return np.maximum(x, 0)
    if kind == "SIGMOID":
        return one / (one + np.exp(-x))
    if kind == "TANH":
        return np.tanh(x)
    if kind == "LEAKY_RELU":
        return np.where(x >= 0, x, alpha * x)
    if kind == "ELU":
        return np.where(x >= 0, x, alpha * (np.exp(x) - one))
    if kind == "SELU":
        return np.where(x > 0, beta * x, beta * (alpha * np.exp(x) - alpha))
    if kind == "SOFTSIGN":
        return x / (one + np.abs(x))
    if kind == "SOFTPLUS":
        return alpha * np.logaddexp(0, beta * x).astype(x.dtype)
    if kind == "CLIP":
        return np.minimum(np.maximum(x, alpha), beta)
    if kind == "HARD_SIGMOID":
        return np.maximum(0, np.minimum(one, alpha * x + beta))
    if kind == "SCALED_TANH":
        return alpha * np.tanh(beta * x)
    if kind == "THRESHOLDED_RELU":
        return np.where(x > alpha, x, 0).astype(x.dtype)
    if kind == "GELU_ERF":
        return (x.dtype.type(0.5) * x * (one + erf(x / x.dtype.type(math.sqrt(2.0))))).astype(x.dtype)
    if kind == "GELU_TANH":
        c = x.dtype.type(math.sqrt(2.0 / math.pi))
        return x.dtype.type(0.5) * x * (one + np.tanh(c * (x + x.dtype.type(0.044715) * x * x * x)))
    raise ExecutorError(f"activation {kind} not implemented")


def run(rec, p: Params, prepared, ins):
    x = ins[0]
    if not is_float(x):
        x = x.astype(np.float32)
    with np.errstate(all="ignore"):  # exp overflowing to inf in a branch np.where discards
        return _act(p.activation, x, p.alpha, p.beta)


KIND = base.register("ACTIVATION", Params, add=add, read=read, run=run, roles=ROLES)
