"""``kubectl logs`` of the operator tells an admin what happened: the operator as installed
(the CLI, as a process) logs its start-up, each decision's timeline and each step to stderr,
and a handler's error with its traceback; JSON lines name the Incident."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.fixtures.cluster import Objects, eventually
from tests.fixtures.operator import operator_process

pytestmark = pytest.mark.cluster
RUNBOOK = {
    "kind": "Runbook",
    "metadata": {"name": "pause"},
    "spec": {
        "title": "A pause",
        "match": {"services": ["dashboard"]},
        "rto": {"mitigation": "5m"},
        "diagnosis": [{"name": "pause", "action": {"type": "wait", "duration": "10ms"}}],
    },
}


def _incident(name: str) -> dict[str, Any]:
    return {
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {"service": "dashboard", "summary": "down", "severity": 3},
    }


def test_text_logs_tell_the_story_and_the_errors(
    objects: Objects,
    operator_identity: str,
    namespace: str,
    tmp_path: Path,
    api_client: kubernetes.client.ApiClient,
) -> None:
    stderr = tmp_path / "operator.log"
    objects.create("runbooks", RUNBOOK)
    with operator_process(namespace, tmp_path, stderr=stderr):
        objects.create("incidents", _incident("told"))
        eventually(lambda: "step pause succeeded" in stderr.read_text(), what="the step's outcome")
        # Take away the right to write status: the next decision fails, and says why.
        rbac = kubernetes.client.RbacAuthorizationV1Api(api_client)
        rbac.delete_namespaced_role_binding("incident-operator-watch", namespace)
        objects.patch_spec("incidents", "told", {"summary": "down again"})
        eventually(lambda: "Traceback" in stderr.read_text(), what="a traceback")
    text = stderr.read_text()
    assert "starting with Settings(" in text
    assert "webhook_token" not in text, "settings are logged without the token"
    assert f"incident {namespace}/told: Classified: Level 3 MEDIUM" in text
    assert f"incident {namespace}/told: StepStarted: diagnosis step pause" in text
    assert "Forbidden" in text


def test_json_lines_name_the_incident(
    objects: Objects, operator_identity: str, namespace: str, tmp_path: Path
) -> None:
    stderr = tmp_path / "operator.json"
    with operator_process(namespace, tmp_path, "--log-format", "json", stderr=stderr):
        objects.create("incidents", _incident("json"))
        eventually(lambda: "Classified" in stderr.read_text(), what="the triage line")
    raw = [line for line in stderr.read_text().splitlines() if line.strip()]
    lines = []
    for line in raw:
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    about = [line for line in lines if line.get("incident") == f"{namespace}/json"]
    assert any("Classified" in line["message"] for line in about)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
