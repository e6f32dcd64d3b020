"""End-to-end: the shipped runbooks against the demo workloads, made real on this machine."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

import pytest

from incident_operator.demo.stack import LocalStack
from incident_operator.domain import runbook_check
from tests.fixtures.cluster import Objects


@pytest.fixture
def stack(kubeconfig: str, namespace: str) -> Iterator[LocalStack]:
    with LocalStack(kubeconfig, namespace, kubectl=os.environ.get("KUBECTL", "kubectl")) as s:
        yield s


def apply_runbook(stack: LocalStack, objects: Objects, name: str,
                  overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Apply one shipped runbook, localized; ``overrides`` patch step fields by step name."""
    doc = next(d for d in stack.runbooks() if d["metadata"]["name"] == name)
    doc = copy.deepcopy(doc)
    for stage in ("diagnosis", "recovery"):
        for step in doc["spec"].get(stage, []):
            for key, value in (overrides or {}).get(step["name"], {}).items():
                if key == "action":
                    step["action"].update(value)
                else:
                    step[key] = value
    runbook, problem = runbook_check.parse(doc)
    assert runbook is not None and not problem, problem
    doc["metadata"].pop("namespace", None)
    created: dict[str, Any] = objects.create("runbooks", doc)
    return created


def steps(objects: Objects, incident: str) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in objects.status("incidents", incident).get("steps", [])}


def phase_of(objects: Objects, incident: str) -> str | None:
    phase: str | None = objects.status("incidents", incident).get("phase")
    return phase


def approve(objects: Objects, incident: str, step: str, by: str = "incident-commander") -> None:
    current = objects.get("incidents", incident)["spec"].get("approvals", [])
    objects.patch_spec("incidents", incident, {"approvals": [
        *current, {"step": step, "decision": "Approved", "by": by}]})


def explain(objects: Objects, incident: str) -> str:
    """The incident's steps and last timeline entries, for failure messages."""
    status = objects.status("incidents", incident)
    lines = [f"phase={status.get('phase')}"]
    lines += [f"  {s['name']}: {s['phase']} {s.get('message', '')}" for s in status.get("steps", [])]
    lines += [f"  {e['reason']}: {e['message']}" for e in status.get("timeline", [])[-8:]]
    return "\n".join(lines)
