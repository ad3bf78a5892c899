"""The pipeline: the stages in the order they run."""

from __future__ import annotations

from . import construct, freeze, optimize, parse, verify
from .base import Stage, StageContext, StageResult

#: The stage objects, in pipeline order (each reads only from stages before it).
PIPELINE: tuple[Stage, ...] = (freeze.STAGE, parse.STAGE, construct.STAGE, optimize.STAGE, verify.STAGE)
STAGES: tuple[str, ...] = tuple(s.name for s in PIPELINE)
_BY_NAME = {s.name: s for s in PIPELINE}
#: Each stage's main output role (what the next stage consumes).
OUTPUT_ROLE = {s.name: s.output for s in PIPELINE}


def get_stage(stage: str | Stage) -> Stage:
    if isinstance(stage, Stage):
        return stage
    try:
        return _BY_NAME[stage]
    except KeyError:
        raise ValueError(f"unknown stage {stage!r}") from None


def components(stage: str | Stage, ctx: StageContext, upstream: dict[str, StageResult]) -> dict:
    """The key components of ``stage`` for this config and these upstream results."""
    return get_stage(stage).components(ctx, upstream)

