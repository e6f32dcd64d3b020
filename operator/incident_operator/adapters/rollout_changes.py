"""Changes that start a rollout: ``kubectl rollout restart``, ``kubectl scale``, ``kubectl
rollout undo`` and ``kubectl set resources``. Waiting for the rollout is
:func:`.rollouts.wait_for_rollout`."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from .client import JSON, Conflict, KubeClient
from .workloads import (
    POD_TEMPLATE_HASH,
    REVISION,
    WorkloadError,
    check_kind,
    describe,
    get_workload,
    now_utc,
    patch_workload,
    replica_sets,
    rs_revision,
    template_images,
    to_int,
)

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
MAX_CONFLICT_RETRIES = 5


@dataclasses.dataclass(frozen=True)
class RollbackResult:
    from_revision: int
    to_revision: int
    previous_images: list[str]
    images: list[str]
    skipped: bool
    """The Deployment already ran the target revision's template: nothing was changed."""


@dataclasses.dataclass(frozen=True)
class ResourceChange:
    container: str
    before: JSON
    after: JSON

    @property
    def changed(self) -> bool:
        return self.before != self.after


# --- pure helpers -----------------------------------------------------------------------------


def restart_stamp(template: Mapping[str, Any] | None, now: dt.datetime) -> str:
    """The ``restartedAt`` stamp for a restart at ``now``: to the second, or to the
    microsecond when the template already carries this second's stamp (a second restart
    within the same second must still change the template)."""
    annotations = ((template or {}).get("metadata") or {}).get("annotations") or {}
    when = now.astimezone(dt.UTC)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    if annotations.get(RESTARTED_AT) == stamp:
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return stamp


def without_hash(template: Mapping[str, Any] | None) -> JSON:
    """A copy of a pod template without the pod-template-hash label."""
    body = copy.deepcopy(dict(template or {}))
    labels = (body.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(POD_TEMPLATE_HASH, None)
    return body


def same_template(current: Mapping[str, Any] | None, target: Mapping[str, Any]) -> bool:
    """Equal pod templates, ignoring the pod-template-hash label."""
    return without_hash(current) == without_hash(target)


def rollback_target(
    name: str,
    current: int,
    current_images: list[str],
    by_revision: Mapping[int, Mapping[str, Any]],
    to_revision: int | None,
) -> int:
    """The revision ``kubectl rollout undo`` goes back to: ``to_revision``, or the highest
    revision below ``current`` that runs other images (the highest below it if none does)."""
    if to_revision is not None:
        if to_revision not in by_revision:
            known = ", ".join(map(str, sorted(r for r in by_revision if r))) or "none"
            raise WorkloadError(
                f"revision {to_revision} of Deployment {name} not found (revisions kept: {known})"
            )
        return to_revision
    older = [r for r in by_revision if 0 < r < current] if current else sorted(by_revision)[:-1]
    if not older:
        raise WorkloadError(
            f"no previous revision of Deployment {name} to roll back to (revision "
            f"{current or 'unknown'} is the only one kept)"
        )
    # The newest older revision that runs other images: after a restart of a bad build,
    # "previous" is the same bad build, and undoing to it fixes nothing.
    different = [
        r
        for r in older
        if template_images((by_revision[r].get("spec") or {}).get("template")) != current_images
    ]
    return max(different or older)


def resources_patch(
    kind: str,
    name: str,
    containers: list[JSON],
    container: str | None,
    requests: Mapping[str, str],
    limits: Mapping[str, str],
) -> tuple[str, JSON, JSON]:
    """(container chosen, its resources before, the strategic merge patch)."""
    if not containers:
        raise WorkloadError(f"{kind} {name} has no containers")
    names = [str(c.get("name")) for c in containers]
    chosen = container or names[0]
    if chosen not in names:
        raise WorkloadError(
            f"{kind} {name} has no container {chosen} (containers: {', '.join(names)})"
        )
    before = copy.deepcopy(containers[names.index(chosen)].get("resources") or {})
    resources: JSON = {}
    if requests:
        resources["requests"] = dict(requests)
    if limits:
        resources["limits"] = dict(limits)
    if not resources:
        raise WorkloadError("no requests or limits to set")
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": chosen, "resources": resources}]}}}
    }
    return chosen, before, patch


def _containers(obj: Mapping[str, Any]) -> list[JSON]:
    containers: list[JSON] = (
        ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    ).get("containers") or []
    return containers


# --- calls ------------------------------------------------------------------------------------


async def restart(
    kube: KubeClient, namespace: str, kind: str, name: str, now: dt.datetime | None = None
) -> str:
    """``kubectl rollout restart``: stamp the pod template; returns the stamp."""
    kind = check_kind(kind)
    obj = await get_workload(kube, namespace, kind, name)
    if (obj.get("spec") or {}).get("paused"):
        raise WorkloadError(f"cannot restart paused {kind} {name} (resume it first)")
    stamp = restart_stamp((obj.get("spec") or {}).get("template"), now or now_utc())
    await patch_workload(
        kube,
        namespace,
        kind,
        name,
        {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}},
    )
    return stamp


async def scale(kube: KubeClient, namespace: str, kind: str, name: str, replicas: int) -> int:
    """``kubectl scale``; returns the previous desired replicas."""
    if check_kind(kind) == "Deployment":
        read = kube.apps.read_namespaced_deployment_scale
        patch = kube.apps.patch_namespaced_deployment_scale
    else:
        read = kube.apps.read_namespaced_stateful_set_scale
        patch = kube.apps.patch_namespaced_stateful_set_scale
    what = describe(kind, namespace, name)
    current = await kube.json(read, name, namespace, what=what)
    previous = int((current.get("spec") or {}).get("replicas") or 0)
    await kube.json(
        patch,
        name,
        namespace,
        {"spec": {"replicas": int(replicas)}},
        _content_type="application/merge-patch+json",
        what=what,
    )
    return previous


async def _rollback_once(
    kube: KubeClient, namespace: str, name: str, to_revision: int | None
) -> RollbackResult:
    """One read-decide-patch round of :func:`rollback`; raises Conflict when the Deployment
    changed since it was read."""
    deployment = await get_workload(kube, namespace, "Deployment", name)
    spec = deployment.get("spec") or {}
    if spec.get("paused"):
        raise WorkloadError(f"cannot roll back paused Deployment {name} (resume it first)")
    current = to_int(((deployment.get("metadata") or {}).get("annotations") or {}).get(REVISION))
    by_revision = {rs_revision(rs): rs for rs in await replica_sets(kube, namespace, deployment)}
    before = template_images(spec.get("template"))
    target = rollback_target(name, current, before, by_revision, to_revision)
    template = without_hash((by_revision[target].get("spec") or {}).get("template"))
    if same_template(spec.get("template"), template):
        return RollbackResult(current, target, before, before, skipped=True)
    # A JSON patch replaces the whole template (a merge would keep fields the target
    # revision does not have); the resourceVersion it carries makes it conditional.
    patch = [
        {
            "op": "replace",
            "path": "/metadata/resourceVersion",
            "value": deployment["metadata"]["resourceVersion"],
        },
        {"op": "replace", "path": "/spec/template", "value": template},
    ]
    await patch_workload(
        kube, namespace, "Deployment", name, patch, content_type="application/json-patch+json"
    )
    return RollbackResult(current, target, before, template_images(template), skipped=False)


async def rollback(
    kube: KubeClient, namespace: str, name: str, to_revision: int | None = None
) -> RollbackResult:
    """``kubectl rollout undo``: the Deployment gets the pod template of an older revision
    (see :func:`rollback_target`).

    The template is copied from that revision's ReplicaSet without its pod-template-hash
    label; the Deployment controller then adopts that ReplicaSet again under a new
    revision number. The patch carries the resourceVersion it was based on and is
    redone on a conflict.
    """
    for _ in range(MAX_CONFLICT_RETRIES):
        try:
            return await _rollback_once(kube, namespace, name, to_revision)
        except Conflict:
            continue
    raise WorkloadError(
        f"{describe('Deployment', namespace, name)} kept changing; rollback not applied"
    )


async def set_resources(
    kube: KubeClient,
    namespace: str,
    kind: str,
    name: str,
    container: str | None,
    requests: Mapping[str, str],
    limits: Mapping[str, str],
) -> ResourceChange:
    """``kubectl set resources``: a strategic merge patch of one container's resources
    (``container``, else the first one); other resource keys are kept."""
    kind = check_kind(kind)
    obj = await get_workload(kube, namespace, kind, name)
    chosen, before, patch = resources_patch(
        kind, name, _containers(obj), container, requests, limits
    )
    patched = await patch_workload(kube, namespace, kind, name, patch)
    after = next(
        (c.get("resources") or {} for c in _containers(patched) if c.get("name") == chosen), {}
    )
    return ResourceChange(chosen, before, after)
