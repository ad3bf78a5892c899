"""Public entry points that combine the steps, named as in the original TF2TRT library."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

from .construct import ConvertedNetwork, construct
from .freeze import FrozenGraph, TensorSpec, freeze
from .graph import parse


def from_tensorflow_graph_def(graph_def, inputs: dict[str, tuple] | None = None,
                              outputs: list[str] | None = None, strongly_typed: bool = False,
                              quantization: str = "emulate") -> ConvertedNetwork:
    """Convert a frozen ``GraphDef`` (or a :class:`FrozenGraph`) into a TensorRT network.

    Current TensorRT is explicit-batch only, so there is no ``max_batch_size``;
    precision comes from the builder (or, on TensorRT-RTX, from a strongly typed
    network), so there is no ``fp16_mode``.  ``inputs`` gives placeholder
    shapes where the graph leaves them unknown; ``outputs`` names the output
    nodes (default: the graph's sink nodes).  ``quantization``: "emulate" converts fake-quant ops to
    TensorFlow's float32 formula, "int8" to TensorRT int8 QUANTIZE/DEQUANTIZE layers (precision int8).
    """
    if isinstance(graph_def, FrozenGraph):
        frozen = graph_def
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "graph.pb"
            path.write_bytes(graph_def.SerializeToString())
            frozen = freeze(path, inputs=inputs, outputs=outputs)
    return construct(parse(frozen), strongly_typed=strongly_typed, quantization=quantization)


def toolchain_versions() -> dict:
    """Versions that change what the converter produces (for cache keys and reports)."""
    from . import trt as trtshim

    versions = {"python": platform.python_version(), "tensorrt_flavor": trtshim.flavor(),
                "tensorrt": trtshim.version()}
    try:
        from importlib.metadata import version

        versions["tensorflow"] = version("tensorflow")
    except Exception:  # noqa: BLE001 - TensorFlow is optional on engine-build hosts
        versions["tensorflow"] = None
    import numpy

    versions["numpy"] = numpy.__version__
    return versions


def converter_source_digest() -> str:
    """A hash of every Python file of this package: any converter change changes it."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


__all__ = ["from_tensorflow_graph_def", "toolchain_versions", "converter_source_digest", "TensorSpec"]
