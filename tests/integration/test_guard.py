"""TargetGuard against real Lease objects of the API server (no mocks).

Time is injected (``now``): the Leases store it as renew/acquire times and attempt stamps, so
cooldowns, windows and expiry are tested without waiting.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import kubernetes
import pytest

from incident_operator.adapters.client import KubeClient
from incident_operator.adapters.guard import (
    ATTEMPTS_ANNOTATION,
    MAX_KEPT_ATTEMPTS,
    GuardError,
    TargetGuard,
    lease_name,
)
from incident_operator.domain.guarding import (
    COOLDOWN_ACTIVE,
    GRANTED,
    MAX_ATTEMPTS_REACHED,
    TARGET_BUSY,
)

pytestmark = pytest.mark.cluster

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
KEY = "deployment-dashboard"
A, B = "incident-a-uid", "incident-b-uid"
#: generous limits for tests about one rule only
FREE = {"cooldown_s": 0, "max_attempts": 20, "window_s": 3600}


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture
def guard(api_client: kubernetes.client.ApiClient) -> TargetGuard:
    return TargetGuard(KubeClient(api_client), lease_duration_s=120)


@pytest.fixture
def leases(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoordinationV1Api:
    return kubernetes.client.CoordinationV1Api(api_client)


def test_lease_names() -> None:
    assert lease_name(KEY) == "incident-operator-deployment-dashboard"
    assert lease_name("postgres-127.0.0.1-5432") == "incident-operator-postgres-127-0-0-1-5432"
    long = lease_name("statefulset-" + "x" * 80)
    assert len(long) <= 63 and long.startswith("incident-operator-statefulset-xxx")
    assert long != lease_name("statefulset-" + "x" * 81)


async def test_second_holder_is_busy_until_release(
    guard: TargetGuard, leases: kubernetes.client.CoordinationV1Api, namespace: str
) -> None:
    first = await guard.acquire(namespace, KEY, A, now=T0, **FREE)
    assert first.granted and first.reason == GRANTED and first.retry_at is None
    lease = leases.read_namespaced_lease("incident-operator-deployment-dashboard", namespace)
    assert lease.spec.holder_identity == A
    assert lease.spec.lease_duration_seconds == 120
    assert lease.spec.renew_time == T0 and lease.spec.acquire_time == T0
    assert lease.metadata.annotations["incidents.dev/target"] == KEY

    busy = await guard.acquire(namespace, KEY, B, now=at(10), **FREE)
    assert not busy.granted and busy.reason == TARGET_BUSY
    assert busy.retry_at == at(120)
    assert A in busy.message and "until 2026-01-01T12:02:00Z" in busy.message

    again = await guard.acquire(namespace, KEY, A, now=at(20), **FREE)  # e.g. after a restart
    assert again.granted and "already held by" in again.message
    assert leases.read_namespaced_lease(lease_name(KEY), namespace).spec.renew_time == at(20)

    assert await guard.release(namespace, KEY, A) is True
    assert await guard.release(namespace, KEY, A) is False  # twice is harmless
    assert leases.read_namespaced_lease(lease_name(KEY), namespace).spec.holder_identity is None
    taken = await guard.acquire(namespace, KEY, B, now=at(30), **FREE)
    assert taken.granted
    lease = leases.read_namespaced_lease(lease_name(KEY), namespace)
    assert lease.spec.holder_identity == B and lease.spec.acquire_time == at(30)


async def test_concurrent_acquires_grant_exactly_one(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    """Two operator instances (own clients) race for fresh and for released targets."""
    other_client = kubernetes.client.ApiClient(api_client.configuration)
    one, two = TargetGuard(KubeClient(api_client)), TargetGuard(KubeClient(other_client))
    try:
        for round_ in range(6):
            key = f"deployment-race-{round_ % 3}"  # rounds 3-5 race for released leases
            verdicts = await asyncio.gather(
                one.acquire(namespace, key, A, now=at(round_), **FREE),
                two.acquire(namespace, key, B, now=at(round_), **FREE),
            )
            granted = [v for v in verdicts if v.granted]
            assert len(granted) == 1, verdicts
            assert [v.reason for v in verdicts if not v.granted] == [TARGET_BUSY]
            winner = A if verdicts[0].granted else B
            assert await one.release(namespace, key, winner)
    finally:
        other_client.close()


async def test_cooldown_blocks_then_allows(guard: TargetGuard, namespace: str) -> None:
    rules = {"cooldown_s": 60, "max_attempts": 10, "window_s": 3600}
    assert (await guard.acquire(namespace, KEY, A, now=T0, **rules)).granted
    assert await guard.record_attempt(namespace, KEY, A, now=T0) == [T0]
    assert await guard.release(namespace, KEY, A)

    cooling = await guard.acquire(namespace, KEY, B, now=at(30), **rules)
    assert not cooling.granted and cooling.reason == COOLDOWN_ACTIVE
    assert cooling.retry_at == at(60)
    assert "cooling down" in cooling.message and "12:01:00Z" in cooling.message
    # The remediation that acted may take its next, different step at once.
    own = await guard.acquire(namespace, KEY, A, now=at(30), **rules)
    assert own.granted
    assert await guard.release(namespace, KEY, A)
    assert (await guard.acquire(namespace, KEY, B, now=at(59.9), **rules)).reason == COOLDOWN_ACTIVE
    after = await guard.acquire(namespace, KEY, B, now=at(61), **rules)
    assert after.granted and after.reason == GRANTED
    assert await guard.attempts(namespace, KEY) == [T0]  # acquiring records nothing


async def test_max_attempts_within_window(guard: TargetGuard, namespace: str) -> None:
    rules = {"cooldown_s": 5, "max_attempts": 2, "window_s": 600}
    for second in (0, 10):
        assert (await guard.acquire(namespace, KEY, A, now=at(second), **rules)).granted
        await guard.record_attempt(namespace, KEY, A, now=at(second))
        await guard.release(namespace, KEY, A)
    limited = await guard.acquire(namespace, KEY, B, now=at(20), **rules)
    assert not limited.granted and limited.reason == MAX_ATTEMPTS_REACHED
    assert limited.retry_at == at(600)  # when the first attempt leaves the window
    assert "2 destructive actions in the last 10m (maximum 2)" in limited.message
    assert (
        await guard.acquire(namespace, KEY, B, now=at(599), **rules)
    ).reason == MAX_ATTEMPTS_REACHED
    assert (await guard.acquire(namespace, KEY, B, now=at(601), **rules)).granted


async def test_expired_lease_is_taken_over(
    guard: TargetGuard, leases: kubernetes.client.CoordinationV1Api, namespace: str
) -> None:
    assert (await guard.acquire(namespace, KEY, A, now=T0, lease_duration_s=5, **FREE)).granted
    busy = await guard.acquire(namespace, KEY, B, now=at(3), **FREE)
    assert busy.reason == TARGET_BUSY and busy.retry_at == at(5)
    taken = await guard.acquire(namespace, KEY, B, now=at(6), **FREE)  # A crashed
    assert taken.granted and f"the lease of {A} had expired" in taken.message
    lease = leases.read_namespaced_lease(lease_name(KEY), namespace)
    assert lease.spec.holder_identity == B and lease.spec.lease_transitions == 1
    assert lease.spec.lease_duration_seconds == 120
    with pytest.raises(GuardError, match=f"not held by {A}"):
        await guard.record_attempt(namespace, KEY, A, now=at(7))
    assert await guard.release(namespace, KEY, A) is False
    assert await guard.renew(namespace, KEY, A, now=at(7)) is False
    assert await guard.renew(namespace, KEY, B, now=at(100)) is True
    assert (await guard.acquire(namespace, KEY, A, now=at(200), **FREE)).reason == TARGET_BUSY
    assert leases.read_namespaced_lease(lease_name(KEY), namespace).spec.holder_identity == B


async def test_attempt_history_is_bounded_and_needs_the_lease(
    guard: TargetGuard, leases: kubernetes.client.CoordinationV1Api, namespace: str
) -> None:
    with pytest.raises(GuardError):
        await guard.record_attempt(namespace, KEY, A, now=T0)
    assert (await guard.acquire(namespace, KEY, A, now=T0, **FREE)).granted
    for i in range(MAX_KEPT_ATTEMPTS + 6):
        kept = await guard.record_attempt(namespace, KEY, A, now=at(i))
    assert len(kept) == MAX_KEPT_ATTEMPTS and kept[0] == at(6) and kept[-1] == at(69)
    raw = leases.read_namespaced_lease(lease_name(KEY), namespace).metadata.annotations[
        ATTEMPTS_ANNOTATION
    ]
    assert json.loads(raw)[-1] == {"at": "2026-01-01T12:01:09.000000Z", "holder": A}
    assert await guard.release(namespace, KEY, A)
    assert len(await guard.attempts(namespace, KEY)) == MAX_KEPT_ATTEMPTS  # survives release


async def test_invalid_arguments(guard: TargetGuard, namespace: str) -> None:
    with pytest.raises(ValueError):
        await guard.acquire(namespace, KEY, "", now=T0, **FREE)
    with pytest.raises(ValueError):
        await guard.acquire(namespace, KEY, A, cooldown_s=0, max_attempts=0, window_s=60, now=T0)
