"""Kopf handlers: thin entry points that hand over to the responder and runbook checks."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from . import API_GROUP, API_VERSION, responder, runbooks
from .context import OperatorContext, Settings
from .domain.policy import PolicyError
from .webhook import AlertReceiver

INCIDENTS = (API_GROUP, API_VERSION, "incidents")
RUNBOOKS = (API_GROUP, API_VERSION, "runbooks")
SETTINGS = Settings.from_env()


@kopf.on.startup(id="configure")
async def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    # Our own prefixes, so several Kopf operators can share the cluster without colliding.
    settings.persistence.finalizer = f"{API_GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    # Policy and namespace are read afresh so a restarted operator picks up a new policy.
    try:
        ctx = OperatorContext.create(Settings.from_env())
    except PolicyError as exc:
        # A bad policy is a configuration error: stop, do not retry with it every minute.
        raise kopf.PermanentError(str(exc)) from exc
    memo.ctx = ctx
    if ctx.settings.webhook_port is not None:
        memo.alert_receiver = AlertReceiver(
            ctx.kube, ctx.settings.namespace, ctx.settings.webhook_token
        )
        await memo.alert_receiver.start(ctx.settings.webhook_host, ctx.settings.webhook_port)


@kopf.on.cleanup(id="close-clients")
async def close_clients(memo: Any, **_: Any) -> None:
    receiver: AlertReceiver | None = memo.get("alert_receiver")
    if receiver is not None:
        await receiver.stop()
    ctx: OperatorContext | None = memo.get("ctx")
    if ctx is not None:
        await ctx.close()


@kopf.on.create(*INCIDENTS, id="incident-opened")
@kopf.on.resume(*INCIDENTS, id="incident-resumed")
@kopf.on.update(*INCIDENTS, field="spec", id="incident-spec-changed")
async def incident_changed(name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    await responder.respond(memo.ctx, namespace or "default", name)


@kopf.timer(
    *INCIDENTS,
    id="incident-clock",
    interval=SETTINGS.tick_seconds,
    initial_delay=SETTINGS.tick_seconds,
)
async def incident_clock(name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    await responder.respond(memo.ctx, namespace or "default", name)


@kopf.on.create(*RUNBOOKS, id="runbook-created")
@kopf.on.resume(*RUNBOOKS, id="runbook-resumed")
@kopf.on.update(*RUNBOOKS, field="spec", id="runbook-spec-changed")
async def runbook_changed(body: kopf.Body, memo: Any, **_: Any) -> None:
    await runbooks.validate(memo.ctx, dict(body))
