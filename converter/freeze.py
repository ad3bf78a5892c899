"""Step 1: turn a TensorFlow model into one frozen, self-contained GraphDef.

Sources: Keras 3 ``.keras``, legacy ``.h5``, SavedModel directories (a named
signature), in-memory ``tf.keras.Model`` / ``tf.function`` / concrete functions,
and already-frozen ``.pb`` files.  The result has variables replaced by
constants, every function call inlined (Keras 3 keeps some bodies behind
``_noinline`` calls that TensorFlow's own passes refuse to inline), only the
nodes the outputs need, no NoOp/StopGradient/training-only nodes, constant
subgraphs folded to ``Const`` nodes, and named input placeholders and output
Identity nodes.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .control_flow import copy_library, freeze_resource_inputs
from .errors import FreezeError
from .structural import CONTROL_ONLY_OPS, PASS_THROUGH_OPS, SOURCE_OPS

log = logging.getLogger(__name__)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_FORMAT = b"TF2TRTFG1\n"
#: ops that forward their input unchanged: bypassed unless they carry a public name (see converter.structural)
_PASSTHROUGH_OPS = PASS_THROUGH_OPS
#: sink nodes that are never a model output (a .pb without --output)
_NOT_OUTPUTS = CONTROL_ONLY_OPS | SOURCE_OPS | {"Assert", "SaveV2", "RestoreV2"}
_CALL_OPS = {"PartitionedCall", "StatefulPartitionedCall"}
#: constants bigger than this live beside the GraphDef (see FrozenGraph.constants)
EXTERNAL_CONST_BYTES = 4096
#: protobuf's hard limit on one serialized message (a GraphDef .pb): 2 GiB
PROTOBUF_LIMIT = 2**31
#: attribute marking a placeholder that stands for an external constant
EXTERNAL_ATTR = "_tf2trt_constant"


@dataclass(frozen=True)
class TensorSpec:
    """A named graph input: TF dtype name (``float32``…) and its shape in the network.

    A dimension is ``-1`` only where an optimization profile
    (:mod:`converter.profiles`) keeps it dynamic; otherwise shapes are fully known."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": None if self.shape is None else list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        shape = d["shape"]  # None: unknown rank (only the arguments of a loop body can be)
        return cls(d["name"], None if shape is None else tuple(int(x) for x in shape), d.get("dtype", "float32"))


@dataclass
class FrozenGraph:
    """A frozen GraphDef plus its signature: which placeholders feed it, which nodes are outputs."""

    graph_def: object
    inputs: list[TensorSpec]
    outputs: list[str]
    meta: dict = field(default_factory=dict)
    #: big constants by node name.  In ``graph_def`` they are placeholders marked
    #: with ``_tf2trt_constant``: graph surgery then never copies weights, and
    #: TensorFlow runs the graph by feeding them (see :meth:`feeds`).
    constants: dict = field(default_factory=dict)

    def constant_feeds(self) -> dict[str, np.ndarray]:
        return dict(self.constants)

    def signature(self) -> dict:
        return {"inputs": [s.to_dict() for s in self.inputs], "outputs": list(self.outputs), "meta": self.meta}

    def to_bytes(self) -> bytes:
        """Self-describing: header line, signature JSON line, GraphDef length line, GraphDef, constants (.npy stream)."""
        import io

        sig = json.dumps(self.signature(), sort_keys=True).encode()
        pb = self.graph_def.SerializeToString(deterministic=True)
        buf = io.BytesIO()
        buf.write(_FORMAT + sig + b"\n" + str(len(pb)).encode() + b"\n" + pb)
        names = sorted(self.constants)
        buf.write((json.dumps(names) + "\n").encode())
        for name in names:
            np.save(buf, np.ascontiguousarray(self.constants[name]), allow_pickle=False)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "FrozenGraph":
        if not data.startswith(_FORMAT):
            raise FreezeError("not a tf2trt frozen graph", "use FrozenGraph.to_bytes() output or a .pb file with freeze()")
        import io

        buf = io.BytesIO(data)
        buf.seek(len(_FORMAT))
        try:
            sig = json.loads(buf.readline())
            size = int(buf.readline())
            gd = _graph_def_class()()
            gd.ParseFromString(buf.read(size))
            names = json.loads(buf.readline())
            constants = {name: np.load(buf, allow_pickle=False) for name in names}
        except Exception as exc:  # noqa: BLE001 - any decoding failure means a damaged file
            raise FreezeError(f"damaged tf2trt frozen graph: {exc}", "rebuild it from the model") from exc
        return cls(gd, [TensorSpec.from_dict(s) for s in sig["inputs"]], list(sig["outputs"]), sig.get("meta", {}),
                   constants)

    def save(self, path: str | os.PathLike) -> None:
        from ._io import atomic_write_bytes

        atomic_write_bytes(Path(path), self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FrozenGraph":
        return cls.from_bytes(Path(path).read_bytes())

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.graph_def.node:
            op = "Const" if is_external_const(node) else node.op
            counts[op] = counts.get(op, 0) + 1
        return counts


def _graph_def_class():
    from tensorflow.core.framework import graph_pb2

    return graph_pb2.GraphDef


# --------------------------------------------------------------------------- what a model declares


@dataclass(frozen=True)
class ModelInput:
    """A tensor as the model declares it, before freezing: an unknown dimension is None, an unknown rank
    is ``shape=None``.  (A :class:`TensorSpec` is the frozen, fully known counterpart.)"""

    name: str
    shape: tuple | None
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": None if self.shape is None else list(self.shape),
                "display": shape_text(self.shape), "dtype": self.dtype}


def shape_text(shape) -> str:
    """``1x224x224x3``: ``?`` for an unknown dimension, ``?...`` for an unknown rank, ``scalar`` for rank 0."""
    if shape is None:
        return "?..."
    if len(shape) == 0:
        return "scalar"
    return "x".join("?" if d is None else str(int(d)) for d in shape)


@dataclass
class ModelSource:
    """A loaded model before its shapes are fixed: what it declares, and how to freeze it at given shapes.

    Loading first and freezing later lets :func:`freeze` check the shapes
    asked for against the model's own and report every problem of every
    input in one message *before* tracing, and lets :mod:`converter.inspect`
    show a model's interface while its shapes are still unknown.
    """

    kind: str  #: "keras", "saved_model", "function" or "frozen_pb"
    inputs: list[ModelInput]
    #: declared outputs, with shapes and dtypes where the model states them
    outputs: list[ModelInput]
    #: ``build(shapes, extra) -> FrozenGraph``: ``shapes`` fixes every input, ``extra`` declares
    #: PlaceholderWithDefault nodes as inputs (see :func:`resolve_input_shapes`)
    build: Callable
    #: PlaceholderWithDefault nodes one may declare as inputs; None when only tracing reveals them
    optional_inputs: list[ModelInput] | None = None
    signature: str | None = None
    #: SavedModel: every signature, as ``{name: {"inputs": [...], "outputs": [...]}}``
    signatures: dict = field(default_factory=dict)
    #: placeholders of a .pb that nothing the outputs need reads (never demanded as inputs)
    unused_placeholders: list[str] = field(default_factory=list)
    #: keeps what the traced functions need alive (a loaded SavedModel owns its variables)
    keep: object = None

    def freeze(self, inputs: dict[str, tuple] | None = None, profiles: list | None = None,
               batch_range: tuple[int, int, int] | None = None,
               max_input_bytes: int | None = None) -> "FrozenGraph":
        """Freeze at ``inputs`` (static shapes) and ``profiles`` (ranges that stay dynamic, see
        :mod:`converter.profiles`); ``batch_range`` (min, opt, max) keeps an unknown batch dimension
        dynamic when neither gives that input a shape (None: it becomes 1).

        Shapes are checked (:mod:`converter.shapes`: dims ≥ 1, rank, the inputs' bytes against
        ``max_input_bytes``) before anything is traced, so a typo never reaches TensorFlow."""
        from .shapes import check_given_shapes

        check_given_shapes(inputs, profiles)
        overrides, profiles = resolve_profiles(self, dict(inputs or {}), profiles, batch_range)
        shapes, extra = resolve_input_shapes(self, overrides)
        self._check_sizes({**shapes, **extra}, profiles, max_input_bytes)
        frozen = self.build(shapes, extra)
        if profiles:
            from .profiles import profile_to_json

            frozen.meta["profiles"] = [profile_to_json(p) for p in profiles]
        return frozen

    def _check_sizes(self, shapes: dict, profiles: list, limit: int | None) -> None:
        """The inputs' bytes at the static shapes, or at each profile's max, against the limit."""
        from .shapes import check_input_sizes

        dtypes = {i.name: i.dtype for i in self.inputs + list(self.optional_inputs or [])}
        static = {n: s for n, s in shapes.items() if all(int(d) >= 0 for d in s)}
        if not profiles:
            sets = [("the inputs", static)]
        else:
            sets = [(f"the inputs at profile {k}'s max" if len(profiles) > 1 else "the inputs at the profile's max",
                     {**static, **{n: r.max for n, r in p.items()}}) for k, p in enumerate(profiles)]
        check_input_sizes(sets, dtypes, limit)


#: example sizes the hints offer for unknown non-batch dimensions (rank-4 inputs are usually images)
_EXAMPLE_IMAGE_DIM = 224
_EXAMPLE_DIM = 16


def _example_dim(shape: tuple) -> int:
    return _EXAMPLE_IMAGE_DIM if len(shape) == 4 else _EXAMPLE_DIM


def suggested_shape(inp: ModelInput, given: tuple | None = None) -> tuple[tuple[int, ...] | None, bool]:
    """``(shape, guessed)``: the model's known dims, ``given`` where it fits, 1 for an unknown batch and an
    example size for any other unknown dim (``guessed`` says whether one was needed)."""
    if inp.shape is None:
        return (tuple(given) if given else None), given is None
    fits = given is not None and len(given) == len(inp.shape)
    dims, guessed = [], False
    for axis, d in enumerate(inp.shape):
        if d is not None:
            dims.append(int(d))
        elif fits:
            dims.append(int(given[axis]))
        elif axis == 0:
            dims.append(1)
        else:
            dims.append(_example_dim(inp.shape))
            guessed = True
    return tuple(dims), guessed


def input_args(inputs: list[ModelInput], given: dict | None = None) -> tuple[str, str, bool, bool]:
    """Ready-to-paste ``--input`` options and the Python ``inputs=`` for every input.

    Returns ``(cli, python, unknown_batch, guessed)``: whether some input had an unknown batch
    dimension (written as 1) and whether some other dimension is an example size.
    """
    given = given or {}
    cli, py = [], []
    unknown_batch = guessed = False
    for inp in inputs:
        shape, guess = suggested_shape(inp, given.get(inp.name))
        guessed |= guess
        if inp.shape and inp.shape[0] is None and not given.get(inp.name):
            unknown_batch = True
        if shape is None:
            cli.append(f"--input {inp.name}:SHAPE")
            py.append(f"{inp.name!r}: (...)")
        else:
            if shape:  # a scalar has nothing to give (and NAME:SHAPE cannot say rank 0)
                cli.append(f"--input {inp.name}:{'x'.join(str(d) for d in shape)}")
            py.append(f"{inp.name!r}: {tuple(shape)!r}")
    return " ".join(cli), "inputs={" + ", ".join(py) + "}", unknown_batch, guessed


def profile_args(inputs: list[ModelInput], skip: set | None = None) -> str:
    """Ready-to-paste ``--profile NAME:MIN,OPT,MAX`` options for the inputs with unknown dimensions: batch
    1/1/8, other unknown dimensions from half to twice an example size (to be edited to the sizes served)."""
    out = []
    for inp in inputs:
        if not inp.shape or all(d is not None for d in inp.shape) or inp.name in (skip or ()):
            continue
        lo, mid, hi = [], [], []
        for axis, d in enumerate(inp.shape):
            if d is not None:
                lo.append(int(d)), mid.append(int(d)), hi.append(int(d))
            elif axis == 0:
                lo.append(1), mid.append(1), hi.append(8)
            else:
                ex = _example_dim(inp.shape)
                lo.append(ex // 2), mid.append(ex), hi.append(ex * 2)
        out.append(f"--profile {inp.name}:" + ",".join("x".join(map(str, s)) for s in (lo, mid, hi)))
    return " ".join(out)


def _mismatch(inp: ModelInput, given: tuple) -> str | None:
    """Why ``given`` does not fit the model's declared shape of ``inp`` (None if it fits)."""
    if inp.shape is None:
        return None
    if len(given) != len(inp.shape):
        return (f"input '{inp.name}': the model's shape is {shape_text(inp.shape)} (rank {len(inp.shape)}), "
                f"the given shape {shape_text(given)} has rank {len(given)}")
    axes = [axis for axis, (d, g) in enumerate(zip(inp.shape, given)) if d is not None and int(d) != int(g)]
    if axes:
        return (f"input '{inp.name}': the model's shape is {shape_text(inp.shape)}, the given shape "
                f"{shape_text(given)} differs in dimension{'s' if len(axes) > 1 else ''} "
                f"{', '.join(str(a) for a in axes)}")
    return None


def resolve_profiles(source: ModelSource, overrides: dict, profiles: list | None,
                     batch_range: tuple[int, int, int] | None) -> tuple[dict, list]:
    """``overrides`` plus the network shape (``-1`` where dynamic) of every input a profile covers, and the
    profiles completed with the default batch range; ``[]`` when nothing stays dynamic.

    Each range is checked against the model's declared shape (rank, known dimensions) and every problem of
    every profile is reported at once.  An input with only an unknown batch dimension and no shape given
    gets ``batch_range`` in every profile.
    """
    from .profiles import ShapeRange, dynamic_shape

    declared = {i.name: i for i in source.inputs}
    profiles = [dict(p) for p in profiles or []]
    covered: set[str] = set().union(*(set(p) for p in profiles)) if profiles else set()
    problems: list[str] = []
    for k, profile in enumerate(profiles):
        if set(profile) != covered:
            problems.append(f"profile {k} gives ranges for {sorted(profile)}, another for {sorted(covered)}: every "
                            "profile must cover the same inputs")
    for name in sorted(covered):
        inp = declared.get(name)
        if inp is None:
            problems.append(f"--profile names '{name}', which is not an input; the model's inputs are "
                            f"{list(declared)}")
            continue
        if name in overrides:
            problems.append(f"input '{name}' has both a static shape (--input) and a profile: give one")
            continue
        for profile in profiles:
            rng = profile[name]
            problem = rng.problem()
            for shape in (() if problem else (rng.min, rng.opt, rng.max)):
                problem = problem or _mismatch(inp, shape)
            if problem:
                problems.append(f"profile of input '{name}' ({rng.text()}): {problem}")
    if problems:
        raise FreezeError("\n".join(problems) if len(problems) == 1 else
                          f"{len(problems)} profile problems:\n" + "\n".join(f"  - {p}" for p in problems),
                          "give each input min,opt,max shapes that fit the model (tf2trt inspect MODEL shows its "
                          "shapes), e.g. --profile NAME:1x128,8x128,32x128")
    if batch_range is not None:
        lo, mid, hi = (int(d) for d in batch_range)
        defaults = {}
        for inp in source.inputs:
            if inp.name in covered or inp.name in overrides or not inp.shape or inp.shape[0] is not None:
                continue
            if any(d is None for d in inp.shape[1:]):
                continue  # resolve_input_shapes reports the other unknown dimensions
            rest = tuple(int(d) for d in inp.shape[1:])
            defaults[inp.name] = ShapeRange((lo,) + rest, (mid,) + rest, (hi,) + rest)
        if defaults:
            log.info("unknown batch dimension of %s: profile %d/%d/%d (the default batch range)",
                     ", ".join(defaults), lo, mid, hi)
            profiles = profiles or [{}]
            for profile in profiles:
                profile.update(defaults)
    shapes = {name: dynamic_shape(name, profiles) for name in (set().union(*profiles) if profiles else ())}
    if not any(-1 in shape for shape in shapes.values()):
        profiles = []  # every profile fixes every dimension: a static network, as without profiles
    return {**overrides, **shapes}, profiles


def resolve_input_shapes(source: ModelSource, overrides: dict,
                         require_all: bool = True) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """Every declared input's fixed shape, and the overrides that name PlaceholderWithDefault nodes.

    A given shape must fit the model's (same rank, same known dimensions);
    an unknown batch dimension (axis 0) becomes 1; any other unknown
    dimension, or an unknown rank, needs a given shape.  Every problem of
    every input is collected into one :class:`FreezeError`, whose hint is a
    ready-to-paste ``--input`` list for all inputs, so nobody learns a
    model's inputs one failed run at a time.  ``require_all=False`` only
    checks the overrides (inputs whose shape stays unknown are left out).
    """
    declared = {i.name: i for i in source.inputs}
    optional = {i.name: i for i in source.optional_inputs or []}
    overrides = {name: tuple(int(d) for d in shape) for name, shape in overrides.items()}
    problems: list[str] = []
    unknown_names = sorted(n for n in overrides
                           if n not in declared and source.optional_inputs is not None and n not in optional)
    shapes: dict[str, tuple] = {}
    for inp in source.inputs:
        given = overrides.get(inp.name)
        if given is not None:
            problem = _mismatch(inp, given)
            if problem:
                problems.append(problem)
            shapes[inp.name] = given
        elif inp.shape is None:
            if require_all:
                problems.append(f"input '{inp.name}' ({inp.dtype}) has an unknown rank")
        else:
            axes = [axis for axis, d in enumerate(inp.shape) if d is None and axis > 0]
            if axes and not require_all:
                continue
            if axes:
                problems.append(f"input '{inp.name}' (shape {shape_text(inp.shape)}, {inp.dtype}) has "
                                + (f"unknown dimensions {', '.join(str(a) for a in axes)}" if len(axes) > 1
                                   else f"an unknown dimension {axes[0]}"))
            else:
                shapes[inp.name] = tuple(1 if d is None else int(d) for d in inp.shape)
                if inp.shape and inp.shape[0] is None:
                    log.info("input '%s': unknown batch dimension set to 1", inp.name)
    extra = {n: s for n, s in overrides.items() if n not in declared and n not in unknown_names}
    for name, given in extra.items():
        if name in optional:
            problem = _mismatch(optional[name], given)
            if problem:
                problems.append(problem.replace("input ", "PlaceholderWithDefault ", 1))
    if not (problems or unknown_names):
        return shapes, extra
    lines = []
    if unknown_names:
        lines.append(f"unknown input name(s) {unknown_names}; the model's inputs are {list(declared)}"
                     + (f" (and PlaceholderWithDefault nodes {list(optional)})" if optional else ""))
    if len(problems) == 1:
        lines += problems
    elif problems:
        lines.append(f"{len(problems)} input shape problems:")
        lines += [f"  - {p}" for p in problems]
    fitting = {n: s for n, s in overrides.items() if n in declared and not _mismatch(declared[n], s)}
    cli, py, unknown_batch, guessed = input_args(source.inputs, fitting)
    notes = []
    if unknown_batch:
        notes.append("1 stands for the unknown batch size (what tf2trt uses when no shape is given)")
    if guessed:
        notes.append(f"{_EXAMPLE_DIM} (or {_EXAMPLE_IMAGE_DIM} for images) is only an example for the other "
                     "unknown dimensions: use the sizes you will run")
    hint = f"give every input a shape that fits the model: {cli} (in Python: {py})"
    if notes:
        hint += "; " + "; ".join(notes)
    dynamic = profile_args([i for i in source.inputs if i.shape and any(d is None for d in i.shape[1:])],
                           skip=set(fitting))
    if dynamic:
        hint += f"; or keep the unknown dimensions dynamic with optimization profiles: {dynamic}"
    if unknown_names and not problems:
        hint = "use the model's input names (tf2trt inspect MODEL lists them)"
    raise FreezeError("\n".join(lines), hint)


# --------------------------------------------------------------------------- loading


def freeze(
    model,
    inputs: dict[str, tuple] | None = None,
    outputs: list[str] | None = None,
    signature: str = "serving_default",
    trust_model_code: bool = False,
    profiles: list | None = None,
    batch_range: tuple[int, int, int] | None = None,
    max_input_bytes: int | None = None,
) -> FrozenGraph:
    """Freeze ``model`` into a :class:`FrozenGraph`.

    ``model`` is a path (``.keras``, ``.h5``, SavedModel directory, ``.pb``),
    a Keras model (Keras 3 or tf_keras), a ``tf.function`` with an input
    signature, or a concrete function.  ``inputs`` gives shapes by input name:
    needed for unknown non-batch dimensions (an unknown batch dimension
    becomes 1), and it may also name a ``PlaceholderWithDefault`` node to feed
    it (undeclared, it takes its default).  ``outputs`` selects output names
    (Keras output names, signature keys, or node names of a ``.pb``); by
    default all outputs of the model are kept.

    Model files are untrusted by default: a Keras file whose ``Lambda`` layers (or, in ``.keras``, other
    arbitrary code) would run Python on this machine when loaded is refused unless ``trust_model_code``.

    ``max_input_bytes`` caps the bytes of the inputs at the shapes asked for (default: see
    :func:`converter.shapes.max_input_bytes`): an absurd shape fails here, not in verification.
    """
    source = open_model(model, signature=signature, outputs=outputs, trust_model_code=trust_model_code)
    return source.freeze(inputs, profiles=profiles, batch_range=batch_range, max_input_bytes=max_input_bytes)


def open_model(model, signature: str | None = "serving_default", outputs: list[str] | None = None,
               trust_model_code: bool = False) -> ModelSource:
    """Load ``model`` (any source :func:`freeze` takes) and say what it declares, without fixing shapes.

    ``signature=None`` picks a SavedModel's ``serving_default``, or its only
    (else its first) signature: for inspecting, not converting.
    """
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise FreezeError(f"model not found: {path}", "check the path")
        if path.is_dir():
            return _open_saved_model(path, signature, outputs)
        suffix = path.suffix.lower()
        if suffix == ".pb":
            return _open_pb(path, outputs)
        if suffix in (".keras", ".h5", ".hdf5"):
            return _open_keras(_load_keras_file(path, trust_model_code), outputs)
        raise FreezeError(
            f"don't know how to load '{path.name}'",
            "pass a .keras or .h5 file, a SavedModel directory or a frozen .pb",
        )
    import tensorflow as tf

    # functions first: a concrete function also has .inputs/.outputs and is callable, like a Keras model
    if isinstance(model, tf.types.experimental.ConcreteFunction):
        return _open_concrete(model, outputs)
    if isinstance(model, tf.types.experimental.GenericFunction):
        if model.input_signature is None:
            raise FreezeError(
                "tf.function has no input_signature",
                "decorate it with input_signature=[tf.TensorSpec(...)], or pass "
                "f.get_concrete_function(tf.TensorSpec(...))")
        return _open_concrete(model.get_concrete_function(), outputs)
    if _is_keras_model(model):
        return _open_keras(model, outputs)
    if _looks_like_keras(model):
        raise FreezeError(f"Keras model {type(model).__name__} has no inputs yet",
                          "a subclassed model knows its inputs only once built: call it on an example batch "
                          "(or build it with model.build(shape)) before freezing, or use a functional model")
    raise FreezeError(f"unsupported model object of type {type(model).__name__}",
                      "pass a path, a Keras model, a tf.function with an input_signature or a concrete function")


def _looks_like_keras(model) -> bool:
    return any(c.__module__.split(".")[0] in ("keras", "tf_keras") for c in type(model).__mro__)


def _is_keras_model(model) -> bool:
    try:
        return (callable(model) and getattr(model, "inputs", None) is not None
                and getattr(model, "outputs", None) is not None)
    except Exception:  # noqa: BLE001 - an unbuilt subclassed model raises on .inputs
        return False


def _lambda_layers_in_h5(path: Path) -> list[str]:
    """Names of ``Lambda`` layers in a legacy ``.h5`` model's config (their code runs when the file loads)."""
    import json

    try:
        import h5py

        with h5py.File(path, "r") as fh:
            raw = fh.attrs.get("model_config")
    except Exception:  # noqa: BLE001 - not an HDF5 file: the loaders below say so
        return []
    if raw is None:
        return []
    try:
        config = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except ValueError:
        return []
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                found.append(str((node.get("config") or {}).get("name", "?")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _check_keras_container(path: Path) -> None:
    """Refuse a Keras file whose bytes are not what its suffix says, saying what they are.

    Keras 3 reports a ``.keras`` that is not a zip as "File not found" although the file is right
    there; tf_keras reports a non-HDF5 ``.h5`` as "file signature not found".  A ``.keras`` is a zip
    archive, a ``.h5`` an HDF5 file: checking the first bytes gives a message that says so.
    """
    import zipfile

    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise FreezeError(f"cannot read '{path}': {exc.strerror or exc}", "check the file's permissions") from exc
    is_zip = zipfile.is_zipfile(path)
    is_hdf5 = head == _HDF5_MAGIC
    suffix = path.suffix.lower()
    if suffix == ".keras" and not is_zip:
        if is_hdf5:
            raise FreezeError(f"'{path.name}' is an HDF5 (legacy .h5) Keras file named .keras",
                              "rename it to .h5 (the legacy format), or re-save the model with "
                              "model.save('model.keras')")
        what = "is empty" if not head else f"starts with {head!r}"
        raise FreezeError(f"'{path.name}' exists but is not a Keras model file: a .keras file is a zip archive, "
                          f"this one {what}",
                          "re-save the model with model.save('model.keras'), or check that the download or copy "
                          "finished")
    if suffix in (".h5", ".hdf5") and not is_hdf5:
        if is_zip:
            raise FreezeError(f"'{path.name}' is a Keras 3 (.keras zip) file named {suffix}",
                              "rename it to .keras")
        what = "is empty" if not head else f"starts with {head!r}"
        raise FreezeError(f"'{path.name}' exists but is not an HDF5 Keras model file: it {what}",
                          "re-save the model with model.save('model.keras'), or check that the download or copy "
                          "finished")


def _load_keras_file(path: Path, trust_model_code: bool = False):
    if not trust_model_code and path.suffix.lower() in (".h5", ".hdf5"):
        lambdas = _lambda_layers_in_h5(path)
        if lambdas:
            raise FreezeError(
                f"'{path.name}' has Lambda layer(s) {lambdas}: loading it would run the Python code stored in "
                "the file on this machine, and model files are not trusted by default",
                "if you trust where the file comes from, pass --trust-model-code (convert) or "
                "trust_model_code=True (converter.freeze)")
    _check_keras_container(path)
    errors = []
    if path.suffix.lower() == ".keras":
        loaders = ("keras", "tf_keras")
    else:
        loaders = ("tf_keras", "keras")
    for loader in loaders:
        try:
            module = __import__(loader)
            if trust_model_code:
                return module.models.load_model(str(path), compile=False, safe_mode=False)
            return module.models.load_model(str(path), compile=False)  # safe_mode: no Lambda code in .keras
        except ImportError as exc:
            errors.append(f"{loader}: {exc}")
        except Exception as exc:  # noqa: BLE001 - every loader failure is reported together
            errors.append(f"{loader}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    if any("safe_mode" in e for e in errors):  # Keras refused to run code stored in the file
        raise FreezeError(f"'{path.name}' holds Python code (a Lambda layer or custom object) that Keras runs "
                          "when loading it, and model files are not trusted by default: " + "; ".join(errors),
                          "if you trust where the file comes from, pass --trust-model-code (convert) or "
                          "trust_model_code=True (converter.freeze)")
    raise FreezeError(f"could not load Keras model '{path}': " + "; ".join(errors),
                      "is it a Keras model file? Re-save it with model.save('model.keras')")


def _tf_shape(shape) -> tuple:
    """A network shape (``-1`` for a dimension a profile keeps dynamic) as TensorFlow writes it (None)."""
    return tuple(None if int(d) < 0 else int(d) for d in shape)


def _dims(shape) -> tuple | None:
    """A TF/Keras shape as a tuple of ints and None (None for an unknown rank)."""
    import tensorflow as tf

    shape = tf.TensorShape(shape)
    return None if shape.rank is None else tuple(shape.as_list())


def _dtype_name(dtype) -> str:
    import tensorflow as tf

    return tf.as_dtype(dtype).name


def _open_keras(model, outputs) -> ModelSource:
    """A Keras model (Keras 3 or tf_keras), called with its inputs in the structure it was built with."""
    import tensorflow as tf

    flat = list(model.inputs)
    names = [_keras_tensor_name(tensor, f"input_{i}") for i, tensor in enumerate(flat)]
    declared = [ModelInput(n, _dims(t.shape), _dtype_name(t.dtype)) for n, t in zip(names, flat)]
    pack = _input_packer(model, flat)
    output_names = _keras_output_names(model)

    def build(shapes: dict, extra: dict) -> FrozenGraph:
        specs = [tf.TensorSpec(_tf_shape(shapes[n]), t.dtype, name=n) for n, t in zip(names, flat)]

        @tf.function(autograph=False)
        def call(*args):
            return model(pack(args), training=False)

        concrete = _trace(lambda: call.get_concrete_function(*specs), shapes)
        return _freeze_concrete(concrete, names, extra, outputs, output_names=output_names, requested=shapes)

    return ModelSource("keras", declared, _keras_declared_outputs(model, output_names), build)


def _trace(get_concrete: Callable, shapes: dict):
    """``get_concrete()``, with the model's own refusal of the shapes asked for as a :class:`FreezeError`.

    Tracing runs the model's Python code at the given shapes; when a layer rejects them (a ``Reshape``
    whose size no longer matches, a ``Dense`` fed the wrong width) Keras raises ``ValueError`` with a
    multi-line, ANSI-coloured dump.  That is a shape the user chose (exit 2), not a tf2trt bug: the
    message keeps Keras's first sentences, without the colour codes, and names the shapes.
    """
    import tensorflow as tf

    from .errors import strip_ansi

    try:
        return get_concrete()
    except (ValueError, TypeError, tf.errors.InvalidArgumentError) as exc:
        lines = [ln.strip() for ln in strip_ansi(str(exc)).splitlines() if ln.strip()]
        detail = " ".join(ln for ln in lines[:3] if not ln.startswith(("Arguments received", "•")))
        asked = ", ".join(f"{name} {shape_text(_tf_shape(shape))}" for name, shape in sorted(shapes.items()))
        raise FreezeError(f"the model does not accept the input shapes {asked}: {detail or type(exc).__name__}",
                          "give shapes the model's layers accept (tf2trt inspect MODEL shows the declared "
                          "shapes; a dimension the model leaves unknown may still be fixed by its layers)") from exc


def _input_packer(model, flat: list):
    """``pack(args)``: the flat traced inputs in the structure the model takes (a dict, nested lists…).

    ``model.inputs`` is flat (a dict's values in sorted-key order); a Keras 3
    functional model built on a dict refuses a list, so the call rebuilds the
    structure of ``model.input`` by tensor identity.
    """
    import tensorflow as tf

    try:
        structure = model.input
    except Exception:  # noqa: BLE001 - some models (several call nodes) have no single input structure
        structure = None
    index = {id(t): i for i, t in enumerate(flat)}
    leaves = tf.nest.flatten(structure) if structure is not None else []
    if structure is None or sorted(index.get(id(t), -1) for t in leaves) != list(range(len(flat))):
        return lambda args: args[0] if len(args) == 1 else list(args)
    if not tf.nest.is_nested(structure):
        return lambda args: args[0]
    return lambda args: tf.nest.map_structure(lambda t: args[index[id(t)]], structure)


def _keras_tensor_name(tensor, default: str) -> str:
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None) or getattr(history, "layer", None)
    if operation is not None and type(operation).__name__ == "InputLayer" and getattr(operation, "name", None):
        return operation.name  # the name the user gave keras.Input(name=...)
    name = getattr(tensor, "name", None) or default
    name = name.split(":")[0]
    # Keras 3 KerasTensors carry the InputLayer name; tf_keras adds "/..." paths
    return name.split("/")[0]


def _keras_output_names(model) -> list[str]:
    names = getattr(model, "output_names", None)
    if names:
        return list(names)
    return [_keras_tensor_name(t, f"output_{i}") for i, t in enumerate(model.outputs)]


def _keras_declared_outputs(model, output_names: list[str]) -> list[ModelInput]:
    """The outputs as frozen names them: a dict output by its keys, else by Keras output names."""
    try:
        structure = model.output
    except Exception:  # noqa: BLE001
        structure = None
    if isinstance(structure, dict):
        pairs = _leaves_with_paths(structure)
    else:
        pairs = list(zip(output_names, model.outputs))
    return [ModelInput(name, _dims(t.shape), _dtype_name(t.dtype)) for name, t in pairs]


def _leaves_with_paths(structure, path: tuple = ()) -> list[tuple[str, object]]:
    """``(path, leaf)`` pairs in ``tf.nest.flatten`` order (mapping keys sorted), paths joined with ``/``."""
    from collections.abc import Mapping

    if isinstance(structure, Mapping):
        items = sorted(structure.items(), key=lambda kv: kv[0])
    elif isinstance(structure, tuple) and hasattr(structure, "_fields"):
        items = list(zip(structure._fields, structure))
    elif isinstance(structure, (list, tuple)):
        items = list(enumerate(structure))
    else:
        return [("/".join(str(p) for p in path), structure)]
    pairs = []
    for key, value in items:
        pairs += _leaves_with_paths(value, path + (key,))
    return pairs


def _describe_signature(fn) -> dict:
    kwargs = fn.structured_input_signature[1]
    return {"inputs": [ModelInput(k, _dims(v.shape), v.dtype.name) for k, v in sorted(kwargs.items())],
            "outputs": [ModelInput(k, _dims(v.shape), v.dtype.name)
                        for k, v in _leaves_with_paths(fn.structured_outputs)
                        if hasattr(v, "shape")]}


def _open_saved_model(path: Path, signature: str | None, outputs) -> ModelSource:
    """A SavedModel signature: inputs are its keyword arguments, outputs its (sorted) output keys."""
    import tensorflow as tf

    if not (path / "saved_model.pb").exists():
        raise FreezeError(f"'{path}' is a directory but not a SavedModel (no saved_model.pb)",
                          "point at a SavedModel directory")
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001
        index = path / "variables" / "variables.index"
        if not index.is_file() and "variables" in str(exc):
            raise FreezeError(f"SavedModel '{path}' is missing its variables ({index} is not there): "
                              f"TensorFlow says {str(exc).splitlines()[0]}",
                              "the variables/ directory of a SavedModel holds its weights: copy the whole "
                              "SavedModel directory (saved_model.pb and variables/), or save it again") from exc
        raise FreezeError(f"could not load SavedModel '{path}': {exc}", import_failure_hint(exc)) from exc
    signatures = dict(loaded.signatures)
    if signature is None:
        if not signatures:
            raise FreezeError(f"SavedModel '{path}' has no signatures",
                              "save it with tf.saved_model.save(obj, path, signatures=...)")
        signature = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
    if signature not in signatures:
        raise FreezeError(f"SavedModel has no signature '{signature}'; it has {sorted(signatures)}",
                          "choose one with --signature")
    concrete = signatures[signature]
    arg_specs = concrete.structured_input_signature[1]
    names = sorted(arg_specs)  # a signature's flat inputs are its keyword arguments in sorted order
    described = {name: _describe_signature(fn) for name, fn in sorted(signatures.items())}

    def build(shapes: dict, extra: dict) -> FrozenGraph:
        fn = concrete
        if any(_tf_shape(shapes[n]) != _dims(arg_specs[n].shape) for n in names):
            # the signature's own shapes would win over the ones asked for: retrace through a wrapper
            specs = {n: tf.TensorSpec(_tf_shape(shapes[n]), arg_specs[n].dtype, name=n) for n in names}
            wrapper = tf.function(lambda **kw: concrete(**kw), autograph=False)
            fn = _trace(lambda: wrapper.get_concrete_function(**specs), shapes)
        return _freeze_concrete(fn, names, extra, outputs, requested=shapes)

    return ModelSource("saved_model", described[signature]["inputs"], described[signature]["outputs"], build,
                       signature=signature, signatures=described, keep=loaded)


def _open_concrete(concrete, outputs) -> ModelSource:
    """A concrete function: inputs are its non-captured placeholders, named as in its graph."""
    import tensorflow as tf

    graph_inputs = _argument_tensors(concrete)
    names = [t.name.split(":")[0] for t in graph_inputs]
    declared = [ModelInput(n, _dims(t.shape), t.dtype.name) for n, t in zip(names, graph_inputs)]
    out_decl = [ModelInput(name, _dims(concrete.graph.get_tensor_by_name(ref).shape),
                           concrete.graph.get_tensor_by_name(ref).dtype.name)
                for name, ref in _output_map(concrete, None).items()]
    structure = concrete.structured_input_signature

    def build(shapes: dict, extra: dict) -> FrozenGraph:
        fn = concrete
        if any(_tf_shape(shapes[n]) != d.shape for n, d in zip(names, declared)):
            # retrace at the fixed shapes: the leaves of the signature, in order, are the graph's inputs
            new_specs = iter(tf.TensorSpec(_tf_shape(shapes[n]), t.dtype, name=n) for n, t in zip(names, graph_inputs))
            args, kwargs = tf.nest.map_structure(
                lambda leaf: next(new_specs) if isinstance(leaf, tf.TensorSpec) else leaf, structure)
            wrapper = tf.function(lambda *a, **kw: concrete(*a, **kw), autograph=False)
            fn = _trace(lambda: wrapper.get_concrete_function(*args, **kwargs), shapes)
        return _freeze_concrete(fn, names, extra, outputs, requested=shapes)

    return ModelSource("function", declared, out_decl, build)


def _argument_tensors(concrete) -> list:
    """The graph placeholders a concrete function is called with (not the captured variables/constants)."""
    captured = {internal.name for _, internal in concrete.graph.captures}
    return [t for t in concrete.inputs if t.name not in captured]


def _output_map(concrete, output_names: list[str] | None) -> dict[str, str]:
    """Public output name → graph tensor name.

    A dict of outputs (a SavedModel signature, a Keras 3 model returning a
    dict) is named by its keys (``a/b`` when nested).  ``concrete.outputs``
    is the flat list of graph tensors in ``tf.nest.flatten`` order of
    ``structured_outputs``, so keys and tensors are paired by position: a
    loaded signature's ``structured_outputs`` hold TensorSpecs named after
    the keys, not graph tensors.  Other outputs take ``output_names`` (Keras
    output names) or ``output_0``, ``output_1``…
    """
    flat = [t.name for t in concrete.outputs]
    structured = concrete.structured_outputs
    if isinstance(structured, dict):
        keys = [path for path, leaf in _leaves_with_paths(structured) if leaf is not None]
        if len(keys) == len(flat):
            return dict(zip(keys, flat))
        log.debug("structured outputs %s do not pair with flat outputs %s", keys, flat)
    if output_names and len(output_names) == len(flat) and len(set(output_names)) == len(flat):
        return dict(zip(output_names, flat))
    return {f"output_{i}": name for i, name in enumerate(flat)}


def _freeze_concrete(concrete, input_names: list[str], extra: dict, outputs, output_names=None,
                     requested: dict | None = None) -> FrozenGraph:
    """Inline, replace variables by constants, name inputs and outputs, prune and fold a traced function."""
    from .errors import InternalError

    out_map = _output_map(concrete, output_names)
    if outputs:
        missing = [o for o in outputs if o not in out_map]
        if missing:
            raise FreezeError(f"unknown output name(s) {missing}; the model's outputs are {list(out_map)}",
                              "use one of the model's output names")
        out_map = {o: out_map[o] for o in outputs}
    specs = []
    for name, t in zip(input_names, _argument_tensors(concrete)):
        dims = _dims(t.shape)
        wanted = (requested or {}).get(name)
        if dims is not None and wanted is not None and len(wanted) == len(dims):
            # a dimension asked to stay dynamic (-1) may be unknown; every other one must be known
            dims = tuple(-1 if d is None and int(w) < 0 else d for d, w in zip(dims, wanted))
        if dims is None or None in dims:
            raise InternalError(f"input '{name}' was traced with unknown dimensions {shape_text(dims)}")
        specs.append((t.name.split(":")[0], TensorSpec(name, tuple(dims), t.dtype.name)))
    values = _capture_values(concrete)
    gd = inline_functions(concrete.graph.as_graph_def())
    _refuse_random_ops(gd, list(out_map.values()))
    constants: dict[str, np.ndarray] = {}
    gd = _replace_resources(gd, values, constants)
    del values
    specs += _declared_defaults(gd, extra, [s.name for _, s in specs])
    return _finish(gd, specs, out_map, constants)


#: ops that draw random numbers: in an inference graph they come from dropout/noise layers left in training mode
RANDOM_OPS = frozenset({
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal", "RandomShuffle",
    "RandomGamma", "RandomPoisson", "RandomPoissonV2", "Multinomial", "StatelessRandomUniform",
    "StatelessRandomUniformV2", "StatelessRandomUniformInt", "StatelessRandomUniformIntV2",
    "StatelessRandomUniformFullInt", "StatelessRandomUniformFullIntV2", "StatelessRandomNormal",
    "StatelessRandomNormalV2", "StatelessTruncatedNormal", "StatelessTruncatedNormalV2",
    "StatelessMultinomial", "StatefulUniform", "StatefulUniformInt", "StatefulUniformFullInt",
    "StatefulStandardNormalV2", "StatefulTruncatedNormal", "RngReadAndSkip", "RngSkip",
    "StatelessRandomGetKeyCounter", "StatelessRandomGetKeyCounterAlg", "StatelessRandomNormalV3",
    "StatelessParameterizedTruncatedNormal", "ParameterizedTruncatedNormal",
})


def _refuse_random_ops(gd, outputs: list[str]) -> None:
    """Random numbers feeding an output mean dropout/noise layers traced in training mode.  Freezing would turn
    their seed variables into constants and fold the draws into one fixed mask: an engine that converts and
    "verifies" (TensorFlow's frozen graph draws the same mask) but is not the model.  Refuse it here, before
    folding hides it."""
    wanted = _ancestors(gd, [_src(o) for o in outputs])
    random = sorted(n.name for n in gd.node if n.op in RANDOM_OPS and n.name in wanted)
    if random:
        shown = ", ".join(random[:3]) + (f" and {len(random) - 3} more" if len(random) > 3 else "")
        raise FreezeError(f"the outputs depend on random values ({shown}): dropout, noise or augmentation layers "
                          "traced in training mode",
                          "export the model in inference mode: call it with training=False (or drop those layers) "
                          "in the function you convert")


def _declared_defaults(gd, extra: dict, input_names: list[str]) -> list[tuple[str, TensorSpec]]:
    """Specs for the PlaceholderWithDefault nodes named in ``extra``: declared, they become inputs."""
    from tensorflow import dtypes

    if not extra:
        return []
    defaults = {n.name: n for n in gd.node if n.op == "PlaceholderWithDefault"}
    unknown = sorted(set(extra) - set(defaults))
    if unknown:
        raise FreezeError(f"unknown input name(s) {unknown}; the model's inputs are {input_names}"
                          + (f" (and PlaceholderWithDefault nodes {sorted(defaults)})" if defaults else ""),
                          "use the model's input names (tf2trt inspect MODEL lists them)")
    specs = []
    for name, shape in extra.items():
        node = defaults[name]
        attr = node.attr["shape"].shape
        declared = ModelInput(name, None if attr.unknown_rank else tuple(d.size if d.size >= 0 else None
                                                                          for d in attr.dim))
        problem = _mismatch(declared, shape)
        if problem:
            raise FreezeError(problem.replace("input ", "PlaceholderWithDefault ", 1),
                              f"give it a shape that fits: --input {name}:{shape_text(suggested_shape(declared, shape)[0])}")
        specs.append((name, TensorSpec(name, tuple(shape), dtypes.as_dtype(node.attr["dtype"].type).name)))
    return specs


def _capture_values(concrete) -> dict[str, np.ndarray]:
    """Placeholder name -> value for every captured variable or eager tensor."""
    by_handle = {}
    for var in concrete.variables:
        by_handle[id(var.handle)] = var
    values = {}
    for external, internal in concrete.graph.captures:
        name = internal.name.split(":")[0]
        var = by_handle.get(id(external))
        if var is not None:
            values[name] = ("var", var.numpy())
        elif external.dtype.name != "resource":
            values[name] = ("const", external.numpy())
        else:
            # a resource we cannot read (e.g. a lookup table): leave it, the support check reports it
            log.debug("capture %s is an unreadable resource", name)
    return values


def _replace_resources(gd, values: dict, constants: dict):
    """Variables become constants: ReadVariableOp → Const, ResourceGather(Nd) → GatherV2/GatherNd on a Const."""
    import tensorflow as tf

    out = _graph_def_class()()
    out.versions.CopyFrom(gd.versions)
    resource_like = {name for name, (kind, _) in values.items() if kind == "var"}
    # Follow Identity chains on resource handles
    changed = True
    while changed:
        changed = False
        for n in gd.node:
            if n.op == "Identity" and n.name not in resource_like and n.input and _src(n.input[0]) in resource_like:
                if n.attr["T"].type == tf.resource.as_datatype_enum:
                    resource_like.add(n.name)
                    values[n.name] = values[_src(n.input[0])]
                    changed = True
    for n in gd.node:
        if n.name in values and n.op in ("Placeholder", "Identity"):
            kind, value = values[n.name]
            if kind == "const":
                out.node.append(_const_node(n.name, value, constants))
            # resource placeholders vanish; their ReadVariableOps become Consts
            continue
        if n.op in ("ReadVariableOp", "ResourceGather", "ResourceGatherNd") and _src(n.input[0]) in resource_like:
            value = values[_src(n.input[0])][1]
            if n.op in ("ResourceGather", "ResourceGatherNd"):
                params = n.name + "/params"
                out.node.append(_const_node(params, value, constants))
                out.node.extend(_gather_from_resource(n, params, constants))
                continue
            out.node.append(_const_node(n.name, value, constants))
            continue
        out.node.append(n)
    out.library.CopyFrom(gd.library)
    variables = {name: value for name, (kind, value) in values.items() if kind == "var"}
    freeze_resource_inputs(out, variables, lambda name, value: _const_node(name, value, constants))
    copy_library(out, out)
    return out


def _gather_from_resource(n, params: str, constants: dict) -> list:
    """The GatherV2 (GatherNd) node (and its axis Const) that reads what a ResourceGather (ResourceGatherNd) read from a variable.

    The new node gets the attributes of its own op: GatherV2 needs ``Taxis``
    (the axis input's dtype, which ResourceGather lacks) and gathers along
    ``axis = batch_dims`` as ResourceGather does.
    """
    import tensorflow as tf
    from tensorflow.core.framework import node_def_pb2

    new = node_def_pb2.NodeDef()
    new.name = n.name
    new.device = n.device
    dtype = n.attr["dtype"].type
    new.attr["Tparams"].type = dtype
    new.attr["Tindices"].type = n.attr["Tindices"].type
    if n.op == "ResourceGatherNd":
        new.op = "GatherNd"
        new.input.extend([params, n.input[1]])
        return [new]
    batch_dims = int(n.attr["batch_dims"].i) if "batch_dims" in n.attr else 0
    axis = n.name + "/axis"
    new.op = "GatherV2"
    new.input.extend([params, n.input[1], axis])
    new.attr["Taxis"].type = tf.int32.as_datatype_enum
    new.attr["batch_dims"].i = batch_dims
    return [_const_node(axis, np.array(batch_dims, np.int32), constants), new]


def _open_pb(path: Path, outputs) -> ModelSource:
    """A frozen GraphDef: inputs are the placeholders the outputs read.

    Outputs are the ``outputs`` asked for, else the sink nodes.  A
    placeholder nothing the outputs need reads (TensorFlow's own freezing
    keeps every function argument, used or not) is not an input.  A
    reachable ``PlaceholderWithDefault`` is optional: fed when declared,
    else it takes its default.
    """
    from tensorflow import dtypes

    gd = _graph_def_class()()
    size = path.stat().st_size
    if size >= PROTOBUF_LIMIT:
        # protobuf cannot parse a message of 2 GiB or more; it would only say "wire format was corrupt"
        raise FreezeError(f"'{path}' is {size} bytes ({size / 2**30:.2f} GiB): protobuf cannot parse a message of "
                          f"2 GiB ({PROTOBUF_LIMIT} bytes) or more, so no GraphDef .pb this large can be read", "convert the SavedModel (or the Keras model) it was frozen from instead: "
                          "tf2trt keeps large weights outside the GraphDef")
    try:
        data = path.read_bytes()
        gd.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise FreezeError(f"'{path}' is not a valid GraphDef: {exc}", "pass a binary frozen GraphDef (.pb)") from exc
    if not gd.node:
        raise FreezeError(f"'{path}' holds an empty GraphDef", "pass a frozen GraphDef with nodes")
    if any(n.op in ("VariableV2", "VarHandleOp", "Variable") for n in gd.node):
        raise FreezeError(f"'{path}' still has variables", "freeze it first (convert_variables_to_constants)")
    constants: dict[str, np.ndarray] = {}
    gd = externalize_constants(gd, constants)
    gd = inline_functions(gd)
    names = {n.name: n for n in gd.node}
    if outputs:
        missing = [o for o in outputs if _src(o) not in names]
        if missing:
            raise FreezeError(f"unknown output name(s) {missing}", "use node names of the graph")
        out_map = {o.split(":")[0] if ":0" in o or ":" not in o else o.replace(":", "_"): (o if ":" in o else o + ":0")
                   for o in outputs}
    else:
        consumed = {_src(i) for n in gd.node for i in n.input}
        sinks = [n.name for n in gd.node if n.name not in consumed and n.op not in _NOT_OUTPUTS]
        if not sinks:
            raise FreezeError("cannot tell the graph's outputs", "name them with --output")
        out_map = {s: s + ":0" for s in sinks}
    reached = _ancestors(gd, [_src(t) for t in out_map.values()])

    def declared(node) -> ModelInput:
        shape = node.attr["shape"].shape if "shape" in node.attr else None
        dims = None if shape is None or shape.unknown_rank else tuple(d.size if d.size >= 0 else None
                                                                      for d in shape.dim)
        return ModelInput(node.name, dims, dtypes.as_dtype(node.attr["dtype"].type).name)

    placeholders = [n for n in gd.node if n.op in ("Placeholder", "PlaceholderV2") and not is_external_const(n)]
    inputs = [declared(p) for p in placeholders if p.name in reached]
    unused = [p.name for p in placeholders if p.name not in reached]
    if unused:
        log.info("placeholders %s are read by nothing the outputs need: not inputs", unused)
    optional = [declared(n) for n in gd.node if n.op == "PlaceholderWithDefault" and n.name in reached]
    out_decl = [ModelInput(name, None, None) for name in out_map]

    def build(shapes: dict, extra: dict) -> FrozenGraph:
        dtype = {i.name: i.dtype for i in inputs + optional}
        specs = [(name, TensorSpec(name, tuple(shape), dtype[name])) for name, shape in {**shapes, **extra}.items()]
        return _finish(gd, specs, out_map, constants)

    return ModelSource("frozen_pb", inputs, out_decl, build, optional_inputs=optional, unused_placeholders=unused)


def _ancestors(gd, roots: list[str]) -> set[str]:
    """Names of ``roots`` and every node they read through data inputs (freezing drops control edges)."""
    nodes = {n.name: n for n in gd.node}
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        stack.extend(_src(i) for i in nodes[name].input if not i.startswith("^"))
    return seen


# --------------------------------------------------------------------------- graph surgery


def _src(name: str) -> str:
    """Node name of an input reference (``^ctrl``, ``node:1`` → ``node``)."""
    name = name.lstrip("^")
    return name.split(":")[0]


def _const_node(name: str, value: np.ndarray, constants: dict):
    """A Const node, or for big values a marked placeholder with the value kept in ``constants``."""
    import tensorflow as tf
    from tensorflow.core.framework import node_def_pb2

    node = node_def_pb2.NodeDef()
    node.name = name
    value = np.asarray(value)
    node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
    if value.nbytes > EXTERNAL_CONST_BYTES and value.dtype.kind in "fiub":
        node.op = "Placeholder"
        for d in value.shape:
            node.attr["shape"].shape.dim.add().size = int(d)
        node.attr[EXTERNAL_ATTR].b = True
        constants[name] = value
    else:
        node.op = "Const"
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        constants.pop(name, None)
    return node


def is_external_const(node) -> bool:
    return node.op == "Placeholder" and EXTERNAL_ATTR in node.attr


def externalize_constants(gd, constants: dict):
    """Move the big values of a GraphDef's Const nodes into ``constants`` (for frozen .pb input)."""
    import tensorflow as tf

    out = _graph_def_class()()
    out.versions.CopyFrom(gd.versions)
    out.library.CopyFrom(gd.library)
    for n in gd.node:
        if n.op == "Const" and n.attr["value"].tensor.ByteSize() > EXTERNAL_CONST_BYTES:
            value = tf.make_ndarray(n.attr["value"].tensor)
            new = _const_node(n.name, value, constants)
            new.input.extend(i for i in n.input if i.startswith("^"))
            out.node.append(new)
        else:
            out.node.append(n)
    return out


def inline_functions(gd, max_depth: int = 32):
    """Inline every PartitionedCall/StatefulPartitionedCall, recursively, ignoring ``_noinline``."""
    from tensorflow.python.framework import function_def_to_graph

    library = {f.signature.name: f for f in gd.library.function}
    for depth in range(max_depth):
        calls = [n for n in gd.node if n.op in _CALL_OPS]
        if not calls:
            break
        out = _graph_def_class()()
        out.versions.CopyFrom(gd.versions)
        out.library.CopyFrom(gd.library)
        renames: dict[str, str] = {}
        for n in gd.node:
            if n.op not in _CALL_OPS:
                out.node.append(n)
                continue
            fname = n.attr["f"].func.name
            fdef = library.get(fname)
            if fdef is None:
                raise FreezeError(f"call '{n.name}' refers to missing function '{fname}'", "re-export the model")
            body, nested_to_flat = function_def_to_graph.function_def_to_graph_def(fdef)
            prefix = n.name + "/"
            data_inputs = [i for i in n.input if not i.startswith("^")]
            controls = [i for i in n.input if i.startswith("^")]
            arg_names = [a.name for a in fdef.signature.input_arg]
            arg_map = dict(zip(arg_names, data_inputs))
            for bn in body.node:
                if bn.op in ("Placeholder",) and bn.name in arg_map:
                    ident = out.node.add()
                    ident.name = prefix + bn.name
                    ident.op = "Identity"
                    ident.input.append(arg_map[bn.name])
                    ident.input.extend(controls)
                    ident.attr["T"].type = bn.attr["dtype"].type
                    continue
                new = out.node.add()
                new.CopyFrom(bn)
                new.name = prefix + bn.name
                del new.input[:]
                for i in bn.input:
                    ctrl = i.startswith("^")
                    new.input.append(("^" if ctrl else "") + prefix + i.lstrip("^"))
            for k, ret in enumerate(fdef.signature.output_arg):
                flat = nested_to_flat[fdef.ret[ret.name]] if fdef.ret[ret.name] in nested_to_flat else fdef.ret[ret.name]
                renames[f"{n.name}:{k}"] = prefix + flat
                if k == 0:
                    renames[n.name] = prefix + flat
            renames["^" + n.name] = None  # control deps on calls are dropped: ordering is irrelevant after freezing
        for node in out.node:
            new_inputs = []
            for i in node.input:
                if i in renames:
                    if renames[i] is not None:
                        new_inputs.append(renames[i])
                elif i.startswith("^") and i[1:] in renames:
                    continue
                else:
                    new_inputs.append(i)
            del node.input[:]
            node.input.extend(new_inputs)
        gd = out
    else:
        raise FreezeError("function calls nested deeper than 32 levels", "simplify the model")
    copy_library(gd, gd)  # only the bodies of control-flow ops stay (see converter.control_flow)
    return gd


def _finish(gd, specs: list[tuple[str, TensorSpec]], out_map: dict[str, str], constants: dict) -> FrozenGraph:
    """Rename inputs/outputs, prune, drop passthrough nodes, fold constants."""
    from tensorflow.core.framework import node_def_pb2  # noqa: F401

    # 1. rename input placeholders to their public names and pin their shapes
    rename = {}
    for internal, spec in specs:
        if internal != spec.name:
            rename[internal] = spec.name
    names = {n.name for n in gd.node}
    for internal, public in list(rename.items()):
        if public in names and public not in rename:
            # the public name is taken by another node: move that node aside
            rename[public] = public + "/_renamed"
    _rename_nodes(gd, rename)
    for old, new in rename.items():
        if old in constants:
            constants[new] = constants.pop(old)
    spec_by_name = {s.name: s for _, s in specs}
    for n in gd.node:
        if n.name in spec_by_name and n.op in ("Placeholder", "PlaceholderV2", "PlaceholderWithDefault"):
            # a declared PlaceholderWithDefault is fed: its default subgraph is no longer read
            n.op = "Placeholder"
            del n.input[:]
            shape = n.attr["shape"].shape
            shape.Clear()
            for d in spec_by_name[n.name].shape:
                shape.dim.add().size = int(d)
            for key in list(n.attr):
                if key not in ("dtype", "shape"):
                    del n.attr[key]
    # TF1 loop/cond frames and TensorArrays → While/If nodes (the graph is acyclic then), at the pinned shapes
    from .tf1_control_flow import functionalize

    gd = functionalize(gd)
    # 2. output Identity nodes with the public output names
    fixed_outputs = {}
    existing = {n.name for n in gd.node}
    for public, tensor in out_map.items():
        tensor = _rename_ref(tensor, rename)
        target = public
        if target in existing and _src(tensor) != target:
            # a node already has this name: rename that one aside
            _rename_nodes(gd, {target: target + "/_orig"})
            tensor = _rename_ref(tensor, {target: target + "/_orig"})
            existing = {n.name for n in gd.node}
        if _src(tensor) == target and (tensor.endswith(":0") or ":" not in tensor):
            fixed_outputs[public] = target
            continue
        fixed_outputs[public] = target
        ident = gd.node.add()
        ident.name = target
        ident.op = "Identity"
        ident.input.append(tensor)
        ident.attr["T"].type = _dtype_of(gd, tensor)
        existing.add(target)
    outputs = list(out_map)
    keep = set(outputs) | {s.name for _, s in specs}
    gd = strip_and_prune(gd, outputs, keep)
    gd = fold_constants(gd, {s.name for _, s in specs}, constants)
    gd = strip_and_prune(gd, outputs, keep)
    gd = add_shapes(gd)
    present = {n.name for n in gd.node if is_external_const(n)}
    constants = {k: v for k, v in constants.items() if k in present}
    kept = {n.name for n in gd.node}
    unused = [s.name for _, s in specs if s.name not in kept]
    if unused:
        # a placeholder the outputs never read cannot be fed to the network: it is not an input
        log.info("inputs %s are read by nothing the outputs need: dropped", unused)
    return FrozenGraph(gd, [s for _, s in specs if s.name in kept], outputs, constants=constants)


def add_shapes(gd):
    """Annotate every node with TensorFlow's static output shapes (``_output_shapes``).

    The converter compares each TensorRT output shape with these, so a shape
    disagreement is reported at the TF node that caused it.
    """
    import tensorflow as tf

    # Shape inference needs the values of small (shape-like) constants only:
    # big weights are stood in for by placeholders of the same shape, which
    # keeps the import fast.
    light = _graph_def_class()()
    light.versions.CopyFrom(gd.versions)
    light.library.CopyFrom(gd.library)
    for n in gd.node:
        if n.op == "Const" and n.attr["value"].tensor.ByteSize() > 4096:
            stand_in = light.node.add()
            stand_in.name = n.name
            stand_in.op = "Placeholder"
            stand_in.attr["dtype"].type = n.attr["dtype"].type
            stand_in.attr["shape"].shape.CopyFrom(n.attr["value"].tensor.tensor_shape)
        else:
            light.node.append(n)
    with tf.Graph().as_default() as g:
        try:
            tf.graph_util.import_graph_def(light, name="")
        except Exception as exc:  # noqa: BLE001 - TF raises ValueError/InvalidArgumentError/...
            raise FreezeError(f"the frozen graph does not import into TensorFlow: {exc}",
                              import_failure_hint(exc)) from exc
        shapes = {}
        for op in g.get_operations():
            shapes[op.name] = [t.shape for t in op.outputs]
    for n in gd.node:
        outs = shapes.get(n.name, [])
        entry = n.attr["_output_shapes"].list
        del entry.shape[:]
        for shape in outs:
            entry.shape.add().CopyFrom(shape.as_proto())
    return gd


_INPUT_COUNT = re.compile(r"NodeDef expected inputs '([^']*)' do not match (\d+) inputs specified.*?\{\{node ([^}]+)\}\}",
                          re.S)
_SHAPE_WORDS = ("Dimensions must be equal", "Shapes must be equal rank", "Shape must be rank", "Incompatible shapes",
                "must have the same shape", "Cannot reshape", "Dimension size must be", "shapes must be")


def import_failure_hint(exc: BaseException) -> str:
    """What to do about TensorFlow refusing a graph, from what its message says happened.

    Only a missing op registration means this TensorFlow build lacks an op; a shape disagreement and a
    node whose inputs went missing are said as such, since guessing "missing ops" sends people to
    reinstall TensorFlow for a graph that is simply inconsistent.
    """
    text = str(exc)
    m = re.search(r"Op type not registered '([^']+)'", text)
    if m:
        return (f"op {m.group(1)} is not registered in this TensorFlow build: convert with the TensorFlow version "
                "(and add-on packages, e.g. tensorflow-text) the model was made with")
    m = _INPUT_COUNT.search(text)
    if m:
        wanted = len([t for t in m.group(1).split(",") if t.strip()])
        return (f"node {m.group(3)} has {m.group(2)} input(s) where its op takes {wanted}: the graph lost (or "
                "gained) edges after export, typically control-flow nodes (Switch/Merge) whose inputs were "
                "pruned or edited; re-export the model from its source instead of editing the GraphDef")
    m = re.search(r"Node '([^']+)': Unknown input node '([^']+)'", text)
    if m:
        return (f"node {m.group(1)} reads {m.group(2)}, which is not in the graph: the GraphDef is incomplete "
                "(pruned or edited after export); re-export the model")
    if any(w in text for w in _SHAPE_WORDS):
        return ("the graph's shapes disagree at the node named above: if you gave input shapes (--input/--profile), "
                "they do not fit what the graph computes (tf2trt inspect MODEL shows the declared shapes); "
                "otherwise the GraphDef itself is inconsistent: re-export it")
    return ("TensorFlow's own message above says what it refuses; re-export the model with the TensorFlow version "
            "it was made with")


def _rename_ref(ref: str, rename: dict) -> str:
    ctrl = ref.startswith("^")
    base = ref.lstrip("^")
    node, sep, idx = base.partition(":")
    node = rename.get(node, node)
    return ("^" if ctrl else "") + node + (sep + idx if sep else "")


def _rename_nodes(gd, rename: dict) -> None:
    if not rename:
        return
    for n in gd.node:
        if n.name in rename:
            n.name = rename[n.name]
        new_inputs = [_rename_ref(i, rename) for i in n.input]
        del n.input[:]
        n.input.extend(new_inputs)


def _dtype_of(gd, tensor: str) -> int:
    """DataType enum of a node output, best effort from the node's attributes."""
    node_name, _, idx = tensor.partition(":")
    for n in gd.node:
        if n.name == node_name:
            for key in ("T", "dtype", "out_type", "DstT", "Tout"):
                if key in n.attr and n.attr[key].type:
                    return n.attr[key].type
            if "_output_shapes" in n.attr:
                pass
    return 1  # DT_FLOAT


def strip_and_prune(gd, outputs: list[str], keep: set[str]):
    """Keep what the outputs need; bypass passthrough nodes; drop control edges."""
    nodes = {n.name: n for n in gd.node}
    # bypass passthrough ops (Identity & co) except the named ones
    alias: dict[str, str] = {}
    for n in gd.node:
        if n.op in _PASSTHROUGH_OPS and n.name not in keep:
            data = [i for i in n.input if not i.startswith("^")]
            if data:
                alias[n.name] = data[0] if ":" in data[0] else data[0] + ":0"
    if "IdentityN" in {n.op for n in gd.node}:
        for n in gd.node:
            if n.op == "IdentityN" and n.name not in keep:
                data = [i for i in n.input if not i.startswith("^")]
                for k, ref in enumerate(data):
                    alias[f"{n.name}:{k}"] = ref if ":" in ref else ref + ":0"
                alias[n.name] = alias.get(f"{n.name}:0", data[0] if data else n.name)

    def resolve(ref: str) -> str:
        seen = 0
        while True:
            key = ref if ref in alias else (ref[:-2] if ref.endswith(":0") and ref[:-2] in alias else None)
            if key is None:
                return ref
            ref = alias[key]
            seen += 1
            if seen > 10000:
                raise FreezeError("cycle of Identity nodes", "check the graph")

    for n in gd.node:
        new_inputs = []
        for i in n.input:
            if i.startswith("^"):
                continue
            r = resolve(i)
            new_inputs.append(r[:-2] if r.endswith(":0") else r)
        del n.input[:]
        n.input.extend(new_inputs)
    # prune
    needed = set()
    stack = list(outputs)
    while stack:
        name = _src(stack.pop())
        if name in needed or name not in nodes:
            continue
        needed.add(name)
        stack.extend(nodes[name].input)
    missing = [o for o in outputs if o not in nodes]
    if missing:
        # every source names its outputs with nodes it added itself: a missing one is tf2trt's mistake
        from .errors import InternalError

        raise InternalError(f"output node(s) {missing} were not created in the frozen graph")
    out = _graph_def_class()()
    out.versions.CopyFrom(gd.versions)
    for n in gd.node:
        if n.name in needed and n.op not in CONTROL_ONLY_OPS:
            out.node.append(n)
    copy_library(out, gd)
    return out


#: ops that touch the host (files, processes, Python) and that constant folding must never run: a model from
#: elsewhere could otherwise bake a build host's file into the engine (``ReadFile`` of a constant path) or
#: run code.  They are not stateful to TensorFlow, so the stateful check below does not catch them.
HOST_IO_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "Save", "SaveV2", "SaveSlices", "Restore",
    "RestoreV2", "RestoreSlice", "MergeV2Checkpoints", "ShardedFilename", "ShardedFilespec", "PyFunc",
    "PyFuncStateless", "EagerPyFunc", "ReaderReadV2", "WholeFileReaderV2", "TextLineReaderV2",
    "FixedLengthRecordReaderV2", "TFRecordReaderV2", "DecodeProtoV2", "EncodeProto", "PrintV2", "Print",
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "ExperimentalDatasetToTFRecord", "DatasetToTFRecord",
})


def _foldable_op(op: str) -> bool:
    """Whether constant folding may run ``op``: no host I/O and nothing stateful (TensorFlow's own op flag)."""
    if op in HOST_IO_OPS:
        return False
    try:
        from tensorflow.python.framework import op_def_registry
    except ImportError:  # pragma: no cover - TensorFlow is a dependency
        return True
    op_def = op_def_registry.get(op)
    if op_def is None:
        return True
    # a TensorList or resource handle (LSTM's while loop: TensorListReserve) has no Const form
    handles = (20, 21)  # DT_RESOURCE, DT_VARIANT
    return not op_def.is_stateful and not any(arg.type in handles for arg in op_def.output_arg)


#: quantization ops left unfolded on constant inputs (quantized weights; :mod:`converter.ops.quant`)
QUANTIZED_WEIGHT_OPS = frozenset({
    "FakeQuantWithMinMaxArgs", "FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel",
    "QuantizeAndDequantizeV2", "QuantizeAndDequantizeV3", "QuantizeAndDequantizeV4"})
#: the consumers that take a computed (int8 + DEQUANTIZE) weight tensor; under any other (a depthwise filter, a
#: shape) the quantized weights fold as before
QUANTIZED_WEIGHT_CONSUMERS = frozenset({"Conv2D", "Conv3D", "MatMul", "BatchMatMul", "BatchMatMulV2",
                                        "BatchMatMulV3"})


def fold_constants(gd, input_names: set[str], constants: dict, keep_quantized: bool = True):
    """Evaluate every subgraph that depends on no input and replace it by Const nodes.

    Runs TensorFlow once on all the frontier tensors (constant tensors consumed
    by non-constant nodes), so Keras 3's frozen BatchNormalization
    (Rsqrt/Mul/Sub on constants, reshaped kernels…) becomes plain weights.

    One exception (``keep_quantized``): a quantization op (:data:`QUANTIZED_WEIGHT_OPS`) on constants whose
    every consumer is a non-constant convolution or matrix product (:data:`QUANTIZED_WEIGHT_CONSUMERS`;
    quantization-aware weights) stays, its constant inputs folded: an int8 conversion needs its scales to
    build int8 weights.  The "emulate" conversion folds it in numpy exactly
    as TensorFlow does (:func:`converter.ops.quant.fold_constant_quantization`), so its network is unchanged.
    """
    import tensorflow as tf

    nodes = {n.name: n for n in gd.node}
    order = _topo_order(gd)
    const: set[str] = set()
    nondeterministic = {"RandomUniform", "RandomStandardNormal", "RandomUniformInt", "TruncatedNormal",
                        "Placeholder", "PlaceholderWithDefault", "VarHandleOp", "ReadVariableOp"}
    for name in order:
        n = nodes[name]
        if is_external_const(n):
            const.add(name)
            continue
        if name in input_names or n.op in nondeterministic or n.op in _CALL_OPS or not _foldable_op(n.op):
            continue
        if n.op == "Const" or (n.input and all(_src(i) in const for i in n.input)):
            const.add(name)
        elif n.op == "Shape" and False:
            pass
    if keep_quantized:
        users: dict[str, set[str]] = {}
        for n in gd.node:
            for i in n.input:
                if not i.startswith("^"):
                    users.setdefault(_src(i), set()).add(n.name)
        for name in [m for m in const if nodes[m].op in QUANTIZED_WEIGHT_OPS]:
            if users.get(name) and not users[name] & const and \
                    all(nodes[u].op in QUANTIZED_WEIGHT_CONSUMERS for u in users[name]):
                const.discard(name)
    frontier: list[str] = []
    consumers_nonconst: set[str] = set()
    for n in gd.node:
        if n.name in const:
            continue
        for i in n.input:
            if _src(i) in const and nodes[_src(i)].op != "Const" and not is_external_const(nodes[_src(i)]):
                consumers_nonconst.add(i if ":" in i else i + ":0")
    frontier = sorted(consumers_nonconst)
    if not frontier:
        return gd
    # only the ancestors of the frontier are evaluated: the big weights that
    # feed layers directly never go through TensorFlow again
    needed: set[str] = set()
    stack = [_src(t) for t in frontier]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        stack.extend(_src(i) for i in nodes[name].input)
    sub = _graph_def_class()()
    sub.versions.CopyFrom(gd.versions)
    sub.library.CopyFrom(gd.library)
    for name in order:
        if name in needed:
            sub.node.append(nodes[name])
    with tf.Graph().as_default() as g:
        tf.graph_util.import_graph_def(sub, name="")
        fetches = [g.get_tensor_by_name(t) for t in frontier]
        feed = {g.get_tensor_by_name(k + ":0"): v for k, v in constants.items() if k in needed}
        with tf.compat.v1.Session(graph=g) as sess:
            values = sess.run(fetches, feed_dict=feed)
    folded = dict(zip(frontier, values))
    out = _graph_def_class()()
    out.versions.CopyFrom(gd.versions)
    added = set()
    for n in gd.node:
        if n.name in const and n.op != "Const" and not is_external_const(n):
            continue
        new_inputs = []
        for i in n.input:
            key = i if ":" in i else i + ":0"
            if key in folded:
                cname = _folded_name(key)
                if cname not in added:
                    out.node.append(_const_node(cname, folded[key], constants))
                    added.add(cname)
                new_inputs.append(cname)
            else:
                new_inputs.append(i)
        new = out.node.add()
        new.CopyFrom(n)
        del new.input[:]
        new.input.extend(new_inputs)
    copy_library(out, gd)
    return out


def _folded_name(tensor: str) -> str:
    node, _, idx = tensor.partition(":")
    return node if idx in ("", "0") else f"{node}/output_{idx}"


def _topo_order(gd) -> list[str]:
    nodes = {n.name: n for n in gd.node}
    order: list[str] = []
    state: dict[str, int] = {}
    for root in nodes:
        if root in state:
            continue
        stack = [(root, iter(nodes[root].input))]
        state[root] = 1
        while stack:
            name, it = stack[-1]
            advanced = False
            for ref in it:
                dep = _src(ref)
                if dep not in nodes:
                    continue
                if state.get(dep) is None:
                    state[dep] = 1
                    stack.append((dep, iter(nodes[dep].input)))
                    advanced = True
                    break
                if state[dep] == 1:
                    raise FreezeError(f"graph has a cycle through '{dep}'", "only acyclic inference graphs convert")
            if not advanced:
                stack.pop()
                state[name] = 2
                order.append(name)
    return order


_INPUT_SPEC = re.compile(r"^(?P<name>[^:]+):(?P<shape>\d+(x\d+)*)$")


def parse_input_spec(text: str) -> tuple[str, tuple[int, ...]]:
    """``NAME:1x224x224x3`` → (name, shape); used by the CLI."""
    m = _INPUT_SPEC.match(text.strip())
    if not m:
        raise FreezeError(f"bad --input '{text}'", "write NAME:SHAPE with SHAPE like 1x224x224x3")
    return m.group("name"), tuple(int(d) for d in m.group("shape").split("x"))
