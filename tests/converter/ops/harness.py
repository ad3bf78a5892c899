"""Table-driven op conformance: one row = one small TF graph converted and run on the reference executor.

A :class:`Case` holds a Python function over TF tensors, the input specs, the
ops it exercises and, optionally, a reference function (for graphs TF's CPU
kernels cannot run, such as NCHW convolutions).  :func:`run_case` builds a
``tf.function`` with an input signature, freezes it, parses and constructs the
TensorRT network, runs its snapshot on :class:`ReferenceExecutor` and compares
every output with TensorFlow (fp32: rtol 1e-4, atol 1e-5; integers and bools
exactly).  Cases that need ops ``freeze`` strips (Snapshot, StopGradient,
IdentityN…) build a raw GraphDef instead (``raw=True``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RTOL = 1e-4
ATOL = 1e-5
#: also build a serialized engine for every case (TensorRT-RTX builds without a GPU), so layer parameters TensorRT
#: itself would refuse fail here too; TF2TRT_OPS_BUILD_ENGINES=0 skips it
BUILD_ENGINES = os.environ.get("TF2TRT_OPS_BUILD_ENGINES", "1") != "0"


@dataclass(frozen=True)
class In:
    """An input: shape, dtype and the value range of its random data."""

    shape: tuple
    dtype: str = "float32"
    low: float | None = None
    high: float | None = None
    values: tuple | None = None  #: fixed values (flattened) instead of random data

    def make(self, rng: np.random.Generator) -> np.ndarray:
        dtype = np.dtype(self.dtype)
        if self.values is not None:
            return np.asarray(self.values, dtype=dtype).reshape(self.shape)
        if dtype == np.bool_:
            return rng.random(self.shape) < 0.5
        if dtype.kind in "iu":
            low = -5 if self.low is None else int(self.low)
            high = 6 if self.high is None else int(self.high)
            return rng.integers(low, high, self.shape).astype(dtype)
        if self.low is not None or self.high is not None:
            return rng.uniform(self.low, self.high, self.shape).astype(dtype)
        return rng.standard_normal(self.shape).astype(dtype)


def f32(*shape, low=None, high=None) -> In:
    return In(tuple(shape), "float32", low, high)


def i32(*shape, low=None, high=None) -> In:
    return In(tuple(shape), "int32", low, high)


def boolean(*shape) -> In:
    return In(tuple(shape), "bool")


@dataclass
class Case:
    """One table row: ``fn(*tensors)`` returns a tensor or a tuple of tensors."""

    id: str
    fn: Callable
    inputs: list
    ops: tuple  #: TF ops this case exercises (each must appear in the frozen graph)
    ref: Callable | None = None  #: numpy feeds → outputs, when TF's CPU kernels cannot run ``fn``
    raw: bool = False  #: build a plain GraphDef (keeps ops that freezing strips)
    layers: bool = True  #: the ops under test must produce layers named after their nodes
    seed: int = 0
    rtol: float = RTOL
    atol: float = ATOL
    marks: tuple = field(default_factory=tuple)

    def param(self):
        import pytest

        return pytest.param(self, id=self.id, marks=list(self.marks))


def case(id: str, fn: Callable, inputs, ops, **kw) -> Case:
    ops = (ops,) if isinstance(ops, str) else tuple(ops)
    return Case(id, fn, list(inputs), ops, **kw)


def params(table: list[Case]):
    ids = [c.id for c in table]
    dupes = {i for i in ids if ids.count(i) > 1}
    assert not dupes, f"duplicate case ids {sorted(dupes)}"
    return [c.param() for c in table]


# ------------------------------------------------------------------ building
def _specs(c: Case):
    import tensorflow as tf

    return [tf.TensorSpec(spec.shape, tf.dtypes.as_dtype(spec.dtype), name=f"x{i}") for i, spec in enumerate(c.inputs)]


def feeds_for(c: Case) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(c.seed)
    return {f"x{i}": spec.make(rng) for i, spec in enumerate(c.inputs)}


def freeze_case(c: Case):
    """The case's FrozenGraph (and the tf.function, None for raw cases)."""
    import tensorflow as tf

    from converter.freeze import FrozenGraph, TensorSpec, add_shapes

    if not c.raw:
        func = tf.function(c.fn, input_signature=_specs(c), autograph=False)
        from converter.freeze import freeze

        return freeze(func), func
    graph = tf.Graph()
    with graph.as_default():
        placeholders = [tf.compat.v1.placeholder(tf.dtypes.as_dtype(s.dtype), s.shape, name=f"x{i}")
                        for i, s in enumerate(c.inputs)]
        result = c.fn(*placeholders)
        results = list(result) if isinstance(result, (list, tuple)) else [result]
        names = []
        for i, t in enumerate(results):
            name = "output_0" if len(results) == 1 else f"output_{i}"
            tf.identity(t, name=name)
            names.append(name)
    gd = add_shapes(graph.as_graph_def())
    specs = [TensorSpec(f"x{i}", tuple(s.shape), s.dtype) for i, s in enumerate(c.inputs)]
    return FrozenGraph(gd, specs, names), None


def tf_outputs(c: Case, frozen, func, feeds: dict) -> list[np.ndarray]:
    args = [feeds[f"x{i}"] for i in range(len(c.inputs))]
    if c.ref is not None:
        result = c.ref(*args)
    elif func is not None:
        result = func(*args)
    else:
        from converter.verify import TensorFlowRunner

        runner = TensorFlowRunner(frozen)
        try:
            got = runner.run(feeds, list(frozen.outputs))
        finally:
            runner.close()
        return [np.asarray(got[name]) for name in frozen.outputs]
    results = list(result) if isinstance(result, (list, tuple)) else [result]
    return [np.asarray(r) for r in results]


@dataclass
class Outcome:
    frozen: object
    graph: object
    network: object
    outputs: dict
    reference: list


def convert_case(c: Case):
    from converter.construct import construct
    from converter.graph import parse

    frozen, func = freeze_case(c)
    graph = parse(frozen)
    network = construct(graph)
    return frozen, func, graph, network


def run_case(c: Case) -> Outcome:
    """Convert and run ``c``; assert every output matches TensorFlow."""
    from converter.reference import ReferenceExecutor
    from converter.verify import compare

    frozen, func, graph, network = convert_case(c)
    frozen_ops = {n.op for n in frozen.graph_def.node}  # and the ops of control-flow bodies
    frozen_ops |= {n.op for f in frozen.graph_def.library.function for n in f.node_def}
    missing = set(c.ops) - frozen_ops
    assert not missing, f"case {c.id} declares ops {sorted(missing)} its graph lacks (it has {sorted(frozen_ops)})"
    feeds = feeds_for(c)
    got = ReferenceExecutor(network.snapshot).run(feeds)
    ref = tf_outputs(c, frozen, func, feeds)
    assert len(ref) == len(frozen.outputs)
    problems = []
    for name, expected in zip(frozen.outputs, ref):
        out = got[name]
        exact = expected.dtype.kind in "biu"
        rtol, atol = (0.0, 0.0) if exact else (c.rtol, c.atol)
        cmp = compare(name, out, expected, rtol, atol)
        if not cmp.passed:
            problems.append(f"{name}: max_abs_err={cmp.max_abs_err:.3g} max_rel_err={cmp.max_rel_err:.3g} "
                            f"out_of_tol={cmp.out_of_tolerance:.2%} {cmp.message}\n got={np.asarray(out)!r}\n "
                            f"ref={expected!r}")
        if exact:
            assert np.dtype(out.dtype).kind in "biu", f"{name}: TF gives {expected.dtype}, TensorRT {out.dtype}"
    assert not problems, f"case {c.id}:\n" + "\n".join(problems)
    if c.layers:
        check_layer_names(c, frozen, graph, network)
    if BUILD_ENGINES:
        from converter.engine import optimize_network

        assert optimize_network(network), f"case {c.id}: TensorRT built no engine"
    return Outcome(frozen, graph, network, got, ref)


def layer_names(network) -> list[str]:
    net = network.network
    return [net.get_layer(i).name for i in range(net.num_layers)]


def check_layer_names(c: Case, frozen, graph, network) -> None:
    """Every layer is named after a TF node; each op under test that yields a tensor named a layer."""
    from converter.registry import REGISTRY

    nodes = {n.name: n.op for n in frozen.graph_def.node}
    names = layer_names(network)

    def owner(layer: str) -> str | None:
        best = None
        for node in nodes:
            if layer == node or layer.startswith(node + "/") or layer.startswith(node + "_"):
                if best is None or len(node) > len(best):
                    best = node
        return best

    orphans = [n for n in names if owner(n) is None and not n.startswith("tf2trt")]
    assert not orphans, f"layers not named after a TF node: {orphans}"
    owners = {owner(n) for n in names}
    for op in c.ops:
        entry = REGISTRY.get(op)
        if entry is None or not entry.layers:
            continue
        # nodes folded to constants or fused into another node's layer have no layer of their own
        op_nodes = [n.name for n in graph.nodes if n.op == op and f"{n.name}:0" in network.tensor_map]
        if not op_nodes:
            continue
        assert any(n in owners for n in op_nodes), \
            f"no layer named after the {op} node(s) {op_nodes}; layers: {names}"
