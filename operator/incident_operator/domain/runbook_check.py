"""Checks on a Runbook that its schema cannot express: references between steps and targets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..models.actions import RunJob, Target
from ..models.objects import RunbookObject
from ..models.runbook import RunbookSpec
from .allowlists import exec_problem, target_problems
from .policy import Policy

#: Actions of these kinds need the connection of the same name in ``spec.targets``.
CONNECTIONS = frozenset({Target.POSTGRES, Target.REDIS, Target.HTTP, Target.PROMETHEUS})


def allowlist_problems(spec: RunbookSpec, policy: Policy, namespace: str) -> list[str]:
    """Targets, exec commands and Job hostPaths the admin's policy does not allow."""
    found = target_problems(spec, policy.targets, namespace)
    for step in [*spec.diagnosis, *spec.recovery]:
        problem = exec_problem(step, policy.exec)
        if problem is not None:
            found.append(problem)
        if isinstance(step.action, RunJob):
            found += [
                f"step {step.name}: hostPath {path} is not in the policy's jobs.hostPathAllowlist"
                for path in step.action.host_paths()
                if not policy.jobs.allows_host_path(path)
            ]
    return found


def problems(spec: RunbookSpec, policy: Policy | None = None, namespace: str = "") -> list[str]:
    """Everything that makes the Runbook unusable; the allowlists only when ``policy``."""
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
            target = step.action.target
            if target in CONNECTIONS and getattr(spec.targets, target.value) is None:
                found.append(
                    f"{stage} step {step.name}: {step.action.type} needs "
                    f"spec.targets.{target.value}"
                )
            seen.add(step.name)
    if policy is not None:
        found += allowlist_problems(spec, policy, namespace)
    return found


def parse(
    body: Mapping[str, Any], policy: Policy | None = None
) -> tuple[RunbookObject | None, str]:
    """The runbook and an empty string, or None and why it cannot be used."""
    try:
        runbook = RunbookObject.parse(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, f"spec.{where}: {first['msg']}"
    issues = problems(runbook.spec, policy, runbook.metadata.namespace)
    if issues:
        return runbook, "; ".join(issues)[:1024]
    return runbook, ""
