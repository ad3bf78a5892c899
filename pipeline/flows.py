"""Prefect 3 flows: ``build`` (one config) and ``build_all`` (many, fanned out).

The five stages are Prefect tasks named freeze, parse, construct, optimize and
verify, made by one factory from the stage list (:data:`pipeline.stages.PIPELINE`),
so a stage is defined in one place.  Tasks pass small JSON results (artifact
digests, never artifact bytes) and have Prefect's own caching and result
persistence turned off: caching is ours (:mod:`pipeline.stages`), keyed by
content.  A cached stage finishes in a ``Cached`` state, a failed one in
``Failed`` and a stage that did not run in a ``Skipped`` state of type
CANCELLED — never drawn as a success — so the run graph reads like the CLI
table.  Each stage task gets the result object the task before it returned
(:func:`_stage_args`): Prefect links a task's returned object to its run and
records it as the next task's input, so the run graph draws the stages as a
chain in pipeline order.  A plain value, unlike a future or ``wait_for``, does
not turn a failed upstream into NotReady: the stage still runs and reports
itself skipped.  Each build publishes one markdown artifact, its build
summary (stages with reasons, verification per output with tolerances and
what was checked, engine facts), linked to the flow run that made it.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.states import Cancelled, Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import opaque, quote

from .backend import load_backend
from .config import LoadedConfig, load_config
from .stages import PIPELINE, STAGES, Stage, StageContext, StageResult, build_ok, place_engine, run_stage, summarize
from .stages.build import shape_text
from .store import ArtifactStore

log = logging.getLogger(__name__)

_lock = threading.Lock()
_stores: dict[str, ArtifactStore] = {}
_backend = None


def get_store(artifacts: str | None) -> ArtifactStore:
    root = str(Path(artifacts or os.environ.get("TF2TRT_ARTIFACTS") or "artifacts").resolve())
    with _lock:
        if root not in _stores:
            _stores[root] = store = ArtifactStore(root)
            try:
                store.sweep_tmp()  # temp files of killed writers (never blobs)
            except OSError as exc:
                log.warning("could not sweep %s: %s", store.root / "tmp", exc)
        return _stores[root]


def get_backend():
    global _backend
    with _lock:
        if _backend is None:
            _backend = load_backend()
        return _backend


def set_backend(backend) -> None:
    """Install a backend for this process (tests inject a fake converter here)."""
    global _backend
    with _lock:
        _backend = backend


def _context(config_json: dict, artifacts: str | None, logger=None) -> StageContext:
    cfg = LoadedConfig.from_json(config_json)
    return StageContext(cfg, get_store(artifacts), get_backend(), logger)


def _stage_body(stage: str, config_json: dict, artifacts: str | None, upstream: dict[str, dict]):
    try:
        logger = get_run_logger()
    except Exception:  # noqa: BLE001 - outside a run (direct call)
        logger = None
    ctx = _context(config_json, artifacts, logger)
    res = run_stage(stage, ctx, {k: StageResult.from_dict(v) for k, v in upstream.items()})
    data = res.to_dict()
    if res.status == "failed":
        return Failed(message=f"{stage}: {res.reason}", data=data)
    if res.status == "cached":
        return Completed(name="Cached", message=res.reason, data=data)
    if res.status == "skipped":  # did not run: not a success (CANCELLED is drawn grey, COMPLETED green)
        return Cancelled(name="Skipped", message=res.reason, data=data)
    return Completed(message=res.reason, data=data)


class _StageStateLogFilter(logging.Filter):
    """Prefect's task-run log lines, made to match our states (dashboard and terminal alike).

    A stage task that *returns* a Failed state gets an ERROR "Task run failed with state: Failed(…)" with a
    raw state dump and an empty traceback, before the "Finished in state Failed(…)" line: the stage itself
    already logged why it failed, so the dump is dropped.  A skipped stage (CANCELLED, did not run) is not an
    error: its "Finished in state Skipped(…)" is logged at INFO.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg if isinstance(record.msg, str) else ""
        if msg.startswith("Task run failed with") and not (record.exc_info and record.exc_info[0]):
            return False
        if msg.startswith("Finished in state Skipped(") and record.levelno > logging.INFO:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


if not any(isinstance(f, _StageStateLogFilter) for f in logging.getLogger("prefect.task_runs").filters):
    logging.getLogger("prefect.task_runs").addFilter(_StageStateLogFilter())

_TASK_OPTS: dict[str, Any] = dict(cache_policy=NO_CACHE, persist_result=False, retries=0)


def make_task(stage: Stage):
    """The Prefect task of one stage: named after it, its runs ``<stage>-<config name>``.

    ``name`` (the config's) is a parameter only for the run name.  The function
    takes the stage's name as its ``__qualname__``: Prefect keys a task by
    qualname and code, and the five tasks share one code object.
    """
    stage_name = stage.name

    def fn(name: str, config_json: dict, artifacts: str | None, upstream: dict, previous: dict | None = None):
        # ``previous`` (the last of ``upstream``) is there for the run graph: its edge (see _stage_args)
        return _stage_body(stage_name, config_json, artifacts, upstream)

    fn.__name__ = fn.__qualname__ = stage_name
    fn.__doc__ = type(stage).__doc__
    return task(name=stage_name, task_run_name=f"{stage_name}-{{name}}", **_TASK_OPTS)(fn)


TASKS = {stage.name: make_task(stage) for stage in PIPELINE}


def _result_of(state) -> StageResult:
    return _result_and_data(state)[0]


def _result_and_data(state) -> tuple[StageResult, Any]:
    """The StageResult of a finished task, and the object the task returned (what Prefect linked to its run)."""
    try:
        data = state.result(raise_on_failure=False)
    except Exception as exc:  # noqa: BLE001
        data = exc
    return _as_result(data, state.message or state.name), data


def _future_result(fut) -> tuple[StageResult, Any]:
    """The StageResult of a finished future (from the engine's in-memory final state), and the returned object."""
    fut.wait()
    try:
        data = fut.result(raise_on_failure=False)
    except Exception as exc:  # noqa: BLE001
        data = exc
    return _as_result(data, None), data


def _returned(stage: str, res: StageResult, data) -> dict:
    """What the next stage gets of this one: the very dict the task returned (Prefect knows which task run it
    came from, by identity), or — for a task that crashed without one — the result as a fresh dict."""
    if isinstance(data, dict) and data.get("status") == res.status and data.get("name") == stage:
        return data
    return dict(res.to_dict(), name=stage)


def _stage_args(cj: dict, returned: dict[str, dict]) -> tuple[Any, Any, Any]:
    """``(config_json, upstream, previous)`` parameters of the next stage task.

    Prefect finds a task's inputs by visiting its parameters and looking each object up *by id* among the
    objects earlier tasks returned (and their first-level parts, dict keys included: shared strings such as
    ``"status"``), so plain parameters would draw spurious edges.  ``config_json`` and ``upstream`` are
    therefore quoted (passed as they are, never visited), and ``previous`` is the dict the stage before
    returned, ``opaque`` (looked up itself, its contents not visited): exactly one edge, from the stage
    before.  Plain values, not futures or states: a failed upstream does not make Prefect refuse to run the
    task (NotReady); the stage runs and reports itself skipped.
    """
    prev = opaque(returned[next(reversed(returned))]) if returned else None
    return quote(cj), quote(dict(returned)), prev


def _as_result(data, message) -> StageResult:
    if isinstance(data, dict) and "status" in data:
        return StageResult.from_dict(data)
    # The task itself crashed (not a stage failure): report it as a failed stage.
    msg = message or (str(data) if data is not None else "no result")
    return StageResult(name="?", status="failed", seconds=0.0, reason=f"task crashed: {msg}"[:500])


def _finish(ctx: StageContext, results: dict[str, StageResult], publish: bool = True) -> dict:
    engine = None
    place_error = None
    if all(s in results for s in STAGES) and build_ok(results):
        try:
            engine = place_engine(ctx, results)
        except Exception as exc:  # noqa: BLE001
            place_error = f"could not place the engine at {ctx.config.output_path}: {exc}"
            ctx.log.error("%s", place_error)
    summary = summarize(ctx, results, engine)
    if place_error:
        summary["ok"] = False
        summary["error"] = place_error
    if publish:
        try:
            ver = results.get("verify")
            from .stages.verify import tolerances

            rtol, atol = tolerances(ctx.config.spec)  # fp16/bf16: the precision's defaults unless the config sets them
            publish_artifacts(summary, (ver.meta.get("verification") if ver is not None else None) or {},
                              {**ctx.config.spec.verification.model_dump(mode="json"), "rtol": rtol, "atol": atol})
        except Exception as exc:  # noqa: BLE001 - the dashboard is a view, never a build failure
            ctx.log.warning("could not publish dashboard artifacts: %s", exc)
    return summary


def _artifact_key(name: str, what: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "build"
    return f"tf2trt-{slug}-{what}"


_STATUS_MARK = {"built": "built", "cached": "cached", "failed": "**FAILED**", "skipped": "skipped (did not run)"}


def publish_artifacts(summary: dict, report: dict | None = None, settings: dict | None = None) -> None:
    """One build-summary markdown artifact per build (one card on the artifacts page, readable without clicks).

    ``report`` is the verification report (``converter.verify``'s ``to_dict()``), ``settings`` the config's
    verification section: together they say what was checked, on what, with which tolerances.
    """
    md = build_summary_markdown(summary, report or {}, settings or {})
    verdict = "OK" if summary["ok"] else "FAILED"
    create_markdown_artifact(key=_artifact_key(summary["name"], "summary"), markdown=md,
                             description=f"Build summary of {summary['name']}: {verdict}")


def build_summary_markdown(summary: dict, report: dict, settings: dict) -> str:
    name = summary["name"]
    verdict = "OK" if summary["ok"] else "FAILED"
    lines = [f"# {name}: {verdict}", "", f"Config `{summary['config']}`."]
    if summary.get("error"):
        lines += ["", f"**Error:** {summary['error']}"]
    lines += ["", "## Stages", "", "| stage | status | seconds | reason |", "| --- | --- | ---: | --- |"]
    for s in summary["stages"]:
        reason = str(s["reason"]).replace("|", "\\|").replace("\n", " ")
        secs = "-" if s["seconds"] is None else f"{s['seconds']:.3f}"
        lines.append(f"| {s['name']} | {_STATUS_MARK.get(s['status'], s['status'])} | {secs} | {reason} |")
    ver = summary["verification"]
    lines += ["", "## Verification", ""]
    if not ver["outputs"]:
        why = "disabled in the config" if settings.get("enabled") is False else "not run (an earlier stage did not succeed)"
        lines.append(f"Not checked: {why}.")
    else:
        checked = ver["checked"] or "-"
        what = ("the network snapshot on the numpy reference executor (TensorRT's documented layer semantics); "
                "the engine itself was **not** run (no GPU here)") if "reference" in str(checked) else \
            f"the engine itself ({checked})"
        samples = report.get("samples", settings.get("samples"))
        inputs = "inputs from " + str(settings["inputs_npz"]) if settings.get("inputs_npz") else \
            f"random inputs (seed {settings.get('seed', 0)})"
        lines += [f"Compared TensorFlow with {what}, on {samples or 1} sample(s) of {inputs}. "
                  f"Verdict: **{'passed' if ver['passed'] else 'FAILED'}**.", "",
                  "| output | max_abs_err | max_rel_err | rtol | atol | passed |", "| --- | ---: | ---: | ---: | ---: | --- |"]
        detail = {o.get("name"): o for o in report.get("outputs", [])}
        for o in ver["outputs"]:
            d = detail.get(o["name"], {})
            rtol, atol = d.get("rtol", settings.get("rtol")), d.get("atol", settings.get("atol"))
            note = " (vacuous: every reference value is within atol)" if d.get("vacuous") else ""
            lines.append(f"| {o['name']} | {_num(o['max_abs_err'])} | {_num(o['max_rel_err'])} | {_num(rtol)} | "
                         f"{_num(atol)} | {'yes' if o['passed'] else '**NO**'}{note} |")
        if ver.get("shapes"):
            lines += ["", "Input shapes checked (every optimization profile's min, opt and max, then the config's "
                      "`verification.shapes`):", "", "| input shapes | max_abs_err (worst output) | passed |",
                      "| --- | ---: | --- |"]
            for row in ver["shapes"]:
                shapes = ", ".join(f"{n} {shape_text(s)}" for n, s in sorted((row.get("inputs") or {}).items()))
                lines.append(f"| {shapes} | {_num(row.get('max_abs_err'))} | {'yes' if row['passed'] else '**NO**'} |")
        lines += _precision_lines(report.get("precision"))
    f = summary["facts"]
    lines += ["", "## Engine", "", "| fact | value |", "| --- | --- |",
              f"| placed at | {summary['engine']['path'] if summary['engine'] else '- (not placed)'} |",
              f"| bytes | {f['bytes'] if f['bytes'] is not None else '-'} |",
              f"| digest | `{f['digest'] or '-'}` |",
              f"| layers | {f['layers'] if f['layers'] is not None else '-'} |",
              f"| precision | {_precision(summary)} |",
              f"| settings | {_settings(summary)} |",
              f"| TensorRT | {f['tensorrt_flavor']} {f['tensorrt']} |",
              f"| target | {f['target']} |"]
    profiles = f.get("profiles")
    lines += ["", "## Optimization profiles", ""]
    if profiles:
        lines += ["| profile | input | min | opt | max |", "| ---: | --- | --- | --- | --- |"]
        for k, profile in enumerate(profiles):
            for name, r in sorted(profile.items()):
                lines.append(f"| {k} | {name} | {shape_text(r['min'])} | {shape_text(r['opt'])} | "
                             f"{shape_text(r['max'])} |")
    elif any(st["name"] == "freeze" and st["status"] in ("built", "cached") for st in summary["stages"]):
        lines.append("None: every input shape is static.")
    else:
        lines.append("- (the model was not frozen)")
    return "\n".join(lines) + "\n"


def _precision(summary: dict) -> str:
    """The engine's precision and, for fp16/bf16, the layers the fallback kept in fp32."""
    from .stages.build import precision_text

    info = (summary.get("facts") or {}).get("precision") or {
        "precision": (summary.get("settings") or {}).get("precision") or "fp32"}
    text = precision_text(info)
    fallback = info.get("fallback") or []
    if fallback:
        text += "; fallback kept " + ", ".join(f"`{n}`" for n in fallback[:8]) + (" …" if len(fallback) > 8 else "")
    return text.replace("|", "\\|")


def _precision_lines(info: dict | None) -> list[str]:
    """The verification report's reduced-precision section: what precision alone costs, where error grows."""
    if not info:
        return []
    p = info.get("precision")
    lines = ["", f"Precision {p}: the network verified is the lowered one the engine was built from.", "",
             "| output | max_abs_err against the fp32 network |", "| --- | ---: |"]
    lines += [f"| {name} | {_num(err)} |" for name, err in sorted((info.get("against_fp32_network") or {}).items())]
    top = info.get("top_layers") or []
    if top:
        lines += ["", "Layers adding the most error: " + ", ".join(
            f"`{t.get('layer')}` (+{_num(t.get('growth'))})" for t in top[:5]).replace("|", "\\|") + "."]
    return lines


def _settings(summary: dict) -> str:
    if not summary.get("settings"):
        return "-"
    from .stages import settings_line

    return settings_line(summary["settings"]).replace("|", "\\|")


def _num(x) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if isinstance(x, (int, float)) else str(x)


def _load(config: str | dict) -> LoadedConfig:
    if isinstance(config, dict):
        return LoadedConfig.from_json(config)
    return load_config(config)


def _build_run_name() -> str:
    from prefect.runtime import flow_run

    c = flow_run.parameters.get("config")
    if isinstance(c, dict):
        c = c.get("given") or c.get("path")
    return "build-" + (Path(str(c)).name.rsplit(".", 1)[0] if c else "config")


@flow(name="build", flow_run_name=_build_run_name, persist_result=False, log_prints=False,
      validate_parameters=False)
def build(config: str | dict, artifacts: str | None = None, publish: bool = True) -> dict:
    """Build one config: the five stages in order, then place the engine."""
    logger = get_run_logger()
    cfg = _load(config)
    cj = cfg.to_json()
    results: dict[str, StageResult] = {}
    returned: dict[str, dict] = {}
    remote = os.environ.get("TF2TRT_OPTIMIZE_DEPLOYMENT")
    for stage in STAGES:
        if stage == "optimize" and remote and all(r.ok for r in results.values()):
            _optimize_remotely(remote, cj, artifacts, {k: v.to_dict() for k, v in results.items()}, logger)
        config_json, upstream, previous = _stage_args(cj, returned)
        state = TASKS[stage](cfg.name, config_json, artifacts, upstream, previous, return_state=True)
        res, data = _result_and_data(state)
        res.name = stage
        results[stage] = res
        returned[stage] = _returned(stage, res, data)
    ctx = StageContext(cfg, get_store(artifacts), get_backend(), logger)
    summary = _finish(ctx, results, publish)
    logger.info("%s: %s", cfg.name, "OK" if summary["ok"] else "FAILED")
    if not summary["ok"]:
        failed = [s for s in summary["stages"] if s["status"] == "failed"]
        why = f"{failed[0]['name']}: {failed[0]['reason']}" if failed else summary.get("error", "failed")
        return Failed(message=f"{cfg.name} failed ({why})", data=summary)
    return summary


def _optimize_remotely(deployment: str, cj: dict, artifacts, upstream: dict, logger) -> None:
    """Run optimize on a work pool (a GPU host); the local task then finds its manifest.

    The remote run writes the engine and its manifest into the shared artifact
    store; results travel through the store, never through Prefect.
    """
    from prefect.deployments import run_deployment

    logger.info("optimize: dispatching to deployment %s", deployment)
    run = run_deployment(deployment, parameters={"config": cj, "artifacts": artifacts, "upstream": upstream},
                         timeout=None)
    state = run.state
    if state is None or not state.is_completed():
        logger.warning("optimize: remote run %s ended %s; building here instead", run.name,
                       state.name if state else "without a state")


@flow(name="optimize_only", persist_result=False, log_prints=False, validate_parameters=False)
def optimize_only(config: dict, artifacts: str | None = None, upstream: dict | None = None) -> dict:
    """Only the optimize stage, from a snapshot already in the store.

    Deploy it on a process work pool whose worker runs on a GPU host: that host
    needs TensorRT and this package, not TensorFlow (optimize reads the network
    snapshot, never the model) — except for an fp16/bf16 build with
    ``builder.fallback``, whose optimize verifies the lowered network against
    TensorFlow before building.
    """
    cfg = _load(config)
    state = TASKS["optimize"](cfg.name, cfg.to_json(), artifacts, upstream or {}, return_state=True)
    res = _result_of(state)
    if res.status == "failed":
        return Failed(message=res.reason, data=res.to_dict())
    return res.to_dict()


def deploy_optimize_only(pool: str, name: str = "gpu") -> str:
    """Register ``optimize_only`` on a process work pool (created if missing); returns "flow/deployment"."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments.runner import EntrypointType
    from prefect.exceptions import ObjectAlreadyExists

    async def ensure_pool():
        async with get_client() as client:
            try:
                await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            except ObjectAlreadyExists:
                pass

    asyncio.run(ensure_pool())
    optimize_only.deploy(name=name, work_pool_name=pool, build=False, push=False, print_next_steps=False,
                         entrypoint_type=EntrypointType.MODULE_PATH, ignore_warnings=True)
    return f"optimize_only/{name}"


def _submit(stage: str, cfg: LoadedConfig, artifacts, returned: dict[str, dict]):
    if _on_dask():  # annotations do not survive the trip to a Dask worker, and results come back as copies
        return TASKS[stage].submit(cfg.name, cfg.to_json(), artifacts, dict(returned), None)
    config_json, upstream, previous = _stage_args(cfg.to_json(), returned)
    return TASKS[stage].submit(cfg.name, config_json, artifacts, upstream, previous)


def _on_dask() -> bool:
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return ctx is not None and type(ctx.task_runner).__name__ == "DaskTaskRunner"


def _build_all_run_name() -> str:
    """``build-<config>+<config>…``: a multi-config run is named after what it builds, not at random."""
    from prefect.runtime import flow_run

    names = []
    for c in flow_run.parameters.get("configs") or []:
        if isinstance(c, dict):
            c = c.get("given") or c.get("path")
        names.append(Path(str(c)).name.rsplit(".", 1)[0])
    shown = "+".join(names[:3]) + (f"+{len(names) - 3}-more" if len(names) > 3 else "")
    return "build-" + (shown or "configs")


@flow(name="build_all", flow_run_name=_build_all_run_name, persist_result=False, log_prints=False,
      validate_parameters=False, task_runner=ThreadPoolTaskRunner(max_workers=2))
def build_all(configs: list[str | dict], artifacts: str | None = None, publish: bool = True) -> list[dict]:
    """Build many configs; stages of different configs overlap, bounded by the task runner.

    Each config's next stage is submitted as soon as its previous one ends, so
    one slow optimize does not hold back the other configs.
    """
    logger = get_run_logger()
    loaded = [_load(c) for c in configs]
    results: list[dict[str, StageResult]] = [{} for _ in loaded]
    returned: list[dict[str, dict]] = [{} for _ in loaded]
    pending: dict[Any, tuple[int, str]] = {}
    for i, cfg in enumerate(loaded):
        pending[_submit("freeze", cfg, artifacts, returned[i])] = (i, "freeze")
    while pending:
        fut = next(iter(as_completed(list(pending))))
        i, stage = pending.pop(fut)
        res, data = _future_result(fut)
        res.name = stage
        results[i][stage] = res
        returned[i][stage] = _returned(stage, res, data)
        nxt = STAGES.index(stage) + 1
        if nxt < len(STAGES):
            pending[_submit(STAGES[nxt], loaded[i], artifacts, returned[i])] = (i, STAGES[nxt])
    summaries = []
    for cfg, res in zip(loaded, results):
        ctx = StageContext(cfg, get_store(artifacts), get_backend(), logger)
        summaries.append(_finish(ctx, res, publish))
    ok = sum(s["ok"] for s in summaries)
    logger.info("built %d config(s): %d ok", len(summaries), ok)
    if ok < len(summaries):
        return Failed(message=f"{len(summaries) - ok} of {len(summaries)} builds failed", data=summaries)
    return summaries


def run_flow(fn, *args, **kwargs):
    """Call a flow and return its data whether it completed or failed."""
    state = fn(*args, return_state=True, **kwargs)
    data = state.result(raise_on_failure=False)
    if isinstance(data, BaseException):
        raise data
    return data


def dask_runner(address: str | None = None, n_workers: int | None = None):
    """A DaskTaskRunner on an existing scheduler (``tcp://host:8786``) or a small local cluster."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    kwargs: dict[str, Any] = {"n_workers": n_workers or 2, "threads_per_worker": 1, "processes": True}
    return DaskTaskRunner(cluster_kwargs=kwargs)


@functools.cache
def runner_for(jobs: int = 2, dask_address: str | None = None):
    if dask_address:
        return dask_runner(dask_address)
    return ThreadPoolTaskRunner(max_workers=max(1, jobs))
