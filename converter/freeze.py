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

import numpy as np

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
#: attribute marking a placeholder that stands for an external constant
EXTERNAL_ATTR = "_tf2trt_constant"


@dataclass(frozen=True)
class TensorSpec:
    """A named graph input: TF dtype name (``float32``…) and a fully known shape."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        return cls(d["name"], tuple(int(x) for x in d["shape"]), d.get("dtype", "float32"))


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


# --------------------------------------------------------------------------- loading


def freeze(
    model,
    inputs: dict[str, tuple] | None = None,
    outputs: list[str] | None = None,
    signature: str = "serving_default",
) -> FrozenGraph:
    """Freeze ``model`` into a :class:`FrozenGraph`.

    ``inputs`` overrides input shapes by name (needed for unknown non-batch
    dimensions; an unknown batch dimension defaults to 1).  ``outputs`` selects
    output names (Keras output names, signature keys, or node names of a
    ``.pb``); by default all outputs of the model are kept.
    """
    inputs = dict(inputs or {})
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise FreezeError(f"model not found: {path}", "check the path")
        if path.is_dir():
            return _freeze_saved_model(path, signature, inputs, outputs)
        suffix = path.suffix.lower()
        if suffix == ".pb":
            return _freeze_pb(path, inputs, outputs)
        if suffix in (".keras", ".h5", ".hdf5"):
            return _freeze_keras(_load_keras_file(path), inputs, outputs)
        raise FreezeError(
            f"don't know how to load '{path.name}'",
            "pass a .keras or .h5 file, a SavedModel directory or a frozen .pb",
        )
    import tensorflow as tf

    if hasattr(model, "inputs") and hasattr(model, "outputs") and callable(model):
        return _freeze_keras(model, inputs, outputs)
    if isinstance(model, tf.types.experimental.ConcreteFunction):
        return _freeze_concrete(model, inputs, outputs, output_names=None)
    if isinstance(model, tf.types.experimental.GenericFunction):
        specs = model.input_signature
        if specs is None:
            raise FreezeError(
                "tf.function has no input_signature", "decorate it with input_signature=[tf.TensorSpec(...)]"
            )
        flat = tf.nest.flatten(specs)
        unknown = set(inputs) - {s.name for s in flat}
        if unknown:
            raise FreezeError(f"unknown input name(s) {sorted(unknown)}; the function's inputs are "
                              f"{[s.name for s in flat]}", "use one of the input names")
        specs = [_override_spec(s, inputs, i) for i, s in enumerate(specs)]
        if any(tuple(s.shape) != tuple(o.shape) for s, o in zip(specs, model.input_signature)):
            # the function's own signature would win over the shapes asked for: retrace through a wrapper
            wrapper = tf.function(lambda *args: model(*args), autograph=False)
            concrete = wrapper.get_concrete_function(*specs)
        else:
            concrete = model.get_concrete_function(*specs)
        return _freeze_concrete(concrete, inputs, outputs, output_names=None,
                                input_names=[s.name for s in specs])
    raise FreezeError(f"unsupported model object of type {type(model).__name__}",
                      "pass a path, a tf.keras.Model, a tf.function or a concrete function")


def _load_keras_file(path: Path):
    errors = []
    if path.suffix.lower() == ".keras":
        loaders = ("keras", "tf_keras")
    else:
        loaders = ("tf_keras", "keras")
    for loader in loaders:
        try:
            module = __import__(loader)
            return module.models.load_model(str(path), compile=False)
        except ImportError as exc:
            errors.append(f"{loader}: {exc}")
        except Exception as exc:  # noqa: BLE001 - every loader failure is reported together
            errors.append(f"{loader}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    raise FreezeError(f"could not load Keras model '{path}': " + "; ".join(errors),
                      "is it a Keras model file? Re-save it with model.save('model.keras')")


def _override_spec(spec, overrides: dict, index: int):
    import tensorflow as tf

    name = spec.name or f"input_{index}"
    shape = overrides.get(name)
    if shape is not None:
        return tf.TensorSpec(shape, spec.dtype, name=name)
    dims = list(spec.shape.as_list()) if spec.shape.rank is not None else None
    if dims is None:
        raise FreezeError(f"input '{name}' has unknown rank", f"give its shape with --input {name}:1x...")
    for axis, dim in enumerate(dims):
        if dim is None:
            if axis == 0:
                dims[0] = 1
            else:
                raise FreezeError(
                    f"input '{name}' has an unknown dimension {axis} (shape {spec.shape})",
                    f"give a full shape with --input {name}:" + "x".join(str(d or 'N') for d in [1] + dims[1:]),
                )
    return tf.TensorSpec(dims, spec.dtype, name=name)


def _freeze_keras(model, inputs: dict, outputs: list[str] | None) -> FrozenGraph:
    import tensorflow as tf

    keras_inputs = list(model.inputs)
    specs = []
    names = []
    for i, tensor in enumerate(keras_inputs):
        name = _keras_tensor_name(tensor, f"input_{i}")
        names.append(name)
        spec = tf.TensorSpec(tuple(tensor.shape), tensor.dtype, name=name)
        specs.append(_override_spec(spec, inputs, i))
    unknown = set(inputs) - set(names)
    if unknown:
        raise FreezeError(f"unknown input name(s) {sorted(unknown)}; the model's inputs are {names}",
                          "use one of the model's input names")
    output_names = _keras_output_names(model)
    single_input = len(specs) == 1

    @tf.function(autograph=False)
    def call(*args):
        result = model(args[0] if single_input else list(args), training=False)
        return result

    concrete = call.get_concrete_function(*specs)
    return _freeze_concrete(concrete, inputs, outputs, output_names=output_names, input_names=names)


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


def _freeze_saved_model(path: Path, signature: str, inputs: dict, outputs) -> FrozenGraph:
    import tensorflow as tf

    if not (path / "saved_model.pb").exists():
        raise FreezeError(f"'{path}' is a directory but not a SavedModel (no saved_model.pb)",
                          "point at a SavedModel directory")
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise FreezeError(f"could not load SavedModel '{path}': {exc}", "check the TensorFlow version") from exc
    signatures = dict(loaded.signatures)
    if signature not in signatures:
        raise FreezeError(f"SavedModel has no signature '{signature}'; it has {sorted(signatures)}",
                          "choose one with --signature")
    concrete = signatures[signature]
    arg_specs = concrete.structured_input_signature[1]
    names = sorted(arg_specs)
    unknown = set(inputs) - set(names)
    if unknown:
        raise FreezeError(f"unknown input name(s) {sorted(unknown)}; the signature's inputs are {names}",
                          "use one of the signature's input names")
    specs = {n: _override_spec(tf.TensorSpec(arg_specs[n].shape, arg_specs[n].dtype, name=n), inputs, i)
             for i, n in enumerate(names)}
    if any(specs[n].shape != arg_specs[n].shape for n in names):
        fn = tf.function(lambda **kw: concrete(**kw), autograph=False)
        concrete2 = fn.get_concrete_function(**specs)
        concrete2._tf2trt_keep = loaded  # keep variables alive
        return _freeze_concrete(concrete2, inputs, outputs, output_names=sorted(concrete.structured_outputs),
                                input_names=names, structured_keys=True, keep=loaded)
    return _freeze_concrete(concrete, inputs, outputs, output_names=sorted(concrete.structured_outputs),
                            input_names=names, structured_keys=True, keep=loaded)


def _freeze_concrete(concrete, inputs: dict, outputs, output_names=None, input_names=None,
                     structured_keys: bool = False, keep=None) -> FrozenGraph:
    import tensorflow as tf

    graph = concrete.graph
    gd = graph.as_graph_def()
    # Map flat output tensors to names
    flat_outputs = [t.name for t in concrete.outputs]
    if structured_keys and isinstance(concrete.structured_outputs, dict):
        out_map = {k: v.name for k, v in concrete.structured_outputs.items()}
    else:
        if output_names is None or len(output_names) != len(flat_outputs):
            output_names = [f"output_{i}" if len(flat_outputs) > 1 else "output_0" for i in range(len(flat_outputs))]
            if len(flat_outputs) == 1:
                output_names = ["output_0"]
        out_map = dict(zip(output_names, flat_outputs))
    if outputs:
        missing = [o for o in outputs if o not in out_map]
        if missing:
            raise FreezeError(f"unknown output name(s) {missing}; the model's outputs are {list(out_map)}",
                              "use one of the model's output names")
        out_map = {o: out_map[o] for o in outputs}
    # Inputs: placeholders that are not captures
    capture_placeholders = {internal.name for _, internal in graph.captures}
    input_tensors = [t for t in concrete.inputs if t.name not in capture_placeholders]
    specs = []
    for i, t in enumerate(input_tensors):
        dims = t.shape.as_list()
        name = (input_names[i] if input_names and i < len(input_names) else t.name.split(":")[0])
        if any(d is None for d in dims):
            raise FreezeError(f"input '{name}' has unknown dimensions {dims}", f"give its shape with --input {name}:...")
        specs.append((t.name.split(":")[0], TensorSpec(name, tuple(dims), t.dtype.name)))
    # Variables -> constants
    values = _capture_values(concrete)
    gd = inline_functions(gd)
    constants: dict[str, np.ndarray] = {}
    gd = _replace_resources(gd, values, constants)
    del values
    return _finish(gd, specs, out_map, constants)


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
    import tensorflow as tf

    out = _graph_def_class()()
    out.versions.CopyFrom(gd.versions)
    resource_like = {name for name, (kind, _) in values.items() if kind == "var"}
    # Follow Identity chains on resource handles
    changed = True
    node_by_name = {n.name: n for n in gd.node}
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
        if n.op in ("ReadVariableOp", "ResourceGather") and _src(n.input[0]) in resource_like:
            value = values[_src(n.input[0])][1]
            if n.op == "ResourceGather":
                new = out.node.add()
                new.CopyFrom(n)
                new.op = "GatherV2"
                del new.input[:]
                const_name = n.name + "/params"
                out.node.append(_const_node(const_name, value, constants))
                new.input.extend([const_name, n.input[1], n.name + "/axis"])
                out.node.append(_const_node(n.name + "/axis", np.array(0, np.int32), constants))
                new.attr["Tparams"].type = new.attr["dtype"].type
                for key in ("dtype", "batch_dims_attr", "validate_indices", "_class"):
                    if key in new.attr:
                        del new.attr[key]
                new.attr["batch_dims"].i = 0
                continue
            out.node.append(_const_node(n.name, value, constants))
            continue
        out.node.append(n)
    del node_by_name
    return out


def _freeze_pb(path: Path, inputs: dict, outputs) -> FrozenGraph:
    gd = _graph_def_class()()
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
    placeholders = [n for n in gd.node if n.op in ("Placeholder", "PlaceholderV2") and not is_external_const(n)]
    unknown = set(inputs) - {p.name for p in placeholders}
    if unknown:
        raise FreezeError(f"unknown input name(s) {sorted(unknown)}; the graph's placeholders are "
                          f"{[p.name for p in placeholders]}", "use one of the placeholder names")
    specs = []
    from tensorflow import dtypes

    for p in placeholders:
        shape = inputs.get(p.name)
        if shape is None:
            dims = [d.size for d in p.attr["shape"].shape.dim] if not p.attr["shape"].shape.unknown_rank else None
            if dims is None:
                raise FreezeError(f"input '{p.name}' has unknown rank", f"give its shape with --input {p.name}:...")
            for axis, d in enumerate(dims):
                if d < 0:
                    if axis == 0:
                        dims[axis] = 1
                    else:
                        raise FreezeError(f"input '{p.name}' has an unknown dimension {axis}",
                                          f"give a full shape with --input {p.name}:...")
            shape = dims
        specs.append((p.name, TensorSpec(p.name, tuple(int(d) for d in shape),
                                         dtypes.as_dtype(p.attr["dtype"].type).name)))
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
    return _finish(gd, specs, out_map, constants)


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
    del gd.library.function[:]
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
    for internal, public in rename.items():
        if public in names and public not in rename:
            # the public name is taken by another node: move that node aside
            rename[public] = public + "/_renamed"
    _rename_nodes(gd, rename)
    for old, new in rename.items():
        if old in constants:
            constants[new] = constants.pop(old)
    spec_by_name = {s.name: s for _, s in specs}
    for n in gd.node:
        if n.name in spec_by_name and n.op in ("Placeholder", "PlaceholderV2"):
            n.op = "Placeholder"
            shape = n.attr["shape"].shape
            shape.Clear()
            for d in spec_by_name[n.name].shape:
                shape.dim.add().size = int(d)
            for key in list(n.attr):
                if key not in ("dtype", "shape"):
                    del n.attr[key]
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
    return FrozenGraph(gd, [s for _, s in specs], outputs, constants=constants)


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
                              "the model may use ops this TensorFlow build lacks") from exc
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
        raise FreezeError(f"outputs {missing} are not in the graph", "check the output names")
    out = _graph_def_class()()
    out.versions.CopyFrom(gd.versions)
    for n in gd.node:
        if n.name in needed and n.op not in CONTROL_ONLY_OPS:
            out.node.append(n)
    return out


def fold_constants(gd, input_names: set[str], constants: dict):
    """Evaluate every subgraph that depends on no input and replace it by Const nodes.

    Runs TensorFlow once on all the frontier tensors (constant tensors consumed
    by non-constant nodes), so Keras 3's frozen BatchNormalization
    (Rsqrt/Mul/Sub on constants, reshaped kernels…) becomes plain weights.
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
        if name in input_names or n.op in nondeterministic or n.op in _CALL_OPS:
            continue
        if n.op == "Const" or (n.input and all(_src(i) in const for i in n.input)):
            const.add(name)
        elif n.op == "Shape" and False:
            pass
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
