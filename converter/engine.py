"""Step 4: build a serialized engine from a network, and store/load engines.

Builder settings are a dataclass so they hash cleanly into cache keys.  The
timing cache is loaded before and saved after each build.  TensorRT-RTX can
build ahead of time for chosen compute capabilities (``targets``); full
TensorRT builds for the GPU it runs on, and asking it for targets is an error.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import trt as trtshim
from ._io import atomic_write_bytes


log = logging.getLogger(__name__)


from .errors import EngineBuildError, ModelError  # noqa: E402 - EngineBuildError is re-exported


@dataclass(frozen=True)
class BuilderSettings:
    """What the engine build depends on besides the network itself."""

    workspace: int | None = None  #: bytes for the workspace memory pool; None = TensorRT's default
    opt_level: int = 3  #: builder optimization level 0–5
    timing_cache: str | None = None  #: path of a timing cache file to load and update
    targets: tuple[str, ...] | None = None  #: compute capabilities like ("SM86",); TensorRT-RTX only

    def __post_init__(self):
        if self.opt_level not in range(6):
            raise ValueError(f"opt_level must be 0..5, got {self.opt_level}")
        if self.workspace is not None and self.workspace <= 0:
            raise ValueError(f"workspace must be a positive number of bytes, got {self.workspace}")
        if self.targets is not None:
            object.__setattr__(self, "targets", tuple(t.upper() for t in self.targets))

    def cache_dict(self) -> dict:
        """The settings that change the engine (the timing cache only speeds the build up)."""
        d = asdict(self)
        d.pop("timing_cache")
        d["targets"] = list(self.targets) if self.targets else None
        return d


def available_targets() -> list[str]:
    if not trtshim.supports_compute_capability_targets():
        return []
    return [n for n in trtshim.module().ComputeCapability.__members__ if n.startswith("SM")]


def describe_target(settings: BuilderSettings) -> str:
    if settings.targets:
        return ",".join(settings.targets)
    return "current-gpu" if trtshim.flavor() == "tensorrt" else "default"


def optimize_network(network, settings: BuilderSettings | None = None, **overrides) -> bytes:
    """Build serialized engine bytes for ``network``.

    ``network`` is a :class:`~converter.construct.ConvertedNetwork`, a
    :class:`~converter.snapshot.Snapshot` (rebuilt without TensorFlow) or a
    raw ``INetworkDefinition`` together with its builder as ``(builder, network)``.
    """
    settings = settings or BuilderSettings()
    if overrides:
        settings = BuilderSettings(**{**asdict(settings), **overrides})
    builder, net, holder = _resolve(network)
    trt = trtshim.module()
    config = builder.create_builder_config()
    _add_profiles(builder, config, getattr(holder, "profiles", None) or [])
    if settings.workspace is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings.workspace))
    config.builder_optimization_level = settings.opt_level
    if settings.targets:
        if not trtshim.supports_compute_capability_targets():
            raise ModelError(  # a setting the user chose, not a tf2trt bug
                f"{trtshim.flavor()} builds for the GPU it runs on; it cannot target {settings.targets}",
                hint="drop the targets setting, or build with tensorrt-rtx")
        known = available_targets()
        bad = [t for t in settings.targets if t not in known]
        if bad:
            raise ModelError(f"unknown target(s) {bad}; this TensorRT knows {known}",
                             hint="fix builder.targets / --target")
        config.num_compute_capabilities = len(settings.targets)
        for i, target in enumerate(settings.targets):
            config.set_compute_capability(getattr(trt.ComputeCapability, target), i)
    cache = None
    if settings.timing_cache and not trtshim.gpu_present():
        _say_once_no_timing_cache()
    elif settings.timing_cache:
        path = Path(settings.timing_cache)
        data = path.read_bytes() if path.exists() else b""
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, ignore_mismatch=False)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(net, config)
    if serialized is None:
        raise EngineBuildError("TensorRT could not build an engine for this network (see the TensorRT log above)")
    engine = bytes(memoryview(serialized))
    log.info("engine built in %.2f s (%d bytes)", time.perf_counter() - start, len(engine))
    if cache is not None:
        atomic_write_bytes(Path(settings.timing_cache), bytes(memoryview(cache.serialize())))
    del holder
    return engine


def _add_profiles(builder, config, profiles: list[dict]) -> None:
    """One TensorRT optimization profile per profile (JSON form, see :mod:`converter.profiles`)."""
    for k, profile in enumerate(profiles):
        trt_profile = builder.create_optimization_profile()
        for name, rng in sorted(profile.items()):
            trt_profile.set_shape(name, tuple(rng["min"]), tuple(rng["opt"]), tuple(rng["max"]))
        if config.add_optimization_profile(trt_profile) < 0:
            raise EngineBuildError(f"TensorRT refused optimization profile {k} ({profile})",
                                   hint="check that min ≤ opt ≤ max and that the ranks match the inputs")


@functools.cache
def _say_once_no_timing_cache() -> None:
    # the timing cache records how fast GPU kernels ran; an ahead-of-time build without a GPU times
    # nothing, and TensorRT would only warn on every build that the cache "will not be used"
    log.info("no GPU on this machine: the timing cache is not used (it records GPU kernel timings)")


def _resolve(network):
    from .construct import ConvertedNetwork
    from .snapshot import Snapshot

    if isinstance(network, ConvertedNetwork):
        return network.builder, network.network, network
    if isinstance(network, Snapshot):
        builder, net = network.to_network()
        return builder, net, network
    if isinstance(network, tuple) and len(network) == 2:
        return network[0], network[1], None
    raise TypeError(f"cannot build an engine from {type(network).__name__}")


def engine_metadata(settings: BuilderSettings, extra: dict | None = None) -> dict:
    meta = {
        "tensorrt_flavor": trtshim.flavor(),
        "tensorrt_version": trtshim.version(),
        "target": describe_target(settings),
        "builder": settings.cache_dict(),
    }
    meta.update(extra or {})
    return meta


def store_engine(engine: bytes, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write ``engine`` atomically to ``path`` and its metadata JSON to ``path + '.json'``.

    The metadata records the engine's ``bytes`` and its blake3 ``digest`` so :func:`load_engine` can tell
    a damaged or replaced engine file from the one written here.  Both files follow the umask (mode
    ``0o666 & ~umask``, see :mod:`converter._io`), the same rule ``tf2trt build`` places engines with.
    """
    path = Path(path)
    meta = dict(metadata or {})
    meta.setdefault("bytes", len(engine))
    meta["digest"] = engine_digest(engine)
    atomic_write_bytes(path, engine)
    atomic_write_bytes(metadata_path(path), (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return path


def metadata_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def engine_digest(engine: bytes) -> str:
    """The blake3 hex digest of engine bytes: what ``digest`` means in an engine's ``.json`` sidecar."""
    import blake3

    return blake3.blake3(engine, max_threads=blake3.blake3.AUTO).hexdigest()


class DamagedEngineError(ModelError):
    """An engine file does not match the digest its metadata sidecar records (truncated, edited, replaced)."""


def load_engine(path: str | os.PathLike) -> tuple[bytes, dict]:
    """Read an engine and its metadata (empty dict if there is none), checking the engine's digest.

    When the ``.json`` sidecar records a ``digest`` (both :func:`store_engine` and ``tf2trt build``'s
    placement write one: blake3 of the engine bytes) the bytes read must hash to it, else
    :class:`DamagedEngineError` (exit 2): deserializing a truncated or swapped engine fails later and far
    less clearly, or worse, runs a different network than the metadata describes.  A sidecar ``bytes``
    that disagrees is reported the same way.  Without a sidecar (or a digest in it) nothing is checked.
    """
    path = Path(path)
    if not path.is_file():
        raise EngineBuildError(f"no engine at {path}")
    meta_file = metadata_path(path)
    try:
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    except ValueError as exc:
        raise DamagedEngineError(f"the engine's metadata {meta_file} is not valid JSON: {exc}",
                                 hint="rebuild the engine, or remove the .json sidecar to load it unchecked") from None
    if not isinstance(meta, dict):
        raise DamagedEngineError(f"the engine's metadata {meta_file} is not a JSON object",
                                 hint="rebuild the engine, or remove the .json sidecar to load it unchecked")
    data = path.read_bytes()
    expected = meta.get("digest")
    size = meta.get("bytes")
    if isinstance(size, int) and size != len(data):
        raise DamagedEngineError(f"engine {path} has {len(data)} bytes but its metadata {meta_file.name} "
                                 f"records {size}", hint=_DAMAGED_HINT)
    if expected is not None:
        actual = engine_digest(data)
        if actual != expected:
            raise DamagedEngineError(f"engine {path} does not match the digest in {meta_file.name}: it hashes to "
                                     f"{actual[:16]}…, the metadata records {str(expected)[:16]}…",
                                     hint=_DAMAGED_HINT)
    return data, meta


_DAMAGED_HINT = ("the file was truncated, edited or replaced after it was written: rebuild it (tf2trt build places "
                 "it again from the store; tf2trt convert writes it anew)")


def deserialize_engine(engine: bytes):
    """A runtime ``ICudaEngine`` (needs a GPU)."""
    trt = trtshim.module()
    runtime = trt.Runtime(trtshim.logger())
    result = runtime.deserialize_cuda_engine(engine)
    if result is None:
        raise EngineBuildError("TensorRT could not deserialize the engine (wrong GPU, version or flavor?)")
    return result
