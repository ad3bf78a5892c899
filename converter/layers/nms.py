"""NMS: ``INMSLayer`` (non-max suppression; inputs boxes, scores, max output boxes per class, then the
optional IoU and score thresholds).

Snapshot only: the reference executor does not run it (it reports the layer as unsupported).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    bounding_box_format: str | None = None  #: ``BoundingBoxFormat`` member name; None: TensorRT's default
    topk_box_limit: int | None = None  #: None: TensorRT's default
    indices_type: str | None = None  #: None: TensorRT's default (INT32); only newer TensorRT has it


def add(network, inputs, p: Params, weights=None, keep=None):
    layer = network.add_nms(inputs[0], inputs[1], inputs[2])
    if p.bounding_box_format is not None:
        layer.bounding_box_format = base.trt_enum("BoundingBoxFormat", p.bounding_box_format)
    if p.topk_box_limit is not None:
        layer.topk_box_limit = int(p.topk_box_limit)
    if p.indices_type is not None:
        layer.indices_type = base.trt_dtype(p.indices_type)
    base.set_optional_inputs(layer, inputs, 3)
    return layer


def read(layer):
    indices_type = base.enum_name(layer.indices_type) if hasattr(layer, "indices_type") else None
    return Params(bounding_box_format=base.enum_name(layer.bounding_box_format),
                  topk_box_limit=int(layer.topk_box_limit), indices_type=indices_type), {}


KIND = base.register("NMS", Params, add=add, read=read, roles=ROLES)
