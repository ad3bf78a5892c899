"""Run a serialized engine on a GPU with pycuda (the ``gpu`` extra).

Host buffers are page-locked so copies are asynchronous; every I/O tensor is
bound by name with ``set_tensor_address`` and the engine runs with
``execute_async_v3`` on one stream.  Needs a CUDA driver, a supported GPU and
TensorRT; :func:`gpu_unavailable_reason` says why not when they are missing.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from . import trt as trtshim
from .errors import EnvironmentProblem

log = logging.getLogger(__name__)


class RuntimeUnavailable(EnvironmentProblem):
    """Engines cannot run here (no GPU, no CUDA driver, no pycuda)."""


@functools.cache
def gpu_unavailable_reason() -> str | None:
    """None when engines can run here, else a sentence saying what is missing."""
    try:
        trtshim.module()
    except ImportError as exc:
        return f"TensorRT is not installed ({exc})"
    try:
        import pycuda.driver as cuda  # noqa: F401
    except ImportError:
        return "pycuda is not installed (pip install 'tf2trt[gpu]' on a host with the CUDA toolkit)"
    try:
        cuda.init()
        if cuda.Device.count() == 0:
            return "no CUDA GPU is present"
    except Exception as exc:  # noqa: BLE001 - pycuda raises its own LogicError/RuntimeError
        return f"the CUDA driver is unavailable ({exc})"
    return None


class EngineRunner:
    """An engine deserialized once, with its execution context, stream and pinned buffers."""

    def __init__(self, engine: bytes):
        reason = gpu_unavailable_reason()
        if reason:
            raise RuntimeUnavailable(f"cannot run the engine: {reason}")
        import pycuda.autoinit  # noqa: F401 - creates the CUDA context
        import pycuda.driver as cuda

        from .engine import deserialize_engine

        self.cuda = cuda
        trt = trtshim.module()
        self.engine = deserialize_engine(engine)
        self.context = self.engine.create_execution_context()
        self.stream = cuda.Stream()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.host: dict[str, np.ndarray] = {}
        self.device: dict[str, object] = {}

    def _buffer(self, name: str, shape: tuple) -> np.ndarray:
        dtype = trtshim.np_dtype(self.engine.get_tensor_dtype(name))
        host = self.host.get(name)
        if host is None or host.shape != tuple(shape):
            host = self.cuda.pagelocked_empty(tuple(shape), dtype)
            self.host[name] = host
            self.device[name] = self.cuda.mem_alloc(max(host.nbytes, 1))
        return host

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise RuntimeUnavailable(f"missing inputs {missing}")
        for name in self.inputs:
            array = np.asarray(feeds[name])
            self.context.set_input_shape(name, tuple(array.shape))
            host = self._buffer(name, array.shape)
            np.copyto(host, array.astype(host.dtype, copy=False))
            self.cuda.memcpy_htod_async(self.device[name], host, self.stream)
            self.context.set_tensor_address(name, int(self.device[name]))
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            self._buffer(name, shape)
            self.context.set_tensor_address(name, int(self.device[name]))
        if not self.context.execute_async_v3(self.stream.handle):
            raise RuntimeUnavailable("execute_async_v3 reported a failure")
        for name in self.outputs:
            self.cuda.memcpy_dtoh_async(self.host[name], self.device[name], self.stream)
        self.stream.synchronize()
        return {name: self.host[name].copy() for name in self.outputs}


def inference_engine(engine, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``engine`` (serialized bytes or an :class:`EngineRunner`) on ``inputs``; outputs by name."""
    runner = engine if isinstance(engine, EngineRunner) else EngineRunner(engine)
    return runner.run(inputs)
