"""Reduced precision per model: network size, engine size, build time and the error each precision costs.

For each model (random weights, fixed seed, logits rather than softmax probabilities so the outputs are
not all below the tolerance) the fp32 network is converted once, then for fp32, fp16 and bf16:
lowered (:mod:`converter.precision`), verified against TensorFlow on the reference executor with the
precision's default tolerances and the automatic fp32 fallback (:mod:`converter.precision_verify`), and
built into an engine ahead of time (TensorRT-RTX, no GPU).  One child process per model.

    python bench/precision.py                      # all models, writes docs/precision.md
    python bench/precision.py --models ResNet50 --no-write

No peer column: the peer path (tf2onnx + TensorRT's ONNX parser) needs an fp16 ONNX model, and
TensorRT-RTX has no fp16 builder flag to ask for one; converting the ONNX model to fp16 is a separate
tool (onnxconverter-common) that is not part of the peer's documented path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {  # name -> (builder, input side or None)
    "ResNet50": ("keras.applications", 224),
    "ConvNeXtTiny": ("keras.applications", 224),
    "EfficientNetB0": ("keras.applications", 224),
    "MobileNetV2": ("keras.applications", 224),
    "BERT encoder": ("keras_hub", None),
}
PRECISIONS = ("fp32", "fp16", "bf16")
CACHE = ROOT / "bench" / ".models"
BERT = dict(vocabulary_size=1000, num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024,
            max_sequence_length=128)
BERT_SEQ = 128


def build_model(name: str) -> tuple[Path, dict | None]:
    """The saved model (and the --input shapes it needs), generated once into bench/.models."""
    import keras

    CACHE.mkdir(parents=True, exist_ok=True)
    if name == "BERT encoder":
        path = CACHE / "bert_encoder_precision"
        shapes = {n: (1, BERT_SEQ) for n in ("token_ids", "segment_ids", "padding_mask")}
        if not path.exists():
            import keras_hub

            keras.utils.set_random_seed(0)
            keras_hub.models.BertBackbone(**BERT).export(str(path), verbose=False)
        return path, shapes
    side = MODELS[name][1]
    path = CACHE / f"{name}_{side}_logits_bn.keras"
    if not path.exists():
        import numpy as np

        keras.utils.set_random_seed(0)
        model = getattr(keras.applications, name)(weights=None, input_shape=(side, side, 3),
                                                  classifier_activation=None)
        # batch-norm statistics as a trained model has them, not the initial 0/1 (with those, MobileNetV2's and
        # EfficientNetB0's activations fade block after block and the logits end below 1e-10)
        rng = np.random.default_rng(0)
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                shapes = [w.shape for w in layer.get_weights()]
                gamma, beta, mean, var = (rng.uniform(0.5, 1.5, shapes[0]), rng.normal(0, 0.1, shapes[1]),
                                          rng.normal(0, 0.1, shapes[2]), rng.uniform(0.5, 1.5, shapes[3]))
                layer.set_weights([gamma, beta, mean, var])
        model.save(str(path))
    return path, None


def measure_one(name: str) -> dict:
    from converter.construct import construct
    from converter.engine import optimize_network
    from converter.freeze import freeze
    from converter.graph import parse
    from converter.precision import DEFAULT_TOLERANCES, PrecisionSettings
    from converter.precision_verify import verify_precision
    from converter.verify import compare_intermediates, make_inputs

    path, shapes = build_model(name)
    frozen = freeze(path, inputs=shapes)
    start = time.perf_counter()
    snapshot = construct(parse(frozen)).snapshot
    row = {"model": name, "construct_s": round(time.perf_counter() - start, 2), "precisions": {}}
    ranges = {"token_ids": (0, BERT["vocabulary_size"]), "segment_ids": (0, 2)} if shapes else None
    values = {"padding_mask": 1} if shapes else None
    for precision in PRECISIONS:
        settings = PrecisionSettings(precision)
        start = time.perf_counter()
        result = verify_precision(frozen, snapshot, settings, input_ranges=ranges, input_values=values)
        verify_s = time.perf_counter() - start
        start = time.perf_counter()
        engine = optimize_network(result.snapshot)
        build_s = time.perf_counter() - start
        report = result.report
        info = report.precision or {}
        # every TF tensor with a TensorRT counterpart, at the precision's tolerances (atol scaled by each tensor's
        # range): the evidence where a random model's outputs are too small to check (EfficientNet's logits)
        feeds = make_inputs(frozen, 0, 1, input_ranges=ranges, input_values=values)[0]
        rtol, atol = DEFAULT_TOLERANCES[precision]
        inter = compare_intermediates(frozen, result.snapshot, feeds, rtol, atol)
        row["precisions"][precision] = {
            "passed": report.passed, "tolerances": list(DEFAULT_TOLERANCES[precision]),
            "layers": result.snapshot.layer_count, "casts": info.get("casts", 0),
            "fp32_layers": (info.get("counts") or {}).get("fp32"),
            "kept_by_policy": sum(1 for r in (info.get("kept_fp32") or {}).values() if r != "fallback"),
            "fallback": info.get("fallback", []),
            "max_abs_err": {o.name: o.max_abs_err for o in report.outputs},
            "max_rel_err": {o.name: o.max_rel_err for o in report.outputs},
            "max_abs_ref": None,
            "against_fp32": info.get("against_fp32_network"),
            "vacuous": report.vacuous_outputs,
            "intermediates": {"checked": len(inter), "failed": sum(not c.passed for _, _, c in inter),
                              "first_failed": next((n for n, _, c in inter if not c.passed), None)},
            "top_layers": (info.get("top_layers") or [])[:3],
            "verify_s": round(verify_s, 1), "build_s": round(build_s, 2), "engine_mb": round(len(engine) / 2**20, 1),
        }
    return row


QAT_NAME = "ResNet50 QAT (tfmot)"


def build_qat() -> Path:
    """tfmot ``quantize_model`` on tf_keras ResNet50 (logits, random weights), ranges from two training passes."""
    import numpy as np
    import tensorflow as tf

    path = CACHE / "resnet50_qat_savedmodel"
    if path.exists():
        return path
    _ = tf.keras.__name__  # tfmot sets TF_USE_LEGACY_KERAS for the process; resolve tf.keras first
    import tensorflow_model_optimization as tfmot
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    base = tf_keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classifier_activation=None)
    model = tfmot.quantization.keras.quantize_model(base)
    data = np.random.default_rng(0).standard_normal((4, 224, 224, 3)).astype(np.float32)
    for _ in range(2):
        model(data, training=True)
    model.save(str(path), save_format="tf")
    return path


def tf_outputs(path: Path, onednn: bool) -> dict:
    """TensorFlow's outputs on the verification inputs (seed 0), in a child with oneDNN on or off."""
    import tempfile

    import numpy as np

    code = ("import sys, numpy as np; sys.path.insert(0, %r)\n"
            "from converter.freeze import freeze\n"
            "from converter.verify import make_inputs, plan_inputs, TensorFlowRunner, _run_tf\n"
            "f = freeze(%r); p = plan_inputs(f)\n"
            "np.savez(sys.argv[1], **_run_tf(TensorFlowRunner(f), make_inputs(f, 0, 1)[0], list(f.outputs), f, p))"
            % (str(ROOT), str(path)))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.npz"
        subprocess.run([sys.executable, "-c", code, str(out)], check=True, capture_output=True,
                       env=dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1" if onednn else "0"))
        with np.load(out) as data:
            return {k: data[k] for k in data.files}


def measure_qat() -> dict:
    """The QAT model as fp32 (fake quant emulated) and int8 (Q/DQ layers), against TensorFlow's two CPU kernels."""
    import numpy as np

    from converter.construct import construct
    from converter.engine import optimize_network
    from converter.freeze import freeze
    from converter.graph import parse
    from converter.reference import ReferenceExecutor
    from converter.verify import make_inputs

    path = build_qat()
    frozen = freeze(path)
    feeds = make_inputs(frozen, 0, 1)[0]
    onednn, eigen = tf_outputs(path, True), tf_outputs(path, False)

    def err(a, b):
        return float(max(np.abs(np.asarray(a[k], np.float64) - b[k]).max() for k in frozen.outputs))

    row = {"model": QAT_NAME, "qat": True, "tf_self": err(onednn, eigen),
           "max_abs_ref": float(max(np.abs(v).max() for v in onednn.values())), "precisions": {}}
    for precision, mode in (("fp32", "emulate"), ("int8", "int8")):
        start = time.perf_counter()
        snapshot = construct(parse(frozen), quantization=mode).snapshot
        construct_s = time.perf_counter() - start
        got = ReferenceExecutor(snapshot).run({k: v for k, v in feeds.items()
                                               if k in {t["name"] for t in snapshot.inputs}})
        start = time.perf_counter()
        engine = optimize_network(snapshot)
        types = snapshot.layer_types()
        row["precisions"][precision] = {
            "layers": snapshot.layer_count, "qdq": types.get("QUANTIZE", 0) + types.get("DEQUANTIZE", 0),
            "vs_onednn": err(got, onednn), "vs_eigen": err(got, eigen), "construct_s": round(construct_s, 2),
            "build_s": round(time.perf_counter() - start, 2), "engine_mb": round(len(engine) / 2**20, 1)}
    return row


def _fmt(x) -> str:
    if x is None:
        return "–"
    return f"{x:.2g}" if isinstance(x, float) else str(x)


def render(rows: list[dict]) -> str:
    import datetime
    import platform

    from converter.precision import DEFAULT_TOLERANCES, LONG_REDUCTION

    lines = [
        "# Reduced precision",
        "",
        f"Generated by `python bench/precision.py` on {datetime.date.today()} ({platform.machine()}, "
        f"{os.cpu_count()} cores, no GPU). Random weights (seed 0); CNNs at 224x224 with "
        "`classifier_activation=None` (logits: softmax probabilities of a random model are all ≈ 1/1000, "
        f"below any tolerance) and random batch-norm statistics (γ, σ² uniform in [0.5, 1.5], β, μ normal with "
        f"σ 0.1: with the initial 0/1 statistics MobileNetV2's and EfficientNetB0's logits fade below 1e-10); the BERT encoder is keras-hub `BertBackbone` ({BERT['num_layers']} layers, "
        f"hidden {BERT['hidden_dim']}, sequence {BERT_SEQ}) exported with `model.export()`.",
        "",
        "Each precision is verified against TensorFlow fp32 on the reference executor, which emulates the "
        "precision of every layer (inputs and weights in the layer's type, float32 arithmetic, outputs rounded "
        "to nearest even), with the default tolerances "
        + ", ".join(f"{p} rtol {r:g} atol {a:g}" for p, (r, a) in DEFAULT_TOLERANCES.items() if p != "int8")
        + ". The engine is built ahead of time by TensorRT-RTX (no GPU here, so no kernel timings).",
        "",
        "| model | precision | result | max abs err vs TF | vs fp32 network | intermediates agree | layers (casts) | "
        "kept fp32: policy / fallback | engine MB | build s | verify s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.get("qat"):
            continue
        if "error" in row:
            lines.append(f"| {row['model']} | – | FAILED: {row['error']} | | | | | | | |")
            continue
        for p, r in row["precisions"].items():
            err = max((v for v in r["max_abs_err"].values() if v is not None), default=None)
            vs32 = max((v for v in (r["against_fp32"] or {}).values() if v is not None), default=None)
            result = "PASSED" if r["passed"] else "FAILED"
            if r["vacuous"]:
                result += " (vacuous)"
            kept = "–" if p == "fp32" else f"{r['kept_by_policy']} / {len(r['fallback'])}"
            im = r.get("intermediates") or {}
            inter = f"{im['checked'] - im['failed']}/{im['checked']}" if im else "–"
            lines.append(f"| {row['model']} | {p} | {result} | {_fmt(err)} | {_fmt(vs32) if p != 'fp32' else '–'} | "
                         f"{inter} | "
                         f"{r['layers']} ({r['casts']}) | {kept} | {r['engine_mb']} | {r['build_s']} | {r['verify_s']} |")
    lines += [
        "",
        "**The policy** (docs/converter.md, \"Reduced precision\") keeps in fp32: softmax, normalization layers, "
        f"SUM/AVG/PROD reductions over more than {LONG_REDUCTION} elements, exp/log/pow, the final logits (from "
        "the last matrix product or convolution to each output), float→integer/bool results, layers whose output "
        "type is a parameter, and (fp16) layers reading values beyond 65504. *Fallback* counts the layers the "
        "automatic search kept in fp32 beyond that, to pass.",
        "",
        "**Largest error growth per model and precision** (relative to the layer's own magnitudes):",
        "",
    ]
    for row in rows:
        for p, r in row.get("precisions", {}).items():
            if r.get("top_layers"):
                top = "; ".join(f"`{t['layer'].split('/')[-2] if '/' in t['layer'] else t['layer']}` {t['type']} "
                                f"+{_fmt(t['growth'])}" for t in r["top_layers"])
                lines.append(f"- {row['model']} {p}: {top}")
    for row in rows:
        if not row.get("qat"):
            continue
        lines += [
            "",
            f"## int8 from a quantization-aware model: {row['model']}",
            "",
            "tensorflow-model-optimization `quantize_model` on tf_keras ResNet50 (logits, random weights, ranges from "
            "two training-mode passes), saved as a SavedModel. *fp32* converts its fake-quant ops to TensorFlow's "
            "float formula (`quantization=\"emulate\"`), *int8* to TensorRT int8 Q/DQ layers with int8 weights.",
            "",
            "| precision | layers | Q/DQ layers | engine MB | build s | max abs err vs TF (oneDNN) | vs TF (Eigen) |",
            "|---|---|---|---|---|---|---|",
        ]
        for p, r in row["precisions"].items():
            lines.append(f"| {p} | {r['layers']} | {r['qdq']} | {r['engine_mb']} | {r['build_s']} | "
                         f"{_fmt(r['vs_onednn'])} | {_fmt(r['vs_eigen'])} |")
        lines += [
            "",
            f"TensorFlow's own oneDNN and Eigen CPU kernels disagree by {_fmt(row['tf_self'])} on these outputs "
            f"(max |output| {_fmt(row['max_abs_ref'])}): dozens of quantizers in a row turn last-bit differences of a "
            "convolution's summation order into a different level now and then (each flip is one step, see "
            "docs/converter.md), and the flips add up. No implementation can match such a network to fp32 "
            "tolerances: the converted networks differ from TensorFlow by one to two times what TensorFlow's two kernels "
            "differ by, which is why verification of such a model needs tolerances chosen for it (per-output "
            "`tolerances` in a config). The small tfmot QAT CNN of tests/converter/test_qat.py matches TensorFlow bit for bit in both "
            "modes.",
        ]
    lines += [
        "",
        "**What the ranking does not say.** The growth of a layer is measured against its own magnitudes, so it "
        "ranks where rounding enters, not how much of it reaches the outputs. Measured on the BERT encoder: keeping "
        "every `moments` chain (the squared differences of its written-out layer norms, which head the fp16 and "
        "bf16 lists) in fp32 as well left the `sequence_output` error at 0.011 (from 0.010), so the policy does not "
        "do it; the fallback uses the ranking only as an order to try layers in, and every set it returns has "
        "passed verification.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="comma-separated subset of " + ", ".join(MODELS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--render", action="store_true", help="only re-render docs/precision.md")
    args = parser.parse_args(argv)
    results = ROOT / "bench" / "results" / "precision.json"
    if args.one:
        sys.stdout.write(json.dumps(measure_qat() if args.one == QAT_NAME else measure_one(args.one)) + "\n")
        return 0
    if args.render:
        (ROOT / "docs" / "precision.md").write_text(render(json.loads(results.read_text())))
        return 0
    names = args.models.split(",") if args.models else [*MODELS, QAT_NAME]
    rows = []
    for name in names:
        proc = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True, cwd=ROOT)
        try:
            row = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            row = {"model": name, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
        rows.append(row)
        sys.stdout.write(json.dumps(row) + "\n")
        sys.stdout.flush()
    if not args.no_write:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(rows, indent=2) + "\n")
        (ROOT / "docs" / "precision.md").write_text(render(rows))
    return 0 if all("error" not in r and (r.get("qat") or all(p["passed"] for p in r["precisions"].values()))
                    for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
