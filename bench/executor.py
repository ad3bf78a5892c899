"""Reference executor vs TensorFlow CPU inference, ResNet50 batch 1, in one process.

    /work/venv/bin/python bench/executor.py [--runs 10] [--warmup 2] [--model resnet50]
                                           [--converter-ref REF | --converter-src DIR] [--blas-threads N]
                                           [--no-profile] [--no-docs]

* the reference executor: converter.freeze → parse → construct → ``net.snapshot`` →
  ``ReferenceExecutor(snapshot).run({input: x})``; the executor is built once, runs are timed;
* TensorFlow: the same .keras loaded with keras, called through a ``tf.function`` with a fixed
  input signature (graph mode) and as a plain eager ``model(x, training=False)`` call;
* numpy float32 matmul throughput (n×n @ n×n, 2n³ flops) for context.

Each is warmed up, then timed --runs times, interleaved round by round (so all three see the same load
from other processes); medians are reported, with min/max and the median CPU time.  The goal is
executor ≤ 2× TensorFlow (measured against the faster TensorFlow path).  With --profile (default)
one more executor run is timed per layer type (not part of the medians).  Results go to
bench/results/executor-<stamp>.{json,md} (and executor-latest.*) and, unless --no-docs, into the
``executor`` section of docs/bench.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import (REPO, export_ref, fmt_s, git_info, machine_info, md_table, median, print_table,  # noqa: E402
                     update_docs_section, write_results)

GOAL = 2.0


def timed(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def interleaved(fns, runs: int, warmup: int) -> list[list[float]]:
    for _ in range(warmup):
        for fn in fns:
            fn()
    out = [[] for _ in fns]
    cpu = [[] for _ in fns]
    for _ in range(runs):
        for fn, times, ctimes in zip(fns, out, cpu):
            c = time.process_time()
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
            ctimes.append(time.process_time() - c)
    return out, cpu


def numpy_matmul(n: int, runs: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    times = timed(lambda: a @ b, runs, 2)
    t = median(times)
    blas = None
    try:
        cfg = np.__config__.CONFIG  # numpy >= 1.25
        dep = cfg["Build Dependencies"]["blas"]
        blas = f"{dep.get('name')} {dep.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - informational only
        pass
    return {"n": n, "median_s": t, "gflops": 2 * n ** 3 / t / 1e9, "best_gflops": 2 * n ** 3 / min(times) / 1e9,
            "blas": blas}


def profile_layers(executor, feeds) -> list[dict]:
    """One executor run with per-layer-type timings (the executor's ``timings`` hook)."""
    totals: dict[str, list] = {}
    t = time.perf_counter()
    executor.run(feeds, timings=totals)
    total = time.perf_counter() - t
    rows = [{"type": k, "count": c, "seconds": s} for k, (s, c) in totals.items()]
    rows.sort(key=lambda r: -r["seconds"])
    rows.append({"type": "(outside layer impls)", "count": 0, "seconds": total - sum(r["seconds"] for r in rows)})
    for r in rows:
        r["share"] = r["seconds"] / total
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--matmul-n", type=int, default=2048)
    ap.add_argument("--converter-src", default=str(REPO), help="directory holding the converter package")
    ap.add_argument("--converter-ref", help="use the converter as committed at this git ref (e.g. HEAD), "
                    "exported to bench/.src/, instead of the working tree")
    ap.add_argument("--blas-threads", type=int, help="set OPENBLAS_NUM_THREADS/OMP_NUM_THREADS for numpy "
                    "(default: OpenBLAS's own choice); results and the docs section get the suffix -blasN")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.blas_threads:
        if "numpy" in sys.modules:
            raise SystemExit("--blas-threads must be set before numpy is imported")
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)
    name = "executor" + (f"-blas{args.blas_threads}" if args.blas_threads else "")
    if args.converter_ref:
        src, src_info = export_ref(args.converter_ref)
    else:
        src = Path(args.converter_src).resolve()
        src_info = git_info(src)
    sys.path.insert(0, str(src))
    machine = machine_info()
    print(f"machine: {machine['cores']} cores, {machine.get('cpu')}, load {machine.get('loadavg_at_start')}")

    from _models import generate

    path = str(generate(args.model))

    import numpy as np

    mm = numpy_matmul(args.matmul_n, max(5, args.runs))
    print(f"numpy float32 matmul {mm['n']}³: {mm['gflops']:.1f} GFLOP/s (median; best {mm['best_gflops']:.1f}); "
          f"BLAS {mm['blas']}")

    import keras
    import tensorflow as tf

    import converter
    from converter.reference import ReferenceExecutor

    t = time.perf_counter()
    frozen = converter.freeze(path)
    graph = converter.parse(frozen)
    net = converter.construct(graph)
    snap = net.snapshot
    executor = ReferenceExecutor(snap)
    setup_s = time.perf_counter() - t
    spec = frozen.inputs[0]
    x = np.random.default_rng(0).uniform(-1, 1, size=tuple(spec.shape)).astype(np.float32)
    feeds = {spec.name: x}
    print(f"executor ready in {setup_s:.2f} s ({net.layer_count} layers; input {spec.name} {tuple(spec.shape)})")

    model = keras.models.load_model(path, compile=False)
    fn = tf.function(lambda v: model(v, training=False),
                     input_signature=[tf.TensorSpec(x.shape, tf.float32)])
    xt = tf.constant(x)

    # Interleaved: one run of each per round, so all three see the same load from other processes.
    (tf_graph_times, tf_eager_times, ex_times), (tf_graph_cpu, tf_eager_cpu, ex_cpu) = interleaved(
        [lambda: fn(xt).numpy(), lambda: model(xt, training=False).numpy(), lambda: executor.run(feeds)],
        args.runs, args.warmup)

    ref = np.asarray(fn(xt).numpy())
    got = next(iter(executor.run(feeds).values()))
    max_abs = float(np.max(np.abs(got.reshape(ref.shape) - ref))) if got.size == ref.size else float("nan")
    rel = max_abs / float(np.max(np.abs(ref)))

    tf_graph, tf_eager, ex = median(tf_graph_times), median(tf_eager_times), median(ex_times)
    tf_best = min(tf_graph, tf_eager)
    ratio = ex / tf_best
    profile = None if args.no_profile else profile_layers(executor, feeds)

    threads = {"tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
               "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
               "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")}
    data = {
        "benchmark": "executor",
        "command": "python bench/executor.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine,
        "model": args.model,
        "input_shape": list(spec.shape),
        "layers": net.layer_count,
        "runs": args.runs,
        "warmup": args.warmup,
        "ours_source": src_info,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__},
        "threads": threads,
        "executor_setup_s": setup_s,
        "executor_s": {"median": ex, "min": min(ex_times), "max": max(ex_times), "all": ex_times},
        "tf_function_s": {"median": tf_graph, "min": min(tf_graph_times), "max": max(tf_graph_times),
                          "all": tf_graph_times},
        "tf_eager_s": {"median": tf_eager, "min": min(tf_eager_times), "max": max(tf_eager_times),
                       "all": tf_eager_times},
        "cpu_s_median": {"executor": median(ex_cpu), "tf_function": median(tf_graph_cpu),
                         "tf_eager": median(tf_eager_cpu)},
        "ratio_vs_best_tf": ratio,
        "ratio_vs_tf_function": ex / tf_graph,
        "ratio_of_minimums": min(ex_times) / min(min(tf_graph_times), min(tf_eager_times)),
        "goal_ratio": GOAL,
        "goal_met": ratio <= GOAL,
        "max_abs_diff_vs_tf": max_abs,
        "max_abs_diff_over_max_abs_tf": rel,
        "numpy_matmul": mm,
        "profile": profile,
    }

    def ms(x):
        return f"{x * 1e3:.0f} ms"

    rows = [
        ["reference executor (numpy)", ms(ex), ms(min(ex_times)), ms(max(ex_times)), f"{ex / tf_best:.2f}×",
         ms(median(ex_cpu))],
        ["TensorFlow tf.function", ms(tf_graph), ms(min(tf_graph_times)), ms(max(tf_graph_times)),
         f"{tf_graph / tf_best:.2f}×", ms(median(tf_graph_cpu))],
        ["TensorFlow eager keras call", ms(tf_eager), ms(min(tf_eager_times)), ms(max(tf_eager_times)),
         f"{tf_eager / tf_best:.2f}×", ms(median(tf_eager_cpu))],
    ]
    cols = ["", f"median of {args.runs}", "min", "max", "vs fastest TF (medians)", "CPU time (median)"]
    print()
    print_table(f"{args.model} batch {spec.shape[0]}, {machine['cores']} cores", cols, rows)
    verdict = "met" if ratio <= GOAL else f"MISSED: {ratio:.2f}× (> {GOAL:g}×; executor {ex - GOAL * tf_best:.3f} s over)"
    print(f"executor / TF = {ratio:.2f}×  (goal ≤ {GOAL:g}×: {verdict});  max |executor − TF| = {max_abs:.3g} ({rel:.3g} of max |TF|)")
    print(f"fastest runs: executor {min(ex_times):.3f} s, TF {min(min(tf_graph_times), min(tf_eager_times)):.3f} s "
          f"({data['ratio_of_minimums']:.2f}×)")
    print(f"numpy float32 matmul: {mm['gflops']:.1f} GFLOP/s")
    prof_md = ""
    if profile:
        prow = [[r["type"], str(r["count"]), fmt_s(r["seconds"]) if r["seconds"] >= 0.01 else f"{r['seconds'] * 1e3:.1f} ms",
                 f"{100 * r['share']:.0f}%"] for r in profile]
        print_table("executor time by layer type (one profiled run)", ["layer type", "layers", "time", "share"], prow)
        prof_md = "\n".join(["", "Executor time by layer type (one extra profiled run, not in the medians):", "",
                             md_table(["layer type", "layers", "time", "share"], prow), ""])

    md = "\n".join([
        f"### Reference executor vs TensorFlow CPU — {machine['date'][:10]}"
        + (f" — OpenBLAS threads = {args.blas_threads}" if args.blas_threads else " — default threads"),
        "",
        f"Measured {machine['date']} on {machine['cores']} cores ({machine.get('cpu')}, "
        f"{', '.join(machine.get('cpu_simd', []))}), load average at start {machine.get('loadavg_at_start')}; "
        f"TensorFlow {tf.__version__}, numpy {np.__version__} ({mm['blas']}). Converter from "
        f"`{src_info['source']}` at `{(src_info.get('commit') or '?')[:10]}`"
        + (" with uncommitted converter changes" if src_info.get("dirty_converter_files") else " (clean)")
        + f"; {net.layer_count} layers.",
        "",
        f"Command: `{data['command']}` — {args.model}, input {tuple(spec.shape)}, {args.warmup} warm-up rounds, "
        f"median of {args.runs}. Threads: TensorFlow's defaults (intra/inter-op 0 = all cores); numpy's OpenBLAS: "
        + (f"OPENBLAS_NUM_THREADS={args.blas_threads}." if args.blas_threads else "its default (all cores)."),
        "",
        md_table(cols, rows),
        "",
        f"**executor / TensorFlow = {ratio:.2f}×** (medians; goal ≤ {GOAL:g}×: {verdict}). "
        f"Fastest run of each: {min(ex_times) / min(min(tf_graph_times), min(tf_eager_times)):.2f}×. "
        f"The runs are interleaved (TF graph, TF eager, executor in each round) so that all three see the same "
        f"load from other processes; load average at the end: {[round(v, 2) for v in os.getloadavg()]}. "
        f"Max |executor − TF| on the output: {max_abs:.3g} ({rel:.3g} of max |TF output|). Executor set-up (freeze+parse+construct+snapshot+"
        f"weight preparation): {setup_s:.2f} s, not in the run time.",
        "",
        f"Context: numpy float32 matmul {mm['n']}×{mm['n']}: {mm['gflops']:.1f} GFLOP/s median "
        f"({mm['best_gflops']:.1f} best).",
        prof_md,
    ])
    jpath, mpath = write_results(name, data, md)
    print(f"\nresults: {jpath}\n         {mpath}")
    if not args.no_docs:
        update_docs_section(name, md)
        print(f"docs/bench.md: {name} section updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
