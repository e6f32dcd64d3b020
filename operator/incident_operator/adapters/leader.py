"""Leader election on a ``coordination.k8s.io/v1`` Lease: only one replica acts.

Replicas race for the Lease ``incident-operator-leader`` in the operator's namespace. The
holder renews it every ``renew_seconds``; the others retry every ``retry_seconds`` and take
it once it has not been renewed for ``lease_seconds``. Every write carries the
resourceVersion it was decided on, so two replicas can never both win. A leader that cannot
renew within ``renew_deadline`` stops acting before anyone else may take over.

Handover: a leader that stops cleanly releases the Lease (the next replica leads within
``retry_seconds``); a killed one is replaced within ``lease_seconds + retry_seconds``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import socket
import uuid

from .client import (
    JSON,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    Conflict,
    KubeClient,
    KubeError,
    NotFound,
    micro_time,
    parse_time,
)

log = logging.getLogger(__name__)
LEASE_NAME = "incident-operator-leader"


@dataclasses.dataclass(frozen=True)
class Timing:
    lease_seconds: float = 15.0
    renew_seconds: float = 5.0
    retry_seconds: float = 2.0

    @property
    def renew_deadline(self) -> float:
        """Stop acting when the last successful renewal is this old: before anyone else may
        take the Lease (``lease_seconds``), with room for a clock tick or two."""
        return self.lease_seconds * 2 / 3

    @classmethod
    def from_env(cls) -> Timing:
        def seconds(name: str, default: float) -> float:
            return float(os.environ.get(name, default))

        return cls(
            seconds("INCIDENT_OPERATOR_LEASE_SECONDS", cls.lease_seconds),
            seconds("INCIDENT_OPERATOR_RENEW_SECONDS", cls.renew_seconds),
            seconds("INCIDENT_OPERATOR_RETRY_SECONDS_LEADER", cls.retry_seconds),
        )


def identity() -> str:
    """This replica: the pod's name in a cluster, the host elsewhere, plus a unique suffix."""
    host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def may_take(lease: JSON | None, me: str, now: dt.datetime, timing: Timing) -> bool:
    """Whether ``me`` may write itself as holder: nobody holds it, it is ours, or the
    holder has not renewed for a whole lease."""
    spec = (lease or {}).get("spec") or {}
    holder = spec.get("holderIdentity")
    if not holder or holder == me:
        return True
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds") or timing.lease_seconds
    return renewed is None or now >= renewed + dt.timedelta(seconds=float(duration))


class LeaderElector:
    def __init__(self, kube: KubeClient, namespace: str, timing: Timing | None = None) -> None:
        self.kube, self.namespace = kube, namespace
        self.timing = timing or Timing.from_env()
        self.me = identity()
        self.leading = False
        self._renewed_at = 0.0

    async def acquire(self) -> None:
        """Wait until this replica holds the Lease."""
        log.info("leader election: %s waits for Lease %s/%s", self.me, self.namespace, LEASE_NAME)
        while not await self._try_take():
            await asyncio.sleep(self.timing.retry_seconds)
        self.leading = True
        log.info("leader election: %s leads", self.me)

    async def hold(self) -> None:
        """Renew until the Lease is lost or cannot be renewed in time; then return."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.timing.renew_seconds)
            try:
                if not await self._try_take():
                    log.error("leader election: %s lost the Lease to another replica", self.me)
                    break
            except KubeError as exc:
                log.warning("leader election: renewal failed: %s", exc)
            if loop.time() - self._renewed_at > self.timing.renew_deadline:
                log.error("leader election: %s could not renew in time; stepping down", self.me)
                break
        self.leading = False

    async def release(self) -> None:
        """Give the Lease up, so another replica leads at once (a clean shutdown)."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = await self._read()
            if lease is not None and (lease.get("spec") or {}).get("holderIdentity") == self.me:
                await self._write(lease, {"holderIdentity": None, "renewTime": None})
                log.info("leader election: %s released the Lease", self.me)
        except KubeError as exc:
            log.warning("leader election: could not release the Lease: %s", exc)

    async def _try_take(self) -> bool:
        now = dt.datetime.now(dt.UTC)
        lease = await self._read()
        if lease is None:
            lease = await self._create()
            if lease is None:
                return False
        if not may_take(lease, self.me, now, self.timing):
            return False
        spec = lease.get("spec") or {}
        change: JSON = {
            "holderIdentity": self.me,
            "leaseDurationSeconds": max(1, round(self.timing.lease_seconds)),
            "renewTime": micro_time(now),
        }
        if spec.get("holderIdentity") != self.me:
            change["acquireTime"] = micro_time(now)
            change["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        try:
            await self._write(lease, change)
        except Conflict:
            return False  # someone wrote first: decide again on the next round
        self._renewed_at = asyncio.get_running_loop().time()
        return True

    async def _read(self) -> JSON | None:
        try:
            return await self.kube.json(
                self.kube.coordination.read_namespaced_lease,
                LEASE_NAME,
                self.namespace,
                what=f"Lease {self.namespace}/{LEASE_NAME}",
            )
        except NotFound:
            return None

    async def _create(self) -> JSON | None:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": LEASE_NAME,
                "namespace": self.namespace,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            },
            "spec": {},
        }
        try:
            return await self.kube.json(
                self.kube.coordination.create_namespaced_lease,
                self.namespace,
                body,
                what=f"Lease {self.namespace}/{LEASE_NAME}",
            )
        except Conflict:
            return None

    async def _write(self, lease: JSON, spec: JSON) -> JSON:
        metadata = {"resourceVersion": lease["metadata"]["resourceVersion"]}
        return await self.kube.json(
            self.kube.coordination.patch_namespaced_lease,
            LEASE_NAME,
            self.namespace,
            {"metadata": metadata, "spec": spec},
            _content_type="application/merge-patch+json",
            what=f"Lease {self.namespace}/{LEASE_NAME}",
        )
