"""Step 3: build the TensorRT network from the IR through TensorRT's Python API.

Nodes are visited in topological order; each runs its registered converter.
After every node the TensorRT shape of each output (mapped back to TF axis
order) is compared with TensorFlow's static shape, so a mistake is reported
at the TF node that made it, not at engine build time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from . import layers
from . import trt as trtshim
from .context import ConversionContext, Value
from .errors import ConversionError, ConversionErrors, InternalError
from .graph import Graph
from .structural import CONTROL_ONLY_OPS, PASS_THROUGH_OPS, STRUCTURAL_OPS

log = logging.getLogger(__name__)


@dataclass
class ConvertedNetwork:
    """A built ``INetworkDefinition`` with the objects that must outlive it."""

    builder: object
    network: object
    graph: Graph | None = None
    tensor_map: dict = field(default_factory=dict)
    keep_alive: list = field(default_factory=list)
    #: optimization profiles (JSON form, :mod:`converter.profiles`); [] for a static network
    profiles: list = field(default_factory=list)
    _snapshot: object = None

    @property
    def layer_count(self) -> int:
        return self.network.num_layers

    @property
    def snapshot(self):
        """The network read back as a :class:`~converter.snapshot.Snapshot` (computed once)."""
        if self._snapshot is None:
            from .snapshot import Snapshot

            snap = Snapshot.from_network(self.network)
            if self.profiles:  # only then: a static network's snapshot is what it always was
                snap.topology["profiles"] = [dict(p) for p in self.profiles]
            snap.meta["tensor_map"] = {k: [v[0], list(v[1])] for k, v in self.tensor_map.items()}
            if self.graph is not None:
                snap.meta["inputs"] = [s.to_dict() for s in self.graph.inputs]
                snap.meta["outputs"] = list(self.graph.outputs)
            self._snapshot = snap
        return self._snapshot


def construct(graph: Graph, builder=None, strongly_typed: bool = False,
              quantization: str = "emulate") -> ConvertedNetwork:
    """Build the network for ``graph`` (already support-checked by :func:`converter.graph.parse`).

    ``quantization``: how fake-quant / quantize-and-dequantize ops convert: "emulate" (TensorFlow's float32
    formula, exact) or "int8" (TensorRT int8 QUANTIZE/DEQUANTIZE layers, weights as int8 constants; see
    :mod:`converter.ops.quant` and docs/converter.md, "int8 from quantization-aware models").
    """
    from . import ops  # noqa: F401 - registers converters
    from .context import QUANTIZATION_MODES
    from .errors import ModelError
    from .freeze import QUANTIZED_WEIGHT_OPS
    from .ops.quant import fold_constant_quantization

    if quantization not in QUANTIZATION_MODES:
        raise ConversionError(None, None, f"unknown quantization mode {quantization!r}",
                              f"use one of {', '.join(QUANTIZATION_MODES)}")
    if quantization == "emulate":  # quantized weights fold as they did before freeze kept them (same snapshot)
        graph = fold_constant_quantization(graph)
    elif not any(n.op in QUANTIZED_WEIGHT_OPS for n in graph.nodes):
        # an "int8" engine of a model with no quantization ranges would silently be the fp32 network
        raise ModelError("precision int8 needs a quantization-aware model (FakeQuant* or QuantizeAndDequantize* "
                         "ops give the int8 ranges); this model has none",
                         hint="quantize it with tensorflow-model-optimization (quantize_model + a few training "
                              "steps), or build with precision fp16 or bf16")
    builder, network = trtshim.create_network(builder, strongly_typed=strongly_typed)
    ctx = ConversionContext(network, graph, quantization=quantization)
    trt = ctx.trt
    for spec in graph.inputs:
        tensor = network.add_input(spec.name, trtshim.trt_dtype(np.dtype(spec.dtype)), tuple(spec.shape))
        ctx.values[f"{spec.name}:0"] = Value(tensor=tensor)
    aliases = getattr(graph, "aliases", {})
    convert_nodes(ctx, graph.nodes)
    produced = dict(ctx.tensor_map)
    for ref, target in aliases.items():  # values folded away have no TensorRT counterpart
        if target is None:
            ctx.tensor_map.pop(ref, None)
    for ref, target in aliases.items():  # the end of a folded chain lives in the layer that absorbed it
        if target is not None and target in produced:
            ctx.tensor_map[ref] = produced[target]
    ctx.node = None
    _mark_outputs(ctx, graph)
    log.info("constructed %d layers", network.num_layers)
    return ConvertedNetwork(builder, network, graph, ctx.tensor_map, ctx.keep_alive,
                            list(getattr(graph, "profiles", []) or []))


def convert_nodes(ctx: ConversionContext, nodes, record: bool = True, where: str = "", only=None) -> None:
    """Run each node's converter in order, writing its outputs to ``ctx.values``.

    ``record``: map the outputs in ``ctx.tensor_map`` (what verification can compare with TensorFlow's
    tensors; not the per-iteration tensors of a loop body, which TensorFlow cannot fetch).  ``where`` is
    added to errors raised inside a body (which loop they belong to).  ``only``: the names of the nodes to
    run (a body's live nodes); None runs all.
    """
    from .registry import REGISTRY
    from .tensor_list import TensorList

    for node in nodes:
        if only is not None and node.name not in only:
            continue
        ctx.node = node
        if node.op in STRUCTURAL_OPS:  # the support check has vetted each of these
            _structural(ctx, node)
            continue
        entry = REGISTRY.get(node.op)
        if entry is None:  # the support check should have caught it
            raise ConversionError(node.name, node.op, f"no converter for this op{where}")
        inputs = [ctx.values[ref] for ref in node.inputs]
        try:
            result = entry.convert(ctx, node, inputs)
        except ConversionError as exc:
            if where and where not in exc.detail and exc.node == node.name:
                raise ConversionError(exc.node, exc.op, exc.detail + where, exc.hint) from exc
            raise
        except Exception as exc:  # noqa: BLE001 - a TensorRT API refusal is reported at the node
            raise ConversionError(node.name, node.op, f"{type(exc).__name__}: {exc}{where}",
                                  "this is a converter bug or an unsupported attribute combination") from exc
        outputs = result if isinstance(result, (list, tuple)) else [result]
        for idx, value in enumerate(outputs):
            if value is None:
                continue
            ref = f"{node.name}:{idx}"
            ctx.values[ref] = value
            if isinstance(value, TensorList):  # a list handle: TensorFlow's shape is the handle's (a scalar)
                continue
            _check_shape(node, idx, value)
            if record and not value.is_const:
                ctx.tensor_map[ref] = (value.tensor.name, value.layout)


def _structural(ctx: ConversionContext, node) -> None:
    """The ops of :mod:`converter.structural`: sources, pass-throughs and control-only nodes (no layer)."""
    ref = f"{node.name}:0"
    if node.op in CONTROL_ONLY_OPS:
        return  # control dependencies only: nothing to build
    if node.op == "Placeholder":
        if ref not in ctx.values:  # check_support reports these; reached only when it was skipped
            raise ConversionError(node.name, node.op, "placeholder is not a declared input",
                                  "declare it as an input (--input NAME:SHAPE) or replace it by a constant")
        return
    if node.op == "Const":
        ctx.values[ref] = Value(const=np.asarray(node.attrs["value"]))
        return
    if node.op in PASS_THROUGH_OPS:
        # a declared input keeps its fed value (a PlaceholderWithDefault declared as an input)
        if ref not in ctx.values:
            ctx.values[ref] = ctx.values[node.inputs[0]]
        return
    raise InternalError(f"{node.op} node '{node.name}': structural op without a construct branch "  # pragma: no cover
                        "(converter.structural and construct disagree)")


def _check_shape(node, idx: int, value: Value) -> None:
    if idx >= len(node.output_shapes) or node.output_shapes[idx] is None:
        return
    expected = tuple(node.output_shapes[idx])
    got = value.shape
    if value.is_const:
        got = tuple(value.const.shape)
    # a dimension unknown to either side (dynamic in TensorFlow's inference or in TensorRT's) is not compared
    if len(got) != len(expected) or any(e >= 0 and g >= 0 and e != g for e, g in zip(expected, got)):
        raise ConversionError(node.name, node.op,
                              f"TensorRT infers output {idx} shape {tuple(got)} but TensorFlow says {expected}",
                              "this is a converter bug; please report it with the model")


def _mark_outputs(ctx: ConversionContext, graph: Graph) -> None:
    errors = []
    seen = set()
    for name in graph.outputs:
        ref = f"{name}:0"
        value = ctx.values.get(ref)
        if value is None:
            errors.append(ConversionError(name, None, "output was not produced"))
            continue
        ctx.node = type("N", (), {"name": name, "op": "Identity"})()  # helper layers are named after the output
        tensor = ctx.logical(value)
        if tensor.is_network_input or id(tensor) in seen or tensor.name in seen:
            layer = ctx.add(layers.identity, [tensor], layers.identity.Params(), suffix="output")
            tensor = layer.get_output(0)
        old = tensor.name
        tensor.name = name
        seen.add(name)
        for ref, (tname, perm) in list(ctx.tensor_map.items()):
            if tname == old:
                ctx.tensor_map[ref] = (name, perm)
        ctx.network.mark_output(tensor)
    ctx.node = None
    if errors:
        raise ConversionErrors(errors)
