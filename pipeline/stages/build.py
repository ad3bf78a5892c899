"""A whole build: all stages in order, the engine placed, the summary.

:func:`run_build` is the reference flow (no Prefect) used by tests and by
``buildproc``; :mod:`pipeline.flows` runs the same stages as Prefect tasks and
finishes with the same :func:`place_engine` and :func:`summarize`.
"""

from __future__ import annotations

import contextlib
from typing import Callable

from ..hashing import hash_path, key_of
from ..store import now_iso
from .base import StageContext, StageResult
from .catalog import STAGES, get_stage
from .runner import run_stage


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
        # the code that built this engine (the optimize stage's code list), not the whole converter
        "toolchain": ctx.toolchain, "engine_code": key_of(ctx.code(get_stage("optimize"))),
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
    if old is None or {k: old.get(k) for k in manifest} != manifest:
        ctx.store.write_json(meta_path, {**manifest, "placed": now_iso()})

    def update(rec: dict) -> dict:
        rec["engine"] = {"path": str(dest), "digest": digest, "bytes": manifest["bytes"], "when": now_iso()}
        return rec

    ctx.store.update_run(ctx.config_id, update)
    return {"path": str(dest), "bytes": manifest["bytes"], "digest": digest}


def build_ok(results: dict[str, StageResult]) -> bool:
    """Every stage built or cached (verify may be skipped by the config, after a good optimize)."""
    return all(results[s].ok or (s == "verify" and results[s].status == "skipped" and results["optimize"].ok)
               for s in STAGES if s in results)


def exit_code(results: dict[str, StageResult], engine: dict | None) -> int:
    """0 for a good build, else the worst failed stage's code (1 verification failed, 2 bad input, 3 bug)."""
    if build_ok(results) and engine is not None:
        return 0
    codes = [int(r.meta.get("exit_code", 3)) for r in results.values() if r.status == "failed"]
    return max(codes) if codes else 3


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
    return {
        "config": ctx.config.given,
        "name": ctx.config.name,
        "ok": build_ok(results) and engine is not None,
        "exit_code": exit_code(results, engine),
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
    """All stages in order (no Prefect): the reference flow used by tests."""
    results: dict[str, StageResult] = {}
    for stage in STAGES:
        upstream = dict(results)
        results[stage] = runner(stage, upstream) if runner else run_stage(stage, ctx, upstream)
    engine = None
    with contextlib.suppress(Exception):
        engine = place_engine(ctx, results)
    return summarize(ctx, results, engine)
