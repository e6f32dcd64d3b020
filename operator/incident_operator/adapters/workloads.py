"""What the workload adapters share: kinds, errors, selectors, reading and patching.

The Kubernetes runbook actions work on Deployments and StatefulSets, their ReplicaSets,
pods and one-off Jobs, split by concern:

* :mod:`.rollouts`: rollout state and history, restart, scale, rollback, set resources;
* :mod:`.pods`: pods, logs and exec;
* :mod:`.jobs`: one-off Jobs;
* :mod:`.events`: Warning events.

Every call goes through the operator's :class:`~.client.KubeClient`, objects are read and
written as plain JSON (``dict``), so fields this client version does not know survive a
read-modify-write, and writes are patches (typed bodies would pass through the client's
models, which drop fields they do not know), except Job creation. API failures are
:class:`~.client.KubeError`; a request that cannot be carried out for another reason (an
unsupported kind, a paused Deployment, a missing container) is a :class:`WorkloadError`.
Both carry messages that are safe to show in an Incident's status.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from .client import JSON, KubeClient, parse_time

KINDS = ("Deployment", "StatefulSet")
REVISION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"
POLL_INTERVAL = 0.5
#: Most rollouts and Jobs here finish within seconds: look often at first, so that a step
#: does not end up to half a POLL_INTERVAL after its work did, then settle to POLL_INTERVAL.
FAST_POLL_INTERVAL = 0.1
FAST_POLL_WINDOW = 5.0
EPOCH = dt.datetime.min.replace(tzinfo=dt.UTC)


def poll_delay(elapsed: float, remaining: float) -> float:
    """How long a wait that began ``elapsed`` seconds ago sleeps before it looks again."""
    interval = FAST_POLL_INTERVAL if elapsed < FAST_POLL_WINDOW else POLL_INTERVAL
    return max(0.0, min(interval, remaining))


class WorkloadError(Exception):
    """The request cannot be carried out; the message is safe to show in status."""


# --- pure helpers -----------------------------------------------------------------------------


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_kind(kind: str) -> str:
    value = str(kind)
    if value not in KINDS:
        raise WorkloadError(
            f"unsupported workload kind {value!r} (expected Deployment or StatefulSet)"
        )
    return value


def describe(kind: str, namespace: str, name: str) -> str:
    """How messages name a workload: ``Deployment ns/web``."""
    return f"{kind} {namespace}/{name}"


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """A label selector (``matchLabels`` + ``matchExpressions``) in query-string form."""
    if not selector:
        raise WorkloadError("workload has no label selector")
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            raise WorkloadError(f"unsupported selector operator {op}")
    if not parts:
        raise WorkloadError("workload has an empty label selector")
    return ",".join(parts)


def template_images(template: Mapping[str, Any] | None) -> list[str]:
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    return [str(c.get("image", "")) for c in containers]


def created(obj: Mapping[str, Any]) -> dt.datetime:
    """The creation time of an object (the oldest possible time when unknown)."""
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp")) or EPOCH


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """``obj`` is controlled by the object with ``uid``."""
    return any(
        ref.get("uid") == uid and ref.get("controller")
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


def to_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def rs_revision(rs: Mapping[str, Any]) -> int:
    """The Deployment revision a ReplicaSet carries (0 when none)."""
    return to_int(((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION))


# --- reading and patching ---------------------------------------------------------------------


def _workload_api(kube: KubeClient, kind: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(read, patch) of the kind."""
    if check_kind(kind) == "Deployment":
        return kube.apps.read_namespaced_deployment, kube.apps.patch_namespaced_deployment
    return kube.apps.read_namespaced_stateful_set, kube.apps.patch_namespaced_stateful_set


async def get_workload(kube: KubeClient, namespace: str, kind: str, name: str) -> JSON:
    """The Deployment or StatefulSet as JSON."""
    read, _ = _workload_api(kube, kind)
    return await kube.json(read, name, namespace, what=describe(kind, namespace, name))


async def patch_workload(
    kube: KubeClient,
    namespace: str,
    kind: str,
    name: str,
    body: Any,
    content_type: str = "application/strategic-merge-patch+json",
) -> JSON:
    """Patch the workload; returns it as patched."""
    _, patch = _workload_api(kube, kind)
    return await kube.json(
        patch,
        name,
        namespace,
        body,
        _content_type=content_type,
        what=describe(kind, namespace, name),
    )


async def replica_sets(kube: KubeClient, namespace: str, deployment: JSON) -> list[JSON]:
    """The ReplicaSets controlled by ``deployment``, newest revision first."""
    uid = (deployment.get("metadata") or {}).get("uid", "")
    selector = selector_string((deployment.get("spec") or {}).get("selector"))
    listing = await kube.json(
        kube.apps.list_namespaced_replica_set,
        namespace,
        label_selector=selector,
        what="ReplicaSets",
    )
    owned = [rs for rs in listing.get("items") or [] if owned_by(rs, uid)]
    return sorted(owned, key=lambda rs: (rs_revision(rs), created(rs)), reverse=True)
