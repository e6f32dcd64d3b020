"""End-to-end: the shipped runbooks against the demo workloads, made real on this machine."""

from __future__ import annotations

import contextlib
import copy
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.fixtures.cluster import Objects, eventually

from incident_demo.stack import LocalStack
from incident_operator.domain import runbook_check


@pytest.fixture
def stack(kubeconfig: str, namespace: str) -> Iterator[LocalStack]:
    with LocalStack(kubeconfig, namespace, kubectl=os.environ.get("KUBECTL", "kubectl")) as s:
        yield s


def apply_runbook(
    stack: LocalStack,
    objects: Objects,
    name: str,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
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
    objects.patch_spec(
        "incidents",
        incident,
        {"approvals": [*current, {"step": step, "decision": "Approved", "by": by}]},
    )


def explain(objects: Objects, incident: str) -> str:
    """The incident's steps and last timeline entries, for failure messages."""
    status = objects.status("incidents", incident)
    lines = [f"phase={status.get('phase')}"]
    lines += [
        f"  {s['name']}: {s['phase']} {s.get('message', '')}" for s in status.get("steps", [])
    ]
    lines += [f"  {e['reason']}: {e['message']}" for e in status.get("timeline", [])[-8:]]
    return "\n".join(lines)


def drive(
    objects: Objects,
    incident: str,
    until: str,
    approver: str = "incident-commander",
    timeout: float = 120,
) -> dict[str, Any]:
    """Approve every step that asks, as the incident commander would, until ``until``."""
    approved: set[str] = set()

    def progress() -> dict[str, Any] | None:
        status = objects.status("incidents", incident)
        waiting = [
            s["name"]
            for s in status.get("steps", [])
            if s["phase"] == "AwaitingApproval" and s["name"] not in approved
        ]
        for step in waiting:
            approve(objects, incident, step, by=approver)
            approved.add(step)
        return status if status.get("phase") == until else None

    return eventually(
        progress,
        timeout=timeout,
        what=f"{incident} {until}",
        describe=lambda: explain(objects, incident),
    )


@pytest.fixture
def traffic(stack: LocalStack) -> Iterator[Callable[[str], None]]:
    """Background requests to the dashboard, so Prometheus has rates to compute."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(path: str) -> None:
        def loop() -> None:
            with httpx.Client(headers={"X-API-Key": stack.api_key}, timeout=5) as client:
                deadline = time.monotonic() + 600  # bounded even if a test forgets to stop
                while not stop.is_set() and time.monotonic() < deadline:
                    with contextlib.suppress(httpx.HTTPError):
                        client.get(f"{stack.dashboard_url}{path}")
                    stop.wait(0.05)

        for _ in range(3):
            thread = threading.Thread(target=loop, daemon=True)
            thread.start()
            threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
