"""What every stage shares: the stage protocol, its context, its result, its I/O.

A stage is an object with a name, the upstream outputs it reads, its output
role, the converter code it runs, and two methods: ``components`` (what its
cache key is made of) and ``execute`` (the work, on a cache miss).  The cached
runner (:mod:`pipeline.stages.runner`) is the same for all of them.
"""

from __future__ import annotations

import abc

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from ..backend import Backend
from ..config import LoadedConfig
from ..hashing import hash_bytes, key_of
from ..store import ArtifactStore

log = logging.getLogger("pipeline.stages")

STATUSES = ("built", "cached", "failed", "skipped")


@dataclass
class StageResult:
    name: str
    status: str
    seconds: float
    reason: str
    key: str | None = None
    outputs: dict[str, dict] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("built", "cached")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StageResult":
        return cls(**d)


def config_id(config: LoadedConfig) -> str:
    """A config's identity in the store: its resolved path."""
    return hash_bytes(str(config.path).encode())[:20]


class StageContext:
    """What a stage needs: the config, the store, the backend and a logger."""

    def __init__(self, config: LoadedConfig, store: ArtifactStore, backend: Backend,
                 logger: logging.Logger | logging.LoggerAdapter | None = None):
        self.config = config
        self.store = store
        self.backend = backend
        self.log = logger or log
        self._toolchain: dict | None = None
        self._code: dict[str, dict[str, str]] = {}

    @property
    def config_id(self) -> str:
        return config_id(self.config)

    @property
    def toolchain(self) -> dict:
        if self._toolchain is None:
            self._toolchain = dict(self.backend.toolchain())
        return self._toolchain

    def tc(self, *names: str) -> dict:
        return {n: self.toolchain.get(n) for n in names}

    def code(self, stage: "Stage") -> dict[str, str]:
        """``{file: digest}`` of the code ``stage`` runs for this config (hashed once per build)."""
        entries = tuple(stage.code_for(self))
        cache = f"{stage.name}:{'|'.join(entries)}"
        if cache not in self._code:
            self._code[cache] = dict(self.backend.code_digests(entries))
        return self._code[cache]


class StageFailed(Exception):
    """A stage ran and judged its result bad: a failure that still has outputs to report."""

    exit_code = 1  #: what ``tf2trt build`` exits with for it (see converter.errors)

    def __init__(self, message: str, outputs: dict, meta: dict):
        super().__init__(message)
        self.outputs, self.meta = outputs, meta


class StageIO:
    """One execution's access to the store: read upstream blobs, put new ones.

    Reads claim the blob for the build's lease (so ``gc`` keeps it), puts record
    which stage run produced the blob.
    """

    def __init__(self, ctx: StageContext, upstream: dict[str, StageResult], lease, producer: dict):
        self.ctx, self.upstream, self.lease, self.producer = ctx, upstream, lease, producer

    def read(self, stage: str, role: str) -> bytes:
        digest = output_digest(self.upstream, stage, role)
        if self.lease is not None:
            self.lease.claim(digest)
        return self.ctx.store.read_blob(digest)

    def put(self, data: bytes, kind: str) -> dict:
        return self.ctx.store.put_blob(data, kind, lease=self.lease, producer=self.producer)


def code_list(*parts: tuple[str, ...]) -> tuple[str, ...]:
    """Code lists joined in order, each entry once (stages build on each other's lists)."""
    return tuple(dict.fromkeys(entry for part in parts for entry in part))


def output_digest(upstream: dict[str, StageResult], stage: str, role: str) -> str:
    return upstream[stage].outputs[role]["digest"]


class Stage(abc.ABC):
    """One pipeline stage.  Subclasses set the class attributes and the two methods.

    ``reads`` maps an input name (as it appears in the key's ``inputs``) to the
    ``(stage, role)`` of an upstream output whose digest enters the key: what
    the stage reads (and, for verify, the engine it vouches for).  ``code``
    lists the converter files the stage can run, relative to the ``converter``
    package (``"ops/"`` = the whole subpackage); :meth:`code_for` the ones it
    runs for a config.  Only those enter the key, so
    editing any other converter file (the CLI, another stage's code) leaves the
    stage cached.
    """

    name: ClassVar[str]
    reads: ClassVar[dict[str, tuple[str, str]]] = {}
    output: ClassVar[str]
    code: ClassVar[tuple[str, ...]] = ()

    def inputs(self, upstream: dict[str, StageResult]) -> dict[str, str]:
        """The digests of what the stage reads from upstream (the ``inputs`` of its key)."""
        return {name: output_digest(upstream, stage, role) for name, (stage, role) in self.reads.items()}

    def key_components(self, ctx: StageContext, upstream: dict[str, StageResult], *, inputs: dict | None = None,
                       config: dict | None = None, toolchain: tuple[str, ...] = (), **extra) -> dict:
        """The component dict every stage's key has: stage, inputs, config, toolchain, code."""
        return {"stage": self.name, "inputs": {**self.inputs(upstream), **(inputs or {})},
                "config": config or {}, "toolchain": ctx.tc(*toolchain), "code": ctx.code(self), **extra}

    def code_for(self, ctx: StageContext) -> tuple[str, ...]:
        """The part of :attr:`code` this config runs (all of it, unless a stage runs some modules only for
        some settings: reduced precision).  Only these files enter the key, so an fp32 build's key is
        unchanged by code only an fp16 build runs."""
        return self.code

    def skip_reason(self, ctx: StageContext) -> str | None:
        """Why the config turns this stage off (None: it runs)."""
        return None

    @abc.abstractmethod
    def components(self, ctx: StageContext, upstream: dict[str, StageResult]) -> dict:
        """The stage's cache-key components (see :meth:`key_components`)."""

    @abc.abstractmethod
    def execute(self, ctx: StageContext, upstream: dict[str, StageResult], io: StageIO) -> tuple[dict, dict]:
        """Do the work; return ``(outputs by role, meta)``.  Raise to fail the stage."""

    def key(self, ctx: StageContext, upstream: dict[str, StageResult]) -> str:
        return key_of(self.components(ctx, upstream))

    def __repr__(self) -> str:
        return f"<stage {self.name}>"
