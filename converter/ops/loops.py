"""``While``/``StatelessWhile`` → a TensorRT ``ILoop``; the ``TensorList`` ops around and inside loops.

A TF2 while loop is a node whose ``cond`` and ``body`` functions take and return the loop variables
(:mod:`converter.functions` parses them into subgraphs).  The converter plans the loop from those graphs
(:func:`plan_loop`, also what the support check runs) and builds:

- **trip limit**: when the condition is a conjunction of ``counter < bound`` terms (``counter`` a loop
  variable that starts at a constant and grows by 1, ``bound`` a constant — what ``tf.while_loop`` with
  ``maximum_iterations`` and every Keras recurrent layer compile to) a ``COUNT`` limit of
  ``min(bound - start)``; otherwise the condition graph is converted inside the loop, on the loop
  variables, as a ``WHILE`` limit (and the recognized terms still give a ``COUNT`` limit);
- **loop variables**: the ones the body returns unchanged are read directly (weights, the input
  sequence); the others that anything needs become ``RECURRENCE`` layers (initial value = the node's
  input, next value = the body's output); variables nothing reads are not built at all;
- **tensor lists** (:mod:`converter.tensor_list`): reading element ``counter`` of a list made from a tensor
  is an ``ITERATOR`` over that tensor, any other read a gather; writing element ``counter`` of a reserved
  list each iteration is a ``CONCATENATE`` loop output (what ``TensorListStack`` reads after the loop),
  writing the only element of a one-element list keeps its ``LAST_VALUE``;
- **results**: a recurrence's value after the last iteration is its ``LAST_VALUE`` loop output.

Layers in the body are named after the body's TF nodes; errors inside the body say which loop they are in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import layers
from ..construct import convert_nodes
from ..context import Value
from ..errors import ConversionError
from ..graph import Graph, resolve_identity
from ..registry import tf_op
from ..tensor_list import TensorList
from .helpers import expand_dims, scalar_constant, tensor_of

_ADD_OPS = ("AddV2", "Add")
_LIST_OPS_OUTSIDE = ("TensorListFromTensor", "TensorListReserve")


class _NotBuilt:
    """The value of a loop variable no built node reads (only the index of an iterator read names it)."""

    is_const = False
    tensor = None


NOT_BUILT = _NotBuilt()


@dataclass
class LoopPlan:
    """What :func:`plan_loop` found out about one while loop (see the module docstring)."""

    args: list[str]  #: the body's argument names, one per loop variable
    outs: list[str]  #: the body's results, Identity nodes skipped
    passthrough: set[int]
    counters: dict[int, int]  #: loop variable → its constant start (it grows by 1 per iteration)
    lists: set[int]  #: loop variables that are tensor lists written by the body
    writes: dict[int, tuple[str, bool, int | None]]  #: list var → (written value ref, at counter, const index)
    trip: int | None  #: the COUNT limit, when known
    needs_while: bool  #: the condition is converted as a WHILE limit
    live: set[int]  #: loop variables carried by recurrences (or written lists)
    body_nodes: set[str]
    cond_nodes: set[str]
    iterator_reads: set[str]  #: TensorListGetItem nodes that become iterators
    problems: list[ConversionError] = field(default_factory=list)


def _arg_index(graph: Graph, ref: str) -> int | None:
    """The loop variable ``ref`` is (an argument of a body or condition graph), else None."""
    ref = resolve_identity(graph, ref)
    name, _, idx = ref.partition(":")
    if idx != "0":
        return None
    for i, spec in enumerate(graph.inputs):
        if spec.name == name:
            node = graph.by_name.get(name)
            return i if node is not None and node.op == "Placeholder" else None
    return None


def _const_int(graph: Graph, ref: str) -> int | None:
    value = graph.const(resolve_identity(graph, ref))
    if value is None or np.asarray(value).size != 1 or not np.issubdtype(np.asarray(value).dtype, np.integer):
        return None
    return int(np.asarray(value).reshape(-1)[0])


def _used_outputs(graph: Graph, node) -> set[int]:
    used = {int(ref.partition(":")[2]) for user in graph.consumers.get(node.name, []) for ref in user.inputs
            if ref.partition(":")[0] == node.name}
    if node.name in graph.outputs:
        used.add(0)
    return used


def plan_loop(node, graph: Graph, outer_const, outer_list) -> LoopPlan:
    """Plan the loop of While ``node`` of ``graph`` (pure IR: the support check and the converter share it).

    ``outer_const(i)``: the constant value of the node's input ``i`` or None; ``outer_list(i)``: "stacked",
    "reserved" or None — what the list handle fed as input ``i`` holds.
    """
    sub = graph.subgraphs.get(node.name, {})
    body, cond = sub.get("body"), sub.get("cond")
    problems: list[ConversionError] = []

    def problem(message, hint="see docs/converter.md (Loops) for the loop forms that convert"):
        problems.append(ConversionError(node.name, node.op, message, hint))

    if body is None or cond is None:
        problem("its body and condition functions were not parsed", "re-parse the model with this tf2trt version")
        return LoopPlan([], [], set(), {}, set(), {}, None, False, set(), set(), set(), set(), problems)
    n = len(node.inputs)
    args = [spec.name for spec in body.inputs]
    outs = [resolve_identity(body, ref) for ref in body.outputs]
    if len(args) != n or len(outs) != n or len(cond.inputs) != n:
        problem(f"its body takes {len(args)} and returns {len(outs)} values for {n} loop variables")
        return LoopPlan(args, outs, set(), {}, set(), {}, None, False, set(), set(), set(), set(), problems)
    passthrough = {i for i in range(n) if outs[i] == f"{args[i]}:0"}
    counters: dict[int, int] = {}
    for i in range(n):
        start = outer_const(i)
        src = body.by_name.get(outs[i].partition(":")[0])
        if i in passthrough or start is None or np.asarray(start).size != 1 or src is None or src.op not in _ADD_OPS \
                or not np.issubdtype(np.asarray(start).dtype, np.integer):
            continue
        a, b = src.inputs
        if (_arg_index(body, a) == i and _const_int(body, b) == 1) or \
                (_arg_index(body, b) == i and _const_int(body, a) == 1):
            counters[i] = int(np.asarray(start).reshape(-1)[0])

    # the condition: counter < constant terms give a COUNT limit
    counts, unrecognized = [], False
    terms = [resolve_identity(cond, cond.outputs[0])] if cond.outputs else []
    while terms:
        ref = terms.pop()
        term = cond.by_name.get(ref.partition(":")[0])
        if term is not None and term.op == "LogicalAnd":
            terms.extend(resolve_identity(cond, r) for r in term.inputs)
            continue
        count = None
        if term is not None and term.op in ("Less", "LessEqual", "Greater", "GreaterEqual"):
            x, y = term.inputs if term.op.startswith("Less") else term.inputs[::-1]
            j, bound = _arg_index(cond, x), _const_int(cond, y)
            if j in counters and bound is not None:
                count = bound - counters[j] + (1 if term.op in ("LessEqual", "GreaterEqual") else 0)
        if count is None:
            unrecognized = True
        else:
            counts.append(max(0, count))
    trip = min(counts) if counts else None
    needs_while = unrecognized or trip is None

    # tensor lists written by the body
    lists = {i for i in range(n) if body.inputs[i].dtype == "variant" and i not in passthrough}
    writes: dict[int, tuple[str, bool, int | None]] = {}
    for i in sorted(lists):
        src = body.by_name.get(outs[i].partition(":")[0])
        if src is None or src.op != "TensorListSetItem" or _arg_index(body, src.inputs[0]) != i:
            problem(f"loop variable {i} is a tensor list the body changes other than by writing one element "
                    "per iteration (TensorListSetItem)")
            continue
        k = _arg_index(body, src.inputs[1])
        at_counter = k in counters and counters[k] == 0
        index = None if at_counter else _const_int(body, src.inputs[1])
        length = outer_const_length(outer_list, i)
        if outer_list(i) != "reserved":
            problem(f"loop variable {i}: the body writes into a tensor list that is not a fresh TensorListReserve")
        elif at_counter:
            if length is None:
                problem(f"loop variable {i}: the list the loop writes has no constant length",
                        "give the sequence a static length")
            elif trip is not None and not needs_while and trip != length:
                problem(f"loop variable {i}: the loop runs {trip} times but writes a list of {length} elements")
        elif index is None or not (index == 0 and length == 1):
            problem(f"loop variable {i}: the body writes list elements at an index that is not the loop counter",
                    "write element i in iteration i (or the only element of a one-element list)")
        writes[i] = (src.inputs[2], at_counter, index)

    # reads of lists made from tensors: at the counter (from 0) they are iterators
    iterator_reads = set()
    for nd in body.nodes:
        if nd.op == "TensorListGetItem":
            j = _arg_index(body, nd.inputs[0])
            if j is None or j not in passthrough or outer_list(j) != "stacked":
                problem("the body reads a tensor list that is not made from a tensor before the loop "
                        f"(node {nd.name!r})")
                continue
            k = _arg_index(body, nd.inputs[1])
            if k in counters and counters[k] == 0 and trip is not None:
                iterator_reads.add(nd.name)

    counter_writes = {outs[i].partition(":")[0] for i, (_, at_counter, _) in writes.items() if at_counter}

    # what must be built: the results used after the loop, and what they (and the WHILE condition) need
    used = _used_outputs(graph, node)
    live = {i for i in used if i not in passthrough}
    cond_nodes: set[str] = set()
    body_nodes: set[str] = set()
    if needs_while:
        live |= _ancestor_args(cond, [cond.outputs[0]], cond_nodes, set())
    while True:
        targets = [outs[i] for i in live if i in lists or i not in passthrough]
        reached = _ancestor_args(body, targets, body_nodes, iterator_reads | counter_writes)
        grown = {i for i in reached if i not in passthrough} - live
        if not grown:
            break
        live |= grown
    for i in live:
        if i not in lists and body.inputs[i].shape is None:
            problem(f"loop variable {i} has no known rank (a shape invariant of unknown rank)",
                    "give the loop variable a shape invariant with a known rank")
    return LoopPlan(args, outs, passthrough, counters, lists, writes, trip, needs_while, live, body_nodes,
                    cond_nodes, iterator_reads, problems)


def outer_const_length(outer_list, i):
    """The constant length of the reserved list fed as input ``i`` (``outer_list`` may carry it)."""
    length = getattr(outer_list, "length", None)
    return length(i) if length is not None else None


def _ancestor_args(graph: Graph, refs: list[str], nodes: set[str], index_free: set[str]) -> set[int]:
    """Add to ``nodes`` every node ``refs`` depend on; return the loop variables (arguments) they read.

    The nodes in ``index_free`` (iterator reads, writes at the counter) do not need their index (input 1):
    the loop's own iteration number is what they are indexed by.
    """
    positions = {spec.name: i for i, spec in enumerate(graph.inputs)}
    read: set[int] = set()
    stack = [r.partition(":")[0] for r in refs]
    while stack:
        name = stack.pop()
        if name in nodes:
            continue
        node = graph.by_name.get(name)
        if node is None:
            continue
        nodes.add(name)
        if node.op == "Placeholder" and name in positions:
            read.add(positions[name])
        inputs = [r for k, r in enumerate(node.inputs) if k != 1] if name in index_free else node.inputs
        stack.extend(r.partition(":")[0] for r in inputs)
    return read


# ------------------------------------------------------------------ support check


class _OuterLists:
    """``outer_list`` for the support check: what the main graph feeds each list input (from its nodes)."""

    def __init__(self, node, graph: Graph):
        self.node, self.graph = node, graph

    def _producer(self, i):
        return self.graph.by_name.get(resolve_identity(self.graph, self.node.inputs[i]).partition(":")[0])

    def __call__(self, i):
        src = self._producer(i)
        if src is None:
            return None
        if src.op == "TensorListFromTensor":
            return "stacked"
        if src.op == "TensorListReserve":
            return "reserved"
        return None

    def length(self, i):
        src = self._producer(i)
        if src is None or src.op != "TensorListReserve":
            return None
        return _const_int(self.graph, src.inputs[1])


def _check_while(node, graph):
    plan = plan_loop(node, graph, lambda i: graph.const(node.inputs[i]), _OuterLists(node, graph))
    return plan.problems


# ------------------------------------------------------------------ converters


@dataclass
class LoopScope:
    """What the converters of body nodes need to know about the loop they are in."""

    loop: str
    plan: LoopPlan
    iterators: dict = field(default_factory=dict)


class _ValueLists:
    """``outer_list`` for the converter: from the :class:`TensorList` values fed to the loop."""

    def __init__(self, inputs):
        self.inputs = inputs

    def __call__(self, i):
        v = self.inputs[i]
        if not isinstance(v, TensorList):
            return None
        return "stacked" if v.stacked else "reserved"

    def length(self, i):
        v = self.inputs[i]
        return v.length if isinstance(v, TensorList) else None


@tf_op("While", "StatelessWhile", layers=("Loop", "TripLimit", "Recurrence", "Iterator", "LoopOutput"),
       check=_check_while,
       restrictions="a COUNT limit when the condition is `counter < constant` terms, else WHILE; loop "
                    "variables of known rank; tensor lists read from a tensor, written at the counter (or the "
                    "only element of a one-element list)")
def convert_while(ctx, node, inputs):
    graph = ctx.graph
    sub = graph.subgraphs[node.name]
    body, cond = sub["body"], sub["cond"]
    plan = plan_loop(node, graph, lambda i: inputs[i].const if inputs[i].is_const else None, _ValueLists(inputs))
    if plan.problems:
        raise plan.problems[0]
    loop = ctx.unique_name(node.name)
    where = f" (in the body of {node.op} '{node.name}')"
    n = len(inputs)
    if plan.trip is not None:
        ctx.add(layers.trip_limit, [scalar_constant(ctx, plan.trip, np.int32, "trip_count")],
                layers.trip_limit.Params(loop=loop, kind="COUNT"), suffix="trip_limit")
    local: dict = {}
    recurrences = {}
    for i in range(n):
        ref = f"{plan.args[i]}:0"
        if i in plan.passthrough:
            local[ref] = inputs[i]
        elif i in plan.lists:
            local[ref] = inputs[i] if i in plan.live else NOT_BUILT
        elif i in plan.live:
            init = inputs[i]
            start = tensor_of(ctx, init) if init.is_const else ctx.logical(init)
            rec = ctx.add(layers.recurrence, [start], layers.recurrence.Params(loop=loop), suffix=f"var{i}")
            recurrences[i] = rec
            local[ref] = Value(tensor=rec.get_output(0))
        else:
            local[ref] = NOT_BUILT
    saved = ctx.values, ctx.graph, ctx.loop_scope
    scope = LoopScope(loop, plan)
    try:
        ctx.values, ctx.graph, ctx.loop_scope = dict(local), body, scope
        convert_nodes(ctx, body.nodes, record=False, where=where, only=plan.body_nodes)
        body_values = ctx.values
        if plan.needs_while:
            cond_local = {f"{spec.name}:0": local[f"{plan.args[i]}:0"] for i, spec in enumerate(cond.inputs)}
            ctx.values, ctx.graph = cond_local, cond
            convert_nodes(ctx, cond.nodes, record=False, where=f" (in the cond of {node.op} '{node.name}')",
                          only=plan.cond_nodes)
            flag = ctx.values[cond.outputs[0]]
            ctx.node = node
            if flag.is_const:
                ctx.fail("the loop condition is a constant inside the loop",
                         "a loop that never ends (or never starts) cannot convert")
            ctx.add(layers.trip_limit, [ctx.logical(flag)], layers.trip_limit.Params(loop=loop, kind="WHILE"),
                    suffix="while_limit")
    finally:
        ctx.values, ctx.graph, ctx.loop_scope = saved
    ctx.node = node
    carried = {}  # next-value tensor name → its recurrence (what a LAST_VALUE output must read)
    for i, rec in recurrences.items():
        nxt = body_values[plan.outs[i]]
        nxt_tensor = tensor_of(ctx, nxt) if nxt.is_const else ctx.logical(nxt)
        rec.set_input(1, nxt_tensor)
        carried.setdefault(nxt_tensor.name, rec)
    used = _used_outputs(graph, node)
    results: list = [None] * n
    for i in range(n):
        if i in plan.passthrough:
            results[i] = inputs[i]
        elif i not in used:
            continue
        elif i in plan.lists:
            results[i] = _list_result(ctx, loop, plan, inputs[i], body_values[plan.outs[i]], i, carried)
        else:
            out = ctx.add(layers.loop_output, [ctx.logical(Value(tensor=recurrences[i].get_output(0)))],
                          layers.loop_output.Params(loop=loop, kind="LAST_VALUE"), suffix=f"out{i}")
            results[i] = Value(tensor=out.get_output(0))
    return results


def _list_result(ctx, loop, plan, reserved: TensorList, written: TensorList, i: int, carried) -> TensorList:
    """The list a loop wrote, after the loop: its elements stacked on axis 0."""
    item = written.written
    item_tensor = tensor_of(ctx, item) if item.is_const else ctx.logical(item)
    if written.at_counter:
        length = plan.trip if plan.trip is not None and not plan.needs_while else reserved.length
        out = ctx.add(layers.loop_output, [item_tensor, scalar_constant(ctx, length, np.int32, f"length{i}")],
                      layers.loop_output.Params(loop=loop, kind="CONCATENATE", axis=0), suffix=f"out{i}")
        return TensorList(reserved.element_dtype, items=Value(tensor=out.get_output(0)))
    # the only element, written every iteration: its last value.  TensorRT takes a LAST_VALUE only of a
    # recurrence — the one that carries the same value when there is one (a Keras layer's output is its state)
    rec = carried.get(item_tensor.name)
    if rec is None:
        if any(d < 0 for d in item.shape):
            ctx.fail(f"loop variable {i}: the loop keeps the last value of a dynamically shaped element that no "
                     "loop variable carries", "give the model static shapes")
        zeros = np.zeros(item.shape, dtype=item.dtype)
        rec = ctx.add(layers.recurrence, [tensor_of(ctx, Value(const=zeros))], layers.recurrence.Params(loop=loop),
                      suffix=f"last{i}")
        rec.set_input(1, item_tensor)
    out = ctx.add(layers.loop_output, [rec.get_output(0)], layers.loop_output.Params(loop=loop, kind="LAST_VALUE"),
                  suffix=f"out{i}")
    return TensorList(reserved.element_dtype, items=expand_dims(ctx, Value(tensor=out.get_output(0)), 0))


def _element_dtype(node) -> str:
    return node.attr("element_dtype", "float32")


def _check_list_source(what):
    def check(node, graph):
        if _element_dtype(node) not in ("float32", "float16", "int32", "bool", "int64"):
            return ConversionError(node.name, node.op, f"{what} of {_element_dtype(node)} elements")
        return None

    return check


@tf_op("TensorListFromTensor", layers=(), check=_check_list_source("a list"),
       restrictions="the list stands for its tensor; reads inside loops become iterators or gathers")
def convert_list_from_tensor(ctx, node, inputs):
    return TensorList(_element_dtype(node), items=inputs[0])


@tf_op("TensorListReserve", layers=(), check=_check_list_source("a list"),
       restrictions="written by a loop at its counter, or its only element")
def convert_list_reserve(ctx, node, inputs):
    length = inputs[1]
    n = int(np.asarray(length.const).reshape(-1)[0]) if length.is_const else None
    return TensorList(_element_dtype(node), length=n)


def _check_in_body(node, graph):
    if not getattr(graph, "is_loop_body", False):
        return ConversionError(node.name, node.op, "writes a tensor list outside a loop body",
                               "build the sequence with tf.stack instead; tf.scan without an initializer writes "
                               "its first element before the loop: pass initializer=")
    return None


@tf_op("TensorListSetItem", layers=(), check=_check_in_body,
       restrictions="inside a loop body, at the loop counter or the only element of a one-element list")
def convert_list_set_item(ctx, node, inputs):
    scope = ctx.loop_scope
    handle, _index, item = inputs
    if scope is None or not isinstance(handle, TensorList):
        ctx.fail("writes a tensor list outside a loop body")
    k = _arg_index(ctx.graph, node.inputs[1])
    at_counter = k in scope.plan.counters and scope.plan.counters[k] == 0
    index = None if at_counter else _const_int(ctx.graph, node.inputs[1])
    return TensorList(handle.element_dtype, length=handle.length, written=item, at_counter=at_counter, index=index,
                      loop=scope.loop)


@tf_op("TensorListGetItem", layers=("Iterator", "Gather"),
       restrictions="of a list made from a tensor: at the loop counter an iterator, otherwise a gather")
def convert_list_get_item(ctx, node, inputs):
    handle, index = inputs[0], inputs[1]
    if not isinstance(handle, TensorList) or not handle.stacked:
        ctx.fail("reads a tensor list whose elements are not known (not made from a tensor or stacked by a loop)")
    scope = ctx.loop_scope
    if scope is not None and node.name in scope.plan.iterator_reads:
        key = id(handle.items)
        it = scope.iterators.get(key)
        if it is None:
            items = handle.items
            tensor = tensor_of(ctx, items) if items.is_const else ctx.logical(items)
            it = ctx.add(layers.iterator, [tensor], layers.iterator.Params(loop=scope.loop, axis=0))
            it = scope.iterators[key] = Value(tensor=it.get_output(0))
        return it
    from .array import convert_gather

    if index.is_const and index.const.dtype == np.int64:
        index = Value(const=index.const.astype(np.int32))
    return convert_gather(ctx, node, [handle.items, index, Value(const=np.int32(0))])


@tf_op("TensorListStack", layers=(),
       restrictions="of a list made from a tensor or written by a loop at its counter")
def convert_list_stack(ctx, node, inputs):
    handle = inputs[0]
    if not isinstance(handle, TensorList) or not handle.stacked:
        ctx.fail("stacks a tensor list whose elements are not known (not made from a tensor or written by a loop)")
    return handle.items
