"""Step 5: compare the converted network with TensorFlow on the same inputs.

Without a GPU the network snapshot runs on the reference executor (numpy,
TensorRT's documented semantics); with a GPU and TensorRT the engine itself
runs.  The report follows Polygraphy's comparator: per output, the maximum
absolute and relative errors, the fraction of elements out of tolerance,
PASSED/FAILED, then a summary.  An element passes when
``|out - ref| <= atol + rtol * |ref|``; any NaN fails.  On failure,
:func:`bisect` names the first TF node whose value diverges.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


from .freeze import FrozenGraph

log = logging.getLogger(__name__)

DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-5


from .errors import VerificationError  # noqa: E402 - re-exported


@dataclass
class OutputComparison:
    name: str
    max_abs_err: float
    max_rel_err: float
    out_of_tolerance: float
    passed: bool
    rtol: float
    atol: float
    shape: tuple = ()
    message: str = ""

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "max_abs_err": _finite(self.max_abs_err),
            "max_rel_err": _finite(self.max_rel_err),
            "out_of_tolerance": _finite(self.out_of_tolerance),
            "passed": self.passed,
            "rtol": self.rtol,
            "atol": self.atol,
        }


def _finite(x: float):
    """Strict JSON has no NaN/Infinity: non-finite errors become null."""
    return float(x) if math.isfinite(x) else None


@dataclass
class VerificationReport:
    checked: str  #: "reference-executor" or "engine"
    outputs: list[OutputComparison] = field(default_factory=list)
    samples: int = 1
    first_divergence: dict | None = None
    intermediates: dict | None = None

    @property
    def passed(self) -> bool:
        ok = bool(self.outputs) and all(o.passed for o in self.outputs)
        return ok and not (self.intermediates and self.intermediates["failed"])

    def to_dict(self) -> dict:
        d = {"checked": self.checked, "passed": self.passed, "samples": self.samples,
             "outputs": [o.to_dict() for o in self.outputs]}
        if self.first_divergence is not None:
            d["first_divergence"] = self.first_divergence
        if self.intermediates is not None:
            d["intermediates"] = self.intermediates
        return d

    def render(self) -> str:
        lines = [f"Comparing {self.checked} with TensorFlow ({self.samples} sample(s))"]
        for o in self.outputs:
            status = "PASSED" if o.passed else "FAILED"
            lines.append(
                f"  {status} | {o.name} {tuple(o.shape)}: max_abs_err={o.max_abs_err:.3g} "
                f"max_rel_err={o.max_rel_err:.3g} out_of_tol={o.out_of_tolerance:.3%} "
                f"(rtol={o.rtol:g}, atol={o.atol:g}){' ' + o.message if o.message else ''}")
        if self.intermediates is not None:
            im = self.intermediates
            status = "PASSED" if not im["failed"] else "FAILED"
            lines.append(f"  {status} | intermediates: {im['checked'] - im['failed']}/{im['checked']} TF tensors agree "
                         "(atol scaled by each tensor's range)")
        n_pass = sum(o.passed for o in self.outputs)
        lines.append(f"  {'PASSED' if self.passed else 'FAILED'} | {n_pass}/{len(self.outputs)} outputs passed")
        if self.first_divergence:
            fd = self.first_divergence
            lines.append(f"  first divergence at TF node '{fd['node']}' ({fd['op']}): max_abs_err={fd['max_abs_err']:.3g}")
        return "\n".join(lines)


def compare(name: str, out: np.ndarray, ref: np.ndarray, rtol: float, atol: float) -> OutputComparison:
    """Compare one output array with its reference."""
    out = np.asarray(out)
    ref = np.asarray(ref)
    if out.shape != ref.shape:
        return OutputComparison(name, math.inf, math.inf, 1.0, False, rtol, atol, ref.shape,
                                f"shape {out.shape} != reference {ref.shape}")
    if out.dtype == np.bool_ or ref.dtype == np.bool_:
        diff = (out != ref).astype(np.float64)
        frac = float(diff.mean()) if diff.size else 0.0
        return OutputComparison(name, float(diff.max(initial=0)), 0.0, frac, frac == 0.0, rtol, atol, ref.shape)
    o = out.astype(np.float64)
    r = ref.astype(np.float64)
    diff = np.abs(o - r)
    nan = np.isnan(o) | np.isnan(r)
    both_inf_same = np.isinf(o) & np.isinf(r) & (np.sign(o) == np.sign(r))
    diff = np.where(both_inf_same, 0.0, diff)
    bad = (diff > atol + rtol * np.abs(r)) | nan
    bad &= ~both_inf_same | nan
    max_abs = float(np.nanmax(diff)) if diff.size and not np.all(np.isnan(diff)) else 0.0
    if np.any(nan):
        max_abs = math.nan
    significant = np.abs(r) > atol
    rel = diff[significant] / np.abs(r[significant]) if np.any(significant) else np.zeros(0)
    max_rel = float(np.nanmax(rel)) if rel.size else 0.0
    frac = float(bad.mean()) if bad.size else 0.0
    return OutputComparison(name, max_abs, max_rel, frac, not bool(bad.any()), rtol, atol, ref.shape)


# ------------------------------------------------------------------ inputs

def make_inputs(frozen: FrozenGraph, seed: int = 0, samples: int = 1, npz: str | None = None) -> list[dict]:
    """Seeded random inputs (float: standard normal; int: 0..9; bool: coin flips) or arrays from ``npz``."""
    if npz is not None:
        path = Path(npz)
        if not path.is_file():
            raise VerificationError(f"inputs file not found: {path}")
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        missing = [s.name for s in frozen.inputs if s.name not in arrays]
        if missing:
            raise VerificationError(f"{path} lacks arrays for inputs {missing} (it has {sorted(arrays)})")
        feeds = {}
        for spec in frozen.inputs:
            arr = arrays[spec.name]
            if arr.ndim == len(spec.shape) + 1:
                continue
            if tuple(arr.shape) != tuple(spec.shape):
                raise VerificationError(f"array '{spec.name}' in {path} has shape {arr.shape}, "
                                        f"the input needs {tuple(spec.shape)}")
            feeds[spec.name] = arr.astype(spec.dtype)
        if len(feeds) == len(frozen.inputs):
            return [feeds]
        # arrays with a leading sample axis
        n = min(arrays[s.name].shape[0] for s in frozen.inputs)
        return [{s.name: arrays[s.name][i].astype(s.dtype) for s in frozen.inputs} for i in range(n)]
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(samples):
        feeds = {}
        for spec in frozen.inputs:
            dtype = np.dtype(spec.dtype)
            if dtype.kind == "f":
                feeds[spec.name] = rng.standard_normal(spec.shape).astype(dtype)
            elif dtype.kind in "iu":
                feeds[spec.name] = rng.integers(0, 10, spec.shape).astype(dtype)
            elif dtype.kind == "b":
                feeds[spec.name] = rng.random(spec.shape) < 0.5
            else:
                raise VerificationError(f"cannot generate inputs of dtype {dtype} for '{spec.name}'",
                                        hint="pass real inputs with --inputs-npz")
        result.append(feeds)
    return result


# ------------------------------------------------------------------ runners

class TensorFlowRunner:
    """Runs the frozen graph in TensorFlow (CPU), fetching outputs or any intermediate tensor."""

    def __init__(self, frozen: FrozenGraph):
        import tensorflow as tf

        self._tf = tf
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.graph_util.import_graph_def(frozen.graph_def, name="")
        self.session = tf.compat.v1.Session(graph=self.graph)
        self.frozen = frozen
        # big constants are placeholders in the frozen GraphDef: feed their values
        self._constant_feeds = {self.graph.get_tensor_by_name(k + ":0"): v for k, v in frozen.constants.items()}

    def run(self, feeds: dict, fetches: list[str]) -> dict[str, np.ndarray]:
        names = [f if ":" in f else f + ":0" for f in fetches]
        tensors = [self.graph.get_tensor_by_name(n) for n in names]
        feed = dict(self._constant_feeds)
        feed.update({self.graph.get_tensor_by_name(k + ":0"): v for k, v in feeds.items()})
        values = self.session.run(tensors, feed_dict=feed)
        return dict(zip(fetches, values))

    def close(self):
        self.session.close()


def run_reference(snapshot, feeds: dict, outputs: list[str] | None = None, keep_intermediates: bool = False):
    from .reference import ReferenceExecutor

    return ReferenceExecutor(snapshot).run(feeds, outputs=outputs, keep_intermediates=keep_intermediates)


def verify(frozen: FrozenGraph, snapshot=None, engine: bytes | None = None, inputs_npz: str | None = None,
           seed: int = 0, samples: int = 1, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
           tolerances: dict[str, tuple[float, float]] | None = None, bisect_on_failure: bool = True,
           intermediates: bool = False) -> VerificationReport:
    """Compare TensorFlow with the converted model.

    Runs ``engine`` on the GPU when given (needs a GPU + TensorRT), else the
    ``snapshot`` on the reference executor.  ``tolerances`` maps output names
    to ``(rtol, atol)`` overrides.  ``intermediates=True`` also compares every
    TF tensor that has a TensorRT counterpart (first input set), which catches
    errors that a saturated output (e.g. a softmax over tiny logits) hides.
    """
    if snapshot is None and engine is None:
        raise VerificationError("nothing to verify: give a snapshot or an engine")
    tolerances = tolerances or {}
    input_sets = make_inputs(frozen, seed=seed, samples=samples, npz=inputs_npz)
    tf_runner = TensorFlowRunner(frozen)
    checked = "engine" if engine is not None else "reference-executor"
    if engine is not None:
        from .runtime import inference_engine

        def run_converted(feeds):
            return inference_engine(engine, feeds)
    else:
        from .reference import ReferenceExecutor

        executor = ReferenceExecutor(snapshot)

        def run_converted(feeds):
            return executor.run(feeds)

    worst: dict[str, OutputComparison] = {}
    for feeds in input_sets:
        ref = tf_runner.run(feeds, list(frozen.outputs))
        got = run_converted(feeds)
        for name in frozen.outputs:
            r_tol, a_tol = tolerances.get(name, (rtol, atol))
            cmp = compare(name, got[name], ref[name], r_tol, a_tol)
            prev = worst.get(name)
            if prev is None or _worse(cmp, prev):
                worst[name] = cmp
    report = VerificationReport(checked, [worst[n] for n in frozen.outputs], len(input_sets))
    if intermediates and snapshot is not None:
        results = compare_intermediates(frozen, snapshot, input_sets[0], rtol, atol, tf_runner)
        failed = [(node, op, c) for node, op, c in results if not c.passed]
        report.intermediates = {"checked": len(results), "failed": len(failed),
                                "failures": [{"node": n, "op": op, "max_abs_err": _finite(c.max_abs_err)}
                                             for n, op, c in failed[:10]]}
        if failed and report.first_divergence is None:
            n, op, c = failed[0]
            report.first_divergence = {"node": n, "op": op, "tensor": c.name, "max_abs_err": _finite(c.max_abs_err)}
    if not report.passed and bisect_on_failure and snapshot is not None:
        try:
            report.first_divergence = bisect(frozen, snapshot, input_sets[0], rtol, atol, tf_runner)
        except Exception as exc:  # noqa: BLE001 - bisecting is a diagnosis aid; never hide the report
            log.warning("bisect failed: %s", exc)
    tf_runner.close()
    log.info("%s", report.render())
    return report


def _worse(a: OutputComparison, b: OutputComparison) -> bool:
    if a.passed != b.passed:
        return not a.passed
    return (a.max_abs_err if not math.isnan(a.max_abs_err) else math.inf) > (
        b.max_abs_err if not math.isnan(b.max_abs_err) else math.inf)


def compare_intermediates(frozen: FrozenGraph, snapshot, feeds: dict, rtol: float, atol: float,
                          tf_runner=None) -> list[tuple[str, str, OutputComparison]]:
    """Compare every TF tensor that has a TensorRT counterpart, in topological order.

    Like Polygraphy's ``--mark all``: the snapshot's ``tensor_map`` says which
    TensorRT tensor (and in which axis order) holds each TF tensor's value.
    Each tensor is compared with ``rtol`` and ``atol × max(1, max|ref|)``:
    an intermediate value near zero is usually a cancelled sum of large terms,
    whose fp32 rounding error scales with the terms (measured on
    EfficientNetV2B1: 2e-5 absolute on tensors ranging to ±8).  Network
    outputs are always compared with the plain ``atol``.
    Returns ``(node, op, comparison)`` triples.
    """
    from .freeze import _topo_order
    from .reference import ReferenceExecutor

    tensor_map = snapshot.meta.get("tensor_map", {})
    if not tensor_map:
        return []
    runner = tf_runner or TensorFlowRunner(frozen)
    got = ReferenceExecutor(snapshot).run(feeds, keep_intermediates=True)
    order = _topo_order(frozen.graph_def)
    ops = {n.name: n.op for n in frozen.graph_def.node}
    position = {name: i for i, name in enumerate(order)}
    candidates = [ref for ref in tensor_map if ref.split(":")[0] in ops and tensor_map[ref][0] in got]
    candidates.sort(key=lambda r: (position.get(r.split(":")[0], 0), r))
    ref_values = runner.run(feeds, candidates)
    results = []
    for ref in candidates:
        trt_name, perm = tensor_map[ref]
        value = got[trt_name]
        if len(perm) > 1:
            value = np.transpose(value, np.argsort(perm))
        node = ref.split(":")[0]
        expected = np.asarray(ref_values[ref])
        # Inside the network, fp32 rounding of a sum scales with the magnitudes summed, not with the
        # (possibly cancelled) result: atol is taken relative to the tensor's range, at least atol itself.
        scale = float(np.max(np.abs(expected))) if expected.size and expected.dtype.kind == "f" else 1.0
        tensor_atol = atol * max(1.0, scale if np.isfinite(scale) else 1.0)
        results.append((node, ops.get(node, "?"), compare(ref, value, expected, rtol, tensor_atol)))
    return results


def bisect(frozen: FrozenGraph, snapshot, feeds: dict, rtol: float, atol: float, tf_runner=None) -> dict | None:
    """Name the first TF node (in topological order) whose value in the network diverges from TensorFlow."""
    for node, op, cmp in compare_intermediates(frozen, snapshot, feeds, rtol, atol, tf_runner):
        if not cmp.passed:
            return {"node": node, "op": op, "tensor": cmp.name, "max_abs_err": _finite(cmp.max_abs_err)}
    return None
