"""Image resizing with TensorFlow's coordinate conventions (align_corners, half_pixel_centers)."""

from __future__ import annotations

import numpy as np

from .. import layers
from ..context import channels_first_perm
from ..errors import ConversionError
from .helpers import cast, const_int_list, register, static_inputs


def _check_resize(node, graph):
    problems = [static_inputs(1, what="the size")(node, graph)]
    if node.attr("align_corners", False) and node.attr("half_pixel_centers", False):
        problems.append(ConversionError(node.name, node.op, "align_corners and half_pixel_centers together",
                                        "TensorFlow rejects this combination too"))
    return [p for p in problems if p]


def _resize(ctx, node, x, size, mode: str):
    """A Resize layer on the channels-first tensor; TF's coordinate mapping and nearest rounding."""
    out_h, out_w = const_int_list(ctx, size, "the size")
    dtype = np.dtype(x.dtype)
    if dtype.kind != "f":
        x = cast(ctx, x, np.float32, "to_float")
    perm = channels_first_perm(4)
    n, h, w, c = x.shape
    align, half = node.attr("align_corners", False), node.attr("half_pixel_centers", False)
    transform = "ALIGN_CORNERS" if align else "HALF_PIXEL" if half else "ASYMMETRIC"
    # TF's nearest: floor(x * scale) legacy, round-half-up with align_corners, floor((x + 0.5) * scale) for
    # half pixels (the rounding mode only matters for NEAREST)
    rounding = "HALF_UP" if mode == "NEAREST" and (align or half) else "FLOOR"
    params = layers.resize.Params(mode, transform, "FORMULA", rounding, shape=(n, c, out_h, out_w))
    layer = ctx.add(layers.resize, [ctx.tensor(x, perm)], params,
                    suffix="resize" if mode == "NEAREST" and dtype.kind != "f" else None)
    out = ctx.out(layer.get_output(0), perm)
    if mode == "NEAREST" and dtype.kind != "f":
        out = cast(ctx, out, dtype, None)
    return out


@register("ResizeBilinear", layers=("Resize",), check=_check_resize,
          restrictions="static size; align_corners / half_pixel_centers / legacy coordinates; integer images are "
                       "cast to float32 (TF's output type)")
def convert_resize_bilinear(ctx, node, inputs):
    return _resize(ctx, node, inputs[0], inputs[1], "LINEAR")


@register("ResizeNearestNeighbor", layers=("Resize",), check=_check_resize,
          restrictions="static size; align_corners / half_pixel_centers / legacy coordinates with TF's rounding")
def convert_resize_nearest(ctx, node, inputs):
    return _resize(ctx, node, inputs[0], inputs[1], "NEAREST")
