"""Optimization profiles: the range of shapes one engine serves.

An input whose dimension is unknown in the model can stay unknown in the
network (``-1``); TensorRT then needs, per such input, the smallest, the
typical and the largest shape it must run (``min``/``opt``/``max``), and an
engine may hold several such profiles.  This module is the one place that
reads profiles (CLI ``--profile NAME:MIN,OPT,MAX``, config ``profiles:``, the
Python API), checks them against the model's declared shapes and says which
dimensions the frozen graph keeps dynamic.

Conventions: a profile is ``{input name: ShapeRange}``; a dimension is
dynamic in the network when it differs between ``min`` and ``max`` of some
profile (a dimension fixed by every profile stays static, so a model whose
dims are all known builds exactly the network it always built).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import FreezeError

__all__ = ["ShapeRange", "Profile", "parse_profile_arg", "profiles_from_args", "dynamic_shape",
           "DEFAULT_BATCH_RANGE", "profile_to_json", "profile_from_json", "shapes_to_check", "in_profiles",
           "parse_verify_shape_arg", "verification_shape_problems", "profiles_text"]

#: the batch sizes an unknown batch dimension serves when no shape or profile is given (min, opt, max)
DEFAULT_BATCH_RANGE = (1, 1, 8)

_SHAPE = r"\d+(?:x\d+)*"
_PROFILE_ARG = re.compile(rf"^(?P<name>[^:]+):(?P<min>{_SHAPE}),(?P<opt>{_SHAPE}),(?P<max>{_SHAPE})$")
_VERIFY_SHAPE_ITEM = re.compile(rf"^(?P<name>[^:,]+):(?P<shape>{_SHAPE})$")


@dataclass(frozen=True)
class ShapeRange:
    """One input's ``min``/``opt``/``max`` shapes in one profile."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def __post_init__(self):
        for key in ("min", "opt", "max"):
            object.__setattr__(self, key, tuple(int(d) for d in getattr(self, key)))

    def problem(self) -> str | None:
        """Why this range is not a valid TensorRT range (None if it is)."""
        if not (len(self.min) == len(self.opt) == len(self.max)):
            return f"min {_text(self.min)}, opt {_text(self.opt)} and max {_text(self.max)} differ in rank"
        if any(d < 1 for d in self.min + self.opt + self.max):
            return "every dimension must be at least 1"
        bad = [a for a, (lo, mid, hi) in enumerate(zip(self.min, self.opt, self.max)) if not lo <= mid <= hi]
        if bad:
            return (f"min ≤ opt ≤ max does not hold in dimension{'s' if len(bad) > 1 else ''} "
                    f"{', '.join(map(str, bad))} ({_text(self.min)}, {_text(self.opt)}, {_text(self.max)})")
        return None

    def to_json(self) -> dict:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_json(cls, data: dict) -> "ShapeRange":
        return cls(tuple(data["min"]), tuple(data["opt"]), tuple(data["max"]))

    def text(self) -> str:
        return f"{_text(self.min)},{_text(self.opt)},{_text(self.max)}"


#: one optimization profile: input name → its range
Profile = dict


def _text(shape) -> str:
    return "x".join(str(int(d)) for d in shape) if shape else "scalar"


def parse_profile_arg(text: str) -> tuple[str, ShapeRange]:
    """``NAME:MIN,OPT,MAX`` with shapes like ``1x16,8x128,32x512`` → (name, range)."""
    m = _PROFILE_ARG.match(text.strip())
    if not m:
        raise FreezeError(f"bad --profile '{text}'",
                          "write NAME:MIN,OPT,MAX with shapes like token_ids:1x16,8x128,32x512")
    shapes = [tuple(int(d) for d in m.group(k).split("x")) for k in ("min", "opt", "max")]
    rng = ShapeRange(*shapes)
    problem = rng.problem()
    if problem:
        raise FreezeError(f"--profile '{text}': {problem}", "give min ≤ opt ≤ max, same rank, dims ≥ 1")
    return m.group("name"), rng


def profiles_from_args(args: list[str]) -> list[Profile]:
    """Several ``--profile`` options → profiles.

    Every input named once belongs to every profile; naming an input again starts
    a further profile for it (the k-th range of each input forms profile k; an
    input with fewer ranges keeps its last one).
    """
    per_input: dict[str, list[ShapeRange]] = {}
    for text in args:
        name, rng = parse_profile_arg(text)
        per_input.setdefault(name, []).append(rng)
    if not per_input:
        return []
    count = max(len(v) for v in per_input.values())
    return [{name: ranges[min(k, len(ranges) - 1)] for name, ranges in per_input.items()} for k in range(count)]


def dynamic_shape(name: str, profiles: list[Profile]) -> tuple[int, ...] | None:
    """The network shape of input ``name``: a dimension fixed in every profile stays, others are -1."""
    ranges = [p[name] for p in profiles if name in p]
    if not ranges:
        return None
    rank = len(ranges[0].min)
    out = []
    for axis in range(rank):
        values = {r.min[axis] for r in ranges} | {r.opt[axis] for r in ranges} | {r.max[axis] for r in ranges}
        out.append(values.pop() if len(values) == 1 else -1)
    return tuple(out)


def profile_to_json(profile: Profile) -> dict:
    return {name: rng.to_json() for name, rng in sorted(profile.items())}


def profile_from_json(data: dict) -> Profile:
    return {name: ShapeRange.from_json(rng) for name, rng in data.items()}


def shapes_to_check(profiles: list[Profile], extra: list[dict] | None = None) -> list[dict[str, tuple]]:
    """The input shapes verification runs: every profile's min, opt and max (each once), then ``extra``."""
    out: list[dict[str, tuple]] = []
    for profile in profiles:
        for key in ("min", "opt", "max"):
            shapes = {name: getattr(rng, key) for name, rng in profile.items()}
            if shapes not in out:
                out.append(shapes)
    for shapes in extra or []:
        shapes = {k: tuple(v) for k, v in shapes.items()}
        if shapes not in out:
            out.append(shapes)
    return out


def in_profiles(profiles: list[Profile], shapes: dict[str, tuple]) -> bool:
    """Whether some profile admits every input's shape in ``shapes``."""
    for profile in profiles:
        ok = True
        for name, rng in profile.items():
            shape = shapes.get(name)
            if shape is None or len(shape) != len(rng.min) or not all(
                    lo <= d <= hi for lo, d, hi in zip(rng.min, shape, rng.max)):
                ok = False
                break
        if ok:
            return True
    return False


def parse_verify_shape_arg(text: str) -> dict[str, tuple[int, ...]]:
    """``--verify-shape NAME:SHAPE[,NAME:SHAPE...]`` → one shape set ``{name: shape}``.

    One option is one set of input shapes verified together (a model with several dynamic inputs names
    each of them, e.g. ``token_ids:4x77,segment_ids:4x77``); repeat the option for more sets.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        m = _VERIFY_SHAPE_ITEM.match(item)
        if not m:
            raise FreezeError(f"bad --verify-shape '{text}'",
                              "write NAME:SHAPE, several inputs separated by commas, e.g. input_ids:4x77 or "
                              "token_ids:4x77,segment_ids:4x77")
        name = m.group("name")
        if name in shapes:
            raise FreezeError(f"--verify-shape '{text}' names '{name}' twice",
                              "give each input once per --verify-shape (repeat the option for another shape)")
        shape = tuple(int(d) for d in m.group("shape").split("x"))
        if any(d < 1 for d in shape):
            raise FreezeError(f"--verify-shape '{text}': every dimension must be at least 1",
                              "give positive dimensions, e.g. input_ids:4x77")
        shapes[name] = shape
    if not shapes:
        raise FreezeError(f"bad --verify-shape '{text}'", "write NAME:SHAPE, e.g. input_ids:4x77")
    return shapes


def profiles_text(profiles: list[Profile], names=None) -> str:
    """The profiles as ``profile 0: a 1x8..8x128, b …; profile 1: …`` (min..max), for messages."""
    parts = []
    for k, profile in enumerate(profiles):
        ranges = ", ".join(f"{n} {_text(r.min)}..{_text(r.max)}" for n, r in sorted(profile.items())
                           if names is None or n in names)
        parts.append(f"profile {k}: {ranges}")
    return "; ".join(parts)


def verification_shape_problems(declared: dict[str, tuple | None], profiles: list[Profile],
                                shape_set: dict[str, tuple]) -> list[tuple[str | None, str, str]]:
    """Why one verification shape set cannot be run: ``[(input or None, problem, fix)]``, empty if it can.

    ``declared`` is every input's network shape (``-1`` for a dynamic dimension; None when only the
    profiles know it).  A set must name only inputs of the model, give every dynamic input a shape, keep
    static inputs at their shape, and fit one profile as a whole (TensorRT runs one profile at a time).
    Used by the build config (file:line errors), ``tf2trt convert --verify-shape`` (before the engine is
    built) and :func:`converter.verify.verify`.
    """
    problems: list[tuple[str | None, str, str]] = []
    dynamic = [n for n, s in declared.items() if s is None or any(int(d) < 0 for d in s)]
    if not profiles or not dynamic:
        return [(None, "the network's input shapes are all static, so there is no other shape to verify",
                 "drop the verification shapes, or give the inputs profiles to keep dimensions dynamic")]
    for name in shape_set:
        if name not in declared:
            close = ", ".join(sorted(declared))
            problems.append((name, f"'{name}' is not an input of the model (its inputs: {close})",
                             "name one of the model's inputs"))
    for name, shape in shape_set.items():
        fixed = declared.get(name)
        if fixed is None or name not in declared:
            continue
        if len(shape) != len(fixed):
            problems.append((name, f"{name} {_text(shape)} has rank {len(shape)}, the input has rank {len(fixed)} "
                                   f"({_text_dims(fixed)})", f"give {len(fixed)} dimensions"))
        elif any(int(f) >= 0 and int(f) != int(d) for f, d in zip(fixed, shape)):
            problems.append((name, f"{name} {_text(shape)} changes a static dimension of the input "
                                   f"({_text_dims(fixed)})",
                             "keep the static dimensions as they are" if name in dynamic else
                             f"drop {name} from the shape set (a static input keeps its shape)"))
    missing = [n for n in dynamic if n not in shape_set]
    if missing:
        paste = ", ".join(f"{n}: {list(_opt_of(profiles, n) or ())}" for n in missing)
        problems.append((None, f"no shape for the dynamic input(s) {', '.join(missing)}",
                         f"give every dynamic input a shape, e.g. add {paste}"))
    if not problems:
        full = {n: tuple(shape_set.get(n, declared[n] or ())) for n in declared}
        if not in_profiles(profiles, full):
            given = ", ".join(f"{n} {_text(s)}" for n, s in shape_set.items())
            problems.append((None, f"{given} is not inside an optimization profile ({profiles_text(profiles)})",
                             "give shapes inside one profile's min..max for every dynamic input"))
    return problems


def _text_dims(shape) -> str:
    return "x".join("?" if int(d) < 0 else str(int(d)) for d in shape) if shape else "scalar"


def _opt_of(profiles: list[Profile], name: str):
    for profile in profiles:
        if name in profile:
            return profile[name].opt
    return None
