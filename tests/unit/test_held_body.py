"""A wake-up decides on the body this process last wrote: one read saved, never a stale act.

After each commit the responder holds the stored body while a wake-up is pending; the
wake-up's decision starts from it instead of a GET. That is safe because the write is
guarded by the body's resourceVersion (someone else's write in between makes it conflict,
and the next round reads), a decision on it that writes nothing is made again on a read
body, and a decision on it never claims a step's target.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from incident_operator import responder
from incident_operator.adapters.kube import Conflict
from incident_operator.context import Settings
from incident_operator.domain.guarding import Verdict
from incident_operator.domain.matching import Candidate
from incident_operator.domain.policy import load_policy
from incident_operator.models.objects import RunbookObject
from incident_operator.tasks import InFlight

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


class FakeKube:
    """One Incident in memory; writes are guarded by resourceVersion as the API server's."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.gets = 0
        self.writes = 0
        self.events: list[str] = []

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        self.gets += 1
        return self.body

    async def replace_status(
        self, plural: str, body: dict[str, Any], status: dict[str, Any]
    ) -> dict[str, Any]:
        current = self.body["metadata"]["resourceVersion"]
        if body["metadata"]["resourceVersion"] != current:
            raise Conflict(409, "Conflict", "the object has been modified")
        self.writes += 1
        self.bump({**body, "status": status})
        return self.body

    def bump(self, body: dict[str, Any]) -> None:
        """Store ``body`` as the next version (a write by anyone)."""
        version = int(self.body["metadata"]["resourceVersion"]) + 1
        self.body = {**body, "metadata": {**body["metadata"], "resourceVersion": str(version)}}

    async def event(self, body: dict[str, Any], type_: str, reason: str, *_: Any) -> None:
        self.events.append(reason)


class FakeClock:
    def __init__(self) -> None:
        self.wakes: list[dt.datetime | None] = []

    def wake(self, namespace: str, name: str, at: dt.datetime | None) -> None:
        self.wakes.append(at)


class FakeGate:
    """Records claims; every target is free."""

    def __init__(self) -> None:
        self.acquired = 0
        self.released = 0

    def needed(self, plan: Any, incident: Any) -> bool:
        return bool(plan.destructive and not incident.spec.dry_run)

    async def acquire(self, *_: Any) -> Verdict:
        self.acquired += 1
        return Verdict(True, "Granted", "", None)

    async def record(self, *_: Any) -> None:
        return None

    async def release(self, *_: Any) -> None:
        self.released += 1


class FakeContext:
    """What ``responder`` uses of the OperatorContext, without a cluster."""

    def __init__(self, body: dict[str, Any], runbooks: list[Candidate] | None = None) -> None:
        self.kube = FakeKube(body)
        self.clock = FakeClock()
        self.gate = FakeGate()
        self.policy = load_policy()
        self.settings = Settings()
        self.steps = InFlight()
        self.time = T0
        self.started: list[Any] = []
        self._runbooks = runbooks or []
        self._lock = asyncio.Lock()

    def now(self) -> dt.datetime:
        return self.time

    def runbooks(self, namespace: str) -> list[Candidate]:
        return self._runbooks

    def lock(self, key: str) -> asyncio.Lock:
        return self._lock

    def spawn(self, coro: Any) -> None:
        coro.close()


def _body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "incidents.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {
            "name": "i",
            "namespace": "n",
            "uid": "u",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": T0.isoformat(),
        },
        "spec": {"service": "cache", "summary": "cache full", "severity": 2, **spec},
    }


async def test_a_wake_up_decides_on_the_held_body_without_a_read() -> None:
    ctx = FakeContext(_body())
    await responder.respond(ctx, "n", "i")  # type: ignore[arg-type]
    assert (ctx.kube.gets, ctx.kube.writes) == (1, 1)
    assert ctx.clock.wakes[-1] is not None  # the response deadline is pending

    ctx.time = T0 + dt.timedelta(minutes=6)  # past the 5 min response deadline: escalate
    await responder.on_due(ctx, "n", "i")  # type: ignore[arg-type]
    assert (ctx.kube.gets, ctx.kube.writes) == (1, 2)  # the read is saved


async def test_a_held_body_someone_else_changed_since_is_read_again() -> None:
    ctx = FakeContext(_body())
    await responder.respond(ctx, "n", "i")  # type: ignore[arg-type]
    ctx.kube.bump(ctx.kube.body)  # another writer (a person, a replica)
    events = len(ctx.kube.events)

    ctx.time = T0 + dt.timedelta(minutes=6)
    await responder.on_due(ctx, "n", "i")  # type: ignore[arg-type]
    # The decision on the held body conflicted; the one on the read body was committed once.
    assert (ctx.kube.gets, ctx.kube.writes) == (2, 2)
    assert ctx.kube.events[events:].count("Escalated") <= 1
    assert len(ctx.kube.events) > events


async def test_a_held_body_that_writes_nothing_is_decided_again_on_a_read() -> None:
    ctx = FakeContext(_body())
    await responder.respond(ctx, "n", "i")  # type: ignore[arg-type]
    # A person acknowledged meanwhile, in a way that leaves this process's body as it was.
    ctx.kube.bump({**ctx.kube.body, "spec": {**ctx.kube.body["spec"], "severity": 1}})

    await responder.on_due(ctx, "n", "i")  # type: ignore[arg-type]  # nothing due on hold
    assert ctx.kube.gets == 2  # read again: the severity change is decided on the read body
    assert ctx.kube.body["status"]["severity"] == 1


def _destructive_runbook() -> Candidate:
    runbook = RunbookObject.parse(
        {
            "metadata": {"name": "rb", "namespace": "n"},
            "spec": {
                "title": "t",
                "rto": {"mitigation": "5m"},
                "recovery": [
                    {
                        "name": "restart",
                        "action": {"type": "restartWorkload", "workload": {"name": "cache"}},
                    }
                ],
            },
        }
    )
    return Candidate(runbook, True)


async def test_a_decision_on_an_unread_body_never_claims_a_target() -> None:
    ctx = FakeContext(_body(runbook="rb"), [_destructive_runbook()])
    await responder.respond(ctx, "n", "i", known=ctx.kube.body)  # type: ignore[arg-type]
    # The first decision (on the unread body) would have claimed: it was made on a read.
    assert ctx.kube.gets == 1
    assert ctx.gate.acquired == 1  # once, on the read body
    assert ctx.kube.body["status"]["steps"][0]["phase"] == "Running"
