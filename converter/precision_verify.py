"""Verifying a reduced-precision network, and the automatic fp32 fallback when it fails.

:func:`verify_precision` lowers the fp32 snapshot (:func:`converter.precision.lower`), verifies it
against TensorFlow at the precision's default tolerances, and measures two things the fp32 check
cannot: the error against the fp32 network itself (what the precision alone costs), and each
reduced-precision layer's **error growth** — the relative error of its output against the fp32
network's value minus the largest relative error of its inputs, on the first input set.  The layers
that add the most error head the list.

When the check fails, the fallback keeps layers in fp32, taking them in that order: first 1, 2, 4, …
until the network passes, then a bisection between the last failing and the first passing count (it
assumes that keeping more layers in fp32 never hurts; the set returned has itself passed).  Each trial
runs only the executor, against TensorFlow outputs computed once.  The set is recorded in the plan (reason ``fallback``), the
report and the engine manifest.  Polygraphy's ``debug precision`` makes users run this bisection by
hand; TensorRT has nothing like it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np

from .precision import DEFAULT_TOLERANCES, PrecisionPlan, PrecisionSettings, lower
from .snapshot import Snapshot

log = logging.getLogger(__name__)

__all__ = ["PrecisionResult", "verify_precision", "error_growth"]

#: the ranking lists at most this many layers in reports
TOP_LAYERS = 10


@dataclass
class PrecisionResult:
    settings: PrecisionSettings  #: with ``fallback`` set to what the search kept in fp32
    snapshot: Snapshot  #: the lowered network that was verified last
    plan: PrecisionPlan
    report: object  #: :class:`converter.verify.VerificationReport` of ``snapshot``
    ranking: list[dict] = field(default_factory=list)  #: ``{"layer", "type", "error", "growth"}``, largest first
    trials: list[dict] = field(default_factory=list)  #: ``{"kept": n, "passed": bool}`` per fallback trial

    @property
    def passed(self) -> bool:
        return bool(self.report.passed)


def _abs_error_and_scale(got, ref) -> tuple[float, float]:
    """max |got - ref| and max |ref| over the elements finite in ``ref`` (inf error where ``got`` is not finite)."""
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    if got.shape != ref.shape or ref.size == 0:
        return 0.0, 0.0
    finite = np.isfinite(ref)
    if not finite.any():
        return 0.0, 0.0
    if (~np.isfinite(got) & finite).any():
        return float("inf"), float(np.abs(ref[finite]).max())
    return float(np.abs(got - ref)[finite].max()), float(np.abs(ref[finite]).max())


def error_growth(fp32: Snapshot, lowered: Snapshot, plan: PrecisionPlan, feeds: dict,
                 fp32_values: dict | None = None) -> list[dict]:
    """Reduced-precision layers by how much error each adds (largest first), on ``feeds``.

    A layer's growth is the absolute error of its output minus the largest absolute error of its inputs,
    both divided by the largest magnitude among its inputs and output.  Dividing by the layer's own
    magnitudes rather than each tensor's makes tensors that are small by construction harmless: a mean
    of centred data, or the low half of a compensated sum, has a large error relative to itself but a
    small one relative to what it was computed from, and so does its effect downstream.
    """
    from .reference import ReferenceExecutor
    from .verify import _network_feeds

    ref = fp32_values if fp32_values is not None else \
        ReferenceExecutor(fp32).run(_network_feeds(fp32, feeds), keep_intermediates=True)
    got = ReferenceExecutor(lowered).run(_network_feeds(lowered, feeds), keep_intermediates=True)
    stats: dict[str, tuple[float, float]] = {}

    def stat(name):
        if name not in stats:
            a, b = got.get(name), ref.get(name)
            stats[name] = (0.0, 0.0) if a is None or b is None or np.asarray(b).dtype.kind != "f" else \
                _abs_error_and_scale(a, b)
        return stats[name]

    rows = []
    for rec in fp32.layers:
        if plan.layers.get(rec["name"], "fp32") == "fp32" or rec["type"] == "CONSTANT":
            continue
        outs = [stat(o["name"]) for o in rec["outputs"] if o["dtype"] == "FLOAT"]
        if not outs:
            continue
        ins = [stat(n) for n in rec["inputs"] if n is not None]
        scale = max([s for _, s in outs + ins], default=0.0) or 1.0
        out_err = max(e for e, _ in outs)
        in_err = max((e for e, _ in ins), default=0.0)
        growth = (out_err - in_err) / scale if np.isfinite(out_err) else float("inf")
        rows.append({"layer": rec["name"], "type": rec["type"], "error": out_err / scale, "growth": growth})
    rows.sort(key=lambda r: (-(r["growth"] if np.isfinite(r["growth"]) else 1e300), r["layer"]))
    return rows


def verify_precision(frozen, snapshot: Snapshot, settings: PrecisionSettings, *, fallback: bool = True,
                     seed: int = 0, samples: int = 1, rtol: float | None = None, atol: float | None = None,
                     tolerances: dict | None = None, inputs_npz: str | None = None, input_ranges: dict | None = None,
                     input_values: dict | None = None, shapes: list[dict] | None = None,
                     intermediates: bool = False) -> PrecisionResult:
    """Lower ``snapshot`` to ``settings.precision``, verify it, and (``fallback``) keep layers in fp32 until it passes.

    ``rtol``/``atol`` default to :data:`converter.precision.DEFAULT_TOLERANCES` for the precision.
    ``intermediates`` compares every TF tensor at those tolerances too (a reduced-precision network's
    intermediates are held to the precision's tolerances, not fp32's).
    """
    import importlib

    V = importlib.import_module("converter.verify")  # the package exports a function of that name

    default_rtol, default_atol = DEFAULT_TOLERANCES[settings.precision]
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    tolerances = tolerances or {}
    plans = V.plan_inputs(frozen, input_ranges, input_values, inputs_npz)
    input_sets = V.build_input_sets(frozen, snapshot, plans, seed, samples, inputs_npz, shapes)
    runner = V.TensorFlowRunner(frozen)
    try:
        def check(lowered: Snapshot):
            return V._verify(frozen, lowered, None, plans, input_sets, runner, rtol, atol, tolerances,
                             False, intermediates, None if inputs_npz is not None else seed)

        lowered, plan = lower(snapshot, settings)
        report = check(lowered)
        fp32_values = None
        ranking: list[dict] = []
        trials: list[dict] = []
        if settings.reduced:
            from .reference import ReferenceExecutor

            fp32_values = ReferenceExecutor(snapshot).run(V._network_feeds(snapshot, input_sets[0]),
                                                          keep_intermediates=True)
            ranking = error_growth(snapshot, lowered, plan, input_sets[0], fp32_values)
            # the fallback is for the outputs (intermediates, when asked for, are reported, not searched over)
            if fallback and not all(o.passed for o in report.outputs):
                refs = [V._run_tf(runner, feeds, list(frozen.outputs), frozen, plans) for feeds in input_sets]

                def passes(candidate: Snapshot) -> bool:
                    executor = ReferenceExecutor(candidate)
                    for feeds, ref in zip(input_sets, refs):
                        got = executor.run(V._network_feeds(candidate, feeds))
                        for name in frozen.outputs:
                            r, a = tolerances.get(name, (rtol, atol))
                            if not V.compare(name, got[name], ref[name], r, a).passed:
                                return False
                    return True

                settings, lowered, plan, trials = _search(snapshot, settings, ranking, passes)
                report = check(lowered)
            report.precision = _precision_section(fp32_values, lowered, plan, settings, ranking, input_sets, frozen)
        return PrecisionResult(settings, lowered, plan, report, ranking, trials)
    finally:
        runner.close()


def _search(snapshot, settings, ranking, passes):
    """The smallest prefix of ``ranking`` that, kept in fp32, passes (doubling, then bisection)."""
    names = [r["layer"] for r in ranking]
    trials: list[dict] = []
    cache: dict[int, tuple] = {}

    def attempt(k: int):
        if k not in cache:
            trial = dataclasses.replace(settings, fallback=tuple(sorted(names[:k])))
            lowered, plan = lower(snapshot, trial)
            ok = passes(lowered)
            trials.append({"kept": k, "passed": ok})
            log.info("fp32 fallback: %d layer(s) kept in fp32 → %s", k, "passes" if ok else "fails")
            cache[k] = (ok, trial, lowered, plan)
        return cache[k]

    low, k = 0, 1
    while k < len(names) and not attempt(k)[0]:
        low, k = k, min(2 * k, len(names))
    if not attempt(k)[0]:  # even with every reduced-precision layer in fp32 it fails: report that network
        _, trial, lowered, plan = attempt(k)
        return trial, lowered, plan, trials
    high = k
    while high - low > 1:
        mid = (low + high) // 2
        if attempt(mid)[0]:
            high = mid
        else:
            low = mid
    _, trial, lowered, plan = attempt(high)
    return trial, lowered, plan, trials


def _precision_section(fp32_values, lowered, plan, settings, ranking, input_sets, frozen) -> dict:
    from .reference import ReferenceExecutor
    from .verify import _finite, _network_feeds

    against = {}
    feeds = input_sets[0]
    ref = fp32_values
    got = ReferenceExecutor(lowered).run(_network_feeds(lowered, feeds))
    for name in frozen.outputs:
        a, b = np.asarray(got[name], np.float64), np.asarray(ref[name], np.float64)
        finite = np.isfinite(a) & np.isfinite(b)
        against[name] = float(np.abs(a - b)[finite].max()) if finite.any() else 0.0
    info = plan.to_json()
    info.pop("layers")
    info["against_fp32_network"] = against
    info["fallback"] = sorted(settings.fallback)
    info["top_layers"] = [{k: (_finite(v) if isinstance(v, float) else v) for k, v in r.items()}
                          for r in ranking[:TOP_LAYERS]]
    return info
