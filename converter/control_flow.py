"""Freezing graphs with control flow: the function bodies of ``While``/``If``/``Case`` survive freezing.

Function *calls* (``PartitionedCall``…) are inlined by :func:`converter.freeze.inline_functions`; the bodies of
control-flow ops cannot be (a loop body runs many times, a branch maybe never), so they stay in the GraphDef's
function library and every rewriting step of freeze keeps the functions the remaining nodes reference.

Variables read inside a body reach it as ``DT_RESOURCE`` inputs of the control-flow node.  Freezing replaces
each such input by a constant holding the variable's value (the approach TensorFlow's own
``convert_variables_to_constants_v2`` takes): the node's type list entry and the body's argument become the
value's dtype, and the body's ``ReadVariableOp`` on that argument becomes an ``Identity``.  A loop returns such
an argument unchanged, so its output type changes the same way.  Each rewritten body is a copy under a new name,
so a function shared by several nodes is never changed under another reader.
"""

from __future__ import annotations

import logging

import numpy as np

from .errors import FreezeError

log = logging.getLogger(__name__)

__all__ = ["CONTROL_FLOW_OPS", "referenced_functions", "copy_library", "freeze_resource_inputs"]

#: ops whose function attributes are bodies/branches run by the op itself (never inlined)
CONTROL_FLOW_OPS = frozenset({"While", "StatelessWhile", "If", "StatelessIf", "Case", "StatelessCase"})
#: the attribute holding the list of input types, per op
_TYPE_LIST = {"While": "T", "StatelessWhile": "T", "If": "Tin", "StatelessIf": "Tin", "Case": "Tin",
              "StatelessCase": "Tin"}
_DT_RESOURCE = 20


def _function_names(attr_value) -> list[str]:
    kind = attr_value.WhichOneof("value")
    if kind == "func":
        return [attr_value.func.name]
    if kind == "list":
        return [f.name for f in attr_value.list.func]
    return []


def referenced_functions(gd) -> set[str]:
    """Names of the library functions the graph's nodes reference, transitively (bodies calling bodies)."""
    library = {f.signature.name: f for f in gd.library.function}
    wanted: set[str] = set()
    stack = [name for n in gd.node for value in n.attr.values() for name in _function_names(value)]
    while stack:
        name = stack.pop()
        if name in wanted or name not in library:
            continue
        wanted.add(name)
        for nd in library[name].node_def:
            for value in nd.attr.values():
                stack.extend(_function_names(value))
    return wanted


def copy_library(out, gd) -> None:
    """Give ``out`` the functions of ``gd``'s library that ``out``'s nodes reference (none for plain graphs)."""
    if not gd.library.function:
        return
    from tensorflow.core.framework import function_pb2

    source = function_pb2.FunctionDefLibrary()
    source.CopyFrom(gd.library)  # ``out`` may be ``gd`` itself
    out.library.Clear()
    if not out.node:
        return
    for f in source.function:
        out.library.function.add().CopyFrom(f)
    wanted = referenced_functions(out)
    out.library.Clear()
    for f in source.function:
        if f.signature.name in wanted:
            out.library.function.add().CopyFrom(f)
    for g in source.gradient:
        if g.function_name in wanted:
            out.library.gradient.add().CopyFrom(g)


def _bodies(node) -> list[tuple[str, int | None]]:
    """``(attribute, index in a func list or None)`` of every body/branch of a control-flow node."""
    if node.op in ("While", "StatelessWhile"):
        return [("cond", None), ("body", None)]
    if node.op in ("If", "StatelessIf"):
        return [("then_branch", None), ("else_branch", None)]
    return [("branches", i) for i in range(len(node.attr["branches"].list.func))]


def _arg_offset(node) -> int:
    """If/Case read their predicate/branch index first: body argument k is node input k + offset."""
    return 0 if node.op in ("While", "StatelessWhile") else 1


def _freeze_body_args(fdef, new_name: str, frozen_args: dict[int, int], is_loop_body: bool, library=None, gd=None):
    """A copy of ``fdef`` named ``new_name`` whose arguments ``frozen_args`` (index → dtype) hold values.

    Control-flow nodes inside the body that read such an argument (a ``tf.cond`` in a loop body reading a
    variable) get frozen copies of their own bodies, added to ``gd``'s library (``library``: name → function).
    """
    from tensorflow.core.framework import function_pb2

    out = function_pb2.FunctionDef()
    out.CopyFrom(fdef)
    out.signature.name = new_name
    arg_names = {}
    for index, dtype in frozen_args.items():
        arg = out.signature.input_arg[index]
        arg.type = dtype
        arg_names[arg.name] = dtype
    # ReadVariableOp(arg) → Identity(arg); Identity chains on the resource follow along
    renamed_outputs: dict[str, str] = {}
    carriers = dict(arg_names)  # name in the body (argument, or node output) → the value's dtype
    changed = True
    while changed:
        changed = False
        for nd in out.node_def:
            data = [i for i in nd.input if not i.startswith("^")]
            if not data:
                continue
            src = data[0]
            if src not in carriers:
                continue
            dtype = carriers[src]
            if nd.op == "ReadVariableOp":
                nd.op = "Identity"
                for key in list(nd.attr):
                    del nd.attr[key]
                nd.attr["T"].type = dtype
                renamed_outputs[f"{nd.name}:value:0"] = f"{nd.name}:output:0"
                changed = True
            elif nd.op == "Identity" and nd.attr["T"].type == _DT_RESOURCE:
                nd.attr["T"].type = dtype
                carriers[f"{nd.name}:output:0"] = dtype
                changed = True
    if library is not None:
        _freeze_nested(out, carriers, library, gd)
    if renamed_outputs:
        for nd in out.node_def:
            new_inputs = [renamed_outputs.get(i, i) for i in nd.input]
            del nd.input[:]
            nd.input.extend(new_inputs)
        for key, ref in list(out.ret.items()):
            out.ret[key] = renamed_outputs.get(ref, ref)
    if is_loop_body:
        # a loop passes a frozen variable through: its output takes the value's type as well
        for index, dtype in frozen_args.items():
            out.signature.output_arg[index].type = dtype
    left = [nd.name for nd in out.node_def
            if any(i in carriers for i in nd.input if not i.startswith("^")) and nd.op not in ("Identity",)
            and any(t == _DT_RESOURCE for t in (v.type for v in nd.attr.values()))]
    if left:
        raise FreezeError(f"function '{fdef.signature.name}' uses a variable in a way tf2trt cannot freeze "
                          f"(nodes {left[:3]})",
                          "read variables with ReadVariableOp only (the default for Keras and tf.function); "
                          "or freeze the model with tf.compat.v1.graph_util before converting")
    return out


def _freeze_nested(fdef, carriers: dict[str, int], library: dict, gd) -> None:
    """The control-flow nodes of ``fdef`` reading frozen values (``carriers``): their types and bodies follow."""
    for nd in fdef.node_def:
        if nd.op not in CONTROL_FLOW_OPS:
            continue
        offset = _arg_offset(nd)
        data = [i for i in nd.input if not i.startswith("^")]
        frozen = {k - offset: carriers[ref] for k, ref in enumerate(data) if k >= offset and ref in carriers}
        if not frozen:
            continue
        for index, dtype in frozen.items():
            nd.attr[_TYPE_LIST[nd.op]].list.type[index] = dtype
            if nd.op in ("While", "StatelessWhile") and index < len(nd.attr["output_shapes"].list.shape):
                nd.attr["output_shapes"].list.shape[index].Clear()  # the value's shape is not known here
                nd.attr["output_shapes"].list.shape[index].unknown_rank = True
        if "_read_only_resource_inputs" in nd.attr:
            del nd.attr["_read_only_resource_inputs"]
        _freeze_bodies(nd, frozen, library, gd)


def _freeze_bodies(node, frozen: dict[int, int], library: dict, gd) -> None:
    """Point ``node``'s bodies at copies whose arguments ``frozen`` hold values (added to ``gd``'s library)."""
    for attr, index in _bodies(node):
        value = node.attr[attr]
        name = value.func.name if index is None else value.list.func[index].name
        fdef = library.get(name)
        if fdef is None:
            raise FreezeError(f"'{node.name}' ({node.op}) refers to missing function '{name}'", "re-export the model")
        new_name = f"{name}_frozen_{len(library)}"
        new = _freeze_body_args(fdef, new_name, frozen, is_loop_body=attr == "body", library=library, gd=gd)
        gd.library.function.add().CopyFrom(new)
        library[new_name] = new
        if index is None:
            value.func.name = new_name
        else:
            value.list.func[index].name = new_name


def freeze_resource_inputs(gd, resource_values: dict[str, np.ndarray], const_node) -> None:
    """Replace the variable inputs of ``gd``'s control-flow nodes by constants (in place).

    ``resource_values`` maps a resource node name (a captured variable's placeholder, or an Identity of one) to
    the variable's value; ``const_node(name, value)`` makes the Const node that replaces the handle.
    """
    import tensorflow as tf

    library = {f.signature.name: f for f in gd.library.function}
    added_consts: set[str] = set()
    for node in list(gd.node):
        if node.op not in CONTROL_FLOW_OPS:
            continue
        offset = _arg_offset(node)
        data = [i for i in node.input if not i.startswith("^")]
        frozen: dict[int, int] = {}
        for k, ref in enumerate(data):
            name = ref.lstrip("^").split(":")[0]
            if name not in resource_values or k < offset:
                continue
            value = np.asarray(resource_values[name])
            dtype = tf.as_dtype(value.dtype).as_datatype_enum
            const = f"{name}/frozen_value"
            if const not in added_consts:
                gd.node.append(const_node(const, value))
                added_consts.add(const)
            node.input[k] = const
            frozen[k - offset] = dtype
            type_list = node.attr[_TYPE_LIST[node.op]].list.type
            type_list[k - offset] = dtype
            shapes = node.attr["output_shapes"].list.shape if "output_shapes" in node.attr else None
            if shapes is not None and node.op in ("While", "StatelessWhile") and k < len(shapes):
                shapes[k].Clear()
                for d in value.shape:
                    shapes[k].dim.add().size = int(d)
        if not frozen:
            continue
        _freeze_bodies(node, frozen, library, gd)
        for key in ("_read_only_resource_inputs",):
            if key in node.attr:
                del node.attr[key]
        log.debug("froze %d variable input(s) of %s '%s'", len(frozen), node.op, node.name)
