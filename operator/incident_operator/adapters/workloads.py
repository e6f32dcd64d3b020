"""Deployments, StatefulSets, their pods and one-off Jobs, for the Kubernetes runbook actions.

What ``kubectl rollout restart|status|undo``, ``kubectl scale``, ``kubectl set resources``,
``kubectl logs``, ``kubectl exec`` and ``kubectl create job`` do, as async methods. The
official client is synchronous: every call runs in a worker thread (``asyncio.to_thread``)
with a per-request timeout, and objects are read and written as plain JSON (``dict``), so
fields this client version does not know survive a read-modify-write.

Every failure is a :class:`WorkloadError` whose message is safe to show in an Incident's
status: it names objects and API reasons, never request bodies or secret values.

Writes are patches (typed ``create``/``replace`` bodies would pass through this client's
models, which drop fields they do not know), except Job creation.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import datetime as dt
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

log = logging.getLogger(__name__)

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"
INCIDENT_LABEL = "incidents.dev/incident"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "incident-operator"
KINDS = ("Deployment", "StatefulSet")

REQUEST_TIMEOUT = 30.0
POLL_INTERVAL = 0.5
JOB_TTL_SECONDS = 600
JOB_LOG_LINES = 50
MAX_CONFLICT_RETRIES = 5

JSON = dict[str, Any]


# --- errors -----------------------------------------------------------------------------------


class WorkloadError(Exception):
    """The request could not be carried out; the message is safe to show in status."""


class WorkloadNotFound(WorkloadError):
    pass


class NoReadyPod(WorkloadError):
    """The workload has no Ready pod (yet): logs and exec have nothing to talk to."""


class NoPreviousRevision(WorkloadError):
    pass


class RolloutFailed(WorkloadError):
    """The rollout cannot complete (e.g. its progress deadline was exceeded)."""


class RolloutTimeout(WorkloadError):
    """The rollout did not complete in time; ``summary`` is the last state seen."""

    def __init__(self, message: str, summary: WorkloadSummary) -> None:
        super().__init__(message)
        self.summary = summary


# --- results ----------------------------------------------------------------------------------


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


@dataclasses.dataclass(frozen=True)
class WarningEvent:
    time: dt.datetime
    kind: str
    name: str
    reason: str
    message: str
    count: int


@dataclasses.dataclass(frozen=True)
class PodLog:
    pod: str
    container: str | None
    text: str


@dataclasses.dataclass(frozen=True)
class ExecResult:
    pod: str
    container: str | None
    stdout: str
    stderr: str
    exit_code: int | None
    """``None`` when the command did not run to an exit status (see ``error``)."""
    error: str | None
    timed_out: bool


@dataclasses.dataclass(frozen=True)
class JobEnv:
    """One environment variable of a Job: a literal value or a reference to a Secret key.

    The Secret is only referenced, never read: the kubelet resolves it inside the cluster.
    """

    name: str
    value: str | None = None
    secret_name: str | None = None
    secret_key: str | None = None


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


# --- helpers ----------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_time(value: str | None) -> dt.datetime | None:
    """A Kubernetes Time or MicroTime (RFC 3339) as an aware datetime."""
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _status_message(exc: ApiException) -> str:
    """The ``message`` of the API server's Status, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:512]
    return str(exc.reason or f"HTTP {exc.status}")


def _check_kind(kind: str) -> str:
    value = str(kind)
    if value not in KINDS:
        raise WorkloadError(
            f"unsupported workload kind {value!r} (expected Deployment or StatefulSet)"
        )
    return value


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


def _conditions(obj: Mapping[str, Any]) -> list[ConditionSummary]:
    return [
        ConditionSummary(
            type=str(c.get("type", "")),
            status=str(c.get("status", "")),
            reason=str(c.get("reason", "")),
            message=str(c.get("message", "")),
        )
        for c in (obj.get("status") or {}).get("conditions") or []
    ]


def rollout_state(kind: str, obj: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the rollout is complete, and why not, the way ``kubectl rollout status`` tells.

    Complete means: the controller has observed the latest generation, every desired
    replica is updated and available (Deployment) or ready and on the update revision
    (StatefulSet), and no replica beyond the desired count is left (scale-down done).
    Raises :class:`RolloutFailed` when the Deployment's progress deadline was exceeded.
    """
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    name = meta.get("name", "?")
    generation = int(meta.get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if observed < generation:
        return False, f"waiting for the {kind} controller to observe generation {generation}"
    if kind == "Deployment":
        for cond in status.get("conditions") or []:
            if (
                cond.get("type") == "Progressing"
                and cond.get("reason") == "ProgressDeadlineExceeded"
            ):
                raise RolloutFailed(
                    f"rollout of Deployment {name} exceeded its progress "
                    f"deadline: {cond.get('message', '')}".rstrip(": ")
                )
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
    ready = int(status.get("readyReplicas") or 0)
    if ready < desired:
        return False, f"{ready} of {desired} pods are ready"
    current = int(status.get("replicas") or 0)
    if current > desired:
        return False, f"{current - desired} extra pods are pending termination"
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return True, f"{ready}/{desired} pods ready (OnDelete: pods update when deleted)"
    rolling = strategy.get("rollingUpdate") or {}
    partition = int(rolling.get("partition") or 0)
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


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _created(obj: Mapping[str, Any]) -> dt.datetime:
    created = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    return created or dt.datetime.min.replace(tzinfo=dt.UTC)


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(
        ref.get("uid") == uid and ref.get("controller")
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


def label_value(text: str) -> str:
    """``text`` as a valid label value (63 characters, alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def exec_exit_status(raw: str) -> tuple[int | None, str | None]:
    """The exit code from the exec error channel (a ``metav1.Status``), or why there is none.

    The kubelet reports a non-zero exit as reason ``NonZeroExitCode`` with an ``ExitCode``
    cause; kwok's exec simulation reports it as an internal error ending in "exit status N".
    """
    if not raw.strip():
        return None, "the exec stream closed without reporting an exit status"
    try:
        status = json.loads(raw)
    except ValueError:
        return None, f"unreadable exec status: {raw[:200]}"
    if status.get("status") == "Success":
        return 0, None
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message", "")), None
            except ValueError:
                break
    message = str(status.get("message") or status.get("reason") or "exec failed")
    found = re.search(r"exit (?:status|code) (\d+)\s*$", message)
    if found:
        return int(found.group(1)), None
    return None, message[:512]


# --- the adapter ------------------------------------------------------------------------------


class Workloads:
    """Kubernetes workload operations; created once at start-up from the shared ApiClient."""

    def __init__(
        self, api_client: kubernetes.client.ApiClient, request_timeout: float = REQUEST_TIMEOUT
    ) -> None:
        self.api_client = api_client
        self.apps = kubernetes.client.AppsV1Api(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.batch = kubernetes.client.BatchV1Api(api_client)
        self.request_timeout = request_timeout

    # -- plumbing ------------------------------------------------------------------------------

    async def _call(
        self, func: Callable[..., Any], *args: Any, what: str = "", **kwargs: Any
    ) -> Any:
        """One API call in a worker thread; API errors become WorkloadError."""
        kwargs.setdefault("_request_timeout", self.request_timeout)
        try:
            return await asyncio.to_thread(func, *args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise WorkloadNotFound(f"{what or 'object'} not found") from None
            if exc.status == 409:
                raise _Conflict(_status_message(exc)) from None
            prefix = f"{what}: " if what else ""
            if exc.status == 403:
                raise WorkloadError(f"{prefix}forbidden: {_status_message(exc)}") from None
            if exc.status == 422:
                raise WorkloadError(f"{prefix}invalid: {_status_message(exc)}") from None
            raise WorkloadError(
                f"{prefix}Kubernetes API error {exc.status}: {_status_message(exc)}"
            ) from None
        except (
            OSError,
            urllib3.exceptions.HTTPError,
            kubernetes.client.exceptions.OpenApiException,
        ) as exc:
            raise WorkloadError(
                f"{what or 'Kubernetes API'}: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None

    async def _json(
        self, func: Callable[..., Any], *args: Any, what: str = "", **kwargs: Any
    ) -> JSON:
        response = await self._call(func, *args, what=what, _preload_content=False, **kwargs)
        body: JSON = json.loads(response.data or b"{}")
        return body

    def _workload_api(self, kind: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """(read, patch) of the kind."""
        if _check_kind(kind) == "Deployment":
            return self.apps.read_namespaced_deployment, self.apps.patch_namespaced_deployment
        return self.apps.read_namespaced_stateful_set, self.apps.patch_namespaced_stateful_set

    async def get(self, namespace: str, kind: str, name: str) -> JSON:
        """The workload as JSON."""
        read, _ = self._workload_api(kind)
        return await self._json(read, name, namespace, what=f"{kind} {namespace}/{name}")

    async def _patch(
        self,
        namespace: str,
        kind: str,
        name: str,
        body: Any,
        content_type: str = "application/strategic-merge-patch+json",
    ) -> JSON:
        _, patch = self._workload_api(kind)
        return await self._json(
            patch,
            name,
            namespace,
            body,
            _content_type=content_type,
            what=f"{kind} {namespace}/{name}",
        )

    # -- status --------------------------------------------------------------------------------

    async def summary(
        self, namespace: str, kind: str, name: str, obj: JSON | None = None
    ) -> WorkloadSummary:
        """Replicas, readiness, conditions, images and revision (``kubectl get -o wide``)."""
        kind = _check_kind(kind)
        obj = obj if obj is not None else await self.get(namespace, kind, name)
        return await self._summarise(namespace, kind, obj)

    async def _summarise(self, namespace: str, kind: str, obj: JSON) -> WorkloadSummary:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        status = obj.get("status") or {}
        try:
            done, message = rollout_state(kind, obj)
        except RolloutFailed as exc:
            done, message = False, str(exc)
        if kind == "Deployment":
            revision = _int((meta.get("annotations") or {}).get(REVISION))
        else:
            revision = await self._controller_revision_number(
                namespace, str(status.get("updateRevision") or "")
            )
        desired = spec.get("replicas")
        return WorkloadSummary(
            kind=kind,
            name=str(meta.get("name", "")),
            replicas=int(desired if desired is not None else 1),
            current=int(status.get("replicas") or 0),
            ready=int(status.get("readyReplicas") or 0),
            updated=int(status.get("updatedReplicas") or 0),
            available=int(status.get("availableReplicas") or 0),
            images=template_images(spec.get("template")),
            revision=revision,
            conditions=_conditions(obj),
            generation=int(meta.get("generation") or 0),
            observed_generation=int(status.get("observedGeneration") or 0),
            paused=bool(spec.get("paused")),
            rollout_done=done,
            rollout_message=message,
        )

    async def _controller_revision_number(self, namespace: str, name: str) -> int:
        if not name:
            return 0
        try:
            revision = await self._json(
                self.apps.read_namespaced_controller_revision,
                name,
                namespace,
                what=f"ControllerRevision {name}",
            )
        except WorkloadNotFound:
            return 0
        return _int(revision.get("revision"))

    async def wait_for_rollout(
        self, namespace: str, kind: str, name: str, timeout: float
    ) -> WorkloadSummary:
        """Poll until the rollout is complete (see :func:`rollout_state`).

        Raises :class:`RolloutTimeout` (with the last summary) after ``timeout`` seconds and
        :class:`RolloutFailed` when the Deployment's progress deadline is exceeded.
        """
        kind = _check_kind(kind)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            obj = await self.get(namespace, kind, name)
            done, message = rollout_state(kind, obj)
            if done:
                return await self._summarise(namespace, kind, obj)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                summary = await self._summarise(namespace, kind, obj)
                raise RolloutTimeout(
                    f"rollout of {kind} {name} did not complete within {timeout:g}s: {message}",
                    summary,
                )
            await asyncio.sleep(min(POLL_INTERVAL, remaining))

    # -- changes -------------------------------------------------------------------------------

    async def restart(
        self, namespace: str, kind: str, name: str, now: dt.datetime | None = None
    ) -> str:
        """``kubectl rollout restart``: stamp the pod template; returns the stamp."""
        kind = _check_kind(kind)
        obj = await self.get(namespace, kind, name)
        if (obj.get("spec") or {}).get("paused"):
            raise WorkloadError(f"cannot restart paused {kind} {name} (resume it first)")
        annotations = ((obj["spec"].get("template") or {}).get("metadata") or {}).get(
            "annotations"
        ) or {}
        when = (now or _now()).astimezone(dt.UTC)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        if annotations.get(RESTARTED_AT) == stamp:
            # a second restart within the same second must still change the template
            stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        await self._patch(
            namespace,
            kind,
            name,
            {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}},
        )
        return stamp

    async def scale(self, namespace: str, kind: str, name: str, replicas: int) -> int:
        """``kubectl scale``; returns the previous desired replicas."""
        kind = _check_kind(kind)
        if kind == "Deployment":
            read, patch = (
                self.apps.read_namespaced_deployment_scale,
                self.apps.patch_namespaced_deployment_scale,
            )
        else:
            read, patch = (
                self.apps.read_namespaced_stateful_set_scale,
                self.apps.patch_namespaced_stateful_set_scale,
            )
        what = f"{kind} {namespace}/{name}"
        current = await self._json(read, name, namespace, what=what)
        previous = int((current.get("spec") or {}).get("replicas") or 0)
        await self._json(
            patch,
            name,
            namespace,
            {"spec": {"replicas": int(replicas)}},
            _content_type="application/merge-patch+json",
            what=what,
        )
        return previous

    async def replica_sets(self, namespace: str, deployment: JSON) -> list[JSON]:
        """The ReplicaSets controlled by ``deployment``, newest revision first."""
        uid = (deployment.get("metadata") or {}).get("uid", "")
        selector = selector_string((deployment.get("spec") or {}).get("selector"))
        listing = await self._json(
            self.apps.list_namespaced_replica_set,
            namespace,
            label_selector=selector,
            what="ReplicaSets",
        )
        owned = [rs for rs in listing.get("items") or [] if _owned_by(rs, uid)]
        return sorted(owned, key=lambda rs: (_rs_revision(rs), _created(rs)), reverse=True)

    async def rollback(
        self, namespace: str, name: str, to_revision: int | None = None
    ) -> RollbackResult:
        """``kubectl rollout undo``: the Deployment gets the pod template of an older revision.

        The target is ``to_revision``, or the highest revision below the current one that runs
        other images (the highest below the current one if none does). The
        template is copied from that revision's ReplicaSet without its pod-template-hash
        label; the Deployment controller then adopts that ReplicaSet again under a new
        revision number. The patch carries the resourceVersion it was based on and is
        redone on a conflict.
        """
        what = f"Deployment {namespace}/{name}"
        for _ in range(MAX_CONFLICT_RETRIES):
            deployment = await self.get(namespace, "Deployment", name)
            spec = deployment.get("spec") or {}
            if spec.get("paused"):
                raise WorkloadError(f"cannot roll back paused Deployment {name} (resume it first)")
            current = _int(
                ((deployment.get("metadata") or {}).get("annotations") or {}).get(REVISION)
            )
            by_revision = {
                _rs_revision(rs): rs for rs in await self.replica_sets(namespace, deployment)
            }
            if to_revision is None:
                older = (
                    [r for r in by_revision if 0 < r < current]
                    if current
                    else sorted(by_revision)[:-1]
                )
                if not older:
                    raise NoPreviousRevision(
                        f"no previous revision of Deployment {name} to roll back to (revision "
                        f"{current or 'unknown'} is the only one kept)"
                    )
                # The newest older revision that runs other images: after a restart of a bad
                # build, "previous" is the same bad build, and undoing to it fixes nothing.
                current_images = template_images(spec.get("template"))
                different = [
                    r
                    for r in older
                    if template_images((by_revision[r].get("spec") or {}).get("template"))
                    != current_images
                ]
                target = max(different or older)
            else:
                if to_revision not in by_revision:
                    known = ", ".join(map(str, sorted(r for r in by_revision if r))) or "none"
                    raise WorkloadError(
                        f"revision {to_revision} of Deployment {name} not found "
                        f"(revisions kept: {known})"
                    )
                target = to_revision
            template = copy.deepcopy((by_revision[target].get("spec") or {}).get("template") or {})
            labels = (template.get("metadata") or {}).get("labels")
            if labels:
                labels.pop(POD_TEMPLATE_HASH, None)
            before = template_images(spec.get("template"))
            if _same_template(spec.get("template"), template):
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
            try:
                await self._patch(
                    namespace, "Deployment", name, patch, content_type="application/json-patch+json"
                )
            except _Conflict:
                continue
            return RollbackResult(current, target, before, template_images(template), skipped=False)
        raise WorkloadError(f"{what} kept changing; rollback not applied")

    async def set_resources(
        self,
        namespace: str,
        kind: str,
        name: str,
        container: str | None,
        requests: Mapping[str, str],
        limits: Mapping[str, str],
    ) -> ResourceChange:
        """``kubectl set resources``: a strategic merge patch of one container's resources
        (``container``, else the first one); other resource keys are kept."""
        kind = _check_kind(kind)
        obj = await self.get(namespace, kind, name)
        containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "containers"
        ) or []
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
        patched = await self._patch(
            namespace,
            kind,
            name,
            {
                "spec": {
                    "template": {"spec": {"containers": [{"name": chosen, "resources": resources}]}}
                }
            },
        )
        after_containers = patched["spec"]["template"]["spec"]["containers"]
        after = next(
            (c.get("resources") or {} for c in after_containers if c.get("name") == chosen), {}
        )
        return ResourceChange(chosen, before, after)

    # -- history and events --------------------------------------------------------------------

    async def rollouts(self, namespace: str, kind: str, name: str) -> list[Rollout]:
        """Every revision kept: ReplicaSets of a Deployment, ControllerRevisions of a
        StatefulSet; newest revision first."""
        kind = _check_kind(kind)
        obj = await self.get(namespace, kind, name)
        if kind == "Deployment":
            return [
                Rollout(
                    revision=_rs_revision(rs),
                    name=str(rs["metadata"]["name"]),
                    created=_created(rs),
                    images=template_images((rs.get("spec") or {}).get("template")),
                    replicas=int((rs.get("status") or {}).get("replicas") or 0),
                )
                for rs in await self.replica_sets(namespace, obj)
            ]
        uid = obj["metadata"]["uid"]
        selector = selector_string((obj.get("spec") or {}).get("selector"))
        listing = await self._json(
            self.apps.list_namespaced_controller_revision,
            namespace,
            label_selector=selector,
            what="ControllerRevisions",
        )
        status = obj.get("status") or {}
        found = []
        for rev in listing.get("items") or []:
            if not _owned_by(rev, uid):
                continue
            rev_name = str(rev["metadata"]["name"])
            data = rev.get("data") or {}
            images = template_images((data.get("spec") or {}).get("template"))
            replicas = (
                int(status.get("currentReplicas") or 0)
                if rev_name == status.get("currentRevision")
                else 0
            )
            if rev_name == status.get("updateRevision") and rev_name != status.get(
                "currentRevision"
            ):
                replicas = int(status.get("updatedReplicas") or 0)
            found.append(
                Rollout(_int(rev.get("revision")), rev_name, _created(rev), images, replicas)
            )
        return sorted(found, key=lambda r: r.revision, reverse=True)

    async def recent_rollouts(
        self, namespace: str, kind: str, name: str, window_s: float, now: dt.datetime | None = None
    ) -> list[Rollout]:
        """Revisions created within the last ``window_s`` seconds, newest first.

        A rollback re-uses an older ReplicaSet, whose creation time is older: it counts when
        that ReplicaSet was first created.
        """
        since = (now or _now()) - dt.timedelta(seconds=window_s)
        return [r for r in await self.rollouts(namespace, kind, name) if r.created >= since]

    async def warning_events(
        self, namespace: str, kind: str, name: str, window_s: float, now: dt.datetime | None = None
    ) -> list[WarningEvent]:
        """Warning events last seen within the window on the workload, its ReplicaSets and
        its pods (including pods already gone), newest first."""
        kind = _check_kind(kind)
        obj = await self.get(namespace, kind, name)
        since = (now or _now()) - dt.timedelta(seconds=window_s)
        if kind == "Deployment":
            rs_names = {
                str(rs["metadata"]["name"]) for rs in await self.replica_sets(namespace, obj)
            }
            pod_pattern = (
                re.compile(
                    "^(" + "|".join(re.escape(n) for n in sorted(rs_names)) + r")-[a-z0-9]+$"
                )
                if rs_names
                else None
            )
        else:
            rs_names = set()
            pod_pattern = re.compile("^" + re.escape(name) + r"-[0-9]+$")

        def involved(ref: Mapping[str, Any]) -> bool:
            ref_kind, ref_name = ref.get("kind"), str(ref.get("name", ""))
            if ref_kind == kind:
                return ref_name == name
            if ref_kind == "ReplicaSet":
                return ref_name in rs_names
            if ref_kind == "Pod":
                return bool(pod_pattern and pod_pattern.match(ref_name))
            return False

        listing = await self._json(
            self.core.list_namespaced_event, namespace, field_selector="type=Warning", what="Events"
        )
        found = []
        for event in listing.get("items") or []:
            ref = event.get("involvedObject") or {}
            if not involved(ref):
                continue
            seen = _event_time(event)
            if seen < since:
                continue
            found.append(
                WarningEvent(
                    time=seen,
                    kind=str(ref.get("kind", "")),
                    name=str(ref.get("name", "")),
                    reason=str(event.get("reason", "")),
                    message=str(event.get("message", ""))[:512],
                    count=int(event.get("count") or (event.get("series") or {}).get("count") or 1),
                )
            )
        return sorted(found, key=lambda e: e.time, reverse=True)

    # -- pods ----------------------------------------------------------------------------------

    async def pods(self, namespace: str, kind: str, name: str) -> list[JSON]:
        """The workload's pods (by its selector), newest first."""
        obj = await self.get(namespace, kind, name)
        selector = selector_string((obj.get("spec") or {}).get("selector"))
        listing = await self._json(
            self.core.list_namespaced_pod, namespace, label_selector=selector, what="Pods"
        )
        items: list[JSON] = listing.get("items") or []
        return sorted(items, key=lambda p: (_created(p), p["metadata"]["name"]), reverse=True)

    async def newest_ready_pod(self, namespace: str, kind: str, name: str) -> JSON:
        pods = await self.pods(namespace, kind, name)
        for pod in pods:
            if _pod_ready(pod):
                return pod
        raise NoReadyPod(f"{kind} {name} has no Ready pod ({len(pods)} pods found)")

    @staticmethod
    def _container(pod: JSON, container: str | None) -> str | None:
        names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
        if container is not None and container not in names:
            raise WorkloadError(
                f"pod {pod['metadata']['name']} has no container {container} "
                f"(containers: {', '.join(names)})"
            )
        return container

    async def pod_logs(
        self, namespace: str, kind: str, name: str, tail_lines: int, container: str | None = None
    ) -> PodLog:
        """The last ``tail_lines`` log lines of the newest Ready pod (``kubectl logs --tail``)."""
        pod = await self.newest_ready_pod(namespace, kind, name)
        pod_name = str(pod["metadata"]["name"])
        container = self._container(pod, container)
        text = await self._log_text(namespace, pod_name, tail_lines, container)
        return PodLog(pod_name, container, text)

    async def _log_text(
        self, namespace: str, pod: str, tail_lines: int, container: str | None
    ) -> str:
        kwargs: JSON = {"tail_lines": int(tail_lines)}
        if container:
            kwargs["container"] = container
        response = await self._call(
            self.core.read_namespaced_pod_log,
            pod,
            namespace,
            _preload_content=False,
            what=f"logs of pod {pod}",
            **kwargs,
        )
        data: bytes = response.data or b""
        return data.decode("utf-8", "replace")

    async def exec(
        self,
        namespace: str,
        kind: str,
        name: str,
        command: Sequence[str],
        container: str | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        """``kubectl exec`` in the newest Ready pod: stdout, stderr and the exit status.

        ``kubernetes.stream`` swaps the transport of the ApiClient it is given while the call
        runs, so every exec uses a private ApiClient built from the shared configuration.
        """
        pod = await self.newest_ready_pod(namespace, kind, name)
        pod_name = str(pod["metadata"]["name"])
        container = self._container(pod, container)
        return await asyncio.to_thread(
            self._exec_sync, namespace, pod_name, list(command), container, timeout
        )

    def _exec_sync(
        self, namespace: str, pod: str, command: list[str], container: str | None, timeout: float
    ) -> ExecResult:
        kwargs: JSON = {
            "command": command,
            "stdin": False,
            "stdout": True,
            "stderr": True,
            "tty": False,
            "_preload_content": False,
        }
        if container:
            kwargs["container"] = container
        with kubernetes.client.ApiClient(self.api_client.configuration) as private:
            core = kubernetes.client.CoreV1Api(private)
            try:
                client = stream(core.connect_get_namespaced_pod_exec, pod, namespace, **kwargs)
            except ApiException as exc:
                raise WorkloadError(f"exec in pod {pod}: {_status_message(exc)}") from None
            except Exception as exc:  # websocket errors have no common base class
                raise WorkloadError(
                    f"exec in pod {pod}: {type(exc).__name__}: {str(exc)[:200]}"
                ) from None
            try:
                client.run_forever(timeout=max(0.1, timeout))
                timed_out = client.is_open()
                stdout = client.read_stdout() if client.peek_stdout() else ""
                stderr = client.read_stderr() if client.peek_stderr() else ""
                raw_status = "" if timed_out else str(client.read_channel(3) or "")
            finally:
                client.close()
        if timed_out:
            return ExecResult(
                pod,
                container,
                stdout,
                stderr,
                None,
                f"command still running after {timeout:g}s",
                True,
            )
        exit_code, error = exec_exit_status(raw_status)
        return ExecResult(pod, container, stdout, stderr, exit_code, error, False)

    # -- jobs ----------------------------------------------------------------------------------

    def job_body(
        self,
        name: str,
        incident: str,
        image: str,
        command: Sequence[str],
        env: Sequence[JobEnv],
        backoff_limit: int,
        active_deadline_s: int,
    ) -> JSON:
        """The Job manifest: one container, never restarted, labelled with the incident."""
        env_list: list[JSON] = []
        for var in env:
            if var.secret_name is not None and var.secret_key is not None:
                env_list.append(
                    {
                        "name": var.name,
                        "valueFrom": {
                            "secretKeyRef": {"name": var.secret_name, "key": var.secret_key}
                        },
                    }
                )
            else:
                env_list.append({"name": var.name, "value": var.value or ""})
        labels = {INCIDENT_LABEL: label_value(incident) or "unknown", MANAGED_BY_LABEL: MANAGED_BY}
        container: JSON = {"name": "job", "image": image, "command": list(command)}
        if env_list:
            container["env"] = env_list
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
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": False,
                        "containers": [container],
                    },
                },
            },
        }

    async def create_job(
        self,
        namespace: str,
        incident: str,
        image: str,
        command: Sequence[str],
        env: Sequence[JobEnv] = (),
        backoff_limit: int = 0,
        active_deadline_s: int = 600,
    ) -> str:
        """Create the Job; returns its name (``<incident>-job-<random>``)."""
        prefix = re.sub(r"[^a-z0-9-]+", "-", incident.lower())[:40].strip("-") or "incident"
        name = f"{prefix}-job-{secrets.token_hex(3)}"
        body = self.job_body(name, incident, image, command, env, backoff_limit, active_deadline_s)
        await self._json(
            self.batch.create_namespaced_job, namespace, body, what=f"Job {namespace}/{name}"
        )
        return name

    async def wait_for_job(
        self, namespace: str, name: str, timeout: float
    ) -> tuple[bool | None, str, str]:
        """(succeeded, reason, message) once the Job is Complete or Failed; succeeded is
        ``None`` when it is neither after ``timeout`` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            job = await self._json(
                self.batch.read_namespaced_job_status,
                name,
                namespace,
                what=f"Job {namespace}/{name}",
            )
            for cond in (job.get("status") or {}).get("conditions") or []:
                if cond.get("status") != "True":
                    continue
                if cond.get("type") == "Complete":
                    return (
                        True,
                        str(cond.get("reason") or "Complete"),
                        str(cond.get("message") or ""),
                    )
                if cond.get("type") == "Failed":
                    return (
                        False,
                        str(cond.get("reason") or "Failed"),
                        str(cond.get("message") or ""),
                    )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                status = job.get("status") or {}
                counts = ", ".join(
                    f"{what} {status.get(what) or 0}" for what in ("active", "succeeded", "failed")
                )
                return None, "Timeout", counts
            await asyncio.sleep(min(POLL_INTERVAL, remaining))

    async def job_log(
        self, namespace: str, name: str, tail_lines: int = JOB_LOG_LINES
    ) -> tuple[str | None, int | None, str]:
        """(pod, exit code, log tail) of the Job's newest pod; empty when there is none."""
        listing: JSON = {}
        for label in ("batch.kubernetes.io/job-name", "job-name"):
            listing = await self._json(
                self.core.list_namespaced_pod,
                namespace,
                label_selector=f"{label}={name}",
                what="Pods",
            )
            if listing.get("items"):
                break
        pods = sorted(listing.get("items") or [], key=_created, reverse=True)
        if not pods:
            return None, None, ""
        pod = pods[0]
        pod_name = str(pod["metadata"]["name"])
        exit_code = None
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated")
            if terminated is not None:
                exit_code = _int(terminated.get("exitCode"))
        try:
            text = await self._log_text(namespace, pod_name, tail_lines, None)
        except WorkloadError as exc:
            text = f"(no log: {exc})"
        return pod_name, exit_code, text

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete the Job and (in the background) its pods; a missing Job is fine."""
        with contextlib.suppress(WorkloadNotFound):
            await self._call(
                self.batch.delete_namespaced_job,
                name,
                namespace,
                propagation_policy="Background",
                what=f"Job {namespace}/{name}",
            )

    async def run_job(
        self,
        namespace: str,
        incident: str,
        image: str,
        command: Sequence[str],
        env: Sequence[JobEnv] = (),
        backoff_limit: int = 0,
        timeout: float = 600.0,
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
        name = await self.create_job(
            namespace, incident, image, command, env, backoff_limit, deadline_s
        )
        try:
            succeeded, reason, message = await self.wait_for_job(namespace, name, timeout - margin)
            pod, exit_code, tail = await self.job_log(namespace, name)
        finally:
            try:
                await asyncio.shield(self.delete_job(namespace, name))
            except WorkloadError as exc:
                log.warning("could not delete Job %s/%s: %s", namespace, name, exc)
        return JobResult(
            name=name,
            succeeded=bool(succeeded),
            timed_out=succeeded is None,
            reason=reason,
            message=message[:512],
            pod=pod,
            exit_code=exit_code,
            log_tail=tail,
            seconds=time.monotonic() - started,
        )


class _Conflict(WorkloadError):
    """HTTP 409: the object changed since it was read."""


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _rs_revision(rs: Mapping[str, Any]) -> int:
    return _int(((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION))


def _event_time(event: Mapping[str, Any]) -> dt.datetime:
    for value in (
        (event.get("series") or {}).get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        (event.get("metadata") or {}).get("creationTimestamp"),
    ):
        parsed = parse_time(value)
        if parsed is not None:
            return parsed
    return dt.datetime.min.replace(tzinfo=dt.UTC)


def _same_template(current: Mapping[str, Any] | None, target: Mapping[str, Any]) -> bool:
    """Equal pod templates, ignoring the pod-template-hash label."""

    def normal(template: Mapping[str, Any] | None) -> JSON:
        body = copy.deepcopy(dict(template or {}))
        labels = (body.get("metadata") or {}).get("labels")
        if labels:
            labels.pop(POD_TEMPLATE_HASH, None)
        return body

    return normal(current) == normal(target)
