"""IR rewrites that make the TensorRT network small before it is built.

* Per-channel affine chains after a convolution (BiasAdd, Mul/Add/Sub/RealDiv
  by per-channel constants, inference FusedBatchNorm — what Keras freezes
  BatchNormalization into) fold into the convolution's weights and bias.
* A zero ``Pad`` feeding a VALID convolution becomes the convolution's own
  explicit padding.

A chain runs through values that have no other consumer and are not graph
outputs, so no value a user asked for disappears: a value read elsewhere, or
asked for, ends the chain.  The end of a chain that is a graph output keeps
its name as an ``Identity`` of the convolution.  Chains fold in NHWC and NCHW
(every step in the convolution's data format).  Every bypassed TF tensor is
recorded in ``graph.aliases`` so bisecting still maps it to the TensorRT
tensor that holds its value.
"""

from __future__ import annotations

import logging

import numpy as np

from .freeze import _src
from .graph import Graph, Node

log = logging.getLogger(__name__)

CONV_OPS = {"Conv2D", "DepthwiseConv2dNative"}
BATCH_NORM_OPS = {"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"}
#: binary ops with a per-channel constant that fold into the convolution (the tensor first unless commutative)
AFFINE_OPS = {"BiasAdd", "AddV2", "Add", "Sub", "Mul", "RealDiv"}
COMMUTATIVE_OPS = {"AddV2", "Add", "Mul"}
#: the data formats whose chains fold (the format of the convolution; every step must share it)
FOLD_FORMATS = ("NHWC", "NCHW")


def fuse(graph: Graph) -> None:
    graph.aliases = getattr(graph, "aliases", {})
    _fold_pad_into_conv(graph)
    _fold_affine_into_conv(graph)
    graph.refresh()


def _channel_vector(value: np.ndarray | None, channels: int, data_format: str = "NHWC") -> np.ndarray | None:
    """``value`` as a per-output-channel vector, or None if it isn't one.

    ``value`` broadcasts (numpy rules, aligned from the right) against a 4-D
    tensor in ``data_format``: the channel axis is the last one for NHWC and
    the third from the right for NCHW (shape ``[C, 1, 1]`` or ``[1, C, 1, 1]``).
    """
    if value is None or value.dtype.kind != "f" or value.ndim > 4:
        return None
    if value.size == 1:
        return np.full(channels, value.reshape(-1)[0], dtype=np.float64)
    axis = value.ndim - 1 if data_format == "NHWC" else value.ndim - 3
    if axis < 0 or value.shape[axis] != channels or any(d != 1 for i, d in enumerate(value.shape) if i != axis):
        return None
    return value.reshape(-1).astype(np.float64)


def _conv_out_channels(graph: Graph, conv: Node) -> int | None:
    w = graph.const(conv.inputs[1])
    if w is None or w.ndim != 4:
        return None
    if conv.op == "Conv2D":
        return int(w.shape[3])
    return int(w.shape[2] * w.shape[3])


def _only_output_0_used(graph: Graph, node: Node) -> bool:
    return all(r == f"{node.name}:0" for u in graph.consumers.get(node.name, []) for r in u.inputs
               if _src(r) == node.name)


def _fold_affine_into_conv(graph: Graph) -> None:
    new_nodes = []
    removed: set[str] = set()
    #: chain ends that are graph outputs: an Identity under their name keeps the output (issue 7)
    stand_ins: dict[str, Node] = {}
    for conv in list(graph.nodes):
        if conv.op not in CONV_OPS or conv.name in removed:
            continue
        fmt = conv.attr("data_format", "NHWC")
        if fmt not in FOLD_FORMATS:
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
            # an intermediate value with another consumer, or one the user asked for, must stay: the walk
            # ends at it (it becomes the chain's end, whose value the convolution then computes)
            nxt = graph.single_consumer(current)
            ref = f"{current.name}:0"
            if nxt is None or nxt.inputs.count(ref) != 1:
                break
            if nxt.inputs[0] != ref and nxt.op not in COMMUTATIVE_OPS:
                break
            other_idx = 1 if nxt.inputs[0] == ref else 0
            if nxt.op in BATCH_NORM_OPS:
                if nxt.attr("is_training", False) or nxt.attr("data_format", "NHWC") != fmt:
                    break
                consts = [graph.const(r) for r in nxt.inputs[1:5]]
                if any(c is None or c.shape != (channels,) for c in consts):
                    break
                if not _only_output_0_used(graph, nxt):
                    break
                gamma, beta, mean, var = (c.astype(np.float64) for c in consts)
                s = gamma / np.sqrt(var + nxt.attr("epsilon", 1e-3))
                scale *= s
                bias = (bias - mean) * s + beta
                chain.append(nxt)
                current = nxt
                continue
            if nxt.op not in AFFINE_OPS or len(nxt.inputs) != 2:
                break
            const = graph.const(nxt.inputs[other_idx])
            if nxt.op == "BiasAdd":
                # the bias runs along the channel axis of the BiasAdd's own data format
                if nxt.attr("data_format", "NHWC") != fmt or const is None or const.shape != (channels,):
                    break
                vec = const.astype(np.float64)
            else:
                vec = _channel_vector(const, channels, fmt)
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
        # fold: W[..., out] *= scale (Conv2D: HWIO; depthwise: HWIM, out = i*M + m; whatever the data format)
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
        if last.name in graph.outputs:
            # the user asked for this value by name: keep the name, as a pass-through of the convolution
            stand_ins[last.name] = Node(last.name, "Identity", [f"{conv.name}:0"], {"T": conv.attr("T", "float32")},
                                        list(last.output_shapes[:1]))
        # consumers of the chain end now read the conv
        for user in graph.consumers.get(last.name, []):
            user.inputs = [f"{conv.name}:0" if r == f"{last.name}:0" else r for r in user.inputs]
        # no refresh here: later chains start at other convolutions and never walk the rewired nodes
    graph.nodes = [stand_ins.get(n.name, n) for n in graph.nodes if n.name not in removed or n.name in stand_ins]
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
