"""Operator start-up and shutdown: settings, clients, indexes and the alert receiver.

Everything long-lived is created here once and kept in Kopf's memo (``memo.ctx``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from . import API_GROUP, intake, responder
from .adapters.kube import load_api_client
from .context import OperatorContext, Settings
from .domain.matching import Candidate
from .domain.policy import PolicyError
from .webhook import AlertReceiver, ReceiverError

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
    # Serve the namespaces and resources known at start-up: no cluster-wide list of
    # namespaces and CRDs, which a namespaced install has no right to.
    settings.scanning.disabled = True


async def start(
    settings: kopf.OperatorSettings,
    memo: Any,
    runbook_index: Mapping[str, Iterable[Candidate]],
) -> None:
    configure_kopf(settings)
    # Policy and namespace are read afresh so a restarted operator picks up a new policy.
    try:
        # Off the event loop: the policy's parsing and test renders, the clients' TLS
        # contexts and the lazily imported client modules hold a CPU for about 0.1 s.
        ctx = await asyncio.to_thread(OperatorContext.create, Settings.from_env())
    except PolicyError as exc:
        # A bad policy is a configuration error: stop, do not retry with it every minute.
        raise kopf.PermanentError(str(exc)) from exc
    ctx.runbook_index = runbook_index
    log.info("starting with %s; policy: %s", ctx.settings, ctx.settings.policy_file or "defaults")
    ctx.clock.bind(lambda namespace, name: ctx.spawn(responder.on_due(ctx, namespace, name)))
    memo.ctx = ctx
    if ctx.settings.webhook_port is not None:
        await _start_receiver(ctx, memo)


async def _start_receiver(ctx: OperatorContext, memo: Any) -> None:
    """The Alertmanager receiver; a missing token or TLS file stops the operator."""
    try:
        config = await intake.receiver_config(ctx)
        sink = intake.IncidentSink(
            ctx, lambda namespace, name: ctx.clock.wake(namespace, name, ctx.now())
        )
        receiver = AlertReceiver(sink, config)
        assert ctx.settings.webhook_port is not None
        await receiver.start(ctx.settings.webhook_host, ctx.settings.webhook_port)
    except ReceiverError as exc:
        raise kopf.PermanentError(f"alert receiver: {exc}") from exc
    memo.alert_receiver = receiver


def login(memo: Any) -> kopf.ConnectionInfo:
    """Kopf's connection, from the same credentials as the operator's own client: in a pod
    its ServiceAccount, else ``settings.kubeconfig`` (or $KUBECONFIG). Kopf asks again
    when the API server refuses the credentials (a rotated token)."""
    ctx: OperatorContext | None = memo.get("ctx")
    settings = ctx.settings if ctx is not None else Settings.from_env()
    configuration = load_api_client(settings.kubeconfig).configuration
    bearer = str(configuration.auth_settings().get("BearerToken", {}).get("value") or "")
    scheme, _, token = bearer.partition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


async def stop(memo: Any) -> None:
    receiver: AlertReceiver | None = memo.get("alert_receiver")
    if receiver is not None:
        await receiver.stop()
    ctx: OperatorContext | None = memo.get("ctx")
    if ctx is not None:
        await ctx.close()
