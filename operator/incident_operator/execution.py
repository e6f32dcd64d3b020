"""Run one runbook step: safety checks, timeout, retries with backoff, dry runs.

Nothing here decides what runs next (that is ``domain.engine``); this module only carries a
chosen step out against the outside world and turns every failure into a StepResult.
"""

from __future__ import annotations

import asyncio
import logging

from .actions import catalog  # noqa: F401  (registers every action executor)
from .actions.base import ActionContext, ActionError, StepResult, run_action
from .adapters.kube import KubeAdapter, KubeError, KubeSecretReader
from .context import OperatorContext
from .domain import runbook_check
from .domain.engine import StepToRun, dry_run_result
from .durations import parse_duration
from .models.objects import IncidentObject, RunbookObject

log = logging.getLogger(__name__)


async def _attempt(plan: StepToRun, context: ActionContext) -> StepResult:
    try:
        return await asyncio.wait_for(run_action(plan.step.action, context), plan.timeout)
    except TimeoutError:
        return StepResult(False, f"{plan.step.action.type} timed out after {plan.timeout:g}s")
    except ActionError as exc:
        return StepResult(False, str(exc)[:1024])
    except Exception as exc:  # an executor bug must not crash the Incident's handler
        log.error("step %s raised %s", plan.step.name, type(exc).__name__)
        return StepResult(False, f"internal error in {plan.step.action.type}: {type(exc).__name__}")


async def execute(
    ctx: OperatorContext, incident: IncidentObject, runbook: RunbookObject, plan: StepToRun
) -> StepResult:
    namespace = incident.metadata.namespace
    refused = runbook_check.allowlist_problems(runbook.spec, ctx.policy, namespace)
    if refused:
        # Checked again at the last moment: a Secret never goes to a host off the list.
        return StepResult(False, "refused by the policy's allowlists: " + "; ".join(refused))
    if incident.spec.dry_run and plan.destructive:
        return dry_run_result(plan)
    try:
        kube = await ctx.identities.client_for(namespace, runbook.spec.service_account_name)
    except KubeError as exc:
        return StepResult(False, str(exc))
    context = ActionContext(
        namespace=namespace,
        incident=incident.metadata.name,
        targets=runbook.spec.targets,
        secrets=KubeSecretReader(KubeAdapter(kube)),
        clients={**ctx.clients, "kubernetes": kube},
        timeout=plan.timeout,
    )
    backoff = parse_duration(plan.step.backoff)
    result = StepResult(False, "not run")
    for attempt in range(plan.step.retries + 1):
        if attempt:
            await asyncio.sleep(backoff * 2 ** (attempt - 1))
        result = await _attempt(plan, context)
        if result.ok:
            break
    if plan.step.retries and not result.ok:
        result.message = f"{result.message} (after {plan.step.retries + 1} attempts)"
    return result
