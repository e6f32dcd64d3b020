"""The operator's own Kubernetes API calls: Incidents, Runbooks, Events and Secrets.

Every call goes through the one :class:`~incident_operator.adapters.client.KubeClient`
(thread pool, request timeouts, error mapping); this module re-exports its errors, so
callers catch ``Conflict`` and ``NotFound`` from here.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import os
import socket
import uuid
from typing import Any

import kubernetes

from .client import (
    API_GROUP,
    API_VERSION,
    COMPONENT,
    DEFAULT_POOL_SIZE,
    JSON,
    Conflict,
    Forbidden,
    Invalid,
    KubeClient,
    KubeError,
    NotFound,
    Unavailable,
    micro_time,
)

__all__ = [
    "Conflict",
    "Forbidden",
    "Invalid",
    "KubeAdapter",
    "KubeClient",
    "KubeError",
    "KubeSecretReader",
    "NotFound",
    "Unavailable",
    "load_api_client",
]

log = logging.getLogger(__name__)
#: Events in flight at once: the rest wait their turn, so the requests of decisions never
#: queue behind a burst of Events in the client's pool (an Incident's creation alone posts
#: five). Events are best effort and ordered by their eventTime, not by arrival.
EVENT_LANES = 4
#: Who posts the Events: the pod's name in a cluster (one per replica), else the host's.
REPORTING_INSTANCE = (os.environ.get("HOSTNAME") or socket.gethostname() or COMPONENT)[:128]


def load_api_client(
    kubeconfig: str | None = None, pool_size: int = DEFAULT_POOL_SIZE
) -> kubernetes.client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig; with room for
    ``pool_size`` concurrent connections (one per thread of the KubeClient's pool)."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        # Read KUBECONFIG now: the client's own default was fixed when it was imported.
        kubernetes.config.load_kube_config(
            config_file=kubeconfig or os.environ.get("KUBECONFIG"),
            client_configuration=configuration,
        )
    configuration.connection_pool_maxsize = max(
        pool_size, configuration.connection_pool_maxsize or 0
    )
    return kubernetes.client.ApiClient(configuration)


def event_body(
    body: dict[str, Any], type_: str, reason: str, message: str, when: dt.datetime
) -> dict[str, Any]:
    """The events.k8s.io/v1 Event the operator posts on ``body`` (see KubeAdapter.event)."""
    meta = body["metadata"]
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        # Named by time (as the kubelet names Events, name and a hex stamp): a list returns
        # them in name order, which is then the order they happened.
        "metadata": {
            "name": f"{meta['name']}.{int(when.timestamp() * 1e6):016x}{uuid.uuid4().hex[:4]}",
            "namespace": meta["namespace"],
        },
        "eventTime": micro_time(when),
        "reportingController": f"{API_GROUP}/{COMPONENT}",
        "reportingInstance": REPORTING_INSTANCE,
        "action": "Respond",
        "reason": reason,
        "note": message[:1024],
        "type": type_,
        "regarding": {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
    }


class KubeAdapter:
    """Incidents and Runbooks (custom objects of ``API_GROUP``), Events and Secrets.

    Takes the operator's :class:`KubeClient`, or an ApiClient to wrap in one.
    """

    def __init__(self, client: KubeClient | kubernetes.client.ApiClient) -> None:
        self.client = client if isinstance(client, KubeClient) else KubeClient(client)
        self._event_lanes = asyncio.Semaphore(EVENT_LANES)

    @property
    def api_client(self) -> kubernetes.client.ApiClient:
        return self.client.api_client

    async def _custom(
        self, method: str, namespace: str, plural: str, *args: Any, what: str | None = None
    ) -> JSON:
        func = getattr(self.client.custom, method)
        return await self.client.json(
            func,
            API_GROUP,
            API_VERSION,
            namespace,
            plural,
            *args,
            what=what or f"{plural} in {namespace}",
            resource=f"{plural}.{API_GROUP}",
        )

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        what = f"{plural} {namespace}/{name}"
        return await self._custom(
            "get_namespaced_custom_object", namespace, plural, name, what=what
        )

    async def list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        result = await self._custom("list_namespaced_custom_object", namespace, plural)
        items: list[dict[str, Any]] = result.get("items") or []
        return items

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        what = f"{plural} {namespace}/{(body.get('metadata') or {}).get('name', '')}"
        return await self._custom(
            "create_namespaced_custom_object", namespace, plural, body, what=what
        )

    async def annotate(
        self, plural: str, namespace: str, name: str, annotations: dict[str, str]
    ) -> None:
        await self._custom(
            "patch_namespaced_custom_object",
            namespace,
            plural,
            name,
            {"metadata": {"annotations": annotations}},
            what=f"{plural} {namespace}/{name}",
        )

    async def replace_status(
        self, plural: str, body: dict[str, Any], status: dict[str, Any]
    ) -> dict[str, Any]:
        """Write the whole status, guarded by the resourceVersion the decision was based on."""
        meta = body["metadata"]
        new_body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": body.get("kind"),
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "resourceVersion": meta["resourceVersion"],
            },
            "spec": body.get("spec", {}),
            "status": status,
        }
        return await self._custom(
            "replace_namespaced_custom_object_status",
            meta["namespace"],
            plural,
            meta["name"],
            new_body,
            what=f"{plural} {meta['namespace']}/{meta['name']}",
        )

    async def event(
        self,
        body: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        when: dt.datetime | None = None,
    ) -> None:
        """An events.k8s.io/v1 Event on the object, so ``kubectl describe`` tells the story.

        ``eventTime`` has microseconds and no second-precision ``lastTimestamp`` is set, so
        ``kubectl describe`` lists the Events in timeline order even within one second.
        """
        meta = body["metadata"]
        event = event_body(body, type_, reason, message, when or dt.datetime.now(dt.UTC))
        try:
            async with self._event_lanes:
                # As JSON: the answer is not needed as a typed V1Event, which costs CPU.
                await self.client.json(
                    self.client.events.create_namespaced_event,
                    meta["namespace"],
                    event,
                    what=f"Event on {meta['name']}",
                )
        except KubeError as exc:
            # Events are best effort: the status timeline is the durable record.
            log.warning("could not post event %s on %s: %s", reason, meta["name"], exc)

    async def read_secret(self, namespace: str, name: str, key: str) -> str:
        secret = await self.client.json(
            self.client.core.read_namespaced_secret,
            name,
            namespace,
            what=f"secret {namespace}/{name}",
        )
        data = secret.get("data") or {}
        if key not in data:
            raise KeyError(f"secret {namespace}/{name} has no key {key}")
        return base64.b64decode(data[key]).decode()


class KubeSecretReader:
    """SecretReader for the action executors; never logs what it reads."""

    def __init__(self, kube: KubeAdapter) -> None:
        self.kube = kube

    async def read(self, namespace: str, name: str, key: str) -> str:
        try:
            return await self.kube.read_secret(namespace, name, key)
        except NotFound as exc:
            raise LookupError(f"secret {namespace}/{name} not found") from exc
