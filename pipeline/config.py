"""Build configs: one YAML file per model build, validated with pydantic.

Every problem is reported as ``FILE:LINE: KEY: problem`` plus a ``fix:`` line,
and all problems of a file are reported together.  YAML is parsed with
``yaml.SafeLoader`` (no object construction) and duplicate keys are errors.
Relative paths are relative to the config file's directory.

Paths: ``model.path``, ``verification.inputs_npz``, ``output`` and
``output_root`` expand a leading ``~`` (the home directory) and ``$VAR`` /
``${VAR}`` (environment variables); in ``output`` and ``output_root`` an unset
variable is a config error (it would otherwise become a directory literally
named ``${VAR}``).

Where an engine may go (checked again when it is placed, after symlinks are
resolved): inside the config file's directory tree, or inside the config's
``output_root`` (e.g. ``output_root: ..`` for ``output: ../build/x.engine``),
or inside a directory listed in ``$TF2TRT_OUTPUT_ROOTS`` (``os.pathsep``
separated, for an operator's shared engine directory).  Anything else — a
typo'd ``../../..``, ``~/.bashrc``, ``/etc/…`` — is refused before anything is
written.  Placement never overwrites an input of the build or a file it did
not place itself (``tf2trt build --force`` overwrites the latter; see
:func:`pipeline.stages.build.place_engine`).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

DTYPES = ("float32", "float16", "int32", "int64", "int8", "uint8", "bool")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class ConfigIssue:
    def __init__(self, key: str, problem: str, fix: str, line: int | None = None):
        self.key, self.problem, self.fix, self.line = key, problem, fix, line

    def render(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.key or '(top level)'}: {self.problem}\n  fix: {self.fix}"


class ConfigError(Exception):
    """A config file is invalid; ``str()`` names the file, each key and its fix."""

    def __init__(self, file: str | os.PathLike, issues: list[ConfigIssue]):
        self.file = str(file)
        self.issues = issues
        super().__init__("\n".join(i.render(self.file) for i in issues))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSource(_Strict):
    path: Optional[str] = Field(None, description="a .keras/.h5 file, a SavedModel directory or a frozen .pb, "
                                                  "relative to the config file")
    keras_application: Optional[str] = Field(None, description="a tf.keras.applications name such as "
                                                               "MobileNetV2 (example model, weights=None)")
    seed: int = Field(0, description="an integer seed for the generated example model")
    signature: str = Field("serving_default", description="the SavedModel signature to freeze")
    trust_code: bool = Field(False, description="true to allow Keras files whose Lambda layers or custom objects "
                                                "run Python when loaded (refused by default: model files are "
                                                "untrusted)")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.keras_application is None):
            raise ValueError("give exactly one of model.path or model.keras_application")
        return self


class ProfileRange(_Strict):
    """One optimization profile of one input: the smallest, typical and largest shape the engine serves."""

    min: list[int] = Field(description="the smallest shape, e.g. [1, 16]")
    opt: list[int] = Field(description="the shape TensorRT optimizes for, e.g. [8, 128]")
    max: list[int] = Field(description="the largest shape, e.g. [32, 512]")

    @model_validator(mode="after")
    def _valid_range(self):
        from converter.profiles import ShapeRange

        problem = ShapeRange(tuple(self.min), tuple(self.opt), tuple(self.max)).problem()
        if problem:
            raise ValueError(f"{problem} (min ≤ opt ≤ max, same rank, every dimension ≥ 1)")
        return self


class InputSpec(_Strict):
    name: str = Field(description="the input's name in the model signature")
    shape: Optional[list[int]] = Field(None, description="a list of dimensions with the batch first, e.g. "
                                                         "[1, 224, 224, 3] (or give profiles)")
    profiles: Optional[list[ProfileRange]] = Field(
        None, description="instead of shape: a list of {min, opt, max} shapes; the dimensions that differ stay "
                          "dynamic in the engine (one entry per optimization profile)")
    dtype: Literal[DTYPES] = Field("float32", description="one of " + ", ".join(DTYPES))  # type: ignore[valid-type]

    @field_validator("shape")
    @classmethod
    def _positive(cls, v: list[int] | None):
        if v is not None and (not v or any(d <= 0 for d in v)):
            raise ValueError("every dimension must be a positive integer (give profiles to keep dimensions "
                             "dynamic)")
        return v

    @field_validator("profiles")
    @classmethod
    def _some(cls, v):
        if v is not None and not v:
            raise ValueError("give at least one {min, opt, max} profile, or a shape")
        return v

    @model_validator(mode="after")
    def _shape_or_profiles(self):
        if (self.shape is None) == (self.profiles is None):
            raise ValueError("give exactly one of shape (a static input) or profiles (dynamic dimensions)")
        return self

    def key_record(self) -> dict:
        """What the freeze key reads of this input; an input without profiles keys as it always did."""
        record = self.model_dump(mode="json")
        for field in ("shape", "profiles"):
            if record[field] is None:
                del record[field]
        return record


def _reduced_only(key: str, given: bool, info: ValidationInfo) -> None:
    """``keep_fp32`` and ``io_types: native`` mean something only for fp16/bf16: anything else is a mistake."""
    precision = info.data.get("precision")  # None: the precision itself is invalid, reported on its own
    if given and precision is not None and precision not in ("fp16", "bf16"):
        raise ValueError(f"{key} only applies to precision fp16 or bf16 (precision is {precision}): set "
                         f"builder.precision: fp16 (or bf16), or remove {key}")


class BuilderSpec(_Strict):
    workspace: Optional[int] = Field(None, description="workspace memory pool limit: bytes, or a size like "
                                                       "'512MiB'; null for TensorRT's default")
    opt_level: int = Field(3, ge=0, le=5, description="the builder optimization level, an integer 0-5")
    targets: Optional[list[str]] = Field(None, description="compute capabilities to build for, e.g. [SM86] "
                                                           "(TensorRT-RTX), or null for the default target")
    timing_cache: bool = Field(True, description="true to reuse and update the store's timing cache")
    precision: str = Field("fp32", description="what the engine computes in: fp32, fp16, bf16 or int8 (int8: a "
                                               "quantization-aware model's Q/DQ layers)")
    keep_fp32: list[str] = Field(default_factory=list,
                                 description="a list of fnmatch patterns over layer (TensorFlow node) names kept in "
                                             "fp32 with fp16/bf16, e.g. ['*/attention/*'] (tf2trt inspect lists them)")
    io_types: Literal["fp32", "native"] = Field("fp32", description="fp32 (network inputs and outputs stay float32) "
                                                                   "or native (they take the precision's type)")
    fallback: bool = Field(True, description="true to keep the layers that make an fp16/bf16 network fail "
                                             "verification in fp32 (the automatic fallback), false to build it as is")

    @field_validator("workspace", mode="before")
    @classmethod
    def _size(cls, v: Any):
        if isinstance(v, str):
            m = _SIZE.match(v)
            if not m:
                raise ValueError(f"cannot read {v!r} as a size")
            v = int(float(m.group(1)) * _UNITS[(m.group(2) or "B").lower()])
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
            raise ValueError("must be a positive number of bytes")
        return v

    @field_validator("targets")
    @classmethod
    def _upper(cls, v):
        return None if v is None else [t.upper() for t in v]

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, v: Any):
        """Canonical names (``FP16``, ``half`` → ``fp16``), through the converter's own parser."""
        from converter.errors import ModelError
        from converter.precision import PRECISIONS, parse_precision

        if not isinstance(v, str):
            raise ValueError(f"expected one of {', '.join(PRECISIONS)} (got {v!r})")
        try:
            return parse_precision(v)
        except ModelError:
            raise ValueError(f"unknown precision {v!r}: use one of {', '.join(PRECISIONS)}") from None

    @field_validator("keep_fp32", mode="before")
    @classmethod
    def _patterns(cls, v: Any, info: ValidationInfo):
        """Checked by hand, so a problem names the pattern (pydantic's would name list indices)."""
        if v is None:
            v = []
        if isinstance(v, str):
            raise ValueError(f"expected a list of patterns, like [{v!r}] (got the string {v!r})")
        if not isinstance(v, list):
            raise ValueError(f"expected a list of fnmatch patterns like ['*/attention/*'] (got {v!r})")
        for j, pattern in enumerate(v):
            if not isinstance(pattern, str) or not pattern.strip():
                raise ValueError(f"keep_fp32[{j}]: expected a non-empty string pattern such as '*/softmax*' "
                                 f"(got {pattern!r}; quote a pattern YAML would read as another type)")
        _reduced_only("keep_fp32", bool(v), info)
        return v

    @field_validator("io_types")
    @classmethod
    def _io(cls, v: str, info: ValidationInfo):
        _reduced_only("io_types", v != "fp32", info)
        return v

    def precision_settings(self):
        """The converter's :class:`~converter.precision.PrecisionSettings` for this section (no fallback yet)."""
        from converter.precision import PrecisionSettings

        return PrecisionSettings(self.precision, tuple(self.keep_fp32), self.io_types)

    @property
    def reduced(self) -> bool:
        """fp16/bf16: optimize lowers the fp32 network (int8 comes from the model's Q/DQ layers at construct)."""
        return self.precision in ("fp16", "bf16")


class VerificationSpec(_Strict):
    enabled: bool = Field(True, description="true to compare the converted network with TensorFlow")
    rtol: float = Field(1e-4, ge=0, description="a relative tolerance, a float >= 0")
    atol: float = Field(1e-5, ge=0, description="an absolute tolerance, a float >= 0")
    samples: int = Field(1, ge=1, description="how many random input samples to check, an integer >= 1")
    seed: int = Field(0, description="an integer seed for the random inputs")
    inputs_npz: Optional[str] = Field(None, description="an .npz of real inputs named after the model inputs, "
                                                        "relative to the config file")
    input_ranges: Optional[dict[str, Any]] = Field(
        None, description="a mapping of input name to [LOW, HIGH] (HIGH exclusive), e.g. {segment_ids: [0, 2]}; "
                          "the random values for that input (the CLI's --input-range)")
    input_values: Optional[dict[str, Any]] = Field(
        None, description="a mapping of input name to one number or true/false, e.g. {padding_mask: 1}; that "
                          "input is filled with it (the CLI's --input-value)")
    shapes: Optional[list[dict[str, Any]]] = Field(
        None, description="a list of extra input shape sets to verify beyond every profile's min/opt/max, each "
                          "a mapping of input name to shape, e.g. [{input_ids: [4, 77]}] (the CLI's --verify-shape)")

    @field_validator("shapes", mode="before")
    @classmethod
    def _shapes(cls, v):
        """Checked by hand, so a problem names the shape set and the input (pydantic's would name list indices)."""
        if v is None:
            return v
        if not isinstance(v, list) or not v:
            raise ValueError(f"expected a list of shape sets like [{{input_ids: [4, 77]}}] (got {v!r})")
        out = []
        for j, entry in enumerate(v):
            if not isinstance(entry, dict) or not entry:
                raise ValueError(f"shapes[{j}]: expected a mapping of input name to shape, like "
                                 f"{{input_ids: [4, 77]}} (got {entry!r})")
            shapes = {}
            for name, shape in entry.items():
                if isinstance(shape, str) and re.fullmatch(r"\d+(x\d+)*", shape.strip()):
                    raise ValueError(f"shapes[{j}].{name}: write the shape as a list of dimensions, "
                                     f"[{', '.join(shape.strip().split('x'))}] (got {shape!r})")
                if (not isinstance(shape, list) or not shape
                        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)):
                    raise ValueError(f"shapes[{j}].{name}: expected a list of positive dimensions like [4, 77] "
                                     f"(got {shape!r})")
                shapes[str(name)] = [int(d) for d in shape]
            out.append(shapes)
        return out

    @field_validator("input_ranges")
    @classmethod
    def _ranges(cls, v):
        """Checked by hand: pydantic's own errors for tuples in dicts name list indices, not the input."""
        out = {}
        for name, r in (v or {}).items():
            if (not isinstance(r, (list, tuple)) or len(r) != 2
                    or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in r)):
                raise ValueError(f"{name}: expected [LOW, HIGH], two numbers (got {r!r})")
            if not r[0] < r[1]:
                raise ValueError(f"LOW must be below HIGH for {name} (HIGH is exclusive: [0, 2] gives 0 and 1)")
            out[name] = (float(r[0]), float(r[1]))
        return out if v is not None else None

    @field_validator("input_values")
    @classmethod
    def _values(cls, v):
        for name, x in (v or {}).items():
            if not isinstance(x, (bool, int, float)):
                raise ValueError(f"{name}: expected one number or true/false (got {x!r})")
        return v

    @model_validator(mode="after")
    def _one_source_per_input(self):
        both = sorted(set(self.input_ranges or {}) & set(self.input_values or {}))
        if both:
            raise ValueError(f"both input_ranges and input_values name {', '.join(both)}: give one per input")
        if self.inputs_npz is not None and (self.input_ranges or self.input_values):
            raise ValueError("inputs_npz and input_ranges/input_values were both given: real inputs from the .npz "
                             "are used as they are, so remove one")
        if self.inputs_npz is not None and self.shapes:
            raise ValueError("inputs_npz and shapes were both given: the .npz's arrays are used at their own "
                             "shapes, so remove one")
        return self


class ScheduleSpec(_Strict):
    cron: Optional[str] = Field(None, description="a cron expression such as '0 3 * * *'")
    interval: Optional[float] = Field(None, gt=0, description="seconds between runs, a number > 0")
    timezone: Optional[str] = Field(None, description="an IANA time zone for cron, e.g. Europe/Berlin")

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of schedule.cron or schedule.interval")
        if self.cron is not None:
            from cronsim import CronSim, CronSimError  # Prefect's own cron parser
            from datetime import datetime

            try:
                CronSim(self.cron, datetime(2000, 1, 1))
            except CronSimError as exc:
                raise ValueError(f"bad cron expression {self.cron!r}: {exc}") from None
        return self


class BuildConfig(_Strict):
    name: Optional[str] = Field(None, description="a short name; defaults to the file name without .yaml")
    model: ModelSource = Field(description="where the model comes from")
    inputs: list[InputSpec] = Field(min_length=1, description="a list of {name, shape, dtype}")
    outputs: Optional[list[str]] = Field(None, description="output names to keep, or null for the signature's")
    builder: BuilderSpec = Field(default_factory=BuilderSpec, description="TensorRT builder settings")
    verification: VerificationSpec = Field(default_factory=VerificationSpec, description="verification settings")
    output: str = Field(description="where to place the finished engine (its manifest goes beside it as .json), "
                                    "relative to the config file, inside the config's directory tree or "
                                    "output_root; ~ and ${VAR} are expanded")
    output_root: Optional[str] = Field(None, description="a directory outside the config's own tree that output may "
                                                         "be placed in, relative to the config file (e.g. '..' "
                                                         "for output: ../build/engines/x.engine)")
    schedule: Optional[ScheduleSpec] = Field(None, description="{cron: ...} or {interval: seconds}")
    tags: list[str] = Field(default_factory=list, description="a list of strings")

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError("use letters, digits, '.', '_' and '-' only")
        return v


ENV_OUTPUT_ROOTS = "TF2TRT_OUTPUT_ROOTS"
_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def expand_strict(text: str) -> tuple[str, list[str]]:
    """``text`` with a leading ``~`` and ``$VAR``/``${VAR}`` expanded, and the names of unset variables.

    An unset variable stays as written (so the caller can name it), unlike a silent empty string.
    """
    missing: list[str] = []

    def sub(m: re.Match) -> str:
        name = m.group("braced") or m.group("bare")
        if name in os.environ:
            return os.environ[name]
        missing.append(name)
        return m.group(0)

    return _VAR.sub(sub, os.path.expanduser(text)), missing


class LoadedConfig:
    """A validated config plus where it came from, with paths resolved.

    ``force_output`` (``tf2trt build --force``) lets placement overwrite an existing output file that
    tf2trt did not place; it travels with :meth:`to_json` to Prefect tasks.
    """

    def __init__(self, spec: BuildConfig, path: Path, given: str, force_output: bool = False):
        self.spec = spec
        self.path = path.resolve()
        self.given = given
        self.dir = self.path.parent
        self.name = spec.name or _default_name(self.path)
        self.force_output = force_output

    def resolve(self, rel: str | None) -> Path | None:
        if rel is None:
            return None
        p = Path(os.path.expandvars(os.path.expanduser(rel)))
        return Path(os.path.normpath(p if p.is_absolute() else (self.dir / p)))

    def _resolve_strict(self, rel: str) -> Path:
        p = Path(expand_strict(rel)[0])
        return Path(os.path.normpath(p if p.is_absolute() else (self.dir / p)))

    @property
    def output_roots(self) -> list[Path]:
        """The directory trees the engine may be placed in (see the module docstring), symlinks resolved."""
        roots = [self.dir]
        if self.spec.output_root is not None:
            roots.append(self._resolve_strict(self.spec.output_root))
        for entry in filter(None, os.environ.get(ENV_OUTPUT_ROOTS, "").split(os.pathsep)):
            roots.append(Path(os.path.abspath(expand_strict(entry)[0])))
        return [r.resolve() for r in roots]

    def output_problem(self) -> str | None:
        """Why the output path breaks the placement rule, or None.  Checked at placement, symlinks resolved."""
        for key in ("output", "output_root"):
            value = getattr(self.spec, key)
            missing = expand_strict(value)[1] if value is not None else []
            if missing:
                return f"{key} {value!r} uses unset environment variable(s) {', '.join(missing)}"
        real = self.output_path.resolve()
        roots = self.output_roots
        if any(real == r or real.is_relative_to(r) for r in roots):
            return None
        allowed = " or ".join(str(r) for r in roots)
        return f"output {real} is outside the directory trees engines may be placed in ({allowed})"

    @property
    def model_path(self) -> Path | None:
        return self.resolve(self.spec.model.path)

    @property
    def inputs_npz(self) -> Path | None:
        return self.resolve(self.spec.verification.inputs_npz)

    @property
    def output_path(self) -> Path:
        return self._resolve_strict(self.spec.output)

    def to_json(self) -> dict:
        """Small, JSON-safe form for passing to tasks (re-validated there)."""
        # exclude_unset: validated again, the spec knows which keys the file set (default verification
        # tolerances depend on the precision unless the config gives them: model_fields_set)
        data = {"path": str(self.path), "given": self.given,
                "spec": self.spec.model_dump(mode="json", exclude_unset=True)}
        if self.force_output:
            data["force_output"] = True
        return data

    @classmethod
    def from_json(cls, data: dict) -> "LoadedConfig":
        return cls(BuildConfig.model_validate(data["spec"]), Path(data["path"]), data["given"],
                   force_output=bool(data.get("force_output", False)))

    def __repr__(self):
        return f"LoadedConfig({self.given!r}, name={self.name!r})"


def _default_name(path: Path) -> str:
    stem = path.name
    for suffix in (".yaml", ".yml"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return re.sub(r"[^A-Za-z0-9_.-]", "-", stem) or "config"


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and remembers each key's line."""

    def __init__(self, stream):
        super().__init__(stream)
        self.lines: dict[int, dict[Any, int]] = {}
        self.keep: list[Any] = []


class _DuplicateKey(Exception):
    def __init__(self, key, line, first):
        self.key, self.line, self.first = key, line, first


def _construct_mapping(loader: _Loader, node, deep=False):
    seen: dict[Any, int] = {}
    loader.flatten_mapping(node)
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise _DuplicateKey(key, line, seen[key])
        seen[key] = line
    mapping = yaml.SafeLoader.construct_mapping(loader, node, deep=True)
    loader.lines[id(mapping)] = seen
    loader.keep.append(mapping)
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_of(data: Any, loc: tuple, lines: dict[int, dict[Any, int]]) -> int | None:
    line = None
    node = data
    for part in loc:
        if isinstance(node, dict):
            line = lines.get(id(node), {}).get(part, line)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            break
    return line


def _field_for(loc: tuple):
    """The pydantic FieldInfo and owning model for a location, if any."""
    model: Any = BuildConfig
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None, model
        info = fields[part]
        ann = info.annotation
        inner = _model_in(ann)
        model = inner if inner is not None else None
    return info, model


def _model_in(ann) -> Any:
    import typing

    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in typing.get_args(ann):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _key_name(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _issue_from_error(err: dict, data: Any, lines) -> ConfigIssue:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind = err["type"]
    key = _key_name(loc)
    line = _line_of(data, loc, lines)
    if kind == "extra_forbidden":
        parent_info, parent_model = _field_for(loc[:-1]) if len(loc) > 1 else (None, BuildConfig)
        allowed = sorted(getattr(parent_model, "model_fields", {}) or {})
        bad = str(loc[-1])
        close = difflib.get_close_matches(bad, allowed, n=1)
        fix = (f"did you mean '{close[0]}'? " if close else "") + f"allowed keys here: {', '.join(allowed)}"
        return ConfigIssue(key, f"unknown key '{bad}'", fix, line)
    info, _ = _field_for(loc)
    describe = info.description if info is not None and info.description else None
    if kind == "missing":
        parent_line = _line_of(data, loc[:-1], lines)
        return ConfigIssue(key, "missing required key",
                           f"add '{loc[-1]}:' — {describe}" if describe else f"add '{loc[-1]}:'", parent_line)
    got = err.get("input")
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    problem = msg if kind == "value_error" else f"{msg} (got {got!r})"
    fix = f"set {key or 'it'} to {describe}" if describe else "see docs/pipeline.md for the config schema"
    return ConfigIssue(key, problem, fix, line)


def parse_config_text(text: str, file: str | os.PathLike = "<string>") -> tuple[BuildConfig, dict, dict]:
    """Parse and schema-validate YAML text; returns (spec, raw data, key lines)."""
    loader = _Loader(text)
    try:
        try:
            data = loader.get_single_data()
        except _DuplicateKey as dup:
            raise ConfigError(file, [ConfigIssue(str(dup.key), f"duplicate key (first at line {dup.first})",
                                                 "keep one of them", dup.line)]) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError(file, [ConfigIssue("", f"not valid YAML: {getattr(exc, 'problem', exc)}",
                                                 "fix the YAML syntax", mark.line + 1 if mark else None)]) from None
        lines = loader.lines
    finally:
        loader.dispose()
    if data is None:
        raise ConfigError(file, [ConfigIssue("", "the file is empty", "write a build config (see configs/resnet50.yaml)")])
    if not isinstance(data, dict):
        raise ConfigError(file, [ConfigIssue("", f"expected a mapping of keys, got {type(data).__name__}",
                                             "write a build config (see configs/resnet50.yaml)")])
    try:
        spec = BuildConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(file, [_issue_from_error(e, data, lines) for e in exc.errors()]) from None
    return spec, data, lines


def load_config(path: str | os.PathLike, check_files: bool = True) -> LoadedConfig:
    """Read, validate and resolve one config file.  Raises :class:`ConfigError`."""
    given = str(path)
    p = Path(path)
    if not p.is_file():
        raise ConfigError(given, [ConfigIssue("", "no such config file",
                                              "give the path of an existing .yaml file")])
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(given, [ConfigIssue("", f"cannot read the file: {exc}", "check the file")]) from None
    spec, data, lines = parse_config_text(text, given)
    cfg = LoadedConfig(spec, p, given)
    if check_files:
        issues = []
        mp = cfg.model_path
        if mp is not None and not mp.exists():
            issues.append(ConfigIssue("model.path", f"file not found: {mp}",
                                      "correct the path (relative paths start at the config file's directory)",
                                      _line_of(data, ("model", "path"), lines)))
        npz = cfg.inputs_npz
        if npz is not None and not npz.is_file():
            issues.append(ConfigIssue("verification.inputs_npz", f"file not found: {npz}",
                                      "correct the path (relative paths start at the config file's directory)",
                                      _line_of(data, ("verification", "inputs_npz"), lines)))
        names = {i.name for i in spec.inputs}
        for key in ("input_ranges", "input_values"):
            for name in sorted(set(getattr(spec.verification, key) or {}) - names):
                issues.append(ConfigIssue(f"verification.{key}.{name}", f"'{name}' is not one of the inputs "
                                          f"({', '.join(sorted(names))})", "name an input listed under inputs:",
                                          _line_of(data, ("verification", key, name), lines)))
        issues += _verification_shape_issues(spec, data, lines)
        if spec.model.keras_application is not None and len(spec.inputs) != 1:
            issues.append(ConfigIssue("inputs", "a keras.applications model has exactly one input",
                                      "list one input", _line_of(data, ("inputs",), lines)))
        elif spec.model.keras_application is not None and spec.inputs[0].shape is None:
            issues.append(ConfigIssue("inputs[0]", "a generated keras.applications model needs inputs[0].shape "
                                      "(its input size)", "give shape; the batch dimension may then be made "
                                      "dynamic by a model file with profiles", _line_of(data, ("inputs",), lines)))
        issues += _input_size_issues(spec, data, lines)
        for key in ("output", "output_root"):
            value = getattr(spec, key)
            missing = expand_strict(value)[1] if value is not None else []
            if missing:
                issues.append(ConfigIssue(key, f"environment variable(s) {', '.join(missing)} not set",
                                          f"set {' and '.join(missing)}, or write the path without them",
                                          _line_of(data, (key,), lines)))
        out = cfg.output_path
        if out.exists() and out.is_dir():
            issues.append(ConfigIssue("output", f"{out} is a directory",
                                      "give a file path for the engine, e.g. ../build/model.engine",
                                      _line_of(data, ("output",), lines)))
        if issues:
            raise ConfigError(given, issues)
    return cfg


def config_profiles(spec: BuildConfig) -> list[dict]:
    """The optimization profiles a config asks for, ``[{input: ShapeRange}]``, formed as the backend forms them:
    the k-th range of every input is profile k (an input with fewer ranges keeps its last one)."""
    from converter.profiles import ShapeRange

    ranged = {i.name: [ShapeRange(tuple(r.min), tuple(r.opt), tuple(r.max)) for r in i.profiles]
              for i in spec.inputs if i.profiles}
    count = max((len(v) for v in ranged.values()), default=0)
    return [{name: rs[min(k, len(rs) - 1)] for name, rs in ranged.items()} for k in range(count)]


def _verification_shape_issues(spec: BuildConfig, data, lines) -> list[ConfigIssue]:
    """``verification.shapes`` the build could not verify at: a name not under ``inputs:``, a dynamic input left
    out, a static input's shape changed, a set outside every profile — found before any stage runs."""
    from converter.profiles import dynamic_shape, verification_shape_problems

    sets = spec.verification.shapes or []
    if not sets:
        return []
    profiles = config_profiles(spec)
    declared = {i.name: tuple(i.shape) if i.shape is not None else dynamic_shape(i.name, profiles)
                for i in spec.inputs}
    names = ", ".join(sorted(declared))
    issues = []
    for j, shape_set in enumerate(sets):
        problems = verification_shape_problems(declared, profiles, {n: tuple(s) for n, s in shape_set.items()})
        for name, problem, fix in problems:
            if name is not None and name not in declared:
                problem, fix = (f"'{name}' is not one of the inputs ({names})",
                                "name an input listed under inputs:")
            line = _entry_line(data, ("verification", "shapes", j), name, lines)
            issues.append(ConfigIssue(f"verification.shapes[{j}]" + (f".{name}" if name else ""), problem, fix,
                                      line))
    return issues


def _entry_line(data, loc: tuple, key, lines) -> int | None:
    """The line of ``key`` in the mapping at ``loc`` (a list entry), else of the entry's first key, else of
    the list's own key."""
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
            break
    own = lines.get(id(node), {}) if isinstance(node, dict) else {}
    if key is not None and key in own:
        return own[key]
    if own:
        return min(own.values())
    return _line_of(data, loc[:-1], lines)


def _input_size_issues(spec: BuildConfig, data, lines) -> list[ConfigIssue]:
    """Shapes no build can serve, found while loading the config, before any stage runs or is cached.

    The schema already wants every dimension ≥ 1; this adds rank and per-dimension bounds and the inputs'
    bytes (the static shapes, or each profile at its max) against the limit of
    :func:`converter.shapes.max_input_bytes` (``$TF2TRT_MAX_INPUT_BYTES``), so ``[1, 100000, 100000, 3]``
    fails here instead of in verification after four stages were built and cached.
    """
    from converter.errors import FreezeError
    from converter.shapes import LIMIT_HINT, check_input_sizes, dims_problem

    issues = []
    static: dict[str, list[int]] = {}
    ranged: dict[str, list] = {}
    for k, inp in enumerate(spec.inputs):
        shapes = [("shape", inp.shape)] if inp.shape is not None else [
            (f"profiles[{j}].{key}", getattr(r, key)) for j, r in enumerate(inp.profiles or []) for key in ("min", "max")]
        bad = [f"{where} {list(shape)}: {dims_problem(shape)}" for where, shape in shapes if dims_problem(shape)]
        for problem in bad:
            issues.append(ConfigIssue(f"inputs[{k}]", problem, "give every dimension as a whole number from 1 to "
                                      "2147483647, at most 8 dimensions", _line_of(data, ("inputs", k), lines)))
        if bad:
            continue
        if inp.shape is not None:
            static[inp.name] = inp.shape
        else:
            ranged[inp.name] = [r.max for r in inp.profiles or []]
    count = max((len(v) for v in ranged.values()), default=0)
    sets = ([("the inputs", static)] if not ranged else
            [(f"the inputs at profile {j}'s max" if count > 1 else "the inputs at the profiles' max",
              {**static, **{n: rs[min(j, len(rs) - 1)] for n, rs in ranged.items()}}) for j in range(count)])
    try:
        check_input_sizes(sets, {i.name: i.dtype for i in spec.inputs})
    except FreezeError as exc:
        issues.append(ConfigIssue("inputs", exc.message, exc.hint or LIMIT_HINT, _line_of(data, ("inputs",), lines)))
    return issues


def expand_config_args(paths: list[str]) -> list[str]:
    """Config arguments: files as given; directories expand to their *.yaml / *.yml files."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            out.extend(sorted(str(Path(p) / f) for f in os.listdir(p) if f.endswith((".yaml", ".yml"))))
        else:
            out.append(p)
    return out
