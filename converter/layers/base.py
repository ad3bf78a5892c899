"""What every layer kind shares: typed parameters that round-trip through JSON, and the registry.

A layer kind (one module under :mod:`converter.layers`) owns everything that
one TensorRT layer type means to tf2trt:

* ``Params`` — a frozen dataclass of the layer's attributes, with the JSON
  encoding used by snapshots (:meth:`LayerParams.to_json` /
  :meth:`LayerParams.from_json`); enum-valued attributes are stored by their
  TensorRT member name, so parameters never depend on which TensorRT module
  is loaded;
* ``ROLES`` — the names of the weights the layer holds (``kernel``, ``bias``…);
* ``add(network, inputs, params, weights, keep)`` — the one way the layer is
  created, by the converters (through :meth:`ConversionContext.add`) and by
  :meth:`Snapshot.to_network` alike;
* ``read(layer)`` — ``(params, weights)`` read back from a built layer;
* ``prepare(params, weights)`` / ``run(rec, params, prepared, inputs)`` — its
  numpy semantics for the reference executor;
* ``back_edges`` — input positions that may be produced *later* in the network (a loop
  recurrence's next value): dependency orders skip them and rebuilds set them last;
* ``region`` — for the boundary layers of a control-flow region (``"loop"``), the region
  family: the executor runs such layers together with their body
  (:mod:`converter.layers._regions`), never one by one.

:func:`register` files the kind under its TensorRT ``LayerType`` name and
refuses a second registration, so two modules can never disagree silently.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from converter import trt as trtshim
from converter.errors import SnapshotError

__all__ = ["LayerKind", "LayerParams", "KINDS", "register", "kind", "encode_float", "decode_float"]


# --------------------------------------------------------------------------- JSON encoding

def encode_float(value) -> float | str:
    """A float as strict JSON: NaN and ±inf become the strings "nan", "inf", "-inf"."""
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def decode_float(value) -> float:
    """Inverse of :func:`encode_float`."""
    return float(value)


def _field_kinds(cls) -> dict[str, str]:
    """Per field: "float", "floats" (a tuple of floats), "ints" (a tuple of ints) or "plain"."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        text = str(hints.get(f.name, f.type))
        if "tuple[float" in text:
            out[f.name] = "floats"
        elif "tuple" in text:
            out[f.name] = "ints"
        elif "float" in text:
            out[f.name] = "float"
        else:
            out[f.name] = "plain"
    return out


@dataclass(frozen=True)
class LayerParams:
    """Base of every kind's parameter record.

    Fields are plain values: ints, bools, strings (TensorRT enum member names),
    floats (NaN/inf encoded as strings in JSON), tuples of ints or floats, or
    None for "not set".  Unknown keys in JSON are an error (a snapshot written by
    a newer tf2trt, or a damaged one); missing keys take the field's default.
    """

    _kinds: ClassVar[dict[str, str] | None] = None

    @classmethod
    def _field_kinds(cls) -> dict[str, str]:
        if cls.__dict__.get("_kinds") is None:
            cls._kinds = _field_kinds(cls)
        return cls._kinds

    def to_json(self) -> dict:
        out = {}
        for name, how in self._field_kinds().items():
            value = getattr(self, name)
            if value is None:
                out[name] = None
            elif how == "float":
                out[name] = encode_float(value) if isinstance(value, float) else value
            elif how == "floats":
                out[name] = [encode_float(v) for v in value]
            elif how == "ints":
                out[name] = [int(v) for v in value]
            else:
                out[name] = value
        return out

    @classmethod
    def from_json(cls, data: dict) -> "LayerParams":
        kinds = cls._field_kinds()
        unknown = sorted(set(data) - set(kinds))
        if unknown:
            raise SnapshotError(f"{cls.__module__.rsplit('.', 1)[-1]} layer: unknown parameter(s) {unknown}",
                                hint="the snapshot was written by a newer tf2trt or is damaged")
        values = {}
        for name, value in data.items():
            how = kinds[name]
            if value is None:
                values[name] = None
            elif how == "float":
                values[name] = decode_float(value) if isinstance(value, (str, float)) else value
            elif how == "floats":
                values[name] = tuple(decode_float(v) for v in value)
            elif how == "ints":
                values[name] = tuple(int(v) for v in value)
            else:
                values[name] = value
        try:
            return cls(**values)
        except TypeError as exc:
            raise SnapshotError(f"{cls.__module__.rsplit('.', 1)[-1]} layer: {exc}",
                                hint="the snapshot is damaged or was written by an incompatible tf2trt") from None


# --------------------------------------------------------------------------- the registry

@dataclass(frozen=True)
class LayerKind:
    """One TensorRT layer type and everything tf2trt knows about it (see the module docstring)."""

    type_name: str
    params: type
    add: Callable
    read: Callable
    run: Callable | None = None
    prepare: Callable | None = None
    roles: tuple[str, ...] = ()
    module: str = ""
    back_edges: tuple[int, ...] = ()
    region: str | None = None

    def prepared(self, params, weights: dict):
        """What :attr:`run` receives as ``prepared``: ``prepare(params, weights)`` or the weights themselves."""
        return self.prepare(params, weights) if self.prepare is not None else weights


KINDS: dict[str, LayerKind] = {}


def register(type_name: str, params: type, *, add: Callable, read: Callable, run: Callable | None = None,
             prepare: Callable | None = None, roles: tuple[str, ...] = (), back_edges: tuple[int, ...] = (),
             region: str | None = None) -> LayerKind:
    """File a layer kind under its TensorRT ``LayerType`` name; a second registration is a bug."""
    if type_name in KINDS:
        raise RuntimeError(f"layer kind {type_name} registered twice ({KINDS[type_name].module} and "
                           f"{add.__module__})")
    if not (isinstance(params, type) and issubclass(params, LayerParams)):
        raise TypeError(f"{type_name}: params must be a LayerParams dataclass")
    entry = LayerKind(type_name, params, add, read, run, prepare, tuple(roles), add.__module__,
                      tuple(back_edges), region)
    KINDS[type_name] = entry
    return entry


def kind(type_name: str) -> LayerKind | None:
    return KINDS.get(type_name)


# --------------------------------------------------------------------------- TensorRT helpers for add()/read()

def trt_enum(enum_name: str, member: str):
    """``trt.<enum_name>.<member>`` of whichever TensorRT module is loaded."""
    return getattr(getattr(trtshim.module(), enum_name), member)


def trt_dtype(name: str):
    return getattr(trtshim.module().DataType, name)


def enum_name(value) -> str:
    return value.name


def dims(value) -> tuple[int, ...] | None:
    """TensorRT Dims / Permutation / sequence → tuple of ints (None when unset)."""
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value)
    except TypeError:
        return None


BF16_READ_HINT = ("TensorRT's Python API cannot hand bf16 weights back (they read as an object array): snapshot "
                  "the fp32 network and lower it with converter.precision instead")


def weights_array(weights, what: str) -> np.ndarray | None:
    """A numpy copy of TensorRT weights read back, or None when empty."""
    if weights is None:
        return None
    arr = np.asarray(weights)
    if arr.size == 0:
        return None
    if arr.dtype == object:
        raise SnapshotError(f"{what}: weights of a data type TensorRT's Python API does not read back "
                            f"({getattr(weights, 'dtype', '?')})", hint=BF16_READ_HINT)
    return np.array(arr, copy=True)


def as_trt_weights(arr: np.ndarray | None, keep: list, dtype_name: str = "FLOAT"):
    """TensorRT ``Weights`` over ``arr`` (empty weights for None); ``arr`` is kept alive in ``keep``."""
    trt = trtshim.module()
    if arr is None:
        return trt.Weights(trt_dtype(dtype_name))
    arr = np.require(arr, requirements="C")
    keep.append(arr)
    return trtshim.weights(arr)


def weights_dtype_name(weights: dict, default: str = "FLOAT") -> str:
    """The TensorRT data type name of a layer's weights (all roles share one)."""
    for arr in weights.values():
        if arr is not None:
            return trtshim.trt_dtype(np.asarray(arr).dtype).name
    return default


def set_optional_inputs(layer, inputs, first: int) -> None:
    """``layer.set_input(i, t)`` for each given tensor from position ``first`` on."""
    for i in range(first, len(inputs)):
        if inputs[i] is not None:
            layer.set_input(i, inputs[i])


def optional_attr(layer, name: str) -> Any:
    """An attribute that only some TensorRT versions/flavors have (None when absent)."""
    return getattr(layer, name, None)
