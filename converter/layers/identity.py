"""IDENTITY: ``IIdentityLayer`` (the input unchanged; TensorRT may still convert its type on output)."""

from __future__ import annotations

from dataclasses import dataclass

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    pass


def add(network, inputs, p: Params, weights=None, keep=None):
    return network.add_identity(inputs[0])


def read(layer):
    return Params(), {}


def run(rec, p: Params, prepared, ins):
    return ins[0]


KIND = base.register("IDENTITY", Params, add=add, read=read, run=run, roles=ROLES)
