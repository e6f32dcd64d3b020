"""runJob on the real node: the Job's command runs, and what it does is seen from outside.

* its exit code is read, and what it wrote lands in an allowlisted hostPath on this machine
  (the node) as the user of ``securityContext``;
* a hostPath outside the policy's allowlist never becomes a Job;
* ``hostNetwork`` decides whether it reaches the node's loopback;
* a PersistentVolumeClaim is mounted read-write, then read-only through a subPath;
* the CRD's schema refuses the volumes the operator would refuse.

Images are the ones built on the node (hack/build-images.sh; ``imagePullPolicy: Never``).
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from incident_operator.actions import catalog  # noqa: F401  (registers the executors)
from incident_operator.actions.base import ActionContext, ActionError, run_action
from incident_operator.adapters.client import KubeClient
from incident_operator.adapters.kube import KubeAdapter, KubeSecretReader
from incident_operator.domain.policy import load_policy
from incident_operator.models.actions import RunJob
from incident_operator.models.runbook import Targets
from tests.fixtures.cluster import Objects, eventually
from tests.fixtures.operator import OperatorFactory

pytestmark = pytest.mark.cluster

BASE_IMAGE = "localhost/incident-base:bookworm"


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


def with_policy(ctx: ActionContext, **jobs: Any) -> ActionContext:
    """``ctx`` with the admin's policy, as the operator hands it to executors."""
    policy = load_policy(overrides={"jobs": jobs})
    return dataclasses.replace(ctx, clients={**ctx.clients, "policy": policy})


def jobs_left(batch: kubernetes.client.BatchV1Api, namespace: str) -> list[str]:
    return [j.metadata.name for j in batch.list_namespaced_job(namespace).items]


@pytest.fixture
def batch(api_client: kubernetes.client.ApiClient) -> kubernetes.client.BatchV1Api:
    return kubernetes.client.BatchV1Api(api_client)


@pytest.fixture
def core(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


async def test_job_command_runs_and_its_exit_code_is_read(
    ctx: ActionContext, batch: kubernetes.client.BatchV1Api, namespace: str, tmp_path: Path
) -> None:
    """runJob with an allowlisted hostPath: the command writes a marker into the node's
    directory as the user of ``securityContext``, then exits 3. The step fails with exitCode
    3, the marker is on this machine (the node), and the Job is deleted."""
    shared = tmp_path / "backups"
    shared.mkdir()
    shared.chmod(0o777)  # written by uid 65534
    token = secrets.token_hex(8)
    action = RunJob.model_validate(
        {
            "type": "runJob",
            "image": BASE_IMAGE,
            "imagePullPolicy": "Never",
            "command": [
                "sh",
                "-c",
                f'echo "{token} uid=$(id -u)" > /backup/marker; echo wrote {token}; exit 3',
            ],
            "volumes": [{"hostPath": {"path": str(shared)}, "mountPath": "/backup"}],
            "securityContext": {"runAsUser": 65534, "runAsGroup": 65534},
        }
    )
    result = await run_action(action, with_policy(ctx, hostPathAllowlist=[str(tmp_path)]))
    assert not result.ok
    assert result.findings["exitCode"] == 3, result.message
    assert result.findings["succeeded"] is False and result.findings["timedOut"] is False
    assert "(exit code 3)" in result.message
    assert result.output == f"wrote {token}\n"
    assert (shared / "marker").read_text() == f"{token} uid=65534\n"
    assert (shared / "marker").stat().st_uid == 65534
    job = str(result.findings["job"])
    eventually(lambda: job not in jobs_left(batch, namespace), what=f"Job {job} deleted")


async def test_host_path_outside_the_allowlist_never_creates_a_job(
    ctx: ActionContext, batch: kubernetes.client.BatchV1Api, namespace: str, tmp_path: Path
) -> None:
    """Without a policy no hostPath is allowed; with one, only paths inside its entries (a
    sibling whose name merely starts the same is outside). The step fails (the engine turns
    the ActionError into a failed step) and no Job exists."""
    allowed, other = tmp_path / "allowed", tmp_path / "allowed-not"
    action = RunJob.model_validate(
        {
            "type": "runJob",
            "image": BASE_IMAGE,
            "command": ["true"],
            "volumes": [{"hostPath": {"path": str(other)}, "mountPath": "/x"}],
        }
    )
    for context in (ctx, with_policy(ctx, hostPathAllowlist=[str(allowed)])):
        with pytest.raises(ActionError, match=f"may not mount hostPath {other}: .*no Job was"):
            await run_action(action, context)
    assert jobs_left(batch, namespace) == []


class Echo:
    """A server on this machine's loopback that answers ``pong <path>`` and keeps the paths."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                echo.paths.append(self.path)
                body = f"pong {self.path}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


async def test_job_on_the_host_network_reaches_the_node_loopback(
    ctx: ActionContext, echo: Echo
) -> None:
    """With hostNetwork the Job's 127.0.0.1 is the node's, where this test's server listens;
    without it the pod has only its own loopback, and the same command fails."""
    path = f"/{secrets.token_hex(6)}"
    fetch = (
        "import sys, urllib.request; "
        "print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
    )
    command = ["python3", "-c", fetch, echo.url + path]
    base = {"type": "runJob", "image": BASE_IMAGE, "imagePullPolicy": "Never", "command": command}
    reached = await run_action(RunJob.model_validate({**base, "hostNetwork": True}), ctx)
    assert reached.ok, reached.message
    assert reached.output == f"pong {path}\n" and reached.findings["exitCode"] == 0
    assert echo.paths == [path]
    isolated = await run_action(RunJob.model_validate(base), ctx)
    assert not isolated.ok and isolated.findings["exitCode"] == 1
    assert isolated.output is not None and "Connection refused" in isolated.output
    assert echo.paths == [path]


async def test_job_mounts_a_persistent_volume_claim(
    ctx: ActionContext, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    """One Job writes into a claim (the default StorageClass); a second one mounts a
    subPath of it read-only: it reads the file, and cannot write there."""
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "backups"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Mi"}},
            },
        },
    )
    token = secrets.token_hex(8)
    claim = {"persistentVolumeClaim": {"claimName": "backups"}}
    write = RunJob.model_validate(
        {
            "type": "runJob",
            "image": BASE_IMAGE,
            "imagePullPolicy": "Never",
            "command": ["sh", "-c", f"mkdir -p /data/daily && echo {token} > /data/daily/dump"],
            "volumes": [{**claim, "mountPath": "/data"}],
        }
    )
    wrote = await run_action(write, ctx)
    assert wrote.ok, wrote.message
    read = RunJob.model_validate(
        {
            "type": "runJob",
            "image": BASE_IMAGE,
            "imagePullPolicy": "Never",
            "command": ["sh", "-c", "cat /restore/dump; touch /restore/new"],
            "volumes": [{**claim, "mountPath": "/restore", "subPath": "daily", "readOnly": True}],
        }
    )
    result = await run_action(read, ctx)
    assert not result.ok and result.findings["exitCode"] == 1
    assert result.output is not None
    assert result.output.startswith(f"{token}\n") and "Read-only file system" in result.output


def test_the_api_server_checks_job_volumes(objects: Objects) -> None:
    """The CRD's schema and CEL rule refuse what the operator would refuse."""

    def runbook(volume: dict[str, Any]) -> dict[str, Any]:
        action = {"type": "runJob", "image": BASE_IMAGE, "command": ["true"], "volumes": [volume]}
        return {
            "kind": "Runbook",
            "metadata": {"name": f"rb-{secrets.token_hex(3)}"},
            "spec": {
                "title": "t",
                "rto": {"mitigation": "5m"},
                "recovery": [{"name": "job", "action": action}],
            },
        }

    both = {
        "hostPath": {"path": "/var/backups"},
        "persistentVolumeClaim": {"claimName": "b"},
        "mountPath": "/b",
    }
    refusals = {
        "a volume is either a persistentVolumeClaim or a hostPath": both,
        "should match": {"hostPath": {"path": "/var/backups/../../etc"}, "mountPath": "/b"},
    }
    for message, volume in refusals.items():
        with pytest.raises(ApiException) as refused:
            objects.create("runbooks", runbook(volume))
        assert refused.value.status == 422 and message in str(refused.value.body)
    objects.create("runbooks", runbook({"hostPath": {"path": "/var/backups"}, "mountPath": "/b"}))


def test_operator_runs_a_runbook_job_and_reads_its_exit_code(
    objects: Objects, operator: OperatorFactory, batch: kubernetes.client.BatchV1Api, namespace: str
) -> None:
    """The same through the operator, as the Runbook's ServiceAccount: the Job's command
    prints a token and exits 3; the step fails with exitCode 3 and the token in its output,
    and the Job is gone."""
    token = secrets.token_hex(8)
    action = {
        "type": "runJob",
        "image": BASE_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", f"echo restore ran {token}; exit 3"],
    }
    objects.create(
        "runbooks",
        {
            "kind": "Runbook",
            "metadata": {"name": "restore"},
            "spec": {
                "title": "Restore",
                "rto": {"mitigation": "5m"},
                "match": {"services": ["db"]},
                "recovery": [{"name": "restore", "timeout": "90s", "action": action}],
            },
        },
    )
    incident = {"service": "db", "summary": "data lost", "severity": 3, "acknowledgedBy": "al"}
    with operator():
        objects.create(
            "incidents", {"kind": "Incident", "metadata": {"name": "inc"}, "spec": incident}
        )
        step = eventually(
            lambda: next(
                (
                    s
                    for s in objects.status("incidents", "inc").get("steps", [])
                    if s["name"] == "restore" and s["phase"] == "Failed"
                ),
                None,
            ),
            timeout=120,
            what="the restore step to fail",
            describe=lambda: str(objects.status("incidents", "inc")),
        )
    assert step["findings"]["exitCode"] == "3" and step["findings"]["succeeded"] == "False"
    assert "(exit code 3)" in step["message"]
    assert step["output"] == f"restore ran {token}\n"
    eventually(lambda: jobs_left(batch, namespace) == [], what="the Job deleted")
