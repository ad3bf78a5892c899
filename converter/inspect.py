"""What a model takes and gives, before converting it: ``tf2trt inspect MODEL``.

Input names, shapes (``?`` where the model leaves a dimension unknown) and
dtypes, outputs, a SavedModel's signatures, the op counts of the frozen graph
and the ops the converter cannot handle, so nobody has to provoke an error to
learn a model's input names.

The op counts and the support check need a frozen graph, and freezing needs
fixed shapes: every unknown dimension (batch or not) is taken as 1 for them,
unless ``inputs`` gives a shape, and the result says which dimensions were
substituted.  An op whose support depends on a size may therefore differ at
the real shapes.
"""

from __future__ import annotations

import logging
import os
import warnings

from .errors import ModelError, UnsupportedOpsError, classify
from .freeze import ModelInput, input_args, open_model, resolve_input_shapes, shape_text

log = logging.getLogger(__name__)

__all__ = ["inspect_model"]


def inspect_model(model, signature: str | None = None, inputs: dict[str, tuple] | None = None) -> dict:
    """A JSON-ready description of ``model`` (any source :func:`converter.freeze.freeze` takes).

    Keys: ``model``, ``kind``, ``signature`` and ``signatures`` (SavedModel),
    ``inputs`` / ``outputs`` (``name``, ``shape`` with null for unknown
    dimensions, ``display`` like ``?x16``, ``dtype``), ``optional_inputs``
    (PlaceholderWithDefault nodes of a .pb one may feed), ``unused_placeholders``,
    ``input_args`` (ready-to-paste ``--input`` options), ``check_shapes`` (the
    shapes the graph was frozen at), ``substituted`` (``[{input, axis}]``
    taken as 1), ``op_counts``, ``unsupported`` (``{op: count}``),
    ``unsupported_examples`` (``{op: [node, …]}``), ``notes``, and
    ``freeze_error`` when the graph could not be frozen at those shapes.

    ``signature=None`` takes ``serving_default`` (or the first signature).
    Raises :class:`~converter.errors.FreezeError` when the model cannot be
    loaded or ``inputs`` does not fit it.
    """
    source = open_model(model, signature=signature)
    given = {name: tuple(int(d) for d in shape) for name, shape in (inputs or {}).items()}
    # shapes asked for must fit (the error convert would give); the others may stay unknown here
    _, extra = resolve_input_shapes(source, given, require_all=False)
    cli, _, unknown_batch, guessed = input_args(source.inputs, given)
    result = {
        "model": os.fspath(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__,
        "kind": source.kind,
        "signature": source.signature,
        "signatures": {name: {"inputs": [i.to_dict() for i in sig["inputs"]],
                              "outputs": [o.to_dict() for o in sig["outputs"]]}
                       for name, sig in source.signatures.items()},
        "inputs": [i.to_dict() for i in source.inputs],
        "outputs": [o.to_dict() for o in source.outputs],
        "optional_inputs": [i.to_dict() for i in source.optional_inputs or []],
        "unused_placeholders": list(source.unused_placeholders),
        "input_args": cli,
        "check_shapes": None,
        "substituted": [],
        "op_counts": None,
        "unsupported": None,
        "unsupported_examples": None,
        "notes": [],
        "freeze_error": None,
    }
    notes = result["notes"]
    if unknown_batch or guessed:
        notes.append("input_args: 1 stands for an unknown batch size"
                     + ("; other unknown dimensions are example sizes, put your own" if guessed else ""))
    shapes, substituted, unknown_rank = _check_shapes(source.inputs, given)
    result["substituted"] = substituted
    if unknown_rank:
        notes.append(f"inputs {unknown_rank} have an unknown rank: give their shapes (--input NAME:SHAPE) "
                     "to count ops and check support")
        return result
    if substituted:
        where = ", ".join(f"{s['input']}[{s['axis']}]" for s in substituted)
        notes.append(f"op counts and the support check use 1 for the unknown dimensions {where}; "
                     "give real shapes with --input to check at those")
    result["check_shapes"] = {name: list(shape) for name, shape in shapes.items()}
    try:
        with warnings.catch_warnings():
            # Keras warns about size-1 axes (a softmax over one key): sizes substituted here, not the model's
            warnings.simplefilter("ignore")
            frozen = source.build(shapes, extra)
    except Exception as exc:  # noqa: BLE001 - the interface is known; freezing is a bonus
        if not isinstance(exc, ModelError) and not substituted:
            raise  # at the model's own shapes a failure is what convert would hit: report it as such
        if extra and source.optional_inputs is None:
            raise  # names no declared input: only tracing could tell, and the error is about them
        # a size substituted here may be one the model cannot take (a reshape to a fixed length…)
        _, message, hint = classify(exc)
        result["freeze_error"] = message + (f" (hint: {hint})" if hint else "")
        log.debug("freezing for the op counts failed", exc_info=True)
        return result
    result["op_counts"] = dict(sorted(frozen.op_counts().items()))
    _add_frozen_output_shapes(result, frozen)
    result["unsupported"], result["unsupported_examples"] = _unsupported(frozen)
    return result


def _check_shapes(inputs: list[ModelInput], given: dict) -> tuple[dict, list[dict], list[str]]:
    """Shapes to freeze at: the given ones, else the model's with 1 for each unknown dimension."""
    shapes, substituted, unknown_rank = {}, [], []
    for inp in inputs:
        if inp.name in given:
            shapes[inp.name] = given[inp.name]
        elif inp.shape is None:
            unknown_rank.append(inp.name)
        else:
            substituted += [{"input": inp.name, "axis": axis} for axis, d in enumerate(inp.shape) if d is None]
            shapes[inp.name] = tuple(1 if d is None else int(d) for d in inp.shape)
    return shapes, substituted, unknown_rank


def _add_frozen_output_shapes(result: dict, frozen) -> None:
    """Each output's shape and dtype in the frozen graph (at ``check_shapes``): a .pb declares none itself."""
    from tensorflow import dtypes

    nodes = {n.name: n for n in frozen.graph_def.node}
    by_name = {o["name"]: o for o in result["outputs"]}
    for name in frozen.outputs:
        entry = by_name.get(name)
        if entry is None:
            entry = {"name": name, "shape": None, "display": shape_text(None), "dtype": None}
            result["outputs"].append(entry)
        node = nodes.get(name)
        if node is None:
            continue
        shapes = node.attr["_output_shapes"].list.shape if "_output_shapes" in node.attr else []
        if shapes and not shapes[0].unknown_rank:
            entry["frozen_shape"] = [int(d.size) for d in shapes[0].dim]
        if entry.get("dtype") is None:
            for key in ("T", "dtype"):
                if key in node.attr and node.attr[key].type:
                    entry["dtype"] = dtypes.as_dtype(node.attr[key].type).name
                    break


def _unsupported(frozen) -> tuple[dict, dict]:
    """``({op: count}, {op: [node names]})`` from the converter's support check (empty when all convert)."""
    from .graph import check_support, from_frozen

    try:
        check_support(from_frozen(frozen))
    except UnsupportedOpsError as exc:
        counts = dict(exc.counts.most_common())
        return counts, {op: list(exc.examples.get(op, []))[:5] for op in counts}
    return {}, {}

