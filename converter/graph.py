"""Step 2: a small IR over a frozen GraphDef, and the support check.

Nodes carry decoded attributes (plain Python values, dtypes as names, tensors
as numpy arrays) so converters never touch protobufs.  The support check runs
before any TensorRT layer exists and reports every problem at once.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .errors import ConversionError, UnsupportedOpsError
from .freeze import EXTERNAL_ATTR, FrozenGraph, TensorSpec, _src
from .structural import CONTROL_ONLY_OPS, PASS_THROUGH_OPS, STRUCTURAL_OPS

log = logging.getLogger(__name__)

__all__ = ["Node", "Graph", "from_frozen", "check_support", "parse", "STRUCTURAL_OPS", "SUPPORTED_DTYPES"]
SUPPORTED_DTYPES = {"float32", "int32", "bool", "float16", "int64", "int8", "uint8"}


@dataclass
class Node:
    """One TF node: name, op, data inputs as ``node:index`` refs, decoded attributes."""

    name: str
    op: str
    inputs: list[str]
    attrs: dict = field(default_factory=dict)
    output_shapes: list[tuple | None] = field(default_factory=list)

    def attr(self, key, default=None):
        return self.attrs.get(key, default)

    def output(self, index: int = 0) -> str:
        return f"{self.name}:{index}"


def tensor_ref(ref: str) -> str:
    """Normalize an input reference to ``node:index``."""
    node, sep, idx = ref.partition(":")
    return f"{node}:{idx if sep else 0}"


def decode_attr(value):
    """AttrValue → Python (str, int, float, bool, dtype name, shape list, ndarray, list)."""
    import tensorflow as tf

    kind = value.WhichOneof("value")
    if kind == "s":
        return value.s.decode("utf-8", "replace")
    if kind == "i":
        return int(value.i)
    if kind == "f":
        return float(value.f)
    if kind == "b":
        return bool(value.b)
    if kind == "type":
        return tf.dtypes.as_dtype(value.type).name
    if kind == "shape":
        if value.shape.unknown_rank:
            return None
        return [int(d.size) for d in value.shape.dim]
    if kind == "tensor":
        return tf.make_ndarray(value.tensor)
    if kind == "func":
        return value.func.name
    if kind == "list":
        lst = value.list
        if lst.s:
            return [x.decode("utf-8", "replace") for x in lst.s]
        if lst.i:
            return [int(x) for x in lst.i]
        if lst.f:
            return [float(x) for x in lst.f]
        if lst.b:
            return [bool(x) for x in lst.b]
        if lst.type:
            return [tf.dtypes.as_dtype(t).name for t in lst.type]
        if lst.shape:
            return [None if s.unknown_rank else [int(d.size) for d in s.dim] for s in lst.shape]
        return []
    return None


class Graph:
    """Nodes in topological order, with constants, consumers and the signature."""

    def __init__(self, nodes: list[Node], inputs: list[TensorSpec], outputs: list[str]):
        self.nodes = nodes
        self.by_name = {n.name: n for n in nodes}
        self.inputs = inputs
        self.outputs = outputs
        self.consumers: dict[str, list[Node]] = {}
        self.refresh()

    def refresh(self) -> None:
        self.by_name = {n.name: n for n in self.nodes}
        self.consumers = {}
        for n in self.nodes:
            for ref in n.inputs:
                self.consumers.setdefault(_src(ref), []).append(n)

    def const(self, ref: str) -> np.ndarray | None:
        """The value of ``ref`` if it is produced by a Const node, else None."""
        node = self.by_name.get(_src(ref))
        if node is not None and node.op == "Const" and ref.endswith(":0"):
            return node.attrs["value"]
        return None

    def is_const(self, ref: str) -> bool:
        return self.const(ref) is not None

    def shape(self, ref: str):
        node = self.by_name[_src(ref)]
        idx = int(ref.partition(":")[2] or 0)
        if idx < len(node.output_shapes):
            return node.output_shapes[idx]
        return None

    def op_counts(self) -> dict[str, int]:
        return dict(Counter(n.op for n in self.nodes))

    def single_consumer(self, node: Node) -> Node | None:
        users = self.consumers.get(node.name, [])
        if len(users) == 1 and node.name not in self.outputs:
            return users[0]
        return None


def from_frozen(frozen: FrozenGraph) -> Graph:
    """Build the IR (nodes in topological order) from a frozen graph."""
    from .freeze import _topo_order

    order = _topo_order(frozen.graph_def)
    defs = {n.name: n for n in frozen.graph_def.node}
    nodes = []
    for name in order:
        nd = defs[name]
        if nd.op == "Placeholder" and EXTERNAL_ATTR in nd.attr:
            value = frozen.constants[name]
            nodes.append(Node(nd.name, "Const", [], {"dtype": value.dtype.name, "value": value},
                              [tuple(value.shape)]))
            continue
        attrs = {k: decode_attr(v) for k, v in nd.attr.items() if k != "_output_shapes" and not k.startswith("_class")}
        shapes = []
        if "_output_shapes" in nd.attr:
            for s in nd.attr["_output_shapes"].list.shape:
                shapes.append(None if s.unknown_rank else tuple(int(d.size) for d in s.dim))
        inputs = [tensor_ref(i) for i in nd.input if not i.startswith("^")]
        nodes.append(Node(nd.name, nd.op, inputs, attrs, shapes))
    return Graph(nodes, list(frozen.inputs), list(frozen.outputs))


def _check_structural(node: Node, graph: Graph, declared: set[str]) -> list[tuple[str, ConversionError]]:
    """What the constructor needs of an op it handles itself (see :mod:`converter.structural`).

    Returns ``(summary, problem)`` pairs; the summary groups like problems in the report.
    """
    problems = []
    if node.op == "Placeholder" and node.name not in declared:
        problems.append(("not a declared input", ConversionError(
            node.name, node.op, "placeholder is not a declared input",
            "declare it as an input (--input NAME:SHAPE, or inputs={NAME: shape}), or feed it a constant: replace "
            "it by a Const or a PlaceholderWithDefault with a default value")))
    elif node.op in CONTROL_ONLY_OPS:
        readers = sorted({u.name for u in graph.consumers.get(node.name, [])})
        if readers:
            problems.append(("read as data", ConversionError(
                node.name, node.op, f"produces no data but is read as data by {', '.join(readers[:3])}"
                + (f" and {len(readers) - 3} more" if len(readers) > 3 else ""),
                "a NoOp carries control dependencies only: make the edge a control input (^name) or remove it")))
    elif node.op in PASS_THROUGH_OPS and not node.inputs and node.name not in declared:
        problems.append(("no data input", ConversionError(node.name, node.op, "has no data input to pass through",
                                                          "the GraphDef is malformed: give the node its data input")))
    elif node.op == "Const" and not isinstance(node.attrs.get("value"), np.ndarray):
        problems.append(("no value", ConversionError(node.name, node.op, "constant without a value",
                                                     "the GraphDef is malformed: re-export the model")))
    return problems


def check_support(graph: Graph) -> None:
    """Raise :class:`UnsupportedOpsError` listing every op (and node) that cannot convert.

    One pass over the graph, before any layer exists: ops without a converter,
    converter restrictions, and what the constructor needs of the structural
    ops it handles itself (a placeholder must be a declared input, a NoOp must
    have no data consumers…), each with a hint.
    """
    from . import ops  # noqa: F401 - importing registers every converter
    from .registry import REGISTRY

    counts: Counter = Counter()
    examples: dict[str, list[str]] = {}
    errors: list[ConversionError] = []
    declared = {spec.name for spec in graph.inputs}

    def report(node_name: str, key: str, problem: ConversionError) -> None:
        counts[key] += 1
        examples.setdefault(key, []).append(node_name)
        if counts[key] == 1:
            errors.append(problem)

    for node in graph.nodes:
        if node.op in STRUCTURAL_OPS:
            # the constructor handles these itself; registered entries (Const, Identity…) only document them
            for summary, problem in _check_structural(node, graph, declared):
                report(node.name, f"{node.op} ({summary})", problem)
            continue
        entry = REGISTRY.get(node.op)
        if entry is None:
            report(node.name, node.op,
                   ConversionError(node.name, node.op, "no converter for this op",
                                   "see docs/ops.md for supported ops; rewrite the model to avoid it "
                                   "or open an issue with the op name"))
            continue
        for problem in entry.check(node, graph):
            report(node.name, f"{node.op} ({problem.detail})", problem)
    for spec in graph.inputs:
        if spec.dtype not in SUPPORTED_DTYPES:
            counts[f"input dtype {spec.dtype}"] += 1
            examples.setdefault(f"input dtype {spec.dtype}", []).append(spec.name)
            errors.append(ConversionError(spec.name, "Placeholder", f"dtype {spec.dtype} is not supported",
                                          "cast the input to float32/int32 in the model"))
    if counts:
        raise UnsupportedOpsError(errors, counts, examples)


def parse(frozen: FrozenGraph) -> Graph:
    """Step 2: IR + support check; fusions that make the network small are applied here."""
    from .fuse import fuse

    graph = from_frozen(frozen)
    check_support(graph)
    fuse(graph)
    log.info("parsed %d nodes: %s", len(graph.nodes), graph.op_counts())
    return graph
