"""What the Kubernetes actions share: the client, error mapping, budgets, findings."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator

from ..adapters import rollouts
from ..adapters.client import KubeClient, KubeError
from ..adapters.rollouts import RolloutFailed, RolloutTimeout, WorkloadSummary
from ..adapters.workloads import WorkloadError
from ..models.actions import (
    WorkloadKind,
    WorkloadRef,
)
from .base import (
    MAX_OUTPUT,
    ActionContext,
    ActionError,
    Finding,
    StepResult,
)

Findings = dict[str, Finding]


def kube_client(ctx: ActionContext) -> KubeClient:
    client = ctx.clients.get("kubernetes")
    if not isinstance(client, KubeClient):
        raise ActionError("no Kubernetes client configured")
    return client


@contextlib.contextmanager
def api_errors() -> Iterator[None]:
    """Adapter errors (API failures, requests that cannot be carried out) as step errors."""
    try:
        yield
    except (KubeError, WorkloadError) as exc:
        raise ActionError(str(exc)) from None


def workload_ref(workload: WorkloadRef) -> tuple[str, str]:
    kind = workload.kind.value if isinstance(workload.kind, WorkloadKind) else str(workload.kind)
    return kind, workload.name


class Budget:
    """The time left of the step's timeout, minus a margin to report before it expires."""

    def __init__(self, ctx: ActionContext) -> None:
        self.total = ctx.timeout
        self.margin = min(2.0, ctx.timeout * 0.1)
        self.started = time.monotonic()

    def left(self) -> float:
        return max(0.5, self.total - self.margin - (time.monotonic() - self.started))


def plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def summary_findings(summary: WorkloadSummary) -> Findings:
    return {
        "replicas": summary.replicas,
        "readyReplicas": summary.ready,
        "updatedReplicas": summary.updated,
        "availableReplicas": summary.available,
        "revision": summary.revision,
        "image": summary.image,
        "rolledOut": summary.rollout_done,
    }


async def after_change(
    kube: KubeClient,
    ctx: ActionContext,
    budget: Budget,
    kind: str,
    name: str,
    wait: bool,
    did: str,
    findings: Findings,
) -> StepResult:
    """The result of a change: the rollout waited for (or not) and its state as findings."""
    with api_errors():
        if not wait:
            summary = await rollouts.summary(kube, ctx.namespace, kind, name)
            findings |= summary_findings(summary)
            return StepResult(True, f"{did}; not waiting for the rollout.", findings)
        try:
            summary = await rollouts.wait_for_rollout(
                kube, ctx.namespace, kind, name, budget.left()
            )
        except RolloutTimeout as exc:
            findings |= summary_findings(exc.summary)
            return StepResult(False, f"{did}, but the {exc}.", findings)
        except RolloutFailed as exc:
            summary = await rollouts.summary(kube, ctx.namespace, kind, name)
            findings |= summary_findings(summary)
            return StepResult(False, f"{did}, but the {exc}.", findings)
    findings |= summary_findings(summary)
    return StepResult(
        True,
        f"{did}; rollout complete with {summary.ready}/{summary.replicas} replicas ready.",
        findings,
    )


def tail(text: str, limit: int = MAX_OUTPUT - 64) -> str:
    """The end of ``text`` (logs are read from the bottom)."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    return "[... earlier lines cut]\n" + cut[cut.find("\n") + 1 :]


def utc_text(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
