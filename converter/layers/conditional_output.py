"""CONDITIONAL_OUTPUT: ``IIfConditionalOutputLayer`` (an if-conditional's result).

Input 0 is the true branch's value, input 1 the false branch's; the output is the one the
conditional's CONDITION selects (TensorRT's "Working with Conditionals": both branches must give the
same rank, and only the selected branch is executed — so does the reference executor).
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
    return conditional_named(network, keep, p.conditional).add_output(inputs[0], inputs[1])


def read(layer):
    return Params(conditional=layer.conditional.name), {}


KIND = base.register("CONDITIONAL_OUTPUT", Params, add=add, read=read, run=_regions.boundary_run, roles=ROLES,
                     region="conditional")
