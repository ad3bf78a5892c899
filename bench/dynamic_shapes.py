"""One engine with a batch profile vs the static batch-1 engine, ours and the ONNX path's, side by side.

For each model (keras.applications, weights=None, seed 0, bench/_models.py), in one run:

* ours static   — ``python -m converter convert M.keras --engine … --batch-range 1,1,1 --json``
* ours profile  — the same with ``--batch-range MIN,OPT,MAX`` (the batch stays -1 in the network)
* peer static   — bench/_peer.py in bench/.peer-venv: tf2onnx (batch 1) → OnnxParser → build
* peer profile  — bench/_peer.py ``--batch-range MIN,OPT,MAX``: tf2onnx with a dynamic batch, the same
  optimization profile on the builder

Reported per variant: network layers, engine bytes, the engine build's seconds (TensorRT's
build_serialized_network: tf2trt's ``optimize`` timing, the peer's ``build``), the whole conversion's
wall time and peak RSS.  No GPU here: engines are built ahead of time by TensorRT-RTX, not run.

Usage: ``python bench/dynamic_shapes.py [--models mobilenetv2 resnet50] [--batch-range 1,8,32]``.
Results: bench/results/dynamic_shapes-*.json|md and the "Dynamic shapes" section of docs/bench.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import REPO, child_env, fmt_mib, fmt_s, machine_info, md_table, print_table, run_measured, \
    update_docs_section, write_results
from _models import generate

HERE = Path(__file__).resolve().parent
PEER_PYTHON = HERE / ".peer-venv" / "bin" / "python"


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def _ours(model: Path, out: Path, batch_range: str) -> dict:
    run = run_measured([sys.executable, "-m", "converter", "convert", str(model), "--engine", str(out),
                        "--batch-range", batch_range, "--json"], cwd=REPO, env=child_env())
    res = _last_json(run.stdout) or {}
    ok = run.returncode == 0 and res.get("engine") is not None
    return {"ok": ok, "layers": res.get("layers"), "engine_bytes": (res.get("engine") or {}).get("bytes"),
            "build_s": (res.get("timings") or {}).get("optimize"), "wall_s": run.wall_s,
            "peak_rss": run.peak_rss_bytes, "error": None if ok else (res.get("error") or run.stderr[-500:])}


def _peer(model: Path, out: Path, batch_range: str | None) -> dict:
    if not PEER_PYTHON.exists():
        return {"ok": False, "error": f"peer not installed ({PEER_PYTHON.parent.parent} missing: run bench/convert.py "
                                      "once to create it)"}
    argv = [str(PEER_PYTHON), str(HERE / "_peer.py"), str(model), "--engine", str(out)]
    if batch_range:
        argv += ["--batch-range", batch_range]
    run = run_measured(argv, cwd=REPO, env=child_env())
    res = _last_json(run.stdout) or {}
    return {"ok": bool(res.get("ok")), "layers": res.get("layers"), "engine_bytes": res.get("engine_bytes"),
            "build_s": (res.get("timings") or {}).get("build"), "wall_s": run.wall_s, "peak_rss": run.peak_rss_bytes,
            "error": res.get("error") or (None if res.get("ok") else run.stderr[-500:])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["mobilenetv2", "resnet50"])
    ap.add_argument("--batch-range", default="1,8,32")
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tf2trt-dyn-"))
    results = {}
    for name in args.models:
        model = generate(name)
        results[name] = {
            "ours static": _ours(model, work / f"{name}-s.plan", "1,1,1"),
            "ours profile": _ours(model, work / f"{name}-p.plan", args.batch_range),
            "peer static": _peer(model, work / f"{name}-ps.plan", None),
            "peer profile": _peer(model, work / f"{name}-pp.plan", args.batch_range),
        }
    columns = ["model", "variant", "layers", "engine", "engine build", "convert wall", "peak RSS", "note"]
    rows = []
    for name, variants in results.items():
        for variant, r in variants.items():
            rows.append([name, variant, str(r.get("layers") or "—"), fmt_mib(r.get("engine_bytes")),
                         fmt_s(r.get("build_s")), fmt_s(r.get("wall_s")), fmt_mib(r.get("peak_rss")),
                         "ok" if r["ok"] else f"FAILED: {str(r.get('error'))[:120]}"])
    title = f"Static batch-1 engine vs one profile (batch {args.batch_range}), ours and the ONNX path"
    print_table(title, columns, rows)
    markdown = (f"{title}; TensorRT-RTX builds ahead of time (no GPU), optimization level 3.\n\n"
                + md_table(columns, rows) + "\n")
    write_results("dynamic_shapes", {"machine": machine_info(), "batch_range": args.batch_range,
                                     "results": results}, markdown)
    if not args.no_docs:
        update_docs_section("Dynamic shapes", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
