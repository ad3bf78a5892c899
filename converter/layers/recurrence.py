"""RECURRENCE: ``IRecurrenceLayer`` (a loop-carried value).

Input 0 is the initial value (defined before the loop); input 1 the value for the next iteration,
computed in the loop body.  In iteration 0 the output is the initial value, in iteration ``i > 0``
the value input 1 had in iteration ``i - 1``.  Input 1 is the only back edge TensorRT allows: it is
produced *after* the recurrence, so the kind declares it a back edge (dependency orders skip it and
:meth:`Snapshot.to_network` sets it once every layer exists).

``add`` takes ``[init]`` or ``[init, next]``.  A converter usually cannot have ``next`` yet (the
body reads the recurrence's output to compute it): it adds the recurrence with ``[init]`` (or
``[init, None]``), builds the body, then calls ``layer.set_input(1, next_tensor)`` on the layer
:meth:`ConversionContext.add` returned.  A ``LAST_VALUE`` loop output of the recurrence's output
is the recurrence's value after the last iteration (see :mod:`.loop_output`).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _regions, base
from ._loops import loop_named

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    loop: str = ""  #: name of the ``ILoop`` the value is carried by


def add(network, inputs, p: Params, weights=None, keep=None):
    layer = loop_named(network, keep, p.loop).add_recurrence(inputs[0])
    base.set_optional_inputs(layer, inputs, 1)
    return layer


def read(layer):
    return Params(loop=layer.loop.name), {}


KIND = base.register("RECURRENCE", Params, add=add, read=read, run=_regions.boundary_run, roles=ROLES,
                     back_edges=(1,), region="loop")
