"""A whole build: all stages in order, the engine placed, the summary.

:func:`run_build` is the reference flow (no Prefect) used by tests and by
``buildproc``; :mod:`pipeline.flows` runs the same stages as Prefect tasks and
finishes with the same :func:`place_engine` and :func:`summarize`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable

from converter._io import atomic_write_bytes
from converter.errors import EnvironmentProblem, Tf2TrtError

from ..hashing import hash_bytes, hash_path, key_of
from ..locks import locked
from ..store import CorruptBlob, beside_tmp, now_iso, sweep_beside
from .base import StageContext, StageResult
from .catalog import STAGES, get_stage
from .runner import run_stage

log = logging.getLogger(__name__)

#: ``placed_by`` in an engine's ``.json`` sidecar: this file pair was written by a build, so a later build may
#: replace it (anything else at the output path is someone else's file)
PLACED_BY = "tf2trt build"
FORCE_HINT = ("remove it or choose another `output:` in the config, or build with --force to overwrite it "
              "(--force never overwrites an input of the build)")


class PlacementError(EnvironmentProblem):
    """The engine was built but could not be placed at the config's output path (exit 2, the hint says what to do)."""


def place_engine(ctx: StageContext, results: dict[str, StageResult], force: bool | None = None) -> dict | None:
    """Copy the verified engine to the config's output path with a manifest beside it.

    Returns ``{"path", "bytes", "digest"}``, or None when there is nothing to place (a stage failed).
    Raises :class:`PlacementError` (exit 2) when the engine cannot be placed, and keeps the error on
    ``ctx.placement_error`` so :func:`summarize` reports it (``ok`` false, ``error``, ``exit_code``)
    even in a flow that catches it.  The rules, each of which was once broken:

    * the output may be on another filesystem than the store (the documented shared-store setup):
      the blob is copied to a temp file beside the output, fsynced and renamed
      (:meth:`~pipeline.store.ArtifactStore.place_blob`), never hard-linked or renamed across devices,
      and no second copy is made in the store;
    * an existing file is replaced only if tf2trt placed it: its ``.json`` sidecar says
      ``placed_by: tf2trt build`` for this engine name (an engine damaged since is replaced, with a
      log line), or it already has the new engine's bytes.  Anything else is the user's file: an
      error naming it, unless ``force`` (``tf2trt build --force``; default:
      ``ctx.config.force_output``);
    * never, even with ``force``, over an input of the build (the config file, the model, the
      verification inputs) or inside the store;
    * the output must be inside the config's directory tree or an allowed root
      (:meth:`~pipeline.config.LoadedConfig.output_problem`), checked with symlinks resolved;
    * the placed engine and its sidecar follow the umask, like ``tf2trt convert``'s (:mod:`converter._io`).

    Concurrent builds placing the same output serialize on a lock in the store.
    """
    ctx.placement_error = None  # type: ignore[attr-defined]
    try:
        return _place(ctx, results, ctx.config.force_output if force is None else force)
    except Exception as exc:
        err: Exception = exc
        if isinstance(exc, CorruptBlob):
            opt = results.get("optimize")
            if opt is not None and opt.key:
                ctx.store.drop_manifest("optimize", opt.key)  # the next build rebuilds the engine
            err = PlacementError(f"the engine blob failed its hash check while it was copied to "
                                 f"{ctx.config.output_path}: {exc}",
                                 "build again: the store dropped the damaged engine and rebuilds it")
        elif isinstance(exc, OSError) and not isinstance(exc, Tf2TrtError):
            err = PlacementError(f"could not place the engine at {ctx.config.output_path}: "
                                 f"{exc.strerror or exc} ({type(exc).__name__})",
                                 "check that the output directory exists or can be created and is writable")
        ctx.placement_error = err  # type: ignore[attr-defined]
        if err is exc:
            raise
        raise err from exc


def _inputs(ctx: StageContext) -> list[tuple[str, Path]]:
    """What the build reads (never to be overwritten): config, model, verification inputs, the store."""
    found = [("the config file", ctx.config.path), ("the artifact store", ctx.store.root)]
    if ctx.config.model_path is not None:
        found.append(("the model", ctx.config.model_path))
    if ctx.config.inputs_npz is not None:
        found.append(("the verification inputs", ctx.config.inputs_npz))
    return found


def _check_not_an_input(ctx: StageContext, *paths: Path) -> None:
    for path in paths:
        real = path.resolve()
        for what, inp in _inputs(ctx):
            ireal = inp.resolve()
            same = real == ireal or real.is_relative_to(ireal)
            if not same and path.exists() and inp.exists():
                try:
                    same = os.path.samefile(path, inp)  # a hard link to the model is the model
                except OSError:
                    same = False
            if same:
                raise PlacementError(f"output {path} would overwrite {what} ({inp}), an input of this build",
                                     "choose another `output:` in the config (--force never overwrites a build's "
                                     "inputs)")


def _sidecar(path: Path) -> tuple[bool, dict | None]:
    """(exists, parsed object or None) for a ``.json`` sidecar."""
    if not (path.exists() or path.is_symlink()):
        return False, None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True, None
    return True, value if isinstance(value, dict) else None


def _ours(meta: dict | None, name: str) -> bool:
    """Whether a sidecar was written by a build for engine ``name`` (``placed_by``; older builds wrote
    ``placed`` and ``stage_keys`` only)."""
    if not meta or not meta.get("digest") or meta.get("engine") != name:
        return False
    return meta.get("placed_by") == PLACED_BY or ("placed" in meta and "stage_keys" in meta)


def engine_profiles(results: dict[str, StageResult]) -> list[dict] | None:
    """The engine's optimization profiles, ``[{input: {min, opt, max}}]`` (None: static shapes).

    The engine is built with one TensorRT profile per entry of the snapshot's profiles, which optimize
    records in its meta; freeze's meta has the same list (the snapshot copies it), for a build whose
    optimize did not run.
    """
    for stage in ("optimize", "freeze"):
        res = results.get(stage)
        if res is not None and res.ok and res.meta.get("profiles"):
            return [{name: {k: list(r[k]) for k in ("min", "opt", "max")} for name, r in sorted(p.items())}
                    for p in res.meta["profiles"]]
    return None


def engine_inputs(results: dict[str, StageResult]) -> list[dict] | None:
    """The engine's inputs as frozen: name, shape (-1 for a dimension a profile keeps dynamic), dtype."""
    res = results.get("freeze")
    if res is None or not res.ok or not res.meta.get("inputs"):
        return None
    return [{"name": i.get("name"), "shape": i.get("shape"), "dtype": i.get("dtype")} for i in res.meta["inputs"]]


def _place(ctx: StageContext, results: dict[str, StageResult], force: bool) -> dict | None:
    opt = results.get("optimize")
    if opt is None or not opt.ok or "engine" not in opt.outputs:
        return None
    ver = results.get("verify")
    if ver is not None and ver.status == "failed":
        return None
    problem = ctx.config.output_problem()
    if problem:
        raise PlacementError(problem, "keep `output:` inside the config's directory, or allow another directory "
                                      "with `output_root:` in the config (relative to it) or $TF2TRT_OUTPUT_ROOTS")
    digest = opt.outputs["engine"]["digest"]
    dest = ctx.config.output_path
    meta_path = dest.with_name(dest.name + ".json")
    _check_not_an_input(ctx, dest, meta_path)
    construct = results.get("construct")
    manifest = {
        "config": ctx.config.given, "name": ctx.config.name, "engine": dest.name,
        "digest": digest, "bytes": opt.outputs["engine"]["bytes"],
        "layers": (construct.meta.get("layers") if construct else None) or opt.meta.get("layers"),
        "tensorrt_flavor": opt.meta.get("tensorrt_flavor"), "tensorrt": opt.meta.get("tensorrt"),
        "target": opt.meta.get("target"), "builder": ctx.config.spec.builder.model_dump(mode="json"),
        # what the engine serves: each input's shape (-1: dynamic) and min/opt/max per input per profile
        "inputs": engine_inputs(results), "profiles": engine_profiles(results),
        # the code that built this engine (the optimize stage's code list), not the whole converter
        "toolchain": ctx.toolchain, "engine_code": key_of(ctx.code(get_stage("optimize"))),
        "stage_keys": {n: r.key for n, r in results.items()},
        "verification": (ver.meta.get("verification") if ver is not None else None),
        # what the engine computes in: per-layer counts, the layers kept in fp32 and why, the fallback's
        "precision": engine_precision(ctx, results),
        "tags": list(ctx.config.spec.tags),
        "placed_by": PLACED_BY,
    }
    with locked(ctx.store.lock_path("place-" + hash_bytes(str(dest).encode())[:24])):
        sweep_beside(dest)
        sweep_beside(meta_path)
        meta_exists, old = _sidecar(meta_path)
        ours = _ours(old, dest.name)
        if meta_exists and (not ours or meta_path.is_symlink()) and not force:
            raise PlacementError(f"{meta_path} exists and was not written by tf2trt build (it would be replaced "
                                 f"by the engine's manifest)", FORCE_HINT)
        same = False
        if dest.exists() or dest.is_symlink():
            if dest.is_dir() and not dest.is_symlink():
                raise PlacementError(f"output {dest} is a directory", "give a file path for the engine in `output:`")
            regular = dest.is_file() and not dest.is_symlink()
            same = regular and dest.stat().st_size == manifest["bytes"] and hash_path(dest) == digest
            if not (same or (ours and regular) or force):
                why = ("it is a symlink" if dest.is_symlink() else
                       "no tf2trt build manifest beside it says tf2trt placed it")
                raise PlacementError(f"output {dest} exists and is not an engine tf2trt build placed there ({why})",
                                     FORCE_HINT)
            if ours and regular and not same and old.get("digest") != digest and hash_path(dest) != old["digest"]:
                log.info("replacing %s: its content changed since tf2trt placed it", dest)
        if not same:
            ctx.store.place_blob(digest, dest)
            log.debug("placed engine %s at %s", digest[:16], dest)
        if not ours or old is None or {k: old.get(k) for k in manifest} != manifest:
            data = (json.dumps({**manifest, "placed": now_iso()}, indent=2, sort_keys=True) + "\n").encode()
            atomic_write_bytes(meta_path, data, tmp=beside_tmp(meta_path))

    def update(rec: dict) -> dict:
        rec["engine"] = {"path": str(dest), "digest": digest, "bytes": manifest["bytes"], "when": now_iso(),
                         "profiles": manifest["profiles"], "precision": precision_text(manifest["precision"])}
        return rec

    try:
        ctx.store.update_run(ctx.config_id, update)
    except Exception as exc:  # noqa: BLE001 - the engine is placed; the record is bookkeeping
        ctx.log.warning("placed the engine at %s but could not record it in the store: %s", dest, exc)
    return {"path": str(dest), "bytes": manifest["bytes"], "digest": digest}


def build_ok(results: dict[str, StageResult]) -> bool:
    """Every stage built or cached (verify may be skipped by the config, after a good optimize)."""
    return all(results[s].ok or (s == "verify" and results[s].status == "skipped" and results["optimize"].ok)
               for s in STAGES if s in results)


def exit_code(results: dict[str, StageResult], engine: dict | None, error: BaseException | None = None) -> int:
    """0 for a good build, else the worst failed stage's code (1 verification failed, 2 bad input, 3 bug).

    A build whose stages all succeeded but whose engine could not be placed exits with the placement
    error's code (2 for :class:`PlacementError` and a full disk, 3 for a bug).
    """
    if build_ok(results) and engine is not None:
        return 0
    codes = [int(r.meta.get("exit_code", 3)) for r in results.values() if r.status == "failed"]
    if error is not None:
        codes.append(error.exit_code if isinstance(error, Tf2TrtError) else 3)
    return max(codes) if codes else 3


def _error_text(error: BaseException) -> str:
    if isinstance(error, Tf2TrtError):
        return error.message + (f" (hint: {error.hint})" if error.hint else "")
    return f"internal error placing the engine: {type(error).__name__}: {error} (please report it)"


def summarize(ctx: StageContext, results: dict[str, StageResult], engine: dict | None) -> dict:
    """The per-config entry of ``tf2trt build --json``; a placement failure adds ``error`` (``ok`` false)."""
    error = getattr(ctx, "placement_error", None) if engine is None else None
    ver = results.get("verify")
    report = (ver.meta.get("verification") if ver is not None else None) or {}
    verification = {
        "checked": report.get("checked"),
        "passed": bool(report.get("passed")) if report else None,
        "outputs": [{"name": o.get("name"), "max_abs_err": o.get("max_abs_err"),
                     "max_rel_err": o.get("max_rel_err"), "passed": bool(o.get("passed"))}
                    for o in report.get("outputs", [])],
    }
    if report.get("shapes"):
        # a dynamic network: one row per input shape set checked (every profile's min/opt/max, then the config's)
        verification["shapes"] = [{"inputs": row.get("inputs"), "passed": bool(row.get("passed")),
                                   "max_abs_err": _worst(row)} for row in report["shapes"]]
    summary = {
        "config": ctx.config.given,
        "name": ctx.config.name,
        "ok": build_ok(results) and engine is not None,
        "exit_code": exit_code(results, engine, error),
        # a stage that did not run has no time (null), not 0.0
        "stages": [{"name": r.name, "status": r.status,
                    "seconds": None if r.status == "skipped" else round(r.seconds, 4), "reason": r.reason}
                   for r in (results[s] for s in STAGES if s in results)],
        "engine": ({"path": engine["path"], "bytes": engine["bytes"]} if engine else None),
        "engine_digest": engine["digest"] if engine else None,
        "verification": verification,
        "facts": engine_facts(ctx, results, engine),
        "settings": effective_settings(ctx, results),
    }
    if error is not None:
        summary["error"] = _error_text(error)
    return summary


def _worst(row: dict) -> float | None:
    errs = [o.get("max_abs_err") for o in (row.get("outputs") or {}).values()]
    return max((e for e in errs if isinstance(e, (int, float))), default=None)


def shape_text(shape) -> str:
    return "x".join("?" if d is None or (isinstance(d, int) and d < 0) else str(d) for d in shape or []) or "scalar"


def profile_lines(profiles: list[dict] | None) -> list[str]:
    """One line per optimization profile: ``profile 0: token_ids 1x8 / 4x64 / 8x128 (min / opt / max)``."""
    return [f"profile {k}: " + ", ".join(f"{name} {shape_text(r['min'])} / {shape_text(r['opt'])} / "
                                         f"{shape_text(r['max'])}" for name, r in sorted(p.items()))
            + " (min / opt / max)" for k, p in enumerate(profiles or [])]


#: what an engine computes in when the config says nothing (``builder.precision``)
PRECISION = "fp32"


def engine_precision(ctx: StageContext, results: dict[str, StageResult]) -> dict:
    """What the engine computes in, for its manifest: the config's precision settings and, for fp16/bf16,
    what optimize's lowering decided (``counts`` per precision, ``kept_fp32`` layer → reason — a policy
    rule, ``keep_fp32: PATTERN`` or ``fallback`` —, ``fallback`` the layers the automatic fallback kept,
    its ``trials``)."""
    b = ctx.config.spec.builder
    info: dict = {"precision": b.precision, "io_types": b.io_types}
    if not b.reduced:
        return info
    info.update({"keep_fp32": list(b.keep_fp32), "fallback_enabled": b.fallback})
    opt = results.get("optimize")
    plan = (opt.meta.get("precision") if opt is not None and opt.ok else None) or {}
    for key in ("counts", "casts", "kept_fp32", "fallback", "trials", "passed", "summary"):
        if key in plan:
            info[key] = plan[key]
    return info


def precision_text(info: dict | None) -> str:
    """One line of :func:`engine_precision`: ``fp16: 40 layers in fp16, 6 in fp32 (2 by the fallback)``."""
    if not info:
        return PRECISION
    p = info.get("precision") or PRECISION
    if p == "int8":
        return "int8 (the model's quantize/dequantize layers)"
    if p not in ("fp16", "bf16"):
        return p
    counts = info.get("counts")
    if counts is None:
        return f"{p} (not built yet)"
    fallback = info.get("fallback") or []
    kept = "fallback off" if not info.get("fallback_enabled", True) else f"{len(fallback)} by the fallback"
    io = "" if info.get("io_types", "fp32") == "fp32" else f", I/O {p}"
    return f"{p}: {counts.get(p, 0)} layers in {p}, {counts.get('fp32', 0)} in fp32 ({kept}){io}"


def effective_settings(ctx: StageContext, results: dict[str, StageResult]) -> dict:
    """The settings the build used, defaults filled in: what ``tf2trt build`` echoes per config.

    ``inputs`` are the frozen graph's (every input of the model, with the shape it was frozen with) when
    freeze succeeded, each marked ``"from": "config"`` or ``"model"`` (not in the config: the model's own
    shape, an unknown batch dimension set to 1); before a successful freeze, the config's.  ``profiles`` are
    the optimization profiles (null: static shapes); ``builder`` and ``verification`` the config's sections
    with their defaults (workspace null: TensorRT's default).
    """
    spec = ctx.config.spec
    given = {i.name: i for i in spec.inputs}
    freeze = results.get("freeze")
    frozen = (freeze.meta.get("inputs") if freeze is not None and freeze.ok else None) or []
    if frozen:
        inputs = [{"name": i.get("name"), "shape": i.get("shape"), "dtype": i.get("dtype"),
                   "from": "config" if i.get("name") in given else "model"} for i in frozen]
    else:
        inputs = [{"name": i.name, "shape": i.shape, "dtype": i.dtype, "from": "config"} for i in spec.inputs]
    profiles = freeze.meta.get("profiles") if freeze is not None and freeze.ok else None
    ranged = {i.name: i.profiles for i in spec.inputs if i.profiles}
    if profiles is None and ranged:
        # as the backend forms them: the k-th range of every input is profile k (a shorter list keeps its last)
        count = max(len(rs) for rs in ranged.values())
        profiles = [{name: rs[min(k, len(rs) - 1)].model_dump(mode="json") for name, rs in ranged.items()}
                    for k in range(count)]
    builder = spec.builder.model_dump(mode="json")
    ver = spec.verification
    from .verify import tolerances

    rtol, atol = tolerances(spec)  # fp16/bf16/int8: the precision's defaults unless the config sets them
    keys = ("workspace", "opt_level", "targets", "timing_cache")
    if spec.builder.reduced:
        keys += ("keep_fp32", "io_types", "fallback")
    return {"inputs": inputs, "profiles": profiles or None, "precision": spec.builder.precision,
            "builder": {k: builder.get(k) for k in keys},
            "verification": {"enabled": ver.enabled, "rtol": rtol, "atol": atol, "samples": ver.samples,
                             "seed": ver.seed, **({"shapes": ver.shapes} if ver.shapes else {})}}


def settings_line(settings: dict) -> str:
    """One short line of :func:`effective_settings`: inputs, profiles, precision, builder, verification."""
    def dims(shape) -> str:
        if shape is None:  # an input given by profiles, before freeze says which dimensions stay dynamic
            return "dynamic"
        return "x".join("?" if d is None or (isinstance(d, int) and d < 0) else str(d) for d in shape or []) or "scalar"

    ins = ", ".join(f"{i['name']} {dims(i['shape'])} {i['dtype']}" + (" (model default)" if i["from"] == "model" else "")
                    for i in settings["inputs"])
    profiles = settings.get("profiles")
    shapes = f"{len(profiles)} optimization profile(s)" if profiles else "static shapes"
    b = settings["builder"]
    ws = "TensorRT default" if b.get("workspace") is None else _size(b["workspace"])
    v = settings["verification"]
    extra = f", {len(v['shapes'])} extra shape set(s)" if v.get("shapes") else ""
    verify = (f"verify rtol {v['rtol']:g} atol {v['atol']:g}, {v['samples']} sample(s){extra}" if v["enabled"]
              else "verification off")
    precision = settings["precision"]
    if "fallback" in b:
        precision += (f" (I/O {b.get('io_types')}, {len(b.get('keep_fp32') or [])} keep_fp32 pattern(s), "
                      f"fallback {'on' if b['fallback'] else 'off'})")
    return (f"inputs {ins}; {shapes}; precision {precision}; workspace {ws}; "
            f"opt_level {b.get('opt_level')}; targets {','.join(b['targets']) if b.get('targets') else 'default'}; "
            f"{verify}")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


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
        "profiles": engine_profiles(results),
        "precision": engine_precision(ctx, results),
    }


def run_build(ctx: StageContext, runner: Callable[[str, dict], StageResult] | None = None,
              force: bool | None = None) -> dict:
    """All stages in order (no Prefect): the reference flow used by tests and the no-op fast path.

    ``force`` overwrites an output file tf2trt did not place (default: ``ctx.config.force_output``).
    A placement failure is in the summary (``ok`` false, ``error``, ``exit_code``), not raised.
    """
    results: dict[str, StageResult] = {}
    for stage in STAGES:
        upstream = dict(results)
        results[stage] = runner(stage, upstream) if runner else run_stage(stage, ctx, upstream)
    engine = None
    try:
        engine = place_engine(ctx, results, force=force)
    except Exception as exc:  # noqa: BLE001 - reported by summarize through ctx.placement_error
        ctx.log.warning("%s: the engine was not placed: %s", ctx.config.name, exc)
        ctx.log.debug("placement failed", exc_info=True)
    return summarize(ctx, results, engine)
