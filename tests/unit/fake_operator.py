"""What ``responder`` and ``steps`` use of the OperatorContext, in memory, without a cluster
(tests/unit/test_decision_failed.py, tests/unit/test_held_body.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from incident_operator.adapters.kube import Conflict
from incident_operator.context import Settings
from incident_operator.domain.guarding import Verdict
from incident_operator.domain.matching import Candidate
from incident_operator.domain.policy import load_policy
from incident_operator.models.incident import IncidentStatus
from incident_operator.tasks import InFlight

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


class FakeKube:
    """One Incident in memory, written the way the API server does: the status must pass
    the schema, and a write is guarded by the body's resourceVersion."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.gets = 0
        self.writes = 0
        self.events: list[tuple[str, str]] = []

    @property
    def reasons(self) -> list[str]:
        return [reason for _, reason in self.events]

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        self.gets += 1
        return self.body

    async def replace_status(
        self, plural: str, body: dict[str, Any], status: dict[str, Any]
    ) -> dict[str, Any]:
        IncidentStatus.model_validate(status)  # what the schema would refuse, refused
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
        self.events.append((type_, reason))


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
    """The OperatorContext's part that deciding and committing use."""

    def __init__(self, body: dict[str, Any], runbooks: list[Candidate] | None = None) -> None:
        self.kube = FakeKube(body)
        self.clock = FakeClock()
        self.gate = FakeGate()
        self.policy = load_policy()
        self.settings = Settings()
        self.steps = InFlight()
        self.time = T0
        self.held: dict[str, dict[str, Any]] = {}
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


def incident_body(**spec: Any) -> dict[str, Any]:
    """Incident ``n/i`` as stored, created at T0, with ``spec`` over a severity-2 default."""
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
