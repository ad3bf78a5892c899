"""TF1 control flow (loop and cond frames, ``TensorArrayV3``) rewritten into TF2's functional form.

A GraphDef built with control flow v1 (a frozen TF1 ``.pb`` or SavedModel, or ``tf.compat.v1`` graph mode with
``disable_control_flow_v2()``) spells a ``tf.while_loop`` as a *frame*: ``Enter`` nodes sharing a
``frame_name`` bring values in, one ``Merge`` → ``Switch`` → … → ``NextIteration`` cycle per loop variable
carries it from one iteration to the next, ``LoopCond`` holds the condition and ``Exit`` takes the value out.  A
``tf.cond`` is ``Switch`` nodes on the predicate in front of each branch and ``Merge`` nodes behind.  Loops make
the graph cyclic, so no later step of freeze could read it; tf2trt's converters understand the functional
form (``While``/``If`` nodes whose bodies are functions, :mod:`converter.ops.loops`,
:mod:`converter.ops.conditionals`).  Freeze therefore calls :func:`functionalize` once the inputs' shapes are
pinned (``converter.freeze._finish``), and everything after it sees a TF2 graph:

- every loop frame, innermost first (a loop in a loop body becomes a ``While`` inside the outer body), becomes
  one ``While``/``StatelessWhile`` node named after the frame (``while/while_context`` → ``while``).  Its inputs
  are the loop variables' initial values (the ``Enter`` inputs), then the values entered with
  ``is_constant=True`` (loop invariants, passed through unchanged, so a constant stays a ``Const`` in the parsed
  body); the ``cond`` function maps the ``Merge`` outputs to the ``LoopCond`` input, the ``body`` function the
  ``Switch`` outputs (and the ``Identity`` each ``tf.while_loop`` reads them through) to the ``NextIteration``
  inputs.  The shape invariants are the initial values' shapes, relaxed where the body changes a dimension
  (TensorFlow cannot tell a ``Merge``'s shape across the back edge); inputs whose value the pinned shapes
  determine (``tf.shape(x)[0]`` as a loop bound) become constants, as a TF2 trace at those shapes has them.
  Each ``Exit`` becomes an ``Identity`` of the ``While`` output under the ``Exit``'s name, so the graph around
  the loop (and verification's intermediate tensors) keeps its names;
- every cond (``Merge`` nodes fed by branches that start at ``Switch`` nodes on one predicate), innermost first
  and inside loop bodies too, becomes one ``If``/``StatelessIf`` node: its inputs are the values the ``Switch``
  nodes split, each ``Merge`` an output;
- a ``TensorArrayV3`` becomes what TF2 makes of it, a TensorList carried by its *flow* tensor (the handle is
  dropped): ``unstack`` (a scatter at ``range(n)`` of an n-element tensor) is ``TensorListFromTensor``, a fresh
  array ``TensorListReserve``, read/write ``TensorListGetItem``/``TensorListSetItem``, ``stack`` (a gather at
  ``range(size)``) ``TensorListStack``.

What cannot be rewritten (a frame whose wiring is not a ``tf.while_loop``'s or a ``tf.cond``'s, ``TensorArray``
concat/split/grad, scatters and gathers at other indices, writes into a ``dynamic_size=True`` array, malformed
graphs) raises :class:`~converter.errors.UnsupportedOpsError` naming the node, with a hint, before any layer
exists (exit 2, as the support check's findings).  The rewritten graph is plain TF2 control flow: TensorFlow runs
it as verification's reference (tests/converter/test_tf1_control_flow.py also compares with the original TF1
graph run in a session).
"""

from __future__ import annotations

import logging
import re
from collections import Counter

import numpy as np

from .errors import ConversionError, UnsupportedOpsError

log = logging.getLogger(__name__)

__all__ = ["V1_OPS", "has_v1_control_flow", "functionalize"]

#: the ops of TF1 loop/cond frames
FRAME_OPS = frozenset({"Enter", "RefEnter", "Exit", "RefExit", "Merge", "RefMerge", "Switch", "RefSwitch",
                       "NextIteration", "RefNextIteration", "LoopCond"})
TENSOR_ARRAY_OPS = frozenset({"TensorArrayV3", "TensorArrayReadV3", "TensorArrayWriteV3", "TensorArrayScatterV3",
                              "TensorArrayGatherV3", "TensorArraySizeV3", "TensorArrayCloseV3",
                              "TensorArrayConcatV3", "TensorArraySplitV3", "TensorArrayGradV3",
                              "TensorArrayGradWithShape"})
V1_OPS = FRAME_OPS | TENSOR_ARRAY_OPS
HINT = ("build the model with TF2 control flow (tf.function, or tf.compat.v1.enable_control_flow_v2() before the "
        "graph is built) and export it again; for a fixed sequence length unrolling the loop (Keras "
        "unroll=True, or static_rnn) converts too")
_DT_VARIANT, _DT_RESOURCE, _DT_INT32 = 21, 20, 3
_PASS = {"Enter", "Exit", "Merge", "Switch", "NextIteration", "Identity"}


def _base(op: str) -> str:
    return op[3:] if op.startswith("Ref") and op[3:] in _PASS else op


def has_v1_control_flow(gd) -> bool:
    return any(n.op in V1_OPS for n in gd.node)


def _src(ref: str) -> str:
    return ref.lstrip("^").split(":")[0]


def _index(ref: str) -> int:
    _, sep, idx = ref.partition(":")
    return int(idx) if sep else 0


def _norm(ref: str) -> str:
    return f"{_src(ref)}:{_index(ref)}"


def _short(ref: str) -> str:
    """The GraphDef spelling of a data reference (``node`` for output 0)."""
    name, idx = _src(ref), _index(ref)
    return name if idx == 0 else f"{name}:{idx}"


class _Problems:
    """Collects what cannot be rewritten, reported together like the support check's findings."""

    def __init__(self):
        self.errors: list[ConversionError] = []
        self.counts: Counter = Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, node: str, op: str, key: str, message: str, hint: str = HINT) -> None:
        self.counts[key] += 1
        self.examples.setdefault(key, []).append(node)
        if self.counts[key] == 1:
            self.errors.append(ConversionError(node, op, message, hint))

    def raise_if_any(self) -> None:
        if self.errors:
            raise UnsupportedOpsError(self.errors, self.counts, self.examples)


def functionalize(gd):
    """``gd`` with its TF1 loop/cond frames and TensorArrays in TF2 functional form (``gd`` itself if none).

    Raises :class:`UnsupportedOpsError` for the frames and TensorArray uses that do not rewrite.
    """
    if not has_v1_control_flow(gd):
        return gd
    from .errors import Tf2TrtError

    try:
        return _functionalize(gd)
    except Tf2TrtError:
        raise
    except Exception as exc:  # noqa: BLE001 - a frame whose wiring this rewrite does not expect
        node = next((n for n in gd.node if n.op in V1_OPS), None)
        problems = _Problems()
        problems.add(node.name if node else None, node.op if node else None, "TF1 control flow (not recognised)",
                     f"tf2trt could not rewrite this graph's TF1 control flow into While/If nodes "
                     f"({type(exc).__name__}: {exc})")
        problems.raise_if_any()
        raise


def _functionalize(gd):
    from tensorflow.core.framework import graph_pb2

    out = graph_pb2.GraphDef()
    out.CopyFrom(gd)
    consumed = {_src(i) for n in gd.node for i in n.input}
    sinks = [n.name for n in gd.node if n.name not in consumed]
    for n in out.node:
        n.op = _base(n.op)
    problems = _Problems()
    _validate(out, problems)
    problems.raise_if_any()
    _tensor_arrays_to_lists(out, problems)
    problems.raise_if_any()
    names = _Names(out)
    while True:
        frames = _frames(out, problems)
        problems.raise_if_any()
        inner = [f for f in frames.innermost() if f]
        if not inner:
            break
        for frame in inner:
            _loop_to_while(out, frames, frame, names, problems)
            problems.raise_if_any()
            frames = _frames(out, problems)
    _conds_to_if(out, names, problems)
    for n in out.node:
        if n.op in V1_OPS:
            problems.add(n.name, n.op, n.op, "a TF1 control-flow node that is not part of a while loop or cond "
                         "tf2trt recognises")
    problems.raise_if_any()
    _prune(out, sinks)
    log.info("rewrote TF1 control flow: %d While, %d If node(s)", names.loops, names.conds)
    return out


def _validate(gd, problems: _Problems) -> None:
    """What TensorFlow's GraphDef import assumes of a graph with cycles, checked first (a malformed one can abort
    the process in TensorFlow 2.21's graph constructor, "Check failed: *current_pending_count > 0"): every node
    has the inputs its op takes, every cycle goes through a NextIteration into a Merge, a Merge has an input
    that is not a back edge."""
    from tensorflow.python.framework import op_def_registry

    by_name = {n.name: n for n in gd.node}
    readers: dict[str, set[str]] = {}
    for n in gd.node:
        for i in n.input:
            readers.setdefault(_src(i), set()).add(n.op)
    for n in gd.node:
        op_def = op_def_registry.get(n.op)
        if op_def is None:
            problems.add(n.name, n.op, "unknown op", "an op this TensorFlow does not know", "re-export the model")
            continue
        wanted = 0
        for arg in op_def.input_arg:
            if arg.number_attr:
                wanted += n.attr[arg.number_attr].i if arg.number_attr in n.attr else -10**9
            elif arg.type_list_attr:
                wanted += len(n.attr[arg.type_list_attr].list.type) if arg.type_list_attr in n.attr else -10**9
            else:
                wanted += 1
        data = [i for i in n.input if not i.startswith("^")]
        if len(data) != wanted or any(_src(i) not in by_name for i in n.input):
            problems.add(n.name, n.op, f"{n.op} (malformed)", "its inputs do not match its op (or name missing "
                         "nodes)", "the GraphDef is malformed (edited or damaged after export): re-export the model")
        if n.op == "Merge" and data and all(by_name.get(_src(i)) is not None and by_name[_src(i)].op
                                            == "NextIteration" for i in data):
            problems.add(n.name, n.op, "Merge (malformed)", "a Merge of NextIteration values only",
                         "the GraphDef is malformed: re-export the model")
        if n.op == "NextIteration" and readers.get(n.name, set()) - {"Merge"}:
            problems.add(n.name, n.op, "NextIteration (malformed)", "a NextIteration read by a node other than a "
                         "Merge", "the GraphDef is malformed: re-export the model")
    if not problems.errors:
        _frames(gd, problems)  # cycles other than a loop's back edges


class _Names:
    """Unique node and function names for the nodes the rewrite adds."""

    def __init__(self, gd):
        self.taken = {n.name for n in gd.node} | {f.signature.name for f in gd.library.function}
        self.loops = self.conds = 0

    def node(self, wanted: str) -> str:
        name, k = wanted, 1
        while name in self.taken:
            name = f"{wanted}_{k}"
            k += 1
        self.taken.add(name)
        return name

    def function(self, wanted: str) -> str:
        return self.node(re.sub(r"[^A-Za-z0-9_]", "_", wanted) + "_tf1")


# ------------------------------------------------------------------ shapes (TensorFlow's inference)


class _Shapes:
    """Static shapes and values of ``gd``'s tensors, from TensorFlow's import (cycles are fine for it)."""

    def __init__(self, gd):
        import tensorflow as tf

        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.graph_util.import_graph_def(gd, name="")

    def tensor(self, ref: str):
        return self.graph.get_tensor_by_name(_norm(ref))

    def shape(self, ref: str) -> list[int] | None:
        s = self.tensor(ref).shape
        return None if s.rank is None else [-1 if d is None else int(d) for d in s.as_list()]

    def value(self, ref: str):
        """The value of ``ref`` when it depends on constants only (computed by TensorFlow), else None."""
        import tensorflow as tf

        tensor = self.tensor(ref)
        try:
            value = tf.get_static_value(tensor)
        except Exception:  # noqa: BLE001 - not statically known
            value = None
        if value is not None:
            return value
        seen, stack, feeds = set(), [tensor.op], {}
        while stack:
            op = stack.pop()
            if op.name in seen:
                continue
            seen.add(op.name)
            if op.type in ("Shape", "Size", "Rank") and op.inputs[0].shape.is_fully_defined():
                # the static shape of a pinned input: its value, whatever the data
                shape = op.inputs[0].shape
                known = {"Shape": shape.as_list(), "Size": shape.num_elements(), "Rank": shape.rank}[op.type]
                feeds[op.outputs[0]] = np.asarray(known, op.outputs[0].dtype.as_numpy_dtype)
                continue
            if op.type in V1_OPS or op.type.startswith(("Placeholder", "Random", "Stateful")) or op._is_stateful \
                    or len(seen) > 64:
                return None
            stack.extend(t.op for t in op.inputs)
        try:
            with tf.compat.v1.Session(graph=self.graph) as session:
                return session.run(tensor, feeds)
        except Exception:  # noqa: BLE001 - cannot be computed ahead of time
            return None


def _shape_proto(proto, shape) -> None:
    proto.Clear()
    if shape is None:
        proto.unknown_rank = True
    else:
        for d in shape:
            proto.dim.add().size = int(d)


def _const(name: str, value: np.ndarray):
    import tensorflow as tf
    from tensorflow.core.framework import node_def_pb2

    node = node_def_pb2.NodeDef()
    node.name, node.op = name, "Const"
    value = np.asarray(value)
    node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    return node


# ------------------------------------------------------------------ TensorArrays → TensorLists


def _tensor_arrays_to_lists(gd, problems: _Problems) -> None:
    """Rewrite the TensorArrayV3 ops as TF2's TensorList ops on the flow tensors (see the module docstring)."""
    if not any(n.op in TENSOR_ARRAY_OPS for n in gd.node):
        return
    shapes = _Shapes(gd)
    by_name = {n.name: n for n in gd.node}
    originals = {}  # TensorArrayV3 name → a copy of the node as it was (the loop below rewrites it in place)
    for n in gd.node:
        if n.op == "TensorArrayV3":
            originals[n.name] = type(n)()
            originals[n.name].CopyFrom(n)

    scattered = {}  # TensorArrayV3 name → the element shape its unstack gives
    for n in gd.node:
        if n.op == "TensorArrayScatterV3":
            vshape = shapes.shape(n.input[2])
            handle = _src(n.input[0])
            if vshape and handle in originals:
                scattered[handle] = vshape[1:]

    def array_of(ref: str):
        """The TensorArrayV3 node a handle reference comes from (through Enter/Identity/Switch…)."""
        seen = 0
        while seen < len(by_name):
            node = by_name.get(_src(ref))
            if node is None:
                return None
            if node.name in originals and _index(ref) == 0:
                return originals[node.name]
            if node.op not in _PASS or not node.input:
                return None
            ref, seen = node.input[0], seen + 1
        return None

    def element_shape(array, value_shape=None):
        if value_shape is None and array is not None:
            value_shape = scattered.get(array.name)
        if value_shape is not None:
            return np.asarray(value_shape, np.int32)
        shape = array.attr["element_shape"].shape if array is not None else None
        if shape is None or shape.unknown_rank:
            return np.int32(-1)
        return np.asarray([d.size for d in shape.dim], np.int32)

    def is_range(ref: str, n) -> bool:
        """Whether ``ref`` is statically ``range(n)`` (``n`` an int, or the size reference of the array)."""
        value = shapes.value(ref)
        if value is not None and isinstance(n, int):
            return np.asarray(value).ndim == 1 and np.array_equal(value, np.arange(n))
        node = by_name.get(_src(ref))
        if node is None or node.op != "Range":
            return False
        start, delta = shapes.value(node.input[0]), shapes.value(node.input[2])
        if start is None or delta is None or int(start) != 0 or int(delta) != 1:
            return False
        limit = shapes.value(node.input[1])
        if isinstance(n, int):
            return limit is not None and int(limit) == n
        size = by_name.get(_src(node.input[1]))
        if size is None or size.op not in ("TensorArraySizeV3", "TensorListLength"):
            return False
        return _norm([i for i in size.input if not i.startswith("^")][-1]) == _norm(n)

    added, dropped = [], set()
    rename: dict[str, str] = {}
    for node in list(gd.node):
        op = node.op
        if op not in TENSOR_ARRAY_OPS:
            continue
        array = originals[node.name] if op == "TensorArrayV3" else array_of(node.input[0])
        if array is None and op != "TensorArrayV3":
            problems.add(node.name, op, f"{op} (handle not from a TensorArrayV3)",
                         "reads a TensorArray whose handle does not come from a TensorArrayV3 tf2trt can follow")
            continue
        dtype = array.attr["dtype"].type
        if op == "TensorArrayV3":
            shape_const = _const(f"{node.name}/tf1_element_shape", element_shape(array))
            added.append(shape_const)
            size = _folded(gd, shapes, node.input[0], f"{node.name}/tf1_size", added)
            _reset(node, "TensorListReserve", [shape_const.name, size])
            node.attr["element_dtype"].type = dtype
            node.attr["shape_type"].type = _DT_INT32
            rename[f"{node.name}:1"] = f"{node.name}:0"
            continue
        data = [i for i in node.input if not i.startswith("^")]
        if op == "TensorArrayScatterV3":
            _, indices, value, flow = data
            vshape = shapes.shape(value)
            if not vshape or vshape[0] < 0 or not is_range(indices, vshape[0]):
                problems.add(node.name, op, f"{op} (not an unstack)",
                             "scatters at indices other than range(n) of a tensor of n elements, n static",
                             "read the sequence through TensorArray.unstack of a tensor with a static first "
                             "dimension (reorder it before with tf.gather)")
                continue
            if _norm(flow) != f"{array.name}:1":
                problems.add(node.name, op, f"{op} (not into a fresh array)",
                             "scatters into a TensorArray that is not freshly made (only unstack into a new "
                             "TensorArray converts)")
                continue
            shape_const = _const(f"{node.name}/tf1_element_shape", element_shape(None, vshape[1:]))
            added.append(shape_const)
            _reset(node, "TensorListFromTensor", [value, shape_const.name])
            node.attr["element_dtype"].type = dtype
            node.attr["shape_type"].type = _DT_INT32
        elif op == "TensorArrayReadV3":
            _, index, flow = data
            shape_const = _const(f"{node.name}/tf1_element_shape", element_shape(array))
            added.append(shape_const)
            _reset(node, "TensorListGetItem", [flow, index, shape_const.name])
            node.attr["element_dtype"].type = dtype
        elif op == "TensorArrayWriteV3":
            _, index, value, flow = data
            if array.attr["dynamic_size"].b:
                problems.add(node.name, op, f"{op} (dynamic_size=True)",
                             "writes a TensorArray made with dynamic_size=True: a growing array has no TensorRT "
                             "form", "make the TensorArray with a fixed size (the number of iterations), as "
                             "tf.map_fn, tf.scan and dynamic_rnn do")
                continue
            _reset(node, "TensorListSetItem", [flow, index, value])
            node.attr["element_dtype"].type = dtype
        elif op == "TensorArrayGatherV3":
            _, indices, flow = data
            n = shapes.value(array.input[0])
            if not (is_range(indices, flow) or (n is not None and is_range(indices, int(n)))):
                problems.add(node.name, op, f"{op} (not a stack)",
                             "gathers TensorArray elements other than all of them in order",
                             "stack the array (TensorArray.stack) and index the stacked tensor")
                continue
            shape_const = _const(f"{node.name}/tf1_element_shape", element_shape(array))
            added.append(shape_const)
            _reset(node, "TensorListStack", [flow, shape_const.name])
            node.attr["element_dtype"].type = dtype
            node.attr["num_elements"].i = -1
        elif op == "TensorArraySizeV3":
            _, flow = data
            _reset(node, "TensorListLength", [flow])
        elif op == "TensorArrayCloseV3":
            dropped.add(node.name)
        else:
            problems.add(node.name, op, op, f"{op} does not convert (TensorArray concat, split and gradients have "
                         "no TensorList form the loop converter reads)",
                         "use TensorArray.unstack/read/write/stack only: stack the array and reshape the result "
                         "for a concat, tf.split the tensor for a split")
    if problems.errors:
        return
    gd.node.extend(added)
    # the handles are gone: the nodes that only carried one (Enter/Identity of a resource) go too
    for n in gd.node:
        if n.op in _PASS and n.attr["T"].type == _DT_RESOURCE:
            dropped.add(n.name)
    _drop(gd, dropped)
    for n in gd.node:
        for k, ref in enumerate(n.input):
            if not ref.startswith("^") and _norm(ref) in rename:
                n.input[k] = _short(rename[_norm(ref)])
    # the flow tensors now carry the lists: the frame nodes they pass through change type
    lists = {f"{n.name}:0" for n in gd.node if n.op in ("TensorListReserve", "TensorListFromTensor",
                                                         "TensorListSetItem")}
    changed = True
    while changed:
        changed = False
        for n in gd.node:
            if n.op in _PASS and n.attr["T"].type != _DT_VARIANT and any(
                    _norm(i) in lists for i in n.input if not i.startswith("^")):
                n.attr["T"].type = _DT_VARIANT
                lists.update({f"{n.name}:0", f"{n.name}:1"})
                changed = True
            elif n.op in _PASS and n.attr["T"].type == _DT_VARIANT and f"{n.name}:0" not in lists:
                lists.update({f"{n.name}:0", f"{n.name}:1"})
                changed = True


def _prune(gd, sinks: list[str]) -> None:
    """Keep what the graph's sinks before the rewrite need: the index arithmetic of the TensorArrays it replaced
    (``range(n)`` for a scatter, the size for a gather) would otherwise become sinks, taken for outputs."""
    by_name = {n.name: n for n in gd.node}
    needed, stack = set(), [s for s in sinks if s in by_name]
    while stack:
        name = stack.pop()
        if name in needed or name not in by_name:
            continue
        needed.add(name)
        stack.extend(_src(i) for i in by_name[name].input)
    _drop(gd, {n for n in by_name if n not in needed})


def _folded(gd, shapes: _Shapes, ref: str, name: str, added: list) -> str:
    """``ref``, or a new Const node (appended to ``added``) holding its value when that is statically known."""
    src = next((n for n in gd.node if n.name == _src(ref)), None)
    if src is None or src.op == "Const" or src.op == "Placeholder":
        return ref
    value = shapes.value(ref)
    if value is None or np.asarray(value).size > 64 or np.asarray(value).dtype.kind not in "biuf":
        return ref
    added.append(_const(name, np.asarray(value)))
    return name


def _reset(node, op: str, inputs: list[str]) -> None:
    """Turn ``node`` into an ``op`` node with these data inputs (control inputs kept, attributes cleared)."""
    control = [i for i in node.input if i.startswith("^")]
    node.op = op
    del node.input[:]
    node.input.extend(list(inputs) + control)
    for key in list(node.attr):
        if not key.startswith("_class"):
            del node.attr[key]


def _drop(gd, names: set[str]) -> None:
    """Remove the nodes ``names`` and every control edge to them."""
    if not names:
        return
    keep = [n for n in gd.node if n.name not in names]
    for n in keep:
        inputs = [i for i in n.input if not (i.startswith("^") and i[1:] in names)]
        del n.input[:]
        n.input.extend(inputs)
    del gd.node[:]
    gd.node.extend(keep)


# ------------------------------------------------------------------ frames


class _Frames:
    """Which frame each node's outputs live in (``""``: the root), and how frames nest."""

    def __init__(self, frame: dict[str, str], parent: dict[str, str]):
        self.frame, self.parent = frame, parent

    def innermost(self) -> list[str]:
        frames = set(self.parent)
        return sorted(f for f in frames if not any(p == f for p in self.parent.values()))


def _frames(gd, problems: _Problems) -> _Frames:
    by_name = {n.name: n for n in gd.node}
    frame: dict[str, str] = {}
    parent: dict[str, str] = {}

    def deps(n):
        refs = list(n.input)
        if n.op == "Merge":  # the NextIteration input is a back edge
            refs = [r for r in refs if by_name.get(_src(r)) is None or by_name[_src(r)].op != "NextIteration"]
        return [_src(r) for r in refs if _src(r) in by_name]

    # iterative DFS in dependency order (back edges removed, so the graph is acyclic)
    state: dict[str, int] = {}
    for root in by_name:
        if root in state:
            continue
        stack = [(root, False)]
        while stack:
            name, done = stack.pop()
            if done:
                n = by_name[name]
                state[name] = 2
                ins = deps(n)
                if n.op == "Enter":
                    f = n.attr["frame_name"].s.decode()
                    outer = frame.get(ins[0], "") if ins else ""
                    if parent.setdefault(f, outer) != outer:
                        problems.add(n.name, n.op, "Enter (frame entered from two frames)",
                                     f"frame {f!r} is entered from two different frames")
                    frame[name] = f
                elif n.op == "Exit":
                    inner = frame.get(ins[0], "") if ins else ""
                    frame[name] = parent.get(inner, "")
                else:
                    frame[name] = next((frame[i] for i in ins if frame.get(i)), "")
                continue
            if state.get(name) is not None:
                if state[name] == 1:
                    problems.add(name, by_name[name].op, "cycle", "the graph has a cycle that is not a while "
                                 "loop's NextIteration edge")
                continue
            state[name] = 1
            stack.append((name, True))
            stack.extend((d, False) for d in deps(by_name[name]) if d not in state)
    return _Frames(frame, parent)


def _loop_to_while(gd, frames: _Frames, frame: str, names: _Names, problems: _Problems) -> None:
    """Replace loop frame ``frame`` (no frame nested in it) by a While node with cond/body functions."""
    by_name = {n.name: n for n in gd.node}
    members = [n for n in gd.node if frames.frame.get(n.name) == frame]
    consumers: dict[str, list] = {}
    for n in gd.node:
        for ref in n.input:
            if not ref.startswith("^"):
                consumers.setdefault(_src(ref), []).append(n)
    enters = [n for n in members if n.op == "Enter"]
    where = f"TF1 while loop frame {frame!r}"

    def fail(node, message):
        problems.add(node.name, node.op, f"{node.op} (TF1 loop frame not recognised)", f"{where}: {message}")

    variables, invariants = [], []  # (enter, merge, switch, next_iteration, exit or None); enters
    loop_cond = None
    for e in enters:
        if e.attr["is_constant"].b:
            invariants.append(e)
            continue
        merges = [c for c in consumers.get(e.name, []) if c.op == "Merge"]
        if len(merges) != 1 or len(consumers.get(e.name, [])) != 1:
            return fail(e, "a loop variable's Enter does not feed exactly one Merge")
        merge = merges[0]
        back = [by_name.get(_src(r)) for r in merge.input if not r.startswith("^") and _src(r) != e.name]
        if len(back) != 1 or back[0] is None or back[0].op != "NextIteration":
            return fail(merge, "a loop variable's Merge does not read one Enter and one NextIteration")
        switches = [c for c in consumers.get(merge.name, []) if c.op == "Switch" and _src(c.input[0]) == merge.name]
        if len(switches) != 1:
            return fail(merge, "a loop variable's Merge does not feed exactly one Switch")
        switch = switches[0]
        pred = by_name.get(_src(switch.input[1]))
        if pred is None or pred.op != "LoopCond" or (loop_cond is not None and pred is not loop_cond):
            return fail(switch, "a loop variable's Switch is not on the loop's LoopCond")
        loop_cond = pred
        exits = [c for c in consumers.get(switch.name, []) if c.op == "Exit"]
        if len(exits) > 1:
            return fail(switch, "a loop variable has more than one Exit")
        variables.append((e, merge, switch, back[0], exits[0] if exits else None))
    if loop_cond is None:
        return fail(enters[0], "no loop variable reaches a LoopCond")

    n_vars = len(variables)
    shapes = _Shapes(gd)
    arg_of: dict[str, int] = {}  # tensor ref inside the frame → argument position
    arg_specs = []  # (name, dtype enum, shape)
    for k, (e, merge, switch, _, _) in enumerate(variables):
        arg_of[f"{merge.name}:0"] = k
        arg_of[f"{switch.name}:1"] = k
        for reader in consumers.get(switch.name, []):
            # tf.while_loop reads each variable through an Identity of the Switch: the argument itself, as a TF2
            # body reads it (converters find loop counters and list indices by the argument)
            if reader.op == "Identity" and [_norm(i) for i in reader.input if not i.startswith("^")] == \
                    [f"{switch.name}:1"]:
                arg_of[f"{reader.name}:0"] = k
        arg_specs.append((merge.name, e.attr["T"].type, shapes.shape(e.input[0])))
    for j, e in enumerate(invariants):
        arg_of[f"{e.name}:0"] = n_vars + j
        arg_specs.append((e.name, e.attr["T"].type, shapes.shape(e.input[0])))
    structural = {n.name for n in [loop_cond] + [x for v in variables for x in v if x is not None] + enters}

    def collect(roots: list[str], role: str):
        """The frame's nodes ``roots`` depend on (the function's nodes), and root-frame constants they read."""
        nodes, consts, stack = [], {}, [r for r in roots if _norm(r) not in arg_of]
        seen = set()
        while stack:
            ref = stack.pop()
            name = _src(ref)
            if name in seen:
                continue
            seen.add(name)
            node = by_name.get(name)
            if node is None:
                continue
            if frames.frame.get(name) != frame:
                if node.op == "Const":
                    consts[name] = node
                    continue
                problems.add(node.name, node.op, "value read across a frame without Enter",
                             f"{where}: its {role} reads {node.name!r} from outside the loop without an Enter")
                continue
            if name in structural:
                problems.add(node.name, node.op, f"{node.op} (TF1 loop frame not recognised)",
                             f"{where}: its {role} reads the loop's {node.op} node {node.name!r} other than as a "
                             "loop variable")
                continue
            nodes.append(node)
            for r in node.input:
                if not r.startswith("^") and _norm(r) not in arg_of:
                    stack.append(r)
                elif r.startswith("^") and f"{r[1:]}:0" not in arg_of and r[1:] not in structural \
                        and frames.frame.get(r[1:]) == frame:
                    stack.append(r[1:])  # a cond's constants hang on its Switch: the cond pass needs the edge
        return nodes, consts

    cond_nodes, cond_consts = collect([loop_cond.input[0]], "condition")
    body_outs = [v[3].input[0] for v in variables]
    body_nodes, body_consts = collect(body_outs, "body")
    if problems.errors:
        return
    loop_name = names.node(frame[:-len("/while_context")] if frame.endswith("/while_context") else frame)
    # the shape invariants: TensorFlow's import cannot tell a Merge's shape across the back edge, so start from
    # the initial values' shapes and relax each dimension the body changes until the body keeps them
    body_name = names.function(f"{loop_name}_body")
    for _ in range(len(arg_specs) * 8 + 2):
        body_fn, out_shapes = _function(gd, body_name, body_nodes, body_consts, arg_specs, arg_of,
                                        body_outs + [f"{e.name}:0" for e in invariants], with_shapes=True,
                                        names=names, problems=problems)
        if problems.errors:
            return
        relaxed = [(a, t, _compatible(s, o)) for (a, t, s), o in zip(arg_specs, out_shapes)]
        if relaxed == arg_specs:
            break
        arg_specs = relaxed
    cond_fn = _function(gd, names.function(f"{loop_name}_cond"), cond_nodes, cond_consts, arg_specs, arg_of,
                        [loop_cond.input[0]], names=names, problems=problems)
    if problems.errors:
        return
    gd.library.function.add().CopyFrom(cond_fn)
    gd.library.function.add().CopyFrom(body_fn)

    from tensorflow.core.framework import node_def_pb2

    w = node_def_pb2.NodeDef()
    w.name, w.op = loop_name, "While" if cond_fn.signature.is_stateful or body_fn.signature.is_stateful \
        else "StatelessWhile"
    # values known from the static shapes (a sequence length: ``tf.shape(x)[0]`` of a pinned input) are
    # constants, as a TF2 trace at those shapes would have them: a loop bound becomes a COUNT trip limit
    extra = []
    w.input.extend([_folded(gd, shapes, v[0].input[0], f"{loop_name}/tf1_input_{k}", extra)
                    for k, v in enumerate(variables)]
                   + [_folded(gd, shapes, e.input[0], f"{loop_name}/tf1_invariant_{j}", extra)
                      for j, e in enumerate(invariants)])
    gd.node.extend(extra)
    w.attr["T"].list.type.extend([s[1] for s in arg_specs])
    w.attr["cond"].func.name = cond_fn.signature.name
    w.attr["body"].func.name = body_fn.signature.name
    for _, _, shape in arg_specs:
        _shape_proto(w.attr["output_shapes"].list.shape.add(), shape)
    w.attr["parallel_iterations"].i = int(variables[0][0].attr["parallel_iterations"].i or 10)
    # Exits become Identities of the While's outputs (their names stay); everything else of the frame goes
    exits = {}
    for k, v in enumerate(variables):
        if v[4] is not None:
            exits[v[4].name] = k
    for n in gd.node:
        if n.name in exits:
            dtype = n.attr["T"].type
            control = [i for i in n.input if i.startswith("^") and frames.frame.get(i[1:]) != frame]
            n.op = "Identity"
            del n.input[:]
            n.input.extend([f"{loop_name}:{exits[n.name]}" if exits[n.name] else loop_name] + control)
            for key in list(n.attr):
                del n.attr[key]
            n.attr["T"].type = dtype
    gd.node.append(w)
    _drop(gd, {n.name for n in members})
    names.loops += 1


def _as_list(shape) -> list[int] | None:
    return None if shape.rank is None else [-1 if d is None else int(d) for d in shape.as_list()]


def _refresh_loop_shapes(fgd):
    """Import ``fgd`` (a function's nodes), first giving the While nodes this rewrite made their shape invariants.

    A loop nested in a loop body was rewritten while the outer loop was still a frame, when TensorFlow could not
    tell its initial values' shapes; in the outer body they are known.  Returns the imported tf.Graph.
    """
    import tensorflow as tf

    library = {f.signature.name: f for f in fgd.library.function}
    by_name = {n.name: n for n in fgd.node}
    for _ in range(16):
        g = tf.Graph()
        with g.as_default():
            tf.graph_util.import_graph_def(fgd, name="")
        changed = False
        for op in g.get_operations():
            node = by_name.get(op.name)
            if op.type not in ("While", "StatelessWhile") or node is None \
                    or not node.attr["body"].func.name.endswith("_tf1"):
                continue
            body = library[node.attr["body"].func.name]
            invariants = _loop_invariants(fgd, body, [_as_list(t.shape) for t in op.inputs])
            old = [None if s.unknown_rank else [d.size for d in s.dim] for s in node.attr["output_shapes"].list.shape]
            if invariants != old:
                node.attr["output_shapes"].list.Clear()
                for shape in invariants:
                    _shape_proto(node.attr["output_shapes"].list.shape.add(), shape)
                changed = True
                break
        if not changed:
            return g
    return g


def _loop_invariants(gd, body, shapes: list) -> list:
    """The shape invariants of a loop: its initial values' shapes, relaxed where the ``body`` changes them."""
    import tensorflow as tf
    from tensorflow.python.framework import function_def_to_graph

    library = tf.compat.v1.GraphDef()
    library.library.CopyFrom(gd.library)
    for _ in range(len(shapes) * 8 + 2):
        with tf.Graph().as_default():
            tf.graph_util.import_graph_def(library, name="")
            fg = function_def_to_graph.function_def_to_graph(
                body, input_shapes=[tf.TensorShape(None if s is None else [None if d < 0 else d for d in s])
                                    for s in shapes])
            outs = [_as_list(t.shape) for t in fg.outputs]
        relaxed = [_compatible(s, o) for s, o in zip(shapes, outs)]
        if relaxed == shapes:
            break
        shapes = relaxed
    return shapes


def _compatible(a, b):
    """The most specific shape both ``a`` and ``b`` are instances of (None: unknown rank)."""
    if a is None or b is None or len(a) != len(b):
        return None
    return [x if x == y else -1 for x, y in zip(a, b)]


def _function(gd, name: str, nodes, consts: dict, arg_specs, arg_of: dict[str, int], outputs: list[str],
              with_shapes: bool = False, names: _Names | None = None, problems: _Problems | None = None):
    """A FunctionDef ``name`` computing ``outputs`` from the arguments ``arg_specs`` with ``nodes``.

    ``arg_of`` maps the tensors the arguments stand for to their positions; ``consts``: constants from outside
    the frame the nodes read (copied in).  With ``names``, the conds among the nodes become If nodes first (their
    branch functions are added to ``gd``'s library).  Control edges are dropped then: inside a function only data
    order counts.
    """
    from tensorflow.core.framework import graph_pb2
    from tensorflow.python.framework import graph_to_function_def, versions

    fgd = graph_pb2.GraphDef()
    fgd.library.CopyFrom(gd.library)
    # a GraphDef without a producer version reads a Placeholder's scalar shape as unknown (the old meaning)
    fgd.versions.producer = versions.GRAPH_DEF_VERSION
    arg_names = []
    taken = {n.name for n in nodes} | set(consts)
    for k, (base, dtype, shape) in enumerate(arg_specs):
        pname = re.sub(r"[^A-Za-z0-9_]", "_", base) + "_arg"
        while pname in taken:
            pname += "_"
        taken.add(pname)
        arg_names.append(pname)
        p = fgd.node.add()
        p.name, p.op = pname, "Placeholder"
        p.attr["dtype"].type = dtype
        _shape_proto(p.attr["shape"].shape, shape)

    def mapped(ref: str) -> str:
        k = arg_of.get(_norm(ref))
        return arg_names[k] if k is not None else ref

    present = taken
    for c in consts.values():
        copy = fgd.node.add()
        copy.CopyFrom(c)
        del copy.input[:]
    order = {n.name: i for i, n in enumerate(gd.node)}
    for n in sorted(nodes, key=lambda x: order[x.name]):
        copy = fgd.node.add()
        copy.CopyFrom(n)
        del copy.input[:]
        if "_class" in copy.attr:  # colocation with nodes outside the function
            del copy.attr["_class"]
        for r in n.input:
            if not r.startswith("^"):
                copy.input.append(mapped(r))
            elif f"{r[1:]}:0" in arg_of:
                copy.input.append("^" + arg_names[arg_of[f"{r[1:]}:0"]])
            elif r[1:] in present:
                copy.input.append(r)  # a cond's branch constants hang on its Switch by a control edge
    if names is not None:
        _conds_to_if(fgd, names, problems)
        if problems.errors:
            return (None, []) if with_shapes else None
        known = {f.signature.name for f in gd.library.function}
        for f in fgd.library.function:
            if f.signature.name not in known:
                gd.library.function.add().CopyFrom(f)
    for n in fgd.node:
        data = [r for r in n.input if not r.startswith("^")]
        del n.input[:]
        n.input.extend(data)
    g = _refresh_loop_shapes(fgd)
    ops = [op for op in g.get_operations() if op.name not in arg_names]
    inputs = [g.get_tensor_by_name(f"{p}:0") for p in arg_names]
    outs = [g.get_tensor_by_name(_norm(mapped(r))) for r in outputs]
    fdef = graph_to_function_def.graph_to_function_def(g, ops, inputs, outs,
                                                      out_names=[f"output_{k}" for k in range(len(outs))])
    fdef.signature.name = name
    if with_shapes:
        return fdef, [_as_list(t.shape) for t in outs]
    return fdef


# ------------------------------------------------------------------ conds


def _conds_to_if(gd, names: _Names, problems: _Problems) -> None:
    """Replace each cond (Switch/Merge pairs on one predicate, outside loops), innermost first, by an If node."""
    for _ in range(10000):
        if not any(n.op == "Merge" for n in gd.node) or problems.errors:
            return
        if not _one_cond_to_if(gd, names, problems):
            return


def _one_cond_to_if(gd, names: _Names, problems: _Problems) -> bool:
    """Rewrite one innermost cond of ``gd``; False when there is none left."""
    from tensorflow.core.framework import node_def_pb2

    by_name = {n.name: n for n in gd.node}
    order = {n.name: i for i, n in enumerate(gd.node)}
    depends: dict[str, frozenset] = {}  # node → the Switch outputs it depends on (data or control, not across one)

    def deps_of(name: str) -> frozenset:
        stack = [name]
        while stack:
            cur = stack[-1]
            if cur in depends:
                stack.pop()
                continue
            node = by_name[cur]
            if node.op == "Merge":  # a cond ends at its Merge: what reads it is outside that cond
                depends[cur] = frozenset()
                stack.pop()
                continue
            pending = [_src(r) for r in node.input if _src(r) in by_name and by_name[_src(r)].op != "Switch"
                       and _src(r) not in depends]
            if pending:
                stack.extend(pending)
                continue
            found = set()
            for r in node.input:
                src = by_name.get(_src(r))
                if src is None:
                    continue
                if src.op == "Switch":
                    # a control edge on a Switch names no side: only its data outputs do
                    if not r.startswith("^"):
                        found.add(_norm(r))
                else:
                    found |= depends[src.name]
            depends[cur] = frozenset(found)
            stack.pop()
        return depends[name]

    merges = [n for n in gd.node if n.op == "Merge"]

    def merge_switches(m) -> frozenset:
        found = set()
        for r in m.input:
            src = by_name.get(_src(r))
            if src is not None and not r.startswith("^"):
                found |= {_norm(r)} if src.op == "Switch" else deps_of(src.name)
        return frozenset(found)

    def reaches_merge(m) -> bool:
        """Whether a branch of ``m`` holds another Merge (``m`` closes an outer cond)."""
        seen, stack = set(), [_src(r) for r in m.input]
        while stack:
            name = stack.pop()
            node = by_name.get(name)
            if name in seen or node is None or node.op == "Switch":
                continue
            if node.op == "Merge":
                return True
            seen.add(name)
            stack.extend(_src(r) for r in node.input)
        return False

    def branch_nodes(ref: str) -> set[str]:
        """The nodes ``ref`` depends on that depend on a Switch output (the branch computing it)."""
        out, stack = set(), [_src(ref)]
        while stack:
            name = stack.pop()
            node = by_name.get(name)
            if name in out or node is None or node.op == "Switch" or not deps_of(name):
                continue
            out.add(name)
            stack.extend(_src(r) for r in node.input)
        return out

    # an innermost merge: no Merge in its branches
    info = {}
    for m in merges:
        data = [r for r in m.input if not r.startswith("^")]
        if len(data) != 2:
            problems.add(m.name, m.op, "Merge (not two inputs)", "a TF1 cond Merge with other than two inputs")
            return False
        inner = [branch_nodes(r) for r in data]
        info[m.name] = (data, inner)
    candidates = [m for m in merges if not reaches_merge(m)]
    if not candidates:
        problems.add(merges[0].name, "Merge", "Merge (TF1 cond not recognised)",
                     "a TF1 Merge that is not the end of a tf.cond tf2trt recognises")
        return False
    first = candidates[0]
    switches = {_src(r) for r in merge_switches(first)}
    # the cond: every innermost merge on the same Switch nodes (union over shared switches)
    group = [first]
    grown = True
    while grown:
        grown = False
        for m in candidates:
            if m not in group and {_src(r) for r in merge_switches(m)} & switches:
                group.append(m)
                switches |= {_src(r) for r in merge_switches(m)}
                grown = True
    preds = {_resolve(by_name, by_name[s].input[1]) for s in switches}
    where = f"TF1 cond {first.name!r}"
    if len(preds) != 1:
        problems.add(first.name, "Merge", "Merge (TF1 cond not recognised)",
                     f"{where}: its Switch nodes are on different predicates")
        return False
    pred_ref = by_name[sorted(switches)[0]].input[1]
    # each merge input: which side (0 false, 1 true) it belongs to
    sides: list[tuple[str, str]] = []  # (false ref, true ref) per merge
    for m in group:
        data, _ = info[m.name]
        side_of = []
        for r in data:
            ks = {_index(x) for x in (deps_of(_src(r)) if by_name[_src(r)].op != "Switch" else {_norm(r)})}
            side_of.append(ks)
        if any(len(k) > 1 for k in side_of):
            problems.add(m.name, m.op, "Merge (TF1 cond not recognised)",
                         f"{where}: a branch of the cond reads both sides of its Switch nodes")
            return False
        a, b = (next(iter(k)) if k else None for k in side_of)
        if a is None and b is None:
            problems.add(m.name, m.op, "Merge (TF1 cond not recognised)",
                         f"{where}: neither input of the Merge depends on the cond's Switch nodes")
            return False
        if a is None:
            a = 1 - b
        if b is None:
            b = 1 - a
        if a == b:
            problems.add(m.name, m.op, "Merge (TF1 cond not recognised)",
                         f"{where}: both inputs of the Merge come from the same side of the cond")
            return False
        sides.append((data[0], data[1]) if a == 0 else (data[1], data[0]))
    switch_outs = {f"{s}:{k}" for s in switches for k in (0, 1)}
    for n in gd.node:
        deps_of(n.name)
    members = {n for n, d in depends.items() if d and d <= switch_outs}
    group_names = {m.name for m in group}
    for reader in gd.node:
        if reader.name in members or reader.name in group_names:
            continue
        inside = [_src(r) for r in reader.input if not r.startswith("^") and _src(r) in members]
        if inside:
            problems.add(reader.name, reader.op, "value read from inside a TF1 cond",
                         f"{where}: {reader.name!r} reads {inside[0]!r} inside the cond other than through its Merge")
            return False
    shapes = _Shapes(gd)
    # the If's inputs: the values the Switch nodes split, then values from outside the branches read directly
    inputs: list[str] = []
    specs: list[tuple] = []
    arg_maps = ({}, {})  # per side: ref → argument position

    def add_input(ref: str) -> int:
        ref = _norm(ref)
        if ref in inputs:
            return inputs.index(ref)
        inputs.append(ref)
        node = by_name[_src(ref)]
        dtype = node.attr["T"].type if node.op == "Switch" else _dtype_of(shapes, ref)
        specs.append((_src(ref), dtype, shapes.shape(ref)))
        return len(inputs) - 1

    fns = []
    for side in (1, 0):
        roots = [pair[side] for pair in sides]
        nodes: set[str] = set()
        for r in roots:
            nodes |= branch_nodes(r) if by_name[_src(r)].op != "Switch" else set()
        consts = {}
        for name in sorted(nodes, key=order.get):
            for r in by_name[name].input:
                src = by_name.get(_src(r))
                if src is None or r.startswith("^") or src.name in nodes:
                    continue
                if src.op == "Switch":
                    if _index(r) != side:
                        problems.add(name, by_name[name].op, "Merge (TF1 cond not recognised)",
                                     f"{where}: a branch reads the other side of a Switch")
                        return False
                    arg_maps[side][_norm(r)] = add_input(src.input[0])
                elif src.op == "Const":
                    consts[src.name] = src
                else:
                    arg_maps[side][_norm(r)] = add_input(r)
        for r in roots:
            src = by_name[_src(r)]
            if src.op == "Switch":
                arg_maps[side][_norm(r)] = add_input(src.input[0])
            elif src.op == "Const" and src.name not in nodes:
                consts[src.name] = src
            elif src.name not in nodes:  # a value from outside the cond, returned as it is
                arg_maps[side][_norm(r)] = add_input(r)
        fns.append((side, [by_name[n] for n in nodes], consts, roots))
    if_name = names.node(first.name.rpartition("/")[0] or "cond")
    built = {}
    for side, nodes, consts, roots in fns:
        # both branches take every input (a branch ignores the other's)
        arg_of = {}
        for ref, k in arg_maps[side].items():
            arg_of[ref] = k
        fdef, out_shapes = _function(gd, names.function(f"{if_name}_{'then' if side else 'else'}"), nodes, consts,
                                     specs, arg_of, roots, with_shapes=True, names=names, problems=problems)
        built[side] = (fdef, out_shapes)
    if problems.errors:
        return False
    for fdef, _ in built.values():
        gd.library.function.add().CopyFrom(fdef)
    node = node_def_pb2.NodeDef()
    # stateless branches make a StatelessIf, as TF2's tf.cond builds (a stateful If in a loop body breaks
    # TensorFlow 2.21's session runtime on the second fetch of the loop: "Function while_cond_function is not
    # defined")
    stateful = any(f.signature.is_stateful for f, _ in built.values())
    node.name, node.op = if_name, "If" if stateful else "StatelessIf"
    node.input.extend([pred_ref] + [_short(r) for r in inputs])
    node.attr["Tcond"].type = _dtype_of(shapes, pred_ref)
    node.attr["Tin"].list.type.extend([s[1] for s in specs])
    node.attr["Tout"].list.type.extend([m.attr["T"].type for m in group])
    node.attr["then_branch"].func.name = built[1][0].signature.name
    node.attr["else_branch"].func.name = built[0][0].signature.name
    for a, b in zip(built[1][1], built[0][1]):
        _shape_proto(node.attr["output_shapes"].list.shape.add(), _compatible(a, b))
    for k, m in enumerate(group):
        if any(_norm(r) == f"{m.name}:1" for n in gd.node for r in n.input if not r.startswith("^")):
            problems.add(m.name, m.op, "Merge (value_index read)",
                         f"{where}: the Merge's value_index output (which branch ran) is read")
            return False
        dtype = m.attr["T"].type
        m.op = "Identity"
        del m.input[:]
        m.input.append(f"{if_name}:{k}" if k else if_name)
        for key in list(m.attr):
            del m.attr[key]
        m.attr["T"].type = dtype
    gd.node.append(node)
    _drop(gd, members | switches)
    names.conds += 1
    return True


def _resolve(by_name, ref: str) -> str:
    """``ref`` with Identity nodes in front of it skipped."""
    for _ in range(len(by_name) + 1):
        node = by_name.get(_src(ref))
        if node is None or node.op != "Identity" or _index(ref) != 0:
            return _norm(ref)
        ref = node.input[0]
    return _norm(ref)


def _dtype_of(shapes: _Shapes, ref: str) -> int:
    return shapes.tensor(ref).dtype.as_datatype_enum
