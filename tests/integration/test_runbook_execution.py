"""Runbook execution on the real API server: restarts, dry runs, approvals, invalid runbooks."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.fixtures.cluster import Objects, eventually, kubectl
from tests.fixtures.operator import OperatorFactory, operator_process

pytestmark = pytest.mark.cluster

#: A real container on the node (the image is built there, nothing is pulled); sleep as PID 1
#: ignores SIGTERM, so a replaced pod stops after its 1 s grace period.
SLEEPER: dict[str, Any] = {
    "terminationGracePeriodSeconds": 1,
    "containers": [
        {
            "name": "c",
            "image": "localhost/incident-base:bookworm",
            "imagePullPolicy": "Never",
            "command": ["sleep", "infinity"],
        }
    ],
}


class CountingServer:
    """A real HTTP service that counts the health checks each path receives."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.status = 200
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] += 1
                self.send_response(server.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def service() -> Iterator[CountingServer]:
    instance = CountingServer()
    thread = threading.Thread(target=instance.httpd.serve_forever, daemon=True)
    thread.start()
    yield instance
    instance.httpd.shutdown()
    instance.httpd.server_close()


def runbook(url: str, recovery: list[dict[str, Any]], name: str = "rb") -> dict[str, Any]:
    return {
        "kind": "Runbook",
        "metadata": {"name": name},
        "spec": {
            "title": "Test runbook",
            "rto": {"mitigation": "5m"},
            "match": {"services": ["dashboard"]},
            "targets": {"http": {"baseUrl": url}},
            "diagnosis": [
                {"name": "check-health", "action": {"type": "httpCheck", "path": "/diagnose"}}
            ],
            "recovery": recovery,
        },
    }


def incident(**spec: Any) -> dict[str, Any]:
    return {
        "kind": "Incident",
        "metadata": {"name": "inc"},
        "spec": {
            "service": "dashboard",
            "summary": "down",
            "severity": 3,
            "acknowledgedBy": "alice",
            **spec,
        },
    }


def steps(objects: Objects) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in objects.status("incidents", "inc").get("steps", [])}


def test_operator_restart_never_reruns_a_completed_step(
    objects: Objects, operator: OperatorFactory, service: CountingServer
) -> None:
    objects.create(
        "runbooks",
        runbook(
            service.url,
            [
                {"name": "settle", "action": {"type": "wait", "duration": "4s"}},
                {"name": "verify", "action": {"type": "httpCheck", "path": "/verify"}},
            ],
        ),
    )
    with operator():
        objects.create("incidents", incident())
        eventually(
            lambda: steps(objects).get("settle", {}).get("phase") == "Running",
            what="settle step running",
        )
    # The operator died mid-step: status says so, and the finished step is recorded.
    before = steps(objects)
    assert before["check-health"]["phase"] == "Succeeded"
    assert before["settle"]["phase"] == "Running"
    with operator():
        done = eventually(
            lambda: (
                objects.status("incidents", "inc").get("phase") == "Monitoring" and steps(objects)
            ),
            timeout=30,
            what="runbook completed",
        )
    assert service.hits["/diagnose"] == 1, "a completed step ran again"
    assert service.hits["/verify"] == 1
    assert done["settle"]["attempts"] == 2  # idempotent, so it was resumed
    status = objects.status("incidents", "inc")
    reasons = [e["reason"] for e in status["timeline"]]
    assert "StepResumed" in reasons and "Mitigated" in reasons
    assert next(c for c in status["conditions"] if c["type"] == "Mitigated")["status"] == "True"


def test_dry_run_records_what_it_would_do(
    objects: Objects, operator: OperatorFactory, service: CountingServer, namespace: str
) -> None:
    objects.create(
        "runbooks",
        runbook(
            service.url,
            [
                {
                    "name": "scale",
                    "action": {
                        "type": "scaleWorkload",
                        "replicas": 3,
                        "workload": {"name": "dashboard"},
                    },
                }
            ],
        ),
    )
    with operator():
        objects.create("incidents", incident(dryRun=True))
        scale = eventually(
            lambda: (
                steps(objects).get("scale", {}).get("phase") == "Succeeded"
                and steps(objects)["scale"]
            ),
            what="dry-run step",
        )
    assert scale["dryRun"] is True
    assert scale["message"].startswith("Dry run: would run scaleWorkload")
    assert service.hits["/diagnose"] == 1  # read-only diagnosis still runs for real
    missing = kubectl("get", "deployment", "dashboard", "-n", namespace, check=False)
    assert "NotFound" in missing.stderr  # nothing was created or scaled


def test_approval_gate_waits_then_runs(
    objects: Objects,
    operator: OperatorFactory,
    service: CountingServer,
    namespace: str,
    api_client: Any,
) -> None:
    """The step waits until an approver (a person the namespace lets approve, acting as
    themself) approves it after it asked; then it runs once."""
    kubernetes.client.RbacAuthorizationV1Api(api_client).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "vp-approver"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "incident-operator-approver",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "vp"}],
        },
    )
    objects.create(
        "runbooks",
        runbook(
            service.url,
            [
                {
                    "name": "verify",
                    "requiresApproval": True,
                    "action": {"type": "httpCheck", "path": "/verify"},
                }
            ],
        ),
    )
    with operator():
        objects.create("incidents", incident())
        eventually(
            lambda: objects.status("incidents", "inc").get("phase") == "AwaitingApproval",
            what="waiting for approval",
        )
        row = kubectl("get", "inc", "inc", "-n", namespace, "-o", "wide", "--no-headers").stdout
        assert "AwaitingApproval" in row and "verify" in row
        assert service.hits["/verify"] == 0
        kubectl(
            "--as",
            "vp",
            "patch",
            "inc",
            "inc",
            "-n",
            namespace,
            "--type",
            "merge",
            "-p",
            '{"spec":{"approvals":[{"step":"verify","decision":"Approved","by":"vp"}]}}',
        )
        eventually(
            lambda: objects.status("incidents", "inc").get("phase") == "Monitoring",
            what="approved step ran",
        )
    assert service.hits["/verify"] == 1
    assert steps(objects)["verify"]["decidedBy"] == "vp"


def test_invalid_runbook_is_marked_and_never_used(
    objects: Objects, operator: OperatorFactory, service: CountingServer
) -> None:
    broken = runbook(service.url, [{"name": "flush", "action": {"type": "redisFlushDb"}}])
    objects.create("runbooks", broken)  # no redis target: only the operator can tell
    with operator():
        status = eventually(
            lambda: (
                objects.status("runbooks", "rb").get("valid") is False
                and objects.status("runbooks", "rb")
            ),
            what="runbook marked invalid",
        )
        assert "redisFlushDb needs spec.targets.redis" in status["message"]
        objects.create("incidents", incident(runbook="rb"))
        inc = eventually(
            lambda: (
                objects.status("incidents", "inc").get("escalation")
                and objects.status("incidents", "inc")
            ),
            what="escalation",
        )
    ready = next(c for c in inc["conditions"] if c["type"] == "RunbookReady")
    assert ready["reason"] == "RunbookInvalid" and "targets.redis" in ready["message"]
    assert service.hits["/diagnose"] == 0


def test_interrupted_non_idempotent_step_is_escalated_not_repeated(
    objects: Objects,
    operator: OperatorFactory,
    service: CountingServer,
    namespace: str,
    api_client: Any,
    tmp_path: Path,
) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "dashboard"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "dashboard"}},
                "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": {"app": "dashboard"}},
                    "spec": SLEEPER,
                },
            },
        },
    )
    # A restart that cannot finish its rollout: a quota forbids the new pod.
    kubernetes.client.CoreV1Api(api_client).create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "1"}}}
    )
    eventually(
        lambda: apps.read_namespaced_deployment("dashboard", namespace).status.ready_replicas == 1,
        timeout=120,
        what="deployment ready (a real container on the node)",
    )
    objects.create(
        "runbooks",
        runbook(
            service.url,
            [
                {
                    "name": "restart",
                    "action": {"type": "restartWorkload", "workload": {"name": "dashboard"}},
                    "timeout": "60s",
                }
            ],
        ),
    )
    with operator_process(namespace, tmp_path) as crashing:
        objects.create("incidents", incident())
        eventually(
            lambda: steps(objects).get("restart", {}).get("phase") == "Running",
            what="restart running",
        )
        crashing.kill()  # SIGKILL mid-step: no graceful shutdown, no cleanup
    generation = apps.read_namespaced_deployment("dashboard", namespace).metadata.generation
    with operator():
        status = eventually(
            lambda: (s := objects.status("incidents", "inc")).get("escalation") and s,
            what="escalated after the restart was interrupted",
            describe=lambda: str(objects.status("incidents", "inc")),
        )
    restart = steps(objects)["restart"]
    assert restart["phase"] == "Interrupted" and restart["attempts"] == 1
    assert "StepInterrupted" in [e["reason"] for e in status["timeline"]]
    # Not restarted a second time: the Deployment's template did not change again.
    assert apps.read_namespaced_deployment("dashboard", namespace).metadata.generation == generation
