"""Helpers for the reference-executor conformance tests.

A :class:`OnnxCase` describes a one-node (or few-node) ONNX model plus its feeds.
It is parsed by TensorRT's ONNX parser into a network, snapshotted, run in the
reference executor and compared with onnxruntime.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from converter import trt as trtshim
from converter.snapshot import Snapshot

RTOL = 1e-4
ATOL = 1e-5

_ONNX_TYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.bool_): TensorProto.BOOL,
    np.dtype(np.float16): TensorProto.FLOAT16,
    np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.int8): TensorProto.INT8,
}


@dataclasses.dataclass
class OnnxCase:
    id: str
    nodes: list
    feeds: dict  # runtime inputs: name -> array
    consts: dict  # initializers: name -> array
    outputs: list  # [(name, np dtype)]
    opset: int = 17

    def with_outputs(self, outputs) -> "OnnxCase":
        """The same case with other graph outputs (e.g. only the last node's)."""
        return dataclasses.replace(self, outputs=list(outputs))

    def model(self) -> onnx.ModelProto:
        inputs = [helper.make_tensor_value_info(n, _ONNX_TYPES[a.dtype], list(a.shape)) for n, a in self.feeds.items()]
        outputs = [helper.make_tensor_value_info(n, _ONNX_TYPES[np.dtype(t)], None) for n, t in self.outputs]
        inits = [numpy_helper.from_array(np.asarray(a), n) for n, a in self.consts.items()]
        graph = helper.make_graph(self.nodes, self.id, inputs, outputs, initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 8
        return model


def rng(seed=0):
    return np.random.default_rng(seed)


def randn(*shape, seed=0, scale=1.0):
    return (rng(seed).standard_normal(shape) * scale).astype(np.float32)


def rand_pos(*shape, seed=0, low=0.1, high=2.0):
    return rng(seed).uniform(low, high, shape).astype(np.float32)


def case(id, op, feeds, consts=None, attrs=None, inputs=None, outputs=None, opset=17, n_out=1, out_dtypes=None,
         extra_nodes=None):
    """One ONNX node ``op`` reading ``inputs`` (default: feeds then consts, in order)."""
    consts = consts or {}
    inputs = list(feeds) + list(consts) if inputs is None else inputs
    out_names = outputs or (["y"] if n_out == 1 else [f"y{i}" for i in range(n_out)])
    out_dtypes = out_dtypes or [np.float32] * len(out_names)
    nodes = [helper.make_node(op, inputs, out_names, **(attrs or {}))] + list(extra_nodes or [])
    return OnnxCase(id, nodes, dict(feeds), dict(consts), list(zip(out_names, out_dtypes)), opset)


def parse(model: onnx.ModelProto):
    """(builder, network, parser) for an ONNX model, raising on parser errors."""
    trt = trtshim.module()
    builder, network = trtshim.create_network()
    parser = trt.OnnxParser(network, trtshim.logger())
    if not parser.parse(model.SerializeToString()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT ONNX parser rejected the model: {errors}")
    return builder, network, parser


def snapshot_of(c: OnnxCase) -> Snapshot:
    _, network, _ = parse(c.model())
    return Snapshot.from_network(network)


def run_onnxruntime(c: OnnxCase) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(c.model().SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [n for n, _ in c.outputs]
    return dict(zip(names, sess.run(names, c.feeds)))


def assert_close(actual, expected, name, rtol=RTOL, atol=ATOL):
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != expected {expected.shape}"
    if expected.dtype == np.bool_ or np.issubdtype(expected.dtype, np.integer):
        assert np.array_equal(actual.astype(expected.dtype), expected), f"{name}: {actual} != {expected}"
        return
    np.testing.assert_allclose(actual.astype(np.float32), expected, rtol=rtol, atol=atol, err_msg=name)
