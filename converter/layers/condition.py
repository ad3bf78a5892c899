"""CONDITION: ``IConditionLayer`` (the 0-D BOOL that picks an if-conditional's branch).

Created through the conditional (``IIfConditional.set_condition``), which :mod:`._loops` finds by
``Params.conditional``; it has no outputs and runs with its conditional (:mod:`._regions`).
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
    return conditional_named(network, keep, p.conditional).set_condition(inputs[0])


def read(layer):
    return Params(conditional=layer.conditional.name), {}


KIND = base.register("CONDITION", Params, add=add, read=read, run=_regions.boundary_run, roles=ROLES,
                     region="conditional")
