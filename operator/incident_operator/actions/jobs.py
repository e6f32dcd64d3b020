"""One-off Jobs (playbook: restore from backup, integrity check)."""

from __future__ import annotations

from ..adapters import jobs
from ..adapters.jobs import JobEnv, JobPod, JobVolume
from ..domain.policy import JobsPolicy, Policy
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


def jobs_policy(ctx: ActionContext) -> JobsPolicy:
    """The admin's limits on Jobs: ``ctx.clients["policy"]``, else the defaults (no
    hostPath at all)."""
    policy = ctx.clients.get("policy")
    return policy.jobs if isinstance(policy, Policy) else JobsPolicy()


def _job_pod(action: RunJob, limits: JobsPolicy) -> JobPod:
    """The pod settings of the Job; a hostPath outside the allowlist refuses the step
    before anything is created."""
    refused = [path for path in action.host_paths() if not limits.allows_host_path(path)]
    if refused:
        allowed = ", ".join(limits.host_path_allowlist) or "none: the list is empty"
        raise ActionError(
            f"runJob may not mount hostPath {', '.join(refused)}: the operator's policy "
            f"allows only paths inside jobs.hostPathAllowlist ({allowed}); no Job was created"
        )
    volumes = [
        JobVolume(
            mount_path=volume.mount_path,
            claim_name=claim.claim_name if claim else None,
            claim_read_only=bool(claim and claim.read_only),
            host_path=volume.host_path.path if volume.host_path else None,
            host_path_type=volume.host_path.type.value if volume.host_path else "Directory",
            sub_path=volume.sub_path,
            read_only=volume.read_only,
        )
        for volume in action.volumes
        for claim in [volume.persistent_volume_claim]
    ]
    security = action.security_context
    return JobPod(
        volumes=volumes,
        host_network=action.host_network,
        image_pull_policy=action.image_pull_policy.value,
        run_as_user=security.run_as_user if security else None,
        run_as_group=security.run_as_group if security else None,
    )


@executor(RunJob)
async def run_job(action: RunJob, ctx: ActionContext) -> StepResult:
    """Create a Job labelled with the incident, wait for it, report its log tail, delete it.

    Secret values are referenced (``secretKeyRef``), never read by the operator.
    """
    env = _job_env(action)
    pod = _job_pod(action, jobs_policy(ctx))
    kube, budget = kube_client(ctx), Budget(ctx)
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
            pod,
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
