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

log = logging.getLogger(__name__)

#: ops the constructor handles itself rather than through a converter
STRUCTURAL_OPS = {"Placeholder", "Const", "Identity", "NoOp"}
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


def check_support(graph: Graph) -> None:
    """Raise :class:`UnsupportedOpsError` listing every op (and node) that cannot convert."""
    from . import ops  # noqa: F401 - importing registers every converter
    from .registry import REGISTRY

    counts: Counter = Counter()
    examples: dict[str, list[str]] = {}
    errors: list[ConversionError] = []
    for node in graph.nodes:
        if node.op in STRUCTURAL_OPS:
            continue
        entry = REGISTRY.get(node.op)
        if entry is None:
            counts[node.op] += 1
            examples.setdefault(node.op, []).append(node.name)
            if counts[node.op] == 1:
                errors.append(ConversionError(node.name, node.op, "no converter for this op",
                                              "see docs/ops.md for supported ops; rewrite the model to avoid it "
                                              "or open an issue with the op name"))
            continue
        for problem in entry.check(node, graph):
            key = f"{node.op} ({problem.detail})"
            counts[key] += 1
            examples.setdefault(key, []).append(node.name)
            if counts[key] == 1:
                errors.append(problem)
    for spec in graph.inputs:
        if spec.dtype not in SUPPORTED_DTYPES:
            key = f"input dtype {spec.dtype}"
            counts[key] += 1
            examples.setdefault(key, []).append(spec.name)
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
