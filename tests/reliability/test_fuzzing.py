"""Hypothesis fuzzing of what reads untrusted input: the GraphDef reader, the support check, the config loader.

Why: a model file or a config from elsewhere is arbitrary bytes.  Whatever
they hold, tf2trt must answer with one of its own errors (a
:class:`converter.errors.Tf2TrtError`, a :class:`pipeline.config.ConfigError`)
— never a raw ``KeyError``/``IndexError`` from deep inside (reported as a
tf2trt bug, exit 3), and never a hang.

Bounded and repeatable: ``derandomize=True`` (the examples are a function of
the test, not of a seed or a database), a fixed example budget, a per-example
deadline, and a SIGALRM guard that fails a test whose whole run exceeds its
budget (a hang inside C++ would otherwise stall CI).
"""

from __future__ import annotations

import copy
import signal
from contextlib import contextmanager

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the [dev] extra")
import tempfile  # noqa: E402

from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402

set_hypothesis_home_dir(tempfile.mkdtemp(prefix="tf2trt-hypothesis-"))  # never a .hypothesis/ in the tree
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FUZZ = settings(derandomize=True, database=None, deadline=5000, print_blob=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def fuzz(examples: int) -> settings:
    """Deterministic settings with an example budget (no example database: nothing written to the tree)."""
    return settings(_FUZZ, max_examples=examples)


@contextmanager
def time_limit(seconds: int, what: str):
    """Fail (not hang) when ``what`` runs over ``seconds``."""
    def alarm(signum, frame):
        raise TimeoutError(f"{what} ran over {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ----------------------------------------------------------------------------- the GraphDef reader + support check


@pytest.fixture(scope="module")
def frozen_cnn():
    """A real frozen graph (conv, BN, pooling, dense, softmax) to mutate."""
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO))
    from converter import freeze
    from tests.converter.models import small_cnn

    return freeze(small_cnn(), inputs={"image": (1, 16, 16, 3)})


_OPS = ["Conv2D", "MatMul", "Relu", "Identity", "NoOp", "Placeholder", "Const", "Switch", "Merge", "Enter",
        "TensorArrayV3", "ReadFile", "Reshape", "ConcatV2", "Transpose", "Mean", "Softmax", "Gather", "GatherV2",
        "Pad", "BiasAdd", "AddV2", "Pack", "StridedSlice", "NotAnOp", ""]

_mutation = st.one_of(
    st.tuples(st.just("drop_node"), st.integers(0, 10**6)),
    st.tuples(st.just("set_op"), st.integers(0, 10**6), st.sampled_from(_OPS)),
    st.tuples(st.just("drop_input"), st.integers(0, 10**6)),
    st.tuples(st.just("add_input"), st.integers(0, 10**6),
              st.one_of(st.sampled_from(["missing", "^missing", "image:7", "image", ":0", "", "a:b:c", "image:-1"]),
                        st.text(max_size=12))),
    st.tuples(st.just("swap_inputs"), st.integers(0, 10**6)),
    st.tuples(st.just("drop_attr"), st.integers(0, 10**6), st.integers(0, 20)),
    st.tuples(st.just("attr_int"), st.integers(0, 10**6),
              st.sampled_from(["T", "strides", "padding", "data_format", "value", "dtype", "axis", "N",
                               "transpose_a", "ksize", "keep_dims", "_output_shapes", "shape"]),
              st.integers(-2**63, 2**63 - 1)),
    st.tuples(st.just("rename"), st.integers(0, 10**6), st.sampled_from(["image", "probs", "dup", ""])),
    st.tuples(st.just("cycle"), st.integers(0, 10**6), st.integers(0, 10**6)),
    st.tuples(st.just("shape"), st.integers(0, 10**6), st.lists(st.integers(-3, 2**40), max_size=9)),
)


def _mutate(gd, mutation) -> None:
    nodes = gd.node
    if not nodes:
        return
    kind, index, *rest = mutation
    node = nodes[index % len(nodes)]
    if kind == "drop_node":
        del nodes[index % len(nodes)]
    elif kind == "set_op":
        node.op = rest[0]
    elif kind == "drop_input" and node.input:
        del node.input[index % len(node.input)]
    elif kind == "add_input":
        node.input.append(rest[0])
    elif kind == "swap_inputs" and len(node.input) > 1:
        node.input[0], node.input[1] = node.input[1], node.input[0]
    elif kind == "drop_attr" and node.attr:
        del node.attr[sorted(node.attr)[rest[0] % len(node.attr)]]
    elif kind == "attr_int":
        node.attr[rest[0]].Clear()
        node.attr[rest[0]].i = rest[1]
    elif kind == "rename":
        node.name = rest[0]
    elif kind == "cycle":
        other = nodes[rest[0] % len(nodes)]
        node.input.append(other.name)
        other.input.append(node.name)
    elif kind == "shape":
        entry = node.attr["_output_shapes"].list
        del entry.shape[:]
        shape = entry.shape.add()
        for d in rest[0]:
            shape.dim.add().size = d


def _only_our_errors(call):
    """Run ``call``; anything but success or a Tf2TrtError fails the test (with the example)."""
    from converter.errors import Tf2TrtError

    try:
        call()
    except Tf2TrtError as exc:
        assert exc.message and exc.exit_code in (1, 2, 3)
        return type(exc).__name__
    return "ok"


def test_fuzz_the_graph_reader_and_support_check(frozen_cnn, probe):
    from converter.freeze import FrozenGraph
    from converter.graph import parse

    outcomes: dict[str, int] = {}

    @fuzz(300)
    @given(st.lists(_mutation, min_size=1, max_size=4))
    def run(mutations):
        gd = copy.deepcopy(frozen_cnn.graph_def)
        for m in mutations:
            _mutate(gd, m)
        frozen = FrozenGraph(gd, list(frozen_cnn.inputs), list(frozen_cnn.outputs), dict(frozen_cnn.meta),
                             dict(frozen_cnn.constants))
        kind = _only_our_errors(lambda: parse(frozen))
        outcomes[kind] = outcomes.get(kind, 0) + 1

    with time_limit(240, "fuzzing the graph reader"):
        run()
    tried = sum(outcomes.values())
    assert tried >= 100
    probe("fuzzing", f"{tried} mutated GraphDefs of a small CNN (nodes dropped/renamed, ops swapped among "
          f"{len(_OPS)} incl. control flow and unknown ones, inputs added/dropped/dangling, attrs dropped or "
          "retyped, cycles, absurd _output_shapes) → `converter.graph.parse` (IR + support check)",
          "only tf2trt errors, no hang: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
          before="the first example found `IndexError` in converter/fuse.py (a Placeholder turned Conv2D, no "
                 "inputs): exit 3; the support check now compares every node's inputs with its op's signature")


def test_fuzz_the_pb_loader(frozen_cnn, tmp_path, probe):
    """Bytes of a serialized GraphDef, flipped, truncated or spliced → ``converter.freeze`` on the .pb."""
    from converter import freeze

    data = frozen_cnn.graph_def.SerializeToString()
    path = tmp_path / "fuzz.pb"
    outcomes: dict[str, int] = {}

    @fuzz(60)
    @given(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=8),
           st.integers(0, len(data)), st.binary(max_size=16))
    def run(flips, cut, splice):
        blob = bytearray(data)
        for at, value in flips:
            blob[at] = value
        path.write_bytes(bytes(blob[:cut]) + splice)
        kind = _only_our_errors(lambda: freeze(path, inputs={"image": (1, 16, 16, 3)}))
        outcomes[kind] = outcomes.get(kind, 0) + 1

    with time_limit(300, "fuzzing the .pb loader"):
        run()
    tried = sum(outcomes.values())
    probe("fuzzing", f"{tried} damaged .pb files (byte flips, truncation, spliced bytes) → `converter.freeze`",
          "only tf2trt errors, no hang: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
          before="not fuzzed")


# ----------------------------------------------------------------------------- the config loader

_VALID = {"name": "m", "model": {"path": "model.keras"},
          "inputs": [{"name": "x", "shape": [1, 8], "dtype": "float32"}],
          "output": "out/m.engine", "builder": {"workspace": "1MiB", "opt_level": 3},
          "verification": {"rtol": 1e-4, "atol": 1e-5, "input_ranges": {"x": [0, 2]}},
          "schedule": {"cron": "0 3 * * *"}, "tags": ["a"]}

_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=10), st.sampled_from(["1GiB", "${UNSET_VAR_X}/e", "~/x", "../..", "0 3 * *",
                                                           "float64", "-1", "1e400"]))
_value = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


_ALL_PATHS = [p for p in _paths(_VALID) if p]


def _set(doc, path, value):
    for part in path[:-1]:
        doc = doc[part]
    doc[path[-1]] = value


def test_fuzz_the_config_loader(tmp_path, probe):
    import yaml

    from pipeline.config import ConfigError, load_config

    (tmp_path / "model.keras").write_bytes(b"model")
    path = tmp_path / "m.yaml"
    outcomes = {"valid": 0, "ConfigError": 0}

    def check(text: str) -> None:
        path.write_text(text, encoding="utf-8", errors="surrogatepass") if isinstance(text, str) else None
        try:
            load_config(path)
            outcomes["valid"] += 1
        except ConfigError as exc:
            assert str(exc) and exc.issues
            outcomes["ConfigError"] += 1

    @fuzz(250)
    @given(st.lists(st.tuples(st.sampled_from(_ALL_PATHS), _value), min_size=1, max_size=3))
    def mutated(edits):
        doc = copy.deepcopy(_VALID)
        for where, value in edits:
            try:
                _set(doc, where, value)
            except (KeyError, IndexError, TypeError):
                pass  # an earlier edit replaced the parent
        check(yaml.safe_dump(doc, allow_unicode=True))

    @fuzz(150)
    @given(st.lists(st.sampled_from(list("abc:-[]{}!&*#|>'\"\n %@`,?") + ["!!python/object:os.system",
                                                                          "inputs", "model", "  "]),
                    max_size=40).map("".join))
    def raw(text):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return
        check(text)

    with time_limit(240, "fuzzing the config loader"):
        mutated()
        raw()
    tried = sum(outcomes.values())
    probe("fuzzing", f"{tried} build configs: a valid config with 1-3 values replaced by arbitrary YAML values "
          "(huge ints, NaN, unset ${VAR}, nested junk), and raw YAML-ish text with tags → `load_config`",
          f"only ConfigError ({outcomes['ConfigError']}) or a valid config ({outcomes['valid']}), no hang",
          before="not fuzzed")
