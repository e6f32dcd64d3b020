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

import contextlib
import datetime as dt
import json
import os
import re
import shlex
import time
from collections.abc import Iterator, Sequence

from ..adapters import events as kube_events
from ..adapters import jobs, pods, rollout_changes, rollouts
from ..adapters.client import KubeClient, KubeError
from ..adapters.jobs import JobEnv
from ..adapters.rollouts import RolloutFailed, RolloutTimeout, WorkloadSummary
from ..adapters.workloads import WorkloadError
from ..durations import format_duration
from ..models.actions import (
    ExecInPod,
    PodLogs,
    RecentRollouts,
    RestartWorkload,
    RollbackDeployment,
    RunJob,
    ScaleWorkload,
    SetResources,
    WarningEvents,
    WorkloadKind,
    WorkloadRef,
    WorkloadStatus,
)
from .base import (
    MAX_OUTPUT,
    ActionContext,
    ActionError,
    Finding,
    StepResult,
    duration_param,
    table,
)
from .base import executor as register

ALLOWLIST_ENV = "INCIDENT_OPERATOR_EXEC_ALLOWLIST"

#: argv prefixes ``execInPod`` may run: a command is allowed when its first arguments equal
#: one of these exactly. Diagnostics of the playbook's ``docker exec`` lines, no shells.
DEFAULT_EXEC_ALLOWLIST: tuple[tuple[str, ...], ...] = (
    ("redis-cli",),
    ("psql",),
    ("pg_isready",),
    ("df", "-h"),
    ("du", "-sh"),
    ("cat",),
    ("free", "-m"),
    ("uptime",),
    ("ps", "aux"),
)

Findings = dict[str, Finding]


# --- helpers ----------------------------------------------------------------------------------


def _kube(ctx: ActionContext) -> KubeClient:
    client = ctx.clients.get("kubernetes")
    if not isinstance(client, KubeClient):
        raise ActionError("no Kubernetes client configured")
    return client


@contextlib.contextmanager
def _api_errors() -> Iterator[None]:
    """Adapter errors (API failures, requests that cannot be carried out) as step errors."""
    try:
        yield
    except (KubeError, WorkloadError) as exc:
        raise ActionError(str(exc)) from None


def _ref(workload: WorkloadRef) -> tuple[str, str]:
    kind = workload.kind.value if isinstance(workload.kind, WorkloadKind) else str(workload.kind)
    return kind, workload.name


class _Budget:
    """The time left of the step's timeout, minus a margin to report before it expires."""

    def __init__(self, ctx: ActionContext) -> None:
        self.total = ctx.timeout
        self.margin = min(2.0, ctx.timeout * 0.1)
        self.started = time.monotonic()

    def left(self) -> float:
        return max(0.5, self.total - self.margin - (time.monotonic() - self.started))


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _summary_findings(summary: WorkloadSummary) -> Findings:
    return {
        "replicas": summary.replicas,
        "readyReplicas": summary.ready,
        "updatedReplicas": summary.updated,
        "availableReplicas": summary.available,
        "revision": summary.revision,
        "image": summary.image,
        "rolledOut": summary.rollout_done,
    }


async def _after_change(
    kube: KubeClient,
    ctx: ActionContext,
    budget: _Budget,
    kind: str,
    name: str,
    wait: bool,
    did: str,
    findings: Findings,
) -> StepResult:
    """The result of a change: the rollout waited for (or not) and its state as findings."""
    with _api_errors():
        if not wait:
            summary = await rollouts.summary(kube, ctx.namespace, kind, name)
            findings |= _summary_findings(summary)
            return StepResult(True, f"{did}; not waiting for the rollout.", findings)
        try:
            summary = await rollouts.wait_for_rollout(
                kube, ctx.namespace, kind, name, budget.left()
            )
        except RolloutTimeout as exc:
            findings |= _summary_findings(exc.summary)
            return StepResult(False, f"{did}, but the {exc}.", findings)
        except RolloutFailed as exc:
            summary = await rollouts.summary(kube, ctx.namespace, kind, name)
            findings |= _summary_findings(summary)
            return StepResult(False, f"{did}, but the {exc}.", findings)
    findings |= _summary_findings(summary)
    return StepResult(
        True,
        f"{did}; rollout complete with {summary.ready}/{summary.replicas} replicas ready.",
        findings,
    )


def _tail(text: str, limit: int = MAX_OUTPUT - 64) -> str:
    """The end of ``text`` (logs are read from the bottom)."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    return "[... earlier lines cut]\n" + cut[cut.find("\n") + 1 :]


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ActionError(f"invalid pattern {pattern!r}: {exc}") from None


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- changes ----------------------------------------------------------------------------------


@register("restartWorkload")
async def restart_workload(action: RestartWorkload, ctx: ActionContext) -> StepResult:
    kube, budget = _kube(ctx), _Budget(ctx)
    kind, name = _ref(action.workload)
    with _api_errors():
        stamp = await rollout_changes.restart(kube, ctx.namespace, kind, name)
    return await _after_change(
        kube,
        ctx,
        budget,
        kind,
        name,
        action.wait,
        f"Restarted {kind} {name}",
        {"restartedAt": stamp},
    )


@register("scaleWorkload")
async def scale_workload(action: ScaleWorkload, ctx: ActionContext) -> StepResult:
    kube, budget = _kube(ctx), _Budget(ctx)
    kind, name = _ref(action.workload)
    with _api_errors():
        previous = await rollout_changes.scale(kube, ctx.namespace, kind, name, action.replicas)
    did = (
        f"{kind} {name} already had {action.replicas} replicas"
        if previous == action.replicas
        else f"Scaled {kind} {name} from {previous} to {action.replicas} replicas"
    )
    return await _after_change(
        kube, ctx, budget, kind, name, action.wait, did, {"previousReplicas": previous}
    )


@register("rollbackDeployment")
async def rollback_deployment(action: RollbackDeployment, ctx: ActionContext) -> StepResult:
    kube, budget = _kube(ctx), _Budget(ctx)
    kind, name = _ref(action.workload)
    if kind != "Deployment":
        raise ActionError(f"rollbackDeployment needs a Deployment, not {kind} {name}")
    with _api_errors():
        result = await rollout_changes.rollback(kube, ctx.namespace, name, action.to_revision)
    previous_image, image = ",".join(result.previous_images), ",".join(result.images)
    findings: Findings = {
        "fromRevision": result.from_revision,
        "toRevision": result.to_revision,
        "previousImage": previous_image,
        "skipped": result.skipped,
    }
    if result.skipped:
        with _api_errors():
            summary = await rollouts.summary(kube, ctx.namespace, kind, name)
        return StepResult(
            True,
            f"Deployment {name} already runs the template of revision {result.to_revision} "
            f"(image {image}); nothing to roll back.",
            findings | _summary_findings(summary),
        )
    did = (
        f"Rolled back Deployment {name} from revision {result.from_revision} "
        f"(image {previous_image}) to revision {result.to_revision} (image {image})"
    )
    return await _after_change(kube, ctx, budget, kind, name, action.wait, did, findings)


@register("setResources")
async def set_resources(action: SetResources, ctx: ActionContext) -> StepResult:
    kube, budget = _kube(ctx), _Budget(ctx)
    kind, name = _ref(action.workload)
    requests = action.requests.model_dump(exclude_none=True) if action.requests else {}
    limits = action.limits.model_dump(exclude_none=True) if action.limits else {}
    if not requests and not limits:
        raise ActionError("setResources needs requests or limits to set")
    with _api_errors():
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
    return await _after_change(kube, ctx, budget, kind, name, action.wait, did, findings)


# --- diagnostics ------------------------------------------------------------------------------


@register("workloadStatus")
async def workload_status(action: WorkloadStatus, ctx: ActionContext) -> StepResult:
    """Fails (a finding of the diagnosis) when the workload is not fully ready and available,
    or a condition reports a failure."""
    kube = _kube(ctx)
    kind, name = _ref(action.workload)
    with _api_errors():
        summary = await rollouts.summary(kube, ctx.namespace, kind, name)
    findings = _summary_findings(summary) | {"paused": summary.paused}
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


@register("recentRollouts")
async def recent_rollouts(action: RecentRollouts, ctx: ActionContext) -> StepResult:
    """Revisions created within the window (informational: the step does not fail)."""
    kube = _kube(ctx)
    kind, name = _ref(action.workload)
    window = duration_param(action.window)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=window)
    with _api_errors():
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
            f"{_plural(len(recent), 'rollout')} of {kind} {name} in the last "
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
                [r.revision, r.name, _when(r.created), r.replicas, ",".join(r.images)]
                for r in recent
            ],
        )
        if recent
        else None
    )
    return StepResult(True, message + ".", findings, output)


@register("warningEvents")
async def warning_events(action: WarningEvents, ctx: ActionContext) -> StepResult:
    """Warning events of the workload, its ReplicaSets and pods within the window
    (informational: a step condition on the ``warnings`` finding decides what follows)."""
    kube = _kube(ctx)
    kind, name = _ref(action.workload)
    window = duration_param(action.window)
    with _api_errors():
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
        f"{_plural(len(events), 'Warning event')} for {kind} {name} and its pods in the "
        f"last {action.window} ({', '.join(reasons)}); latest: {latest.reason} on "
        f"{latest.kind} {latest.name}: {latest.message[:200]}"
    )
    output = table(
        ["LAST SEEN", "OBJECT", "REASON", "COUNT", "MESSAGE"],
        [[_when(e.time), f"{e.kind}/{e.name}", e.reason, e.count, e.message[:100]] for e in events],
    )
    return StepResult(True, message + ".", findings, output)


@register("podLogs")
async def pod_logs(action: PodLogs, ctx: ActionContext) -> StepResult:
    """Fails when more lines than ``threshold`` match ``pattern``."""
    kube = _kube(ctx)
    kind, name = _ref(action.workload)
    regex = _regex(action.pattern) if action.pattern else None
    with _api_errors():
        logs = await pods.pod_logs(
            kube, ctx.namespace, kind, name, action.tail_lines, action.container
        )
    lines = logs.text.splitlines()
    findings: Findings = {"pod": logs.pod, "lines": len(lines)}
    if logs.truncated:  # longer than the byte cap: these are its first lines
        findings["truncated"] = True
    where = f"pod {logs.pod}" + (f" (container {logs.container})" if logs.container else "")
    if regex is None:
        return StepResult(
            True,
            f"Read the last {_plural(len(lines), 'log line')} of {where}.",
            findings,
            _tail(logs.text) or None,
        )
    matches = [line for line in lines if regex.search(line)]
    findings["matches"] = len(matches)
    failed = action.threshold is not None and len(matches) > action.threshold
    verb = "matches" if len(matches) == 1 else "match"
    message = (
        f"{len(matches)} of the last {_plural(len(lines), 'log line')} of {where} {verb} "
        f"{action.pattern!r}"
    )
    if action.threshold is not None:
        message += f", {'above' if failed else 'within'} the threshold of {action.threshold:g}"
    return StepResult(
        not failed, message + ".", findings, _tail("\n".join(matches)) if matches else None
    )


# --- exec and jobs ----------------------------------------------------------------------------


def exec_allowlist() -> list[tuple[str, ...]]:
    """The argv prefixes ``execInPod`` may run: ``$INCIDENT_OPERATOR_EXEC_ALLOWLIST`` (a JSON
    list of non-empty lists of strings, replacing the default) or the default."""
    raw = os.environ.get(ALLOWLIST_ENV)
    if raw is None or not raw.strip():
        return list(DEFAULT_EXEC_ALLOWLIST)
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(
        isinstance(prefix, list) and prefix and all(isinstance(a, str) and a for a in prefix)
        for prefix in value
    ):
        raise ActionError(
            f"{ALLOWLIST_ENV} must be a JSON list of non-empty argv-prefix "
            f'lists, e.g. [["redis-cli"], ["df", "-h"]]'
        )
    return [tuple(prefix) for prefix in value]


def exec_allowed(command: Sequence[str], allowlist: Sequence[Sequence[str]]) -> bool:
    """True when ``command`` starts with one of the argv prefixes, argument by argument."""
    return any(
        len(command) >= len(prefix) and tuple(command[: len(prefix)]) == tuple(prefix)
        for prefix in allowlist
    )


def _show(command: Sequence[str]) -> str:
    text = shlex.join(command)
    return text if len(text) <= 200 else text[:199] + "…"


@register("execInPod")
async def exec_in_pod(action: ExecInPod, ctx: ActionContext) -> StepResult:
    """Run an allowlisted command in the newest Ready pod; fails on a non-zero exit or when
    the output does not match ``pattern``."""
    shown = _show(action.command)
    if not exec_allowed(action.command, exec_allowlist()):
        raise ActionError(f"command not allowed in execInPod: {shown} (see {ALLOWLIST_ENV})")
    kube, budget = _kube(ctx), _Budget(ctx)
    kind, name = _ref(action.workload)
    regex = _regex(action.pattern) if action.pattern else None
    with _api_errors():
        result = await pods.exec_in_pod(
            kube, ctx.namespace, kind, name, action.command, action.container, budget.left()
        )
    exit_code = result.exit_code if result.exit_code is not None else -1
    findings: Findings = {"pod": result.pod, "exitCode": exit_code}
    output = result.stdout
    if result.stderr:
        output += (
            ("\n" if output and not output.endswith("\n") else "") + "[stderr]\n" + result.stderr
        )
    where = f"pod {result.pod}" + (f" (container {result.container})" if result.container else "")
    if result.timed_out or result.exit_code is None:
        return StepResult(
            False, f"`{shown}` in {where} did not finish: {result.error}.", findings, output or None
        )
    ok = result.exit_code == 0
    message = f"`{shown}` in {where} exited with code {result.exit_code}"
    if regex is not None:
        matched = bool(regex.search(result.stdout) or regex.search(result.stderr))
        findings["matched"] = matched
        ok = ok and matched
        message += (
            " and its output matches " if matched else " but its output does not match "
        ) + repr(action.pattern)
    return StepResult(ok, message + ".", findings, output or None)


def _job_env(action: RunJob) -> list[JobEnv]:
    env = []
    for var in action.env:
        if var.value is not None and var.secret_ref is not None:
            raise ActionError(f"env {var.name} of runJob sets both value and secretRef")
        if var.secret_ref is not None:
            env.append(
                JobEnv(var.name, secret_name=var.secret_ref.name, secret_key=var.secret_ref.key)
            )
        else:
            env.append(JobEnv(var.name, value=var.value or ""))
    return env


@register("runJob")
async def run_job(action: RunJob, ctx: ActionContext) -> StepResult:
    """Create a Job labelled with the incident, wait for it, report its log tail, delete it.

    Secret values are referenced (``secretKeyRef``), never read by the operator.
    """
    kube, budget = _kube(ctx), _Budget(ctx)
    env = _job_env(action)
    with _api_errors():
        result = await jobs.run_job(
            kube,
            ctx.namespace,
            ctx.incident,
            action.image,
            action.command,
            env,
            action.backoff_limit,
            budget.left(),
        )
    findings: Findings = {
        "job": result.name,
        "succeeded": result.succeeded,
        "timedOut": result.timed_out,
        "durationSeconds": round(result.seconds, 1),
    }
    if result.exit_code is not None:
        findings["exitCode"] = result.exit_code
    took = format_duration(round(result.seconds, 1))
    if result.succeeded:
        message = f"Job {result.name} ({action.image}) completed in {took}"
        if result.exit_code is not None:
            message += f" with exit code {result.exit_code}"
    elif result.timed_out:
        message = (
            f"Job {result.name} ({action.image}) did not finish within {took} "
            f"({result.message}); it was deleted"
        )
    else:
        message = f"Job {result.name} ({action.image}) failed after {took}: {result.reason}"
        if result.message:
            message += f": {result.message}"
        if result.exit_code is not None:
            message += f" (exit code {result.exit_code})"
    return StepResult(result.succeeded, message + ".", findings, _tail(result.log_tail) or None)
