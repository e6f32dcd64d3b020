"""Clients that act as a Runbook's ServiceAccount, so a Runbook can do no more than it may.

A Runbook names a ServiceAccount in its namespace (``spec.serviceAccountName``). Every
Kubernetes action of its steps, and every Secret read for its targets, is made with a
short-lived token of that account from the TokenRequest API, not with the operator's rights:
the namespace's admin decides what the account may do, as with Flux's
``serviceAccountName``. The operator itself needs only ``create serviceaccounts/token``.

A token rather than impersonation headers: the official client's websocket transport
(``kubectl exec`` for ``execInPod``) forwards only the Authorization header, so an
impersonated exec would run with the operator's own rights.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt

import kubernetes

from .client import KubeClient, KubeError

#: Lifetime asked for each token; a token is replaced when less than a quarter is left.
TOKEN_SECONDS = 600
REFRESH_FRACTION = 0.25


class IdentityError(KubeError):
    """No token for the ServiceAccount (it does not exist, or the operator may not ask)."""


class ServiceAccountClients:
    """One cached client per ServiceAccount, renewed before its token expires."""

    def __init__(self, operator: KubeClient, token_seconds: int = TOKEN_SECONDS) -> None:
        self.operator = operator
        self.token_seconds = token_seconds
        self._clients: dict[tuple[str, str], tuple[KubeClient, dt.datetime]] = {}
        self._lock = asyncio.Lock()

    async def client_for(self, namespace: str, name: str) -> KubeClient:
        """A client acting as ServiceAccount ``namespace/name``."""
        async with self._lock:
            key = (namespace, name)
            now = dt.datetime.now(dt.UTC)
            cached = self._clients.get(key)
            if cached is not None and cached[1] > now:
                return cached[0]
            token, expires = await self._token(namespace, name)
            client = self.operator.acting_with(_api_client(self.operator, token))
            renew_at = expires - dt.timedelta(seconds=self.token_seconds * REFRESH_FRACTION)
            self._clients[key] = (client, renew_at)
            if cached is not None:
                cached[0].close()
            return client

    async def _token(self, namespace: str, name: str) -> tuple[str, dt.datetime]:
        what = f"ServiceAccount {namespace}/{name}"
        request = {"spec": {"expirationSeconds": self.token_seconds}}
        try:
            answer = await self.operator.json(
                self.operator.core.create_namespaced_service_account_token,
                name,
                namespace,
                request,
                what=what,
            )
        except KubeError as exc:
            raise IdentityError(
                exc.status, exc.reason, f"cannot act as {what}: {exc.message}"
            ) from None
        status = answer.get("status") or {}
        token = status.get("token")
        if not isinstance(token, str) or not token:
            raise IdentityError(0, "NoToken", f"cannot act as {what}: no token in the answer")
        seconds = self.token_seconds
        return token, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)

    def close(self) -> None:
        for client, _ in self._clients.values():
            client.close()
        self._clients.clear()


def _api_client(operator: KubeClient, token: str) -> kubernetes.client.ApiClient:
    """The operator's connection settings (server, CA, TLS) with only the token as identity."""
    configuration = copy.copy(operator.api_client.configuration)
    configuration.api_key = {"BearerToken": f"Bearer {token}"}
    configuration.api_key_prefix = {}
    configuration.refresh_api_key_hook = None
    # A client certificate would authenticate as the operator before the token is looked at.
    configuration.cert_file = configuration.key_file = None
    configuration.username = configuration.password = None
    return kubernetes.client.ApiClient(configuration)
