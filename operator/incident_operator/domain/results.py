"""What one runbook action found or did: the engine's input, the executors' output."""

from __future__ import annotations

import dataclasses

MAX_OUTPUT = 2048
Finding = str | int | float | bool


@dataclasses.dataclass
class StepResult:
    """What one action found or did. ``ok`` False means the step failed."""

    ok: bool
    message: str
    findings: dict[str, Finding] = dataclasses.field(default_factory=dict)
    output: str | None = None

    def __post_init__(self) -> None:
        if self.output is not None and len(self.output) > MAX_OUTPUT:
            cut = len(self.output) - MAX_OUTPUT + 40
            self.output = self.output[: MAX_OUTPUT - 40] + f"\n... [{cut} characters truncated]"
