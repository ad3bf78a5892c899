"""The five conversion stages, their cache keys, and the cached stage runner.

A stage's key is the blake3 of the canonical JSON of its *components*:

=========  ===================================================================
stage      components (besides the stage name)
=========  ===================================================================
freeze     model content (file/tree digest, or the example spec: name, seed,
           input shape, Keras version); model.signature, inputs, outputs;
           TensorFlow and Keras versions
parse      frozen-graph digest; TensorFlow version
construct  frozen-graph digest; TensorFlow and TensorRT flavor/version;
           converter source digest
optimize   snapshot digest; builder.workspace/opt_level/targets; TensorRT
           flavor/version; target; converter source digest
verify     frozen-graph, snapshot and engine digests and the optimize key;
           verification.* (the .npz by content); TensorFlow and TensorRT
           flavor/version; converter source digest
=========  ===================================================================

Paths never enter a key, only content.  The timing cache is not in the
optimize key: it changes how long a build takes, not what it means.

:func:`run_stage` is plain Python (no Prefect) so it can be unit-tested and
run from any task runner; :mod:`pipeline.flows` wraps it in Prefect tasks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .backend import Backend
from .config import LoadedConfig
from .hashing import canonical_json, changed_keys, hash_bytes, hash_path, key_of
from .locks import HOST, locked
from .store import ArtifactStore, CorruptBlob, now_iso

log = logging.getLogger(__name__)

STAGES = ("freeze", "parse", "construct", "optimize", "verify")
STATUSES = ("built", "cached", "failed", "skipped")
#: Callables ``hook(event, config_name, stage, info)`` told when a stage starts and ends
#: in this process (the CLI shows progress with them).
PROGRESS_HOOKS: list = []
#: Each stage's main output role (what the next stage consumes).
OUTPUT_ROLE = {"freeze": "frozen", "parse": "report", "construct": "snapshot", "optimize": "engine",
               "verify": "report"}


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


class StageContext:
    """What a stage needs: the config, the store, the backend and a logger."""

    def __init__(self, config: LoadedConfig, store: ArtifactStore, backend: Backend,
                 logger: logging.Logger | logging.LoggerAdapter | None = None):
        self.config = config
        self.store = store
        self.backend = backend
        self.log = logger or log
        self._toolchain: dict | None = None

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


def config_id(config: LoadedConfig) -> str:
    """A config's identity in the store: its resolved path."""
    return hash_bytes(str(config.path).encode())[:20]


# --------------------------------------------------------------- components


def example_spec(ctx: StageContext) -> dict:
    spec = ctx.config.spec
    return {"kind": "keras_application", "name": spec.model.keras_application, "seed": spec.model.seed,
            "input_shape": list(spec.inputs[0].shape[1:]), "keras": ctx.toolchain.get("keras")}


def model_identity(ctx: StageContext) -> dict:
    spec = ctx.config.spec
    if spec.model.keras_application:
        return example_spec(ctx)
    path = ctx.config.model_path
    assert path is not None
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    return {"kind": "directory" if path.is_dir() else "file", "digest": hash_path(path)}


def _digest(upstream: dict[str, StageResult], stage: str, role: str | None = None) -> str:
    return upstream[stage].outputs[role or OUTPUT_ROLE[stage]]["digest"]


def components(stage: str, ctx: StageContext, upstream: dict[str, StageResult]) -> dict:
    spec = ctx.config.spec
    builder = spec.builder.model_dump(mode="json")
    if stage == "freeze":
        return {"stage": stage, "inputs": {"model": model_identity(ctx)},
                "config": {"model.signature": spec.model.signature,
                           "inputs": [i.model_dump(mode="json") for i in spec.inputs],
                           "outputs": spec.outputs},
                "toolchain": ctx.tc("tensorflow", "keras"),
                # the freezing code itself (not the whole converter: an op converter change starts at construct)
                "freeze_source": getattr(ctx.backend, "freeze_source_digest", lambda: None)()}
    if stage == "parse":
        return {"stage": stage, "inputs": {"frozen": _digest(upstream, "freeze")},
                "config": {}, "toolchain": ctx.tc("tensorflow")}
    if stage == "construct":
        return {"stage": stage, "inputs": {"frozen": _digest(upstream, "freeze")}, "config": {},
                "toolchain": ctx.tc("tensorflow", "tensorrt_flavor", "tensorrt"),
                "converter_source": ctx.backend.source_digest()}
    if stage == "optimize":
        return {"stage": stage, "inputs": {"snapshot": _digest(upstream, "construct")},
                "config": {f"builder.{k}": builder[k] for k in ("workspace", "opt_level", "targets")},
                "toolchain": ctx.tc("tensorrt_flavor", "tensorrt"),
                "target": ctx.backend.target(builder),
                "converter_source": ctx.backend.source_digest()}
    if stage == "verify":
        v = spec.verification
        npz = ctx.config.inputs_npz
        return {"stage": stage,
                "inputs": {"frozen": _digest(upstream, "freeze"), "snapshot": _digest(upstream, "construct"),
                           "engine": _digest(upstream, "optimize"), "optimize_key": upstream["optimize"].key,
                           "inputs_npz": hash_path(npz) if npz else None},
                "config": {"verification.rtol": v.rtol, "verification.atol": v.atol,
                           "verification.samples": v.samples, "verification.seed": v.seed},
                "toolchain": ctx.tc("tensorflow", "tensorrt_flavor", "tensorrt"),
                "converter_source": ctx.backend.source_digest()}
    raise ValueError(f"unknown stage {stage!r}")


def _display(name: str) -> str:
    return name[len("config."):] if name.startswith("config.") else name


# ------------------------------------------------------------------ execute


def _example_model(ctx: StageContext) -> Path:
    """Generate (once) the example keras.applications model named by its spec hash."""
    spec = example_spec(ctx)
    digest = hash_bytes(canonical_json(spec))
    dest = ctx.store.root / "examples" / f"{spec['name']}-{digest[:16]}.keras"
    if dest.exists():
        return dest
    with locked(ctx.store.lock_path(f"example-{digest[:24]}")):
        if dest.exists():
            return dest
        ctx.log.info("freeze: generating example model %s (seed %s, input %s, weights=None)",
                     spec["name"], spec["seed"], spec["input_shape"])
        tmpdir = ctx.store._tmp()
        tmpdir.mkdir(parents=True)
        try:
            tmp = tmpdir / "model.keras"
            ctx.backend.generate_example(spec["name"], spec["seed"], spec["input_shape"], tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
            ctx.store.write_json(dest.with_name(dest.name + ".json"), {**spec, "spec_digest": digest})
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return dest


def execute(stage: str, ctx: StageContext, upstream: dict[str, StageResult], lease,
            key: str) -> tuple[dict[str, dict], dict]:
    store, backend, spec = ctx.store, ctx.backend, ctx.config.spec
    producer = {"stage": stage, "key": key, "config": ctx.config.name}

    def put(data: bytes, kind: str) -> dict:
        return store.put_blob(data, kind, lease=lease, producer=producer)

    def read(up: str, role: str | None = None) -> bytes:
        digest = _digest(upstream, up, role)
        if lease is not None:
            lease.claim(digest)
        return store.read_blob(digest)

    if stage == "freeze":
        model_path = _example_model(ctx) if spec.model.keras_application else ctx.config.model_path
        frozen, meta = backend.freeze(model_path, [i.model_dump(mode="json") for i in spec.inputs],
                                      spec.outputs, spec.model.signature)
        return {"frozen": put(frozen, "frozen-graph")}, meta
    if stage == "parse":
        meta = backend.parse(read("freeze"))
        return {"report": put(canonical_json(meta), "parse-report")}, meta
    if stage == "construct":
        snapshot, meta = backend.construct(read("freeze"))
        return {"snapshot": put(snapshot, "network-snapshot")}, meta
    if stage == "optimize":
        builder = spec.builder.model_dump(mode="json")
        target = backend.target(builder)
        tc = ctx.toolchain
        outputs: dict[str, dict] = {}
        snapshot = read("construct")
        tmpdir = store._tmp()
        tmpdir.mkdir(parents=True)
        try:
            cache_path = None
            slot = f"{tc.get('tensorrt_flavor')}-{tc.get('tensorrt')}-{target}"
            if spec.builder.timing_cache:
                cache_path = tmpdir / "timing.cache"
                old = store.get_timing_cache(slot)
                if old:
                    cache_path.write_bytes(store.read_blob(old))
            engine, meta = backend.optimize(snapshot, builder, cache_path)
            outputs["engine"] = put(engine, "engine")
            if cache_path is not None and cache_path.exists() and cache_path.stat().st_size:
                outputs["timing_cache"] = put(cache_path.read_bytes(), "timing-cache")
                store.set_timing_cache(slot, outputs["timing_cache"]["digest"])
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        meta = {**meta, "target": target, "tensorrt_flavor": tc.get("tensorrt_flavor"),
                "tensorrt": tc.get("tensorrt"), "engine_bytes": outputs["engine"]["bytes"]}
        return outputs, meta
    if stage == "verify":
        v = spec.verification
        report = backend.verify(read("freeze"), read("construct"), ctx.config.inputs_npz, v.seed, v.samples,
                                v.rtol, v.atol)
        out = {"report": put(canonical_json(report), "verification-report")}
        if not report.get("passed"):
            raise VerificationFailed(report, out)
        return out, {"verification": report}
    raise ValueError(f"unknown stage {stage!r}")


class VerificationFailed(Exception):
    def __init__(self, report: dict, outputs: dict):
        self.report, self.outputs = report, outputs
        bad = [o for o in report.get("outputs", []) if not o.get("passed")]
        detail = ", ".join(f"{o['name']} max_abs_err={o.get('max_abs_err'):.3g} "
                           f"max_rel_err={o.get('max_rel_err'):.3g}" for o in bad
                           if isinstance(o.get("max_abs_err"), (int, float))
                           and isinstance(o.get("max_rel_err"), (int, float)))
        super().__init__("verification failed" + (f": {detail}" if detail else ""))


# ------------------------------------------------------------------- runner


def _lookup(ctx: StageContext, stage: str, key: str) -> tuple[dict | None, str | None]:
    """A usable manifest for the key, or (None, why not)."""
    manifest = ctx.store.get_manifest(stage, key)
    if manifest is None:
        return None, None
    for role, out in (manifest.get("outputs") or {}).items():
        if not ctx.store.verify_blob(out["digest"]):
            ctx.store.drop_manifest(stage, key)
            return None, f"cached {role} blob {out['digest'][:12]} is missing or failed its hash check"
    return manifest, None


def _miss_reason(entry: dict | None, comps: dict, why: str | None, known: bool = False) -> str:
    if why:
        return f"rebuilt: {why}"
    prev = (entry or {}).get("components")
    if prev is None:
        if entry and entry.get("status"):
            return f"rebuilt: no manifest for key (last run of this stage: {entry['status']})"
        if known:
            return "rebuilt: no manifest for key (this stage never finished for this config)"
        return "rebuilt: no manifest for key (no earlier run of this config)"
    changed = changed_keys(prev, comps)
    if changed:
        return "rebuilt: key changed in " + ", ".join(_display(c) for c in changed)
    return "rebuilt: no manifest for key"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def _progress(event: str, ctx: StageContext, stage: str, info: str = "") -> None:
    for hook in list(PROGRESS_HOOKS):
        try:
            hook(event, ctx.config.name, stage, info)
        except Exception:  # noqa: BLE001 - a display must not break a build
            pass


def run_stage(stage: str, ctx: StageContext, upstream: dict[str, StageResult],
              lock_timeout: float | None = None) -> StageResult:
    """Run one stage with content caching; never raises for stage failures."""
    _progress("start", ctx, stage)
    try:
        res = _run_stage(stage, ctx, upstream, lock_timeout)
    finally:
        _progress("end", ctx, stage)
    return res


def _run_stage(stage: str, ctx: StageContext, upstream: dict[str, StageResult],
               lock_timeout: float | None = None) -> StageResult:
    start = time.perf_counter()
    prior = [u for u in upstream.values() if not u.ok]
    if prior:
        res = StageResult(stage, "skipped", 0.0, f"skipped: {prior[0].name} {prior[0].status}")
        ctx.log.info("%s: %s", stage, res.reason)
        _record(ctx, res, None)
        return res
    if stage == "verify" and not ctx.config.spec.verification.enabled:
        res = StageResult(stage, "skipped", 0.0, "skipped: verification.enabled is false")
        ctx.log.info("%s: %s", stage, res.reason)
        _record(ctx, res, None)
        return res
    comps: dict | None = None
    try:
        comps = components(stage, ctx, upstream)
        key = key_of(comps)
        manifest, why = _lookup(ctx, stage, key)
        if manifest is not None:
            res = _cached(stage, key, manifest, start, "")
        else:
            lock = ctx.store.stage_lock(stage, key)
            waited = False
            if not lock.try_acquire():
                waited = True
                ctx.log.info("%s: waiting for %s, which is building the same key %s", stage, lock.holder(), key[:12])
                lock.acquire(timeout=lock_timeout)
            try:
                if waited:
                    manifest, why2 = _lookup(ctx, stage, key)
                    if manifest is not None:
                        res = _cached(stage, key, manifest, start, " (built by another build while we waited)")
                        _log_and_record(ctx, res, comps)
                        return res
                    why = why or why2
                record = ctx.store.load_run(ctx.config_id) or {}
                entry = record.get("stages", {}).get(stage)
                reason = _miss_reason(entry, comps, why, known=bool(record.get("stages")))
                ctx.log.info("%s: %s; running", stage, reason)
                build_start = time.perf_counter()
                with ctx.store.lease(f"{ctx.config.name}:{stage}") as lease:
                    outputs, meta = execute(stage, ctx, upstream, lease, key)
                    build_seconds = time.perf_counter() - build_start
                    ctx.store.put_manifest({
                        "schema": 1, "stage": stage, "key": key, "components": comps, "outputs": outputs,
                        "meta": meta, "created": now_iso(), "seconds": round(build_seconds, 3),
                        "host": HOST, "pid": os.getpid(), "config": ctx.config.name})
                res = StageResult(stage, "built", time.perf_counter() - start, reason, key, outputs, meta)
            finally:
                lock.release()
    except VerificationFailed as exc:
        res = StageResult(stage, "failed", time.perf_counter() - start, str(exc), key_of(comps) if comps else None,
                          exc.outputs, {"verification": exc.report})
    except Exception as exc:  # noqa: BLE001 - a failed stage is a result, not a crash of the build
        ctx.log.debug("%s failed", stage, exc_info=True)
        if isinstance(exc, CorruptBlob):
            _drop_producer(ctx, exc.digest, upstream)
        res = StageResult(stage, "failed", time.perf_counter() - start, _short(exc),
                          key_of(comps) if comps else None)
    _log_and_record(ctx, res, comps)
    return res


def _cached(stage: str, key: str, manifest: dict, start: float, extra: str) -> StageResult:
    built = manifest.get("created", "?")
    reason = f"reused: manifest for key {key[:12]} (built {built} in {manifest.get('seconds', 0):.1f} s){extra}"
    return StageResult(stage, "cached", time.perf_counter() - start, reason, key,
                       manifest.get("outputs") or {}, manifest.get("meta") or {})


def _drop_producer(ctx: StageContext, digest: str, upstream: dict[str, StageResult]) -> None:
    """An upstream blob went bad after its stage reported it: forget that manifest."""
    for res in upstream.values():
        if res.key and any(o.get("digest") == digest for o in res.outputs.values()):
            ctx.store.drop_manifest(res.name, res.key)


def _log_and_record(ctx: StageContext, res: StageResult, comps: dict | None) -> None:
    level = logging.WARNING if res.status == "failed" else logging.INFO
    ctx.log.log(level, "%s: %s [%s, %.3f s]", res.name, res.reason, res.status, res.seconds)
    _record(ctx, res, comps)


def _record(ctx: StageContext, res: StageResult, comps: dict | None) -> None:
    def update(rec: dict) -> dict:
        rec.setdefault("stages", {})
        rec["config"] = str(ctx.config.path)
        rec["name"] = ctx.config.name
        entry = {"status": res.status, "seconds": round(res.seconds, 4), "reason": res.reason,
                 "when": now_iso(), "key": res.key if res.ok else None,
                 "outputs": {k: v.get("digest") for k, v in res.outputs.items()}}
        if comps is not None:
            entry["components"] = comps
        else:
            old = rec["stages"].get(res.name, {})
            if "components" in old:
                entry["components"] = old["components"]
        if res.ok is False and comps is not None:
            entry["components"] = comps
        if res.name == "verify" and "verification" in res.meta:
            rec["verification"] = res.meta["verification"]
        rec["stages"][res.name] = entry
        rec["updated"] = entry["when"]
        return rec

    try:
        ctx.store.update_run(ctx.config_id, update)
    except Exception as exc:  # noqa: BLE001 - bookkeeping must not fail a build
        ctx.log.warning("could not record the run of %s: %s", res.name, exc)


# --------------------------------------------------------------- whole build


def place_engine(ctx: StageContext, results: dict[str, StageResult]) -> dict | None:
    """Copy the verified engine to the config's output path with a manifest beside it."""
    opt = results.get("optimize")
    if opt is None or not opt.ok or "engine" not in opt.outputs:
        return None
    ver = results.get("verify")
    if ver is not None and ver.status == "failed":
        return None
    digest = opt.outputs["engine"]["digest"]
    dest = ctx.config.output_path
    meta_path = dest.with_name(dest.name + ".json")
    construct = results.get("construct")
    manifest = {
        "config": ctx.config.given, "name": ctx.config.name, "engine": dest.name,
        "digest": digest, "bytes": opt.outputs["engine"]["bytes"],
        "layers": (construct.meta.get("layers") if construct else None) or opt.meta.get("layers"),
        "tensorrt_flavor": opt.meta.get("tensorrt_flavor"), "tensorrt": opt.meta.get("tensorrt"),
        "target": opt.meta.get("target"), "builder": ctx.config.spec.builder.model_dump(mode="json"),
        "toolchain": ctx.toolchain, "converter_source": ctx.backend.source_digest(),
        "stage_keys": {n: r.key for n, r in results.items()},
        "verification": (ver.meta.get("verification") if ver is not None else None),
        "tags": list(ctx.config.spec.tags),
    }
    same = False
    if dest.is_file() and dest.stat().st_size == manifest["bytes"]:
        old = ctx.store.read_json(meta_path) or {}
        same = old.get("digest") == digest and hash_path(dest) == digest
    if not same:
        ctx.store.export_blob(digest, dest)
    old = ctx.store.read_json(meta_path) if meta_path.exists() else None
    stable = {k: v for k, v in manifest.items()}
    if old is None or {k: old.get(k) for k in stable} != stable:
        ctx.store.write_json(meta_path, {**manifest, "placed": now_iso()})

    def update(rec: dict) -> dict:
        rec["engine"] = {"path": str(dest), "digest": digest, "bytes": manifest["bytes"], "when": now_iso()}
        return rec

    ctx.store.update_run(ctx.config_id, update)
    return {"path": str(dest), "bytes": manifest["bytes"], "digest": digest}


def summarize(ctx: StageContext, results: dict[str, StageResult], engine: dict | None) -> dict:
    """The per-config entry of ``tf2trt build --json``."""
    ver = results.get("verify")
    report = (ver.meta.get("verification") if ver is not None else None) or {}
    verification = {
        "checked": report.get("checked"),
        "passed": bool(report.get("passed")) if report else None,
        "outputs": [{"name": o.get("name"), "max_abs_err": o.get("max_abs_err"),
                     "max_rel_err": o.get("max_rel_err"), "passed": bool(o.get("passed"))}
                    for o in report.get("outputs", [])],
    }
    ok = all(results[s].status in ("built", "cached") or (s == "verify" and results[s].status == "skipped"
                                                              and results["optimize"].ok)
             for s in STAGES if s in results) and engine is not None
    return {
        "config": ctx.config.given,
        "name": ctx.config.name,
        "ok": ok,
        "stages": [{"name": r.name, "status": r.status, "seconds": round(r.seconds, 4), "reason": r.reason}
                   for r in (results[s] for s in STAGES if s in results)],
        "engine": ({"path": engine["path"], "bytes": engine["bytes"]} if engine else None),
        "engine_digest": engine["digest"] if engine else None,
        "verification": verification,
        "facts": engine_facts(ctx, results, engine),
    }


def engine_facts(ctx: StageContext, results: dict[str, StageResult], engine: dict | None) -> dict:
    opt = results.get("optimize")
    construct = results.get("construct")
    return {
        "layers": construct.meta.get("layers") if construct and construct.ok else None,
        "bytes": engine["bytes"] if engine else (opt.outputs.get("engine", {}).get("bytes") if opt else None),
        "digest": engine["digest"] if engine else None,
        "tensorrt_flavor": ctx.toolchain.get("tensorrt_flavor"),
        "tensorrt": ctx.toolchain.get("tensorrt"),
        "target": opt.meta.get("target") if opt and opt.ok else ctx.backend.target(
            ctx.config.spec.builder.model_dump(mode="json")),
    }


def run_build(ctx: StageContext, runner: Callable[[str, dict], StageResult] | None = None) -> dict:
    """All five stages in order (no Prefect): the reference flow used by tests."""
    results: dict[str, StageResult] = {}
    for stage in STAGES:
        upstream = dict(results)
        results[stage] = runner(stage, upstream) if runner else run_stage(stage, ctx, upstream)
    engine = None
    with contextlib.suppress(Exception):
        engine = place_engine(ctx, results)
    return summarize(ctx, results, engine)
