"""Kubernetes runbook actions (playbook: restart service, scale, roll back, resources, logs,
``docker exec``, recent deployments, one-off jobs).

The step logic only: waiting budgets, findings, messages and the exec allowlist. Every API
call goes through the workload adapters (``adapters.rollouts``, ``rollout_changes``,
``pods``, ``jobs``, ``events``) with the operator's one
:class:`~incident_operator.adapters.client.KubeClient` (``ctx.clients["kubernetes"]``); their
errors (``KubeError``, ``WorkloadError``) become :class:`ActionError` here.

Changes (restart, scale, rollback, resources) wait for the rollout when ``wait`` is true,
within the step's timeout: a rollout that does not complete in time is a failed step whose
findings show how far it got.
"""

from __future__ import annotations

import datetime as dt

from ..adapters import events as kube_events
from ..adapters import rollout_changes, rollouts
from ..durations import format_duration
from ..models.actions import (
    RecentRollouts,
    RestartWorkload,
    RollbackDeployment,
    ScaleWorkload,
    SetResources,
    WarningEvents,
    WorkloadStatus,
)
from .base import (
    ActionContext,
    ActionError,
    StepResult,
    duration_param,
    executor,
    table,
)
from .kube_common import (
    Budget,
    Findings,
    after_change,
    api_errors,
    kube_client,
    plural,
    summary_findings,
    utc_text,
    workload_ref,
)

# --- changes ----------------------------------------------------------------------------------


@executor(RestartWorkload)
async def restart_workload(action: RestartWorkload, ctx: ActionContext) -> StepResult:
    kube, budget = kube_client(ctx), Budget(ctx)
    kind, name = workload_ref(action.workload)
    with api_errors():
        stamp = await rollout_changes.restart(kube, ctx.namespace, kind, name)
    return await after_change(
        kube,
        ctx,
        budget,
        kind,
        name,
        action.wait,
        f"Restarted {kind} {name}",
        {"restartedAt": stamp},
    )


@executor(ScaleWorkload)
async def scale_workload(action: ScaleWorkload, ctx: ActionContext) -> StepResult:
    kube, budget = kube_client(ctx), Budget(ctx)
    kind, name = workload_ref(action.workload)
    with api_errors():
        previous = await rollout_changes.scale(kube, ctx.namespace, kind, name, action.replicas)
    did = (
        f"{kind} {name} already had {action.replicas} replicas"
        if previous == action.replicas
        else f"Scaled {kind} {name} from {previous} to {action.replicas} replicas"
    )
    return await after_change(
        kube, ctx, budget, kind, name, action.wait, did, {"previousReplicas": previous}
    )


@executor(RollbackDeployment)
async def rollback_deployment(action: RollbackDeployment, ctx: ActionContext) -> StepResult:
    kube, budget = kube_client(ctx), Budget(ctx)
    kind, name = workload_ref(action.workload)
    if kind != "Deployment":
        raise ActionError(f"rollbackDeployment needs a Deployment, not {kind} {name}")
    with api_errors():
        result = await rollout_changes.rollback(kube, ctx.namespace, name, action.to_revision)
    previous_image, image = ",".join(result.previous_images), ",".join(result.images)
    findings: Findings = {
        "fromRevision": result.from_revision,
        "toRevision": result.to_revision,
        "previousImage": previous_image,
        "skipped": result.skipped,
    }
    if result.skipped:
        with api_errors():
            summary = await rollouts.summary(kube, ctx.namespace, kind, name)
        return StepResult(
            True,
            f"Deployment {name} already runs the template of revision {result.to_revision} "
            f"(image {image}); nothing to roll back.",
            findings | summary_findings(summary),
        )
    did = (
        f"Rolled back Deployment {name} from revision {result.from_revision} "
        f"(image {previous_image}) to revision {result.to_revision} (image {image})"
    )
    return await after_change(kube, ctx, budget, kind, name, action.wait, did, findings)


@executor(SetResources)
async def set_resources(action: SetResources, ctx: ActionContext) -> StepResult:
    kube, budget = kube_client(ctx), Budget(ctx)
    kind, name = workload_ref(action.workload)
    requests = action.requests.model_dump(exclude_none=True) if action.requests else {}
    limits = action.limits.model_dump(exclude_none=True) if action.limits else {}
    if not requests and not limits:
        raise ActionError("setResources needs requests or limits to set")
    with api_errors():
        change = await rollout_changes.set_resources(
            kube, ctx.namespace, kind, name, action.container, requests, limits
        )
    findings: Findings = {"container": change.container, "changed": change.changed}
    parts = []
    for section, values in (("requests", requests), ("limits", limits)):
        for resource, value in values.items():
            key = f"{section}{resource.capitalize()}"
            old = (change.before.get(section) or {}).get(resource)
            findings[key] = str((change.after.get(section) or {}).get(resource, value))
            if old is not None:
                findings[f"previous{key[0].upper()}{key[1:]}"] = str(old)
            parts.append(f"{section} {resource}={value}" + (f" (was {old})" if old else ""))
    if change.changed:
        did = f"Set {', '.join(parts)} on container {change.container} of {kind} {name}"
    else:
        did = f"Container {change.container} of {kind} {name} already had {', '.join(parts)}"
    return await after_change(kube, ctx, budget, kind, name, action.wait, did, findings)


# --- diagnostics ------------------------------------------------------------------------------


@executor(WorkloadStatus)
async def workload_status(action: WorkloadStatus, ctx: ActionContext) -> StepResult:
    """Fails (a finding of the diagnosis) when the workload is not fully ready and available,
    or a condition reports a failure."""
    kube = kube_client(ctx)
    kind, name = workload_ref(action.workload)
    with api_errors():
        summary = await rollouts.summary(kube, ctx.namespace, kind, name)
    findings = summary_findings(summary) | {"paused": summary.paused}
    message = (
        f"{kind} {name}: {summary.ready}/{summary.replicas} ready, {summary.updated} "
        f"updated, {summary.available} available, revision {summary.revision}, image "
        f"{summary.image}"
    )
    problems = [
        f"{c.type}={c.status} ({c.reason}: {c.message})".replace(" (: )", "")
        for c in summary.conditions
        if (c.type == "ReplicaFailure" and c.status == "True")
        or (c.type in ("Available", "Progressing") and c.status == "False")
    ]
    if not summary.rollout_done:
        message += f"; rollout in progress: {summary.rollout_message}"
    if summary.paused:
        message += "; paused"
    if problems:
        message += "; " + "; ".join(problems)
    output = (
        table(
            ["CONDITION", "STATUS", "REASON", "MESSAGE"],
            [[c.type, c.status, c.reason, c.message[:80]] for c in summary.conditions],
        )
        if summary.conditions
        else None
    )
    return StepResult(summary.healthy, message[:1000] + ".", findings, output)


@executor(RecentRollouts)
async def recent_rollouts(action: RecentRollouts, ctx: ActionContext) -> StepResult:
    """Revisions created within the window (informational: the step does not fail)."""
    kube = kube_client(ctx)
    kind, name = workload_ref(action.workload)
    window = duration_param(action.window)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=window)
    with api_errors():
        history = await rollouts.rollouts(kube, ctx.namespace, kind, name)
    recent = [r for r in history if r.created >= since]
    findings: Findings = {"rollouts": len(recent), "revisions": len(history)}
    if history:
        findings["latestRevision"] = history[0].revision
        findings["image"] = ",".join(history[0].images)
    if len(history) > 1:
        findings["previousImage"] = ",".join(history[1].images)
    if not recent:
        message = f"No rollout of {kind} {name} in the last {action.window}"
    else:
        latest = recent[0]
        age = (dt.datetime.now(dt.UTC) - latest.created).total_seconds()
        findings["latestAgeSeconds"] = round(max(0.0, age), 1)
        message = (
            f"{plural(len(recent), 'rollout')} of {kind} {name} in the last "
            f"{action.window}; the latest, revision {latest.revision} created "
            f"{format_duration(round(max(0.0, age)))} ago, runs "
            f"{','.join(latest.images)}"
        )
        if "previousImage" in findings:
            message += f" (before: {findings['previousImage']})"
    output = (
        table(
            ["REVISION", "NAME", "CREATED", "REPLICAS", "IMAGES"],
            [
                [r.revision, r.name, utc_text(r.created), r.replicas, ",".join(r.images)]
                for r in recent
            ],
        )
        if recent
        else None
    )
    return StepResult(True, message + ".", findings, output)


@executor(WarningEvents)
async def warning_events(action: WarningEvents, ctx: ActionContext) -> StepResult:
    """Warning events of the workload, its ReplicaSets and pods within the window
    (informational: a step condition on the ``warnings`` finding decides what follows)."""
    kube = kube_client(ctx)
    kind, name = workload_ref(action.workload)
    window = duration_param(action.window)
    with api_errors():
        events = await kube_events.warning_events(kube, ctx.namespace, kind, name, window)
    findings: Findings = {"warnings": len(events), "occurrences": sum(e.count for e in events)}
    if not events:
        return StepResult(
            True,
            f"No Warning events for {kind} {name} or its pods in the last {action.window}.",
            findings,
        )
    latest = events[0]
    findings["latestReason"] = latest.reason
    reasons = sorted({e.reason for e in events})
    message = (
        f"{plural(len(events), 'Warning event')} for {kind} {name} and its pods in the "
        f"last {action.window} ({', '.join(reasons)}); latest: {latest.reason} on "
        f"{latest.kind} {latest.name}: {latest.message[:200]}"
    )
    output = table(
        ["LAST SEEN", "OBJECT", "REASON", "COUNT", "MESSAGE"],
        [
            [utc_text(e.time), f"{e.kind}/{e.name}", e.reason, e.count, e.message[:100]]
            for e in events
        ],
    )
    return StepResult(True, message + ".", findings, output)
