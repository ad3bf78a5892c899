"""``tf2trt serve`` (scheduled builds as Prefect deployments) and ``tf2trt dashboard``.

Schedules need a real Prefect server (ephemeral mode has no scheduler): we use
``PREFECT_API_URL`` when set, then a server recorded by ``tf2trt dashboard``,
else we start one on 127.0.0.1 and stop it (by PID) when serving stops.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import timedelta
from pathlib import Path

from rich.console import Console

from .config import ConfigError, expand_config_args, load_config
from .runtime import (FileLock, ServerProcess, _default_db_path, forget_server, quiet_defaults, reap_orphaned_server,
                      record_server, recorded_server, start_server)

log = logging.getLogger(__name__)


def _ensure_server(port: int | None, console: Console) -> ServerProcess | None:
    """Make PREFECT_API_URL point at a live server; returns the server if we started it."""
    if os.environ.get("PREFECT_API_URL"):
        console.print(f"using Prefect server {os.environ['PREFECT_API_URL']}")
        return None
    reaped = reap_orphaned_server()
    if reaped:
        console.print(f"[yellow]{reaped}[/]")
    url = recorded_server()
    if url:
        os.environ["PREFECT_API_URL"] = url
        console.print(f"using the local Prefect server {url}")
        return None
    console.print("starting a local Prefect server…")
    server = start_server(port)
    record_server(server)
    os.environ["PREFECT_API_URL"] = server.api_url
    console.print(f"Prefect server on {server.url} (PID {server.pid}); UI: {server.url}")
    return server


def deployments_for(configs, artifacts: str | None):
    from .flows import build

    deps = []
    for cfg in configs:
        sched = cfg.spec.schedule
        if sched is None:
            continue
        kwargs = {}
        if sched.interval is not None:
            kwargs["interval"] = timedelta(seconds=sched.interval)
        else:
            kwargs["cron"] = sched.cron
            if sched.timezone:
                from prefect.schedules import Cron

                kwargs = {"schedule": Cron(sched.cron, timezone=sched.timezone)}
        from prefect.deployments.runner import EntrypointType

        deps.append(build.to_deployment(
            name=cfg.name, entrypoint_type=EntrypointType.MODULE_PATH, parameters={"config": str(cfg.path), "artifacts": artifacts},
            tags=["tf2trt", *cfg.spec.tags], description=f"Scheduled build of {cfg.given}", **kwargs))
    return deps


def serve_configs(config_dir: str, artifacts: str | None, port: int | None = None, limit: int | None = None,
                  console: Console | None = None, verbose: bool = False) -> int:
    console = console or Console()
    quiet_defaults(verbose)
    configs = []
    for path in expand_config_args([config_dir]):
        try:
            configs.append(load_config(path))
        except ConfigError as exc:
            console.print(f"[bold red]config error:[/] {exc}", markup=False)
            return 2
    scheduled = [c for c in configs if c.spec.schedule is not None]
    if not scheduled:
        console.print(f"no config in {config_dir} has a schedule; nothing to serve")
        return 2
    artifacts = str(Path(artifacts or os.environ.get("TF2TRT_ARTIFACTS") or "artifacts").resolve())
    server = _ensure_server(port, console)
    try:
        from prefect import serve

        deps = deployments_for(scheduled, artifacts)
        for cfg in scheduled:
            s = cfg.spec.schedule
            console.print(f"serving [bold]{cfg.name}[/] every "
                          + (f"{s.interval:g} s" if s.interval is not None else f"cron '{s.cron}'"))
        serve(*deps, limit=limit, print_starting_message=False)
    finally:
        if server is not None:
            forget_server(server)
            server.stop()
    return 0


def run_dashboard(port: int, console: Console) -> int:
    """Start the Prefect server + UI on 127.0.0.1:PORT until interrupted.

    The server dies with this process (even on kill -9: see :mod:`pipeline.runtime`); a server left
    behind by a dashboard that died anyway is stopped here first, so it never blocks the new one.
    """
    quiet_defaults()
    reaped = reap_orphaned_server()
    if reaped:
        console.print(f"[yellow]{reaped}[/]")
    existing = recorded_server()
    if existing:
        console.print(f"a dashboard is already running: {existing[:-4]}")
        return 0
    # The server owns Prefect's default SQLite database while it runs; ephemeral
    # builds started meanwhile report to this server instead (see runtime.py).
    db_lock = None
    primary = _default_db_path()
    if primary is not None:
        db_lock = FileLock(primary.with_name(primary.name + ".tf2trt.lock"))
        if not db_lock.try_acquire():
            console.print("[yellow]a build is using Prefect's database; waiting for it…[/]")
            db_lock.acquire(timeout=600)
    server = start_server(port)
    record_server(server)
    console.print(f"Prefect dashboard: [bold]{server.url}[/]  (API {server.api_url}, PID {server.pid})")
    console.print(f"builds on this machine report here; elsewhere: export PREFECT_API_URL={server.api_url}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            if server.proc is not None and server.proc.poll() is not None:
                console.print(f"[bold red]the server exited ({server.proc.returncode}); see {server.log_path}[/]")
                return 1
    finally:
        forget_server(server)
        server.stop()
        if db_lock is not None:
            db_lock.release()
    return 0
