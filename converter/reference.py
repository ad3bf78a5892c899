"""Reference executor: runs a :class:`~converter.snapshot.Snapshot` layer by layer in numpy.

Each layer follows TensorRT's *documented* operator semantics (the TensorRT
operator reference and the ``I*Layer`` API documentation), independent of any
converter.  It is meant as an oracle to compare converted networks against the
source framework without a GPU, and to bisect divergences
(``run(..., keep_intermediates=True)`` returns every tensor by name; a tensor of a
loop body has its value in the loop's last iteration).

This module is the generic loop only: what each layer computes lives with its
kind in :mod:`converter.layers` (``prepare`` once per executor, ``run`` per
call).  Reduced precision (fp16/bf16, :mod:`converter.precision`) is emulated as TensorRT runs it: a
layer's inputs and weights hold values of its type, its arithmetic runs in float32 (where TensorRT's
kernels accumulate), and its outputs are rounded to the recorded type (round to nearest even).
Floating point work stays in float32 (no float64 upcasts on the hot
paths); BLAS runs single-threaded while the executor runs, and big matrix
products are split over a small pool instead (see :mod:`converter.layers._numpy`).
TensorRT loops run as single nodes whose bodies are evaluated once per iteration
(:mod:`converter.layers._regions` says which layers form a loop and how it runs).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from converter import layers as layer_kinds
from converter.layers import _regions
from converter.errors import ExecutorError, FeedError, UnsupportedLayerError
from converter.layers._numpy import np_dtype as _np_dtype
from converter.layers._numpy import single_threaded_blas as _single_threaded_blas
from converter.snapshot import Snapshot

log = logging.getLogger(__name__)

__all__ = ["ExecutorError", "FeedError", "UnsupportedLayerError", "ReferenceExecutor", "SUPPORTED_LAYER_TYPES"]

#: layer types the executor can evaluate (every registered kind with numpy semantics)
SUPPORTED_LAYER_TYPES = frozenset(name for name, kind in layer_kinds.KINDS.items() if kind.run is not None)


_NARROW_FLOATS = tuple(np.dtype(_np_dtype(n)) for n in ("HALF", "BF16"))


def _widen(value):
    """fp16/bf16 values as float32 (exact): a reduced-precision layer computes in float32, see the docstring."""
    if isinstance(value, np.ndarray) and value.dtype in _NARROW_FLOATS:
        return value.astype(np.float32)
    return value


class ReferenceExecutor:
    """Evaluate a snapshot with numpy.

    ``run(feeds, outputs=None, keep_intermediates=False)`` returns the network
    outputs (or the requested tensors) by name; only layers needed for them are
    evaluated.  Unsupported layer types raise :class:`UnsupportedLayerError`
    when they are needed.  Each layer's typed parameters are parsed and its
    weights prepared once, here; ``timings`` (a dict) collects seconds and
    calls per layer type, for ``bench/executor.py``.
    """

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self._layers = snapshot.layers
        self._inputs = {t["name"]: t for t in snapshot.inputs}
        self._producer: dict[str, int] = {}
        for i, rec in enumerate(self._layers):
            for out in rec["outputs"]:
                self._producer[out["name"]] = i
        self._kinds: list = []
        self._params: list = []
        self._prepared: list = []
        for rec in self._layers:
            layer_kind = layer_kinds.kind(rec["type"])
            runnable = layer_kind is not None and layer_kind.run is not None
            self._kinds.append(layer_kind if runnable else None)
            if not runnable:  # reported with UnsupportedLayerError only if the layer is needed
                self._params.append(None)
                self._prepared.append(None)
                continue
            params = layer_kind.params.from_json(rec["params"])
            self._params.append(params)
            weights = {k: _widen(v) for k, v in snapshot.layer_weights(rec).items()}
            self._prepared.append(layer_kind.prepared(params, weights))
        # the order of evaluation: single layers, and loops as single nodes (their bodies run per iteration)
        self._nodes = _regions.plan(self._layers, self._kinds, self._params)
        self._node_of: dict[str, int] = {}
        for k, node in enumerate(self._nodes):
            for name in node.outputs:
                self._node_of[name] = k

    def unsupported_layers(self) -> list[tuple[str, str]]:
        return [(r["name"], r["type"]) for r, k in zip(self._layers, self._kinds) if k is None]

    # -------------------------------------------------------------- feeds
    def _check_feeds(self, feeds):
        if not isinstance(feeds, dict):
            raise FeedError("feeds must be a dict of input name -> numpy array")
        unknown = sorted(set(feeds) - set(self._inputs))
        missing = sorted(set(self._inputs) - set(feeds))
        if unknown:
            raise FeedError(f"unknown feed name(s) {unknown}; network inputs are {sorted(self._inputs)}")
        if missing:
            raise FeedError(f"missing feed(s) {missing}; network inputs are {sorted(self._inputs)}")
        values = {}
        for name, rec in self._inputs.items():
            arr = np.asarray(feeds[name])
            want = _np_dtype(rec["dtype"])
            if arr.dtype != want:
                raise FeedError(f"feed {name!r} has dtype {arr.dtype}, the network input is {want} "
                                    f"({rec['dtype']})")
            shape = rec["shape"]
            if arr.ndim != len(shape) or any(d >= 0 and d != s for d, s in zip(shape, arr.shape)):
                raise FeedError(f"feed {name!r} has shape {arr.shape}, the network input is {tuple(shape)}")
            values[name] = arr
        profiles = self.snapshot.profiles
        if profiles:
            from converter.profiles import in_profiles, profile_from_json

            shapes = {name: tuple(arr.shape) for name, arr in values.items()}
            if not in_profiles([profile_from_json(p) for p in profiles], shapes):
                ranges = "; ".join(", ".join(f"{n} {r['min']}..{r['max']}" for n, r in sorted(p.items()))
                                   for p in profiles)
                raise FeedError(f"feed shapes {shapes} are outside every optimization profile of the network "
                                f"({ranges})", hint="feed shapes inside a profile, or rebuild with a wider "
                                "--profile NAME:MIN,OPT,MAX")
        return values

    # -------------------------------------------------------------- run
    def run(self, feeds: dict, outputs: list[str] | None = None, keep_intermediates: bool = False,
            timings: dict | None = None) -> dict:
        with _single_threaded_blas():
            return self._run(feeds, outputs, keep_intermediates, timings)

    def _run(self, feeds: dict, outputs, keep_intermediates: bool, timings: dict | None) -> dict:
        values = self._check_feeds(feeds)
        wanted = list(self.snapshot.outputs if outputs is None else outputs)
        for name in wanted:
            if name not in self._producer and name not in self._inputs:
                raise FeedError(f"requested tensor {name!r} is not in the network")
        nodes = self._nodes
        # nodes needed (or all of them for keep_intermediates)
        if keep_intermediates:
            needed = set(range(len(nodes)))
        else:
            needed = set()
            stack = [self._node_of[n] for n in wanted if n in self._node_of]
            while stack:
                k = stack.pop()
                if k in needed:
                    continue
                needed.add(k)
                stack.extend(self._node_of[n] for n in nodes[k].inputs if n in self._node_of)
        # last use of each tensor so memory can be released
        last_use: dict[str, int] = {}
        for k in sorted(needed):
            for name in nodes[k].inputs:
                last_use[name] = k
        keep = set(wanted)
        run_node = self._node_runner(keep_intermediates, timings)
        for k in sorted(needed):
            node = nodes[k]
            run_node(node, values)
            if not keep_intermediates:
                for name in node.inputs:
                    if last_use.get(name) == k and name not in keep and name not in self._inputs:
                        values.pop(name, None)
        if keep_intermediates:
            return values
        return {name: values[name] for name in wanted}

    def _node_runner(self, keep_intermediates: bool, timings: dict | None):
        """``run_node(node, scope)``: one layer, or a whole loop/conditional (:mod:`converter.layers._regions`)."""

        def run_node(node, scope):
            if isinstance(node, _regions.Region):
                results, last = node.run(scope, run_node, self._store)
                scope.update(results)
                if keep_intermediates:
                    for name, value in last.items():
                        scope.setdefault(name, value)
            else:
                self._run_layer(node.index, scope, timings)

        return run_node

    def _run_layer(self, i: int, values, timings: dict | None) -> None:
        rec = self._layers[i]
        layer_kind = self._kinds[i]
        if layer_kind is None:
            raise UnsupportedLayerError(rec["name"], rec["type"])
        try:
            ins = [None if n is None else _widen(values[n]) for n in rec["inputs"]]
        except KeyError as exc:  # pragma: no cover - topologically sorted by TensorRT
            raise ExecutorError(f"layer {rec['name']!r}: input {exc} not computed") from None
        start = time.perf_counter() if timings is not None else 0.0
        try:
            results = layer_kind.run(rec, self._params[i], self._prepared[i], ins)
        except ExecutorError:
            raise
        except Exception as exc:
            raise ExecutorError(f"layer {rec['name']!r} ({rec['type']}) failed: {type(exc).__name__}: "
                                f"{exc}") from exc
        if timings is not None:
            slot = timings.setdefault(rec["type"], [0.0, 0])
            slot[0] += time.perf_counter() - start
            slot[1] += 1
        self._store(i, results, values)

    def _store(self, i: int, results, values) -> None:
        """Write layer ``i``'s results into ``values``, in the recorded dtypes, checking the recorded shapes."""
        rec = self._layers[i]
        if not isinstance(results, (list, tuple)):
            results = [results]
        for out_rec, value in zip(rec["outputs"], results):
            value = np.asarray(value)
            dtype = _np_dtype(out_rec["dtype"])
            if value.dtype != dtype:
                with np.errstate(over="ignore"):  # rounding to fp16 overflows to inf, as TensorRT does
                    value = value.astype(dtype)
            shape = out_rec["shape"]
            if shape is not None and (len(shape) != value.ndim or any(
                    d >= 0 and d != s for d, s in zip(shape, value.shape))):
                raise ExecutorError(f"layer {rec['name']!r} ({rec['type']}) produced shape {value.shape} for "
                                    f"{out_rec['name']!r}; TensorRT inferred {tuple(shape)}")
            values[out_rec["name"]] = value
