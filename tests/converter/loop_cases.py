"""Loop conformance cases: ONNX ``Loop``/``Scan`` models and loops built through the loop layer kinds.

The ONNX cases go into the ONNX table of ``test_reference_conformance`` (parsed by TensorRT's own ONNX
parser, which lowers them to TRIP_LIMIT / RECURRENCE / ITERATOR / LOOP_OUTPUT layers, run by the
executor and compared with onnxruntime).  :func:`api_loops` builds loops the way a converter does —
``kind.add(network, inputs, Params(loop=...), {}, keep)`` with one ``keep`` list per network — for the
API table, with numpy expectations.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from converter import layers
from tests.converter.onnx_cases import OnnxCase, randn

f32 = np.float32
vi = helper.make_tensor_value_info
_T = np.array(True)


def _loop_body(nodes, state: list[tuple[str, int, list]], outs: list[tuple[str, int, list]], prefix=""):
    """An ONNX Loop body: (iteration, cond, *state) -> (cond_out, *state_out, *scan outputs)."""
    inputs = [vi(f"{prefix}i", TensorProto.INT64, []), vi(f"{prefix}cond", TensorProto.BOOL, [])]
    inputs += [vi(n, t, s) for n, t, s in state]
    outputs = [vi(f"{prefix}cond_out", TensorProto.BOOL, [])] + [vi(n, t, s) for n, t, s in outs]
    return helper.make_graph(nodes, "body", inputs, outputs)


def _counter_accumulate():
    """for i < 5: acc += x * i  (loop-carried accumulator and the iteration number)."""
    body = _loop_body([helper.make_node("Cast", ["i"], ["fi"], to=TensorProto.FLOAT),
                       helper.make_node("Mul", ["x", "fi"], ["xi"]),
                       helper.make_node("Add", ["acc", "xi"], ["acc_out"]),
                       helper.make_node("Identity", ["cond"], ["cond_out"])],
                      [("acc", TensorProto.FLOAT, [2, 3])], [("acc_out", TensorProto.FLOAT, [2, 3])])
    return OnnxCase("loop_count_accumulate", [helper.make_node("Loop", ["M", "c0", "a0"], ["acc_final"], body=body)],
                    {"x": randn(2, 3, seed=41), "a0": randn(2, 3, seed=42)},
                    {"M": np.array(5, np.int64), "c0": _T}, [("acc_final", f32)])


def _scan_outputs():
    """for i < 4: h = tanh(h @ w + x); scan outputs h and h*2 (CONCATENATE), final h (LAST_VALUE)."""
    body = _loop_body([helper.make_node("MatMul", ["h", "w"], ["hw"]),
                       helper.make_node("Add", ["hw", "x"], ["pre"]),
                       helper.make_node("Tanh", ["pre"], ["h_out"]),
                       helper.make_node("Mul", ["h_out", "two"], ["h2"]),
                       helper.make_node("Identity", ["cond"], ["cond_out"])],
                      [("h", TensorProto.FLOAT, [1, 4])],
                      [("h_out", TensorProto.FLOAT, [1, 4]), ("h_out_scan", TensorProto.FLOAT, [1, 4]),
                       ("h2", TensorProto.FLOAT, [1, 4])])
    body.node.append(helper.make_node("Identity", ["h_out"], ["h_out_scan"]))
    return OnnxCase("loop_scan_outputs",
                    [helper.make_node("Loop", ["M", "c0", "h0"], ["h_final", "hs", "h2s"], body=body)],
                    {"x": randn(1, 4, seed=43), "h0": randn(1, 4, seed=44)},
                    {"M": np.array(4, np.int64), "c0": _T, "w": randn(4, 4, seed=45, scale=0.5),
                     "two": np.array(2.0, f32)},
                    [("h_final", f32), ("hs", f32), ("h2s", f32)])


def _while(trip_count: bool):
    """while sum(acc) < limit: acc = acc * 1.5 + 1 (data-dependent stop; optionally also a trip count)."""
    body = _loop_body([helper.make_node("Mul", ["acc", "k"], ["scaled"]),
                       helper.make_node("Add", ["scaled", "one"], ["acc_out"]),
                       helper.make_node("ReduceSum", ["acc_out"], ["total"], keepdims=0),
                       helper.make_node("Less", ["total", "limit"], ["cond_out"]),
                       helper.make_node("Add", ["n", "one"], ["n_out"])],
                      [("acc", TensorProto.FLOAT, [3]), ("n", TensorProto.FLOAT, [])],
                      [("acc_out", TensorProto.FLOAT, [3]), ("n_out", TensorProto.FLOAT, [])])
    consts = {"c0": _T, "k": np.array(1.5, f32), "one": np.array(1.0, f32), "n0": np.array(0.0, f32)}
    if trip_count:
        consts["M"] = np.array(3, np.int64)  # stops first: the condition would allow 6 iterations
    return OnnxCase(f"loop_while{'_and_count' if trip_count else ''}",
                    [helper.make_node("Loop", ["M" if trip_count else "", "c0", "a0", "n0"], ["acc_final", "n_final"],
                                      body=body)],
                    {"a0": np.array([0.5, -0.25, 1.0], f32), "limit": np.array(60.0, f32)}, consts,
                    [("acc_final", f32), ("n_final", f32)])


def _nested():
    """for i < 3: a = Loop(for j < 2: b += a)(a * x): a loop inside a loop's body."""
    inner = _loop_body([helper.make_node("Add", ["b", "a"], ["b_out"]),
                        helper.make_node("Identity", ["inner_cond"], ["inner_cond_out"])],
                       [("b", TensorProto.FLOAT, [3])], [("b_out", TensorProto.FLOAT, [3])], prefix="inner_")
    outer = _loop_body([helper.make_node("Mul", ["a", "x"], ["ax"]),
                        helper.make_node("Loop", ["N", "c0", "ax"], ["a_out"], body=inner),
                        helper.make_node("Identity", ["cond"], ["cond_out"])],
                       [("a", TensorProto.FLOAT, [3])], [("a_out", TensorProto.FLOAT, [3])])
    return OnnxCase("loop_nested", [helper.make_node("Loop", ["M", "c0", "a0"], ["a_final"], body=outer)],
                    {"a0": np.array([1.0, 2.0, 3.0], f32), "x": np.array([0.5, 1.0, -1.0], f32)},
                    {"M": np.array(3, np.int64), "N": np.array(2, np.int64), "c0": _T}, [("a_final", f32)])


def _scan(name: str, xs_shape, **attrs):
    """ONNX Scan: s += x_t; y_t = s * x_t (ITERATOR over xs, CONCATENATE/REVERSE of y)."""
    body = helper.make_graph([helper.make_node("Add", ["s", "xt"], ["s_out"]),
                              helper.make_node("Mul", ["s_out", "xt"], ["y"])], "scan_body",
                             [vi("s", TensorProto.FLOAT, [3]), vi("xt", TensorProto.FLOAT, [3])],
                             [vi("s_out", TensorProto.FLOAT, [3]), vi("y", TensorProto.FLOAT, [3])])
    return OnnxCase(name, [helper.make_node("Scan", ["s0", "xs"], ["s_final", "ys"], body=body, num_scan_inputs=1,
                                            **attrs)],
                    {"s0": randn(3, seed=46), "xs": randn(*xs_shape, seed=47)}, {},
                    [("s_final", f32), ("ys", f32)])


def _if_branches():
    then = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["t"]), helper.make_node("Exp", ["t"], ["y_then"])],
                             "then", [], [vi("y_then", TensorProto.FLOAT, [3])])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["y_else"])], "else", [],
                              [vi("y_else", TensorProto.FLOAT, [3])])
    return then, other


def _if(name: str, x):
    """``y = exp(2x) if sum(x) > 0 else -x`` (a CONDITION, CONDITIONAL_INPUT/OUTPUT; one branch runs)."""
    then, other = _if_branches()
    return OnnxCase(name, [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
                           helper.make_node("Greater", ["s", "zero"], ["c"]),
                           helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
                    {"x": np.asarray(x, f32)}, {"two": np.array(2.0, f32), "zero": np.array(0.0, f32)}, [("y", f32)])


def _if_in_loop():
    """for i < 4: acc = (acc * 2 if i is even else acc - 1): a conditional in a loop body."""
    then = helper.make_graph([helper.make_node("Mul", ["acc", "two"], ["even"])], "then", [],
                             [vi("even", TensorProto.FLOAT, [2])])
    other = helper.make_graph([helper.make_node("Sub", ["acc", "one"], ["odd"])], "else", [],
                              [vi("odd", TensorProto.FLOAT, [2])])
    body = _loop_body([helper.make_node("Mod", ["i", "k2"], ["parity"]),
                       helper.make_node("Equal", ["parity", "k0"], ["is_even"]),
                       helper.make_node("If", ["is_even"], ["acc_out"], then_branch=then, else_branch=other),
                       helper.make_node("Identity", ["cond"], ["cond_out"])],
                      [("acc", TensorProto.FLOAT, [2])], [("acc_out", TensorProto.FLOAT, [2])])
    return OnnxCase("if_in_loop", [helper.make_node("Loop", ["M", "c0", "a0"], ["acc_final"], body=body)],
                    {"a0": np.array([1.5, -2.0], f32)},
                    {"M": np.array(4, np.int64), "c0": _T, "two": np.array(2.0, f32), "one": np.array(1.0, f32),
                     "k2": np.array(2, np.int64), "k0": np.array(0, np.int64)}, [("acc_final", f32)])


ONNX_LOOP_CASES = [
    _if("if_then", [1.0, 2.0, -0.5]), _if("if_else", [-1.0, 0.25, -0.5]), _if_in_loop(),
    _counter_accumulate(), _scan_outputs(), _while(False), _while(True), _nested(),
    _scan("scan_forward", (5, 3)),
    _scan("scan_reverse_input", (5, 3), scan_input_directions=[1]),
    _scan("scan_reverse_output", (5, 3), scan_output_directions=[1]),
    _scan("scan_axis1", (3, 4), scan_input_axes=[1], scan_output_axes=[1]),
]


# ============================================================================ through the kinds

def _const(net, keep, arr):
    arr = np.asarray(arr)
    return layers.constant.KIND.add(net, [], layers.constant.Params(shape=arr.shape), {"weights": arr},
                                    keep).get_output(0)


def _ew(net, a, b, op):
    return layers.elementwise.KIND.add(net, [a, b], layers.elementwise.Params(op=op)).get_output(0)


def build_running_sum(net, trt, feeds, *, reverse_iter=False, out_kind="CONCATENATE", axis=0, loop="L"):
    """``y_t = acc_t + x[t]`` over the rows of ``x``; ``acc`` starts at ``init``.

    Outputs: ``sums`` (the y_t stacked by ``out_kind`` along ``axis``), ``final`` (LAST_VALUE of the
    recurrence: the accumulator after the last iteration) and ``rows`` (the iterator's slices,
    stacked: the order the loop saw them).
    """
    keep: list = []
    x = net.add_input("x", trt.float32, feeds["x"].shape)
    init = net.add_input("init", trt.float32, feeds["init"].shape)
    steps = feeds["x"].shape[0]
    count = _const(net, keep, np.array(steps, np.int32))
    P = layers
    P.trip_limit.KIND.add(net, [count], P.trip_limit.Params(loop=loop, kind="COUNT"), {}, keep)
    rec = P.recurrence.KIND.add(net, [init], P.recurrence.Params(loop=loop), {}, keep)  # next set below
    row = P.iterator.KIND.add(net, [x], P.iterator.Params(loop=loop, axis=0, reverse=reverse_iter), {},
                              keep).get_output(0)
    y = _ew(net, rec.get_output(0), row, "SUM")
    rec.set_input(1, y)
    outs = {
        "sums": P.loop_output.KIND.add(net, [y, count], P.loop_output.Params(loop=loop, kind=out_kind, axis=axis), {},
                                       keep),
        "final": P.loop_output.KIND.add(net, [rec.get_output(0)], P.loop_output.Params(loop=loop), {}, keep),
        "rows": P.loop_output.KIND.add(net, [row, count], P.loop_output.Params(loop=loop, kind="CONCATENATE"), {},
                                       keep),
    }
    for name, layer in outs.items():
        layer.get_output(0).name = name
        net.mark_output(layer.get_output(0))
    return keep


def expected_running_sum(feeds, *, reverse_iter=False, out_kind="CONCATENATE", axis=0):
    x, acc = feeds["x"], feeds["init"]
    rows = x[::-1] if reverse_iter else x
    ys = []
    for row in rows:
        acc = acc + row
        ys.append(acc)
    sums = np.stack(ys[::-1] if out_kind == "REVERSE" else ys, axis=axis)
    return {"sums": sums, "final": acc, "rows": rows}


def build_countdown(net, trt, feeds, loop="W"):
    """``while n > 0: n -= 1; s += n`` — a WHILE trip limit on a recurrence-derived condition."""
    keep: list = []
    n0 = net.add_input("n0", trt.float32, ())
    P = layers
    zero, one = _const(net, keep, np.array(0, f32)), _const(net, keep, np.array(1, f32))
    n = P.recurrence.KIND.add(net, [n0, None], P.recurrence.Params(loop=loop), {}, keep)
    s = P.recurrence.KIND.add(net, [zero], P.recurrence.Params(loop=loop), {}, keep)
    go = _ew(net, n.get_output(0), zero, "GREATER")
    P.trip_limit.KIND.add(net, [go], P.trip_limit.Params(loop=loop, kind="WHILE"), {}, keep)
    n_next = _ew(net, n.get_output(0), one, "SUB")
    n.set_input(1, n_next)
    s.set_input(1, _ew(net, s.get_output(0), n_next, "SUM"))
    for name, rec in (("n_final", n), ("s_final", s)):
        out = P.loop_output.KIND.add(net, [rec.get_output(0)], P.loop_output.Params(loop=loop), {}, keep)
        out.get_output(0).name = name
        net.mark_output(out.get_output(0))
    return keep


def expected_countdown(feeds):
    n, s = float(feeds["n0"]), 0.0
    while n > 0:
        n -= 1
        s += n
    return {"n_final": np.array(n, f32), "s_final": np.array(s, f32)}


def api_loops() -> list[tuple]:
    """(id, build, feeds, expected) for the API table."""
    x = randn(4, 2, 3, seed=48)
    feeds = {"x": x, "init": randn(2, 3, seed=49)}
    out = []
    for name, kw in {"concat": {}, "concat_axis2": dict(axis=2), "reverse_out": dict(out_kind="REVERSE"),
                     "reverse_iter": dict(reverse_iter=True),
                     "reverse_both_axis1": dict(reverse_iter=True, out_kind="REVERSE", axis=1)}.items():
        out.append((f"api_loop_{name}", lambda n, t, f, kw=kw: build_running_sum(n, t, f, **kw), feeds,
                    lambda f, kw=kw: expected_running_sum(f, **kw)))
    for n0 in (4.0, 0.0, 2.5):
        out.append((f"api_loop_while_{n0:g}", build_countdown, {"n0": np.array(n0, f32)}, expected_countdown))
    return out
