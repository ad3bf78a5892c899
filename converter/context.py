"""The conversion context: TF tensors → TensorRT tensors or constant weights.

Layout: TensorFlow models are mostly NHWC while TensorRT's convolution and
pooling are channels-first.  Rather than wrapping every layout-sensitive layer
in a pair of transposes, each TensorRT tensor carries ``perm``, the permutation
from the TF (logical) axis order to its physical order
(``physical = logical.transpose(perm)``).  Layout-agnostic converters keep the
permutation, layout-sensitive ones ask for the order they need, and a shuffle
is inserted only where the order actually changes (and cached).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from . import layers
from . import trt as trtshim
from .errors import ConversionError

log = logging.getLogger(__name__)

NCHW_FROM_NHWC = (0, 3, 1, 2)


def identity_perm(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def inverse_perm(perm) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def channels_first_perm(rank: int) -> tuple[int, ...]:
    """NHWC-like → NCHW-like for any rank ≥ 3 (channels last → axis 1)."""
    return (0, rank - 1) + tuple(range(1, rank - 1))


@dataclass
class Value:
    """A TF tensor's value during conversion: a TensorRT tensor (with layout) or a numpy constant."""

    tensor: object = None
    const: np.ndarray | None = None
    perm: tuple[int, ...] | None = None

    @property
    def is_const(self) -> bool:
        return self.const is not None

    @property
    def rank(self) -> int:
        return self.const.ndim if self.is_const else len(self.tensor.shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """Logical (TF order) shape."""
        if self.is_const:
            return tuple(self.const.shape)
        phys = tuple(int(d) for d in self.tensor.shape)
        if self.perm is None:
            return phys
        logical = [0] * len(phys)
        for j, axis in enumerate(self.perm):
            logical[axis] = phys[j]
        return tuple(logical)

    @property
    def layout(self) -> tuple[int, ...]:
        return self.perm if self.perm is not None else identity_perm(self.rank)

    @property
    def dtype(self) -> np.dtype:
        if self.is_const:
            return self.const.dtype
        return trtshim.np_dtype(self.tensor.dtype)

    def physical_axis(self, logical_axis: int) -> int:
        logical_axis = logical_axis % self.rank
        return self.layout.index(logical_axis)


#: how simulated-quantization ops convert: "emulate" (TF's float32 formula) or "int8" (TensorRT Q/DQ layers)
QUANTIZATION_MODES = ("emulate", "int8")


class ConversionContext:
    def __init__(self, network, graph, quantization: str = "emulate"):
        self.trt = trtshim.module()
        #: :data:`QUANTIZATION_MODES`; read by :mod:`converter.ops.quant`
        self.quantization = quantization
        self.network = network
        self.graph = graph
        self.values: dict[str, Value] = {}
        self.node = None
        self._names: set[str] = set()
        self._layout_cache: dict[tuple[int, tuple, tuple], object] = {}
        self._const_cache: dict[tuple, object] = {}
        self.keep_alive: list[np.ndarray] = []
        #: TF tensor ref → (TensorRT tensor name, perm) for bisecting
        self.tensor_map: dict[str, tuple[str, tuple[int, ...]]] = {}
        #: the loop whose body is being converted (:class:`converter.ops.loops.LoopScope`), else None
        self.loop_scope = None
        self._region_names: set[str] = set()

    def unique_name(self, base: str) -> str:
        """A loop/conditional name not used yet in this network (snapshots identify regions by name)."""
        name, k = base, 1
        while name in self._region_names:
            k += 1
            name = f"{base}_{k}"
        self._region_names.add(name)
        return name

    # ------------------------------------------------------------ naming
    def name_layer(self, layer, suffix: str | None = None):
        """Name ``layer`` after the current TF node (unique; suffixes for helper layers)."""
        base = self.node.name if self.node is not None else "tf2trt"
        name = base if suffix is None else f"{base}/{suffix}"
        k = 1
        unique = name
        while unique in self._names:
            k += 1
            unique = f"{name}_{k}"
        self._names.add(unique)
        layer.name = unique
        for i in range(layer.num_outputs):
            layer.get_output(i).name = unique + (f":{i}" if layer.num_outputs > 1 or True else "")
        return layer

    def add(self, kind, inputs, params, weights: dict | None = None, suffix: str | None = None):
        """Create one layer through its kind module (``layers.<kind>``) and name it after the current TF node.

        The only way converters create layers: ``kind.add`` is also what rebuilds a snapshot, so what a
        converter builds and what a stored snapshot rebuilds cannot drift apart.  Weights are kept alive for
        the network's lifetime (TensorRT keeps raw pointers to them).
        """
        kind = getattr(kind, "KIND", kind)
        layer = kind.add(self.network, list(inputs), params, weights or {}, self.keep_alive)
        if layer is None:
            self.fail(f"TensorRT refused to add a {kind.type_name} layer",
                      "run with -v for TensorRT's own message")
        return self.name_layer(layer, suffix)

    def fail(self, message: str, hint: str | None = None):
        node = self.node
        raise ConversionError(node.name if node else None, node.op if node else None, message, hint)

    # ------------------------------------------------------------ values
    def get(self, ref: str) -> Value:
        return self.values[ref]

    def weights(self, array: np.ndarray) -> np.ndarray:
        """Keep ``array`` alive for the network's lifetime (TensorRT keeps a pointer)."""
        array = np.require(array, requirements="C")  # unlike ascontiguousarray, keeps 0-d arrays 0-d
        self.keep_alive.append(array)
        return array

    def constant(self, array: np.ndarray, suffix: str = "const"):
        """A constant layer's output tensor; float64/int64 are narrowed to what TensorRT runs."""
        array = np.asarray(array)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        if array.dtype == np.int64 and array.size and np.abs(array).max() < 2**31:
            array = array.astype(np.int32)
        # small constants (scalars, shapes, biases) are shared; big weights are never compared byte by byte
        key = (array.dtype.str, array.shape, array.tobytes()) if array.nbytes <= 65536 else None
        if key is not None and key in self._const_cache:
            return self._const_cache[key]
        layer = self.add(layers.constant, [], layers.constant.Params(tuple(array.shape)), {"weights": array},
                         suffix=suffix)
        out = layer.get_output(0)
        if key is not None:
            self._const_cache[key] = out
        return out

    def tensor(self, value: Value, perm: tuple[int, ...] | None = None):
        """``value`` as a TensorRT tensor whose physical order is ``perm`` (default: logical)."""
        rank = value.rank
        want = tuple(perm) if perm is not None else identity_perm(rank)
        if value.is_const:
            arr = np.transpose(value.const, want) if rank > 1 else value.const
            return self.constant(arr)
        have = value.layout
        if have == want:
            return value.tensor
        # one tensor can stand for several values (each Transpose of it only relabels the layout): the shuffle
        # depends on the layout it starts from as well as the one wanted
        key = (id(value.tensor), have, want)
        cached = self._layout_cache.get(key)
        if cached is not None:
            return cached
        # physical(have) -> logical -> physical(want): transpose by have^-1 then want
        inv = inverse_perm(have)
        combined = tuple(inv[w] for w in want)
        layer = self.add(layers.shuffle, [value.tensor], layers.shuffle.Params(first_transpose=combined),
                         suffix="layout")
        out = layer.get_output(0)
        self._layout_cache[key] = out
        return out

    def logical(self, value: Value):
        return self.tensor(value, None)

    def out(self, tensor, perm: tuple[int, ...] | None = None) -> Value:
        if perm is not None and tuple(perm) == identity_perm(len(perm)):
            perm = None
        return Value(tensor=tensor, perm=tuple(perm) if perm is not None else None)

    def as_const(self, value: Value, what: str = "this input") -> np.ndarray:
        if not value.is_const:
            self.fail(f"{what} must be a constant", "fold it to a constant in the model (e.g. a fixed shape)")
        return value.const
