"""``tf2trt``: build, status, serve, dashboard, gc (and the converter's ``convert``).

Output is rendered with rich: tables go to stdout, or to stderr with ``--json``,
whose one strict JSON object is the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .config import ConfigError, expand_config_args, load_config

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = logging.getLogger("pipeline")

STATUS_STYLE = {"built": "green", "cached": "cyan", "failed": "bold red", "skipped": "yellow"}


def _artifacts_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artifacts", metavar="DIR", default=None,
                   help="artifact store directory (default: $TF2TRT_ARTIFACTS or ./artifacts)")


def version_text() -> str:
    """tf2trt, TensorFlow and TensorRT versions, read from package metadata (no slow imports)."""
    from importlib import metadata

    def installed(*dists):
        for dist in dists:
            try:
                return dist, metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
        return dists[0], "not installed"

    from converter import __version__

    tf = installed("tensorflow", "tensorflow-cpu")
    trt = installed("tensorrt", "tensorrt-rtx", "tensorrt_rtx")
    return f"tf2trt {__version__} (TensorFlow {tf[1]}, {trt[0]} {trt[1]})"


def build_parser() -> argparse.ArgumentParser:
    from converter.cli_convert import HelpFormatter
    from converter.errors import exit_code_help

    parser = argparse.ArgumentParser(prog="tf2trt", description="TensorFlow to TensorRT: convert models and "
                                     "run cached, config-driven build pipelines.", epilog=exit_code_help(),
                                     formatter_class=HelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="show Prefect, TensorFlow and stage logs")
    parser.add_argument("--version", action="version", version=version_text())
    # -v also after the subcommand (`tf2trt build -v configs/`); SUPPRESS keeps a global -v from being reset
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show Prefect, TensorFlow and stage logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], formatter_class=HelpFormatter, **kwargs)

    b = command("build", help="build engines from config files (cached by content)")
    b.add_argument("configs", nargs="+", metavar="CONFIG", help="config files (a directory means its *.yaml)")
    _artifacts_arg(b)
    b.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    b.add_argument("--jobs", "-j", type=int, default=2, help="concurrent stage tasks for several configs")
    b.add_argument("--dask", metavar="ADDRESS", default=os.environ.get("TF2TRT_DASK_ADDRESS"),
                   help="run stage tasks on a Dask cluster (scheduler address, e.g. tcp://10.0.0.5:8786)")
    b.add_argument("--force", action="store_true",
                   help="overwrite an existing output file tf2trt build did not place (never an input of the "
                        "build: config, model, verification inputs)")
    b.add_argument("--full", action="store_true",
                   help="run through Prefect even when every stage is cached (by default a fully cached build "
                        "answers without starting Prefect or TensorFlow and is recorded on the dashboard after)")
    b.set_defaults(func=cmd_build)

    s = command("status", help="last run of each config per stage, from the store")
    s.add_argument("configs", nargs="*", metavar="CONFIG", help="configs (default: every config in the store)")
    _artifacts_arg(s)
    s.add_argument("--json", action="store_true", help="print JSON instead of tables")
    s.set_defaults(func=cmd_status)

    g = command("gc", help="remove blobs that no manifest references and no running build claims")
    _artifacts_arg(g)
    g.add_argument("--dry-run", action="store_true", help="report what would be removed")
    g.add_argument("--keep-all-manifests", action="store_true",
                   help="keep stage manifests of superseded builds (then only orphan blobs go)")
    g.add_argument("--grace", type=float, default=600.0, metavar="SECONDS",
                   help="keep superseded manifests younger than this (default 600)")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_gc)

    sv = command("serve", help="serve Prefect deployments from the configs' schedules until stopped")
    sv.add_argument("config_dir", nargs="?", default="configs", metavar="CONFIG_DIR")
    _artifacts_arg(sv)
    sv.add_argument("--port", type=int, default=None, help="port for a local server when one is started")
    sv.add_argument("--limit", type=int, default=None, help="at most this many concurrent runs")
    sv.set_defaults(func=cmd_serve)

    d = command("dashboard", help="start the Prefect server and UI on 127.0.0.1 and print the URL")
    d.add_argument("--port", type=int, default=4200)
    d.set_defaults(func=cmd_dashboard)

    w = command("deploy-optimize", help="register the optimize-only flow on a process work pool "
                       "(run `prefect worker start --pool POOL` on each GPU host)")
    w.add_argument("pool", help="work pool name (a process pool is created if missing)")
    w.add_argument("--name", default="gpu", help="deployment name (default: gpu)")
    w.set_defaults(func=cmd_deploy_optimize)

    from converter.cli_convert import add_convert_parser  # the converter's one-shot subcommand

    add_convert_parser(sub, parents=[common])
    from converter.cli_inspect import add_inspect_parser  # what a model takes and gives, before converting it

    add_inspect_parser(sub, parents=[common])
    from .store_check import add_store_parser  # tf2trt store check [--repair]

    add_store_parser(sub, parents=[common])
    return parser



#: Prefect's run loggers: a stage's own log lines and the engine's state lines.  They reach the dashboard (the
#: API handler); on the terminal the progress lines and the build table say the same once, so only -v shows them.
RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")


class TerminalLogFilter(logging.Filter):
    """What the terminal's log handler shows.

    Without ``-v``, records of Prefect's run loggers are left to the dashboard: a failed stage would
    otherwise be printed up to four times (our stage line, Prefect's "Task run failed with state" dump,
    "Finished in state Failed", and the build table).  Always: ``exc_info=True`` logged outside an
    exception (Prefect does so for a task that returns a Failed state) prints no ``NoneType: None``.
    """

    def __init__(self, verbose: bool = False):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is None:
            record.exc_info = None
        if self.verbose:
            return True
        return not any(record.name == n or record.name.startswith(n + ".") for n in RUN_LOGGERS)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if sys.stderr is sys.__stderr__ and os.environ.get("TF2TRT_NATIVE_STDERR") != "keep":
        # TensorFlow's C++ start-up lines (and, without a GPU, cuInit errors) become log records: shown
        # from WARNING on, or with -v; expected GPU-probe errors on a CPU-only machine only at debug level
        from converter.native_logs import route_native_stderr

        route_native_stderr()
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.INFO if args.verbose else logging.WARNING)
    handler.addFilter(TerminalLogFilter(verbose=args.verbose))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if args.verbose:
        root.setLevel(logging.INFO)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        Console(stderr=True).print("[yellow]interrupted[/]")
        return 130


# -------------------------------------------------------------------- build


def _load_configs(paths: list[str], err: Console):
    loaded, bad = [], 0
    for p in expand_config_args(paths):
        try:
            loaded.append(load_config(p))
        except ConfigError as exc:
            bad += 1
            err.print("[bold red]config error:[/] " + _escape(str(exc)))
    return loaded, bad


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def render_build(console: Console, summary: dict) -> None:
    title = f"{summary['name']}  ({summary['config']})"
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("stage")
    table.add_column("status")
    table.add_column("seconds", justify="right")
    table.add_column("reason", overflow="fold")
    for s in summary["stages"]:
        style = STATUS_STYLE.get(s["status"], "")
        seconds = "-" if s["seconds"] is None else f"{s['seconds']:.3f}"
        table.add_row(s["name"], f"[{style}]{s['status']}[/]", seconds, _escape(s["reason"]))
    console.print(table)
    ver = summary["verification"]
    if ver["outputs"]:
        vt = Table(title=f"verification ({ver['checked']})", title_justify="left")
        for col in ("output", "max_abs_err", "max_rel_err", "passed"):
            vt.add_column(col)
        for o in ver["outputs"]:
            vt.add_row(o["name"], _fmt(o["max_abs_err"]), _fmt(o["max_rel_err"]),
                       "[green]yes[/]" if o["passed"] else "[bold red]NO[/]")
        console.print(vt)
        from .stages.build import shape_text

        for row in ver.get("shapes") or []:
            at = ", ".join(f"{n} {shape_text(sh)}" for n, sh in sorted((row.get("inputs") or {}).items()))
            mark = "[green]passed[/]" if row["passed"] else "[bold red]FAILED[/]"
            console.print(f"  at {_escape(at)}: {mark}, max_abs_err {_fmt(row.get('max_abs_err'))}", highlight=False)
    if summary.get("settings"):
        from .stages import settings_line
        from .stages.build import profile_lines

        console.print(f"[dim]settings: {_escape(settings_line(summary['settings']))}[/]", highlight=False,
                      soft_wrap=True)
        for line in profile_lines((summary.get("facts") or {}).get("profiles") or summary["settings"].get("profiles")):
            console.print(f"[dim]  {_escape(line)}[/]", highlight=False, soft_wrap=True)
    total = sum(s["seconds"] or 0.0 for s in summary["stages"])
    if summary["engine"]:
        console.print(f"engine: {summary['engine']['path']} ({summary['engine']['bytes']} bytes, "
                      f"blake3 {summary['engine_digest'][:16]}…); stage time {total:.3f} s")
    verdict = "[green]OK[/]" if summary["ok"] else "[bold red]FAILED[/]"
    console.print(f"{summary['name']}: {verdict}" + (f" — {_escape(summary['error'])}" if summary.get("error") else ""))


def _fmt(x) -> str:
    return f"{x:.3g}" if isinstance(x, (int, float)) else str(x)


def cmd_build(args) -> int:
    out = Console(stderr=args.json)
    err = Console(stderr=True)
    configs, bad = _load_configs(args.configs, err)
    if bad:
        return EXIT_USAGE
    if not configs:
        err.print("[bold red]no config files given[/]")
        return EXIT_USAGE
    for c in configs:
        c.force_output = args.force
    artifacts = str(Path(args.artifacts).resolve()) if args.artifacts else None
    from .progress import BuildProgress

    store = _store_path(artifacts)
    names = ", ".join(c.name for c in configs[:4]) + (f", … {len(configs) - 4} more" if len(configs) > 4 else "")
    err.print(f"tf2trt build: {len(configs)} config(s) ({_escape(names)}); store {_escape(str(store))}",
              highlight=False, soft_wrap=True)
    if artifacts is None and not os.environ.get("TF2TRT_ARTIFACTS"):  # the implicit ./artifacts of the cwd
        from .store import new_store_warning

        warning = new_store_warning(store, [c.path for c in configs])
        if warning:
            err.print(f"[yellow]warning: {_escape(warning)}[/]", highlight=False, soft_wrap=True)
    if not args.full and not args.dask:
        from .fastpath import cached_summaries, record_on_dashboard

        summaries = cached_summaries(configs, artifacts)
        if summaries is not None:
            code = _report_builds(out, err, summaries, args.json, "no Prefect start: every stage was cached")
            err.print(f"[dim]this run is {record_on_dashboard(args.configs, artifacts)}[/]", soft_wrap=True)
            return code
    from .runtime import no_heartbeats, prepare_prefect, wait_ready

    summaries = []
    with BuildProgress(err) as progress:
        mode = prepare_prefect(verbose=args.verbose, notify=progress.warn)
        log.info("prefect: %s", mode)
        from . import flows, stages

        wait_ready()
        progress.note = "waiting for the first stage…"
        stages.PROGRESS_HOOKS.append(progress)
        try:
            with no_heartbeats():
                if len(configs) == 1 and not args.dask:
                    summaries = [flows.run_flow(flows.build, configs[0].to_json(), artifacts)]
                else:
                    runner = flows.runner_for(args.jobs, args.dask)
                    summaries = flows.run_flow(flows.build_all.with_options(task_runner=runner),
                                               [c.to_json() for c in configs], artifacts)
        finally:
            stages.PROGRESS_HOOKS.remove(progress)
    return _report_builds(out, err, summaries, args.json, f"prefect: {mode}")


def _report_builds(out: Console, err: Console, summaries: list[dict], as_json: bool, how: str) -> int:
    """Render the build tables (and the JSON line), and the exit code of the worst build."""
    from .progress import wall_seconds

    for s in summaries:
        render_build(out, s)
    err.print(f"[dim]{len(summaries)} build(s) in {wall_seconds():.1f} s wall time since the process started "
              f"({how})[/]", soft_wrap=True)
    if as_json:
        payload = {"builds": [{"config": s["config"], "stages": s["stages"], "engine": s["engine"],
                               "verification": s["verification"], "settings": s.get("settings"),
                               "error": s.get("error")} for s in summaries]}
        sys.stdout.write(json.dumps(payload, allow_nan=False, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    if summaries and all(s["ok"] for s in summaries):
        return EXIT_OK
    # the worst of the builds: 3 (a tf2trt bug) > 2 (bad input) > 1 (verification failed)
    return max((int(s.get("exit_code") or EXIT_FAILED) for s in summaries), default=EXIT_FAILED)


# ------------------------------------------------------------------- status


def cmd_status(args) -> int:
    from .status import collect_status, render_status

    out = Console()
    err = Console(stderr=True)
    try:
        rows = collect_status(args.configs, args.artifacts)
    except ConfigError as exc:
        err.print("[bold red]config error:[/] " + _escape(str(exc)))
        return EXIT_USAGE
    if args.json:
        sys.stdout.write(json.dumps({"configs": rows, "store": str(_store_path(args.artifacts))}, allow_nan=False)
                         + "\n")
    else:
        err.print(f"store {_escape(str(_store_path(args.artifacts)))}", highlight=False, soft_wrap=True)
        render_status(out, rows)
    return EXIT_OK


def _store_path(artifacts: str | None) -> Path:
    """The artifact store a command uses: --artifacts, else $TF2TRT_ARTIFACTS, else ./artifacts."""
    from .store import default_root

    return Path(artifacts).resolve() if artifacts else default_root().resolve()


# ----------------------------------------------------------------------- gc


def cmd_gc(args) -> int:
    from .store import ArtifactStore

    store = ArtifactStore(args.artifacts)
    report = store.gc(dry_run=args.dry_run, prune_manifests=not args.keep_all_manifests, grace=args.grace)
    if args.json:
        sys.stdout.write(json.dumps(dict(report, store=str(_store_path(args.artifacts)))) + "\n")
        return EXIT_OK
    out = Console()
    verb = "would remove" if args.dry_run else "removed"
    out.print(f"store {_escape(str(_store_path(args.artifacts)))}: {verb} {report['removed_blobs']} blob(s), {report['freed_bytes'] / 2**20:.1f} MiB; "
              f"kept {report['kept_blobs']} referenced, {report['claimed_by_running_builds']} claimed by "
              f"{report['live_builds']} running build(s); pruned {report['pruned_manifests']} superseded "
              f"manifest(s); swept {report['stale_leases']} stale lease(s), {report['temp_files']} temp file(s)",
              soft_wrap=True)
    return EXIT_OK


# ---------------------------------------------------------- serve, dashboard


def cmd_serve(args) -> int:
    from .serve import serve_configs

    try:
        return serve_configs(args.config_dir, args.artifacts, port=args.port, limit=args.limit,
                             console=Console(), verbose=args.verbose)
    except RuntimeError as exc:  # a server that would not start: say why, no traceback
        Console(stderr=True).print(f"[bold red]error:[/] {_escape(str(exc))}")
        return EXIT_FAILED


def cmd_deploy_optimize(args) -> int:
    from .runtime import quiet_defaults, recorded_server

    quiet_defaults(args.verbose)
    err = Console(stderr=True)
    if not os.environ.get("PREFECT_API_URL"):
        url = recorded_server()
        if not url:
            err.print("[bold red]work pools need a Prefect server:[/] set PREFECT_API_URL or run `tf2trt dashboard`")
            return EXIT_USAGE
        os.environ["PREFECT_API_URL"] = url
    from .flows import deploy_optimize_only

    ref = deploy_optimize_only(args.pool, args.name)
    Console().print(f"deployed [bold]{ref}[/] on work pool [bold]{args.pool}[/]\n"
                    f"  on each GPU host:  prefect worker start --pool {args.pool} --type process\n"
                    f"  then build with:   TF2TRT_OPTIMIZE_DEPLOYMENT={ref} tf2trt build CONFIG")
    return EXIT_OK


def cmd_dashboard(args) -> int:
    from .runtime import free_port, healthy, reap_orphaned_server
    from .serve import run_dashboard

    reaped = reap_orphaned_server()  # a dashboard killed with kill -9 may have left its server running
    if reaped:
        Console(stderr=True).print(f"[yellow]{_escape(str(reaped))}[/]")

    if healthy(f"http://127.0.0.1:{args.port}/api", timeout=1.0):
        Console(stderr=True).print(f"[bold red]port {args.port} already serves a Prefect API[/] "
                                   f"(http://127.0.0.1:{args.port}); use it, or pick another --port "
                                   f"(e.g. {free_port()})")
        return EXIT_FAILED
    try:
        return run_dashboard(args.port, Console())
    except RuntimeError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {_escape(str(exc))}")
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
