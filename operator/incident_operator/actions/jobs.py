"""One-off Jobs (playbook: restore from backup, integrity check)."""

from __future__ import annotations

from ..adapters import jobs
from ..adapters.jobs import JobEnv
from ..durations import format_duration
from ..models.actions import (
    RunJob,
)
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
    tail,
)


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


@executor(RunJob)
async def run_job(action: RunJob, ctx: ActionContext) -> StepResult:
    """Create a Job labelled with the incident, wait for it, report its log tail, delete it.

    Secret values are referenced (``secretKeyRef``), never read by the operator.
    """
    kube, budget = kube_client(ctx), Budget(ctx)
    env = _job_env(action)
    with api_errors():
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
    return StepResult(result.succeeded, message + ".", findings, tail(result.log_tail) or None)
