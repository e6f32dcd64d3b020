"""Authority on the real API server: who may approve, acknowledge and resolve, and what a
Runbook may do. People are impersonated with ``kubectl --as``; the operator runs with its
ServiceAccount's token (see tests/fixtures/identity.py)."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest

from tests.fixtures.cluster import Objects, eventually, kubectl
from tests.fixtures.operator import OperatorFactory

pytestmark = pytest.mark.cluster
ALICE, BOB = "alice", "bob"  # an Incident author, and an approver


def _bind(api_client: Any, namespace: str, user: str, role: str) -> None:
    kubernetes.client.RbacAuthorizationV1Api(api_client).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": f"{user}-{role}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )


@pytest.fixture
def people(api_client: Any, namespace: str, operator_identity: str) -> str:
    _bind(api_client, namespace, ALICE, "incident-operator-incident-author")
    _bind(api_client, namespace, BOB, "incident-operator-approver")
    return namespace


def _as(user: str, namespace: str, *args: str, body: dict[str, Any] | None = None) -> Any:
    text = json.dumps(body) if body is not None else None
    return kubectl("--as", user, "-n", namespace, *args, check=False, input=text)


def _incident(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "incidents.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {"service": "dashboard", "summary": "down", "severity": 3, **spec},
    }


def _approval(step: str, by: str) -> dict[str, Any]:
    return {"spec": {"approvals": [{"step": step, "decision": "Approved", "by": by}]}}


def test_an_author_cannot_pre_approve_or_borrow_an_approvers_name(people: str) -> None:
    forged = _as(
        ALICE,
        people,
        "create",
        "-f",
        "-",
        body=_incident(
            "a", approvals=[{"step": "stop-writers", "decision": "Approved", "by": "dba"}]
        ),
    )
    assert forged.returncode != 0 and "must be you (alice)" in forged.stderr
    own = _as(
        ALICE,
        people,
        "create",
        "-f",
        "-",
        body=_incident(
            "b", approvals=[{"step": "stop-writers", "decision": "Approved", "by": ALICE}]
        ),
    )
    assert own.returncode != 0 and "needs the verb approve" in own.stderr
    plain = _as(ALICE, people, "create", "-f", "-", body=_incident("c"))
    assert plain.returncode == 0, plain.stderr


def test_an_approver_approves_as_themself_only(people: str) -> None:
    assert _as(ALICE, people, "create", "-f", "-", body=_incident("d")).returncode == 0
    patch = ["patch", "inc", "d", "--type", "merge", "-p"]
    as_alice = _as(BOB, people, *patch, json.dumps(_approval("restart", ALICE)))
    assert as_alice.returncode != 0 and "must be you (bob)" in as_alice.stderr
    as_bob = _as(BOB, people, *patch, json.dumps(_approval("restart", BOB)))
    assert as_bob.returncode == 0, as_bob.stderr
    edit = _as(
        ALICE,
        people,
        "patch",
        "inc",
        "d",
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": {"summary": "still down"}}),
    )
    assert edit.returncode == 0, "an author edits an Incident an approver approved"


def test_acknowledgement_and_resolution_name_the_requester(people: str) -> None:
    assert _as(ALICE, people, "create", "-f", "-", body=_incident("e")).returncode == 0
    patch = ["patch", "inc", "e", "--type", "merge", "-p"]
    other = _as(ALICE, people, *patch, json.dumps({"spec": {"acknowledgedBy": BOB}}))
    assert other.returncode != 0 and "acknowledgedBy must be you (alice)" in other.stderr
    assert (
        _as(ALICE, people, *patch, json.dumps({"spec": {"acknowledgedBy": ALICE}})).returncode == 0
    )
    resolution = {"resolution": {"resolvedBy": BOB, "rootCause": "bad deploy"}}
    forged = _as(ALICE, people, *patch, json.dumps({"spec": resolution}))
    assert forged.returncode != 0 and "resolvedBy must be you (alice)" in forged.stderr


GATED = {
    "kind": "Runbook",
    "metadata": {"name": "gated"},
    "spec": {
        "title": "A gated wait",
        "match": {"services": ["dashboard"]},
        "rto": {"mitigation": "5m"},
        "recovery": [
            {
                "name": "restart",
                "requiresApproval": True,
                "action": {"type": "restartWorkload", "workload": {"name": "missing"}},
            }
        ],
    },
}


def _step(objects: Objects, name: str) -> dict[str, Any]:
    status = objects.status("incidents", name)
    return next((s for s in status.get("steps", []) if s["name"] == "restart"), {})


def _reasons(objects: Objects, name: str) -> list[str]:
    return [e["reason"] for e in objects.status("incidents", name).get("timeline", [])]


def test_without_the_policy_the_operator_still_ignores_early_and_unauthorised_approvals(
    objects: Objects, operator: OperatorFactory, people: str
) -> None:
    """As a cluster admin (exempt from the admission policy), write what the policy would
    refuse: the operator's own checks hold."""
    objects.create("runbooks", GATED)
    with operator():
        objects.create(
            "incidents",
            {
                **_incident(
                    "g", approvals=[{"step": "restart", "decision": "Approved", "by": BOB}]
                ),
                "kind": "Incident",
            },
        )
        eventually(
            lambda: "ApprovalIgnored" in _reasons(objects, "g"), what="early approval ignored"
        )
        assert _step(objects, "g")["phase"] == "AwaitingApproval"
        objects.patch_spec(
            "incidents",
            "g",
            {"approvals": [{"step": "restart", "decision": "Approved", "by": "mallory"}]},
        )
        eventually(lambda: "ApprovalRefused" in _reasons(objects, "g"), what="mallory refused")
        assert _step(objects, "g")["phase"] == "AwaitingApproval"
        objects.patch_spec(
            "incidents",
            "g",
            {"approvals": [{"step": "restart", "decision": "Approved", "by": BOB}]},
        )
        step = eventually(
            lambda: (s := _step(objects, "g")).get("phase") in ("Failed", "Succeeded") and s,
            what="bob's approval to start the step",
            describe=lambda: repr(
                (_step(objects, "g"), objects.get("incidents", "g")["metadata"]["managedFields"])
            ),
        )
    assert step["decidedBy"] == BOB


def test_a_runbook_does_no_more_than_its_service_account_may(
    objects: Objects, operator: OperatorFactory, api_client: Any, namespace: str
) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{"name": "c", "image": "localhost/incident-base:bookworm"}]
                    },
                },
            },
        },
    )
    kubernetes.client.CoreV1Api(api_client).create_namespaced_service_account(
        namespace, {"metadata": {"name": "read-only"}}
    )
    kubernetes.client.RbacAuthorizationV1Api(api_client).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "read-only"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "read-only", "namespace": namespace}],
        },
    )
    runbook = {
        "kind": "Runbook",
        "metadata": {"name": "restart-web"},
        "spec": {
            "title": "Restart web",
            "serviceAccountName": "read-only",
            "match": {"services": ["web"]},
            "rto": {"mitigation": "5m"},
            "recovery": [
                {
                    "name": "restart",
                    "action": {
                        "type": "restartWorkload",
                        "workload": {"name": "web"},
                        "wait": False,
                    },
                }
            ],
        },
    }
    generation = apps.read_namespaced_deployment("web", namespace).metadata.generation
    objects.create("runbooks", runbook)
    with operator():
        objects.create("incidents", {**_incident("w", service="web"), "kind": "Incident"})
        step = eventually(
            lambda: (s := _step(objects, "w")).get("phase") == "Failed" and s,
            what="the restart to fail",
        )
    assert "Forbidden" in step["message"] and "patch deployments" in step["message"]
    assert "system:serviceaccount:" + namespace + ":read-only" in step["message"]
    assert apps.read_namespaced_deployment("web", namespace).metadata.generation == generation


def test_an_off_list_runbook_is_invalid_and_nothing_runs(
    objects: Objects, operator: OperatorFactory, receiver: Any
) -> None:
    """A target host off the admin's allowlist, and an exec command off its templates."""
    sneaky = {
        "kind": "Runbook",
        "metadata": {"name": "sneaky"},
        "spec": {
            "title": "Sends the API key elsewhere, opens a shell",
            "match": {"services": ["dashboard"]},
            "rto": {"mitigation": "5m"},
            "targets": {
                "http": {
                    "baseUrl": receiver.url.rsplit("/", 1)[0],
                    "apiKeySecretRef": {"name": "k", "key": "k"},
                }
            },
            "diagnosis": [
                {"name": "health", "action": {"type": "httpCheck"}},
                {
                    "name": "shell",
                    "action": {
                        "type": "execInPod",
                        "workload": {"name": "db"},
                        "command": ["psql", "-c", "\\! sh"],
                    },
                },
            ],
        },
    }
    objects.create("runbooks", sneaky)
    policy = {"targets": {"http": ["dashboard.internal:80"]}}
    with operator(policy=policy):
        status = eventually(
            lambda: (s := objects.status("runbooks", "sneaky")).get("valid") is False and s,
            what="the Runbook marked invalid",
        )
        objects.create("incidents", {**_incident("s", runbook="sneaky"), "kind": "Incident"})
        incident = eventually(
            lambda: (
                (s := objects.status("incidents", "s")).get("runbook") is None
                and any(c["reason"] == "RunbookInvalid" for c in s.get("conditions", []))
                and s
            ),
            what="the Incident refusing the Runbook",
        )
    assert "not in the policy's targets.http allowlist" in status["message"]
    assert "matches no exec.commands template" in status["message"]
    assert not incident.get("steps")
    assert receiver.attempts == 0, "nothing reached the unlisted host"
