"""Conversion benchmark: tf2trt (ours) vs the "ONNX way" (tf2onnx + TensorRT's ONNX parser), side by side.

    /work/venv/bin/python bench/convert.py [--models resnet50,vgg16] [--repeat N] [--skip-peer]
                                          [--peer-mem-gb 16] [--converter-ref REF | --converter-src DIR]
                                          [--section convert|rnn] [--no-docs] [--render RESULT.json]
    /work/venv/bin/python bench/convert.py --section rnn --timeout 900     # lstm_text, gru_text

For each model (bench/_models.py: tf.keras.applications with weights=None, or the recurrent text
classifiers lstm_text / gru_text with an int32 token input; fixed seed, cached in bench/.models/) and each
repeat, two child processes run one after the other, each measured with os.wait4 (exit status, wall
time, peak RSS = ru_maxrss of that child):

* ours: ``python -m converter convert MODEL.keras --engine OUT.plan --json --batch-range 1,1,1`` (static
  batch 1 like the peer; --ours-batch-range 1,1,8 gives the CLI's default dynamic batch profile; run from --converter-src,
  the working tree by default, or from ``git archive REF`` of converter/ with --converter-ref, so that a
  half-edited working tree does not get benchmarked); stage timings come from its JSON line.
  .keras→engine = freeze + parse + construct + optimize (TensorFlow's import is excluded by the CLI).
* peer: bench/_peer.py in its own virtualenv (bench/.peer-venv, created on first use with pinned
  tf2onnx / tensorflow / tensorrt-rtx / onnx): keras load → tf2onnx (opset 17) → OnnxParser →
  build_serialized_network, all after the imports.  It runs under RLIMIT_AS = --peer-mem-gb
  (default 16 GiB: the machine has 24 GiB shared with other sessions' processes); running out of
  memory (MemoryError, std::bad_alloc, a kill) is a result, not a crash of this script.

Both build with the same builder settings (optimization level 3, TensorRT-RTX defaults otherwise).
Times are medians over --repeat runs; peak memory is the maximum.  Results go to
bench/results/convert-<stamp>.{json,md} (and convert-latest.*) and, unless --no-docs, into the
``convert`` section of docs/bench.md.  ``--section rnn`` benchmarks the recurrent models instead (its
default --models) and writes bench/results/convert-rnn-*.{json,md} and the ``convert-rnn`` section, so
the ResNet50/VGG16 ``convert`` section is left as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (GiB, HERE, MiB, REPO, child_env, export_ref, fmt_mib, fmt_ratio, fmt_s,  # noqa: E402
                     git_info, machine_info, md_table, median, print_table, run_measured, timestamp, update_docs_section,
                     write_results)

PEER_VENV = HERE / ".peer-venv"
#: a combination checked to install together and convert ResNet50 (pip resolves the rest)
PEER_PINS = ["tf2onnx==1.17.0", "tensorflow==2.21.0", "tensorrt-rtx==1.7.1.116", "onnx==1.23.2"]
PEER_CHECK = ("import json, tf2onnx, tensorflow as tf, onnx, tensorrt_rtx as trt, keras, google.protobuf as pb, numpy;"
              "print(json.dumps({'tf2onnx': tf2onnx.__version__, 'tensorflow': tf.__version__, 'keras': keras.__version__,"
              "'onnx': onnx.__version__, 'tensorrt_rtx': trt.__version__, 'protobuf': pb.__version__,"
              "'numpy': numpy.__version__}))")

OURS_STAGES = ("freeze", "parse", "construct", "optimize")
PEER_STAGES = ("load", "tf2onnx", "serialize", "parse", "build")

#: --section: (default --models, docs/bench.md section = results file stem, table heading)
SECTIONS = {
    "convert": ("resnet50,vgg16", "convert", "Conversion: tf2trt vs tf2onnx + TensorRT ONNX parser"),
    "rnn": ("lstm_text,gru_text", "convert-rnn",
            "Conversion of recurrent models (While loop → TensorRT loop): tf2trt vs tf2onnx + TensorRT ONNX parser"),
}

TARGETS = {
    "parse_construct_s": ("resnet50", 0.5, "ResNet50 parse+construct ≤ 0.5 s"),
    "convert_s": (None, 6.0, ".keras→engine ≤ 6 s"),
    "layers": ("resnet50", 128, "ResNet50 network ≤ 128 layers"),
    "peak_rss_bytes": ("vgg16", 4 * GiB, "VGG16 converts within 4 GB peak memory"),
}


# ----------------------------------------------------------------------------- setup

def ensure_models(names: list[str], python: str) -> dict[str, str]:
    """Generate (or reuse) the cached models, in a child process so this one never imports TensorFlow."""
    proc = subprocess.run([python, str(HERE / "_models.py"), *names], capture_output=True, text=True,
                          env=child_env())
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit("could not generate the benchmark models")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peer_versions(python: Path) -> dict | None:
    if not python.exists():
        return None
    proc = subprocess.run([str(python), "-c", PEER_CHECK], capture_output=True, text=True, env=child_env())
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ensure_peer_venv(venv: Path, pins: list[str]) -> tuple[Path, dict]:
    python = venv / "bin" / "python"
    versions = peer_versions(python)
    if versions is not None:
        return python, versions
    print(f"setting up the peer virtualenv in {venv} ({' '.join(pins)}) ...", flush=True)
    if not python.exists():
        subprocess.run([sys.executable if sys.prefix == sys.base_prefix else "python3", "-m", "venv", str(venv)],
                       check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True)
    versions = peer_versions(python)
    if versions is None:
        raise SystemExit(f"the peer virtualenv {venv} cannot import tf2onnx/tensorflow/onnx/tensorrt_rtx")
    return python, versions


# ----------------------------------------------------------------------------- one run each

def run_ours(python: str, src: Path, model: str, out_dir: Path, tag: str, timeout: float,
             mem_cap: int | None, batch_range: str | None = None) -> dict:
    engine = out_dir / f"{tag}.ours.plan"
    extra = ["--batch-range", batch_range] if batch_range else []
    run = run_measured([python, "-m", "converter", "convert", model, "--engine", str(engine), "--json", *extra],
                       cwd=src, env=child_env(), timeout_s=timeout, mem_cap_bytes=mem_cap,
                       log_prefix=out_dir / f"{tag}.ours")
    rec = _base_record(run)
    res = run.last_json()
    if res is None:
        rec["status"] = _failure_status(run)
        rec["error"] = _stderr_tail(run)
        return rec
    t = res.get("timings") or {}
    rec["timings"] = {k: t.get(k) for k in OURS_STAGES}
    rec["layers"] = res.get("layers")
    rec["engine_bytes"] = (res.get("engine") or {}).get("bytes")
    rec["error"] = res.get("error")
    rec["ok"] = run.returncode == 0 and res.get("error") is None
    if rec["ok"]:
        rec["status"] = "ok"
        rec["convert_s"] = sum(t[k] for k in OURS_STAGES)
        rec["parse_construct_s"] = t["parse"] + t["construct"]
    else:
        rec["status"] = _failure_status(run) if run.looks_oom() else "failed"
    try:
        engine.unlink()
        Path(str(engine) + ".json").unlink()
    except FileNotFoundError:
        pass
    return rec


def run_peer(python: Path, model: str, out_dir: Path, tag: str, timeout: float, mem_cap: int | None,
             opset: int) -> dict:
    engine = out_dir / f"{tag}.peer.plan"
    run = run_measured([str(python), str(HERE / "_peer.py"), model, "--engine", str(engine), "--opset", str(opset)],
                       cwd=REPO, env=child_env(), timeout_s=timeout, mem_cap_bytes=mem_cap,
                       log_prefix=out_dir / f"{tag}.peer")
    rec = _base_record(run)
    res = run.last_json()
    if res is None:  # killed or crashed before it could report
        stages = [line.split()[-1] for line in run.stderr.splitlines() if line.startswith("[peer-stage] ")]
        rec["stage"] = stages[-1] if stages else "import"
        rec["status"] = f"{_failure_status(run)} in {rec['stage']}"
        rec["error"] = _stderr_tail(run)
        return rec
    rec["timings"] = {k: v for k, v in res["timings"].items()}
    rec["stage"] = res.get("stage")
    rec["layers"] = res.get("layers")
    rec["engine_bytes"] = res.get("engine_bytes")
    rec["onnx_bytes"] = res.get("onnx_bytes")
    rec["onnx_nodes"] = res.get("onnx_nodes")
    rec["import_s"] = res.get("import_s")
    rec["error"] = res.get("error")
    rec["ok"] = bool(res.get("ok")) and run.returncode == 0
    if rec["ok"]:
        rec["status"] = "ok"
        rec["convert_s"] = sum(res["timings"][k] for k in PEER_STAGES)
    elif res.get("oom"):
        rec["status"] = f"out of memory in {res.get('stage')}"
    else:
        rec["status"] = f"{_failure_status(run)} in {res.get('stage')}"
    try:
        engine.unlink()
    except FileNotFoundError:
        pass
    return rec


def _base_record(run) -> dict:
    return {"exit_code": run.returncode, "signal": run.signal, "wall_s": run.wall_s,
            "peak_rss_bytes": run.peak_rss_bytes, "cpu_s": run.user_s + run.sys_s,
            "vm_peak_bytes": run.vm_peak_bytes, "mem_cap_bytes": run.mem_cap_bytes, "ok": False, "status": None}


def _signal_name(num: int) -> str:
    import signal as _signal

    try:
        return _signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _failure_status(run) -> str:
    if run.timed_out:
        return "timeout"
    how = f", {_signal_name(run.signal)}" if run.signal else ""
    if run.looks_oom():
        if run.near_cap():
            return (f"out of memory (hit the {run.mem_cap_bytes / GiB:g} GiB cap: "
                    f"address space {run.vm_peak_bytes / GiB:.1f} GiB{how})")
        return f"out of memory{' (' + how[2:] + ')' if how else ''}"
    if run.signal:
        return f"crashed ({_signal_name(run.signal)})"
    return f"failed (exit {run.returncode})"


_NOISE = ("WARNING: All log messages", "I0000 ", "W0000 ", "E0000 ", "[peer-stage]", "To enable the following",
          "oneDNN custom operations")


def _stderr_tail(run, limit: int = 8000) -> str:
    lines = [ln for ln in run.stderr.splitlines() if ln.strip() and not ln.lstrip().startswith(_NOISE)]
    return "\n".join(lines)[-limit:]


# ----------------------------------------------------------------------------- aggregate + report

def aggregate(runs: list[dict], stages: tuple[str, ...]) -> dict:
    ok = [r for r in runs if r.get("ok")]
    agg = {"runs": len(runs), "ok_runs": len(ok), "status": ok and "ok" or (runs[-1]["status"] if runs else None),
           "peak_rss_bytes": max((r["peak_rss_bytes"] for r in runs), default=None),
           "wall_s": median(r["wall_s"] for r in runs), "cpu_s": median(r["cpu_s"] for r in runs),
           "vm_peak_bytes": max((r.get("vm_peak_bytes") or 0 for r in runs), default=None) or None}
    if not ok:
        agg["error"] = runs[-1].get("error") if runs else None
        agg["stage"] = runs[-1].get("stage") if runs else None
        return agg
    agg["convert_s"] = median(r["convert_s"] for r in ok)
    agg["convert_s_min"] = min(r["convert_s"] for r in ok)
    agg["convert_s_max"] = max(r["convert_s"] for r in ok)
    agg["timings"] = {k: median(r["timings"].get(k) for r in ok) for k in stages}
    agg["wall_s"] = median(r["wall_s"] for r in ok)
    agg["cpu_s"] = median(r["cpu_s"] for r in ok)
    for key in ("layers", "engine_bytes", "onnx_bytes", "onnx_nodes", "import_s", "parse_construct_s"):
        if key in ok[-1]:
            agg[key] = ok[-1][key] if key not in ("import_s", "parse_construct_s") else median(r[key] for r in ok)
    return agg


def _fmt_bytes(b) -> str:
    return "—" if not b else f"{b / MiB:,.1f} MiB"


def model_rows(name: str, ours: dict, peer: dict | None) -> list[list[str]]:
    p = peer or {}
    peer_ok = bool(p) and p.get("status") == "ok"

    first = [True]

    def peer_cell(text):
        if not p:
            return "skipped"
        if peer_ok:
            return text
        if first[0]:  # the failure is spelled out once, on the first row
            first[0] = False
            return p.get("status") or "—"
        return "—"

    ot, pt = ours.get("timings") or {}, p.get("timings") or {}
    rows = [
        [name, ".keras → engine", fmt_s(ours.get("convert_s")) if ours.get("status") == "ok" else ours.get("status"),
         peer_cell(fmt_s(p.get("convert_s"))), fmt_ratio(p.get("convert_s"), ours.get("convert_s")) if peer_ok else "—"],
        ["", "  to a graph: ours freeze / peer load+tf2onnx+serialize",
         fmt_s(ot.get("freeze")),
         peer_cell(fmt_s(sum(pt[k] for k in ("load", "tf2onnx", "serialize")) if peer_ok else None)),
         fmt_ratio(sum(pt[k] for k in ("load", "tf2onnx", "serialize")) if peer_ok else None, ot.get("freeze"))],
        ["", "  to a network: ours parse+construct / peer OnnxParser",
         fmt_s(ours.get("parse_construct_s")), peer_cell(fmt_s(pt.get("parse"))),
         fmt_ratio(pt.get("parse") if peer_ok else None, ours.get("parse_construct_s"))],
        ["", "  engine build: ours optimize / peer build", fmt_s(ot.get("optimize")), peer_cell(fmt_s(pt.get("build"))),
         fmt_ratio(pt.get("build") if peer_ok else None, ot.get("optimize"))],
        ["", "network layers", str(ours.get("layers", "—")), peer_cell(str(p.get("layers"))),
         fmt_ratio(p.get("layers") if peer_ok else None, ours.get("layers"))],
        ["", "peak RSS (whole process)", fmt_mib(ours.get("peak_rss_bytes")),
         fmt_mib(p.get("peak_rss_bytes")) if p else "skipped",
         fmt_ratio(p.get("peak_rss_bytes"), ours.get("peak_rss_bytes")) if p else "—"],
        ["", "engine size", _fmt_bytes(ours.get("engine_bytes")),
         peer_cell(_fmt_bytes(p.get("engine_bytes"))),
         fmt_ratio(p.get("engine_bytes") if peer_ok else None, ours.get("engine_bytes"))],
        ["", "process CPU time (user+sys)", fmt_s(ours.get("cpu_s")), fmt_s(p.get("cpu_s")) if p else "skipped",
         fmt_ratio(p.get("cpu_s"), ours.get("cpu_s")) if p else "—"],
        ["", "process wall time (incl. imports)", fmt_s(ours.get("wall_s")), fmt_s(p.get("wall_s")) if p else "skipped",
         fmt_ratio(p.get("wall_s"), ours.get("wall_s")) if p else "—"],
    ]
    return rows


def target_rows(results: dict) -> list[list[str]]:
    rows = []
    for key, (model, limit, label) in TARGETS.items():
        models = [model] if model else list(results)
        for m in models:
            if m not in results:
                continue
            ours = results[m]["ours"]
            value = ours.get(key)
            if ours.get("status") != "ok" and key != "peak_rss_bytes":
                rows.append([label, m, ours.get("status") or "—", "not measured"])
                continue
            if value is None:
                continue
            if key == "peak_rss_bytes":
                # "4 GB" is ambiguous: judge against 4 GiB and say where it stands against 4×10⁹ bytes too
                shown, lim = f"{value / 1e9:.4f} GB = {value / GiB:.3f} GiB", "4 GiB"
                ok = value <= limit
                verdict = (f"met as 4 GiB ({(limit - value) / MiB:,.0f} MiB to spare)" if ok
                           else f"MISSED 4 GiB by {(value - limit) / MiB:,.0f} MiB")
                verdict += (f"; over 4 GB = 4×10⁹ B by {(value - 4e9) / 1e6:.1f} MB" if value > 4e9
                            else f"; also within 4×10⁹ B ({(4e9 - value) / 1e6:.0f} MB to spare)")
                if ours.get("status") != "ok":
                    verdict += f" (conversion {ours.get('status')})"
                rows.append([label, m, shown, verdict])
                continue
            elif key == "layers":
                shown, lim = str(value), str(limit)
            else:
                shown, lim = fmt_s(value), fmt_s(limit)
            ok = value <= limit
            verdict = "met" if ok else f"MISSED by {fmt_mib(value - limit) if key == 'peak_rss_bytes' else (value - limit if key == 'layers' else fmt_s(value - limit))}"
            if key == "convert_s" and not ok:
                t = ours["timings"]
                worst = max(OURS_STAGES, key=lambda k: t[k])
                verdict += f" (largest stage: {worst} {fmt_s(t[worst])})"
            rows.append([label, m, f"{shown} (limit {lim})", verdict])
    return rows


def _summarize_error(text: str) -> str:
    """A crash's stderr, shortened: the fatal line and the frames outside the standard library."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if any(ln.startswith("Fatal Python error") for ln in lines):
        keep = [ln for ln in lines if ln.startswith("Fatal Python error")]
        keep += [ln.replace("File ", "") for ln in lines if ln.startswith("File ") and "site-packages" in ln][:3]
        return " / ".join(keep)
    return " ".join(lines)[-400:]


def render_markdown(data: dict) -> str:
    m = data["machine"]
    heading = SECTIONS[data.get("section", "convert")][2]
    lines = [
        f"### {heading} — {m['date'][:10]}",
        "",
        f"Measured {m['date']} on {m['cores']} cores ({m.get('cpu', '?')}, {', '.join(m.get('cpu_simd', []))}), "
        f"{m.get('mem_total_gib', '?')} GiB RAM ({m.get('mem_available_gib_at_start', '?')} GiB available at start, "
        f"load average {m.get('loadavg_at_start')}), no GPU. Other sessions' processes share the machine.",
        "",
        f"Command: `{data['command']}`  ·  repeats: {data['repeat']} (times are medians, memory the maximum)",
        "",
        f"Ours: tf2trt from `{data['ours_source']['source']}` at commit `{(data['ours_source'].get('commit') or '?')[:10]}`"
        + (f" with uncommitted changes to {', '.join(f.split()[-1] for f in data['ours_source']['dirty_converter_files'])}"
           if data["ours_source"].get("dirty_converter_files") else " (clean)")
        + f"; {data.get('ours_versions', {})}."
        + (f" Built with `--batch-range {data['ours_batch_range']}`"
           + (" (a static batch-1 network, like the peer's)." if data["ours_batch_range"] == "1,1,1" else ".")
           if data.get("ours_batch_range") else ""),
        "",
    ]
    if data.get("peer_versions"):
        lines += [f"Peer: {', '.join(f'{k} {v}' for k, v in data['peer_versions'].items())}; opset {data['opset']}; "
                  f"address-space cap (RLIMIT_AS) {data['peer_mem_gb']} GiB.", ""]
    else:
        lines += ["Peer: skipped.", ""]
    cols = ["model", "metric", "ours (tf2trt)", "peer (tf2onnx + OnnxParser)", "peer / ours"]
    rows = []
    for name, r in data["results"].items():
        rows += model_rows(name, r["ours"], r.get("peer"))
    lines += [md_table(cols, rows), ""]
    per_run = []
    for name, sides in data["runs"].items():
        for side, runs in sides.items():
            if not runs:
                continue
            vals = ", ".join(fmt_s(r["convert_s"]) if r.get("ok") else r.get("status", "failed") for r in runs)
            pc = ", ".join(fmt_s(r["parse_construct_s"]) for r in runs if r.get("ok") and "parse_construct_s" in r)
            per_run.append(f"- {name}, {side}: .keras → engine per run: {vals}"
                           + (f"; parse+construct per run: {pc}" if pc else ""))
    lines += ["Stage rows are per-stage medians over the runs (they need not add up to the median total). Per run:", "",
              *per_run, "", f"Load average at the end of the run: {data.get('loadavg_at_end')}.", ""]
    lines += ["Targets for ours:", "", md_table(["target", "model", "measured", "verdict"], target_rows(data["results"])), ""]
    notes = []
    for name, r in data["results"].items():
        for side in ("ours", "peer"):
            rec = r.get(side)
            if rec and rec.get("status") not in (None, "ok"):
                err = _summarize_error(rec.get("error") or "")
                notes.append(f"- {name}, {side}: **{rec['status']}**"
                             + (f" after {fmt_s(rec.get('wall_s'))}, peak RSS {fmt_mib(rec.get('peak_rss_bytes'))}")
                             + (f", peak address space (VmPeak, sampled) {fmt_mib(rec.get('vm_peak_bytes'))}"
                                if rec.get("vm_peak_bytes") else "")
                             + (f" — `{err[:400]}`" if err else ""))
    if notes:
        lines += ["Failures:", "", *notes, ""]
    lines += [
        "How the numbers are taken: each side is one child process, measured with `os.wait4` (peak RSS = the "
        "child's `ru_maxrss`, including TensorFlow's import). \".keras → engine\" is ours' freeze+parse+construct+optimize "
        "from the CLI's JSON and the peer's keras load + tf2onnx + serialize + OnnxParser + engine build, "
        "both after the imports and without writing the engine file.",
        "",
    ]
    return "\n".join(lines)


def render_saved(path: Path, docs: bool) -> int:
    data = json.loads(path.read_text())
    md = render_markdown(data)
    cols = ["model", "metric", "ours (tf2trt)", "peer (tf2onnx + OnnxParser)", "peer / ours"]
    rows = []
    for name, r in data["results"].items():
        rows += model_rows(name, r["ours"], r.get("peer"))
    print_table(f"Conversion ({path.name})", cols, rows)
    print_table("Targets for ours", ["target", "model", "measured", "verdict"], target_rows(data["results"]))
    path.with_suffix(".md").write_text(md)
    if docs:
        name = SECTIONS[data.get("section", "convert")][1]
        update_docs_section(name, md)
        print(f"docs/bench.md: {name} section updated")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", choices=sorted(SECTIONS), default="convert",
                    help="convert: ResNet50/VGG16 (the default models) into docs/bench.md's convert section; "
                         "rnn: the recurrent text classifiers lstm_text,gru_text into the convert-rnn section")
    ap.add_argument("--models", help="comma-separated (default: the section's models)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--peer-mem-gb", type=float, default=16.0, help="RLIMIT_AS for the peer (GiB, default 16)")
    ap.add_argument("--ours-mem-gb", type=float, default=0, help="RLIMIT_AS for ours (GiB, default: none)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per child process")
    ap.add_argument("--ours-batch-range", default="1,1,1", metavar="MIN,OPT,MAX",
                    help="ours' --batch-range (default 1,1,1: static batch 1, as the peer builds; the CLI's own "
                         "default is 1,1,8, a dynamic batch profile); empty: leave it to the CLI")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--converter-src", default=str(REPO), help="directory holding the converter package")
    ap.add_argument("--converter-ref", help="benchmark the converter as committed at this git ref (e.g. HEAD), "
                    "exported to bench/.src/, instead of the working tree")
    ap.add_argument("--python", default=sys.executable, help="interpreter for ours and for generating models")
    ap.add_argument("--peer-venv", default=str(PEER_VENV))
    ap.add_argument("--no-docs", action="store_true", help="do not update docs/bench.md")
    ap.add_argument("--render", metavar="RESULT.json", help="measure nothing: re-render a saved result's "
                    "tables (and, unless --no-docs, its docs/bench.md section)")
    args = ap.parse_args(argv)
    if args.render:
        return render_saved(Path(args.render), docs=not args.no_docs)

    default_models, section_name, _ = SECTIONS[args.section]
    names = [n.strip().lower() for n in (args.models or default_models).split(",") if n.strip()]
    if args.converter_ref:
        src, src_info = export_ref(args.converter_ref)
    else:
        src = Path(args.converter_src).resolve()
        src_info = git_info(src)
    machine = machine_info()
    print(f"machine: {machine['cores']} cores, {machine.get('cpu')}, {machine.get('mem_total_gib')} GiB "
          f"({machine.get('mem_available_gib_at_start')} available), load {machine.get('loadavg_at_start')}")

    models = ensure_models(names, args.python)
    peer_python, peer_vers = (None, None)
    if not args.skip_peer:
        peer_python, peer_vers = ensure_peer_venv(Path(args.peer_venv), PEER_PINS)
        print(f"peer: {peer_vers}")
    ours_vers = json.loads(subprocess.run(
        [args.python, "-c", "import json, tensorflow as tf, keras, tensorrt_rtx as t, numpy;"
         "print(json.dumps({'tensorflow': tf.__version__, 'keras': keras.__version__, 'tensorrt_rtx': t.__version__,"
         "'numpy': numpy.__version__}))"], capture_output=True, text=True, env=child_env()).stdout.strip().splitlines()[-1])

    run_dir = HERE / "results" / "logs" / f"{section_name}-{timestamp()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    peer_cap = int(args.peer_mem_gb * GiB) if args.peer_mem_gb else None
    ours_cap = int(args.ours_mem_gb * GiB) if args.ours_mem_gb else None
    raw: dict[str, dict[str, list]] = {}
    for name in names:
        raw[name] = {"ours": [], "peer": []}
        for rep in range(args.repeat):
            tag = f"{name}.{rep}"
            print(f"[{name} {rep + 1}/{args.repeat}] ours ...", flush=True)
            rec = run_ours(args.python, src, models[name], run_dir, tag, args.timeout, ours_cap,
                           args.ours_batch_range or None)
            raw[name]["ours"].append(rec)
            print(f"    {rec['status']}: .keras→engine {fmt_s(rec.get('convert_s'))}, peak {fmt_mib(rec['peak_rss_bytes'])}, "
                  f"wall {fmt_s(rec['wall_s'])}", flush=True)
            if peer_python is not None:
                print(f"[{name} {rep + 1}/{args.repeat}] peer (cap {args.peer_mem_gb:g} GiB) ...", flush=True)
                rec = run_peer(peer_python, models[name], run_dir, tag, args.timeout, peer_cap, args.opset)
                raw[name]["peer"].append(rec)
                print(f"    {rec['status']}: .keras→engine {fmt_s(rec.get('convert_s'))}, "
                      f"peak {fmt_mib(rec['peak_rss_bytes'])}, wall {fmt_s(rec['wall_s'])}", flush=True)

    results = {}
    for name in names:
        results[name] = {"ours": aggregate(raw[name]["ours"], OURS_STAGES)}
        if peer_python is not None:
            results[name]["peer"] = aggregate(raw[name]["peer"], PEER_STAGES)

    data = {
        "benchmark": "convert",
        "section": args.section,
        "command": "python bench/convert.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine,
        "repeat": args.repeat,
        "opset": args.opset,
        "peer_mem_gb": args.peer_mem_gb if peer_python is not None else None,
        "ours_mem_gb": args.ours_mem_gb or None,
        "ours_batch_range": args.ours_batch_range or None,
        "ours_source": src_info,
        "ours_versions": ours_vers,
        "peer_versions": peer_vers,
        "models": models,
        "results": results,
        "runs": raw,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "logs": str(run_dir),
    }
    cols = ["model", "metric", "ours (tf2trt)", "peer (tf2onnx + OnnxParser)", "peer / ours"]
    rows = []
    for name in names:
        rows += model_rows(name, results[name]["ours"], results[name].get("peer"))
    print()
    print_table(f"Conversion, {machine['cores']} cores, medians of {args.repeat}", cols, rows)
    print_table("Targets for ours", ["target", "model", "measured", "verdict"], target_rows(results))
    md = render_markdown(data)
    jpath, mpath = write_results(section_name, data, md)
    print(f"\nresults: {jpath}\n         {mpath}\nlogs:    {run_dir}")
    if not args.no_docs:
        update_docs_section(section_name, md)
        print(f"docs/bench.md: {section_name} section updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
