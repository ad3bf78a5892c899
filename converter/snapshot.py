"""Network snapshots: a built ``INetworkDefinition`` read back into plain data.

A :class:`Snapshot` is a JSON topology (layers, their parameters, tensor names,
dtypes and shapes, network inputs/outputs) plus one weights archive.  It is
read *through the TensorRT API* (``network.get_layer(i)`` and each concrete
layer's attributes), so it records what TensorRT actually holds, not what a
converter meant to build.  A snapshot can be saved, loaded, compared, hashed,
executed in numpy (:mod:`converter.reference`) and rebuilt into an identical
network without TensorFlow (:meth:`Snapshot.to_network`).

Layer record::

    {"name": str, "type": <TensorRT LayerType name>, "inputs": [tensor name | None, ...],
     "outputs": [{"name", "dtype", "shape"}], "params": {...},
     "weights": {role: key in the weights archive}}

``params`` is the JSON of the kind's typed parameter record and ``weights``
holds its named weight roles, with the logical shapes the kind defines: this
module is a generic loop over :mod:`converter.layers`, which owns every kind's
``read`` and ``add``.  Format 2 writes every field of each record; format-1
snapshots (which omitted version-dependent fields) are upgraded on load.

Lifetime: TensorRT keeps raw pointers to the weights given to
``add_convolution_nd``/``add_constant``/...; :meth:`Snapshot.to_network`
therefore keeps every array it hands to TensorRT in ``self._keepalive`` (one list
per built network).  Keep the Snapshot alive as long as the network (or any
engine built from it before serialization) is in use.
"""

from __future__ import annotations

import collections
import io
import json
import os
import tempfile
from typing import Any

import numpy as np

from converter import layers as layer_kinds
from converter import trt as trtshim
from converter.errors import DamagedSnapshotError, SnapshotError  # noqa: F401 - SnapshotError is re-exported
from converter.layers.base import decode_float, encode_float  # noqa: F401 - re-exported

FORMAT = "tf2trt-snapshot/2"
#: formats this version reads; older ones are upgraded on load (see :func:`upgrade_topology`)
READABLE_FORMATS = ("tf2trt-snapshot/1", FORMAT)
JSON_NAME = "network.json"
WEIGHTS_NAME = "weights.npz"

__all__ = ["FORMAT", "Snapshot", "SnapshotError", "canonical_json"]


# --------------------------------------------------------------------------- helpers

def _dims(value):
    if value is None:
        return None
    try:
        return [int(v) for v in value]
    except TypeError:
        return None


def _enum(value):
    return value.name


def canonical_json(obj) -> str:
    """Sorted-keys strict JSON (NaN/inf refused: encode them first)."""
    return json.dumps(obj, sort_keys=True, allow_nan=False, separators=(",", ":"))


def _dtype_name(trt_dtype) -> str:
    return trt_dtype.name


def _trt_dtype(name: str):
    return getattr(trtshim.module().DataType, name)


SUPPORTED_LAYER_TYPES = layer_kinds.SUPPORTED_LAYER_TYPES


# --------------------------------------------------------------------------- bfloat16 in archives

#: archive-key suffix of a bfloat16 weight stored as its uint16 bit pattern (``.npy`` has no bfloat16 type)
_BF16_SUFFIX = "::BF16"


def _archive_arrays(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Weights as ``.npy``-storable arrays: bfloat16 ones become their uint16 bits under a suffixed key."""
    out = {}
    for key, arr in weights.items():
        if trtshim.is_bfloat16(arr):
            out[key + _BF16_SUFFIX] = np.require(arr, requirements="C").view(np.uint16)
        else:
            out[key] = arr
    return out


def _from_archive(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of :func:`_archive_arrays`."""
    out = {}
    for key, arr in arrays.items():
        if key.endswith(_BF16_SUFFIX):
            import ml_dtypes

            out[key[:-len(_BF16_SUFFIX)]] = np.asarray(arr, np.uint16).view(ml_dtypes.bfloat16)
        else:
            out[key] = arr
    return out


# --------------------------------------------------------------------------- snapshot

def _back_edges(type_name: str) -> tuple[int, ...]:
    layer_kind = layer_kinds.kind(type_name)
    return layer_kind.back_edges if layer_kind is not None else ()


def _topological_order(network) -> list[int]:
    """Layer indices in a dependency order, keeping TensorRT's order where it already is one.

    TensorRT's ONNX parser sometimes rewires an earlier layer's input to a tensor produced later
    (``set_input``), so index order is not always topological; snapshots store layers in this
    order so a rebuilt network can add each layer after its inputs exist.  Inputs a kind declares
    back edges (a loop recurrence's next value) are not dependencies: they close a loop, and
    :meth:`Snapshot.to_network` sets them once every layer exists.
    """
    import heapq

    count = network.num_layers
    available = {network.get_input(i).name for i in range(network.num_inputs)}
    producer: dict[str, int] = {}
    needs: list[set[str]] = []
    for index in range(count):
        layer = network.get_layer(index)
        for j in range(layer.num_outputs):
            producer[layer.get_output(j).name] = index
        names = set()
        back_edges = _back_edges(layer.type.name)
        for j in range(layer.num_inputs):
            tensor = layer.get_input(j)
            if tensor is not None and j not in back_edges:
                names.add(tensor.name)
        needs.append(names)
    waiting: dict[int, int] = {}
    consumers: dict[int, list[int]] = {}
    ready: list[int] = []
    for index, names in enumerate(needs):
        deps = set()
        for name in names:
            if name in available:
                continue
            if name not in producer:
                raise SnapshotError(f"layer {network.get_layer(index).name!r} reads tensor {name!r}, which no layer "
                                    "produces and which is not a network input")
            deps.add(producer[name])
        waiting[index] = len(deps)
        for d in deps:
            consumers.setdefault(d, []).append(index)
        if not deps:
            heapq.heappush(ready, index)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for c in consumers.get(index, ()):
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, c)
    if len(order) != count:
        raise SnapshotError("the network has a dependency cycle that is not closed by a loop recurrence")
    return order


def upgrade_topology(topology: dict) -> dict:
    """A topology of any readable format in the current one.

    Format 1 (tf2trt ≤ 0.x, before the per-kind layer modules) wrote some parameters only when the
    TensorRT version had them (``indices_type``, slice ``axes``, ``v2`` of normalization…); format 2 writes
    every field of the kind's typed record.  Upgrading parses each layer's parameters with its kind's
    record (unknown keys are an error, missing ones take the field's default) and writes them back whole,
    so a format-1 snapshot rebuilds, runs and hashes like the format-2 snapshot of the same network.
    """
    if topology.get("format") == FORMAT:
        return topology
    layers = []
    for rec in topology.get("layers", []):
        layer_kind = layer_kinds.kind(rec.get("type"))
        if layer_kind is not None:
            rec = dict(rec, params=layer_kind.params.from_json(rec.get("params") or {}).to_json())
        layers.append(rec)
    return dict(topology, format=FORMAT, layers=layers)


def _tensor_record(tensor) -> dict:
    return {"name": tensor.name, "dtype": _dtype_name(tensor.dtype), "shape": _dims(tensor.shape)}


class Snapshot:
    """A TensorRT network as JSON-able topology + named numpy weights.

    ``meta`` holds free-form JSON-able annotations (for example which TensorFlow
    tensor each TensorRT tensor stands for).  It is saved with the snapshot but is
    not part of the network's identity: ``==`` and :meth:`digest` ignore it.
    """

    def __init__(self, topology: dict, weights: dict[str, np.ndarray]):
        if topology.get("format") not in READABLE_FORMATS:
            raise DamagedSnapshotError(f"not a tf2trt network snapshot this version reads "
                                       f"(format={topology.get('format')!r}; reads {', '.join(READABLE_FORMATS)})",
                                       hint="rebuild it with this tf2trt (the pipeline does so when its cache "
                                            "key changes)")
        topology = upgrade_topology(dict(topology))
        self.meta: dict = dict(topology.pop("meta", None) or {})
        self.topology = topology
        self.weights = {k: np.asarray(v) for k, v in weights.items()}
        self._keepalive: list[list[np.ndarray]] = []

    # ------------------------------------------------------------ read a network
    @classmethod
    def from_network(cls, network) -> "Snapshot":
        layers = []
        weights: dict[str, np.ndarray] = {}
        producers: dict[str, str] = {}
        inputs = []
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            inputs.append(_tensor_record(tensor))
            producers[tensor.name] = "<network input>"
        for index in _topological_order(network):
            layer = network.get_layer(index)
            type_name = layer.type.name
            position = len(layers)
            layer_kind = layer_kinds.kind(type_name)
            if layer_kind is None:
                raise SnapshotError(
                    f"layer {index} {layer.name!r} has type {type_name}, which snapshots do not support "
                    f"(supported: {', '.join(sorted(SUPPORTED_LAYER_TYPES))})")
            trtshim.concrete_layer(layer)
            try:
                typed, layer_weights = layer_kind.read(layer)
                params = typed.to_json()
            except SnapshotError:
                raise
            except Exception as exc:  # pragma: no cover - API drift
                raise SnapshotError(f"layer {layer.name!r} ({type_name}): cannot read parameters: {exc}") from exc
            in_names = []
            for j in range(layer.num_inputs):
                tensor = layer.get_input(j)
                in_names.append(None if tensor is None else tensor.name)
            outs = []
            for j in range(layer.num_outputs):
                tensor = layer.get_output(j)
                if tensor.name in producers:
                    raise SnapshotError(
                        f"layer {layer.name!r}: output tensor name {tensor.name!r} is not unique in the network")
                producers[tensor.name] = layer.name
                outs.append(_tensor_record(tensor))
            record = {"name": layer.name, "type": type_name, "inputs": in_names, "outputs": outs,
                      "params": params, "weights": {}}
            if getattr(layer, "precision_is_set", False):
                record["precision"] = _enum(layer.precision)
            out_types = {}
            for j in range(layer.num_outputs):
                is_set = getattr(layer, "output_type_is_set", None)
                if is_set is not None and is_set(j):
                    out_types[str(j)] = _enum(layer.get_output_type(j))
            if out_types:
                record["output_types"] = out_types
            for role, arr in sorted(layer_weights.items()):
                key = f"{position:05d}/{role}"
                weights[key] = arr
                record["weights"][role] = key
            layers.append(record)
        outputs = [network.get_output(i).name for i in range(network.num_outputs)]
        strongly = False
        flag = getattr(trtshim.module().NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if flag is not None:
            strongly = bool(network.get_flag(flag))
        topology = {"format": FORMAT, "inputs": inputs, "outputs": outputs, "layers": layers,
                    "strongly_typed": strongly}
        canonical_json(topology)  # fail early on anything not strict JSON
        return cls(topology, weights)

    # ------------------------------------------------------------ accessors
    @property
    def layers(self) -> list[dict]:
        return self.topology["layers"]

    @property
    def inputs(self) -> list[dict]:
        return self.topology["inputs"]

    @property
    def outputs(self) -> list[str]:
        return self.topology["outputs"]

    @property
    def profiles(self) -> list[dict]:
        """Optimization profiles (JSON form, :mod:`converter.profiles`); [] for a static network."""
        return self.topology.get("profiles", [])

    @property
    def layer_count(self) -> int:
        return len(self.layers)

    def layer_types(self) -> collections.Counter:
        return collections.Counter(layer["type"] for layer in self.layers)

    def layer_weights(self, layer: dict) -> dict[str, np.ndarray]:
        return {role: self.weights[key] for role, key in layer["weights"].items()}

    def tensor_records(self) -> dict[str, dict]:
        """Every tensor (network inputs and layer outputs) by name."""
        out = {t["name"]: t for t in self.inputs}
        for layer in self.layers:
            for t in layer["outputs"]:
                out[t["name"]] = t
        return out

    # ------------------------------------------------------------ rebuild
    def to_network(self, builder=None):
        """Rebuild the network (no TensorFlow needed).  Returns ``(builder, network)``.

        The numpy arrays handed to TensorRT are kept alive in ``self._keepalive`` (with the table of the
        network's loops, :mod:`converter.layers._loops`).  Back-edge inputs (a recurrence's next value)
        are set after every layer has been added.
        """
        trt = trtshim.module()
        builder, network = trtshim.create_network(builder, strongly_typed=self.topology.get("strongly_typed", False))
        keep: list[np.ndarray] = []
        self._keepalive.append(keep)
        tensors: dict[str, Any] = {}
        built: dict[str, Any] = {}  # layer by name, for the back edges set last
        later: list[tuple[dict, int, str]] = []
        for rec in self.inputs:
            tensors[rec["name"]] = network.add_input(rec["name"], _trt_dtype(rec["dtype"]), tuple(rec["shape"]))
        for rec in self.layers:
            layer_kind = layer_kinds.kind(rec["type"])
            if layer_kind is None:
                raise DamagedSnapshotError(f"layer {rec['name']!r}: unknown layer type {rec['type']}")
            names = list(rec["inputs"])
            for j in layer_kind.back_edges:  # set below, once their producers exist
                if j < len(names) and names[j] is not None:
                    later.append((rec, j, names[j]))
                    names[j] = None
            while names and names[-1] is None:
                names.pop()
            try:
                ins = [None if n is None else tensors[n] for n in names]
            except KeyError as exc:
                raise SnapshotError(f"layer {rec['name']!r}: input tensor {exc} is not produced earlier") from None
            layer = layer_kind.add(network, ins, layer_kind.params.from_json(rec["params"]),
                                   self.layer_weights(rec), keep)
            built[rec["name"]] = layer
            if layer is None:
                raise SnapshotError(f"layer {rec['name']!r} ({rec['type']}): TensorRT refused to add it")
            layer.name = rec["name"]
            if "precision" in rec:
                layer.precision = _trt_dtype(rec["precision"])
            for j, dtype_name in rec.get("output_types", {}).items():
                layer.set_output_type(int(j), _trt_dtype(dtype_name))
            if layer.num_outputs != len(rec["outputs"]):
                raise SnapshotError(f"layer {rec['name']!r}: {layer.num_outputs} outputs, expected "
                                    f"{len(rec['outputs'])}")
            for j, out in enumerate(rec["outputs"]):
                tensor = layer.get_output(j)
                tensor.name = out["name"]
                tensors[out["name"]] = tensor
        for rec, j, name in later:
            if name not in tensors:
                raise SnapshotError(f"layer {rec['name']!r}: input tensor {name!r} is produced by no layer")
            built[rec["name"]].set_input(j, tensors[name])
        for name in self.outputs:
            tensor = tensors[name]
            network.mark_output(tensor)
        if not self.topology.get("strongly_typed", False):
            for layer in self.layers:
                for out in layer["outputs"]:
                    if out["name"] in self.outputs:
                        tensors[out["name"]].dtype = _trt_dtype(out["dtype"])
        return builder, network

    # ------------------------------------------------------------ persistence
    def canonical_json(self) -> str:
        return canonical_json(self.topology)

    def save(self, directory) -> None:
        """Write ``network.json`` (canonical; ``meta`` included) and ``weights.npz``, each atomically."""
        os.makedirs(directory, exist_ok=True)
        text = canonical_json(dict(self.topology, meta=self.meta)) if self.meta else self.canonical_json()
        buf = io.BytesIO()
        stored = _archive_arrays(self.weights)
        np.savez(buf, **{k: stored[k] for k in sorted(stored)})
        for name, data in ((WEIGHTS_NAME, buf.getvalue()), (JSON_NAME, text.encode("utf-8"))):
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, os.path.join(directory, name))
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise

    @classmethod
    def load(cls, directory) -> "Snapshot":
        with open(os.path.join(directory, JSON_NAME), encoding="utf-8") as fh:
            topology = json.load(fh)
        with np.load(os.path.join(directory, WEIGHTS_NAME), allow_pickle=False) as data:
            weights = _from_archive({k: np.array(data[k]) for k in data.files})
        return cls(topology, weights)

    _BYTES_HEADER = b"TF2TRTSNAP2\n"

    def to_bytes(self) -> bytes:
        """One deterministic blob (for content-addressed stores).

        Header, JSON length, JSON (with meta), the weight names as a JSON line,
        then each weight as an ``.npy`` stream.  No zip container: ``np.savez``
        stamps the current time into its entries, which would give an identical
        network a new digest on every build.
        """
        text = canonical_json(dict(self.topology, meta=self.meta)).encode("utf-8")
        buf = io.BytesIO()
        buf.write(self._BYTES_HEADER + str(len(text)).encode() + b"\n" + text)
        stored = _archive_arrays(self.weights)
        names = sorted(stored)
        buf.write((json.dumps(names) + "\n").encode())
        for name in names:
            np.save(buf, np.require(stored[name], requirements="C"), allow_pickle=False)  # 0-d stays 0-d
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Snapshot":
        if not data.startswith(cls._BYTES_HEADER):
            raise DamagedSnapshotError("not a tf2trt network snapshot blob (or one from an older format)")
        buf = io.BytesIO(data)
        buf.seek(len(cls._BYTES_HEADER))
        try:
            size = int(buf.readline())
            topology = json.loads(buf.read(size))
            names = json.loads(buf.readline())
            weights = _from_archive({name: np.load(buf, allow_pickle=False) for name in names})
        except Exception as exc:  # noqa: BLE001 - any decoding failure means a damaged blob
            raise DamagedSnapshotError(f"damaged network snapshot: {exc}") from exc
        return cls(topology, weights)

    def digest(self) -> str:
        try:
            import blake3
            hasher = blake3.blake3()
        except ImportError:  # pragma: no cover - blake3 is a dependency
            import hashlib
            hasher = hashlib.sha256()
        hasher.update(self.canonical_json().encode("utf-8"))
        for key in sorted(self.weights):
            arr = np.ascontiguousarray(self.weights[key])
            hasher.update(key.encode("utf-8"))
            hasher.update(str(arr.dtype.str).encode("ascii"))
            hasher.update(repr(arr.shape).encode("ascii"))
            hasher.update(arr.tobytes())
        return hasher.hexdigest()

    def __eq__(self, other) -> bool:
        if not isinstance(other, Snapshot):
            return NotImplemented
        if self.canonical_json() != other.canonical_json():
            return False
        if sorted(self.weights) != sorted(other.weights):
            return False
        for key, arr in self.weights.items():
            b = other.weights[key]
            if arr.dtype != b.dtype or arr.shape != b.shape or arr.tobytes() != b.tobytes():
                return False
        return True

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"<Snapshot {self.layer_count} layers, {len(self.weights)} weights>"
