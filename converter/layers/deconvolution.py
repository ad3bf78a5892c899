"""DECONVOLUTION: ``IDeconvolutionLayer`` (N-d transposed convolution, grouped, dilated; kernel as weights
or as input 1).

Weights: ``kernel`` with its logical shape ``(C, K/groups, *kernel_size)`` (input channels first, unlike a
convolution kernel) and an optional ``bias`` ``(K,)``.
Semantics: one batched matmul per group gives every tap's contribution (``W_g^T @ x_g``), which is
scattered (strided, dilated) into the full output and then cropped by the padding; ``SAME_*`` padding
crops the full output down to ``input * stride``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base
from ._numpy import pad_spatial
from . import convolution
from .convolution import add_windowed, read_windowed

ROLES = ("kernel", "bias")


@dataclass(frozen=True)
class Params(convolution.Params):
    """The same attributes as a convolution's (a deconvolution is its transpose)."""


def add(network, inputs, p: Params, weights=None, keep=None):
    return add_windowed(network.add_deconvolution_nd, inputs, p, weights, keep)


def _kernel_shape(p: Params, size: int) -> tuple[int, ...]:
    """``(C, K/groups, *kernel_size)``."""
    taps = int(np.prod(p.kernel_size))
    per = p.num_output_maps // p.num_groups
    return (size // (per * taps), per, *p.kernel_size)


def read(layer):
    return read_windowed(layer, Params, _kernel_shape)


def run(rec, p: Params, w, ins):
    x = ins[0]
    kernel = ins[1] if len(ins) > 1 and ins[1] is not None else w["kernel"]
    bias = ins[2] if len(ins) > 2 and ins[2] is not None else w.get("bias")
    nd = len(p.kernel_size)
    ks, stride, dil = p.kernel_size, p.stride, p.dilation
    g, k = p.num_groups, p.num_output_maps
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    cpg, kpg = c // g, k // g
    kernel = kernel.reshape((c, kpg) + tuple(ks))
    taps = int(np.prod(ks))
    # cols[n, g, kpg*taps, P] = W_g^T @ x_g
    wt = kernel.reshape(g, cpg, kpg * taps).transpose(0, 2, 1)
    cols = np.matmul(wt, x.reshape(n, g, cpg, -1))
    cols = cols.reshape((n, k) + tuple(ks) + tuple(spatial))
    full = [(spatial[i] - 1) * stride[i] + 1 + dil[i] * (ks[i] - 1) for i in range(nd)]
    y = np.zeros((n, k) + tuple(full), dtype=x.dtype)
    for tap in np.ndindex(*ks):
        idx = (slice(None), slice(None)) + tuple(
            slice(tap[i] * dil[i], tap[i] * dil[i] + (spatial[i] - 1) * stride[i] + 1, stride[i]) for i in range(nd))
        y[idx] += cols[(slice(None), slice(None)) + tap]
    crops = []
    for i in range(nd):
        if p.padding_mode in ("SAME_UPPER", "SAME_LOWER"):
            total = full[i] - spatial[i] * stride[i]
            small = total // 2
            b = small if p.padding_mode == "SAME_UPPER" else total - small
            crops.append((b, total - b))
        else:
            crops.append((p.pre_padding[i], p.post_padding[i]))
    y = pad_spatial(y, [(-b, -a) for b, a in crops])
    if bias is not None:
        y += np.asarray(bias).reshape((1, k) + (1,) * nd)
    return y


KIND = base.register("DECONVOLUTION", Params, add=add, read=read, run=run, roles=ROLES)
