"""Control-flow regions for the reference executor: which layers form each TensorRT loop, and how it runs.

TensorRT marks only a loop's *boundary* layers (``TRIP_LIMIT``, ``RECURRENCE``, ``ITERATOR``,
``LOOP_OUTPUT``, each naming its ``ILoop``); the body is implicit.  Here the body of a loop is every
layer that depends, directly or not, on one of the loop's recurrence or iterator outputs, up to (and
excluding what lies beyond) the loop's own loop outputs — data leaves a loop only through those
(TensorRT developer guide, "Working with Loops").  Layers the body reads but that do not depend on
the loop (constants, loop-invariant tensors) are evaluated once, outside, which gives the same
values.  A loop whose boundary layers are reached from another loop's body is nested in it and runs
as one node of that body, once per outer iteration.

:func:`plan` turns a snapshot's layers into an ordered list of nodes (:class:`Layer` or
:class:`Loop`); :func:`run_loop` runs one loop, calling back into the executor for each body node.
Semantics (sources: the "Working with Loops" guide, the ``ILoop``/``ITripLimitLayer``/
``IIteratorLayer``/``IRecurrenceLayer``/``ILoopOutputLayer`` API documentation, and what TensorRT's
ONNX importer relies on), per iteration ``i = 0, 1, …``:

1. recurrence outputs are the initial values (``i = 0``) or the next values of iteration ``i - 1``;
   iterator outputs are slice ``i`` (or ``M - 1 - i`` reversed) of their input;
2. with a ``COUNT`` limit the loop stops once ``i`` reaches it; ``WHILE`` conditions are evaluated
   (only the body layers they need) and the loop stops, before running this iteration, if one is false;
3. the rest of the body runs; ``CONCATENATE``/``REVERSE`` outputs record their input's value and
   every recurrence takes its next value (all at once).

After the loop, a ``LAST_VALUE`` output of a recurrence output is that recurrence's final value (see
:mod:`.loop_output`).  ``keep_intermediates`` reports body tensors with their values in the last
iteration that ran (recurrence outputs: the values that iteration started with).

If-conditionals are regions too: the body is what depends on the CONDITIONAL_INPUT outputs, up to
the CONDITIONAL_OUTPUT layers; the CONDITION's value selects each output's input 0 (true) or 1
(false), and only the body nodes the selected inputs need are evaluated.  Loops and conditionals
nest in one another the same way.
"""

from __future__ import annotations

import collections
import heapq
from dataclasses import dataclass, field

import numpy as np

from converter.errors import ExecutorError, SnapshotError

__all__ = ["Layer", "Region", "Loop", "Conditional", "plan", "run_loop", "boundary_run", "MAX_ITERATIONS"]

#: a loop that has run this many iterations is taken to be runaway (TensorRT itself would never stop)
MAX_ITERATIONS = 1 << 22

#: per region family: the boundary layers whose outputs start its body, and those that end it
_FAMILIES = {"loop": (("RECURRENCE", "ITERATOR"), "LOOP_OUTPUT"),
             "conditional": (("CONDITIONAL_INPUT",), "CONDITIONAL_OUTPUT")}


def boundary_run(rec, p, prepared, ins):
    """The ``run`` of region boundary kinds: they only run with their region (:meth:`Loop.run`, ...)."""
    region = "loop" if hasattr(p, "loop") else "conditional"
    raise ExecutorError(f"layer {rec['name']!r} ({rec['type']}) runs only as part of its {region} "
                        f"{getattr(p, region)!r}")


@dataclass
class Layer:
    """One layer run on its own."""

    index: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def position(self) -> int:
        return self.index


@dataclass
class Region:
    """A control-flow region run as one node: its boundary layers and its body."""

    name: str
    members: frozenset  #: every layer index of the region, nested regions' included
    inputs: tuple[str, ...] = ()  #: tensors from outside the region that it reads
    outputs: tuple[str, ...] = ()  #: the tensors it gives the rest of the network

    @property
    def position(self) -> int:
        return min(self.members)


@dataclass
class Conditional(Region):
    """One TensorRT if-conditional."""

    condition: str = ""  #: the CONDITION layer's input
    entries: list = field(default_factory=list)  #: (index, outside tensor) of each CONDITIONAL_INPUT
    results: list = field(default_factory=list)  #: (index, true tensor, false tensor) of each CONDITIONAL_OUTPUT
    true_nodes: list = field(default_factory=list)  #: body nodes the true branch needs, in order
    false_nodes: list = field(default_factory=list)

    def run(self, env, run_node, store) -> tuple[dict, dict]:
        """Only the selected branch runs (see :func:`run_loop` for the arguments)."""
        taken = bool(_scalar(env[self.condition]))
        frame: dict = {}
        scope = collections.ChainMap(frame, env)
        for index, tensor in self.entries:
            store(index, [env[tensor]], scope)
        for node in self.true_nodes if taken else self.false_nodes:
            run_node(node, scope)
        results: dict = {}
        out = collections.ChainMap(results, env)
        for index, if_true, if_false in self.results:
            store(index, [scope[if_true if taken else if_false]], out)
        return results, frame


@dataclass
class Loop(Region):
    """One TensorRT loop: its boundary layers and its body (nodes in dependency order)."""

    trip_limits: list = field(default_factory=list)  #: (index, kind, tensor)
    recurrences: list = field(default_factory=list)  #: (index, init tensor, next tensor, output tensor)
    iterators: list = field(default_factory=list)  #: (index, params, input tensor, output tensor)
    loop_outputs: list = field(default_factory=list)  #: (index, params, value tensor, length tensor, slice shape)
    condition_nodes: list = field(default_factory=list)  #: body nodes the WHILE conditions need, in order
    other_nodes: list = field(default_factory=list)  #: the rest of the body, in order

    def run(self, env, run_node, store) -> tuple[dict, dict]:
        return run_loop(self, env, run_node, store)


def _names(values) -> tuple[str, ...]:
    return tuple(v for v in values if v is not None)


def plan(records: list[dict], kinds: list, params: list) -> list:
    """The network's top-level nodes in an order where every node follows the nodes it reads from."""
    boundary: dict[tuple[str, str], list[int]] = {}
    for i, (kind, p) in enumerate(zip(kinds, params)):
        if kind is not None and kind.region in _FAMILIES:
            boundary.setdefault((kind.region, getattr(p, kind.region)), []).append(i)
    if not boundary:
        return [Layer(i, _names(r["inputs"]), tuple(o["name"] for o in r["outputs"])) for i, r in enumerate(records)]

    consumers: dict[str, list[int]] = collections.defaultdict(list)
    for i, rec in enumerate(records):
        for name in _names(rec["inputs"]):
            consumers[name].append(i)

    def close(start, stop: set[int]) -> set[int]:
        seen = set(start)
        stack = list(start)
        while stack:
            i = stack.pop()
            if i in stop:
                continue
            for out in records[i]["outputs"]:
                for c in consumers.get(out["name"], ()):
                    if c not in seen:
                        seen.add(c)
                        stack.append(c)
        return seen

    stops = {key: {i for i in layers if records[i]["type"] == _FAMILIES[key[0]][1]} for key, layers in boundary.items()}
    region = {key: close([i for i in layers if records[i]["type"] in _FAMILIES[key[0]][0]], stops[key]) | set(layers)
              for key, layers in boundary.items()}
    # a region whose boundary another's body reaches is nested in it: take all of it in, and what it leads to
    changed = True
    while changed:
        changed = False
        for outer in region:
            for inner, layers in boundary.items():
                if inner != outer and not region[inner] <= region[outer] and set(layers) & region[outer]:
                    region[outer] = close(region[outer] | region[inner], stops[outer])
                    changed = True
    for a in region:
        for b in region:
            if a < b and set(boundary[a]) & region[b] and set(boundary[b]) & region[a]:
                raise SnapshotError(f"{a[0]} {a[1]!r} and {b[0]} {b[1]!r} each contain the other")
    parent: dict = {}
    for inner in region:
        holders = [o for o in region if o != inner and set(boundary[inner]) & region[o]]
        parent[inner] = min(holders, key=lambda o: len(region[o])) if holders else None

    made = {key: (_make_loop if key[0] == "loop" else _make_conditional)(key[1], records, params, boundary[key],
                                                                          region[key])
            for key in region}
    children: dict = collections.defaultdict(list)
    for key, up in parent.items():
        children[up].append(key)

    def nodes_of(up) -> list:
        inside = set(range(len(records))) if up is None else region[up] - set(boundary[up])
        for child in children[up]:
            inside -= region[child]
        nodes = [Layer(i, _names(records[i]["inputs"]), tuple(o["name"] for o in records[i]["outputs"]))
                 for i in sorted(inside)]
        nodes += [made[child] for child in children[up]]
        return _order(nodes)

    for key, node in made.items():
        (_split_body if key[0] == "loop" else _split_branches)(node, nodes_of(key))
    return nodes_of(None)


def _outside_reads(records, members: set[int]) -> tuple[str, ...]:
    """The tensors a region's layers read that no layer of the region produces (sorted)."""
    produced = {o["name"] for i in members for o in records[i]["outputs"]}
    reads = {n for i in members for n in _names(records[i]["inputs"])}
    return tuple(sorted(reads - produced))


def _make_conditional(name, records, params, boundary: list[int], members: set[int]) -> Conditional:
    node = Conditional(name, frozenset(members), _outside_reads(records, members))
    outputs = []
    for i in boundary:
        rec = records[i]
        if rec["type"] == "CONDITION":
            node.condition = rec["inputs"][0]
        elif rec["type"] == "CONDITIONAL_INPUT":
            node.entries.append((i, rec["inputs"][0]))
        else:
            node.results.append((i, rec["inputs"][0], rec["inputs"][1]))
            outputs.append(rec["outputs"][0]["name"])
    if not node.condition:
        raise SnapshotError(f"conditional {name!r} has no condition")
    node.outputs = tuple(outputs)
    return node


def _needs(body: list, tensors) -> set[int]:
    """ids of the body nodes that computing ``tensors`` needs."""
    producer = {name: node for node in body for name in node.outputs}
    needed, stack = set(), list(tensors)
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(node.inputs)
    return needed


def _split_branches(node: Conditional, body: list) -> None:
    """The body nodes each branch needs: only the selected branch is evaluated."""
    for attr, tensors in (("true_nodes", [t for _, t, _ in node.results]),
                          ("false_nodes", [f for _, _, f in node.results])):
        needed = _needs(body, tensors)
        setattr(node, attr, [n for n in body if id(n) in needed])


def _make_loop(name, records, params, boundary: list[int], members: set[int]) -> Loop:
    loop = Loop(name, frozenset(members), _outside_reads(records, members))
    outputs = []
    for i in boundary:
        rec, p = records[i], params[i]
        ins = list(rec["inputs"]) + [None, None]
        out = rec["outputs"][0]["name"] if rec["outputs"] else None
        if rec["type"] == "TRIP_LIMIT":
            loop.trip_limits.append((i, p.kind, ins[0]))
        elif rec["type"] == "RECURRENCE":
            if ins[1] is None:
                raise SnapshotError(f"loop {name!r}: recurrence {rec['name']!r} has no next value (input 1)")
            loop.recurrences.append((i, ins[0], ins[1], out))
        elif rec["type"] == "ITERATOR":
            loop.iterators.append((i, p, ins[0], out))
        else:
            if p.kind != "LAST_VALUE" and ins[1] is None:
                raise SnapshotError(f"loop {name!r}: {p.kind} output {rec['name']!r} has no length (input 1)")
            loop.loop_outputs.append((i, p, ins[0], ins[1], _slice_shape(p, rec["outputs"][0]["shape"])))
            outputs.append(out)
    if not loop.trip_limits:
        raise SnapshotError(f"loop {name!r} has no trip limit")
    loop.outputs = tuple(outputs)
    return loop


def _slice_shape(p, shape) -> tuple[int, ...] | None:
    """One iteration's slice shape of a CONCATENATE/REVERSE output, when TensorRT inferred it statically."""
    if p.kind == "LAST_VALUE" or shape is None or any(d < 0 for d in shape):
        return None
    axis = p.axis + len(shape) if p.axis < 0 else p.axis
    return tuple(shape[:axis]) + tuple(shape[axis + 1:])


def _order(nodes: list) -> list:
    """Kahn's order over nodes, earliest snapshot position first among the ready ones."""
    producer = {}
    for k, node in enumerate(nodes):
        for name in node.outputs:
            producer[name] = k
    waiting, consumers, ready = {}, collections.defaultdict(list), []
    for k, node in enumerate(nodes):
        deps = {producer[n] for n in node.inputs if n in producer and producer[n] != k}
        waiting[k] = len(deps)
        for d in deps:
            consumers[d].append(k)
        if not deps:
            heapq.heappush(ready, (node.position, k))
    out = []
    while ready:
        _, k = heapq.heappop(ready)
        out.append(nodes[k])
        for c in consumers[k]:
            waiting[c] -= 1
            if not waiting[c]:
                heapq.heappush(ready, (nodes[c].position, c))
    if len(out) != len(nodes):
        raise SnapshotError("the network has a dependency cycle that is not a loop recurrence")
    return out


def _split_body(loop: Loop, body: list) -> None:
    """Separate the body nodes WHILE conditions need (run before deciding to iterate) from the rest."""
    needed = _needs(body, [t for _, kind, t in loop.trip_limits if kind == "WHILE"])
    loop.condition_nodes = [n for n in body if id(n) in needed]
    loop.other_nodes = [n for n in body if id(n) not in needed]


def _scalar(value) -> np.ndarray:
    arr = np.asarray(value)
    if arr.size != 1:
        raise ExecutorError(f"a loop trip limit / length must be a scalar, got shape {arr.shape}")
    return arr.reshape(())


def run_loop(loop: Loop, env, run_node, store) -> tuple[dict, dict]:
    """Run ``loop`` over the values in ``env`` (a mapping; read only).

    ``run_node(node, scope)`` evaluates one body node into ``scope`` (a writable mapping that also
    reads ``env``); ``store(index, results, scope)`` writes a boundary layer's outputs (with the
    executor's dtype/shape checks).  Returns the loop outputs and the last iteration's body values.
    """
    from . import iterator, loop_output  # noqa: PLC0415 - those kind modules import this one

    count = None
    whiles = []
    for _, kind, tensor in loop.trip_limits:
        if kind == "COUNT":
            c = int(_scalar(env[tensor]))
            count = c if count is None else min(count, c)
        else:
            whiles.append(tensor)
    state = {out: env[init] for _, init, _, out in loop.recurrences}
    stacked = {i: [] for i, p, *_ in loop.loop_outputs if p.kind != "LAST_VALUE"}
    last: dict = {}
    i = 0
    while count is None or i < count:
        if i >= MAX_ITERATIONS:
            raise ExecutorError(f"loop {loop.name!r} ran {MAX_ITERATIONS} iterations without its WHILE condition "
                                "turning false")
        frame: dict = {}
        scope = collections.ChainMap(frame, env)
        for index, _, _, out in loop.recurrences:
            store(index, [state[out]], scope)
        for index, p, tensor, _ in loop.iterators:
            store(index, [iterator.subscript(p, np.asarray(env[tensor]), i, count)], scope)
        for node in loop.condition_nodes:
            run_node(node, scope)
        if whiles and not all(bool(_scalar(scope[t])) for t in whiles):
            break
        for node in loop.other_nodes:
            run_node(node, scope)
        for index, _, value, _, _ in loop.loop_outputs:
            if index in stacked:
                stacked[index].append(np.asarray(scope[value]))
        state = {out: scope[nxt] for _, _, nxt, out in loop.recurrences}
        last = frame
        i += 1
    results: dict = {}
    scope = collections.ChainMap(results, env)
    for index, p, value, length, template in loop.loop_outputs:
        if p.kind == "LAST_VALUE":
            if value in state:
                result = state[value]
            elif value in last:
                result = last[value]
            else:
                raise ExecutorError(f"loop {loop.name!r}: LAST_VALUE of {value!r}, which is not a recurrence "
                                    "output, after no iteration")
        else:
            result = loop_output.stack(p, stacked[index], int(_scalar(env[length])), template)
        store(index, [result], scope)
    return results, last

