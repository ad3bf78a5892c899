"""Reduced precision (fp16, bf16): a fp32 network snapshot lowered into a strongly typed one.

TensorRT-RTX has no FP16/INT8 builder flags: a layer computes in the type of its inputs, so precision
is a property of the network itself (a *strongly typed* network).  The converters always build the
fp32 network; :func:`lower` rewrites its snapshot:

* every floating-point layer gets a compute type, the target type or float32 (the **policy** below,
  the user's ``keep_fp32`` patterns, and an automatic fallback set decide which);
* weights (constants, convolution/deconvolution kernels and biases, scale coefficients) are stored
  in their layer's type;
* a CAST is inserted wherever a tensor's type differs from what its consumer computes in, right
  after the tensor's producer (so the order stays topological, loop back edges included);
* network inputs and outputs stay float32 unless ``io="native"``: the outputs keep their names (the
  cast back to float32 takes the name), so verification and ``tensor_map`` are unchanged.

Working on the snapshot rather than inside every converter keeps the converters precision-agnostic,
makes a fallback rebuild cheap (no TensorFlow, no re-conversion), and gives the reference executor
the exact network TensorRT builds, which it runs with each layer's types
(:mod:`converter.reference`: inputs and weights in the layer's type, arithmetic in float32, outputs
rounded to the layer's type).

Policy: what stays in float32 and why (each rule is one entry of :data:`POLICY_RULES`):

``softmax``
    exp of logits: fp16 overflows above e^11, and the normalizing sum of many small terms loses bits.
``normalization``
    mean/variance statistics: a variance is a difference of nearly equal sums.
``long-reduction``
    SUM/AVG/PROD reductions over more than :data:`LONG_REDUCTION` elements: fp16's 11-bit mantissa
    loses about log2(n) bits over a sum of n terms.
``exp-log-pow``
    UNARY EXP/LOG and ELEMENTWISE POW: relative errors grow with the argument, and exp overflows fp16
    above 11.
``final-logits``
    the layers from the last matrix product or convolution to each network output: the numbers a
    user compares (class scores, embeddings) are computed in float32 from the last fp16 features.
``integer-result``
    layers turning floats into integers or booleans (comparisons, casts to int): rounding the inputs
    to fp16 first would change integers above 2048 and flip comparisons near ties.
``typed``
    layers whose output type is a parameter (CAST, FILL, QUANTIZE, DEQUANTIZE): they keep it.
``out-of-range``
    (fp16 only) layers reading a constant or holding weights with finite values beyond fp16's range
    (65504), which would become infinities.
"""

from __future__ import annotations

import copy
import fnmatch
import logging
from dataclasses import dataclass, field

import numpy as np

from converter.errors import ModelError
from converter.snapshot import Snapshot

log = logging.getLogger(__name__)

__all__ = ["PRECISIONS", "PrecisionSettings", "PrecisionPlan", "lower", "POLICY_RULES", "LONG_REDUCTION",
           "DEFAULT_TOLERANCES", "parse_precision"]

#: the build settings' precision values; int8 comes from quantization-aware models (Q/DQ layers at construct)
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
_TRT_TYPE = {"fp16": "HALF", "bf16": "BF16"}
_NAME_OF = {"FLOAT": "fp32", "HALF": "fp16", "BF16": "bf16"}
FLOAT_TYPES = ("FLOAT", "HALF", "BF16")

#: a SUM/AVG/PROD reduction over more elements than this stays in float32: ConvNeXt's layer norms (means over
#: 96+ channels) built with those in fp16 made TensorRT warn "Running layernorm ... with FP16 Reduce or Pow may
#: cause overflow"; global average pooling of a 7x7 map (49) stays in the reduced type
LONG_REDUCTION = 64
FP16_MAX = 65504.0

#: default verification tolerances (rtol, atol) per precision; docs/precision.md gives the measurements
DEFAULT_TOLERANCES = {"fp32": (1e-4, 1e-5), "int8": (1e-4, 1e-5), "fp16": (1e-2, 1e-2), "bf16": (5e-2, 5e-2)}

POLICY_RULES = ("softmax", "normalization", "long-reduction", "exp-log-pow", "final-logits", "integer-result",
                "typed", "out-of-range")

#: layers that only move data: they compute in the type of their inputs, so no cast is added around them
_FOLLOWERS = frozenset({"SHUFFLE", "SLICE", "CONCATENATION", "GATHER", "IDENTITY", "SQUEEZE", "UNSQUEEZE",
                        "PADDING", "REVERSE_SEQUENCE", "ITERATOR", "CONDITIONAL_INPUT", "CONDITIONAL_OUTPUT",
                        "LOOP_OUTPUT", "SCATTER"})
#: layers whose output type is one of their parameters
_TYPED = frozenset({"CAST", "FILL", "QUANTIZE", "DEQUANTIZE"})
#: layers that read only their input's shape, whatever its type
_SHAPE_READERS = frozenset({"SHAPE"})
#: where the final-logits walk stops (and which it keeps)
_PRODUCTS = frozenset({"MATRIX_MULTIPLY", "CONVOLUTION", "DECONVOLUTION", "EINSUM"})
_LOGITS_DEPTH = 8


def parse_precision(value: str) -> str:
    """A precision name (``fp16``, ``FP16``, ``half``…) in its canonical form; a bad one is a user error."""
    aliases = {"float32": "fp32", "float": "fp32", "half": "fp16", "float16": "fp16", "bfloat16": "bf16"}
    text = str(value).strip().lower()
    text = aliases.get(text, text)
    if text not in PRECISIONS:
        raise ModelError(f"unknown precision {value!r}", hint=f"use one of {', '.join(PRECISIONS)}")
    return text


@dataclass(frozen=True)
class PrecisionSettings:
    """What the lowering reads (all of it goes into the optimize stage's cache key)."""

    precision: str = "fp32"
    keep_fp32: tuple[str, ...] = ()  #: fnmatch patterns over layer names (TensorFlow node names)
    io: str = "fp32"  #: "fp32": network inputs/outputs stay float32; "native": they take the precision's type
    fallback: tuple[str, ...] = ()  #: layers the automatic fallback keeps in float32

    def __post_init__(self):
        object.__setattr__(self, "precision", parse_precision(self.precision))
        object.__setattr__(self, "keep_fp32", tuple(self.keep_fp32))
        object.__setattr__(self, "fallback", tuple(self.fallback))
        if self.io not in ("fp32", "native"):
            raise ModelError(f"unknown I/O type setting {self.io!r}", hint="use io: fp32 or io: native")

    @property
    def reduced(self) -> bool:
        return self.precision in _TRT_TYPE

    def cache_dict(self) -> dict:
        return {"precision": self.precision, "keep_fp32": list(self.keep_fp32), "io": self.io,
                "fallback": sorted(self.fallback)}


@dataclass
class PrecisionPlan:
    """What :func:`lower` decided: per layer its compute type, and why each float32 layer stayed float32."""

    precision: str
    io: str = "fp32"
    layers: dict[str, str] = field(default_factory=dict)  #: layer name → "fp16"/"bf16"/"fp32" (float layers)
    kept_fp32: dict[str, str] = field(default_factory=dict)  #: layer name → rule / "keep_fp32: PATTERN" / "fallback"
    casts: int = 0
    unmatched_patterns: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.layers.values():
            out[p] = out.get(p, 0) + 1
        return out

    def to_json(self) -> dict:
        return {"precision": self.precision, "io": self.io, "counts": self.counts(), "casts": self.casts,
                "kept_fp32": dict(sorted(self.kept_fp32.items())), "layers": dict(sorted(self.layers.items()))}

    def summary(self) -> str:
        c = self.counts()
        target = self.precision
        return (f"{c.get(target, 0)} layers in {target}, {c.get('fp32', 0)} kept in fp32, {self.casts} casts"
                if target in _TRT_TYPE else f"{c.get('fp32', 0)} layers in fp32")


# --------------------------------------------------------------------------- the policy

def _elements(shape, axes_mask: int) -> float:
    if shape is None:
        return float("inf")
    n = 1.0
    for i, d in enumerate(shape):
        if axes_mask >> i & 1:
            if d < 0:
                return float("inf")
            n *= d
    return n


def _policy_reason(rec: dict, tensors: dict, snapshot: Snapshot, precision: str, constants: dict) -> str | None:
    """The policy rule that keeps layer ``rec`` in float32, or None."""
    kind = rec["type"]
    params = rec.get("params") or {}
    outs = [o["dtype"] for o in rec["outputs"]]
    ins = [tensors[n]["dtype"] for n in rec["inputs"] if n is not None and n in tensors]
    if kind in _TYPED:
        return "typed"
    if kind == "SOFTMAX":
        return "softmax"
    if kind == "NORMALIZATION":
        return "normalization"
    if kind == "REDUCE" and params.get("op") in ("SUM", "AVG", "PROD"):
        shape = tensors.get(rec["inputs"][0], {}).get("shape")
        if _elements(shape, int(params.get("axes", 0))) > LONG_REDUCTION:
            return "long-reduction"
    if kind == "UNARY" and params.get("op") in ("EXP", "LOG"):
        return "exp-log-pow"
    if kind == "ELEMENTWISE" and params.get("op") == "POW":
        return "exp-log-pow"
    if any(d == "FLOAT" for d in ins) and outs and not any(d == "FLOAT" for d in outs):
        return "integer-result"
    if precision == "fp16":
        limit = [float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0))
                 for a in snapshot.layer_weights(rec).values() if np.asarray(a).dtype.kind == "f"]
        limit += [constants[n] for n in rec["inputs"] if n in constants]
        if limit and max(limit) > FP16_MAX:
            return "out-of-range"
    return None


def _final_logits(snapshot: Snapshot, producer: dict[str, dict], tensors: dict, const_outputs: set) -> set[str]:
    """Layers from each float network output back to (and including) the last matrix product/convolution."""
    keep: set[str] = set()
    for name in snapshot.outputs:
        if tensors.get(name, {}).get("dtype") != "FLOAT":
            continue
        rec = producer.get(name)
        path: list[str] = []
        for _ in range(_LOGITS_DEPTH):
            if rec is None:
                break
            path.append(rec["name"])
            if rec["type"] in _PRODUCTS:
                keep.update(path)
                break
            data = [n for n in rec["inputs"] if n is not None and n not in const_outputs
                    and tensors.get(n, {}).get("dtype") == "FLOAT"]
            if len(data) != 1:
                break
            rec = producer.get(data[0])
    return keep


# --------------------------------------------------------------------------- lowering

def _is_float_layer(rec: dict, tensors: dict) -> bool:
    if rec["type"] in _SHAPE_READERS:
        return False
    dtypes = [o["dtype"] for o in rec["outputs"]] + [tensors[n]["dtype"] for n in rec["inputs"]
                                                     if n is not None and n in tensors]
    return "FLOAT" in dtypes


def _to_type(arr: np.ndarray, trt_type: str) -> np.ndarray:
    from converter.layers._numpy import np_dtype

    return np.asarray(arr).astype(np_dtype(trt_type))


def lower(snapshot: Snapshot, settings: PrecisionSettings) -> tuple[Snapshot, PrecisionPlan]:
    """The strongly typed snapshot computing in ``settings.precision``, and the plan of what runs in what.

    fp32 and int8 (whose Q/DQ layers the converters place) return the snapshot unchanged.  The input is
    never modified.  Raises :class:`ModelError` for a ``keep_fp32`` pattern that matches no layer (a typo
    would otherwise silently keep nothing).
    """
    plan = PrecisionPlan(settings.precision, settings.io)
    if not settings.reduced:
        return snapshot, plan
    target = _TRT_TYPE[settings.precision]
    tname = settings.precision
    topo = copy.deepcopy(snapshot.topology)
    tensors = {t["name"]: t for t in topo["inputs"]}
    for rec in topo["layers"]:
        for out in rec["outputs"]:
            tensors[out["name"]] = out
    producer = {out["name"]: rec for rec in topo["layers"] for out in rec["outputs"]}
    tensors = {name: dict(t) for name, t in tensors.items()}  # the fp32 records, untouched by the rewrite
    const_outputs = {rec["outputs"][0]["name"] for rec in topo["layers"] if rec["type"] == "CONSTANT"}
    const_range: dict[str, float] = {}
    for rec in topo["layers"]:
        if rec["type"] == "CONSTANT" and rec["outputs"][0]["dtype"] == "FLOAT":
            arr = np.asarray(snapshot.weights[rec["weights"]["weights"]])
            finite = np.abs(arr[np.isfinite(arr)])
            const_range[rec["outputs"][0]["name"]] = float(finite.max()) if finite.size else 0.0

    # 1. compute types: policy, user patterns, fallback
    logits = _final_logits(snapshot, producer, tensors, const_outputs)
    used_patterns: set[str] = set()
    compute: dict[str, str] = {}  # layer name → TensorRT type it computes in (float layers only)
    constants_deferred = []
    for rec in topo["layers"]:
        if not _is_float_layer(rec, tensors):
            continue
        name = rec["name"]
        if rec["type"] == "CONSTANT":
            constants_deferred.append(rec)
            continue
        reason = None
        for pattern in settings.keep_fp32:
            if fnmatch.fnmatchcase(name, pattern):
                used_patterns.add(pattern)
                reason = reason or f"keep_fp32: {pattern}"
        if reason is None and name in settings.fallback:
            reason = "fallback"
        if reason is None:
            reason = _policy_reason(rec, tensors, snapshot, settings.precision, const_range)
        if reason is None and name in logits:
            reason = "final-logits"
        if reason is None and rec["type"] in _FOLLOWERS:
            compute[name] = ""  # decided from its inputs' types, below
            continue
        compute[name] = "FLOAT" if reason else target
        if reason:
            plan.kept_fp32[name] = reason
    unmatched = [p for p in settings.keep_fp32 if p not in used_patterns]
    if unmatched:
        import difflib

        names = [r["name"] for r in topo["layers"] if r["name"] in compute]
        near = difflib.get_close_matches(unmatched[0].replace("*", ""), names, n=3, cutoff=0.3) or names[:3]
        raise ModelError(f"keep_fp32 pattern(s) {unmatched} match no layer of the network",
                         hint="patterns are fnmatch globs over the layers' names, which are the TensorFlow node "
                              "names (like '*/attention/*'); layers of this network include "
                              + ", ".join(repr(n) for n in near))

    # 2. tensor types, in order (followers take their inputs' type; back edges are read later)
    new_type: dict[str, str] = {}
    for t in topo["inputs"]:
        new_type[t["name"]] = target if (settings.io == "native" and t["dtype"] == "FLOAT") else t["dtype"]
    consumers: dict[str, list[dict]] = {}
    for rec in topo["layers"]:
        for n in rec["inputs"]:
            if n is not None:
                consumers.setdefault(n, []).append(rec)
    deferred_names = {c["name"] for c in constants_deferred}
    for rec in topo["layers"]:
        name = rec["name"]
        if rec["type"] == "CONSTANT" and name in deferred_names:
            continue
        if name in compute and compute[name] == "":
            kinds = {new_type.get(n, tensors[n]["dtype"]) for n in rec["inputs"]
                     if n is not None and tensors.get(n, {}).get("dtype") == "FLOAT"}
            compute[name] = kinds.pop() if len(kinds) == 1 and None not in kinds else target
        for out in rec["outputs"]:
            ctype = compute.get(name)
            new_type[out["name"]] = ctype if (ctype and out["dtype"] == "FLOAT") else out["dtype"]
    # constants: in their consumers' type when they all agree, else float32 (cast where needed)
    for rec in constants_deferred:
        out = rec["outputs"][0]["name"]
        wants = {compute.get(c["name"]) or "FLOAT" for c in consumers.get(out, [])
                 if c["type"] not in _SHAPE_READERS}
        ctype = wants.pop() if len(wants) == 1 else "FLOAT"
        compute[rec["name"]] = ctype
        new_type[out] = ctype
    for rec in topo["layers"]:
        if rec["name"] in compute:
            plan.layers[rec["name"]] = _NAME_OF[compute[rec["name"]]]

    # 3. rewrite: weights in the layer's type, output dtypes, casts where types differ
    weights = dict(snapshot.weights)
    casts: dict[tuple[str, str], str] = {}  # (tensor, type) → cast output name
    pending: dict[str, list[dict]] = {}  # producer name (or "" for network inputs) → casts to insert after it

    def cast_of(tensor: str, want: str) -> str:
        key = (tensor, want)
        if key not in casts:
            out = f"{tensor}/cast_{_NAME_OF[want]}"
            casts[key] = out
            rec = {"name": out, "type": "CAST", "inputs": [tensor],
                   "outputs": [{"name": out, "dtype": want, "shape": tensors[tensor]["shape"]}],
                   "params": {"to_type": want}, "weights": {}}
            owner = producer.get(tensor)
            pending.setdefault(owner["name"] if owner else "", []).append(rec)
        return casts[key]

    for rec in topo["layers"]:
        ctype = compute.get(rec["name"])
        if ctype is None:
            continue
        for out in rec["outputs"]:
            out["dtype"] = new_type[out["name"]]
        if ctype != "FLOAT" or rec["type"] == "CONSTANT":
            for role, key in rec["weights"].items():
                arr = weights[key]
                if np.asarray(arr).dtype == np.float32 and ctype in ("HALF", "BF16"):
                    weights[key] = _to_type(arr, ctype)
        if rec["type"] in _SHAPE_READERS:
            continue
        for j, n in enumerate(rec["inputs"]):
            if n is None or tensors.get(n, {}).get("dtype") != "FLOAT":
                continue
            have = new_type[n]
            want = ctype if ctype in FLOAT_TYPES else "FLOAT"
            if rec["type"] in _TYPED and rec["type"] != "CAST":
                want = "FLOAT"
            elif rec["type"] == "CAST":
                want = have  # a cast reads any type
            if have != want:
                rec["inputs"][j] = cast_of(n, want)
    # network outputs: back to float32 under their own names
    renames = {}
    if settings.io == "fp32":
        for name in topo["outputs"]:
            if tensors.get(name, {}).get("dtype") == "FLOAT" and new_type.get(name) != "FLOAT":
                renames[name] = f"{name}/{tname}"
    if renames:
        for rec in topo["layers"]:
            for out in rec["outputs"]:
                if out["name"] in renames:
                    old = out["name"]
                    out["name"] = renames[old]
                    rec_out = {"name": f"{renames[old]}/cast_fp32", "type": "CAST", "inputs": [renames[old]],
                               "outputs": [{"name": old, "dtype": "FLOAT", "shape": out["shape"]}],
                               "params": {"to_type": "FLOAT"}, "weights": {}}
                    pending.setdefault(rec["name"], []).append(rec_out)
            rec["inputs"] = [renames.get(n, n) if n is not None else None for n in rec["inputs"]]
        for group in pending.values():
            for c in group:
                if c["inputs"][0] in renames and c["name"] not in renames:
                    c["inputs"] = [renames[c["inputs"][0]]]
    layers = list(pending.get("", []))
    for rec in topo["layers"]:
        layers.append(rec)
        layers.extend(pending.get(rec["name"], []))
    for t in topo["inputs"]:
        t["dtype"] = new_type[t["name"]]
    topo["layers"] = layers
    topo["strongly_typed"] = True
    topo.pop("meta", None)
    plan.casts = sum(1 for rec in layers if rec["type"] == "CAST") - sum(
        1 for rec in snapshot.layers if rec["type"] == "CAST")
    # weight keys follow the layer positions; re-key so every layer's weights are its own
    out_weights: dict[str, np.ndarray] = {}
    for position, rec in enumerate(layers):
        new = {}
        for role, key in sorted(rec["weights"].items()):
            new_key = f"{position:05d}/{role}"
            out_weights[new_key] = weights[key]
            new[role] = new_key
        rec["weights"] = new
    lowered = Snapshot(topo, out_weights)
    lowered.meta = dict(snapshot.meta, precision=plan.to_json())
    log.info("precision %s: %s", tname, plan.summary())
    return lowered, plan
