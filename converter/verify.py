"""Step 5: compare the converted network with TensorFlow on the same inputs.

Without a GPU the network snapshot runs on the reference executor (numpy,
TensorRT's documented semantics); with a GPU and TensorRT the engine itself
runs.  The report follows Polygraphy's comparator: per output, the maximum
absolute and relative errors, the fraction of elements out of tolerance,
PASSED/FAILED, then a summary.  An element passes when
``|out - ref| <= atol + rtol * |ref|``; non-finite values are compared by
position (NaN where TensorFlow has NaN, the same-signed inf where it has inf)
and the errors are taken over the elements finite on both sides.  On failure,
:func:`bisect` names the first TF node whose value diverges.

Inputs are either real arrays (``.npz``) or seeded random data that fits the
model: :func:`derive_input_domains` reads from the graph which integers an
input may hold (the rows of the embedding table it indexes, a one-hot depth…)
and which inputs are masks; ``input_ranges``/``input_values`` override it.
TensorFlow computes the reference on a copy of the frozen graph whose
channels-first nodes are rewritten to channels-last between transposes
(:func:`nhwc_reference_graph`), because TensorFlow's own CPU kernels are
NHWC-only.  The report says what ran: the two executors, the samples, the
tolerances and how every input was made.
"""

from __future__ import annotations

import dataclasses

import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import VerificationError, strip_ansi  # noqa: F401 - VerificationError is re-exported
from .freeze import FrozenGraph, is_external_const

log = logging.getLogger(__name__)

DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-5
#: integers fed to an integer input the graph says nothing about (small and non-negative: valid for most uses)
DEFAULT_INT_RANGE = (0, 10)
VACUOUS_NOTE = ("all |reference| ≤ atol: this comparison cannot fail for an output near zero; "
                "use --check-intermediates or real inputs")
INPUT_OPTIONS_HINT = ("give the values the model accepts with --input-range NAME:LOW:HIGH (HIGH exclusive) or "
                      "--input-value NAME:VALUE, or real inputs with --inputs-npz (Python: verify(..., "
                      "input_ranges={NAME: (LOW, HIGH)}, input_values={NAME: VALUE}, inputs_npz=PATH); in a "
                      "build config: verification.input_ranges: {NAME: [LOW, HIGH]} or verification.input_values: "
                      "{NAME: VALUE})")


def _fmt(x, spec: str = ".3g") -> str:
    """A number for the report; ``None`` (a non-finite value in strict JSON) as ``n/a``."""
    if x is None:
        return "n/a"
    try:
        return format(float(x), spec)
    except (TypeError, ValueError):
        return str(x)


def _finite(x: float):
    """Strict JSON has no NaN/Infinity: non-finite errors become null."""
    return float(x) if x is not None and math.isfinite(x) else None


# ------------------------------------------------------------------ comparison

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
    #: every |reference| ≤ atol: an output of zeros would pass too, so passing proves little
    vacuous: bool = False
    #: non-finite reference elements matched by the output at the same positions (NaN/NaN, +inf/+inf, -inf/-inf)
    nonfinite_matched: int = 0
    #: elements where exactly one side is non-finite, or the two are different non-finite values
    nonfinite_mismatched: int = 0

    @property
    def note(self) -> str:
        return VACUOUS_NOTE if self.vacuous else ""

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "max_abs_err": _finite(self.max_abs_err),
            "max_rel_err": _finite(self.max_rel_err),
            "out_of_tolerance": _finite(self.out_of_tolerance),
            "passed": self.passed,
            "rtol": self.rtol,
            "atol": self.atol,
            "shape": [int(d) for d in self.shape],
            "vacuous": self.vacuous,
            "nonfinite_matched": int(self.nonfinite_matched),
            "nonfinite_mismatched": int(self.nonfinite_mismatched),
        }
        if self.message:
            d["message"] = self.message
        if self.vacuous:
            d["note"] = VACUOUS_NOTE
        return d


def compare(name: str, out: np.ndarray, ref: np.ndarray, rtol: float, atol: float) -> OutputComparison:
    """Compare one output array with its reference.

    Non-finite elements are compared by position: a NaN where TensorFlow has a
    NaN, or the same-signed inf, matches (a model that divides by a zero
    variance gives NaN on both sides; counting those as errors would fail every
    such model).  Any other non-finite element fails, and makes ``max_abs_err``
    NaN or inf.  The errors are otherwise taken over the elements finite on
    both sides; ``max_rel_err`` only over those with ``|ref| > atol``.
    """
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
    finite = np.isfinite(o) & np.isfinite(r)
    o_nan, r_nan = np.isnan(o), np.isnan(r)
    same_nonfinite = (o_nan & r_nan) | (np.isinf(o) & np.isinf(r) & (np.sign(o) == np.sign(r)))
    mismatched = ~finite & ~same_nonfinite
    diff = np.zeros(o.shape)
    np.subtract(o, r, out=diff, where=finite)
    diff = np.abs(diff)
    limit = np.where(finite, atol + rtol * np.abs(np.where(finite, r, 0.0)), 0.0)
    bad = mismatched | (finite & (diff > limit))
    max_abs = float(diff[finite].max()) if np.any(finite) else 0.0
    if np.any(mismatched):
        max_abs = math.nan if np.any((o_nan | r_nan) & mismatched) else math.inf
    significant = finite & (np.abs(np.where(finite, r, 0.0)) > atol)
    rel = diff[significant] / np.abs(r[significant])
    max_rel = float(rel.max()) if rel.size else 0.0
    frac = float(bad.mean()) if bad.size else 0.0
    vacuous = ref.dtype.kind == "f" and (r.size == 0 or bool(np.all(np.isfinite(r)) and np.max(np.abs(r)) <= atol))
    return OutputComparison(name, max_abs, max_rel, frac, not bool(bad.any()), rtol, atol, ref.shape,
                            vacuous=vacuous, nonfinite_matched=int((~finite & same_nonfinite).sum()),
                            nonfinite_mismatched=int(mismatched.sum()))


# ------------------------------------------------------------------ report

@dataclass
class VerificationReport:
    checked: str  #: "reference-executor" or "engine": what ran the converted model
    outputs: list[OutputComparison] = field(default_factory=list)
    samples: int = 1
    first_divergence: dict | None = None
    intermediates: dict | None = None
    #: how each input was made (:meth:`InputPlan.to_dict`)
    inputs: list[dict] = field(default_factory=list)
    #: what computed the reference: TensorFlow's version and device, NCHW nodes run as NHWC
    reference: dict = field(default_factory=dict)
    seed: int | None = None
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    #: dynamic networks: one row per input shape checked (``{"inputs": {name: shape}, "passed", "outputs"}``)
    shapes: list[dict] = field(default_factory=list)
    #: reduced precision (:mod:`converter.precision_verify`): the precision, the error against the fp32
    #: network, the layers that contribute most, and the layers kept in fp32 (by the policy and the fallback)
    precision: dict | None = None

    @property
    def passed(self) -> bool:
        ok = bool(self.outputs) and all(o.passed for o in self.outputs)
        return ok and not (self.intermediates and self.intermediates["failed"])

    @property
    def vacuous_outputs(self) -> list[str]:
        return [o.name for o in self.outputs if o.vacuous]

    def to_dict(self) -> dict:
        d = {"checked": self.checked, "passed": self.passed, "samples": self.samples,
             "outputs": [o.to_dict() for o in self.outputs],
             "seed": self.seed, "rtol": self.rtol, "atol": self.atol,
             "reference": dict(self.reference), "inputs": [dict(i) for i in self.inputs],
             "vacuous_outputs": self.vacuous_outputs}
        if self.shapes:
            d["shapes"] = [dict(row) for row in self.shapes]
        if self.first_divergence is not None:
            d["first_divergence"] = self.first_divergence
        if self.intermediates is not None:
            d["intermediates"] = self.intermediates
        if self.precision is not None:
            d["precision"] = self.precision
        return d

    def summary(self) -> dict:
        """The compact form ``tf2trt convert --json`` prints (a subset of :meth:`to_dict` plus the per-output
        tolerances and vacuity)."""
        full = self.to_dict()
        keys = ("name", "max_abs_err", "max_rel_err", "passed", "rtol", "atol", "vacuous", "note", "nonfinite_matched",
                "nonfinite_mismatched")
        out = {"checked": self.checked, "passed": self.passed, "samples": self.samples, "seed": self.seed,
               "reference": full["reference"], "inputs": full["inputs"],
               "outputs": [{k: o[k] for k in keys if k in o} for o in full["outputs"]]}
        if self.intermediates is not None:
            out["intermediates"] = {k: self.intermediates[k] for k in ("checked", "failed")}
        if self.first_divergence is not None:
            out["first_divergence"] = self.first_divergence
        if self.shapes:
            out["shapes"] = [dict(row) for row in self.shapes]
        if self.precision is not None:
            out["precision"] = {k: v for k, v in self.precision.items() if k != "layers"}
        return out

    def render(self) -> str:
        ref = self.reference
        what = f"TensorFlow {ref['version']} on {ref.get('device', 'CPU')}" if ref.get("version") else "TensorFlow"
        if ref.get("nhwc_rewrites"):
            what += f", {ref['nhwc_rewrites']} NCHW node(s) run as NHWC"
        seed = f", seed {self.seed}" if self.seed is not None else ""
        lines = [f"Comparing {self.checked} with {what} ({self.samples} sample(s){seed})"]
        for inp in self.inputs:
            why = f" ({inp['reason']})" if inp.get("reason") and inp.get("source") in ("graph", "default") else ""
            lines.append(f"  input {inp['name']} {inp['dtype']} {tuple(inp['shape'])}: {inp['description']}{why}")
        for o in self.outputs:
            status = ("PASSED (vacuous)" if o.vacuous else "PASSED") if o.passed else "FAILED"
            extra = []
            if o.nonfinite_matched:
                extra.append(f"{o.nonfinite_matched} NaN/inf element(s) at TensorFlow's positions")
            if o.nonfinite_mismatched:
                extra.append(f"{o.nonfinite_mismatched} NaN/inf element(s) where TensorFlow differs")
            if o.message:
                extra.append(o.message)
            if o.vacuous:
                extra.append(VACUOUS_NOTE)
            lines.append(
                f"  {status} | {o.name} {tuple(o.shape)}: max_abs_err={_fmt(o.max_abs_err)} "
                f"max_rel_err={_fmt(o.max_rel_err)} out_of_tol={_fmt(o.out_of_tolerance, '.3%')} "
                f"(rtol={o.rtol:g}, atol={o.atol:g})" + "".join(f"; {e}" for e in extra))
        for row in self.shapes:
            shapes = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in row["inputs"].items())
            worst = max((o["max_abs_err"] for o in row["outputs"].values() if o["max_abs_err"] is not None),
                        default=None)
            lines.append(f"  {'PASSED' if row['passed'] else 'FAILED'} | at {shapes}: "
                         f"max_abs_err={_fmt(worst)} over {len(row['outputs'])} output(s)")
        if self.intermediates is not None:
            im = self.intermediates
            status = "PASSED" if not im["failed"] else "FAILED"
            lines.append(f"  {status} | intermediates: {im['checked'] - im['failed']}/{im['checked']} TF tensors agree "
                         "(atol scaled by each tensor's range)")
        n_pass = sum(o.passed for o in self.outputs)
        lines.append(f"  {'PASSED' if self.passed else 'FAILED'} | {n_pass}/{len(self.outputs)} outputs passed"
                     + (f" ({len(self.vacuous_outputs)} vacuously)" if self.vacuous_outputs else ""))
        if self.precision is not None:
            lines.extend(render_precision(self.precision))
        if self.first_divergence:
            fd = self.first_divergence
            lines.append(f"  first divergence at TF node '{fd['node']}' ({fd['op']}): "
                         f"max_abs_err={_fmt(fd.get('max_abs_err'))}")
        return "\n".join(lines)


def render_precision(info: dict) -> list[str]:
    """The report lines of a reduced-precision check (see :class:`VerificationReport.precision`)."""
    counts = info.get("counts") or {}
    p = info.get("precision")
    lines = [f"  precision {p}: {counts.get(p, 0)} layers in {p}, {counts.get('fp32', 0)} in fp32 "
             f"({len(info.get('kept_fp32') or {})} kept by the policy, the config or the fallback)"]
    for name, err in sorted((info.get("against_fp32_network") or {}).items()):
        lines.append(f"  against the fp32 network | {name}: max_abs_err={_fmt(err)}")
    fallback = info.get("fallback") or []
    if fallback:
        lines.append(f"  fallback: {len(fallback)} layer(s) kept in fp32 to pass: " + ", ".join(fallback[:8])
                     + (" …" if len(fallback) > 8 else ""))
    top = info.get("top_layers") or []
    if top:
        lines.append("  largest error growth: " + ", ".join(
            f"{t['layer']} (+{_fmt(t['growth'])})" for t in top[:5]))
    return lines


# ------------------------------------------------------------------ input domains from the graph

def _data_inputs(node) -> list[str]:
    return [i for i in node.input if not i.startswith("^")]


def _node_of(ref: str) -> str:
    return ref.lstrip("^").split(":")[0]


#: ops whose first input's values reach their output unchanged (moved, copied, sliced or reshaped)
_PASS_FIRST = frozenset({
    "Identity", "Snapshot", "StopGradient", "PreventGradient", "EnsureShape", "CheckNumerics", "Reshape",
    "ExpandDims", "Squeeze", "Transpose", "StridedSlice", "Slice", "Tile", "BroadcastTo", "Reverse", "ReverseV2",
    "Pad", "PadV2", "MirrorPad", "Unpack", "SplitV", "Roll", "GatherV2", "Gather", "GatherNd",
})
#: ops that pass every data input's values through
_PASS_ANY = frozenset({"Pack", "IdentityN"})
_COMPARISONS = frozenset({"Less", "LessEqual", "Greater", "GreaterEqual", "Equal", "NotEqual"})


@dataclass
class InputDomain:
    """What the graph says about one input's values (see :func:`derive_input_domains`)."""

    #: the frozen graph has the input (an input no output depends on is pruned by freezing)
    in_graph: bool = True
    #: the values index something of this size: valid values are ``[0, high)``
    high: int | None = None
    bound_reason: str = ""
    #: the input is cast to bool: a mask
    mask_reason: str = ""
    #: smallest and largest constant the input is compared with
    thresholds: tuple[float, float] | None = None
    threshold_reason: str = ""

    def narrow_to(self, high, reason: str) -> None:
        if high is None or int(high) < 0:
            return
        if self.high is None or int(high) < self.high:
            self.high, self.bound_reason = int(high), reason

    def note_thresholds(self, low: float, high: float, reason: str) -> None:
        if self.thresholds is None:
            self.thresholds, self.threshold_reason = (low, high), reason
        else:
            self.thresholds = (min(self.thresholds[0], low), max(self.thresholds[1], high))


class _GraphFacts:
    """Constant values and static shapes of a frozen graph's tensors, and who consumes each node."""

    def __init__(self, frozen: FrozenGraph):
        self.nodes = {n.name: n for n in frozen.graph_def.node}
        self.constants = frozen.constants
        self.consumers: dict[str, list] = defaultdict(list)
        for n in frozen.graph_def.node:
            for index, ref in enumerate(_data_inputs(n)):
                self.consumers[_node_of(ref)].append((n, index))

    def value(self, ref: str):
        """The value of a constant tensor, else None."""
        n = self.nodes.get(_node_of(ref))
        if n is None:
            return None
        if n.op == "Const":
            import tensorflow as tf

            try:
                return tf.make_ndarray(n.attr["value"].tensor)
            except Exception:  # noqa: BLE001 - an odd dtype (string, resource): not a number to use
                return None
        if is_external_const(n) and n.name in self.constants:
            return np.asarray(self.constants[n.name])
        return None

    def shape(self, ref: str) -> tuple | None:
        """The static shape of a tensor (-1 for unknown dimensions), None when the rank is unknown."""
        name, _, index = ref.lstrip("^").partition(":")
        n = self.nodes.get(name)
        if n is None:
            return None
        if n.op == "Const":
            return tuple(int(d.size) for d in n.attr["value"].tensor.tensor_shape.dim)
        if is_external_const(n) and n.name in self.constants:
            return tuple(self.constants[n.name].shape)
        if "_output_shapes" in n.attr:
            shapes = n.attr["_output_shapes"].list.shape
            i = int(index or 0)
            if i < len(shapes) and not shapes[i].unknown_rank:
                return tuple(int(d.size) for d in shapes[i].dim)
        return None


def _is_bool_cast(node) -> bool:
    return node.op == "Cast" and node.attr["DstT"].type == 10  # DT_BOOL


def _passes(facts: _GraphFacts, node, index: int) -> bool:
    """Whether the values of ``node``'s input ``index`` reach its output(s) unchanged (as far as ranges go)."""
    op = node.op
    if op in _PASS_FIRST:
        return index == 0
    if op in _PASS_ANY:
        return True
    if op == "ConcatV2":
        return index < len(_data_inputs(node)) - 1
    if op == "Concat":
        return index >= 1
    if op == "Split":
        return index == 1
    if op in ("SelectV2", "Select"):
        # the branches, never the condition; Keras' Embedding selects x + rows for negative x, else x
        return index in (1, 2)
    if op == "Cast":
        return not _is_bool_cast(node)
    if op == "Maximum":
        # max(x, c) exceeds a bound whenever x does: the bound still holds for x
        data = _data_inputs(node)
        return len(data) == 2 and facts.value(data[1 - index]) is not None
    return False


def _sink(facts: _GraphFacts, dom: InputDomain, node, index: int) -> None:
    """Record what ``node`` says about the values it reads at input ``index``."""
    op = node.op
    data = _data_inputs(node)
    if op in ("GatherV2", "Gather", "ResourceGather") and index == 1:
        axis = 0
        if op == "GatherV2":
            value = facts.value(data[2]) if len(data) > 2 else None
            if value is None or value.size != 1:
                return
            axis = int(value.reshape(()))
        shape = facts.shape(data[0])
        if not shape:
            return
        if axis < 0:
            axis += len(shape)
        if 0 <= axis < len(shape) and shape[axis] >= 0:
            dom.narrow_to(shape[axis], f"{op} '{node.name}' indexes the {shape[axis]} entries of "
                                       f"'{_node_of(data[0])}' along axis {axis}")
    elif op == "GatherNd" and index == 1:
        params, indices = facts.shape(data[0]), facts.shape(data[1])
        if params and indices and 0 < indices[-1] <= len(params):
            sizes = [s for s in params[:indices[-1]] if s >= 0]
            if sizes:
                dom.narrow_to(min(sizes), f"GatherNd '{node.name}' indexes '{_node_of(data[0])}' "
                                          f"of shape {tuple(params)}")
    elif op == "OneHot" and index == 0:
        depth = facts.value(data[1]) if len(data) > 1 else None
        if depth is not None and depth.size == 1:
            dom.narrow_to(int(depth.reshape(())), f"OneHot '{node.name}' has depth {int(depth.reshape(()))}")
    elif op.startswith("UnsortedSegment") and index == 1:
        count = facts.value(data[2]) if len(data) > 2 else None
        if count is not None and count.size == 1:
            dom.narrow_to(int(count.reshape(())), f"{op} '{node.name}' has {int(count.reshape(()))} segments")
    elif _is_bool_cast(node):
        dom.mask_reason = dom.mask_reason or f"cast to bool by '{node.name}'"
    elif op in _COMPARISONS and len(data) == 2:
        other = facts.value(data[1 - index])
        if other is not None and other.size and other.dtype.kind in "iuf" and np.all(np.isfinite(other)):
            dom.note_thresholds(float(other.min()), float(other.max()),
                               f"compared with constants by {op} '{node.name}'")


def derive_input_domains(frozen: FrozenGraph) -> dict[str, InputDomain]:
    """For each input, what its consumers say about its values.

    From the input's placeholder the walk follows ops that move values without
    changing them (identity, cast, reshape, transpose, slice, concat, select
    branches…) to the ops that constrain them: the indices of a gather (the
    size of the gathered axis — an ``Embedding`` table's rows), a one-hot depth,
    a segment count, a cast to bool (a mask), comparisons with constants.
    Arithmetic stops the walk: ``x + 1`` indexing a table says nothing simple
    about ``x``.
    """
    facts = _GraphFacts(frozen)
    result = {}
    for spec in frozen.inputs:
        dom = InputDomain()
        if spec.name not in facts.nodes:
            dom.in_graph = False
            result[spec.name] = dom
            continue
        seen = {spec.name}
        stack = [spec.name]
        while stack:
            current = stack.pop()
            for consumer, index in facts.consumers.get(current, ()):
                _sink(facts, dom, consumer, index)
                if consumer.name not in seen and _passes(facts, consumer, index):
                    seen.add(consumer.name)
                    stack.append(consumer.name)
        result[spec.name] = dom
    return result


# ------------------------------------------------------------------ input plans

def padding_mask(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """A bool array like a batch of padding masks: along the last axis, True up to a random length ≥ half of it.

    Random coin flips would leave rows with no valid position, which real masks
    never have (an attention over nothing is NaN in TensorFlow and TensorRT).
    """
    shape = tuple(int(d) for d in shape)
    if not shape:
        return np.ones((), bool)
    n = shape[-1]
    lengths = rng.integers((n + 1) // 2, n + 1, shape[:-1]) if n else np.zeros(shape[:-1], int)
    return np.arange(n) < np.asarray(lengths)[..., None]


def _number_text(x) -> str:
    return str(int(x)) if float(x).is_integer() else f"{float(x):g}"


@dataclass
class InputPlan:
    """How one input's verification data is made."""

    name: str
    dtype: str
    shape: tuple
    kind: str  #: "normal", "integers", "uniform", "mask", "fixed" or "npz"
    low: float | None = None
    high: float | None = None
    value: object = field(default=None, repr=False)
    source: str = "default"  #: "default", "graph" (derived), "given" (input_ranges/input_values) or "npz"
    reason: str = ""
    in_graph: bool = True

    def generate(self, rng: np.random.Generator) -> np.ndarray:
        dtype = np.dtype(self.dtype)
        if self.kind == "normal":
            return rng.standard_normal(self.shape).astype(dtype)
        if self.kind == "integers":
            return rng.integers(int(self.low), int(self.high), self.shape).astype(dtype)
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high, self.shape).astype(dtype)
        if self.kind == "mask":
            return padding_mask(rng, self.shape).astype(dtype)
        if self.kind == "fixed":
            return np.array(np.broadcast_to(np.asarray(self.value).astype(dtype), self.shape))
        raise VerificationError(f"input '{self.name}' has no generator ({self.kind})")  # pragma: no cover

    def description(self, with_reason: bool = True) -> str:
        """How the data is made, e.g. ``random integers in [0, 2) (GatherV2 'emb' indexes the 2 entries …)``."""
        if self.kind == "normal":
            text = "standard normal floats"
        elif self.kind == "integers":
            text = f"random integers in [{_number_text(self.low)}, {_number_text(self.high)})"
        elif self.kind == "uniform":
            text = f"uniform floats in [{_number_text(self.low)}, {_number_text(self.high)})"
        elif self.kind == "mask":
            text = "padding masks (" + ("True" if np.dtype(self.dtype) == np.bool_ else "1") + \
                   " up to a random length ≥ half the last axis)"
        elif self.kind == "fixed":
            value = np.asarray(self.value)
            text = f"fixed value {value.item()!r}" if value.size == 1 else f"fixed array of shape {value.shape}"
        else:
            text = f"arrays from {self.reason}"
        if self.source == "given":
            text += " (given)"
        elif with_reason and self.reason and self.kind != "npz":
            text += f" ({self.reason})"
        if not self.in_graph:
            text += "; TensorFlow's graph does not read it"
        return text

    def to_dict(self) -> dict:
        d = {"name": self.name, "dtype": self.dtype, "shape": [int(s) for s in self.shape], "kind": self.kind,
             "low": None if self.low is None else _json_number(self.low),
             "high": None if self.high is None else _json_number(self.high),
             "source": self.source, "reason": self.reason, "in_graph": self.in_graph,
             "description": self.description(with_reason=False)}
        if self.kind == "fixed":
            value = np.asarray(self.value)
            d["value"] = value.item() if value.size == 1 else None
        return d


def _json_number(x):
    return int(x) if float(x).is_integer() and abs(float(x)) < 2 ** 53 else float(x)


def _np_dtype(spec) -> np.dtype:
    try:
        return np.dtype(spec.dtype)
    except TypeError:
        raise VerificationError(f"cannot generate inputs of dtype {spec.dtype} for '{spec.name}'",
                                hint="pass real inputs with --inputs-npz") from None


def _parse_number(text: str):
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_input_range(text: str) -> tuple[str, tuple[float, float]]:
    """``NAME:LOW:HIGH`` (HIGH exclusive; integers or floats) → ``(name, (low, high))``; for the CLI."""
    parts = text.rsplit(":", 2)
    hint = "write NAME:LOW:HIGH with HIGH exclusive, e.g. --input-range segment_ids:0:2 or x:-1.5:1.5"
    if len(parts) != 3 or not parts[0]:
        raise VerificationError(f"bad --input-range '{text}'", hint)
    try:
        low, high = _parse_number(parts[1]), _parse_number(parts[2])
    except ValueError:
        raise VerificationError(f"bad --input-range '{text}': LOW and HIGH must be numbers", hint) from None
    return parts[0], (low, high)


def parse_input_value(text: str) -> tuple[str, object]:
    """``NAME:VALUE`` (a number, true or false) → ``(name, value)``; for the CLI."""
    name, sep, value = text.rpartition(":")
    hint = "write NAME:VALUE, e.g. --input-value padding_mask:1"
    if not sep or not name:
        raise VerificationError(f"bad --input-value '{text}'", hint)
    if value.strip().lower() in ("true", "false"):
        return name, value.strip().lower() == "true"
    try:
        return name, _parse_number(value)
    except ValueError:
        raise VerificationError(f"bad --input-value '{text}': VALUE must be a number, true or false", hint) from None


def check_input_options(frozen: FrozenGraph, input_ranges: dict | None = None, input_values: dict | None = None,
                        npz: str | None = None) -> None:
    """Raise :class:`VerificationError` for input options that cannot apply to ``frozen``.

    ``tf2trt convert`` calls this right after freezing, so a misspelt name
    fails before the engine build rather than after it.
    """
    ranges, values = dict(input_ranges or {}), dict(input_values or {})
    specs = {s.name: s for s in frozen.inputs}
    names = [s.name for s in frozen.inputs]
    unknown = [n for n in list(ranges) + list(values) if n not in specs]
    if unknown:
        raise VerificationError(f"input range/value given for {sorted(set(unknown))}, which the model does not "
                                f"have; its inputs are {names}", "use one of the model's input names")
    both = sorted(set(ranges) & set(values))
    if both:
        raise VerificationError(f"both a range and a value given for {both}", "give one of --input-range and "
                                "--input-value per input")
    if npz is not None and (ranges or values):
        raise VerificationError("real inputs (--inputs-npz) and input ranges/values were both given",
                                "give the .npz alone (it holds every input) or ranges/values alone")
    if npz is not None and not Path(npz).is_file():
        raise VerificationError(f"inputs file not found: {npz}", "check the --inputs-npz path")
    for name, bounds in ranges.items():
        try:
            low, high = (float(b) for b in bounds)
        except (TypeError, ValueError):
            raise VerificationError(f"the range of '{name}' must be (LOW, HIGH), not {bounds!r}") from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise VerificationError(f"the range of '{name}' is [{low:g}, {high:g}): it needs finite LOW < HIGH",
                                    "HIGH is exclusive: --input-range NAME:0:2 gives 0 and 1")
        dtype = _np_dtype(specs[name])
        if dtype.kind in "iub" and math.ceil(low) >= math.ceil(high):
            raise VerificationError(f"the range [{low:g}, {high:g}) of integer input '{name}' holds no integer",
                                    "HIGH is exclusive: --input-range NAME:0:2 gives 0 and 1")
        if dtype.kind in "iu" and not (np.iinfo(dtype).min <= math.ceil(low)
                                       and math.ceil(high) - 1 <= np.iinfo(dtype).max):
            raise VerificationError(f"the range [{low:g}, {high:g}) of '{name}' does not fit its dtype {dtype}",
                                    f"{dtype} holds {np.iinfo(dtype).min} to {np.iinfo(dtype).max}")
    for name, value in values.items():
        spec = specs[name]
        try:
            np.broadcast_to(np.asarray(value).astype(_np_dtype(spec)), tuple(max(int(d), 1) for d in spec.shape))
        except (TypeError, ValueError) as exc:
            raise VerificationError(f"the value given for '{name}' does not fit its dtype {spec.dtype} and "
                                    f"shape {tuple(spec.shape)}: {exc}") from None


def plan_inputs(frozen: FrozenGraph, input_ranges: dict | None = None, input_values: dict | None = None,
                npz: str | None = None) -> list[InputPlan]:
    """How each input's data is made, in this order of precedence:

    1. ``input_values[name]``: that value (broadcast to the input's shape);
    2. ``input_ranges[name] = (low, high)``: uniform floats in ``[low, high)``,
       or integers in it for integer and bool inputs;
    3. bool inputs: padding masks (mostly True, never an all-False row);
    4. what :func:`derive_input_domains` found: integers in ``[0, size)`` for
       an index, masks for values cast to bool, for values compared with
       constants the default range widened to take in every threshold and the
       value just past it;
    5. standard normal floats; integers in ``[0, 10)``.
    """
    check_input_options(frozen, input_ranges, input_values, npz)
    ranges, values = dict(input_ranges or {}), dict(input_values or {})
    if npz is not None:
        return [InputPlan(s.name, str(_np_dtype(s)), tuple(s.shape), "npz", source="npz", reason=str(npz))
                for s in frozen.inputs]
    domains = derive_input_domains(frozen)
    plans = []
    for spec in frozen.inputs:
        dtype = _np_dtype(spec)
        dom = domains[spec.name]
        base = dict(name=spec.name, dtype=str(dtype), shape=tuple(int(d) for d in spec.shape),
                    in_graph=dom.in_graph)
        if spec.name in values:
            plans.append(InputPlan(kind="fixed", value=np.asarray(values[spec.name]).astype(dtype), source="given",
                                   **base))
        elif spec.name in ranges:
            low, high = ranges[spec.name]
            if dtype.kind == "f":
                plans.append(InputPlan(kind="uniform", low=float(low), high=float(high), source="given", **base))
            else:
                plans.append(InputPlan(kind="integers", low=math.ceil(low), high=math.ceil(high), source="given",
                                       **base))
        elif dtype.kind == "b":
            plans.append(InputPlan(kind="mask", source="default", reason=dom.mask_reason, **base))
        elif dtype.kind not in "iuf":
            raise VerificationError(f"cannot generate inputs of dtype {dtype} for '{spec.name}'",
                                    hint="pass real inputs with --inputs-npz")
        elif dom.high is not None and dom.high > 0:
            plans.append(InputPlan(kind="integers", low=0, high=dom.high, source="graph", reason=dom.bound_reason,
                                   **base))
        elif dom.mask_reason:
            plans.append(InputPlan(kind="mask", source="graph", reason=dom.mask_reason, **base))
        elif dtype.kind in "iu" and dom.thresholds is not None:
            low = min(DEFAULT_INT_RANGE[0], math.floor(dom.thresholds[0]))
            high = max(DEFAULT_INT_RANGE[1], math.floor(dom.thresholds[1]) + 2)
            if dtype.kind == "u":
                low = max(low, 0)
            plans.append(InputPlan(kind="integers", low=low, high=high, source="graph",
                                   reason=dom.threshold_reason, **base))
        elif dtype.kind in "iu":
            plans.append(InputPlan(kind="integers", low=DEFAULT_INT_RANGE[0], high=DEFAULT_INT_RANGE[1],
                                   reason="no constraint found in the graph", **base))
        else:
            plans.append(InputPlan(kind="normal", **base))
        if dom.high == 0 and plans[-1].source != "given":
            log.warning("input '%s' indexes an empty table (%s): no value is valid", spec.name, dom.bound_reason)
    return plans


def _load_npz(frozen: FrozenGraph, npz: str) -> list[dict]:
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
        if arr.ndim != len(spec.shape) or any(int(d) >= 0 and d != a for d, a in zip(spec.shape, arr.shape)):
            raise VerificationError(f"array '{spec.name}' in {path} has shape {arr.shape}, "
                                    f"the input needs {tuple(spec.shape)}")
        feeds[spec.name] = arr.astype(spec.dtype)
    if len(feeds) == len(frozen.inputs):
        return [feeds]
    # arrays with a leading sample axis
    n = min(arrays[s.name].shape[0] for s in frozen.inputs)
    return [{s.name: arrays[s.name][i].astype(s.dtype) for s in frozen.inputs} for i in range(n)]


def generate_inputs(plans: list[InputPlan], seed: int = 0, samples: int = 1) -> list[dict]:
    """``samples`` feed dicts from ``plans``, reproducible for a ``seed``."""
    rng = np.random.default_rng(seed)
    return [{p.name: p.generate(rng) for p in plans} for _ in range(samples)]


def make_inputs(frozen: FrozenGraph, seed: int = 0, samples: int = 1, npz: str | None = None,
                input_ranges: dict | None = None, input_values: dict | None = None) -> list[dict]:
    """Seeded random inputs that fit the model (see :func:`plan_inputs`) or the arrays of ``npz``."""
    if npz is not None:
        check_input_options(frozen, input_ranges, input_values, npz)
        return _load_npz(frozen, npz)
    return generate_inputs(plan_inputs(frozen, input_ranges, input_values), seed, samples)


# ------------------------------------------------------------------ TensorFlow's reference graph

#: channels-first ops TensorFlow's CPU kernels refuse (without oneDNN; DepthToSpace/SpaceToDepth/MaxPoolV2 even
#: with it) → (data inputs in the op's layout, per-dimension list attributes, inputs holding per-dimension vectors)
_NCHW_REWRITES = {
    "Conv2D": ((0,), ("strides", "dilations", "explicit_paddings")),
    "Conv3D": ((0,), ("strides", "dilations")),
    "DepthwiseConv2dNative": ((0,), ("strides", "dilations", "explicit_paddings")),
    "Conv2DBackpropInput": ((2,), ("strides", "dilations", "explicit_paddings"), (0,)),
    "Conv3DBackpropInputV2": ((2,), ("strides", "dilations"), (0,)),
    "MaxPool": ((0,), ("ksize", "strides", "explicit_paddings")),
    "AvgPool": ((0,), ("ksize", "strides")),
    "MaxPool3D": ((0,), ("ksize", "strides")),
    "AvgPool3D": ((0,), ("ksize", "strides")),
    "MaxPoolV2": ((0,), (), (1, 2)),
    "BiasAdd": ((0,), ()),
    "FusedBatchNorm": ((0,), ()),
    "FusedBatchNormV2": ((0,), ()),
    "FusedBatchNormV3": ((0,), ()),
    "DepthToSpace": ((0,), ()),
    "SpaceToDepth": ((0,), ()),
}
_CHANNELS_LAST = {"NCHW": "NHWC", "NCDHW": "NDHWC"}
_NHWC_SUFFIX = "/_tf2trt_nhwc"
_DT_INT32 = 3


def _data_format(node) -> str:
    return node.attr["data_format"].s.decode() if "data_format" in node.attr else ""


def _rank_of(node) -> int | None:
    fmt = _data_format(node)
    if fmt == "NCDHW":
        return 5
    if node.op != "BiasAdd":
        return 4
    if "_output_shapes" in node.attr and node.attr["_output_shapes"].list.shape:
        shape = node.attr["_output_shapes"].list.shape[0]
        if not shape.unknown_rank:
            return len(shape.dim)
    return None


def nhwc_reference_graph(graph_def):
    """A copy of ``graph_def`` whose channels-first nodes compute the same values in channels-last.

    TensorFlow's CPU kernels for convolutions, pooling, BiasAdd, FusedBatchNorm,
    DepthToSpace/SpaceToDepth only take NHWC (oneDNN builds accept some NCHW
    ops, stock ones none), so a graph exported from a GPU could not be
    verified at all.  Each such node ``n`` becomes ``n/_tf2trt_nhwc`` reading
    its input through a transpose to channels-last, with ``data_format`` and
    its per-dimension attributes (strides, dilations, ksize, explicit
    paddings) permuted, and vector inputs (``input_sizes``, MaxPoolV2's
    ksize/strides) permuted by ``DataFormatVecPermute``; a transpose back to
    channels-first takes the name ``n``, so every consumer and every fetch of
    ``n:0`` sees the original tensor.  Returns ``(graph_def, aliases,
    rewritten)``: ``aliases`` maps the other outputs (``bn:1`` …) to the
    renamed node's, ``rewritten`` lists the original names.  Used only for
    TensorFlow's reference; the converter reads the original graph.
    """
    targets = [i for i, n in enumerate(graph_def.node)
               if n.op in _NCHW_REWRITES and _data_format(n) in _CHANNELS_LAST]
    if not targets:
        return graph_def, {}, []
    import tensorflow as tf

    gd = type(graph_def)()
    gd.CopyFrom(graph_def)
    names = {n.name for n in gd.node}
    renamed: dict[str, str] = {}
    rewritten: list[str] = []

    def fresh(name: str) -> str:
        candidate, k = name, 0
        while candidate in names:
            k += 1
            candidate = f"{name}_{k}"
        names.add(candidate)
        return candidate

    def const(name: str, values: list[int]) -> str:
        c = gd.node.add()
        c.name = fresh(name)
        c.op = "Const"
        c.attr["dtype"].type = _DT_INT32
        c.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.asarray(values, np.int32)))
        return c.name

    def transpose(name: str, source: str, perm: str, dtype: int, exact: bool = False) -> str:
        t = gd.node.add()
        t.name = name if exact else fresh(name)
        t.op = "Transpose"
        t.input.extend([source, perm])
        t.attr["T"].type = dtype
        t.attr["Tperm"].type = _DT_INT32
        return t.name

    for index in targets:
        node = gd.node[index]
        fmt = _data_format(node)
        rank = _rank_of(node)
        if rank is None:
            log.debug("leaving %s '%s' in %s: its rank is unknown", node.op, node.name, fmt)
            continue
        spec = _NCHW_REWRITES[node.op]
        data_idx, attrs = spec[0], spec[1]
        vector_idx = spec[2] if len(spec) > 2 else ()
        new_fmt = _CHANNELS_LAST[fmt]
        original = node.name
        if rank <= 2:  # channels are the last axis either way
            node.attr["data_format"].s = new_fmt.encode()
            rewritten.append(original)
            continue
        to_last = [0, *range(2, rank), 1]
        to_first = [0, rank - 1, *range(1, rank - 1)]
        inner = fresh(original + _NHWC_SUFFIX)
        dtype = node.attr["T"].type
        inputs = list(node.input)
        if data_idx:
            perm_last = const(inner + "/to_nhwc_perm", to_last)
            for i in data_idx:
                inputs[i] = transpose(f"{inner}/input_{i}", inputs[i], perm_last, dtype)
        for i in vector_idx:
            v = gd.node.add()
            v.name = fresh(f"{inner}/input_{i}")
            v.op = "DataFormatVecPermute"
            v.input.append(inputs[i])
            v.attr["T"].type = node.attr["Tshape"].type if "Tshape" in node.attr else _DT_INT32
            v.attr["src_format"].s = fmt.encode()
            v.attr["dst_format"].s = new_fmt.encode()
            inputs[i] = v.name
        for key in attrs:
            if key not in node.attr:
                continue
            values = list(node.attr[key].list.i)
            if key == "explicit_paddings" and len(values) == 2 * rank:
                values = [p for d in to_last for p in values[2 * d:2 * d + 2]]
            elif len(values) == rank:
                values = [values[d] for d in to_last]
            else:
                continue
            del node.attr[key].list.i[:]
            node.attr[key].list.i.extend(values)
        node.attr["data_format"].s = new_fmt.encode()
        if "_output_shapes" in node.attr:
            del node.attr["_output_shapes"]
        node.name = inner
        del node.input[:]
        node.input.extend(inputs)
        renamed[original] = inner
        perm_first = const(inner + "/to_nchw_perm", to_first)
        transpose(original, inner, perm_first, dtype, exact=True)
        rewritten.append(original)
    # a multi-output node's other outputs (FusedBatchNorm's mean, variance…) come from the renamed node
    aliases: dict[str, str] = {}
    for n in gd.node:
        refs = []
        for ref in n.input:
            name, sep, port = ref.partition(":")
            if sep and name in renamed and port != "0":
                ref = f"{renamed[name]}:{port}"
            refs.append(ref)
        if refs != list(n.input):
            del n.input[:]
            n.input.extend(refs)
    for original, inner in renamed.items():
        for port in range(1, 6):
            aliases[f"{original}:{port}"] = f"{inner}:{port}"
    if rewritten:
        log.info("TensorFlow's reference runs %d NCHW node(s) as NHWC between transposes", len(rewritten))
    return gd, aliases, rewritten


# ------------------------------------------------------------------ runners

class ReferenceFailed(VerificationError):
    """TensorFlow raised while computing the reference: verification could not run (exit 2).

    ``node``/``op`` name the TF node that raised, ``inputs`` the model inputs it
    reads (how each was made, as in the report).
    """

    def __init__(self, message: str, hint: str | None, node: str | None = None, op: str | None = None,
                 inputs: list[dict] | None = None):
        super().__init__(message, hint)
        self.node = node
        self.op = op
        self.inputs = list(inputs or [])


def _tf_reason(text: str) -> str:
    """The line of a TensorFlow error that says what went wrong.

    Session errors read ``Graph execution error: / Detected at node … / (stack) /
    Node: 'n' / <reason> / [[{{node n}}]]``; other errors carry the reason on
    their first line, possibly followed by kernel lists.
    """
    lines = [line.strip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("Node: '"):
            following = [x for x in lines[i + 1:] if x]
            if following and not following[0].startswith("[["):
                return following[0][:400]
    for line in lines:
        if line and not line.startswith(("Graph execution error", "Detected at node", "[[")):
            return line[:400]
    return text.strip()[:400]


def _inputs_read_by(frozen: FrozenGraph, node: str) -> list[str]:
    """The model inputs ``node`` depends on, in signature order."""
    nodes = {n.name: n for n in frozen.graph_def.node}
    seen, stack = set(), [node]
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        stack.extend(_node_of(i) for i in nodes[name].input)
    return [s.name for s in frozen.inputs if s.name in seen]


_KERNEL_PROBLEM = re.compile(r"No OpKernel|only supports? (the )?NHWC|supports? only NHWC|"
                             r"only supported for NHWC|not supported on (the )?CPU|on device type CPU", re.I)


def _is_kernel_problem(exc: BaseException, reason: str) -> bool:
    """TensorFlow lacks a kernel (an op configuration its CPU build cannot run), as opposed to rejecting values."""
    import tensorflow as tf

    return isinstance(exc, (tf.errors.UnimplementedError, tf.errors.NotFoundError)) or bool(
        _KERNEL_PROBLEM.search(reason))


def _device() -> str:
    import tensorflow as tf

    try:
        return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    except Exception:  # noqa: BLE001 - a broken driver: TensorFlow runs on the CPU then
        return "CPU"


def reference_failure(exc: BaseException, frozen: FrozenGraph, plans: list[InputPlan]) -> ReferenceFailed:
    """A :class:`ReferenceFailed` naming the TF node that raised, the inputs it reads and how they were made."""
    text = strip_ansi(getattr(exc, "message", None) or str(exc))
    match = re.search(r"\{\{node ([^}]+)\}\}", text) or re.search(r"Node: '([^']+)'", text)
    node = match.group(1).split(_NHWC_SUFFIX)[0] if match else None
    ops = {n.name: n.op for n in frozen.graph_def.node}
    op = ops.get(node) if node else None
    reason = _tf_reason(text)
    where = f" at {op} node '{node}'" if node else ""
    by_name = {p.name: p for p in plans}
    read = _inputs_read_by(frozen, node) if node in ops else [p.name for p in plans]
    involved = [by_name[n] for n in read if n in by_name]
    npz = any(p.kind == "npz" for p in plans)
    if _is_kernel_problem(exc, reason):
        message = (f"verification could not run: this TensorFlow cannot run {op or 'a'} node "
                   f"'{node or '?'}' on {_device()} ({reason})")
        hint = ("its kernels lack this op configuration (NCHW convolutions, pooling, BiasAdd, FusedBatchNorm, "
                "DepthToSpace/SpaceToDepth are already run as NHWC); build without --verify, or verify where "
                "TensorFlow has the kernel, and report the op if it should be rewritten")
        return ReferenceFailed(message, hint, node, op, [p.to_dict() for p in involved])
    if involved:
        made = "; ".join(f"{p.name}: {p.description()}" for p in involved)
        message = (f"verification could not run: TensorFlow rejects the {'given' if npz else 'generated'} inputs "
                   f"({reason}){where}, which reads {made}")
        hint = ("the arrays of --inputs-npz must hold values the model accepts" if npz else
                f"{INPUT_OPTIONS_HINT}; for inputs {[p.name for p in involved]}")
    else:
        message = (f"verification could not run: TensorFlow cannot compute the reference ({reason}){where}, "
                   "which reads no model input")
        hint = ("the graph fails in TensorFlow whatever the inputs: check that the model runs in TensorFlow, or "
                "build without --verify")
    return ReferenceFailed(message, hint, node, op, [p.to_dict() for p in involved])


class TensorFlowRunner:
    """Runs the frozen graph in TensorFlow, fetching outputs or any intermediate tensor.

    TensorFlow runs :func:`nhwc_reference_graph`'s copy of the graph (same
    node names and values, channels-first nodes computed in channels-last), fed
    the frozen graph's big constants; feeds for inputs the graph does not have
    (pruned because no output needs them) are dropped.
    """

    def __init__(self, frozen: FrozenGraph, nhwc: bool = True):
        import tensorflow as tf

        self._tf = tf
        graph_def, self.aliases, self.rewritten = (nhwc_reference_graph(frozen.graph_def) if nhwc
                                                   else (frozen.graph_def, {}, []))
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.graph_util.import_graph_def(graph_def, name="")
        config = None
        if self.rewritten:
            from tensorflow.core.protobuf import rewriter_config_pb2

            # Grappler's arithmetic optimizer (TF 2.21) mis-folds the transposes around a BiasAdd it removes for a
            # zero bias (a Keras channels_first DepthwiseConv2D: the tensor came out transposed, without its
            # bias), so the rewritten graph runs as written.
            config = tf.compat.v1.ConfigProto()
            config.graph_options.rewrite_options.arithmetic_optimization = rewriter_config_pb2.RewriterConfig.OFF
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        self.frozen = frozen
        #: the nodes a feed may name: a feed for a model input freezing pruned (no output needs it) is dropped
        self.present = {n.name for n in graph_def.node}
        # big constants are placeholders in the frozen GraphDef: feed their values
        self._constant_feeds = {self.graph.get_tensor_by_name(k + ":0"): v for k, v in frozen.constants.items()}

    def info(self) -> dict:
        """What computes the reference, for the report."""
        return {"executor": "tensorflow", "version": self._tf.__version__, "device": _device(),
                "nhwc_rewrites": len(self.rewritten), "nhwc_nodes": self.rewritten[:20]}

    def run(self, feeds: dict, fetches: list[str]) -> dict[str, np.ndarray]:
        names = []
        for f in fetches:
            tensor = f if ":" in f else f + ":0"
            names.append(self.aliases.get(tensor, tensor))
        tensors = [self.graph.get_tensor_by_name(n) for n in names]
        feed = dict(self._constant_feeds)
        feed.update({self.graph.get_tensor_by_name(k + ":0"): v for k, v in feeds.items() if k in self.present})
        values = self.session.run(tensors, feed_dict=feed)
        return dict(zip(fetches, values))

    def close(self):
        self.session.close()


def _run_tf(runner: TensorFlowRunner, feeds: dict, fetches: list[str], frozen: FrozenGraph,
            plans: list[InputPlan]) -> dict[str, np.ndarray]:
    """``runner.run``, with TensorFlow's own errors turned into :class:`ReferenceFailed`."""
    import tensorflow as tf

    try:
        return runner.run(feeds, fetches)
    except tf.errors.OpError as exc:
        raise reference_failure(exc, frozen, plans) from exc


def _network_feeds(snapshot, feeds: dict) -> dict:
    """The feeds the network has inputs for (an input no output needs may be missing on either side).

    A float32 feed for an fp16/bf16 network input (``io: native`` reduced precision) is rounded to the
    input's type, as a caller of the engine would have to.
    """
    from .layers._numpy import np_dtype

    types = {t["name"]: t["dtype"] for t in snapshot.inputs}
    out = {}
    for k, v in feeds.items():
        if k in types:
            if types[k] in ("HALF", "BF16") and np.asarray(v).dtype == np.float32:
                v = np.asarray(v).astype(np_dtype(types[k]))
            out[k] = v
    return out


def run_reference(snapshot, feeds: dict, outputs: list[str] | None = None, keep_intermediates: bool = False):
    from .reference import ReferenceExecutor

    return ReferenceExecutor(snapshot).run(_network_feeds(snapshot, feeds), outputs=outputs,
                                           keep_intermediates=keep_intermediates)


def verify(frozen: FrozenGraph, snapshot=None, engine: bytes | None = None, inputs_npz: str | None = None,
           seed: int = 0, samples: int = 1, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
           tolerances: dict[str, tuple[float, float]] | None = None, bisect_on_failure: bool = True,
           intermediates: bool = False, input_ranges: dict[str, tuple[float, float]] | None = None,
           input_values: dict | None = None, shapes: list[dict] | None = None) -> VerificationReport:
    """Compare TensorFlow with the converted model.

    Runs ``engine`` on the GPU when given (needs a GPU + TensorRT), else the
    ``snapshot`` on the reference executor.  ``tolerances`` maps output names
    to ``(rtol, atol)`` overrides.  ``intermediates=True`` also compares every
    TF tensor that has a TensorRT counterpart (first input set), which catches
    errors that a saturated output (e.g. a softmax over tiny logits) hides.

    Inputs come from ``inputs_npz`` or are generated (:func:`plan_inputs`):
    ``input_ranges={"segment_ids": (0, 2)}`` (HIGH exclusive) and
    ``input_values={"padding_mask": 1}`` override what the graph suggests.
    Raises :class:`ReferenceFailed` (a :class:`VerificationError`, exit 2) when
    TensorFlow itself cannot compute the reference on those inputs.

    A network with dynamic dimensions is checked at every optimization
    profile's min, opt and max shapes and at ``shapes`` (a list of
    ``{input: shape}``), each with ``samples`` input sets; the report's
    ``shapes`` has a row per shape and its outputs are the worst over all.
    """
    if snapshot is None and engine is None:
        raise VerificationError("nothing to verify: give a snapshot or an engine")
    tolerances = tolerances or {}
    plans = plan_inputs(frozen, input_ranges, input_values, inputs_npz)
    if shapes and inputs_npz is not None:
        raise VerificationError("verification shapes and real inputs (an .npz) were both given",
                                "the .npz's arrays are used at their own shapes: drop one of them")
    input_sets = build_input_sets(frozen, snapshot, plans, seed, samples, inputs_npz, shapes)
    tf_runner = TensorFlowRunner(frozen)
    try:
        return _verify(frozen, snapshot, engine, plans, input_sets, tf_runner, rtol, atol, tolerances,
                       bisect_on_failure, intermediates, None if inputs_npz is not None else seed)
    finally:
        tf_runner.close()


def build_input_sets(frozen: FrozenGraph, snapshot, plans: list[InputPlan], seed: int, samples: int,
                     inputs_npz: str | None = None, shapes: list[dict] | None = None) -> list[dict]:
    """The feed dicts :func:`verify` checks: the .npz's, or ``samples`` per shape to check (one set of shapes
    for a static network), seeded by ``seed`` plus the shape's position."""
    shape_sets = _shape_sets(frozen, snapshot, shapes) if inputs_npz is None else []
    if inputs_npz is not None:
        return _load_npz(frozen, inputs_npz)
    if shape_sets:
        input_sets = []
        for k, shape_set in enumerate(shape_sets):
            sized = [dataclasses.replace(p, shape=tuple(shape_set.get(p.name, p.shape))) for p in plans]
            input_sets += generate_inputs(sized, seed + k, samples)
        return input_sets
    return generate_inputs(plans, seed, samples)


def check_verification_shapes(frozen: FrozenGraph, shapes: list[dict] | None, npz: str | None = None) -> None:
    """Raise :class:`VerificationError` for verification shapes ``frozen`` cannot run (before any engine is built).

    ``tf2trt convert --verify-shape`` calls it right after freezing, as :func:`check_input_options`.
    """
    if shapes and npz is not None:
        raise VerificationError("--verify-shape and --inputs-npz were both given",
                                "the .npz's arrays are used at their own shapes: drop one of them")
    if shapes:
        _shape_sets(frozen, None, shapes)


def _shape_sets(frozen: FrozenGraph, snapshot, extra: list[dict] | None) -> list[dict]:
    """The input shapes a dynamic network is verified at ([] for a static one); every one must fit a profile."""
    from .profiles import in_profiles, profile_from_json, shapes_to_check, verification_shape_problems

    if not any(int(d) < 0 for s in frozen.inputs for d in s.shape):
        if extra:
            raise VerificationError("verification shapes were given, but the network's shapes are all static",
                                    "drop them, or build with --profile to keep dimensions dynamic")
        return []
    raw = (snapshot.profiles if snapshot is not None else None) or frozen.meta.get("profiles", [])
    profiles = [profile_from_json(p) for p in raw]
    declared = {s.name: tuple(s.shape) for s in frozen.inputs}
    for shape_set in extra or []:
        problems = verification_shape_problems(declared, profiles, {k: tuple(v) for k, v in shape_set.items()})
        if problems:
            _, problem, fix = problems[0]
            raise VerificationError(f"verification shape {dict(shape_set)}: {problem}", fix)
    sets = shapes_to_check(profiles, extra)
    for shape_set in sets:
        fixed = {s.name: tuple(shape_set.get(s.name, s.shape)) for s in frozen.inputs}
        if any(int(d) < 0 for shape in fixed.values() for d in shape) or not in_profiles(profiles, fixed):
            raise VerificationError(f"verification shape {shape_set} is not inside an optimization profile",
                                    "give shapes inside the profiles' min..max (every dynamic input)")
    return sets


def _verify(frozen, snapshot, engine, plans, input_sets, tf_runner, rtol, atol, tolerances, bisect_on_failure,
            intermediates, seed) -> VerificationReport:
    checked = "engine" if engine is not None else "reference-executor"
    if engine is not None:
        from .runtime import inference_engine

        def run_converted(feeds):
            return inference_engine(engine, feeds)
    else:
        from .reference import ReferenceExecutor

        executor = ReferenceExecutor(snapshot)

        def run_converted(feeds):
            return executor.run(_network_feeds(snapshot, feeds))

    worst: dict[str, OutputComparison] = {}
    vacuous: dict[str, bool] = {}
    dynamic = any(int(d) < 0 for s in frozen.inputs for d in s.shape)
    rows: dict[tuple, dict] = {}
    failing_feeds = None
    for feeds in input_sets:
        ref = _run_tf(tf_runner, feeds, list(frozen.outputs), frozen, plans)
        got = run_converted(feeds)
        key = tuple((n, tuple(np.shape(v))) for n, v in sorted(feeds.items()))
        row = rows.setdefault(key, {"inputs": {n: list(s) for n, s in key}, "passed": True, "outputs": {}})
        for name in frozen.outputs:
            r_tol, a_tol = tolerances.get(name, (rtol, atol))
            cmp = compare(name, got[name], ref[name], r_tol, a_tol)
            vacuous[name] = vacuous.get(name, True) and cmp.vacuous
            prev = worst.get(name)
            if prev is None or _worse(cmp, prev):
                worst[name] = cmp
            cell = row["outputs"].get(name)
            if cell is None or not cmp.passed or (cell["passed"] and _finite(cmp.max_abs_err) is not None
                                                   and (cell["max_abs_err"] or 0) < cmp.max_abs_err):
                row["outputs"][name] = {"passed": bool(cmp.passed), "max_abs_err": _finite(cmp.max_abs_err),
                                        "max_rel_err": _finite(cmp.max_rel_err)}
            if not cmp.passed:
                row["passed"] = False
                failing_feeds = failing_feeds or feeds
    for name, cmp in worst.items():
        # an output is vacuously checked only if no sample gave it a reference beyond atol
        cmp.vacuous = vacuous[name]
    report = VerificationReport(checked, [worst[n] for n in frozen.outputs], len(input_sets),
                                inputs=[p.to_dict() for p in plans], reference=tf_runner.info(), seed=seed,
                                rtol=rtol, atol=atol, shapes=list(rows.values()) if dynamic else [])
    for o in report.outputs:
        if o.vacuous:
            log.warning("output '%s' passes vacuously: %s", o.name, VACUOUS_NOTE)
    if intermediates and snapshot is not None:
        results = compare_intermediates(frozen, snapshot, input_sets[0], rtol, atol, tf_runner, plans)
        failed = [(node, op, c) for node, op, c in results if not c.passed]
        report.intermediates = {"checked": len(results), "failed": len(failed),
                                "failures": [{"node": n, "op": op, "max_abs_err": _finite(c.max_abs_err)}
                                             for n, op, c in failed[:10]]}
        if failed and report.first_divergence is None:
            n, op, c = failed[0]
            report.first_divergence = {"node": n, "op": op, "tensor": c.name, "max_abs_err": _finite(c.max_abs_err)}
    if not report.passed and bisect_on_failure and snapshot is not None:
        try:
            report.first_divergence = bisect(frozen, snapshot, failing_feeds or input_sets[0], rtol, atol,
                                             tf_runner, plans)
        except Exception as exc:  # noqa: BLE001 - bisecting is a diagnosis aid; never hide the report
            log.warning("bisect failed: %s", exc)
    log.info("%s", report.render())
    return report


def _worse(a: OutputComparison, b: OutputComparison) -> bool:
    if a.passed != b.passed:
        return not a.passed
    return (a.max_abs_err if not math.isnan(a.max_abs_err) else math.inf) > (
        b.max_abs_err if not math.isnan(b.max_abs_err) else math.inf)


def compare_intermediates(frozen: FrozenGraph, snapshot, feeds: dict, rtol: float, atol: float,
                          tf_runner=None, plans: list[InputPlan] | None = None
                          ) -> list[tuple[str, str, OutputComparison]]:
    """Compare every TF tensor that has a TensorRT counterpart, in topological order.

    Like Polygraphy's ``--mark all``: the snapshot's ``tensor_map`` says which
    TensorRT tensor (and in which axis order) holds each TF tensor's value.
    Each tensor is compared with ``rtol`` and ``atol × max(1, max|ref|)``
    (the maximum over finite elements):
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
    got = ReferenceExecutor(snapshot).run(_network_feeds(snapshot, feeds), keep_intermediates=True)
    order = _topo_order(frozen.graph_def)
    ops = {n.name: n.op for n in frozen.graph_def.node}
    position = {name: i for i, name in enumerate(order)}
    candidates = [ref for ref in tensor_map if ref.split(":")[0] in ops and tensor_map[ref][0] in got]
    candidates.sort(key=lambda r: (position.get(r.split(":")[0], 0), r))
    if plans is None:
        plans = [InputPlan(k, str(np.asarray(v).dtype), np.shape(v), "npz", source="npz", reason="the caller")
                 for k, v in feeds.items()]
    ref_values = _run_tf(runner, feeds, candidates, frozen, plans)
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
        scale = 1.0
        if expected.size and expected.dtype.kind == "f":
            finite = np.abs(expected[np.isfinite(expected)])
            scale = float(finite.max()) if finite.size else 1.0
        tensor_atol = atol * max(1.0, scale)
        results.append((node, ops.get(node, "?"), compare(ref, value, expected, rtol, tensor_atol)))
    return results


def bisect(frozen: FrozenGraph, snapshot, feeds: dict, rtol: float, atol: float, tf_runner=None,
           plans: list[InputPlan] | None = None) -> dict | None:
    """Name the first TF node (in topological order) whose value in the network diverges from TensorFlow."""
    for node, op, cmp in compare_intermediates(frozen, snapshot, feeds, rtol, atol, tf_runner, plans):
        if not cmp.passed:
            return {"node": node, "op": op, "tensor": cmp.name, "max_abs_err": _finite(cmp.max_abs_err)}
    return None
