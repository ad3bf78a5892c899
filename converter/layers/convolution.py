"""CONVOLUTION: ``IConvolutionLayer`` (N-d, grouped, dilated; kernel as weights or as input 1).

Weights: ``kernel`` with its logical shape ``(K, C/groups, *kernel_size)`` and an optional ``bias`` ``(K,)``.
Semantics: im2col views and one batched matmul, with fast paths for 1x1 and depthwise convolutions; the
output size follows TensorRT's ``PaddingMode`` formulas (:func:`~converter.layers._numpy.spatial_padding`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converter.errors import ExecutorError

from . import base
from ._numpy import gemm, is_float, pad_spatial, spatial_padding, windows

ROLES = ("kernel", "bias")


@dataclass(frozen=True)
class Params(base.LayerParams):
    num_output_maps: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...] | None = None  #: None: TensorRT's default (1 per spatial dim)
    pre_padding: tuple[int, ...] | None = None
    post_padding: tuple[int, ...] | None = None
    padding_mode: str = "EXPLICIT_ROUND_DOWN"
    dilation: tuple[int, ...] | None = None
    num_groups: int = 1


def set_window(layer, p) -> None:
    """The attributes convolution and deconvolution share."""
    if p.stride is not None:
        layer.stride_nd = tuple(p.stride)
    if p.dilation is not None:
        layer.dilation_nd = tuple(p.dilation)
    layer.num_groups = int(p.num_groups)
    if p.pre_padding is not None:
        layer.pre_padding = tuple(p.pre_padding)
    if p.post_padding is not None:
        layer.post_padding = tuple(p.post_padding)
    layer.padding_mode = base.trt_enum("PaddingMode", p.padding_mode)


def read_window(layer) -> dict:
    return dict(num_output_maps=int(layer.num_output_maps), kernel_size=base.dims(layer.kernel_size_nd),
                stride=base.dims(layer.stride_nd), pre_padding=base.dims(layer.pre_padding),
                post_padding=base.dims(layer.post_padding), padding_mode=base.enum_name(layer.padding_mode),
                dilation=base.dims(layer.dilation_nd), num_groups=int(layer.num_groups))


def add_windowed(network_add, inputs, p, weights, keep):
    """``network.add_convolution_nd`` / ``add_deconvolution_nd`` with kernel, bias and window attributes."""
    weights = weights or {}
    keep = keep if keep is not None else []
    dtype = base.weights_dtype_name(weights)
    layer = network_add(inputs[0], int(p.num_output_maps), tuple(p.kernel_size),
                        base.as_trt_weights(weights.get("kernel"), keep, dtype),
                        base.as_trt_weights(weights.get("bias"), keep, dtype))
    set_window(layer, p)
    base.set_optional_inputs(layer, inputs, 1)
    return layer


def read_windowed(layer, params_cls, kernel_shape):
    """``(params, weights)`` of a (de)convolution; ``kernel_shape(p, size)`` gives the kernel's logical shape."""
    p = params_cls(**read_window(layer))
    weights = {}
    kernel = base.weights_array(layer.kernel, layer.name)
    if kernel is not None:
        weights["kernel"] = kernel.reshape(kernel_shape(p, kernel.size))
    bias = base.weights_array(layer.bias, layer.name)
    if bias is not None:
        weights["bias"] = bias.reshape(-1)
    return p, weights


def add(network, inputs, p: Params, weights=None, keep=None):
    return add_windowed(network.add_convolution_nd, inputs, p, weights, keep)


def _kernel_shape(p: Params, size: int) -> tuple[int, ...]:
    """``(K, C/groups, *kernel_size)``."""
    taps = int(np.prod(p.kernel_size))
    return (p.num_output_maps, size // (p.num_output_maps * taps), *p.kernel_size)


def read(layer):
    return read_windowed(layer, Params, _kernel_shape)


def prepare(p: Params, w: dict):
    """The kernel reshaped once for the matmuls (per group, and per tap for depthwise)."""
    kernel = w.get("kernel")
    prepared = {"bias": w.get("bias")}
    if kernel is None:
        prepared["kernel"] = None
        return prepared
    k, g = p.num_output_maps, p.num_groups
    cpg = kernel.shape[1]
    prepared["kernel"] = kernel
    prepared["w_mat"] = np.ascontiguousarray(kernel.reshape(g, k // g, -1))
    if cpg == 1 and g > 1:  # depthwise (possibly with a channel multiplier)
        taps = int(np.prod(kernel.shape[2:]))
        prepared["w_dw"] = np.ascontiguousarray(kernel.reshape(k, taps).T)  # (taps, K)
    if prepared["bias"] is not None:
        prepared["bias_b"] = prepared["bias"].reshape((1, k) + (1,) * len(p.kernel_size))
    return prepared


def _conv_core(x, p: Params, kernel, w_mat, w_dw, bias_b):
    nd = len(p.kernel_size)
    ks, stride, dil = p.kernel_size, p.stride, p.dilation
    g, k = p.num_groups, p.num_output_maps
    n, c = x.shape[0], x.shape[1]
    spatial = x.shape[2:]
    pads = spatial_padding(spatial, ks, stride, dil, p.pre_padding, p.post_padding, p.padding_mode)
    out = [q[3] for q in pads]
    xp = pad_spatial(x, [(b, a + e) for b, a, e, _ in pads])
    cpg = c // g
    ones = all(v == 1 for v in ks)
    if ones and g == 1:
        if any(s != 1 for s in stride):
            xp = xp[(slice(None), slice(None)) + tuple(slice(0, (out[i] - 1) * stride[i] + 1, stride[i])
                                                       for i in range(nd))]
        elif tuple(xp.shape[2:]) != tuple(out):
            xp = xp[(slice(None), slice(None)) + tuple(slice(0, o) for o in out)]
        cols = xp.reshape(n, c, -1)
        if n == 1:
            y = gemm(w_mat[0], cols[0])[None]
        else:
            y = np.matmul(w_mat[0], cols)
    elif w_dw is not None and cpg == 1:
        mult = k // c
        if mult > 1:
            xp = np.repeat(xp, mult, axis=1)
        y = None
        for t, tap in enumerate(np.ndindex(*ks)):
            idx = (slice(None), slice(None)) + tuple(
                slice(tap[i] * dil[i], tap[i] * dil[i] + (out[i] - 1) * stride[i] + 1, stride[i]) for i in range(nd))
            wt = w_dw[t].reshape((1, k) + (1,) * nd)
            if y is None:
                y = xp[idx] * wt
            else:
                y += xp[idx] * wt
        y = y.reshape(n, k, -1)
    else:
        win = windows(xp, ks, stride, dil, out)  # (N, C, *out, *k)
        perm = (0, 1) + tuple(range(2 + nd, 2 + 2 * nd)) + tuple(range(2, 2 + nd))
        cols = np.ascontiguousarray(win.transpose(perm)).reshape(n, g, cpg * int(np.prod(ks)), -1)
        if n == 1 and g == 1:
            y = gemm(w_mat[0], cols[0, 0])
        else:
            y = np.matmul(w_mat, cols)  # (N, g, K/g, P): one batched matmul over groups
    y = y.reshape((n, k) + tuple(out))
    if bias_b is not None:
        y += bias_b
    return y


def run(rec, p: Params, prep, ins):
    x = ins[0]
    if prep["kernel"] is None or (len(ins) > 1 and ins[1] is not None):
        kernel = ins[1]
        bias = ins[2] if len(ins) > 2 and ins[2] is not None else prep["bias"]
        d = prepare(p, {"kernel": kernel, "bias": bias})
    else:
        d = prep
        if len(ins) > 2 and ins[2] is not None:
            d = dict(prep, bias_b=ins[2].reshape((1, -1) + (1,) * len(p.kernel_size)))
    if not is_float(x):
        raise ExecutorError(f"layer {rec['name']!r}: convolution of {x.dtype} input")
    return _conv_core(x, p, d["kernel"], d["w_mat"], d.get("w_dw"), d.get("bias_b"))


KIND = base.register("CONVOLUTION", Params, add=add, read=read, run=run, prepare=prepare, roles=ROLES)
