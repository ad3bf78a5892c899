"""RESIZE: ``IResizeLayer`` (nearest, linear or cubic resampling of any of the dims).

The output size is either static — ``shape`` (output dims) or ``scales`` (per-dim factors), at most one of
them set — or input 1: float values are scales, integer values the output shape.  No weights.
Semantics: separable, one axis at a time (axes whose size and scale are unchanged are skipped); source
coordinates follow ``coordinate_transformation`` (``ALIGN_CORNERS``, ``ASYMMETRIC``, ``HALF_PIXEL``), a
single-pixel output with ``selector_for_single_pixel == UPPER`` samples coordinate 0; nearest rounds per
``nearest_rounding`` and clamps; linear clamps the coordinate; cubic uses the Keys kernel with
``cubic_coeff``, clamping taps (or, with ``exclude_outside``, dropping outside taps and renormalizing).
With scales, the output size is ``floor(size * scale)`` and the scale (not the size ratio) maps coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from converter.errors import ExecutorError

from . import base
from ._numpy import is_float

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    resize_mode: str = "NEAREST"  #: ``InterpolationMode`` member name (TensorRT's defaults below)
    coordinate_transformation: str = "ASYMMETRIC"  #: ``ResizeCoordinateTransformation`` member name
    selector_for_single_pixel: str = "FORMULA"  #: ``ResizeSelector`` member name
    nearest_rounding: str = "FLOOR"  #: ``ResizeRoundMode`` member name
    cubic_coeff: float = -0.75
    exclude_outside: bool = False
    shape: tuple[int, ...] | None = None  #: static output dims
    scales: tuple[float, ...] | None = None  #: static per-dim scale factors (when ``shape`` is None)


def add(network, inputs, p: Params, weights=None, keep=None):
    layer = network.add_resize(inputs[0])
    layer.resize_mode = base.trt_enum("InterpolationMode", p.resize_mode)
    layer.coordinate_transformation = base.trt_enum("ResizeCoordinateTransformation", p.coordinate_transformation)
    layer.selector_for_single_pixel = base.trt_enum("ResizeSelector", p.selector_for_single_pixel)
    layer.nearest_rounding = base.trt_enum("ResizeRoundMode", p.nearest_rounding)
    layer.cubic_coeff = float(p.cubic_coeff)
    layer.exclude_outside = bool(p.exclude_outside)
    if p.shape is not None:
        layer.shape = tuple(p.shape)
    elif p.scales:
        layer.scales = [float(s) for s in p.scales]
    base.set_optional_inputs(layer, inputs, 1)
    return layer


def read(layer):
    shape = scales = None
    if layer.num_inputs < 2 or layer.get_input(1) is None:
        dims = base.dims(layer.shape)
        if dims is not None and all(d >= 0 for d in dims) and len(dims) > 0:
            shape = dims
        else:
            scales = tuple(float(s) for s in layer.scales)
    return Params(resize_mode=base.enum_name(layer.resize_mode),
                  coordinate_transformation=base.enum_name(layer.coordinate_transformation),
                  selector_for_single_pixel=base.enum_name(layer.selector_for_single_pixel),
                  nearest_rounding=base.enum_name(layer.nearest_rounding), cubic_coeff=float(layer.cubic_coeff),
                  exclude_outside=bool(layer.exclude_outside), shape=shape, scales=scales), {}


def _resize_coords(out_size, in_size, scale_inv, transform, selector):
    o = np.arange(out_size, dtype=np.float64)
    if out_size == 1 and selector == "UPPER":
        return np.zeros(1)
    if transform == "ALIGN_CORNERS":
        if out_size == 1:
            return np.zeros(1)
        return o * (in_size - 1) / (out_size - 1)
    if transform == "ASYMMETRIC":
        return o * scale_inv
    if transform == "HALF_PIXEL":
        return (o + 0.5) * scale_inv - 0.5
    raise ExecutorError(f"resize coordinate transformation {transform} not implemented")


def _cubic_weights(t, a):
    # distances to taps at -1, 0, 1, 2
    def w(d):
        d = np.abs(d)
        return np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                        np.where(d < 2, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0))
    return np.stack([w(t + 1), w(t), w(1 - t), w(2 - t)], axis=-1)


def run(rec, p: Params, prepared, ins):
    x = ins[0]
    out_shape = None
    scales = None
    if len(ins) > 1 and ins[1] is not None:
        v = np.asarray(ins[1])
        if is_float(v):
            scales = [float(s) for s in v.reshape(-1)]
        else:
            out_shape = [int(s) for s in v.reshape(-1)]
    elif p.shape is not None:
        out_shape = p.shape
    else:
        scales = list(p.scales)
    if out_shape is None:
        out_shape = [int(math.floor(d * s)) for d, s in zip(x.shape, scales)]
    mode = p.resize_mode
    transform = p.coordinate_transformation
    y = x
    for axis in range(x.ndim):
        n_in, n_out = x.shape[axis], out_shape[axis]
        scale = scales[axis] if scales is not None else None
        if n_in == n_out and (scale is None or scale == 1.0):
            continue
        scale_inv = (1.0 / scale) if scale is not None else n_in / n_out
        coords = _resize_coords(n_out, n_in, scale_inv, transform, p.selector_for_single_pixel)
        if mode == "NEAREST":
            rounding = p.nearest_rounding
            if rounding == "FLOOR":
                idx = np.floor(coords)
            elif rounding == "CEIL":
                idx = np.ceil(coords)
            elif rounding == "HALF_UP":
                idx = np.floor(coords + 0.5)
            else:  # HALF_DOWN
                idx = np.ceil(coords - 0.5)
            idx = np.clip(idx, 0, n_in - 1).astype(np.int64)
            y = np.take(y, idx, axis=axis)
        elif mode == "LINEAR":
            c = np.clip(coords, 0, n_in - 1)
            i0 = np.floor(c).astype(np.int64)
            i1 = np.minimum(i0 + 1, n_in - 1)
            t = (c - i0).astype(x.dtype)
            shape = [1] * y.ndim
            shape[axis] = -1
            t = t.reshape(shape)
            y = np.take(y, i0, axis=axis) * (1 - t) + np.take(y, i1, axis=axis) * t
        elif mode == "CUBIC":
            a = p.cubic_coeff
            first = np.floor(coords)
            t = coords - first
            wts = _cubic_weights(t, a)  # (n_out, 4)
            taps = first[:, None].astype(np.int64) + np.arange(-1, 3)[None, :]
            if p.exclude_outside:
                inside = (taps >= 0) & (taps < n_in)
                wts = wts * inside
                wts = wts / wts.sum(axis=1, keepdims=True)
            taps = np.clip(taps, 0, n_in - 1)
            acc = None
            for j in range(4):
                shape = [1] * y.ndim
                shape[axis] = -1
                term = np.take(y, taps[:, j], axis=axis) * wts[:, j].astype(x.dtype).reshape(shape)
                acc = term if acc is None else acc + term
            y = acc
        else:
            raise ExecutorError(f"resize mode {mode} not implemented")
    return y.astype(x.dtype, copy=False)


KIND = base.register("RESIZE", Params, add=add, read=read, run=run, roles=ROLES)
