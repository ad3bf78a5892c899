"""tf2trt: TensorFlow graphs to TensorRT networks, through TensorRT's own network API.

The five steps::

    frozen = converter.freeze("model.keras")          # 1. one frozen GraphDef
    graph = converter.parse(frozen)                     # 2. IR + support check
    net = converter.construct(graph)                    # 3. INetworkDefinition (+ .snapshot)
    engine = converter.optimize_network(net)            # 4. serialized engine bytes
    report = converter.verify(frozen, net.snapshot)     # 5. compare with TensorFlow

Names are imported lazily so ``import converter`` does not load TensorFlow.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "freeze": "freeze", "FrozenGraph": "freeze", "TensorSpec": "freeze",
    "parse": "graph", "Graph": "graph", "Node": "graph",
    "construct": "construct", "ConvertedNetwork": "construct",
    "Snapshot": "snapshot",
    "BuilderSettings": "engine", "optimize_network": "engine", "store_engine": "engine",
    "load_engine": "engine", "engine_metadata": "engine",
    "verify": "verify", "VerificationReport": "verify",
    "inference_engine": "runtime",
    "ConversionError": "errors", "ConversionErrors": "errors", "UnsupportedOpsError": "errors",
    "FreezeError": "errors", "Tf2TrtError": "errors",
    "ReferenceExecutor": "reference",
    "from_tensorflow_graph_def": "api", "toolchain_versions": "api", "converter_source_digest": "api",
}

__all__ = sorted(_EXPORTS)

# Three steps share their module's name.  Importing the modules here, then
# binding the functions, makes ``converter.freeze`` & co. the functions for
# good (a submodule sets the package attribute only on its first import).
# Inside the package, import from the modules: ``from .freeze import freeze``.
from .construct import construct  # noqa: E402
from .freeze import freeze  # noqa: E402
from .verify import verify  # noqa: E402


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'converter' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
