"""TensorRT loops: the boundary kinds in snapshots (round trip, back edges) and in the executor.

Value conformance against onnxruntime and numpy is in ``test_reference_conformance`` (the loop rows
come from ``tests/converter/loop_cases.py``); here: what a converter does to build a loop, that a
rebuilt loop is the same network, and the executor's loop-specific behaviour.
"""

from __future__ import annotations

import numpy as np
import pytest

from converter import layers
from converter import trt as trtshim
from converter.context import ConversionContext
from converter.errors import ExecutorError, SnapshotError
from converter.reference import ReferenceExecutor
from converter.snapshot import Snapshot
from tests.converter.loop_cases import (
    ONNX_LOOP_CASES,
    api_loops,
)
from tests.converter.onnx_cases import randn, snapshot_of

f32 = np.float32
API_LOOPS = api_loops()


def _api_snapshot(build, feeds) -> Snapshot:
    _, net = trtshim.create_network()
    keep = build(net, trtshim.module(), feeds)
    snap = Snapshot.from_network(net)
    del keep
    return snap


def _all_loop_snapshots():
    return ([(c.id, snapshot_of(c)) for c in ONNX_LOOP_CASES]
            + [(name, _api_snapshot(build, feeds)) for name, build, feeds, _ in API_LOOPS])


@pytest.mark.parametrize("name,snap", _all_loop_snapshots(), ids=lambda v: v if isinstance(v, str) else "")
def test_loop_snapshots_round_trip(name, snap, tmp_path):
    rebuilt = Snapshot.from_network(snap.to_network()[1])
    assert rebuilt == snap and rebuilt.digest() == snap.digest(), name
    snap.save(tmp_path)
    assert Snapshot.load(tmp_path) == snap
    assert Snapshot.from_bytes(snap.to_bytes()) == snap
    # a rebuilt network rebuilds again (the LoopTable is per network, not per snapshot)
    assert Snapshot.from_network(rebuilt.to_network()[1]).digest() == snap.digest()


def test_recurrence_next_is_a_back_edge():
    """The recurrence is recorded before the layer computing its next value, which reads it."""
    name, build, feeds, _ = API_LOOPS[0]
    snap = _api_snapshot(build, feeds)
    position = {rec["name"]: k for k, rec in enumerate(snap.layers)}
    producer = {o["name"]: rec["name"] for rec in snap.layers for o in rec["outputs"]}
    recurrences = [rec for rec in snap.layers if rec["type"] == "RECURRENCE"]
    assert recurrences
    for rec in recurrences:
        assert len(rec["inputs"]) == 2 and rec["inputs"][1] is not None
        assert position[producer[rec["inputs"][1]]] > position[rec["name"]]


def test_loop_params_read_back():
    name, build, feeds, _ = API_LOOPS[-1]  # the WHILE countdown
    snap = _api_snapshot(build, feeds)
    params = {rec["type"]: rec["params"] for rec in snap.layers if rec["type"] in ("TRIP_LIMIT", "LOOP_OUTPUT")}
    assert params["TRIP_LIMIT"] == {"loop": "W", "kind": "WHILE"}
    assert params["LOOP_OUTPUT"] == {"loop": "W", "kind": "LAST_VALUE", "axis": 0}
    _, build, feeds, _ = API_LOOPS[4]  # reverse iterator, REVERSE output on axis 1
    snap = _api_snapshot(build, feeds)
    kinds = {(rec["type"], tuple(sorted(rec["params"].items()))) for rec in snap.layers
             if rec["type"] in ("ITERATOR", "LOOP_OUTPUT")}
    assert ("ITERATOR", (("axis", 0), ("loop", "L"), ("reverse", True))) in kinds
    assert ("LOOP_OUTPUT", (("axis", 1), ("kind", "REVERSE"), ("loop", "L"))) in kinds


# ------------------------------------------------------------------ as a converter builds a loop

def _context_loop(steps: int):
    """``acc = acc * x + 1`` for ``steps`` iterations through ConversionContext.add, as a converter would."""
    trt = trtshim.module()
    _, net = trtshim.create_network()
    ctx = ConversionContext(net, None)
    x = net.add_input("x", trt.float32, (3,))
    acc0 = net.add_input("acc0", trt.float32, (3,))
    L = layers
    count = ctx.add(L.constant, [], L.constant.Params(shape=()), {"weights": np.array(steps, np.int32)},
                    suffix="count").get_output(0)
    one = ctx.add(L.constant, [], L.constant.Params(shape=(1,)), {"weights": np.ones(1, f32)},
                  suffix="one").get_output(0)
    ctx.add(L.trip_limit, [count], L.trip_limit.Params(loop="while_0", kind="COUNT"), suffix="trip")
    acc = ctx.add(L.recurrence, [acc0], L.recurrence.Params(loop="while_0"), suffix="acc")
    prod = ctx.add(L.elementwise, [acc.get_output(0), x], L.elementwise.Params(op="PROD"), suffix="prod")
    nxt = ctx.add(L.elementwise, [prod.get_output(0), one], L.elementwise.Params(op="SUM"), suffix="next")
    acc.set_input(1, nxt.get_output(0))
    final = ctx.add(L.loop_output, [acc.get_output(0)], L.loop_output.Params(loop="while_0"), suffix="final")
    seq = ctx.add(L.loop_output, [prod.get_output(0), count],
                  L.loop_output.Params(loop="while_0", kind="CONCATENATE", axis=1), suffix="seq")
    for layer in (final, seq):
        net.mark_output(layer.get_output(0))
    snap = Snapshot.from_network(net)
    return snap, ctx, final.get_output(0).name, seq.get_output(0).name, prod.get_output(0).name


@pytest.mark.parametrize("steps", [0, 1, 4])
def test_loop_built_through_a_context(steps):
    snap, ctx, final, seq, prod = _context_loop(steps)
    assert Snapshot.from_network(snap.to_network()[1]) == snap
    x, acc0 = randn(3, seed=50), randn(3, seed=51)
    acc, prods = acc0, []
    for _ in range(steps):
        prods.append(acc * x)
        acc = prods[-1] + 1
    got = ReferenceExecutor(snap).run({"x": x, "acc0": acc0}, keep_intermediates=True)
    np.testing.assert_allclose(got[final], acc, rtol=1e-6)
    want_seq = np.stack(prods, axis=1) if prods else np.zeros((3, 0), f32)
    np.testing.assert_allclose(got[seq], want_seq, rtol=1e-6)
    assert got[seq].shape == (3, steps)
    if steps:  # a body tensor reports its value in the last iteration
        np.testing.assert_allclose(got[prod], prods[-1], rtol=1e-6)
    else:
        assert prod not in got


def test_loop_table_is_per_network():
    """Two networks built with the same loop names get their own ILoop each."""
    a, b = _context_loop(2)[1], _context_loop(3)[1]
    tables = [next(k for k in ctx.keep_alive if isinstance(k, layers._loops.LoopTable)) for ctx in (a, b)]
    assert tables[0] is not tables[1] and tables[0].loops["while_0"] is not tables[1].loops["while_0"]
    assert [isinstance(k, layers._loops.LoopTable) for k in a.keep_alive].count(True) == 1


def test_boundary_layers_need_the_keep_list():
    _, net = trtshim.create_network()
    x = net.add_input("x", trtshim.module().float32, (3,))
    with pytest.raises(SnapshotError, match="keep list"):
        layers.recurrence.KIND.add(net, [x], layers.recurrence.Params(loop="L"), {}, None)


# ------------------------------------------------------------------ executor behaviour

def test_only_requested_loop_outputs_are_computed():
    name, build, feeds, expected = API_LOOPS[0]
    ex = ReferenceExecutor(_api_snapshot(build, feeds))
    got = ex.run(dict(feeds), outputs=["final"])
    assert list(got) == ["final"]
    np.testing.assert_allclose(got["final"], expected(feeds)["final"], rtol=1e-6)


@pytest.mark.parametrize("kind,axis,length,want", [
    ("CONCATENATE", 0, 2, [[1, 2], [3, 4]]),
    ("CONCATENATE", 1, 2, [[1, 3], [2, 4]]),
    ("REVERSE", 0, 2, [[3, 4], [1, 2]]),
    ("CONCATENATE", 0, 3, [[1, 2], [3, 4], [0, 0]]),  # the loop stopped early: zeros after the last iteration
    ("REVERSE", -1, 3, [[0, 3, 1], [0, 4, 2]]),
])
def test_stacked_loop_outputs(kind, axis, length, want):
    p = layers.loop_output.Params(loop="L", kind=kind, axis=axis)
    slices = [np.array([1, 2], f32), np.array([3, 4], f32)]
    np.testing.assert_array_equal(layers.loop_output.stack(p, slices, length, None), np.array(want, f32))


def test_stacked_loop_output_errors():
    p = layers.loop_output.Params(loop="L", kind="CONCATENATE")
    with pytest.raises(ExecutorError, match="room for 1"):
        layers.loop_output.stack(p, [np.zeros(2, f32)] * 2, 1, None)
    with pytest.raises(ExecutorError, match="no known slice shape"):
        layers.loop_output.stack(p, [], 3, None)
    assert layers.loop_output.stack(p, [], 3, (2,)).shape == (3, 2)


def test_recurrence_without_next_value_is_refused():
    name, build, feeds, _ = API_LOOPS[0]
    snap = _api_snapshot(build, feeds)
    for rec in snap.layers:
        if rec["type"] == "RECURRENCE":
            rec["inputs"] = rec["inputs"][:1]
    with pytest.raises(SnapshotError, match="no next value"):
        ReferenceExecutor(snap)


def test_iterating_beyond_the_tensor_is_an_error():
    name, build, feeds, _ = API_LOOPS[0]
    snap = _api_snapshot(build, feeds)
    trip = next(rec for rec in snap.layers if rec["type"] == "TRIP_LIMIT")
    producer = next(rec for rec in snap.layers if any(o["name"] == trip["inputs"][0] for o in rec["outputs"]))
    snap.weights[producer["weights"]["weights"]] = np.array(6, np.int32)  # 6 iterations over 4 rows
    with pytest.raises(ExecutorError, match="beyond the tensor"):
        ReferenceExecutor(snap).run(dict(feeds))


# ------------------------------------------------------------------ if-conditionals

def _context_conditional():
    """``y = exp(x) if c else -x`` through ConversionContext.add, as a converter would."""
    trt = trtshim.module()
    _, net = trtshim.create_network()
    ctx = ConversionContext(net, None)
    x = net.add_input("x", trt.float32, (3,))
    c = net.add_input("c", trt.bool, ())
    L = layers
    ctx.add(L.condition, [c], L.condition.Params(conditional="if_0"), suffix="cond")
    xin = ctx.add(L.conditional_input, [x], L.conditional_input.Params(conditional="if_0"), suffix="x").get_output(0)
    t = ctx.add(L.unary, [xin], L.unary.Params(op="EXP"), suffix="then").get_output(0)
    f = ctx.add(L.unary, [xin], L.unary.Params(op="NEG"), suffix="else").get_output(0)
    y = ctx.add(L.conditional_output, [t, f], L.conditional_output.Params(conditional="if_0"), suffix="y")
    net.mark_output(y.get_output(0))
    return Snapshot.from_network(net), y.get_output(0).name, t.name, f.name


@pytest.mark.parametrize("taken", [True, False])
def test_conditional_built_through_a_context(taken):
    snap, y, then_name, else_name = _context_conditional()
    rebuilt = Snapshot.from_network(snap.to_network()[1])
    assert rebuilt == snap and rebuilt.digest() == snap.digest()
    x = randn(3, seed=52)
    got = ReferenceExecutor(snap).run({"x": x, "c": np.array(taken)}, keep_intermediates=True)
    np.testing.assert_allclose(got[y], np.exp(x) if taken else -x, rtol=1e-6)
    # only the selected branch runs
    assert (then_name in got, else_name in got) == (taken, not taken)
