"""How long a fully cached ``tf2trt build`` takes, process start to exit.

A nightly conversion run over unchanged models is mostly no-op rebuilds, so their wall time is what users
wait for.  This builds one config once into a fresh store, then times, interleaved and side by side in the
same run:

* ``fast``      — ``tf2trt build CONFIG`` (every stage cached: answered without Prefect or TensorFlow,
  recorded on the dashboard afterwards by a detached process, which is not part of the wait);
* ``inline``    — the same, recording on the dashboard before exiting (``TF2TRT_RECORD_CACHED=inline``);
* ``prefect``   — ``tf2trt build --full CONFIG`` (every stage cached, but through Prefect's ephemeral
  server: the behaviour before the fast path);
* ``prefect+server`` — ``--full`` against a running Prefect server (``PREFECT_API_URL``), when
  ``--server`` is given: the warm-Prefect case.

Usage: ``python bench/noop_rebuild.py [--config configs/resnet50.yaml] [--runs 5] [--server]``.
Results go to ``bench/results/noop_rebuild-*.json|md`` and the "No-op rebuild" section of docs/bench.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from _common import REPO, child_env, fmt_s, machine_info, md_table, median, print_table, run_measured, \
    update_docs_section, write_results


def _tf2trt(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", *args]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs" / "resnet50.yaml"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--server", action="store_true", help="also time --full against a running Prefect server")
    ap.add_argument("--no-docs", action="store_true", help="do not update docs/bench.md")
    args = ap.parse_args(argv)

    store = Path(tempfile.mkdtemp(prefix="tf2trt-noop-"))
    env = child_env()
    first = run_measured(_tf2trt("build", args.config, "--artifacts", str(store), "--full"), cwd=REPO, env=env)
    if first.returncode != 0:
        sys.stderr.write(first.stderr[-2000:])
        return 1
    variants = {
        "fast": (_tf2trt("build", args.config, "--artifacts", str(store)), {**env, "TF2TRT_RECORD_CACHED": "background"}),
        "inline": (_tf2trt("build", args.config, "--artifacts", str(store)), {**env, "TF2TRT_RECORD_CACHED": "inline"}),
        "prefect": (_tf2trt("build", args.config, "--artifacts", str(store), "--full"), env),
    }
    server = None
    if args.server:
        sys.path.insert(0, str(REPO))
        from pipeline.runtime import start_server  # noqa: E402

        server = start_server()
        variants["prefect+server"] = (_tf2trt("build", args.config, "--artifacts", str(store), "--full"),
                                      {**env, "PREFECT_API_URL": server.api_url})
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(args.runs):  # interleaved: machine noise hits every variant alike
            for name, (cmd, venv) in variants.items():
                run = run_measured(cmd, cwd=REPO, env=venv)
                if run.returncode != 0:
                    sys.stderr.write(f"{name} failed:\n{run.stderr[-2000:]}")
                    return 1
                if "cached" not in run.stderr:
                    sys.stderr.write(f"{name}: not a cached build?\n{run.stderr[-2000:]}")
                    return 1
                times[name].append(run.wall_s)
    finally:
        if server is not None:
            server.stop()
    base = median(times["prefect"])
    rows = [[name, fmt_s(median(ts)), fmt_s(min(ts)), f"{base / median(ts):.1f}×"] for name, ts in times.items()]
    cols = ["variant", "median wall", "best wall", "faster than --full"]
    print_table(f"no-op rebuild of {Path(args.config).name} ({args.runs} runs each)", cols, rows)
    shown = Path(args.config).resolve()
    shown = shown.relative_to(REPO) if shown.is_relative_to(REPO) else shown
    md = (f"Fully cached `tf2trt build {shown}`, "
          f"process start to exit, {args.runs} interleaved runs per variant (`python bench/noop_rebuild.py`).\n\n"
          + md_table(cols, rows))
    write_results("noop_rebuild", {"machine": machine_info(), "config": args.config, "runs": args.runs,
                                   "wall_s": times}, md)
    if not args.no_docs:
        update_docs_section("No-op rebuild", md)
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
