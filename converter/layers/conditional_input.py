"""CONDITIONAL_INPUT: ``IIfConditionalInputLayer`` (a tensor entering an if-conditional's branches).

The output is the input, unchanged; the layers that depend on it form the branches, and only the
branch the condition selects is evaluated (each CONDITIONAL_OUTPUT's chosen input and what it needs).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _regions, base
from ._loops import conditional_named

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    conditional: str = ""  #: name of the ``IIfConditional``


def add(network, inputs, p: Params, weights=None, keep=None):
    return conditional_named(network, keep, p.conditional).add_input(inputs[0])


def read(layer):
    return Params(conditional=layer.conditional.name), {}


KIND = base.register("CONDITIONAL_INPUT", Params, add=add, read=read, run=_regions.boundary_run, roles=ROLES,
                     region="conditional")
