"""What QUANTIZE and DEQUANTIZE share: their parameters, how they are added and read, and the scale shapes.

Both layers take the input, a scale (input 1) and an optional zero point (input 2); the scale is a scalar
(per-tensor) or a vector along ``axis`` (per-axis).  Block quantization (``block_shape``) is snapshotted
but not executed.
"""

from __future__ import annotations

from dataclasses import dataclass

from converter.errors import UnsupportedLayerError

from . import base


@dataclass(frozen=True)
class Params(base.LayerParams):
    to_type: str  #: ``DataType`` member name of the output
    axis: int | None = None  #: the per-axis scale's axis; None: TensorRT's default (-1)
    block_shape: tuple[int, ...] | None = None  #: None: per-tensor or per-axis (only newer TensorRT has it)


def add(network, inputs, p: Params, dequantize: bool):
    make = network.add_dequantize if dequantize else network.add_quantize
    layer = make(inputs[0], inputs[1], base.trt_dtype(p.to_type))
    if p.axis is not None:
        layer.axis = int(p.axis)
    if p.block_shape is not None:
        layer.block_shape = tuple(p.block_shape)
    base.set_optional_inputs(layer, inputs, 2)
    return layer


def read_fields(layer) -> dict:
    try:  # raises when no block shape is set (per-tensor / per-axis quantization)
        block = layer.block_shape
    except (AttributeError, RuntimeError):
        block = None
    block = base.dims(block) if block is not None else None
    return dict(axis=int(layer.axis), to_type=base.enum_name(layer.to_type), block_shape=block or None)


def scale_and_zero(rec, p: Params, x, scale, zero):
    """The scale (and zero point) shaped to broadcast against ``x``."""
    if p.block_shape:
        raise UnsupportedLayerError(rec["name"], rec["type"], "block quantization")
    axis = p.axis
    if axis < 0:
        axis += x.ndim
    shape = [1] * x.ndim
    if scale.size > 1:
        shape[axis] = -1
    scale = scale.reshape(shape)
    zero = None if zero is None else zero.reshape(shape)
    return scale, zero
