"""One-off Jobs (``kubectl create job``): create, wait for Complete or Failed, read the log
tail of its pod, delete. The Job's Secrets are only referenced (``secretKeyRef``), never
read: the kubelet resolves them inside the cluster."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .client import (
    INCIDENT_LABEL,
    JSON,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    KubeClient,
    KubeError,
    NotFound,
)
from .pods import log_text
from .workloads import created, poll_delay, to_int

log = logging.getLogger(__name__)

JOB_TTL_SECONDS = 600
JOB_LOG_LINES = 50
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


@dataclasses.dataclass(frozen=True)
class JobEnv:
    """One environment variable of a Job: a literal value or a reference to a Secret key."""

    name: str
    value: str | None = None
    secret_name: str | None = None
    secret_key: str | None = None


@dataclasses.dataclass(frozen=True)
class JobVolume:
    """One volume of a Job, mounted into its container: a PersistentVolumeClaim
    (``claim_name``) or a path of the node (``host_path``), exactly one of them."""

    mount_path: str
    claim_name: str | None = None
    claim_read_only: bool = False
    host_path: str | None = None
    host_path_type: str = "Directory"
    sub_path: str | None = None
    read_only: bool = False


@dataclasses.dataclass(frozen=True)
class JobPod:
    """How the Job's pod runs: its volumes, network, image pull policy and user."""

    volumes: Sequence[JobVolume] = ()
    host_network: bool = False
    image_pull_policy: str = "IfNotPresent"
    run_as_user: int | None = None
    run_as_group: int | None = None


@dataclasses.dataclass(frozen=True)
class JobResult:
    name: str
    succeeded: bool
    timed_out: bool
    reason: str
    message: str
    pod: str | None
    exit_code: int | None
    log_tail: str
    seconds: float


# --- pure helpers -----------------------------------------------------------------------------


def label_value(text: str) -> str:
    """``text`` as a valid label value (63 characters, alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def _env_entry(var: JobEnv) -> JSON:
    if var.secret_name is not None and var.secret_key is not None:
        ref = {"name": var.secret_name, "key": var.secret_key}
        return {"name": var.name, "valueFrom": {"secretKeyRef": ref}}
    return {"name": var.name, "value": var.value or ""}


def _volume_source(volume: JobVolume) -> JSON:
    if volume.claim_name is not None:
        claim: JSON = {"claimName": volume.claim_name}
        if volume.claim_read_only:
            claim["readOnly"] = True
        return {"persistentVolumeClaim": claim}
    if volume.host_path is not None:
        return {"hostPath": {"path": volume.host_path, "type": volume.host_path_type}}
    raise ValueError(f"volume at {volume.mount_path} has neither a claim nor a host path")


def pod_spec(container: JSON, pod: JobPod) -> JSON:
    """The pod spec of a Job: ``container`` with ``pod``'s volumes, network and user."""
    container = {**container, "imagePullPolicy": pod.image_pull_policy}
    spec: JSON = {"restartPolicy": "Never", "automountServiceAccountToken": False}
    if pod.volumes:
        names = [f"volume-{index}" for index in range(len(pod.volumes))]
        spec["volumes"] = [
            {"name": name, **_volume_source(volume)}
            for name, volume in zip(names, pod.volumes, strict=True)
        ]
        mounts = []
        for name, volume in zip(names, pod.volumes, strict=True):
            mount: JSON = {"name": name, "mountPath": volume.mount_path}
            if volume.sub_path:
                mount["subPath"] = volume.sub_path
            if volume.read_only:
                mount["readOnly"] = True
            mounts.append(mount)
        container["volumeMounts"] = mounts
    if pod.host_network:
        spec["hostNetwork"] = True
    user = {"runAsUser": pod.run_as_user, "runAsGroup": pod.run_as_group}
    if any(value is not None for value in user.values()):
        spec["securityContext"] = {k: v for k, v in user.items() if v is not None}
    spec["containers"] = [container]
    return spec


def job_body(
    name: str,
    incident: str,
    image: str,
    command: Sequence[str],
    env: Sequence[JobEnv],
    backoff_limit: int,
    active_deadline_s: int,
    pod: JobPod = JobPod(),
) -> JSON:
    """The Job manifest: one container, never restarted, labelled with the incident."""
    labels = {INCIDENT_LABEL: label_value(incident) or "unknown", MANAGED_BY_LABEL: MANAGED_BY}
    container: JSON = {"name": "job", "image": image, "command": list(command)}
    if env:
        container["env"] = [_env_entry(var) for var in env]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": int(backoff_limit),
            "activeDeadlineSeconds": max(1, int(active_deadline_s)),
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": pod_spec(container, pod),
            },
        },
    }


def job_outcome(job: Mapping[str, Any]) -> tuple[bool, str, str] | None:
    """(succeeded, reason, message) of a Job that is Complete or Failed, else ``None``."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return True, str(cond.get("reason") or "Complete"), str(cond.get("message") or "")
        if cond.get("type") == "Failed":
            return False, str(cond.get("reason") or "Failed"), str(cond.get("message") or "")
    return None


def exit_code_of(pod: Mapping[str, Any]) -> int | None:
    """The exit code of the pod's (last) terminated container."""
    exit_code = None
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated is not None:
            exit_code = to_int(terminated.get("exitCode"))
    return exit_code


# --- calls ------------------------------------------------------------------------------------


async def create_job(
    kube: KubeClient,
    namespace: str,
    incident: str,
    image: str,
    command: Sequence[str],
    env: Sequence[JobEnv] = (),
    backoff_limit: int = 0,
    active_deadline_s: int = 600,
    pod: JobPod = JobPod(),
) -> str:
    """Create the Job; returns its name (``<incident>-job-<random>``)."""
    prefix = re.sub(r"[^a-z0-9-]+", "-", incident.lower())[:40].strip("-") or "incident"
    name = f"{prefix}-job-{secrets.token_hex(3)}"
    body = job_body(name, incident, image, command, env, backoff_limit, active_deadline_s, pod)
    await kube.json(
        kube.batch.create_namespaced_job, namespace, body, what=f"Job {namespace}/{name}"
    )
    return name


async def wait_for_job(
    kube: KubeClient, namespace: str, name: str, timeout: float
) -> tuple[bool | None, str, str]:
    """(succeeded, reason, message) once the Job is Complete or Failed; succeeded is
    ``None`` when it is neither after ``timeout`` seconds."""
    started = time.monotonic()
    deadline = started + max(0.0, timeout)
    while True:
        job = await kube.json(
            kube.batch.read_namespaced_job_status, name, namespace, what=f"Job {namespace}/{name}"
        )
        outcome = job_outcome(job)
        if outcome is not None:
            return outcome
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            status = job.get("status") or {}
            counts = ", ".join(
                f"{what} {status.get(what) or 0}" for what in ("active", "succeeded", "failed")
            )
            return None, "Timeout", counts
        await asyncio.sleep(poll_delay(time.monotonic() - started, remaining))


async def job_log(
    kube: KubeClient, namespace: str, name: str, tail_lines: int = JOB_LOG_LINES
) -> tuple[str | None, int | None, str]:
    """(pod, exit code, log tail) of the Job's newest pod; empty when there is none."""
    listing: JSON = {}
    for label in JOB_NAME_LABELS:
        listing = await kube.json(
            kube.core.list_namespaced_pod, namespace, label_selector=f"{label}={name}", what="Pods"
        )
        if listing.get("items"):
            break
    pods = sorted(listing.get("items") or [], key=created, reverse=True)
    if not pods:
        return None, None, ""
    pod_name = str(pods[0]["metadata"]["name"])
    try:
        text, _ = await log_text(kube, namespace, pod_name, tail_lines)
    except KubeError as exc:
        text = f"(no log: {exc})"
    return pod_name, exit_code_of(pods[0]), text


async def delete_job(kube: KubeClient, namespace: str, name: str) -> None:
    """Delete the Job and (in the background) its pods; a missing Job is fine."""
    with contextlib.suppress(NotFound):
        await kube.json(
            kube.batch.delete_namespaced_job,
            name,
            namespace,
            propagation_policy="Background",
            what=f"Job {namespace}/{name}",
        )


async def run_job(
    kube: KubeClient,
    namespace: str,
    incident: str,
    image: str,
    command: Sequence[str],
    env: Sequence[JobEnv] = (),
    backoff_limit: int = 0,
    timeout: float = 600.0,
    pod: JobPod = JobPod(),
) -> JobResult:
    """Create a Job, wait for Complete or Failed, collect its log tail, delete it.

    The Job's ``activeDeadlineSeconds`` is a little shorter than ``timeout``, so a Job
    that cannot finish is failed by Kubernetes (reason DeadlineExceeded) and reported as
    such; only when the Job controller does not react is the result a timeout. The Job
    is deleted whatever happens, also when the caller is cancelled.
    """
    started = time.monotonic()
    margin = min(5.0, max(1.0, timeout * 0.1))
    deadline_s = max(1, math.floor(timeout - 2 * margin))
    name = await create_job(
        kube, namespace, incident, image, command, env, backoff_limit, deadline_s, pod
    )
    try:
        succeeded, reason, message = await wait_for_job(kube, namespace, name, timeout - margin)
        pod_name, exit_code, tail = await job_log(kube, namespace, name)
    finally:
        try:
            await asyncio.shield(delete_job(kube, namespace, name))
        except KubeError as exc:
            log.warning("could not delete Job %s/%s: %s", namespace, name, exc)
    return JobResult(
        name=name,
        succeeded=bool(succeeded),
        timed_out=succeeded is None,
        reason=reason,
        message=message[:512],
        pod=pod_name,
        exit_code=exit_code,
        log_tail=tail,
        seconds=time.monotonic() - started,
    )
