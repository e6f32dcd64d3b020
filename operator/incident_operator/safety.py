"""Safety gates for destructive steps: one remediation per target, attempt limits, cooldowns.

Two Leases guard a destructive step: one per target (only one remediation at a time, and at
most ``maxAttemptsPerTarget`` destructive actions within the window, whatever the action) and
one per target and action (the cooldown: a flapping service is not restarted in a loop, yet a
rollback may follow a failed restart at once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt

from .adapters.guard import GuardError, TargetGuard
from .adapters.kube import KubeError
from .domain.engine import StepToRun
from .domain.guarding import GRANTED, GUARD_UNAVAILABLE, Verdict
from .domain.policy import Policy
from .durations import parse_duration
from .models.objects import IncidentObject, RunbookObject

#: The per-action Lease only enforces the cooldown; the per-target one counts attempts.
UNLIMITED = 10_000


@dataclasses.dataclass(frozen=True)
class Claim:
    key: str
    cooldown_s: float
    max_attempts: int


def target_key(plan: StepToRun, runbook: RunbookObject) -> str:
    """What a destructive step acts on (the action says; see ``ActionModel.target_key``)."""
    return plan.step.action.target_key(
        plan.step.name, runbook.spec.targets, runbook.metadata.namespace
    )


class SafetyGate:
    """Leases in the operator's own namespace (``lease_namespace``): the people a cooldown
    or an attempt limit holds back cannot reset it, and Incidents of several namespaces that
    act on one database share its history."""

    def __init__(self, guard: TargetGuard, policy: Policy, lease_namespace: str) -> None:
        self.guard, self.policy = guard, policy
        self.namespace = lease_namespace

    def claims(self, plan: StepToRun, runbook: RunbookObject) -> list[Claim]:
        safety = runbook.spec.safety
        cooldown = self.policy.scaled(parse_duration(safety.cooldown)).total_seconds()
        target = target_key(plan, runbook)
        return [
            Claim(target, 0.0, safety.max_attempts_per_target),
            Claim(f"{target}-{plan.step.action.type}", cooldown, UNLIMITED),
        ]

    def window(self, runbook: RunbookObject) -> float:
        safety = runbook.spec.safety
        cooldown = self.policy.scaled(parse_duration(safety.cooldown)).total_seconds()
        return max(
            cooldown * safety.max_attempts_per_target, self.policy.scaled(3600).total_seconds()
        )

    @staticmethod
    def needed(plan: StepToRun, incident: IncidentObject) -> bool:
        return plan.destructive and not incident.spec.dry_run

    async def acquire(
        self, incident: IncidentObject, runbook: RunbookObject, plan: StepToRun, now: dt.datetime
    ) -> Verdict:
        """Take every claim or none; the lease outlives the step's own time limit."""
        meta = incident.metadata
        lease_s = plan.timeout * (plan.step.retries + 1) + 60
        taken: list[Claim] = []
        try:
            for claim in self.claims(plan, runbook):
                verdict = await self.guard.acquire(
                    self.namespace,
                    claim.key,
                    meta.uid,
                    claim.cooldown_s,
                    claim.max_attempts,
                    self.window(runbook),
                    now,
                    lease_duration_s=lease_s,
                )
                if not verdict.granted:
                    await self._release(meta.uid, taken)
                    return verdict
                taken.append(claim)
        except (GuardError, KubeError) as exc:  # KubeError: e.g. Forbidden, Unavailable
            await self._release(meta.uid, taken)
            return Verdict(False, GUARD_UNAVAILABLE, str(exc), None)
        return Verdict(True, GRANTED, "granted", None)

    async def record(
        self, incident: IncidentObject, runbook: RunbookObject, plan: StepToRun, now: dt.datetime
    ) -> None:
        for claim in self.claims(plan, runbook):
            await self.guard.record_attempt(self.namespace, claim.key, incident.metadata.uid, now)

    async def release(
        self, incident: IncidentObject, runbook: RunbookObject, plan: StepToRun
    ) -> None:
        await self._release(incident.metadata.uid, self.claims(plan, runbook))

    async def _release(self, holder: str, claims: list[Claim]) -> None:
        for claim in claims:
            # a lease left behind expires on its own
            with contextlib.suppress(GuardError, KubeError):
                await self.guard.release(self.namespace, claim.key, holder)
