"""SLICE: ``ISliceLayer`` (a strided window of the input, sampled per ``SampleMode``).

Inputs 1, 2, 3 and 5, when present, override ``start``, ``shape``, ``stride`` and ``axes``; input 4 is the
fill value of ``FILL`` mode (0 when absent).  With ``axes`` the start/shape/stride apply to those axes only
and the other axes are taken whole.  Out-of-range coordinates follow the sample mode
(:func:`~converter.layers._numpy.sample_indices`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base
from ._numpy import dynamic_dims, sample_indices

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    start: tuple[int, ...] | None = None  #: None: given by input 1
    shape: tuple[int, ...] | None = None  #: None: given by input 2
    stride: tuple[int, ...] | None = None  #: None: given by input 3
    mode: str = "STRICT_BOUNDS"  #: ``SampleMode`` member name (TensorRT's default)
    axes: tuple[int, ...] | None = None  #: None: all axes (only newer TensorRT has it)


def add(network, inputs, p: Params, weights=None, keep=None):
    # parameters given by inputs 1-3 are placeholders of the same rank until those inputs are set
    zeros = tuple(0 for _ in (p.start or p.shape or p.stride or []))
    layer = network.add_slice(inputs[0], tuple(p.start or zeros), tuple(p.shape or zeros), tuple(p.stride or zeros))
    layer.mode = base.trt_enum("SampleMode", p.mode)
    if p.axes is not None:
        layer.axes = tuple(p.axes)
    base.set_optional_inputs(layer, inputs, 1)
    return layer


def read(layer):
    axes = getattr(layer, "axes", None)

    def static(attr: str, index: int):
        # a parameter given by an input tensor has no static value (TensorRT warns if asked for one)
        if layer.num_inputs > index and layer.get_input(index) is not None:
            return None
        return base.dims(getattr(layer, attr))

    return Params(start=static("start", 1), shape=static("shape", 2), stride=static("stride", 3),
                  mode=base.enum_name(layer.mode), axes=base.dims(axes) if axes is not None else None), {}


def run(rec, p: Params, prepared, ins):
    x = ins[0]
    start = dynamic_dims(ins, 1) or p.start
    size = dynamic_dims(ins, 2) or p.shape
    stride = dynamic_dims(ins, 3) or p.stride
    axes = dynamic_dims(ins, 5) or p.axes
    mode = p.mode
    fill = None
    if len(ins) > 4 and ins[4] is not None:
        fill = np.asarray(ins[4]).reshape(-1)[0]
    full_start, full_size, full_stride = [0] * x.ndim, list(x.shape), [1] * x.ndim
    if axes is not None:
        for j, a in enumerate(axes):
            a = a + x.ndim if a < 0 else a
            full_start[a], full_size[a], full_stride[a] = start[j], size[j], stride[j]
    else:
        full_start, full_size, full_stride = list(start), list(size), list(stride)
    index, masks = [], []
    for d in range(x.ndim):
        coords = full_start[d] + np.arange(full_size[d], dtype=np.int64) * full_stride[d]
        idx, valid = sample_indices(coords, x.shape[d], mode)
        index.append(idx)
        masks.append(valid)
    y = x[np.ix_(*index)] if x.ndim else x
    if any(m is not None for m in masks):
        valid = None
        for d, m in enumerate(masks):
            if m is None:
                continue
            shape = [1] * x.ndim
            shape[d] = -1
            m = m.reshape(shape)
            valid = m if valid is None else (valid & m)
        fill_value = x.dtype.type(0) if fill is None else fill
        y = np.where(valid, y, np.asarray(fill_value).astype(x.dtype))
    return y


KIND = base.register("SLICE", Params, add=add, read=read, run=run, roles=ROLES)
