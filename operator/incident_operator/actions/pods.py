"""Actions inside a workload's pods: read their logs, run a command an admin allowed."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from ..adapters import pods
from ..domain.allowlists import ExecPolicy
from ..domain.policy import Policy
from ..models.actions import (
    ExecInPod,
    PodLogs,
)
from . import patterns
from .base import (
    ActionContext,
    ActionError,
    StepResult,
    executor,
)
from .kube_common import (
    Budget,
    Findings,
    api_errors,
    kube_client,
    plural,
    tail,
    workload_ref,
)


@executor(PodLogs)
async def pod_logs(action: PodLogs, ctx: ActionContext) -> StepResult:
    """Fails when more lines than ``threshold`` match ``pattern``."""
    kube, budget = kube_client(ctx), Budget(ctx)
    kind, name = workload_ref(action.workload)
    regex = patterns.compiled(action.pattern) if action.pattern else None
    with api_errors():
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
            f"Read the last {plural(len(lines), 'log line')} of {where}.",
            findings,
            tail(logs.text) or None,
        )
    matches = await patterns.matching_lines(regex, lines, budget.left())
    findings["matches"] = len(matches)
    failed = action.threshold is not None and len(matches) > action.threshold
    verb = "matches" if len(matches) == 1 else "match"
    message = (
        f"{len(matches)} of the last {plural(len(lines), 'log line')} of {where} {verb} "
        f"{action.pattern!r}"
    )
    if action.threshold is not None:
        message += f", {'above' if failed else 'within'} the threshold of {action.threshold:g}"
    return StepResult(
        not failed, message + ".", findings, tail("\n".join(matches)) if matches else None
    )


# --- exec and jobs ----------------------------------------------------------------------------


def exec_policy(ctx: ActionContext) -> ExecPolicy:
    """The admin's exec command templates (the policy's ``exec``), else the defaults."""
    policy = ctx.clients.get("policy")
    return policy.exec if isinstance(policy, Policy) else ExecPolicy()


def _show(command: Sequence[str]) -> str:
    text = shlex.join(command)
    return text if len(text) <= 200 else text[:199] + "…"


@executor(ExecInPod)
async def exec_in_pod(action: ExecInPod, ctx: ActionContext) -> StepResult:
    """Run an allowlisted command in the newest Ready pod; fails on a non-zero exit or when
    the output does not match ``pattern``."""
    shown = _show(action.command)
    if not exec_policy(ctx).allowed(action.command):
        raise ActionError(
            f"command not allowed in execInPod: {shown} matches no template of the policy's "
            "exec.commands"
        )
    kube, budget = kube_client(ctx), Budget(ctx)
    kind, name = workload_ref(action.workload)
    regex = patterns.compiled(action.pattern) if action.pattern else None
    with api_errors():
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
        matched = await patterns.search(regex, result.stdout, result.stderr)
        findings["matched"] = matched
        ok = ok and matched
        message += (
            " and its output matches " if matched else " but its output does not match "
        ) + repr(action.pattern)
    return StepResult(ok, message + ".", findings, output or None)
