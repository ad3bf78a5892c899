"""IR rewrites that make the TensorRT network small before it is built.

* Per-channel affine chains after a convolution (BiasAdd, Mul/Add/Sub/RealDiv
  by per-channel constants, inference FusedBatchNorm — what Keras freezes
  BatchNormalization into) fold into the convolution's weights and bias.
* A zero ``Pad`` feeding a VALID convolution becomes the convolution's own
  explicit padding.

Folding only happens where the intermediate tensors have no other consumer
and are not graph outputs, so no value a user asked for disappears.  Every
bypassed TF tensor is recorded in ``graph.aliases`` so bisecting still maps it
to the TensorRT tensor that holds its value.
"""

from __future__ import annotations

import logging

import numpy as np

from .freeze import _src
from .graph import Graph, Node

log = logging.getLogger(__name__)

CONV_OPS = {"Conv2D", "DepthwiseConv2dNative"}


def fuse(graph: Graph) -> None:
    graph.aliases = getattr(graph, "aliases", {})
    _fold_pad_into_conv(graph)
    _fold_affine_into_conv(graph)
    graph.refresh()


def _channel_vector(value: np.ndarray | None, channels: int) -> np.ndarray | None:
    """``value`` as a per-output-channel vector (NHWC broadcasting), or None if it isn't one."""
    if value is None or value.dtype.kind != "f":
        return None
    if value.ndim == 0:
        return np.full(channels, value, dtype=np.float64)
    if value.shape[-1] not in (1, channels) or any(d != 1 for d in value.shape[:-1]) or value.ndim > 4:
        return None
    return np.broadcast_to(value.reshape(-1).astype(np.float64), (channels,)).copy()


def _conv_out_channels(graph: Graph, conv: Node) -> int | None:
    w = graph.const(conv.inputs[1])
    if w is None:
        return None
    if conv.op == "Conv2D":
        return int(w.shape[3])
    return int(w.shape[2] * w.shape[3])


def _fold_affine_into_conv(graph: Graph) -> None:
    new_nodes = []
    removed: set[str] = set()
    for conv in list(graph.nodes):
        if conv.op not in CONV_OPS or conv.attr("data_format", "NHWC") != "NHWC" or conv.name in removed:
            continue
        channels = _conv_out_channels(graph, conv)
        if channels is None:
            continue
        w = graph.const(conv.inputs[1])
        bias = np.zeros(channels, np.float64)
        if "_bias" in conv.attrs:
            bias = conv.attrs["_bias"].astype(np.float64)
        scale = np.ones(channels, np.float64)
        current = conv
        chain = []
        while True:
            nxt = graph.single_consumer(current)
            ref = f"{current.name}:0"
            if nxt is None or nxt.inputs.count(ref) != 1:
                break
            if nxt.inputs[0] != ref and nxt.op not in ("AddV2", "Add", "Mul"):
                break
            other_idx = 1 if nxt.inputs[0] == ref else 0
            if nxt.op == "BiasAdd" and nxt.attr("data_format", "NHWC") != "NHWC":
                break
            if nxt.op in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"):
                if nxt.attr("is_training", False) or nxt.attr("data_format", "NHWC") != "NHWC":
                    break
                consts = [graph.const(r) for r in nxt.inputs[1:5]]
                if any(c is None for c in consts):
                    break
                # only output 0 may be used
                if any(ref != f"{nxt.name}:0" for u in graph.consumers.get(nxt.name, []) for ref in u.inputs
                       if _src(ref) == nxt.name):
                    break
                gamma, beta, mean, var = (c.astype(np.float64) for c in consts)
                s = gamma / np.sqrt(var + nxt.attr("epsilon", 1e-3))
                scale *= s
                bias = (bias - mean) * s + beta
                chain.append(nxt)
                current = nxt
                continue
            if nxt.op not in ("BiasAdd", "AddV2", "Add", "Sub", "Mul", "RealDiv") or len(nxt.inputs) != 2:
                break
            if graph.shape(nxt.inputs[other_idx]) is None and graph.const(nxt.inputs[other_idx]) is None:
                break
            vec = _channel_vector(graph.const(nxt.inputs[other_idx]), channels)
            if vec is None:
                break
            out_shape = nxt.output_shapes[0] if nxt.output_shapes else None
            in_shape = current.output_shapes[0] if current.output_shapes else None
            if out_shape is None or in_shape is None or tuple(out_shape) != tuple(in_shape):
                break  # the constant broadcasts the tensor up: not a pure per-channel op
            if nxt.op in ("BiasAdd", "AddV2", "Add"):
                bias = bias + vec
            elif nxt.op == "Sub":
                bias = bias - vec
            elif nxt.op == "Mul":
                scale *= vec
                bias = bias * vec
            elif nxt.op == "RealDiv":
                if np.any(vec == 0):
                    break
                scale /= vec
                bias = bias / vec
            chain.append(nxt)
            current = nxt
        if not chain:
            continue
        # fold: W[..., out] *= scale (Conv2D: HWIO; depthwise: HWIM, out = i*M + m)
        # the scale is computed in float64, rounded once, then applied to the float32 weights
        # (one rounding per weight; a float64 copy of every kernel made parsing twice as slow)
        scale32 = scale.astype(w.dtype)
        if conv.op == "Conv2D":
            w = w * scale32.reshape(1, 1, 1, -1)
        else:
            w = w * scale32.reshape(1, 1, w.shape[2], w.shape[3])
        folded_name = conv.name + "/folded_filter"
        const = Node(folded_name, "Const", [], {"dtype": str(w.dtype), "value": w},
                     [tuple(w.shape)])
        new_nodes.append((conv, const))
        conv.inputs = [conv.inputs[0], f"{folded_name}:0"]
        conv.attrs["_bias"] = bias.astype(np.float32)
        conv.attrs["_fused"] = [n.name for n in chain]
        last = chain[-1]
        # only the chain's last value exists in the network (as the convolution's output);
        # the convolution's own pre-bias value and the steps in between have no counterpart
        graph.aliases[f"{conv.name}:0"] = None
        for n in chain:
            graph.aliases[f"{n.name}:0"] = None
            removed.add(n.name)
        graph.aliases[f"{last.name}:0"] = f"{conv.name}:0"
        # consumers of the chain end now read the conv
        for user in graph.consumers.get(last.name, []):
            user.inputs = [f"{conv.name}:0" if r == f"{last.name}:0" else r for r in user.inputs]
        # no refresh here: later chains start at other convolutions and never walk the rewired nodes
    graph.nodes = [n for n in graph.nodes if n.name not in removed]
    graph.refresh()
    for conv, const in new_nodes:
        idx = graph.nodes.index(conv)
        graph.nodes.insert(idx, const)
    _drop_dead_consts(graph)


def _fold_pad_into_conv(graph: Graph) -> None:
    removed = set()
    for pad in list(graph.nodes):
        if pad.op not in ("Pad", "PadV2") or pad.name in removed:
            continue
        paddings = graph.const(pad.inputs[1])
        if paddings is None or paddings.shape != (4, 2):
            continue
        if pad.op == "PadV2":
            cv = graph.const(pad.inputs[2])
            if cv is None or np.any(cv != 0):
                continue
        user = graph.single_consumer(pad)
        if user is None or user.op not in CONV_OPS or user.inputs[0] != f"{pad.name}:0":
            continue
        if user.attr("padding") != "VALID" or user.attr("data_format", "NHWC") != "NHWC":
            continue
        if np.any(paddings[0] != 0) or np.any(paddings[3] != 0):
            continue
        user.attrs["padding"] = "EXPLICIT"
        user.attrs["explicit_paddings"] = [int(x) for x in np.asarray(paddings).reshape(-1)]
        user.inputs = [pad.inputs[0]] + user.inputs[1:]
        graph.aliases[f"{pad.name}:0"] = None  # a padded copy no longer exists in the network
        removed.add(pad.name)
    if removed:
        graph.nodes = [n for n in graph.nodes if n.name not in removed]
        graph.refresh()
        _drop_dead_consts(graph)


def _drop_dead_consts(graph: Graph) -> None:
    used = {_src(r) for n in graph.nodes for r in n.inputs} | set(graph.outputs)
    graph.nodes = [n for n in graph.nodes if n.op != "Const" or n.name in used]
    graph.refresh()
