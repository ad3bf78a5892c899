"""Step 2: a small IR over a frozen GraphDef, and the support check.

Nodes carry decoded attributes (plain Python values, dtypes as names, tensors
as numpy arrays) so converters never touch protobufs.  The support check runs
before any TensorRT layer exists and reports every problem at once.

A parsed :class:`Graph` has a byte form (:meth:`Graph.to_bytes`,
:meth:`Graph.from_bytes`) so the pipeline's parse stage can hand it to
construct: constructing from those bytes needs no TensorFlow, and the same
graph always gives the same bytes (the blob's digest is construct's key).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .errors import ConversionError, DamagedGraphError, InternalError, UnsupportedOpsError
from .freeze import EXTERNAL_ATTR, RANDOM_OPS, FrozenGraph, TensorSpec, _src
from .functions import build_subgraphs, subgraph_roles
from .structural import CONTROL_ONLY_OPS, PASS_THROUGH_OPS, STRUCTURAL_OPS

log = logging.getLogger(__name__)

__all__ = ["Node", "Graph", "from_frozen", "check_support", "parse", "STRUCTURAL_OPS", "SUPPORTED_DTYPES",
           "GRAPH_FORMAT"]
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

    def __init__(self, nodes: list[Node], inputs: list[TensorSpec], outputs: list[str],
                 profiles: list[dict] | None = None):
        self.nodes = nodes
        #: optimization profiles in JSON form (:func:`converter.profiles.profile_to_json`); [] when static
        self.profiles = list(profiles or [])
        self.by_name = {n.name: n for n in nodes}
        self.inputs = inputs
        self.outputs = outputs
        #: bodies of control-flow nodes: node name → role ("body", "cond"…) → Graph (:mod:`converter.functions`)
        self.subgraphs: dict[str, dict[str, Graph]] = {}
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
        """TensorFlow's static shape of ``ref``; None when unknown (or when ``ref`` names no node: a damaged
        graph, which the support check reports by itself — the op checks that ask must not crash on it)."""
        node = self.by_name.get(_src(ref))
        if node is None:
            return None
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

    # ------------------------------------------------------------ byte form

    def to_bytes(self) -> bytes:
        """One deterministic, code-free blob: what parse hands to construct through a shared store.

        Header, JSON length, JSON (nodes, inputs, outputs, the aliases
        :mod:`converter.fuse` records), the array labels as a JSON line, then
        each array as an ``.npy`` stream written with ``allow_pickle=False``.
        Not pickle: loading a blob from a store other hosts write must never
        run code.  Not ``np.savez``: it stamps the current time into its zip
        entries, so an identical graph would get a new digest on every parse.
        Attributes are written in key order (nothing reads them in order) and
        aliases in theirs (construct applies them in order).  Memo caches
        converters keep on the graph (``_tf2trt_static``…) are not state and
        are left out.
        """
        arrays: dict[str, np.ndarray] = {}
        doc = self._doc(arrays, "")
        doc["format"] = GRAPH_FORMAT
        text = json.dumps(doc, sort_keys=True, allow_nan=False, separators=(",", ":")).encode("utf-8")
        buf = io.BytesIO()
        buf.write(_GRAPH_HEADER + str(len(text)).encode() + b"\n" + text)
        buf.write((json.dumps(list(arrays)) + "\n").encode())
        for arr in arrays.values():
            np.save(buf, arr, allow_pickle=False)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Graph":
        """The graph :meth:`to_bytes` wrote; :class:`DamagedGraphError` for anything else.

        Reads JSON and ``.npy`` streams only (``allow_pickle=False``), so a
        damaged or hostile blob can fail to load but cannot run code.
        """
        if bytes(data[:len(_GRAPH_HEADER)]) != _GRAPH_HEADER:
            raise DamagedGraphError("not a tf2trt parsed-graph blob (or one from another format)")
        buf = io.BytesIO(data)
        buf.seek(len(_GRAPH_HEADER))
        try:
            size = int(buf.readline())
            doc = json.loads(buf.read(size))
            if doc.get("format") != GRAPH_FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, this version reads {GRAPH_FORMAT!r}")
            labels = json.loads(buf.readline())
            arrays = {label: np.load(buf, allow_pickle=False) for label in labels}
            if buf.read(1):
                raise ValueError("trailing bytes after the last array")
            graph = cls._from_doc(doc, arrays)
        except DamagedGraphError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoding failure means a damaged blob
            raise DamagedGraphError(f"damaged parsed-graph blob: {type(exc).__name__}: {exc}") from exc
        log.debug("loaded a parsed graph: %d nodes, %d arrays", len(graph.nodes), len(arrays))
        return graph

    def _doc(self, arrays: dict[str, np.ndarray], prefix: str) -> dict:
        """The JSON record of this graph (subgraphs nested), its arrays added to ``arrays``."""
        doc = {
            "nodes": [_node_record(n, arrays, prefix) for n in self.nodes],
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [str(o) for o in self.outputs],
            # absent (a graph fuse never saw) and empty are kept apart: construct treats both alike, but a
            # round trip should not invent state
            "aliases": None if "aliases" not in self.__dict__ else [[k, v] for k, v in self.aliases.items()],
        }
        if self.profiles:  # only then: a static graph's bytes (and digest) stay what they always were
            doc["profiles"] = self.profiles
        if self.subgraphs:  # likewise for graphs without control flow
            doc["subgraphs"] = [[name, [[role, sub._doc(arrays, f"{prefix}{name}/{role}/")]
                                        for role, sub in roles.items()]]
                                for name, roles in self.subgraphs.items()]
        return doc

    @classmethod
    def _from_doc(cls, doc: dict, arrays: dict[str, np.ndarray]) -> "Graph":
        nodes = [_node_from_record(rec, arrays) for rec in doc["nodes"]]
        inputs = [TensorSpec.from_dict(d) for d in doc["inputs"]]
        outputs = [_str(o) for o in doc["outputs"]]
        aliases = doc["aliases"]
        graph = cls(nodes, inputs, outputs, doc.get("profiles", []))
        if aliases is not None:
            graph.aliases = {_str(k): None if v is None else _str(v) for k, v in aliases}
        for name, roles in doc.get("subgraphs", []):
            graph.subgraphs[_str(name)] = {_str(role): cls._from_doc(sub, arrays) for role, sub in roles}
        return graph


#: the JSON ``format`` of :meth:`Graph.to_bytes` (bump it when the record changes meaning)
GRAPH_FORMAT = "tf2trt-graph/1"
_GRAPH_HEADER = b"TF2TRTGRAPH1\n"
#: the tags of attribute values JSON has no plain form for (each an object with exactly one of these keys)
_TAGS = ("array", "scalar", "float", "bytes", "tuple", "dict", "objects")


def _node_record(node: Node, arrays: dict[str, np.ndarray], prefix: str = "") -> dict:
    shapes = []
    for s in node.output_shapes:
        if s is not None and not isinstance(s, (tuple, list)):
            raise InternalError(f"node {node.name!r}: output shape {s!r} is not a tuple")
        shapes.append(None if s is None else [int(d) for d in s])
    return {"name": node.name, "op": node.op, "inputs": list(node.inputs), "output_shapes": shapes,
            # in key order, like the JSON, so the arrays' order does not depend on how the attrs were added
            "attrs": {key: _encode(node.attrs[key], f"{prefix}{node.name}/{key}", arrays)
                      for key in sorted(node.attrs)}}


def _node_from_record(rec: dict, arrays: dict[str, np.ndarray]) -> Node:
    shapes = [None if s is None else tuple(int(d) for d in s) for s in rec["output_shapes"]]
    attrs = {_str(k): _decode(v, arrays) for k, v in rec["attrs"].items()}
    return Node(_str(rec["name"]), _str(rec["op"]), [_str(i) for i in rec["inputs"]], attrs, shapes)


def _str(value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def _label(arrays: dict, label: str) -> str:
    """``label``, made unique among the blob's arrays (a deterministic suffix on a clash)."""
    if label not in arrays:
        return label
    n = 1
    while f"{label}#{n}" in arrays:
        n += 1
    return f"{label}#{n}"


def _encode(value, label: str, arrays: dict[str, np.ndarray]):
    """An attribute value as strict JSON; arrays go to ``arrays`` under a unique label.

    Plain JSON for str/int/bool/None/finite floats and lists (what
    :func:`decode_attr` gives); a one-key tag object for the rest, so each
    value comes back with its type: a numpy scalar stays a numpy scalar, a
    tuple a tuple, ``float("nan")`` is not confused with the string "nan".
    """
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:  # string tensors: np.save refuses object arrays without pickle
            return {"objects": {"shape": list(value.shape),
                                "items": [_encode(v, f"{label}/{i}", arrays) for i, v in enumerate(value.flat)]}}
        name = _label(arrays, label)
        # C order: an equal array in Fortran order would otherwise write other bytes; np.asarray keeps 0-d
        # arrays 0-d (np.ascontiguousarray would make them 1-d)
        arrays[name] = np.asarray(value, order="C")
        return {"array": name}
    if isinstance(value, np.generic):  # before float/str: np.float64 and np.str_ subclass them
        name = _label(arrays, label)
        arrays[name] = np.asarray(value)
        return {"scalar": name}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {"float": "nan" if math.isnan(value)
                                                          else ("inf" if value > 0 else "-inf")}
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [_encode(v, f"{label}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, f"{label}/{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": [[k, _encode(v, f"{label}/{k}", arrays)] for k, v in value.items()]}
    raise InternalError(f"{label}: cannot serialize an attribute value of type {type(value).__name__}")


def _decode(value, arrays: dict[str, np.ndarray]):
    """Inverse of :func:`_encode`."""
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in _TAGS:
        raise ValueError(f"unknown attribute value {str(value)[:80]}")
    tag, body = next(iter(value.items()))
    if tag == "array":
        return arrays[body]
    if tag == "scalar":
        return arrays[body][()]
    if tag == "float":
        if body not in ("nan", "inf", "-inf"):
            raise ValueError(f"unknown float {body!r}")
        return float(body)
    if tag == "bytes":
        return base64.b64decode(body, validate=True)
    if tag == "tuple":
        return tuple(_decode(v, arrays) for v in body)
    if tag == "dict":
        return {_str(k): _decode(v, arrays) for k, v in body}
    out = np.empty(len(body["items"]), dtype=object)
    for i, v in enumerate(body["items"]):
        out[i] = _decode(v, arrays)
    return out.reshape(tuple(int(d) for d in body["shape"]))


def from_frozen(frozen: FrozenGraph) -> Graph:
    """Build the IR (nodes in topological order) from a frozen graph."""
    from .freeze import _topo_order

    order = _topo_order(frozen.graph_def)
    defs = {n.name: n for n in frozen.graph_def.node}
    nodes = []
    subgraphs = {}
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
        if subgraph_roles(nd.op):
            by_name = {n.name: n for n in nodes}
            consts = {}
            for k, ref in enumerate(inputs):
                src = by_name.get(_src(ref))
                if src is not None and src.op == "Const" and ref.endswith(":0"):
                    consts[k] = src.attrs["value"]
            subgraphs[nd.name] = build_subgraphs(frozen.graph_def, nd, consts)
    graph = Graph(nodes, list(frozen.inputs), list(frozen.outputs), frozen.meta.get("profiles", []))
    graph.subgraphs = subgraphs
    return graph


def resolve_identity(graph: Graph, ref: str) -> str:
    """``ref`` with the ``Identity`` nodes in front of it skipped (the tensor that actually produces it)."""
    seen = 0
    while True:
        node = graph.by_name.get(_src(ref))
        if node is None or node.op not in ("Identity", "StopGradient", "Snapshot") or not ref.endswith(":0") \
                or not node.inputs or seen > len(graph.nodes):
            return ref
        ref = tensor_ref(node.inputs[0])
        seen += 1


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


#: ops that come from loops, conditionals and their tensor lists (TF2 functional and TF1 frame forms)
CONTROL_FLOW_OPS = frozenset({"While", "StatelessWhile", "If", "StatelessIf", "Case", "StatelessCase", "Switch",
                              "Merge", "Enter", "Exit", "NextIteration", "LoopCond", "RefEnter", "RefExit"})
CONTROL_FLOW_HINT = ("freeze the model with tf2trt (TF1 frames are rewritten into While/If nodes there); see "
                     "docs/converter.md (While loops) for the forms that convert, or, for a fixed sequence length, "
                     "build Keras recurrent layers with unroll=True")


def _is_control_flow(op: str) -> bool:
    return op in CONTROL_FLOW_OPS or op.startswith("TensorList") or op.startswith("TensorArray")


def _arity_problem(node: Node) -> ConversionError | None:
    """A node whose data inputs are not as many as its TF op takes (None if they are, or if unknown).

    A graph fresh from :func:`converter.freeze.freeze` was imported by TensorFlow, so its arities hold;
    a stored or hand-edited GraphDef need not, and converters index ``node.inputs`` trusting the op's
    signature (an ``IndexError`` deep in a converter would read as a tf2trt bug).
    """
    try:
        from tensorflow.python.framework import op_def_registry
    except ImportError:  # pragma: no cover - TensorFlow is present wherever a GraphDef is parsed
        return None
    op_def = op_def_registry.get(node.op)
    if op_def is None:
        return None
    wanted = 0
    for arg in op_def.input_arg:
        if arg.number_attr:
            n = node.attrs.get(arg.number_attr)
            if not isinstance(n, int) or isinstance(n, bool):
                return None
            wanted += n
        elif arg.type_list_attr:
            types = node.attrs.get(arg.type_list_attr)
            if not isinstance(types, list):
                return None
            wanted += len(types)
        else:
            wanted += 1
    if len(node.inputs) == wanted:
        return None
    return ConversionError(node.name, node.op, f"has {len(node.inputs)} data input(s), its op takes {wanted}",
                           "the GraphDef is malformed (edited or damaged after export): re-export the model")




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

    def report(node_name: str, key: str, problem: ConversionError) -> None:
        counts[key] += 1
        examples.setdefault(key, []).append(node_name)
        if counts[key] == 1:
            errors.append(problem)

    _check_nodes(graph, report, REGISTRY, "")
    for spec in graph.inputs:
        if spec.dtype not in SUPPORTED_DTYPES:
            counts[f"input dtype {spec.dtype}"] += 1
            examples.setdefault(f"input dtype {spec.dtype}", []).append(spec.name)
            errors.append(ConversionError(spec.name, "Placeholder", f"dtype {spec.dtype} is not supported",
                                          "cast the input to float32/int32 in the model"))
    if counts:
        raise UnsupportedOpsError(errors, counts, examples)


def _check_nodes(graph: Graph, report, registry, where: str) -> None:
    """The support check of one graph's nodes, and of the bodies of its control-flow nodes.

    ``where`` says which body a graph is (``" (in the body of While 'rnn/while')"``); problems inside a
    body name the body's node and the loop it belongs to.
    """
    declared = {spec.name for spec in graph.inputs}

    def at(problem: ConversionError) -> ConversionError:
        if not where:
            return problem
        located = ConversionError(problem.node, problem.op, f"{problem.detail}{where}", problem.hint)
        located.exit_code = problem.exit_code
        return located

    for node in graph.nodes:
        if node.op in STRUCTURAL_OPS:
            # the constructor handles these itself; registered entries (Const, Identity…) only document them
            for summary, problem in _check_structural(node, graph, declared):
                report(node.name, f"{node.op} ({summary})", at(problem))
            continue
        entry = registry.get(node.op)
        if entry is None and _is_control_flow(node.op):
            report(node.name, node.op,
                   at(ConversionError(node.name, node.op, "this form of control flow (a TF1 frame left after "
                                   "freezing, a TensorArray or a TensorList op other than a while loop's reads, "
                                   "writes and stacks) does not convert to TensorRT",
                                   CONTROL_FLOW_HINT)))
            continue
        arity = _arity_problem(node) if entry is not None else None
        if arity is not None:
            report(node.name, f"{node.op} (wrong number of inputs)", at(arity))
            continue
        if entry is None and node.op in RANDOM_OPS:
            report(node.name, f"{node.op} (random values: dropout or noise left in training mode)",
                   at(ConversionError(node.name, node.op,
                                      "random values in an inference graph (dropout, noise or augmentation left "
                                      "in training mode): an engine cannot reproduce TensorFlow's random stream",
                                      "export the model in inference mode (call it with training=False, or "
                                      "drop the Dropout/GaussianNoise/augmentation layers before export)")))
            continue
        if entry is None:
            report(node.name, node.op,
                   at(ConversionError(node.name, node.op, "no converter for this op",
                                      "see docs/ops.md for supported ops; rewrite the model to avoid it "
                                      "or open an issue with the op name")))
            continue
        for problem in entry.check(node, graph):
            report(node.name, f"{node.op} ({problem.detail})", at(problem))
        for role, sub in graph.subgraphs.get(node.name, {}).items():
            _check_nodes(sub, report, registry, f" (in the {role} of {node.op} '{node.name}'){where}")


def parse(frozen: FrozenGraph) -> Graph:
    """Step 2: IR + support check; fusions that make the network small are applied here."""
    from .fuse import fuse

    graph = from_frozen(frozen)
    check_support(graph)
    fuse(graph)
    log.info("parsed %d nodes: %s", len(graph.nodes), graph.op_counts())
    return graph
