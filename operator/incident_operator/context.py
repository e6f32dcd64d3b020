"""Long-lived clients and settings, created once at operator start-up (Kopf's memo)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import weakref
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any

import httpx

from .adapters.authz import Approvers
from .adapters.guard import TargetGuard
from .adapters.identities import ServiceAccountClients
from .adapters.kube import KubeAdapter, KubeSecretReader, load_api_client
from .domain.matching import Candidate
from .domain.policy import Policy, load_policy
from .safety import SafetyGate
from .tasks import Clock, InFlight


@dataclasses.dataclass
class Settings:
    """Operator settings from the environment (see README, Configuration)."""

    namespace: str = "incident-operator"
    #: The kubeconfig to use outside a cluster (default: $KUBECONFIG); in a pod, in-cluster.
    kubeconfig: str | None = None
    policy_file: str | None = None
    #: How soon to try again when a step waits for its target or a decision could not act.
    retry_seconds: float = 10.0
    webhook_host: str = "0.0.0.0"
    webhook_port: int | None = None
    # Mounted from a Secret by the Deployment (secretKeyRef); never logged.
    webhook_token: str | None = dataclasses.field(default=None, repr=False)
    #: On a clean stop, how long deliveries in flight may take to finish and be recorded.
    shutdown_grace_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> Settings:
        port = os.environ.get("INCIDENT_OPERATOR_WEBHOOK_PORT")
        return cls(
            namespace=os.environ.get("INCIDENT_OPERATOR_NAMESPACE", "incident-operator"),
            kubeconfig=os.environ.get("INCIDENT_OPERATOR_KUBECONFIG") or None,
            policy_file=os.environ.get("INCIDENT_OPERATOR_POLICY") or None,
            retry_seconds=float(os.environ.get("INCIDENT_OPERATOR_RETRY_SECONDS", "10")),
            webhook_host=os.environ.get("INCIDENT_OPERATOR_WEBHOOK_HOST", "0.0.0.0"),
            webhook_port=int(port) if port else None,
            webhook_token=os.environ.get("INCIDENT_OPERATOR_WEBHOOK_TOKEN") or None,
            shutdown_grace_seconds=float(
                os.environ.get("INCIDENT_OPERATOR_SHUTDOWN_GRACE_SECONDS", "10")
            ),
        )


class OperatorContext:
    def __init__(
        self, settings: Settings, policy: Policy, kube: KubeAdapter, http: httpx.AsyncClient
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.kube = kube
        self.http = http
        self.secrets = KubeSecretReader(kube)
        self.clock = Clock()
        self.identities = ServiceAccountClients(kube.client)
        self.approvers = Approvers(kube.client)
        self.steps = InFlight()
        # Kopf's live index of Runbooks by namespace, handed over at start-up.
        self.runbook_index: Mapping[str, Iterable[Candidate]] = {}
        self.gate = SafetyGate(TargetGuard(kube.client), policy, settings.namespace)
        # What action executors may use (see actions.base.ActionContext).
        # The Kubernetes client of a step is its Runbook's ServiceAccount's (see execution).
        self.clients: dict[str, Any] = {"http": http, "policy": policy}
        # Weak values: a lock lives only while some handler holds it, so deleted Incidents
        # leave nothing behind and no finalizer is needed to clean up.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._background: set[asyncio.Task[Any]] = set()
        # (message key, channel) being delivered now: an outbox entry is sent once at a time.
        self.delivering: set[tuple[str, str]] = set()
        # The body of each Incident after this process's last write or read of it, while a
        # wake-up is pending for it: the wake-up decides on it instead of a read
        # (commit.hold / commit.take; every write and read there refreshes it, and a write by
        # anyone else makes the decision's write conflict, so the next round reads).
        self.held: dict[str, dict[str, Any]] = {}

    @classmethod
    def create(cls, settings: Settings) -> OperatorContext:
        policy = load_policy(settings.policy_file)
        kube = KubeAdapter(load_api_client(settings.kubeconfig))
        return cls(settings, policy, kube, httpx.AsyncClient())

    @staticmethod
    def now() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def runbooks(self, namespace: str) -> list[Candidate]:
        """The parsed Runbooks of a namespace, from the index (no API request)."""
        return list(self.runbook_index[namespace]) if namespace in self.runbook_index else []

    def lock(self, key: str) -> asyncio.Lock:
        """One response step at a time per Incident, across handlers, timers and deliveries."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self, grace: float) -> None:
        """Let the background work in flight (deliveries and their records) finish for up to
        ``grace`` seconds, then cancel what is left.

        A message that went out but is not recorded yet is sent again by the next leader
        (at least once, under the same key); a clean stop, such as a rolling update, should
        leave none of those behind.
        """
        pending = set(self._background)
        if pending and grace > 0:
            await asyncio.wait(pending, timeout=grace)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def close(self) -> None:
        self.clock.close()
        self.identities.close()
        await self.steps.close()
        await self.drain(self.settings.shutdown_grace_seconds)
        await self.http.aclose()
        self.kube.client.close()
