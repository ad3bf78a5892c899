"""The seam between the pipeline and the converter.

:class:`ConverterBackend` drives the real ``converter`` package; tests inject a
small fake with the same methods.  Everything crosses this seam as bytes or
small JSON-able dicts, so stages can run in separate processes or hosts.

Nothing here imports TensorFlow or TensorRT until a stage actually needs it:
the cache-key inputs (versions, the digests of the code each stage runs) come
from package metadata and file bytes, which keeps a fully cached run fast.

The stage functions are imported from the converter's modules (``converter.graph``,
``converter.engine``…), not through the package facade, so the code a stage
runs is exactly the modules its stage lists (:mod:`pipeline.stages`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Protocol, Sequence

from .hashing import hash_listing

log = logging.getLogger(__name__)


class Backend(Protocol):
    name: str

    def toolchain(self) -> dict[str, Any]: ...
    def code_digests(self, entries: Sequence[str]) -> dict[str, str]: ...
    def target(self, builder: dict) -> str: ...
    def generate_example(self, name: str, seed: int, input_shape: list[int], path: Path) -> None: ...
    def freeze(self, model_path: Path, inputs: list[dict], outputs: list[str] | None,
               signature: str, trust_model_code: bool = False) -> tuple[bytes, dict]: ...
    def parse(self, frozen: bytes) -> tuple[bytes, dict]: ...
    def construct(self, graph: bytes, quantization: str | None = None) -> tuple[bytes, dict]: ...
    def optimize(self, snapshot: bytes, builder: dict, timing_cache: Path | None, precision: dict | None = None,
                 frozen: bytes | None = None, verification: dict | None = None) -> tuple: ...
    def verify(self, frozen: bytes, snapshot: bytes, inputs_npz: Path | None, seed: int, samples: int,
               rtol: float, atol: float, input_ranges: dict | None = None,
               input_values: dict | None = None, shapes: list[dict] | None = None, precision: dict | None = None,
               lowered: bytes | None = None) -> dict: ...


def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


@functools.cache
def tensorrt_flavor() -> tuple[str | None, str | None]:
    """(flavor, version) without importing TensorRT: the same preference as converter.trt."""
    if importlib.util.find_spec("tensorrt") is not None:
        return "tensorrt", _dist_version("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_cu12")
    if importlib.util.find_spec("tensorrt_rtx") is not None:
        return "tensorrt-rtx", _dist_version("tensorrt-rtx", "tensorrt_rtx")
    return None, None


def converter_root() -> Path:
    """The directory of the importable ``converter`` package (without importing it)."""
    spec = importlib.util.find_spec("converter")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the converter package is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def snapshot_to_bytes(snapshot) -> bytes:
    """The converter's own deterministic snapshot blob."""
    return snapshot.to_bytes()


def snapshot_from_bytes(data: bytes):
    from converter.snapshot import Snapshot

    return Snapshot.from_bytes(data)


class ConverterBackend:
    """The real converter (``converter`` package, TensorFlow, TensorRT)."""

    name = "converter"

    def __init__(self, source_root: str | os.PathLike | None = None):
        #: where the code digests read the converter's source; None = the installed
        #: package.  Tests point it at a copy they edit (the code that runs is unchanged).
        self.source_root = Path(source_root) if source_root else None

    def toolchain(self) -> dict[str, Any]:
        flavor, version = tensorrt_flavor()
        return {
            "tensorflow": _dist_version("tensorflow", "tensorflow-cpu", "tf-nightly"),
            "keras": _dist_version("keras"),
            "tensorrt_flavor": flavor,
            "tensorrt": version,
            "python": platform.python_version(),
        }

    def code_digests(self, entries: Sequence[str]) -> dict[str, str]:
        """Digests of the converter files ``entries`` name (a stage's code list).

        Hashed on every call (a few dozen small files, milliseconds): a long-lived
        process must see an edit made after it started.
        """
        return hash_listing(self.source_root or converter_root(), entries)

    def target(self, builder: dict) -> str:
        if builder.get("targets"):
            return ",".join(builder["targets"])
        flavor, _ = tensorrt_flavor()
        if flavor == "tensorrt":
            return "current-gpu:" + _local_gpu()
        return "default"

    def generate_example(self, name: str, seed: int, input_shape: list[int], path: Path) -> None:
        """Generate in a fresh interpreter: Keras numbers layer names per process
        (a second model in one process gets ``input_layer_1``), so only a clean
        process makes the same model, names included, every time."""
        import subprocess
        import sys

        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        res = subprocess.run([sys.executable, "-c", _GENERATE, name, str(seed), json.dumps(list(input_shape)),
                              str(path)], env=env, capture_output=True, text=True)
        if res.returncode != 0:
            tail = (res.stderr or "").strip().splitlines()[-1:] or ["(no output)"]
            from converter.errors import ModelError

            raise ModelError(f"could not generate keras.applications.{name}: {tail[0]}",
                             hint="check model.keras_application and inputs[].shape in the config")

    def freeze(self, model_path, inputs, outputs, signature, trust_model_code=False):
        from converter.freeze import freeze

        from converter.profiles import ShapeRange

        overrides = {i["name"]: tuple(i["shape"]) for i in inputs if i.get("shape") is not None}
        ranged = {i["name"]: [ShapeRange(tuple(r["min"]), tuple(r["opt"]), tuple(r["max"])) for r in i["profiles"]]
                  for i in inputs if i.get("profiles")}
        count = max((len(v) for v in ranged.values()), default=0)
        # the k-th range of every input forms profile k (an input with fewer ranges keeps its last one)
        profiles = [{name: rs[min(k, len(rs) - 1)] for name, rs in ranged.items()} for k in range(count)]
        frozen = freeze(str(model_path), inputs=overrides, outputs=outputs or None, signature=signature,
                        trust_model_code=trust_model_code, profiles=profiles or None)
        from converter.errors import ModelError

        want = {i["name"]: i for i in inputs}
        problems = []
        for spec in frozen.inputs:
            cfg = want.get(spec.name)
            if cfg is not None and str(spec.dtype) != cfg["dtype"]:
                problems.append(f"input {spec.name!r} is {spec.dtype} in the model but {cfg['dtype']} in the config")
        missing = sorted(set(want) - {s.name for s in frozen.inputs})
        if missing:
            problems.append(f"the model has no input(s) {missing}; it has {[s.name for s in frozen.inputs]}")
        if problems:
            raise ModelError("; ".join(problems), hint="fix inputs[].name / inputs[].dtype in the config "
                                                       "(tf2trt inspect MODEL lists the model's inputs)")
        meta = {"inputs": [{"name": s.name, "shape": list(s.shape), "dtype": str(s.dtype)} for s in frozen.inputs],
                "outputs": list(frozen.outputs)}
        if frozen.meta.get("profiles"):
            meta["profiles"] = frozen.meta["profiles"]
        return frozen.to_bytes(), meta

    def parse(self, frozen: bytes) -> tuple[bytes, dict]:
        """The parsed (support-checked, fused) graph as bytes, and a report of its ops."""
        from converter.freeze import FrozenGraph
        from converter.graph import parse

        graph = parse(FrozenGraph.from_bytes(frozen))
        counts = graph.op_counts()
        return graph.to_bytes(), {"op_counts": dict(counts), "nodes": int(sum(counts.values()))}

    def construct(self, graph: bytes, quantization: str | None = None):
        """The network built from parse's graph: no TensorFlow (the IR holds decoded attributes and arrays).

        ``quantization="int8"`` (``builder.precision: int8``) builds a quantization-aware model's fake-quant
        ops as TensorRT Q/DQ layers; without it construct emulates them in float, as it always has.
        """
        from converter.construct import construct
        from converter.graph import Graph

        extra = {}
        if quantization is not None and quantization != "emulate":
            extra["quantization"] = quantization
        net = construct(Graph.from_bytes(graph), **extra)
        snap = net.snapshot
        return snapshot_to_bytes(snap), {"layers": int(snap.layer_count)}

    def optimize(self, snapshot: bytes, builder: dict, timing_cache, precision: dict | None = None,
                 frozen: bytes | None = None, verification: dict | None = None):
        """The engine bytes and meta; with ``precision`` (fp16/bf16) also the lowered snapshot's bytes.

        ``precision`` is :func:`pipeline.stages.verify.precision_options`; with its ``fallback`` the lowering
        runs through :func:`converter.precision_verify.verify_precision` on ``frozen`` with ``verification``
        (its keywords), so the layers that make the network fail are kept in fp32 before the engine is built.
        """
        from converter.engine import BuilderSettings, optimize_network

        snap = snapshot_from_bytes(snapshot)
        settings = BuilderSettings(
            workspace=builder.get("workspace"), opt_level=builder.get("opt_level", 3),
            timing_cache=str(timing_cache) if timing_cache else None,
            targets=tuple(builder["targets"]) if builder.get("targets") else None)
        lowered = None
        info = None
        if precision is not None:
            lowered, info = _lower(snap, precision, frozen, verification)
        engine = optimize_network(lowered if lowered is not None else snap, settings)
        meta = {"layers": int(snap.layer_count)}
        if snap.profiles:
            meta["profiles"] = snap.profiles
        if lowered is None:
            return engine, meta
        meta["precision"] = info
        meta["lowered_layers"] = int(lowered.layer_count)
        return engine, meta, snapshot_to_bytes(lowered)

    def verify(self, frozen, snapshot, inputs_npz, seed, samples, rtol, atol, input_ranges=None,
               input_values=None, shapes=None, precision: dict | None = None, lowered: bytes | None = None) -> dict:
        """The verification report; ``shapes`` are extra input shape sets beyond every profile's min/opt/max.

        With ``precision`` (fp16/bf16) it verifies ``lowered``, optimize's network: the fp32 snapshot lowered
        again with the layers optimize's fallback kept in fp32 (``precision["fallback_layers"]``), which must
        be ``lowered`` byte for byte; the report has the precision section.
        """
        from converter.freeze import FrozenGraph
        from converter.verify import verify

        graph = FrozenGraph.from_bytes(frozen)
        options = dict(inputs_npz=str(inputs_npz) if inputs_npz else None, seed=seed, samples=samples, rtol=rtol,
                       atol=atol, input_ranges=input_ranges, input_values=input_values, shapes=shapes)
        if precision is not None:
            from converter.precision_verify import verify_precision

            settings = _precision_settings(precision, precision.get("fallback_layers") or ())
            res = verify_precision(graph, snapshot_from_bytes(snapshot), settings, fallback=False, **options)
            if lowered is not None and snapshot_to_bytes(res.snapshot) != lowered:
                raise RuntimeError("the network verified differs from the one optimize built the engine from "
                                   "(the lowering is not deterministic)")
            return res.report.to_dict()
        report = verify(graph, snapshot_from_bytes(snapshot), **options)
        return report.to_dict()


def _precision_settings(options: dict, fallback=()):
    from converter.precision import PrecisionSettings

    return PrecisionSettings(options["precision"], tuple(options.get("keep_fp32") or ()), options.get("io", "fp32"),
                             tuple(fallback))


def _lower(snap, options: dict, frozen: bytes | None, verification: dict | None):
    """The lowered snapshot and what the manifest says of it (the plan, the fallback and its trials)."""
    settings = _precision_settings(options)
    trials = None
    passed = None
    if options.get("fallback"):
        from converter.freeze import FrozenGraph
        from converter.precision_verify import verify_precision

        if frozen is None:
            raise ValueError("the precision fallback needs the frozen graph")
        res = verify_precision(FrozenGraph.from_bytes(frozen), snap, settings, fallback=True, **(verification or {}))
        lowered, plan, settings, trials, passed = res.snapshot, res.plan, res.settings, res.trials, res.passed
    else:
        from converter.precision import lower

        lowered, plan = lower(snap, settings)
    info = plan.to_json()
    info.pop("layers", None)
    info.update({"keep_fp32": list(settings.keep_fp32), "fallback": sorted(settings.fallback),
                 "fallback_enabled": bool(options.get("fallback")), "summary": plan.summary()})
    if trials is not None:
        info["trials"] = trials
        info["passed"] = passed
    return lowered, info


_GENERATE = """
import json, sys
import keras
name, seed, shape, path = sys.argv[1], int(sys.argv[2]), tuple(json.loads(sys.argv[3])), sys.argv[4]
factory = getattr(keras.applications, name, None)
if factory is None or not callable(factory):
    sys.exit(f"keras.applications has no model named {name!r}")
keras.utils.set_random_seed(seed)
factory(weights=None, input_shape=shape).save(path)
"""


@functools.cache
def _local_gpu() -> str:
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if not smi:
        return "unknown"
    try:
        out = subprocess.run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out[0].replace(" ", "") if out else "unknown"


def load_backend(spec: str | None = None) -> Backend:
    """The backend named by ``spec`` or ``$TF2TRT_BACKEND`` ("module:attr"), else the converter.

    The variable is a test seam: it lets a subprocess (``tf2trt build``) run on a
    fake converter.  ``attr`` may be a class or a factory; it is called once.
    """
    spec = spec or os.environ.get("TF2TRT_BACKEND")
    if not spec:
        return ConverterBackend()
    module_name, _, attr = spec.partition(":")
    obj = getattr(importlib.import_module(module_name), attr or "Backend")
    return obj() if callable(obj) else obj


def temp_dir(base: Path) -> str:
    base.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(dir=base, prefix=f"{os.getpid()}-")
