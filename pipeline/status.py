"""``tf2trt status``: each config's last run per stage, read from the store only.

No Prefect and no TensorFlow are imported here: status is instant.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .config import expand_config_args, load_config
from .stages import STAGES, config_id
from .stages.build import profile_lines
from .store import ArtifactStore

STATUS_STYLE = {"built": "green", "cached": "cyan", "failed": "bold red", "skipped": "yellow"}


def collect_status(configs: list[str] | None, artifacts: str | None) -> list[dict]:
    store = ArtifactStore(artifacts)
    rows = []
    if configs:
        for path in expand_config_args(configs):
            cfg = load_config(path, check_files=False)
            rec = store.load_run(config_id(cfg)) or {}
            rows.append(_row(path, cfg.name, rec))
    else:
        for _, rec in store.iter_runs():
            rows.append(_row(rec.get("config", "?"), rec.get("name", "?"), rec))
    return rows


def _row(config: str, name: str, rec: dict) -> dict:
    stages = rec.get("stages") or {}
    ver = rec.get("verification") or {}
    engine = rec.get("engine") or {}
    return {
        "config": config,
        "name": name,
        "updated": rec.get("updated"),
        "stages": [{"name": s, "when": stages.get(s, {}).get("when"), "status": stages.get(s, {}).get("status"),
                    "seconds": stages.get(s, {}).get("seconds"), "reason": stages.get(s, {}).get("reason")}
                   for s in STAGES],
        "verification": {"passed": ver.get("passed"), "checked": ver.get("checked"),
                         "outputs": [{"name": o.get("name"), "max_abs_err": o.get("max_abs_err"),
                                      "max_rel_err": o.get("max_rel_err"), "passed": o.get("passed")}
                                     for o in ver.get("outputs", [])]} if ver else None,
        "engine": {"digest": engine.get("digest"), "path": engine.get("path"), "bytes": engine.get("bytes"),
                   "when": engine.get("when"), "profiles": engine.get("profiles"),
                   "precision": engine.get("precision") or "fp32"} if engine else None,
    }


def render_status(console: Console, rows: list[dict]) -> None:
    if not rows:
        console.print("no builds recorded in this store yet")
        return
    for row in rows:
        t = Table(title=f"{row['name']}  ({row['config']})", title_justify="left")
        for col in ("stage", "last run", "status", "seconds", "reason"):
            t.add_column(col, overflow="fold")
        for s in row["stages"]:
            st = s["status"]
            style = STATUS_STYLE.get(st or "")
            t.add_row(s["name"], s["when"] or "never", f"[{style}]{st}[/]" if style else (st or "-"),
                      f"{s['seconds']:.3f}" if isinstance(s["seconds"], (int, float)) else "-",
                      escape(s["reason"] or ""))
        console.print(t)
        ver = row["verification"]
        if ver:
            verdict = "[green]passed[/]" if ver["passed"] else "[bold red]FAILED[/]"
            detail = ", ".join(f"{o['name']}: abs {o['max_abs_err']:.3g}" for o in ver["outputs"]
                               if isinstance(o.get("max_abs_err"), (int, float)))
            console.print(f"verification: {verdict} ({ver['checked']}) {detail}")
        else:
            console.print("verification: -")
        eng = row["engine"]
        console.print(f"engine: {eng['digest']} at {eng['path']} ({eng['bytes']} bytes, placed {eng['when']})"
                      if eng else "engine: none placed yet")
        if eng:
            console.print(f"precision: {escape(eng['precision'])}")
        for line in profile_lines((eng or {}).get("profiles")):
            console.print(f"  {escape(line)}")
