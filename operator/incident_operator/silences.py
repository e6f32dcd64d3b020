"""An Alertmanager silence around a destructive step (policy ``alerts.silences``).

While a step acts on a service (a restart, a rollback, a flush), the alerts that service
raises are expected: the operator silences alerts whose ``label`` (default ``service``) is the
Incident's service, for at most ``duration`` (and the step's own bound), and expires the
silence when the step ends. A crashed operator leaves a silence that ends by itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator

from . import commit
from .adapters.alertmanager import AlertmanagerClient, AlertmanagerError
from .context import OperatorContext
from .domain import engine, timeline
from .domain.story import Decision
from .durations import parse_duration
from .models.objects import IncidentObject

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def around_step(
    ctx: OperatorContext, incident: IncidentObject, plan: engine.StepToRun
) -> AsyncIterator[None]:
    config = ctx.policy.alerts.silences
    if config.alertmanager_url is None or not plan.destructive or incident.spec.dry_run:
        yield
        return
    meta = incident.metadata
    client = AlertmanagerClient(ctx.http, config.alertmanager_url)
    seconds = min(parse_duration(config.duration), plan.timeout + 60)
    matchers = {config.label: incident.spec.service}
    shown = f"{config.label}={incident.spec.service}"
    silence: str | None = None
    try:
        silence = await client.silence(
            matchers,
            ctx.now() + dt.timedelta(seconds=seconds),
            f"incident-operator: {meta.namespace}/{meta.name} step {plan.step.name}",
            "incident-operator",
        )
    except AlertmanagerError as exc:
        await _tell(ctx, incident, "SilenceFailed", f"No silence for {shown}: {exc}", True)
    else:
        await _tell(
            ctx,
            incident,
            "SilenceCreated",
            f"Silenced alerts {shown} for at most {seconds:g}s while {plan.step.name} runs "
            f"(silence {silence})",
        )
    try:
        yield
    finally:
        if silence is not None:
            try:
                await client.expire(silence)
                await _tell(ctx, incident, "SilenceRemoved", f"Silence {silence} expired")
            except AlertmanagerError as exc:
                await _tell(
                    ctx, incident, "SilenceFailed", f"Silence {silence} left to end: {exc}", True
                )


async def _tell(
    ctx: OperatorContext, incident: IncidentObject, reason: str, message: str, warning: bool = False
) -> None:
    """One timeline entry (and its Event) through the commit loop; best effort."""
    meta = incident.metadata

    async def decide(current: IncidentObject) -> commit.Change:
        status = current.status.model_copy(deep=True)
        entry = timeline.append(status, ctx.now(), reason, message, warning=warning)
        return commit.Change(Decision(status, [entry], []))

    try:
        await commit.update(ctx, meta.namespace, meta.name, decide)
    except Exception:  # the step goes on without its timeline line
        log.warning("incident %s/%s: could not record %s", meta.namespace, meta.name, reason)
    if warning:
        log.warning("incident %s/%s: %s", meta.namespace, meta.name, message)
