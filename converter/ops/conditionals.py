"""``If``/``StatelessIf``/``Case``/``StatelessCase`` → TensorRT ``IIfConditional``.

A TF2 conditional is a node whose branch functions take the node's inputs after the first (the predicate or
branch index) and return its outputs; :mod:`converter.functions` parses each branch into a subgraph
(roles ``then_branch``/``else_branch``, or ``branch_0``, ``branch_1``… for a Case), with the inputs that are
constants in the outer graph already ``Const`` nodes inside.  The converter builds:

- **a constant predicate or index**: the chosen branch, inline (no conditional).  TensorFlow's rules: a
  scalar predicate is true when nonzero, a non-scalar one when it is not empty (so a statically shaped one
  is a constant); an index outside ``[0, N)`` runs the last branch;
- **otherwise** one ``IIfConditional``: a ``CONDITION`` on the predicate (a bool scalar, or a number compared
  with 0), a ``CONDITIONAL_INPUT`` for every non-constant input a branch reads (what the branch's layers read
  instead), both branches' layers, and a ``CONDITIONAL_OUTPUT`` per output the graph uses.  A Case with N
  branches is N - 1 nested conditionals: ``index == 0 ? b0 : (index == 1 ? b1 : … b[N-1])``, so an index out
  of range runs the last branch, as in TensorFlow.

TensorRT needs both branches of each output to have the same rank (the support check compares TensorFlow's
shapes); a branch may return a constant or one of its inputs unchanged.  Only the nodes the used outputs
need are converted; layers in a branch are named after the branch's TF nodes and errors inside a branch say
which conditional and branch they are in.
"""

from __future__ import annotations

import numpy as np

from .. import layers
from ..construct import convert_nodes
from ..context import Value
from ..errors import ConversionError
from ..graph import Graph, resolve_identity
from ..registry import tf_op
from .helpers import cast, elementwise, scalar_like, tensor_of, unary

_HINT = "see docs/converter.md (Conditionals) for the conditional forms that convert"
#: output and input types a TensorRT conditional cannot carry
_UNSUPPORTED_TYPES = ("variant", "resource", "string", "float64", "complex64", "complex128")


def _roles(node, graph: Graph) -> list[str]:
    if node.op in ("If", "StatelessIf"):
        return ["then_branch", "else_branch"]
    # a Case's ``branches`` is a list of functions (not a decoded attribute): its subgraphs say how many
    sub = graph.subgraphs.get(node.name, {})
    return [f"branch_{i}" for i in range(len(sub)) if f"branch_{i}" in sub]


def _used_outputs(graph: Graph, node) -> set[int]:
    used = {int(ref.partition(":")[2]) for user in graph.consumers.get(node.name, []) for ref in user.inputs
            if ref.partition(":")[0] == node.name}
    for ref in graph.outputs:  # a subgraph's outputs are refs, the main graph's node names
        name, _, idx = ref.partition(":")
        if name == node.name:
            used.add(int(idx or 0))
    return used


def _needed(branch: Graph, refs) -> set[str]:
    """The names of the branch nodes ``refs`` depend on."""
    nodes: set[str] = set()
    stack = [r.partition(":")[0] for r in refs]
    while stack:
        name = stack.pop()
        if name in nodes or name not in branch.by_name:
            continue
        nodes.add(name)
        stack.extend(r.partition(":")[0] for r in branch.by_name[name].inputs)
    return nodes


def _read_args(branch: Graph, needed: set[str]) -> set[int]:
    """The argument positions the needed nodes of ``branch`` read (Const-specialized ones excluded)."""
    return {i for i, spec in enumerate(branch.inputs) if spec.name in needed
            and branch.by_name.get(spec.name) is not None and branch.by_name[spec.name].op == "Placeholder"}


def _static_truth(shape) -> bool | None:
    """TensorFlow's truth of a non-scalar predicate: non-empty; None while the shape is not known."""
    if shape is None or len(shape) == 0:
        return None
    if any(d == 0 for d in shape):
        return False
    return True if all(d > 0 for d in shape) else None


# ------------------------------------------------------------------ support check


def _check_conditional(node, graph: Graph):
    problems: list[ConversionError] = []

    def problem(message, hint=_HINT):
        problems.append(ConversionError(node.name, node.op, message, hint))

    roles = _roles(node, graph)
    sub = graph.subgraphs.get(node.name, {})
    if not roles or any(role not in sub for role in roles):
        problem("its branch functions were not parsed", "re-parse the model with this tf2trt version")
        return problems
    branches = [sub[role] for role in roles]
    selector = node.inputs[0] if node.inputs else None
    const = graph.const(selector) if selector is not None else None
    if node.op in ("If", "StatelessIf") and const is None:
        dtype = node.attr("Tcond", "bool")
        shape = graph.shape(selector)
        if dtype in ("string", "variant", "resource"):
            problem(f"its predicate is a {dtype} tensor", "compute a bool scalar predicate (e.g. tf.size(s) > 0)")
        elif shape is None:
            problem("its predicate has no known rank",
                    "make the predicate a bool scalar (e.g. tf.reduce_any(x), or tf.reshape(p, []))")
        elif len(shape) > 0 and _static_truth(shape) is None:
            problem(f"its predicate is a tensor of shape {tuple(shape)} (TensorFlow takes a non-empty tensor as "
                    "true), whose size is known only at run time",
                    "make the predicate a bool scalar (tf.size(p) > 0, tf.reduce_any(p) or tf.reshape(p, []))")
    elif node.op in ("Case", "StatelessCase") and const is None:
        shape = graph.shape(selector)
        if shape is not None and len(shape) != 0:
            problem(f"its branch index has shape {tuple(shape)}, not a scalar", "give tf.switch_case a scalar index")
    if const is not None:
        return problems  # one branch, inline: its nodes are checked like any others
    used = _used_outputs(graph, node)
    for i, dtype in enumerate(node.attr("Tout", []) or []):
        if i in used and dtype in _UNSUPPORTED_TYPES:
            problem(f"output {i} is a {dtype} tensor, which a TensorRT conditional cannot return",
                    "return plain tensors from the branches (stack a TensorArray inside the branch)")
    for k, dtype in enumerate(node.attr("Tin", []) or []):
        if dtype not in _UNSUPPORTED_TYPES or graph.is_const(node.inputs[k + 1]):
            continue
        readers = [role for role, b in zip(roles, branches)
                   if k in _read_args(b, _needed(b, [b.outputs[i] for i in used if i < len(b.outputs)]))]
        if readers:
            problem(f"input {k + 1} is a {dtype} tensor read inside the {readers[0]}",
                    "read tensor lists outside the conditional and pass their elements in")
    for i in sorted(used):
        ranks = []
        for role, b in zip(roles, branches):
            if i >= len(b.outputs):
                problem(f"its {role} returns {len(b.outputs)} values, the node has output {i}")
                return problems
            shape = b.shape(resolve_identity(b, b.outputs[i])) if b.outputs[i].partition(":")[0] in b.by_name \
                else None
            ranks.append((role, None if shape is None else len(shape)))
        known = {r for _, r in ranks if r is not None}
        if len(known) > 1:
            listed = ", ".join(f"{role} rank {r}" for role, r in ranks)
            problem(f"output {i} has a different rank in each branch ({listed}); TensorRT's conditionals need "
                    "the same rank", "reshape the branch results to one rank (e.g. tf.reshape(y, [-1]))")
    return problems


# ------------------------------------------------------------------ converters


def _branch(ctx, node, role: str, args: list, used: set[int]) -> list:
    """Convert one branch on ``args`` (one Value per branch argument); its used outputs' values."""
    branch = ctx.graph.subgraphs[node.name][role]
    where = f" (in the {role} of {node.op} '{node.name}')"
    outputs = branch.outputs
    needed = _needed(branch, [outputs[i] for i in used])
    saved = ctx.values, ctx.graph, ctx._layout_cache
    try:
        ctx.values = {f"{spec.name}:0": v for spec, v in zip(branch.inputs, args) if v is not None}
        ctx.graph = branch
        ctx._layout_cache = {}  # a shuffle made in one branch must not be reused by the other (or outside)
        convert_nodes(ctx, branch.nodes, record=False, where=where, only=needed)
        values = [ctx.values[outputs[i]] if i in used else None for i in range(len(outputs))]
    finally:
        ctx.values, ctx.graph, ctx._layout_cache = saved
    ctx.node = node
    return values


def _to_tensor(ctx, value: Value):
    return tensor_of(ctx, value) if value.is_const else ctx.logical(value)


def _conditional(ctx, node, flag, args: list, reads: set[int], then_fn, else_fn, used: set[int]) -> list:
    """One IIfConditional on the 0-D bool tensor ``flag``; ``then_fn``/``else_fn`` build the branches."""
    name = ctx.unique_name(node.name)
    ctx.add(layers.condition, [flag], layers.condition.Params(conditional=name), suffix="condition")
    entered = list(args)
    for k in sorted(reads):
        v = args[k]
        if v is None or v.is_const:
            continue
        if not isinstance(v, Value) or v.tensor is None:
            ctx.fail(f"input {k + 1} (a {type(v).__name__}) is read inside a branch; a TensorRT conditional "
                     "takes tensors only", "read tensor lists outside the conditional and pass their elements in")
        tensor = ctx.add(layers.conditional_input, [v.tensor], layers.conditional_input.Params(conditional=name),
                         suffix=f"input{k}").get_output(0)
        entered[k] = Value(tensor=tensor, perm=v.perm)  # same layout: no shuffle to enter
    taken, other = then_fn(entered), else_fn(entered)
    ctx.node = node
    results: list = [None] * len(taken)
    for i in sorted(used):
        a, b = taken[i], other[i]
        if a.rank != b.rank:
            ctx.fail(f"output {i} has rank {a.rank} in one branch and {b.rank} in the other; TensorRT's "
                     "conditionals need the same rank", "reshape the branch results to one rank")
        if a.dtype != b.dtype:  # constants are narrowed (int64 → int32…) where tensors are not
            if a.is_const:
                a = cast(ctx, a, b.dtype)
            else:
                b = cast(ctx, b, a.dtype)
        out = ctx.add(layers.conditional_output, [_to_tensor(ctx, a), _to_tensor(ctx, b)],
                      layers.conditional_output.Params(conditional=name), suffix=f"output{i}")
        results[i] = Value(tensor=out.get_output(0))
    return results


def _flag(ctx, pred: Value):
    """The 0-D bool tensor of a scalar predicate (a number is true when nonzero)."""
    if pred.dtype != np.bool_:
        pred = unary(ctx, elementwise(ctx, pred, scalar_like(pred, 0), "EQUAL", "is_zero"), "NOT", "nonzero")
    return ctx.logical(pred)


def _select(ctx, node, roles: list[str], flags: list, args: list, used: set[int]) -> list:
    """``flags[0] ? roles[0] : (flags[1] ? roles[1] : … roles[-1])`` as nested conditionals."""
    if len(roles) == 1:
        return _branch(ctx, node, roles[0], args, used)
    subs = ctx.graph.subgraphs[node.name]
    reads = set()
    for role in roles:
        b = subs[role]
        reads |= _read_args(b, _needed(b, [b.outputs[i] for i in used]))
    return _conditional(ctx, node, flags[0], args, reads,
                        lambda a: _branch(ctx, node, roles[0], a, used),
                        lambda a: _select(ctx, node, roles[1:], flags[1:], a, used), used)


def _pad(results: list, node) -> list:
    n = len(node.attr("Tout", []) or []) or len(results)
    return list(results) + [None] * (n - len(results))


@tf_op("If", "StatelessIf", layers=("Condition", "ConditionalInput", "ConditionalOutput"),
       check=_check_conditional,
       restrictions="a bool or numeric scalar predicate (a constant one, or a statically shaped non-scalar, "
                    "converts the chosen branch inline); both branches' outputs of one rank; no tensor-list "
                    "or resource values crossing the conditional")
def convert_if(ctx, node, inputs):
    used = _used_outputs(ctx.graph, node)
    pred, args = inputs[0], list(inputs[1:])
    truth = None
    if pred.is_const:
        c = np.asarray(pred.const)
        truth = bool(c.reshape(())) if c.ndim == 0 else c.size > 0
    elif pred.rank > 0:
        truth = _static_truth(pred.shape)
        if truth is None:
            ctx.fail(f"the predicate has shape {pred.shape}, known only at run time", "make it a bool scalar")
    if truth is not None:
        return _pad(_branch(ctx, node, "then_branch" if truth else "else_branch", args, used), node)
    return _pad(_select(ctx, node, ["then_branch", "else_branch"], [_flag(ctx, pred)], args, used), node)


@tf_op("Case", "StatelessCase", layers=("Condition", "ConditionalInput", "ConditionalOutput"),
       check=_check_conditional,
       restrictions="N branches → N - 1 nested conditionals (an index out of range runs the last branch); a "
                    "constant index converts the chosen branch inline; outputs of one rank in every branch")
def convert_case(ctx, node, inputs):
    used = _used_outputs(ctx.graph, node)
    index, args = inputs[0], list(inputs[1:])
    roles = _roles(node, ctx.graph)
    if index.is_const:
        k = int(np.asarray(index.const).reshape(-1)[0])
        return _pad(_branch(ctx, node, roles[k] if 0 <= k < len(roles) else roles[-1], args, used), node)
    if len(roles) == 1:
        return _pad(_branch(ctx, node, roles[0], args, used), node)
    if index.dtype != np.int32:
        index = cast(ctx, index, np.int32)
    flags = [ctx.logical(elementwise(ctx, index, Value(const=np.asarray(k, np.int32)), "EQUAL", f"is_{k}"))
             for k in range(len(roles) - 1)]
    return _pad(_select(ctx, node, roles, flags, args, used), node)
