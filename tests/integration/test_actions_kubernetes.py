"""Kubernetes executors against the real API server and the real node of the local cluster.

No mocks: Deployments, StatefulSets, ReplicaSets, pods, Events and Jobs are the API server's
and its controllers', and every pod here runs on the real node ``localhost`` (kubelet,
containerd, runc) from an image built on it (hack/build-images.sh; ``imagePullPolicy:
Never``). The containers print the log lines the tests expect, ``exec`` runs inside them, and
Job pods run their command and report its exit code. Pods without ``hostNetwork`` get only
their own loopback address from the node's CNI plugin, which is all these tests need.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import redis
from kubernetes.client.exceptions import ApiException

from incident_operator.actions import catalog
from incident_operator.actions import kubernetes as k8s_actions
from incident_operator.actions.base import ActionContext, ActionError, StepResult, run_action
from incident_operator.adapters import jobs, pods
from incident_operator.adapters.client import KubeClient
from incident_operator.adapters.jobs import JobEnv
from incident_operator.adapters.kube import KubeAdapter, KubeSecretReader
from incident_operator.adapters.pods import exec_exit_status
from incident_operator.domain.policy import load_policy
from incident_operator.models.actions import (
    ExecInPod,
    PodLogs,
    RecentRollouts,
    RestartWorkload,
    RollbackDeployment,
    RunJob,
    ScaleWorkload,
    SetResources,
    WarningEvents,
    WorkloadStatus,
)
from incident_operator.models.runbook import Targets
from tests.fixtures.cluster import eventually

pytest_plugins = ["tests.fixtures.services"]
pytestmark = pytest.mark.cluster

#: Two images built on the node: rollbacks and rollout history need different images.
IMAGE_V1 = "localhost/incident-base:bookworm"
IMAGE_V2 = "localhost/incident-demo-dashboard:dev"
#: redis-cli (redis-tools) is in this one.
REDIS_IMAGE = "localhost/incident-demo-redis:dev"
LOG_LINES = [
    "INFO starting",
    "ERROR db timeout",
    "INFO ready",
    "ERROR db timeout again",
    "WARN slow request",
]
#: The container prints the log lines, then sleeps (PID 1 ignores SIGTERM, so pods stop after
#: their 1 s grace period).
CONTAINER_COMMAND = [
    "sh",
    "-c",
    "printf '%s\\n' " + " ".join(f"'{line}'" for line in LOG_LINES) + "; exec sleep infinity",
]
#: Real containers start in a few seconds; a loaded machine may take longer.
READY_TIMEOUT = 120


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kube(api_client: kubernetes.client.ApiClient) -> KubeClient:
    return KubeClient(api_client)


@pytest.fixture
def ctx(namespace: str, kube: KubeClient) -> ActionContext:
    return ActionContext(
        namespace=namespace,
        incident="t",
        targets=Targets(),
        secrets=KubeSecretReader(KubeAdapter(kube)),
        clients={"kubernetes": kube},
        timeout=60,
    )


def allowing(ctx: ActionContext, *commands: list[str]) -> ActionContext:
    """``ctx`` under a policy whose exec templates are ``commands`` (``{any}`` matches any
    one argument)."""
    templates = [
        {"name": f"t{i}", "command": command, "params": {"any": ".*"} if "{any}" in command else {}}
        for i, command in enumerate(commands)
    ]
    policy = load_policy(overrides={"exec": {"commands": templates}})
    return dataclasses.replace(ctx, clients={**ctx.clients, "policy": policy})


@pytest.fixture
def apps(api_client: kubernetes.client.ApiClient) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(api_client)


@pytest.fixture
def core(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture
def batch(api_client: kubernetes.client.ApiClient) -> kubernetes.client.BatchV1Api:
    return kubernetes.client.BatchV1Api(api_client)


def pod_template(
    app: str,
    image: str,
    command: list[str] | None = None,
    host_network: bool = False,
) -> dict[str, Any]:
    """A pod of the real node (the kwok nodes are tainted): ``command`` or CONTAINER_COMMAND."""
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {
                "name": "app",
                "image": image,
                "imagePullPolicy": "Never",
                "command": command or CONTAINER_COMMAND,
            }
        ],
    }
    if host_network:
        spec["hostNetwork"] = True
    return {"metadata": {"labels": {"app": app}}, "spec": spec}


def create_deployment(
    apps: kubernetes.client.AppsV1Api,
    namespace: str,
    name: str = "web",
    replicas: int = 2,
    image: str = IMAGE_V1,
    **template: Any,
) -> None:
    apps.create_namespaced_deployment(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": pod_template(name, image, **template),
            },
        },
    )


def deployment_ready(
    apps: kubernetes.client.AppsV1Api, namespace: str, name: str = "web"
) -> dict[str, Any] | None:
    """The Deployment once every desired replica is updated, ready and available."""
    dep = apps.read_namespaced_deployment(name, namespace)
    status, want = dep.status, dep.spec.replicas
    done = (status.observed_generation or 0) >= dep.metadata.generation and all(
        (value or 0) == want
        for value in (
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas,
            status.replicas,
        )
    )
    return {"deployment": dep} if done else None


@pytest.fixture
def web(apps: kubernetes.client.AppsV1Api, namespace: str) -> str:
    """Deployment ``web``: 2 replicas of IMAGE_V1, Ready."""
    create_deployment(apps, namespace)
    eventually(
        lambda: deployment_ready(apps, namespace),
        timeout=READY_TIMEOUT,
        what="Deployment web ready",
    )
    return "web"


def set_image(
    apps: kubernetes.client.AppsV1Api,
    namespace: str,
    image: str,
    name: str = "web",
    env: dict[str, str] | None = None,
) -> None:
    """``kubectl set image`` (and ``set env``), then wait for the rollout."""
    container: dict[str, Any] = {"name": "app", "image": image}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    apps.patch_namespaced_deployment(
        name, namespace, {"spec": {"template": {"spec": {"containers": [container]}}}}
    )
    eventually(
        lambda: (
            deployment_ready(apps, namespace, name)
            and apps.read_namespaced_deployment(name, namespace)
            .spec.template.spec.containers[0]
            .image
            == image
        ),
        timeout=READY_TIMEOUT,
        what=f"Deployment {name} to roll out {image}",
    )


def image_of(apps: kubernetes.client.AppsV1Api, namespace: str, name: str = "web") -> str:
    image: str = (
        apps.read_namespaced_deployment(name, namespace).spec.template.spec.containers[0].image
    )
    return image


def create_quota(core: kubernetes.client.CoreV1Api, namespace: str, pods: int) -> None:
    """A ResourceQuota on the pod count, enforced once the quota controller has counted."""
    core.create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": str(pods)}}}
    )
    eventually(
        lambda: (
            (core.read_namespaced_resource_quota("pods", namespace).status.hard or {}).get("pods")
            == str(pods)
        ),
        what="ResourceQuota status",
    )


async def run(action: Any, ctx: ActionContext) -> StepResult:
    return await run_action(action, ctx)


# --- status, restart, scale -------------------------------------------------------------------


def test_executors_registered() -> None:
    """Every executor is registered by importing the catalog (as the operator does)."""
    EXECUTORS = catalog.EXECUTORS
    for name in (
        "restartWorkload",
        "scaleWorkload",
        "rollbackDeployment",
        "setResources",
        "podLogs",
        "workloadStatus",
        "recentRollouts",
        "warningEvents",
        "execInPod",
        "runJob",
    ):
        assert name in EXECUTORS, name
    assert EXECUTORS["restartWorkload"] is k8s_actions.restart_workload


async def test_workload_status_of_ready_deployment(web: str, ctx: ActionContext) -> None:
    result = await run(WorkloadStatus(type="workloadStatus", workload={"name": web}), ctx)
    assert result.ok, result.message
    assert result.findings["readyReplicas"] == 2
    assert result.findings["availableReplicas"] == 2
    assert result.findings["revision"] == 1
    assert result.findings["image"] == IMAGE_V1
    assert result.findings["rolledOut"] is True
    assert "Deployment web: 2/2 ready" in result.message
    assert result.output is not None and "Available" in result.output


async def test_restart_changes_template_and_rolls_out(
    web: str,
    ctx: ActionContext,
    apps: kubernetes.client.AppsV1Api,
    core: kubernetes.client.CoreV1Api,
    namespace: str,
) -> None:
    old_pods = {
        p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector="app=web").items
    }
    result = await run(RestartWorkload(type="restartWorkload", workload={"name": web}), ctx)
    assert result.ok, result.message
    dep = apps.read_namespaced_deployment(web, namespace)
    stamp = dep.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]
    assert stamp == result.findings["restartedAt"]
    assert (
        dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) >= dep.metadata.creation_timestamp
    )
    assert result.findings["revision"] == 2
    assert result.findings["readyReplicas"] == 2 and result.findings["rolledOut"] is True
    assert dep.status.updated_replicas == 2 and dep.status.available_replicas == 2
    assert result.message.startswith("Restarted Deployment web; rollout complete")

    def replaced() -> bool:
        pods = [
            p
            for p in core.list_namespaced_pod(namespace, label_selector="app=web").items
            if p.metadata.deletion_timestamp is None
        ]
        return len(pods) == 2 and not ({p.metadata.name for p in pods} & old_pods)

    eventually(replaced, timeout=60, what="every old pod to be replaced")


async def test_restart_reports_a_rollout_that_cannot_complete(
    web: str, ctx: ActionContext, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    # With 2 pods allowed, the surge pod of the new ReplicaSet can never be created.
    create_quota(core, namespace, pods=2)
    ctx = dataclasses.replace(ctx, timeout=5)
    result = await run(RestartWorkload(type="restartWorkload", workload={"name": web}), ctx)
    assert not result.ok
    assert (
        "Restarted Deployment web, but the rollout of Deployment web did not complete"
        in result.message
    )
    assert result.findings["rolledOut"] is False
    assert result.findings["updatedReplicas"] < 2


async def test_scale_to_three(
    web: str, ctx: ActionContext, apps: kubernetes.client.AppsV1Api, namespace: str
) -> None:
    result = await run(ScaleWorkload(type="scaleWorkload", workload={"name": web}, replicas=3), ctx)
    assert result.ok, result.message
    assert result.findings["previousReplicas"] == 2
    assert result.findings["replicas"] == 3 and result.findings["readyReplicas"] == 3
    assert result.message.startswith("Scaled Deployment web from 2 to 3 replicas")
    rs = eventually(
        lambda: [
            r
            for r in apps.list_namespaced_replica_set(namespace, label_selector="app=web").items
            if (r.status.ready_replicas or 0) == 3
        ],
        what="the ReplicaSet to have 3 ready replicas",
    )
    assert rs[0].spec.replicas == 3
    again = await run(
        ScaleWorkload(type="scaleWorkload", workload={"name": web}, replicas=3, wait=False), ctx
    )
    assert again.ok and again.message.startswith("Deployment web already had 3 replicas")
    down = await run(ScaleWorkload(type="scaleWorkload", workload={"name": web}, replicas=1), ctx)
    assert down.ok, down.message
    # complete only once the extra pods are gone from the Deployment's status
    assert down.findings["readyReplicas"] == 1 and down.findings["availableReplicas"] == 1
    assert apps.read_namespaced_deployment(web, namespace).status.replicas == 1


# --- rollback and resources -------------------------------------------------------------------


async def test_rollback_brings_back_the_previous_image(
    web: str, ctx: ActionContext, apps: kubernetes.client.AppsV1Api, namespace: str
) -> None:
    set_image(apps, namespace, IMAGE_V2, env={"FEATURE": "on"})
    result = await run(RollbackDeployment(type="rollbackDeployment", workload={"name": web}), ctx)
    assert result.ok, result.message
    assert image_of(apps, namespace) == IMAGE_V1
    # the whole template is v1's again, not v1's image merged into v2's template
    assert (
        apps.read_namespaced_deployment(web, namespace).spec.template.spec.containers[0].env is None
    )
    assert result.findings["previousImage"] == IMAGE_V2
    assert result.findings["image"] == IMAGE_V1
    assert result.findings["fromRevision"] == 2 and result.findings["toRevision"] == 1
    assert result.findings["revision"] == 3  # the old ReplicaSet, adopted as revision 3
    assert result.findings["readyReplicas"] == 2
    assert "Rolled back Deployment web from revision 2" in result.message
    dep = apps.read_namespaced_deployment(web, namespace)
    assert "pod-template-hash" not in dep.spec.template.metadata.labels
    # toRevision: forward again to the v2 template (revision 2)
    forward = await run(
        RollbackDeployment(type="rollbackDeployment", workload={"name": web}, to_revision=2), ctx
    )
    assert forward.ok, forward.message
    assert image_of(apps, namespace) == IMAGE_V2
    with pytest.raises(ActionError, match=r"revision 9 of Deployment web not found"):
        await run(
            RollbackDeployment(type="rollbackDeployment", workload={"name": web}, to_revision=9),
            ctx,
        )


async def test_rollback_without_previous_revision_fails(
    web: str, ctx: ActionContext, apps: kubernetes.client.AppsV1Api, namespace: str
) -> None:
    with pytest.raises(ActionError, match="no previous revision"):
        await run(RollbackDeployment(type="rollbackDeployment", workload={"name": web}), ctx)
    assert image_of(apps, namespace) == IMAGE_V1
    with pytest.raises(ActionError, match="needs a Deployment"):
        await run(
            RollbackDeployment(
                type="rollbackDeployment", workload={"kind": "StatefulSet", "name": web}
            ),
            ctx,
        )
    with pytest.raises(ActionError, match=r"Deployment .*/nope not found"):
        await run(RollbackDeployment(type="rollbackDeployment", workload={"name": "nope"}), ctx)


async def test_set_resources_changes_limits(
    web: str, ctx: ActionContext, apps: kubernetes.client.AppsV1Api, namespace: str
) -> None:
    action = SetResources(
        type="setResources",
        workload={"name": web},
        limits={"memory": "256Mi", "cpu": "500m"},
        requests={"memory": "64Mi"},
    )
    result = await run(action, ctx)
    assert result.ok, result.message
    resources = (
        apps.read_namespaced_deployment(web, namespace).spec.template.spec.containers[0].resources
    )
    assert resources.limits == {"memory": "256Mi", "cpu": "500m"}
    assert resources.requests == {"memory": "64Mi"}
    assert result.findings["container"] == "app" and result.findings["changed"] is True
    assert result.findings["limitsMemory"] == "256Mi"
    assert result.findings["revision"] == 2 and result.findings["rolledOut"] is True
    assert "limits memory=256Mi" in result.message
    raised = await run(
        SetResources(
            type="setResources", workload={"name": web}, container="app", limits={"memory": "512Mi"}
        ),
        ctx,
    )
    assert raised.ok and raised.findings["previousLimitsMemory"] == "256Mi"
    resources = (
        apps.read_namespaced_deployment(web, namespace).spec.template.spec.containers[0].resources
    )
    assert resources.limits == {"memory": "512Mi", "cpu": "500m"}  # cpu kept (merge)
    with pytest.raises(ActionError, match="has no container sidecar"):
        await run(
            SetResources(
                type="setResources",
                workload={"name": web},
                container="sidecar",
                limits={"memory": "1Gi"},
            ),
            ctx,
        )
    with pytest.raises(ActionError, match="invalid"):
        await run(
            SetResources(
                type="setResources",
                workload={"name": web},
                requests={"memory": "2Gi"},
                limits={"memory": "1Gi"},
            ),
            ctx,
        )


# --- history, events --------------------------------------------------------------------------


async def test_recent_rollouts(
    web: str, ctx: ActionContext, apps: kubernetes.client.AppsV1Api, namespace: str
) -> None:
    set_image(apps, namespace, IMAGE_V2)
    result = await run(
        RecentRollouts(type="recentRollouts", workload={"name": web}, window="1h"), ctx
    )
    assert result.ok, result.message
    assert result.findings["rollouts"] == 2
    assert result.findings["latestRevision"] == 2
    assert result.findings["image"] == IMAGE_V2
    assert result.findings["previousImage"] == IMAGE_V1
    assert "2 rollouts of Deployment web in the last 1h" in result.message
    assert result.output is not None and IMAGE_V2 in result.output
    none = await run(
        RecentRollouts(type="recentRollouts", workload={"name": web}, window="1ms"), ctx
    )
    assert none.ok and none.findings["rollouts"] == 0
    assert none.message == "No rollout of Deployment web in the last 1ms."


async def test_warning_events_and_unhealthy_status(
    ctx: ActionContext,
    apps: kubernetes.client.AppsV1Api,
    core: kubernetes.client.CoreV1Api,
    namespace: str,
) -> None:
    create_quota(core, namespace, pods=1)
    create_deployment(apps, namespace, "web", replicas=2)
    create_deployment(apps, namespace, "web-other", replicas=0)

    async def warnings() -> StepResult:
        return await run(
            WarningEvents(type="warningEvents", workload={"name": "web"}, window="1h"), ctx
        )

    # The ReplicaSet controller reports FailedCreate for the pod the quota refuses.
    eventually(
        lambda: (
            core.list_namespaced_event(
                namespace, field_selector="type=Warning,reason=FailedCreate"
            ).items
        ),
        timeout=60,
        what="a FailedCreate Warning event",
    )
    result = await warnings()
    assert result.ok, result.message
    assert result.findings["warnings"] >= 1
    assert result.findings["latestReason"] == "FailedCreate"
    assert "FailedCreate on ReplicaSet web-" in result.message
    assert result.output is not None and "exceeded quota" in result.output
    other = await run(
        WarningEvents(type="warningEvents", workload={"name": "web-other"}, window="1h"), ctx
    )
    assert other.ok and other.findings["warnings"] == 0
    eventually(
        lambda: apps.read_namespaced_deployment("web", namespace).status.ready_replicas == 1,
        what="the one pod the quota allows to be ready",
    )
    status = await run(WorkloadStatus(type="workloadStatus", workload={"name": "web"}), ctx)
    assert not status.ok
    assert status.findings["readyReplicas"] == 1 and status.findings["replicas"] == 2
    assert "ReplicaFailure=True" in status.message


# --- logs -------------------------------------------------------------------------------------


@pytest.fixture
def mapped_logs(web: str, namespace: str, core: kubernetes.client.CoreV1Api) -> list[str]:
    """The pods of ``web`` once each container has printed LOG_LINES to its stdout (the
    kubelet's log of the container, what ``kubectl logs`` reads)."""
    pods = [
        p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector="app=web").items
    ]
    for pod in pods:
        eventually(
            lambda p=pod: core.read_namespaced_pod_log(p, namespace).splitlines() == LOG_LINES,
            timeout=60,
            what=f"the log of pod {pod}",
        )
    return pods


async def test_pod_logs_counts_pattern_against_threshold(
    mapped_logs: list[str], ctx: ActionContext
) -> None:
    over = await run(
        PodLogs(type="podLogs", workload={"name": "web"}, pattern="ERROR", threshold=1), ctx
    )
    assert not over.ok
    assert over.findings["matches"] == 2 and over.findings["lines"] == 5
    assert over.findings["pod"] in mapped_logs
    assert over.output == "ERROR db timeout\nERROR db timeout again"
    assert "2 of the last 5 log lines of pod" in over.message
    assert "above the threshold of 1" in over.message
    within = await run(
        PodLogs(type="podLogs", workload={"name": "web"}, pattern="ERROR", threshold=2), ctx
    )
    assert within.ok and "within the threshold of 2" in within.message
    tail = await run(
        PodLogs(
            type="podLogs",
            workload={"name": "web"},
            tail_lines=2,
            pattern=r"^(ERROR|WARN)",
            container="app",
        ),
        ctx,
    )
    assert tail.ok and tail.findings["lines"] == 2 and tail.findings["matches"] == 2
    plain = await run(PodLogs(type="podLogs", workload={"name": "web"}), ctx)
    assert plain.ok and plain.output == "\n".join(LOG_LINES) + "\n"
    with pytest.raises(ActionError, match="has no container nope"):
        await run(PodLogs(type="podLogs", workload={"name": "web"}, container="nope"), ctx)


async def test_pod_log_reading_stops_at_the_byte_cap(
    mapped_logs: list[str], kube: KubeClient, namespace: str
) -> None:
    """``limitBytes`` and the streamed read cut the log at the cap, not after reading it."""
    full = "\n".join(LOG_LINES) + "\n"
    text, truncated = await pods.log_text(kube, namespace, mapped_logs[0], 100, limit=20)
    assert truncated and text == full[:20]
    whole, cut = await pods.log_text(kube, namespace, mapped_logs[0], 100)
    assert whole == full and not cut


async def test_pod_logs_without_ready_pod_fails(
    ctx: ActionContext, apps: kubernetes.client.AppsV1Api, namespace: str
) -> None:
    create_deployment(apps, namespace, "idle", replicas=0)
    with pytest.raises(ActionError, match="Deployment idle has no Ready pod"):
        await run(PodLogs(type="podLogs", workload={"name": "idle"}), ctx)


# --- exec -------------------------------------------------------------------------------------


async def test_exec_refuses_commands_outside_the_allowlist(ctx: ActionContext) -> None:
    for command in (
        ["sh", "-c", "rm -rf /"],
        ["df"],
        ["redis-clix", "ping"],
        ["bash"],
        ["/usr/bin/redis-cli", "ping"],
    ):
        with pytest.raises(ActionError, match="command not allowed in execInPod: "):
            await run(ExecInPod(type="execInPod", workload={"name": "web"}, command=command), ctx)
    with pytest.raises(ActionError, match=r"not allowed in execInPod: sh -c 'rm -rf /'"):
        await run(
            ExecInPod(type="execInPod", workload={"name": "web"}, command=["sh", "-c", "rm -rf /"]),
            ctx,
        )
    only_df = allowing(ctx, ["df", "-h"])
    with pytest.raises(ActionError, match="not allowed in execInPod: redis-cli ping"):
        await run(
            ExecInPod(type="execInPod", workload={"name": "web"}, command=["redis-cli", "ping"]),
            only_df,
        )
    with pytest.raises(ActionError, match="not allowed in execInPod: df -h /data"):
        await run(
            ExecInPod(type="execInPod", workload={"name": "web"}, command=["df", "-h", "/data"]),
            only_df,
        )


async def test_exec_runs_the_command_and_reports_exit_code(web: str, ctx: ActionContext) -> None:
    """``sh`` is allowed only here. The command runs in the container: the file it
    writes is in the container's /tmp (not this machine's), where the next exec reads it."""
    ctx = allowing(ctx, ["sh", "-c", "{any}"], ["cat", "{any}"])
    token = secrets.token_hex(8)
    name = f"/tmp/exec-test-{token}.txt"
    wrote = await run(
        ExecInPod(
            type="execInPod",
            workload={"name": web},
            command=["sh", "-c", f"echo {token} > {name}"],
        ),
        ctx,
    )
    assert wrote.ok, wrote.message
    assert wrote.findings["exitCode"] == 0
    assert wrote.message.startswith(f"`sh -c 'echo {token} > {name}'` in pod web-")
    assert not Path(name).exists()
    read = await run(
        ExecInPod(type="execInPod", workload={"name": web}, command=["cat", name], pattern=token),
        ctx,
    )
    assert read.ok, read.message
    assert read.output == f"{token}\n" and read.findings["matched"] is True
    failed = await run(
        ExecInPod(
            type="execInPod",
            workload={"name": web},
            command=["sh", "-c", "echo out; echo oops >&2; exit 3"],
        ),
        ctx,
    )
    assert not failed.ok
    assert failed.findings["exitCode"] == 3
    assert failed.output == "out\n[stderr]\noops\n"
    assert "exited with code 3" in failed.message
    nomatch = await run(
        ExecInPod(
            type="execInPod", workload={"name": web}, command=["cat", name], pattern="^nothing$"
        ),
        ctx,
    )
    assert not nomatch.ok and nomatch.findings["matched"] is False
    assert "does not match" in nomatch.message


async def test_exec_output_is_capped_while_streaming(
    web: str, kube: KubeClient, ctx: ActionContext, namespace: str
) -> None:
    """A command printing more than the cap: the operator keeps the cap's worth of output,
    closes the stream and reports why the command did not finish."""
    command = ["sh", "-c", "yes | head -c 2000000"]
    result = await pods.exec_in_pod(kube, namespace, "Deployment", web, command, limit=8192)
    assert result.truncated and not result.timed_out and result.exit_code is None
    assert len(result.stdout) == 8192 and set(result.stdout) == {"y", "\n"}
    assert result.error == "its output reached the 8 KiB limit, so the operator stopped it"
    step = await run(
        ExecInPod(type="execInPod", workload={"name": web}, command=command),
        allowing(ctx, ["sh", "-c", "{any}"]),
    )
    assert not step.ok and step.findings["exitCode"] == -1
    assert "did not finish: its output reached the 64 KiB limit" in step.message


async def test_exec_redis_cli_against_the_real_redis(
    ctx: ActionContext,
    apps: kubernetes.client.AppsV1Api,
    namespace: str,
    services_env: dict[str, str],
) -> None:
    """An allowed ``redis-cli`` command, run inside a container of the Redis image
    (``hostNetwork``, so 127.0.0.1 is the node's loopback) against the Redis of
    hack/services-up.sh; the test reads the key back with a client."""
    create_deployment(
        apps,
        namespace,
        "cli",
        replicas=1,
        image=REDIS_IMAGE,
        command=["sleep", "infinity"],
        host_network=True,
    )
    eventually(
        lambda: deployment_ready(apps, namespace, "cli"),
        timeout=READY_TIMEOUT,
        what="Deployment cli ready",
    )
    host, port = services_env["REDIS_HOST"], services_env["REDIS_PORT"]
    set_key = ["redis-cli", "-h", "{any}", "-p", "{any}", "-n", "{any}", "SET", "{any}", "{any}"]
    ctx = allowing(ctx, set_key)
    key, value = f"incident-operator-test:{secrets.token_hex(6)}", secrets.token_hex(6)
    client = redis.Redis(host=host, port=int(port), db=12)
    try:
        result = await run(
            ExecInPod(
                type="execInPod",
                workload={"name": "cli"},
                command=["redis-cli", "-h", host, "-p", port, "-n", "12", "SET", key, value],
                pattern="^OK",
            ),
            ctx,
        )
        assert result.ok, result.message
        assert result.output == "OK\n"
        assert client.get(key) == value.encode()
    finally:
        client.delete(key)
        client.close()


def test_exec_exit_status_parsing() -> None:
    assert exec_exit_status('{"metadata":{},"status":"Success"}') == (0, None)
    kubelet = {
        "status": "Failure",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "7"}]},
    }
    assert exec_exit_status(json.dumps(kubelet)) == (7, None)
    kwok_style = {
        "status": "Failure",
        "message": "error executing command in container: cmd wait: sh -c exit 3: exit status 3",
        "reason": "InternalError",
    }
    assert exec_exit_status(json.dumps(kwok_style)) == (3, None)
    code, error = exec_exit_status(json.dumps({"status": "Failure", "message": "no such cmd"}))
    assert code is None and error == "no such cmd"
    assert exec_exit_status("")[0] is None


# --- jobs -------------------------------------------------------------------------------------


@pytest.fixture
def job_secret(core: kubernetes.client.CoreV1Api, namespace: str) -> str:
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "backup"}, "stringData": {"password": "s3cret"}}
    )
    return "backup"


def job_named(batch: kubernetes.client.BatchV1Api, namespace: str, name: str) -> bool:
    try:
        batch.read_namespaced_job(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


async def test_job_spec_wait_log_and_delete(
    kube: KubeClient,
    job_secret: str,
    batch: kubernetes.client.BatchV1Api,
    core: kubernetes.client.CoreV1Api,
    namespace: str,
) -> None:
    env = [
        JobEnv("MODE", value="verify"),
        JobEnv("PGPASSWORD", secret_name=job_secret, secret_key="password"),
    ]
    name = await jobs.create_job(
        kube,
        namespace,
        "Inc.42",
        IMAGE_V1,
        ["sh", "-c", "echo integrity-ok"],
        env,
        backoff_limit=1,
        active_deadline_s=50,
    )
    assert name.startswith("inc-42-job-")
    job = batch.read_namespaced_job(name, namespace)
    assert job.metadata.labels == {
        "incidents.dev/incident": "Inc.42",
        "app.kubernetes.io/managed-by": "incident-operator",
    }
    spec = job.spec
    assert spec.backoff_limit == 1 and spec.active_deadline_seconds == 50
    assert spec.template.metadata.labels["incidents.dev/incident"] == "Inc.42"
    assert spec.template.spec.restart_policy == "Never"
    container = spec.template.spec.containers[0]
    assert container.image == IMAGE_V1 and container.command == ["sh", "-c", "echo integrity-ok"]
    assert container.env[0].name == "MODE" and container.env[0].value == "verify"
    ref = container.env[1].value_from.secret_key_ref
    assert (ref.name, ref.key) == (job_secret, "password")
    succeeded, reason, _ = await jobs.wait_for_job(kube, namespace, name, 60)
    assert succeeded is True and reason
    pod, exit_code, text = await jobs.job_log(kube, namespace, name)
    assert pod is not None and pod.startswith(name)
    assert exit_code == 0
    assert text == "integrity-ok\n"
    await jobs.delete_job(kube, namespace, name)
    eventually(lambda: not job_named(batch, namespace, name), what=f"Job {name} to be deleted")
    await jobs.delete_job(kube, namespace, name)  # already gone: fine


async def test_run_job_executor_succeeds_and_cleans_up(
    ctx: ActionContext, job_secret: str, batch: kubernetes.client.BatchV1Api, namespace: str
) -> None:
    action = RunJob(
        type="runJob",
        image=IMAGE_V1,
        command=["sh", "-c", "echo restored"],
        env=[{"name": "PGPASSWORD", "secret_ref": {"name": job_secret, "key": "password"}}],
    )
    result = await run(action, ctx)
    assert result.ok, result.message
    assert result.findings["succeeded"] is True and result.findings["timedOut"] is False
    assert result.findings["exitCode"] == 0
    job = str(result.findings["job"])
    assert job.startswith("t-job-")
    assert result.message.startswith(f"Job {job} ({IMAGE_V1}) completed in ")
    assert result.output
    eventually(lambda: not job_named(batch, namespace, job), what=f"Job {job} to be deleted")
    with pytest.raises(ActionError, match="sets both value and secretRef"):
        await run(
            RunJob(
                type="runJob",
                image=IMAGE_V1,
                command=["true"],
                env=[
                    {
                        "name": "X",
                        "value": "1",
                        "secret_ref": {"name": job_secret, "key": "password"},
                    }
                ],
            ),
            ctx,
        )


async def test_run_job_that_cannot_start_fails_by_deadline(
    ctx: ActionContext,
    core: kubernetes.client.CoreV1Api,
    batch: kubernetes.client.BatchV1Api,
    namespace: str,
) -> None:
    """No pod may be created: Kubernetes fails the Job at its activeDeadlineSeconds, which
    run_job keeps inside the step's timeout, and the Job is deleted."""
    create_quota(core, namespace, pods=0)
    ctx = dataclasses.replace(ctx, timeout=10)
    result = await run(RunJob(type="runJob", image=IMAGE_V1, command=["true"]), ctx)
    assert not result.ok
    assert result.findings["succeeded"] is False and result.findings["timedOut"] is False
    assert "DeadlineExceeded" in result.message
    assert "exitCode" not in result.findings
    job = str(result.findings["job"])
    eventually(lambda: not job_named(batch, namespace, job), what=f"Job {job} to be deleted")


# --- StatefulSets -----------------------------------------------------------------------------


async def test_statefulset_restart_scale_status_and_history(
    ctx: ActionContext, apps: kubernetes.client.AppsV1Api, namespace: str
) -> None:
    apps.create_namespaced_stateful_set(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 2,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": pod_template("db", IMAGE_V1),
            },
        },
    )
    ref = {"kind": "StatefulSet", "name": "db"}

    def ready() -> bool:
        sts = apps.read_namespaced_stateful_set("db", namespace)
        return (
            sts.status.ready_replicas or 0
        ) == 2 and sts.status.current_revision == sts.status.update_revision

    eventually(ready, timeout=READY_TIMEOUT, what="StatefulSet db to become Ready")
    status = await run(WorkloadStatus(type="workloadStatus", workload=ref), ctx)
    assert status.ok, status.message
    assert status.findings["revision"] == 1 and status.findings["readyReplicas"] == 2
    restarted = await run(RestartWorkload(type="restartWorkload", workload=ref), ctx)
    assert restarted.ok, restarted.message
    assert restarted.findings["revision"] == 2 and restarted.findings["rolledOut"] is True
    sts = apps.read_namespaced_stateful_set("db", namespace)
    assert sts.status.current_revision == sts.status.update_revision
    history = await run(RecentRollouts(type="recentRollouts", workload=ref, window="1h"), ctx)
    assert history.ok and history.findings["rollouts"] == 2
    assert history.findings["latestRevision"] == 2
    scaled = await run(ScaleWorkload(type="scaleWorkload", workload=ref, replicas=1), ctx)
    assert scaled.ok, scaled.message
    assert scaled.findings["previousReplicas"] == 2 and scaled.findings["readyReplicas"] == 1
