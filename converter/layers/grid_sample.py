"""GRID_SAMPLE: ``IGridSampleLayer`` (samples input 0 at the normalized coordinates of grid input 1).

No weights.  Snapshot only: the reference executor does not implement it (no ``run``), so a network
that needs one reports it as unsupported.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    interpolation_mode: str = "LINEAR"  #: ``InterpolationMode`` member name (TensorRT's default)
    align_corners: bool = False
    sample_mode: str = "FILL"  #: ``SampleMode`` member name (TensorRT's default)


def add(network, inputs, p: Params, weights=None, keep=None):
    layer = network.add_grid_sample(inputs[0], inputs[1])
    layer.interpolation_mode = base.trt_enum("InterpolationMode", p.interpolation_mode)
    layer.align_corners = bool(p.align_corners)
    layer.sample_mode = base.trt_enum("SampleMode", p.sample_mode)
    return layer


def read(layer):
    return Params(interpolation_mode=base.enum_name(layer.interpolation_mode),
                  align_corners=bool(layer.align_corners), sample_mode=base.enum_name(layer.sample_mode)), {}


KIND = base.register("GRID_SAMPLE", Params, add=add, read=read, roles=ROLES)
