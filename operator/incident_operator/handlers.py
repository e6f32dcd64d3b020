"""Kopf handlers: thin entry points into start-up, the responder and runbook checks.

Incidents are driven by their own events (create, resume, spec change) and by the
operator's clock (``tasks.Clock``), which wakes each one when its next decision is due.
There is no polling timer, so Kopf puts no finalizer on Incidents.
"""

from __future__ import annotations

from typing import Any

import kopf

from . import API_GROUP, API_VERSION, responder, runbooks, startup

INCIDENTS = (API_GROUP, API_VERSION, "incidents")
RUNBOOKS = (API_GROUP, API_VERSION, "runbooks")
#: Seconds before Kopf retries a handler that failed (e.g. the API server was unavailable).
RETRY_BACKOFF = 5.0


# Indexes are async although they do no I/O: Kopf runs a plain function in its thread pool
# (a hop, a copied context and two tasks per call), and every event of every Incident is
# indexed.
@kopf.index(*RUNBOOKS, id="runbook_index")
async def runbook_index(body: kopf.Body, namespace: str | None, memo: Any, **_: Any) -> Any:
    return runbooks.index_entry(body, namespace or "default", memo.ctx.policy)


@kopf.index(*INCIDENTS, id="open_incidents")
async def open_incidents(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
    return responder.index_entry(body, namespace or "default")


@kopf.on.login(id="login")
def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    return startup.login(memo)


@kopf.on.startup(id="configure")
async def configure(settings: kopf.OperatorSettings, memo: Any, **indexes: Any) -> None:
    await startup.start(settings, memo, indexes["runbook_index"])


@kopf.on.cleanup(id="close-clients")
async def close_clients(memo: Any, **_: Any) -> None:
    await startup.stop(memo)


@kopf.on.create(*INCIDENTS, id="incident-opened", backoff=RETRY_BACKOFF)
@kopf.on.resume(*INCIDENTS, id="incident-resumed", backoff=RETRY_BACKOFF)
@kopf.on.update(*INCIDENTS, field="spec", id="incident-spec-changed", backoff=RETRY_BACKOFF)
async def incident_changed(
    name: str, namespace: str | None, body: kopf.Body, reason: str, memo: Any, **_: Any
) -> None:
    # On create and resume Kopf's body is as fresh as a read (a stale one only conflicts).
    known = dict(body) if reason in (kopf.Reason.CREATE, kopf.Reason.RESUME) else None
    await responder.respond(memo.ctx, namespace or "default", name, known)


@kopf.on.resume(*RUNBOOKS, id="runbook-resumed", backoff=RETRY_BACKOFF)
async def runbook_resumed(body: kopf.Body, memo: Any, **_: Any) -> None:
    await runbooks.validate(memo.ctx, dict(body))


@kopf.on.create(*RUNBOOKS, id="runbook-created", backoff=RETRY_BACKOFF)
@kopf.on.update(*RUNBOOKS, field="spec", id="runbook-spec-changed", backoff=RETRY_BACKOFF)
async def runbook_changed(body: kopf.Body, memo: Any, **indexes: Any) -> None:
    await runbooks.changed(memo.ctx, dict(body), indexes["open_incidents"])
