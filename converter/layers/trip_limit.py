"""TRIP_LIMIT: ``ITripLimitLayer`` (how many times a loop iterates).

``COUNT``: the input is a 0-D INT32/INT64 tensor defined before the loop, the number of iterations.
``WHILE``: the input is a 0-D BOOL tensor computed inside the loop (typically from a recurrence);
it is evaluated at the start of every iteration and the loop stops before the first iteration in
which it is false (a ``while``, not a ``do``-``while``).  A loop has at most one limit of each kind;
with both, it stops at whichever ends it first.  The layer has no outputs.

Created through the loop's ``ILoop`` (``loop.add_trip_limit``), which :mod:`._loops` finds by
``Params.loop``; executed by the loop runner (:mod:`._regions`), not on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _regions, base
from ._loops import loop_named

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    loop: str = ""  #: name of the ``ILoop`` the layer bounds
    kind: str = "COUNT"  #: ``TripLimit`` member name: "COUNT" or "WHILE"


def add(network, inputs, p: Params, weights=None, keep=None):
    return loop_named(network, keep, p.loop).add_trip_limit(inputs[0], base.trt_enum("TripLimit", p.kind))


def read(layer):
    return Params(loop=layer.loop.name, kind=base.enum_name(layer.kind)), {}


KIND = base.register("TRIP_LIMIT", Params, add=add, read=read, run=_regions.boundary_run, roles=ROLES,
                     region="loop")
