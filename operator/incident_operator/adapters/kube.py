"""The operator's own Kubernetes API calls: Incidents, Runbooks, Events and Secrets.

The official client is synchronous; every call runs in a worker thread so Kopf's event loop
keeps serving other Incidents. The client is created once at start-up.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import os
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from .. import API_GROUP, API_VERSION

log = logging.getLogger(__name__)
COMPONENT = "incident-operator"


class Conflict(Exception):
    """The object changed since it was read; read it again and redo the decision."""


class NotFound(Exception):
    pass


def load_api_client(kubeconfig: str | None = None) -> kubernetes.client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig."""
    try:
        kubernetes.config.load_incluster_config()
        return kubernetes.client.ApiClient()
    except kubernetes.config.ConfigException:
        configuration = kubernetes.client.Configuration()
        # Read KUBECONFIG now: the client's own default was fixed when it was imported.
        kubernetes.config.load_kube_config(
            config_file=kubeconfig or os.environ.get("KUBECONFIG"),
            client_configuration=configuration,
        )
        return kubernetes.client.ApiClient(configuration)


class KubeAdapter:
    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.api_client = api_client
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)

    async def _call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(func, *args, **kwargs)
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(str(exc.reason)) from exc
            if exc.status == 404:
                raise NotFound(str(exc.reason)) from exc
            raise

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            self.custom.get_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            namespace,
            plural,
            name,
        )
        return result

    async def list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        result = await self._call(
            self.custom.list_namespaced_custom_object, API_GROUP, API_VERSION, namespace, plural
        )
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            self.custom.create_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            namespace,
            plural,
            body,
        )
        return result

    async def annotate(
        self, plural: str, namespace: str, name: str, annotations: dict[str, str]
    ) -> None:
        await self._call(
            self.custom.patch_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            namespace,
            plural,
            name,
            {"metadata": {"annotations": annotations}},
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
        result: dict[str, Any] = await self._call(
            self.custom.replace_namespaced_custom_object_status,
            API_GROUP,
            API_VERSION,
            meta["namespace"],
            plural,
            meta["name"],
            new_body,
        )
        return result

    async def event(
        self,
        body: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        when: dt.datetime | None = None,
    ) -> None:
        """A core/v1 Event on the object, so ``kubectl describe`` tells the story."""
        meta = body["metadata"]
        when = when or dt.datetime.now(dt.UTC)
        event = kubernetes.client.CoreV1Event(
            metadata=kubernetes.client.V1ObjectMeta(
                generate_name=f"{meta['name']}.", namespace=meta["namespace"]
            ),
            involved_object=kubernetes.client.V1ObjectReference(
                api_version=body.get("apiVersion"),
                kind=body.get("kind"),
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
            type=type_,
            reason=reason,
            message=message[:1024],
            first_timestamp=when,
            last_timestamp=when,
            count=1,
            source=kubernetes.client.V1EventSource(component=COMPONENT),
            reporting_component=COMPONENT,
            reporting_instance=COMPONENT,
        )
        try:
            await self._call(self.core.create_namespaced_event, meta["namespace"], event)
        except (ApiException, NotFound, Conflict) as exc:
            # Events are best effort: the status timeline is the durable record.
            log.warning("could not post event %s on %s: %s", reason, meta["name"], exc)

    async def read_secret(self, namespace: str, name: str, key: str) -> str:
        secret = await self._call(self.core.read_namespaced_secret, name, namespace)
        data = secret.data or {}
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
