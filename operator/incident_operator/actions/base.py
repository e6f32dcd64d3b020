"""The contract between the runbook engine and the action executors.

An executor is ``async def run(action, ctx) -> StepResult`` registered for one action type.
It talks to the outside world only through the adapters in ``ctx``; it never writes the
Incident's status (the engine does, after each step) and never logs secrets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from ..domain.results import MAX_OUTPUT, Finding, StepResult
from ..durations import parse_duration
from ..models.actions import Action, ActionModel
from ..models.base import SecretKeyRef
from ..models.runbook import Targets

__all__ = [
    "EXECUTORS",
    "MAX_OUTPUT",
    "ActionContext",
    "ActionError",
    "Finding",
    "SecretReader",
    "StepResult",
    "duration_param",
    "executor",
    "read_secret",
    "run_action",
    "table",
]


class ActionError(Exception):
    """The action could not be carried out; the message is safe to show in status."""


class SecretReader(Protocol):
    async def read(self, namespace: str, name: str, key: str) -> str: ...


@dataclasses.dataclass
class ActionContext:
    """Everything an executor may use. ``clients`` holds the adapters created at startup.

    Dry runs never reach an executor of a destructive action: the engine records what it
    would have done instead.
    """

    namespace: str
    incident: str
    targets: Targets
    secrets: SecretReader
    clients: Mapping[str, Any]
    timeout: float


A = TypeVar("A")
Executor = Callable[[Any, ActionContext], Awaitable[StepResult]]
EXECUTORS: dict[str, Executor] = {}


ExecutorOf = Callable[[A, ActionContext], Awaitable[StepResult]]


def executor(action: type[ActionModel]) -> Callable[[ExecutorOf[A]], ExecutorOf[A]]:
    """Register the function that runs one action type of the ``Action`` union."""
    action_type = action.type_name()

    def register(func: ExecutorOf[A]) -> ExecutorOf[A]:
        if action_type in EXECUTORS:
            raise RuntimeError(f"two executors for {action_type}")
        EXECUTORS[action_type] = func
        return func

    return register


async def run_action(action: Action, ctx: ActionContext) -> StepResult:
    func = EXECUTORS.get(action.type)
    if func is None:
        raise ActionError(f"no executor for action {action.type}")
    return await func(action, ctx)


async def read_secret(ctx: ActionContext, ref: SecretKeyRef) -> str:
    """The secret value; a missing Secret or key becomes a clear ActionError."""
    try:
        return await ctx.secrets.read(ctx.namespace, ref.name, ref.key)
    except ActionError:
        raise
    except LookupError as exc:
        detail = exc.args[0] if exc.args else f"secret {ctx.namespace}/{ref.name} not found"
        raise ActionError(str(detail)) from None
    except Exception as exc:
        raise ActionError(
            f"cannot read key {ref.key} of secret {ctx.namespace}/{ref.name} ({type(exc).__name__})"
        ) from None


def duration_param(text: str) -> float:
    """A duration parameter in seconds; a malformed one is the runbook's error, not ours."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ActionError(str(exc)) from None


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain left-aligned text table."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )
