"""The cached stage runner: key → manifest lookup, or run under a lock and record.

:func:`run_stage` is plain Python (no Prefect) so it can be unit-tested and
run from any task runner; :mod:`pipeline.flows` wraps it in Prefect tasks.
It never raises for a stage failure: a failure is a :class:`StageResult`.
"""

from __future__ import annotations

import logging
import os
import time

from converter.errors import EXIT_INTERNAL

from ..hashing import changed_keys, key_of
from ..locks import HOST
from ..store import CorruptBlob, now_iso

from .base import Stage, StageContext, StageFailed, StageIO, StageResult
from .catalog import get_stage

#: Callables ``hook(event, config_name, stage, info)`` told when a stage starts and ends
#: in this process (the CLI shows progress with them).
PROGRESS_HOOKS: list = []
#: set to "1" in a process that replays a cached build for the dashboard: stages that miss are skipped, not built
CACHED_ONLY_ENV = "TF2TRT_CACHED_ONLY"
#: A miss reason names at most this many changed components (a code edit can touch many files).
MAX_NAMED_CHANGES = 6


def run_stage(stage: str | Stage, ctx: StageContext, upstream: dict[str, StageResult],
              lock_timeout: float | None = None) -> StageResult:
    """Run one stage with content caching; never raises for stage failures."""
    st = get_stage(stage)
    _progress("start", ctx, st.name)
    res = None
    try:
        res = _run_stage(st, ctx, upstream, lock_timeout)
        return res
    finally:
        _progress("end", ctx, st.name, f"{res.status} in {res.seconds:.1f} s" if res is not None else "interrupted")


def _run_stage(st: Stage, ctx: StageContext, upstream: dict[str, StageResult],
               lock_timeout: float | None) -> StageResult:
    start = time.perf_counter()
    prior = [u for u in upstream.values() if not u.ok]
    skip = f"{prior[0].name} {prior[0].status}" if prior else st.skip_reason(ctx)
    if skip:
        res = StageResult(st.name, "skipped", 0.0, f"skipped: {skip}")
        ctx.log.info("%s: %s", st.name, res.reason)
        record(ctx, res, None)
        return res
    comps: dict | None = None
    try:
        comps = st.components(ctx, upstream)
        key = key_of(comps)
        manifest, why = lookup(ctx, st.name, key)
        if manifest is not None:
            res = _cached(st.name, key, manifest, start, "")
        elif os.environ.get(CACHED_ONLY_ENV) == "1":
            # a replay that only records an answered build on the dashboard: it never does work of its own
            # (the config or model may have changed since the answer; the next real build will see that)
            res = StageResult(st.name, "skipped", time.perf_counter() - start,
                              "skipped: not cached any more when this run was recorded", key)
        else:
            res = _build_locked(st, ctx, upstream, comps, key, why, start, lock_timeout)
    except StageFailed as exc:
        res = StageResult(st.name, "failed", time.perf_counter() - start, str(exc),
                          key_of(comps) if comps else None, exc.outputs, dict(exc.meta, exit_code=exc.exit_code))
    except Exception as exc:  # noqa: BLE001 - a failed stage is a result, not a crash of the build
        ctx.log.debug("%s failed", st.name, exc_info=True)
        if isinstance(exc, CorruptBlob):
            _drop_producer(ctx, exc.digest, upstream)
        code, reason = _classified(exc)
        res = StageResult(st.name, "failed", time.perf_counter() - start, reason,
                          key_of(comps) if comps else None, meta={"exit_code": code})
    _log_and_record(ctx, res, comps)
    return res


def _build_locked(st: Stage, ctx: StageContext, upstream: dict[str, StageResult], comps: dict, key: str,
                  why: str | None, start: float, lock_timeout: float | None) -> StageResult:
    """A miss: build under the key's lock, unless whoever held it built it meanwhile."""
    lock = ctx.store.stage_lock(st.name, key)
    waited = False
    if not lock.try_acquire():
        waited = True
        ctx.log.info("%s: waiting for %s, which is building the same key %s", st.name, lock.holder(), key[:12])
        lock.acquire(timeout=lock_timeout)
    try:
        if waited:
            manifest, why2 = lookup(ctx, st.name, key)
            if manifest is not None:
                return _cached(st.name, key, manifest, start, " (built by another build while we waited)")
            why = why or why2
        run = ctx.store.load_run(ctx.config_id) or {}
        reason = miss_reason(run.get("stages", {}).get(st.name), comps, why, known=bool(run.get("stages")))
        ctx.log.info("%s: %s; running", st.name, reason)
        build_start = time.perf_counter()
        producer = {"stage": st.name, "key": key, "config": ctx.config.name}
        with ctx.store.lease(f"{ctx.config.name}:{st.name}") as lease:
            outputs, meta = st.execute(ctx, upstream, StageIO(ctx, upstream, lease, producer))
            ctx.store.put_manifest({
                "schema": 1, "stage": st.name, "key": key, "components": comps, "outputs": outputs,
                "meta": meta, "created": now_iso(), "seconds": round(time.perf_counter() - build_start, 3),
                "host": HOST, "pid": os.getpid(), "config": ctx.config.name})
        return StageResult(st.name, "built", time.perf_counter() - start, reason, key, outputs, meta)
    finally:
        lock.release()


def lookup(ctx: StageContext, stage: str, key: str) -> tuple[dict | None, str | None]:
    """A usable manifest for the key, or (None, why not).

    A manifest without the stage's output role was written by a pipeline whose
    stage produced something else under the same key (parse wrote a report
    before it wrote the graph): serving it would fail the next stage on every
    build, so it is a miss, and the rebuild overwrites it.
    """
    manifest = ctx.store.get_manifest(stage, key)
    if manifest is None:
        return None, None
    role = get_stage(stage).output
    if role not in (manifest.get("outputs") or {}):
        return None, f"cached manifest has no {role} output (written by an older tf2trt)"
    for role, out in (manifest.get("outputs") or {}).items():
        if not ctx.store.verify_blob(out["digest"]):
            ctx.store.drop_manifest(stage, key)
            return None, f"cached {role} blob {out['digest'][:12]} is missing or failed its hash check"
    return manifest, None


def _display(name: str) -> str:
    return name[len("config."):] if name.startswith("config.") else name


def miss_reason(entry: dict | None, comps: dict, why: str | None, known: bool = False) -> str:
    """Why a stage runs: the components that changed since this config's last run of it."""
    if why:
        return f"rebuilt: {why}"
    prev = (entry or {}).get("components")
    if prev is None:
        if entry and entry.get("status"):
            return f"rebuilt: no manifest for key (last run of this stage: {entry['status']})"
        if known:
            return "rebuilt: no manifest for key (this stage never finished for this config)"
        return "rebuilt: no manifest for key (no earlier run of this config)"
    changed = [_display(c) for c in changed_keys(prev, comps)]
    if changed:
        more = len(changed) - MAX_NAMED_CHANGES
        named = ", ".join(changed[:MAX_NAMED_CHANGES]) + (f" and {more} more" if more > 0 else "")
        return "rebuilt: key changed in " + named
    return "rebuilt: no manifest for key"


def _classified(exc: BaseException) -> tuple[int, str]:
    """The exit code the error tree gives ``exc``, and one line saying what went wrong and what to do.

    tf2trt's own errors carry their message and hint; anything else is an internal error, named by type.
    """
    from converter.errors import Tf2TrtError, classify

    code, message, hint = classify(exc)
    if isinstance(exc, Tf2TrtError):
        first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
        return code, (first + (f" (hint: {hint})" if hint else ""))[:500]
    if code != EXIT_INTERNAL:  # a path or disk problem: the user's, and its message says which
        return code, _short(exc)
    return code, _short(exc) + " (internal error: please report it)"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def _progress(event: str, ctx: StageContext, stage: str, info: str = "") -> None:
    for hook in list(PROGRESS_HOOKS):
        try:
            hook(event, ctx.config.name, stage, info)
        except Exception:  # noqa: BLE001 - a display must not break a build
            pass


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
    record(ctx, res, comps)


def record(ctx: StageContext, res: StageResult, comps: dict | None) -> None:
    """Note the stage's outcome in the config's run record (what ``status`` and miss reasons read)."""
    def update(rec: dict) -> dict:
        rec.setdefault("stages", {})
        rec["config"] = str(ctx.config.path)
        rec["name"] = ctx.config.name
        entry = {"status": res.status, "seconds": None if res.status == "skipped" else round(res.seconds, 4),
                 "reason": res.reason,
                 "when": now_iso(), "key": res.key if res.ok else None,
                 "outputs": {k: v.get("digest") for k, v in res.outputs.items()}}
        if comps is not None:
            entry["components"] = comps
        else:
            old = rec["stages"].get(res.name, {})
            if "components" in old:
                entry["components"] = old["components"]
        if res.name == "verify" and "verification" in res.meta:
            rec["verification"] = res.meta["verification"]
        rec["stages"][res.name] = entry
        rec["updated"] = entry["when"]
        return rec

    try:
        ctx.store.update_run(ctx.config_id, update)
    except Exception as exc:  # noqa: BLE001 - bookkeeping must not fail a build
        ctx.log.warning("could not record the run of %s: %s", res.name, exc)
