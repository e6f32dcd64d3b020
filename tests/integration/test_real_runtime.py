"""The operator's actions against the real runtime of the local node (kubelet, containerd, runc).

Each test shows an effect only a real container has, seen from outside the operator:

* a restart runbook replaces the server *process*: new pod, new container, later start time,
  another host PID, and the old process is gone;
* ``execInPod`` runs inside the container (its files, its hostname, its PID 1), and
  ``podLogs`` reads what the container printed.

Jobs on the real node: test_run_job_real.py. Images are the ones built on the node
(hack/build-images.sh); nothing is pulled.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import secrets
import socket
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from incident_operator.actions import catalog  # noqa: F401  (registers the executors)
from incident_operator.actions.base import ActionContext, StepResult, run_action
from incident_operator.adapters.client import KubeClient
from incident_operator.adapters.kube import KubeAdapter, KubeSecretReader
from incident_operator.domain.policy import load_policy
from incident_operator.models.actions import ExecInPod, PodLogs
from incident_operator.models.runbook import Targets
from tests.fixtures.cluster import Objects, eventually
from tests.fixtures.operator import OperatorFactory

pytestmark = pytest.mark.cluster

BASE_IMAGE = "localhost/incident-base:bookworm"
DASHBOARD_IMAGE = "localhost/incident-demo-dashboard:dev"
READY_TIMEOUT = 120


# --- helpers ----------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on now (the kernel's pick for port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclasses.dataclass(frozen=True)
class HostProcess:
    """A process of this machine: its PID and its start time (clock ticks since boot), so a
    PID the kernel handed out again is not taken for the same process."""

    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> HostProcess | None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        # Fields after the command name (which may hold spaces) start at field 3 (state);
        # starttime is field 22.
        return cls(pid, int(stat.rsplit(")", 1)[1].split()[19]))

    def alive(self) -> bool:
        return HostProcess.of(self.pid) == self

    def cmdline(self) -> list[str]:
        raw = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        return raw.decode(errors="replace").rstrip("\0").split("\0")


def listener(port: int) -> HostProcess | None:
    """The process of this machine that listens on 127.0.0.1:``port`` (TCP).

    A ``hostNetwork`` pod's sockets live in the node's network namespace, which is this
    machine's, so ``/proc/net/tcp`` lists the server's listening socket with its inode; the
    process holding a file descriptor on ``socket:[inode]`` is the server, under its PID in
    the host's PID namespace (the pod's own PID namespace is a child of it).
    """
    wanted = f"0100007F:{port:04X}"  # 127.0.0.1 in /proc/net/tcp's little-endian hex
    inode = next(
        (
            fields[9]
            for fields in (line.split() for line in Path("/proc/net/tcp").read_text().split("\n"))
            if len(fields) > 9 and fields[1] == wanted and fields[3] == "0A"  # 0A: LISTEN
        ),
        None,
    )
    if inode is None or inode == "0":
        return None
    target = f"socket:[{inode}]"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            holds = any(os.readlink(fd) == target for fd in (proc / "fd").iterdir())
        except OSError:  # the process exited while we looked
            continue
        if holds:
            return HostProcess.of(int(proc.name))
    return None


@pytest.fixture
def apps(api_client: kubernetes.client.ApiClient) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(api_client)


@pytest.fixture
def core(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture
def ctx(namespace: str, api_client: kubernetes.client.ApiClient) -> ActionContext:
    kube = KubeClient(api_client)
    return ActionContext(
        namespace=namespace,
        incident="t",
        targets=Targets(),
        secrets=KubeSecretReader(KubeAdapter(kube)),
        clients={"kubernetes": kube},
        timeout=90,
    )


def deploy(
    apps: kubernetes.client.AppsV1Api,
    namespace: str,
    name: str,
    container: dict[str, Any],
    **pod: Any,
) -> None:
    """A one-replica Deployment of the real node, Recreate (a hostNetwork server's port
    cannot be bound twice), stopped 1 s after SIGTERM; returns once it is ready."""
    container = {"name": "app", "imagePullPolicy": "Never", **container}
    apps.create_namespaced_deployment(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"terminationGracePeriodSeconds": 1, "containers": [container], **pod},
                },
            },
        },
    )
    eventually(
        lambda: apps.read_namespaced_deployment(name, namespace).status.ready_replicas == 1,
        timeout=READY_TIMEOUT,
        what=f"Deployment {name} ready on the node",
    )


def running_pod(core: kubernetes.client.CoreV1Api, namespace: str, app: str) -> Any:
    """The one pod of ``app`` that is not being deleted, once its container runs."""

    def probe() -> Any:
        pods = [
            p
            for p in core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
            if p.metadata.deletion_timestamp is None
        ]
        if len(pods) != 1 or not pods[0].status.container_statuses:
            return None
        status = pods[0].status.container_statuses[0]
        return pods[0] if status.state.running and status.container_id else None

    return eventually(probe, timeout=READY_TIMEOUT, what=f"the running pod of {app}")


# --- restart ----------------------------------------------------------------------------------


def test_restart_runbook_replaces_the_server_process(
    objects: Objects,
    operator: OperatorFactory,
    apps: kubernetes.client.AppsV1Api,
    core: kubernetes.client.CoreV1Api,
    namespace: str,
) -> None:
    """A restartWorkload runbook, run by the operator, restarts the server itself.

    The server is ``python3 -m http.server`` on a free 127.0.0.1 port (``hostNetwork``).
    Before and after the runbook the test reads, from the API, the pod's name, the
    container's ID and ``state.running.startedAt``, and, from this machine's ``/proc``, the
    PID of the process listening on the port (see ``listener``). Reading the PID inside the
    container would prove nothing: each pod has its own PID namespace, where the server is
    always PID 1. The host PID plus the process's start time identify the process; the old
    one must be gone and the new one must be ``http.server`` again. A verify step then gets
    an answer from the new server.
    """
    port = free_port()
    deploy(
        apps,
        namespace,
        "server",
        {
            "image": BASE_IMAGE,
            "command": ["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            "readinessProbe": {
                "httpGet": {"host": "127.0.0.1", "port": port, "path": "/"},
                "periodSeconds": 1,
            },
        },
        hostNetwork=True,
    )
    before = running_pod(core, namespace, "server")
    old_status = before.status.container_statuses[0]
    old_started: dt.datetime = old_status.state.running.started_at
    old_process = eventually(lambda: listener(port), what=f"the process listening on {port}")
    assert "http.server" in old_process.cmdline()
    # startedAt has a resolution of one second: let one pass, so a restart must move it.
    eventually(
        lambda: dt.datetime.now(dt.UTC) >= old_started + dt.timedelta(seconds=1),
        what="a second to pass after the container started",
    )
    objects.create(
        "runbooks",
        {
            "kind": "Runbook",
            "metadata": {"name": "restart-server"},
            "spec": {
                "title": "Restart the server",
                "rto": {"mitigation": "5m"},
                "match": {"services": ["server"]},
                "targets": {"http": {"baseUrl": f"http://127.0.0.1:{port}"}},
                "recovery": [
                    {
                        "name": "restart",
                        "timeout": "90s",
                        "action": {"type": "restartWorkload", "workload": {"name": "server"}},
                    },
                    {"name": "verify", "action": {"type": "httpCheck", "path": "/"}},
                ],
            },
        },
    )
    with operator():
        objects.create(
            "incidents",
            {
                "kind": "Incident",
                "metadata": {"name": "server-down"},
                "spec": {
                    "service": "server",
                    "summary": "hung",
                    "severity": 3,
                    "acknowledgedBy": "alice",
                },
            },
        )
        status = eventually(
            lambda: (
                (s := objects.status("incidents", "server-down")).get("phase") == "Monitoring" and s
            ),
            timeout=150,
            what="the restart runbook to mitigate the incident",
            describe=lambda: str(objects.status("incidents", "server-down")),
        )
    steps = {s["name"]: s for s in status["steps"]}
    assert steps["restart"]["phase"] == "Succeeded", steps["restart"]
    assert (
        steps["verify"]["phase"] == "Succeeded"
        and steps["verify"]["findings"]["statusCode"] == "200"
    )

    after = running_pod(core, namespace, "server")
    new_status = after.status.container_statuses[0]
    assert after.metadata.name != before.metadata.name
    assert new_status.container_id != old_status.container_id
    assert new_status.state.running.started_at > old_started
    new_process = eventually(lambda: listener(port), what=f"the new process listening on {port}")
    assert new_process != old_process and new_process.pid != old_process.pid
    assert "http.server" in new_process.cmdline()
    eventually(lambda: not old_process.alive(), what=f"the old server (pid {old_process.pid}) gone")


# --- exec and logs ----------------------------------------------------------------------------


async def test_exec_runs_in_the_container_and_logs_are_its_stdout(
    ctx: ActionContext,
    apps: kubernetes.client.AppsV1Api,
    core: kubernetes.client.CoreV1Api,
    namespace: str,
) -> None:
    """The dashboard image holds /app/dashboard.py, which this machine does not; the pod
    has its own hostname (its name) and its own PID 1 (the container's command). podLogs
    finds the line the container printed at start."""
    token = secrets.token_hex(8)
    deploy(
        apps,
        namespace,
        "dash",
        {
            "image": DASHBOARD_IMAGE,
            "command": ["sh", "-c", f'echo "started {token} as $(id -u)"; exec sleep infinity'],
        },
    )
    pod = running_pod(core, namespace, "dash").metadata.name
    workload = {"name": "dash"}

    # cat is no playbook diagnostic: the admin allows it here, as the policy's exec lets one.
    policy = load_policy(
        overrides={
            "exec": {
                "commands": [
                    {
                        "name": "cat",
                        "command": ["cat", "{path}"],
                        "params": {"path": "/[a-z0-9/._-]+"},
                    }
                ]
            }
        }
    )
    allowed = dataclasses.replace(ctx, clients={**ctx.clients, "policy": policy})

    async def cat(path: str, pattern: str | None = None) -> StepResult:
        action = ExecInPod(
            type="execInPod", workload=workload, command=["cat", path], pattern=pattern
        )
        return await run_action(action, allowed)

    release = await cat("/etc/os-release", pattern="VERSION_CODENAME=bookworm")
    assert release.ok, release.message
    assert release.findings["pod"] == pod and release.findings["exitCode"] == 0
    assert not Path("/app/dashboard.py").exists()
    app = await cat("/app/dashboard.py", pattern="dashboard")
    assert app.ok, app.message
    hostname = await cat("/etc/hostname")
    assert hostname.ok and hostname.output == f"{pod}\n"
    init = await cat("/proc/1/cmdline")
    assert init.ok and init.output == "sleep\0infinity\0"

    logs = await run_action(
        PodLogs(type="podLogs", workload=workload, pattern=token, threshold=0), ctx
    )
    assert not logs.ok  # one match, above the threshold of 0: the line is there
    assert logs.findings["pod"] == pod and logs.findings["matches"] == 1
    assert logs.output == f"started {token} as 10001"
