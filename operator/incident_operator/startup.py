"""Operator start-up and shutdown: settings, clients, indexes and the alert receiver.

Everything long-lived is created here once and kept in Kopf's memo (``memo.ctx``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from . import API_GROUP, responder
from .context import OperatorContext, Settings
from .domain.matching import Candidate
from .domain.policy import PolicyError
from .webhook import AlertReceiver

log = logging.getLogger(__name__)


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    # Our own prefixes, so several Kopf operators can share the cluster without colliding.
    settings.persistence.finalizer = f"{API_GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300


async def start(
    settings: kopf.OperatorSettings,
    memo: Any,
    runbook_index: Mapping[str, Iterable[Candidate]],
) -> None:
    configure_kopf(settings)
    # Policy and namespace are read afresh so a restarted operator picks up a new policy.
    try:
        ctx = OperatorContext.create(Settings.from_env())
    except PolicyError as exc:
        # A bad policy is a configuration error: stop, do not retry with it every minute.
        raise kopf.PermanentError(str(exc)) from exc
    ctx.runbook_index = runbook_index
    ctx.clock.bind(lambda namespace, name: ctx.spawn(responder.on_due(ctx, namespace, name)))
    memo.ctx = ctx
    if ctx.settings.webhook_port is not None:
        memo.alert_receiver = AlertReceiver(
            ctx.kube, ctx.settings.namespace, ctx.settings.webhook_token
        )
        await memo.alert_receiver.start(ctx.settings.webhook_host, ctx.settings.webhook_port)


async def stop(memo: Any) -> None:
    receiver: AlertReceiver | None = memo.get("alert_receiver")
    if receiver is not None:
        await receiver.stop()
    ctx: OperatorContext | None = memo.get("ctx")
    if ctx is not None:
        await ctx.close()
