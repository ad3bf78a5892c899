"""The bodies of control-flow nodes as IR graphs (what a ``While``'s ``body``/``cond`` compute).

Freezing keeps these bodies in the GraphDef's function library (:mod:`converter.control_flow`); parsing turns
each into a :class:`~converter.graph.Graph` of its own, stored on the main graph under the control-flow node's
name and the body's role (``graph.subgraphs["rnn/while"]["body"]``), so the support check and the converters
see ordinary nodes with decoded attributes and TensorFlow's static shapes, and the parsed graph's byte form
carries them (construct needs no TensorFlow).

The arguments of a body are its graph's inputs, one per loop variable, shaped as the ``While`` node's
``output_shapes`` (the loop's shape invariants).  A loop variable that the body returns unchanged and that is a
constant outside (the weights Keras captures, frozen into constants) is a constant inside too: its argument
becomes a ``Const`` node, so converters that need constant weights see them as such.  Subgraphs are built per
node, not per function: two loops sharing a body may be fed different constants.

The branches of an ``If``/``Case`` (roles ``then_branch``/``else_branch``, ``branch_0``…) take the node's
inputs after the first, shaped as those inputs in the outer graph; a branch reads every input unchanged, so
each constant input becomes a ``Const`` node inside.
"""

from __future__ import annotations

import logging

import numpy as np

from .errors import DamagedGraphError

log = logging.getLogger(__name__)

__all__ = ["LOOP_OPS", "IF_OPS", "CASE_OPS", "subgraph_roles", "build_subgraphs", "passthrough_args"]

#: ops whose bodies :func:`build_subgraphs` parses
LOOP_OPS = frozenset({"While", "StatelessWhile"})
IF_OPS = frozenset({"If", "StatelessIf"})
CASE_OPS = frozenset({"Case", "StatelessCase"})


def subgraph_roles(op: str, node_def=None) -> tuple[str, ...]:
    """The function attributes of ``op`` that become subgraphs, in the order converters use them.

    A Case's roles are ``branch_0``, ``branch_1``… (its ``branches`` list, known from ``node_def``).
    """
    if op in LOOP_OPS:
        return ("cond", "body")
    if op in IF_OPS:
        return ("then_branch", "else_branch")
    if op in CASE_OPS:
        n = len(node_def.attr["branches"].list.func) if node_def is not None else 1
        return tuple(f"branch_{i}" for i in range(n))
    return ()


def passthrough_args(body) -> set[int]:
    """Indices of the loop variables ``body`` returns unchanged (through ``Identity`` nodes).

    Works on a GraphDef-derived IR graph; loop-invariant values need no recurrence.
    """
    from .graph import resolve_identity

    names = [spec.name for spec in body.inputs]
    out = set()
    for i, ref in enumerate(body.outputs):
        src = resolve_identity(body, ref)
        if i < len(names) and src == f"{names[i]}:0":
            out.add(i)
    return out


def build_subgraphs(main_gd, node_def, const_inputs: dict[int, np.ndarray]) -> dict:
    """``{role: Graph}`` for a control-flow NodeDef of ``main_gd`` (needs TensorFlow).

    ``const_inputs``: the node's inputs that are constants in the main graph, by position.
    """
    roles = subgraph_roles(node_def.op, node_def)
    library = {f.signature.name: f for f in main_gd.library.function}
    branches = node_def.op not in LOOP_OPS  # If/Case: the branches take inputs[1:], each read unchanged
    shapes = _input_shapes(main_gd, node_def, const_inputs) if branches else _arg_shapes(node_def)
    out = {}
    for role in roles:
        if node_def.op in CASE_OPS:
            fname = node_def.attr["branches"].list.func[int(role.rpartition("_")[2])].name
        else:
            fname = node_def.attr[role].func.name
        fdef = library.get(fname)
        if fdef is None:
            raise DamagedGraphError(f"{node_def.op} node {node_def.name!r}: its {role} function {fname!r} is not in "
                                    "the graph's function library")
        out[role] = _function_graph(main_gd, fdef, shapes)
    for sub in out.values():
        sub.is_loop_body = node_def.op in LOOP_OPS  # what the TensorList write check asks (parse time only)
    if node_def.op in LOOP_OPS:
        invariant = passthrough_args(out["body"])
        for role in roles:
            _constant_args(out[role], {i: v for i, v in const_inputs.items() if i in invariant})
        from .loop_rewrites import split_sliced_products

        split_sliced_products(out["body"])
    elif branches:
        for role in roles:
            _constant_args(out[role], {i - 1: v for i, v in const_inputs.items() if i >= 1})
    return out


def _input_shapes(main_gd, node_def, const_inputs) -> list:
    """The shapes of an If's/Case's branch arguments: its inputs[1:] in ``main_gd`` (None when unknown)."""
    by_name = {n.name: n for n in main_gd.node}
    data = [i for i in node_def.input if not i.startswith("^")]
    result = []
    for k, ref in enumerate(data[1:], start=1):
        name, _, idx = ref.partition(":")
        src = by_name.get(name)
        listed = src.attr["_output_shapes"].list.shape if src is not None and "_output_shapes" in src.attr else []
        i = int(idx or 0)
        if k in const_inputs:
            result.append(list(np.shape(const_inputs[k])))
        elif i < len(listed) and not listed[i].unknown_rank:
            result.append([int(d.size) for d in listed[i].dim])
        else:
            result.append(None)
    return result


def _arg_shapes(node_def) -> list:
    """The loop's shape invariants (None for an unknown rank)."""
    result = []
    for s in node_def.attr["output_shapes"].list.shape:
        result.append(None if s.unknown_rank else [int(d.size) for d in s.dim])
    return result


def _function_graph(main_gd, fdef, shapes):
    """One function body as an IR graph, with TensorFlow's shape inference for the given argument shapes."""
    import tensorflow as tf
    from tensorflow.python.framework import function_def_to_graph

    from .freeze import FrozenGraph, TensorSpec
    from .graph import from_frozen

    library = tf.compat.v1.GraphDef()
    library.library.CopyFrom(main_gd.library)  # nested bodies resolve through the default graph's functions
    tf_shapes = [tf.TensorShape(None if s is None else [None if d < 0 else d for d in s]) for s in shapes] \
        if shapes else None
    with tf.Graph().as_default():
        tf.graph_util.import_graph_def(library, name="")
        fg = function_def_to_graph.function_def_to_graph(fdef, input_shapes=tf_shapes)
        gd = fg.as_graph_def(add_shapes=True)
        inputs = []
        for i, t in enumerate(fg.inputs):
            shape = None if t.shape.rank is None else tuple(-1 if d is None else int(d) for d in t.shape.as_list())
            if shapes and i < len(shapes) and shapes[i] is None:
                shape = None
            inputs.append(TensorSpec(t.op.name, shape, t.dtype.name))
        outputs = [_ref(t.name) for t in fg.outputs]
    copy = tf.compat.v1.GraphDef()
    copy.node.extend(gd.node)
    copy.library.CopyFrom(main_gd.library)  # nested control flow: their own subgraphs are built from it
    frozen = FrozenGraph(copy, inputs, [o.rpartition(":")[0] for o in outputs])
    graph = from_frozen(frozen)
    graph.outputs = outputs  # refs (``node:index``): a body returns outputs of multi-output nodes too
    return graph


def _ref(name: str) -> str:
    node, _, idx = name.rpartition(":")
    return f"{node}:{idx}"


def _constant_args(graph, values: dict[int, np.ndarray]) -> None:
    """Turn the arguments at ``values``' positions into Const nodes holding those values."""
    if not values:
        return
    from .graph import Node

    names = {graph.inputs[i].name: np.asarray(v) for i, v in values.items()}
    for k, node in enumerate(graph.nodes):
        if node.op == "Placeholder" and node.name in names:
            value = names[node.name]
            graph.nodes[k] = Node(node.name, "Const", [], {"dtype": value.dtype.name, "value": value},
                                  [tuple(value.shape)])
    graph.refresh()  # graph.inputs keeps every argument: position i is loop variable i
