"""Input shapes checked before anything is traced, built or cached.

Why here, and why first: a shape is the one thing a user types that decides
how much memory every later step takes.  Left to TensorFlow and TensorRT, a
zero dimension builds an engine that computes nothing, an absurd one
(``99999999999999999999``) surfaces as ``ValueError: Value out of range`` from
deep inside TensorFlow (reported as a tf2trt bug, exit 3), and a shape that
is merely too big (``1x100000x100000x3`` on a graph that accepts any size)
freezes, parses, builds and caches four stages before verification dies
with ``MemoryError``.  Checking the numbers up front turns each of these into
a bad-input error (exit 2) that names the input, the shape and the fix.

The checks, for every static shape given and every profile's ``min`` and
``max``:

* rank at most :data:`MAX_RANK` (TensorRT's ``Dims.MAX_DIMS``);
* every dimension at least 1 and at most :data:`MAX_DIM`;
* the bytes of all inputs of one shape set (a static build, or one
  profile at its ``max``) at most a limit: ``max_input_bytes`` where the
  caller passes it (``tf2trt convert --max-input-size``), else
  ``$TF2TRT_MAX_INPUT_BYTES``, else :data:`DEFAULT_MAX_INPUT_BYTES`.  The
  inputs are a lower bound of what verification holds (TensorFlow, the
  reference executor and the engine each keep their own copies and
  intermediates), which is why the default is modest.
"""

from __future__ import annotations

import math
import os

from .errors import FreezeError

__all__ = ["MAX_RANK", "MAX_DIM", "DEFAULT_MAX_INPUT_BYTES", "MAX_INPUT_BYTES_ENV", "max_input_bytes",
           "dims_problem", "shape_bytes", "check_given_shapes", "check_input_sizes", "size_text"]

#: TensorRT's Dims.MAX_DIMS: a network tensor has at most this many dimensions
MAX_RANK = 8
#: the largest dimension accepted (TensorRT and most kernels index one axis with 32-bit integers)
MAX_DIM = 2**31 - 1
#: the inputs of one shape set may take this many bytes unless configured otherwise
DEFAULT_MAX_INPUT_BYTES = 4 * 2**30
#: environment variable that overrides the limit (bytes or a size like 16GiB), for the pipeline and the API
MAX_INPUT_BYTES_ENV = "TF2TRT_MAX_INPUT_BYTES"

_ITEMSIZE = {"bool": 1, "int8": 1, "uint8": 1, "qint8": 1, "quint8": 1, "int16": 2, "uint16": 2,
             "float16": 2, "bfloat16": 2, "half": 2, "int32": 4, "uint32": 4, "float32": 4, "float": 4,
             "int64": 8, "uint64": 8, "float64": 8, "double": 8, "complex64": 8, "complex128": 16}

LIMIT_HINT = (f"give the shapes you will run; if this machine has the memory, raise the limit with "
              f"--max-input-size SIZE (tf2trt convert) or {MAX_INPUT_BYTES_ENV}=SIZE (any command, e.g. 16GiB)")


def size_text(n: int) -> str:
    """``n`` bytes as people read them (``112 GiB``)."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def max_input_bytes(limit: int | None = None) -> int:
    """The limit in force: ``limit`` if given, else ``$TF2TRT_MAX_INPUT_BYTES``, else the default."""
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise FreezeError(f"max_input_bytes must be a positive number of bytes, not {limit!r}",
                              "give a size like 4294967296")
        return limit
    text = os.environ.get(MAX_INPUT_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_INPUT_BYTES
    from .units import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise FreezeError(f"{MAX_INPUT_BYTES_ENV}={text!r}: {exc}",
                          f"set {MAX_INPUT_BYTES_ENV} to bytes or a size like 16GiB, or unset it") from None


def dims_problem(shape) -> str | None:
    """Why ``shape`` cannot be a network input's shape (None if it can): rank, a dim < 1 or > MAX_DIM."""
    shape = tuple(shape)
    if len(shape) > MAX_RANK:
        return f"rank {len(shape)} is over TensorRT's limit of {MAX_RANK} dimensions"
    bad = []
    for axis, d in enumerate(shape):
        if isinstance(d, bool) or not isinstance(d, int):
            try:
                d = int(d)
            except (TypeError, ValueError, OverflowError):
                bad.append(f"dimension {axis} is {d!r}, not an integer")
                continue
        if d == 0:
            bad.append(f"dimension {axis} is 0 (a tensor with no elements: the engine would compute nothing)")
        elif d < 0:
            bad.append(f"dimension {axis} is {d} (negative)")
        elif d > MAX_DIM:
            bad.append(f"dimension {axis} is {d}, over the largest supported dimension {MAX_DIM}")
    return "; ".join(bad) or None


def shape_bytes(shape, dtype: str | None) -> int:
    """Bytes of one tensor of ``shape`` and ``dtype`` (4 per element for a dtype not known here)."""
    return math.prod(int(d) for d in shape) * _ITEMSIZE.get(str(dtype or "float32"), 4)


def _text(shape) -> str:
    return "x".join(str(int(d)) for d in shape) if len(shape) else "scalar"


def check_given_shapes(inputs: dict | None, profiles: list | None) -> None:
    """Every shape a user gave (static ``inputs`` and each profile's ranges): rank and dims, all at once.

    Raises :class:`FreezeError` (exit 2) listing every problem.  Ranges whose
    own consistency is off (min > max…) are left to
    :func:`converter.freeze.resolve_profiles`, which reports those.
    """
    problems = []
    for name, shape in (inputs or {}).items():
        problem = dims_problem(shape)
        if problem:
            problems.append(f"input '{name}' shape {_safe_text(shape)}: {problem}")
    for k, profile in enumerate(profiles or []):
        for name, rng in profile.items():
            for key in ("min", "opt", "max"):
                problem = dims_problem(getattr(rng, key))
                if problem:
                    problems.append(f"profile {k} of input '{name}', {key} {_safe_text(getattr(rng, key))}: "
                                    f"{problem}")
    if problems:
        raise FreezeError(problems[0] if len(problems) == 1 else
                          f"{len(problems)} input shape problems:\n" + "\n".join(f"  - {p}" for p in problems),
                          "give every dimension as a whole number from 1 up (at most "
                          f"{MAX_RANK} dimensions); keep a dimension variable with --profile NAME:MIN,OPT,MAX")


def _safe_text(shape) -> str:
    try:
        return _text(tuple(shape))
    except (TypeError, ValueError, OverflowError):
        return repr(shape)


def check_input_sizes(shape_sets: list[tuple[str, dict]], dtypes: dict, limit: int | None = None) -> None:
    """Each shape set's inputs (``[(what, {name: shape})]``) fit in the limit (see :func:`max_input_bytes`).

    ``what`` names the set in the message ("the inputs", "profile 0 at its max").
    """
    cap = max_input_bytes(limit)
    problems = []
    for what, shapes in shape_sets:
        sizes = {name: shape_bytes(shape, dtypes.get(name)) for name, shape in shapes.items()}
        total = sum(sizes.values())
        if total <= cap:
            continue
        parts = ", ".join(f"'{name}' {_text(shapes[name])} {dtypes.get(name) or 'float32'} = {size_text(size)}"
                          for name, size in sorted(sizes.items(), key=lambda kv: -kv[1]))
        problems.append(f"{what} take {size_text(total)} ({parts}), over the limit of {size_text(cap)} for the "
                        "inputs of one build (verification holds several copies of them)")
    if problems:
        raise FreezeError(problems[0] if len(problems) == 1 else
                          f"{len(problems)} input size problems:\n" + "\n".join(f"  - {p}" for p in problems),
                          LIMIT_HINT)
