"""Control-flow ops as conformance rows: loops (While/StatelessWhile and the TensorList ops of their bodies)
and conditionals (If/StatelessIf, Case/StatelessCase), each a small tf.function frozen, converted and compared
with TensorFlow like every other op.  Real models through the same converters (Keras RNN layers, SavedModels)
are in ``test_loops.py`` and ``test_conditionals.py``."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from .harness import f32, i32, case, params, run_case

_RNG = np.random.default_rng(11)
W = tf.constant(_RNG.standard_normal((4, 4)).astype(np.float32) * 0.5)
V = tf.Variable(_RNG.standard_normal((4,)).astype(np.float32))  # captured by a body: a stateful While


def _counter(x):
    return tf.while_loop(lambda i, h: i < 5, lambda i, h: (i + 1, tf.tanh(h @ W + x)), (0, x))[1]


def _counter_reading_a_variable(x):
    return tf.while_loop(lambda i, h: i < 3, lambda i, h: (i + 1, h * V + 1.0), (0, x))[1]


def _data_dependent(x):
    def cond(i, h):
        return tf.logical_and(i < 20, tf.reduce_sum(tf.abs(h)) < 50.0)

    return tf.while_loop(cond, lambda i, h: (i + 1, h * 1.5 + 0.25), (0, x))[1]


def _map_fn(x):
    return tf.map_fn(lambda row: tf.reduce_sum(row * row) + row, x)


def _scan(x):
    return tf.scan(lambda acc, row: acc * 0.5 + row, x, initializer=tf.zeros_like(x[0]))


def _unstack_in_loop(x):
    """A Python-style loop over a TensorArray: TensorListFromTensor + GetItem reads, SetItem + Stack writes."""
    ta_in = tf.TensorArray(tf.float32, size=x.shape[0]).unstack(x)
    ta_out = tf.TensorArray(tf.float32, size=x.shape[0])

    def body(i, ta):
        return i + 1, ta.write(i, tf.nn.relu(ta_in.read(i)) * 2.0)

    return tf.while_loop(lambda i, ta: i < x.shape[0], body, (0, ta_out))[1].stack()


def _cond(p, x):
    return tf.cond(p[0] > 0, lambda: tf.nn.relu(x @ W), lambda: tf.sigmoid(x) - 1.0)


def _cond_reading_a_variable(p, x):
    return tf.cond(p[0] > 0, lambda: x * V, lambda: x + V)


def _switch_case(k, x):
    return tf.switch_case(k[0], [lambda: x * 2.0, lambda: tf.tanh(x), lambda: x @ W])


def _switch_case_reading_a_variable(k, x):
    return tf.switch_case(k[0], [lambda: x * V, lambda: x - V])


TABLE = [
    case("StatelessWhile/counter", _counter, [f32(2, 4)], ("StatelessWhile",)),
    case("While/reads_a_variable", _counter_reading_a_variable, [f32(3, 4)], ("While",)),
    case("StatelessWhile/data_dependent", _data_dependent, [f32(2, 3)], ("StatelessWhile",)),
    case("TensorList/map_fn", _map_fn, [f32(5, 3)],
         ("StatelessWhile", "TensorListFromTensor", "TensorListReserve", "TensorListGetItem", "TensorListSetItem",
          "TensorListStack")),
    case("TensorList/scan", _scan, [f32(6, 2)], ("StatelessWhile", "TensorListFromTensor", "TensorListStack")),
    case("TensorList/TensorArray", _unstack_in_loop, [f32(4, 3)],
         ("StatelessWhile", "TensorListFromTensor", "TensorListSetItem", "TensorListStack")),
    case("StatelessIf/true", _cond, [f32(1, low=0.5, high=1.0), f32(2, 4)], ("StatelessIf",)),
    case("StatelessIf/false", _cond, [f32(1, low=-1.0, high=-0.5), f32(2, 4)], ("StatelessIf",)),
    case("If/reads_a_variable", _cond_reading_a_variable, [f32(1, low=0.5, high=1.0), f32(2, 4)], ("If",)),
    case("StatelessCase/branch1", _switch_case, [i32(1, low=1, high=2), f32(2, 4)], ("StatelessCase",)),
    case("Case/reads_a_variable", _switch_case_reading_a_variable, [i32(1, low=0, high=1), f32(2, 4)], ("Case",)),
    case("StatelessCase/out_of_range_is_default", _switch_case, [i32(1, low=7, high=8), f32(2, 4)],
         ("StatelessCase",)),
]


@pytest.mark.parametrize("c", params(TABLE))
def test_control_flow_op(c):
    run_case(c)
