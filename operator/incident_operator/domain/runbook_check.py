"""Checks on a Runbook that its schema cannot express: references between steps and targets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..models.objects import RunbookObject
from ..models.runbook import RunbookSpec

#: Which target each action family needs.
TARGET_OF_PREFIX = {
    "postgres": "postgres",
    "redis": "redis",
    "httpCheck": "http",
    "prometheusQuery": "prometheus",
}


def problems(spec: RunbookSpec) -> list[str]:
    found: list[str] = []
    seen: set[str] = set()
    for stage, steps in (("diagnosis", spec.diagnosis), ("recovery", spec.recovery)):
        for step in steps:
            for condition in step.when:
                if condition.step not in seen:
                    found.append(
                        f"{stage} step {step.name}: when refers to {condition.step}, "
                        "which is not an earlier step"
                    )
            for prefix, target in TARGET_OF_PREFIX.items():
                if step.action.type.startswith(prefix) and getattr(spec.targets, target) is None:
                    found.append(
                        f"{stage} step {step.name}: {step.action.type} needs spec.targets.{target}"
                    )
            seen.add(step.name)
    return found


def parse(body: Mapping[str, Any]) -> tuple[RunbookObject | None, str]:
    """The runbook and an empty string, or None and why it cannot be used."""
    try:
        runbook = RunbookObject.parse(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, f"spec.{where}: {first['msg']}"
    issues = problems(runbook.spec)
    if issues:
        return runbook, "; ".join(issues)[:1024]
    return runbook, ""
