"""Actions that need no outside system."""

from __future__ import annotations

import asyncio

from ..durations import format_duration, parse_duration
from ..models.actions import Wait
from .base import ActionContext, StepResult, executor


@executor(Wait)
async def wait(action: Wait, ctx: ActionContext) -> StepResult:
    """Real time, not policy time: a restarted service needs its startup seconds."""
    seconds = parse_duration(action.duration)
    await asyncio.sleep(seconds)
    return StepResult(
        True,
        f"Waited {format_duration(seconds)} for the service to settle",
        {"waitedSeconds": seconds},
    )
