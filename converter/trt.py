"""One import point for TensorRT.

Full TensorRT (module ``tensorrt``) is preferred when importable; otherwise
TensorRT-RTX (module ``tensorrt_rtx``), which installs from PyPI and can build
networks and serialized engines without a GPU.  Code elsewhere uses only the
API both share and asks this module about features where they differ, so the
converter never branches on the flavor name itself.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import re

import numpy as np

log = logging.getLogger(__name__)

_CANDIDATES = (("tensorrt", "tensorrt"), ("tensorrt_rtx", "tensorrt-rtx"))


class TensorRTUnavailable(ImportError):
    """Neither TensorRT flavor can be imported."""


@functools.cache
def _load():
    errors = []
    for module_name, flavor in _CANDIDATES:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # pragma: no cover - depends on the host
            errors.append(f"{module_name}: {exc}")
            continue
        return module, flavor
    raise TensorRTUnavailable(
        "no TensorRT Python module found (" + "; ".join(errors) + "). "
        "Install `tensorrt-rtx` (default) or the `tensorrt` extra."
    )


def module():
    """The imported TensorRT module (``tensorrt`` or ``tensorrt_rtx``)."""
    return _load()[0]


def flavor() -> str:
    """``"tensorrt"`` or ``"tensorrt-rtx"``."""
    return _load()[1]


def version() -> str:
    return module().__version__


#: TensorRT messages that only say "there is no GPU here" (CUDA probes, the timing cache) during an
#: ahead-of-time build on a CPU-only machine: expected there, so logged at debug level
_GPU_ONLY = re.compile(r"cudaError|CUDA|cuda|timing cache|no device", re.IGNORECASE)


def gpu_present() -> bool:
    """Whether this machine has an NVIDIA GPU device node (cheap; no CUDA initialisation)."""
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")


@functools.cache
def logger():
    """A TensorRT ``ILogger`` whose messages are records of the ``tf2trt.native`` logger.

    TensorRT's own logger prints to the terminal; without a GPU an ahead-of-time build prints
    ``[E] cudaError 35`` and "timing cache will not be used" on every run, which only say there is no GPU.
    """
    trt = module()
    native = logging.getLogger("tf2trt.native")
    sev = trt.ILogger.Severity
    levels = {sev.INTERNAL_ERROR: logging.ERROR, sev.ERROR: logging.ERROR, sev.WARNING: logging.WARNING,
              sev.INFO: logging.DEBUG, sev.VERBOSE: logging.DEBUG}

    class TensorRTLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):  # noqa: A003 - TensorRT's method name
            level = levels.get(severity, logging.INFO)
            text = str(msg)
            if level >= logging.WARNING and not gpu_present() and _GPU_ONLY.search(text):
                level = logging.DEBUG
            native.log(level, "TensorRT: %s", text)

    return TensorRTLogger()


def create_builder():
    return module().Builder(logger())


def create_network(builder=None, strongly_typed: bool = False):
    """An explicit-batch network definition (the only kind current TensorRT has)."""
    trt = module()
    builder = builder or create_builder()
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    if explicit is not None:  # TensorRT < 10 needs it; later versions ignore it
        flags |= 1 << int(explicit)
    return builder, builder.create_network(flags)


def has_builder_flag(name: str) -> bool:
    """Whether this flavor's BuilderFlag has ``name`` (TensorRT-RTX has no FP16/INT8)."""
    return name in module().BuilderFlag.__members__


def supports_compute_capability_targets() -> bool:
    """TensorRT-RTX lets an AOT build choose target compute capabilities."""
    trt = module()
    return hasattr(trt, "ComputeCapability") and hasattr(trt.IBuilderConfig, "set_compute_capability")


def layer_class(layer_type):
    """The concrete ``I*Layer`` class for a ``LayerType`` (for reading parameters back)."""
    trt = module()
    name = "".join(part.capitalize() for part in layer_type.name.split("_"))
    special = {
        "ELEMENTWISE": "IElementWiseLayer",
        "SOFTMAX": "ISoftMaxLayer",
        "MATRIX_MULTIPLY": "IMatrixMultiplyLayer",
        "LRN": "ILRNLayer",
        "TOPK": "ITopKLayer",
        "NMS": "INMSLayer",
        "PLUGIN_V2": "IPluginV2Layer",
        "PLUGIN_V3": "IPluginV3Layer",
        "PARAMETRIC_RELU": "IParametricReLULayer",
        "NON_ZERO": "INonZeroLayer",
        "ONE_HOT": "IOneHotLayer",
        "GRID_SAMPLE": "IGridSampleLayer",
        "CONDITIONAL_INPUT": "IIfConditionalInputLayer",
        "CONDITIONAL_OUTPUT": "IIfConditionalOutputLayer",
        "CONDITION": "IConditionLayer",
        "KV_CACHE_UPDATE": "IKVCacheUpdateLayer",
        "MOE": "IMoELayer",
        "RAGGED_SOFTMAX": "IRaggedSoftMaxLayer",
        "PLUGIN": "IPluginV2Layer",
    }
    cls_name = special.get(layer_type.name, f"I{name}Layer")
    return getattr(trt, cls_name)


def concrete_layer(layer):
    """Give a layer read back from a network its concrete class so its attributes read."""
    layer.__class__ = layer_class(layer.type)
    return layer


_NP_FROM_TRT = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT32": np.int32,
    "INT64": np.int64,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "BOOL": np.bool_,
}
try:  # bfloat16 as a numpy dtype comes from ml_dtypes (a TensorFlow dependency)
    import ml_dtypes as _ml_dtypes

    _NP_FROM_TRT["BF16"] = _ml_dtypes.bfloat16
except ImportError:  # pragma: no cover - TensorFlow always brings ml_dtypes
    _ml_dtypes = None


def np_dtype(trt_dtype) -> np.dtype:
    """numpy dtype of a TensorRT DataType."""
    try:
        return np.dtype(_NP_FROM_TRT[trt_dtype.name])
    except KeyError:
        raise TypeError(f"TensorRT data type {trt_dtype.name} has no numpy equivalent here") from None


def is_bfloat16(arr) -> bool:
    return _ml_dtypes is not None and np.asarray(arr).dtype == np.dtype(_ml_dtypes.bfloat16)


def weights(arr: np.ndarray):
    """TensorRT ``Weights`` over ``arr`` (the caller keeps ``arr`` alive).

    The bindings convert float16/float32/int arrays themselves but not ml_dtypes' bfloat16 (a numpy void
    type to them), so bfloat16 weights are handed over by pointer and element count.
    """
    trt = module()
    if is_bfloat16(arr):
        if not arr.flags["C_CONTIGUOUS"]:
            raise ValueError("bfloat16 weights must be C-contiguous")
        return trt.Weights(trt.DataType.BF16, arr.ctypes.data, arr.size)
    return trt.Weights(arr)


def trt_dtype(np_dtype_like):
    """TensorRT DataType of a numpy dtype."""
    trt = module()
    dtype = np.dtype(np_dtype_like)
    for name, candidate in _NP_FROM_TRT.items():
        if np.dtype(candidate) == dtype:
            return getattr(trt.DataType, name)
    raise TypeError(f"numpy dtype {dtype} has no TensorRT equivalent")
