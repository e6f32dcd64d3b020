"""Rollout state and history of Deployments and StatefulSets (``kubectl get``, ``kubectl
rollout status|history``): pure readings of the objects plus the calls that fetch them."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

from .client import JSON, KubeClient, NotFound
from .workloads import (
    REVISION,
    WorkloadError,
    check_kind,
    created,
    get_workload,
    now_utc,
    owned_by,
    poll_delay,
    replica_sets,
    rs_revision,
    selector_string,
    template_images,
    to_int,
)


class RolloutFailed(WorkloadError):
    """The rollout cannot complete (e.g. its progress deadline was exceeded)."""


class RolloutTimeout(WorkloadError):
    """The rollout did not complete in time; ``summary`` is the last state seen."""

    def __init__(self, message: str, summary: WorkloadSummary) -> None:
        super().__init__(message)
        self.summary = summary


@dataclasses.dataclass(frozen=True)
class ConditionSummary:
    type: str
    status: str
    reason: str
    message: str


@dataclasses.dataclass
class WorkloadSummary:
    """``kubectl get``/``rollout status`` of one Deployment or StatefulSet."""

    kind: str
    name: str
    replicas: int
    """Desired replicas (spec)."""
    current: int
    ready: int
    updated: int
    available: int
    images: list[str]
    revision: int
    """Deployment revision annotation, or the StatefulSet's update ControllerRevision number;
    0 when unknown."""
    conditions: list[ConditionSummary]
    generation: int
    observed_generation: int
    paused: bool
    rollout_done: bool
    rollout_message: str

    @property
    def healthy(self) -> bool:
        failing = any(
            (c.type == "ReplicaFailure" and c.status == "True")
            or (c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded")
            for c in self.conditions
        )
        return not failing and self.ready >= self.replicas and self.available >= self.replicas

    @property
    def image(self) -> str:
        return ",".join(self.images)


@dataclasses.dataclass(frozen=True)
class Rollout:
    """One revision of a workload: a ReplicaSet or a StatefulSet ControllerRevision."""

    revision: int
    name: str
    created: dt.datetime
    images: list[str]
    replicas: int


# --- pure readings ----------------------------------------------------------------------------


def conditions(obj: Mapping[str, Any]) -> list[ConditionSummary]:
    return [
        ConditionSummary(
            type=str(c.get("type", "")),
            status=str(c.get("status", "")),
            reason=str(c.get("reason", "")),
            message=str(c.get("message", "")),
        )
        for c in (obj.get("status") or {}).get("conditions") or []
    ]


def _desired(spec: Mapping[str, Any]) -> int:
    return int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)


def _deployment_state(name: str, spec: JSON, status: JSON) -> tuple[bool, str]:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            raise RolloutFailed(
                f"rollout of Deployment {name} exceeded its progress "
                f"deadline: {cond.get('message', '')}".rstrip(": ")
            )
    desired = _desired(spec)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    current = int(status.get("replicas") or 0)
    if updated < desired:
        return False, f"{updated} of {desired} new replicas have been updated"
    if current > updated:
        return False, f"{current - updated} old replicas are pending termination"
    if current > desired:
        return False, f"{current - desired} extra replicas are pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas are available"
    return True, f"{available}/{desired} replicas updated and available"


def _stateful_set_state(spec: JSON, status: JSON) -> tuple[bool, str]:
    desired = _desired(spec)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    if ready < desired:
        return False, f"{ready} of {desired} pods are ready"
    current = int(status.get("replicas") or 0)
    if current > desired:
        return False, f"{current - desired} extra pods are pending termination"
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return True, f"{ready}/{desired} pods ready (OnDelete: pods update when deleted)"
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    if partition > 0:
        if updated < desired - partition:
            return False, (
                f"{updated} of {desired - partition} pods above partition {partition} are updated"
            )
    elif status.get("updateRevision") != status.get("currentRevision"):
        return False, f"{updated} of {desired} pods are on the update revision"
    if "availableReplicas" in status and available < desired:
        return False, f"{available} of {desired} pods are available"
    return True, f"{ready}/{desired} pods updated and ready"


def rollout_state(kind: str, obj: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the rollout is complete, and why not, the way ``kubectl rollout status`` tells.

    Complete means: the controller has observed the latest generation, every desired
    replica is updated and available (Deployment) or ready and on the update revision
    (StatefulSet), and no replica beyond the desired count is left (scale-down done).
    Raises :class:`RolloutFailed` when the Deployment's progress deadline was exceeded.
    """
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    generation = int(meta.get("generation") or 0)
    if int(status.get("observedGeneration") or 0) < generation:
        return False, f"waiting for the {kind} controller to observe generation {generation}"
    if kind == "Deployment":
        return _deployment_state(str(meta.get("name", "?")), spec, status)
    return _stateful_set_state(spec, status)


def summarise(kind: str, obj: Mapping[str, Any], revision: int) -> WorkloadSummary:
    """The summary of a workload as read, with its revision number looked up."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    status = obj.get("status") or {}
    try:
        done, message = rollout_state(kind, obj)
    except RolloutFailed as exc:
        done, message = False, str(exc)
    return WorkloadSummary(
        kind=kind,
        name=str(meta.get("name", "")),
        replicas=_desired(spec),
        current=int(status.get("replicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        images=template_images(spec.get("template")),
        revision=revision,
        conditions=conditions(obj),
        generation=int(meta.get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        paused=bool(spec.get("paused")),
        rollout_done=done,
        rollout_message=message,
    )


def revision_rollout(rev: Mapping[str, Any], status: Mapping[str, Any]) -> Rollout:
    """A StatefulSet ControllerRevision as a Rollout; its replicas from the set's status."""
    name = str(rev["metadata"]["name"])
    data = rev.get("data") or {}
    images = template_images((data.get("spec") or {}).get("template"))
    replicas = 0
    if name == status.get("currentRevision"):
        replicas = int(status.get("currentReplicas") or 0)
    if name == status.get("updateRevision") and name != status.get("currentRevision"):
        replicas = int(status.get("updatedReplicas") or 0)
    return Rollout(to_int(rev.get("revision")), name, created(rev), images, replicas)


# --- calls ------------------------------------------------------------------------------------


async def _revision(kube: KubeClient, namespace: str, kind: str, obj: JSON) -> int:
    if kind == "Deployment":
        return to_int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION))
    name = str((obj.get("status") or {}).get("updateRevision") or "")
    if not name:
        return 0
    try:
        revision = await kube.json(
            kube.apps.read_namespaced_controller_revision,
            name,
            namespace,
            what=f"ControllerRevision {name}",
        )
    except NotFound:
        return 0
    return to_int(revision.get("revision"))


async def summary(
    kube: KubeClient, namespace: str, kind: str, name: str, obj: JSON | None = None
) -> WorkloadSummary:
    """Replicas, readiness, conditions, images and revision (``kubectl get -o wide``)."""
    kind = check_kind(kind)
    obj = obj if obj is not None else await get_workload(kube, namespace, kind, name)
    return summarise(kind, obj, await _revision(kube, namespace, kind, obj))


async def wait_for_rollout(
    kube: KubeClient, namespace: str, kind: str, name: str, timeout: float
) -> WorkloadSummary:
    """Poll until the rollout is complete (see :func:`rollout_state`); often at first (see
    :func:`poll_delay`).

    Raises :class:`RolloutTimeout` (with the last summary) after ``timeout`` seconds and
    :class:`RolloutFailed` when the Deployment's progress deadline is exceeded.
    """
    kind = check_kind(kind)
    started = time.monotonic()
    deadline = started + max(0.0, timeout)
    while True:
        obj = await get_workload(kube, namespace, kind, name)
        done, message = rollout_state(kind, obj)
        if done:
            return await summary(kube, namespace, kind, name, obj)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RolloutTimeout(
                f"rollout of {kind} {name} did not complete within {timeout:g}s: {message}",
                await summary(kube, namespace, kind, name, obj),
            )
        await asyncio.sleep(poll_delay(time.monotonic() - started, remaining))


async def rollouts(kube: KubeClient, namespace: str, kind: str, name: str) -> list[Rollout]:
    """Every revision kept: ReplicaSets of a Deployment, ControllerRevisions of a
    StatefulSet; newest revision first."""
    kind = check_kind(kind)
    obj = await get_workload(kube, namespace, kind, name)
    if kind == "Deployment":
        return [
            Rollout(
                revision=rs_revision(rs),
                name=str(rs["metadata"]["name"]),
                created=created(rs),
                images=template_images((rs.get("spec") or {}).get("template")),
                replicas=int((rs.get("status") or {}).get("replicas") or 0),
            )
            for rs in await replica_sets(kube, namespace, obj)
        ]
    listing = await kube.json(
        kube.apps.list_namespaced_controller_revision,
        namespace,
        label_selector=selector_string((obj.get("spec") or {}).get("selector")),
        what="ControllerRevisions",
    )
    status = obj.get("status") or {}
    found = [
        revision_rollout(rev, status)
        for rev in listing.get("items") or []
        if owned_by(rev, obj["metadata"]["uid"])
    ]
    return sorted(found, key=lambda r: r.revision, reverse=True)


async def recent_rollouts(
    kube: KubeClient,
    namespace: str,
    kind: str,
    name: str,
    window_s: float,
    now: dt.datetime | None = None,
) -> list[Rollout]:
    """Revisions created within the last ``window_s`` seconds, newest first.

    A rollback re-uses an older ReplicaSet, whose creation time is older: it counts when
    that ReplicaSet was first created.
    """
    since = (now or now_utc()) - dt.timedelta(seconds=window_s)
    return [r for r in await rollouts(kube, namespace, kind, name) if r.created >= since]
