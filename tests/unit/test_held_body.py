"""A wake-up decides on the body this process last wrote: one read saved, never a stale act.

After each commit the responder holds the stored body while a wake-up is pending; the
wake-up's decision starts from it instead of a GET. That is safe because the write is
guarded by the body's resourceVersion (someone else's write in between makes it conflict,
and the next round reads), a decision on it that writes nothing is made again on a read
body, and a decision on it never claims a step's target.
"""

from __future__ import annotations

import datetime as dt

from incident_operator import responder
from incident_operator.domain.matching import Candidate
from incident_operator.models.objects import RunbookObject
from tests.unit.fake_operator import T0, FakeContext, incident_body


async def test_a_wake_up_decides_on_the_held_body_without_a_read() -> None:
    ctx = FakeContext(incident_body())
    await responder.respond(ctx, "n", "i")  # type: ignore[arg-type]
    assert (ctx.kube.gets, ctx.kube.writes) == (1, 1)
    assert ctx.clock.wakes[-1] is not None  # the response deadline is pending

    ctx.time = T0 + dt.timedelta(minutes=6)  # past the 5 min response deadline: escalate
    await responder.on_due(ctx, "n", "i")  # type: ignore[arg-type]
    assert (ctx.kube.gets, ctx.kube.writes) == (1, 2)  # the read is saved


async def test_a_held_body_someone_else_changed_since_is_read_again() -> None:
    ctx = FakeContext(incident_body())
    await responder.respond(ctx, "n", "i")  # type: ignore[arg-type]
    ctx.kube.bump(ctx.kube.body)  # another writer (a person, a replica)
    events = len(ctx.kube.events)

    ctx.time = T0 + dt.timedelta(minutes=6)
    await responder.on_due(ctx, "n", "i")  # type: ignore[arg-type]
    # The decision on the held body conflicted; the one on the read body was committed once.
    assert (ctx.kube.gets, ctx.kube.writes) == (2, 2)
    assert ctx.kube.reasons[events:].count("Escalated") <= 1
    assert len(ctx.kube.events) > events


async def test_a_held_body_that_writes_nothing_is_decided_again_on_a_read() -> None:
    ctx = FakeContext(incident_body())
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
    ctx = FakeContext(incident_body(runbook="rb"), [_destructive_runbook()])
    await responder.respond(ctx, "n", "i", known=ctx.kube.body)  # type: ignore[arg-type]
    # The first decision (on the unread body) would have claimed: it was made on a read.
    assert ctx.kube.gets == 1
    assert ctx.gate.acquired == 1  # once, on the read body
    assert ctx.kube.body["status"]["steps"][0]["phase"] == "Running"
